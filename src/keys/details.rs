//! The mode-specific `details` of the wrapped-key section (FORMAT.md §5):
//! a bounded parser that never panics and names what is wrong.
//!
//! - SSE-S3: empty.
//! - SSE-KMS: `u8 version (1) || u8 flags (bit 0: bucket key) ||
//!   encryption context (canonical) || u16(len blob) || blob`.
//! - SSE-C: `u8 version (1) || key-check salt (32) || key check (32)`.

use std::collections::BTreeMap;

use super::context::{
    EncryptionContext, MAX_CONTEXT_KEY_LEN, MAX_CONTEXT_LEN, MAX_CONTEXT_PAIRS,
    MAX_CONTEXT_VALUE_LEN,
};
use crate::error::{Error, FormatError, KeyError};
use crate::format::Mode;

/// Version byte of the SSE-KMS and SSE-C details.
pub const DETAILS_VERSION: u8 = 1;
/// Longest KMS ciphertext blob, in bytes.
pub const MAX_KMS_BLOB_LEN: usize = 4096;
/// Length of the SSE-C key-check salt and of the key check, in bytes.
pub const KEY_CHECK_LEN: usize = 32;
/// Flag bit: the KMS blob holds a bucket key, not a per-object key.
const FLAG_BUCKET_KEY: u8 = 0x01;

/// The parsed details of an envelope's wrapped key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Details {
    /// SSE-S3: nothing beyond the key id and version.
    SseS3,
    /// SSE-KMS: the KMS ciphertext blob of the wrapping key and the
    /// encryption context it was generated under.
    SseKms(KmsDetails),
    /// SSE-C: the salted check of the customer key.
    SseC(KeyCheck),
}

/// SSE-KMS details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsDetails {
    /// Whether the blob is a bucket key (S3 Bucket Keys).
    pub bucket_key: bool,
    /// The encryption context the blob was generated under.
    pub context: EncryptionContext,
    /// The KMS ciphertext blob (1..=4096 bytes).
    pub blob: Vec<u8>,
}

/// SSE-C salted key check: `HMAC-SHA-256(customer key, label || salt)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCheck {
    /// Random per-object salt.
    pub salt: [u8; KEY_CHECK_LEN],
    /// The check value.
    pub check: [u8; KEY_CHECK_LEN],
}

impl Details {
    /// Encodes the details.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        match self {
            Details::SseS3 => Ok(Vec::new()),
            Details::SseKms(k) => {
                k.context.check()?;
                if k.blob.is_empty() || k.blob.len() > MAX_KMS_BLOB_LEN {
                    return Err(FormatError::OutOfBounds {
                        field: "KMS ciphertext blob length",
                        value: k.blob.len() as u64,
                        min: 1,
                        max: MAX_KMS_BLOB_LEN as u64,
                    }
                    .into());
                }
                let mut out = vec![
                    DETAILS_VERSION,
                    if k.bucket_key { FLAG_BUCKET_KEY } else { 0 },
                ];
                out.extend_from_slice(&k.context.encode());
                super::wrap::put16(&mut out, &k.blob);
                Ok(out)
            }
            Details::SseC(c) => {
                let mut out = Vec::with_capacity(1 + 2 * KEY_CHECK_LEN);
                out.push(DETAILS_VERSION);
                out.extend_from_slice(&c.salt);
                out.extend_from_slice(&c.check);
                Ok(out)
            }
        }
    }

    /// Parses `bytes` as the details of an envelope of `mode`. Bounded: every
    /// length is checked against the input before it is used.
    pub fn parse(mode: Mode, bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let details = match mode {
            Mode::SseS3 => Details::SseS3,
            Mode::SseKms => {
                r.version(mode)?;
                let flags = r.u8("KMS details flags")?;
                if flags & !FLAG_BUCKET_KEY != 0 {
                    return Err(FormatError::Reserved {
                        field: "KMS details flags",
                        value: flags.into(),
                    }
                    .into());
                }
                let context = r.context()?;
                let blob_len = r.len16("KMS ciphertext blob length", 1, MAX_KMS_BLOB_LEN)?;
                let blob = r.take("KMS ciphertext blob", blob_len)?.to_vec();
                Details::SseKms(KmsDetails {
                    bucket_key: flags & FLAG_BUCKET_KEY != 0,
                    context,
                    blob,
                })
            }
            Mode::SseC => {
                r.version(mode)?;
                let salt = r.array("SSE-C key-check salt")?;
                let check = r.array("SSE-C key check")?;
                Details::SseC(KeyCheck { salt, check })
            }
        };
        match bytes.len() - r.pos {
            0 => Ok(details),
            count => Err(FormatError::TrailingBytes {
                count: count as u64,
            }
            .into()),
        }
    }
}

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], FormatError> {
        let available = self.buf.len() - self.pos;
        if n > available {
            return Err(FormatError::Truncated {
                field,
                needed: n as u64,
                available: available as u64,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, FormatError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn version(&mut self, mode: Mode) -> Result<(), Error> {
        match self.u8("details version")? {
            DETAILS_VERSION => Ok(()),
            version => Err(KeyError::UnsupportedDetails { mode, version }.into()),
        }
    }

    fn len16(&mut self, field: &'static str, min: usize, max: usize) -> Result<usize, FormatError> {
        let len = usize::from(u16::from_be_bytes(self.array(field)?));
        if !(min..=max).contains(&len) {
            return Err(FormatError::OutOfBounds {
                field,
                value: len as u64,
                min: min as u64,
                max: max as u64,
            });
        }
        Ok(len)
    }

    fn string(
        &mut self,
        field: &'static str,
        min: usize,
        max: usize,
    ) -> Result<String, FormatError> {
        let len = self.len16(field, min, max)?;
        let bytes = self.take(field, len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| FormatError::NotUtf8 { field })
    }

    fn context(&mut self) -> Result<EncryptionContext, Error> {
        let count = self.len16("encryption context pair count", 0, MAX_CONTEXT_PAIRS)?;
        let mut map = BTreeMap::new();
        let mut total = 0usize;
        let mut last: Option<String> = None;
        for _ in 0..count {
            let k = self.string("encryption context key", 1, MAX_CONTEXT_KEY_LEN)?;
            let v = self.string("encryption context value", 0, MAX_CONTEXT_VALUE_LEN)?;
            if last
                .as_ref()
                .is_some_and(|prev| prev.as_bytes() >= k.as_bytes())
            {
                return Err(KeyError::ContextNotCanonical { key: k }.into());
            }
            total += k.len() + v.len();
            if total > MAX_CONTEXT_LEN {
                return Err(FormatError::OutOfBounds {
                    field: "encryption context length",
                    value: total as u64,
                    min: 0,
                    max: MAX_CONTEXT_LEN as u64,
                }
                .into());
            }
            last = Some(k.clone());
            map.insert(k, v);
        }
        Ok(EncryptionContext::from_map(map))
    }
}
