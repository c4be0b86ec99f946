//! Counts the session tickets QUIC handshakes resume with. quinn does not say whether a
//! connection's handshake resumed, so the QUIC configuration's ticketer is the TCP one
//! (the same key ring: a ticket from either transport resumes on both) wrapped to count
//! each ticket it decrypts (`rampart_http3_handshakes_total{kind="ticket"}`). With
//! `--http3-0rtt` QUIC resumes from the server's session cache instead (rustls allows early
//! data only with stateful resumption), counted the same way as each session is taken.

use std::sync::Arc;

use rustls::server::{ProducesTickets, StoresServerSessions};

use crate::telemetry::Metrics;

/// The TCP ticketer, counting the tickets it opens for QUIC handshakes.
#[derive(Debug)]
pub(crate) struct CountingTicketer {
    inner: Arc<dyn ProducesTickets>,
    metrics: Arc<Metrics>,
}

impl CountingTicketer {
    pub(crate) fn new(inner: Arc<dyn ProducesTickets>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

impl ProducesTickets for CountingTicketer {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.inner.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let plain = self.inner.decrypt(cipher);
        if plain.is_some() {
            Metrics::inc(&self.metrics.h3_handshakes_resumed);
        }
        plain
    }
}

/// The server's session cache, counting the sessions QUIC handshakes resume (take) from it.
#[derive(Debug)]
pub(crate) struct CountingStore {
    inner: Arc<dyn StoresServerSessions>,
    metrics: Arc<Metrics>,
}

impl CountingStore {
    pub(crate) fn new(inner: Arc<dyn StoresServerSessions>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

impl StoresServerSessions for CountingStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let value = self.inner.take(key);
        if value.is_some() {
            Metrics::inc(&self.metrics.h3_handshakes_resumed);
        }
        value
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}
