//! AES-256-GCM seal and open throughput: every backend this CPU can run, side
//! by side with the `aes-gcm` crate, `ring`, and a plain memory copy of the
//! same bytes, in one run so the ratios are meaningful on a noisy machine.
//!
//! `cargo bench --bench cipher` (all), `cargo bench --bench cipher -- 'seal/16384'`
//! (one size), `cargo bench --bench cipher -- --test` (one-pass smoke run).

use std::hint::black_box;
use std::time::Duration;

use aes_gcm::aead::{AeadInOut, KeyInit};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use objseal::cipher::{Aes256Gcm, Backend};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

const SIZES: [usize; 5] = [64, 1024, 16 * 1024, 64 * 1024, 1024 * 1024];
const KEY: [u8; 32] = [0x5a; 32];
const NONCE: [u8; 12] = [0xa5; 12];

fn ring_key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap())
}

fn seal(c: &mut Criterion) {
    for size in SIZES {
        let mut g = c.benchmark_group(format!("seal/{size}"));
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0x11u8; size];
        for backend in Backend::available() {
            let gcm = Aes256Gcm::with_backend(&KEY, backend).unwrap();
            g.bench_function(BenchmarkId::new("objseal", backend), |b| {
                b.iter(|| black_box(gcm.seal_in_place(&NONCE, b"", black_box(&mut buf)).unwrap()))
            });
        }
        let reference = aes_gcm::Aes256Gcm::new(&KEY.into());
        g.bench_function("aes-gcm", |b| {
            b.iter(|| {
                black_box(
                    reference
                        .encrypt_inout_detached(
                            &NONCE.into(),
                            b"",
                            black_box(buf.as_mut_slice()).into(),
                        )
                        .unwrap(),
                )
            })
        });
        let ring = ring_key();
        g.bench_function("ring", |b| {
            b.iter(|| {
                let nonce = Nonce::assume_unique_for_key(NONCE);
                black_box(
                    ring.seal_in_place_separate_tag(nonce, Aad::empty(), black_box(&mut buf))
                        .unwrap(),
                )
            })
        });
        let src = vec![0x22u8; size];
        g.bench_function("memcpy", |b| {
            b.iter(|| black_box(&mut buf).copy_from_slice(black_box(&src)))
        });
        g.finish();
    }
}

fn open(c: &mut Criterion) {
    for size in SIZES {
        let mut g = c.benchmark_group(format!("open/{size}"));
        g.throughput(Throughput::Bytes(size as u64));
        let mut ct = vec![0x11u8; size];
        let tag = Aes256Gcm::with_backend(&KEY, Backend::Portable)
            .unwrap()
            .seal_in_place(&NONCE, b"", &mut ct)
            .unwrap();
        // Each iteration opens a fresh copy of the ciphertext; the copy is
        // made outside the timed routine.
        for backend in Backend::available() {
            let gcm = Aes256Gcm::with_backend(&KEY, backend).unwrap();
            g.bench_function(BenchmarkId::new("objseal", backend), |b| {
                b.iter_batched_ref(
                    || ct.clone(),
                    |buf| gcm.open_in_place(&NONCE, b"", buf, &tag).unwrap(),
                    BatchSize::LargeInput,
                )
            });
        }
        let reference = aes_gcm::Aes256Gcm::new(&KEY.into());
        g.bench_function("aes-gcm", |b| {
            b.iter_batched_ref(
                || ct.clone(),
                |buf| {
                    reference
                        .decrypt_inout_detached(
                            &NONCE.into(),
                            b"",
                            buf.as_mut_slice().into(),
                            &tag.into(),
                        )
                        .unwrap()
                },
                BatchSize::LargeInput,
            )
        });
        let ring = ring_key();
        g.bench_function("ring", |b| {
            b.iter_batched_ref(
                || ct.clone(),
                |buf| {
                    let nonce = Nonce::assume_unique_for_key(NONCE);
                    ring.open_in_place_separate_tag(nonce, Aad::empty(), Tag::from(tag), buf, 0..)
                        .map(|p| p.len())
                        .unwrap()
                },
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = seal, open
}
criterion_main!(benches);
