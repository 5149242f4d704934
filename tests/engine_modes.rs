//! Engine round trips in every mode through every entry point, and the
//! typed errors of wrong, missing, swapped or moved keys.

use std::io::{Read, Write};
use std::sync::Arc;

use objseal::body::ByteRange;
use objseal::keys::{CustomerKey, EncryptionContext, Keyring, LocalKms};
use objseal::{
    Engine, Envelope, Error, FormatError, KeyError, KmsError, Mode, ObjectBinding, OpenWith,
    SealMode,
};

struct Setup {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    engine: Engine,
    arn: String,
    customer: CustomerKey,
    ctx: EncryptionContext,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let kms = Arc::new(LocalKms::open(path.join("kms"), "us-east-1", "123456789012").unwrap());
    let arn = kms.create_key("test", "admin").unwrap().arn;
    let ring = Arc::new(Keyring::create(path.join("keyring.json"), "s3-master").unwrap());
    let engine = Engine::builder()
        .keyring(ring)
        .kms(kms)
        .principal("tester")
        .build();
    Setup {
        _dir: dir,
        dir: path,
        engine,
        arn,
        customer: CustomerKey::generate().unwrap(),
        ctx: EncryptionContext::new().with("team", "qa").unwrap(),
    }
}

fn modes(s: &Setup) -> Vec<(&'static str, SealMode<'_>, OpenWith<'_>)> {
    vec![
        ("sse-s3", SealMode::S3, OpenWith::Managed),
        (
            "sse-kms",
            SealMode::kms(&s.arn).with_context(&s.ctx),
            OpenWith::Managed,
        ),
        (
            "sse-kms-bucket-key",
            SealMode::kms(&s.arn).with_bucket_key(true),
            OpenWith::Managed,
        ),
        (
            "sse-c",
            SealMode::C(&s.customer),
            OpenWith::Customer(&s.customer),
        ),
    ]
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Every single-bit flip of a stored object's envelope is refused by the
/// engine, in the modes whose open needs no KMS call: the body layer catches
/// the object binding and lengths, the key layer's unwrap the mode, key id,
/// version, salt, wrapped key and details.
#[test]
fn every_envelope_bit_flip_is_refused() {
    let s = setup();
    let obj = ObjectBinding::new("bucket", "flip").unwrap();
    let pt = data(1000);
    for (name, seal, open) in modes(&s)
        .into_iter()
        .filter(|(n, ..)| *n == "sse-s3" || *n == "sse-c")
    {
        let object = s.engine.seal(&seal, &obj, &pt).unwrap();
        let (_, used) = Envelope::parse_prefix(&object).unwrap();
        for bit in 0..used * 8 {
            let mut bad = object.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                s.engine.open(open, &obj, &bad).is_err(),
                "{name}: flip of envelope bit {bit} went unnoticed"
            );
        }
        assert_eq!(s.engine.open(open, &obj, &object).unwrap(), pt);
    }
}

#[test]
fn every_mode_every_entry_point() {
    let s = setup();
    let obj = ObjectBinding::new("bucket", "dir/object").unwrap();
    for (name, mode, with) in modes(&s) {
        for len in [0usize, 1, 16_384, 40_000] {
            let pt = data(len);
            // Slices.
            let sealed = s.engine.seal(&mode, &obj, &pt).unwrap();
            let (env, _) = Envelope::parse_prefix(&sealed).unwrap();
            assert_eq!(env.mode, mode.mode(), "{name}");
            assert_eq!(
                s.engine.open(with, &obj, &sealed).unwrap(),
                pt,
                "{name} {len}"
            );
            if len > 10 {
                assert_eq!(
                    s.engine.open_range(with, &obj, &sealed, 3..9).unwrap(),
                    &pt[3..9]
                );
                assert_eq!(
                    s.engine
                        .open_range(with, &obj, &sealed, ByteRange::Last(5))
                        .unwrap(),
                    &pt[len - 5..]
                );
            }
            // Detached envelope (object metadata), through base64.
            let (env, body) = s.engine.seal_detached(&mode, &obj, &pt).unwrap();
            let env = Envelope::from_base64(&env.to_base64().unwrap()).unwrap();
            assert_eq!(s.engine.open_detached(with, &obj, &env, &body).unwrap(), pt);
            // Writer and reader.
            let mut w = s
                .engine
                .seal_writer(&mode, &obj, len as u64, Vec::new())
                .unwrap();
            for piece in pt.chunks(7_000) {
                w.write_all(piece).unwrap();
            }
            let stored = w.finish().unwrap();
            assert_eq!(s.engine.open(with, &obj, &stored).unwrap(), pt);
            let mut back = Vec::new();
            s.engine
                .open_reader(with, &obj, &sealed[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, pt);
            // Files.
            let (src, dst, out) = (s.dir.join("plain"), s.dir.join("sealed"), s.dir.join("out"));
            std::fs::write(&src, &pt).unwrap();
            let stored_len = s.engine.seal_file(&mode, &obj, &src, &dst).unwrap();
            assert_eq!(stored_len, std::fs::metadata(&dst).unwrap().len());
            assert_eq!(
                s.engine
                    .open(with, &obj, &std::fs::read(&dst).unwrap())
                    .unwrap(),
                pt
            );
            assert_eq!(
                s.engine.open_file(with, &obj, &dst, &out).unwrap(),
                len as u64
            );
            assert_eq!(std::fs::read(&out).unwrap(), pt);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                for f in [&dst, &out] {
                    let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
                    assert_eq!(mode, 0o600, "{name}: {} is private", f.display());
                }
            }
            if len > 20 {
                assert_eq!(
                    s.engine.open_file_range(with, &obj, &dst, 10..20).unwrap(),
                    &pt[10..20]
                );
                assert_eq!(
                    s.engine
                        .open_file_range(with, &obj, &dst, (len as u64 - 4)..)
                        .unwrap(),
                    &pt[len - 4..]
                );
            }
        }
    }
}

#[test]
fn writer_length_is_enforced() {
    let s = setup();
    let obj = ObjectBinding::new("b", "k").unwrap();
    let mut w = s
        .engine
        .seal_writer(&SealMode::S3, &obj, 10, Vec::new())
        .unwrap();
    w.write_all(b"short").unwrap();
    assert!(w.finish().is_err());
    let mut w = s
        .engine
        .seal_writer(&SealMode::S3, &obj, 3, Vec::new())
        .unwrap();
    assert!(w.write_all(b"too long").is_err());
}

#[test]
fn sse_c_wrong_and_missing_keys() {
    let s = setup();
    let obj = ObjectBinding::new("b", "k").unwrap();
    let sealed = s
        .engine
        .seal(&SealMode::C(&s.customer), &obj, b"secret")
        .unwrap();
    let wrong = CustomerKey::generate().unwrap();
    for result in [
        s.engine.open(OpenWith::Customer(&wrong), &obj, &sealed),
        s.engine
            .open_range(OpenWith::Customer(&wrong), &obj, &sealed, 0..2),
        s.engine
            .open_reader(OpenWith::Customer(&wrong), &obj, &sealed[..])
            .map(|_| Vec::new()),
    ] {
        assert!(
            matches!(result, Err(Error::Key(KeyError::AccessDenied))),
            "{result:?}"
        );
    }
    assert!(matches!(
        s.engine.open(OpenWith::Managed, &obj, &sealed),
        Err(Error::Key(KeyError::CustomerKeyRequired))
    ));
    // A customer key for a non-SSE-C object.
    let s3 = s.engine.seal(&SealMode::S3, &obj, b"x").unwrap();
    assert!(matches!(
        s.engine.open(OpenWith::Customer(&s.customer), &obj, &s3),
        Err(Error::Key(KeyError::CustomerKeyNotApplicable {
            mode: Mode::SseS3
        }))
    ));
    // Corrupting the key check is not "wrong key" for the right key only if
    // the wrapped key itself is damaged: flip a bit of the wrapped key.
    let (mut env, used) = Envelope::parse_prefix(&sealed).unwrap();
    env.wrapped_key.wrapped[3] ^= 1;
    let mut bad = env.encode().unwrap();
    bad.extend_from_slice(&sealed[used..]);
    assert!(matches!(
        s.engine.open(OpenWith::Customer(&s.customer), &obj, &bad),
        Err(Error::Key(KeyError::UnwrapFailed { .. }))
    ));
}

#[test]
fn wrong_keyring_and_wrong_kms() {
    let s = setup();
    let other = setup();
    let obj = ObjectBinding::new("b", "k").unwrap();
    let s3 = s.engine.seal(&SealMode::S3, &obj, b"x").unwrap();
    // Same key id, different key material: the wrapped key does not open.
    assert!(matches!(
        other.engine.open(OpenWith::Managed, &obj, &s3),
        Err(Error::Key(KeyError::UnwrapFailed { .. }))
    ));
    // Different key id.
    let ring = Arc::new(Keyring::in_memory("other-master").unwrap());
    let e = Engine::builder().keyring(ring).build();
    assert!(matches!(
        e.open(OpenWith::Managed, &obj, &s3),
        Err(Error::Key(KeyError::WrongKeyring { .. }))
    ));
    // No keyring / no KMS at all.
    let bare = Engine::builder().build();
    assert!(matches!(
        bare.open(OpenWith::Managed, &obj, &s3),
        Err(Error::Key(KeyError::NotConfigured { .. }))
    ));
    let kms_obj = s.engine.seal(&SealMode::kms(&s.arn), &obj, b"x").unwrap();
    assert!(matches!(
        bare.open(OpenWith::Managed, &obj, &kms_obj),
        Err(Error::Key(KeyError::NotConfigured { .. }))
    ));
    // Another KMS does not know the key.
    assert!(matches!(
        other.engine.open(OpenWith::Managed, &obj, &kms_obj),
        Err(Error::Kms(KmsError::NotFound { .. }))
    ));
}

#[test]
fn moved_copied_and_swapped_keys_fail() {
    let s = setup();
    let a = ObjectBinding::new("b", "a").unwrap();
    let b = ObjectBinding::new("b", "b").unwrap();
    for (name, mode, with) in modes(&s) {
        let sa = s.engine.seal(&mode, &a, b"object a").unwrap();
        let sb = s.engine.seal(&mode, &b, b"object b").unwrap();
        // The whole object read as another: the envelope names its object.
        assert!(matches!(
            s.engine.open(with, &b, &sa),
            Err(Error::Format(FormatError::BindingMismatch { .. }))
        ));
        // Wrapped key copied into the other object's envelope.
        let (env_a, _) = Envelope::parse_prefix(&sa).unwrap();
        let (mut env_b, used_b) = Envelope::parse_prefix(&sb).unwrap();
        env_b.wrapped_key = env_a.wrapped_key.clone();
        let mut forged = env_b.encode().unwrap();
        forged.extend_from_slice(&sb[used_b..]);
        let err = s.engine.open(with, &b, &forged).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Key(KeyError::UnwrapFailed { .. }) | Error::Kms(KmsError::ContextMismatch)
            ),
            "{name}: {err:?}"
        );
        // Envelope rewritten to name the other object.
        let (mut env, used) = Envelope::parse_prefix(&sa).unwrap();
        env.binding = b.clone();
        let mut moved = env.encode().unwrap();
        moved.extend_from_slice(&sa[used..]);
        let err = s.engine.open(with, &b, &moved).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Key(KeyError::UnwrapFailed { .. }) | Error::Kms(KmsError::ContextMismatch)
            ),
            "{name}: {err:?}"
        );
        // Body swapped under a valid envelope.
        let (_, used_a) = Envelope::parse_prefix(&sa).unwrap();
        let mut swapped = sa[..used_a].to_vec();
        swapped.extend_from_slice(&sb[used_b..]);
        assert!(s.engine.open(with, &a, &swapped).is_err(), "{name}");
        // Plaintext length edited.
        let (mut env, used) = Envelope::parse_prefix(&sa).unwrap();
        env.plaintext_len += 1;
        let mut edited = env.encode().unwrap();
        edited.extend_from_slice(&sa[used..]);
        assert!(s.engine.open(with, &a, &edited).is_err(), "{name}");
    }
}

#[test]
fn read_under_another_mode_fails() {
    let s = setup();
    let obj = ObjectBinding::new("b", "k").unwrap();
    for (name, mode, _) in modes(&s) {
        let sealed = s.engine.seal(&mode, &obj, b"payload").unwrap();
        for other in [Mode::SseS3, Mode::SseKms, Mode::SseC] {
            if other == mode.mode() {
                continue;
            }
            let (mut env, used) = Envelope::parse_prefix(&sealed).unwrap();
            env.mode = other;
            let mut forged = env.encode().unwrap();
            forged.extend_from_slice(&sealed[used..]);
            for with in [OpenWith::Managed, OpenWith::Customer(&s.customer)] {
                let r = s.engine.open(with, &obj, &forged);
                assert!(r.is_err(), "{name} read as {other:?}");
            }
        }
    }
}

#[test]
fn rewrap_and_reencrypt() {
    let s = setup();
    let obj = ObjectBinding::new("b", "k").unwrap();
    let pt = data(50_000);
    // SSE-C key rotation by rewrap: same body bytes.
    let sealed = s.engine.seal(&SealMode::C(&s.customer), &obj, &pt).unwrap();
    let new_key = CustomerKey::generate().unwrap();
    let moved = s
        .engine
        .rewrap_object(
            OpenWith::Customer(&s.customer),
            &obj,
            &sealed,
            &SealMode::C(&new_key),
        )
        .unwrap();
    let (_, u1) = Envelope::parse_prefix(&sealed).unwrap();
    let (_, u2) = Envelope::parse_prefix(&moved).unwrap();
    assert_eq!(sealed[u1..], moved[u2..]);
    assert_eq!(
        s.engine
            .open(OpenWith::Customer(&new_key), &obj, &moved)
            .unwrap(),
        pt
    );
    assert!(
        s.engine
            .open(OpenWith::Customer(&s.customer), &obj, &moved)
            .is_err()
    );
    // SSE-KMS: per-object key to bucket key under the same CMK, same body.
    let kms = s.engine.seal(&SealMode::kms(&s.arn), &obj, &pt).unwrap();
    let bk = s
        .engine
        .rewrap_object(
            OpenWith::Managed,
            &obj,
            &kms,
            &SealMode::kms(&s.arn).with_bucket_key(true),
        )
        .unwrap();
    assert_eq!(s.engine.open(OpenWith::Managed, &obj, &bk).unwrap(), pt);
    // Changing the mode keeps the body too; the old envelope still opens
    // it, and the new one cannot be read as SSE-C.
    let to_s3 = s
        .engine
        .rewrap_object(OpenWith::Managed, &obj, &kms, &SealMode::S3)
        .unwrap();
    let (env_s3, u3) = Envelope::parse_prefix(&to_s3).unwrap();
    let (_, uk) = Envelope::parse_prefix(&kms).unwrap();
    assert_eq!(env_s3.mode, Mode::SseS3);
    assert_eq!(to_s3[u3..], kms[uk..], "body byte-identical");
    assert_eq!(s.engine.open(OpenWith::Managed, &obj, &to_s3).unwrap(), pt);
    assert!(
        s.engine
            .open(OpenWith::Customer(&s.customer), &obj, &to_s3)
            .is_err()
    );
    let s3 = s
        .engine
        .reencrypt(OpenWith::Managed, &obj, &kms, &SealMode::S3)
        .unwrap();
    assert_eq!(Envelope::parse_prefix(&s3).unwrap().0.mode, Mode::SseS3);
    assert_eq!(s.engine.open(OpenWith::Managed, &obj, &s3).unwrap(), pt);
    let c = s
        .engine
        .reencrypt(OpenWith::Managed, &obj, &s3, &SealMode::C(&new_key))
        .unwrap();
    assert_eq!(
        s.engine
            .open(OpenWith::Customer(&new_key), &obj, &c)
            .unwrap(),
        pt
    );
}

#[test]
fn no_output_file_on_failure() {
    let s = setup();
    let obj = ObjectBinding::new("b", "k").unwrap();
    let src = s.dir.join("plain");
    std::fs::write(&src, data(30_000)).unwrap();
    let sealed = s.dir.join("sealed");
    s.engine
        .seal_file(&SealMode::C(&s.customer), &obj, &src, &sealed)
        .unwrap();
    let wrong = CustomerKey::generate().unwrap();
    let out = s.dir.join("out");
    assert!(
        s.engine
            .open_file(OpenWith::Customer(&wrong), &obj, &sealed, &out)
            .is_err()
    );
    // Truncated object: fails, and leaves nothing behind.
    let bytes = std::fs::read(&sealed).unwrap();
    std::fs::write(&sealed, &bytes[..bytes.len() - 100]).unwrap();
    assert!(
        s.engine
            .open_file(OpenWith::Customer(&s.customer), &obj, &sealed, &out)
            .is_err()
    );
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(&s.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `Engine::open_file_range` reads only the chunks it needs from a stored
/// object (envelope first): it equals the slice of a full open for random
/// ranges in every mode (envelopes of different lengths), and refuses a
/// body with a chunk dropped, cut at a chunk boundary or tampered, whatever
/// the range.
#[test]
fn file_ranges_in_every_mode() {
    let s = setup();
    let obj = ObjectBinding::new("bucket", "ranges").unwrap();
    let len = 3 * 16384 + 777;
    let pt = data(len);
    let src = s.dir.join("plain");
    std::fs::write(&src, &pt).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for (name, mode, with) in modes(&s) {
        let dst = s.dir.join(format!("sealed-{name}"));
        s.engine.seal_file(&mode, &obj, &src, &dst).unwrap();
        for _ in 0..200 {
            let a = next(len as u64 + 1);
            let b = a + next(len as u64 + 1 - a);
            let got = s.engine.open_file_range(with, &obj, &dst, a..b).unwrap();
            assert_eq!(got, &pt[a as usize..b as usize], "{name}: {a}..{b}");
        }
        let n = 1 + next(len as u64);
        assert_eq!(
            s.engine
                .open_file_range(with, &obj, &dst, ByteRange::Last(n))
                .unwrap(),
            &pt[len - n as usize..],
            "{name}: last {n}"
        );
        // Drop a whole middle chunk: the rest is a well-formed body of
        // another length, refused (before any chunk is opened) even for a
        // range in chunk 0, which never reads the end.
        let stored = std::fs::read(&dst).unwrap();
        let chunk1 = stored.len() - len - 4 * 16 + (16384 + 16);
        let mut dropped = stored[..chunk1].to_vec();
        dropped.extend_from_slice(&stored[chunk1 + 16384 + 16..]);
        let cut = s.dir.join(format!("dropped-{name}"));
        std::fs::write(&cut, &dropped).unwrap();
        let e = s
            .engine
            .open_file_range(with, &obj, &cut, 0..10)
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Body(objseal::body::BodyError::LengthMismatch { .. })
            ),
            "{name}: {e:?}"
        );
        // Cut at a chunk boundary: the final chunk is missing.
        std::fs::write(&cut, &stored[..stored.len() - (777 + 16)]).unwrap();
        let e = s
            .engine
            .open_file_range(with, &obj, &cut, 0..10)
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Body(objseal::body::BodyError::MissingFinalChunk { .. })
            ),
            "{name}: {e:?}"
        );
        // A flipped bit in the first chunk fails a range over it.
        let mut bad = stored.clone();
        let at = bad.len() - len - 4 * 16 + 10; // 10 bytes into chunk 0
        bad[at] ^= 1;
        let tampered = s.dir.join(format!("tampered-{name}"));
        std::fs::write(&tampered, &bad).unwrap();
        assert!(
            s.engine
                .open_file_range(with, &obj, &tampered, 0..100)
                .is_err(),
            "{name}"
        );
    }
}
