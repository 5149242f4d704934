//! The [`s3s::S3`] operations of upstream mode.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use futures::StreamExt;
use http::HeaderMap;
use md5::{Digest, Md5};
use objseal::body::{ByteRange, HEADER_LEN};
use objseal::sse::{self, CopyOptions, Operation, SseRequest};
use objseal::{Envelope, Mode};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use tokio::runtime::Handle;

use super::io::{ChannelWriter, StreamReader, UpstreamSource};
use super::layout::{
    self, HIDDEN_PREFIX, META_ENVELOPE, META_MANIFEST, Manifest, TRAILER_LEN, Trailer, UploadRecord,
};
use super::{Info, UpstreamGateway, meta_headers, up_err};
use crate::body::{self as gbody, CountingReader, hex};
use crate::s3::{
    add_headers, binding, blocking, check_conditions, check_user_meta, convert, declared_len,
    encoder, get_response, head_response, io_err, lib_err, max_keys, owner, parse_content_md5,
    part_number, part_range, requested_parts, strip_quotes, timestamp,
};
use crate::store::{BucketMeta, ObjectMeta, now_ms, random_hex, valid_bucket_name};

/// S3's smallest part but the last.
const MIN_PART_SIZE: u64 = 5 << 20;

/// What the sealed bytes pass through on their way upstream: counted,
/// hashed when the ETag is of the stored bytes, the header kept.
struct Outgoing {
    inner: ChannelWriter,
    n: u64,
    md5: Option<Md5>,
    header: [u8; HEADER_LEN],
}

impl Write for Outgoing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let done = &buf[..n];
        if let Some(room) = self.header.get_mut(self.n as usize..) {
            let k = room.len().min(done.len());
            room[..k].copy_from_slice(&done[..k]);
        }
        if let Some(h) = &mut self.md5 {
            h.update(done);
        }
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn missing_length() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::MissingContentLength,
        "You must provide the Content-Length HTTP header.",
    );
    e.set_status_code(http::StatusCode::LENGTH_REQUIRED);
    e
}

fn new_meta(
    content_type: &Option<String>,
    content_encoding: &Option<String>,
    content_disposition: &Option<String>,
    content_language: &Option<String>,
    cache_control: &Option<String>,
    expires: Option<String>,
    metadata: &Option<Metadata>,
) -> ObjectMeta {
    ObjectMeta {
        content_type: content_type.clone(),
        content_encoding: content_encoding
            .clone()
            .filter(|e| e.trim() != "aws-chunked"),
        content_disposition: content_disposition.clone(),
        content_language: content_language.clone(),
        cache_control: cache_control.clone(),
        expires,
        user_meta: metadata.clone().unwrap_or_default().into_iter().collect(),
        ..Default::default()
    }
}

fn check_reserved(meta: Option<&Metadata>) -> S3Result<()> {
    if meta.into_iter().flatten().any(|(k, _)| {
        k.to_ascii_lowercase()
            .starts_with(layout::RESERVED_META_PREFIX)
    }) {
        return Err(s3_error!(
            InvalidArgument,
            "metadata names starting with objseal- are reserved"
        ));
    }
    Ok(())
}

/// The end of the sealed bytes that hold plaintext `..end` of a
/// single-part object.
fn sealed_end(end: u64, body_len: u64) -> u64 {
    let chunk = objseal::body::CHUNK_LEN as u64;
    let chunks = end.div_ceil(chunk).max(1);
    objseal::body::sealed_len(chunks * chunk).map_or(body_len, |n| n.min(body_len))
}

/// A part on its way to the upstream upload.
struct OutgoingPart {
    handle: Handle,
    client: super::client::Client,
    bucket: String,
    key: String,
    upload_id: String,
    number: u32,
    len: u64,
}

impl OutgoingPart {
    /// Seals `len` bytes of `input` as the part and uploads it (on the
    /// blocking pool); returns the part's client ETag. A short, long or
    /// failed body, or a Content-MD5 that differs, fails the upstream
    /// upload too.
    fn send(
        self,
        sealer: &sse::PartSealer,
        input: Source,
        client_failed: Option<Arc<AtomicBool>>,
        content_md5: Option<[u8; 16]>,
        limit: u64,
    ) -> S3Result<String> {
        let OutgoingPart {
            handle,
            client,
            bucket,
            key,
            upload_id,
            number,
            len,
        } = self;
        let sealed = objseal::body::sealed_len(len).map_err(lib_err)?;
        let (chan, stream) = ChannelWriter::new();
        let up = handle.spawn(async move {
            client
                .upload_part(&bucket, &key, &upload_id, number, stream, sealed)
                .await
        });
        let result: S3Result<sse::WrittenPart<ChannelWriter>> = (|| {
            let mut input = CountingReader {
                inner: input,
                n: 0,
                md5: content_md5.map(|_| Md5::new()),
                limit,
                too_large: false,
            };
            let mut w = sealer.writer_sized(number, len, chan).map_err(convert)?;
            let copied = io::copy(&mut input, &mut w);
            if input.too_large {
                return Err(s3_error!(EntityTooLarge));
            }
            if client_failed
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Relaxed))
            {
                return Err(s3_error!(
                    IncompleteBody,
                    "The request body could not be read."
                ));
            }
            copied.map_err(|e| lib_err(objseal::Error::from(e)))?;
            if let (Some(want), Some(h)) = (content_md5, input.md5.take()) {
                let got: [u8; 16] = h.finalize().into();
                if want != got {
                    return Err(s3_error!(BadDigest));
                }
            }
            w.finish().map_err(convert)
        })();
        let written = match result {
            Ok(p) => p,
            Err(e) => {
                return Err(match handle.block_on(up) {
                    Ok(Err(ue)) if ue.status != 0 => up_err(ue),
                    _ => e,
                });
            }
        };
        let sent = written.inner.finish();
        let up_etag = handle
            .block_on(up)
            .map_err(|e| io_err(io::Error::other(e.to_string())))?
            .map_err(up_err)?;
        sent.map_err(io_err)?;
        Ok(layout::part_etag(&up_etag, &written.record.header, len))
    }
}

/// A page of a listing as the client sees it.
#[derive(Default)]
struct ListedPage {
    objects: Vec<Object>,
    prefixes: Vec<String>,
    truncated: bool,
    next_token: Option<String>,
    last_scanned: Option<String>,
}

/// A plaintext source for [`UpstreamGateway::store_object`].
type Source = Box<dyn Read + Send>;

impl UpstreamGateway {
    /// Seals `len` bytes of `input` as `bucket/key` and stores it upstream
    /// in one PUT: body, then trailer; the envelope and `meta` as metadata.
    /// Fails, storing nothing, when the body is short, long, or its
    /// Content-MD5 differs.
    #[allow(clippy::too_many_arguments)]
    async fn store_object(
        &self,
        user: &str,
        bucket: &str,
        key: &str,
        bucket_meta: &BucketMeta,
        sse: SseRequest,
        len: u64,
        input: Source,
        client_failed: Option<Arc<AtomicBool>>,
        content_md5: Option<[u8; 16]>,
        mut meta: ObjectMeta,
        conditions: HeaderMap,
    ) -> S3Result<(ObjectMeta, Envelope, SseRequest)> {
        let limit = self.settings().max_object_size;
        if len > limit {
            return Err(s3_error!(EntityTooLarge));
        }
        if layout::is_hidden(key) {
            return Err(s3_error!(
                InvalidArgument,
                "keys under .objseal/ are reserved by the gateway"
            ));
        }
        let binding = binding(bucket, key)?;
        let encryption = bucket_meta.encryption();
        encryption.resolve(&sse).map_err(convert)?;
        meta_headers(&meta, &[])?;
        let engine = self.engine_for(user);
        let client = self.client().clone();
        let handle = Handle::current();
        let (bucket_s, key_s) = (bucket.to_owned(), key.to_owned());
        let (meta, envelope, sse, upstream_etag) = blocking(move || {
            let mode = encryption.resolve(&sse).map_err(convert)?;
            let (chan, stream) = ChannelWriter::new();
            let out = Outgoing {
                inner: chan,
                n: 0,
                md5: (mode.mode() != Mode::SseS3).then(Md5::new),
                header: [0; HEADER_LEN],
            };
            let (envelope, w) = engine
                .seal_writer_detached(&mode.seal_mode(), &binding, Some(len), out)
                .map_err(lib_err)?;
            let body_len = objseal::body::sealed_len(len).map_err(lib_err)?;
            let env_b64 = envelope.to_base64().map_err(lib_err)?;
            let mut headers = meta_headers(&meta, &[(META_ENVELOPE, &env_b64)])?;
            headers.extend(conditions);
            let up = {
                let (b, k) = (bucket_s.clone(), key_s.clone());
                handle.spawn(async move {
                    client
                        .put_object(&b, &k, headers, stream, body_len + TRAILER_LEN)
                        .await
                })
            };
            let mut w = w;
            let sent: S3Result<(Outgoing, [u8; 16])> = (|| {
                let want_md5 = mode.mode() == Mode::SseS3 || content_md5.is_some();
                let mut input = CountingReader {
                    inner: input,
                    n: 0,
                    md5: want_md5.then(Md5::new),
                    limit,
                    too_large: false,
                };
                let copied = io::copy(&mut input, &mut w);
                if input.too_large {
                    return Err(s3_error!(EntityTooLarge));
                }
                if client_failed
                    .as_ref()
                    .is_some_and(|f| f.load(Ordering::Relaxed))
                {
                    return Err(s3_error!(
                        IncompleteBody,
                        "The request body could not be read."
                    ));
                }
                copied.map_err(|e| lib_err(objseal::Error::from(e)))?;
                let mut out = w.finish().map_err(lib_err)?;
                let plain_md5: Option<[u8; 16]> = input.md5.take().map(|h| h.finalize().into());
                if let (Some(want), Some(got)) = (content_md5, plain_md5)
                    && want != got
                {
                    return Err(s3_error!(BadDigest));
                }
                let digest: [u8; 16] = match (mode.mode(), plain_md5, out.md5.take()) {
                    (Mode::SseS3, Some(d), _) => d,
                    (_, _, Some(h)) => h.finalize().into(),
                    _ => return Err(io_err(io::Error::other("no ETag digest"))),
                };
                Ok((out, digest))
            })();
            let (mut out, digest) = match sent {
                Ok(v) => v,
                Err(e) => {
                    // The writer is gone, so the upload fails; wait for it.
                    // An answer of the upstream (not the cut we caused) is
                    // what went wrong first.
                    return Err(match handle.block_on(up) {
                        Ok(Err(ue)) if ue.status != 0 => up_err(ue),
                        _ => e,
                    });
                }
            };
            let trailer = Trailer {
                etag: digest,
                plaintext_len: len,
                header: out.header,
            };
            let sent = out
                .inner
                .write_all(&trailer.encode())
                .and_then(|()| out.inner.finish());
            let result = handle
                .block_on(up)
                .map_err(|e| io_err(io::Error::other(e.to_string())))?;
            let resp = result.map_err(up_err)?;
            sent.map_err(io_err)?;
            let upstream_etag = resp
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            meta.key = key_s;
            meta.size = len;
            meta.etag = format!("\"{}\"", hex(&digest));
            meta.last_modified_ms = now_ms();
            meta.sse = crate::s3::sse_name(mode.mode()).to_owned();
            Ok((meta, envelope, sse, upstream_etag))
        })
        .await?;
        self.remember(bucket, key, &upstream_etag, &meta.etag, meta.size);
        Ok((meta, envelope, sse))
    }

    /// A reader of the whole plaintext of `info` (one upstream GET).
    fn open_full(
        &self,
        engine: &objseal::Engine,
        with: objseal::OpenWith<'_>,
        bucket: &str,
        key: &str,
        info: &Info,
    ) -> S3Result<sse::ObjectStream<StreamReader>> {
        let handle = Handle::current();
        let mut h = HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&info.upstream_etag) {
            h.insert(http::header::IF_MATCH, v);
        }
        let client = self.client().clone();
        let end = info.body_len.saturating_sub(1);
        let (b, k) = (bucket.to_owned(), key.to_owned());
        let resp = handle
            .block_on(async move { client.get_object(&b, &k, Some((0, end)), h).await })
            .map_err(up_err)?;
        let reader = StreamReader::new(handle, resp.body);
        let binding = binding(bucket, key)?;
        sse::open_object_reader(engine, with, &binding, &info.envelope, reader).map_err(lib_err)
    }

    /// A reader of `range` of the plaintext of `info`: only the chunks it
    /// needs are fetched.
    fn open_range(
        &self,
        engine: &objseal::Engine,
        with: objseal::OpenWith<'_>,
        bucket: &str,
        key: &str,
        info: Info,
        range: ByteRange,
    ) -> S3Result<sse::ObjectRangeReader<UpstreamSource>> {
        let mut src = UpstreamSource::new(
            Handle::current(),
            self.client().clone(),
            bucket,
            key,
            &info.upstream_etag,
            info.body_len,
            info.known,
        );
        // GETs ask for no more than the chunks the range ends in.
        if let Ok(r) = range.satisfiable(info.envelope.plaintext_len)
            && r.end > r.start
        {
            if info.envelope.parts.is_none() {
                src.limit_to(sealed_end(r.end, info.body_len));
            } else {
                let mut plain = 0u64;
                for (_, sealed_at, len) in super::part_offsets(&info.envelope)? {
                    if r.end <= plain + len {
                        let part_sealed = objseal::body::sealed_len(len).map_err(lib_err)?;
                        src.limit_to(sealed_at + sealed_end(r.end - plain, part_sealed));
                        break;
                    }
                    plain += len;
                }
            }
        }
        let binding = binding(bucket, key)?;
        sse::open_object_range_reader(
            engine,
            with,
            &binding,
            &info.envelope,
            src,
            0,
            info.body_len,
            range,
        )
        .map_err(lib_err)
    }

    /// Deletes `key` and, for a multipart object, its manifest.
    async fn remove(&self, bucket: &str, key: &str) -> S3Result<()> {
        if layout::is_hidden(key) {
            return Ok(());
        }
        let manifest = match self.client().head_object(bucket, key).await {
            Ok(h) => h
                .get(format!("x-amz-meta-{META_MANIFEST}"))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            Err(e) if e.code == "NoSuchKey" || e.status == 404 => None,
            Err(e) => return Err(up_err(e)),
        };
        self.client()
            .delete_object(bucket, key)
            .await
            .map_err(up_err)?;
        if let Some(id) = manifest.filter(|id| id.bytes().all(|b| b.is_ascii_hexdigit())) {
            let _ = self
                .client()
                .delete_object(bucket, &layout::manifest_key(&id))
                .await;
        }
        Ok(())
    }

    /// One page of the upstream listing, hidden records left out, each
    /// object with the client's ETag and size. Upstream pages holding only
    /// hidden records are skipped (the `.objseal/` block is jumped over), so
    /// a truncated page is never empty unless the upstream kept answering
    /// empty pages. Returns the objects, the common prefixes, whether more
    /// follow, the upstream's next token and the last key or prefix the
    /// upstream listed (a V1 `NextMarker`).
    #[allow(clippy::too_many_arguments)]
    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        token: Option<&str>,
        start_after: Option<&str>,
        max: usize,
    ) -> S3Result<ListedPage> {
        /// The first key after every `.objseal/…` key (`0` follows `/`).
        const AFTER_HIDDEN: &str = ".objseal0";
        let mut token = token.map(str::to_owned);
        let mut after = start_after.map(str::to_owned);
        let mut out = ListedPage::default();
        for _ in 0..64 {
            let params = super::client::ListParams {
                prefix,
                delimiter,
                continuation_token: token.as_deref(),
                start_after: if token.is_some() {
                    None
                } else {
                    after.as_deref()
                },
                max_keys: u32::try_from(max.clamp(1, 1000)).unwrap_or(1000),
            };
            let page = self
                .client()
                .list_objects_v2(bucket, &params)
                .await
                .map_err(up_err)?;
            let last_key = page.contents.last().map(|o| o.key.clone());
            let last_prefix = page.common_prefixes.last().cloned();
            out.last_scanned = last_key.clone().into_iter().chain(last_prefix).max();
            let visible: Vec<_> = page
                .contents
                .into_iter()
                .filter(|o| !layout::is_hidden(&o.key))
                .collect();
            let views = futures::stream::iter(visible.into_iter().map(|o| async move {
                let view = self.listed_view(bucket, &o.key, &o.etag).await;
                (o, view)
            }))
            .buffered(16)
            .collect::<Vec<_>>()
            .await;
            for (o, view) in views {
                let (etag, size) = match view {
                    Ok(v) => v,
                    // Deleted since it was listed, or not objseal's: left out.
                    Err(e)
                        if matches!(
                            e.code(),
                            S3ErrorCode::NoSuchKey | S3ErrorCode::InvalidObjectState
                        ) =>
                    {
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                out.objects.push(Object {
                    key: Some(o.key),
                    size: Some(i64::try_from(size).unwrap_or(i64::MAX)),
                    e_tag: Some(ETag::Strong(strip_quotes(&etag))),
                    last_modified: Timestamp::parse(TimestampFormat::DateTime, &o.last_modified)
                        .ok(),
                    storage_class: Some(ObjectStorageClass::from_static(
                        ObjectStorageClass::STANDARD,
                    )),
                    ..Default::default()
                });
            }
            out.prefixes.extend(
                page.common_prefixes
                    .into_iter()
                    .filter(|p| !p.starts_with(HIDDEN_PREFIX)),
            );
            out.truncated = page.is_truncated;
            out.next_token = page.next_continuation_token;
            if !out.truncated || !out.objects.is_empty() || !out.prefixes.is_empty() {
                break;
            }
            // Only hidden records so far: jump past them if that is where
            // the upstream stopped, else go on from its token.
            let in_hidden = out
                .last_scanned
                .as_deref()
                .is_some_and(|k| layout::is_hidden(k) || k == HIDDEN_PREFIX);
            if in_hidden && AFTER_HIDDEN.starts_with(prefix) {
                token = None;
                after = Some(AFTER_HIDDEN.to_owned());
            } else if in_hidden {
                // The client's prefix lies inside the hidden block.
                out.truncated = false;
                out.next_token = None;
                break;
            } else {
                match &out.next_token {
                    Some(t) => token = Some(t.clone()),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// Writes the manifest of a completed upload.
    async fn put_manifest(&self, bucket: &str, id: &str, m: &Manifest) -> S3Result<()> {
        let body = serde_json::to_vec(m).map_err(|e| io_err(io::Error::other(e)))?;
        self.client()
            .put_small(
                bucket,
                &layout::manifest_key(id),
                HeaderMap::new(),
                body.into(),
            )
            .await
            .map_err(up_err)?;
        Ok(())
    }
}

/// S3 answers 412 for every failed copy-source condition.
fn copy_condition(e: S3Error) -> S3Error {
    if *e.code() == S3ErrorCode::NotModified {
        s3_error!(PreconditionFailed)
    } else {
        e
    }
}

fn copy_source(cs: &CopySource) -> S3Result<(String, String)> {
    match cs {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            if version_id.as_deref().is_some_and(|v| v != "null") {
                return Err(s3_error!(NoSuchVersion));
            }
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(s3_error!(NotImplemented)),
    }
}

#[async_trait::async_trait]
impl S3 for UpstreamGateway {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let user = self.caller(&req)?;
        let all = self.client().list_buckets().await.map_err(up_err)?;
        let mut buckets = Vec::new();
        for (name, created) in all {
            if !valid_bucket_name(&name) {
                continue;
            }
            if let Ok(Some(m)) = self.bucket_meta(&name).await
                && m.owner == user
            {
                buckets.push(Bucket {
                    name: Some(name),
                    creation_date: Timestamp::parse(TimestampFormat::DateTime, &created)
                        .ok()
                        .or_else(|| Some(timestamp(m.created_ms))),
                    ..Default::default()
                });
            }
        }
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
        self.forget_bucket(&name);
        if let Some(m) = self.bucket_meta(&name).await? {
            return Err(if m.owner == user {
                s3_error!(BucketAlreadyOwnedByYou)
            } else {
                s3_error!(BucketAlreadyExists)
            });
        }
        match self.client().create_bucket(&name).await {
            Ok(()) => {}
            // An upstream bucket objseal has no record of: adopted only
            // when empty (it may be another application's).
            Err(e) if e.code == "BucketAlreadyOwnedByYou" => {
                let page = self
                    .client()
                    .list_objects_v2(
                        &name,
                        &super::client::ListParams {
                            max_keys: 1,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(up_err)?;
                if !page.contents.is_empty() || !page.common_prefixes.is_empty() {
                    return Err(s3_error!(BucketAlreadyExists));
                }
            }
            Err(e) => return Err(up_err(e)),
        }
        let meta = BucketMeta {
            owner: user,
            created_ms: now_ms(),
            sse_algorithm: "AES256".to_owned(),
            kms_key_id: None,
            bucket_key: false,
            sse_c_blocked: !self.settings().allow_sse_c_by_default,
            configured: false,
        };
        self.save_bucket(&name, &meta).await?;
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
        let region = self.region();
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: (region != "us-east-1")
                .then(|| BucketLocationConstraint::from(region.to_owned())),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let user = self.caller(&req)?;
        let name = req.input.bucket.clone();
        let meta = self.owned_bucket(&name, &user).await?;
        let page = self.list_page(&name, "", None, None, None, 1).await?;
        if !page.objects.is_empty() || !page.prefixes.is_empty() {
            return Err(s3_error!(BucketNotEmpty));
        }
        // Uploads in progress would lose their records (and a completion
        // racing the sweep its manifest): refused until they end.
        let uploads = self
            .client()
            .list_multipart_uploads(&name, "")
            .await
            .map_err(up_err)?;
        if uploads.iter().any(|u| !layout::is_hidden(&u.key)) {
            return Err(s3_error!(
                BucketNotEmpty,
                "The bucket has multipart uploads in progress; complete or abort them first."
            ));
        }
        // objseal's records go first (the bucket record last), then the bucket.
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client()
                .list_objects_v2(
                    &name,
                    &super::client::ListParams {
                        prefix: HIDDEN_PREFIX,
                        continuation_token: token.as_deref(),
                        max_keys: 1000,
                        ..Default::default()
                    },
                )
                .await
                .map_err(up_err)?;
            for o in &page.contents {
                if o.key != layout::BUCKET_RECORD {
                    self.client()
                        .delete_object(&name, &o.key)
                        .await
                        .map_err(up_err)?;
                }
            }
            match page.next_continuation_token.filter(|_| page.is_truncated) {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        self.client()
            .delete_object(&name, layout::BUCKET_RECORD)
            .await
            .map_err(up_err)?;
        self.forget_bucket(&name);
        if let Err(e) = self.client().delete_bucket(&name).await {
            // Still there (uploads in progress?): keep it objseal's.
            let _ = self.save_bucket(&name, &meta).await;
            return Err(up_err(e));
        }
        self.forget_bucket(&name);
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let user = self.caller(&req)?;
        let name = req.input.bucket.clone();
        let mut meta = self.owned_bucket(&name, &user).await?;
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
        meta.sse_algorithm = algorithm;
        meta.kms_key_id = kms_key;
        meta.bucket_key = bucket_key;
        meta.configured = true;
        self.save_bucket(&name, &meta).await?;
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
        let mut meta = self.owned_bucket(&name, &user).await?;
        meta.sse_algorithm = "AES256".to_owned();
        meta.kms_key_id = None;
        meta.bucket_key = false;
        meta.configured = false;
        self.save_bucket(&name, &meta).await?;
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
        let len =
            declared_len(&req.headers, req.input.content_length)?.ok_or_else(missing_length)?;
        let expires = req
            .headers
            .get(http::header::EXPIRES)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let input = req.input;
        let bucket_meta = self.owned_bucket(&input.bucket, &user).await?;
        check_user_meta(input.metadata.as_ref())?;
        check_reserved(input.metadata.as_ref())?;
        if layout::is_hidden(&input.key) {
            return Err(s3_error!(
                InvalidArgument,
                "keys under .objseal/ are reserved by the gateway"
            ));
        }
        // Conditional writes are checked here and passed on to the upstream
        // (If-None-Match: *, If-Match with its ETag), which enforces them
        // atomically where it supports them.
        let mut conditions = HeaderMap::new();
        if input.if_none_match.is_some() || input.if_match.is_some() {
            let resolved = match self.resolve(&input.bucket, &input.key).await {
                Ok(i) => Some(i),
                Err(e) if *e.code() == S3ErrorCode::NoSuchKey => None,
                Err(e) => return Err(e),
            };
            if input.if_none_match.is_some() {
                conditions.insert(
                    http::header::IF_NONE_MATCH,
                    http::HeaderValue::from_static("*"),
                );
            }
            if input.if_match.is_some()
                && let Some(v) = resolved
                    .as_ref()
                    .and_then(|i| http::HeaderValue::from_str(&i.upstream_etag).ok())
            {
                conditions.insert(http::header::IF_MATCH, v);
            }
            let current = resolved.map(|i| strip_quotes(&i.meta.etag));
            if let Some(cond) = &input.if_none_match
                && current
                    .as_deref()
                    .is_some_and(|e| crate::s3::etag_matches(cond, e))
            {
                return Err(s3_error!(PreconditionFailed));
            }
            if let Some(cond) = &input.if_match {
                match &current {
                    None => return Err(s3_error!(NoSuchKey)),
                    Some(e) if !crate::s3::etag_matches(cond, e) => {
                        return Err(s3_error!(PreconditionFailed));
                    }
                    Some(_) => {}
                }
            }
        }
        let content_md5 = parse_content_md5(input.content_md5.as_deref())?;
        let meta = new_meta(
            &input.content_type,
            &input.content_encoding,
            &input.content_disposition,
            &input.content_language,
            &input.cache_control,
            expires,
            &input.metadata,
        );
        let reader = gbody::reader(input.body);
        let failed = reader.client_failed.clone();
        let (meta, env, sse) = self
            .store_object(
                &user,
                &input.bucket,
                &input.key,
                &bucket_meta,
                sse,
                len,
                Box::new(reader),
                Some(failed),
                content_md5,
                meta,
                conditions,
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
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| ByteRange::parse_header(s).ok()),
            None => None,
        };
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let info = self.resolve(&input.bucket, &input.key).await?;
        check_conditions(
            &info.meta,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let range = match input.part_number {
            Some(n) => part_range(&info.meta, n)?.map(ByteRange::from),
            None => range,
        };
        let engine = self.engine_for(&user);
        let meta = info.meta.clone();
        let env = info.envelope.clone();
        let this = self.clone();
        let (bucket, key) = (input.bucket.clone(), input.key.clone());
        enum Opened {
            Full(sse::ObjectStream<StreamReader>),
            Whole(Box<sse::ObjectRangeReader<UpstreamSource>>),
            Range(Box<sse::ObjectRangeReader<UpstreamSource>>),
        }
        let (opened, sse) = blocking(move || {
            let with = sse.open_with();
            let opened = match range {
                Some(r) => Opened::Range(Box::new(
                    this.open_range(&engine, with, &bucket, &key, info, r)?,
                )),
                // A multipart object is read through its part list checked
                // first (over the manifest's headers), not after the last
                // part as a stream would.
                None if info.envelope.parts.is_some() && info.meta.size > 0 => {
                    let all = ByteRange::from(0..info.meta.size);
                    Opened::Whole(Box::new(
                        this.open_range(&engine, with, &bucket, &key, info, all)?,
                    ))
                }
                None => Opened::Full(this.open_full(&engine, with, &bucket, &key, &info)?),
            };
            Ok((opened, sse))
        })
        .await?;
        let headers = sse::response_headers(Operation::Get, &env, &sse).map_err(convert)?;
        let (len, content_range, stream) = match opened {
            Opened::Full(r) => (meta.size, None, objseal::aio::read_stream(move || Ok(r))),
            Opened::Whole(r) => (meta.size, None, objseal::aio::read_stream(move || Ok(r))),
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
        let info = self.resolve(&input.bucket, &input.key).await?;
        check_conditions(
            &info.meta,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let binding = binding(&input.bucket, &input.key)?;
        let engine = self.engine_for(&user);
        let meta = info.meta.clone();
        let env = info.envelope.clone();
        let sse = if env.mode == Mode::SseC || sse.customer_key().is_some() {
            // Checks the customer key (or its absence) as GET would.
            let env = env.clone();
            let headers: Vec<[u8; HEADER_LEN]> = info
                .known
                .values()
                .filter_map(|h| <[u8; HEADER_LEN]>::try_from(h.as_slice()).ok())
                .collect();
            blocking(move || {
                if env.parts.is_some() {
                    sse::check_part_list(&engine, sse.open_with(), &binding, &env, &headers)
                        .map_err(lib_err)?;
                } else {
                    engine
                        .data_key(sse.open_with(), &binding, &env)
                        .map_err(lib_err)?;
                }
                Ok(sse)
            })
            .await?
        } else {
            sse
        };
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
        self.remove(&input.bucket, &input.key).await?;
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
        let keys: Vec<String> = input.delete.objects.into_iter().map(|o| o.key).collect();
        if keys.len() > 1000 {
            return Err(s3_error!(MalformedXML));
        }
        let bucket = input.bucket.clone();
        let results = futures::stream::iter(keys.into_iter().map(|key| {
            let bucket = bucket.clone();
            async move {
                let r = self.remove(&bucket, &key).await;
                (key, r)
            }
        }))
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (key, r) in results {
            match r {
                Ok(()) if !quiet => deleted.push(DeletedObject {
                    key: Some(key),
                    ..Default::default()
                }),
                Ok(()) => {}
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(key),
                    message: e.message().map(str::to_owned),
                    ..Default::default()
                }),
            }
        }
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
        let max = max_keys(input.max_keys);
        let ListedPage {
            objects,
            prefixes,
            truncated,
            last_scanned: last,
            ..
        } = if max == 0 {
            ListedPage::default()
        } else {
            self.list_page(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                None,
                input.marker.as_deref().filter(|m| !m.is_empty()),
                max,
            )
            .await?
        };
        let enc = encoder(input.encoding_type.as_ref());
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            marker: Some(enc(input.marker.unwrap_or_default())),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            is_truncated: Some(truncated),
            next_marker: if truncated { last.map(&enc) } else { None },
            contents: Some(
                objects
                    .into_iter()
                    .map(|mut o| {
                        o.key = o.key.map(&enc);
                        o
                    })
                    .collect(),
            ),
            common_prefixes: Some(
                prefixes
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
        let max = max_keys(input.max_keys);
        let ListedPage {
            objects,
            prefixes,
            truncated,
            next_token: next,
            ..
        } = if max == 0 {
            ListedPage::default()
        } else {
            self.list_page(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                input.continuation_token.as_deref(),
                input.start_after.as_deref().filter(|s| !s.is_empty()),
                max,
            )
            .await?
        };
        let enc = encoder(input.encoding_type.as_ref());
        let fetch_owner = input.fetch_owner.unwrap_or(false);
        let key_count = objects.len() + prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
            continuation_token: input.continuation_token,
            is_truncated: Some(truncated),
            next_continuation_token: if truncated { next } else { None },
            contents: Some(
                objects
                    .into_iter()
                    .map(|mut o| {
                        o.key = o.key.map(&enc);
                        if fetch_owner {
                            o.owner = Some(owner(&user));
                        }
                        o
                    })
                    .collect(),
            ),
            common_prefixes: Some(
                prefixes
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

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let user = self.caller(&req)?;
        let sse = self.sse_request(&req.headers)?;
        let expires = req
            .headers
            .get(http::header::EXPIRES)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let input = req.input;
        let dest_meta = self.owned_bucket(&input.bucket, &user).await?;
        if layout::is_hidden(&input.key) {
            return Err(s3_error!(
                InvalidArgument,
                "keys under .objseal/ are reserved by the gateway"
            ));
        }
        let (src_bucket, src_key) = copy_source(&input.copy_source)?;
        self.owned_bucket(&src_bucket, &user).await?;
        let info = self.resolve(&src_bucket, &src_key).await?;
        check_conditions(
            &info.meta,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        )
        .map_err(copy_condition)?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if replace {
            check_user_meta(input.metadata.as_ref())?;
            check_reserved(input.metadata.as_ref())?;
        }
        let mut meta = if replace {
            new_meta(
                &input.content_type,
                &input.content_encoding,
                &input.content_disposition,
                &input.content_language,
                &input.cache_control,
                expires,
                &input.metadata,
            )
        } else {
            let mut m = info.meta.clone();
            m.parts = None;
            m.part_sizes = Vec::new();
            m
        };
        let engine = self.engine_for(&user);
        let encryption = dest_meta.encryption();
        let same = src_bucket == input.bucket && src_key == input.key;
        let (meta, env, sse) = if same {
            // A copy onto itself keeps the body: the key is rewrapped and
            // the upstream copies the object onto itself with new metadata.
            let binding = binding(&input.bucket, &input.key)?;
            let env_in = info.envelope.clone();
            let (new_env, sse) = blocking(move || {
                let env = sse::copy_rewrap(
                    &engine,
                    &sse,
                    &encryption,
                    &binding,
                    &env_in,
                    CopyOptions {
                        reencrypt: false,
                        metadata_replaced: replace,
                    },
                )
                .map_err(convert)?;
                Ok((env, sse))
            })
            .await?;
            let env_b64 = new_env.to_base64().map_err(lib_err)?;
            let mut extra_id = None;
            let headers = if let Some(_old) = &info.manifest {
                let id = random_hex(16).map_err(io_err)?;
                let m = self
                    .manifest_for(&input.bucket, info.manifest.as_deref(), &env_b64)
                    .await?;
                self.put_manifest(&input.bucket, &id, &m).await?;
                let h = meta_headers(&meta, &[(META_MANIFEST, &id)])?;
                extra_id = Some(id);
                h
            } else {
                meta_headers(&meta, &[(META_ENVELOPE, &env_b64)])?
            };
            let mut headers = headers;
            headers.insert(
                "x-amz-metadata-directive",
                http::HeaderValue::from_static("REPLACE"),
            );
            if let Ok(v) = http::HeaderValue::from_str(&info.upstream_etag) {
                headers.insert("x-amz-copy-source-if-match", v);
            }
            let copied = self
                .client()
                .copy_object(&src_bucket, &src_key, &input.bucket, &input.key, headers)
                .await;
            let upstream_etag = match (copied, &extra_id) {
                (Ok(e), _) => e,
                (Err(e), None) => return Err(up_err(e)),
                (Err(e), Some(id)) => {
                    // The copy may have happened with its answer lost: the
                    // new manifest is deleted only if the object does not
                    // name it.
                    match self.names_manifest(&input.bucket, &input.key, id).await {
                        Some(etag) => etag,
                        None => {
                            let _ = self
                                .client()
                                .delete_object(&input.bucket, &layout::manifest_key(id))
                                .await;
                            return Err(up_err(e));
                        }
                    }
                }
            };
            if let Some(old) = &info.manifest {
                let _ = self
                    .client()
                    .delete_object(&input.bucket, &layout::manifest_key(old))
                    .await;
            }
            meta.key = input.key.clone();
            meta.size = info.meta.size;
            meta.etag = info.meta.etag.clone();
            meta.last_modified_ms = now_ms();
            self.remember(
                &input.bucket,
                &input.key,
                &upstream_etag,
                &meta.etag,
                meta.size,
            );
            (meta, new_env, sse)
        } else {
            // Another object: the source is opened and sealed anew.
            let this = self.clone();
            let (b, k) = (src_bucket.clone(), src_key.clone());
            let engine2 = engine.clone();
            let size = info.meta.size;
            let (reader, sse) = blocking(move || {
                let r = this.open_full(&engine2, sse.copy_source_open_with(), &b, &k, &info)?;
                Ok((r, sse))
            })
            .await?;
            self.store_object(
                &user,
                &input.bucket,
                &input.key,
                &dest_meta,
                sse,
                size,
                Box::new(reader),
                None,
                None,
                meta,
                HeaderMap::new(),
            )
            .await?
        };
        let mut resp = S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(strip_quotes(&meta.etag))),
                last_modified: Some(timestamp(meta.last_modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        });
        add_headers(
            &mut resp.headers,
            sse::response_headers(Operation::Copy, &env, &sse).map_err(convert)?,
        );
        Ok(resp)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let user = self.caller(&req)?;
        let sse = self.sse_request(&req.headers)?;
        let expires = req
            .headers
            .get(http::header::EXPIRES)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let input = req.input;
        let bucket_meta = self.owned_bucket(&input.bucket, &user).await?;
        check_user_meta(input.metadata.as_ref())?;
        check_reserved(input.metadata.as_ref())?;
        if layout::is_hidden(&input.key) {
            return Err(s3_error!(
                InvalidArgument,
                "keys under .objseal/ are reserved by the gateway"
            ));
        }
        let binding = binding(&input.bucket, &input.key)?;
        let engine = self.engine_for(&user);
        let meta = new_meta(
            &input.content_type,
            &input.content_encoding,
            &input.content_disposition,
            &input.content_language,
            &input.cache_control,
            expires,
            &input.metadata,
        );
        let (env, sse) = blocking(move || {
            let encryption = bucket_meta.encryption();
            let mode = encryption.resolve(&sse).map_err(convert)?;
            let upload = sse::MultipartUpload::create(&engine, &mode.seal_mode(), &binding)
                .map_err(convert)?;
            Ok((upload.envelope().clone(), sse))
        })
        .await?;
        let id = random_hex(16).map_err(io_err)?;
        let headers = meta_headers(&meta, &[(META_MANIFEST, &id)])?;
        let upload_id = self
            .client()
            .create_multipart_upload(&input.bucket, &input.key, headers)
            .await
            .map_err(up_err)?;
        let record = UploadRecord {
            v: 1,
            key: input.key.clone(),
            manifest: id,
            envelope: env.to_base64().map_err(lib_err)?,
        };
        let body = serde_json::to_vec(&record).map_err(|e| io_err(io::Error::other(e)))?;
        if let Err(e) = self
            .client()
            .put_small(
                &input.bucket,
                &layout::upload_key(&upload_id),
                HeaderMap::new(),
                body.into(),
            )
            .await
        {
            let _ = self
                .client()
                .abort_multipart_upload(&input.bucket, &input.key, &upload_id)
                .await;
            return Err(up_err(e));
        }
        let mut resp = S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        });
        add_headers(
            &mut resp.headers,
            sse::response_headers(Operation::CreateMultipartUpload, &env, &sse).map_err(convert)?,
        );
        Ok(resp)
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let user = self.caller(&req)?;
        let sse = self.sse_request(&req.headers)?;
        let len =
            declared_len(&req.headers, req.input.content_length)?.ok_or_else(missing_length)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let number = part_number(input.part_number)?;
        let record = self
            .upload_record(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let env = Envelope::from_base64(&record.envelope).map_err(lib_err)?;
        let upload = sse::MultipartUpload::from_envelope(env.clone()).map_err(convert)?;
        let limit = self.settings().max_object_size;
        if len > limit {
            return Err(s3_error!(EntityTooLarge));
        }
        let content_md5 = parse_content_md5(input.content_md5.as_deref())?;
        let engine = self.engine_for(&user);
        let reader = gbody::reader(input.body);
        let client = self.client().clone();
        let handle = Handle::current();
        let (bucket, key, upload_id) = (
            input.bucket.clone(),
            input.key.clone(),
            input.upload_id.clone(),
        );
        let client_failed = reader.client_failed.clone();
        let (etag, sse) = blocking(move || {
            let sealer = upload.sealer(&engine, sse.open_with()).map_err(convert)?;
            let part = OutgoingPart {
                handle,
                client,
                bucket,
                key,
                upload_id,
                number,
                len,
            };
            let etag = part.send(
                &sealer,
                Box::new(reader),
                Some(client_failed),
                content_md5,
                limit,
            )?;
            Ok((etag, sse))
        })
        .await?;
        self.record_part(&input.bucket, &input.upload_id, number, &etag)
            .await;
        let mut resp = S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        });
        add_headers(
            &mut resp.headers,
            sse::response_headers(Operation::UploadPart, &env, &sse).map_err(convert)?,
        );
        Ok(resp)
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let user = self.caller(&req)?;
        let sse = self.sse_request(&req.headers)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let number = part_number(input.part_number)?;
        let record = self
            .upload_record(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let env = Envelope::from_base64(&record.envelope).map_err(lib_err)?;
        let upload = sse::MultipartUpload::from_envelope(env.clone()).map_err(convert)?;
        let (src_bucket, src_key) = copy_source(&input.copy_source)?;
        self.owned_bucket(&src_bucket, &user).await?;
        let info = self.resolve(&src_bucket, &src_key).await?;
        check_conditions(
            &info.meta,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        )
        .map_err(copy_condition)?;
        let size = info.meta.size;
        let range = match input.copy_source_range.as_deref() {
            None => 0..size,
            Some(r) => {
                let bad = || {
                    s3_error!(
                        InvalidArgument,
                        "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
                    )
                };
                let spec = r.trim().strip_prefix("bytes=").ok_or_else(bad)?;
                let (a, b) = spec.split_once('-').ok_or_else(bad)?;
                let a: u64 = a.trim().parse().map_err(|_| bad())?;
                let b: u64 = b.trim().parse().map_err(|_| bad())?;
                if a > b || b >= size {
                    let mut e = S3Error::with_message(
                        S3ErrorCode::InvalidRange,
                        "The requested range is not satisfiable",
                    );
                    e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
                    return Err(e);
                }
                a..b + 1
            }
        };
        let len = range.end - range.start;
        let limit = self.settings().max_object_size;
        let engine = self.engine_for(&user);
        let this = self.clone();
        let part = OutgoingPart {
            handle: Handle::current(),
            client: self.client().clone(),
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: input.upload_id.clone(),
            number,
            len,
        };
        let (etag, sse) = blocking(move || {
            let sealer = upload.sealer(&engine, sse.open_with()).map_err(convert)?;
            let with = sse.copy_source_open_with();
            let source: Source = if len == 0 {
                Box::new(io::empty())
            } else if range.start == 0 && range.end == size && info.envelope.parts.is_none() {
                Box::new(this.open_full(&engine, with, &src_bucket, &src_key, &info)?)
            } else {
                Box::new(this.open_range(
                    &engine,
                    with,
                    &src_bucket,
                    &src_key,
                    info,
                    ByteRange::from(range),
                )?)
            };
            let etag = part.send(&sealer, source, None, None, limit)?;
            Ok((etag, sse))
        })
        .await?;
        self.record_part(&input.bucket, &input.upload_id, number, &etag)
            .await;
        let mut resp = S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(etag)),
                last_modified: Some(timestamp(now_ms())),
                ..Default::default()
            }),
            ..Default::default()
        });
        add_headers(
            &mut resp.headers,
            sse::response_headers(Operation::UploadPart, &env, &sse).map_err(convert)?,
        );
        Ok(resp)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let user = self.caller(&req)?;
        let sse = self.sse_request(&req.headers)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let record = self
            .upload_record(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let env = Envelope::from_base64(&record.envelope).map_err(lib_err)?;
        let upload = sse::MultipartUpload::from_envelope(env).map_err(convert)?;
        let requested = requested_parts(&input)?;
        let mut uploaded = Vec::with_capacity(requested.len());
        let mut upstream_parts = Vec::with_capacity(requested.len());
        for p in &requested {
            let (up, header, len) = layout::parse_part_etag(&p.etag).ok_or_else(|| {
                s3_error!(
                    InvalidPart,
                    "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
                )
            })?;
            uploaded.push(sse::UploadedPart {
                number: p.number,
                plaintext_len: len,
                etag: p.etag.clone(),
                header,
            });
            upstream_parts.push((p.number, format!("\"{up}\"")));
        }
        let engine = self.engine_for(&user);
        let (completed, sse) = blocking(move || {
            let completed = upload
                .complete(&engine, sse.open_with(), &requested, &uploaded)
                .map_err(convert)?;
            let sizes: Vec<u64> = completed
                .order
                .iter()
                .filter_map(|n| uploaded.iter().find(|u| u.number == *n))
                .map(|u| u.plaintext_len)
                .collect();
            if sizes
                .iter()
                .take(sizes.len().saturating_sub(1))
                .any(|s| *s < MIN_PART_SIZE)
            {
                return Err(s3_error!(
                    EntityTooSmall,
                    "Your proposed upload is smaller than the minimum allowed object size."
                ));
            }
            let headers: Vec<String> = completed
                .order
                .iter()
                .filter_map(|n| uploaded.iter().find(|u| u.number == *n))
                .map(|u| base64::engine::general_purpose::STANDARD.encode(u.header))
                .collect();
            Ok(((completed, headers), sse))
        })
        .await?;
        let (completed, headers) = completed;
        let manifest = Manifest {
            v: 1,
            envelope: completed.envelope.to_base64().map_err(lib_err)?,
            etag: completed.etag.clone(),
            headers,
        };
        self.put_manifest(&input.bucket, &record.manifest, &manifest)
            .await?;
        let done = self
            .client()
            .complete_multipart_upload(&input.bucket, &input.key, &input.upload_id, &upstream_parts)
            .await;
        let upstream_etag = match done {
            Ok(e) => e,
            Err(e) => {
                // A completion whose answer was lost (a retry then finds no
                // upload, or the connection failed) may have happened: the
                // object says so by naming this manifest.
                match self
                    .names_manifest(&input.bucket, &input.key, &record.manifest)
                    .await
                {
                    Some(etag) => etag,
                    None => {
                        // Refused for certain (a bad part list, say): the
                        // manifest is no one's, and a corrected retry
                        // writes it again. Kept when in doubt.
                        if (400..500).contains(&e.status) && e.code != "NoSuchUpload" {
                            let _ = self
                                .client()
                                .delete_object(
                                    &input.bucket,
                                    &layout::manifest_key(&record.manifest),
                                )
                                .await;
                        }
                        return Err(up_err(e));
                    }
                }
            }
        };
        let _ = self
            .client()
            .delete_object(&input.bucket, &layout::upload_key(&input.upload_id))
            .await;
        self.forget_parts(&input.bucket, &input.upload_id).await;
        self.forget_upload(&input.bucket, &input.upload_id);
        self.remember(
            &input.bucket,
            &input.key,
            &upstream_etag,
            &completed.etag,
            completed.envelope.plaintext_len,
        );
        let mut resp = S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(ETag::Strong(strip_quotes(&completed.etag))),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        });
        add_headers(
            &mut resp.headers,
            sse::response_headers(
                Operation::CompleteMultipartUpload,
                &completed.envelope,
                &sse,
            )
            .map_err(convert)?,
        );
        Ok(resp)
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let user = self.caller(&req)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        self.upload_record(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let listed = self
            .client()
            .list_parts(&input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(up_err)?;
        let marker = input.part_number_marker.unwrap_or(0);
        let max = input.max_parts.map_or(1000, |m| m.clamp(0, 1000));
        let max_usize = usize::try_from(max).unwrap_or(0);
        let after: Vec<_> = listed
            .into_iter()
            .filter(|p| i64::from(p.number) > i64::from(marker))
            .collect();
        let truncated = after.len() > max_usize;
        let page: Vec<_> = after.into_iter().take(max_usize).collect();
        let prefix = layout::parts_prefix(&input.upload_id);
        let bucket = input.bucket.clone();
        let parts = futures::stream::iter(page.iter().cloned().map(|p| {
            let key = format!("{prefix}{}", p.number);
            let bucket = bucket.clone();
            async move {
                let recorded = self
                    .client()
                    .get_small(&bucket, &key, 1024)
                    .await
                    .ok()
                    .and_then(|(_, b)| String::from_utf8(b.to_vec()).ok())
                    .and_then(|e| {
                        let (up, _, len) = layout::parse_part_etag(&e)?;
                        (up == p.etag.trim_matches('"')).then_some((e, len))
                    });
                let (etag, size) = match recorded {
                    Some(v) => v,
                    None => (
                        strip_quotes(&p.etag),
                        layout::plaintext_len_of(p.size).unwrap_or(0),
                    ),
                };
                Part {
                    part_number: i32::try_from(p.number).ok(),
                    e_tag: Some(ETag::Strong(etag)),
                    size: i64::try_from(size).ok(),
                    last_modified: Timestamp::parse(TimestampFormat::DateTime, &p.last_modified)
                        .ok(),
                    ..Default::default()
                }
            }
        }))
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: page
                .last()
                .filter(|_| truncated)
                .and_then(|p| i32::try_from(p.number).ok()),
            is_truncated: Some(truncated),
            parts: Some(parts),
            owner: Some(owner(&user)),
            initiator: Some(Initiator {
                display_name: Some(user.clone()),
                id: Some(user),
            }),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let user = self.caller(&req)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        self.upload_record(&input.bucket, &input.key, &input.upload_id)
            .await?;
        self.client()
            .abort_multipart_upload(&input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(up_err)?;
        let _ = self
            .client()
            .delete_object(&input.bucket, &layout::upload_key(&input.upload_id))
            .await;
        self.forget_parts(&input.bucket, &input.upload_id).await;
        self.forget_upload(&input.bucket, &input.upload_id);
        Ok(S3Response::with_status(
            AbortMultipartUploadOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let user = self.caller(&req)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut all = self
            .client()
            .list_multipart_uploads(&input.bucket, &prefix)
            .await
            .map_err(up_err)?;
        all.retain(|u| !layout::is_hidden(&u.key));
        all.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        let max = input.max_uploads.map_or(1000, |m| m.clamp(0, 1000));
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone().unwrap_or_default();
        let after: Vec<_> = all
            .into_iter()
            .filter(|u| {
                key_marker.is_empty()
                    || u.key > key_marker
                    || (u.key == key_marker && !id_marker.is_empty() && u.upload_id > id_marker)
            })
            .collect();
        let max_usize = usize::try_from(max).unwrap_or(0);
        let truncated = after.len() > max_usize;
        let page = &after[..after.len().min(max_usize)];
        let uploads = page
            .iter()
            .map(|u| MultipartUpload {
                key: Some(u.key.clone()),
                upload_id: Some(u.upload_id.clone()),
                initiated: Timestamp::parse(TimestampFormat::DateTime, &u.initiated).ok(),
                owner: Some(owner(&user)),
                initiator: Some(Initiator {
                    display_name: Some(user.clone()),
                    id: Some(user.clone()),
                }),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max),
            is_truncated: Some(truncated),
            next_key_marker: page.last().filter(|_| truncated).map(|u| u.key.clone()),
            next_upload_id_marker: page
                .last()
                .filter(|_| truncated)
                .map(|u| u.upload_id.clone()),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}

impl UpstreamGateway {
    /// Keeps a part's client ETag for ListParts (best effort: without it,
    /// ListParts shows the upstream's ETag and a size derived from it).
    async fn record_part(&self, bucket: &str, upload_id: &str, number: u32, etag: &str) {
        let key = format!("{}{number}", layout::parts_prefix(upload_id));
        let _ = self
            .client()
            .put_small(
                bucket,
                &key,
                HeaderMap::new(),
                bytes::Bytes::copy_from_slice(etag.as_bytes()),
            )
            .await;
    }

    /// Deletes the part records of an upload (best effort).
    async fn forget_parts(&self, bucket: &str, upload_id: &str) {
        let prefix = layout::parts_prefix(upload_id);
        let params = super::client::ListParams {
            prefix: &prefix,
            max_keys: 1000,
            ..Default::default()
        };
        if let Ok(page) = self.client().list_objects_v2(bucket, &params).await {
            for o in page.contents {
                let _ = self.client().delete_object(bucket, &o.key).await;
            }
        }
    }

    /// The upstream ETag of `bucket/key` if the object names manifest `id`.
    async fn names_manifest(&self, bucket: &str, key: &str, id: &str) -> Option<String> {
        let h = self.client().head_object(bucket, key).await.ok()?;
        let named = h
            .get(format!("x-amz-meta-{META_MANIFEST}"))
            .and_then(|v| v.to_str().ok())?;
        (named == id).then(|| {
            h.get("etag")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
    }

    /// The manifest of a copy onto itself: the old one with a new envelope.
    async fn manifest_for(
        &self,
        bucket: &str,
        old: Option<&str>,
        env_b64: &str,
    ) -> S3Result<Manifest> {
        let old = old.ok_or_else(|| s3_error!(InternalError))?;
        let m = self.manifest(bucket, old).await?;
        Ok(Manifest {
            v: 1,
            envelope: env_b64.to_owned(),
            etag: m.etag.clone(),
            headers: m.headers.clone(),
        })
    }
}
