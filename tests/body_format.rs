//! The envelope format: round trips, every parse error, bounded parsing of
//! truncated and hostile input, the base64 form, and the body context.

use objseal::format::{self, Envelope, Mode, ObjectBinding, Part, PartList, WrappedKey};
use objseal::{Error, FormatError};

fn sample() -> Envelope {
    let mut w = WrappedKey::placeholder("arn:aws:kms:us-east-1:111122223333:key/abc", 7);
    w.kek_salt = [1; 32];
    w.wrapped = [2; 48];
    w.details = b"{\"aws:s3:arn\":\"arn:aws:s3:::b/k\"}".to_vec();
    let mut e = Envelope::new(
        Mode::SseKms,
        ObjectBinding::new("b", "dir/ключ.txt").unwrap(),
        (5 << 20) + 12345,
        w,
    );
    e.parts = Some(PartList {
        parts: vec![
            Part {
                number: 1,
                plaintext_len: 5 << 20,
            },
            Part {
                number: 3,
                plaintext_len: 12345,
            },
        ],
        mac: [9; 32],
    });
    e
}

fn fmt_err(r: Result<Envelope, Error>) -> FormatError {
    match r {
        Err(Error::Format(f)) => f,
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn round_trips() {
    for env in [
        sample(),
        Envelope::new(
            Mode::SseC,
            ObjectBinding::new("x", "y").unwrap(),
            0,
            WrappedKey::placeholder("", 0),
        ),
    ] {
        let bytes = env.encode().unwrap();
        assert!(bytes.len() <= format::MAX_ENVELOPE_LEN);
        assert_eq!(
            format::MAX_ENVELOPE_LEN,
            189_011,
            "docs/FORMAT.md states this bound"
        );
        assert_eq!(Envelope::parse(&bytes).unwrap(), env);
        assert_eq!(
            Envelope::from_base64(&env.to_base64().unwrap()).unwrap(),
            env
        );
        let mut with_body = bytes.clone();
        with_body.extend_from_slice(b"BODY");
        assert_eq!(
            Envelope::parse_prefix(&with_body).unwrap(),
            (env, bytes.len())
        );
    }
}

#[test]
fn every_prefix_is_a_truncation_error() {
    let bytes = sample().encode().unwrap();
    for cut in 0..bytes.len() {
        match fmt_err(Envelope::parse(&bytes[..cut])) {
            FormatError::Truncated { .. } => {}
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

#[test]
fn named_errors() {
    let good = sample().encode().unwrap();
    let with = |at: usize, v: &[u8]| {
        let mut b = good.clone();
        b[at..at + v.len()].copy_from_slice(v);
        Envelope::parse(&b)
    };
    assert_eq!(fmt_err(with(0, b"PK")), FormatError::BadMagic);
    assert_eq!(
        fmt_err(with(4, &[2])),
        FormatError::UnsupportedVersion { version: 2 }
    );
    assert_eq!(
        fmt_err(with(5, &[9])),
        FormatError::UnsupportedAlgorithm { id: 9 }
    );
    assert_eq!(fmt_err(with(6, &[0])), FormatError::UnknownMode { id: 0 });
    assert!(matches!(
        fmt_err(with(7, &[2])),
        FormatError::Reserved {
            field: "flags",
            value: 2
        }
    ));
    // Flag 01 (length given by the body) with a stored length.
    assert!(matches!(
        fmt_err(with(7, &[1])),
        FormatError::Reserved {
            field: "plaintext length of an envelope whose body gives it",
            ..
        }
    ));
    assert!(matches!(
        fmt_err(with(8, &[0x80])),
        FormatError::OutOfBounds {
            field: "plaintext length",
            ..
        }
    ));
    assert!(matches!(
        fmt_err(with(16, &[0, 0])),
        FormatError::OutOfBounds {
            field: "bucket name",
            value: 0,
            ..
        }
    ));
    assert!(matches!(
        fmt_err(with(18, &[0xff])),
        FormatError::NotUtf8 {
            field: "bucket name"
        }
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        fmt_err(Envelope::parse(&trailing)),
        FormatError::TrailingBytes { count: 1 }
    );
    // A part count larger than the input holds fails before allocating.
    let count_at = good.len() - 32 - 2 * 12 - 2;
    assert!(matches!(
        fmt_err(with(count_at, &[0x27, 0x10])),
        FormatError::Truncated {
            field: "part list",
            ..
        }
    ));
    assert!(matches!(
        fmt_err(with(count_at, &[0xff, 0xff])),
        FormatError::OutOfBounds {
            field: "part count",
            ..
        }
    ));
    // Parts out of order.
    let second = count_at + 2 + 12;
    assert_eq!(
        fmt_err(with(second, &[0, 0, 0, 1])),
        FormatError::PartOrder { number: 1 }
    );
}

#[test]
fn encode_refuses_out_of_bounds_fields() {
    let mut e = sample();
    e.wrapped_key.details = vec![0; format::MAX_DETAILS_LEN + 1];
    assert!(matches!(
        e.encode(),
        Err(Error::Format(FormatError::OutOfBounds { .. }))
    ));
    let mut e = sample();
    e.parts.as_mut().unwrap().parts.reverse();
    assert!(matches!(
        e.encode(),
        Err(Error::Format(FormatError::PartOrder { .. }))
    ));
    assert!(ObjectBinding::new("", "k").is_err());
    assert!(ObjectBinding::new("b", "k".repeat(1025)).is_err());
    assert!(
        ObjectBinding::new("b", "k")
            .unwrap()
            .with_part(10_001)
            .is_err()
    );
}

#[test]
fn base64_errors() {
    assert!(matches!(
        fmt_err(Envelope::from_base64("not base64!")),
        FormatError::Base64 { .. }
    ));
    let huge = "A".repeat(format::MAX_ENVELOPE_LEN * 2);
    assert!(matches!(
        fmt_err(Envelope::from_base64(&huge)),
        FormatError::OutOfBounds { .. }
    ));
}

#[test]
fn contexts_are_canonical() {
    let b = |bucket: &str, key: &str| ObjectBinding::new(bucket, key).unwrap();
    let ctx = |o: &ObjectBinding| o.body_context();
    // Moving bytes between fields changes the encoding.
    assert_ne!(ctx(&b("ab", "c")), ctx(&b("a", "bc")));
    assert_ne!(ctx(&b("a", "b")), ctx(&b("a", "b").with_part(1).unwrap()));
    assert_ne!(
        ctx(&b("a", "b").with_part(1).unwrap()),
        ctx(&b("a", "b").with_part(2).unwrap())
    );
    // The documented encoding (docs/FORMAT.md), byte for byte.
    let mut want = b"objseal/v1 body context\0".to_vec();
    want.extend_from_slice(&[1, 0, 1, b'a', 0, 1, b'b', 0, 0, 0, 2]);
    assert_eq!(ctx(&b("a", "b").with_part(2).unwrap()), want);
    // An envelope's context is its binding's, whatever its mode and key.
    let env = |mode, id: &str| Envelope::new(mode, b("a", "b"), 0, WrappedKey::placeholder(id, 1));
    assert_eq!(env(Mode::SseS3, "k").body_context(), ctx(&b("a", "b")));
    assert_eq!(env(Mode::SseKms, "other").body_context(), ctx(&b("a", "b")));
}

#[test]
fn part_lists_must_add_up_and_belong_to_a_whole_object() {
    let good = sample();
    // Encode refuses, and parse refuses the same bytes with the check removed.
    let mut wrong_sum = good.clone();
    wrong_sum.plaintext_len += 1;
    let mut overflow = good.clone();
    for p in &mut overflow.parts.as_mut().unwrap().parts {
        p.plaintext_len = format::MAX_PLAINTEXT_LEN;
    }
    overflow
        .parts
        .as_mut()
        .unwrap()
        .parts
        .extend((4..8).map(|number| Part {
            number,
            plaintext_len: format::MAX_PLAINTEXT_LEN,
        }));
    let mut of_a_part = good.clone();
    of_a_part.binding = of_a_part.binding.with_part(2).unwrap();
    for (bad, field) in [
        (&wrong_sum, "sum of part lengths"),
        (&overflow, "sum of part lengths"),
        (&of_a_part, "part count of a single part's envelope"),
    ] {
        match bad.encode() {
            Err(Error::Format(FormatError::OutOfBounds { field: f, .. })) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // Hand-built bytes: the sample's encoding with the plaintext length changed.
    let mut bytes = good.encode().unwrap();
    bytes[8..16].copy_from_slice(&12345u64.to_be_bytes());
    assert!(matches!(
        fmt_err(Envelope::parse(&bytes)),
        FormatError::OutOfBounds {
            field: "sum of part lengths",
            value,
            min: 12345,
            max: 12345
        } if value == (5 << 20) + 12345
    ));
}
