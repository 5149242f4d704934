//! The 35 Wycheproof `Cobblestone256` vectors (C2SP chunked encryption with
//! AES-256-GCM) through every body path: slice, header check, streaming with
//! several batch sizes, ranges, and files. Each failing case must fail with
//! the error its flags call for.

use std::io::Read;

use objseal::body::{self, ByteRange, DataKey, OpenReader, Opener};
use objseal::{BodyError, Error};
use sha2::{Digest, Sha512};
use wycheproof::chunked_encryption::{TestFlag, TestName, TestSet};

struct Case {
    id: usize,
    comment: String,
    flags: Vec<TestFlag>,
    valid: bool,
    key: Vec<u8>,
    ctx: Vec<u8>,
    ct: Vec<u8>,
    msg_len: Option<usize>,
    msg_sha512: Option<Vec<u8>>,
}

fn cases() -> Vec<Case> {
    let set = TestSet::load(TestName::Cobblestone256).expect("vectors load");
    let mut out = Vec::new();
    for group in set.test_groups {
        for t in group.tests {
            let ct = miniz_oxide::inflate::decompress_to_vec_zlib(&t.ct).expect("ct inflates");
            out.push(Case {
                id: t.tc_id,
                comment: t.comment.clone(),
                flags: t.flags.clone(),
                valid: !t.result.must_fail(),
                key: t.key.to_vec(),
                ctx: t.ctx.to_vec(),
                ct,
                msg_len: t.msg_length,
                msg_sha512: t.msg_sha512.as_ref().map(|h| h.to_vec()),
            });
        }
    }
    assert_eq!(out.len(), 35, "all 35 Cobblestone256 vectors");
    out
}

impl Case {
    fn has(&self, f: TestFlag) -> bool {
        self.flags.contains(&f)
    }

    fn name(&self) -> String {
        format!("tc {} ({}) {:?}", self.id, self.comment, self.flags)
    }

    /// Checks `err` is what the flags call for.
    fn check_error(&self, err: &Error, path: &str) {
        let name = self.name();
        let Error::Body(e) = err else {
            panic!("{name} via {path}: not a body error: {err:?}")
        };
        let ok = if self.has(TestFlag::HeaderFailure) {
            if self.has(TestFlag::InvalidKeySize) {
                matches!(e, BodyError::InvalidKeyLength { .. })
            } else if self.has(TestFlag::Truncation) {
                matches!(e, BodyError::TruncatedHeader { .. })
            } else {
                matches!(e, BodyError::CommitmentMismatch)
            }
        } else if self.has(TestFlag::Truncation) {
            matches!(
                e,
                BodyError::MissingFinalChunk { .. }
                    | BodyError::TruncatedChunk { .. }
                    | BodyError::ChunkAuthentication { .. }
            )
        } else {
            // ModifiedCiphertext, ChunkReordering, TrailingData. Trailing
            // bytes that leave the length invalid are refused on length alone.
            matches!(e, BodyError::ChunkAuthentication { .. })
                || (self.has(TestFlag::TrailingData)
                    && matches!(e, BodyError::TruncatedChunk { .. }))
        };
        assert!(ok, "{name} via {path}: wrong error {e:?}");
    }

    fn check_plaintext(&self, pt: &[u8], path: &str) {
        let name = self.name();
        assert_eq!(Some(pt.len()), self.msg_len, "{name} via {path}: length");
        let digest = Sha512::digest(pt);
        assert_eq!(
            Some(&digest[..]),
            self.msg_sha512.as_deref(),
            "{name} via {path}: SHA-512"
        );
    }

    /// Checks that the prefix a stream released before failing is a prefix
    /// of the longest valid message, and that one is allowed at all.
    fn check_released(&self, released: &[u8], path: &str) {
        if released.is_empty() {
            return;
        }
        let name = self.name();
        assert!(
            self.has(TestFlag::PartialPlaintext),
            "{name} via {path}: released {} bytes",
            released.len()
        );
        let len = self.msg_len.expect("PartialPlaintext has msgLength");
        assert!(
            released.len() <= len,
            "{name} via {path}: released too much"
        );
        if released.len() == len {
            self.check_plaintext(released, path);
        }
    }
}

/// The chunks a range read opens: those it touches, plus the final one when
/// the result depends on the object length.
fn opened_chunks(r: ByteRange, len: u64) -> Vec<u64> {
    let chunk = body::CHUNK_LEN as u64;
    let last = len / chunk;
    let (s, e, relative) = match r {
        ByteRange::Bounded { start, end } => (start, end, end > len),
        ByteRange::From(s) => (s, len, true),
        ByteRange::Last(n) => (len.saturating_sub(n), len, true),
    };
    let e = e.min(len);
    let mut out: Vec<u64> = if s < e {
        (s / chunk..=(e - 1) / chunk).collect()
    } else {
        Vec::new()
    };
    if relative && !out.contains(&last) {
        out.push(last);
    }
    out
}

impl Case {
    /// Whether chunk `k` of this (invalid) vector is authentic per its flags.
    fn authentic_chunk(&self, k: u64, len: u64) -> bool {
        let chunk = body::CHUNK_LEN as u64;
        (self.has(TestFlag::PartialPlaintext)
            && (k + 1) * chunk <= self.msg_len.unwrap_or(0) as u64)
            || (self.has(TestFlag::ValidFinalChunk) && k == len / chunk)
    }
}

fn key_of(c: &Case) -> Result<DataKey, Error> {
    DataKey::try_from_slice(&c.key)
}

#[test]
fn slice_open() {
    let mut valid = 0;
    for c in cases() {
        let res = key_of(&c).and_then(|k| body::open(&k, &c.ctx, &c.ct));
        match (c.valid, res) {
            (true, Ok(pt)) => {
                c.check_plaintext(&pt, "slice");
                valid += 1;
            }
            (true, Err(e)) => panic!("{}: valid vector failed: {e}", c.name()),
            (false, Ok(_)) => panic!("{}: invalid vector opened", c.name()),
            (false, Err(e)) => c.check_error(&e, "slice"),
        }
    }
    assert_eq!(valid, 10);
}

#[test]
fn header_failures_fail_on_the_header_alone() {
    for c in cases() {
        let header = &c.ct[..c.ct.len().min(body::HEADER_LEN)];
        let res = key_of(&c).and_then(|k| Opener::new(&k, &c.ctx, header));
        if c.has(TestFlag::HeaderFailure) {
            // Only the first 56 bytes were given: no chunk could be opened.
            c.check_error(&res.expect_err("header failure"), "header");
        } else {
            assert!(res.is_ok(), "{}: header should check", c.name());
        }
    }
}

#[test]
fn streaming_open() {
    for batch in [1, 2, 256] {
        for c in cases() {
            let path = format!("stream(batch {batch})");
            let reader = key_of(&c)
                .and_then(|k| OpenReader::with_batch_chunks(&c.ct[..], &k, &c.ctx, batch));
            let mut reader = match reader {
                Ok(r) => r,
                Err(e) => {
                    assert!(
                        c.has(TestFlag::HeaderFailure),
                        "{}: {path} new failed: {e}",
                        c.name()
                    );
                    c.check_error(&e, &path);
                    continue;
                }
            };
            assert!(
                !c.has(TestFlag::HeaderFailure),
                "{}: {path} header passed",
                c.name()
            );
            let mut out = Vec::new();
            let mut buf = vec![0u8; 7000];
            let err = loop {
                match reader.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) => break Some(e),
                }
            };
            match (c.valid, err) {
                (true, None) => c.check_plaintext(&out, &path),
                (true, Some(e)) => panic!("{}: {path}: {e}", c.name()),
                (false, None) => panic!("{}: {path}: invalid vector streamed to the end", c.name()),
                (false, Some(e)) => {
                    c.check_released(&out, &path);
                    c.check_error(&Error::from(e), &path);
                    // ... and keeps failing.
                    let again = reader.read(&mut buf).expect_err("keeps failing");
                    c.check_error(&Error::from(again), &path);
                }
            }
        }
    }
}

#[test]
fn ranges() {
    for c in cases() {
        let key = match key_of(&c) {
            Ok(k) => k,
            Err(e) => {
                c.check_error(&e, "range");
                continue;
            }
        };
        let full = body::open(&key, &c.ctx, &c.ct);
        let len = body::plaintext_len(c.ct.len() as u64).unwrap_or(0);
        let ranges: Vec<ByteRange> = vec![
            (0..len).into(),
            (0..u64::MAX).into(),
            ByteRange::From(0),
            ByteRange::From(len / 2),
            ByteRange::Last(1),
            ByteRange::Last(20_000),
            (len / 3..len / 2 + 1).into(),
            (16_380..16_390).into(),
        ];
        for r in ranges {
            let path = format!("range {r:?}");
            let got = body::open_range(&key, &c.ctx, &c.ct, r);
            match (&full, got) {
                (Ok(pt), Ok(part)) => {
                    let (s, e) = match r {
                        ByteRange::Bounded { start, end } => (start, end.min(len)),
                        ByteRange::From(s) => (s, len),
                        ByteRange::Last(n) => (len.saturating_sub(n), len),
                    };
                    assert_eq!(part, &pt[s as usize..e as usize], "{}: {path}", c.name());
                }
                (Ok(_), Err(Error::Body(BodyError::InvalidRange { .. }))) => {
                    assert!(
                        len == 0 || matches!(r, ByteRange::Bounded { start, .. } if start >= len),
                        "{}: {path}",
                        c.name()
                    );
                }
                (Ok(_), Err(e)) => panic!("{}: {path}: {e}", c.name()),
                (Err(_), Ok(_)) => {
                    // A range read authenticates only the chunks it opens: it
                    // may succeed on a bad body only if each of them is one
                    // the vector marks authentic.
                    assert!(
                        opened_chunks(r, len)
                            .iter()
                            .all(|&k| c.authentic_chunk(k, len)),
                        "{}: {path} succeeded on an invalid body",
                        c.name()
                    );
                }
                (Err(_), Err(e)) => {
                    if !matches!(e, Error::Body(BodyError::InvalidRange { .. })) {
                        c.check_error(&e, &path);
                    }
                }
            }
        }
    }
}

#[test]
fn files() {
    let dir = tempfile::tempdir().unwrap();
    for c in cases() {
        let Ok(key) = key_of(&c) else { continue };
        let src = dir.path().join(format!("tc{}.body", c.id));
        let dst = dir.path().join(format!("tc{}.out", c.id));
        std::fs::write(&src, &c.ct).unwrap();
        let res = body::open_file(&key, &c.ctx, &src, &dst);
        match (c.valid, res) {
            (true, Ok(n)) => {
                assert_eq!(Some(n as usize), c.msg_len);
                c.check_plaintext(&std::fs::read(&dst).unwrap(), "file");
            }
            (true, Err(e)) => panic!("{}: file: {e}", c.name()),
            (false, Ok(_)) => panic!("{}: file opened an invalid vector", c.name()),
            (false, Err(e)) => {
                c.check_error(&e, "file");
                assert!(!dst.exists(), "{}: output left behind", c.name());
            }
        }
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("objseal-tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
