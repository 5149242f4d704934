//! Body benchmarks: whole-body seal and open at 64 MiB and 1 GiB on 1 and 2
//! rayon threads, range reads from a 1 GiB body, file-to-file seal against
//! `std::fs::copy` of the same file, and the per-chunk overhead (body
//! `seal_into` of 1 MiB into a reused buffer on one thread against one 1 MiB
//! `Aes256Gcm` call in place and after a copy of the same memory traffic, in
//! the same group), and the parallel seal of 256 MiB
//! against `copy_from_slice` of the same bytes.
//!
//! `cargo bench --bench body`; `-- --test` for a one-pass smoke run.

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use objseal::body::{self, ByteRange, DataKey};
use objseal::cipher::Aes256Gcm;

const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;
const CTX: &[u8] = b"bench";

fn key() -> DataKey {
    DataKey::from_bytes([1; 32])
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn config<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g
}

fn whole_body(c: &mut Criterion) {
    for size in [64 * MIB, GIB] {
        // Made on first use, so a filtered run skips what it does not need.
        let pt = OnceCell::new();
        let pt = || pt.get_or_init(|| vec![0x5a_u8; size]);
        let sealed = OnceCell::new();
        let sealed = || sealed.get_or_init(|| body::seal(&key(), CTX, pt()).unwrap());
        let label = if size == GIB { "1GiB" } else { "64MiB" };
        let mut g = config(c, "body_seal");
        g.throughput(Throughput::Bytes(size as u64));
        for threads in [1, 2] {
            let p = pool(threads);
            g.bench_function(BenchmarkId::new(label, format!("{threads}t")), |b| {
                let pt = pt();
                b.iter(|| p.install(|| black_box(body::seal(&key(), CTX, pt).unwrap())))
            });
        }
        g.finish();
        let mut g = config(c, "body_open");
        g.throughput(Throughput::Bytes(size as u64));
        for threads in [1, 2] {
            let p = pool(threads);
            g.bench_function(BenchmarkId::new(label, format!("{threads}t")), |b| {
                let sealed = sealed();
                b.iter(|| p.install(|| black_box(body::open(&key(), CTX, sealed).unwrap())))
            });
        }
        g.finish();
    }
}

fn ranges(c: &mut Criterion) {
    let sealed = OnceCell::new();
    let mut g = config(c, "body_range_from_1GiB");
    for (name, len) in [("1B", 1u64), ("1MiB", MIB as u64)] {
        g.throughput(Throughput::Bytes(len));
        let start = (GIB / 2 + 12_345) as u64;
        g.bench_function(name, |b| {
            let sealed = sealed.get_or_init(|| body::seal(&key(), CTX, &vec![3u8; GIB]).unwrap());
            b.iter(|| {
                black_box(
                    body::open_range(
                        &key(),
                        CTX,
                        sealed,
                        ByteRange::Bounded {
                            start,
                            end: start + len,
                        },
                    )
                    .unwrap(),
                )
            })
        });
    }
    g.finish();
}

fn per_chunk_overhead(c: &mut Criterion) {
    let mut g = config(c, "per_chunk_overhead_1MiB");
    g.throughput(Throughput::Bytes(MIB as u64));
    let pt = vec![7u8; MIB];
    let k = key();
    let mut sealed = vec![0u8; body::sealed_len(MIB as u64).unwrap() as usize];
    // A body of one 1 MiB group is sealed on the calling thread (no pool
    // hand-off, whose wake-up would cost more than the chunks' own work).
    g.bench_function("body_seal_into_1t", |b| {
        b.iter(|| body::seal_into(&k, CTX, &pt, black_box(&mut sealed)).unwrap())
    });
    let gcm = Aes256Gcm::new(&[1; 32]).unwrap();
    let mut buf = pt.clone();
    g.bench_function("aes256gcm_single_call", |b| {
        b.iter(|| black_box(gcm.seal_in_place(&[0; 12], b"", &mut buf).unwrap()))
    });
    // The same call with the memory traffic of `seal_into` (read the
    // plaintext from one buffer, write the output to another: 2 MiB, more
    // than a core's L2 on some CPUs), so that the two differ only by the
    // per-chunk work.
    g.bench_function("aes256gcm_copy_then_seal", |b| {
        b.iter(|| {
            buf.copy_from_slice(black_box(&pt));
            black_box(gcm.seal_in_place(&[0; 12], b"", &mut buf).unwrap())
        })
    });
    g.finish();
}

/// The whole-object parallel seal against a plain memory copy of the same
/// 256 MiB, both into a buffer reused across iterations: sealing is meant
/// to run at memory speed.
fn versus_memcpy(c: &mut Criterion) {
    let size = 256 * MIB;
    let pt = OnceCell::new();
    let pt = || pt.get_or_init(|| vec![0x3c_u8; size]);
    let mut sealed = Vec::new();
    let mut copy = Vec::new();
    let k = key();
    let mut g = config(c, "seal_vs_memcpy_256MiB");
    g.throughput(Throughput::Bytes(size as u64));
    for threads in [1, 2] {
        let p = pool(threads);
        g.bench_function(
            BenchmarkId::new("body_seal_into", format!("{threads}t")),
            |b| {
                let pt = pt();
                sealed.resize(body::sealed_len(size as u64).unwrap() as usize, 0);
                b.iter(|| {
                    p.install(|| body::seal_into(&k, CTX, pt, black_box(&mut sealed)).unwrap())
                })
            },
        );
    }
    g.bench_function("copy_from_slice", |b| {
        let pt = pt();
        copy.resize(size, 0);
        b.iter(|| black_box(&mut copy[..]).copy_from_slice(black_box(pt)))
    });
    g.finish();
}

fn files(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("plain");
    let written = OnceCell::new();
    let write = || written.get_or_init(|| std::fs::write(&src, vec![9u8; GIB]).unwrap());
    let (dst, copy) = (dir.path().join("sealed"), dir.path().join("copy"));
    let mut g = config(c, "file_1GiB");
    g.throughput(Throughput::Bytes(GIB as u64));
    g.bench_function("seal_file", |b| {
        write();
        b.iter(|| body::seal_file(&key(), CTX, &src, &dst).unwrap())
    });
    g.bench_function("fs_copy", |b| {
        write();
        b.iter(|| std::fs::copy(&src, &copy).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    per_chunk_overhead,
    versus_memcpy,
    whole_body,
    ranges,
    files
);
criterion_main!(benches);
