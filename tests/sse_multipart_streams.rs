//! Multipart objects streamed end to end: parts of several MiB uploaded out
//! of order, each streamed from a reader into its own file through
//! `PartWriter`, then the whole object and ranges across parts read back
//! through `MultipartObject` over a caller's `PartStore`, with every
//! buffer and the heap's peak measured (no part is ever whole in memory).
//! Also: unknown and declared part lengths, tampered and swapped parts,
//! the part-list check, the stream reader, and range readers for either
//! kind of object.
//!
//! This binary counts heap allocations (a counting global allocator), so
//! its tests run one at a time.
#![allow(unsafe_code)]

#[path = "sse/common.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use common::*;
use md5::{Digest, Md5};
use objseal::body::{self, ByteRange, HEADER_LEN, ReadAt};
use objseal::sse::*;
use objseal::{BodyError, Engine, Envelope, Error, Keyring, ObjectBinding, OpenWith, SealMode};

/// Counts the bytes allocated on the heap, and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` with the caller's arguments
// unchanged; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which
        // is `System.alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through this allocator)
        // with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract,
        // which is `System.realloc`'s.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The tests of this binary run one at a time, so the peak is one test's.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts measuring the peak; returns the baseline.
fn measure() -> usize {
    let now = LIVE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The peak since `measure` returned `base`, over `base`.
fn peak_over(base: usize) -> usize {
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

const MIB: u64 = 1 << 20;
/// No read or write of this test may ask for more at once.
const IO_LIMIT: usize = 4 << 20;

/// Byte `i` of the pseudo-random plaintext `seed`.
fn byte(seed: u64, i: u64) -> u8 {
    let mut z = (seed << 40 ^ i >> 3).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> ((i & 7) * 8)) as u8
}

/// The plaintext `seed` of `len` bytes as a reader, generated as it is read.
struct Gen {
    seed: u64,
    pos: u64,
    len: u64,
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min((self.len - self.pos) as usize);
        for (j, b) in buf[..n].iter_mut().enumerate() {
            *b = byte(self.seed, self.pos + j as u64);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// The object made of parts `(seed, len)` in order: its byte `pos`.
fn object_byte(parts: &[(u64, u64)], mut pos: u64) -> u8 {
    for &(seed, len) in parts {
        if pos < len {
            return byte(seed, pos);
        }
        pos -= len;
    }
    panic!("past the end")
}

/// Reads `r` to its end in 64 KiB reads, checking each byte against the
/// object's bytes from `start`; returns how many were read.
fn verify(r: &mut impl Read, parts: &[(u64, u64)], start: u64) -> u64 {
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = start;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            return pos - start;
        }
        for (j, b) in buf[..n].iter().enumerate() {
            assert_eq!(
                *b,
                object_byte(parts, pos + j as u64),
                "byte {}",
                pos + j as u64
            );
        }
        pos += n as u64;
    }
}

/// A file that checks the size of each write and records the largest.
struct BoundedFile {
    file: File,
    max: Arc<AtomicUsize>,
}

impl Write for BoundedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        assert!(buf.len() <= IO_LIMIT, "a write of {} bytes", buf.len());
        self.max.fetch_max(buf.len(), Ordering::Relaxed);
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Part bodies stored one file per part (`part-N`) in a directory: the
/// caller's `PartStore`. It refuses to be asked for more than `IO_LIMIT`
/// bytes at once, and records the largest read.
struct DirParts {
    dir: PathBuf,
    files: BTreeMap<u32, File>,
    max_read: AtomicUsize,
}

impl DirParts {
    fn open(dir: &Path, numbers: &[u32]) -> Self {
        let files = numbers
            .iter()
            .map(|&n| (n, File::open(part_path(dir, n)).unwrap()))
            .collect();
        DirParts {
            dir: dir.to_path_buf(),
            files,
            max_read: AtomicUsize::new(0),
        }
    }

    fn file(&self, number: u32) -> io::Result<&File> {
        self.files.get(&number).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no part {number} in {}", self.dir.display()),
            )
        })
    }
}

impl PartStore for DirParts {
    fn part_len(&self, number: u32) -> io::Result<u64> {
        Ok(self.file(number)?.metadata()?.len())
    }

    fn read_part_at(&self, number: u32, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        assert!(buf.len() <= IO_LIMIT, "asked to buffer {} bytes", buf.len());
        self.max_read.fetch_max(buf.len(), Ordering::Relaxed);
        self.file(number)?.read_at(buf, offset)
    }
}

fn part_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("part-{number}"))
}

/// Part bodies in memory, by number.
struct MemParts(BTreeMap<u32, Vec<u8>>);

impl PartStore for MemParts {
    fn part_len(&self, number: u32) -> io::Result<u64> {
        Ok(self.0.get(&number).ok_or(io::ErrorKind::NotFound)?.len() as u64)
    }
    fn read_part_at(&self, number: u32, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0
            .get(&number)
            .ok_or(io::ErrorKind::NotFound)?
            .read_at(buf, offset)
    }
}

fn obj() -> ObjectBinding {
    ObjectBinding::new("bucket", "streamed/object").unwrap()
}

/// An engine with the fixture's KMS and small batches (16 chunks).
fn small_batch_engine(fx: &Fx) -> Engine {
    Engine::builder()
        .keyring(Arc::new(Keyring::in_memory("s3-master").unwrap()))
        .kms(fx.kms.clone())
        .default_kms_key(fx.cmk.arn.clone())
        .stream_batch_chunks(16)
        .build()
}

fn md5_hex(r: &mut impl Read) -> String {
    let mut h = Md5::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match r.read(&mut buf).unwrap() {
            0 => break,
            n => h.update(&buf[..n]),
        }
    }
    let d: [u8; 16] = h.finalize().into();
    format!(
        "\"{}\"",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Issue 12: three parts of several MiB uploaded out of order, each
/// streamed from a reader into its own file, then the whole object and
/// ranges across parts read through the public reader, in every mode,
/// without any whole part in memory.
#[test]
fn three_parts_streamed_into_separate_files_and_read_back_across_parts() {
    let _serial = serial();
    let fx = fx();
    let engine = small_batch_engine(&fx);
    let key = customer(7);
    // Part sizes: not chunk-aligned, exactly chunk-aligned, one past.
    let sizes: [(u32, u64); 3] = [(1, 5 * MIB + 12_345), (2, 3 * MIB), (3, 2 * MIB + 1)];
    let smallest = sizes.iter().map(|p| p.1).min().unwrap() as usize;
    for (mode, with) in [
        (SealMode::S3, OpenWith::Managed),
        (SealMode::C(key.key()), OpenWith::Customer(key.key())),
        (SealMode::kms(&fx.cmk.arn), OpenWith::Managed),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let upload = MultipartUpload::create(&engine, &mode, &obj()).unwrap();
        let upload = MultipartUpload::from_envelope(
            Envelope::parse(&upload.envelope().encode().unwrap()).unwrap(),
        )
        .unwrap();

        // Upload: parts 3, 1, 2, each from a reader into its own file.
        let max_write = Arc::new(AtomicUsize::new(0));
        let base = measure();
        let mut records = Vec::new();
        for n in [3u32, 1, 2] {
            let len = sizes[n as usize - 1].1;
            let sealer = upload.sealer(&engine, with).unwrap();
            let file = BoundedFile {
                file: File::create(part_path(dir.path(), n)).unwrap(),
                max: max_write.clone(),
            };
            let mut w = sealer.writer(n, file).unwrap();
            let mut src = Gen {
                seed: n.into(),
                pos: 0,
                len,
            };
            io::copy(&mut src, &mut w).unwrap();
            let part = w.finish().unwrap();
            assert_eq!(part.record.number, n);
            assert_eq!(part.record.plaintext_len, len);
            assert_eq!(part.sealed_len, body::sealed_len(len).unwrap());
            let stored = part.inner.file.metadata().unwrap().len();
            assert_eq!(stored, part.sealed_len);
            records.push(part.record);
        }
        let upload_peak = peak_over(base);

        // The part ETags follow the S3 rule: the plaintext's MD5 for SSE-S3,
        // the stored bytes' MD5 otherwise.
        for r in &records {
            let len = sizes[r.number as usize - 1].1;
            let want = if mode.mode() == objseal::Mode::SseS3 {
                md5_hex(&mut Gen {
                    seed: r.number.into(),
                    pos: 0,
                    len,
                })
            } else {
                md5_hex(&mut File::open(part_path(dir.path(), r.number)).unwrap())
            };
            assert_eq!(r.etag, want, "part {}", r.number);
            let mut head = [0u8; HEADER_LEN];
            File::open(part_path(dir.path(), r.number))
                .unwrap()
                .read_exact(&mut head)
                .unwrap();
            assert_eq!(r.header, head);
        }

        let requested: Vec<CompletedPart> = (1..=3u32)
            .map(|n| CompletedPart {
                number: n,
                etag: records.iter().find(|r| r.number == n).unwrap().etag.clone(),
            })
            .collect();
        let done = upload
            .complete(&engine, with, &requested, &records)
            .unwrap();
        let etags: Vec<&str> = requested.iter().map(|p| p.etag.as_str()).collect();
        assert_eq!(done.etag, multipart_etag(&etags));
        let total: u64 = sizes.iter().map(|p| p.1).sum();
        assert_eq!(done.envelope.plaintext_len, total);
        // The envelope is kept as metadata.
        let env = Envelope::from_base64(&done.envelope.to_base64().unwrap()).unwrap();

        // Read back through the caller's store.
        let plain: Vec<(u64, u64)> = sizes.iter().map(|&(n, len)| (n.into(), len)).collect();
        let base = measure();
        let store = DirParts::open(dir.path(), &[1, 2, 3]);
        let object = MultipartObject::open(&engine, with, &obj(), &env, store).unwrap();
        assert_eq!(object.plaintext_len(), total);
        assert_eq!(
            object
                .parts()
                .iter()
                .map(|p| (p.number, p.len))
                .collect::<Vec<_>>(),
            sizes
        );
        let mut all = object.reader();
        assert_eq!(verify(&mut all, &plain, 0), total);
        // Across all three parts.
        let (p1, p2) = (sizes[0].1, sizes[1].1);
        let mut r = object.range_reader(p1 - 100..p1 + p2 + 100).unwrap();
        assert_eq!(r.range(), p1 - 100..p1 + p2 + 100);
        assert_eq!(verify(&mut r, &plain, p1 - 100), p2 + 200);
        // A suffix range over the last boundary, and an open one.
        let mut r = object
            .range_reader(ByteRange::Last(sizes[2].1 + 50))
            .unwrap();
        assert_eq!(verify(&mut r, &plain, p1 + p2 - 50), sizes[2].1 + 50);
        let mut r = object.range_reader(ByteRange::From(total - 5)).unwrap();
        assert_eq!(verify(&mut r, &plain, total - 5), 5);
        assert!(matches!(
            object.range_reader(ByteRange::From(total)).unwrap_err(),
            Error::Body(BodyError::InvalidRange { .. })
        ));
        let read_peak = peak_over(base);
        let max_read = object.store().max_read.load(Ordering::Relaxed);

        let batch = 16 * body::SEALED_CHUNK_LEN;
        eprintln!(
            "{:?}: parts of {:?} bytes; largest write {} B, largest part read {} B (batch {batch} B); heap peak over baseline: upload {} B, read {} B",
            mode.mode(),
            sizes.map(|p| p.1),
            max_write.load(Ordering::Relaxed),
            max_read,
            upload_peak,
            read_peak
        );
        assert!(max_write.load(Ordering::Relaxed) <= batch);
        assert!(max_read <= batch, "{max_read}");
        // Not one part was ever whole in memory: the heap never grew by
        // the smallest part's size, nor by 2 MiB.
        assert!(upload_peak < smallest.min(2 << 20), "{upload_peak}");
        assert!(read_peak < smallest.min(2 << 20), "{read_peak}");
    }
}

/// Uploads `parts` (number, plaintext) with `seal`, completes them in
/// number order, and returns the envelope, the part bodies and the records.
fn upload_small(
    engine: &Engine,
    mode: &SealMode<'_>,
    with: OpenWith<'_>,
    parts: &[(u32, Vec<u8>)],
) -> (Envelope, BTreeMap<u32, Vec<u8>>, Vec<UploadedPart>) {
    let up = MultipartUpload::create(engine, mode, &obj()).unwrap();
    let sealer = up.sealer(engine, with).unwrap();
    let mut bodies = BTreeMap::new();
    let mut records = Vec::new();
    for (n, pt) in parts {
        let p = sealer.seal(*n, pt).unwrap();
        bodies.insert(*n, p.body);
        records.push(p.record);
    }
    records.sort_by_key(|r| r.number);
    let asked: Vec<CompletedPart> = records
        .iter()
        .map(|r| CompletedPart {
            number: r.number,
            etag: r.etag.clone(),
        })
        .collect();
    let done = up.complete(engine, with, &asked, &records).unwrap();
    (done.envelope, bodies, records)
}

fn pt(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64).map(|i| byte(seed, i)).collect()
}

#[test]
fn part_writers_of_unknown_and_declared_lengths() {
    let _serial = serial();
    let fx = fx();
    let key = customer(3);
    for (mode, with) in [
        (SealMode::S3, OpenWith::Managed),
        (SealMode::C(key.key()), OpenWith::Customer(key.key())),
        (SealMode::kms(&fx.cmk.arn), OpenWith::Managed),
    ] {
        let up = MultipartUpload::create(&fx.engine, &mode, &obj()).unwrap();
        let sealer = up.sealer(&fx.engine, with).unwrap();
        let mut bodies = BTreeMap::new();
        let mut records = Vec::new();
        // Parts 2, 5 and 9 (gaps), one empty, written in odd pieces.
        let plain = [(9u32, pt(40_000, 9)), (2, pt(0, 2)), (5, pt(16_384, 5))];
        for (n, data) in &plain {
            let mut w = sealer.writer(*n, Vec::new()).unwrap();
            for piece in data.chunks(3_001) {
                w.write_all(piece).unwrap();
            }
            assert_eq!(w.written(), data.len() as u64);
            let part = w.finish().unwrap();
            assert_eq!(part.record.plaintext_len, data.len() as u64);
            assert_eq!(part.sealed_len, part.inner.len() as u64);
            // The same record as `seal` gives (the ETag by the same rule).
            let sealed = sealer.seal(*n, data).unwrap();
            assert_eq!(sealed.record.plaintext_len, part.record.plaintext_len);
            if mode.mode() == objseal::Mode::SseS3 {
                assert_eq!(sealed.record.etag, part.record.etag);
            } else {
                assert_eq!(part.record.etag, etag(mode.mode(), b"", &part.inner));
            }
            bodies.insert(*n, part.inner);
            records.push(part.record);
        }
        records.sort_by_key(|r| r.number);
        let asked: Vec<CompletedPart> = records
            .iter()
            .map(|r| CompletedPart {
                number: r.number,
                etag: r.etag.clone(),
            })
            .collect();
        let done = up.complete(&fx.engine, with, &asked, &records).unwrap();
        let whole = [plain[1].1.clone(), plain[2].1.clone(), plain[0].1.clone()].concat();
        let object =
            MultipartObject::open(&fx.engine, with, &obj(), &done.envelope, MemParts(bodies))
                .unwrap();
        let mut got = Vec::new();
        object.reader().read_to_end(&mut got).unwrap();
        assert!(got == whole);
        assert_eq!(
            object.open_range(16_000..17_000).unwrap(),
            &whole[16_000..17_000]
        );
        assert_eq!(object.open_range(..).unwrap(), whole);

        // A declared length: short is 400 IncompleteBody, long fails the write.
        let mut w = sealer.writer_sized(1, 10, Vec::new()).unwrap();
        w.write_all(b"12345").unwrap();
        let e = w.finish().unwrap_err();
        assert_eq!((e.code, e.status), ("IncompleteBody", 400));
        let mut w = sealer.writer_sized(1, 3, Vec::new()).unwrap();
        assert!(matches!(
            Error::from(w.write_all(b"1234").unwrap_err()),
            Error::Body(BodyError::DeclaredLength { declared: 3, .. })
        ));
        let w = sealer.writer_sized(1, 0, Vec::new()).unwrap();
        assert_eq!(w.finish().unwrap().record.plaintext_len, 0);
        // Part numbers outside 1..=10000.
        for n in [0, 10_001] {
            let e = sealer.writer(n, Vec::new()).unwrap_err();
            assert_eq!((e.code, e.status), ("InvalidArgument", 400));
        }
    }
}

#[test]
fn tampered_swapped_and_missing_parts_are_refused() {
    let _serial = serial();
    let fx = fx();
    let engine = small_batch_engine(&fx);
    let key = customer(4);
    let with = OpenWith::Customer(key.key());
    let mode = SealMode::C(key.key());
    let parts = [(1u32, pt(40_000, 1)), (2, pt(50_000, 2)), (3, pt(10, 3))];
    let whole = [parts[0].1.clone(), parts[1].1.clone(), parts[2].1.clone()].concat();
    let (env, bodies, _) = upload_small(&engine, &mode, with, &parts);
    let open = |bodies: &BTreeMap<u32, Vec<u8>>| {
        MultipartObject::open(&engine, with, &obj(), &env, MemParts(bodies.clone()))
    };

    // The part-list check, on its own, from the part headers.
    let headers: Vec<[u8; HEADER_LEN]> = bodies
        .values()
        .map(|b| b[..HEADER_LEN].try_into().unwrap())
        .collect();
    let dek = check_part_list(&engine, with, &obj(), &env, &headers).unwrap();
    let ctx = obj().with_part(2).unwrap().body_context();
    assert_eq!(body::open(&dek, &ctx, &bodies[&2]).unwrap(), parts[1].1);
    let mut swapped = headers.clone();
    swapped.swap(0, 1);
    assert!(matches!(
        check_part_list(&engine, with, &obj(), &env, &swapped).unwrap_err(),
        Error::Body(BodyError::PartListMismatch)
    ));
    assert!(matches!(
        check_part_list(&engine, with, &obj(), &env, &headers[..2]).unwrap_err(),
        Error::Body(BodyError::PartListMismatch)
    ));
    let wrong = customer(5);
    assert!(matches!(
        check_part_list(
            &engine,
            OpenWith::Customer(wrong.key()),
            &obj(),
            &env,
            &headers
        )
        .unwrap_err(),
        Error::Key(objseal::KeyError::AccessDenied)
    ));

    // A changed chunk of part 2: the object opens (the list is intact),
    // part 1 reads, and the read that reaches the chunk fails.
    let mut bad = bodies.clone();
    bad.get_mut(&2).unwrap()[HEADER_LEN + 16_400 + 7] ^= 1;
    let object = open(&bad).unwrap();
    assert_eq!(object.open_range(0..40_000).unwrap(), &whole[..40_000]);
    let mut r = object.reader();
    let mut sink = Vec::new();
    let e = r.read_to_end(&mut sink).unwrap_err();
    assert!(matches!(
        Error::from(e),
        Error::Body(BodyError::ChunkAuthentication { index: 1 })
    ));
    assert!(sink.len() < 40_000 + 16_384, "nothing past the bad chunk");
    assert!(r.read(&mut [0u8; 8]).is_err(), "it keeps failing");
    assert!(matches!(
        object.open_range(60_000..60_001).unwrap_err(),
        Error::Body(BodyError::ChunkAuthentication { .. })
    ));

    // A changed header, another upload of part 2, a cut part, a missing
    // part, another object: refused before any part is decrypted.
    let mut bad = bodies.clone();
    bad.get_mut(&2).unwrap()[3] ^= 1;
    assert!(matches!(
        open(&bad).unwrap_err(),
        Error::Body(BodyError::PartListMismatch)
    ));
    let up = MultipartUpload::from_envelope(Envelope {
        plaintext_len: 0,
        parts: None,
        ..env.clone()
    })
    .unwrap();
    let again = up
        .sealer(&engine, with)
        .unwrap()
        .seal(2, &parts[1].1)
        .unwrap();
    let mut bad = bodies.clone();
    bad.insert(2, again.body);
    assert!(matches!(
        open(&bad).unwrap_err(),
        Error::Body(BodyError::PartListMismatch)
    ));
    let mut bad = bodies.clone();
    bad.get_mut(&2).unwrap().pop();
    assert!(matches!(
        open(&bad).unwrap_err(),
        Error::Body(BodyError::PartListMismatch)
    ));
    let mut bad = bodies.clone();
    bad.remove(&3);
    assert!(matches!(open(&bad).unwrap_err(), Error::Io { .. }));
    let other = ObjectBinding::new("bucket", "other").unwrap();
    assert!(matches!(
        MultipartObject::open(&engine, with, &other, &env, MemParts(bodies.clone())).unwrap_err(),
        Error::Format(objseal::FormatError::BindingMismatch { .. })
    ));
    // A single-part envelope is not a multipart object.
    let (single, _) = engine.seal_detached(&mode, &obj(), b"x").unwrap();
    assert!(matches!(
        MultipartObject::open(&engine, with, &obj(), &single, MemParts(bodies.clone()))
            .unwrap_err(),
        Error::Format(objseal::FormatError::OutOfBounds { .. })
    ));
}

#[test]
fn stream_and_range_readers_of_either_kind_of_object() {
    let _serial = serial();
    let fx = fx();
    let engine = small_batch_engine(&fx);
    let parts = [(2u32, pt(70_000, 2)), (4, pt(1, 4)), (7, pt(33_000, 7))];
    let whole = [parts[0].1.clone(), parts[1].1.clone(), parts[2].1.clone()].concat();
    let (env, bodies, _) = upload_small(&engine, &SealMode::S3, OpenWith::Managed, &parts);
    let body: Vec<u8> = bodies.values().flatten().copied().collect();

    // As a plain stream of the part bodies.
    let mut r = open_object_reader(&engine, OpenWith::Managed, &obj(), &env, &body[..]).unwrap();
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert!(got == whole);
    // Parts swapped in the stream, a part replaced, trailing bytes: the
    // stream fails (at the latest when the list is checked at its end).
    let swapped: Vec<u8> = [&bodies[&7], &bodies[&4], &bodies[&2]]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    let mut trailing = body.clone();
    trailing.push(0);
    let up = MultipartUpload::from_envelope(Envelope {
        plaintext_len: 0,
        parts: None,
        ..env.clone()
    })
    .unwrap();
    let again = up
        .sealer(&engine, OpenWith::Managed)
        .unwrap()
        .seal(4, &parts[1].1)
        .unwrap();
    let replaced: Vec<u8> = [&bodies[&2], &again.body, &bodies[&7]]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    for (what, bad) in [
        ("swapped", swapped),
        ("trailing", trailing),
        ("replaced", replaced),
        ("cut", body[..body.len() - 1].to_vec()),
    ] {
        let mut r =
            open_object_reader(&engine, OpenWith::Managed, &obj(), &env, Cursor::new(bad)).unwrap();
        assert!(r.read_to_end(&mut Vec::new()).is_err(), "{what}");
    }

    // By position, multipart and single-part, at an offset.
    let mut stored = vec![0u8; 999];
    stored.extend_from_slice(&body);
    let n = body.len() as u64;
    for range in [
        ByteRange::from(69_990..70_011),
        ByteRange::Last(33_002),
        ByteRange::From(0),
        ByteRange::from(0..1),
    ] {
        let mut r = open_object_range_reader(
            &engine,
            OpenWith::Managed,
            &obj(),
            &env,
            &stored,
            999,
            n,
            range,
        )
        .unwrap();
        assert!(matches!(r, ObjectRangeReader::Multipart(_)));
        let want = range.satisfiable(whole.len() as u64).unwrap();
        assert_eq!(r.range(), want);
        assert_eq!(r.object_len(), whole.len() as u64);
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, &whole[want.start as usize..want.end as usize]);
    }
    let (single_env, single) = engine.seal_detached(&SealMode::S3, &obj(), &whole).unwrap();
    let mut r = open_object_range_reader(
        &engine,
        OpenWith::Managed,
        &obj(),
        &single_env,
        &single,
        0,
        single.len() as u64,
        ByteRange::Last(5),
    )
    .unwrap();
    assert!(matches!(r, ObjectRangeReader::Single(_)));
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert_eq!(got, &whole[whole.len() - 5..]);
    // PartsAt refuses bodies that do not add up.
    assert!(matches!(
        PartsAt::new(&stored, 999, n - 1, &env).unwrap_err(),
        Error::Body(BodyError::PartListMismatch)
    ));
}
