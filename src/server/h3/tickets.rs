//! Counts the session tickets QUIC handshakes resume with. quinn does not say whether a
//! connection's handshake resumed, so the QUIC configuration's ticketer is the TCP one
//! (the same key ring: a ticket from either transport resumes on both) wrapped to count
//! each ticket it decrypts (`rampart_http3_handshakes_total{kind="resumed"}`).

use std::sync::Arc;

use rustls::server::ProducesTickets;

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
