//! The [`s3s::S3`] implementation: S3 operations over the local store, every
//! object sealed with objseal.

use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use md5::{Digest, Md5};
use objseal::body::ByteRange;
use objseal::sse::{self, ErrorMapping, Operation, SseRequest, Transport};
use objseal::{Engine, Envelope, Mode, ObjectBinding};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::body::{self, CountingReader, CountingWriter, hex};
use crate::store::{
    BucketMeta, HEADER_LEN, ObjectFile, ObjectMeta, Store, create_dir_private, finish_object_file,
    now_ms, read_object_file, valid_bucket_name,
};
use crate::users::Users;

mod mpu;
mod route;

pub(crate) use mpu::{part_number, requested_parts};
pub use route::EncryptionRoute;

/// The name of an SSE mode as kept in object metadata.
pub(crate) fn sse_name(mode: Mode) -> &'static str {
    match mode {
        Mode::SseKms => "aws:kms",
        Mode::SseC => "SSE-C",
        _ => "AES256",
    }
}

/// Settings of the S3 service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Accept SSE-C headers over plain HTTP (tests only).
    pub allow_sse_c_over_http: bool,
    /// Whether the server speaks TLS.
    pub tls: bool,
    /// New buckets accept SSE-C writes (the pre-2026 default).
    pub allow_sse_c_by_default: bool,
    /// The largest object body accepted, in bytes.
    pub max_object_size: u64,
    /// BENCHMARK BASELINE ONLY: PutObject stores bodies as plaintext and
    /// GetObject serves them as stored (no seal, no open; the envelope
    /// kept is one made once and reused), so that a benchmark can compare
    /// the same request path with and without encryption. Never set it for
    /// data: what it stores is unencrypted and no normal server can read
    /// it back. Multipart and copy ignore it. Not reachable from the
    /// command line (only `gateway/benches/serve.rs` sets it).
    #[doc(hidden)]
    pub bench_plaintext: bool,
}

/// The S3 service over a local store.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    engine: Arc<Engine>,
    users: Arc<Users>,
    settings: Settings,
    /// The envelope reused for every object under
    /// [`Settings::bench_plaintext`] (made on the first write).
    bench_envelope: std::sync::OnceLock<Envelope>,
}

impl core::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Gateway")
            .field("data", &self.inner.store.root())
            .finish_non_exhaustive()
    }
}

/// Converts a library S3 error to an s3s one (5xx causes are logged).
pub fn convert(e: sse::S3Error) -> S3Error {
    if e.status >= 500
        && let Some(src) = &e.source
    {
        eprintln!("objseal serve: internal error: {src}");
    }
    let code = S3ErrorCode::from_bytes(e.code.as_bytes())
        .unwrap_or_else(|| S3ErrorCode::Custom(e.code.into()));
    let mut out = S3Error::with_message(code, e.message);
    if let Ok(status) = http::StatusCode::from_u16(e.status) {
        out.set_status_code(status);
    }
    out
}

/// The S3 error for a library error.
pub(crate) fn lib_err(e: objseal::Error) -> S3Error {
    convert(ErrorMapping::default().map_error(e))
}

/// A 500 for an I/O failure (logged, never shown to the client). An
/// objseal error carried in it is mapped as such.
pub(crate) fn io_err(e: io::Error) -> S3Error {
    if e.get_ref().is_some_and(|i| i.is::<objseal::Error>()) {
        return lib_err(objseal::Error::from(e));
    }
    eprintln!("objseal serve: I/O error: {e}");
    s3_error!(
        InternalError,
        "We encountered an internal error. Please try again."
    )
}

/// The object `key` of `bucket`, or S3's error for a key it refuses.
pub(crate) fn binding(bucket: &str, key: &str) -> S3Result<ObjectBinding> {
    if key.len() > objseal::format::MAX_OBJECT_KEY_LEN {
        return Err(s3_error!(KeyTooLongError, "Your key is too long"));
    }
    if key.is_empty() {
        return Err(s3_error!(
            InvalidArgument,
            "An object key must not be empty"
        ));
    }
    ObjectBinding::new(bucket, key).map_err(lib_err)
}

/// S3's 2 KB limit on user metadata (names and values).
pub(crate) fn check_user_meta(meta: Option<&Metadata>) -> S3Result<()> {
    let size: usize = meta
        .into_iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if size > 2048 {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size."
        ));
    }
    Ok(())
}

/// Runs `f` on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> S3Result<T> + Send + 'static,
) -> S3Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io_err(io::Error::other(e.to_string())))?
}

/// The content headers GET and HEAD answer with: the request's
/// `response-*` overrides, else what was stored with the object.
pub(crate) struct StoredHeaders {
    pub(crate) content_type: Option<String>,
    pub(crate) content_encoding: Option<String>,
    pub(crate) content_disposition: Option<String>,
    pub(crate) content_language: Option<String>,
    pub(crate) cache_control: Option<String>,
}

impl StoredHeaders {
    /// From `meta` and the overrides for content type, encoding,
    /// disposition, language and cache control, in that order.
    pub(crate) fn new(meta: &ObjectMeta, overrides: [&Option<String>; 5]) -> Self {
        let pick =
            |o: &Option<String>, stored: &Option<String>| o.clone().or_else(|| stored.clone());
        let [ty, enc, disp, lang, cache] = overrides;
        StoredHeaders {
            content_type: pick(ty, &meta.content_type),
            content_encoding: pick(enc, &meta.content_encoding),
            content_disposition: pick(disp, &meta.content_disposition),
            content_language: pick(lang, &meta.content_language),
            cache_control: pick(cache, &meta.cache_control),
        }
    }
}

/// Adds the stored `Expires` header, when there is one and it is valid.
pub(crate) fn insert_expires(headers: &mut http::HeaderMap, meta: &ObjectMeta) {
    if let Some(exp) = meta
        .expires
        .as_deref()
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        headers.insert(http::header::EXPIRES, exp);
    }
}

pub(crate) fn strip_quotes(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

fn unix_secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// Adds encryption response headers.
pub(crate) fn add_headers(map: &mut HeaderMap, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            map.insert(n, v);
        }
    }
}

pub(crate) fn etag_matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value().trim_matches('"') == etag,
    }
}

/// The bytes of part `n` of an object (GET/HEAD `?partNumber=`): a
/// multipart object's part, or all of a single-part object for part 1.
pub(crate) fn part_range(meta: &ObjectMeta, n: i32) -> S3Result<Option<std::ops::Range<u64>>> {
    let invalid = || {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("InvalidPartNumber".into()),
            "The requested partnumber is not satisfiable",
        );
        e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
        e
    };
    let n = usize::try_from(n)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(invalid)?;
    if meta.parts.is_none() {
        return if n == 1 { Ok(None) } else { Err(invalid()) };
    }
    let size = *meta.part_sizes.get(n - 1).ok_or_else(invalid)?;
    let start: u64 = meta.part_sizes[..n - 1].iter().sum();
    Ok(Some(start..start + size))
}

/// GetObject's answer for `meta`: `stream` of `len` bytes (`content_range`
/// for a range), the stored content headers (or the request's `response-*`
/// overrides), Expires and the encryption headers.
pub(crate) fn get_response(
    meta: &ObjectMeta,
    input: &GetObjectInput,
    stream: objseal::aio::ByteStream,
    len: u64,
    content_range: Option<String>,
    headers: Vec<(&'static str, String)>,
) -> S3Response<GetObjectOutput> {
    let stored = StoredHeaders::new(
        meta,
        [
            &input.response_content_type,
            &input.response_content_encoding,
            &input.response_content_disposition,
            &input.response_content_language,
            &input.response_cache_control,
        ],
    );
    let mut resp = S3Response::new(GetObjectOutput {
        body: Some(StreamingBlob::wrap(stream)),
        content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
        content_range,
        accept_ranges: Some("bytes".to_owned()),
        e_tag: Some(ETag::Strong(strip_quotes(&meta.etag))),
        last_modified: Some(timestamp(meta.last_modified_ms)),
        content_type: Some(
            stored
                .content_type
                .unwrap_or_else(|| "binary/octet-stream".to_owned()),
        ),
        content_encoding: stored.content_encoding,
        content_disposition: stored.content_disposition,
        content_language: stored.content_language,
        cache_control: stored.cache_control,
        metadata: Some(meta.user_meta.clone().into_iter().collect()),
        parts_count: meta.parts.map(|p| i32::try_from(p).unwrap_or(i32::MAX)),
        ..Default::default()
    });
    insert_expires(&mut resp.headers, meta);
    add_headers(&mut resp.headers, headers);
    resp
}

/// HeadObject's answer for `meta` (206 with a Content-Range for `part`).
pub(crate) fn head_response(
    meta: &ObjectMeta,
    input: &HeadObjectInput,
    part: Option<std::ops::Range<u64>>,
    headers: Vec<(&'static str, String)>,
) -> S3Response<HeadObjectOutput> {
    let stored = StoredHeaders::new(
        meta,
        [
            &input.response_content_type,
            &input.response_content_encoding,
            &input.response_content_disposition,
            &input.response_content_language,
            &input.response_cache_control,
        ],
    );
    let mut resp = S3Response::new(HeadObjectOutput {
        content_length: Some(
            i64::try_from(part.as_ref().map_or(meta.size, |r| r.end - r.start)).unwrap_or(i64::MAX),
        ),
        content_range: part
            .as_ref()
            .map(|r| objseal::body::content_range(r, meta.size)),
        accept_ranges: Some("bytes".to_owned()),
        e_tag: Some(ETag::Strong(strip_quotes(&meta.etag))),
        last_modified: Some(timestamp(meta.last_modified_ms)),
        content_type: Some(
            stored
                .content_type
                .unwrap_or_else(|| "binary/octet-stream".to_owned()),
        ),
        content_encoding: stored.content_encoding,
        content_disposition: stored.content_disposition,
        content_language: stored.content_language,
        cache_control: stored.cache_control,
        metadata: Some(meta.user_meta.clone().into_iter().collect()),
        parts_count: meta.parts.map(|p| i32::try_from(p).unwrap_or(i32::MAX)),
        ..Default::default()
    });
    insert_expires(&mut resp.headers, meta);
    if part.is_some() {
        resp.status = Some(http::StatusCode::PARTIAL_CONTENT);
    }
    add_headers(&mut resp.headers, headers);
    resp
}

/// S3's precondition checks for GET and HEAD.
pub(crate) fn check_conditions(
    meta: &ObjectMeta,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let etag = strip_quotes(&meta.etag);
    let modified = i64::try_from(meta.last_modified_ms / 1000).unwrap_or(i64::MAX);
    if let Some(c) = if_match {
        if !etag_matches(c, &etag) {
            return Err(s3_error!(PreconditionFailed));
        }
    } else if let Some(t) = if_unmodified_since
        && modified > unix_secs(t)
    {
        return Err(s3_error!(PreconditionFailed));
    }
    if let Some(c) = if_none_match {
        if etag_matches(c, &etag) {
            return Err(s3_error!(NotModified));
        }
    } else if let Some(t) = if_modified_since
        && modified <= unix_secs(t)
    {
        return Err(s3_error!(NotModified));
    }
    Ok(())
}

/// The plaintext length a PUT declares: `x-amz-decoded-content-length`,
/// else `Content-Length` unless the body is `aws-chunked` (its length is
/// then unknown, as for a chunked transfer without a length).
pub(crate) fn declared_len(
    headers: &HeaderMap,
    content_length: Option<i64>,
) -> S3Result<Option<u64>> {
    if let Some(v) = headers.get("x-amz-decoded-content-length") {
        let n = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| s3_error!(InvalidArgument, "invalid x-amz-decoded-content-length"))?;
        return Ok(Some(n));
    }
    let streaming = headers
        .get("x-amz-content-sha256")
        .is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"))
        || headers
            .get(http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim() == "aws-chunked"));
    if streaming {
        return Ok(None);
    }
    Ok(content_length.and_then(|n| u64::try_from(n).ok()))
}

/// What the client sent for a new object besides its body.
#[derive(Default)]
struct NewObject {
    meta: ObjectMeta,
    content_md5: Option<[u8; 16]>,
}

pub(crate) fn parse_content_md5(v: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    let Some(v) = v else { return Ok(None) };
    base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .map(Some)
        .ok_or_else(|| s3_error!(InvalidDigest))
}

/// An object opened for reading, before its body is streamed.
enum Opened {
    Full(sse::ObjectStream<io::Take<std::fs::File>>),
    Range(Box<sse::ObjectRangeReader<std::fs::File>>),
    /// [`Settings::bench_plaintext`]: the stored bytes of the range asked
    /// for (`None`: all of them) and their number.
    Plain(io::Take<std::fs::File>, Option<std::ops::Range<u64>>, u64),
}

impl Gateway {
    /// A gateway over `store`, sealing with `engine`, authenticating `users`.
    pub fn new(store: Store, engine: Arc<Engine>, users: Arc<Users>, settings: Settings) -> Self {
        Gateway {
            inner: Arc::new(Inner {
                store,
                engine,
                users,
                settings,
                bench_envelope: std::sync::OnceLock::new(),
            }),
        }
    }

    fn transport(&self) -> Transport {
        if self.inner.settings.tls || self.inner.settings.allow_sse_c_over_http {
            Transport::Https
        } else {
            Transport::Http
        }
    }

    fn sse_request(&self, headers: &HeaderMap) -> S3Result<SseRequest> {
        SseRequest::from_headers(
            headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
            self.transport(),
        )
        .map_err(convert)
    }

    /// The calling user's name (every request is signed: s3s refuses the
    /// others before they get here).
    fn caller<T>(&self, req: &S3Request<T>) -> S3Result<String> {
        let Some(cred) = &req.credentials else {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        };
        match self.inner.users.lookup(&cred.access_key) {
            Some(u) => Ok(u.user),
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }

    /// The bucket's settings, if `user` owns it.
    async fn owned_bucket(&self, bucket: &str, user: &str) -> S3Result<BucketMeta> {
        if !valid_bucket_name(bucket) {
            return Err(s3_error!(NoSuchBucket));
        }
        let store = self.inner.store.clone();
        let name = bucket.to_owned();
        let meta = blocking(move || store.bucket(&name).map_err(io_err))
            .await?
            .ok_or_else(|| s3_error!(NoSuchBucket))?;
        if meta.owner != user {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        Ok(meta)
    }

    fn engine_for(&self, user: &str) -> Engine {
        self.inner.engine.with_principal(format!("s3:{user}"))
    }

    /// Seals `reader` as object `key` of `bucket` and commits it.
    #[allow(clippy::too_many_arguments)]
    async fn write_object(
        &self,
        user: &str,
        bucket: &str,
        key: &str,
        bucket_meta: &BucketMeta,
        sse: SseRequest,
        len: Option<u64>,
        body: Option<StreamingBlob>,
        new: NewObject,
    ) -> S3Result<(ObjectMeta, Envelope, SseRequest)> {
        let limit = self.inner.settings.max_object_size;
        if len.is_some_and(|n| n > limit) {
            return Err(s3_error!(EntityTooLarge));
        }
        let binding = binding(bucket, key)?;
        let encryption = bucket_meta.encryption();
        encryption.resolve(&sse).map_err(convert)?;
        let engine = self.engine_for(user);
        let dst = self.inner.store.object_path(bucket, key);
        let reader = body::reader(body);
        let gateway = self.clone();
        blocking(move || {
            let mode = encryption.resolve(&sse).map_err(convert)?;
            let seal = mode.seal_mode();
            let dir = dst.parent().map(PathBuf::from).unwrap_or_default();
            create_dir_private(&dir).map_err(io_err)?;
            let staged = objseal::fs::StagedFile::create(&dst).map_err(lib_err)?;
            let file = staged.file();
            (&*file)
                .write_all(&[0u8; HEADER_LEN as usize])
                .map_err(io_err)?;
            (&*file).seek(SeekFrom::Start(HEADER_LEN)).map_err(io_err)?;
            let want_plain_md5 = mode.mode() == Mode::SseS3 || new.content_md5.is_some();
            let client_failed = reader.client_failed.clone();
            let mut input = CountingReader {
                inner: reader,
                n: 0,
                md5: want_plain_md5.then(Md5::new),
                limit,
                too_large: false,
            };
            let out = CountingWriter {
                inner: BufWriter::with_capacity(256 << 10, file),
                n: 0,
                md5: (mode.mode() != Mode::SseS3).then(Md5::new),
            };
            let check = |too_large: bool, copied: io::Result<u64>| {
                if too_large {
                    return Err(s3_error!(EntityTooLarge));
                }
                if client_failed.load(Ordering::Relaxed) {
                    return Err(s3_error!(
                        IncompleteBody,
                        "The request body could not be read."
                    ));
                }
                copied.map_err(|e| lib_err(objseal::Error::from(e)))?;
                Ok(())
            };
            let (envelope, mut out) = if gateway.inner.settings.bench_plaintext {
                // Benchmark baseline: the same path with the body copied
                // instead of sealed.
                let envelope = match gateway.inner.bench_envelope.get() {
                    Some(e) => e.clone(),
                    None => {
                        let (e, _) = engine
                            .seal_writer_detached(&seal, &binding, None, io::sink())
                            .map_err(lib_err)?;
                        gateway.inner.bench_envelope.get_or_init(|| e).clone()
                    }
                };
                let mut out = out;
                let copied = io::copy(&mut input, &mut out);
                check(input.too_large, copied)?;
                (envelope, out)
            } else {
                let (envelope, mut w) = engine
                    .seal_writer_detached(&seal, &binding, len, out)
                    .map_err(lib_err)?;
                let copied = io::copy(&mut input, &mut w);
                check(input.too_large, copied)?;
                (envelope, w.finish().map_err(lib_err)?)
            };
            out.flush().map_err(io_err)?;
            let plain_md5: Option<[u8; 16]> = input.md5.take().map(|h| h.finalize().into());
            if let (Some(want), Some(got)) = (new.content_md5, plain_md5)
                && want != got
            {
                return Err(s3_error!(BadDigest));
            }
            let etag = match (mode.mode(), plain_md5, out.md5.take()) {
                (Mode::SseS3, Some(d), _) => format!("\"{}\"", hex(&d)),
                (_, _, Some(h)) => format!("\"{}\"", hex(&h.finalize())),
                _ => return Err(io_err(io::Error::other("no ETag digest"))),
            };
            let body_len = out.n;
            drop(out);
            let mut meta = new.meta;
            meta.key = binding.key().to_owned();
            meta.size = input.n;
            meta.etag = etag;
            meta.last_modified_ms = now_ms();
            meta.sse = sse_name(mode.mode()).to_owned();
            finish_object_file(file, body_len, &envelope, &meta).map_err(io_err)?;
            staged.commit().map_err(lib_err)?;
            Ok((meta, envelope, sse))
        })
        .await
    }

    /// Opens object `key` of `bucket` (metadata and file).
    async fn open_file(&self, bucket: &str, key: &str) -> S3Result<ObjectFile> {
        let path = self.inner.store.object_path(bucket, key);
        let key = key.to_owned();
        blocking(move || match read_object_file(&path).map_err(io_err)? {
            Some(f) if f.meta.key == key => Ok(f),
            _ => Err(s3_error!(NoSuchKey)),
        })
        .await
    }

    /// Lists `bucket` (all keys with `prefix`), on the blocking pool.
    async fn list(&self, bucket: &str, prefix: &str) -> S3Result<Vec<ObjectMeta>> {
        let store = self.inner.store.clone();
        let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
        blocking(move || store.list_objects(&bucket, &prefix).map_err(io_err)).await
    }
}

/// One page of a listing: objects and common prefixes in key order.
struct Page {
    objects: Vec<ObjectMeta>,
    prefixes: Vec<String>,
    truncated: bool,
    /// The last key or prefix returned (the next marker).
    last: Option<String>,
}

/// S3's listing rules over all keys (sorted) with `prefix`: after `after`,
/// grouped by `delimiter`, at most `max` entries.
fn paginate(
    all: Vec<ObjectMeta>,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> Page {
    let mut page = Page {
        objects: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        last: None,
    };
    let delimiter = delimiter.filter(|d| !d.is_empty());
    if max == 0 {
        return page;
    }
    // A marker that is a common prefix skips every key under it.
    let mut last_prefix: Option<String> = match (after, delimiter) {
        (Some(a), Some(d)) if a.starts_with(prefix) && a.ends_with(d) => Some(a.to_owned()),
        _ => None,
    };
    let mut count = 0usize;
    for obj in all {
        if let Some(a) = after
            && obj.key.as_str() <= a
        {
            continue;
        }
        if let Some(lp) = &last_prefix
            && obj.key.starts_with(lp.as_str())
        {
            continue;
        }
        let Some(rest) = obj.key.strip_prefix(prefix) else {
            continue;
        };
        let group = delimiter.and_then(|d| {
            rest.find(d)
                .map(|i| obj.key[..prefix.len() + i + d.len()].to_owned())
        });
        if count >= max {
            page.truncated = true;
            break;
        }
        count += 1;
        match group {
            Some(g) => {
                page.last = Some(g.clone());
                last_prefix = Some(g.clone());
                page.prefixes.push(g);
            }
            None => {
                page.last = Some(obj.key.clone());
                page.objects.push(obj);
            }
        }
    }
    page
}

pub(crate) fn max_keys(v: Option<i32>) -> usize {
    v.map_or(1000, |n| usize::try_from(n.clamp(0, 1000)).unwrap_or(0))
}

/// URL-encodes a listing value as S3 does for `encoding-type=url`.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn encoder(encoding: Option<&EncodingType>) -> impl Fn(String) -> String + use<> {
    let url = encoding.is_some_and(|e| e.as_str() == EncodingType::URL);
    move |s| if url { url_encode(&s) } else { s }
}

pub(crate) fn listed(meta: &ObjectMeta, enc: &impl Fn(String) -> String) -> Object {
    Object {
        key: Some(enc(meta.key.clone())),
        size: Some(i64::try_from(meta.size).unwrap_or(i64::MAX)),
        e_tag: Some(ETag::Strong(strip_quotes(&meta.etag))),
        last_modified: Some(timestamp(meta.last_modified_ms)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

pub(crate) fn owner(user: &str) -> Owner {
    Owner {
        display_name: Some(user.to_owned()),
        id: Some(user.to_owned()),
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.do_copy_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.do_create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.do_upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.do_upload_part_copy(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.do_complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.do_abort_multipart_upload(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.do_list_parts(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.do_list_multipart_uploads(req).await
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        self.do_get_object_attributes(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let user = self.caller(&req)?;
        let store = self.inner.store.clone();
        let all = blocking(move || store.buckets().map_err(io_err)).await?;
        let buckets = all
            .into_iter()
            .filter(|(_, m)| m.owner == user)
            .map(|(name, m)| Bucket {
                name: Some(name),
                creation_date: Some(timestamp(m.created_ms)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner(&user)),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let user = self.caller(&req)?;
        let name = req.input.bucket.clone();
        if !valid_bucket_name(&name) {
            return Err(s3_error!(InvalidBucketName));
        }
        let meta = BucketMeta {
            owner: user.clone(),
            created_ms: now_ms(),
            sse_algorithm: "AES256".to_owned(),
            kms_key_id: None,
            bucket_key: false,
            sse_c_blocked: !self.inner.settings.allow_sse_c_by_default,
            configured: false,
        };
        let store = self.inner.store.clone();
        let n = name.clone();
        let created = blocking(move || store.create_bucket(&n, &meta).map_err(io_err)).await?;
        if !created {
            let store = self.inner.store.clone();
            let n = name.clone();
            let existing = blocking(move || store.bucket(&n).map_err(io_err)).await?;
            return Err(match existing {
                Some(m) if m.owner == user => s3_error!(BucketAlreadyOwnedByYou),
                _ => s3_error!(BucketAlreadyExists),
            });
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let user = self.caller(&req)?;
        self.owned_bucket(&req.input.bucket, &user).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let user = self.caller(&req)?;
        self.owned_bucket(&req.input.bucket, &user).await?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let user = self.caller(&req)?;
        let name = req.input.bucket.clone();
        self.owned_bucket(&name, &user).await?;
        let store = self.inner.store.clone();
        blocking(move || {
            if !store.bucket_is_empty(&name).map_err(io_err)? {
                return Err(s3_error!(BucketNotEmpty));
            }
            store.delete_bucket(&name).map_err(io_err)
        })
        .await?;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let user = self.caller(&req)?;
        let name = req.input.bucket.clone();
        self.owned_bucket(&name, &user).await?;
        let rules = &req.input.server_side_encryption_configuration.rules;
        let malformed = || {
            s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            )
        };
        if rules.len() != 1 {
            return Err(malformed());
        }
        let rule = &rules[0];
        let Some(default) = &rule.apply_server_side_encryption_by_default else {
            return Err(malformed());
        };
        let algorithm = default.sse_algorithm.as_str().to_owned();
        let kms_key = default.kms_master_key_id.clone().filter(|k| !k.is_empty());
        let bucket_key = rule.bucket_key_enabled.unwrap_or(false);
        objseal::sse::BucketEncryption::from_default_rule(
            &algorithm,
            kms_key.as_deref(),
            bucket_key,
        )
        .map_err(convert)?;
        let store = self.inner.store.clone();
        blocking(move || {
            store
                .update_bucket(&name, |m| {
                    m.sse_algorithm = algorithm;
                    m.kms_key_id = kms_key;
                    m.bucket_key = bucket_key;
                    m.configured = true;
                })
                .map_err(io_err)?
                .ok_or_else(|| s3_error!(NoSuchBucket))
        })
        .await?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let user = self.caller(&req)?;
        let meta = self.owned_bucket(&req.input.bucket, &user).await?;
        let algorithm = if meta.sse_algorithm == "aws:kms" {
            ServerSideEncryption::AWS_KMS
        } else {
            ServerSideEncryption::AES256
        };
        let rule = ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                kms_master_key_id: meta.kms_key_id.clone(),
                sse_algorithm: ServerSideEncryption::from_static(algorithm),
            }),
            bucket_key_enabled: Some(meta.bucket_key),
        };
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
                rules: vec![rule],
            }),
        }))
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        let user = self.caller(&req)?;
        let name = req.input.bucket.clone();
        self.owned_bucket(&name, &user).await?;
        let store = self.inner.store.clone();
        blocking(move || {
            store
                .update_bucket(&name, |m| {
                    m.sse_algorithm = "AES256".to_owned();
                    m.kms_key_id = None;
                    m.bucket_key = false;
                    m.configured = false;
                })
                .map_err(io_err)
        })
        .await?;
        Ok(S3Response::with_status(
            DeleteBucketEncryptionOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let user = self.caller(&req)?;
        let sse = self.sse_request(&req.headers)?;
        let len = declared_len(&req.headers, req.input.content_length)?;
        let input = req.input;
        let bucket_meta = self.owned_bucket(&input.bucket, &user).await?;
        check_user_meta(input.metadata.as_ref())?;
        // Conditional writes: If-None-Match: * (create only), If-Match
        // (replace only that version).
        if input.if_none_match.is_some() || input.if_match.is_some() {
            let path = self.inner.store.object_path(&input.bucket, &input.key);
            let key = input.key.clone();
            let current = blocking(move || match read_object_file(&path).map_err(io_err)? {
                Some(f) if f.meta.key == key => Ok(Some(strip_quotes(&f.meta.etag))),
                _ => Ok(None),
            })
            .await?;
            if let Some(cond) = &input.if_none_match
                && current.as_deref().is_some_and(|e| etag_matches(cond, e))
            {
                return Err(s3_error!(PreconditionFailed));
            }
            if let Some(cond) = &input.if_match {
                match &current {
                    None => return Err(s3_error!(NoSuchKey)),
                    Some(e) if !etag_matches(cond, e) => {
                        return Err(s3_error!(PreconditionFailed));
                    }
                    Some(_) => {}
                }
            }
        }
        let new = NewObject {
            content_md5: parse_content_md5(input.content_md5.as_deref())?,
            meta: ObjectMeta {
                content_type: input.content_type.clone(),
                content_encoding: input
                    .content_encoding
                    .clone()
                    .filter(|e| e.trim() != "aws-chunked"),
                content_disposition: input.content_disposition.clone(),
                content_language: input.content_language.clone(),
                cache_control: input.cache_control.clone(),
                expires: req
                    .headers
                    .get(http::header::EXPIRES)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                user_meta: input
                    .metadata
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                ..Default::default()
            },
        };
        let (meta, env, sse) = self
            .write_object(
                &user,
                &input.bucket,
                &input.key,
                &bucket_meta,
                sse,
                len,
                input.body,
                new,
            )
            .await?;
        let mut resp = S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(strip_quotes(&meta.etag))),
            ..Default::default()
        });
        add_headers(
            &mut resp.headers,
            sse::response_headers(Operation::Put, &env, &sse).map_err(convert)?,
        );
        Ok(resp)
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let user = self.caller(&req)?;
        let sse = self.sse_request(&req.headers)?;
        let range = match req.headers.get(http::header::RANGE) {
            // S3 ignores a Range header it cannot use and sends it all.
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| ByteRange::parse_header(s).ok()),
            None => None,
        };
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let obj = self.open_file(&input.bucket, &input.key).await?;
        check_conditions(
            &obj.meta,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let range = match input.part_number {
            Some(n) => part_range(&obj.meta, n)?.map(ByteRange::from),
            None => range,
        };
        let binding = binding(&input.bucket, &input.key)?;
        let engine = self.engine_for(&user);
        let meta = obj.meta.clone();
        let bench_plaintext = self.inner.settings.bench_plaintext;
        let (opened, env, sse) = blocking(move || {
            let ObjectFile {
                mut file,
                body_start,
                body_len,
                envelope,
                ..
            } = obj;
            let with = sse.open_with();
            let opened = match range {
                _ if bench_plaintext => {
                    let r = range
                        .map(|r| r.satisfiable(body_len))
                        .transpose()
                        .map_err(lib_err)?;
                    let (start, n) = r
                        .as_ref()
                        .map_or((0, body_len), |r| (r.start, r.end - r.start));
                    file.seek(SeekFrom::Start(body_start + start))
                        .map_err(io_err)?;
                    Opened::Plain(file.take(n), r, n)
                }
                Some(r) => Opened::Range(Box::new(
                    sse::open_object_range_reader(
                        &engine, with, &binding, &envelope, file, body_start, body_len, r,
                    )
                    .map_err(lib_err)?,
                )),
                None => {
                    file.seek(SeekFrom::Start(body_start)).map_err(io_err)?;
                    Opened::Full(
                        sse::open_object_reader(
                            &engine,
                            with,
                            &binding,
                            &envelope,
                            file.take(body_len),
                        )
                        .map_err(lib_err)?,
                    )
                }
            };
            Ok((opened, envelope, sse))
        })
        .await?;
        let headers = sse::response_headers(Operation::Get, &env, &sse).map_err(convert)?;
        let (len, content_range, stream) = match opened {
            Opened::Full(r) => (meta.size, None, objseal::aio::read_stream(move || Ok(r))),
            Opened::Plain(r, range, n) => (
                n,
                range.map(|range| objseal::body::content_range(&range, meta.size)),
                objseal::aio::read_stream(move || Ok(r)),
            ),
            Opened::Range(r) => {
                let range = r.range();
                let cr = objseal::body::content_range(&range, r.object_len());
                (
                    range.end - range.start,
                    Some(cr),
                    objseal::aio::read_stream(move || Ok(r)),
                )
            }
        };
        Ok(get_response(
            &meta,
            &input,
            stream,
            len,
            content_range,
            headers,
        ))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let user = self.caller(&req)?;
        let sse = self.sse_request(&req.headers)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let obj = self.open_file(&input.bucket, &input.key).await?;
        check_conditions(
            &obj.meta,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let binding = binding(&input.bucket, &input.key)?;
        let engine = self.engine_for(&user);
        let meta = obj.meta.clone();
        let (env, sse) = blocking(move || {
            let ObjectFile {
                mut file,
                body_start,
                body_len,
                envelope,
                ..
            } = obj;
            if envelope.mode == Mode::SseC || sse.customer_key().is_some() {
                // Checks the customer key (or its absence) as GET would.
                file.seek(SeekFrom::Start(body_start)).map_err(io_err)?;
                sse::open_object_reader(
                    &engine,
                    sse.open_with(),
                    &binding,
                    &envelope,
                    file.take(body_len),
                )
                .map_err(lib_err)?;
            }
            Ok((envelope, sse))
        })
        .await?;
        let headers = sse::response_headers(Operation::Head, &env, &sse).map_err(convert)?;
        let part = match input.part_number {
            Some(n) => part_range(&meta, n)?,
            None => None,
        };
        Ok(head_response(&meta, &input, part, headers))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let user = self.caller(&req)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let path = self.inner.store.object_path(&input.bucket, &input.key);
        blocking(move || remove_object(&path)).await?;
        Ok(S3Response::with_status(
            DeleteObjectOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let user = self.caller(&req)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let store = self.inner.store.clone();
        let bucket = input.bucket.clone();
        let keys: Vec<String> = input.delete.objects.into_iter().map(|o| o.key).collect();
        if keys.len() > 1000 {
            return Err(s3_error!(MalformedXML));
        }
        let (deleted, errors) = blocking(move || {
            let mut deleted = Vec::new();
            let mut errors = Vec::new();
            for key in keys {
                match remove_object(&store.object_path(&bucket, &key)) {
                    Ok(()) => {
                        if !quiet {
                            deleted.push(DeletedObject {
                                key: Some(key),
                                ..Default::default()
                            });
                        }
                    }
                    Err(_) => errors.push(Error {
                        code: Some("InternalError".to_owned()),
                        key: Some(key),
                        message: Some(
                            "We encountered an internal error. Please try again.".to_owned(),
                        ),
                        ..Default::default()
                    }),
                }
            }
            Ok((deleted, errors))
        })
        .await?;
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let user = self.caller(&req)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let all = self.list(&input.bucket, &prefix).await?;
        let max = max_keys(input.max_keys);
        let page = paginate(
            all,
            &prefix,
            input.delimiter.as_deref(),
            input.marker.as_deref().filter(|m| !m.is_empty()),
            max,
        );
        let enc = encoder(input.encoding_type.as_ref());
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            marker: Some(enc(input.marker.unwrap_or_default())),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            is_truncated: Some(page.truncated),
            next_marker: if page.truncated {
                page.last.map(&enc)
            } else {
                None
            },
            contents: Some(page.objects.iter().map(|m| listed(m, &enc)).collect()),
            common_prefixes: Some(
                page.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: input.delimiter.map(&enc),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let user = self.caller(&req)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let all = self.list(&input.bucket, &prefix).await?;
        let max = max_keys(input.max_keys);
        let after = match &input.continuation_token {
            Some(t) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "The continuation token provided is incorrect"
                        )
                    })?,
            ),
            None => input.start_after.clone().filter(|s| !s.is_empty()),
        };
        let page = paginate(
            all,
            &prefix,
            input.delimiter.as_deref(),
            after.as_deref(),
            max,
        );
        let enc = encoder(input.encoding_type.as_ref());
        let fetch_owner = input.fetch_owner.unwrap_or(false);
        let key_count = page.objects.len() + page.prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
            continuation_token: input.continuation_token,
            is_truncated: Some(page.truncated),
            next_continuation_token: if page.truncated {
                page.last
                    .map(|l| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(l))
            } else {
                None
            },
            contents: Some(
                page.objects
                    .iter()
                    .map(|m| {
                        let mut o = listed(m, &enc);
                        if fetch_owner {
                            o.owner = Some(owner(&user));
                        }
                        o
                    })
                    .collect(),
            ),
            common_prefixes: Some(
                page.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: input.delimiter.map(&enc),
            encoding_type: input.encoding_type,
            start_after: input.start_after.map(&enc),
            ..Default::default()
        }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let user = self.caller(&req)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let all = self.list(&input.bucket, &prefix).await?;
        let max = max_keys(input.max_keys);
        let page = paginate(
            all,
            &prefix,
            input.delimiter.as_deref(),
            input.key_marker.as_deref().filter(|m| !m.is_empty()),
            max,
        );
        let enc = encoder(input.encoding_type.as_ref());
        let versions = page
            .objects
            .iter()
            .map(|m| ObjectVersion {
                key: Some(enc(m.key.clone())),
                version_id: Some("null".to_owned()),
                is_latest: Some(true),
                size: Some(i64::try_from(m.size).unwrap_or(i64::MAX)),
                e_tag: Some(ETag::Strong(strip_quotes(&m.etag))),
                last_modified: Some(timestamp(m.last_modified_ms)),
                owner: Some(owner(&user)),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            key_marker: Some(enc(input.key_marker.unwrap_or_default())),
            version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            is_truncated: Some(page.truncated),
            next_key_marker: if page.truncated {
                page.last.map(&enc)
            } else {
                None
            },
            next_version_id_marker: page.truncated.then(|| "null".to_owned()),
            versions: Some(versions),
            common_prefixes: Some(
                page.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: input.delimiter.map(&enc),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

/// Removes an object file; a missing one is fine (S3 answers 204 either way).
fn remove_object(path: &std::path::Path) -> S3Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objs(keys: &[&str]) -> Vec<ObjectMeta> {
        keys.iter()
            .map(|k| ObjectMeta {
                key: (*k).to_owned(),
                ..Default::default()
            })
            .collect()
    }

    fn names(p: &Page) -> (Vec<&str>, Vec<&str>) {
        (
            p.objects.iter().map(|o| o.key.as_str()).collect(),
            p.prefixes.iter().map(String::as_str).collect(),
        )
    }

    #[test]
    fn listing_groups_and_pages_as_s3() {
        let all = ["a/1", "a/2", "b/x/1", "c", "d"];
        let p = paginate(objs(&all), "", Some("/"), None, 1000);
        assert_eq!(names(&p), (vec!["c", "d"], vec!["a/", "b/"]));
        assert!(!p.truncated);
        let p = paginate(objs(&all), "", Some("/"), None, 2);
        assert_eq!(names(&p), (vec![], vec!["a/", "b/"]));
        assert_eq!((p.truncated, p.last.as_deref()), (true, Some("b/")));
        let p = paginate(objs(&all), "", Some("/"), Some("a/"), 1000);
        assert_eq!(names(&p), (vec!["c", "d"], vec!["b/"]));
        let p = paginate(objs(&all[2..]), "b/", Some("/"), None, 1000);
        assert_eq!(names(&p), (vec![], vec!["b/x/"]));
        let p = paginate(objs(&all), "", None, Some("b/x/1"), 1);
        assert_eq!((names(&p).0, p.truncated), (vec!["c"], true));
        let p = paginate(objs(&all), "", None, None, 0);
        assert_eq!((p.objects.len(), p.truncated), (0, false));
        // A multi-byte delimiter and keys: no slicing inside a character.
        let p = paginate(objs(&["é→1", "é→2", "ü"]), "é", Some("→"), None, 10);
        assert_eq!(names(&p), (vec![], vec!["é→"]));
    }

    #[test]
    fn url_encoding_of_listing_values() {
        assert_eq!(url_encode("a b+c/ü%"), "a%20b%2Bc/%C3%BC%25");
    }

    #[test]
    fn declared_length_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(declared_len(&h, Some(5)).unwrap(), Some(5));
        assert_eq!(declared_len(&h, None).unwrap(), None);
        h.insert(
            "x-amz-content-sha256",
            HeaderValue::from_static("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        );
        assert_eq!(declared_len(&h, Some(0)).unwrap(), None);
        h.insert(
            "x-amz-decoded-content-length",
            HeaderValue::from_static("42"),
        );
        assert_eq!(declared_len(&h, Some(0)).unwrap(), Some(42));
        h.insert(
            "x-amz-decoded-content-length",
            HeaderValue::from_static("-1"),
        );
        assert!(declared_len(&h, Some(0)).is_err());
    }
}
