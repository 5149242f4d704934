//! Upstream mode: the S3 service stores every object sealed in another
//! S3-compatible store (the upstream) instead of the local data directory.
//!
//! The gateway keeps no object state of its own, so any number of
//! instances can serve one upstream: what an object needs to be read
//! travels with it (`docs/FORMAT.md` §9):
//!
//! - a single-part object is stored at the client's key as its sealed
//!   body followed by a trailer (the client's ETag digest, the plaintext
//!   length and a copy of the body header); its envelope is upstream
//!   metadata (`x-amz-meta-objseal-envelope`), so a copy onto itself that
//!   only rewraps the key or changes metadata is the upstream's own
//!   server-side copy;
//! - a multipart object is the upstream's multipart object of the sealed
//!   parts; its completed envelope (part list and MAC) is in a manifest
//!   under `.objseal/manifests/`, written before the upstream upload
//!   completes and named by the object's metadata;
//! - bucket settings and uploads in progress are records under
//!   `.objseal/`, never listed to clients.
//!
//! Client metadata and content headers pass through as the upstream
//! object's own (S3 does not encrypt metadata either).

pub mod client;
mod handlers;
pub mod io;
pub mod layout;
pub mod xml;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use objseal::body::HEADER_LEN;
use objseal::sse::{SseRequest, Transport};
use objseal::{Engine, Envelope};
use s3s::dto::{Timestamp, TimestampFormat};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result, s3_error};

use crate::s3::{Settings, convert, lib_err};
use crate::store::{BucketMeta, ObjectMeta};
use crate::users::Users;
use client::{Client, UpstreamError};
use layout::{
    BUCKET_RECORD, MAX_RECORD, META_ENVELOPE, META_MANIFEST, Manifest, TRAILER_LEN, Trailer,
    UploadRecord,
};

/// How long a bucket record read from the upstream is trusted before it is
/// read again (so a change made through another instance is seen within it).
pub const BUCKET_TTL: Duration = Duration::from_secs(2);
/// Entries kept in each in-memory cache before it is emptied.
const CACHE_MAX: usize = 100_000;

/// (bucket, key, upstream ETag) of a listed object.
type ListedKey = (String, String, String);

/// The S3 service over an upstream store.
#[derive(Clone)]
pub struct UpstreamGateway {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    engine: Arc<Engine>,
    users: Arc<Users>,
    settings: Settings,
    region: String,
    buckets: Mutex<HashMap<String, (Instant, Option<BucketMeta>)>>,
    /// Manifests by (bucket, id): written once, never changed.
    manifests: Mutex<HashMap<(String, String), Arc<Manifest>>>,
    /// Upload records by (bucket, upload id).
    uploads: Mutex<HashMap<(String, String), Arc<UploadRecord>>>,
    /// The client view of listed objects by (bucket, key, upstream ETag).
    listed: Mutex<HashMap<ListedKey, (String, u64)>>,
}

impl core::fmt::Debug for UpstreamGateway {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UpstreamGateway")
            .field("upstream", &self.inner.client.endpoint())
            .finish_non_exhaustive()
    }
}

/// An object as resolved from the upstream.
#[derive(Clone)]
pub(crate) struct Info {
    /// The client's view.
    pub meta: ObjectMeta,
    /// The envelope (completed, for a multipart object).
    pub envelope: Envelope,
    /// The sealed body's length (without the trailer).
    pub body_len: u64,
    /// The upstream ETag (quoted) the object was read at.
    pub upstream_etag: String,
    /// Body bytes known without reading the body: part headers.
    pub known: BTreeMap<u64, Vec<u8>>,
    /// The manifest id of a multipart object.
    pub manifest: Option<String>,
}

fn put_cache<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, k: K, v: V) {
    if let Ok(mut m) = map.lock() {
        if m.len() >= CACHE_MAX {
            m.clear();
        }
        m.insert(k, v);
    }
}

/// The s3s error for an upstream failure: S3 error codes pass through,
/// an unreachable upstream is 503.
pub(crate) fn up_err(e: UpstreamError) -> S3Error {
    if e.status == 0 || e.status >= 500 {
        eprintln!("objseal serve: upstream: {e}");
    }
    if e.status == 0 {
        let mut out = S3Error::with_message(
            S3ErrorCode::ServiceUnavailable,
            "The upstream store could not be reached. Please try again.",
        );
        out.set_status_code(http::StatusCode::SERVICE_UNAVAILABLE);
        return out;
    }
    let code = S3ErrorCode::from_bytes(e.code.as_bytes())
        .unwrap_or_else(|| S3ErrorCode::Custom(e.code.clone().into()));
    let mut out = S3Error::with_message(code, e.message);
    if let Ok(s) = http::StatusCode::from_u16(e.status) {
        out.set_status_code(s);
    }
    out
}

fn not_objseal() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::InvalidObjectState,
        "The object was not stored through objseal (no envelope in the upstream object)",
    );
    e.set_status_code(http::StatusCode::FORBIDDEN);
    e
}

fn damaged(what: &str) -> S3Error {
    eprintln!("objseal serve: upstream object damaged: {what}");
    s3_error!(
        InternalError,
        "We encountered an internal error. Please try again."
    )
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The client's view of an upstream object's headers (content headers,
/// user metadata without objseal's, modification time).
fn meta_from_headers(key: &str, h: &HeaderMap) -> ObjectMeta {
    let s = |n: &str| header_str(h, n).map(str::to_owned);
    let mut user_meta = BTreeMap::new();
    for (name, value) in h {
        if let Some(k) = name.as_str().strip_prefix("x-amz-meta-")
            && !k.starts_with(layout::RESERVED_META_PREFIX)
            && let Ok(v) = value.to_str()
        {
            user_meta.insert(k.to_owned(), v.to_owned());
        }
    }
    let last_modified_ms = header_str(h, "last-modified")
        .and_then(|v| Timestamp::parse(TimestampFormat::HttpDate, v).ok())
        .map_or(0, |t| {
            let t = time::OffsetDateTime::from(t);
            u64::try_from(t.unix_timestamp()).unwrap_or(0) * 1000
        });
    ObjectMeta {
        key: key.to_owned(),
        content_type: s("content-type"),
        content_encoding: s("content-encoding"),
        content_disposition: s("content-disposition"),
        content_language: s("content-language"),
        cache_control: s("cache-control"),
        expires: s("expires"),
        user_meta,
        last_modified_ms,
        ..Default::default()
    }
}

/// The upstream request headers that store `meta` (content headers and
/// user metadata) plus objseal's metadata `extra`.
pub(crate) fn meta_headers(meta: &ObjectMeta, extra: &[(&str, &str)]) -> S3Result<HeaderMap> {
    let mut h = HeaderMap::new();
    let bad = |what: &str| s3_error!(InvalidArgument, "invalid header value for {}", what);
    let mut put = |name: &str, value: &str| -> S3Result<()> {
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad(name))?;
        let v = HeaderValue::from_str(value).map_err(|_| bad(name))?;
        h.insert(n, v);
        Ok(())
    };
    for (name, v) in [
        ("content-type", &meta.content_type),
        ("content-encoding", &meta.content_encoding),
        ("content-disposition", &meta.content_disposition),
        ("content-language", &meta.content_language),
        ("cache-control", &meta.cache_control),
        ("expires", &meta.expires),
    ] {
        if let Some(v) = v {
            put(name, v)?;
        }
    }
    for (k, v) in &meta.user_meta {
        if k.to_ascii_lowercase()
            .starts_with(layout::RESERVED_META_PREFIX)
        {
            return Err(s3_error!(
                InvalidArgument,
                "metadata names starting with objseal- are reserved"
            ));
        }
        put(&format!("x-amz-meta-{k}"), v)?;
    }
    for (k, v) in extra {
        put(&format!("x-amz-meta-{k}"), v)?;
    }
    Ok(h)
}

/// The total length of an upstream object from a range answer.
fn total_len(status: u16, h: &HeaderMap, got: usize) -> Option<u64> {
    if status == 206 {
        let cr = header_str(h, "content-range")?;
        cr.rsplit_once('/')?.1.trim().parse().ok()
    } else {
        Some(got as u64)
    }
}

/// Where each part's body starts, from a completed envelope.
pub(crate) fn part_offsets(env: &Envelope) -> S3Result<Vec<(u32, u64, u64)>> {
    let list = env.parts.as_ref().ok_or_else(|| damaged("no part list"))?;
    let mut out = Vec::with_capacity(list.parts.len());
    let mut at = 0u64;
    for p in &list.parts {
        let sealed = objseal::body::sealed_len(p.plaintext_len).map_err(lib_err)?;
        out.push((p.number, at, p.plaintext_len));
        at += sealed;
    }
    Ok(out)
}

impl UpstreamGateway {
    /// A gateway storing in the upstream of `client`, sealing with
    /// `engine`, authenticating `users`; `region` is what GetBucketLocation
    /// answers.
    pub fn new(
        client: Client,
        engine: Arc<Engine>,
        users: Arc<Users>,
        settings: Settings,
        region: String,
    ) -> Self {
        UpstreamGateway {
            inner: Arc::new(Inner {
                client,
                engine,
                users,
                settings,
                region,
                buckets: Mutex::new(HashMap::new()),
                manifests: Mutex::new(HashMap::new()),
                uploads: Mutex::new(HashMap::new()),
                listed: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    fn transport(&self) -> Transport {
        if self.inner.settings.tls || self.inner.settings.allow_sse_c_over_http {
            Transport::Https
        } else {
            Transport::Http
        }
    }

    pub(crate) fn sse_request(&self, headers: &HeaderMap) -> S3Result<SseRequest> {
        SseRequest::from_headers(
            headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
            self.transport(),
        )
        .map_err(convert)
    }

    pub(crate) fn caller<T>(&self, req: &S3Request<T>) -> S3Result<String> {
        let Some(cred) = &req.credentials else {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        };
        match self.inner.users.lookup(&cred.access_key) {
            Some(u) => Ok(u.user),
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }

    pub(crate) fn engine_for(&self, user: &str) -> Engine {
        self.inner.engine.with_principal(format!("s3:{user}"))
    }

    /// A bucket's record, read at most [`BUCKET_TTL`] ago.
    pub(crate) async fn bucket_meta(&self, bucket: &str) -> S3Result<Option<BucketMeta>> {
        if let Ok(m) = self.inner.buckets.lock()
            && let Some((at, meta)) = m.get(bucket)
            && at.elapsed() < BUCKET_TTL
        {
            return Ok(meta.clone());
        }
        let meta = match self
            .inner
            .client
            .get_small(bucket, BUCKET_RECORD, MAX_RECORD)
            .await
        {
            Ok((_, bytes)) => Some(
                serde_json::from_slice::<BucketMeta>(&bytes)
                    .map_err(|e| damaged(&format!("{bucket}/{BUCKET_RECORD}: {e}")))?,
            ),
            Err(e) if e.code == "NoSuchKey" || e.code == "NoSuchBucket" => None,
            Err(e) => return Err(up_err(e)),
        };
        put_cache(
            &self.inner.buckets,
            bucket.to_owned(),
            (Instant::now(), meta.clone()),
        );
        Ok(meta)
    }

    pub(crate) fn forget_bucket(&self, bucket: &str) {
        if let Ok(mut m) = self.inner.buckets.lock() {
            m.remove(bucket);
        }
    }

    /// Writes a bucket's record.
    pub(crate) async fn save_bucket(&self, bucket: &str, meta: &BucketMeta) -> S3Result<()> {
        let body = serde_json::to_vec(meta).map_err(|e| damaged(&e.to_string()))?;
        self.inner
            .client
            .put_small(bucket, BUCKET_RECORD, HeaderMap::new(), body.into())
            .await
            .map_err(up_err)?;
        put_cache(
            &self.inner.buckets,
            bucket.to_owned(),
            (Instant::now(), Some(meta.clone())),
        );
        Ok(())
    }

    /// The bucket's settings, if `user` owns it.
    pub(crate) async fn owned_bucket(&self, bucket: &str, user: &str) -> S3Result<BucketMeta> {
        if !crate::store::valid_bucket_name(bucket) {
            return Err(s3_error!(NoSuchBucket));
        }
        let meta = self
            .bucket_meta(bucket)
            .await?
            .ok_or_else(|| s3_error!(NoSuchBucket))?;
        if meta.owner != user {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        Ok(meta)
    }

    /// A manifest (cached: manifests never change).
    async fn manifest(&self, bucket: &str, id: &str) -> S3Result<Arc<Manifest>> {
        let k = (bucket.to_owned(), id.to_owned());
        if let Some(m) = self
            .inner
            .manifests
            .lock()
            .ok()
            .and_then(|m| m.get(&k).cloned())
        {
            return Ok(m);
        }
        if !id.bytes().all(|b| b.is_ascii_hexdigit()) || id.len() > 64 {
            return Err(damaged("manifest id"));
        }
        let (_, bytes) = self
            .inner
            .client
            .get_small(bucket, &layout::manifest_key(id), MAX_RECORD)
            .await
            .map_err(|e| {
                if e.code == "NoSuchKey" {
                    damaged(&format!("{bucket}: manifest {id} is missing"))
                } else {
                    up_err(e)
                }
            })?;
        let m: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| damaged(&format!("manifest {id}: {e}")))?;
        let m = Arc::new(m);
        put_cache(&self.inner.manifests, k, m.clone());
        Ok(m)
    }

    /// Resolves `bucket/key`: one upstream GET of the object's last bytes
    /// (its headers and trailer), and its manifest if it is multipart.
    pub(crate) async fn resolve(&self, bucket: &str, key: &str) -> S3Result<Info> {
        if layout::is_hidden(key) {
            return Err(s3_error!(NoSuchKey));
        }
        let (status, headers, tail) = self
            .inner
            .client
            .get_tail(bucket, key, TRAILER_LEN)
            .await
            .map_err(up_err)?;
        let total = total_len(status, &headers, tail.len()).ok_or_else(|| damaged("length"))?;
        let upstream_etag = header_str(&headers, "etag").unwrap_or_default().to_owned();
        let mut meta = meta_from_headers(key, &headers);
        let manifest_id = header_str(&headers, &format!("x-amz-meta-{META_MANIFEST}"));
        if let Some(id) = manifest_id {
            let m = self.manifest(bucket, id).await?;
            let envelope = Envelope::from_base64(&m.envelope).map_err(lib_err)?;
            let offsets = part_offsets(&envelope)?;
            if offsets.len() != m.headers.len() {
                return Err(damaged("manifest headers"));
            }
            let mut known = BTreeMap::new();
            for ((_, at, _), h) in offsets.iter().zip(&m.headers) {
                let h = base64::engine::general_purpose::STANDARD
                    .decode(h)
                    .ok()
                    .filter(|h| h.len() == HEADER_LEN)
                    .ok_or_else(|| damaged("manifest header"))?;
                known.insert(*at, h);
            }
            meta.size = envelope.plaintext_len;
            meta.etag = m.etag.clone();
            meta.parts = Some(u32::try_from(offsets.len()).unwrap_or(u32::MAX));
            meta.part_sizes = offsets.iter().map(|(_, _, n)| *n).collect();
            meta.sse = crate::s3::sse_name(envelope.mode).to_owned();
            return Ok(Info {
                meta,
                envelope,
                body_len: total,
                upstream_etag,
                known,
                manifest: Some(id.to_owned()),
            });
        }
        let env_b64 =
            header_str(&headers, &format!("x-amz-meta-{META_ENVELOPE}")).ok_or_else(not_objseal)?;
        let envelope = Envelope::from_base64(env_b64).map_err(lib_err)?;
        let trailer = Trailer::decode(&tail).ok_or_else(|| damaged("trailer"))?;
        let body_len = total
            .checked_sub(TRAILER_LEN)
            .ok_or_else(|| damaged("shorter than its trailer"))?;
        if trailer.plaintext_len != envelope.plaintext_len
            || objseal::body::sealed_len(trailer.plaintext_len).ok() != Some(body_len)
        {
            return Err(damaged("trailer length"));
        }
        meta.size = trailer.plaintext_len;
        meta.etag = format!("\"{}\"", crate::body::hex(&trailer.etag));
        meta.sse = crate::s3::sse_name(envelope.mode).to_owned();
        let mut known = BTreeMap::new();
        known.insert(0, trailer.header.to_vec());
        Ok(Info {
            meta,
            envelope,
            body_len,
            upstream_etag,
            known,
            manifest: None,
        })
    }

    /// The client's (ETag, size) of a listed object, cached by its upstream ETag.
    pub(crate) async fn listed_view(
        &self,
        bucket: &str,
        key: &str,
        upstream_etag: &str,
    ) -> S3Result<(String, u64)> {
        let k = (bucket.to_owned(), key.to_owned(), upstream_etag.to_owned());
        if let Some(v) = self
            .inner
            .listed
            .lock()
            .ok()
            .and_then(|m| m.get(&k).cloned())
        {
            return Ok(v);
        }
        let info = self.resolve(bucket, key).await?;
        let v = (info.meta.etag.clone(), info.meta.size);
        let k = (
            bucket.to_owned(),
            key.to_owned(),
            info.upstream_etag.clone(),
        );
        put_cache(&self.inner.listed, k, v.clone());
        Ok(v)
    }

    /// Remembers the client's view of an object just written.
    pub(crate) fn remember(
        &self,
        bucket: &str,
        key: &str,
        upstream_etag: &str,
        etag: &str,
        size: u64,
    ) {
        put_cache(
            &self.inner.listed,
            (bucket.to_owned(), key.to_owned(), upstream_etag.to_owned()),
            (etag.to_owned(), size),
        );
    }

    /// An upload in progress (cached: records never change).
    pub(crate) async fn upload_record(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> S3Result<Arc<UploadRecord>> {
        let k = (bucket.to_owned(), upload_id.to_owned());
        let cached = self
            .inner
            .uploads
            .lock()
            .ok()
            .and_then(|m| m.get(&k).cloned());
        let rec = match cached {
            Some(r) => r,
            None => {
                let (_, bytes) = self
                    .inner
                    .client
                    .get_small(bucket, &layout::upload_key(upload_id), MAX_RECORD)
                    .await
                    .map_err(|e| {
                        if e.code == "NoSuchKey" {
                            s3_error!(NoSuchUpload)
                        } else {
                            up_err(e)
                        }
                    })?;
                let r: UploadRecord = serde_json::from_slice(&bytes)
                    .map_err(|e| damaged(&format!("upload record: {e}")))?;
                let r = Arc::new(r);
                put_cache(&self.inner.uploads, k, r.clone());
                r
            }
        };
        if rec.key != key {
            return Err(s3_error!(NoSuchUpload));
        }
        Ok(rec)
    }

    pub(crate) fn forget_upload(&self, bucket: &str, upload_id: &str) {
        if let Ok(mut m) = self.inner.uploads.lock() {
            m.remove(&(bucket.to_owned(), upload_id.to_owned()));
        }
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub(crate) fn region(&self) -> &str {
        &self.inner.region
    }
}
