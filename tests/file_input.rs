//! File input through positioned reads and through a memory mapping
//! (`FileInput::{Read, Mapped}`): bare bodies and whole objects round trip
//! through both, both give the same outputs, ranges read alike, and a file
//! that grows or a damaged body fails the same way.

use std::fs;
use std::sync::Arc;

use objseal::body::{self, ByteRange, CHUNK_LEN, DataKey, FileInput};
use objseal::{Engine, Keyring, ObjectBinding, OpenWith, SealMode};

const CTX: &[u8] = b"file-input";
const BOTH: [FileInput; 2] = [FileInput::Read, FileInput::Mapped];

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 131 % 251) as u8).collect()
}

const SIZES: [usize; 8] = [
    0,
    1,
    CHUNK_LEN - 1,
    CHUNK_LEN,
    CHUNK_LEN + 1,
    64 * CHUNK_LEN,
    3 << 20,
    (5 << 20) + 12_345,
];

#[test]
fn default_is_positioned_reads() {
    assert_eq!(FileInput::default(), FileInput::Read);
}

#[test]
fn bodies_round_trip_through_both_paths_with_equal_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::from_bytes([3; 32]);
    for len in SIZES {
        let pt = data(len);
        let src = dir.path().join("plain");
        fs::write(&src, &pt).unwrap();
        let mut sealed_files = Vec::new();
        for seal_how in BOTH {
            let sealed = dir.path().join(format!("sealed-{seal_how:?}"));
            let n = body::seal_file_with(&key, CTX, &src, &sealed, seal_how).unwrap();
            assert_eq!(n, body::sealed_len(len as u64).unwrap());
            assert_eq!(fs::metadata(&sealed).unwrap().len(), n);
            let bytes = fs::read(&sealed).unwrap();
            // The same plaintext sealed by either path opens in memory.
            assert_eq!(
                body::open(&key, CTX, &bytes).unwrap(),
                pt,
                "{len} {seal_how:?}"
            );
            for open_how in BOTH {
                let back = dir.path().join(format!("back-{seal_how:?}-{open_how:?}"));
                let m = body::open_file_with(&key, CTX, &sealed, &back, open_how).unwrap();
                assert_eq!(m, len as u64);
                assert_eq!(
                    fs::read(&back).unwrap(),
                    pt,
                    "{len} {seal_how:?} {open_how:?}"
                );
            }
            sealed_files.push(bytes);
        }
        // Different salts, same length and same plaintext behind them.
        assert_eq!(sealed_files[0].len(), sealed_files[1].len());
    }
}

#[test]
fn ranges_read_alike_through_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::from_bytes([4; 32]);
    for len in SIZES {
        let pt = data(len);
        let sealed = dir.path().join("sealed");
        fs::write(&sealed, body::seal(&key, CTX, &pt).unwrap()).unwrap();
        let ranges: Vec<ByteRange> = vec![
            ByteRange::from(0..len as u64),
            ByteRange::Last(1),
            ByteRange::Last(CHUNK_LEN as u64 + 3),
            ByteRange::from(len as u64 / 3..(len as u64 / 3 + 40_000).min(len as u64)),
        ];
        for r in ranges {
            let read = body::open_file_range_with(&key, CTX, &sealed, r, FileInput::Read);
            let mapped = body::open_file_range_with(&key, CTX, &sealed, r, FileInput::Mapped);
            match (read, mapped) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "{len} {r:?}");
                    assert_eq!(
                        a,
                        body::open_range(&key, CTX, &fs::read(&sealed).unwrap(), r).unwrap()
                    );
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (a, b) => panic!("{len} {r:?}: read {a:?} mapped {b:?}"),
            }
        }
    }
}

#[test]
fn damaged_bodies_fail_alike_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::from_bytes([5; 32]);
    let pt = data(3 * CHUNK_LEN + 5);
    let mut sealed = body::seal(&key, CTX, &pt).unwrap();
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    let src = dir.path().join("damaged");
    fs::write(&src, &sealed).unwrap();
    let mut errors = Vec::new();
    for how in BOTH {
        let dst = dir.path().join("out");
        let err = body::open_file_with(&key, CTX, &src, &dst, how).unwrap_err();
        assert!(!dst.exists());
        errors.push(err.to_string());
    }
    assert_eq!(errors[0], errors[1]);
}

#[test]
fn engine_objects_round_trip_through_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder()
        .keyring(Arc::new(Keyring::in_memory("file-input").unwrap()))
        .build();
    let obj = ObjectBinding::new("bucket", "key").unwrap();
    for len in SIZES {
        let pt = data(len);
        let src = dir.path().join("plain");
        fs::write(&src, &pt).unwrap();
        for seal_how in BOTH {
            let stored = dir.path().join("stored");
            let n = engine
                .seal_file_with(&SealMode::S3, &obj, &src, &stored, seal_how)
                .unwrap();
            let bytes = fs::read(&stored).unwrap();
            assert_eq!(n, bytes.len() as u64);
            assert_eq!(engine.open(OpenWith::Managed, &obj, &bytes).unwrap(), pt);
            for open_how in BOTH {
                let back = dir.path().join("back");
                let m = engine
                    .open_file_with(OpenWith::Managed, &obj, &stored, &back, open_how)
                    .unwrap();
                assert_eq!(m, len as u64);
                assert_eq!(
                    fs::read(&back).unwrap(),
                    pt,
                    "{len} {seal_how:?} {open_how:?}"
                );
                let r = ByteRange::Last(CHUNK_LEN as u64 + 7);
                let part = engine
                    .open_file_range_with(OpenWith::Managed, &obj, &stored, r, open_how)
                    .unwrap();
                assert_eq!(
                    part,
                    engine
                        .open_range(OpenWith::Managed, &obj, &bytes, r)
                        .unwrap()
                );
            }
        }
    }
}
