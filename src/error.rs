//! The crate's error type: one `#[non_exhaustive]` enum with a nested kind per
//! layer, so callers can match broadly (`Error::Cipher(_)`) or precisely.

use crate::cipher::Backend;

/// Every error objseal returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The AES-256-GCM engine refused its input or failed to authenticate.
    #[error(transparent)]
    Cipher(#[from] CipherError),
}

/// Errors of the AES-256-GCM engine ([`crate::cipher::Aes256Gcm`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CipherError {
    /// The nonce is not 96 bits. objseal only accepts 12-byte nonces, the size
    /// for which SP 800-38D defines the counter block directly.
    #[error("nonce is {got} bytes; AES-256-GCM here takes exactly 12-byte (96-bit) nonces")]
    InvalidNonceLength {
        /// Length of the nonce that was passed, in bytes.
        got: usize,
    },
    /// The key is not 32 bytes.
    #[error("key is {got} bytes; AES-256 takes exactly 32-byte keys")]
    InvalidKeyLength {
        /// Length of the key that was passed, in bytes.
        got: usize,
    },
    /// The tag is not 16 bytes. Truncated tags are not accepted.
    #[error("tag is {got} bytes; AES-256-GCM here takes exactly 16-byte tags")]
    InvalidTagLength {
        /// Length of the tag that was passed, in bytes.
        got: usize,
    },
    /// The message exceeds the GCM limit of 2^39 - 256 bits
    /// (SP 800-38D §5.2.1.1), i.e. 2^36 - 32 bytes.
    #[error(
        "message of {len} bytes exceeds the AES-GCM limit of 2^36 - 32 bytes (SP 800-38D 5.2.1.1); split it into chunks"
    )]
    MessageTooLong {
        /// Length of the message, in bytes.
        len: u64,
    },
    /// The associated data exceeds the GCM limit of 2^64 - 1 bits.
    #[error("associated data of {len} bytes exceeds the AES-GCM limit of 2^61 - 1 bytes")]
    AssociatedDataTooLong {
        /// Length of the associated data, in bytes.
        len: u64,
    },
    /// The tag did not match: wrong key, wrong nonce, wrong associated data,
    /// or the ciphertext or tag was modified. The buffer has been zeroed.
    #[error(
        "authentication failed: the ciphertext, tag, nonce, associated data or key is not the one it was sealed with"
    )]
    TagMismatch,
    /// `OBJSEAL_BACKEND` or a backend name passed to the API is not one objseal knows.
    #[error(
        "unknown AES-GCM backend {name:?}; expected one of: auto, portable, aesni-clmul, vaes-clmul-avx2"
    )]
    UnknownBackend {
        /// The name that was given.
        name: String,
    },
    /// A backend was forced that this CPU (or this build) cannot run.
    #[error("AES-GCM backend {backend} is not available here: {reason}")]
    BackendUnavailable {
        /// The backend that was asked for.
        backend: Backend,
        /// Why it cannot run (missing CPU features, or not built for this target).
        reason: &'static str,
    },
}
