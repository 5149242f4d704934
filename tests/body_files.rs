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
        assert!(
            !name.starts_with(".objseal-"),
            "temporary file left: {name}"
        );
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

fn io_kind_at(e: &Error, path: &Path) -> std::io::ErrorKind {
    match e {
        Error::Io {
            path: Some(p),
            source,
        } if p == path => source.kind(),
        other => panic!(
            "expected an I/O error naming {}, got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn non_regular_sources_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("out");
    let mut sources = vec![dir.path().to_path_buf()];
    if Path::new("/dev/null").exists() {
        sources.push("/dev/null".into());
    }
    let fifo = dir.path().join("fifo");
    if std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        sources.push(fifo);
    }
    for src in &sources {
        let e = body::seal_file(&key(), CTX, src, &dst).unwrap_err();
        assert_eq!(io_kind_at(&e, src), std::io::ErrorKind::InvalidInput, "{e}");
        let e = body::open_file(&key(), CTX, src, &dst).unwrap_err();
        assert_eq!(io_kind_at(&e, src), std::io::ErrorKind::InvalidInput, "{e}");
        let e = body::open_file_range(&key(), CTX, src, 0..1).unwrap_err();
        assert_eq!(io_kind_at(&e, src), std::io::ErrorKind::InvalidInput, "{e}");
    }
    assert!(!dst.exists());
    no_temp_files(dir.path());
}

/// A file whose size is not its length (`/proc` reports 0) must not seal as
/// an empty body.
#[cfg(target_os = "linux")]
#[test]
fn a_file_longer_than_its_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("out");
    let src = Path::new("/proc/self/status");
    let e = body::seal_file(&key(), CTX, src, &dst).unwrap_err();
    assert_eq!(
        io_kind_at(&e, src),
        std::io::ErrorKind::UnexpectedEof,
        "{e}"
    );
    assert!(!dst.exists());
    no_temp_files(dir.path());
}

/// Truncating the input while it is sealed or opened gives an I/O error
/// naming it (never SIGBUS, a panic or a short body) and leaves no output.
#[test]
fn an_input_truncated_during_the_call_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (src, sealed, dst) = (
        dir.path().join("p"),
        dir.path().join("s"),
        dir.path().join("d"),
    );
    let pt = vec![3u8; 24 << 20];
    let mut failures = 0;
    for round in 0..6 {
        fs::write(&src, &pt).unwrap();
        let file = fs::OpenOptions::new().write(true).open(&src).unwrap();
        let cut = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(round * 3));
            file.set_len(1000).unwrap();
        });
        let r = body::seal_file(&key(), CTX, &src, &sealed);
        cut.join().unwrap();
        match r {
            // Sealed before or after the cut, whole.
            Ok(n) => assert!(
                [pt.len() as u64, 1000]
                    .map(|l| body::sealed_len(l).unwrap())
                    .contains(&n),
                "{n}"
            ),
            Err(e) => {
                assert_eq!(io_kind_at(&e, &src), std::io::ErrorKind::UnexpectedEof);
                failures += 1;
            }
        }
    }
    // Opening: seal once, then truncate the body under the reader.
    fs::write(&src, &pt).unwrap();
    body::seal_file(&key(), CTX, &src, &sealed).unwrap();
    let file = fs::OpenOptions::new().write(true).open(&sealed).unwrap();
    let cut = std::thread::spawn(move || file.set_len(HEADER_LEN as u64 + 10).unwrap());
    let r = body::open_file(&key(), CTX, &sealed, &dst);
    cut.join().unwrap();
    match r {
        Ok(n) => assert_eq!(n, pt.len() as u64),
        // Cut before the call: the short body does not open.
        Err(Error::Body(_)) => assert!(!dst.exists()),
        Err(e) => {
            assert_eq!(io_kind_at(&e, &sealed), std::io::ErrorKind::UnexpectedEof);
            assert!(!dst.exists());
            failures += 1;
        }
    }
    eprintln!("{failures} of 7 calls saw the truncation");
    no_temp_files(dir.path());
}

#[cfg(unix)]
#[test]
fn outputs_are_private_even_over_a_shared_destination() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (src, sealed, back) = (
        dir.path().join("p"),
        dir.path().join("s"),
        dir.path().join("b"),
    );
    fs::write(&src, b"secret").unwrap();
    for dst in [&sealed, &back] {
        fs::write(dst, b"old").unwrap();
        fs::set_permissions(dst, fs::Permissions::from_mode(0o644)).unwrap();
    }
    body::seal_file(&key(), CTX, &src, &sealed).unwrap();
    body::open_file(&key(), CTX, &sealed, &back).unwrap();
    let fresh = dir.path().join("fresh");
    body::open_file(&key(), CTX, &sealed, &fresh).unwrap();
    for f in [&sealed, &back, &fresh] {
        let mode = fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", f.display());
    }
    assert_eq!(fs::read(&back).unwrap(), b"secret");
}

#[test]
fn long_destination_names_work() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("p");
    fs::write(&src, vec![1u8; 100]).unwrap();
    let sealed = dir.path().join("s".repeat(250));
    let back = dir.path().join("b".repeat(250));
    body::seal_file(&key(), CTX, &src, &sealed).unwrap();
    body::open_file(&key(), CTX, &sealed, &back).unwrap();
    assert_eq!(fs::read(&back).unwrap(), vec![1u8; 100]);
    no_temp_files(dir.path());
}

#[test]
fn whole_range_of_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let (src, sealed) = (dir.path().join("p"), dir.path().join("s"));
    fs::write(&src, b"").unwrap();
    body::seal_file(&key(), CTX, &src, &sealed).unwrap();
    assert_eq!(
        body::open_file_range(&key(), CTX, &sealed, ..).unwrap(),
        b""
    );
    let e = body::open_file_range(&key(), CTX, &sealed, 0..1).unwrap_err();
    assert!(
        matches!(e, Error::Body(BodyError::InvalidRange { .. })),
        "{e}"
    );
}
