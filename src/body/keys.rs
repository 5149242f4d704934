//! The only bridge between the data key and the chunk layer: HKDF-SHA-512
//! derivation of the chunk key, base nonce and key commitment (C2SP
//! chunked-encryption v1, instantiated with AES-256-GCM).

use core::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha512;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::{COMMITMENT_LEN, HEADER_LEN, KEY_LEN, SALT_LEN};
use crate::cipher::{Aes256Gcm, NONCE_LEN};
use crate::error::{BodyError, Error};

/// The HKDF `info` prefix of C2SP chunked-encryption v1.
const LABEL: &[u8] = b"c2sp.org/chunked-encryption@v1+";
/// The IANA name of the AEAD, followed in `info` by a zero byte.
const AEAD_NAME: &[u8] = b"AEAD_AES_256_GCM";
/// Bytes of HKDF output: AEAD key, base nonce, commitment.
const OKM_LEN: usize = KEY_LEN + NONCE_LEN + COMMITMENT_LEN;

/// A 256-bit data key (DEK): the input key of one object's body.
///
/// Zeroized on drop; `Debug` prints no key bytes; not `Clone`, so a copy is a
/// deliberate [`DataKey::from_bytes`] of [`DataKey::expose_secret`].
///
/// ```
/// use objseal::body::DataKey;
///
/// let fresh = DataKey::generate()?;
/// assert_eq!(format!("{fresh:?}"), "DataKey(..)");
///
/// let err = DataKey::try_from_slice(&[0u8; 31]).unwrap_err();
/// assert!(matches!(err, objseal::Error::Body(objseal::BodyError::InvalidKeyLength { got: 31 })));
/// # Ok::<(), objseal::Error>(())
/// ```
pub struct DataKey([u8; KEY_LEN]);

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl DataKey {
    /// Draws a fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, Error> {
        let mut key = DataKey([0u8; KEY_LEN]);
        fill_random(&mut key.0)?;
        Ok(key)
    }

    /// Wraps 32 key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        DataKey(bytes)
    }

    /// Copies a key from a slice, which must be exactly 32 bytes.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| BodyError::InvalidKeyLength { got: bytes.len() })?;
        Ok(DataKey(arr))
    }

    /// The key bytes, for wrapping under a key-encryption key.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// Fills `buf` from the OS random number generator.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|e| {
        BodyError::Random {
            reason: e.to_string(),
        }
        .into()
    })
}

/// The per-body chunk key: AES-256-GCM keyed once, and the base nonce.
pub(crate) struct ChunkKey {
    pub(crate) gcm: Aes256Gcm,
    pub(crate) base_nonce: [u8; NONCE_LEN],
}

impl Drop for ChunkKey {
    fn drop(&mut self) {
        self.base_nonce.zeroize();
    }
}

/// Derives the chunk key and the commitment from the data key, the salt and
/// the context: `HKDF-Expand-SHA-512(prk = key, info = LABEL || AEAD_NAME ||
/// 0x00 || salt || context, L = 76)`, split as key (32) || base nonce (12) ||
/// commitment (32).
pub(crate) fn derive(
    key: &DataKey,
    salt: &[u8; SALT_LEN],
    context: &[u8],
) -> Result<(ChunkKey, [u8; COMMITMENT_LEN]), Error> {
    let mut okm = [0u8; OKM_LEN];
    hkdf_expand_sha512(&key.0, &[LABEL, AEAD_NAME, &[0], salt, context], &mut okm);
    let mut aead_key = [0u8; KEY_LEN];
    aead_key.copy_from_slice(&okm[..KEY_LEN]);
    let gcm = Aes256Gcm::new(&aead_key);
    aead_key.zeroize();
    let mut base_nonce = [0u8; NONCE_LEN];
    base_nonce.copy_from_slice(&okm[KEY_LEN..KEY_LEN + NONCE_LEN]);
    let mut commitment = [0u8; COMMITMENT_LEN];
    commitment.copy_from_slice(&okm[KEY_LEN + NONCE_LEN..]);
    okm.zeroize();
    Ok((
        ChunkKey {
            gcm: gcm?,
            base_nonce,
        },
        commitment,
    ))
}

/// Derives keys for a new body: draws a salt and returns the chunk key and the
/// 56-byte header (salt || commitment).
pub(crate) fn derive_for_seal(
    key: &DataKey,
    context: &[u8],
) -> Result<(ChunkKey, [u8; HEADER_LEN]), Error> {
    let mut salt = [0u8; SALT_LEN];
    fill_random(&mut salt)?;
    derive_for_seal_salted(key, &salt, context)
}

/// [`derive_for_seal`] with a salt the caller drew (the engine draws an
/// object's data key, salts and body salt from the OS in one call).
pub(crate) fn derive_for_seal_salted(
    key: &DataKey,
    salt: &[u8; SALT_LEN],
    context: &[u8],
) -> Result<(ChunkKey, [u8; HEADER_LEN]), Error> {
    let (chunk_key, commitment) = derive(key, salt, context)?;
    let mut header = [0u8; HEADER_LEN];
    header[..SALT_LEN].copy_from_slice(salt);
    header[SALT_LEN..].copy_from_slice(&commitment);
    Ok((chunk_key, header))
}

/// Derives keys for opening a body from its header, checking the commitment
/// in constant time. Fails before any chunk can be opened.
pub(crate) fn derive_for_open(
    key: &DataKey,
    context: &[u8],
    header: &[u8],
) -> Result<ChunkKey, Error> {
    let header: &[u8; HEADER_LEN] = header
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(BodyError::TruncatedHeader {
            len: header.len() as u64,
        })?;
    let (salt, stored) = header.split_at(SALT_LEN);
    let salt: &[u8; SALT_LEN] = salt.try_into().expect("split at SALT_LEN");
    let (chunk_key, mut commitment) = derive(key, salt, context)?;
    let ok: bool = commitment.ct_eq(stored).into();
    commitment.zeroize();
    if ok {
        Ok(chunk_key)
    } else {
        Err(BodyError::CommitmentMismatch.into())
    }
}

/// HKDF-Expand (RFC 5869 §2.3) with HMAC-SHA-512, `info` given in pieces.
///
/// The `hkdf` crate refuses a PRK shorter than the hash output, but C2SP
/// chunked encryption uses the 32-byte data key directly as the PRK, so the
/// expansion is computed here from HMAC: `T(i) = HMAC(prk, T(i-1) || info || i)`.
fn hkdf_expand_sha512(prk: &[u8], info: &[&[u8]], out: &mut [u8]) {
    const HASH_LEN: usize = 64;
    debug_assert!(out.len() <= 255 * HASH_LEN);
    let mut base = Some(
        <Hmac<Sha512> as KeyInit>::new_from_slice(prk).expect("HMAC takes keys of any length"),
    );
    let mut prev = [0u8; HASH_LEN];
    let blocks = out.len().div_ceil(HASH_LEN);
    for (i, block) in out.chunks_mut(HASH_LEN).enumerate() {
        // The keyed state is cloned for every block but the last, which
        // takes it (one copy and one wipe of the HMAC state less).
        let mut mac = if i + 1 < blocks {
            base.clone()
        } else {
            base.take()
        }
        .expect("taken by the last block only");
        if i > 0 {
            mac.update(&prev);
        }
        for part in info {
            mac.update(part);
        }
        mac.update(&[(i + 1) as u8]);
        let mut t = mac.finalize().into_bytes();
        prev.copy_from_slice(&t);
        t.as_mut_slice().zeroize();
        block.copy_from_slice(&prev[..block.len()]);
    }
    prev.zeroize();
}
