//! File-to-file sealing and opening: round trips (empty files included),
//! ranges from a file, and atomicity: a wrong key or a damaged body leaves
//! no output and never replaces an existing destination.

use std::fs;
use std::path::Path;

use objseal::body::{self, CHUNK_LEN, DataKey, HEADER_LEN};
use objseal::{BodyError, Error};

const CTX: &[u8] = b"files";

fn key() -> DataKey {
    DataKey::from_bytes([9; 32])
}

fn no_temp_files(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.contains("objseal-tmp"), "temporary file left: {name}");
    }
}

#[test]
fn round_trips_including_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    for len in [
        0usize,
        1,
        CHUNK_LEN,
        64 * CHUNK_LEN,
        64 * CHUNK_LEN + 1,
        130 * CHUNK_LEN + 77,
    ] {
        let pt: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let (src, sealed, back) = (
            dir.path().join("p"),
            dir.path().join("s"),
            dir.path().join("b"),
        );
        fs::write(&src, &pt).unwrap();
        let n = body::seal_file(&key(), CTX, &src, &sealed).unwrap();
        assert_eq!(n, body::sealed_len(len as u64).unwrap());
        let bytes = fs::read(&sealed).unwrap();
        assert_eq!(bytes.len() as u64, n);
        assert_eq!(
            body::open(&key(), CTX, &bytes).unwrap(),
            pt,
            "slice open of a sealed file, len {len}"
        );
        assert_eq!(
            body::open_file(&key(), CTX, &sealed, &back).unwrap(),
            len as u64
        );
        assert_eq!(fs::read(&back).unwrap(), pt, "len {len}");
        if len > 10 {
            let r = body::open_file_range(&key(), CTX, &sealed, 3..len as u64 - 2).unwrap();
            assert_eq!(r, &pt[3..len - 2]);
        }
        // A slice-sealed body opens from a file too.
        fs::write(&sealed, body::seal(&key(), CTX, &pt).unwrap()).unwrap();
        body::open_file(&key(), CTX, &sealed, &back).unwrap();
        assert_eq!(fs::read(&back).unwrap(), pt);
    }
    no_temp_files(dir.path());
}

#[test]
fn failures_leave_no_output_and_keep_existing_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let pt = vec![5u8; 3 * CHUNK_LEN + 10];
    let (src, sealed) = (dir.path().join("p"), dir.path().join("s"));
    fs::write(&src, &pt).unwrap();
    body::seal_file(&key(), CTX, &src, &sealed).unwrap();
    let fresh = dir.path().join("fresh");
    let existing = dir.path().join("existing");
    fs::write(&existing, b"precious").unwrap();

    let wrong = DataKey::from_bytes([8; 32]);
    let mut tampered = fs::read(&sealed).unwrap();
    *tampered.last_mut().unwrap() ^= 1;
    let tampered_path = dir.path().join("t");
    fs::write(&tampered_path, &tampered).unwrap();
    let truncated_path = dir.path().join("u");
    fs::write(&truncated_path, &tampered[..HEADER_LEN + 100]).unwrap();
    let empty = dir.path().join("empty");
    fs::write(&empty, b"").unwrap();

    for dst in [&fresh, &existing] {
        let e = body::open_file(&wrong, CTX, &sealed, dst).unwrap_err();
        assert!(matches!(e, Error::Body(BodyError::CommitmentMismatch)));
        let e = body::open_file(&key(), b"other", &sealed, dst).unwrap_err();
        assert!(matches!(e, Error::Body(BodyError::CommitmentMismatch)));
        let e = body::open_file(&key(), CTX, &tampered_path, dst).unwrap_err();
        assert!(matches!(
            e,
            Error::Body(BodyError::ChunkAuthentication { index: 3 })
        ));
        let e = body::open_file(&key(), CTX, &truncated_path, dst).unwrap_err();
        assert!(matches!(
            e,
            Error::Body(BodyError::ChunkAuthentication { index: 0 })
        ));
        let e = body::open_file(&key(), CTX, &empty, dst).unwrap_err();
        assert!(matches!(
            e,
            Error::Body(BodyError::TruncatedHeader { len: 0 })
        ));
        let e = body::seal_file(&key(), CTX, &dir.path().join("missing"), dst).unwrap_err();
        assert!(
            matches!(&e, Error::Io { path: Some(p), .. } if p.ends_with("missing")),
            "{e}"
        );
    }
    assert!(!fresh.exists());
    assert_eq!(fs::read(&existing).unwrap(), b"precious");
    no_temp_files(dir.path());

    // Success replaces an existing destination.
    body::open_file(&key(), CTX, &sealed, &existing).unwrap();
    assert_eq!(fs::read(&existing).unwrap(), pt);
    // A destination in a missing directory is an I/O error naming the path.
    let e = body::seal_file(&key(), CTX, &src, &dir.path().join("no/such/dir/x")).unwrap_err();
    assert!(matches!(e, Error::Io { path: Some(_), .. }), "{e}");
}
