//! Every header combination S3 accepts round-trips: parse → resolve → seal
//! → response headers (PUT, GET, HEAD) → open; the key is never echoed.

#[path = "sse/common.rs"]
mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use objseal::sse::*;
use objseal::{Mode, ObjectBinding};

/// (headers, bucket, expected mode, expected KMS ARN, expected bucket key, echo context)
type Case<'a> = (
    Vec<(String, String)>,
    &'a BucketEncryption,
    Mode,
    Option<String>,
    bool,
    bool,
);

fn ctx_header(json: &str) -> String {
    B64.encode(json.as_bytes())
}

#[test]
fn accepted_combinations_round_trip() {
    let fx = fx();
    let k = customer(5);
    let kx = customer(6);
    let c = ssec(&k, false);
    let x = ssec(&kx, true);
    let ctx = ctx_header(r#"{"team":"data","env":"prod"}"#);
    let bucket = BucketEncryption::default().allow_sse_c();
    let kms_bucket = BucketEncryption::sse_kms(Some(&fx.cmk2.arn))
        .allow_sse_c()
        .with_bucket_key(true);
    let id = fx.cmk.key_id.clone();
    let arn = fx.cmk.arn.clone();
    // (headers, bucket, expected mode, expected KMS ARN, expected bucket key, echo context)
    let mut cases: Vec<Case<'_>> = vec![
        (vec![], &bucket, Mode::SseS3, None, false, false),
        (
            h(&[(SSE, "AES256")]),
            &bucket,
            Mode::SseS3,
            None,
            false,
            false,
        ),
        (
            h(&[(SSE, "aws:kms")]),
            &bucket,
            Mode::SseKms,
            Some(arn.clone()),
            false,
            false,
        ),
        (
            h(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, &id)]),
            &bucket,
            Mode::SseKms,
            Some(arn.clone()),
            false,
            false,
        ),
        (
            h(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, &arn)]),
            &bucket,
            Mode::SseKms,
            Some(arn.clone()),
            false,
            false,
        ),
        (
            h(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, "alias/app")]),
            &bucket,
            Mode::SseKms,
            Some(arn.clone()),
            false,
            false,
        ),
        (
            h(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, &id), (SSE_CONTEXT, &ctx)]),
            &bucket,
            Mode::SseKms,
            Some(arn.clone()),
            false,
            true,
        ),
        (
            h(&[(SSE, "aws:kms"), (SSE_BUCKET_KEY, "true")]),
            &bucket,
            Mode::SseKms,
            Some(arn.clone()),
            true,
            false,
        ),
        (
            h(&[
                (SSE, "aws:kms"),
                (SSE_BUCKET_KEY, "TRUE"),
                (SSE_CONTEXT, &ctx),
            ]),
            &bucket,
            Mode::SseKms,
            Some(arn.clone()),
            true,
            true,
        ),
        (
            h(&[(SSE, "aws:kms"), (SSE_BUCKET_KEY, "false")]),
            &kms_bucket,
            Mode::SseKms,
            Some(arn.clone()),
            false,
            false,
        ),
        (
            h(&[(SSE, "AES256"), (SSE_BUCKET_KEY, "true")]),
            &bucket,
            Mode::SseS3,
            None,
            false,
            false,
        ),
        (
            vec![],
            &kms_bucket,
            Mode::SseKms,
            Some(fx.cmk2.arn.clone()),
            true,
            false,
        ),
        (
            h(&[(SSE, "AES256")]),
            &kms_bucket,
            Mode::SseS3,
            None,
            false,
            false,
        ),
        (c.clone(), &bucket, Mode::SseC, None, false, false),
        (c.clone(), &kms_bucket, Mode::SseC, None, false, false),
        (
            [c.clone(), x.clone()].concat(),
            &bucket,
            Mode::SseC,
            None,
            false,
            false,
        ),
        (
            [h(&[(SSE, "AES256")]), x.clone()].concat(),
            &bucket,
            Mode::SseS3,
            None,
            false,
            false,
        ),
        (x.clone(), &bucket, Mode::SseS3, None, false, false),
        (
            h(&[
                ("X-AMZ-SERVER-SIDE-ENCRYPTION", " AES256 "),
                ("Content-Type", "x"),
            ]),
            &bucket,
            Mode::SseS3,
            None,
            false,
            false,
        ),
    ];
    // Mixed-case names and surrounding whitespace for the SSE-C trio too.
    cases.push((
        c.iter()
            .map(|(n, v)| (n.to_uppercase(), format!("  {v}\t")))
            .collect(),
        &bucket,
        Mode::SseC,
        None,
        false,
        false,
    ));
    let obj = ObjectBinding::new("bucket", "obj").unwrap();
    for (i, (headers, bucket, mode, kms_arn, bucket_key, echo)) in cases.into_iter().enumerate() {
        let req = SseRequest::from_headers(headers.clone(), Transport::Https)
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
        let resolved = bucket
            .resolve(&req)
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(resolved.mode(), mode, "case {i}");
        let (env, body) = fx
            .engine
            .seal_detached(&resolved.seal_mode(), &obj, b"payload")
            .unwrap();
        for op in [
            Operation::Put,
            Operation::Get,
            Operation::Head,
            Operation::Copy,
            Operation::CreateMultipartUpload,
            Operation::UploadPart,
        ] {
            let got = response_headers(op, &env, &req).unwrap();
            let mut want = Vec::new();
            match mode {
                Mode::SseS3 => want.push((SSE, "AES256".to_owned())),
                Mode::SseKms => {
                    want.push((SSE, "aws:kms".to_owned()));
                    want.push((SSE_KMS_KEY_ID, kms_arn.clone().unwrap()));
                    if bucket_key {
                        want.push((SSE_BUCKET_KEY, "true".to_owned()));
                    }
                    if echo
                        && matches!(
                            op,
                            Operation::Put | Operation::Copy | Operation::CreateMultipartUpload
                        )
                    {
                        let back = got
                            .iter()
                            .find(|(n, _)| *n == SSE_CONTEXT)
                            .expect("context echoed");
                        let json: serde_json::Value =
                            serde_json::from_slice(&B64.decode(&back.1).unwrap()).unwrap();
                        assert_eq!(json, serde_json::json!({"team": "data", "env": "prod"}));
                        want.push(back.clone());
                    }
                }
                _ => {
                    want.push((SSE_C_ALGORITHM, "AES256".to_owned()));
                    want.push((SSE_C_KEY_MD5, k.key_md5()));
                }
            }
            assert_eq!(got, want, "case {i} {op:?}");
            for (_, v) in &got {
                for (n, secret) in &headers {
                    if n.eq_ignore_ascii_case(SSE_C_KEY) || n.eq_ignore_ascii_case(COPY_SSE_C_KEY) {
                        assert!(!v.contains(secret.trim()), "case {i}: key echoed");
                    }
                }
            }
        }
        // GET with the same headers opens it.
        assert_eq!(
            fx.engine
                .open_detached(req.open_with(), &obj, &env, &body)
                .unwrap(),
            b"payload",
            "case {i}"
        );
        // ETag rule: plaintext MD5 only for SSE-S3.
        let stored = [env.encode().unwrap(), body.clone()].concat();
        let tag = etag(mode, b"payload", &stored);
        let plain_md5 = etag(Mode::SseS3, b"payload", &[]);
        assert_eq!(tag == plain_md5, mode == Mode::SseS3, "case {i}");
        // Copy-source key parsed on its own.
        let has_x = headers.iter().any(|(n, _)| n == COPY_SSE_C_KEY);
        assert_eq!(
            req.copy_source_customer_key().map(|k| k.key_md5()),
            has_x.then(|| kx.key_md5()),
            "case {i}"
        );
    }
}

#[test]
fn sse_c_get_without_headers_in_response_is_refused() {
    let fx = fx();
    let k = customer(5);
    let obj = ObjectBinding::new("bucket", "obj").unwrap();
    let (env, _) = fx
        .engine
        .seal_detached(&objseal::SealMode::C(k.key()), &obj, b"x")
        .unwrap();
    let e = response_headers(Operation::Get, &env, &SseRequest::none()).unwrap_err();
    assert_eq!((e.code, e.status), ("InvalidRequest", 400));
    assert!(
        response_headers(
            Operation::CompleteMultipartUpload,
            &env,
            &SseRequest::none()
        )
        .unwrap()
        .is_empty()
    );
}

#[test]
fn multipart_etag_follows_s3() {
    // MD5 of the concatenated binary MD5s, then "-N".
    let a = etag(Mode::SseS3, b"a", &[]);
    let b = etag(Mode::SseS3, b"b", &[]);
    let t = multipart_etag(&[a, b]);
    assert!(t.starts_with('"') && t.ends_with("-2\""), "{t}");
    assert_eq!(t.len(), 2 + 32 + 2);
}

#[cfg(feature = "http")]
#[test]
fn header_map_round_trip() {
    let mut map = http::HeaderMap::new();
    map.insert(SSE, http::HeaderValue::from_static("aws:kms"));
    map.insert(SSE_KMS_KEY_ID, http::HeaderValue::from_static("alias/app"));
    let req = SseRequest::from_header_map(&map, Transport::Https).unwrap();
    assert_eq!(req.kms_key_id(), Some("alias/app"));
    let mut out = http::HeaderMap::new();
    extend_header_map(&mut out, &[(SSE, "aws:kms".to_owned())]).unwrap();
    assert_eq!(out.get(SSE).unwrap(), "aws:kms");
}
