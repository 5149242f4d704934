//! What an embedding server needs from the SSE layer's errors and
//! outcomes: an `S3Error` keeps the objseal error it reports as its source;
//! a client body of the wrong length is a 400 distinct from a damaged
//! object; a copy reports its ETag by the same rule as a PUT.

#[path = "sse/common.rs"]
mod common;

use std::error::Error as _;
use std::io::Write;

use common::*;
use objseal::sse::*;
use objseal::{BodyError, Error, Mode, ObjectBinding, OpenWith, SealMode};

fn obj(key: &str) -> ObjectBinding {
    ObjectBinding::new("bucket", key).unwrap()
}

#[test]
fn short_and_long_client_bodies_are_400s_with_their_cause() {
    let fx = fx();
    // Declared 10 bytes, given 4: IncompleteBody.
    let mut w = fx
        .engine
        .seal_writer(&SealMode::S3, &obj("a"), 10, Vec::new())
        .unwrap();
    w.write_all(b"four").unwrap();
    let e = w.finish().unwrap_err();
    assert!(matches!(
        e,
        Error::Body(BodyError::DeclaredLength {
            declared: 10,
            received: 4
        })
    ));
    let s3 = S3Error::from(e);
    assert_eq!((s3.code, s3.status), ("IncompleteBody", 400));
    let cause = s3.source().expect("the cause is kept");
    assert!(cause.to_string().contains("10 were declared"), "{cause}");
    // Declared 3, given more: 400 InvalidRequest, not IncompleteBody.
    let mut w = fx
        .engine
        .seal_writer(&SealMode::S3, &obj("b"), 3, Vec::new())
        .unwrap();
    let io = w.write_all(b"too long").unwrap_err();
    let e = Error::from(io);
    assert!(matches!(e, Error::Body(BodyError::DeclaredLength { .. })));
    let s3 = S3Error::from(e);
    assert_eq!((s3.code, s3.status), ("InvalidRequest", 400));
    // A stored object whose body disagrees with its envelope is a 500.
    let sealed = fx
        .engine
        .seal(&SealMode::S3, &obj("c"), &[7u8; 40_000])
        .unwrap();
    let cut = &sealed[..sealed.len() - 100];
    let e = fx
        .engine
        .open(OpenWith::Managed, &obj("c"), cut)
        .unwrap_err();
    let s3 = ErrorMapping::default().map_error(e);
    assert_eq!((s3.code, s3.status), ("InternalError", 500));
    assert!(s3.source().is_some());
    // Equality ignores the source.
    assert_eq!(s3, S3Error::internal());
}

#[test]
fn copy_and_multipart_errors_keep_their_cause() {
    let fx = fx();
    let bucket = BucketEncryption::default().allow_sse_c();
    let k = customer(1);
    let sealed = fx
        .engine
        .seal(&SealMode::C(k.key()), &obj("a"), b"x")
        .unwrap();
    // Copying an SSE-C source without its key: 400, cause kept.
    let e = copy_object(
        &fx.engine,
        &SseRequest::none(),
        &bucket,
        &obj("a"),
        &sealed,
        &obj("b"),
        CopyOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.status, 400);
    assert!(e.source().is_some(), "{e:?}");
}

#[test]
fn copy_outcome_etag_follows_the_put_rule() {
    let fx = fx();
    let bucket = BucketEncryption::default();
    let data = vec![5u8; 70_000];
    let src = fx.engine.seal(&SealMode::S3, &obj("a"), &data).unwrap();
    // To another object, SSE-S3: MD5 of the plaintext, as a PUT of it.
    let out = copy_object(
        &fx.engine,
        &SseRequest::none(),
        &bucket,
        &obj("a"),
        &src,
        &obj("b"),
        CopyOptions::default(),
    )
    .unwrap();
    assert_eq!(out.etag, etag(Mode::SseS3, &data, &src));
    // Onto itself, rewrapped (body untouched), SSE-S3: still the plaintext's MD5.
    let same = copy_object(
        &fx.engine,
        &SseRequest::none(),
        &bucket,
        &obj("a"),
        &src,
        &obj("a"),
        CopyOptions {
            metadata_replaced: true,
            ..CopyOptions::default()
        },
    )
    .unwrap();
    assert!(same.rewrapped);
    assert_eq!(same.etag, out.etag);
    // SSE-KMS destination: the MD5 of the stored bytes, not the plaintext's.
    let kms = SseRequest::from_headers(
        h(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, "alias/app")]),
        Transport::Https,
    )
    .unwrap();
    let k = copy_object(
        &fx.engine,
        &kms,
        &bucket,
        &obj("a"),
        &src,
        &obj("c"),
        CopyOptions::default(),
    )
    .unwrap();
    assert_eq!(k.etag, etag(Mode::SseKms, &data, &k.object));
    assert_ne!(k.etag, out.etag);
    // The incremental hasher agrees when fed in pieces.
    let mut hs = EtagHasher::new(Mode::SseKms);
    for piece in k.object.chunks(1000) {
        hs.stored(piece);
        hs.plaintext(b"ignored");
    }
    assert_eq!(hs.finish(), k.etag);
}

#[test]
fn mode_header_values_are_header_values() {
    assert_eq!(Mode::SseS3.header_value(), Some("AES256"));
    assert_eq!(Mode::SseKms.header_value(), Some("aws:kms"));
    assert_eq!(Mode::SseC.header_value(), None);
    assert_eq!(
        [Mode::SseS3, Mode::SseKms, Mode::SseC].map(Mode::name),
        ["SSE-S3", "SSE-KMS", "SSE-C"]
    );
}
