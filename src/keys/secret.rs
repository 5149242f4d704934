//! One newtype per secret role. Each holds 32 bytes, is zeroized on drop,
//! prints no bytes in `Debug`, compares in constant time, and is not `Clone`:
//! a copy is a deliberate `from_bytes(*k.expose_secret())`.

use core::fmt;

use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroize;

use crate::error::{Error, KeyError};

/// Length of every key in the hierarchy, in bytes.
pub const SECRET_LEN: usize = 32;

/// Fills `buf` from the operating system's random number generator.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|e| {
        KeyError::Random {
            reason: e.to_string(),
        }
        .into()
    })
}

macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        pub struct $name([u8; SECRET_LEN]);

        impl $name {
            #[doc = concat!("Draws a fresh ", $what, " from the operating system's random number generator.")]
            pub fn generate() -> Result<Self, Error> {
                let mut key = $name([0u8; SECRET_LEN]);
                fill_random(&mut key.0)?;
                Ok(key)
            }

            #[doc = concat!("Wraps 32 bytes as a ", $what, ".")]
            #[allow(dead_code, reason = "not every role is public")]
            pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
                $name(bytes)
            }

            #[doc = concat!("Copies a ", $what, " from a slice, which must be exactly 32 bytes.")]
            pub fn try_from_slice(bytes: &[u8]) -> Result<Self, Error> {
                let arr: [u8; SECRET_LEN] = bytes.try_into().map_err(|_| KeyError::InvalidKeyLength {
                    what: $what,
                    got: bytes.len(),
                })?;
                Ok($name(arr))
            }

            /// The key bytes. Handle with care: do not log or store them.
            pub fn expose_secret(&self) -> &[u8; SECRET_LEN] {
                &self.0
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }

        impl ConstantTimeEq for $name {
            fn ct_eq(&self, other: &Self) -> Choice {
                self.0.ct_eq(&other.0)
            }
        }

        /// Constant-time comparison.
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.ct_eq(other).into()
            }
        }

        impl Eq for $name {}
    };
}

secret_key!(
    /// A version of an SSE-S3 master key, held by a [`crate::keys::Keyring`].
    ///
    /// ```
    /// use objseal::keys::MasterKey;
    /// let k = MasterKey::generate()?;
    /// assert_eq!(format!("{k:?}"), "MasterKey(..)");
    /// assert!(k == MasterKey::from_bytes(*k.expose_secret()));
    /// # Ok::<(), objseal::Error>(())
    /// ```
    MasterKey,
    "master key"
);

secret_key!(
    /// A key the customer supplies with each request (SSE-C). objseal uses it
    /// only to derive the key-encryption key and to check it against the
    /// envelope's salted key check; it is never stored.
    CustomerKey,
    "customer key"
);

secret_key!(
    /// The plaintext data key a key-management service returns
    /// (`GenerateDataKey`/`Decrypt`): the wrapping key of one SSE-KMS object.
    KmsDataKey,
    "KMS data key"
);

secret_key!(
    /// A bucket-level key from the key-management service (S3 Bucket Keys):
    /// the wrapping key of many objects, cached for a bounded time.
    BucketKey,
    "bucket key"
);

secret_key!(
    /// The key material of one version of a customer master key inside
    /// [`crate::keys::LocalKms`].
    CmkMaterial,
    "KMS key material"
);

impl From<KmsDataKey> for BucketKey {
    fn from(k: KmsDataKey) -> Self {
        BucketKey::from_bytes(*k.expose_secret())
    }
}
