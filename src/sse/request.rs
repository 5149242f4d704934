//! [`SseRequest`]: the server-side-encryption headers of one S3 request,
//! parsed and checked as S3 checks them.

use core::fmt;
use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest, Md5};

use super::error::*;
use crate::engine::OpenWith;
use crate::format::MAX_KEY_ID_LEN;
use crate::keys::{CustomerKey, EncryptionContext, MAX_CONTEXT_PAIRS};

/// `x-amz-server-side-encryption`.
pub const SSE: &str = "x-amz-server-side-encryption";
/// `x-amz-server-side-encryption-aws-kms-key-id`.
pub const SSE_KMS_KEY_ID: &str = "x-amz-server-side-encryption-aws-kms-key-id";
/// `x-amz-server-side-encryption-context`.
pub const SSE_CONTEXT: &str = "x-amz-server-side-encryption-context";
/// `x-amz-server-side-encryption-bucket-key-enabled`.
pub const SSE_BUCKET_KEY: &str = "x-amz-server-side-encryption-bucket-key-enabled";
/// `x-amz-server-side-encryption-customer-algorithm`.
pub const SSE_C_ALGORITHM: &str = "x-amz-server-side-encryption-customer-algorithm";
/// `x-amz-server-side-encryption-customer-key`.
pub const SSE_C_KEY: &str = "x-amz-server-side-encryption-customer-key";
/// `x-amz-server-side-encryption-customer-key-MD5`.
pub const SSE_C_KEY_MD5: &str = "x-amz-server-side-encryption-customer-key-MD5";
/// `x-amz-copy-source-server-side-encryption-customer-algorithm`.
pub const COPY_SSE_C_ALGORITHM: &str =
    "x-amz-copy-source-server-side-encryption-customer-algorithm";
/// `x-amz-copy-source-server-side-encryption-customer-key`.
pub const COPY_SSE_C_KEY: &str = "x-amz-copy-source-server-side-encryption-customer-key";
/// `x-amz-copy-source-server-side-encryption-customer-key-MD5`.
pub const COPY_SSE_C_KEY_MD5: &str = "x-amz-copy-source-server-side-encryption-customer-key-MD5";

/// The longest header value accepted (the largest encryption context, in
/// base64, fits with room to spare).
pub const MAX_HEADER_VALUE_LEN: usize = 16 * 1024;

const HEADERS: [&str; 10] = [
    SSE,
    SSE_KMS_KEY_ID,
    SSE_CONTEXT,
    SSE_BUCKET_KEY,
    SSE_C_ALGORITHM,
    SSE_C_KEY,
    SSE_C_KEY_MD5,
    COPY_SSE_C_ALGORITHM,
    COPY_SSE_C_KEY,
    COPY_SSE_C_KEY_MD5,
];

/// How the request reached the server. SSE-C keys are only accepted over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS (TLS).
    Https,
    /// Plain HTTP.
    Http,
}

/// The value of `x-amz-server-side-encryption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSideEncryption {
    /// `AES256`: SSE-S3.
    Aes256,
    /// `aws:kms`: SSE-KMS.
    AwsKms,
}

impl ServerSideEncryption {
    /// The header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ServerSideEncryption::Aes256 => "AES256",
            ServerSideEncryption::AwsKms => "aws:kms",
        }
    }
}

/// A customer key from the SSE-C headers, checked against its MD5.
pub struct SseCustomerKey {
    key: CustomerKey,
    md5: [u8; 16],
}

impl SseCustomerKey {
    /// A customer key with its MD5 computed (what a client sends).
    pub fn new(key: CustomerKey) -> Self {
        let md5 = Md5::digest(key.expose_secret()).into();
        SseCustomerKey { key, md5 }
    }

    /// The key.
    pub fn key(&self) -> &CustomerKey {
        &self.key
    }

    /// The key's MD5 in base64, as in `x-amz-server-side-encryption-customer-key-MD5`.
    pub fn key_md5(&self) -> String {
        BASE64.encode(self.md5)
    }

    /// The three headers a client sends for this key (`copy_source` for the
    /// `x-amz-copy-source-` trio), the key in base64.
    pub fn to_headers(&self, copy_source: bool) -> [(&'static str, String); 3] {
        let (a, k, m) = if copy_source {
            (COPY_SSE_C_ALGORITHM, COPY_SSE_C_KEY, COPY_SSE_C_KEY_MD5)
        } else {
            (SSE_C_ALGORITHM, SSE_C_KEY, SSE_C_KEY_MD5)
        };
        [
            (a, "AES256".to_owned()),
            (k, BASE64.encode(self.key.expose_secret())),
            (m, self.key_md5()),
        ]
    }
}

impl fmt::Debug for SseCustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseCustomerKey")
            .field("key_md5", &self.key_md5())
            .finish_non_exhaustive()
    }
}

/// The server-side-encryption headers of one S3 request, parsed and
/// checked: what the caller asked for, before bucket rules apply
/// ([`super::BucketEncryption::resolve`]).
///
/// [`SseRequest::from_headers`] takes any `(name, value)` pairs; names are
/// matched case-insensitively, values are trimmed of surrounding
/// whitespace, other headers are ignored. Every refusal is the
/// [`S3Error`] S3 returns for it.
///
/// ```
/// use objseal::sse::{SseRequest, Transport, ServerSideEncryption};
///
/// let req = SseRequest::from_headers(
///     [
///         ("X-Amz-Server-Side-Encryption", "aws:kms"),
///         ("x-amz-server-side-encryption-aws-kms-key-id", "alias/app"),
///         ("x-amz-server-side-encryption-bucket-key-enabled", "true"),
///         ("content-type", "text/plain"),
///     ],
///     Transport::Https,
/// )?;
/// assert_eq!(req.server_side_encryption(), Some(ServerSideEncryption::AwsKms));
/// assert_eq!(req.kms_key_id(), Some("alias/app"));
/// assert_eq!(req.bucket_key_enabled(), Some(true));
///
/// // SSE-C needs TLS.
/// let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
/// let err = SseRequest::from_headers(
///     [
///         ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
///         ("x-amz-server-side-encryption-customer-key", key),
///         ("x-amz-server-side-encryption-customer-key-md5", "ZtM8vWMAGaLz7QOhHcsXxg=="),
///     ],
///     Transport::Http,
/// )
/// .unwrap_err();
/// assert_eq!((err.code, err.status), ("InvalidRequest", 400));
/// # Ok::<(), objseal::sse::S3Error>(())
/// ```
#[derive(Debug, Default)]
pub struct SseRequest {
    sse: Option<ServerSideEncryption>,
    kms_key_id: Option<String>,
    context: Option<EncryptionContext>,
    bucket_key: Option<bool>,
    customer: Option<SseCustomerKey>,
    copy_source_customer: Option<SseCustomerKey>,
}

impl SseRequest {
    /// A request with no encryption headers.
    pub fn none() -> Self {
        SseRequest::default()
    }

    /// Parses and checks the encryption headers among `headers`.
    pub fn from_headers<I, N, V>(headers: I, transport: Transport) -> Result<Self, S3Error>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let mut found: [Option<String>; HEADERS.len()] = Default::default();
        for (name, value) in headers {
            let name = name.as_ref();
            let Some(i) = HEADERS.iter().position(|h| h.eq_ignore_ascii_case(name)) else {
                continue;
            };
            let value = value.as_ref();
            if value.len() > MAX_HEADER_VALUE_LEN {
                return Err(S3Error::invalid_argument(HEADERS[i], MSG_HEADER_TOO_LONG));
            }
            if found[i].is_some() {
                return Err(S3Error::invalid_argument(HEADERS[i], MSG_DUPLICATE_HEADER));
            }
            let text = core::str::from_utf8(value)
                .map_err(|_| invalid_value(HEADERS[i]))?
                .trim();
            found[i] = Some(text.to_owned());
        }
        let [sse, kms_key_id, context, bucket_key, ca, ck, cm, xa, xk, xm] = found;

        let customer = customer_key(
            [ca, ck, cm],
            [SSE_C_ALGORITHM, SSE_C_KEY, SSE_C_KEY_MD5],
            transport,
        )?;
        if customer.is_some() && sse.is_some() {
            return Err(S3Error::invalid_argument(SSE, MSG_SSE_C_WITH_SSE));
        }
        let copy_source_customer = customer_key(
            [xa, xk, xm],
            [COPY_SSE_C_ALGORITHM, COPY_SSE_C_KEY, COPY_SSE_C_KEY_MD5],
            transport,
        )?;

        let sse = match sse.as_deref() {
            None => None,
            Some("AES256") => Some(ServerSideEncryption::Aes256),
            Some("aws:kms") => Some(ServerSideEncryption::AwsKms),
            // Includes `aws:kms:dsse`, which objseal does not implement.
            Some(_) => return Err(S3Error::invalid_argument(SSE, MSG_SSE_UNSUPPORTED)),
        };
        let is_kms = sse == Some(ServerSideEncryption::AwsKms);
        if !is_kms && (kms_key_id.is_some() || context.is_some()) {
            return Err(S3Error::invalid_argument(SSE, MSG_KMS_REQUIRES_HEADER));
        }
        if let Some(id) = &kms_key_id
            && (id.is_empty() || id.len() > MAX_KEY_ID_LEN)
        {
            return Err(S3Error::new("KMS.NotFoundException", 400, "Invalid keyId"));
        }
        let context = context.as_deref().map(parse_context).transpose()?;
        let bucket_key = match bucket_key.as_deref() {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
            Some(_) => return Err(S3Error::invalid_argument(SSE_BUCKET_KEY, MSG_BUCKET_KEY)),
        };
        Ok(SseRequest {
            sse,
            kms_key_id,
            context,
            bucket_key,
            customer,
            copy_source_customer,
        })
    }

    /// The value of `x-amz-server-side-encryption`, if sent.
    pub fn server_side_encryption(&self) -> Option<ServerSideEncryption> {
        self.sse
    }

    /// The KMS key id, ARN or alias, if sent (only with `aws:kms`).
    pub fn kms_key_id(&self) -> Option<&str> {
        self.kms_key_id.as_deref()
    }

    /// The caller's encryption context, if sent (only with `aws:kms`).
    pub fn encryption_context(&self) -> Option<&EncryptionContext> {
        self.context.as_ref()
    }

    /// The bucket-key header, if sent.
    pub fn bucket_key_enabled(&self) -> Option<bool> {
        self.bucket_key
    }

    /// The SSE-C key for the object of the request.
    pub fn customer_key(&self) -> Option<&SseCustomerKey> {
        self.customer.as_ref()
    }

    /// The SSE-C key of a copy's source object.
    pub fn copy_source_customer_key(&self) -> Option<&SseCustomerKey> {
        self.copy_source_customer.as_ref()
    }

    /// Whether the request sent any encryption header for its own object
    /// (the copy-source trio does not count).
    pub fn is_encrypted_request(&self) -> bool {
        self.sse.is_some() || self.customer.is_some()
    }

    /// What to open the request's object with (GET, HEAD, UploadPart).
    pub fn open_with(&self) -> OpenWith<'_> {
        match &self.customer {
            Some(c) => OpenWith::Customer(&c.key),
            None => OpenWith::Managed,
        }
    }

    /// What to open a copy's source object with.
    pub fn copy_source_open_with(&self) -> OpenWith<'_> {
        match &self.copy_source_customer {
            Some(c) => OpenWith::Customer(&c.key),
            None => OpenWith::Managed,
        }
    }
}

fn invalid_value(header: &'static str) -> S3Error {
    match header {
        SSE_C_ALGORITHM | COPY_SSE_C_ALGORITHM => {
            S3Error::invalid_argument(header, MSG_SSE_C_ALGORITHM)
        }
        SSE_C_KEY | COPY_SSE_C_KEY => S3Error::invalid_argument(header, MSG_SSE_C_KEY_INVALID),
        SSE_C_KEY_MD5 | COPY_SSE_C_KEY_MD5 => {
            S3Error::invalid_argument(header, MSG_SSE_C_MD5_MISMATCH)
        }
        SSE_CONTEXT => S3Error::invalid_argument(header, MSG_KMS_CONTEXT),
        SSE_BUCKET_KEY => S3Error::invalid_argument(header, MSG_BUCKET_KEY),
        SSE_KMS_KEY_ID => S3Error::new("KMS.NotFoundException", 400, "Invalid keyId"),
        _ => S3Error::invalid_argument(header, MSG_SSE_UNSUPPORTED),
    }
}

/// Parses an SSE-C trio (algorithm, key, MD5); `None` when none is sent.
fn customer_key(
    values: [Option<String>; 3],
    names: [&'static str; 3],
    transport: Transport,
) -> Result<Option<SseCustomerKey>, S3Error> {
    let [algorithm, key, md5] = values;
    if algorithm.is_none() && key.is_none() && md5.is_none() {
        return Ok(None);
    }
    if transport == Transport::Http {
        return Err(S3Error::invalid_request(MSG_SSE_C_INSECURE));
    }
    if algorithm.as_deref() != Some("AES256") {
        return Err(S3Error::invalid_argument(names[0], MSG_SSE_C_ALGORITHM));
    }
    let Some(key) = key else {
        return Err(S3Error::invalid_argument(names[1], MSG_SSE_C_KEY_MISSING));
    };
    let Some(md5) = md5 else {
        return Err(S3Error::invalid_argument(names[2], MSG_SSE_C_MD5_MISSING));
    };
    let raw = zeroize::Zeroizing::new(
        BASE64
            .decode(key.as_bytes())
            .map_err(|_| S3Error::invalid_argument(names[1], MSG_SSE_C_KEY_INVALID))?,
    );
    drop(zeroize::Zeroizing::new(key));
    let key = CustomerKey::try_from_slice(&raw)
        .map_err(|_| S3Error::invalid_argument(names[1], MSG_SSE_C_KEY_INVALID))?;
    let given = BASE64.decode(md5.as_bytes()).ok();
    let key = SseCustomerKey::new(key);
    let matches = given.is_some_and(|g| {
        use subtle::ConstantTimeEq;
        g.len() == 16 && bool::from(g.ct_eq(&key.md5))
    });
    if !matches {
        return Err(S3Error::invalid_argument(names[2], MSG_SSE_C_MD5_MISMATCH));
    }
    Ok(Some(key))
}

/// Parses `x-amz-server-side-encryption-context`: base64 of a JSON object
/// of strings.
fn parse_context(value: &str) -> Result<EncryptionContext, S3Error> {
    let fail = || S3Error::invalid_argument(SSE_CONTEXT, MSG_KMS_CONTEXT);
    let json = BASE64.decode(value.as_bytes()).map_err(|_| fail())?;
    let map: BTreeMap<String, String> = serde_json::from_slice(&json).map_err(|_| fail())?;
    if map.len() > MAX_CONTEXT_PAIRS {
        return Err(fail());
    }
    let mut ctx = EncryptionContext::new();
    for (k, v) in map {
        ctx = ctx.with(k, v).map_err(|_| fail())?;
    }
    Ok(ctx)
}

/// The encryption-context header value for `ctx` (base64 of its JSON).
pub(crate) fn context_header(ctx: &EncryptionContext) -> String {
    let map: BTreeMap<&str, &str> = ctx.iter().collect();
    BASE64.encode(serde_json::to_vec(&map).unwrap_or_default())
}
