//! Objects sealed with their length unknown until the end (a chunked upload
//! with no length): the envelope carries flag `01` and no length, the
//! body's size gives it. Every way of opening works as for other objects,
//! suffix ranges included; the flag cannot be flipped unnoticed; a body cut
//! at a chunk boundary is refused.

use std::io::{Read, Write};
use std::sync::Arc;

use objseal::body::ByteRange;
use objseal::format::FLAG_LENGTH_FROM_BODY;
use objseal::{Engine, Envelope, Error, Keyring, ObjectBinding, OpenWith, SealMode};

fn engine() -> Engine {
    Engine::builder()
        .keyring(Arc::new(Keyring::in_memory("k").unwrap()))
        .build()
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

fn seal_unsized(engine: &Engine, obj: &ObjectBinding, plaintext: &[u8], piece: usize) -> Vec<u8> {
    let mut w = engine
        .seal_writer_unsized(&SealMode::S3, obj, Vec::new())
        .unwrap();
    for p in plaintext.chunks(piece.max(1)) {
        w.write_all(p).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn every_open_works_at_every_chunk_edge() {
    let engine = engine();
    let dir = tempfile::tempdir().unwrap();
    for len in [0usize, 1, 16_383, 16_384, 16_385, 32_768, 100_000] {
        let obj = ObjectBinding::new("b", format!("len-{len}")).unwrap();
        let pt = data(len);
        let stored = seal_unsized(&engine, &obj, &pt, 7_000);
        let (env, used) = Envelope::parse_prefix(&stored).unwrap();
        assert!(env.length_from_body, "{len}");
        assert_eq!(env.plaintext_len, 0, "not stored in the envelope");
        assert_eq!(stored[7] & FLAG_LENGTH_FROM_BODY, FLAG_LENGTH_FROM_BODY);
        assert_eq!(
            env.with_body_len((stored.len() - used) as u64)
                .unwrap()
                .plaintext_len,
            len as u64
        );
        // Slices, detached, stream, file.
        assert_eq!(engine.open(OpenWith::Managed, &obj, &stored).unwrap(), pt);
        assert_eq!(
            engine
                .open_detached(OpenWith::Managed, &obj, &env, &stored[used..])
                .unwrap(),
            pt
        );
        let mut r = engine
            .open_reader(OpenWith::Managed, &obj, &stored[..])
            .unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, pt);
        assert_eq!(r.envelope().plaintext_len, len as u64);
        let file = dir.path().join(format!("o{len}"));
        std::fs::write(&file, &stored).unwrap();
        // Ranges: bounded, open-ended, suffix (which needs the length).
        let ranges = [
            ByteRange::Last(10),
            ByteRange::Last(20_000),
            ByteRange::From(len.saturating_sub(5) as u64),
            ByteRange::from(0..3),
        ];
        for range in ranges {
            let want = range
                .satisfiable(len as u64)
                .map(|r| pt[r.start as usize..r.end as usize].to_vec());
            let got = engine.open_range(OpenWith::Managed, &obj, &stored, range);
            let from_file = engine.open_file_range(OpenWith::Managed, &obj, &file, range);
            match want {
                Ok(w) => {
                    assert_eq!(got.unwrap(), w, "{len} {range:?}");
                    assert_eq!(from_file.unwrap(), w, "{len} {range:?}");
                }
                Err(_) => {
                    assert!(got.is_err() && from_file.is_err(), "{len} {range:?}");
                }
            }
        }
    }
}

#[test]
fn the_flag_is_bound_by_the_key_wrapping() {
    let engine = engine();
    let obj = ObjectBinding::new("b", "k").unwrap();
    let pt = data(40_000);
    let unsized_obj = seal_unsized(&engine, &obj, &pt, 4096);
    // Clearing the flag (and writing the true length) does not make a
    // known-length object of it: the wrapped key does not open.
    let (mut env, used) = Envelope::parse_prefix(&unsized_obj).unwrap();
    env.length_from_body = false;
    env.plaintext_len = pt.len() as u64;
    let mut forged = env.encode().unwrap();
    forged.extend_from_slice(&unsized_obj[used..]);
    assert!(matches!(
        engine.open(OpenWith::Managed, &obj, &forged),
        Err(Error::Key(objseal::KeyError::UnwrapFailed { .. }))
    ));
    // Setting it on a known-length object fails the same way.
    let sized = engine.seal(&SealMode::S3, &obj, &pt).unwrap();
    let (mut env, used) = Envelope::parse_prefix(&sized).unwrap();
    env.length_from_body = true;
    let mut forged = env.encode().unwrap();
    forged.extend_from_slice(&sized[used..]);
    assert!(matches!(
        engine.open(OpenWith::Managed, &obj, &forged),
        Err(Error::Key(objseal::KeyError::UnwrapFailed { .. }))
    ));
    // A stored length beside the flag, or an unknown flag bit, is refused
    // by the parser.
    let mut bad = unsized_obj.clone();
    bad[15] = 1;
    assert!(Envelope::parse_prefix(&bad).is_err());
    let mut bad = unsized_obj.clone();
    bad[7] |= 0x02;
    assert!(Envelope::parse_prefix(&bad).is_err());
}

#[test]
fn a_body_cut_at_a_chunk_boundary_is_refused() {
    let engine = engine();
    let obj = ObjectBinding::new("b", "k").unwrap();
    let pt = data(3 * 16_384 + 100);
    let stored = seal_unsized(&engine, &obj, &pt, 50_000);
    let (_, used) = Envelope::parse_prefix(&stored).unwrap();
    // Drop the final (short) chunk: what is left is a whole number of full
    // chunks, a possible-looking length, but no final chunk.
    let cut = &stored[..used + 56 + 3 * 16_400];
    assert!(engine.open(OpenWith::Managed, &obj, cut).is_err());
    let mut r = engine.open_reader(OpenWith::Managed, &obj, cut).unwrap();
    let mut out = Vec::new();
    assert!(r.read_to_end(&mut out).is_err());
    // Any other cut is refused too.
    for n in [1, 15, 16, 17, 16_399, 16_400, 16_401] {
        let cut = &stored[..stored.len() - n];
        assert!(engine.open(OpenWith::Managed, &obj, cut).is_err(), "{n}");
    }
}

#[test]
fn rewrap_keeps_an_unsized_object_unsized() {
    let engine = engine();
    let obj = ObjectBinding::new("b", "k").unwrap();
    let pt = data(20_000);
    let stored = seal_unsized(&engine, &obj, &pt, 1000);
    let moved = engine
        .rewrap_object(OpenWith::Managed, &obj, &stored, &SealMode::S3)
        .unwrap();
    let (env, _) = Envelope::parse_prefix(&moved).unwrap();
    assert!(env.length_from_body);
    assert_eq!(engine.open(OpenWith::Managed, &obj, &moved).unwrap(), pt);
}

#[test]
fn keyring_rewrap_keeps_an_unsized_object_openable() {
    let ring = Arc::new(Keyring::in_memory("k").unwrap());
    let engine = Engine::builder().keyring(ring.clone()).build();
    let obj = ObjectBinding::new("b", "k").unwrap();
    let pt = data(30_000);
    let stored = seal_unsized(&engine, &obj, &pt, 3000);
    let (env, used) = Envelope::parse_prefix(&stored).unwrap();
    ring.rotate().unwrap();
    let new = ring.rewrap(&env).unwrap();
    assert!(new.length_from_body);
    assert_eq!(new.wrapped_key.key_version, 2);
    let mut moved = new.encode().unwrap();
    moved.extend_from_slice(&stored[used..]);
    assert_eq!(engine.open(OpenWith::Managed, &obj, &moved).unwrap(), pt);
}

#[test]
fn ranges_of_an_unsized_object_cut_mid_chunk_are_refused() {
    // The length of such an object comes from its body's size, which only
    // the final chunk authenticates: a range far from the end must still
    // fail on a body cut in the middle of a chunk.
    let engine = engine();
    let dir = tempfile::tempdir().unwrap();
    let obj = ObjectBinding::new("b", "k").unwrap();
    let pt = data(5 * 16_384 + 100);
    let stored = seal_unsized(&engine, &obj, &pt, 10_000);
    let (env, used) = Envelope::parse_prefix(&stored).unwrap();
    let cut = &stored[..used + 56 + 2 * 16_400 + 5_000];
    assert!(
        engine
            .open_range(OpenWith::Managed, &obj, cut, 0..100)
            .is_err()
    );
    let file = dir.path().join("cut");
    std::fs::write(&file, cut).unwrap();
    assert!(
        engine
            .open_file_range(OpenWith::Managed, &obj, &file, 0..100)
            .is_err()
    );
    let body = cut[used..].to_vec();
    let r = engine.open_range_reader_detached(
        OpenWith::Managed,
        &obj,
        &env,
        body.clone(),
        0,
        body.len() as u64,
        0..100,
    );
    let mut out = Vec::new();
    assert!(r.is_err() || r.unwrap().read_to_end(&mut out).is_err());
    // Uncut, the same range opens.
    assert_eq!(
        engine
            .open_range(OpenWith::Managed, &obj, &stored, 0..100)
            .unwrap(),
        &pt[..100]
    );
}

#[test]
fn file_to_file_open_of_an_unsized_object() {
    let engine = engine();
    let dir = tempfile::tempdir().unwrap();
    let obj = ObjectBinding::new("b", "k").unwrap();
    for len in [0usize, 16_384, 70_000] {
        let pt = data(len);
        let stored = seal_unsized(&engine, &obj, &pt, 9_000);
        let src = dir.path().join(format!("s{len}"));
        let dst = dir.path().join(format!("d{len}"));
        std::fs::write(&src, &stored).unwrap();
        for input in [
            objseal::body::FileInput::Read,
            objseal::body::FileInput::Mapped,
        ] {
            let _ = std::fs::remove_file(&dst);
            let n = engine
                .open_file_with(OpenWith::Managed, &obj, &src, &dst, input)
                .unwrap();
            assert_eq!(n, len as u64);
            assert_eq!(std::fs::read(&dst).unwrap(), pt);
        }
        // Cut mid-chunk: refused, nothing at the destination.
        let cut = dir.path().join(format!("cut{len}"));
        std::fs::write(&cut, &stored[..stored.len() - 5]).unwrap();
        let _ = std::fs::remove_file(&dst);
        assert!(
            engine
                .open_file(OpenWith::Managed, &obj, &cut, &dst)
                .is_err()
        );
        assert!(!dst.exists());
    }
}
