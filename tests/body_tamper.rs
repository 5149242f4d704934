//! Tamper suite for the object body and its envelope: every single-bit flip,
//! truncation at and between chunk boundaries, dropped, duplicated and
//! swapped chunks, trailing bytes, and objects moved to another name. Each
//! gives its typed error and releases no unauthenticated plaintext.

use std::io::Read;

use objseal::body::{
    self, ByteRange, CHUNK_LEN, DataKey, HEADER_LEN, OpenReader, Opener, SEALED_CHUNK_LEN,
};
use objseal::format::{Envelope, Mode, ObjectBinding, WrappedKey};
use objseal::{BodyError, Error, FormatError};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const CTX: &[u8] = b"tamper test context";

fn key() -> DataKey {
    DataKey::from_bytes([0x42; 32])
}

fn sealed(len: usize) -> (Vec<u8>, Vec<u8>) {
    let pt = Rng(len as u64 + 1).bytes(len);
    (pt.clone(), body::seal(&key(), CTX, &pt).unwrap())
}

fn body_err(e: Error) -> BodyError {
    match e {
        Error::Body(b) => b,
        other => panic!("expected a body error, got {other:?}"),
    }
}

/// Streams `body` with one chunk per batch; returns what was released and the error.
fn stream(body: &[u8]) -> (Vec<u8>, Option<BodyError>) {
    let mut r = match OpenReader::with_batch_chunks(body, &key(), CTX, 1) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(body_err(e))),
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 5000];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(body_err(e.into()))),
        }
    }
}

/// Checks a damaged body fails through the slice and stream paths, and that
/// the stream released only whole authentic chunks of the original plaintext.
fn assert_rejected(pt: &[u8], bad: &[u8], what: &str) -> BodyError {
    let e = body_err(body::open(&key(), CTX, bad).expect_err(what));
    let (released, serr) = stream(bad);
    let serr = serr.unwrap_or_else(|| panic!("{what}: stream accepted it"));
    assert!(
        released.len() % CHUNK_LEN == 0 && released.len() <= pt.len(),
        "{what}"
    );
    assert_eq!(
        &released[..],
        &pt[..released.len()],
        "{what}: released bytes not authentic"
    );
    assert_eq!(
        core::mem::discriminant(&e),
        core::mem::discriminant(&serr),
        "{what}: slice {e:?} vs stream {serr:?}"
    );
    e
}

#[test]
fn every_bit_flip_of_the_body_is_caught() {
    let (pt, good) = sealed(CHUNK_LEN + 50);
    let opener = Opener::new(&key(), CTX, &good).unwrap();
    let mut bad = good.clone();
    for byte in 0..good.len() {
        for bit in 0..8 {
            bad[byte] ^= 1 << bit;
            if byte < HEADER_LEN {
                // Salt or commitment: the commitment check fails, nothing opened.
                let e = body_err(Opener::new(&key(), CTX, &bad).unwrap_err());
                assert_eq!(e, BodyError::CommitmentMismatch, "byte {byte} bit {bit}");
            } else {
                let e = body_err(opener.open(&bad).unwrap_err());
                let chunk = ((byte - HEADER_LEN) / SEALED_CHUNK_LEN) as u64;
                assert_eq!(
                    e,
                    BodyError::ChunkAuthentication { index: chunk },
                    "byte {byte} bit {bit}"
                );
            }
            bad[byte] ^= 1 << bit;
        }
    }
    assert_eq!(opener.open(&bad).unwrap(), pt);
}

#[test]
fn bit_flips_through_every_path() {
    let (pt, good) = sealed(3 * CHUNK_LEN + 7);
    let mut rng = Rng(9);
    for _ in 0..200 {
        let mut bad = good.clone();
        let byte = rng.below(good.len() as u64) as usize;
        bad[byte] ^= 1 << rng.below(8);
        let e = assert_rejected(&pt, &bad, &format!("flip in byte {byte}"));
        if byte < HEADER_LEN {
            assert_eq!(e, BodyError::CommitmentMismatch);
        } else {
            let chunk = ((byte - HEADER_LEN) / SEALED_CHUNK_LEN) as u64;
            assert_eq!(e, BodyError::ChunkAuthentication { index: chunk });
            // A range over the damaged chunk fails; over the final chunk alone it
            // fails too unless the damage is elsewhere.
            let s = chunk * CHUNK_LEN as u64;
            let r = body::open_range(&key(), CTX, &bad, s..s + 1);
            assert!(matches!(
                r,
                Err(Error::Body(BodyError::ChunkAuthentication { .. }))
            ));
        }
    }
}

#[test]
fn truncation_at_and_between_chunk_boundaries() {
    let (pt, good) = sealed(3 * CHUNK_LEN + 100);
    let mut cuts: Vec<usize> = (0..=HEADER_LEN + 20).collect();
    for k in 1..=4 {
        let b = HEADER_LEN + k * SEALED_CHUNK_LEN;
        cuts.extend([
            b - 17,
            b - 16,
            b - 15,
            b - 1,
            b,
            b + 1,
            b + 15,
            b + 16,
            b + 17,
            b - SEALED_CHUNK_LEN / 2,
        ]);
    }
    cuts.retain(|&c| c < good.len());
    for cut in cuts {
        let bad = &good[..cut];
        let what = format!("cut at {cut}");
        let e = assert_rejected(&pt, bad, &what);
        let area = cut.saturating_sub(HEADER_LEN);
        match e {
            BodyError::TruncatedHeader { len } => {
                assert!(cut < HEADER_LEN && len == cut as u64, "{what}")
            }
            BodyError::MissingFinalChunk { chunks } => {
                assert!(cut >= HEADER_LEN && area % SEALED_CHUNK_LEN == 0, "{what}");
                assert_eq!(chunks as usize, area / SEALED_CHUNK_LEN, "{what}");
            }
            BodyError::TruncatedChunk { index, tail } => {
                assert_eq!(
                    (index as usize, tail as usize),
                    (area / SEALED_CHUNK_LEN, area % SEALED_CHUNK_LEN),
                    "{what}"
                );
                assert!(tail < 16, "{what}");
            }
            BodyError::ChunkAuthentication { index } => {
                assert_eq!(
                    index as usize,
                    area / SEALED_CHUNK_LEN,
                    "{what}: the cut chunk fails as the final one"
                )
            }
            other => panic!("{what}: {other:?}"),
        }
        // Reads relative to the end authenticate the (missing) final chunk.
        assert!(
            body::open_range(&key(), CTX, bad, ByteRange::Last(1)).is_err(),
            "{what}"
        );
    }
}

fn chunks_of(body: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let header = body[..HEADER_LEN].to_vec();
    (
        header,
        body[HEADER_LEN..]
            .chunks(SEALED_CHUNK_LEN)
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

#[test]
fn dropped_duplicated_swapped_chunks_and_trailing_bytes() {
    let (pt, good) = sealed(3 * CHUNK_LEN + 100);
    let (header, chunks) = chunks_of(&good);
    assert_eq!(chunks.len(), 4);
    let join = |order: &[usize]| -> Vec<u8> {
        let mut b = header.clone();
        for &i in order {
            b.extend_from_slice(&chunks[i]);
        }
        b
    };
    let auth = |i| BodyError::ChunkAuthentication { index: i };
    let cases: Vec<(&str, Vec<u8>, BodyError)> = vec![
        ("drop chunk 0", join(&[1, 2, 3]), auth(0)),
        ("drop chunk 1", join(&[0, 2, 3]), auth(1)),
        (
            "drop final chunk",
            join(&[0, 1, 2]),
            BodyError::MissingFinalChunk { chunks: 3 },
        ),
        ("duplicate chunk 0", join(&[0, 0, 1, 2, 3]), auth(1)),
        (
            "duplicate chunk 2 in place of 1",
            join(&[0, 2, 2, 3]),
            auth(1),
        ),
        ("swap 0 and 1", join(&[1, 0, 2, 3]), auth(0)),
        ("swap 1 and 2", join(&[0, 2, 1, 3]), auth(1)),
        ("final chunk moved first", join(&[3, 0, 1, 2]), auth(0)),
    ];
    for (what, bad, want) in cases {
        assert_eq!(assert_rejected(&pt, &bad, what), want, "{what}");
    }
    for n in [
        1usize,
        15,
        16,
        17,
        100,
        SEALED_CHUNK_LEN - 1,
        SEALED_CHUNK_LEN,
    ] {
        let mut bad = good.clone();
        bad.extend(std::iter::repeat_n(0xA5, n));
        let e = assert_rejected(&pt, &bad, &format!("{n} trailing bytes"));
        assert!(
            matches!(
                e,
                BodyError::ChunkAuthentication { index: 3 }
                    | BodyError::TruncatedChunk { .. }
                    | BodyError::MissingFinalChunk { .. }
            ),
            "{n} trailing bytes: {e:?}"
        );
    }
    // A validly sealed chunk appended after the final one.
    let other = body::seal(&key(), CTX, &pt).unwrap();
    let mut bad = good.clone();
    bad.extend_from_slice(&other[HEADER_LEN..HEADER_LEN + SEALED_CHUNK_LEN]);
    assert_eq!(assert_rejected(&pt, &bad, "extra chunk"), auth(3));
}

/// An object as the tests store it: envelope, then body.
fn store(binding: &ObjectBinding, pt: &[u8]) -> Vec<u8> {
    let env = Envelope::new(
        Mode::SseKms,
        binding.clone(),
        pt.len() as u64,
        WrappedKey::placeholder("arn:aws:kms:eu-west-1:111122223333:key/k", 2),
    );
    let mut object = env.encode().unwrap();
    object.extend(body::seal(&key(), &env.body_context(), pt).unwrap());
    object
}

/// Opens a stored object read as `expected`, as a caller of the two layers must.
fn load(expected: &ObjectBinding, object: &[u8]) -> Result<Vec<u8>, Error> {
    let (env, used) = Envelope::parse_prefix(object)?;
    env.check_binding(expected)?;
    let body = &object[used..];
    let actual = body::plaintext_len(body.len() as u64)?;
    if actual != env.plaintext_len {
        return Err(BodyError::LengthMismatch {
            expected: env.plaintext_len,
            actual,
        }
        .into());
    }
    let context = expected.body_context();
    body::open(&key(), &context, body)
}

#[test]
fn moved_objects_fail() {
    let a = ObjectBinding::new("bucket", "a.txt").unwrap();
    let b = ObjectBinding::new("bucket", "b.txt").unwrap();
    let pt = b"moved".to_vec();
    let object = store(&a, &pt);
    assert_eq!(load(&a, &object).unwrap(), pt);
    // Envelope and body moved together: the envelope names another object.
    assert!(matches!(
        load(&b, &object),
        Err(Error::Format(FormatError::BindingMismatch { .. }))
    ));
    // Envelope rewritten to name the new place: the body's commitment fails.
    let (mut env, used) = Envelope::parse_prefix(&object).unwrap();
    env.binding = b.clone();
    let mut forged = env.encode().unwrap();
    forged.extend_from_slice(&object[used..]);
    assert!(matches!(
        load(&b, &forged),
        Err(Error::Body(BodyError::CommitmentMismatch))
    ));
    // A body swapped in from another object (same key) fails too.
    let other = store(&b, &pt);
    let (_, used_b) = Envelope::parse_prefix(&other).unwrap();
    let mut mixed = object[..used].to_vec();
    mixed.extend_from_slice(&other[used_b..]);
    assert!(matches!(
        load(&a, &mixed),
        Err(Error::Body(BodyError::CommitmentMismatch))
    ));
    // Part numbers and buckets are bound as well.
    for ctx in [
        a.with_part(1).unwrap().body_context(),
        ObjectBinding::new("other-bucket", "a.txt")
            .unwrap()
            .body_context(),
    ] {
        let e = body::open(&key(), &ctx, &object[used..]).unwrap_err();
        assert!(matches!(e, Error::Body(BodyError::CommitmentMismatch)));
    }
}

#[test]
fn every_bit_flip_of_the_envelope_is_caught_or_left_to_the_key_layer() {
    let a = ObjectBinding::new("bucket", "a.txt").unwrap();
    let pt = vec![3u8; 300];
    let object = store(&a, &pt);
    let (env, used) = Envelope::parse_prefix(&object).unwrap();
    // This layer does not authenticate the mode or the wrapped-key section
    // (key id, version, KEK salt, wrapped key, details): the key layer's
    // unwrap does (tests/engine_modes.rs flips every envelope bit there).
    // Every other field is caught here.
    let mut left_to_key_layer = 0;
    for byte in 0..used {
        for bit in 0..8 {
            let mut bad = object.clone();
            bad[byte] ^= 1 << bit;
            match load(&a, &bad) {
                Ok(got) => {
                    let (bad_env, _) = Envelope::parse_prefix(&bad).unwrap();
                    assert!(
                        bad_env.binding == env.binding
                            && bad_env.plaintext_len == env.plaintext_len
                            && bad_env.parts == env.parts
                            && (bad_env.mode != env.mode || bad_env.wrapped_key != env.wrapped_key),
                        "flip of byte {byte} bit {bit} went unnoticed"
                    );
                    assert_eq!(got, pt);
                    left_to_key_layer += 1;
                }
                Err(Error::Format(_) | Error::Body(_)) => {}
                Err(other) => panic!("byte {byte}: {other:?}"),
            }
        }
    }
    assert!(left_to_key_layer > 8 * (32 + 48), "{left_to_key_layer}");
}

#[test]
fn random_ranges_equal_slices_of_a_full_open() {
    for len in [0usize, 1, CHUNK_LEN - 1, CHUNK_LEN, 5 * CHUNK_LEN + 333] {
        let (pt, sealed) = sealed(len);
        assert_eq!(body::open(&key(), CTX, &sealed).unwrap(), pt);
        let opener = Opener::new(&key(), CTX, &sealed).unwrap();
        let mut rng = Rng(len as u64 * 7 + 3);
        let n = len as u64;
        for i in 0..1500 {
            let r = match i % 3 {
                0 => {
                    let a = rng.below(n + 20);
                    let b = a + rng.below(3 * CHUNK_LEN as u64);
                    ByteRange::Bounded { start: a, end: b }
                }
                1 => ByteRange::From(rng.below(n + 2)),
                _ => ByteRange::Last(rng.below(n + 2)),
            };
            let (s, e) = match r {
                ByteRange::Bounded { start, end } => (start, end.min(n)),
                ByteRange::From(s) => (s, n),
                ByteRange::Last(k) => (n.saturating_sub(k), n),
            };
            let empty_ok =
                matches!(r, ByteRange::Bounded { start, end } if start == end && start <= n);
            match opener.open_range(&sealed, r) {
                Ok(got) => assert_eq!(got, &pt[s as usize..e as usize], "len {len} {r:?}"),
                Err(Error::Body(BodyError::InvalidRange { .. })) => {
                    assert!(s >= e && !empty_ok, "len {len} {r:?}")
                }
                Err(other) => panic!("len {len} {r:?}: {other:?}"),
            }
        }
        assert!(matches!(
            opener.open_range(&sealed, ByteRange::Bounded { start: 5, end: 4 }),
            Err(Error::Body(BodyError::InvalidRange { .. }))
        ));
    }
}

#[test]
fn streaming_round_trips_with_odd_write_sizes() {
    use std::io::Write;
    for len in [0usize, 1, CHUNK_LEN, 2 * CHUNK_LEN + 1, 9 * CHUNK_LEN + 5] {
        let pt = Rng(len as u64 + 5).bytes(len);
        for batch in [1, 3, 64] {
            let mut w =
                body::SealWriter::with_batch_chunks(Vec::new(), &key(), CTX, batch).unwrap();
            let mut rng = Rng(11);
            let mut rest = &pt[..];
            while !rest.is_empty() {
                let n = (rng.below(40_000) as usize + 1).min(rest.len());
                w.write_all(&rest[..n]).unwrap();
                rest = &rest[n..];
            }
            let sealed = w.finish().unwrap();
            assert_eq!(sealed.len() as u64, body::sealed_len(len as u64).unwrap());
            assert_eq!(
                body::open(&key(), CTX, &sealed).unwrap(),
                pt,
                "len {len} batch {batch}"
            );
            let mut back = Vec::new();
            OpenReader::with_batch_chunks(&sealed[..], &key(), CTX, batch)
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, pt);
        }
    }
}

#[test]
fn a_writer_dropped_without_finish_leaves_an_unopenable_body() {
    use std::io::Write;
    let mut out = Vec::new();
    {
        let mut w = body::SealWriter::with_batch_chunks(&mut out, &key(), CTX, 1).unwrap();
        w.write_all(&vec![1u8; 3 * CHUNK_LEN]).unwrap();
    }
    let e = body::open(&key(), CTX, &out).unwrap_err();
    // Whole sealed chunks were written, but never the final one.
    assert!(
        matches!(body_err(e), BodyError::MissingFinalChunk { chunks } if chunks >= 1),
        "body of {} bytes",
        out.len()
    );
}

#[test]
fn an_opener_refuses_a_body_with_another_header() {
    let (pt, good) = sealed(3 * CHUNK_LEN + 5);
    let opener = Opener::new(&key(), CTX, &good).unwrap();
    assert_eq!(opener.open(&good).unwrap(), pt);
    // Same key and context, another salt: its commitment was never checked.
    let other = body::seal(&key(), CTX, &pt).unwrap();
    let mut flipped = good.clone();
    flipped[3] ^= 1;
    for bad in [&other, &flipped] {
        let e = opener.open(bad).unwrap_err();
        assert_eq!(body_err(e), BodyError::CommitmentMismatch);
        let e = opener.open_range(bad, 0..10).unwrap_err();
        assert_eq!(body_err(e), BodyError::CommitmentMismatch);
        let mut out = vec![0u8; pt.len()];
        let e = opener.open_into(bad, &mut out).unwrap_err();
        assert_eq!(body_err(e), BodyError::CommitmentMismatch);
    }
    let e = opener.open(&good[..10]).unwrap_err();
    assert_eq!(body_err(e), BodyError::TruncatedHeader { len: 10 });
}

#[test]
fn into_buffers_and_length_checks() {
    let (pt, good) = sealed(2 * CHUNK_LEN + 9);
    let mut out = vec![0u8; good.len()];
    body::seal_into(&key(), CTX, &pt, &mut out).unwrap();
    assert_eq!(body::open(&key(), CTX, &out).unwrap(), pt);
    for wrong in [good.len() - 1, good.len() + 1, 0] {
        let mut out = vec![0u8; wrong];
        let e = body::seal_into(&key(), CTX, &pt, &mut out).unwrap_err();
        assert!(
            matches!(&e, Error::Io { path: None, source } if source.kind() == std::io::ErrorKind::InvalidInput),
            "{e}"
        );
    }
    let mut back = vec![0u8; pt.len()];
    body::open_into(&key(), CTX, &good, &mut back).unwrap();
    assert_eq!(back, pt);
    let mut short = vec![0u8; pt.len() - 1];
    let e = body::open_into(&key(), CTX, &good, &mut short).unwrap_err();
    assert_eq!(
        body_err(e),
        BodyError::LengthMismatch {
            expected: pt.len() as u64 - 1,
            actual: pt.len() as u64
        }
    );
    // A failed open zeroes the buffer.
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 1;
    let mut back = vec![0xAAu8; pt.len()];
    body::open_into(&key(), CTX, &bad, &mut back).unwrap_err();
    assert!(back.iter().all(|&b| b == 0));

    body::check_len(good.len() as u64, pt.len() as u64).unwrap();
    let e = body::check_len(good.len() as u64, pt.len() as u64 + 1).unwrap_err();
    assert_eq!(
        body_err(e),
        BodyError::LengthMismatch {
            expected: pt.len() as u64 + 1,
            actual: pt.len() as u64
        }
    );
    let e = body::check_len(HEADER_LEN as u64 + SEALED_CHUNK_LEN as u64, 0).unwrap_err();
    assert_eq!(body_err(e), BodyError::MissingFinalChunk { chunks: 1 });
}

/// S3 (and RFC 9110 §14.1.1) on an empty object: `bytes=0-` and
/// `bytes=0-0` are 416 InvalidRange, `bytes=-N` (N > 0) gives the empty
/// object; `..` (the whole object) and the empty `0..0` give no bytes.
#[test]
fn ranges_of_an_empty_object() {
    let (_, empty) = sealed(0);
    assert_eq!(body::open_range(&key(), CTX, &empty, ..).unwrap(), b"");
    assert_eq!(body::open_range(&key(), CTX, &empty, 0..0).unwrap(), b"");
    for n in [1, 100, u64::MAX] {
        let got = body::open_range(&key(), CTX, &empty, ByteRange::Last(n)).unwrap();
        assert_eq!(got, b"", "-{n}");
    }
    for r in [
        ByteRange::Bounded { start: 0, end: 1 },
        ByteRange::Bounded { start: 1, end: 1 },
        ByteRange::From(0),
        ByteRange::From(1),
        ByteRange::Last(0),
    ] {
        let e = body::open_range(&key(), CTX, &empty, r).unwrap_err();
        assert!(
            matches!(body_err(e), BodyError::InvalidRange { .. }),
            "{r:?}"
        );
    }
    // Every range still authenticates the (empty) final chunk first.
    let mut bad = empty.clone();
    *bad.last_mut().unwrap() ^= 1;
    for r in [(..).into(), ByteRange::Last(1), ByteRange::From(0)] {
        let e = body::open_range(&key(), CTX, &bad, r).unwrap_err();
        assert_eq!(
            body_err(e),
            BodyError::ChunkAuthentication { index: 0 },
            "{r:?}"
        );
    }
}

/// The same rule on a non-empty object: a range is satisfiable when it
/// starts before the end, a suffix range when it is not empty.
#[test]
fn satisfiable_ranges_follow_rfc_9110() {
    let (pt, sealed) = sealed(100);
    let open = |r: ByteRange| body::open_range(&key(), CTX, &sealed, r);
    assert_eq!(open((..).into()).unwrap(), pt);
    assert_eq!(open(ByteRange::From(99)).unwrap(), &pt[99..]);
    assert_eq!(open(ByteRange::Last(1000)).unwrap(), pt);
    assert_eq!(open((99..1000).into()).unwrap(), &pt[99..]);
    for r in [
        ByteRange::From(100),
        ByteRange::Last(0),
        (100..101).into(),
        ByteRange::Bounded { start: 5, end: 4 },
    ] {
        assert!(
            matches!(
                body_err(open(r).unwrap_err()),
                BodyError::InvalidRange { .. }
            ),
            "{r:?}"
        );
    }
}

/// A reader that returns `good` bytes of `data`, then fails.
struct FailingAfter<'a> {
    data: &'a [u8],
    good: usize,
    pos: usize,
}

impl Read for FailingAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.good {
            return Err(std::io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.good - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn a_read_ahead_io_error_surfaces_after_the_authentic_batches() {
    let (pt, good) = sealed(5 * CHUNK_LEN + 3);
    // Header and two whole chunks readable, then an I/O error.
    let reader = FailingAfter {
        data: &good,
        good: HEADER_LEN + 2 * SEALED_CHUNK_LEN + 100,
        pos: 0,
    };
    let mut r = OpenReader::with_batch_chunks(reader, &key(), CTX, 1).unwrap();
    let mut out = Vec::new();
    let e = r.read_to_end(&mut out).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::Other, "{e}");
    assert!(e.to_string().contains("disk on fire"), "{e}");
    assert!(matches!(Error::from(e), Error::Io { .. }));
    assert!(out.len() <= 2 * CHUNK_LEN);
    assert_eq!(out, &pt[..out.len()]);
    // It keeps failing.
    let mut buf = [0u8; 10];
    assert!(r.read(&mut buf).is_err());
}

#[test]
fn batch_sizes_are_clamped_not_overflowed() {
    use std::io::Write;
    for batch in [0, 1, body::MAX_BATCH_CHUNKS, usize::MAX] {
        let mut w = body::SealWriter::with_batch_chunks(Vec::new(), &key(), CTX, batch).unwrap();
        w.write_all(b"hello").unwrap();
        let sealed = w.finish().unwrap();
        assert_eq!(body::open(&key(), CTX, &sealed).unwrap(), b"hello");
        let mut out = Vec::new();
        OpenReader::with_batch_chunks(&sealed[..], &key(), CTX, batch)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"hello");
    }
}
