//! Per-object cost of seal + open of a 4 KiB object in each SSE mode
//! (SSE-S3, SSE-KMS with LocalKms, SSE-KMS with Bucket Keys, SSE-C) against
//! the bare AES-256-GCM seal + open of 4 KiB and against the floor: the same
//! cryptographic work done with ring's primitives (`ring_floor`).
//!
//! After criterion's runs, the contenders (but LocalKms) run again
//! interleaved, best of 40 rounds each, and a table gives each one's time
//! and its ratio to the floor: on a shared machine that table is the one
//! to read.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use objseal::cipher::Aes256Gcm;
use objseal::keys::{CustomerKey, Keyring, LocalKms};
use objseal::{Engine, ObjectBinding, OpenWith, SealMode};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;

const LEN: usize = 4096;

fn per_object(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let kms =
        Arc::new(LocalKms::open(dir.path().join("kms"), "us-east-1", "123456789012").unwrap());
    let arn = kms.create_key("bench", "admin").unwrap().arn;
    let ring = Arc::new(Keyring::in_memory("bench").unwrap());
    let engine = Engine::builder().keyring(ring).kms(kms).build();
    let customer = CustomerKey::generate().unwrap();
    let obj = ObjectBinding::new("bucket", "object").unwrap();
    let data = vec![0x5au8; LEN];

    let mut g = c.benchmark_group("seal_open_4KiB");
    g.throughput(Throughput::Bytes(LEN as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    let gcm = Aes256Gcm::new(&[7u8; 32]).unwrap();
    let bare = || {
        let mut buf = data.clone();
        let tag = gcm.seal_in_place(&[1u8; 12], b"", &mut buf).unwrap();
        gcm.open_in_place(&[1u8; 12], b"", &mut buf, &tag).unwrap();
        black_box(buf);
    };
    // The floor: the same cryptographic work on ring's primitives (2 random
    // draws, HKDF-SHA256 of the key-encryption key on seal and on open, the
    // HKDF-SHA-512 expansion of 76 bytes for body key, nonce and commitment
    // on seal and on open, 4 AES-256-GCM key set-ups, the wrap of the 32-byte
    // data key and the 4 KiB body, sealed and opened), with inputs of the
    // lengths objseal uses for SSE-S3.
    let wrapping_key = [9u8; 32];
    let body_context = obj.body_context();
    let mut wrap_info = b"objseal/v1 wrap\0\x01\x00\x05bench\x00\x00\x00\x01".to_vec();
    wrap_info.extend_from_slice(b"\x00\x06bucket\x00\x06object\x00\x00\x00\x00");
    let wrap_aad = *b"objseal/v1 wrapped key\0\0\0\0\0\0\x10\0\0\0\0\0";
    let floor = || {
        // Seal.
        let mut dek = [0u8; 32];
        getrandom::fill(&mut dek).unwrap();
        let mut salts = [0u8; 32 + 24];
        getrandom::fill(&mut salts).unwrap();
        let (kek_salt, body_salt) = salts.split_at(32);
        let kek = ring_kek(&wrapping_key, kek_salt, &wrap_info);
        let mut wrapped = dek;
        let wtag = kek
            .seal_in_place_separate_tag(zero_nonce(), Aad::from(&wrap_aad), &mut wrapped)
            .unwrap();
        let (body_key, nonce, commitment) = ring_body_key(&dek, body_salt, &body_context);
        let mut buf = data.clone();
        let btag = body_key
            .seal_in_place_separate_tag(nonce, Aad::empty(), &mut buf)
            .unwrap();
        // Open.
        let kek = ring_kek(&wrapping_key, kek_salt, &wrap_info);
        let mut unwrapped = wrapped;
        kek.open_in_place_separate_tag(
            zero_nonce(),
            Aad::from(&wrap_aad),
            wtag,
            &mut unwrapped,
            0..,
        )
        .unwrap();
        let (body_key, nonce, check) = ring_body_key(&unwrapped, body_salt, &body_context);
        assert_eq!(check, commitment);
        body_key
            .open_in_place_separate_tag(nonce, Aad::empty(), btag, &mut buf, 0..)
            .unwrap();
        black_box(buf);
    };
    let object = |mode: SealMode<'_>, with: OpenWith<'_>| {
        let sealed = engine.seal(&mode, &obj, &data).unwrap();
        black_box(engine.open(with, &obj, &sealed).unwrap());
    };
    let s3 = || object(SealMode::S3, OpenWith::Managed);
    let kms = || object(SealMode::kms(&arn), OpenWith::Managed);
    let bucket_key = || object(SealMode::kms(&arn).with_bucket_key(true), OpenWith::Managed);
    let sse_c = || object(SealMode::C(&customer), OpenWith::Customer(&customer));
    let contenders: [(&str, &dyn Fn()); 6] = [
        ("bare_aes256gcm", &bare),
        ("ring_floor", &floor),
        ("sse_s3", &s3),
        ("sse_kms_localkms", &kms),
        ("sse_kms_bucket_key", &bucket_key),
        ("sse_c", &sse_c),
    ];
    for (name, f) in contenders {
        g.bench_function(name, |b| b.iter(f));
    }
    g.finish();
    interleaved(&contenders);
}

/// The contenders again, interleaved: rounds of a batch of each in turn,
/// keeping each one's fastest batch, so that load from other processes on a
/// shared machine (which inflates criterion's means) hits every contender
/// alike; printed with the ratio to the ring floor. LocalKms (a KMS call,
/// with its file-backed audit, per object) is left out: it is
/// milliseconds, not a matter of key derivation.
fn interleaved(contenders: &[(&str, &dyn Fn())]) {
    const ROUNDS: usize = 40;
    const BATCH: u32 = 200;
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filter.is_empty() {
        return;
    }
    let timed: Vec<_> = contenders
        .iter()
        .filter(|(name, _)| *name != "sse_kms_localkms")
        .collect();
    let mut best = vec![f64::INFINITY; timed.len()];
    for _ in 0..ROUNDS {
        for ((_, f), best) in timed.iter().zip(&mut best) {
            let t = std::time::Instant::now();
            for _ in 0..BATCH {
                f();
            }
            *best = best.min(t.elapsed().as_secs_f64() * 1e9 / f64::from(BATCH));
        }
    }
    let floor = best[1];
    println!(
        "\nper object, seal + open of 4 KiB, interleaved (best of {ROUNDS} rounds of {BATCH}):"
    );
    for ((name, _), ns) in timed.iter().zip(&best) {
        println!(
            "  {name:<20} {:>7.2} µs  {:>5.2}× ring_floor",
            ns / 1000.0,
            ns / floor
        );
    }
}

/// HKDF output lengths for ring.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn zero_nonce() -> Nonce {
    Nonce::assume_unique_for_key([0u8; 12])
}

/// KEK = HKDF-SHA256(wrapping key, salt, info), keyed for AES-256-GCM.
fn ring_kek(wrapping_key: &[u8; 32], salt: &[u8], info: &[u8]) -> LessSafeKey {
    let mut kek = [0u8; 32];
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(wrapping_key)
        .expand(&[info], Len(32))
        .unwrap()
        .fill(&mut kek)
        .unwrap();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &kek).unwrap())
}

/// HKDF-Expand-SHA-512(DEK, C2SP info, 76): body key, base nonce, commitment.
fn ring_body_key(dek: &[u8; 32], salt: &[u8], context: &[u8]) -> (LessSafeKey, Nonce, [u8; 32]) {
    let mut okm = [0u8; 76];
    hkdf::Prk::new_less_safe(hkdf::HKDF_SHA512, dek)
        .expand(
            &[
                b"c2sp.org/chunked-encryption@v1+",
                b"AEAD_AES_256_GCM",
                &[0],
                salt,
                context,
            ],
            Len(76),
        )
        .unwrap()
        .fill(&mut okm)
        .unwrap();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &okm[..32]).unwrap());
    let nonce = Nonce::try_assume_unique_for_key(&okm[32..44]).unwrap();
    (key, nonce, okm[44..].try_into().unwrap())
}

criterion_group!(benches, per_object);
criterion_main!(benches);
