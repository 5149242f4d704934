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

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use rayon::prelude::*;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::{
    ErrorMapping, MSG_NOT_APPLICABLE, MSG_PART_KEY_MISMATCH, MSG_PART_KEY_REQUIRED, S3Error,
};
use super::response::{etag, multipart_etag};
use crate::body::{self, ByteRange, DataKey, HEADER_LEN};
use crate::engine::{Engine, OpenWith, SealMode};
use crate::error::{BodyError, Error, FormatError, KeyError};
use crate::format::{
    Envelope, MAX_ENVELOPE_LEN, MAX_PART_NUMBER, MAX_PLAINTEXT_LEN, Mode, ObjectBinding,
    PART_LIST_MAC_LEN, Part, PartList,
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
/// across threads to seal parts in parallel.
pub struct PartSealer {
    dek: DataKey,
    binding: ObjectBinding,
    mode: Mode,
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
    /// Seals part `number` (1 to 10000) of the upload.
    pub fn seal(&self, number: u32, plaintext: &[u8]) -> Result<SealedPart, S3Error> {
        let part = self.binding.with_part(number).map_err(|_| {
            S3Error::invalid_argument(
                "partNumber",
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })?;
        let ctx = part.body_context();
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
fn creation_view(env: &Envelope) -> Envelope {
    Envelope {
        plaintext_len: 0,
        parts: None,
        ..env.clone()
    }
}

/// Where one part of a multipart object lies.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// Part number.
    number: u32,
    /// Where the part's plaintext starts in the object's plaintext.
    offset: u64,
    /// Plaintext length.
    len: u64,
    /// Where the part's body starts, counted from the first part body.
    at: u64,
    /// Length of the part's body.
    sealed: u64,
}

impl Span {
    /// Whether the part holds bytes of the resolved range `start..end`, and
    /// which of its own bytes.
    fn piece(&self, start: u64, end: u64) -> Option<core::ops::Range<u64>> {
        let part_end = self.offset + self.len;
        (self.offset < end && part_end > start)
            .then(|| start.max(self.offset) - self.offset..end.min(part_end) - self.offset)
    }
}

/// Lays the listed parts out over `body_len` bytes of part bodies; refuses a
/// list whose bodies do not fill them exactly, or whose lengths do not add
/// up to the envelope's plaintext length.
fn spans(env: &Envelope, body_len: u64) -> Result<Vec<Span>, Error> {
    let Some(list) = &env.parts else {
        return Err(BodyError::PartListMismatch.into());
    };
    let mut out = Vec::with_capacity(list.parts.len());
    let (mut at, mut offset) = (0u64, 0u64);
    for p in &list.parts {
        let sealed = body::sealed_len(p.plaintext_len)?;
        let Some(end) = at.checked_add(sealed).filter(|e| *e <= body_len) else {
            return Err(BodyError::PartListMismatch.into());
        };
        out.push(Span {
            number: p.number,
            offset,
            len: p.plaintext_len,
            at,
            sealed,
        });
        at = end;
        offset = offset.saturating_add(p.plaintext_len);
    }
    if at != body_len || offset != env.plaintext_len {
        return Err(BodyError::PartListMismatch.into());
    }
    Ok(out)
}

/// Compares the part-list MAC over `headers` (the part bodies' first 56
/// bytes, in list order) with the envelope's, in constant time.
fn check_mac(dek: &DataKey, env: &Envelope, headers: &[&[u8; HEADER_LEN]]) -> Result<(), Error> {
    let Some(list) = &env.parts else {
        return Err(BodyError::PartListMismatch.into());
    };
    let mac = part_list_mac(dek, env, &list.parts, headers);
    if !bool::from(mac.ct_eq(&list.mac)) {
        return Err(BodyError::PartListMismatch.into());
    }
    Ok(())
}

/// A multipart object's parts checked against its MAC: the data key, and
/// each part's number, plaintext offset, body slice and plaintext length.
struct Checked<'b> {
    dek: DataKey,
    parts: Vec<(u32, u64, &'b [u8], u64)>,
}

fn check_multipart<'b>(
    engine: &Engine,
    with: OpenWith<'_>,
    binding: &ObjectBinding,
    env: &Envelope,
    body: &'b [u8],
) -> Result<Checked<'b>, Error> {
    if env.parts.is_none() {
        return Err(BodyError::PartListMismatch.into());
    }
    let dek = engine.data_key(with, binding, &creation_view(env))?;
    let spans = spans(env, body.len() as u64)?;
    let parts: Vec<(u32, u64, &'b [u8], u64)> = spans
        .iter()
        .map(|s| {
            let from = s.at as usize;
            (
                s.number,
                s.offset,
                &body[from..from + s.sealed as usize],
                s.len,
            )
        })
        .collect();
    let headers: Vec<&[u8; HEADER_LEN]> = parts
        .iter()
        .map(|(_, _, b, _)| b[..HEADER_LEN].try_into().expect("sealed_len >= header"))
        .collect();
    check_mac(&dek, env, &headers)?;
    Ok(Checked { dek, parts })
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
    let checked = check_multipart(engine, with, binding, env, body)?;
    let total = usize::try_from(env.plaintext_len).map_err(|_| BodyError::TooLong {
        what: "plaintext",
        len: env.plaintext_len,
    })?;
    let mut out = zeroize::Zeroizing::new(vec![0u8; total]);
    let mut slices = Vec::with_capacity(checked.parts.len());
    let mut rest: &mut [u8] = &mut out;
    for (_, _, _, len) in &checked.parts {
        let (head, tail) = rest.split_at_mut(*len as usize);
        slices.push(head);
        rest = tail;
    }
    checked
        .parts
        .par_iter()
        .zip(slices.into_par_iter())
        .try_for_each(|((number, _, part_body, _), dst)| {
            let ctx = binding.with_part(*number)?.body_context();
            body::open_into(&checked.dek, &ctx, part_body, dst)
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
    let checked = check_multipart(engine, with, binding, &env, body)?;
    let r = range.resolve(env.plaintext_len);
    if let Some(e) = r.unsatisfiable {
        return Err(e.into());
    }
    let pieces: Vec<Vec<u8>> = checked
        .parts
        .par_iter()
        .filter(|(_, off, _, len)| *off < r.end && off + len > r.start)
        .map(|(number, off, part_body, len)| {
            let from = r.start.max(*off) - off;
            let to = r.end.min(off + len) - off;
            let ctx = binding.with_part(*number)?.body_context();
            body::open_range(&checked.dek, &ctx, part_body, from..to)
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

/// A completed multipart object stored in a regular file — its envelope
/// followed by the part bodies in list order, as [`Completed`] describes —
/// read with positioned reads and in bounded memory, like
/// [`Engine::open_file_range`] and [`Engine::open_reader`] read a
/// single-part object.
///
/// [`MultipartFile::open`] reads the envelope and each part's 56-byte header
/// and checks the part list against its MAC (`docs/FORMAT.md` §6) before
/// any part is decrypted; [`MultipartFile::open_range`] then decrypts only
/// the chunks a range touches, across part boundaries, and
/// [`MultipartFile::into_reader`] streams the whole plaintext part after
/// part, each batch of chunks released only once it authenticated.
///
/// ```
/// use std::io::{Read, Write};
/// use objseal::sse::{CompletedPart, MultipartFile, MultipartUpload};
/// use objseal::{CustomerKey, Engine, ObjectBinding, OpenWith, SealMode};
///
/// let engine = Engine::builder().build();
/// let key = CustomerKey::generate()?;
/// let object = ObjectBinding::new("b", "k")?;
/// let upload = MultipartUpload::create(&engine, &SealMode::C(&key), &object).unwrap();
/// let with = OpenWith::Customer(&key);
/// let one = upload.upload_part(&engine, with, 1, &[1u8; 20_000]).unwrap();
/// let two = upload.upload_part(&engine, with, 2, &[2u8; 300]).unwrap();
/// let asked: Vec<CompletedPart> = [&one, &two]
///     .iter()
///     .map(|p| CompletedPart { number: p.record.number, etag: p.record.etag.clone() })
///     .collect();
/// let done = upload
///     .complete(&engine, with, &asked, &[one.record.clone(), two.record.clone()])
///     .unwrap();
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("object");
/// let mut f = std::fs::File::create(&path)?;
/// f.write_all(&done.envelope.encode()?)?;
/// f.write_all(&one.body)?;
/// f.write_all(&two.body)?;
/// drop(f);
///
/// let file = MultipartFile::open(&engine, with, &object, &path)?;
/// assert_eq!(file.open_range(19_999..20_002)?, [1, 2, 2]);
/// let mut all = Vec::new();
/// file.into_reader().read_to_end(&mut all)?;
/// assert_eq!(all.len(), 20_300);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MultipartFile {
    file: Arc<File>,
    path: PathBuf,
    dek: DataKey,
    binding: ObjectBinding,
    envelope: Envelope,
    /// Where the first part body starts in the file.
    base: u64,
    /// Each part, with the header its MAC was checked over.
    parts: Vec<(Span, [u8; HEADER_LEN])>,
}

impl core::fmt::Debug for MultipartFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MultipartFile")
            .field("path", &self.path)
            .field("binding", &self.binding)
            .field("parts", &self.parts.len())
            .finish_non_exhaustive()
    }
}

impl MultipartFile {
    /// Opens the multipart object stored in the regular file `src`, read as
    /// `binding`: parses its envelope, unwraps the data key (as
    /// [`open_object`] does) and checks the part list against the part
    /// bodies' headers and the MAC. A single-part object is refused with
    /// [`FormatError::OutOfBounds`] on its part count (open it with
    /// [`Engine::open_reader`]); a file that is not a regular file (a FIFO,
    /// device, socket or directory) with an [`Error::Io`] of kind
    /// `InvalidInput`, checked before it is opened.
    pub fn open(
        engine: &Engine,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        src: &Path,
    ) -> Result<Self, Error> {
        let io_err = |e| Error::io_at(src, e);
        // Checked before opening too, so that opening a FIFO cannot block.
        if !std::fs::metadata(src).map_err(io_err)?.is_file() {
            return Err(body::file::not_regular(src));
        }
        let file = File::open(src).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(body::file::not_regular(src));
        }
        let mut head = vec![0u8; meta.len().min(MAX_ENVELOPE_LEN as u64) as usize];
        body::file::read_exact_at(&file, &mut head, 0).map_err(io_err)?;
        let (envelope, used) = Envelope::parse_prefix(&head)?;
        if envelope.parts.is_none() {
            return Err(FormatError::OutOfBounds {
                field: "part count (a multipart object's)",
                value: 0,
                min: 1,
                max: MAX_PART_NUMBER.into(),
            }
            .into());
        }
        let base = used as u64;
        let dek = engine.data_key(with, binding, &creation_view(&envelope))?;
        let spans = spans(&envelope, meta.len() - base)?;
        let mut parts = Vec::with_capacity(spans.len());
        for s in spans {
            let mut header = [0u8; HEADER_LEN];
            body::file::read_exact_at(&file, &mut header, base + s.at).map_err(io_err)?;
            parts.push((s, header));
        }
        let headers: Vec<&[u8; HEADER_LEN]> = parts.iter().map(|(_, h)| h).collect();
        check_mac(&dek, &envelope, &headers)?;
        Ok(MultipartFile {
            file: Arc::new(file),
            path: src.to_path_buf(),
            dek,
            binding: binding.clone(),
            envelope,
            base,
            parts,
        })
    }

    /// The object's envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Opens the bytes `range` of the object (see [`ByteRange`]; the part
    /// lengths are authenticated by the MAC), decrypting only the chunks of
    /// the parts it touches, in parallel.
    pub fn open_range(&self, range: impl Into<ByteRange>) -> Result<Vec<u8>, Error> {
        let range = range.into();
        if let Some(e) = range.reversed() {
            return Err(e.into());
        }
        let r = range.resolve(self.envelope.plaintext_len);
        if let Some(e) = r.unsatisfiable {
            return Err(e.into());
        }
        let pieces: Vec<Vec<u8>> = self
            .parts
            .par_iter()
            .filter_map(|(s, header)| s.piece(r.start, r.end).map(|p| (s, header, p)))
            .map(|(s, header, piece)| {
                let ctx = self.binding.with_part(s.number)?.body_context();
                let file = self
                    .file
                    .try_clone()
                    .map_err(|e| Error::io_at(&self.path, e))?;
                body::file::open_file_slice_range(
                    &self.dek,
                    &ctx,
                    file,
                    &self.path,
                    self.base + s.at,
                    s.sealed,
                    header,
                    piece.into(),
                )
            })
            .collect::<Result<_, Error>>()?;
        Ok(pieces.concat())
    }

    /// A reader of the whole plaintext, part after part.
    pub fn into_reader(self) -> MultipartReader {
        MultipartReader {
            file: self,
            next: 0,
            current: None,
            failed: false,
        }
    }
}

/// Bytes `pos..end` of a shared file, read with positioned reads; a file
/// that ends before `end` is an `UnexpectedEof` error.
struct FileSlice {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for FileSlice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = body::file::read_at(&self.file, &mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file got shorter while it was read",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

type PartReader = body::OpenReader<io::Chain<io::Cursor<[u8; HEADER_LEN]>, FileSlice>>;

/// The whole plaintext of a [`MultipartFile`], part after part: each part
/// is opened with a [`body::OpenReader`] from the header the part-list MAC
/// was checked over, so a part body replaced after the check fails its
/// chunks. After an error every later read fails too.
pub struct MultipartReader {
    file: MultipartFile,
    /// Index of the next part to start.
    next: usize,
    current: Option<PartReader>,
    failed: bool,
}

impl core::fmt::Debug for MultipartReader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MultipartReader")
            .field("file", &self.file)
            .field("next_part", &self.next)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl MultipartReader {
    /// Starts the part at index `self.next`.
    fn start_next(&mut self) -> Result<Option<PartReader>, Error> {
        let Some((s, header)) = self.file.parts.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        let ctx = self.file.binding.with_part(s.number)?.body_context();
        let from = self.file.base + s.at;
        let rest = FileSlice {
            file: Arc::clone(&self.file.file),
            pos: from + HEADER_LEN as u64,
            end: from + s.sealed,
        };
        let r = body::OpenReader::new(io::Cursor::new(*header).chain(rest), &self.file.dek, &ctx)?;
        Ok(Some(r))
    }
}

impl Read for MultipartReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an earlier read of this multipart object failed",
            ));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(r) = &mut self.current {
                match r.read(buf) {
                    Ok(0) => self.current = None,
                    Ok(n) => return Ok(n),
                    Err(e) => {
                        self.failed = true;
                        return Err(e);
                    }
                }
            }
            match self.start_next() {
                Ok(Some(r)) => self.current = Some(r),
                Ok(None) => return Ok(0),
                Err(e) => {
                    self.failed = true;
                    return Err(e.into_io());
                }
            }
        }
    }
}
