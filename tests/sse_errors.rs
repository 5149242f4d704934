//! Every S3 error row of the SSE-mode API, table-driven: request → code,
//! status, message.

#[path = "sse/common.rs"]
mod common;

use common::*;
use objseal::sse::*;
use objseal::{Mode, ObjectBinding};

type Check = Box<dyn Fn(&Fx) -> Result<(), S3Error>>;

fn parse(headers: Vec<(String, String)>, t: Transport) -> Result<SseRequest, S3Error> {
    SseRequest::from_headers(headers, t)
}

fn only_parse(headers: Vec<(String, String)>, t: Transport) -> Check {
    Box::new(move |_| parse(headers.clone(), t).map(drop))
}

/// PUT: parse, resolve against `bucket`, seal.
fn put(headers: Vec<(String, String)>, bucket: BucketEncryption) -> Check {
    Box::new(move |fx| {
        let req = parse(headers.clone(), Transport::Https)?;
        let mode = bucket.resolve(&req)?;
        let obj = ObjectBinding::new("bucket", "obj").unwrap();
        fx.engine
            .seal(&mode.seal_mode(), &obj, b"data")
            .map_err(S3Error::from)?;
        Ok(())
    })
}

fn obj() -> ObjectBinding {
    ObjectBinding::new("bucket", "obj").unwrap()
}

/// GET of an object sealed with `sealed_with` (SSE-C key byte, or SSE-S3),
/// with the request's headers, under `mapping`.
fn get(sealed_with: Option<u8>, headers: Vec<(String, String)>, mapping: ErrorMapping) -> Check {
    Box::new(move |fx| {
        let key = sealed_with.map(customer);
        let mode = match &key {
            Some(k) => objseal::SealMode::C(k.key()),
            None => objseal::SealMode::S3,
        };
        let stored = fx.engine.seal(&mode, &obj(), b"data").unwrap();
        let req = parse(headers.clone(), Transport::Https)?;
        open_object(&fx.engine, req.open_with(), &obj(), &stored).map_err(|e| mapping.map(&e))?;
        Ok(())
    })
}

fn kms_put(key: impl Fn(&Fx) -> String + 'static) -> Check {
    Box::new(move |fx| {
        let id = key(fx);
        put(
            h(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, &id)]),
            BucketEncryption::default(),
        )(fx)
    })
}

fn with(mut a: Vec<(String, String)>, b: &[(&str, &str)]) -> Vec<(String, String)> {
    a.extend(h(b));
    a
}

fn without(a: Vec<(String, String)>, name: &str) -> Vec<(String, String)> {
    a.into_iter().filter(|(n, _)| n != name).collect()
}

fn replace(a: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    a.into_iter()
        .map(|(n, v)| {
            if n == name {
                (n, value.to_owned())
            } else {
                (n, v)
            }
        })
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn every_error_row() {
    let fx = fx();
    let k1 = customer(1);
    let k2 = customer(2);
    let c1 = ssec(&k1, false);
    let x1 = ssec(&k1, true);
    let allow_c = BucketEncryption::default().allow_sse_c();
    let https = Transport::Https;
    let rows: Vec<(&str, Check, &str, u16, String)> = vec![
        (
            "SSE-C over HTTP",
            only_parse(c1.clone(), Transport::Http),
            "InvalidRequest",
            400,
            MSG_SSE_C_INSECURE.into(),
        ),
        (
            "copy-source SSE-C over HTTP",
            only_parse(x1.clone(), Transport::Http),
            "InvalidRequest",
            400,
            MSG_SSE_C_INSECURE.into(),
        ),
        (
            "key MD5 mismatch",
            only_parse(replace(c1.clone(), SSE_C_KEY_MD5, &k2.key_md5()), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_MD5_MISMATCH.into(),
        ),
        (
            "key MD5 not base64",
            only_parse(replace(c1.clone(), SSE_C_KEY_MD5, "not base64!"), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_MD5_MISMATCH.into(),
        ),
        (
            "key MD5 truncated",
            only_parse(replace(c1.clone(), SSE_C_KEY_MD5, &b64(&[0; 8])), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_MD5_MISMATCH.into(),
        ),
        (
            "missing key",
            only_parse(without(c1.clone(), SSE_C_KEY), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_KEY_MISSING.into(),
        ),
        (
            "missing key MD5",
            only_parse(without(c1.clone(), SSE_C_KEY_MD5), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_MD5_MISSING.into(),
        ),
        (
            "algorithm AES128",
            only_parse(replace(c1.clone(), SSE_C_ALGORITHM, "AES128"), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_ALGORITHM.into(),
        ),
        (
            "algorithm lower case",
            only_parse(replace(c1.clone(), SSE_C_ALGORITHM, "aes256"), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_ALGORITHM.into(),
        ),
        (
            "key of 16 bytes",
            only_parse(replace(c1.clone(), SSE_C_KEY, &b64(&[1; 16])), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_KEY_INVALID.into(),
        ),
        (
            "key of 33 bytes",
            only_parse(replace(c1.clone(), SSE_C_KEY, &b64(&[1; 33])), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_KEY_INVALID.into(),
        ),
        (
            "key not base64",
            only_parse(replace(c1.clone(), SSE_C_KEY, "%%%%"), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_KEY_INVALID.into(),
        ),
        (
            "key and MD5 without algorithm",
            only_parse(without(c1.clone(), SSE_C_ALGORITHM), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_ALGORITHM.into(),
        ),
        (
            "MD5 alone",
            only_parse(h(&[(SSE_C_KEY_MD5, &k1.key_md5())]), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_ALGORITHM.into(),
        ),
        (
            "copy-source key MD5 mismatch",
            only_parse(
                replace(x1.clone(), COPY_SSE_C_KEY_MD5, &k2.key_md5()),
                https,
            ),
            "InvalidArgument",
            400,
            MSG_SSE_C_MD5_MISMATCH.into(),
        ),
        (
            "copy-source missing key",
            only_parse(without(x1.clone(), COPY_SSE_C_KEY), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_KEY_MISSING.into(),
        ),
        (
            "copy-source missing MD5",
            only_parse(without(x1.clone(), COPY_SSE_C_KEY_MD5), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_MD5_MISSING.into(),
        ),
        (
            "copy-source without algorithm",
            only_parse(without(x1.clone(), COPY_SSE_C_ALGORITHM), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_ALGORITHM.into(),
        ),
        (
            "SSE-C with AES256",
            only_parse(with(c1.clone(), &[(SSE, "AES256")]), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_WITH_SSE.into(),
        ),
        (
            "SSE-C with aws:kms",
            only_parse(with(c1.clone(), &[(SSE, "aws:kms")]), https),
            "InvalidArgument",
            400,
            MSG_SSE_C_WITH_SSE.into(),
        ),
        (
            "KMS key id without aws:kms",
            only_parse(h(&[(SSE_KMS_KEY_ID, "alias/app")]), https),
            "InvalidArgument",
            400,
            MSG_KMS_REQUIRES_HEADER.into(),
        ),
        (
            "KMS key id with AES256",
            only_parse(h(&[(SSE, "AES256"), (SSE_KMS_KEY_ID, "alias/app")]), https),
            "InvalidArgument",
            400,
            MSG_KMS_REQUIRES_HEADER.into(),
        ),
        (
            "KMS context without aws:kms",
            only_parse(h(&[(SSE_CONTEXT, &b64(br#"{"a":"b"}"#))]), https),
            "InvalidArgument",
            400,
            MSG_KMS_REQUIRES_HEADER.into(),
        ),
        (
            "KMS key id with SSE-C",
            only_parse(with(c1.clone(), &[(SSE_KMS_KEY_ID, "alias/app")]), https),
            "InvalidArgument",
            400,
            MSG_KMS_REQUIRES_HEADER.into(),
        ),
        (
            "aws:kms:dsse not supported",
            only_parse(h(&[(SSE, "aws:kms:dsse")]), https),
            "InvalidArgument",
            400,
            MSG_SSE_UNSUPPORTED.into(),
        ),
        (
            "unknown SSE value",
            only_parse(h(&[(SSE, "AES128")]), https),
            "InvalidArgument",
            400,
            MSG_SSE_UNSUPPORTED.into(),
        ),
        (
            "SSE value lower case",
            only_parse(h(&[(SSE, "aes256")]), https),
            "InvalidArgument",
            400,
            MSG_SSE_UNSUPPORTED.into(),
        ),
        (
            "context not base64",
            only_parse(h(&[(SSE, "aws:kms"), (SSE_CONTEXT, "{}}")]), https),
            "InvalidArgument",
            400,
            MSG_KMS_CONTEXT.into(),
        ),
        (
            "context not a JSON object",
            only_parse(h(&[(SSE, "aws:kms"), (SSE_CONTEXT, &b64(b"[1,2]"))]), https),
            "InvalidArgument",
            400,
            MSG_KMS_CONTEXT.into(),
        ),
        (
            "context value not a string",
            only_parse(
                h(&[(SSE, "aws:kms"), (SSE_CONTEXT, &b64(br#"{"a":1}"#))]),
                https,
            ),
            "InvalidArgument",
            400,
            MSG_KMS_CONTEXT.into(),
        ),
        (
            "context reserved key",
            only_parse(
                h(&[
                    (SSE, "aws:kms"),
                    (SSE_CONTEXT, &b64(br#"{"aws:s3:arn":"x"}"#)),
                ]),
                https,
            ),
            "InvalidArgument",
            400,
            MSG_KMS_CONTEXT.into(),
        ),
        (
            "bucket key not a boolean",
            only_parse(h(&[(SSE, "aws:kms"), (SSE_BUCKET_KEY, "yes")]), https),
            "InvalidArgument",
            400,
            MSG_BUCKET_KEY.into(),
        ),
        (
            "duplicate header",
            only_parse(
                h(&[(SSE, "AES256"), ("X-Amz-Server-Side-Encryption", "AES256")]),
                https,
            ),
            "InvalidArgument",
            400,
            MSG_DUPLICATE_HEADER.into(),
        ),
        (
            "header too long",
            only_parse(h(&[(SSE, &"A".repeat(MAX_HEADER_VALUE_LEN + 1))]), https),
            "InvalidArgument",
            400,
            MSG_HEADER_TOO_LONG.into(),
        ),
        (
            "GET SSE-C object without key",
            get(Some(1), vec![], ErrorMapping::default()),
            "InvalidRequest",
            400,
            MSG_SSE_C_REQUIRED.into(),
        ),
        (
            "GET SSE-S3 object with SSE-C key",
            get(None, c1.clone(), ErrorMapping::default()),
            "InvalidRequest",
            400,
            MSG_NOT_APPLICABLE.into(),
        ),
        (
            "GET with wrong SSE-C key",
            get(Some(2), c1.clone(), ErrorMapping::default()),
            "AccessDenied",
            403,
            ACCESS_DENIED.into(),
        ),
        (
            "GET with wrong SSE-C key, 400 mapping",
            get(Some(2), c1.clone(), ErrorMapping::wrong_key_bad_request()),
            "InvalidArgument",
            400,
            "The provided customer key does not match the key the object was encrypted with."
                .into(),
        ),
        (
            "KMS key not found",
            kms_put(|_| "1234abcd-12ab-34cd-56ef-1234567890ab".into()),
            "KMS.NotFoundException",
            400,
            "Key '1234abcd-12ab-34cd-56ef-1234567890ab' does not exist".into(),
        ),
        (
            "KMS alias not found",
            kms_put(|_| "alias/none".into()),
            "KMS.NotFoundException",
            400,
            "Key 'alias/none' does not exist".into(),
        ),
        (
            "KMS key in another region",
            kms_put(|fx| fx.cmk.arn.replace(REGION, "eu-west-1")),
            "KMS.NotFoundException",
            400,
            format!("Invalid arn {REGION}"),
        ),
        (
            "KMS key disabled",
            kms_put(|fx| fx.disabled.arn.clone()),
            "KMS.DisabledException",
            400,
            format!("{} is disabled.", fx.disabled.arn),
        ),
        (
            "KMS key pending deletion",
            kms_put(|fx| fx.pending.arn.clone()),
            "KMS.KMSInvalidStateException",
            400,
            format!("{} is pending deletion.", fx.pending.arn),
        ),
        (
            "SSE-C blocked by the bucket",
            put(c1.clone(), BucketEncryption::default()),
            "AccessDenied",
            403,
            ACCESS_DENIED.into(),
        ),
        (
            "SSE-S3 blocked by the bucket",
            put(
                h(&[(SSE, "AES256")]),
                BucketEncryption::default().block(Mode::SseS3),
            ),
            "AccessDenied",
            403,
            ACCESS_DENIED.into(),
        ),
        (
            "default mode blocked by the bucket",
            put(vec![], BucketEncryption::default().block(Mode::SseS3)),
            "AccessDenied",
            403,
            ACCESS_DENIED.into(),
        ),
        (
            "policy denies unencrypted",
            put(vec![], allow_c.clone().deny_unencrypted()),
            "AccessDenied",
            403,
            ACCESS_DENIED.into(),
        ),
        (
            "policy requires SSE-KMS",
            put(
                h(&[(SSE, "AES256")]),
                BucketEncryption::default().require_mode(Mode::SseKms),
            ),
            "AccessDenied",
            403,
            ACCESS_DENIED.into(),
        ),
        (
            "policy requires SSE-C",
            put(
                h(&[(SSE, "AES256")]),
                allow_c.clone().require_mode(Mode::SseC),
            ),
            "AccessDenied",
            403,
            ACCESS_DENIED.into(),
        ),
        (
            "policy requires a KMS key",
            put(
                h(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, "alias/other")]),
                BucketEncryption::default().require_kms_key("alias/app"),
            ),
            "AccessDenied",
            403,
            ACCESS_DENIED.into(),
        ),
        (
            "policy requires a KMS key, none sent",
            put(
                h(&[(SSE, "aws:kms")]),
                BucketEncryption::default().require_kms_key("alias/app"),
            ),
            "AccessDenied",
            403,
            ACCESS_DENIED.into(),
        ),
        (
            "UploadPart without the SSE-C key",
            Box::new(move |fx| part(fx, vec![])),
            "InvalidRequest",
            400,
            MSG_PART_KEY_REQUIRED.into(),
        ),
        (
            "UploadPart with another SSE-C key",
            Box::new(move |fx| part(fx, ssec(&customer(2), false))),
            "InvalidArgument",
            400,
            MSG_PART_KEY_MISMATCH.into(),
        ),
        (
            "copy of an SSE-C source without copy-source key",
            Box::new(move |fx| copy(fx, vec![], false)),
            "InvalidRequest",
            400,
            MSG_SSE_C_REQUIRED.into(),
        ),
        (
            "copy onto itself changing nothing",
            Box::new(move |fx| copy(fx, ssec(&customer(1), true), true)),
            "InvalidRequest",
            400,
            MSG_COPY_TO_SELF.into(),
        ),
        (
            "range not satisfiable",
            Box::new(|fx| {
                let stored = fx
                    .engine
                    .seal(&objseal::SealMode::S3, &obj(), b"data")
                    .unwrap();
                open_object_range(
                    &fx.engine,
                    objseal::OpenWith::Managed,
                    &obj(),
                    &stored,
                    10..20,
                )
                .map(drop)
                .map_err(S3Error::from)
            }),
            "InvalidRange",
            416,
            "The requested range is not satisfiable".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, check, code, status, message) in &rows {
        match check(&fx) {
            Ok(()) => failures.push(format!("{name}: accepted")),
            Err(e) => {
                if (e.code, e.status, e.message.as_str()) != (*code, *status, message.as_str()) {
                    failures.push(format!(
                        "{name}: got {e}, want {code} ({status}): {message}"
                    ));
                }
                let xml = e.to_xml("/bucket/obj", "RID");
                assert!(
                    xml.contains(&format!("<Code>{code}</Code>")),
                    "{name}: {xml}"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows wrong:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// UploadPart of an SSE-C upload created with key 1.
fn part(fx: &Fx, headers: Vec<(String, String)>) -> Result<(), S3Error> {
    let k1 = customer(1);
    let up = MultipartUpload::create(&fx.engine, &objseal::SealMode::C(k1.key()), &obj())?;
    let req = SseRequest::from_headers(headers, Transport::Https)?;
    up.upload_part(&fx.engine, req.open_with(), 1, b"part")
        .map(drop)
}

/// Copies an SSE-C (key 1) object to another object, or onto itself.
fn copy(fx: &Fx, headers: Vec<(String, String)>, to_self: bool) -> Result<(), S3Error> {
    let k1 = customer(1);
    let stored = fx
        .engine
        .seal(&objseal::SealMode::C(k1.key()), &obj(), b"data")
        .unwrap();
    let dest = if to_self {
        obj()
    } else {
        ObjectBinding::new("bucket", "copy").unwrap()
    };
    let req = SseRequest::from_headers(headers, Transport::Https)?;
    copy_object(
        &fx.engine,
        &req,
        &BucketEncryption::default(),
        &obj(),
        &stored,
        &dest,
        CopyOptions::default(),
    )
    .map(drop)
}

#[test]
fn default_rules() {
    let b = BucketEncryption::from_default_rule("aws:kms", Some("alias/app"), true).unwrap();
    assert_eq!(
        b,
        BucketEncryption::sse_kms(Some("alias/app")).with_bucket_key(true)
    );
    assert_eq!(
        BucketEncryption::from_default_rule("AES256", None, false).unwrap(),
        BucketEncryption::default()
    );
    assert!(BucketEncryption::from_default_rule("aws:kms:dsse", None, false).is_err());
}

#[test]
fn xml_body_is_escaped() {
    let e = S3Error::invalid_argument(SSE, "a<b>&\"c'\u{1}");
    let xml = e.to_xml("/b/k<&>", "id&");
    assert_eq!(
        xml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidArgument</Code><Message>a&lt;b&gt;&amp;&quot;c&apos;\u{FFFD}</Message><ArgumentName>x-amz-server-side-encryption</ArgumentName><Resource>/b/k&lt;&amp;&gt;</Resource><RequestId>id&amp;</RequestId></Error>"
    );
}

#[test]
fn no_error_carries_the_key() {
    let k = customer(9);
    let headers = ssec(&k, false);
    let key_b64 = headers[1].1.clone();
    for t in [Transport::Http, Transport::Https] {
        let bad = replace(headers.clone(), SSE_C_KEY_MD5, &customer(8).key_md5());
        let e = SseRequest::from_headers(bad, t).unwrap_err();
        assert!(!e.to_xml("/", "r").contains(key_b64.as_str()));
        assert!(!format!("{e:?}").contains(key_b64.as_str()));
    }
    let ok = SseRequest::from_headers(headers, Transport::Https).unwrap();
    assert!(!format!("{ok:?}").contains(key_b64.as_str()));
}

#[test]
fn kms_access_denied_is_s3_access_denied_without_names() {
    let err = objseal::Error::Kms(objseal::KmsError::AccessDenied {
        principal: "mallory".into(),
        key_id: "alias/secret-project".into(),
    });
    let s3 = S3Error::from(&err);
    assert_eq!((s3.code, s3.status), ("AccessDenied", 403));
    assert_eq!(s3.message, ACCESS_DENIED);
    let xml = s3.to_xml("/bucket/o", "req-1");
    assert!(
        !xml.contains("secret-project") && !xml.contains("mallory"),
        "{xml}"
    );
}
