//! The quick start: seals and opens 256 MiB of generated data with every
//! AES-256-GCM backend this CPU can run, checks that the round trip is exact
//! and that a tampered message is refused, and prints the throughput.
//!
//! `cargo run --release --example quickstart`

use std::time::Instant;

use objseal::cipher::{Aes256Gcm, Backend};

const MESSAGE: usize = 1 << 20;
const TOTAL: usize = 256 << 20;

fn main() -> Result<(), objseal::Error> {
    println!("{}\n", objseal::cpu_report());
    let key: [u8; 32] = std::array::from_fn(|i| i as u8 ^ 0x5c);
    let original: Vec<u8> = (0..TOTAL)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();

    println!("{:<16} {:>10} {:>10}", "backend", "seal GB/s", "open GB/s");
    for backend in Backend::available() {
        let gcm = Aes256Gcm::with_backend(&key, backend)?;
        let mut data = original.clone();
        let mut tags = Vec::with_capacity(TOTAL / MESSAGE);

        let start = Instant::now();
        for (i, msg) in data.chunks_mut(MESSAGE).enumerate() {
            tags.push(gcm.seal_in_place(&nonce(i), b"quickstart", msg)?);
        }
        let seal = start.elapsed();

        let start = Instant::now();
        for (i, (msg, tag)) in data.chunks_mut(MESSAGE).zip(&tags).enumerate() {
            gcm.open_in_place(&nonce(i), b"quickstart", msg, tag)?;
        }
        let open = start.elapsed();
        assert!(data == original, "round trip must be exact");

        let mut tampered = original[..MESSAGE].to_vec();
        let tag = gcm.seal_in_place(&nonce(0), b"quickstart", &mut tampered)?;
        tampered[12345] ^= 0x01;
        assert!(
            gcm.open_in_place(&nonce(0), b"quickstart", &mut tampered, &tag)
                .is_err()
        );

        let gbps = |d: std::time::Duration| TOTAL as f64 / d.as_secs_f64() / 1e9;
        println!(
            "{:<16} {:>10.2} {:>10.2}",
            backend.name(),
            gbps(seal),
            gbps(open)
        );
    }
    println!("\nround trips exact, tampering refused");
    Ok(())
}

/// A distinct nonce per message (never reuse a nonce under one key).
fn nonce(i: usize) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&(i as u64).to_be_bytes());
    n
}
