//! The object body: **Cobblestone-256**, i.e. C2SP chunked-encryption v1
//! (<https://c2sp.org/chunked-encryption>) with AES-256-GCM and HKDF-SHA-512.
//!
//! A body is `salt (24) || commitment (32) || chunks`. From the 32-byte
//! [`DataKey`], the salt and a caller-chosen *context* (objseal puts the
//! object's identity there, see [`crate::format::ObjectBinding::body_context`]),
//! HKDF-SHA-512 derives a one-time AES-256-GCM key, a base nonce and a key
//! commitment. The plaintext is cut into 16 KiB chunks; the last chunk is
//! always shorter (possibly empty), which marks the end. Chunk `k` is sealed
//! under the base nonce XOR `k`, with empty associated data, and sits at body
//! offset `56 + k × 16400`, so byte ranges map to chunks in O(1) and chunks
//! are sealed and opened in parallel (rayon; run inside
//! [`rayon::ThreadPool::install`] to choose the thread count).
//!
//! The commitment is checked, in constant time, before any chunk is opened:
//! a wrong key or a body moved to another object fails with
//! [`BodyError::CommitmentMismatch`] and nothing is decrypted.
//! Plaintext is released only after its chunk authenticated; a failed call
//! zeroes whatever it had decrypted.
//!
//! Entry points: [`seal`] / [`open`] / [`open_range`] over slices (and
//! [`seal_into`] / [`open_into`] into caller buffers),
//! [`SealWriter`] / [`OpenReader`] for streams in bounded memory,
//! [`seal_file`] / [`open_file`] / [`open_file_range`] file to file, and
//! [`RangeReader`] / [`open_range_at`] for a range of a body at any offset
//! of a positioned source ([`ReadAt`]: a file, a buffer, a `Read + Seek`
//! through [`SeekAt`]).
//!
//! ```
//! use objseal::body::{self, ByteRange, DataKey};
//!
//! let key = DataKey::generate()?;
//! let context = b"bucket/photos/cat.jpg";
//! let data = vec![42u8; 100_000];
//!
//! let sealed = body::seal(&key, context, &data)?;
//! assert_eq!(sealed.len() as u64, body::sealed_len(data.len() as u64)?);
//! assert_eq!(body::open(&key, context, &sealed)?, data);
//!
//! // Only the chunks a range touches are opened.
//! let part = body::open_range(&key, context, &sealed, 20_000..20_010)?;
//! assert_eq!(part, &data[20_000..20_010]);
//! let tail = body::open_range(&key, context, &sealed, ByteRange::Last(5))?;
//! assert_eq!(tail, &data[data.len() - 5..]);
//!
//! // Another object's context fails the commitment check.
//! let err = body::open(&key, b"bucket/photos/dog.jpg", &sealed).unwrap_err();
//! assert!(matches!(err, objseal::Error::Body(objseal::BodyError::CommitmentMismatch)));
//! # Ok::<(), objseal::Error>(())
//! ```

mod chunk;
pub(crate) mod file;
mod keys;
mod mmap;
mod range;
mod range_reader;
mod source;
mod stream;

pub use crate::error::BodyError;
use crate::error::Error;
use chunk::{Layout, to_usize};
use keys::ChunkKey;

pub use file::{
    FileInput, open_file, open_file_range, open_file_range_with, open_file_with, seal_file,
    seal_file_with,
};
pub use keys::DataKey;
pub(crate) use range::open_source_range;
pub use range::{ByteRange, RangeHeaderError, content_range, open_range_at};
pub use range_reader::RangeReader;
pub(crate) use source::Positioned;
pub use source::{ReadAt, SeekAt};
pub use stream::{MAX_BATCH_CHUNKS, OpenReader, SealWriter, default_batch_chunks};

/// Length of the data key, in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the random salt that starts every body, in bytes.
pub const SALT_LEN: usize = 24;
/// Length of the key commitment that follows the salt, in bytes.
pub const COMMITMENT_LEN: usize = 32;
/// Length of the body header (salt and commitment), in bytes.
pub const HEADER_LEN: usize = SALT_LEN + COMMITMENT_LEN;
/// Plaintext bytes in every chunk but the last.
pub const CHUNK_LEN: usize = 16 * 1024;
/// Length of each chunk's authentication tag, in bytes.
pub const TAG_LEN: usize = 16;
/// Length of a full sealed chunk (ciphertext and tag), in bytes.
pub const SEALED_CHUNK_LEN: usize = CHUNK_LEN + TAG_LEN;

/// Length of the body that seals `plaintext_len` bytes:
/// `56 + plaintext_len + 16 × (plaintext_len / 16384 + 1)`.
pub fn sealed_len(plaintext_len: u64) -> Result<u64, Error> {
    Ok(Layout::for_plaintext(plaintext_len)?.body_len()?)
}

/// Plaintext length a body of `body_len` bytes holds, or the error its length
/// alone shows (truncated header, missing final chunk, cut-off tag).
///
/// Unauthenticated: only opening the final chunk proves it.
pub fn plaintext_len(body_len: u64) -> Result<u64, Error> {
    Ok(Layout::for_body(body_len)?.plaintext_len)
}

/// Checks that a body of `body_len` bytes holds exactly `expected` bytes of
/// plaintext (as recorded, e.g., in the envelope): the check
/// `docs/FORMAT.md` requires before a body is trusted to be the one the
/// envelope describes. Fails with [`BodyError::LengthMismatch`], or with the
/// error the length alone shows ([`plaintext_len`]). Opening the final chunk
/// then authenticates the length.
///
/// ```
/// use objseal::body::{self, DataKey};
///
/// let sealed = body::seal(&DataKey::generate()?, b"ctx", b"hello")?;
/// body::check_len(sealed.len() as u64, 5)?;
/// assert!(matches!(
///     body::check_len(sealed.len() as u64, 6),
///     Err(objseal::Error::Body(objseal::BodyError::LengthMismatch { expected: 6, actual: 5 }))
/// ));
/// # Ok::<(), objseal::Error>(())
/// ```
pub fn check_len(body_len: u64, expected: u64) -> Result<(), Error> {
    let actual = plaintext_len(body_len)?;
    if actual == expected {
        Ok(())
    } else {
        Err(BodyError::LengthMismatch { expected, actual }.into())
    }
}

/// Seals `plaintext` into a new body under `key` and `context`, drawing a
/// fresh salt. Chunks are sealed in parallel on the current rayon pool.
pub fn seal(key: &DataKey, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let layout = Layout::for_plaintext(plaintext.len() as u64)?;
    let mut body = vec![0u8; to_usize(layout.body_len()?, "body")?];
    seal_into(key, context, plaintext, &mut body)?;
    Ok(body)
}

/// As [`seal`], into `out`, which MUST be exactly
/// [`sealed_len`]`(plaintext.len())` bytes (so callers can reuse buffers);
/// any other length fails with an [`Error::Io`] of kind `InvalidInput`
/// before anything is derived or written.
///
/// ```
/// use objseal::body::{self, DataKey};
///
/// let key = DataKey::generate()?;
/// let mut out = vec![0u8; body::sealed_len(5)? as usize];
/// body::seal_into(&key, b"ctx", b"hello", &mut out)?;
/// let mut back = [0u8; 5];
/// body::open_into(&key, b"ctx", &out, &mut back)?;
/// assert_eq!(&back, b"hello");
/// assert!(body::seal_into(&key, b"ctx", b"hello!", &mut out).is_err());
/// # Ok::<(), objseal::Error>(())
/// ```
pub fn seal_into(
    key: &DataKey,
    context: &[u8],
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    seal_into_salted(key, None, context, plaintext, out)
}

/// [`seal_into`] with the body's salt drawn by the caller (`None`: drawn
/// here). The engine draws an object's data key, key-wrapping salt and
/// body salt from the OS in one call.
pub(crate) fn seal_into_salted(
    key: &DataKey,
    salt: Option<&[u8; SALT_LEN]>,
    context: &[u8],
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    let body_len = sealed_len(plaintext.len() as u64)?;
    if out.len() as u64 != body_len {
        return Err(Error::Io {
            path: None,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "output buffer is {} bytes, but sealing {} bytes of plaintext takes exactly {body_len} (body::sealed_len)",
                    out.len(),
                    plaintext.len()
                ),
            ),
        });
    }
    let (chunk_key, header) = match salt {
        Some(salt) => keys::derive_for_seal_salted(key, salt, context)?,
        None => keys::derive_for_seal(key, context)?,
    };
    let (head, chunks) = out.split_at_mut(HEADER_LEN);
    head.copy_from_slice(&header);
    chunk_key.seal_chunks(0, plaintext, chunks)
}

/// Opens a whole body. Fails without decrypting anything if the header does
/// not commit to `key` and `context`; fails with the first chunk that does
/// not authenticate otherwise, and then returns no plaintext at all.
pub fn open(key: &DataKey, context: &[u8], body: &[u8]) -> Result<Vec<u8>, Error> {
    Opener::new(key, context, body)?.open(body)
}

/// As [`open`], into `out`, which MUST be exactly as long as the plaintext
/// ([`plaintext_len`] of the body's length; otherwise
/// [`BodyError::LengthMismatch`] with `expected = out.len()`, before any
/// chunk is opened). On failure `out` is zeroed.
pub fn open_into(key: &DataKey, context: &[u8], body: &[u8], out: &mut [u8]) -> Result<(), Error> {
    Opener::new(key, context, body)?.open_into(body, out)
}

/// Opens the bytes `range` of the plaintext of `body`, decrypting only the
/// chunks the range touches; see [`ByteRange`] for how ranges past the end or
/// relative to the end are handled (they authenticate the final chunk).
pub fn open_range(
    key: &DataKey,
    context: &[u8],
    body: &[u8],
    range: impl Into<ByteRange>,
) -> Result<Vec<u8>, Error> {
    Opener::new(key, context, body)?.open_range(body, range)
}

/// A body whose header has been checked: the commitment matched `key` and
/// `context`. Creating it reads only the 56 header bytes, so every header
/// failure (wrong key, wrong context, modified salt or commitment, short
/// input) happens here, before any chunk can be opened.
///
/// The opener remembers that header: every body later given to
/// [`Opener::open`], [`Opener::open_into`] or [`Opener::open_range`] must
/// start with the same 56 bytes, or it is refused with
/// [`BodyError::CommitmentMismatch`] (another body's header was not checked
/// against this key and context).
///
/// ```
/// use objseal::body::{self, DataKey, Opener};
///
/// let key = DataKey::generate()?;
/// let sealed = body::seal(&key, b"ctx", b"hello")?;
/// let opener = Opener::new(&key, b"ctx", &sealed[..body::HEADER_LEN])?;
/// assert_eq!(opener.open(&sealed)?, b"hello");
/// assert!(Opener::new(&DataKey::generate()?, b"ctx", &sealed).is_err());
///
/// // Another body (another salt) is refused, even under the same key.
/// let other = body::seal(&key, b"ctx", b"hello")?;
/// assert!(opener.open(&other).is_err());
/// # Ok::<(), objseal::Error>(())
/// ```
pub struct Opener {
    key: ChunkKey,
    header: [u8; HEADER_LEN],
}

impl core::fmt::Debug for Opener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Opener").finish_non_exhaustive()
    }
}

impl Opener {
    /// Checks the header at the start of `body` (only its first 56 bytes are
    /// read) against `key` and `context`.
    pub fn new(key: &DataKey, context: &[u8], body: &[u8]) -> Result<Self, Error> {
        let key = keys::derive_for_open(key, context, body)?;
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&body[..HEADER_LEN]);
        Ok(Opener { key, header })
    }

    /// Checks that `body` starts with the header [`Opener::new`] checked.
    fn check_header(&self, body: &[u8]) -> Result<(), Error> {
        match body.get(..HEADER_LEN) {
            None => Err(BodyError::TruncatedHeader {
                len: body.len() as u64,
            }
            .into()),
            Some(h) if h == self.header => Ok(()),
            Some(_) => Err(BodyError::CommitmentMismatch.into()),
        }
    }

    /// Opens the whole body, which must start with the header
    /// [`Opener::new`] checked.
    pub fn open(&self, body: &[u8]) -> Result<Vec<u8>, Error> {
        self.check_header(body)?;
        let layout = Layout::for_body(body.len() as u64)?;
        let mut out = vec![0u8; to_usize(layout.plaintext_len, "plaintext")?];
        self.open_into(body, &mut out)?;
        Ok(out)
    }

    /// Opens the whole body into `out`; see [`open_into`].
    pub fn open_into(&self, body: &[u8], out: &mut [u8]) -> Result<(), Error> {
        self.check_header(body)?;
        let layout = Layout::for_body(body.len() as u64)?;
        if out.len() as u64 != layout.plaintext_len {
            return Err(BodyError::LengthMismatch {
                expected: out.len() as u64,
                actual: layout.plaintext_len,
            }
            .into());
        }
        Ok(self.key.open_chunks(0, &body[HEADER_LEN..], out)?)
    }

    /// Opens a byte range of the plaintext; see [`open_range`]. The body
    /// must start with the header [`Opener::new`] checked.
    pub fn open_range(&self, body: &[u8], range: impl Into<ByteRange>) -> Result<Vec<u8>, Error> {
        self.check_header(body)?;
        range::open_range(&self.key, body, range.into())
    }
}
