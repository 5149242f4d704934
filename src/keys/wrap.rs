//! Per-object key wrapping (FORMAT.md §5):
//!
//! ```text
//! KEK     = HKDF-SHA-256(IKM = wrapping key, salt = 32 random bytes, info, L = 32)
//! info    = "objseal/v1 wrap" || 0x00 || u8(mode) || u16(len I) || I || u32(version)
//!           || u16(len B) || B || u16(len K) || K || u32(P)
//! aad     = "objseal/v1 wrapped key" || 0x00 || u64(plaintext length)
//!           || u32(len details) || details
//! wrapped = AES-256-GCM(KEK, nonce = 0^12, aad, DEK)         (ciphertext 32 || tag 16)
//! ```
//!
//! Every object draws its own salt, so every KEK is used for exactly one
//! encryption: the all-zero nonce never repeats under a key, and no number
//! of objects under one wrapping key approaches GCM's nonce limits. Mode,
//! key id, key version and the object binding are in the KEK's derivation;
//! the mode-specific details and the plaintext length are authenticated as
//! associated data.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroize;

use super::secret::SECRET_LEN;
use crate::body::DataKey;
use crate::cipher::Aes256Gcm;
use crate::error::{Error, KeyError};
use crate::format::{KEK_SALT_LEN, Mode, ObjectBinding, WRAPPED_KEY_LEN, WrappedKey};

/// Label that starts the KEK's HKDF info.
const INFO_LABEL: &[u8] = b"objseal/v1 wrap\0";
/// Label that starts the wrap's associated data.
const AAD_LABEL: &[u8] = b"objseal/v1 wrapped key\0";

/// What a wrapped key is bound to, besides its wrapping key.
pub(crate) struct WrapScope<'a> {
    pub(crate) mode: Mode,
    pub(crate) binding: &'a ObjectBinding,
    pub(crate) plaintext_len: u64,
}

fn info(scope: &WrapScope<'_>, key_id: &str, key_version: u32) -> Vec<u8> {
    let b = scope.binding;
    let mut out =
        Vec::with_capacity(INFO_LABEL.len() + 16 + key_id.len() + b.bucket().len() + b.key().len());
    out.extend_from_slice(INFO_LABEL);
    out.push(scope.mode.id());
    put16(&mut out, key_id.as_bytes());
    out.extend_from_slice(&key_version.to_be_bytes());
    put16(&mut out, b.bucket().as_bytes());
    put16(&mut out, b.key().as_bytes());
    out.extend_from_slice(&b.part().unwrap_or(0).to_be_bytes());
    out
}

fn aad(plaintext_len: u64, details: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(AAD_LABEL.len() + 12 + details.len());
    out.extend_from_slice(AAD_LABEL);
    out.extend_from_slice(&plaintext_len.to_be_bytes());
    out.extend_from_slice(&(details.len() as u32).to_be_bytes());
    out.extend_from_slice(details);
    out
}

/// Appends a u16 length prefix and `bytes` (callers keep `bytes` within
/// u16: key ids, bucket names and object keys are bounded by `format`).
pub(crate) fn put16(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len().min(u16::MAX as usize) as u16).to_be_bytes());
    out.extend_from_slice(&bytes[..bytes.len().min(u16::MAX as usize)]);
}

fn kek(
    wrapping_key: &[u8; SECRET_LEN],
    salt: &[u8; KEK_SALT_LEN],
    info: &[u8],
) -> Result<Aes256Gcm, Error> {
    let mut kek = [0u8; 32];
    Hkdf::<Sha256>::new(Some(salt), wrapping_key)
        .expand(info, &mut kek)
        .map_err(|_| KeyError::Random {
            reason: "HKDF output length".into(),
        })?;
    let gcm = Aes256Gcm::new(&kek);
    kek.zeroize();
    gcm
}

/// Wraps `dek` under `wrapping_key` for the object and mode of `scope`, with
/// the salt `kek_salt`, which the caller drew from the OS for this wrap
/// alone (the engine draws an object's data key and salts in one call);
/// `details` are authenticated with it.
pub(crate) fn wrap_salted(
    wrapping_key: &[u8; SECRET_LEN],
    scope: &WrapScope<'_>,
    key_id: String,
    key_version: u32,
    details: Vec<u8>,
    dek: &DataKey,
    kek_salt: [u8; KEK_SALT_LEN],
) -> Result<WrappedKey, Error> {
    let gcm = kek(wrapping_key, &kek_salt, &info(scope, &key_id, key_version))?;
    let mut wrapped = [0u8; WRAPPED_KEY_LEN];
    wrapped[..32].copy_from_slice(dek.expose_secret());
    let tag = gcm.seal_in_place(
        &[0u8; 12],
        &aad(scope.plaintext_len, &details),
        &mut wrapped[..32],
    )?;
    wrapped[32..].copy_from_slice(&tag);
    Ok(WrappedKey {
        key_id,
        key_version,
        kek_salt,
        wrapped,
        details,
    })
}

/// Recovers the data key of `wrapped` under `wrapping_key`. Fails with
/// [`KeyError::UnwrapFailed`] when the wrapping key, the object, the mode,
/// the key id or version, the details or the plaintext length differ from
/// those it was wrapped for.
pub(crate) fn unwrap(
    wrapping_key: &[u8; SECRET_LEN],
    scope: &WrapScope<'_>,
    wrapped: &WrappedKey,
) -> Result<DataKey, Error> {
    let gcm = kek(
        wrapping_key,
        &wrapped.kek_salt,
        &info(scope, &wrapped.key_id, wrapped.key_version),
    )?;
    let mut dek = [0u8; 32];
    dek.copy_from_slice(&wrapped.wrapped[..32]);
    let opened = gcm.open_in_place(
        &[0u8; 12],
        &aad(scope.plaintext_len, &wrapped.details),
        &mut dek,
        &wrapped.wrapped[32..],
    );
    if opened.is_err() {
        dek.zeroize();
        return Err(KeyError::UnwrapFailed {
            mode: scope.mode,
            key_id: wrapped.key_id.clone(),
            key_version: wrapped.key_version,
        }
        .into());
    }
    let key = DataKey::from_bytes(dek);
    dek.zeroize();
    Ok(key)
}
