//! A small S3 client for the upstream store: SigV4 (aws-sigv4) over hyper,
//! path-style addressing, streaming bodies both ways.
//!
//! INTERFACE CONTRACT (fixed; the handlers in `super` are written against
//! it): names and signatures below must stay as they are. Bodies are
//! streamed, never collected (except small XML answers, bounded).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use futures::Stream;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::xml::quoted;
/// The answer types (in [`super::xml`], which reads them).
pub use super::xml::{ListPage, Listed, ListedPart, ListedUpload};

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

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
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
    ///
    /// Also read: `AWS_SESSION_TOKEN` (optional), `AWS_CA_BUNDLE` (optional,
    /// becomes [`ca_file`](Self::ca_file)). The timeouts are
    /// [`DEFAULT_CONNECT_TIMEOUT`] and [`DEFAULT_IDLE_TIMEOUT`].
    pub fn from_env(url: Option<&str>) -> io::Result<Self> {
        Self::from_vars(url, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables from `var` (unset and
    /// empty values are the same).
    pub fn from_vars(url: Option<&str>, var: impl Fn(&str) -> Option<String>) -> io::Result<Self> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let (endpoint, source) = match url {
            Some(u) => (u.to_owned(), "the upstream URL"),
            None => match var("AWS_ENDPOINT_URL_S3") {
                Some(u) => (u, "AWS_ENDPOINT_URL_S3"),
                None => match var("AWS_ENDPOINT_URL") {
                    Some(u) => (u, "AWS_ENDPOINT_URL"),
                    None => {
                        return Err(invalid(
                            "no upstream endpoint: set AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL"
                                .into(),
                        ));
                    }
                },
            },
        };
        let endpoint = parse_endpoint(&endpoint).map_err(|why| {
            invalid(format!(
                "{source} ({endpoint:?}) is not a usable endpoint: {why}"
            ))
        })?;
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let access_key_id = var("AWS_ACCESS_KEY_ID");
        let secret = var("AWS_SECRET_ACCESS_KEY").map(zeroize::Zeroizing::new);
        let (access_key_id, secret_access_key) = match (access_key_id, secret) {
            (Some(a), Some(s)) => (a, s),
            (a, _) => {
                let missing = if a.is_none() {
                    "AWS_ACCESS_KEY_ID"
                } else {
                    "AWS_SECRET_ACCESS_KEY"
                };
                return Err(invalid(format!(
                    "no upstream credentials: {missing} is not set \
                     (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are both needed)"
                )));
            }
        };
        Ok(UpstreamConfig {
            endpoint,
            region,
            credentials: Credentials {
                access_key_id,
                secret_access_key,
                session_token: var("AWS_SESSION_TOKEN"),
            },
            ca_file: var("AWS_CA_BUNDLE").map(std::path::PathBuf::from),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        })
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
        write!(
            f,
            "upstream {} {}: {}",
            self.status, self.code, self.message
        )
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

/// The upstream client; cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// The default [`UpstreamConfig::connect_timeout`] of [`UpstreamConfig::from_env`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default [`UpstreamConfig::idle_timeout`] of [`UpstreamConfig::from_env`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// [`UpstreamError::code`] of a transport failure (status 0): connect,
/// TLS, a broken connection or body.
pub const CODE_TRANSPORT: &str = "TransportError";
/// [`UpstreamError::code`] of a timeout (status 0): connect, or no
/// progress within the idle timeout.
pub const CODE_TIMEOUT: &str = "UpstreamTimeout";
/// [`UpstreamError::code`] of an answer that could not be understood
/// (status 0; not retried): malformed XML, a missing field.
pub const CODE_INVALID_RESPONSE: &str = "InvalidUpstreamResponse";
/// [`UpstreamError::code`] of a collected body over its limit (status 0;
/// not retried): `get_small`, `get_tail`, an XML answer over its bound.
pub const CODE_TOO_LARGE: &str = "UpstreamBodyTooLarge";

/// Bound of an error answer's body.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// Bound of an XML answer's body (a ListObjectsV2 page of 1000 keys of
/// 1024 bytes, URL-encoded, stays below it).
const XML_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Retries after the first try.
const MAX_RETRIES: u32 = 3;
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(1);

/// Every byte but the unreserved ones (and `/` in keys) is percent-encoded.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
const KEY: &AsciiSet = &STRICT.remove(b'/');

type ReqBody = UnsyncBoxBody<Bytes, io::Error>;
type Http =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, ReqBody>;

struct Inner {
    http: Http,
    /// `scheme://authority`, no trailing slash.
    endpoint: String,
    region: String,
    identity: Identity,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `http(s)://authority` with no path (or `/`), query or fragment.
fn parse_endpoint(s: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = s.parse().map_err(|e| format!("{e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err("the scheme must be http or https".into()),
    }
    let Some(authority) = uri.authority() else {
        return Err("no host".into());
    };
    if authority.as_str().contains('@') {
        return Err("user information in the URL is not supported".into());
    }
    if authority.host().is_empty() {
        return Err("no host".into());
    }
    if let Some(pq) = uri.path_and_query() {
        if pq.query().is_some() {
            return Err("a query is not allowed".into());
        }
        if !matches!(pq.path(), "" | "/") {
            return Err("a path is not allowed (path-style addressing: give the host only)".into());
        }
    }
    if s.contains('#') {
        return Err("a fragment is not allowed".into());
    }
    let scheme = uri.scheme_str().unwrap_or("http");
    format!("{scheme}://{authority}/")
        .parse()
        .map_err(|e| format!("{e}"))
}

fn transport(code: &str, message: String) -> UpstreamError {
    UpstreamError {
        status: 0,
        code: code.to_owned(),
        message,
    }
}

/// The error and its sources, `: `-joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn retryable(e: &UpstreamError) -> bool {
    match e.status {
        0 => e.code == CODE_TRANSPORT || e.code == CODE_TIMEOUT,
        500 | 502 | 503 | 504 => true,
        _ => matches!(
            e.code.as_str(),
            "SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded"
        ),
    }
}

async fn backoff(attempt: u32) {
    let base = BACKOFF_START
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    let half = base / 2;
    let r = getrandom::u32().unwrap_or(0) as u64;
    let jitter = Duration::from_nanos(r % (half.as_nanos() as u64 + 1));
    tokio::time::sleep(half + jitter).await;
}

/// What a request addresses, for the URL and for the code of a body-less 404.
#[derive(Clone, Copy)]
enum Target<'a> {
    Service,
    Bucket(&'a str),
    Object(&'a str, &'a str),
}

impl Target<'_> {
    fn path(&self) -> String {
        match self {
            Target::Service => "/".to_owned(),
            Target::Bucket(b) => format!("/{}", utf8_percent_encode(b, STRICT)),
            Target::Object(b, k) => format!(
                "/{}/{}",
                utf8_percent_encode(b, STRICT),
                utf8_percent_encode(k, KEY)
            ),
        }
    }
}

/// Percent-encodes a key the S3 way (every byte but `A-Za-z0-9-._~` and `/`).
pub fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY).to_string()
}

/// The sorted query string (`k=v&...`, strictly encoded).
fn query_string(query: &[(&str, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| {
            (
                utf8_percent_encode(k, STRICT).to_string(),
                utf8_percent_encode(v, STRICT).to_string(),
            )
        })
        .collect();
    pairs.sort();
    let mut s = String::new();
    for (k, v) in pairs {
        if !s.is_empty() {
            s.push('&');
        }
        s.push_str(&k);
        s.push('=');
        s.push_str(&v);
    }
    s
}

/// The `Error` of an XML error answer, else the code inferred from the status.
fn error_from(status: u16, reason: &str, body: &[u8], target: Target<'_>) -> UpstreamError {
    let parsed = super::xml::error_code_message(body);
    let (code, message) = match parsed {
        Some((c, m)) => {
            let m = if m.is_empty() { c.clone() } else { m };
            (c, m)
        }
        None => {
            let code = match status {
                404 => match target {
                    Target::Object(..) => "NoSuchKey",
                    Target::Bucket(_) => "NoSuchBucket",
                    Target::Service => "NotFound",
                },
                412 => "PreconditionFailed",
                304 => "NotModified",
                403 => "AccessDenied",
                416 => "InvalidRange",
                _ => "",
            };
            let message = if reason.is_empty() {
                format!("HTTP {status}")
            } else {
                reason.to_owned()
            };
            (code.to_owned(), message)
        }
    };
    UpstreamError {
        status,
        code,
        message,
    }
}

/// Time of the last progress of a streamed request body, and whether it is
/// waiting on its source (then the upstream is not to blame).
struct Progress(Mutex<(Instant, bool)>);

impl Progress {
    fn touch(&self, waiting: bool) {
        if let Ok(mut g) = self.0.lock() {
            *g = (Instant::now(), waiting);
        }
    }
    fn get(&self) -> (Instant, bool) {
        self.0.lock().map(|g| *g).unwrap_or((Instant::now(), false))
    }
}

/// A streamed request body of exactly `remaining` bytes.
struct Streamed {
    inner: ByteStream,
    remaining: u64,
    progress: Arc<Progress>,
    failed: bool,
    /// The last piece, until the source ends.
    held: Option<Bytes>,
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        loop {
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => {
                    this.progress.touch(true);
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(b))) => {
                    this.progress.touch(false);
                    if b.is_empty() {
                        continue;
                    }
                    if b.len() as u64 > this.remaining || this.held.is_some() {
                        this.failed = true;
                        return Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "request body longer than its declared length",
                        ))));
                    }
                    this.remaining -= b.len() as u64;
                    if this.remaining == 0 {
                        // The last piece goes once the source has ended, so
                        // that a longer body fails the request.
                        this.held = Some(b);
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.progress.touch(false);
                    this.failed = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.progress.touch(false);
                    if let Some(last) = this.held.take() {
                        return Poll::Ready(Some(Ok(Frame::data(last))));
                    }
                    if this.remaining != 0 {
                        this.failed = true;
                        return Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "request body ended {} bytes short of its declared length",
                                this.remaining
                            ),
                        ))));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        let held = self.held.as_ref().map_or(0, |b| b.len() as u64);
        SizeHint::with_exact(self.remaining + held)
    }
}

/// A request body.
enum Payload {
    /// Empty, hash signed.
    Empty,
    /// In memory, hash signed (retryable).
    Small(Bytes),
    /// Streamed, `UNSIGNED-PAYLOAD`, exactly this many bytes (not retried).
    Stream(ByteStream, u64),
}

/// One request (without its body).
struct Req<'a> {
    method: Method,
    target: Target<'a>,
    query: Vec<(&'a str, String)>,
    headers: HeaderMap,
    /// What it is, for messages (`GetObject`, ...).
    what: &'static str,
}

impl<'a> Req<'a> {
    fn new(method: Method, target: Target<'a>, what: &'static str) -> Self {
        Req {
            method,
            target,
            query: Vec::new(),
            headers: HeaderMap::new(),
            what,
        }
    }
    fn query(mut self, k: &'a str, v: impl Into<String>) -> Self {
        self.query.push((k, v.into()));
        self
    }
    fn headers(mut self, h: HeaderMap) -> Self {
        for (name, value) in h.iter() {
            self.headers.append(name.clone(), value.clone());
        }
        self
    }
    fn header(mut self, name: http::HeaderName, value: &str) -> Result<Self, UpstreamError> {
        let v = HeaderValue::from_str(value).map_err(|_| {
            transport(
                CODE_INVALID_RESPONSE,
                format!("invalid {name} header value {value:?}"),
            )
        })?;
        self.headers.insert(name, v);
        Ok(self)
    }
    fn path_and_query(&self) -> String {
        let mut s = self.target.path();
        let q = query_string(&self.query);
        if !q.is_empty() {
            s.push('?');
            s.push_str(&q);
        }
        s
    }
}

/// Reads `body` (each piece within `idle`) up to `limit` bytes; `Ok(None)`
/// when it holds more.
async fn collect(
    mut body: Incoming,
    limit: usize,
    idle: Duration,
) -> Result<Option<Bytes>, String> {
    let mut buf = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(format!("no data for {idle:?} in the answer's body")),
            Ok(None) => return Ok(Some(buf.freeze())),
            Ok(Some(Err(e))) => return Err(format!("answer body broken: {}", chain(&e))),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > limit {
                        return Ok(None);
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

/// The response body as a stream whose pieces must come within `idle`.
fn stream_body(body: Incoming, idle: Duration, endpoint: String) -> ByteStream {
    let s = futures::stream::unfold(Some(body), move |state| {
        let endpoint = endpoint.clone();
        async move {
            let mut body = state?;
            loop {
                match tokio::time::timeout(idle, body.frame()).await {
                    Err(_) => {
                        let e = io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("upstream {endpoint}: no data for {idle:?} in the body"),
                        );
                        return Some((Err(e), None));
                    }
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => {
                        let e = io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("upstream {endpoint}: body broken: {}", chain(&e)),
                        );
                        return Some((Err(e), None));
                    }
                    Ok(Some(Ok(frame))) => match frame.into_data() {
                        Ok(d) if !d.is_empty() => return Some((Ok(d), Some(body))),
                        _ => continue,
                    },
                }
            }
        }
    });
    Box::pin(s)
}

fn bad_answer(what: &str, why: impl std::fmt::Display) -> UpstreamError {
    transport(
        CODE_INVALID_RESPONSE,
        format!("{what}: the upstream's answer is not understood: {why}"),
    )
}

impl Client {
    /// A client for `config` (builds the TLS configuration; no request yet).
    pub fn new(config: UpstreamConfig) -> io::Result<Client> {
        let endpoint = parse_endpoint(&config.endpoint.to_string())
            .map_err(|why| invalid(format!("upstream endpoint {}: {why}", config.endpoint)))?;
        let scheme = endpoint.scheme_str().unwrap_or("http").to_owned();
        let authority = endpoint
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();

        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &config.ca_file {
            use rustls_pki_types::pem::PemObject;
            let bad = |e: &dyn std::fmt::Display| {
                invalid(format!("upstream CA file {}: {e}", path.display()))
            };
            let mut n = 0;
            for cert in
                rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))?
            {
                let cert = cert.map_err(|e| bad(&e))?;
                roots.add(cert).map_err(|e| bad(&e))?;
                n += 1;
            }
            if n == 0 {
                return Err(bad(&"no certificate in it"));
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();

        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(config.connect_timeout));
        tcp.set_keepalive(Some(Duration::from_secs(60)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(50))
                .build(https);

        let creds = &config.credentials;
        let identity: Identity = aws_credential_types::Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.as_str(),
            creds.session_token.clone(),
            None,
            "objseal-upstream",
        )
        .into();
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                endpoint: format!("{scheme}://{authority}"),
                region: config.region,
                identity,
                connect_timeout: config.connect_timeout,
                idle_timeout: config.idle_timeout,
            }),
        })
    }

    /// The endpoint, for messages.
    pub fn endpoint(&self) -> String {
        self.inner.endpoint.clone()
    }

    /// The endpoint and the operation, for messages (never a key, a query
    /// or a signature: messages reach the log).
    fn describe(&self, req: &Req<'_>) -> String {
        let on = match req.target {
            Target::Service => String::new(),
            Target::Bucket(b) | Target::Object(b, _) => format!(" in bucket {b:?}"),
        };
        format!("upstream {} ({}{on})", self.inner.endpoint, req.what)
    }

    /// The signed request, and the progress of its streamed body.
    fn build(
        &self,
        req: &Req<'_>,
        payload: Payload,
    ) -> Result<(http::Request<ReqBody>, Option<Arc<Progress>>), UpstreamError> {
        let uri = format!("{}{}", self.inner.endpoint, req.path_and_query());
        let mut progress = None;
        // The bytes whose hash is signed; `None`: UNSIGNED-PAYLOAD.
        let (body, len, signed): (ReqBody, Option<u64>, Option<Bytes>) = match payload {
            Payload::Empty => (
                Full::new(Bytes::new())
                    .map_err(|n| match n {})
                    .boxed_unsync(),
                matches!(req.method, Method::PUT | Method::POST).then_some(0),
                Some(Bytes::new()),
            ),
            Payload::Small(b) => (
                Full::new(b.clone()).map_err(|n| match n {}).boxed_unsync(),
                Some(b.len() as u64),
                Some(b),
            ),
            Payload::Stream(s, len) => {
                let p = Arc::new(Progress(Mutex::new((Instant::now(), false))));
                progress = Some(p.clone());
                let body = Streamed {
                    inner: s,
                    remaining: len,
                    progress: p,
                    failed: false,
                    held: None,
                };
                (body.boxed_unsync(), Some(len), None)
            }
        };
        let mut request = http::Request::new(body);
        *request.method_mut() = req.method.clone();
        *request.uri_mut() = uri.parse().map_err(|e| {
            transport(
                CODE_INVALID_RESPONSE,
                format!("{}: bad request URI: {e}", self.describe(req)),
            )
        })?;
        *request.headers_mut() = req.headers.clone();
        if let Some(len) = len {
            request
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(len));
        }

        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let sign_err = |e: &dyn std::fmt::Display| {
            transport(
                CODE_INVALID_RESPONSE,
                format!("{}: signing failed: {e}", self.describe(req)),
            )
        };
        let params = v4::SigningParams::builder()
            .identity(&self.inner.identity)
            .region(&self.inner.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| sign_err(&e))?
            .into();
        let instructions = {
            let headers = request
                .headers()
                .iter()
                .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)));
            let body = match &signed {
                Some(b) => SignableBody::Bytes(b),
                None => SignableBody::UnsignedPayload,
            };
            let signable =
                SignableRequest::new(request.method().as_str(), uri.as_str(), headers, body)
                    .map_err(|e| sign_err(&e))?;
            let (instructions, _signature) = sign(signable, &params)
                .map_err(|e| sign_err(&e))?
                .into_parts();
            instructions
        };
        instructions.apply_to_request_http1x(&mut request);
        Ok((request, progress))
    }

    /// One try: the answer when 2xx (its body unread), else the error.
    async fn send(
        &self,
        req: &Req<'_>,
        payload: Payload,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let inner = &*self.inner;
        let (request, progress) = self.build(req, payload)?;
        let fut = inner.http.request(request);
        let first = inner.connect_timeout + inner.idle_timeout;
        let answer = match progress {
            None => tokio::time::timeout(first, fut).await.ok(),
            Some(p) => {
                tokio::pin!(fut);
                let start = Instant::now();
                let mut deadline = start + first;
                loop {
                    tokio::select! {
                        r = &mut fut => break Some(r),
                        _ = tokio::time::sleep_until(deadline.into()) => {
                            let (last, waiting) = p.get();
                            let now = Instant::now();
                            let next = (last + inner.idle_timeout).max(start + first);
                            if waiting {
                                deadline = now + inner.idle_timeout;
                            } else if next > now {
                                deadline = next;
                            } else {
                                break None;
                            }
                        }
                    }
                }
            }
        };
        let response = match answer {
            None => {
                return Err(transport(
                    CODE_TIMEOUT,
                    format!(
                        "{}: no answer within {:?}",
                        self.describe(req),
                        inner.idle_timeout
                    ),
                ));
            }
            Some(Err(e)) => {
                let code = if chain(&e).contains("timed out") || chain(&e).contains("timeout") {
                    CODE_TIMEOUT
                } else {
                    CODE_TRANSPORT
                };
                return Err(transport(
                    code,
                    format!("{}: {}", self.describe(req), chain(&e)),
                ));
            }
            Some(Ok(r)) => r,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let reason = status.canonical_reason().unwrap_or("").to_owned();
        let body = collect(response.into_body(), ERROR_BODY_LIMIT, inner.idle_timeout)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        Err(error_from(status.as_u16(), &reason, &body, req.target))
    }

    /// A retried request with a small body, its answer collected (up to
    /// `limit` bytes; more is [`CODE_TOO_LARGE`]). `xml_200`: a 2xx whose
    /// body is an `<Error>` is an error.
    async fn call(
        &self,
        req: &Req<'_>,
        body: Bytes,
        limit: usize,
        xml_200: bool,
    ) -> Result<(u16, HeaderMap, Bytes), UpstreamError> {
        let mut attempt = 0;
        loop {
            let result = self.call_once(req, body.clone(), limit, xml_200).await;
            match result {
                Err(e) if attempt < MAX_RETRIES && retryable(&e) => {
                    backoff(attempt).await;
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    async fn call_once(
        &self,
        req: &Req<'_>,
        body: Bytes,
        limit: usize,
        xml_200: bool,
    ) -> Result<(u16, HeaderMap, Bytes), UpstreamError> {
        let payload = if body.is_empty() {
            Payload::Empty
        } else {
            Payload::Small(body)
        };
        let response = self.send(req, payload).await?;
        self.finish(req, response, limit, xml_200).await
    }

    /// Collects the body of a 2xx answer.
    async fn finish(
        &self,
        req: &Req<'_>,
        response: http::Response<Incoming>,
        limit: usize,
        xml_200: bool,
    ) -> Result<(u16, HeaderMap, Bytes), UpstreamError> {
        let (parts, body) = response.into_parts();
        let body = match collect(body, limit, self.inner.idle_timeout).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Err(transport(
                    CODE_TOO_LARGE,
                    format!("{}: answer body over {limit} bytes", self.describe(req)),
                ));
            }
            Err(why) => {
                let code = if why.starts_with("no data") {
                    CODE_TIMEOUT
                } else {
                    CODE_TRANSPORT
                };
                return Err(transport(code, format!("{}: {why}", self.describe(req))));
            }
        };
        if xml_200 && super::xml::is_error(&body) {
            let mut e = error_from(200, "", &body, req.target);
            e.status = if e.code == "SlowDown" { 503 } else { 500 };
            return Err(e);
        }
        Ok((parts.status.as_u16(), parts.headers, body))
    }

    /// A retried request whose XML answer is read by `extract` (one of
    /// [`super::xml`]'s functions).
    async fn call_xml<T>(
        &self,
        req: &Req<'_>,
        body: Bytes,
        xml_200: bool,
        extract: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<T, UpstreamError> {
        let (_, _, body) = self.call(req, body, XML_BODY_LIMIT, xml_200).await?;
        extract(&body).map_err(|why| bad_answer(&self.describe(req), why))
    }

    /// ListBuckets: (name, creation date as sent).
    pub async fn list_buckets(&self) -> Result<Vec<(String, String)>, UpstreamError> {
        let req = Req::new(Method::GET, Target::Service, "ListBuckets");
        self.call_xml(&req, Bytes::new(), false, super::xml::buckets)
            .await
    }

    /// CreateBucket (no location constraint for us-east-1, else the region's).
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), UpstreamError> {
        let mut req = Req::new(Method::PUT, Target::Bucket(bucket), "CreateBucket");
        let body = if self.inner.region == "us-east-1" {
            Bytes::new()
        } else {
            req = req.header(CONTENT_TYPE, "application/xml")?;
            Bytes::from(format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                quick_xml::escape::escape(self.inner.region.as_str())
            ))
        };
        self.call(&req, body, ERROR_BODY_LIMIT, false).await?;
        Ok(())
    }

    /// HeadBucket.
    pub async fn head_bucket(&self, bucket: &str) -> Result<(), UpstreamError> {
        let req = Req::new(Method::HEAD, Target::Bucket(bucket), "HeadBucket");
        self.call(&req, Bytes::new(), ERROR_BODY_LIMIT, false)
            .await?;
        Ok(())
    }

    /// DeleteBucket.
    pub async fn delete_bucket(&self, bucket: &str) -> Result<(), UpstreamError> {
        let req = Req::new(Method::DELETE, Target::Bucket(bucket), "DeleteBucket");
        self.call(&req, Bytes::new(), ERROR_BODY_LIMIT, false)
            .await?;
        Ok(())
    }

    /// A streamed PUT (not retried): the answer's headers.
    async fn put_stream(
        &self,
        req: &Req<'_>,
        body: ByteStream,
        len: u64,
    ) -> Result<HeaderMap, UpstreamError> {
        let response = self.send(req, Payload::Stream(body, len)).await?;
        let (_, headers, _) = self.finish(req, response, ERROR_BODY_LIMIT, false).await?;
        Ok(headers)
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
        let req = Req::new(Method::PUT, Target::Object(bucket, key), "PutObject").headers(headers);
        self.put_stream(&req, body, len).await
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
        let req = Req::new(Method::PUT, Target::Object(bucket, key), "PutObject").headers(headers);
        let mut attempt = 0;
        loop {
            // An empty body still goes as a PUT of 0 bytes.
            let payload = Payload::Small(body.clone());
            let result = match self.send(&req, payload).await {
                Ok(r) => self.finish(&req, r, ERROR_BODY_LIMIT, false).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if attempt < MAX_RETRIES && retryable(&e) => {
                    backoff(attempt).await;
                    attempt += 1;
                }
                r => return r.map(|(_, h, _)| h),
            }
        }
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
        let mut req =
            Req::new(Method::GET, Target::Object(bucket, key), "GetObject").headers(headers);
        if let Some((a, b)) = range {
            let v = if b == u64::MAX {
                format!("bytes={a}-")
            } else {
                format!("bytes={a}-{b}")
            };
            req = req.header(RANGE, &v)?;
        }
        let mut attempt = 0;
        let response = loop {
            match self.send(&req, Payload::Empty).await {
                Err(e) if attempt < MAX_RETRIES && retryable(&e) => {
                    backoff(attempt).await;
                    attempt += 1;
                }
                r => break r?,
            }
        };
        let (parts, body) = response.into_parts();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: stream_body(body, self.inner.idle_timeout, self.inner.endpoint.clone()),
        })
    }

    /// GetObject of the last `n` bytes (`Range: bytes=-n`), body collected
    /// (at most `n` bytes; more is an error). Returns (status, headers, bytes).
    pub async fn get_tail(
        &self,
        bucket: &str,
        key: &str,
        n: u64,
    ) -> Result<(u16, HeaderMap, Bytes), UpstreamError> {
        let req = Req::new(Method::GET, Target::Object(bucket, key), "GetObject")
            .header(RANGE, &format!("bytes=-{n}"))?;
        let limit = usize::try_from(n).unwrap_or(usize::MAX);
        self.call(&req, Bytes::new(), limit, false).await
    }

    /// GetObject collected into memory, refusing a body over `limit` bytes.
    pub async fn get_small(
        &self,
        bucket: &str,
        key: &str,
        limit: usize,
    ) -> Result<(HeaderMap, Bytes), UpstreamError> {
        let req = Req::new(Method::GET, Target::Object(bucket, key), "GetObject");
        let (_, headers, body) = self.call(&req, Bytes::new(), limit, false).await?;
        Ok((headers, body))
    }

    /// HeadObject: the response headers.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<HeaderMap, UpstreamError> {
        let req = Req::new(Method::HEAD, Target::Object(bucket, key), "HeadObject");
        let (_, headers, _) = self
            .call(&req, Bytes::new(), ERROR_BODY_LIMIT, false)
            .await?;
        Ok(headers)
    }

    /// DeleteObject (a missing key is success, as in S3).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), UpstreamError> {
        let req = Req::new(Method::DELETE, Target::Object(bucket, key), "DeleteObject");
        match self.call(&req, Bytes::new(), ERROR_BODY_LIMIT, false).await {
            Err(e) if e.status == 404 && e.code == "NoSuchKey" => Ok(()),
            r => r.map(|_| ()),
        }
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
        let source = format!(
            "/{}/{}",
            utf8_percent_encode(src_bucket, STRICT),
            utf8_percent_encode(src_key, KEY)
        );
        let req = Req::new(Method::PUT, Target::Object(bucket, key), "CopyObject")
            .headers(headers)
            .header(http::HeaderName::from_static("x-amz-copy-source"), &source)?;
        self.call_xml(&req, Bytes::new(), true, super::xml::copy_etag)
            .await
    }

    /// ListObjectsV2, one page.
    pub async fn list_objects_v2(
        &self,
        bucket: &str,
        params: &ListParams<'_>,
    ) -> Result<ListPage, UpstreamError> {
        let mut req = Req::new(Method::GET, Target::Bucket(bucket), "ListObjectsV2")
            .query("list-type", "2")
            .query("encoding-type", "url");
        if !params.prefix.is_empty() {
            req = req.query("prefix", params.prefix);
        }
        if let Some(d) = params.delimiter {
            req = req.query("delimiter", d);
        }
        if let Some(t) = params.continuation_token {
            req = req.query("continuation-token", t);
        }
        if let Some(s) = params.start_after {
            req = req.query("start-after", s);
        }
        if params.max_keys > 0 {
            req = req.query("max-keys", params.max_keys.min(1000).to_string());
        }
        self.call_xml(&req, Bytes::new(), false, super::xml::list_page)
            .await
    }

    /// CreateMultipartUpload with `headers` added; returns the upload id.
    pub async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        headers: HeaderMap,
    ) -> Result<String, UpstreamError> {
        let req = Req::new(
            Method::POST,
            Target::Object(bucket, key),
            "CreateMultipartUpload",
        )
        .query("uploads", "")
        .headers(headers);
        self.call_xml(&req, Bytes::new(), true, super::xml::upload_id)
            .await
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
        let req = Req::new(Method::PUT, Target::Object(bucket, key), "UploadPart")
            .query("partNumber", number.to_string())
            .query("uploadId", upload_id);
        let headers = self.put_stream(&req, body, len).await?;
        let etag = headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| bad_answer(&self.describe(&req), "no ETag header"))?;
        Ok(quoted(etag))
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
        let req = Req::new(
            Method::POST,
            Target::Object(bucket, key),
            "CompleteMultipartUpload",
        )
        .query("uploadId", upload_id)
        .header(CONTENT_TYPE, "application/xml")?;
        let mut xml = String::from(
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
        );
        for (n, etag) in parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
                quick_xml::escape::escape(etag.as_str())
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        self.call_xml(&req, Bytes::from(xml), true, super::xml::complete_etag)
            .await
    }

    /// AbortMultipartUpload.
    pub async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), UpstreamError> {
        let req = Req::new(
            Method::DELETE,
            Target::Object(bucket, key),
            "AbortMultipartUpload",
        )
        .query("uploadId", upload_id);
        self.call(&req, Bytes::new(), ERROR_BODY_LIMIT, false)
            .await?;
        Ok(())
    }

    /// ListParts (all pages).
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<ListedPart>, UpstreamError> {
        let mut out: Vec<ListedPart> = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut req = Req::new(Method::GET, Target::Object(bucket, key), "ListParts")
                .query("uploadId", upload_id);
            if let Some(m) = &marker {
                req = req.query("part-number-marker", m.clone());
            }
            let page = self
                .call_xml(&req, Bytes::new(), false, super::xml::parts)
                .await?;
            let what = self.describe(&req);
            out.extend(page.parts);
            let truncated = page.is_truncated;
            let next = page.next_marker;
            match next {
                Some(n) if truncated && marker.as_ref() != Some(&n) && out.len() <= 10_000 => {
                    marker = Some(n)
                }
                _ if truncated => {
                    return Err(bad_answer(
                        &what,
                        "truncated without a usable NextPartNumberMarker",
                    ));
                }
                _ => return Ok(out),
            }
        }
    }

    /// ListMultipartUploads under `prefix` (all pages, at most 10000 uploads).
    pub async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<ListedUpload>, UpstreamError> {
        const MAX: usize = 10_000;
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut req = Req::new(Method::GET, Target::Bucket(bucket), "ListMultipartUploads")
                .query("uploads", "")
                .query("encoding-type", "url");
            if !prefix.is_empty() {
                req = req.query("prefix", prefix);
            }
            if let Some((k, u)) = &markers {
                req = req.query("key-marker", k.clone());
                if !u.is_empty() {
                    req = req.query("upload-id-marker", u.clone());
                }
            }
            let room = MAX - out.len();
            let page = self
                .call_xml(&req, Bytes::new(), false, |body| {
                    super::xml::uploads(body, room)
                })
                .await?;
            let what = self.describe(&req);
            out.extend(page.uploads);
            let Some(next) = page.next else {
                return Ok(out);
            };
            if markers.as_ref() == Some(&next) {
                return Err(bad_answer(&what, "the listing does not advance"));
            }
            markers = Some(next);
        }
    }
}
