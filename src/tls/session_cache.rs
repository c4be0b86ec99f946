//! A sharded, bounded TLS session store. rustls' `ServerSessionMemoryCache` is one mutex
//! whose `take` scans its eviction queue (O(n)); under a storm of resumptions with a 64k
//! cache that serialises handshakes. Here 16 shards each hold a map plus a FIFO of keys with
//! lazy deletion, so every operation is O(1) amortised and contention is spread.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::server::StoresServerSessions;

const SHARDS: usize = 16;

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Vec<u8>, (Vec<u8>, u64)>,
    order: VecDeque<(Vec<u8>, u64)>,
    seq: u64,
}

/// The session store installed in rampart's `ServerConfig`.
#[derive(Debug)]
pub struct ShardedSessionCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: RandomState,
}

impl ShardedSessionCache {
    /// A store holding about `capacity` sessions in total (at least one per shard).
    #[must_use]
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        })
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        let i = usize::try_from(self.hasher.hash_one(key)).unwrap_or(0) % SHARDS;
        // A poisoned shard only means another thread panicked mid-update of plain data.
        self.shards[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sessions currently stored.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .map
                    .len()
            })
            .sum()
    }

    /// Whether nothing is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl StoresServerSessions for ShardedSessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut shard = self.shard(&key);
        shard.seq += 1;
        let seq = shard.seq;
        shard.order.push_back((key.clone(), seq));
        shard.map.insert(key, (value, seq));
        // Evict oldest live entries; queue entries whose seq no longer matches are stale.
        while shard.map.len() > self.per_shard {
            let Some((old, old_seq)) = shard.order.pop_front() else {
                break;
            };
            if shard.map.get(&old).is_some_and(|(_, s)| *s == old_seq) {
                shard.map.remove(&old);
            }
        }
        // Keep the queue from growing without bound when keys are overwritten or taken.
        if shard.order.len() > 2 * self.per_shard + 16 {
            let Shard { map, order, .. } = &mut *shard;
            order.retain(|(k, s)| map.get(k).is_some_and(|(_, live)| live == s));
        }
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.shard(key).map.get(key).map(|(v, _)| v.clone())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.shard(key).map.remove(key).map(|(v, _)| v)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_gets_and_takes_once() {
        let c = ShardedSessionCache::new(64);
        assert!(c.put(b"k".to_vec(), b"v".to_vec()));
        assert_eq!(c.get(b"k"), Some(b"v".to_vec()));
        assert_eq!(c.take(b"k"), Some(b"v".to_vec()));
        assert_eq!(c.take(b"k"), None);
    }

    #[test]
    fn capacity_is_bounded_and_oldest_go_first() {
        let c = ShardedSessionCache::new(160);
        for i in 0..10_000u32 {
            c.put(i.to_be_bytes().to_vec(), vec![0; 8]);
        }
        assert!(c.len() <= 160, "{}", c.len());
        assert!(c.get(&9_999u32.to_be_bytes()).is_some());
        assert!(c.get(&0u32.to_be_bytes()).is_none());
        for shard in &c.shards {
            assert!(shard.lock().unwrap().order.len() <= 2 * c.per_shard + 17);
        }
    }

    #[test]
    fn concurrent_use_from_many_threads_is_consistent() {
        let c = ShardedSessionCache::new(100_000);
        std::thread::scope(|s| {
            for t in 0..8u32 {
                let c = &c;
                s.spawn(move || {
                    for i in 0..2_000u32 {
                        let k = [t.to_be_bytes(), i.to_be_bytes()].concat();
                        c.put(k.clone(), k.clone());
                        assert_eq!(c.take(&k), Some(k));
                    }
                });
            }
        });
        assert!(c.is_empty());
    }
}
