//! The engine's streams beyond whole objects: the detached writer and
//! reader (envelope apart, known and unknown length), range readers over
//! positioned sources with a base offset (files, buffers, `Read + Seek`),
//! suffix ranges on objects of unknown length, tampering, the batch
//! setting bounding every buffer, and `Send + 'static` readers and writers.

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use objseal::body::{self, ByteRange, RangeReader, ReadAt, SeekAt};
use objseal::{
    BodyError, CustomerKey, Engine, Envelope, Error, Keyring, ObjectBinding, OpenWith, SealMode,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn engine(batch: Option<usize>) -> Engine {
    let b = Engine::builder().keyring(Arc::new(Keyring::in_memory("k").unwrap()));
    match batch {
        Some(n) => b.stream_batch_chunks(n),
        None => b,
    }
    .build()
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

const LENS: [usize; 7] = [0, 1, 16_383, 16_384, 16_385, 50_000, 200_000];

/// Seals `pt` with the detached writer, in pieces of `piece` bytes.
fn seal_detached(
    engine: &Engine,
    mode: &SealMode<'_>,
    obj: &ObjectBinding,
    pt: &[u8],
    known: bool,
    piece: usize,
) -> (Envelope, Vec<u8>) {
    let len = known.then_some(pt.len() as u64);
    let (env, mut w) = engine
        .seal_writer_detached(mode, obj, len, Vec::new())
        .unwrap();
    assert_eq!(w.envelope(), &env);
    for p in pt.chunks(piece.max(1)) {
        w.write_all(p).unwrap();
    }
    assert_eq!(w.written(), pt.len() as u64);
    (env, w.finish().unwrap())
}

#[test]
fn detached_writer_and_reader_round_trip() {
    let key = CustomerKey::generate().unwrap();
    for batch in [None, Some(1), Some(3)] {
        let engine = engine(batch);
        for (mode, with) in [
            (SealMode::S3, OpenWith::Managed),
            (SealMode::C(&key), OpenWith::Customer(&key)),
        ] {
            for len in LENS {
                for known in [true, false] {
                    let obj = ObjectBinding::new("b", format!("{len}-{known}")).unwrap();
                    let pt = data(len, len as u8);
                    let (env, body) = seal_detached(&engine, &mode, &obj, &pt, known, 7_777);
                    assert_eq!(env.length_from_body, !known);
                    assert_eq!(env.plaintext_len, if known { len as u64 } else { 0 });
                    assert_eq!(body.len() as u64, body::sealed_len(len as u64).unwrap());
                    // Kept as metadata and read back.
                    let env = Envelope::from_base64(&env.to_base64().unwrap()).unwrap();
                    // The streaming reader, in odd-sized reads.
                    let mut r = engine
                        .open_reader_detached(with, &obj, &env, &body[..])
                        .unwrap();
                    let mut out = Vec::new();
                    let mut buf = vec![0u8; 1_000];
                    loop {
                        let n = r.read(&mut buf).unwrap();
                        if n == 0 {
                            break;
                        }
                        out.extend_from_slice(&buf[..n]);
                    }
                    assert_eq!(out, pt, "{len} {known}");
                    assert_eq!(r.envelope().plaintext_len, len as u64);
                    // The slice and range openers agree.
                    assert_eq!(engine.open_detached(with, &obj, &env, &body).unwrap(), pt);
                    let mut rr = engine
                        .open_range_reader_detached(
                            with,
                            &obj,
                            &env,
                            &body,
                            0,
                            body.len() as u64,
                            ..,
                        )
                        .unwrap();
                    assert_eq!(rr.object_len(), len as u64);
                    let mut all = Vec::new();
                    rr.read_to_end(&mut all).unwrap();
                    assert_eq!(all, pt);
                }
            }
        }
    }
}

#[test]
fn detached_writer_checks_the_declared_length_and_the_reader_the_body() {
    let engine = engine(Some(2));
    let obj = ObjectBinding::new("b", "k").unwrap();
    // Short: finish fails; long: the write fails at once.
    let (_, mut w) = engine
        .seal_writer_detached(&SealMode::S3, &obj, Some(10), Vec::new())
        .unwrap();
    w.write_all(b"12345").unwrap();
    assert!(matches!(
        w.finish().unwrap_err(),
        Error::Body(BodyError::DeclaredLength {
            declared: 10,
            received: 5
        })
    ));
    let (_, mut w) = engine
        .seal_writer_detached(&SealMode::S3, &obj, Some(3), Vec::new())
        .unwrap();
    let e = w.write_all(b"1234").unwrap_err();
    assert!(matches!(
        Error::from(e),
        Error::Body(BodyError::DeclaredLength { declared: 3, .. })
    ));

    // A body cut short fails the reader at the end; a changed chunk fails.
    let pt = data(70_000, 9);
    for known in [true, false] {
        let (env, body) = seal_detached(&engine, &SealMode::S3, &obj, &pt, known, 4_096);
        let cut = &body[..body.len() - 16_400];
        let mut r = engine
            .open_reader_detached(OpenWith::Managed, &obj, &env, cut)
            .unwrap();
        assert!(r.read_to_end(&mut Vec::new()).is_err(), "{known}");
        let mut bad = body.clone();
        bad[60_000] ^= 1;
        let mut r = engine
            .open_reader_detached(OpenWith::Managed, &obj, &env, &bad[..])
            .unwrap();
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(matches!(
            Error::from(e),
            Error::Body(BodyError::ChunkAuthentication { .. })
        ));
        // Another object's envelope: refused before anything is read.
        let other = ObjectBinding::new("b", "other").unwrap();
        assert!(
            engine
                .open_reader_detached(OpenWith::Managed, &other, &env, &body[..])
                .is_err()
        );
    }
}

/// Reads all of `r` in reads of `step` bytes.
fn drain(r: &mut impl Read, step: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; step];
    loop {
        match r.read(&mut buf)? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// What `range` gives of `pt`, or None when it is not satisfiable.
fn expected(pt: &[u8], range: ByteRange) -> Option<&[u8]> {
    let r = range.satisfiable(pt.len() as u64).ok()?;
    Some(&pt[r.start as usize..r.end as usize])
}

fn ranges(len: u64, rng: &mut StdRng) -> Vec<ByteRange> {
    let mut out = vec![
        ByteRange::Last(1),
        ByteRange::Last(16_385),
        ByteRange::Last(u64::MAX),
        ByteRange::Last(0),
        ByteRange::From(0),
        ByteRange::From(len.saturating_sub(1)),
        ByteRange::From(len),
        (0..len).into(),
        (0..len + 100).into(),
        (len..len).into(),
        (len + 1..len + 2).into(),
    ];
    for _ in 0..8 {
        let a = rng.random_range(0..=len);
        let b = rng.random_range(a..=len + 20_000);
        out.push((a..b).into());
        out.push(ByteRange::Last(rng.random_range(1..=len + 10)));
        out.push(ByteRange::From(rng.random_range(0..=len + 1)));
    }
    out
}

/// Checks every range of the object in `source` (`base..base + len`, envelope
/// first) against `pt`.
fn check_ranges<S: ReadAt + Clone>(
    engine: &Engine,
    obj: &ObjectBinding,
    source: S,
    base: u64,
    len: u64,
    pt: &[u8],
    rng: &mut StdRng,
) {
    for range in ranges(pt.len() as u64, rng) {
        let got =
            engine.open_range_reader(OpenWith::Managed, obj, source.clone(), base, len, range);
        match (got, expected(pt, range)) {
            (Ok((env, mut r)), Some(want)) => {
                assert_eq!(env.binding, *obj);
                assert_eq!(r.object_len(), pt.len() as u64);
                let shown = r.range();
                assert_eq!(&pt[shown.start as usize..shown.end as usize], want);
                assert_eq!(r.remaining(), want.len() as u64);
                let step = rng.random_range(1..40_000);
                assert_eq!(drain(&mut r, step).unwrap(), want, "{range:?}");
                // The slice opener gives the same bytes.
                let mut all = vec![0u8; len as usize];
                source.read_exact_at(&mut all, base).unwrap();
                assert_eq!(
                    engine
                        .open_range(OpenWith::Managed, obj, &all, range)
                        .unwrap(),
                    want
                );
            }
            (Err(Error::Body(BodyError::InvalidRange { .. })), None) => {}
            (got, want) => panic!("{range:?}: {:?} vs {want:?}", got.map(|_| ())),
        }
    }
}

#[test]
fn range_readers_over_files_buffers_and_seekable_readers_at_an_offset() {
    let mut rng = StdRng::seed_from_u64(12);
    let dir = tempfile::tempdir().unwrap();
    for batch in [Some(1), Some(5), None] {
        let engine = engine(batch);
        for len in [0usize, 5, 16_384, 16_400, 100_000] {
            for known in [true, false] {
                let obj = ObjectBinding::new("b", format!("o{len}")).unwrap();
                let pt = data(len, 3);
                let stored = if known {
                    engine.seal(&SealMode::S3, &obj, &pt).unwrap()
                } else {
                    let mut w = engine
                        .seal_writer_unsized(&SealMode::S3, &obj, Vec::new())
                        .unwrap();
                    w.write_all(&pt).unwrap();
                    w.finish().unwrap()
                };
                // The object between unrelated bytes, at a non-zero offset.
                let base = 12_345u64;
                let mut blob = data(base as usize, 99);
                blob.extend_from_slice(&stored);
                blob.extend_from_slice(&[0xee; 777]);
                let n = stored.len() as u64;

                let path = dir.path().join("blob");
                std::fs::write(&path, &blob).unwrap();
                let file = Arc::new(File::open(&path).unwrap());
                check_ranges(&engine, &obj, file, base, n, &pt, &mut rng);
                check_ranges(&engine, &obj, &blob, base, n, &pt, &mut rng);
                let shared: Arc<[u8]> = blob.clone().into();
                check_ranges(&engine, &obj, shared, base, n, &pt, &mut rng);
                let seek = Arc::new(SeekAt::new(Cursor::new(blob.clone())));
                check_ranges(&engine, &obj, seek, base, n, &pt, &mut rng);

                // Detached: the envelope from metadata, the body alone.
                let (env, used) = Envelope::read_at(&blob, base, n).unwrap();
                let mut r = engine
                    .open_range_reader_detached(
                        OpenWith::Managed,
                        &obj,
                        &env,
                        File::open(&path).unwrap(),
                        base + used,
                        n - used,
                        ByteRange::Last(10),
                    )
                    .unwrap();
                assert_eq!(
                    drain(&mut r, 3).unwrap(),
                    &pt[len.saturating_sub(10)..],
                    "{len} {known}"
                );
                // The body-level reader and range function, same source.
                let dek = engine.data_key(OpenWith::Managed, &obj, &env).unwrap();
                let ctx = obj.body_context();
                let want = &pt[len / 3..len / 2];
                let range = (len as u64 / 3)..(len as u64 / 2);
                let mut r =
                    RangeReader::new(&dek, &ctx, &blob, base + used, n - used, range.clone())
                        .unwrap();
                assert_eq!(drain(&mut r, 100).unwrap(), want);
                assert_eq!(
                    body::open_range_at(&dek, &ctx, &blob, base + used, n - used, range).unwrap(),
                    want
                );
            }
        }
    }
}

#[test]
fn range_readers_refuse_damage() {
    let engine = engine(Some(2));
    let obj = ObjectBinding::new("b", "k").unwrap();
    let pt = data(100_000, 1);
    for known in [true, false] {
        let (env, body) = seal_detached(&engine, &SealMode::S3, &obj, &pt, known, 9_999);
        let n = body.len() as u64;
        let open = |body: &[u8], range: ByteRange| {
            engine
                .open_range_reader_detached(
                    OpenWith::Managed,
                    &obj,
                    &env,
                    body.to_vec(),
                    0,
                    body.len() as u64,
                    range,
                )
                .and_then(|mut r| drain(&mut r, 4_096).map_err(Error::from))
        };
        // A changed chunk: the read that reaches it fails; earlier chunks
        // were released; a range that avoids it is fine.
        let mut bad = body.clone();
        bad[56 + 3 * 16_400 + 5] ^= 1;
        let mut r = engine
            .open_range_reader_detached(OpenWith::Managed, &obj, &env, &bad[..], 0, n, ..)
            .unwrap();
        // Batches of 2 chunks: chunks 0 and 1 authenticate; 2 and 3 do not.
        let mut released = vec![0u8; 2 * 16_384];
        r.read_exact(&mut released).unwrap();
        assert_eq!(released, &pt[..2 * 16_384]);
        let e = r.read(&mut [0u8; 10]).unwrap_err();
        assert!(matches!(
            Error::from(e),
            Error::Body(BodyError::ChunkAuthentication { index: 3 })
        ));
        assert!(r.read(&mut [0u8; 10]).is_err(), "it keeps failing");
        assert!(matches!(
            open(&bad, ByteRange::From(0)).unwrap_err(),
            Error::Body(BodyError::ChunkAuthentication { index: 3 })
        ));
        assert_eq!(open(&bad, (0..40_000).into()).unwrap(), &pt[..40_000]);
        // A changed header: refused before anything is read.
        let mut bad = body.clone();
        bad[10] ^= 1;
        assert!(matches!(
            open(&bad, (0..10).into()).unwrap_err(),
            Error::Body(BodyError::CommitmentMismatch)
        ));
        // A changed final chunk fails a suffix range at creation, even when
        // the range does not read it.
        let mut bad = body.clone();
        let last = bad.len() - 3;
        bad[last] ^= 1;
        assert!(matches!(
            open(&bad, ByteRange::From(50_000)).unwrap_err(),
            Error::Body(BodyError::ChunkAuthentication { index: 6 })
        ));
        // Cut at a chunk boundary: refused whatever the range.
        let cut = &body[..56 + 6 * 16_400];
        let e = open(cut, (0..10).into()).unwrap_err();
        assert!(
            matches!(e, Error::Body(BodyError::MissingFinalChunk { .. })),
            "{e:?}"
        );
        // Cut inside a chunk: an object of unknown length takes the cut as
        // its final chunk, which does not authenticate.
        let cut = &body[..body.len() - 1_000];
        let e = open(cut, ByteRange::Last(10)).unwrap_err();
        if known {
            assert!(
                matches!(e, Error::Body(BodyError::LengthMismatch { .. })),
                "{e:?}"
            );
        } else {
            assert!(
                matches!(e, Error::Body(BodyError::ChunkAuthentication { .. })),
                "{e:?}"
            );
        }
        // A source shorter than it is said to be.
        let e = engine
            .open_range_reader_detached(OpenWith::Managed, &obj, &env, &body[..100], 0, n, 0..1)
            .and_then(|mut r| drain(&mut r, 10).map_err(Error::from))
            .unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
    }
}

/// Checks the size of every read and write it sees against a limit, and
/// records the largest.
struct Bounded<T> {
    inner: T,
    limit: usize,
    max: Arc<AtomicUsize>,
}

impl<T> Bounded<T> {
    fn saw(&self, n: usize) {
        assert!(
            n <= self.limit,
            "a buffer of {n} bytes (limit {})",
            self.limit
        );
        self.max.fetch_max(n, Ordering::Relaxed);
    }
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.saw(buf.len());
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.saw(buf.len());
        self.inner.read(buf)
    }
}

impl<S: ReadAt> ReadAt for Bounded<S> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.saw(buf.len());
        self.inner.read_at(buf, offset)
    }
}

#[test]
fn the_batch_setting_bounds_every_buffer() {
    const BATCH: usize = 4;
    let limit = BATCH * body::SEALED_CHUNK_LEN;
    let engine = engine(Some(BATCH));
    assert_eq!(engine.stream_batch_chunks(), BATCH);
    let obj = ObjectBinding::new("b", "big").unwrap();
    let pt = data(3 << 20, 5);
    let max = Arc::new(AtomicUsize::new(0));
    fn bounded<T>(inner: T, limit: usize, max: &Arc<AtomicUsize>) -> Bounded<T> {
        Bounded {
            inner,
            limit,
            max: max.clone(),
        }
    }

    let mut file = tempfile::tempfile().unwrap();
    let (env, mut w) = engine
        .seal_writer_detached(&SealMode::S3, &obj, None, bounded(&mut file, limit, &max))
        .unwrap();
    for p in pt.chunks(1 << 20) {
        w.write_all(p).unwrap();
    }
    w.finish().unwrap();
    let written = max.swap(0, Ordering::Relaxed);
    assert!(written <= limit && written >= limit / 2, "{written}");

    file.seek(SeekFrom::Start(0)).unwrap();
    let mut r = engine
        .open_reader_detached(
            OpenWith::Managed,
            &obj,
            &env,
            bounded(&mut file, limit, &max),
        )
        .unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert!(out == pt);
    drop(r);
    let read = max.swap(0, Ordering::Relaxed);
    assert!(read <= limit, "{read}");

    let n = file.metadata().unwrap().len();
    let mut r = engine
        .open_range_reader_detached(
            OpenWith::Managed,
            &obj,
            &env,
            bounded(&file, limit, &max),
            0,
            n,
            ByteRange::From(1_000_000),
        )
        .unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert!(out == pt[1_000_000..]);
    let positioned = max.load(Ordering::Relaxed);
    assert!(
        positioned <= limit && positioned >= limit / 2,
        "{positioned}"
    );
    eprintln!(
        "batch {BATCH} chunks (limit {limit} B): largest write {written} B, stream read {read} B, positioned read {positioned} B"
    );
}

#[test]
fn readers_and_writers_are_send_and_static() {
    fn send_static<T: Send + 'static>() {}
    send_static::<objseal::engine::ObjectWriter<File>>();
    send_static::<objseal::engine::BodyWriter<Vec<u8>>>();
    send_static::<objseal::engine::ObjectReader<File>>();
    send_static::<RangeReader<File>>();
    send_static::<RangeReader<Arc<[u8]>>>();
    send_static::<RangeReader<SeekAt<Cursor<Vec<u8>>>>>();
    send_static::<objseal::sse::MultipartReader>();
    send_static::<objseal::sse::MultipartReader<objseal::sse::PartsAt<Arc<[u8]>>>>();
    send_static::<objseal::sse::MultipartObject<objseal::sse::PartsAt<File>>>();
    send_static::<objseal::sse::ObjectStream<File>>();
    send_static::<objseal::sse::ObjectRangeReader<File>>();
    send_static::<objseal::sse::PartWriter<File>>();
}
