//! SSE-KMS: the object-safe [`Kms`] trait an engine asks for data keys, and
//! [`LocalKms`], the embedded implementation with customer master keys,
//! aliases, regions, key states, rotation and an audit log.

mod audit;
mod local;

pub use audit::{AuditQuery, AuditRecord, AuditReport, DamagedLine};
pub use local::{KeyMetadata, KeyState, LocalKms};

use super::context::EncryptionContext;
use super::secret::KmsDataKey;
use crate::error::Error;

/// A key-management service, as SSE-KMS uses one: it generates data keys
/// under a customer master key and decrypts their ciphertext blobs, each
/// time under an encryption context and on behalf of a principal.
///
/// Object safe: an [`crate::engine::Engine`] holds an `Arc<dyn Kms>`.
/// Implementations MUST fail (and audit) a decrypt whose context differs
/// from the one the blob was generated under.
pub trait Kms: Send + Sync {
    /// Generates a fresh 256-bit data key under the master key `key_id` (a
    /// key id, key ARN or alias), bound to `context`.
    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<GeneratedDataKey, Error>;

    /// Decrypts a ciphertext blob from [`Kms::generate_data_key`], under the
    /// same `context`.
    ///
    /// `key_id` is the master key the envelope records for the blob (the
    /// `key_arn` that `generate_data_key` reported). A KMS that needs it to
    /// route the request uses it; one that reads the key from the blob
    /// MUST refuse a blob of another key ([`KmsError::IncorrectKey`], as AWS
    /// KMS does when Decrypt is given a KeyId).
    ///
    /// [`KmsError::IncorrectKey`]: crate::KmsError::IncorrectKey
    fn decrypt(
        &self,
        key_id: &str,
        blob: &[u8],
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<DecryptedDataKey, Error>;
}

/// A data key fresh from [`Kms::generate_data_key`].
#[derive(Debug)]
pub struct GeneratedDataKey {
    /// The plaintext data key.
    pub key: KmsDataKey,
    /// The data key encrypted under the master key, to store.
    pub blob: Vec<u8>,
    /// The full ARN of the master key.
    pub key_arn: String,
    /// The master key version that encrypted it, if the KMS reports one
    /// (AWS KMS does not; the envelope then records version 0).
    pub key_version: Option<u32>,
}

/// A data key recovered by [`Kms::decrypt`].
#[derive(Debug)]
pub struct DecryptedDataKey {
    /// The plaintext data key.
    pub key: KmsDataKey,
    /// The full ARN of the master key.
    pub key_arn: String,
    /// The master key version that had encrypted it, if the KMS reports one.
    pub key_version: Option<u32>,
}

impl<T: Kms + ?Sized> Kms for std::sync::Arc<T> {
    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<GeneratedDataKey, Error> {
        (**self).generate_data_key(key_id, context, principal)
    }

    fn decrypt(
        &self,
        key_id: &str,
        blob: &[u8],
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<DecryptedDataKey, Error> {
        (**self).decrypt(key_id, blob, context, principal)
    }
}
