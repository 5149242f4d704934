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
//! Entry points: [`seal`] / [`open`] / [`open_range`] over slices,
//! [`SealWriter`] / [`OpenReader`] for streams in bounded memory,
//! [`seal_file`] / [`open_file`] / [`open_file_range`] file to file.
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
#[allow(unsafe_code)]
mod file;
mod keys;
mod range;
mod stream;

pub use crate::error::BodyError;
use crate::error::Error;
use chunk::{Layout, to_usize};
use keys::ChunkKey;

pub use file::{open_file, open_file_range, seal_file};
pub use keys::DataKey;
pub use range::ByteRange;
pub use stream::{OpenReader, SealWriter};

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

/// Seals `plaintext` into a new body under `key` and `context`, drawing a
/// fresh salt. Chunks are sealed in parallel on the current rayon pool.
pub fn seal(key: &DataKey, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let layout = Layout::for_plaintext(plaintext.len() as u64)?;
    let mut body = vec![0u8; to_usize(layout.body_len()?, "body")?];
    let (chunk_key, header) = keys::derive_for_seal(key, context)?;
    let (head, chunks) = body.split_at_mut(HEADER_LEN);
    head.copy_from_slice(&header);
    chunk_key.seal_chunks(0, plaintext, chunks)?;
    Ok(body)
}

/// Opens a whole body. Fails without decrypting anything if the header does
/// not commit to `key` and `context`; fails with the first chunk that does
/// not authenticate otherwise, and then returns no plaintext at all.
pub fn open(key: &DataKey, context: &[u8], body: &[u8]) -> Result<Vec<u8>, Error> {
    Opener::new(key, context, body)?.open(body)
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
/// ```
/// use objseal::body::{self, DataKey, Opener};
///
/// let key = DataKey::generate()?;
/// let sealed = body::seal(&key, b"ctx", b"hello")?;
/// let opener = Opener::new(&key, b"ctx", &sealed[..body::HEADER_LEN])?;
/// assert_eq!(opener.open(&sealed)?, b"hello");
/// assert!(Opener::new(&DataKey::generate()?, b"ctx", &sealed).is_err());
/// # Ok::<(), objseal::Error>(())
/// ```
pub struct Opener {
    key: ChunkKey,
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
        Ok(Opener {
            key: keys::derive_for_open(key, context, body)?,
        })
    }

    /// Opens the whole body (header included, as [`Opener::new`] saw it).
    pub fn open(&self, body: &[u8]) -> Result<Vec<u8>, Error> {
        let layout = Layout::for_body(body.len() as u64)?;
        let mut out = vec![0u8; to_usize(layout.plaintext_len, "plaintext")?];
        self.key.open_chunks(0, &body[HEADER_LEN..], &mut out)?;
        Ok(out)
    }

    /// Opens a byte range of the plaintext; see [`open_range`].
    pub fn open_range(&self, body: &[u8], range: impl Into<ByteRange>) -> Result<Vec<u8>, Error> {
        range::open_range(&self.key, body, range.into())
    }
}
