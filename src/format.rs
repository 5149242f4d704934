//! The envelope: objseal's versioned binary object header, and the canonical
//! encoding of an object's identity that goes into the body's context.
//!
//! No cryptography happens here (as in age's `format.rs`): this module turns
//! bytes into typed fields and back. [`Envelope::parse`] is bounded: it never
//! panics, never allocates more than the input it has checked is there, and
//! names what is wrong. The exact layout is in `docs/FORMAT.md`.
//!
//! ```
//! use objseal::format::{Envelope, Mode, ObjectBinding, WrappedKey};
//!
//! let binding = ObjectBinding::new("photos", "2024/cat.jpg")?;
//! let env = Envelope::new(Mode::SseS3, binding.clone(), 1234, WrappedKey::placeholder("key-1", 3));
//! let bytes = env.encode()?;
//! let back = Envelope::parse(&bytes)?;
//! assert_eq!(back, env);
//! assert_eq!(Envelope::from_base64(&env.to_base64()?)?, env);
//!
//! // The context binds the body to this object.
//! back.check_binding(&binding)?;
//! assert_eq!(back.body_context(), binding.body_context());
//! assert!(back.check_binding(&ObjectBinding::new("photos", "2024/dog.jpg")?).is_err());
//! # Ok::<(), objseal::Error>(())
//! ```

mod cursor;

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::{Error, FormatError};
use cursor::{Cursor, put_bytes16, put_bytes32};

/// The four bytes every envelope starts with.
pub const MAGIC: [u8; 4] = *b"\x89OSE";
/// The envelope version this build writes and reads.
pub const VERSION: u8 = 1;
/// Body algorithm id of Cobblestone-256 (C2SP chunked-encryption v1 with
/// AES-256-GCM and HKDF-SHA-512, 16 KiB chunks).
pub const ALGORITHM_COBBLESTONE_256: u8 = 1;
/// Longest bucket name, in bytes.
pub const MAX_BUCKET_LEN: usize = 255;
/// Longest object key, in bytes (S3's limit).
pub const MAX_OBJECT_KEY_LEN: usize = 1024;
/// Highest part number (S3's limit).
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Longest key id (an SSE-S3 key name or a KMS key ARN), in bytes.
pub const MAX_KEY_ID_LEN: usize = 2048;
/// Longest mode-specific detail blob of the wrapped key, in bytes.
pub const MAX_DETAILS_LEN: usize = 64 * 1024;
/// Largest plaintext an envelope may describe: 2^62 bytes.
pub const MAX_PLAINTEXT_LEN: u64 = 1 << 62;
/// Length of the per-object salt of the key-encryption key, in bytes.
pub const KEK_SALT_LEN: usize = 32;
/// Length of the wrapped data key (32-byte ciphertext and 16-byte tag).
pub const WRAPPED_KEY_LEN: usize = 48;
/// Length of the MAC over a multipart part list, in bytes.
pub const PART_LIST_MAC_LEN: usize = 32;
/// Upper bound on an encoded envelope, in bytes.
pub const MAX_ENVELOPE_LEN: usize = 8
    + 8
    + (2 + MAX_BUCKET_LEN)
    + (2 + MAX_OBJECT_KEY_LEN)
    + 4
    + (2 + MAX_KEY_ID_LEN)
    + 4
    + KEK_SALT_LEN
    + WRAPPED_KEY_LEN
    + (4 + MAX_DETAILS_LEN)
    + 2
    + MAX_PART_NUMBER as usize * 12
    + PART_LIST_MAC_LEN;

/// The label that starts every body context.
const CONTEXT_LABEL: &[u8] = b"objseal/v1 body context\0";

/// How the object's data key is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// SSE-S3: wrapped under a master key version from a keyring.
    SseS3,
    /// SSE-KMS: wrapped by a key-management service.
    SseKms,
    /// SSE-C: wrapped under a key the customer supplies with each request.
    SseC,
}

impl Mode {
    /// The mode's byte in the envelope (it is bound by the key wrapping, not by the body context).
    pub const fn id(self) -> u8 {
        match self {
            Mode::SseS3 => 1,
            Mode::SseKms => 2,
            Mode::SseC => 3,
        }
    }

    /// The mode with envelope byte `id`.
    pub fn from_id(id: u8) -> Result<Self, FormatError> {
        match id {
            1 => Ok(Mode::SseS3),
            2 => Ok(Mode::SseKms),
            3 => Ok(Mode::SseC),
            id => Err(FormatError::UnknownMode { id }),
        }
    }

    /// The value of the `x-amz-server-side-encryption` header for this
    /// mode: `AES256` (SSE-S3), `aws:kms` (SSE-KMS), and none for SSE-C,
    /// which reports `AES256` in `x-amz-server-side-encryption-customer-algorithm`
    /// instead.
    pub const fn header_value(self) -> Option<&'static str> {
        match self {
            Mode::SseS3 => Some("AES256"),
            Mode::SseKms => Some("aws:kms"),
            Mode::SseC => None,
        }
    }

    /// The mode's name for people: `SSE-S3`, `SSE-KMS` or `SSE-C`.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::SseS3 => "SSE-S3",
            Mode::SseKms => "SSE-KMS",
            Mode::SseC => "SSE-C",
        }
    }
}

/// Which object (or part of a multipart object) a body belongs to: bucket,
/// object key and optional part number, each within S3's bounds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectBinding {
    bucket: String,
    key: String,
    part: Option<u32>,
}

impl ObjectBinding {
    /// The whole object `key` in `bucket`. The bucket is 1 to 255 bytes, the
    /// key 1 to 1024 bytes.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Result<Self, Error> {
        let (bucket, key) = (bucket.into(), key.into());
        bounds(
            "bucket name length",
            bucket.len() as u64,
            1,
            MAX_BUCKET_LEN as u64,
        )?;
        bounds(
            "object key length",
            key.len() as u64,
            1,
            MAX_OBJECT_KEY_LEN as u64,
        )?;
        Ok(ObjectBinding {
            bucket,
            key,
            part: None,
        })
    }

    /// The same object's part `number` (1 to 10000).
    pub fn with_part(&self, number: u32) -> Result<Self, Error> {
        bounds("part number", number.into(), 1, MAX_PART_NUMBER.into())?;
        Ok(ObjectBinding {
            part: Some(number),
            ..self.clone()
        })
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The part number, for a part of a multipart object.
    pub fn part(&self) -> Option<u32> {
        self.part
    }

    /// The canonical body context for this object: bucket, object key and
    /// part number, each length-prefixed, so no two different bindings
    /// encode alike (see `docs/FORMAT.md`).
    ///
    /// The mode and the wrapping key id are deliberately not in it: the
    /// wrapped data key is bound to them (and to this binding) by its
    /// key-encryption key, so a data key can be rewrapped under another key
    /// or mode without rewriting the body.
    pub fn body_context(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(CONTEXT_LABEL.len() + 9 + self.bucket.len() + self.key.len());
        out.extend_from_slice(CONTEXT_LABEL);
        out.push(ALGORITHM_COBBLESTONE_256);
        put_bytes16(&mut out, self.bucket.as_bytes());
        put_bytes16(&mut out, self.key.as_bytes());
        out.extend_from_slice(&self.part.unwrap_or(0).to_be_bytes());
        out
    }
}

impl fmt::Display for ObjectBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)?;
        if let Some(p) = self.part {
            write!(f, " (part {p})")?;
        }
        Ok(())
    }
}

/// The wrapped-key section: how to recover the data key. Its layout is fixed
/// here; the key layer fills it per mode (key id and version of an SSE-S3
/// master key; KMS key ARN, encryption context and ciphertext blob in
/// `details`; the salted key check of SSE-C in `details`).
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The wrapping key's id (SSE-S3 key name, KMS key ARN; empty for SSE-C),
    /// at most 2048 bytes of UTF-8.
    pub key_id: String,
    /// The wrapping key's version.
    pub key_version: u32,
    /// Per-object salt of the key-encryption key.
    pub kek_salt: [u8; KEK_SALT_LEN],
    /// The data key sealed under the key-encryption key (ciphertext || tag).
    pub wrapped: [u8; WRAPPED_KEY_LEN],
    /// Mode-specific bytes, at most 64 KiB, opaque to this layer.
    pub details: Vec<u8>,
}

impl WrappedKey {
    /// A section with the given key id and version and all other fields zero
    /// or empty, to be filled by the key layer.
    pub fn placeholder(key_id: impl Into<String>, key_version: u32) -> Self {
        WrappedKey {
            key_id: key_id.into(),
            key_version,
            kek_salt: [0; KEK_SALT_LEN],
            wrapped: [0; WRAPPED_KEY_LEN],
            details: Vec::new(),
        }
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("key_id", &self.key_id)
            .field("key_version", &self.key_version)
            .field("details_len", &self.details.len())
            .finish_non_exhaustive()
    }
}

/// One part of a multipart object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Part number, 1 to 10000.
    pub number: u32,
    /// Plaintext length of the part.
    pub plaintext_len: u64,
}

/// The part list of a completed multipart object and the MAC over it
/// (computed by the key layer, keyed from the data key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartList {
    /// Parts in strictly increasing order of part number, 1 to 10000 of them.
    pub parts: Vec<Part>,
    /// MAC over the encoded part list.
    pub mac: [u8; PART_LIST_MAC_LEN],
}

/// An objseal envelope: the plaintext metadata of one sealed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// How the data key is protected.
    pub mode: Mode,
    /// The object the envelope was written for.
    pub binding: ObjectBinding,
    /// Plaintext length of the object (sum of the parts for multipart).
    /// With [`Envelope::length_from_body`] it is not stored: it is 0 as
    /// parsed, and the length the body's size gives once
    /// [`Envelope::with_body_len`] resolved it.
    pub plaintext_len: u64,
    /// How to recover the data key.
    pub wrapped_key: WrappedKey,
    /// The part list, for a completed multipart object.
    pub parts: Option<PartList>,
    /// The object was sealed as a stream of unknown length: the envelope
    /// (written first) does not hold the length; the body's size gives it
    /// (`docs/FORMAT.md` §1, flag `01`).
    pub length_from_body: bool,
}

/// The flag bit of an envelope whose plaintext length is given by the body.
pub const FLAG_LENGTH_FROM_BODY: u8 = 0x01;

impl Envelope {
    /// An envelope for a single-part object.
    pub fn new(
        mode: Mode,
        binding: ObjectBinding,
        plaintext_len: u64,
        wrapped_key: WrappedKey,
    ) -> Self {
        Envelope {
            mode,
            binding,
            plaintext_len,
            wrapped_key,
            parts: None,
            length_from_body: false,
        }
    }

    /// The length the key wrapping binds (`docs/FORMAT.md` §5): the
    /// plaintext length of a single-part object, 0 for a multipart object
    /// (wrapped when the upload began), and 2^64 − 1 for an object whose
    /// length is given by its body (wrapped before the length was known;
    /// no real length is that large, so the flag cannot be flipped
    /// unnoticed).
    pub fn wrap_len(&self) -> u64 {
        if self.length_from_body {
            u64::MAX
        } else if self.parts.is_some() {
            0
        } else {
            self.plaintext_len
        }
    }

    /// This envelope with its plaintext length resolved for a body of
    /// `body_len` bytes: unchanged if it records its length, else the
    /// length the body's size gives (an error if no body has that size).
    pub fn with_body_len(&self, body_len: u64) -> Result<Envelope, Error> {
        let mut out = self.clone();
        if self.length_from_body {
            out.plaintext_len = crate::body::plaintext_len(body_len)?;
        }
        Ok(out)
    }

    /// The body context of this envelope's object; see
    /// [`ObjectBinding::body_context`].
    pub fn body_context(&self) -> Vec<u8> {
        self.binding.body_context()
    }

    /// Checks that the envelope names the object it is being read for. Use
    /// the *expected* binding to compute the body context as well, so an
    /// envelope edited to name another object fails the body's commitment.
    pub fn check_binding(&self, expected: &ObjectBinding) -> Result<(), Error> {
        if &self.binding == expected {
            Ok(())
        } else {
            Err(FormatError::BindingMismatch {
                expected: expected.to_string(),
                found: self.binding.to_string(),
            }
            .into())
        }
    }

    /// Encodes the envelope. Fails if a field is out of bounds.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        self.validate()?;
        let w = &self.wrapped_key;
        let mut out = Vec::with_capacity(256 + w.details.len() + self.binding.key.len());
        out.extend_from_slice(&MAGIC);
        let (flags, stored_len) = if self.length_from_body {
            (FLAG_LENGTH_FROM_BODY, 0)
        } else {
            (0, self.plaintext_len)
        };
        out.extend_from_slice(&[VERSION, ALGORITHM_COBBLESTONE_256, self.mode.id(), flags]);
        out.extend_from_slice(&stored_len.to_be_bytes());
        put_bytes16(&mut out, self.binding.bucket.as_bytes());
        put_bytes16(&mut out, self.binding.key.as_bytes());
        out.extend_from_slice(&self.binding.part.unwrap_or(0).to_be_bytes());
        put_bytes16(&mut out, w.key_id.as_bytes());
        out.extend_from_slice(&w.key_version.to_be_bytes());
        out.extend_from_slice(&w.kek_salt);
        out.extend_from_slice(&w.wrapped);
        put_bytes32(&mut out, &w.details);
        match &self.parts {
            None => out.extend_from_slice(&0u16.to_be_bytes()),
            Some(list) => {
                out.extend_from_slice(&(list.parts.len() as u16).to_be_bytes());
                for p in &list.parts {
                    out.extend_from_slice(&p.number.to_be_bytes());
                    out.extend_from_slice(&p.plaintext_len.to_be_bytes());
                }
                out.extend_from_slice(&list.mac);
            }
        }
        Ok(out)
    }

    /// Checks every bound `parse` checks.
    fn validate(&self) -> Result<(), FormatError> {
        let b = &self.binding;
        bounds(
            "bucket name length",
            b.bucket.len() as u64,
            1,
            MAX_BUCKET_LEN as u64,
        )?;
        bounds(
            "object key length",
            b.key.len() as u64,
            1,
            MAX_OBJECT_KEY_LEN as u64,
        )?;
        if let Some(p) = b.part {
            bounds("part number", p.into(), 1, MAX_PART_NUMBER.into())?;
        }
        bounds("plaintext length", self.plaintext_len, 0, MAX_PLAINTEXT_LEN)?;
        let w = &self.wrapped_key;
        bounds(
            "key id length",
            w.key_id.len() as u64,
            0,
            MAX_KEY_ID_LEN as u64,
        )?;
        bounds(
            "details length",
            w.details.len() as u64,
            0,
            MAX_DETAILS_LEN as u64,
        )?;
        if let Some(list) = &self.parts {
            bounds(
                "part count",
                list.parts.len() as u64,
                1,
                MAX_PART_NUMBER.into(),
            )?;
            check_parts(&list.parts)?;
            check_part_totals(self.plaintext_len, b.part, &list.parts)?;
        }
        Ok(())
    }

    /// Reads and parses the envelope at the start of bytes
    /// `offset..offset + len` of a positioned source (an object stored
    /// envelope first, e.g. in a file); returns it with its length in bytes,
    /// so the body is bytes `offset + used..offset + len`. Reads 1 KiB, then
    /// only what the envelope's fields say they need, never more than `len`
    /// or the largest envelope; a source shorter than `len` is an
    /// `UnexpectedEof` I/O error.
    ///
    /// ```
    /// use objseal::format::{Envelope, Mode, ObjectBinding, WrappedKey};
    ///
    /// let env = Envelope::new(Mode::SseS3, ObjectBinding::new("b", "k")?, 5, WrappedKey::placeholder("key", 1));
    /// let mut stored = b"xx".to_vec();
    /// stored.extend_from_slice(&env.encode()?);
    /// stored.extend_from_slice(b"body");
    /// let (back, used) = Envelope::read_at(&stored, 2, stored.len() as u64 - 2)?;
    /// assert_eq!((back, used), (env.clone(), env.encode()?.len() as u64));
    /// # Ok::<(), objseal::Error>(())
    /// ```
    pub fn read_at<S: crate::body::ReadAt + ?Sized>(
        source: &S,
        offset: u64,
        len: u64,
    ) -> Result<(Self, u64), Error> {
        let cap = usize::try_from(len.min(MAX_ENVELOPE_LEN as u64)).unwrap_or(MAX_ENVELOPE_LEN);
        let mut want = cap.min(1024);
        let mut buf = Vec::new();
        loop {
            let have = buf.len();
            buf.resize(want, 0);
            source.read_exact_at(&mut buf[have..], offset + have as u64)?;
            match Self::parse_prefix(&buf) {
                Ok((env, used)) => return Ok((env, used as u64)),
                Err(Error::Format(FormatError::Truncated {
                    needed, available, ..
                })) if want < cap => {
                    let more = usize::try_from(needed.saturating_sub(available))
                        .unwrap_or(usize::MAX)
                        .max(want);
                    want = want.saturating_add(more).min(cap);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Parses an envelope that is the whole input.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let (env, used) = Self::parse_prefix(bytes)?;
        match bytes.len() - used {
            0 => Ok(env),
            count => Err(FormatError::TrailingBytes {
                count: count as u64,
            }
            .into()),
        }
    }

    /// Parses an envelope at the start of `bytes` (as when it is stored in
    /// front of the body) and returns it with its length in bytes.
    pub fn parse_prefix(bytes: &[u8]) -> Result<(Self, usize), Error> {
        let mut c = Cursor::new(bytes);
        if c.array::<4>("magic")? != MAGIC {
            return Err(FormatError::BadMagic.into());
        }
        let [version, algorithm, mode, reserved] = c.array::<4>("header")?;
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion { version }.into());
        }
        if algorithm != ALGORITHM_COBBLESTONE_256 {
            return Err(FormatError::UnsupportedAlgorithm { id: algorithm }.into());
        }
        let mode = Mode::from_id(mode)?;
        if reserved & !FLAG_LENGTH_FROM_BODY != 0 {
            return Err(FormatError::Reserved {
                field: "flags",
                value: reserved.into(),
            }
            .into());
        }
        let length_from_body = reserved & FLAG_LENGTH_FROM_BODY != 0;
        let plaintext_len = c.u64("plaintext length")?;
        bounds("plaintext length", plaintext_len, 0, MAX_PLAINTEXT_LEN)?;
        if length_from_body && plaintext_len != 0 {
            return Err(FormatError::Reserved {
                field: "plaintext length of an envelope whose body gives it",
                value: plaintext_len,
            }
            .into());
        }
        let bucket = c.string16("bucket name", 1, MAX_BUCKET_LEN)?;
        let key = c.string16("object key", 1, MAX_OBJECT_KEY_LEN)?;
        let part = match c.u32("part number")? {
            0 => None,
            n => Some(bounds("part number", n.into(), 1, MAX_PART_NUMBER.into())? as u32),
        };
        let key_id = c.string16("key id", 0, MAX_KEY_ID_LEN)?;
        let key_version = c.u32("key version")?;
        let kek_salt = c.array::<KEK_SALT_LEN>("key-encryption key salt")?;
        let wrapped = c.array::<WRAPPED_KEY_LEN>("wrapped data key")?;
        let details = c.bytes32("wrapped key details", MAX_DETAILS_LEN)?.to_vec();
        let count = c.u16("part count")?;
        let parts = if count == 0 {
            None
        } else {
            bounds("part count", count.into(), 1, MAX_PART_NUMBER.into())?;
            c.need("part list", usize::from(count) * 12)?;
            let mut parts = Vec::with_capacity(count.into());
            for _ in 0..count {
                let number = c.u32("part number")?;
                bounds("part number", number.into(), 1, MAX_PART_NUMBER.into())?;
                let plaintext_len = c.u64("part length")?;
                bounds("part length", plaintext_len, 0, MAX_PLAINTEXT_LEN)?;
                parts.push(Part {
                    number,
                    plaintext_len,
                });
            }
            check_parts(&parts)?;
            let mac = c.array::<PART_LIST_MAC_LEN>("part list MAC")?;
            check_part_totals(plaintext_len, part, &parts)?;
            Some(PartList { parts, mac })
        };
        let env = Envelope {
            mode,
            binding: ObjectBinding { bucket, key, part },
            plaintext_len,
            wrapped_key: WrappedKey {
                key_id,
                key_version,
                kek_salt,
                wrapped,
                details,
            },
            parts,
            length_from_body,
        };
        if env.length_from_body && env.parts.is_some() {
            return Err(FormatError::Reserved {
                field: "length-from-body flag of a multipart envelope",
                value: 1,
            }
            .into());
        }
        Ok((env, c.position()))
    }

    /// The envelope in standard base64 (with padding), for keeping it as
    /// object metadata apart from the body.
    pub fn to_base64(&self) -> Result<String, Error> {
        Ok(BASE64.encode(self.encode()?))
    }

    /// Parses the base64 form. Input longer than the base64 form of the
    /// largest envelope is refused before decoding.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let max = MAX_ENVELOPE_LEN.div_ceil(3) * 4;
        bounds("base64 envelope length", text.len() as u64, 0, max as u64)?;
        let bytes = BASE64
            .decode(text.as_bytes())
            .map_err(|e| FormatError::Base64 {
                reason: e.to_string(),
            })?;
        Self::parse(&bytes)
    }
}

/// Checks that part numbers strictly increase.
fn check_parts(parts: &[Part]) -> Result<(), FormatError> {
    for pair in parts.windows(2) {
        if pair[1].number <= pair[0].number {
            return Err(FormatError::PartOrder {
                number: pair[1].number,
            });
        }
    }
    Ok(())
}

/// Checks that a part list belongs to a whole object (not to one part's
/// envelope) and that its part lengths add up to the object's plaintext
/// length (without overflow).
fn check_part_totals(
    plaintext_len: u64,
    part: Option<u32>,
    parts: &[Part],
) -> Result<(), FormatError> {
    if part.is_some() {
        return Err(FormatError::OutOfBounds {
            field: "part count of a single part's envelope",
            value: parts.len() as u64,
            min: 0,
            max: 0,
        });
    }
    let sum = parts
        .iter()
        .try_fold(0u64, |sum, p| sum.checked_add(p.plaintext_len))
        .unwrap_or(u64::MAX);
    bounds("sum of part lengths", sum, plaintext_len, plaintext_len).map(|_| ())
}

/// Checks `min <= value <= max`.
fn bounds(field: &'static str, value: u64, min: u64, max: u64) -> Result<u64, FormatError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(FormatError::OutOfBounds {
            field,
            value,
            min,
            max,
        })
    }
}
