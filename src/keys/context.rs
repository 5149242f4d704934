//! The SSE-KMS encryption context: a set of non-secret string pairs bound to
//! a data key, which must be presented again to decrypt it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, KmsError};
use crate::format::ObjectBinding;

/// Most pairs in one encryption context.
pub const MAX_CONTEXT_PAIRS: usize = 64;
/// Longest context key, in bytes.
pub const MAX_CONTEXT_KEY_LEN: usize = 256;
/// Longest context value, in bytes.
pub const MAX_CONTEXT_VALUE_LEN: usize = 2048;
/// Most bytes of keys and values together (AWS KMS allows 8192).
pub const MAX_CONTEXT_LEN: usize = 8192;
/// The context key S3 fills with the object's (or bucket's) ARN.
pub const S3_ARN_KEY: &str = "aws:s3:arn";

/// An encryption context: string pairs, kept sorted by key (bytewise), so
/// each context has one canonical encoding.
///
/// ```
/// use objseal::keys::EncryptionContext;
///
/// let ctx = EncryptionContext::new().with("department", "finance")?;
/// assert_eq!(ctx.get("department"), Some("finance"));
/// assert!(EncryptionContext::new().with("aws:s3:arn", "x").is_err()); // reserved prefix
/// # Ok::<(), objseal::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// This context with the pair `key = value` added (or replaced). Keys
    /// starting with `aws:` are reserved for objseal (as S3 reserves them)
    /// and refused.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Result<Self, Error> {
        let key = key.into();
        if key.starts_with("aws:") {
            return Err(KmsError::InvalidContext {
                reason: format!("context key {key:?} uses the reserved prefix \"aws:\""),
            }
            .into());
        }
        self.0.insert(key, value.into());
        self.check()?;
        Ok(self)
    }

    /// Adds a pair without the reserved-prefix check (objseal's own keys).
    pub(crate) fn insert_reserved(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the context has no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks every bound: at most 64 pairs, keys 1..=256 bytes, values at
    /// most 2048 bytes, 8192 bytes in all.
    pub fn check(&self) -> Result<(), Error> {
        let fail = |reason: String| -> Result<(), Error> {
            Err(KmsError::InvalidContext { reason }.into())
        };
        if self.0.len() > MAX_CONTEXT_PAIRS {
            return fail(format!(
                "{} pairs, at most {MAX_CONTEXT_PAIRS} allowed",
                self.0.len()
            ));
        }
        let mut total = 0;
        for (k, v) in &self.0 {
            if k.is_empty() || k.len() > MAX_CONTEXT_KEY_LEN {
                return fail(format!(
                    "key of {} bytes, must be 1..={MAX_CONTEXT_KEY_LEN}",
                    k.len()
                ));
            }
            if v.len() > MAX_CONTEXT_VALUE_LEN {
                return fail(format!(
                    "value of {:?} is {} bytes, at most {MAX_CONTEXT_VALUE_LEN}",
                    k,
                    v.len()
                ));
            }
            total += k.len() + v.len();
        }
        if total > MAX_CONTEXT_LEN {
            return fail(format!("{total} bytes in all, at most {MAX_CONTEXT_LEN}"));
        }
        Ok(())
    }

    /// The canonical encoding: u16 count, then per pair (sorted by key)
    /// u16 length and bytes of the key, u16 length and bytes of the value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.0.len() as u16).to_be_bytes());
        for (k, v) in &self.0 {
            super::wrap::put16(&mut out, k.as_bytes());
            super::wrap::put16(&mut out, v.as_bytes());
        }
        out
    }

    /// Refuses keys with the reserved `aws:` prefix (a deserialized context
    /// did not pass through [`EncryptionContext::with`]).
    fn check_unreserved(&self) -> Result<(), Error> {
        match self.0.keys().find(|k| k.starts_with("aws:")) {
            Some(key) => Err(KmsError::InvalidContext {
                reason: format!("context key {key:?} uses the reserved prefix \"aws:\""),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Builds a context from already-validated sorted pairs (the details parser).
    pub(crate) fn from_map(map: BTreeMap<String, String>) -> Self {
        EncryptionContext(map)
    }

    /// The context S3 uses for an object: `aws:s3:arn = arn:aws:s3:::BUCKET/KEY`
    /// merged with the caller's pairs (which cannot override it).
    pub fn for_object(binding: &ObjectBinding, caller: &EncryptionContext) -> Result<Self, Error> {
        caller.check_unreserved()?;
        let mut ctx = caller.clone();
        ctx.insert_reserved(
            S3_ARN_KEY,
            format!("arn:aws:s3:::{}/{}", binding.bucket(), binding.key()),
        );
        ctx.check()?;
        Ok(ctx)
    }

    /// The context S3 uses for a bucket key: `aws:s3:arn = arn:aws:s3:::BUCKET`
    /// merged with the caller's pairs.
    pub fn for_bucket(bucket: &str, caller: &EncryptionContext) -> Result<Self, Error> {
        caller.check_unreserved()?;
        let mut ctx = caller.clone();
        ctx.insert_reserved(S3_ARN_KEY, format!("arn:aws:s3:::{bucket}"));
        ctx.check()?;
        Ok(ctx)
    }
}
