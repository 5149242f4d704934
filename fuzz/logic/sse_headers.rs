//! Logic of the `sse_headers` fuzz target, shared with the replay test
//! (`tests/fuzz_replay.rs`).
//!
//! Input: a transport byte, then header records separated by `0x00`. A
//! record's first byte picks its name (one of the ten SSE headers, in
//! mixed case, or, for other values, the record's text up to `:`); the rest
//! is the value. The header set goes through `SseRequest::from_headers` and
//! `BucketEncryption::resolve` under several bucket configurations; SSE-S3
//! and SSE-C results are sealed and their response headers built. Nothing
//! may panic, every error has an S3 code and a 4xx/5xx status, and no
//! response header carries the customer key.

use std::hint::black_box;
use std::sync::{Arc, OnceLock};

use objseal::sse::{self, BucketEncryption, Operation, ResolvedMode, SseRequest, Transport};
use objseal::{Engine, Keyring, Mode, ObjectBinding};

const NAMES: [&str; 10] = [
    sse::SSE,
    sse::SSE_KMS_KEY_ID,
    sse::SSE_CONTEXT,
    sse::SSE_BUCKET_KEY,
    sse::SSE_C_ALGORITHM,
    sse::SSE_C_KEY,
    sse::SSE_C_KEY_MD5,
    sse::COPY_SSE_C_ALGORITHM,
    sse::COPY_SSE_C_KEY,
    sse::COPY_SSE_C_KEY_MD5,
];

fn engine() -> &'static (Engine, ObjectBinding) {
    static E: OnceLock<(Engine, ObjectBinding)> = OnceLock::new();
    E.get_or_init(|| {
        let ring = Arc::new(Keyring::in_memory("fuzz").expect("keyring"));
        (
            Engine::builder().keyring(ring).build(),
            ObjectBinding::new("bucket", "key").expect("binding"),
        )
    })
}

fn check(e: &sse::S3Error) {
    assert!(!e.code.is_empty() && !e.message.is_empty());
    assert!((400..600).contains(&e.status), "{e}");
    black_box(e.to_xml("/bucket/key", "fuzz"));
}

pub fn run(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let transport = if first & 1 == 0 {
        Transport::Https
    } else {
        Transport::Http
    };
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    for record in rest.split(|b| *b == 0).take(64) {
        let Some((&sel, value)) = record.split_first() else {
            continue;
        };
        let i = usize::from(sel) % 16;
        if i < NAMES.len() {
            let name = if sel & 0x80 != 0 {
                NAMES[i].to_uppercase()
            } else {
                NAMES[i].to_owned()
            };
            headers.push((name, value.to_vec()));
        } else {
            let text = String::from_utf8_lossy(value);
            let (name, value) = text.split_once(':').unwrap_or((&text, ""));
            headers.push((name.to_owned(), value.as_bytes().to_vec()));
        }
    }
    let req = match SseRequest::from_headers(
        headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
        transport,
    ) {
        Ok(r) => r,
        Err(e) => return check(&e),
    };
    let buckets = [
        BucketEncryption::default(),
        BucketEncryption::default().allow_sse_c(),
        BucketEncryption::sse_kms(Some("alias/k"))
            .with_bucket_key(first & 2 != 0)
            .allow_sse_c(),
        BucketEncryption::default()
            .deny_unencrypted()
            .require_mode(Mode::SseKms),
        BucketEncryption::default()
            .require_kms_key("alias/k")
            .block(Mode::SseS3),
    ];
    let (engine, obj) = engine();
    for bucket in &buckets {
        let resolved = match bucket.resolve(&req) {
            Ok(r) => r,
            Err(e) => {
                check(&e);
                continue;
            }
        };
        if matches!(resolved, ResolvedMode::Kms { .. }) {
            continue;
        }
        let (env, body) = engine
            .seal_detached(&resolved.seal_mode(), obj, b"fuzz")
            .expect("seal");
        for op in [Operation::Put, Operation::Get, Operation::Copy] {
            match sse::response_headers(op, &env, &req) {
                Ok(hs) => {
                    for (_, v) in &hs {
                        for (n, secret) in &headers {
                            if n.eq_ignore_ascii_case(sse::SSE_C_KEY) && secret.len() > 8 {
                                assert!(
                                    !v.as_bytes()
                                        .windows(secret.len())
                                        .any(|w| w == secret.as_slice())
                                );
                            }
                        }
                    }
                }
                Err(e) => check(&e),
            }
        }
        let opened = sse::open_object_detached(engine, req.open_with(), obj, &env, &body);
        match opened {
            Ok(p) => assert_eq!(p, b"fuzz"),
            Err(e) => check(&sse::S3Error::from(&e)),
        }
    }
}
