//! A small S3 client for the upstream store: SigV4 (aws-sigv4) over hyper,
//! path-style addressing, streaming bodies both ways.
//!
//! INTERFACE CONTRACT (fixed; the handlers in `super` are written against
//! it): names and signatures below must stay as they are. Bodies are
//! streamed, never collected (except small XML answers, bounded).

use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use http::HeaderMap;

/// A streamed body.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

/// Upstream credentials (from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`). `Debug` never shows the secret.
#[derive(Clone)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key (zeroized on drop).
    pub secret_access_key: zeroize::Zeroizing<String>,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
}

/// Where the upstream is and how to reach it.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// `http://host:port` or `https://host:port` (no path; path-style
    /// addressing: `/{bucket}/{key}`).
    pub endpoint: http::Uri,
    /// Signing region (`AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`).
    pub region: String,
    /// Credentials.
    pub credentials: Credentials,
    /// Extra PEM CA certificates trusted for an https endpoint (beside the
    /// system/webpki roots), e.g. a self-signed test store.
    pub ca_file: Option<std::path::PathBuf>,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed without progress on a request (headers, or between body pieces).
    pub idle_timeout: Duration,
}

impl UpstreamConfig {
    /// The configuration from the AWS environment variables: the endpoint is
    /// `url` if given, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`;
    /// an error (InvalidInput, naming the variable) when none is set, a URL is
    /// not http(s) or has a path/query, or the credentials are missing.
    pub fn from_env(url: Option<&str>) -> io::Result<Self> {
        let _ = url;
        todo!()
    }
}

/// An answer of the upstream that was not a success: the S3 error code and
/// message from its XML body (or `""` code for a body-less error such as
/// HEAD's 404, which then gets `NoSuchKey`/`NoSuchBucket`/`NotFound` as S3
/// clients infer), or a transport failure (`status` 0: connect, timeout,
/// TLS, broken body), after the retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    /// HTTP status (0 for a transport failure).
    pub status: u16,
    /// The S3 error code (`NoSuchKey`, `NoSuchBucket`, `PreconditionFailed`, ...).
    pub code: String,
    /// The message.
    pub message: String,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "upstream {} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for UpstreamError {}

/// A streamed answer (GET).
pub struct Response {
    /// 200 or 206.
    pub status: u16,
    /// The response headers (ETag, Content-Length, Content-Range,
    /// Content-Type, Last-Modified, `x-amz-meta-*`, ...).
    pub headers: HeaderMap,
    /// The body.
    pub body: ByteStream,
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Key.
    pub key: String,
    /// Size as stored upstream.
    pub size: u64,
    /// The upstream ETag, quoted as S3 sends it.
    pub etag: String,
    /// LastModified as sent (RFC 3339, e.g. `2026-12-01T10:00:00.000Z`).
    pub last_modified: String,
}

/// A page of ListObjectsV2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects.
    pub contents: Vec<Listed>,
    /// Common prefixes (with a delimiter).
    pub common_prefixes: Vec<String>,
    /// More follow.
    pub is_truncated: bool,
    /// Token for the next page.
    pub next_continuation_token: Option<String>,
}

/// ListObjectsV2 parameters (keys and prefixes are sent URL-encoded,
/// answers are requested with `encoding-type=url` and decoded).
#[derive(Debug, Clone, Default)]
pub struct ListParams<'a> {
    /// Prefix.
    pub prefix: &'a str,
    /// Delimiter.
    pub delimiter: Option<&'a str>,
    /// Continuation token.
    pub continuation_token: Option<&'a str>,
    /// StartAfter.
    pub start_after: Option<&'a str>,
    /// MaxKeys (1..=1000).
    pub max_keys: u32,
}

/// One part of ListParts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPart {
    /// Part number.
    pub number: u32,
    /// Size as stored upstream.
    pub size: u64,
    /// The upstream ETag, quoted.
    pub etag: String,
    /// LastModified as sent.
    pub last_modified: String,
}

/// One upload of ListMultipartUploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUpload {
    /// Key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// Initiated, as sent.
    pub initiated: String,
}

/// The upstream client; cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Client {}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `config` (builds the TLS configuration; no request yet).
    pub fn new(config: UpstreamConfig) -> io::Result<Client> {
        let _ = config;
        todo!()
    }

    /// The endpoint, for messages.
    pub fn endpoint(&self) -> String {
        todo!()
    }

    /// ListBuckets: (name, creation date as sent).
    pub async fn list_buckets(&self) -> Result<Vec<(String, String)>, UpstreamError> {
        todo!()
    }

    /// CreateBucket (no location constraint for us-east-1, else the region's).
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), UpstreamError> {
        let _ = bucket;
        todo!()
    }

    /// HeadBucket.
    pub async fn head_bucket(&self, bucket: &str) -> Result<(), UpstreamError> {
        let _ = bucket;
        todo!()
    }

    /// DeleteBucket.
    pub async fn delete_bucket(&self, bucket: &str) -> Result<(), UpstreamError> {
        let _ = bucket;
        todo!()
    }

    /// PutObject of exactly `len` bytes from `body` (sent with
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`), with `headers` added to
    /// the request (Content-Type, `x-amz-meta-*`, Cache-Control, ...).
    /// Returns the response headers (ETag). Not retried (the body is a
    /// stream); a body that ends short or long fails the request.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        headers: HeaderMap,
        body: ByteStream,
        len: u64,
    ) -> Result<HeaderMap, UpstreamError> {
        let _ = (bucket, key, headers, body, len);
        todo!()
    }

    /// PutObject of a small in-memory body (payload hash signed; retried on
    /// 5xx/transport errors with bounded backoff).
    pub async fn put_small(
        &self,
        bucket: &str,
        key: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<HeaderMap, UpstreamError> {
        let _ = (bucket, key, headers, body);
        todo!()
    }

    /// GetObject, whole or `range` (inclusive first and last byte, as the
    /// `Range: bytes=a-b` header; `(a, u64::MAX)` means `bytes=a-`), with
    /// `headers` added (If-Match, ...). Retried (before the body) on
    /// 5xx/transport errors.
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<(u64, u64)>,
        headers: HeaderMap,
    ) -> Result<Response, UpstreamError> {
        let _ = (bucket, key, range, headers);
        todo!()
    }

    /// GetObject of the last `n` bytes (`Range: bytes=-n`), body collected
    /// (at most `n` bytes; more is an error). Returns (status, headers, bytes).
    pub async fn get_tail(
        &self,
        bucket: &str,
        key: &str,
        n: u64,
    ) -> Result<(u16, HeaderMap, Bytes), UpstreamError> {
        let _ = (bucket, key, n);
        todo!()
    }

    /// GetObject collected into memory, refusing a body over `limit` bytes.
    pub async fn get_small(
        &self,
        bucket: &str,
        key: &str,
        limit: usize,
    ) -> Result<(HeaderMap, Bytes), UpstreamError> {
        let _ = (bucket, key, limit);
        todo!()
    }

    /// HeadObject: the response headers.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<HeaderMap, UpstreamError> {
        let _ = (bucket, key);
        todo!()
    }

    /// DeleteObject (a missing key is success, as in S3).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), UpstreamError> {
        let _ = (bucket, key);
        todo!()
    }

    /// CopyObject from `src_bucket/src_key` to `bucket/key` with `headers`
    /// added (`x-amz-metadata-directive`, Content-Type, `x-amz-meta-*`,
    /// `x-amz-copy-source-if-match`, ...). Returns the new ETag (quoted).
    /// A 200 whose body is an `<Error>` is an error.
    pub async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        bucket: &str,
        key: &str,
        headers: HeaderMap,
    ) -> Result<String, UpstreamError> {
        let _ = (src_bucket, src_key, bucket, key, headers);
        todo!()
    }

    /// ListObjectsV2, one page.
    pub async fn list_objects_v2(
        &self,
        bucket: &str,
        params: &ListParams<'_>,
    ) -> Result<ListPage, UpstreamError> {
        let _ = (bucket, params);
        todo!()
    }

    /// CreateMultipartUpload with `headers` added; returns the upload id.
    pub async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        headers: HeaderMap,
    ) -> Result<String, UpstreamError> {
        let _ = (bucket, key, headers);
        todo!()
    }

    /// UploadPart of exactly `len` bytes (UNSIGNED-PAYLOAD); returns its ETag (quoted).
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: ByteStream,
        len: u64,
    ) -> Result<String, UpstreamError> {
        let _ = (bucket, key, upload_id, number, body, len);
        todo!()
    }

    /// CompleteMultipartUpload with `(number, quoted etag)` in order;
    /// returns the object's ETag (quoted). A 200 whose body is an
    /// `<Error>` is an error.
    pub async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<String, UpstreamError> {
        let _ = (bucket, key, upload_id, parts);
        todo!()
    }

    /// AbortMultipartUpload.
    pub async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), UpstreamError> {
        let _ = (bucket, key, upload_id);
        todo!()
    }

    /// ListParts (all pages).
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<ListedPart>, UpstreamError> {
        let _ = (bucket, key, upload_id);
        todo!()
    }

    /// ListMultipartUploads under `prefix` (all pages, at most 10000 uploads).
    pub async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<ListedUpload>, UpstreamError> {
        let _ = (bucket, prefix);
        todo!()
    }
}
