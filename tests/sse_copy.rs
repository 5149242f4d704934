//! CopyObject through the SSE layer: source opened with its own mode,
//! destination sealed with the request's or bucket's mode; copies onto
//! itself rewrap without touching the body unless re-encryption is asked.

#[path = "sse/common.rs"]
mod common;

use common::*;
use objseal::sse::*;
use objseal::{Envelope, Mode, ObjectBinding, OpenWith, SealMode};

fn a() -> ObjectBinding {
    ObjectBinding::new("bucket", "a").unwrap()
}

fn b() -> ObjectBinding {
    ObjectBinding::new("bucket", "b").unwrap()
}

fn body_of(object: &[u8]) -> &[u8] {
    let (_, used) = Envelope::parse_prefix(object).unwrap();
    &object[used..]
}

fn req(headers: Vec<(String, String)>) -> SseRequest {
    SseRequest::from_headers(headers, Transport::Https).unwrap()
}

#[test]
fn copy_between_objects_and_modes() {
    let fx = fx();
    let bucket = BucketEncryption::default().allow_sse_c();
    let k = customer(1);
    let k2 = customer(2);
    let data = vec![42u8; 50_000];
    let s3 = fx.engine.seal(&SealMode::S3, &a(), &data).unwrap();
    let ssec_src = fx.engine.seal(&SealMode::C(k.key()), &a(), &data).unwrap();

    // SSE-S3 -> SSE-KMS, another object.
    let r = req(h(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, "alias/app")]));
    let out = copy_object(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &s3,
        &b(),
        CopyOptions::default(),
    )
    .unwrap();
    assert!(!out.rewrapped);
    assert_eq!(out.envelope.mode, Mode::SseKms);
    assert_eq!(
        open_object(&fx.engine, OpenWith::Managed, &b(), &out.object).unwrap(),
        data
    );
    let hs = response_headers(Operation::Copy, &out.envelope, &r).unwrap();
    assert_eq!(hs[1], (SSE_KMS_KEY_ID, fx.cmk.arn.clone()));

    // SSE-C source (copy-source headers) -> bucket default SSE-S3.
    let r = req(ssec(&k, true));
    let out = copy_object(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &ssec_src,
        &b(),
        CopyOptions::default(),
    )
    .unwrap();
    assert_eq!(out.envelope.mode, Mode::SseS3);
    assert_eq!(
        open_object(&fx.engine, OpenWith::Managed, &b(), &out.object).unwrap(),
        data
    );

    // SSE-C -> SSE-C under another key.
    let r = req([ssec(&k, true), ssec(&k2, false)].concat());
    let out = copy_object(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &ssec_src,
        &b(),
        CopyOptions::default(),
    )
    .unwrap();
    assert_eq!(
        open_object(&fx.engine, OpenWith::Customer(k2.key()), &b(), &out.object).unwrap(),
        data
    );
    let hs = response_headers(Operation::Copy, &out.envelope, &r).unwrap();
    assert_eq!(
        hs,
        [
            (SSE_C_ALGORITHM, "AES256".to_owned()),
            (SSE_C_KEY_MD5, k2.key_md5())
        ]
    );

    // Wrong copy-source key: 403.
    let r = req(ssec(&k2, true));
    let e = copy_object(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &ssec_src,
        &b(),
        CopyOptions::default(),
    )
    .unwrap_err();
    assert_eq!((e.code, e.status), ("AccessDenied", 403));
    // Copy-source key for an SSE-S3 source: not applicable.
    let e = copy_object(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &s3,
        &b(),
        CopyOptions::default(),
    )
    .unwrap_err();
    assert_eq!((e.code, e.status), ("InvalidRequest", 400));
    // Destination SSE-C on a bucket that blocks it.
    let r = req(ssec(&k2, false));
    let e = copy_object(
        &fx.engine,
        &r,
        &BucketEncryption::default(),
        &a(),
        &s3,
        &b(),
        CopyOptions::default(),
    )
    .unwrap_err();
    assert_eq!((e.code, e.status), ("AccessDenied", 403));
}

#[test]
fn copy_to_self_rewraps_without_rewriting_data() {
    let fx = fx();
    let bucket = BucketEncryption::default().allow_sse_c();
    let k = customer(1);
    let k2 = customer(2);
    let data = vec![7u8; 40_000];

    // New SSE-C key.
    let src = fx.engine.seal(&SealMode::C(k.key()), &a(), &data).unwrap();
    let r = req([ssec(&k, true), ssec(&k2, false)].concat());
    let out = copy_object(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &src,
        &a(),
        CopyOptions::default(),
    )
    .unwrap();
    assert!(out.rewrapped);
    assert_eq!(body_of(&out.object), body_of(&src));
    assert_eq!(
        open_object(&fx.engine, OpenWith::Customer(k2.key()), &a(), &out.object).unwrap(),
        data
    );
    assert!(open_object(&fx.engine, OpenWith::Customer(k.key()), &a(), &out.object).is_err());

    // New KMS key.
    let src = fx
        .engine
        .seal(&SealMode::kms(&fx.cmk.arn), &a(), &data)
        .unwrap();
    let r = req(h(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, &fx.cmk2.arn)]));
    let out = copy_object(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &src,
        &a(),
        CopyOptions::default(),
    )
    .unwrap();
    assert!(out.rewrapped);
    assert_eq!(out.envelope.wrapped_key.key_id, fx.cmk2.arn);
    assert_eq!(body_of(&out.object), body_of(&src));
    assert_eq!(
        open_object(&fx.engine, OpenWith::Managed, &a(), &out.object).unwrap(),
        data
    );

    // Re-encryption when asked: a new body.
    let out2 = copy_object(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &out.object,
        &a(),
        CopyOptions {
            reencrypt: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!out2.rewrapped);
    assert_ne!(body_of(&out2.object), body_of(&out.object));
    assert_eq!(
        open_object(&fx.engine, OpenWith::Managed, &a(), &out2.object).unwrap(),
        data
    );

    // SSE-S3 onto itself with metadata replaced: legal, rewraps.
    let src = fx.engine.seal(&SealMode::S3, &a(), &data).unwrap();
    let out = copy_object(
        &fx.engine,
        &SseRequest::none(),
        &bucket,
        &a(),
        &src,
        &a(),
        CopyOptions {
            metadata_replaced: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(out.rewrapped);
    assert_eq!(
        open_object(&fx.engine, OpenWith::Managed, &a(), &out.object).unwrap(),
        data
    );
}

#[test]
fn copy_of_a_multipart_object() {
    let fx = fx();
    let bucket = BucketEncryption::default().allow_sse_c();
    let k = customer(1);
    let k2 = customer(2);
    let up = MultipartUpload::create(&fx.engine, &SealMode::C(k.key()), &a()).unwrap();
    let s = up.sealer(&fx.engine, OpenWith::Customer(k.key())).unwrap();
    let p1 = s.seal(1, &[1u8; 20_000]).unwrap();
    let p2 = s.seal(2, &[2u8; 300]).unwrap();
    let list = [
        CompletedPart {
            number: 1,
            etag: p1.record.etag.clone(),
        },
        CompletedPart {
            number: 2,
            etag: p2.record.etag.clone(),
        },
    ];
    let done = up
        .complete(
            &fx.engine,
            OpenWith::Customer(k.key()),
            &list,
            &[p1.record.clone(), p2.record.clone()],
        )
        .unwrap();
    let mut src = done.envelope.encode().unwrap();
    src.extend_from_slice(&p1.body);
    src.extend_from_slice(&p2.body);
    let data = [vec![1u8; 20_000], vec![2u8; 300]].concat();

    // Onto itself under a new SSE-C key: parts and bodies kept.
    let r = req([ssec(&k, true), ssec(&k2, false)].concat());
    let out = copy_object(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &src,
        &a(),
        CopyOptions::default(),
    )
    .unwrap();
    assert!(out.rewrapped);
    assert_eq!(out.envelope.parts, done.envelope.parts);
    assert_eq!(
        open_object(&fx.engine, OpenWith::Customer(k2.key()), &a(), &out.object).unwrap(),
        data
    );
    assert_eq!(
        open_object_range(
            &fx.engine,
            OpenWith::Customer(k2.key()),
            &a(),
            &out.object,
            19_990..20_010
        )
        .unwrap(),
        &data[19_990..20_010]
    );

    // To another object as SSE-S3: one part.
    let r = req(ssec(&k, true));
    let out = copy_object(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &src,
        &b(),
        CopyOptions::default(),
    )
    .unwrap();
    assert!(out.envelope.parts.is_none());
    assert_eq!(
        fx.engine
            .open(OpenWith::Managed, &b(), &out.object)
            .unwrap(),
        data
    );
}
