//! [`S3Error`]: an S3 error code, HTTP status and message, its XML body, and
//! the mapping from objseal's [`Error`] to it.

use core::fmt;
use std::sync::Arc;

use crate::error::{BodyError, Error, KeyError, KmsError};

/// An error as S3 reports it: a code, an HTTP status and a message, and for
/// `InvalidArgument` the name of the offending header.
///
/// ```
/// use objseal::sse::S3Error;
///
/// let e = S3Error::access_denied();
/// assert_eq!((e.code, e.status), ("AccessDenied", 403));
/// let xml = e.to_xml("/bucket/a&b", "4442587FB7D0A2F9");
/// assert!(xml.contains("<Code>AccessDenied</Code>"));
/// assert!(xml.contains("<Resource>/bucket/a&amp;b</Resource>"));
/// ```
#[derive(Debug, Clone)]
pub struct S3Error {
    /// S3's error code (`InvalidArgument`, `AccessDenied`, `KMS.NotFoundException`, ...).
    pub code: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// The message S3 sends in the error body.
    pub message: String,
    /// For `InvalidArgument`: the header at fault (S3's `ArgumentName`).
    pub argument: Option<&'static str>,
    /// The objseal error this one reports, when it came from one (for
    /// logs: a 500's message is generic, its cause is here). Not part of
    /// equality.
    pub source: Option<Arc<Error>>,
}

impl PartialEq for S3Error {
    fn eq(&self, other: &Self) -> bool {
        (self.code, self.status, &self.message, self.argument)
            == (other.code, other.status, &other.message, other.argument)
    }
}

impl Eq for S3Error {}

impl S3Error {
    /// Attaches the objseal error this one reports.
    pub fn with_source(mut self, source: Error) -> Self {
        self.source = Some(Arc::new(source));
        self
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for S3Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Message of every 403 `AccessDenied`.
pub const ACCESS_DENIED: &str = "Access Denied";
/// SSE-C over plain HTTP (400 `InvalidRequest`).
pub const MSG_SSE_C_INSECURE: &str = "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.";
/// SSE-C: the algorithm is missing or not `AES256` (400 `InvalidArgument`).
pub const MSG_SSE_C_ALGORITHM: &str = "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.";
/// SSE-C: the key is missing (400 `InvalidArgument`).
pub const MSG_SSE_C_KEY_MISSING: &str = "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key.";
/// SSE-C: the key MD5 is missing (400 `InvalidArgument`).
pub const MSG_SSE_C_MD5_MISSING: &str = "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key.";
/// SSE-C: the key is not base64 of 32 bytes (400 `InvalidArgument`).
pub const MSG_SSE_C_KEY_INVALID: &str = "The secret key was invalid for the specified algorithm.";
/// SSE-C: the key MD5 does not match the key (400 `InvalidArgument`).
pub const MSG_SSE_C_MD5_MISMATCH: &str =
    "The calculated MD5 hash of the key did not match the hash that was provided.";
/// SSE-C together with `x-amz-server-side-encryption` (400 `InvalidArgument`).
pub const MSG_SSE_C_WITH_SSE: &str = "Server Side Encryption with Customer provided key is incompatible with the encryption method specified";
/// An `x-amz-server-side-encryption` value that is not supported (400 `InvalidArgument`).
pub const MSG_SSE_UNSUPPORTED: &str = "The encryption method specified is not supported";
/// KMS headers without `aws:kms` (400 `InvalidArgument`).
pub const MSG_KMS_REQUIRES_HEADER: &str = "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms";
/// A malformed encryption context header (400 `InvalidArgument`).
pub const MSG_KMS_CONTEXT: &str = "The header 'x-amz-server-side-encryption-context' shall be Base64-encoded UTF-8 string holding JSON which represents a string-string map";
/// A bucket-key header that is not `true` or `false` (400 `InvalidArgument`).
pub const MSG_BUCKET_KEY: &str =
    "The header 'x-amz-server-side-encryption-bucket-key-enabled' shall be true or false";
/// GET/HEAD of an SSE-C object without its key (400 `InvalidRequest`).
pub const MSG_SSE_C_REQUIRED: &str = "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.";
/// SSE-C headers for an object that is not SSE-C (400 `InvalidRequest`).
pub const MSG_NOT_APPLICABLE: &str = "The encryption parameters are not applicable to this object";
/// A part of an SSE-C multipart upload without the key (400 `InvalidRequest`).
pub const MSG_PART_KEY_REQUIRED: &str = "The multipart upload initiate requested encryption. Subsequent part requests must include the appropriate encryption parameters.";
/// A part of an SSE-C multipart upload with another key (400 `InvalidArgument`).
pub const MSG_PART_KEY_MISMATCH: &str =
    "The provided encryption parameters did not match the ones used originally.";
/// A header given more than once (400 `InvalidArgument`).
pub const MSG_DUPLICATE_HEADER: &str = "The header was specified more than once";
/// A header value longer than objseal accepts (400 `InvalidArgument`).
pub const MSG_HEADER_TOO_LONG: &str = "The header value is too long";
/// A request body shorter than its declared length (400 `IncompleteBody`).
pub const MSG_INCOMPLETE_BODY: &str =
    "You did not provide the number of bytes specified by the Content-Length HTTP header.";
/// A request body longer than its declared length (400 `InvalidRequest`).
pub const MSG_BODY_TOO_LONG: &str = "The request body is longer than the length declared by the Content-Length or x-amz-decoded-content-length header.";
/// The message of a 500 `InternalError`.
pub const MSG_INTERNAL: &str = "We encountered an internal error. Please try again.";

impl S3Error {
    /// An error with no argument name.
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        S3Error {
            code,
            status,
            message: message.into(),
            argument: None,
            source: None,
        }
    }

    /// 400 `InvalidArgument` naming the header at fault.
    pub fn invalid_argument(argument: &'static str, message: impl Into<String>) -> Self {
        S3Error {
            argument: Some(argument),
            ..S3Error::new("InvalidArgument", 400, message)
        }
    }

    /// 400 `InvalidRequest`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        S3Error::new("InvalidRequest", 400, message)
    }

    /// 403 `AccessDenied`.
    pub fn access_denied() -> Self {
        S3Error::new("AccessDenied", 403, ACCESS_DENIED)
    }

    /// 500 `InternalError`.
    pub fn internal() -> Self {
        S3Error::new("InternalError", 500, MSG_INTERNAL)
    }

    /// S3's XML error body for this error on `resource` (the request path),
    /// with every text node escaped.
    pub fn to_xml(&self, resource: &str, request_id: &str) -> String {
        let mut out = String::with_capacity(200 + self.message.len() + resource.len());
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>");
        element(&mut out, "Code", self.code);
        element(&mut out, "Message", &self.message);
        if let Some(arg) = self.argument {
            element(&mut out, "ArgumentName", arg);
        }
        element(&mut out, "Resource", resource);
        element(&mut out, "RequestId", request_id);
        out.push_str("</Error>");
        out
    }
}

fn element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape_into(out, text);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// XML-escapes `text` (the five predefined entities); control characters
/// XML 1.0 cannot carry become U+FFFD.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// How objseal errors become S3 errors: [`ErrorMapping::default`] is S3's
/// behaviour; [`ErrorMapping::wrong_key_bad_request`] reports a wrong SSE-C
/// key as 400, as some other S3 implementations do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorMapping {
    /// Report a wrong SSE-C key as 400 `InvalidArgument` instead of 403 `AccessDenied`.
    pub wrong_key_bad_request: bool,
}

impl ErrorMapping {
    /// A mapping that reports a wrong SSE-C key as 400 `InvalidArgument`.
    pub fn wrong_key_bad_request() -> Self {
        ErrorMapping {
            wrong_key_bad_request: true,
        }
    }

    /// The S3 error for `err`, keeping `err` as its
    /// [`source`](S3Error::source). Failures of the caller's request map to
    /// 4xx as S3 reports them; corruption, missing configuration and I/O
    /// failures map to 5xx with a generic message (details stay in logs,
    /// from the source).
    pub fn map_error(&self, err: Error) -> S3Error {
        self.map(&err).with_source(err)
    }

    /// The S3 error for `err`, without keeping `err` as its source (see
    /// [`ErrorMapping::map_error`]).
    pub fn map(&self, err: &Error) -> S3Error {
        match err {
            Error::Key(k) => self.map_key(k),
            Error::Kms(k) => map_kms(k),
            Error::Body(BodyError::InvalidRange { .. }) => S3Error::new(
                "InvalidRange",
                416,
                "The requested range is not satisfiable",
            ),
            Error::Body(BodyError::DeclaredLength { declared, received })
                if received < declared =>
            {
                S3Error::new("IncompleteBody", 400, MSG_INCOMPLETE_BODY)
            }
            Error::Body(BodyError::DeclaredLength { .. }) => {
                S3Error::invalid_request(MSG_BODY_TOO_LONG)
            }
            _ => S3Error::internal(),
        }
    }

    fn map_key(&self, err: &KeyError) -> S3Error {
        match err {
            KeyError::AccessDenied if self.wrong_key_bad_request => S3Error::invalid_argument(
                "x-amz-server-side-encryption-customer-key",
                "The provided customer key does not match the key the object was encrypted with.",
            ),
            KeyError::AccessDenied => S3Error::access_denied(),
            KeyError::CustomerKeyRequired => S3Error::invalid_request(MSG_SSE_C_REQUIRED),
            KeyError::CustomerKeyNotApplicable { .. } => {
                S3Error::invalid_request(MSG_NOT_APPLICABLE)
            }
            KeyError::NotConfigured { .. } => S3Error::new(
                "NotImplemented",
                501,
                "A header you provided implies functionality that is not implemented",
            ),
            _ => S3Error::internal(),
        }
    }
}

fn map_kms(err: &KmsError) -> S3Error {
    match err {
        KmsError::NotFound { key_id } => S3Error::new(
            "KMS.NotFoundException",
            400,
            format!("Key '{}' does not exist", bounded(key_id)),
        ),
        KmsError::InvalidKeyReference { value } => S3Error::new(
            "KMS.NotFoundException",
            400,
            format!("Invalid keyId '{}'", bounded(value)),
        ),
        KmsError::WrongRegion { region, .. } => S3Error::new(
            "KMS.NotFoundException",
            400,
            format!("Invalid arn {}", bounded(region)),
        ),
        KmsError::Disabled { arn } => S3Error::new(
            "KMS.DisabledException",
            400,
            format!("{} is disabled.", bounded(arn)),
        ),
        KmsError::PendingDeletion { arn, .. } => S3Error::new(
            "KMS.KMSInvalidStateException",
            400,
            format!("{} is pending deletion.", bounded(arn)),
        ),
        KmsError::InvalidState { arn, reason } => S3Error::new(
            "KMS.KMSInvalidStateException",
            400,
            format!(
                "{} is in an invalid state: {}",
                bounded(arn),
                bounded(reason)
            ),
        ),
        KmsError::InvalidContext { .. } => {
            S3Error::invalid_argument("x-amz-server-side-encryption-context", MSG_KMS_CONTEXT)
        }
        KmsError::AccessDenied { .. } => S3Error::access_denied(),
        // KMS throttling through every retry: S3's answer to a request
        // rate above what it (here: its KMS) takes.
        KmsError::Throttled { .. } => {
            S3Error::new("SlowDown", 503, "Please reduce your request rate.")
        }
        // The KMS unreachable, failing (5xx) or hung past its timeout.
        KmsError::Unavailable { .. } => S3Error::new(
            "ServiceUnavailable",
            503,
            "Service is unable to handle request.",
        ),
        // A stored blob or context that does not decrypt, a KMS refusal
        // without an S3 code of its own, a server whose KMS client is not
        // configured, and key-management errors S3 requests cannot cause:
        // the server's fault, details in the source.
        KmsError::ContextMismatch
        | KmsError::IncorrectKey { .. }
        | KmsError::InvalidCiphertext { .. }
        | KmsError::AliasExists { .. }
        | KmsError::InvalidDeletionWindow { .. }
        | KmsError::Refused { .. }
        | KmsError::Configuration { .. } => S3Error::internal(),
    }
}

/// At most 2048 bytes of `s` (cut at a character boundary), so an error
/// message never grows with untrusted input.
fn bounded(s: &str) -> &str {
    if s.len() <= 2048 {
        return s;
    }
    let mut end = 2048;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl From<&Error> for S3Error {
    fn from(err: &Error) -> Self {
        ErrorMapping::default().map(err)
    }
}

impl From<Error> for S3Error {
    fn from(err: Error) -> Self {
        ErrorMapping::default().map(&err).with_source(err)
    }
}
