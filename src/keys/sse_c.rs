//! SSE-C: the salted check of a customer key. The key itself is never
//! stored; the envelope keeps `HMAC-SHA-256(customer key, label || salt)`
//! with a random per-object salt, so a wrong key is reported as such
//! ([`KeyError::AccessDenied`]) rather than as corruption.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::details::{KEY_CHECK_LEN, KeyCheck};
use super::secret::CustomerKey;
use crate::error::{Error, KeyError};

const LABEL: &[u8] = b"objseal/v1 sse-c key check\0";

fn compute(key: &CustomerKey, salt: &[u8; KEY_CHECK_LEN]) -> [u8; KEY_CHECK_LEN] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose_secret())
        .expect("HMAC takes keys of any length");
    mac.update(LABEL);
    mac.update(salt);
    mac.finalize().into_bytes().into()
}

/// A salted check of `key` with `salt`, which the caller drew from the OS
/// for this check alone.
pub(crate) fn key_check_salted(key: &CustomerKey, salt: [u8; KEY_CHECK_LEN]) -> KeyCheck {
    let check = compute(key, &salt);
    KeyCheck { salt, check }
}

/// Checks `key` against the envelope's check, in constant time.
pub(crate) fn verify(key: &CustomerKey, check: &KeyCheck) -> Result<(), Error> {
    let ok: bool = compute(key, &check.salt).ct_eq(&check.check).into();
    if ok {
        Ok(())
    } else {
        Err(KeyError::AccessDenied.into())
    }
}
