//! Per-object cost of seal + open of a 4 KiB object in each SSE mode
//! (SSE-S3, SSE-KMS with LocalKms, SSE-KMS with Bucket Keys, SSE-C) against
//! the bare AES-256-GCM seal + open of 4 KiB.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use objseal::cipher::Aes256Gcm;
use objseal::keys::{CustomerKey, Keyring, LocalKms};
use objseal::{Engine, ObjectBinding, OpenWith, SealMode};

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
    g.bench_function("bare_aes256gcm", |b| {
        b.iter(|| {
            let mut buf = data.clone();
            let tag = gcm.seal_in_place(&[1u8; 12], b"", &mut buf).unwrap();
            gcm.open_in_place(&[1u8; 12], b"", &mut buf, &tag).unwrap();
            black_box(buf)
        })
    });
    let modes = [
        ("sse_s3", SealMode::S3, OpenWith::Managed),
        ("sse_kms_localkms", SealMode::kms(&arn), OpenWith::Managed),
        (
            "sse_kms_bucket_key",
            SealMode::kms(&arn).with_bucket_key(true),
            OpenWith::Managed,
        ),
        (
            "sse_c",
            SealMode::C(&customer),
            OpenWith::Customer(&customer),
        ),
    ];
    for (name, mode, with) in &modes {
        g.bench_function(*name, |b| {
            b.iter(|| {
                let sealed = engine.seal(mode, &obj, &data).unwrap();
                black_box(engine.open(*with, &obj, &sealed).unwrap())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, per_object);
criterion_main!(benches);
