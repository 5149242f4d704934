//! [`AwsKms`]: a [`Kms`] that asks AWS KMS (or any service speaking its JSON
//! API) for data keys, over a small blocking HTTPS client with SigV4
//! signatures. Behind the `aws-kms` feature.
//!
//! Every call has one deadline ([`AwsKmsConfig::request_timeout`]) that
//! covers its attempts and the pauses between them: throttling, 5xx answers,
//! transport errors and timeouts are retried at most
//! [`AwsKmsConfig::max_retries`] times (exponential backoff with jitter from
//! 50 ms, capped at 1 s), then reported as [`KmsError::Throttled`] or
//! [`KmsError::Unavailable`]. Calls share a connection pool but not
//! connections, so one hung request stalls no other.

use core::fmt;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Deserializer, Serialize};
use zeroize::Zeroizing;

use super::context::EncryptionContext;
use super::kms::{DecryptedDataKey, GeneratedDataKey, Kms};
use super::secret::KmsDataKey;
use crate::error::{Error, KmsError};

/// Default bound on establishing a connection to the KMS endpoint.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default bound on one KMS call, retries and backoff included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most retries of one KMS call (after its first attempt).
pub const MAX_RETRIES: u32 = 3;

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const SERVICE: &str = "kms";
/// Longest response body read from the KMS.
const MAX_RESPONSE: u64 = 1 << 20;
/// First backoff pause, doubled per retry.
const BACKOFF_BASE: Duration = Duration::from_millis(50);
/// Longest backoff pause.
const BACKOFF_CAP: Duration = Duration::from_secs(1);
/// Longest AWS error message kept in an error.
const MAX_MESSAGE: usize = 512;

/// Where and as whom [`AwsKms`] talks to AWS KMS, and how long it waits.
///
/// The credentials are kept in zeroizing memory and never printed by
/// `Debug` (only the access key id is).
///
/// ```
/// use std::time::Duration;
/// use objseal::AwsKmsConfig;
///
/// let mut config = AwsKmsConfig::new("eu-west-1", "AKIDEXAMPLE", "wJalrXUtnFEMIK7MDENG")
///     .with_session_token("IQoJb3JpZ2luX2VjEXAMPLE");
/// assert_eq!(config.endpoint, "https://kms.eu-west-1.amazonaws.com");
/// config.request_timeout = Duration::from_secs(5);
/// let shown = format!("{config:?}");
/// assert!(shown.contains("AKIDEXAMPLE"));
/// assert!(!shown.contains("wJalrXUtnFEMIK7MDENG") && !shown.contains("IQoJb3JpZ2luX2VjEXAMPLE"));
/// ```
#[derive(Clone)]
pub struct AwsKmsConfig {
    /// The region signed for (`us-east-1`, ...).
    pub region: String,
    /// The service's base URL (`https://kms.REGION.amazonaws.com`, or a
    /// KMS-compatible service), without a trailing slash.
    pub endpoint: String,
    /// Bound on establishing a connection (default 2 s).
    pub connect_timeout: Duration,
    /// Bound on one call, all its attempts and pauses included (default
    /// 10 s): a hung KMS fails within it.
    pub request_timeout: Duration,
    /// Retries after a first failed attempt, at most [`MAX_RETRIES`] (3,
    /// the default; larger values count as 3).
    pub max_retries: u32,
    credentials: Credentials,
}

impl fmt::Debug for AwsKmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsConfig")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("access_key_id", &self.credentials.access_key_id())
            .field("secret_access_key", &"(redacted)")
            .field(
                "session_token",
                &self.credentials.session_token().map(|_| "(redacted)"),
            )
            .finish()
    }
}

impl AwsKmsConfig {
    /// A configuration for `region`'s public endpoint with long-term
    /// credentials and the default timeouts.
    pub fn new(
        region: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        let region = region.into();
        AwsKmsConfig {
            endpoint: default_endpoint(&region),
            region,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_retries: MAX_RETRIES,
            credentials: Credentials::new(access_key_id, secret_access_key, None, None, "objseal"),
        }
    }

    /// Adds a session token (temporary credentials), sent as
    /// `X-Amz-Security-Token`.
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.credentials = Credentials::new(
            self.credentials.access_key_id(),
            self.credentials.secret_access_key(),
            Some(token.into()),
            None,
            "objseal",
        );
        self
    }

    /// Another endpoint (a KMS-compatible service, a VPC endpoint): an
    /// `http://` or `https://` URL; a trailing slash is dropped.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Result<Self, Error> {
        self.endpoint = checked_endpoint("endpoint", &endpoint.into())?;
        Ok(self)
    }

    /// The configuration from the environment, as the AWS SDKs read it:
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`
    /// (optional), `AWS_REGION` (else `AWS_DEFAULT_REGION`), and the
    /// endpoint `AWS_ENDPOINT_URL_KMS`, else `AWS_ENDPOINT_URL`, else
    /// `https://kms.REGION.amazonaws.com`. Empty variables count as unset.
    ///
    /// A missing credential or region is [`KmsError::Configuration`] naming
    /// the variable.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`AwsKmsConfig::from_env`] over another source of variables.
    ///
    /// ```
    /// use objseal::{AwsKmsConfig, Error, KmsError};
    ///
    /// let vars = [
    ///     ("AWS_ACCESS_KEY_ID", "test"),
    ///     ("AWS_SECRET_ACCESS_KEY", "test"),
    ///     ("AWS_DEFAULT_REGION", "us-east-2"),
    ///     ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566/"),
    /// ];
    /// let lookup = |name: &str| vars.iter().find(|v| v.0 == name).map(|v| v.1.to_owned());
    /// let config = AwsKmsConfig::from_lookup(lookup)?;
    /// assert_eq!((config.region.as_str(), config.endpoint.as_str()), ("us-east-2", "http://127.0.0.1:4566"));
    ///
    /// let err = AwsKmsConfig::from_lookup(|_| None).unwrap_err();
    /// assert!(matches!(err, Error::Kms(KmsError::Configuration { ref variable, .. }) if variable == "AWS_ACCESS_KEY_ID"));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let missing = |variable: &str| KmsError::Configuration {
            variable: variable.to_owned(),
            reason: "is not set".to_owned(),
        };
        let access =
            Zeroizing::new(get("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?);
        let secret = Zeroizing::new(
            get("AWS_SECRET_ACCESS_KEY").ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?,
        );
        let region = get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .ok_or_else(|| KmsError::Configuration {
                variable: "AWS_REGION".to_owned(),
                reason: "is not set (nor AWS_DEFAULT_REGION)".to_owned(),
            })?;
        let mut config = AwsKmsConfig::new(region, access.as_str(), secret.as_str());
        if let Some(token) = get("AWS_SESSION_TOKEN").map(Zeroizing::new) {
            config = config.with_session_token(token.as_str());
        }
        for variable in ["AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL"] {
            if let Some(url) = get(variable) {
                config.endpoint = checked_endpoint(variable, &url)?;
                break;
            }
        }
        Ok(config)
    }
}

fn default_endpoint(region: &str) -> String {
    format!("https://kms.{region}.amazonaws.com")
}

fn checked_endpoint(variable: &str, url: &str) -> Result<String, Error> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let bad = |reason: &str| KmsError::Configuration {
        variable: variable.to_owned(),
        reason: format!("is {url:?}, {reason}"),
    };
    match rest {
        None => Err(bad("not an http:// or https:// URL").into()),
        Some(r) if r.is_empty() || r.starts_with('/') => Err(bad("without a host").into()),
        Some(r) if r.contains(['?', '#', ' ']) => {
            Err(bad("with a query, fragment or space").into())
        }
        Some(_) => Ok(url.trim_end_matches('/').to_owned()),
    }
}

/// A [`Kms`] backed by AWS KMS: `GenerateDataKey` (`AES_256`) and `Decrypt`
/// (with the `KeyId` the envelope records, so a blob of another key is
/// refused with [`KmsError::IncorrectKey`]), plus [`AwsKms::encrypt`],
/// [`AwsKms::re_encrypt`] and [`AwsKms::describe_key`].
///
/// The key ARN AWS reports is the `key_arn` of each data key; AWS reports
/// no key version (`key_version` is `None`). Plaintext data keys from AWS
/// are decoded straight into zeroizing buffers and never logged.
///
/// Errors: `NotFoundException` is [`KmsError::NotFound`],
/// `DisabledException` [`KmsError::Disabled`], `KMSInvalidStateException`
/// [`KmsError::PendingDeletion`] or [`KmsError::InvalidState`],
/// `AccessDeniedException` (and refused credentials)
/// [`KmsError::AccessDenied`], `InvalidCiphertextException` (a wrong
/// encryption context or a damaged blob: AWS does not say which)
/// [`KmsError::InvalidCiphertext`], `IncorrectKeyException`
/// [`KmsError::IncorrectKey`]; exhausted retries are [`KmsError::Throttled`]
/// or [`KmsError::Unavailable`]; any other refusal is
/// [`KmsError::Refused`].
///
/// ```no_run
/// use std::sync::Arc;
/// use objseal::{AwsKms, AwsKmsConfig, Engine, Kms, ObjectBinding, SealMode};
///
/// let kms: Arc<dyn Kms> = Arc::new(AwsKms::new(AwsKmsConfig::from_env()?)?);
/// let engine = Engine::builder()
///     .kms(kms)
///     .principal("my-service")
///     .default_kms_key("alias/my-key")
///     .build();
/// let binding = ObjectBinding::new("bucket", "key")?;
/// let mode = SealMode::Kms { key_id: None, context: None, bucket_key: false };
/// let sealed = engine.seal(&mode, &binding, b"hello")?;
/// # let _ = sealed;
/// # Ok::<(), objseal::Error>(())
/// ```
pub struct AwsKms {
    config: AwsKmsConfig,
    url: String,
    agent: ureq::Agent,
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A ciphertext from [`AwsKms::encrypt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCiphertext {
    /// The ciphertext blob.
    pub blob: Vec<u8>,
    /// The ARN of the key that encrypted it.
    pub key_arn: String,
}

/// A ciphertext from [`AwsKms::re_encrypt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsReEncrypted {
    /// The new ciphertext blob.
    pub blob: Vec<u8>,
    /// The ARN of the key that encrypted it.
    pub key_arn: String,
    /// The ARN of the key that had encrypted the source blob.
    pub source_key_arn: String,
}

/// A key as [`AwsKms::describe_key`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsKeyMetadata {
    /// The key id (a UUID for AWS keys).
    pub key_id: String,
    /// The key ARN.
    pub arn: String,
    /// Whether the key is enabled.
    pub enabled: bool,
    /// AWS's key state (`Enabled`, `Disabled`, `PendingDeletion`, ...).
    pub key_state: String,
    /// The key's description.
    pub description: String,
    /// When a key pending deletion will be deleted (RFC 3339, UTC).
    pub deletion_date: Option<String>,
}

/// Base64 text of a secret, zeroized on drop.
struct SecretB64(Zeroizing<String>);

impl<'de> Deserialize<'de> for SecretB64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretB64(Zeroizing::new(s)))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DataKeyResponse {
    #[serde(default)]
    ciphertext_blob: Option<String>,
    key_id: String,
    plaintext: SecretB64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CiphertextResponse {
    ciphertext_blob: String,
    key_id: String,
    #[serde(default)]
    source_key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetadataResponse {
    key_metadata: RawMetadata,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawMetadata {
    key_id: String,
    arn: String,
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    key_state: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    deletion_date: Option<f64>,
}

impl From<RawMetadata> for AwsKeyMetadata {
    fn from(m: RawMetadata) -> Self {
        AwsKeyMetadata {
            key_id: m.key_id,
            arn: m.arn,
            enabled: m.enabled,
            key_state: m.key_state,
            description: m.description,
            deletion_date: m
                .deletion_date
                .filter(|d| d.is_finite() && *d >= 0.0)
                .map(|d| super::rfc3339(d as u64)),
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "__type", default)]
    kind: Option<String>,
    #[serde(alias = "Message", default)]
    message: Option<String>,
}

/// What one request is, for error reports.
struct Call<'a> {
    op: &'static str,
    key_id: &'a str,
    principal: &'a str,
}

/// A failed attempt that may be retried.
struct Transient {
    throttled: bool,
    reason: String,
}

enum Failed {
    Retry(Transient),
    Final(Error),
}

impl AwsKms {
    /// An AWS KMS client for `config`. Makes no request.
    pub fn new(config: AwsKmsConfig) -> Result<Self, Error> {
        let endpoint = checked_endpoint("endpoint", &config.endpoint)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_global(Some(config.request_timeout))
            .user_agent(concat!("objseal/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(AwsKms {
            url: format!("{endpoint}/"),
            config: AwsKmsConfig { endpoint, ..config },
            agent,
        })
    }

    /// An AWS KMS client configured from the environment
    /// ([`AwsKmsConfig::from_env`]).
    pub fn from_env() -> Result<Self, Error> {
        Self::new(AwsKmsConfig::from_env()?)
    }

    /// Its configuration.
    pub fn config(&self) -> &AwsKmsConfig {
        &self.config
    }

    /// `Encrypt`: encrypts up to 4096 bytes of `plaintext` under `key_id`
    /// (id, ARN or alias), bound to `context`.
    pub fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<AwsCiphertext, Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Req<'a> {
            key_id: &'a str,
            plaintext: &'a str,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            encryption_context: BTreeMap<&'a str, &'a str>,
        }
        let encoded = Zeroizing::new(B64.encode(plaintext));
        let body = to_body(&Req {
            key_id,
            plaintext: &encoded,
            encryption_context: context_map(context),
        });
        let call = Call {
            op: "Encrypt",
            key_id,
            principal: "",
        };
        let resp: CiphertextResponse = self.parse(&call, &self.call(&call, &body)?)?;
        Ok(AwsCiphertext {
            blob: self.decode_blob(&call, &resp.ciphertext_blob)?,
            key_arn: resp.key_id,
        })
    }

    /// `ReEncrypt`: decrypts `blob` (under `source_key_id` when given, and
    /// `source_context`) and encrypts its plaintext under
    /// `destination_key_id` and `destination_context`, inside AWS KMS.
    pub fn re_encrypt(
        &self,
        blob: &[u8],
        source_key_id: Option<&str>,
        source_context: &EncryptionContext,
        destination_key_id: &str,
        destination_context: &EncryptionContext,
    ) -> Result<AwsReEncrypted, Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Req<'a> {
            ciphertext_blob: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            source_key_id: Option<&'a str>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            source_encryption_context: BTreeMap<&'a str, &'a str>,
            destination_key_id: &'a str,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            destination_encryption_context: BTreeMap<&'a str, &'a str>,
        }
        let body = to_body(&Req {
            ciphertext_blob: B64.encode(blob),
            source_key_id: source_key_id.filter(|k| !k.is_empty()),
            source_encryption_context: context_map(source_context),
            destination_key_id,
            destination_encryption_context: context_map(destination_context),
        });
        let call = Call {
            op: "ReEncrypt",
            key_id: source_key_id.unwrap_or(destination_key_id),
            principal: "",
        };
        let resp: CiphertextResponse = self.parse(&call, &self.call(&call, &body)?)?;
        Ok(AwsReEncrypted {
            blob: self.decode_blob(&call, &resp.ciphertext_blob)?,
            key_arn: resp.key_id,
            source_key_arn: resp.source_key_id.unwrap_or_default(),
        })
    }

    /// `DescribeKey`: the key `key_id` (id, ARN or alias) names.
    pub fn describe_key(&self, key_id: &str) -> Result<AwsKeyMetadata, Error> {
        let body = to_body(&serde_json::json!({ "KeyId": key_id }));
        let call = Call {
            op: "DescribeKey",
            key_id,
            principal: "",
        };
        let resp: MetadataResponse = self.parse(&call, &self.call(&call, &body)?)?;
        Ok(resp.key_metadata.into())
    }

    /// `CreateKey`: a new symmetric encryption key (for setting up and
    /// testing; production keys are usually made by infrastructure code).
    pub fn create_key(&self, description: &str) -> Result<AwsKeyMetadata, Error> {
        let body = to_body(&serde_json::json!({
            "Description": description,
            "KeySpec": "SYMMETRIC_DEFAULT",
            "KeyUsage": "ENCRYPT_DECRYPT",
        }));
        let call = Call {
            op: "CreateKey",
            key_id: "",
            principal: "",
        };
        let resp: MetadataResponse = self.parse(&call, &self.call(&call, &body)?)?;
        Ok(resp.key_metadata.into())
    }

    /// `CreateAlias`: points `alias` (`alias/NAME`) at `key_id`.
    pub fn create_alias(&self, alias: &str, key_id: &str) -> Result<(), Error> {
        let body = to_body(&serde_json::json!({ "AliasName": alias, "TargetKeyId": key_id }));
        let call = Call {
            op: "CreateAlias",
            key_id,
            principal: "",
        };
        self.call(&call, &body).map(drop)
    }

    /// Sends one operation, retrying transient failures within the call's
    /// deadline; returns the response body of a 2xx answer.
    fn call(&self, call: &Call<'_>, body: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let start = Instant::now();
        let deadline = start + self.config.request_timeout;
        let retries = self.config.max_retries.min(MAX_RETRIES);
        let mut attempts = 0u32;
        let last = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break Transient {
                    throttled: false,
                    reason: "no time left".to_owned(),
                };
            }
            attempts += 1;
            let failure = match self.attempt(call, body, remaining) {
                Ok(resp) => return Ok(resp),
                Err(Failed::Final(e)) => return Err(e),
                Err(Failed::Retry(t)) => t,
            };
            if attempts > retries {
                break failure;
            }
            let pause = backoff(attempts - 1);
            if Instant::now() + pause >= deadline {
                break failure;
            }
            std::thread::sleep(pause);
        };
        let endpoint = self.config.endpoint.clone();
        Err(if last.throttled {
            KmsError::Throttled { endpoint, attempts }
        } else {
            KmsError::Unavailable {
                reason: format!(
                    "{} {} at {endpoint} failed after {attempts} attempt(s) in {} ms: {}",
                    "AWS KMS",
                    call.op,
                    start.elapsed().as_millis(),
                    last.reason
                ),
            }
        }
        .into())
    }

    fn attempt(
        &self,
        call: &Call<'_>,
        body: &[u8],
        remaining: Duration,
    ) -> Result<Zeroizing<Vec<u8>>, Failed> {
        let target = format!("TrentService.{}", call.op);
        let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", &target)];
        let identity = self.config.credentials.clone().into();
        let signed = (|| {
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region(&self.config.region)
                .name(SERVICE)
                .time(SystemTime::now())
                .settings(SigningSettings::default())
                .build()
                .map_err(|e| e.to_string())?
                .into();
            let request = SignableRequest::new(
                "POST",
                self.url.as_str(),
                headers.iter().copied(),
                SignableBody::Bytes(body),
            )
            .map_err(|e| e.to_string())?;
            sign(request, &params)
                .map(|out| out.into_parts().0)
                .map_err(|e| e.to_string())
        })();
        let instructions = signed.map_err(|reason| {
            Failed::Final(
                KmsError::Configuration {
                    variable: "endpoint".to_owned(),
                    reason: format!("{}: cannot sign a request for it: {reason}", self.url),
                }
                .into(),
            )
        })?;
        let mut request = self.agent.post(&self.url);
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        let transient = |what: &str, e: ureq::Error| {
            Failed::Retry(Transient {
                throttled: false,
                reason: format!("{what}: {e}"),
            })
        };
        let response = request
            .config()
            .timeout_global(Some(remaining))
            .build()
            .send(body)
            .map_err(|e| transient("request failed", e))?;
        let status = response.status().as_u16();
        let header_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = Zeroizing::new(
            response
                .into_body()
                .with_config()
                .limit(MAX_RESPONSE)
                .read_to_vec()
                .map_err(|e| transient("reading the response failed", e))?,
        );
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        Err(self.classify(call, status, header_type, &bytes))
    }

    /// The error an AWS error answer stands for.
    fn classify(
        &self,
        call: &Call<'_>,
        status: u16,
        header_type: Option<String>,
        bytes: &[u8],
    ) -> Failed {
        let parsed: Option<ErrorBody> = serde_json::from_slice(bytes).ok();
        let (kind, message) = match parsed {
            Some(b) => (b.kind.or(header_type), b.message.unwrap_or_default()),
            None => (header_type, String::new()),
        };
        let kind = kind.as_deref().map(error_name).unwrap_or_default();
        let message = bounded(&message);
        let retry = |throttled| {
            Failed::Retry(Transient {
                throttled,
                reason: if kind.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status} {kind}: {message}")
                },
            })
        };
        let key_id = call.key_id.to_owned();
        let arn = || arn_in(message).unwrap_or_else(|| key_id.clone());
        let err = match kind {
            "ThrottlingException"
            | "LimitExceededException"
            | "ThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded" => return retry(true),
            "KMSInternalException"
            | "DependencyTimeoutException"
            | "KeyUnavailableException"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "ServiceUnavailableException" => return retry(false),
            _ if status >= 500 || status == 429 => return retry(status == 429),
            "NotFoundException" => KmsError::NotFound { key_id },
            "DisabledException" => KmsError::Disabled { arn: arn() },
            "KMSInvalidStateException" if message.to_lowercase().contains("pending deletion") => {
                let arn = arn();
                KmsError::PendingDeletion {
                    deletion_date: self.deletion_date(&arn),
                    arn,
                }
            }
            "KMSInvalidStateException" | "InvalidKeyUsageException" => KmsError::InvalidState {
                arn: arn(),
                reason: format!("AWS KMS {kind}: {message}"),
            },
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignature"
            | "MissingAuthenticationToken"
            | "ExpiredTokenException"
            | "InvalidClientTokenId"
            | "NotAuthorized" => KmsError::AccessDenied {
                principal: call.principal.to_owned(),
                key_id,
            },
            "InvalidCiphertextException" => KmsError::InvalidCiphertext {
                reason: format!(
                    "AWS KMS refused it (InvalidCiphertextException{}{message}): the encryption context is not the one it was made under, or the blob is damaged or foreign",
                    if message.is_empty() { "" } else { ": " }
                ),
            },
            "IncorrectKeyException" => KmsError::IncorrectKey {
                expected: key_id,
                found: "another key (AWS KMS does not say which)".to_owned(),
            },
            "InvalidArnException" => KmsError::InvalidKeyReference { value: key_id },
            _ => KmsError::Refused {
                code: if kind.is_empty() {
                    format!("HTTP {status}")
                } else {
                    kind.to_owned()
                },
                message: message.to_owned(),
            },
        };
        Failed::Final(err.into())
    }

    /// The deletion date of a key pending deletion, from one `DescribeKey`
    /// attempt (best effort: AWS's error does not carry it).
    fn deletion_date(&self, arn: &str) -> String {
        let body = to_body(&serde_json::json!({ "KeyId": arn }));
        let call = Call {
            op: "DescribeKey",
            key_id: arn,
            principal: "",
        };
        self.attempt(&call, &body, self.config.connect_timeout)
            .ok()
            .and_then(|b| serde_json::from_slice::<MetadataResponse>(&b).ok())
            .and_then(|m| AwsKeyMetadata::from(m.key_metadata).deletion_date)
            .unwrap_or_else(|| "an unknown date".to_owned())
    }

    /// Parses a 2xx response body; a malformed one is
    /// [`KmsError::Unavailable`] (a broken service), reported without its
    /// bytes (it may hold a key).
    fn parse<T: for<'de> Deserialize<'de>>(
        &self,
        call: &Call<'_>,
        bytes: &[u8],
    ) -> Result<T, Error> {
        serde_json::from_slice(bytes).map_err(|e| {
            KmsError::Unavailable {
                reason: format!(
                    "AWS KMS at {} sent a malformed {} response ({:?} error at line {} column {})",
                    self.config.endpoint,
                    call.op,
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            }
            .into()
        })
    }

    fn decode_blob(&self, call: &Call<'_>, b64: &str) -> Result<Vec<u8>, Error> {
        B64.decode(b64).map_err(|_| {
            KmsError::Unavailable {
                reason: format!(
                    "AWS KMS at {} sent a {} ciphertext blob that is not base64",
                    self.config.endpoint, call.op
                ),
            }
            .into()
        })
    }

    /// The 32-byte data key in `b64`, decoded into zeroizing memory.
    fn decode_key(&self, call: &Call<'_>, b64: &SecretB64) -> Result<KmsDataKey, Error> {
        let bytes = Zeroizing::new(B64.decode(b64.0.as_bytes()).map_err(|_| {
            Error::from(KmsError::Unavailable {
                reason: format!(
                    "AWS KMS at {} sent a {} plaintext that is not base64",
                    self.config.endpoint, call.op
                ),
            })
        })?);
        KmsDataKey::try_from_slice(&bytes).map_err(|_| {
            KmsError::InvalidCiphertext {
                reason: format!(
                    "it decrypts to {} bytes, not a 32-byte data key",
                    bytes.len()
                ),
            }
            .into()
        })
    }
}

impl Kms for AwsKms {
    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<GeneratedDataKey, Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Req<'a> {
            key_id: &'a str,
            key_spec: &'a str,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            encryption_context: BTreeMap<&'a str, &'a str>,
        }
        let body = to_body(&Req {
            key_id,
            key_spec: "AES_256",
            encryption_context: context_map(context),
        });
        let call = Call {
            op: "GenerateDataKey",
            key_id,
            principal,
        };
        let resp: DataKeyResponse = self.parse(&call, &self.call(&call, &body)?)?;
        let key = self.decode_key(&call, &resp.plaintext)?;
        let blob = self.decode_blob(&call, resp.ciphertext_blob.as_deref().unwrap_or(""))?;
        if blob.is_empty() {
            return Err(KmsError::Unavailable {
                reason: format!(
                    "AWS KMS at {} sent GenerateDataKey without a ciphertext blob",
                    self.config.endpoint
                ),
            }
            .into());
        }
        Ok(GeneratedDataKey {
            key,
            blob,
            key_arn: resp.key_id,
            key_version: None,
        })
    }

    fn decrypt(
        &self,
        key_id: &str,
        blob: &[u8],
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<DecryptedDataKey, Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Req<'a> {
            ciphertext_blob: String,
            #[serde(skip_serializing_if = "str::is_empty")]
            key_id: &'a str,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            encryption_context: BTreeMap<&'a str, &'a str>,
        }
        let body = to_body(&Req {
            ciphertext_blob: B64.encode(blob),
            key_id,
            encryption_context: context_map(context),
        });
        let call = Call {
            op: "Decrypt",
            key_id,
            principal,
        };
        let resp: DataKeyResponse = self.parse(&call, &self.call(&call, &body)?)?;
        let key = self.decode_key(&call, &resp.plaintext)?;
        // A full ARN named for the blob must be the ARN that decrypted it
        // (AWS refuses another key itself; this guards a service that
        // does not).
        if key_id.starts_with("arn:") && key_id.contains(":key/") && resp.key_id != key_id {
            return Err(KmsError::IncorrectKey {
                expected: key_id.to_owned(),
                found: resp.key_id,
            }
            .into());
        }
        Ok(DecryptedDataKey {
            key,
            key_arn: resp.key_id,
            key_version: None,
        })
    }
}

impl AwsKms {
    /// Fuzzing entry point (`fuzz/fuzz_targets/aws_kms_answers.rs`): runs
    /// the parsing of one kind of AWS KMS answer on `body`, as the calls
    /// do, and discards the result. `kind % 5`: 0 GenerateDataKey,
    /// 1 Decrypt, 2 DescribeKey, 3 Encrypt/ReEncrypt, 4 an error answer of
    /// HTTP `status` (with an `x-amzn-ErrorType` header when `kind` has its
    /// top bit set). Makes no request: a pending-deletion refusal, whose
    /// classification asks `DescribeKey`, stops before it. It is no API.
    #[doc(hidden)]
    pub fn fuzz_parse_answer(kind: u8, status: u16, body: &[u8]) {
        static KMS: std::sync::OnceLock<AwsKms> = std::sync::OnceLock::new();
        let kms = KMS.get_or_init(|| {
            let config = AwsKmsConfig::new("us-east-1", "AKIDFUZZ", "fuzz")
                .with_endpoint("http://127.0.0.1:9")
                .expect("a valid endpoint");
            AwsKms::new(config).expect("a client")
        });
        let call = Call {
            op: "Fuzz",
            key_id: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            principal: "fuzz",
        };
        match (kind & 0x7f) % 5 {
            0 | 1 => {
                let Ok(resp) = kms.parse::<DataKeyResponse>(&call, body) else {
                    return;
                };
                let _ = kms.decode_key(&call, &resp.plaintext);
                let _ = kms.decode_blob(&call, resp.ciphertext_blob.as_deref().unwrap_or(""));
                let _ = resp.key_id != call.key_id;
            }
            2 => {
                if let Ok(resp) = kms.parse::<MetadataResponse>(&call, body) {
                    let _ = AwsKeyMetadata::from(resp.key_metadata);
                }
            }
            3 => {
                if let Ok(resp) = kms.parse::<CiphertextResponse>(&call, body) {
                    let _ = kms.decode_blob(&call, &resp.ciphertext_blob);
                    let _ = resp.source_key_id.unwrap_or_default();
                }
            }
            _ => {
                let header_type = (kind & 0x80 != 0).then(|| {
                    "KMSInvalidStateException:http://internal.amazon.com/coral/com.amazonaws.kms/"
                        .to_owned()
                });
                let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
                let (name, message) = match parsed {
                    Some(b) => (
                        b.kind.or(header_type.clone()),
                        b.message.unwrap_or_default(),
                    ),
                    None => (header_type.clone(), String::new()),
                };
                let name = name.as_deref().map(error_name).unwrap_or_default();
                let message = bounded(&message);
                if name == "KMSInvalidStateException"
                    && status < 500
                    && status != 429
                    && message.to_lowercase().contains("pending deletion")
                {
                    let _ = arn_in(message);
                    return;
                }
                match kms.classify(&call, status, header_type, body) {
                    Failed::Retry(t) => drop((t.throttled, t.reason)),
                    Failed::Final(e) => drop(e.to_string()),
                }
            }
        }
    }
}

fn context_map(context: &EncryptionContext) -> BTreeMap<&str, &str> {
    context.iter().collect()
}

fn to_body<T: Serialize>(req: &T) -> Zeroizing<Vec<u8>> {
    let mut body = Zeroizing::new(Vec::with_capacity(256));
    serde_json::to_writer(&mut *body, req).expect("a request serializes");
    body
}

/// The error name of an AWS `__type` or `x-amzn-ErrorType`:
/// `com.amazonaws.kms#NotFoundException` and
/// `NotFoundException:http://...` are both `NotFoundException`.
fn error_name(kind: &str) -> &str {
    let name = kind.rsplit('#').next().unwrap_or(kind);
    name.split(':').next().unwrap_or(name).trim()
}

/// The first key ARN in an AWS error message.
fn arn_in(message: &str) -> Option<String> {
    message
        .split_whitespace()
        .find(|w| w.starts_with("arn:aws") && w.contains(":key/"))
        .map(|w| {
            w.trim_matches(|c: char| matches!(c, '\'' | '"' | '.' | ',' | '(' | ')'))
                .to_owned()
        })
}

/// At most [`MAX_MESSAGE`] bytes of `s`, cut at a character boundary.
fn bounded(s: &str) -> &str {
    if s.len() <= MAX_MESSAGE {
        return s;
    }
    let mut end = MAX_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The pause before retry `n + 1`: 50 ms doubled per retry, capped at 1 s,
/// with jitter (between half and all of it).
fn backoff(n: u32) -> Duration {
    let full = BACKOFF_BASE
        .saturating_mul(1u32 << n.min(16))
        .min(BACKOFF_CAP);
    let half = full / 2;
    let jitter = u64::from(getrandom::u32().unwrap_or(0)) % (half.as_millis() as u64 + 1);
    half + Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_lose_their_namespace() {
        assert_eq!(
            error_name("com.amazonaws.kms#NotFoundException"),
            "NotFoundException"
        );
        assert_eq!(
            error_name("NotFoundException:http://internal.amazon.com/"),
            "NotFoundException"
        );
        assert_eq!(error_name("DisabledException"), "DisabledException");
    }

    #[test]
    fn arns_are_found_in_messages() {
        let m = "arn:aws:kms:us-east-1:111122223333:key/abcd is pending deletion.";
        assert_eq!(
            arn_in(m).as_deref(),
            Some("arn:aws:kms:us-east-1:111122223333:key/abcd")
        );
        assert_eq!(arn_in("no arn here"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for n in 0..8 {
            let full = (50u64 << n).min(1000);
            let d = backoff(n).as_millis() as u64;
            assert!(d >= full / 2 && d <= full, "retry {n}: {d} ms");
        }
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(checked_endpoint("X", "ftp://a").is_err());
        assert!(checked_endpoint("X", "https://").is_err());
        assert_eq!(checked_endpoint("X", "http://a:1/").unwrap(), "http://a:1");
    }
}
