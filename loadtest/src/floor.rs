//! `loadtest floor`: the cryptographic floor of a TLS 1.3 handshake and of a large file, timed
//! with aws-lc-rs (the library rampart's rustls provider calls) on the core this runs on.
//! compare.sh runs it pinned to the server's core and prints it next to the servers' CPU
//! per handshake and per MB.
//!
//! What a TLS 1.3 server must compute, at least:
//! - full handshake (X25519, ECDSA P-256 certificate): one ECDSA signature, an X25519 key
//!   pair and one X25519 agreement;
//! - resumed handshake (psk_dhe_ke, what browsers and rustls offer): the X25519 key pair and
//!   agreement, no signature (the ticket's decryption is a few hundred bytes of AES-GCM);
//! - with X25519MLKEM768 (the post-quantum hybrid browsers send): also one ML-KEM-768
//!   encapsulation to the client's key;
//! - a large file: AES-128-GCM over 16 KiB records, per MB.
//!
//! Each primitive runs for a fixed time and reports its mean; the floors are sums.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use aws_lc_rs::agreement::{agree, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::kem::{DecapsulationKey, ML_KEM_768};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde::Serialize;

/// A TLS record's plaintext at most (RFC 8446 5.1): how a large file is encrypted.
const RECORD: usize = 16 * 1024;

/// The measured primitives (µs per operation; the cipher as µs per 10^6 bytes) and the
/// floors they add up to.
#[derive(Debug, Serialize)]
pub struct Floor {
    pub ecdsa_p256_sign_us: f64,
    pub x25519_keygen_us: f64,
    pub x25519_agree_us: f64,
    pub mlkem768_encapsulate_us: f64,
    pub aes128gcm_us_per_mb: f64,
    /// Signature + X25519 key pair + agreement.
    pub full_handshake_us: f64,
    /// X25519 key pair + agreement.
    pub resumed_handshake_us: f64,
    /// The full handshake with X25519MLKEM768: + one ML-KEM-768 encapsulation.
    pub full_handshake_mlkem_us: f64,
}

/// Times `op` for about `budget` (after a short warm-up); the mean in µs.
fn time(budget: Duration, mut op: impl FnMut() -> Result<()>) -> Result<f64> {
    let warm = Instant::now();
    while warm.elapsed() < budget / 10 {
        op()?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..16 {
            op()?;
        }
        n += 16;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

fn fail<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> anyhow::Error {
    move |e| anyhow!("aws-lc-rs {what}: {e:?}")
}

/// Measures each primitive for `budget`.
///
/// # Errors
/// When aws-lc-rs refuses an operation (it does not on a working build).
pub fn measure(budget: Duration) -> Result<Floor> {
    let rng = SystemRandom::new();
    let signer =
        EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).map_err(fail("P-256 key"))?;
    // What TLS 1.3 signs: 64 spaces, a context string, a 0 byte and a SHA-256 transcript hash.
    let message = [0x20u8; 130];
    let ecdsa_p256_sign_us = time(budget, || {
        signer
            .sign(&rng, &message)
            .map(drop)
            .map_err(fail("ECDSA sign"))
    })?;

    let peer = PrivateKey::generate(&X25519).map_err(fail("X25519 key"))?;
    let peer_public = peer
        .compute_public_key()
        .map_err(fail("X25519 public key"))?;
    let peer_public = peer_public.as_ref().to_vec();
    let x25519_keygen_us = time(budget, || {
        let key = PrivateKey::generate(&X25519).map_err(fail("X25519 key"))?;
        key.compute_public_key()
            .map(drop)
            .map_err(fail("X25519 public key"))
    })?;
    let mine = PrivateKey::generate(&X25519).map_err(fail("X25519 key"))?;
    let x25519_agree_us = time(budget, || {
        agree(
            &mine,
            UnparsedPublicKey::new(&X25519, &peer_public),
            aws_lc_rs::error::Unspecified,
            |secret| Ok(secret.len()),
        )
        .map(drop)
        .map_err(fail("X25519 agreement"))
    })?;

    let client_kem = DecapsulationKey::generate(&ML_KEM_768).map_err(fail("ML-KEM key"))?;
    let client_ek = client_kem
        .encapsulation_key()
        .map_err(fail("ML-KEM encapsulation key"))?;
    let mlkem768_encapsulate_us = time(budget, || {
        client_ek
            .encapsulate()
            .map(drop)
            .map_err(fail("ML-KEM encapsulate"))
    })?;

    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7u8; 16]).map_err(fail("AES key"))?);
    let mut record = vec![0x5au8; RECORD];
    let mut seq = 0u64;
    let per_record_us = time(budget, || {
        seq += 1;
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&seq.to_be_bytes());
        key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from([23u8, 3, 3, 0x40, 0x11]),
            &mut record,
        )
        .map(drop)
        .map_err(fail("AES-128-GCM seal"))
    })?;
    let aes128gcm_us_per_mb = per_record_us * 1e6 / RECORD as f64;

    let resumed_handshake_us = x25519_keygen_us + x25519_agree_us;
    let full_handshake_us = ecdsa_p256_sign_us + resumed_handshake_us;
    Ok(Floor {
        ecdsa_p256_sign_us,
        x25519_keygen_us,
        x25519_agree_us,
        mlkem768_encapsulate_us,
        aes128gcm_us_per_mb,
        full_handshake_us,
        resumed_handshake_us,
        full_handshake_mlkem_us: full_handshake_us + mlkem768_encapsulate_us,
    })
}

impl std::fmt::Display for Floor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "aws-lc-rs on this core: ECDSA P-256 sign {:.1} µs, X25519 key pair {:.1} µs, \
             X25519 agreement {:.1} µs, ML-KEM-768 encapsulation {:.1} µs, AES-128-GCM \
             {:.0} µs/MB ({:.0} MB/s)",
            self.ecdsa_p256_sign_us,
            self.x25519_keygen_us,
            self.x25519_agree_us,
            self.mlkem768_encapsulate_us,
            self.aes128gcm_us_per_mb,
            1e6 / self.aes128gcm_us_per_mb
        )?;
        write!(
            f,
            "floor: full TLS 1.3 handshake {:.1} µs (with X25519MLKEM768 {:.1} µs), resumed \
             {:.1} µs, a large file {:.0} µs/MB",
            self.full_handshake_us,
            self.full_handshake_mlkem_us,
            self.resumed_handshake_us,
            self.aes128gcm_us_per_mb
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_primitive_takes_time_and_the_floors_add_up() {
        let f = measure(Duration::from_millis(20)).unwrap();
        for v in [
            f.ecdsa_p256_sign_us,
            f.x25519_keygen_us,
            f.x25519_agree_us,
            f.mlkem768_encapsulate_us,
            f.aes128gcm_us_per_mb,
        ] {
            assert!(v > 0.0 && v < 100_000.0, "{f:?}");
        }
        assert!(f.full_handshake_us > f.resumed_handshake_us);
        assert!(f.full_handshake_mlkem_us > f.full_handshake_us);
        assert!(f.to_string().contains("floor: full TLS 1.3 handshake"));
    }
}
