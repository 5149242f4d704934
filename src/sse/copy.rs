//! CopyObject: the source opened with its own mode (the copy-source SSE-C
//! headers for an SSE-C source), the destination sealed with the request's
//! or the bucket's mode.
//!
//! A copy of an object onto itself (a new SSE-C key, another KMS key or
//! context or Bucket Key setting, another mode, SSE-S3 after a keyring
//! rotation) *rewraps*: the data key is kept, a new envelope is written,
//! and the body bytes are not touched (the body's context binds only the
//! object). [`CopyOptions::reencrypt`] asks for a fresh data key and a new
//! body instead; a copy to another object always re-encrypts, since the
//! body is bound to its object.

use std::io::{self, Read, Write};

use zeroize::Zeroizing;

use super::bucket::{BucketEncryption, ResolvedMode};
use super::error::{ErrorMapping, S3Error};
use super::multipart::rewrap_envelope;
use super::parts::open_object_reader;
use super::request::SseRequest;
use super::response::EtagHasher;
use crate::engine::{Engine, OpenWith};
use crate::error::Error;
use crate::format::{Envelope, ObjectBinding};

/// Options of a copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// Re-encrypt under a fresh data key even where a rewrap would do.
    pub reencrypt: bool,
    /// The request replaces the object's metadata (`x-amz-metadata-directive:
    /// REPLACE`), which makes a copy onto itself legal without encryption
    /// changes.
    pub metadata_replaced: bool,
}

/// The result of a copy.
#[derive(Debug, Clone)]
pub struct CopyOutcome {
    /// The destination object to store: envelope, then body.
    pub object: Vec<u8>,
    /// The destination's envelope.
    pub envelope: Envelope,
    /// Whether the data key was kept and the body bytes reused.
    pub rewrapped: bool,
    /// The destination's ETag (quoted), by the rule of [`super::etag`]: a
    /// copy is a new object stored in one piece, whatever the source was.
    pub etag: String,
}

/// 400 `InvalidRequest` for a copy onto itself that changes nothing.
pub const MSG_COPY_TO_SELF: &str = "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.";

/// CopyObject from `source` (stored as `source_object`, envelope then body)
/// to `dest` in a bucket configured by `bucket`, with the request's headers.
/// The whole copy is made in memory; [`copy_stream`] streams it.
pub fn copy_object(
    engine: &Engine,
    request: &SseRequest,
    bucket: &BucketEncryption,
    source: &ObjectBinding,
    source_object: &[u8],
    dest: &ObjectBinding,
    options: CopyOptions,
) -> Result<CopyOutcome, S3Error> {
    let map = |e: Error| ErrorMapping::default().map_error(e);
    let plan = plan(request, bucket, source, dest, options)?;
    let (env, used) = Envelope::parse_prefix(source_object).map_err(map)?;
    let body = &source_object[used..];
    // A copy of an object of unknown length records the length its body
    // gives (it is known here).
    let len = env
        .with_body_len(body.len() as u64)
        .map_err(map)?
        .plaintext_len;
    let out = Vec::with_capacity(source_object.len().saturating_add(1024));
    let done = copy_core(
        engine,
        &plan,
        source,
        &env,
        body,
        dest,
        out,
        Some(len),
        true,
    )?;
    Ok(CopyOutcome {
        object: done.dest,
        envelope: done.envelope,
        rewrapped: done.rewrapped,
        etag: done.etag,
    })
}

/// The result of a [`copy_stream`].
#[derive(Debug)]
pub struct CopyStreamOutcome<W> {
    /// The destination's envelope, to keep as its metadata. A copy of an
    /// object of unknown length (flag `01`) is one too: its body gives the
    /// length, which is also in `plaintext_len`.
    pub envelope: Envelope,
    /// Whether the data key was kept and the body left as it is: nothing
    /// was written to the destination writer, the source body *is* the
    /// destination's body.
    pub rewrapped: bool,
    /// The destination's ETag (quoted), by the rule of [`super::etag`] for
    /// an object stored with its envelope apart: the MD5 of the plaintext
    /// for SSE-S3, else of the body's bytes.
    pub etag: String,
    /// The object's plaintext length.
    pub plaintext_len: u64,
    /// The destination body's length in bytes (the source body's when
    /// rewrapped).
    pub body_len: u64,
    /// The destination writer, flushed.
    pub dest: W,
}

/// CopyObject, streamed in bounded memory: the source object `source`
/// (envelope `source_envelope`, kept apart, and body `source_body`, read
/// as a stream; for a multipart object, its part bodies one after another)
/// to `dest` in a bucket configured by `bucket`, with the request's headers
/// (the copy-source SSE-C headers open an SSE-C source; the destination is
/// sealed in the request's or the bucket's mode, any of the three from any
/// of the three). The destination's body only goes to `dest_body`; its
/// envelope is in the outcome, for the destination's metadata.
///
/// A copy to another object (or with [`CopyOptions::reencrypt`])
/// re-encrypts under a fresh data key: the source is opened a batch of
/// chunks at a time and sealed again as it comes (about four batches of
/// [`Engine::stream_batch_chunks`] in memory, whatever the object's size).
/// A source that fails to authenticate fails the copy, possibly after part
/// of the destination body was written: discard `dest_body` on any error.
///
/// A copy of an object onto itself *rewraps* (see the module docs): the new
/// envelope is returned, nothing is written to `dest_body`, and the source
/// body is read only for the ETag (decrypted, and so authenticated, when
/// the destination is SSE-S3, whose ETag is the plaintext's MD5; else
/// hashed as it is). [`copy_rewrap`] rewraps without reading the body.
///
/// ```
/// use std::sync::Arc;
/// use objseal::sse::{self, BucketEncryption, CopyOptions, SseRequest, Transport};
/// use objseal::{Engine, Keyring, Mode, ObjectBinding, SealMode};
///
/// let engine = Engine::builder().keyring(Arc::new(Keyring::in_memory("k")?)).build();
/// let (a, b) = (ObjectBinding::new("bkt", "a")?, ObjectBinding::new("bkt", "b")?);
/// let (env, body) = engine.seal_detached(&SealMode::S3, &a, b"copy me")?;
///
/// let req = SseRequest::from_headers([("x-amz-server-side-encryption", "AES256")], Transport::Https)?;
/// let bucket = BucketEncryption::default();
/// let out = sse::copy_stream(&engine, &req, &bucket, &a, &env, &body[..], &b, Vec::new(), CopyOptions::default())?;
/// assert!(!out.rewrapped);
/// assert_eq!(out.etag, sse::etag(Mode::SseS3, b"copy me", b""));
/// let copied = engine.open_detached(objseal::OpenWith::Managed, &b, &out.envelope, &out.dest)?;
/// assert_eq!(copied, b"copy me");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn copy_stream<R: Read, W: Write>(
    engine: &Engine,
    request: &SseRequest,
    bucket: &BucketEncryption,
    source: &ObjectBinding,
    source_envelope: &Envelope,
    source_body: R,
    dest: &ObjectBinding,
    dest_body: W,
    options: CopyOptions,
) -> Result<CopyStreamOutcome<W>, S3Error> {
    let plan = plan(request, bucket, source, dest, options)?;
    let len = (!source_envelope.length_from_body).then_some(source_envelope.plaintext_len);
    copy_core(
        engine,
        &plan,
        source,
        source_envelope,
        source_body,
        dest,
        dest_body,
        len,
        false,
    )
}

/// A copy of the object `binding` onto itself that keeps its body
/// ([`copy_stream`]'s rewrap, without reading the body): checks the
/// request as CopyObject does and returns the new envelope. The ETag is
/// the caller's to keep or recompute ([`copy_stream`] computes it).
/// Fails (500, a caller error) when `options` asks for re-encryption,
/// which needs the body.
pub fn copy_rewrap(
    engine: &Engine,
    request: &SseRequest,
    bucket: &BucketEncryption,
    binding: &ObjectBinding,
    envelope: &Envelope,
    options: CopyOptions,
) -> Result<Envelope, S3Error> {
    let plan = plan(request, bucket, binding, binding, options)?;
    if !plan.rewrap {
        return Err(S3Error::internal());
    }
    rewrap_envelope(engine, plan.with, binding, envelope, &plan.to.seal_mode())
        .map_err(|e| ErrorMapping::default().map_error(e))
}

/// What a copy request asks for, checked.
struct Plan<'a> {
    to: ResolvedMode<'a>,
    with: OpenWith<'a>,
    rewrap: bool,
}

fn plan<'a>(
    request: &'a SseRequest,
    bucket: &'a BucketEncryption,
    source: &ObjectBinding,
    dest: &ObjectBinding,
    options: CopyOptions,
) -> Result<Plan<'a>, S3Error> {
    let same = source == dest;
    if same && !options.reencrypt && !options.metadata_replaced && !request.is_encrypted_request() {
        return Err(S3Error::invalid_request(MSG_COPY_TO_SELF));
    }
    Ok(Plan {
        to: bucket.resolve(request)?,
        with: request.copy_source_open_with(),
        rewrap: same && !options.reencrypt,
    })
}

/// A writer that counts and hashes (for the ETag) what passes.
struct Hashed<W> {
    inner: W,
    etag: EtagHasher,
    len: u64,
}

impl<W: Write> Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.etag.stored(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that copies what it reads to `out` (when given) and hashes it.
struct Tee<'a, R, W> {
    inner: R,
    out: &'a mut Hashed<W>,
    copy: bool,
    hashed: EtagHasher,
    len: u64,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.copy {
            self.out.write_all(&buf[..n])?;
        } else {
            self.hashed.stored(&buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }
}

/// The copy: rewrap or re-encrypt per `plan`; with `together`, the
/// destination writer gets the envelope then the body (and the ETag covers
/// both), else the body only. `len` is the source's plaintext length when
/// known.
#[allow(clippy::too_many_arguments)]
fn copy_core<R: Read, W: Write>(
    engine: &Engine,
    plan: &Plan<'_>,
    source: &ObjectBinding,
    env: &Envelope,
    body: R,
    dest: &ObjectBinding,
    out: W,
    len: Option<u64>,
    together: bool,
) -> Result<CopyStreamOutcome<W>, S3Error> {
    let map = |e: Error| ErrorMapping::default().map_error(e);
    let to = plan.to.seal_mode();
    if plan.rewrap {
        let new = rewrap_envelope(engine, plan.with, source, env, &to).map_err(map)?;
        let mut out = Hashed {
            inner: out,
            etag: EtagHasher::new(new.mode),
            len: 0,
        };
        if together {
            out.write_all(&new.encode().map_err(map)?)
                .map_err(|e| map(e.into()))?;
        }
        // The body's bytes: copied (together) or only hashed; decrypted too
        // when the ETag is the plaintext's.
        let mut plain = EtagHasher::new(new.mode);
        let mut plaintext_len = len;
        let mut tee = Tee {
            inner: body,
            out: &mut out,
            copy: together,
            hashed: EtagHasher::new(new.mode),
            len: 0,
        };
        if plain.wants_plaintext() {
            let mut r =
                open_object_reader(engine, plan.with, source, env, &mut tee).map_err(map)?;
            plaintext_len = Some(pump(&mut r, |b| {
                plain.plaintext(b);
                Ok(())
            })?);
        } else {
            pump(&mut tee, |_| Ok(()))?;
        }
        let (body_len, hashed) = (tee.len, tee.hashed);
        out.flush().map_err(|e| map(e.into()))?;
        let etag = if plain.wants_plaintext() {
            plain.finish()
        } else if together {
            out.etag.finish()
        } else {
            hashed.finish()
        };
        let plaintext_len = match plaintext_len {
            Some(n) => n,
            None => crate::body::plaintext_len(body_len).map_err(map)?,
        };
        return Ok(CopyStreamOutcome {
            envelope: new,
            rewrapped: true,
            etag,
            plaintext_len,
            body_len,
            dest: out.inner,
        });
    }
    let mut src = open_object_reader(engine, plan.with, source, env, body).map_err(map)?;
    let hashed = Hashed {
        inner: out,
        etag: EtagHasher::new(to.mode()),
        len: 0,
    };
    let mut w = if together {
        match len {
            Some(n) => engine.seal_writer(&to, dest, n, hashed),
            None => engine.seal_writer_unsized(&to, dest, hashed),
        }
    } else {
        engine
            .seal_writer_detached(&to, dest, len, hashed)
            .map(|(_, w)| w)
    }
    .map_err(map)?;
    let envelope = w.envelope().clone();
    let mut plain = EtagHasher::new(to.mode());
    let plaintext_len = pump(&mut src, |b| {
        plain.plaintext(b);
        w.write_all(b)
    })?;
    let mut hashed = w.finish().map_err(map)?;
    hashed.flush().map_err(|e| map(e.into()))?;
    let etag = if plain.wants_plaintext() {
        plain.finish()
    } else {
        hashed.etag.finish()
    };
    Ok(CopyStreamOutcome {
        body_len: if together {
            hashed.len - envelope.encode().map_err(map)?.len() as u64
        } else {
            hashed.len
        },
        envelope,
        rewrapped: false,
        etag,
        plaintext_len,
        dest: hashed.inner,
    })
}

/// Reads `r` to its end through a 64 KiB buffer (wiped after), handing
/// each piece to `f`; returns the bytes read.
fn pump(r: &mut impl Read, mut f: impl FnMut(&[u8]) -> io::Result<()>) -> Result<u64, S3Error> {
    let map = |e: io::Error| ErrorMapping::default().map_error(Error::from(e));
    let mut buf = Zeroizing::new(vec![0u8; 64 * 1024]);
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(map(e)),
        };
        f(&buf[..n]).map_err(map)?;
        total += n as u64;
    }
}
