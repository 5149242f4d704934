//! Multipart uploads through the SSE layer: 1..10,000 parts of mixed sizes
//! sealed out of order in parallel, whole and ranged opens across part
//! boundaries, tampering with the part list detected, SSE-C key rules,
//! abort.

#[path = "sse/common.rs"]
mod common;

use std::collections::HashMap;

use common::*;
use objseal::sse::*;
use objseal::{BodyError, Error, Mode, ObjectBinding, OpenWith, SealMode};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

fn obj() -> ObjectBinding {
    ObjectBinding::new("bucket", "big/object").unwrap()
}

/// Uploads `sizes.len()` parts (numbered 1..) in a shuffled order, in
/// parallel, completes them, and returns (stored object, plaintext).
fn upload(
    fx: &Fx,
    mode: &SealMode<'_>,
    with: OpenWith<'_>,
    sizes: &[usize],
    rng: &mut StdRng,
) -> (Vec<u8>, Vec<u8>, Completed) {
    let up = MultipartUpload::create(&fx.engine, mode, &obj()).unwrap();
    // The store keeps the creation envelope and reloads it per request.
    let up = MultipartUpload::from_envelope(
        objseal::Envelope::parse(&up.envelope().encode().unwrap()).unwrap(),
    )
    .unwrap();
    let mut plain: Vec<Vec<u8>> = sizes
        .iter()
        .map(|&n| {
            let mut v = vec![0u8; n];
            rng.fill(&mut v[..]);
            v
        })
        .collect();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.shuffle(rng);
    let sealer = up.sealer(&fx.engine, with).unwrap();
    let sealed: Vec<SealedPart> = order
        .par_iter()
        .map(|&i| sealer.seal(i as u32 + 1, &plain[i]).unwrap())
        .collect();
    let store: HashMap<u32, SealedPart> =
        sealed.into_iter().map(|p| (p.record.number, p)).collect();
    let records: Vec<UploadedPart> = store.values().map(|p| p.record.clone()).collect();
    let requested: Vec<CompletedPart> = (1..=sizes.len() as u32)
        .map(|n| CompletedPart {
            number: n,
            etag: store[&n].record.etag.clone(),
        })
        .collect();
    let done = up.complete(&fx.engine, with, &requested, &records).unwrap();
    assert!(done.etag.ends_with(&format!("-{}\"", sizes.len())));
    let mut object = done.envelope.encode().unwrap();
    for n in &done.order {
        object.extend_from_slice(&store[n].body);
    }
    let whole: Vec<u8> = plain.iter_mut().flat_map(std::mem::take).collect();
    (object, whole, done)
}

fn check_ranges(
    fx: &Fx,
    with: OpenWith<'_>,
    object: &[u8],
    whole: &[u8],
    rng: &mut StdRng,
    n: usize,
) {
    let len = whole.len() as u64;
    for _ in 0..n {
        if len == 0 {
            break;
        }
        let a = rng.random_range(0..len);
        let b = rng.random_range(a..=len.min(a + 70_000));
        let got = open_object_range(&fx.engine, with, &obj(), object, a..b).unwrap();
        assert_eq!(got, &whole[a as usize..b as usize], "range {a}..{b}");
    }
    if len > 0 {
        let tail = open_object_range(
            &fx.engine,
            with,
            &obj(),
            object,
            objseal::body::ByteRange::Last(len.min(20_000)),
        )
        .unwrap();
        assert_eq!(tail, &whole[(len - len.min(20_000)) as usize..]);
        let from = open_object_range(&fx.engine, with, &obj(), object, len / 2..).unwrap();
        assert_eq!(from, &whole[(len / 2) as usize..]);
    }
}

#[test]
fn mixed_sizes_out_of_order_in_parallel() {
    let fx = fx();
    let mut rng = StdRng::seed_from_u64(5);
    let boundary = [0, 1, 16_383, 16_384, 16_385, 100_000, 5, 40_000];
    for count in [1usize, 2, 3, 8, 33] {
        let sizes: Vec<usize> = (0..count)
            .map(|i| boundary[(i * 7 + count) % boundary.len()])
            .collect();
        let (object, whole, done) = upload(&fx, &SealMode::S3, OpenWith::Managed, &sizes, &mut rng);
        assert_eq!(done.envelope.plaintext_len, whole.len() as u64);
        assert_eq!(
            open_object(&fx.engine, OpenWith::Managed, &obj(), &object).unwrap(),
            whole
        );
        check_ranges(&fx, OpenWith::Managed, &object, &whole, &mut rng, 40);
    }
}

#[test]
fn ten_thousand_small_parts() {
    let fx = fx();
    let mut rng = StdRng::seed_from_u64(10_000);
    let sizes: Vec<usize> = (0..10_000).map(|_| rng.random_range(0..48)).collect();
    let (object, whole, _) = upload(&fx, &SealMode::S3, OpenWith::Managed, &sizes, &mut rng);
    assert_eq!(
        open_object(&fx.engine, OpenWith::Managed, &obj(), &object).unwrap(),
        whole
    );
    check_ranges(&fx, OpenWith::Managed, &object, &whole, &mut rng, 30);
}

#[test]
fn kms_and_sse_c_uploads() {
    let fx = fx();
    let mut rng = StdRng::seed_from_u64(7);
    let sizes = [20_000, 3, 16_384, 0, 9];
    let kms = SealMode::kms(&fx.cmk.arn).with_bucket_key(true);
    let (object, whole, done) = upload(&fx, &kms, OpenWith::Managed, &sizes, &mut rng);
    assert_eq!(
        open_object(&fx.engine, OpenWith::Managed, &obj(), &object).unwrap(),
        whole
    );
    let req = SseRequest::none();
    let hs = response_headers(Operation::CompleteMultipartUpload, &done.envelope, &req).unwrap();
    assert_eq!(hs[0], (SSE, "aws:kms".to_owned()));
    let k = customer(3);
    let (object, whole, _) = upload(
        &fx,
        &SealMode::C(k.key()),
        OpenWith::Customer(k.key()),
        &sizes,
        &mut rng,
    );
    assert_eq!(
        open_object(&fx.engine, OpenWith::Customer(k.key()), &obj(), &object).unwrap(),
        whole
    );
    check_ranges(
        &fx,
        OpenWith::Customer(k.key()),
        &object,
        &whole,
        &mut rng,
        20,
    );
    let wrong = customer(4);
    let e = open_object(&fx.engine, OpenWith::Customer(wrong.key()), &obj(), &object).unwrap_err();
    assert_eq!(S3Error::from(&e).status, 403);
}

/// Rewrapping a completed multipart object to another key or mode keeps
/// every part body and the part list, and the object still opens whole.
#[test]
fn multipart_rewrap_to_another_key_and_mode() {
    let fx = fx();
    let mut rng = StdRng::seed_from_u64(11);
    let sizes = [20_000, 7, 16_384];
    let kms = SealMode::kms(&fx.cmk.arn);
    let (object, whole, _) = upload(&fx, &kms, OpenWith::Managed, &sizes, &mut rng);
    let (env, used) = objseal::Envelope::parse_prefix(&object).unwrap();
    let bodies = &object[used..];
    // The engine's single-body entry points say what to use instead.
    let e = fx
        .engine
        .open(OpenWith::Managed, &obj(), &object)
        .unwrap_err();
    assert!(
        matches!(e, Error::Body(BodyError::MultipartObject { parts: 3 })),
        "{e:?}"
    );
    let k = customer(9);
    for (to, with) in [
        (SealMode::kms(&fx.cmk2.arn), OpenWith::Managed),
        (SealMode::S3, OpenWith::Managed),
        (SealMode::C(k.key()), OpenWith::Customer(k.key())),
    ] {
        let new = rewrap_envelope(&fx.engine, OpenWith::Managed, &obj(), &env, &to).unwrap();
        assert_eq!(new.mode, to.mode());
        assert_eq!(new.parts, env.parts);
        let mut moved = new.encode().unwrap();
        moved.extend_from_slice(bodies);
        assert_eq!(
            open_object(&fx.engine, with, &obj(), &moved).unwrap(),
            whole
        );
    }
}

#[test]
fn sse_c_parts_must_repeat_the_key() {
    let fx = fx();
    let k = customer(1);
    let up = MultipartUpload::create(&fx.engine, &SealMode::C(k.key()), &obj()).unwrap();
    let e = up
        .upload_part(&fx.engine, OpenWith::Managed, 1, b"x")
        .unwrap_err();
    assert_eq!(
        (e.code, e.status, e.message.as_str()),
        ("InvalidRequest", 400, MSG_PART_KEY_REQUIRED)
    );
    let other = customer(2);
    let e = up
        .upload_part(&fx.engine, OpenWith::Customer(other.key()), 1, b"x")
        .unwrap_err();
    assert_eq!(
        (e.code, e.status, e.message.as_str()),
        ("InvalidArgument", 400, MSG_PART_KEY_MISMATCH)
    );
    let p = up
        .upload_part(&fx.engine, OpenWith::Customer(k.key()), 1, b"x")
        .unwrap();
    let e = up
        .upload_part(&fx.engine, OpenWith::Managed, 10_001, b"x")
        .unwrap_err();
    assert_eq!(e.status, 400);
    // Completion needs the key too (the part list is MACed under the data key).
    let req = [CompletedPart {
        number: 1,
        etag: p.record.etag.clone(),
    }];
    assert_eq!(
        up.complete(
            &fx.engine,
            OpenWith::Managed,
            &req,
            std::slice::from_ref(&p.record)
        )
        .unwrap_err()
        .status,
        400
    );
    up.complete(&fx.engine, OpenWith::Customer(k.key()), &req, &[p.record])
        .unwrap();
}

#[test]
fn completion_list_is_checked() {
    let fx = fx();
    let up = MultipartUpload::create(&fx.engine, &SealMode::S3, &obj()).unwrap();
    let s = up.sealer(&fx.engine, OpenWith::Managed).unwrap();
    let p1 = s.seal(1, b"one").unwrap().record;
    let p2 = s.seal(2, b"two").unwrap().record;
    let recs = [p1.clone(), p2.clone()];
    let cp = |n: u32, e: &str| CompletedPart {
        number: n,
        etag: e.to_owned(),
    };
    let e = up
        .complete(
            &fx.engine,
            OpenWith::Managed,
            &[cp(2, &p2.etag), cp(1, &p1.etag)],
            &recs,
        )
        .unwrap_err();
    assert_eq!((e.code, e.status), ("InvalidPartOrder", 400));
    let e = up
        .complete(
            &fx.engine,
            OpenWith::Managed,
            &[cp(1, &p1.etag), cp(3, &p2.etag)],
            &recs,
        )
        .unwrap_err();
    assert_eq!((e.code, e.status), ("InvalidPart", 400));
    let e = up
        .complete(&fx.engine, OpenWith::Managed, &[cp(1, &p2.etag)], &recs)
        .unwrap_err();
    assert_eq!((e.code, e.status), ("InvalidPart", 400));
    let e = up
        .complete(&fx.engine, OpenWith::Managed, &[], &recs)
        .unwrap_err();
    assert_eq!((e.code, e.status), ("MalformedXML", 400));
    // A client may complete with a subset: that is the object it asked for.
    let done = up
        .complete(&fx.engine, OpenWith::Managed, &[cp(2, &p2.etag)], &recs)
        .unwrap();
    assert_eq!(done.order, [2]);
}

fn mismatch(r: Result<Vec<u8>, Error>) {
    assert!(
        matches!(
            r,
            Err(Error::Body(BodyError::PartListMismatch)) | Err(Error::Format(_))
        ),
        "{r:?}"
    );
}

#[test]
fn reordering_or_dropping_parts_is_detected() {
    let fx = fx();
    let mut rng = StdRng::seed_from_u64(9);
    let sizes = [1000, 1000, 1000, 500];
    let (object, _, done) = upload(&fx, &SealMode::S3, OpenWith::Managed, &sizes, &mut rng);
    let env = done.envelope.clone();
    let env_len = env.encode().unwrap().len();
    let body = &object[env_len..];
    let part_len = objseal::body::sealed_len(1000).unwrap() as usize;
    let with = OpenWith::Managed;
    // Swap the bodies of parts 1 and 2 (same size).
    let mut swapped = object[..env_len].to_vec();
    swapped.extend_from_slice(&body[part_len..2 * part_len]);
    swapped.extend_from_slice(&body[..part_len]);
    swapped.extend_from_slice(&body[2 * part_len..]);
    mismatch(open_object(&fx.engine, with, &obj(), &swapped));
    mismatch(open_object_range(&fx.engine, with, &obj(), &swapped, 0..10));
    // Drop part 2 from the list and its body.
    let mut dropped_env = env.clone();
    let list = dropped_env.parts.as_mut().unwrap();
    list.parts.remove(1);
    dropped_env.plaintext_len -= 1000;
    let mut dropped = dropped_env.encode().unwrap();
    dropped.extend_from_slice(&body[..part_len]);
    dropped.extend_from_slice(&body[2 * part_len..]);
    mismatch(open_object(&fx.engine, with, &obj(), &dropped));
    // Renumber parts (2 <-> 3 by relabelling numbers).
    let mut renum = env.clone();
    renum.parts.as_mut().unwrap().parts[3].number = 9;
    let mut r = renum.encode().unwrap();
    r.extend_from_slice(body);
    mismatch(open_object(&fx.engine, with, &obj(), &r));
    // A part replaced by another upload of the same number.
    let up = MultipartUpload::from_envelope({
        let mut e = env.clone();
        e.plaintext_len = 0;
        e.parts = None;
        e
    })
    .unwrap();
    let other = up.upload_part(&fx.engine, with, 1, &[7u8; 1000]).unwrap();
    let mut replaced = object[..env_len].to_vec();
    replaced.extend_from_slice(&other.body);
    replaced.extend_from_slice(&body[part_len..]);
    mismatch(open_object(&fx.engine, with, &obj(), &replaced));
    // Truncated body.
    mismatch(open_object(
        &fx.engine,
        with,
        &obj(),
        &object[..object.len() - 1],
    ));
    // Another object's name.
    let elsewhere = ObjectBinding::new("bucket", "other").unwrap();
    assert!(open_object(&fx.engine, with, &elsewhere, &object).is_err());
}

#[test]
fn abort_leaves_nothing_behind() {
    let fx = fx();
    // A store: upload state and part bodies, keyed by upload.
    let mut store: HashMap<String, Vec<u8>> = HashMap::new();
    let up = MultipartUpload::create(&fx.engine, &SealMode::S3, &obj()).unwrap();
    store.insert("upload".into(), up.envelope().encode().unwrap());
    for n in 1..=3 {
        let p = up
            .upload_part(&fx.engine, OpenWith::Managed, n, b"data")
            .unwrap();
        store.insert(format!("part-{n}"), p.body);
    }
    up.abort();
    store.clear();
    assert!(store.is_empty());
    // A completed object's envelope is not an upload.
    let mut rng = StdRng::seed_from_u64(1);
    let (_, _, done) = upload(&fx, &SealMode::S3, OpenWith::Managed, &[1, 2], &mut rng);
    let e = MultipartUpload::from_envelope(done.envelope).unwrap_err();
    assert_eq!((e.code, e.status), ("NoSuchUpload", 404));
    let _ = Mode::SseS3;
}

/// [`MultipartFile`] reads a multipart object from a file with positioned
/// reads: the same bytes as [`open_object`] and [`open_object_range`],
/// whole (streamed part after part) and for random ranges across parts.
#[test]
fn multipart_file_reads_equal_in_memory_reads() {
    use std::io::Read;
    let fx = fx();
    let mut rng = StdRng::seed_from_u64(77);
    let dir = tempfile::tempdir().unwrap();
    for sizes in [
        &[0usize][..],
        &[5],
        &[16_384, 0, 1, 40_000],
        &[100_000, 16_383, 7],
    ] {
        let (object, whole, _) = upload(&fx, &SealMode::S3, OpenWith::Managed, sizes, &mut rng);
        let path = dir.path().join("object");
        std::fs::write(&path, &object).unwrap();
        let file = MultipartFile::open(&fx.engine, OpenWith::Managed, &obj(), &path).unwrap();
        assert_eq!(file.envelope().plaintext_len, whole.len() as u64);
        let len = whole.len() as u64;
        for _ in 0..40 {
            let a = rng.random_range(0..=len);
            let b = rng.random_range(a..=len + 10);
            let r: objseal::body::ByteRange = (a..b).into();
            let mem = open_object_range(&fx.engine, OpenWith::Managed, &obj(), &object, r);
            match (file.open_range(r), mem) {
                (Ok(got), Ok(want)) => {
                    assert_eq!(got, want, "{sizes:?} {a}..{b}");
                    assert_eq!(got, &whole[a as usize..(b.min(len)) as usize]);
                }
                (Err(Error::Body(BodyError::InvalidRange { .. })), Err(_)) => {
                    assert!(a >= len && a != b, "{sizes:?} {a}..{b}")
                }
                (got, want) => panic!("{sizes:?} {a}..{b}: {got:?} vs {want:?}"),
            }
        }
        let tail = file.open_range(objseal::body::ByteRange::Last(7)).unwrap();
        assert_eq!(tail, &whole[whole.len().saturating_sub(7)..]);
        let mut all = Vec::new();
        file.into_reader().read_to_end(&mut all).unwrap();
        assert_eq!(all, whole, "{sizes:?}");
    }
}

/// Tampering is refused: a part header (covered by the MAC) when the file
/// is opened, a chunk when it is read, and a part body changed after the
/// file was opened and checked; a single-part object is not a multipart file.
#[test]
fn multipart_file_refuses_tampering() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let fx = fx();
    let mut rng = StdRng::seed_from_u64(78);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("object");
    let (object, whole, done) = upload(
        &fx,
        &SealMode::S3,
        OpenWith::Managed,
        &[30_000, 20_000],
        &mut rng,
    );
    let used = done.envelope.encode().unwrap().len();
    let part2 = used + objseal::body::sealed_len(30_000).unwrap() as usize;
    let open = || MultipartFile::open(&fx.engine, OpenWith::Managed, &obj(), &path);

    let mut bad = object.clone();
    bad[part2 + 3] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    assert!(matches!(
        open().unwrap_err(),
        Error::Body(BodyError::PartListMismatch)
    ));
    std::fs::write(&path, &object[..object.len() - 1]).unwrap();
    assert!(matches!(
        open().unwrap_err(),
        Error::Body(BodyError::PartListMismatch)
    ));

    let mut bad = object.clone();
    bad[part2 + 100] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let file = open().unwrap();
    assert_eq!(
        file.open_range(0..10).unwrap().len(),
        10,
        "part 1 is intact"
    );
    assert!(matches!(
        file.open_range(30_000..30_001).unwrap_err(),
        Error::Body(BodyError::ChunkAuthentication { index: 0 })
    ));
    let mut r = file.into_reader();
    let mut sink = Vec::new();
    assert!(r.read_to_end(&mut sink).is_err());
    assert!(sink.len() <= 30_000, "nothing of part 2 released");
    assert!(r.read(&mut [0u8; 16]).is_err(), "it keeps failing");

    // Changed after the check: another body's header in part 2's place.
    // Range reads and the reader decrypt with the header that was checked,
    // never the one in the file now, so they give the object's plaintext
    // from the authentic chunks, and fail once a chunk they read was
    // changed.
    let file = open_after_check(&fx, &path, &object);
    assert_eq!(
        file.open_range(30_000..30_010).unwrap(),
        &whole[30_000..30_010]
    );
    let mut all = Vec::new();
    file.into_reader().read_to_end(&mut all).unwrap();
    assert_eq!(all, whole);
    let file = open_after_check(&fx, &path, &object);
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(part2 as u64 + 56 + 3)).unwrap();
    f.write_all(&[object[part2 + 56 + 3] ^ 1]).unwrap();
    drop(f);
    let mut sink = Vec::new();
    assert!(file.into_reader().read_to_end(&mut sink).is_err());
    assert!(sink.len() <= 30_000, "nothing of part 2 released");

    let single = fx.engine.seal(&SealMode::S3, &obj(), b"one part").unwrap();
    std::fs::write(&path, &single).unwrap();
    assert!(matches!(
        open().unwrap_err(),
        Error::Format(objseal::FormatError::OutOfBounds { .. })
    ));
}

/// Writes `object` to `path`, opens it as a [`MultipartFile`] (checking its
/// part list), then puts another body's header in place of part 2's.
fn open_after_check(fx: &Fx, path: &std::path::Path, object: &[u8]) -> MultipartFile {
    use std::io::{Seek, SeekFrom, Write};
    std::fs::write(path, object).unwrap();
    let file = MultipartFile::open(&fx.engine, OpenWith::Managed, &obj(), path).unwrap();
    let used = file.envelope().encode().unwrap().len();
    let part2 = used + objseal::body::sealed_len(30_000).unwrap() as usize;
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(part2 as u64)).unwrap();
    f.write_all(&object[used..used + 56]).unwrap();
    file
}
