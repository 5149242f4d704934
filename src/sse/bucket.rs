//! [`BucketEncryption`]: a bucket's default encryption (PutBucketEncryption),
//! its blocked encryption types, and the encryption rules a bucket policy
//! would express; [`BucketEncryption::resolve`] turns a request into the
//! mode to seal with.

use super::error::S3Error;
use super::request::{ServerSideEncryption, SseCustomerKey, SseRequest};
use crate::engine::SealMode;
use crate::format::Mode;
use crate::keys::EncryptionContext;

/// A bucket's default encryption. SSE-C cannot be a default: S3 has no key
/// to apply it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultEncryption {
    /// SSE-S3 (`AES256`), S3's default for every bucket.
    SseS3,
    /// SSE-KMS (`aws:kms`) under `key_id`, or the engine's default key.
    SseKms {
        /// KMS key id, ARN or alias.
        key_id: Option<String>,
    },
}

/// A bucket's encryption configuration and policy rules, applied to every
/// write (PutObject, CopyObject's destination, CreateMultipartUpload).
///
/// - **Default**: the mode applied when the request sends no encryption
///   header ([`DefaultEncryption`], SSE-S3 unless set), with the bucket's
///   Bucket Key setting, used for SSE-KMS when the request does not send
///   `x-amz-server-side-encryption-bucket-key-enabled`.
/// - **Blocked types**: writes in a blocked mode are refused with 403
///   `AccessDenied`. SSE-C is blocked unless [`BucketEncryption::allow_sse_c`]
///   is called, as S3 does for new buckets since 2026. Reading existing
///   objects is not affected.
/// - **Policy rules**, evaluated on the request's headers as bucket-policy
///   conditions are (so a request relying on the default encryption does not
///   satisfy them): [`deny_unencrypted`](BucketEncryption::deny_unencrypted)
///   (some encryption header is required), [`require_mode`](BucketEncryption::require_mode),
///   [`require_kms_key`](BucketEncryption::require_kms_key). A violation is
///   403 `AccessDenied`.
///
/// ```
/// use objseal::sse::{BucketEncryption, ResolvedMode, SseRequest, Transport};
/// use objseal::Mode;
///
/// let bucket = BucketEncryption::sse_kms(Some("alias/app")).with_bucket_key(true);
///
/// // No header: the bucket default, with its Bucket Key setting.
/// let req = SseRequest::from_headers([("content-length", "3")], Transport::Https)?;
/// let mode = bucket.resolve(&req)?;
/// assert_eq!(mode.mode(), Mode::SseKms);
/// assert!(matches!(mode, ResolvedMode::Kms { key_id: Some("alias/app"), bucket_key: true, .. }));
///
/// // Explicit SSE-S3 wins over the default.
/// let req = SseRequest::from_headers([("x-amz-server-side-encryption", "AES256")], Transport::Https)?;
/// assert_eq!(bucket.resolve(&req)?.mode(), Mode::SseS3);
///
/// // A policy that denies unencrypted uploads refuses a request without a header.
/// let strict = BucketEncryption::default().deny_unencrypted();
/// let err = strict.resolve(&SseRequest::none()).unwrap_err();
/// assert_eq!((err.code, err.status), ("AccessDenied", 403));
/// # Ok::<(), objseal::sse::S3Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketEncryption {
    default: DefaultEncryption,
    bucket_key: bool,
    blocked: Vec<Mode>,
    deny_unencrypted: bool,
    require_mode: Option<Mode>,
    require_kms_key: Option<String>,
}

impl Default for BucketEncryption {
    /// SSE-S3 by default, no Bucket Key, SSE-C blocked, no policy rules.
    fn default() -> Self {
        BucketEncryption {
            default: DefaultEncryption::SseS3,
            bucket_key: false,
            blocked: vec![Mode::SseC],
            deny_unencrypted: false,
            require_mode: None,
            require_kms_key: None,
        }
    }
}

/// The mode to seal a write with: the request's headers with the bucket's
/// defaults applied. It borrows the request (for the SSE-C key and the
/// context) and the bucket configuration (for its default key id).
#[derive(Debug, Clone, Copy)]
pub enum ResolvedMode<'a> {
    /// SSE-S3.
    S3,
    /// SSE-KMS.
    Kms {
        /// The KMS key; `None` for the engine's default key (S3's `aws/s3`).
        key_id: Option<&'a str>,
        /// The caller's encryption context.
        context: Option<&'a EncryptionContext>,
        /// Whether to use an S3 Bucket Key.
        bucket_key: bool,
    },
    /// SSE-C under the request's key.
    C(&'a SseCustomerKey),
}

impl<'a> ResolvedMode<'a> {
    /// The envelope mode.
    pub fn mode(&self) -> Mode {
        match self {
            ResolvedMode::S3 => Mode::SseS3,
            ResolvedMode::Kms { .. } => Mode::SseKms,
            ResolvedMode::C(_) => Mode::SseC,
        }
    }

    /// The [`SealMode`] to pass to the [`crate::Engine`].
    pub fn seal_mode(&self) -> SealMode<'a> {
        match *self {
            ResolvedMode::S3 => SealMode::S3,
            ResolvedMode::Kms {
                key_id,
                context,
                bucket_key,
            } => SealMode::Kms {
                key_id,
                context,
                bucket_key,
            },
            ResolvedMode::C(k) => SealMode::C(k.key()),
        }
    }
}

impl BucketEncryption {
    /// SSE-S3 by default (the [`Default`]).
    pub fn sse_s3() -> Self {
        BucketEncryption::default()
    }

    /// SSE-KMS by default under `key_id` (`None`: the engine's default key).
    pub fn sse_kms(key_id: Option<&str>) -> Self {
        BucketEncryption {
            default: DefaultEncryption::SseKms {
                key_id: key_id.map(str::to_owned),
            },
            ..BucketEncryption::default()
        }
    }

    /// The configuration a PutBucketEncryption rule describes: `SSEAlgorithm`
    /// (`AES256` or `aws:kms`), `KMSMasterKeyID` (only with `aws:kms`) and
    /// `BucketKeyEnabled`. Any other algorithm, SSE-C included (it cannot
    /// be a default), is 400 `MalformedXML`, as S3 answers; a KMS key with
    /// `AES256` is 400 `InvalidArgument`.
    pub fn from_default_rule(
        sse_algorithm: &str,
        kms_master_key_id: Option<&str>,
        bucket_key_enabled: bool,
    ) -> Result<Self, S3Error> {
        let config = match (sse_algorithm, kms_master_key_id) {
            ("AES256", None) => BucketEncryption::sse_s3(),
            ("AES256", Some(_)) => {
                return Err(S3Error::invalid_argument(
                    "ApplyServerSideEncryptionByDefault",
                    "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms",
                ));
            }
            ("aws:kms", id) => BucketEncryption::sse_kms(id),
            _ => {
                return Err(S3Error::new(
                    "MalformedXML",
                    400,
                    "The XML you provided was not well-formed or did not validate against our published schema",
                ));
            }
        };
        Ok(config.with_bucket_key(bucket_key_enabled))
    }

    /// This configuration with the Bucket Key setting `on`.
    pub fn with_bucket_key(mut self, on: bool) -> Self {
        self.bucket_key = on;
        self
    }

    /// This configuration with SSE-C writes allowed.
    pub fn allow_sse_c(self) -> Self {
        self.allow(Mode::SseC)
    }

    /// This configuration with writes in `mode` allowed.
    pub fn allow(mut self, mode: Mode) -> Self {
        self.blocked.retain(|m| *m != mode);
        self
    }

    /// This configuration with writes in `mode` blocked (403 `AccessDenied`).
    pub fn block(mut self, mode: Mode) -> Self {
        if !self.blocked.contains(&mode) {
            self.blocked.push(mode);
        }
        self
    }

    /// This configuration refusing writes that send no encryption header.
    pub fn deny_unencrypted(mut self) -> Self {
        self.deny_unencrypted = true;
        self
    }

    /// This configuration refusing writes that do not ask for `mode`.
    pub fn require_mode(mut self, mode: Mode) -> Self {
        self.require_mode = Some(mode);
        self
    }

    /// This configuration refusing writes that do not ask for SSE-KMS under
    /// exactly `key_id` (compared as sent, as a policy condition compares it).
    pub fn require_kms_key(mut self, key_id: impl Into<String>) -> Self {
        self.require_kms_key = Some(key_id.into());
        self
    }

    /// The default encryption.
    pub fn default_encryption(&self) -> &DefaultEncryption {
        &self.default
    }

    /// The Bucket Key setting.
    pub fn bucket_key(&self) -> bool {
        self.bucket_key
    }

    /// Whether writes in `mode` are blocked.
    pub fn is_blocked(&self, mode: Mode) -> bool {
        self.blocked.contains(&mode)
    }

    /// The mode to seal a write with, or the S3 error that refuses it.
    pub fn resolve<'a>(&'a self, req: &'a SseRequest) -> Result<ResolvedMode<'a>, S3Error> {
        let requested = match (req.customer_key(), req.server_side_encryption()) {
            (Some(_), _) => Some(Mode::SseC),
            (None, Some(ServerSideEncryption::Aes256)) => Some(Mode::SseS3),
            (None, Some(ServerSideEncryption::AwsKms)) => Some(Mode::SseKms),
            (None, None) => None,
        };
        if self.deny_unencrypted && requested.is_none() {
            return Err(S3Error::access_denied());
        }
        if let Some(required) = self.require_mode
            && requested != Some(required)
        {
            return Err(S3Error::access_denied());
        }
        if let Some(required) = &self.require_kms_key
            && (requested != Some(Mode::SseKms) || req.kms_key_id() != Some(required.as_str()))
        {
            return Err(S3Error::access_denied());
        }
        let resolved = match (req.customer_key(), requested) {
            (Some(key), _) => ResolvedMode::C(key),
            (None, Some(Mode::SseKms)) => ResolvedMode::Kms {
                key_id: req.kms_key_id(),
                context: req.encryption_context(),
                bucket_key: req.bucket_key_enabled().unwrap_or(self.bucket_key),
            },
            (None, Some(_)) => ResolvedMode::S3,
            (None, None) => match &self.default {
                DefaultEncryption::SseS3 => ResolvedMode::S3,
                DefaultEncryption::SseKms { key_id } => ResolvedMode::Kms {
                    key_id: key_id.as_deref(),
                    context: None,
                    bucket_key: req.bucket_key_enabled().unwrap_or(self.bucket_key),
                },
            },
        };
        if self.is_blocked(resolved.mode()) {
            return Err(S3Error::access_denied());
        }
        Ok(resolved)
    }
}
