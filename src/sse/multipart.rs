//! Multipart uploads: create, upload parts (each sealed on its own, in any
//! order, in parallel), complete into one object, or abort.
//!
//! **Layout.** A completed multipart object is an envelope whose part list
//! is set, followed by the part bodies in part-number order. Part `n` is a
//! Cobblestone-256 body under the object's data key, with its own salt and
//! the context of `binding.with_part(n)` (`docs/FORMAT.md` §2), so a part
//! cannot be opened as another part or as a whole object.
//!
//! **Wrapped key.** The data key is wrapped once, at creation, when the
//! object's length is unknown: the wrapped-key section of a multipart
//! envelope is the one of the creation envelope, bound to plaintext length
//! 0 and no part list. A reader unwraps it with that view of the envelope;
//! the part-list MAC authenticates the lengths.
//!
//! **Part-list MAC.** With `DK` the data key and `B`, `K` the bucket and
//! key (`docs/FORMAT.md` §6):
//!
//! ```text
//! mac_key = HMAC-SHA-256(DK, "objseal/v1 part list key" || 0x00)
//! mac     = HMAC-SHA-256(mac_key, "objseal/v1 part list" || 0x00
//!             || u16(len B) || B || u16(len K) || K || u16(count)
//!             || for each part in order: u32(number) || u64(plaintext length)
//!             || for each part in order: body[0..56])
//! ```
//!
//! `body[0..56]` is the part body's salt and key commitment, which bind
//! the exact part body: a part that is dropped, reordered, replaced by
//! another upload of the same number, or resized fails the MAC before any
//! part is decrypted. Computing the MAC needs the data key, so completing
//! an SSE-C upload needs the customer key (S3 accepts the SSE-C headers on
//! CompleteMultipartUpload).
//!
//! **Abort.** objseal keeps no state for an upload: the store holds the
//! creation envelope ([`MultipartUpload::envelope`]) and the part bodies,
//! and deletes both on abort; [`MultipartUpload::abort`] drops what the
//! process holds.

use std::io::{self, Write};

use hmac::{Hmac, KeyInit, Mac};
use rayon::prelude::*;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::{
    ErrorMapping, MSG_NOT_APPLICABLE, MSG_PART_KEY_MISMATCH, MSG_PART_KEY_REQUIRED, S3Error,
};
use super::parts::{PartSpan, check_part_list, part_spans};
use super::response::{EtagHasher, etag, multipart_etag};
use crate::body::{self, ByteRange, DataKey, HEADER_LEN, SealWriter};
use crate::engine::{Engine, OpenWith, SealMode};
use crate::error::{BodyError, Error, KeyError};
use crate::format::{
    Envelope, MAX_PART_NUMBER, MAX_PLAINTEXT_LEN, Mode, ObjectBinding, PART_LIST_MAC_LEN, Part,
    PartList,
};

const MAC_KEY_LABEL: &[u8] = b"objseal/v1 part list key\0";
const MAC_LABEL: &[u8] = b"objseal/v1 part list\0";

/// An upload in progress: its creation envelope (the data key wrapped for
/// the whole object), which the store keeps until completion or abort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUpload {
    envelope: Envelope,
}

/// What the store keeps of an uploaded part besides its body: number,
/// length, ETag and the body's first 56 bytes (salt and commitment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    /// Part number, 1 to 10000.
    pub number: u32,
    /// Plaintext length.
    pub plaintext_len: u64,
    /// The part's ETag (quoted).
    pub etag: String,
    /// The part body's header.
    pub header: [u8; HEADER_LEN],
}

/// A sealed part: the body to store and its record.
#[derive(Debug, Clone)]
pub struct SealedPart {
    /// The part's record.
    pub record: UploadedPart,
    /// The sealed part body.
    pub body: Vec<u8>,
}

/// One entry of a CompleteMultipartUpload request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// Part number.
    pub number: u32,
    /// The ETag the client got for it.
    pub etag: String,
}

/// A completed upload.
#[derive(Debug, Clone)]
pub struct Completed {
    /// The object's envelope, part list and MAC included.
    pub envelope: Envelope,
    /// The part numbers, in the order their bodies follow the envelope.
    pub order: Vec<u32>,
    /// The object's ETag (`"…-N"`).
    pub etag: String,
}

/// Seals parts of one upload under its data key, unwrapped once; share it
/// across threads to seal parts in parallel. [`PartSealer::writer`] streams
/// a part of any size (known or not) in bounded memory;
/// [`PartSealer::seal`] seals a part held in memory.
pub struct PartSealer {
    dek: DataKey,
    binding: ObjectBinding,
    mode: Mode,
    batch: usize,
}

impl core::fmt::Debug for PartSealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PartSealer")
            .field("binding", &self.binding)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The S3 error for a failure to unwrap an upload's key for a part:
/// missing SSE-C key, another SSE-C key, SSE-C headers for a non-SSE-C upload.
pub fn part_error(err: &Error) -> S3Error {
    match err {
        Error::Key(KeyError::CustomerKeyRequired) => {
            S3Error::invalid_request(MSG_PART_KEY_REQUIRED)
        }
        Error::Key(KeyError::AccessDenied) => {
            S3Error::invalid_argument(super::request::SSE_C_KEY, MSG_PART_KEY_MISMATCH)
        }
        Error::Key(KeyError::CustomerKeyNotApplicable { .. }) => {
            S3Error::invalid_request(MSG_NOT_APPLICABLE)
        }
        other => ErrorMapping::default().map(other),
    }
}

impl MultipartUpload {
    /// CreateMultipartUpload: draws the object's data key and wraps it under
    /// `mode` for `binding` (a whole object, not a part).
    pub fn create(
        engine: &Engine,
        mode: &SealMode<'_>,
        binding: &ObjectBinding,
    ) -> Result<Self, S3Error> {
        if binding.part().is_some() {
            return Err(S3Error::invalid_request(
                "A multipart upload is created for a whole object",
            ));
        }
        let (envelope, _empty_body) = engine
            .seal_detached(mode, binding, b"")
            .map_err(|e| ErrorMapping::default().map_error(e))?;
        Ok(MultipartUpload { envelope })
    }

    /// The upload's creation envelope, for the store to keep.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// An upload from its kept creation envelope.
    pub fn from_envelope(envelope: Envelope) -> Result<Self, S3Error> {
        if envelope.plaintext_len != 0
            || envelope.parts.is_some()
            || envelope.binding.part().is_some()
        {
            return Err(S3Error::new(
                "NoSuchUpload",
                404,
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
            ));
        }
        Ok(MultipartUpload { envelope })
    }

    /// The upload's mode.
    pub fn mode(&self) -> Mode {
        self.envelope.mode
    }

    /// The object.
    pub fn binding(&self) -> &ObjectBinding {
        &self.envelope.binding
    }

    /// Unwraps the upload's data key with `with` (for SSE-C, the key the
    /// upload was created with, else 400) to seal parts.
    pub fn sealer(&self, engine: &Engine, with: OpenWith<'_>) -> Result<PartSealer, S3Error> {
        let dek = engine
            .data_key(with, &self.envelope.binding, &self.envelope)
            .map_err(|e| part_error(&e).with_source(e))?;
        Ok(PartSealer {
            dek,
            binding: self.envelope.binding.clone(),
            mode: self.envelope.mode,
            batch: engine.stream_batch_chunks(),
        })
    }

    /// UploadPart: seals one part (see [`MultipartUpload::sealer`] to seal
    /// many under one unwrap).
    pub fn upload_part(
        &self,
        engine: &Engine,
        with: OpenWith<'_>,
        number: u32,
        plaintext: &[u8],
    ) -> Result<SealedPart, S3Error> {
        self.sealer(engine, with)?.seal(number, plaintext)
    }

    /// CompleteMultipartUpload: checks the client's list (ascending, each
    /// part uploaded with that ETag) against `uploaded`, and writes the
    /// object's envelope with the authenticated part list. The stored
    /// object is that envelope followed by the bodies in `order`.
    pub fn complete(
        &self,
        engine: &Engine,
        with: OpenWith<'_>,
        requested: &[CompletedPart],
        uploaded: &[UploadedPart],
    ) -> Result<Completed, S3Error> {
        if requested.is_empty() || requested.len() > MAX_PART_NUMBER as usize {
            return Err(S3Error::new(
                "MalformedXML",
                400,
                "The XML you provided was not well-formed or did not validate against our published schema",
            ));
        }
        if requested.windows(2).any(|w| w[1].number <= w[0].number) {
            return Err(S3Error::new(
                "InvalidPartOrder",
                400,
                "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
            ));
        }
        let mut records = Vec::with_capacity(requested.len());
        let mut total: u64 = 0;
        for want in requested {
            let found = uploaded
                .iter()
                .rev()
                .find(|u| u.number == want.number)
                .filter(|u| u.etag.trim_matches('"') == want.etag.trim_matches('"'));
            let Some(rec) = found else {
                return Err(S3Error::new(
                    "InvalidPart",
                    400,
                    "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
                ));
            };
            total = total
                .checked_add(rec.plaintext_len)
                .filter(|t| *t <= MAX_PLAINTEXT_LEN)
                .ok_or_else(|| {
                    S3Error::new(
                        "EntityTooLarge",
                        400,
                        "Your proposed upload exceeds the maximum allowed size",
                    )
                })?;
            records.push(rec);
        }
        let dek = engine
            .data_key(with, &self.envelope.binding, &self.envelope)
            .map_err(|e| part_error(&e).with_source(e))?;
        let parts: Vec<Part> = records
            .iter()
            .map(|r| Part {
                number: r.number,
                plaintext_len: r.plaintext_len,
            })
            .collect();
        let headers: Vec<&[u8; HEADER_LEN]> = records.iter().map(|r| &r.header).collect();
        let mac = part_list_mac(&dek, &self.envelope, &parts, &headers);
        let mut envelope = self.envelope.clone();
        envelope.plaintext_len = total;
        envelope.parts = Some(PartList { parts, mac });
        let etags: Vec<&str> = records.iter().map(|r| r.etag.as_str()).collect();
        Ok(Completed {
            envelope,
            order: records.iter().map(|r| r.number).collect(),
            etag: multipart_etag(&etags),
        })
    }

    /// AbortMultipartUpload: drops the upload. The store deletes the creation
    /// envelope and every part body; objseal holds nothing else.
    pub fn abort(self) {}
}

impl PartSealer {
    /// The binding of part `number`, or S3's error for a number outside
    /// 1..=10000.
    fn part(&self, number: u32) -> Result<ObjectBinding, S3Error> {
        self.binding.with_part(number).map_err(|_| {
            S3Error::invalid_argument(
                "partNumber",
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })
    }

    /// Seals part `number` (1 to 10000) of the upload, held in memory (its
    /// chunks sealed in parallel straight into the body); the record is the
    /// one [`PartSealer::writer`] gives for the same bytes.
    pub fn seal(&self, number: u32, plaintext: &[u8]) -> Result<SealedPart, S3Error> {
        let ctx = self.part(number)?.body_context();
        let body = body::seal(&self.dek, &ctx, plaintext)
            .map_err(|e| ErrorMapping::default().map_error(e))?;
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&body[..HEADER_LEN]);
        Ok(SealedPart {
            record: UploadedPart {
                number,
                plaintext_len: plaintext.len() as u64,
                etag: etag(self.mode, plaintext, &body),
                header,
            },
            body,
        })
    }

    /// Starts streaming part `number` (1 to 10000) of the upload into
    /// `inner` (the part's own storage: a file, a blob, a request body to
    /// another store), of a length not known in advance (a chunked
    /// `UploadPart`): the part's length is what was written when
    /// [`PartWriter::finish`] is called, and the part list records it at
    /// completion. Memory is two batches of chunks
    /// ([`Engine::stream_batch_chunks`] of the engine the sealer came from),
    /// whatever the part's size; the ETag is computed as the bytes pass.
    ///
    /// ```
    /// use std::io::{self, Read};
    /// use objseal::sse::MultipartUpload;
    /// use objseal::{CustomerKey, Engine, ObjectBinding, OpenWith, SealMode};
    ///
    /// let engine = Engine::builder().stream_batch_chunks(16).build();
    /// let key = CustomerKey::generate()?;
    /// let upload = MultipartUpload::create(&engine, &SealMode::C(&key), &ObjectBinding::new("b", "k")?).unwrap();
    /// let sealer = upload.sealer(&engine, OpenWith::Customer(&key)).unwrap();
    ///
    /// let mut w = sealer.writer(3, Vec::new()).unwrap();
    /// io::copy(&mut io::repeat(7).take(1_000_000), &mut w)?;
    /// let part = w.finish().unwrap();
    /// assert_eq!(part.record.number, 3);
    /// assert_eq!(part.record.plaintext_len, 1_000_000);
    /// assert_eq!(part.sealed_len, part.inner.len() as u64);
    /// assert_eq!(part.record.header[..], part.inner[..56]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn writer<W: Write>(&self, number: u32, inner: W) -> Result<PartWriter<W>, S3Error> {
        self.part_writer(number, None, inner)
    }

    /// As [`PartSealer::writer`], for a part whose length the client
    /// declared (`Content-Length`): writing more fails at once, and
    /// [`PartWriter::finish`] fails when fewer bytes came, both with
    /// [`BodyError::DeclaredLength`] (S3's 400 `IncompleteBody` when short).
    pub fn writer_sized<W: Write>(
        &self,
        number: u32,
        plaintext_len: u64,
        inner: W,
    ) -> Result<PartWriter<W>, S3Error> {
        self.part_writer(number, Some(plaintext_len), inner)
    }

    fn part_writer<W: Write>(
        &self,
        number: u32,
        declared: Option<u64>,
        inner: W,
    ) -> Result<PartWriter<W>, S3Error> {
        let ctx = self.part(number)?.body_context();
        let tee = Tee {
            inner,
            stored: EtagHasher::new(self.mode),
            header: [0u8; HEADER_LEN],
            len: 0,
        };
        let inner = SealWriter::with_batch_chunks(tee, &self.dek, &ctx, self.batch)
            .map_err(|e| ErrorMapping::default().map_error(e))?;
        Ok(PartWriter {
            number,
            inner,
            plaintext: EtagHasher::new(self.mode),
            declared,
            written: 0,
        })
    }
}

/// The sealed bytes of a part on their way to its storage: counted, their
/// header kept, and hashed for the ETag (when it is of the stored bytes).
struct Tee<W> {
    inner: W,
    stored: EtagHasher,
    header: [u8; HEADER_LEN],
    len: u64,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let done = &buf[..n];
        if let Some(room) = self.header.get_mut(self.len as usize..) {
            let k = room.len().min(done.len());
            room[..k].copy_from_slice(&done[..k]);
        }
        self.stored.stored(done);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streams one part of a multipart upload into its storage in bounded
/// memory; see [`PartSealer::writer`]. A [`Write`]: errors are
/// [`io::Error`]s (`objseal::Error::from` gives the typed error back).
/// [`PartWriter::finish`] MUST be called: it seals the final chunk and
/// gives the part's record.
pub struct PartWriter<W: Write> {
    number: u32,
    inner: SealWriter<Tee<W>>,
    plaintext: EtagHasher,
    declared: Option<u64>,
    written: u64,
}

impl<W: Write> core::fmt::Debug for PartWriter<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PartWriter")
            .field("number", &self.number)
            .field("declared", &self.declared)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

/// A part written by a [`PartWriter`].
#[derive(Debug)]
pub struct WrittenPart<W> {
    /// What the store keeps of the part besides its body (number, length,
    /// ETag, header), as [`SealedPart::record`].
    pub record: UploadedPart,
    /// The length of the part's body as written to its storage
    /// ([`body::sealed_len`] of its plaintext length).
    pub sealed_len: u64,
    /// The writer the body went to.
    pub inner: W,
}

impl<W: Write> Write for PartWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let received = self.written + buf.len() as u64;
        if let Some(declared) = self.declared
            && received > declared
        {
            return Err(Error::from(BodyError::DeclaredLength { declared, received }).into_io());
        }
        if received > MAX_PLAINTEXT_LEN {
            return Err(Error::from(BodyError::TooLong {
                what: "plaintext",
                len: received,
            })
            .into_io());
        }
        let n = self.inner.write(buf)?;
        self.plaintext.plaintext(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> PartWriter<W> {
    /// The part number.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Plaintext bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Seals the final chunk, flushes, and returns the part's record and
    /// the inner writer. Fails when fewer bytes than declared were written
    /// ([`PartSealer::writer_sized`]), and with the inner writer's errors.
    pub fn finish(self) -> Result<WrittenPart<W>, S3Error> {
        let map = |e: Error| ErrorMapping::default().map_error(e);
        if let Some(declared) = self.declared
            && self.written != declared
        {
            return Err(map(BodyError::DeclaredLength {
                declared,
                received: self.written,
            }
            .into()));
        }
        let tee = self.inner.finish().map_err(map)?;
        let etag = if self.plaintext.wants_plaintext() {
            self.plaintext.finish()
        } else {
            tee.stored.finish()
        };
        Ok(WrittenPart {
            record: UploadedPart {
                number: self.number,
                plaintext_len: self.written,
                etag,
                header: tee.header,
            },
            sealed_len: tee.len,
            inner: tee.inner,
        })
    }
}

fn part_list_mac(
    dek: &DataKey,
    env: &Envelope,
    parts: &[Part],
    headers: &[&[u8; HEADER_LEN]],
) -> [u8; PART_LIST_MAC_LEN] {
    let mut k = <Hmac<Sha256> as KeyInit>::new_from_slice(dek.expose_secret())
        .expect("HMAC takes keys of any length");
    k.update(MAC_KEY_LABEL);
    let mut mac_key: [u8; 32] = k.finalize().into_bytes().into();
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(&mac_key).expect("HMAC takes keys of any length");
    zeroize::Zeroize::zeroize(&mut mac_key);
    m.update(MAC_LABEL);
    for field in [
        env.binding.bucket().as_bytes(),
        env.binding.key().as_bytes(),
    ] {
        m.update(&(field.len() as u16).to_be_bytes());
        m.update(field);
    }
    m.update(&(parts.len() as u16).to_be_bytes());
    for p in parts {
        m.update(&p.number.to_be_bytes());
        m.update(&p.plaintext_len.to_be_bytes());
    }
    for h in headers {
        m.update(&h[..]);
    }
    m.finalize().into_bytes().into()
}

/// The envelope as it was at creation: what its wrapped key is bound to.
pub(super) fn creation_view(env: &Envelope) -> Envelope {
    Envelope {
        plaintext_len: 0,
        parts: None,
        ..env.clone()
    }
}

/// Compares the part-list MAC over `headers` (the part bodies' first 56
/// bytes, in list order) with the envelope's, in constant time.
pub(super) fn check_mac(
    dek: &DataKey,
    env: &Envelope,
    headers: &[&[u8; HEADER_LEN]],
) -> Result<(), Error> {
    let Some(list) = &env.parts else {
        return Err(BodyError::PartListMismatch.into());
    };
    if headers.len() != list.parts.len() {
        return Err(BodyError::PartListMismatch.into());
    }
    let mac = part_list_mac(dek, env, &list.parts, headers);
    if !bool::from(mac.ct_eq(&list.mac)) {
        return Err(BodyError::PartListMismatch.into());
    }
    Ok(())
}

/// Each part's span and body, in list order.
type PartBodies<'b> = Vec<(PartSpan, &'b [u8])>;

/// A multipart object in memory, its part list checked: the data key and
/// each part's span and body.
fn check_in_memory<'b>(
    engine: &Engine,
    with: OpenWith<'_>,
    binding: &ObjectBinding,
    env: &Envelope,
    body: &'b [u8],
) -> Result<(DataKey, PartBodies<'b>), Error> {
    let spans = part_spans(env)?;
    let mut parts = Vec::with_capacity(spans.len());
    let mut rest = body;
    for s in spans {
        let n = usize::try_from(s.sealed_len)
            .ok()
            .filter(|n| *n <= rest.len())
            .ok_or(BodyError::PartListMismatch)?;
        let (part, tail) = rest.split_at(n);
        parts.push((s, part));
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(BodyError::PartListMismatch.into());
    }
    let headers: Vec<[u8; HEADER_LEN]> = parts
        .iter()
        .map(|(_, b)| b[..HEADER_LEN].try_into().expect("sealed_len >= header"))
        .collect();
    let dek = check_part_list(engine, with, binding, env, &headers)?;
    Ok((dek, parts))
}

/// Opens a stored object, single-part or multipart, read as `binding`.
pub fn open_object(
    engine: &Engine,
    with: OpenWith<'_>,
    binding: &ObjectBinding,
    object: &[u8],
) -> Result<Vec<u8>, Error> {
    let (env, used) = Envelope::parse_prefix(object)?;
    open_object_detached(engine, with, binding, &env, &object[used..])
}

/// [`open_object`] with the envelope kept apart from the body.
pub fn open_object_detached(
    engine: &Engine,
    with: OpenWith<'_>,
    binding: &ObjectBinding,
    env: &Envelope,
    body: &[u8],
) -> Result<Vec<u8>, Error> {
    if env.parts.is_none() {
        return engine.open_detached(with, binding, env, body);
    }
    let (dek, parts) = check_in_memory(engine, with, binding, env, body)?;
    let total = usize::try_from(env.plaintext_len).map_err(|_| BodyError::TooLong {
        what: "plaintext",
        len: env.plaintext_len,
    })?;
    let mut out = zeroize::Zeroizing::new(vec![0u8; total]);
    let mut slices = Vec::with_capacity(parts.len());
    let mut rest: &mut [u8] = &mut out;
    for (s, _) in &parts {
        let (head, tail) = rest.split_at_mut(s.len as usize);
        slices.push(head);
        rest = tail;
    }
    parts
        .par_iter()
        .zip(slices.into_par_iter())
        .try_for_each(|((s, part_body), dst)| {
            let ctx = binding.with_part(s.number)?.body_context();
            body::open_into(&dek, &ctx, part_body, dst)
        })?;
    Ok(core::mem::take(&mut *out))
}

/// Opens the bytes `range` of a stored object, single-part or multipart,
/// decrypting only the chunks (of the parts) the range touches.
pub fn open_object_range(
    engine: &Engine,
    with: OpenWith<'_>,
    binding: &ObjectBinding,
    object: &[u8],
    range: impl Into<ByteRange>,
) -> Result<Vec<u8>, Error> {
    let (env, used) = Envelope::parse_prefix(object)?;
    let body = &object[used..];
    let range = range.into();
    if env.parts.is_none() {
        return engine.open_range_detached(with, binding, &env, body, range);
    }
    if let Some(e) = range.reversed() {
        return Err(e.into());
    }
    let (dek, parts) = check_in_memory(engine, with, binding, &env, body)?;
    let r = range.resolve(env.plaintext_len);
    if let Some(e) = r.unsatisfiable {
        return Err(e.into());
    }
    let pieces: Vec<Vec<u8>> = parts
        .par_iter()
        .filter(|(s, _)| s.offset < r.end && s.offset + s.len > r.start)
        .map(|(s, part_body)| {
            let from = r.start.max(s.offset) - s.offset;
            let to = r.end.min(s.offset + s.len) - s.offset;
            let ctx = binding.with_part(s.number)?.body_context();
            body::open_range(&dek, &ctx, part_body, from..to)
        })
        .collect::<Result<_, Error>>()?;
    Ok(pieces.concat())
}

/// [`Engine::rewrap`] for any stored object: the data key rewrapped under
/// `to`, the body untouched (a multipart object keeps its part list, whose
/// MAC depends only on the data key).
pub fn rewrap_envelope(
    engine: &Engine,
    with: OpenWith<'_>,
    binding: &ObjectBinding,
    env: &Envelope,
    to: &SealMode<'_>,
) -> Result<Envelope, Error> {
    if env.parts.is_none() {
        return engine.rewrap(with, binding, env, to);
    }
    let mut out = engine.rewrap(with, binding, &creation_view(env), to)?;
    out.plaintext_len = env.plaintext_len;
    out.parts = env.parts.clone();
    Ok(out)
}
