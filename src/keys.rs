//! The key hierarchy: every object's body is sealed under its own random
//! [`DataKey`]; the data key is wrapped under a per-object key-encryption
//! key (KEK) derived from a *wrapping key*, which depends on the mode:
//!
//! - **SSE-S3**: a master key version from the [`Keyring`], rotated
//!   regularly, old versions kept for decryption.
//! - **SSE-KMS**: a data key from a key-management service ([`Kms`],
//!   [`LocalKms`]) under a customer master key and an [`EncryptionContext`];
//!   with Bucket Keys, one bucket-level key from the KMS for many objects.
//! - **SSE-C**: the [`CustomerKey`] sent with each request, never stored;
//!   the envelope keeps a salted check of it.
//!
//! `KEK = HKDF-SHA-256(wrapping key, salt = 32 random bytes, info = "objseal/v1
//! wrap" || mode || key id || version || bucket || key || part)`, and the
//! wrapped key is AES-256-GCM of the data key under the KEK with the zero
//! nonce (each KEK encrypts once). A wrapped key copied to another object or
//! read under another mode does not unwrap. `docs/FORMAT.md` §5 has the
//! bytes. The [`crate::engine::Engine`] puts the pieces together.

#[cfg(feature = "aws-kms")]
mod aws_kms;
pub(crate) mod bucket_key;
mod context;
mod details;
mod keyring;
mod kms;
pub(crate) mod secret;
pub(crate) mod sse_c;
pub(crate) mod wrap;

pub use crate::body::DataKey;
pub use crate::fsio::rfc3339;
#[cfg(feature = "aws-kms")]
pub use aws_kms::{
    AwsCiphertext, AwsKeyMetadata, AwsKms, AwsKmsConfig, AwsReEncrypted, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT, MAX_RETRIES,
};
pub use bucket_key::DEFAULT_BUCKET_KEY_TTL;
pub use context::{
    EncryptionContext, MAX_CONTEXT_KEY_LEN, MAX_CONTEXT_LEN, MAX_CONTEXT_PAIRS,
    MAX_CONTEXT_VALUE_LEN, S3_ARN_KEY,
};
pub use details::{
    DETAILS_VERSION, Details, KEY_CHECK_LEN, KeyCheck, KmsDetails, MAX_KMS_BLOB_LEN,
};
pub use keyring::{KeyVersionInfo, Keyring};
pub use kms::{
    AuditQuery, AuditRecord, AuditReport, DamagedLine, DecryptedDataKey, GeneratedDataKey,
    KeyMetadata, KeyState, Kms, LocalKms,
};
pub use secret::{BucketKey, CustomerKey, KmsDataKey, MasterKey, SECRET_LEN};
