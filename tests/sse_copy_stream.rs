//! CopyObject streamed (`copy_stream`): every source mode to every
//! destination mode gives the plaintext and the ETag rule of the in-memory
//! `copy_object`; multipart and unknown-length sources; copies onto
//! themselves rewrap without writing (`copy_rewrap` without reading) the
//! body; damaged sources fail; memory stays within the batch setting.

#[path = "sse/common.rs"]
mod common;

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use objseal::body;
use objseal::sse::*;
use objseal::{Engine, Envelope, Keyring, Mode, ObjectBinding, OpenWith, SealMode};

fn a() -> ObjectBinding {
    ObjectBinding::new("bucket", "a").unwrap()
}

fn b() -> ObjectBinding {
    ObjectBinding::new("bucket", "b").unwrap()
}

fn req(headers: Vec<(String, String)>) -> SseRequest {
    SseRequest::from_headers(headers, Transport::Https).unwrap()
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 131 + i / 977) as u8).collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum M {
    S3,
    Kms,
    C,
}

#[test]
fn every_mode_to_every_mode_matches_copy_object() {
    let fx = fx();
    let bucket = BucketEncryption::default().allow_sse_c();
    let (k1, k2) = (customer(1), customer(2));
    let pt = data(100_000);
    for src in [M::S3, M::Kms, M::C] {
        let seal = match src {
            M::S3 => SealMode::S3,
            M::Kms => SealMode::kms(&fx.cmk.arn),
            M::C => SealMode::C(k1.key()),
        };
        let (env, body) = fx.engine.seal_detached(&seal, &a(), &pt).unwrap();
        let mut stored = env.encode().unwrap();
        stored.extend_from_slice(&body);
        for dst in [M::S3, M::Kms, M::C] {
            let mut headers = match dst {
                M::S3 => h(&[(SSE, "AES256")]),
                M::Kms => h(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, "alias/app")]),
                M::C => ssec(&k2, false),
            };
            if src == M::C {
                headers.extend(ssec(&k1, true));
            }
            let r = req(headers);
            let with = match dst {
                M::C => OpenWith::Customer(k2.key()),
                _ => OpenWith::Managed,
            };
            let out = copy_stream(
                &fx.engine,
                &r,
                &bucket,
                &a(),
                &env,
                &body[..],
                &b(),
                Vec::new(),
                CopyOptions::default(),
            )
            .unwrap();
            let mem = copy_object(
                &fx.engine,
                &r,
                &bucket,
                &a(),
                &stored,
                &b(),
                CopyOptions::default(),
            )
            .unwrap();
            assert!(!out.rewrapped && !mem.rewrapped);
            assert_eq!(out.envelope.mode, mem.envelope.mode, "{src:?} -> {dst:?}");
            assert_eq!(out.plaintext_len, pt.len() as u64);
            assert_eq!(out.body_len, out.dest.len() as u64);
            assert_eq!(out.body_len, body::sealed_len(pt.len() as u64).unwrap());
            let copied = fx
                .engine
                .open_detached(with, &b(), &out.envelope, &out.dest)
                .unwrap();
            assert!(copied == pt, "{src:?} -> {dst:?}");
            assert!(open_object(&fx.engine, with, &b(), &mem.object).unwrap() == pt);
            // The ETag rule: the plaintext's MD5 for SSE-S3 (the same as the
            // in-memory copy's), else the stored bytes' (body only when the
            // envelope is kept apart).
            let mode = out.envelope.mode;
            match dst {
                M::S3 => {
                    assert_eq!(out.etag, etag(Mode::SseS3, &pt, b""));
                    assert_eq!(out.etag, mem.etag);
                }
                _ => {
                    assert_eq!(out.etag, etag(mode, b"", &out.dest));
                    assert_eq!(mem.etag, etag(mode, b"", &mem.object));
                    assert_ne!(out.etag, etag(Mode::SseS3, &pt, b""));
                }
            }
            // The response headers describe the destination.
            let hs = response_headers(Operation::Copy, &out.envelope, &r).unwrap();
            assert_eq!(
                hs,
                response_headers(Operation::Copy, &mem.envelope, &r).unwrap()
            );
        }
    }
}

#[test]
fn multipart_and_unknown_length_sources() {
    let fx = fx();
    let bucket = BucketEncryption::default().allow_sse_c();
    let k = customer(1);
    // A multipart SSE-C source: parts 1 and 3, streamed.
    let up = MultipartUpload::create(&fx.engine, &SealMode::C(k.key()), &a()).unwrap();
    let s = up.sealer(&fx.engine, OpenWith::Customer(k.key())).unwrap();
    let p1 = s.seal(1, &data(20_000)).unwrap();
    let p3 = s.seal(3, &[3u8; 300]).unwrap();
    let asked = [&p1, &p3].map(|p| CompletedPart {
        number: p.record.number,
        etag: p.record.etag.clone(),
    });
    let done = up
        .complete(
            &fx.engine,
            OpenWith::Customer(k.key()),
            &asked,
            &[p1.record.clone(), p3.record.clone()],
        )
        .unwrap();
    let body = [p1.body.clone(), p3.body.clone()].concat();
    let whole = [data(20_000), vec![3u8; 300]].concat();
    let r = req([ssec(&k, true), h(&[(SSE, "aws:kms")])].concat());
    let out = copy_stream(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &done.envelope,
        &body[..],
        &b(),
        Vec::new(),
        CopyOptions::default(),
    )
    .unwrap();
    assert!(out.envelope.parts.is_none());
    assert_eq!(out.plaintext_len, 20_300);
    assert_eq!(
        fx.engine
            .open_detached(OpenWith::Managed, &b(), &out.envelope, &out.dest)
            .unwrap(),
        whole
    );
    // Its part bodies swapped: the copy fails (the list is checked at the
    // end of the stream at the latest).
    let swapped = [p3.body.clone(), p1.body.clone()].concat();
    let e = copy_stream(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &done.envelope,
        &swapped[..],
        &b(),
        Vec::new(),
        CopyOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.status, 500);
    assert!(e.source.is_some());

    // A source of unknown length: the copy is one too, and opens.
    let pt = data(70_000);
    let (env, mut w) = fx
        .engine
        .seal_writer_detached(&SealMode::S3, &a(), None, Vec::new())
        .unwrap();
    w.write_all(&pt).unwrap();
    let src = w.finish().unwrap();
    let r = req(h(&[(SSE, "AES256")]));
    let out = copy_stream(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &env,
        &src[..],
        &b(),
        Vec::new(),
        CopyOptions::default(),
    )
    .unwrap();
    assert!(out.envelope.length_from_body);
    assert_eq!(out.plaintext_len, 70_000);
    assert_eq!(out.etag, etag(Mode::SseS3, &pt, b""));
    assert_eq!(
        fx.engine
            .open_detached(OpenWith::Managed, &b(), &out.envelope, &out.dest)
            .unwrap(),
        pt
    );
    // In memory, the length is known and recorded.
    let mut stored = env.encode().unwrap();
    stored.extend_from_slice(&src);
    let mem = copy_object(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &stored,
        &b(),
        CopyOptions::default(),
    )
    .unwrap();
    assert!(!mem.envelope.length_from_body);
    assert_eq!(mem.envelope.plaintext_len, 70_000);
    assert_eq!(mem.etag, out.etag);
}

#[test]
fn onto_itself_rewraps_without_writing_the_body() {
    let fx = fx();
    let bucket = BucketEncryption::default().allow_sse_c();
    let (k1, k2) = (customer(1), customer(2));
    let pt = data(40_000);

    // SSE-C, new key: nothing written, the same body opens with the new key,
    // the ETag is the body's MD5.
    let (env, body) = fx
        .engine
        .seal_detached(&SealMode::C(k1.key()), &a(), &pt)
        .unwrap();
    let r = req([ssec(&k1, true), ssec(&k2, false)].concat());
    let out = copy_stream(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &env,
        &body[..],
        &a(),
        Vec::new(),
        CopyOptions::default(),
    )
    .unwrap();
    assert!(out.rewrapped);
    assert!(out.dest.is_empty());
    assert_eq!(out.body_len, body.len() as u64);
    assert_eq!(out.plaintext_len, pt.len() as u64);
    assert_eq!(out.etag, etag(Mode::SseC, b"", &body));
    assert_eq!(
        fx.engine
            .open_detached(OpenWith::Customer(k2.key()), &a(), &out.envelope, &body)
            .unwrap(),
        pt
    );
    // Without the body at all.
    let env2 = copy_rewrap(&fx.engine, &r, &bucket, &a(), &env, CopyOptions::default()).unwrap();
    assert_eq!(
        fx.engine
            .open_detached(OpenWith::Customer(k2.key()), &a(), &env2, &body)
            .unwrap(),
        pt
    );
    let e = copy_rewrap(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &env,
        CopyOptions {
            reencrypt: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.status, 500);
    let e = copy_rewrap(
        &fx.engine,
        &SseRequest::none(),
        &bucket,
        &a(),
        &env,
        CopyOptions::default(),
    )
    .unwrap_err();
    assert_eq!((e.code, e.status), ("InvalidRequest", 400));

    // SSE-KMS to SSE-S3 onto itself: the ETag becomes the plaintext's MD5,
    // so the body is decrypted (and authenticated) for it.
    let (env, body) = fx
        .engine
        .seal_detached(&SealMode::kms(&fx.cmk.arn), &a(), &pt)
        .unwrap();
    let r = req(h(&[(SSE, "AES256")]));
    let out = copy_stream(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &env,
        &body[..],
        &a(),
        Vec::new(),
        CopyOptions::default(),
    )
    .unwrap();
    assert!(out.rewrapped && out.dest.is_empty());
    assert_eq!(out.envelope.mode, Mode::SseS3);
    assert_eq!(out.etag, etag(Mode::SseS3, &pt, b""));
    let mut bad = body.clone();
    bad[20_000] ^= 1;
    let e = copy_stream(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &env,
        &bad[..],
        &a(),
        Vec::new(),
        CopyOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.status, 500);
    // Re-encryption when asked: a new body.
    let out = copy_stream(
        &fx.engine,
        &r,
        &bucket,
        &a(),
        &env,
        &body[..],
        &a(),
        Vec::new(),
        CopyOptions {
            reencrypt: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!out.rewrapped);
    assert_ne!(out.dest, body);
    assert_eq!(
        fx.engine
            .open_detached(OpenWith::Managed, &a(), &out.envelope, &out.dest)
            .unwrap(),
        pt
    );
}

#[test]
fn damaged_sources_and_wrong_keys_fail() {
    let fx = fx();
    let bucket = BucketEncryption::default().allow_sse_c();
    let k = customer(1);
    let pt = data(60_000);
    let (env, body) = fx
        .engine
        .seal_detached(&SealMode::C(k.key()), &a(), &pt)
        .unwrap();
    let r = req(ssec(&k, true));
    let copy = |body: &[u8], r: &SseRequest| {
        copy_stream(
            &fx.engine,
            r,
            &bucket,
            &a(),
            &env,
            body,
            &b(),
            Vec::new(),
            CopyOptions::default(),
        )
    };
    let mut bad = body.clone();
    bad[30_000] ^= 1;
    assert_eq!(copy(&bad, &r).unwrap_err().status, 500);
    assert_eq!(copy(&body[..body.len() - 1], &r).unwrap_err().status, 500);
    let e = copy(&body, &req(ssec(&customer(2), true))).unwrap_err();
    assert_eq!((e.code, e.status), ("AccessDenied", 403));
    let e = copy(&body, &SseRequest::none()).unwrap_err();
    assert_eq!(e.status, 400);
}

/// A writer and a reader that record the largest buffer they were given.
struct Watch<T>(T, Arc<AtomicUsize>);

impl<W: Write> Write for Watch<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.1.fetch_max(buf.len(), Ordering::Relaxed);
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<R: Read> Read for Watch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.1.fetch_max(buf.len(), Ordering::Relaxed);
        self.0.read(buf)
    }
}

#[test]
fn a_large_copy_moves_through_batch_sized_buffers() {
    let fx = fx();
    let engine = Engine::builder()
        .keyring(Arc::new(Keyring::in_memory("s3").unwrap()))
        .kms(fx.kms.clone())
        .stream_batch_chunks(8)
        .build();
    let limit = 8 * body::SEALED_CHUNK_LEN;
    let pt = data(6 << 20);
    let (env, body) = engine.seal_detached(&SealMode::S3, &a(), &pt).unwrap();
    let (read, written) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let r = req(h(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, &fx.cmk.arn)]));
    let out = copy_stream(
        &engine,
        &r,
        &BucketEncryption::default(),
        &a(),
        &env,
        Watch(&body[..], read.clone()),
        &b(),
        Watch(Vec::new(), written.clone()),
        CopyOptions::default(),
    )
    .unwrap();
    let (read, written) = (
        read.load(Ordering::Relaxed),
        written.load(Ordering::Relaxed),
    );
    eprintln!(
        "6 MiB copy, batch 8 chunks ({limit} B): largest read {read} B, largest write {written} B"
    );
    assert!(read <= limit && written <= limit, "{read} {written}");
    let got = engine
        .open_detached(OpenWith::Managed, &b(), &out.envelope, &out.dest.0)
        .unwrap();
    assert!(got == pt);
    let _ = Envelope::parse(&out.envelope.encode().unwrap()).unwrap();
}
