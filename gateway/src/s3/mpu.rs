//! CopyObject, multipart uploads (UploadPartCopy included) and
//! GetObjectAttributes.

use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use objseal::body::ByteRange;
use objseal::sse::{self, CopyOptions, Operation};
use objseal::{Envelope, ObjectBinding};

use super::{
    Gateway, add_headers, blocking, check_conditions, convert, declared_len, io_err, lib_err,
    strip_quotes, timestamp,
};
use crate::body::{self, CountingReader, CountingWriter};
use crate::store::{
    HEADER_LEN, ObjectFile, ObjectMeta, create_dir_private, finish_object_file, finish_sections,
    now_ms, read_dir_or_empty, read_sections, to_json, write_atomic,
};

/// Parts smaller than this may only be the last of an object (S3's rule).
const MIN_PART_SIZE: u64 = 5 << 20;

/// What the store keeps of an upload in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadState {
    key: String,
    /// The creation envelope, base64.
    envelope: String,
    initiated_ms: u64,
    /// The headers the object will have.
    meta: ObjectMeta,
}

/// What the store keeps of a part besides its body.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartRecord {
    number: u32,
    plaintext_len: u64,
    etag: String,
    /// The part body's first 56 bytes, hex.
    header: String,
    last_modified_ms: u64,
}

impl PartRecord {
    fn uploaded(&self) -> Option<sse::UploadedPart> {
        let raw = unhex(&self.header)?;
        Some(sse::UploadedPart {
            number: self.number,
            plaintext_len: self.plaintext_len,
            etag: self.etag.clone(),
            header: raw.try_into().ok()?,
        })
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn no_such_upload() -> s3s::S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )
}

/// An upload id is 32 hex digits (so it can never name another path).
fn valid_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit())
}

fn part_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("{number:05}.part"))
}

fn read_state(dir: &Path) -> S3Result<UploadState> {
    match std::fs::read(dir.join("upload.json")) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| io_err(io::Error::other(e))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(no_such_upload()),
        Err(e) => Err(io_err(e)),
    }
}

/// Every part record of the upload in `dir`, by number.
fn read_parts(dir: &Path) -> S3Result<Vec<PartRecord>> {
    let mut out = Vec::new();
    for p in read_dir_or_empty(dir).map_err(io_err)? {
        if p.extension().is_none_or(|e| e != "part") {
            continue;
        }
        if let Some((_, _, _, meta)) = read_sections(&p).map_err(io_err)? {
            let rec: PartRecord =
                serde_json::from_slice(&meta).map_err(|e| io_err(io::Error::other(e)))?;
            out.push(rec);
        }
    }
    out.sort_by_key(|r| r.number);
    Ok(out)
}

/// A part number of a request, or S3's error for one out of 1..=10000.
pub(crate) fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            )
        })
}

/// The part list of a CompleteMultipartUpload request, as sent.
pub(crate) fn requested_parts(
    input: &CompleteMultipartUploadInput,
) -> S3Result<Vec<sse::CompletedPart>> {
    let mut requested = Vec::new();
    for p in input
        .multipart_upload
        .as_ref()
        .and_then(|m| m.parts.as_ref())
        .into_iter()
        .flatten()
    {
        let number = p
            .part_number
            .ok_or_else(|| s3_error!(MalformedXML))
            .and_then(part_number)?;
        let etag = p
            .e_tag
            .as_ref()
            .map(|e| e.value().to_owned())
            .ok_or_else(|| s3_error!(MalformedXML))?;
        requested.push(sse::CompletedPart { number, etag });
    }
    Ok(requested)
}

fn copy_source(cs: &CopySource) -> S3Result<(String, String)> {
    match cs {
        CopySource::Bucket { bucket, key, .. } => Ok((bucket.to_string(), key.to_string())),
        _ => Err(s3_error!(
            NotImplemented,
            "Only bucket copy sources are supported"
        )),
    }
}

/// Writes a part body with `write` into a staged part file and commits it.
fn store_part(
    path: &Path,
    write: impl FnOnce(&mut CountingWriter<BufWriter<&std::fs::File>>) -> S3Result<sse::UploadedPart>,
) -> S3Result<PartRecord> {
    let staged = objseal::fs::StagedFile::create(path).map_err(lib_err)?;
    let file = staged.file();
    (&*file)
        .write_all(&[0u8; HEADER_LEN as usize])
        .map_err(io_err)?;
    let mut out = CountingWriter {
        inner: BufWriter::with_capacity(256 << 10, file),
        n: 0,
        md5: None,
    };
    let rec = write(&mut out)?;
    out.flush().map_err(io_err)?;
    let body_len = out.n;
    drop(out);
    let record = PartRecord {
        number: rec.number,
        plaintext_len: rec.plaintext_len,
        etag: rec.etag,
        header: crate::body::hex(&rec.header),
        last_modified_ms: now_ms(),
    };
    finish_sections(file, body_len, &[], &to_json(&record).map_err(io_err)?).map_err(io_err)?;
    staged.commit().map_err(lib_err)?;
    Ok(record)
}

/// The source of a copy, opened, with its range.
struct Source {
    obj: ObjectFile,
    binding: ObjectBinding,
}

impl Gateway {
    /// Opens the source object of a copy, checking the caller owns its bucket.
    async fn copy_source(&self, user: &str, cs: &CopySource) -> S3Result<Source> {
        let (bucket, key) = copy_source(cs)?;
        self.owned_bucket(&bucket, user).await?;
        let obj = self.open_file(&bucket, &key).await?;
        let binding = super::binding(&bucket, &key)?;
        Ok(Source { obj, binding })
    }

    fn upload_dir(&self, bucket: &str, id: &str) -> S3Result<PathBuf> {
        if !valid_upload_id(id) {
            return Err(no_such_upload());
        }
        Ok(self.inner.store.upload_dir(bucket, id))
    }

    pub(super) async fn do_copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let user = self.caller(&req)?;
        let sse = self.sse_request(&req.headers)?;
        let input = req.input;
        let dest_meta = self.owned_bucket(&input.bucket, &user).await?;
        let src = self.copy_source(&user, &input.copy_source).await?;
        check_conditions(
            &src.obj.meta,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        )
        .map_err(|e| {
            // S3 answers 412 for every failed copy-source condition.
            if *e.code() == s3s::S3ErrorCode::NotModified {
                s3_error!(PreconditionFailed)
            } else {
                e
            }
        })?;
        check_user_meta_if(&input)?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let mut meta = if replace {
            ObjectMeta {
                content_type: input.content_type.clone(),
                content_encoding: input.content_encoding.clone(),
                content_disposition: input.content_disposition.clone(),
                content_language: input.content_language.clone(),
                cache_control: input.cache_control.clone(),
                user_meta: input
                    .metadata
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                ..Default::default()
            }
        } else {
            src.obj.meta.clone()
        };
        let dest = super::binding(&input.bucket, &input.key)?;
        let dst_path = self.inner.store.object_path(&input.bucket, &input.key);
        let engine = self.engine_for(&user);
        let encryption = dest_meta.encryption();
        let (meta, env, sse) = blocking(move || {
            let Source { obj, binding } = src;
            let ObjectFile {
                mut file,
                body_start,
                body_len,
                envelope,
                meta: src_meta,
            } = obj;
            let mut raw = file.try_clone().map_err(io_err)?;
            file.seek(SeekFrom::Start(body_start)).map_err(io_err)?;
            create_dir_private(dst_path.parent().unwrap_or(Path::new("."))).map_err(io_err)?;
            let staged = objseal::fs::StagedFile::create(&dst_path).map_err(lib_err)?;
            let owned_file = staged.file().try_clone().map_err(io_err)?;
            let out_file = &owned_file;
            (&*out_file)
                .write_all(&[0u8; HEADER_LEN as usize])
                .map_err(io_err)?;
            let out = CountingWriter {
                inner: BufWriter::with_capacity(256 << 10, out_file),
                n: 0,
                md5: None,
            };
            let outcome = sse::copy_stream(
                &engine,
                &sse,
                &encryption,
                &binding,
                &envelope,
                (&mut file).take(body_len),
                &dest,
                out,
                CopyOptions {
                    reencrypt: false,
                    metadata_replaced: replace,
                },
            )
            .map_err(convert)?;
            let sse::CopyStreamOutcome {
                envelope,
                rewrapped,
                etag,
                plaintext_len,
                dest: mut out,
                ..
            } = outcome;
            if rewrapped {
                // The body is kept as it is: copied byte for byte.
                raw.seek(SeekFrom::Start(body_start)).map_err(io_err)?;
                io::copy(&mut (&mut raw).take(body_len), &mut out).map_err(io_err)?;
            }
            out.flush().map_err(io_err)?;
            let written = out.n;
            drop(out);
            meta.key = dest.key().to_owned();
            meta.size = plaintext_len;
            meta.etag = etag;
            meta.last_modified_ms = now_ms();
            meta.sse = super::sse_name(envelope.mode).to_owned();
            if envelope.parts.is_some() {
                meta.parts = src_meta.parts;
                meta.part_sizes = src_meta.part_sizes;
            } else {
                meta.parts = None;
                meta.part_sizes = Vec::new();
            }
            finish_object_file(out_file, written, &envelope, &meta).map_err(io_err)?;
            staged.commit().map_err(lib_err)?;
            Ok((meta, envelope, sse))
        })
        .await?;
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

    pub(super) async fn do_create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let user = self.caller(&req)?;
        let sse = self.sse_request(&req.headers)?;
        let input = req.input;
        let bucket_meta = self.owned_bucket(&input.bucket, &user).await?;
        super::check_user_meta(input.metadata.as_ref())?;
        let binding = super::binding(&input.bucket, &input.key)?;
        let id = crate::store::random_hex(16).map_err(io_err)?;
        let dir = self.inner.store.upload_dir(&input.bucket, &id);
        let engine = self.engine_for(&user);
        let meta = ObjectMeta {
            content_type: input.content_type.clone(),
            content_encoding: input.content_encoding.clone(),
            content_disposition: input.content_disposition.clone(),
            content_language: input.content_language.clone(),
            cache_control: input.cache_control.clone(),
            user_meta: input
                .metadata
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let key = input.key.clone();
        let (env, sse) = blocking(move || {
            let encryption = bucket_meta.encryption();
            let mode = encryption.resolve(&sse).map_err(convert)?;
            let upload = sse::MultipartUpload::create(&engine, &mode.seal_mode(), &binding)
                .map_err(convert)?;
            let env = upload.envelope().clone();
            let state = UploadState {
                key,
                envelope: env.to_base64().map_err(lib_err)?,
                initiated_ms: now_ms(),
                meta,
            };
            create_dir_private(&dir).map_err(io_err)?;
            write_atomic(&dir.join("upload.json"), &to_json(&state).map_err(io_err)?)
                .map_err(io_err)?;
            Ok((env, sse))
        })
        .await?;
        let mut resp = S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            ..Default::default()
        });
        add_headers(
            &mut resp.headers,
            sse::response_headers(Operation::CreateMultipartUpload, &env, &sse).map_err(convert)?,
        );
        Ok(resp)
    }

    /// The upload `id` of `key`, with its directory.
    async fn upload(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> S3Result<(PathBuf, UploadState, sse::MultipartUpload)> {
        let dir = self.upload_dir(bucket, id)?;
        let d = dir.clone();
        let state = blocking(move || read_state(&d)).await?;
        if state.key != key {
            return Err(no_such_upload());
        }
        let env = Envelope::from_base64(&state.envelope).map_err(lib_err)?;
        let upload = sse::MultipartUpload::from_envelope(env).map_err(convert)?;
        Ok((dir, state, upload))
    }

    pub(super) async fn do_upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let user = self.caller(&req)?;
        let sse = self.sse_request(&req.headers)?;
        let len = declared_len(&req.headers, req.input.content_length)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let number = part_number(input.part_number)?;
        let (dir, _, upload) = self
            .upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let limit = self.inner.settings.max_object_size;
        if len.is_some_and(|n| n > limit) {
            return Err(s3_error!(EntityTooLarge));
        }
        let content_md5 = super::parse_content_md5(input.content_md5.as_deref())?;
        let engine = self.engine_for(&user);
        let reader = body::reader(input.body);
        let (record, sse) = blocking(move || {
            let sealer = upload.sealer(&engine, sse.open_with()).map_err(convert)?;
            let client_failed = reader.client_failed.clone();
            let mut input = CountingReader {
                inner: reader,
                n: 0,
                md5: content_md5.map(|_| <md5::Md5 as md5::Digest>::new()),
                limit,
                too_large: false,
            };
            let record = store_part(&part_path(&dir, number), |out| {
                let mut w = match len {
                    Some(n) => sealer.writer_sized(number, n, out),
                    None => sealer.writer(number, out),
                }
                .map_err(convert)?;
                let copied = io::copy(&mut input, &mut w);
                if input.too_large {
                    return Err(s3_error!(EntityTooLarge));
                }
                if client_failed.load(Ordering::Relaxed) {
                    return Err(s3_error!(
                        IncompleteBody,
                        "The request body could not be read."
                    ));
                }
                copied.map_err(|e| lib_err(objseal::Error::from(e)))?;
                if let (Some(want), Some(h)) = (content_md5, input.md5.take()) {
                    let got: [u8; 16] = md5::Digest::finalize(h).into();
                    if want != got {
                        return Err(s3_error!(BadDigest));
                    }
                }
                Ok(w.finish().map_err(convert)?.record)
            })?;
            Ok((record, sse))
        })
        .await?;
        let mut resp = S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(strip_quotes(&record.etag))),
            ..Default::default()
        });
        let (_, _, upload) = self
            .upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        add_headers(
            &mut resp.headers,
            sse::response_headers(Operation::UploadPart, upload.envelope(), &sse)
                .map_err(convert)?,
        );
        Ok(resp)
    }

    pub(super) async fn do_upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let user = self.caller(&req)?;
        let sse = self.sse_request(&req.headers)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let number = part_number(input.part_number)?;
        let (dir, _, upload) = self
            .upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let src = self.copy_source(&user, &input.copy_source).await?;
        check_conditions(
            &src.obj.meta,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        )
        .map_err(|e| {
            if *e.code() == s3s::S3ErrorCode::NotModified {
                s3_error!(PreconditionFailed)
            } else {
                e
            }
        })?;
        let range = match &input.copy_source_range {
            None => None,
            Some(r) => match ByteRange::parse_header(r) {
                Ok(r @ ByteRange::Bounded { .. }) => Some(r),
                _ => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
                    ));
                }
            },
        };
        let size = src.obj.meta.size;
        if let Some(ByteRange::Bounded { start, end }) = range
            && (end > size || start >= end)
        {
            return Err(s3_error!(
                InvalidRange,
                "The requested range is not satisfiable"
            ));
        }
        let engine = self.engine_for(&user);
        let (record, sse, upload) = blocking(move || {
            let Source { obj, binding } = src;
            let ObjectFile {
                mut file,
                body_start,
                body_len,
                envelope,
                ..
            } = obj;
            let with = sse.copy_source_open_with();
            let (mut reader, len): (Box<dyn Read>, u64) = match range {
                Some(r) => {
                    let rr = sse::open_object_range_reader(
                        &engine, with, &binding, &envelope, file, body_start, body_len, r,
                    )
                    .map_err(lib_err)?;
                    let n = rr.range().end - rr.range().start;
                    (Box::new(rr), n)
                }
                None => {
                    file.seek(SeekFrom::Start(body_start)).map_err(io_err)?;
                    let r = sse::open_object_reader(
                        &engine,
                        with,
                        &binding,
                        &envelope,
                        file.take(body_len),
                    )
                    .map_err(lib_err)?;
                    (Box::new(r), size)
                }
            };
            let sealer = upload.sealer(&engine, sse.open_with()).map_err(convert)?;
            let record = store_part(&part_path(&dir, number), |out| {
                let mut w = sealer.writer_sized(number, len, out).map_err(convert)?;
                io::copy(&mut reader, &mut w).map_err(|e| lib_err(objseal::Error::from(e)))?;
                Ok(w.finish().map_err(convert)?.record)
            })?;
            Ok((record, sse, upload))
        })
        .await?;
        let mut resp = S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(strip_quotes(&record.etag))),
                last_modified: Some(timestamp(record.last_modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        });
        add_headers(
            &mut resp.headers,
            sse::response_headers(Operation::UploadPart, upload.envelope(), &sse)
                .map_err(convert)?,
        );
        Ok(resp)
    }

    pub(super) async fn do_complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let user = self.caller(&req)?;
        let sse = self.sse_request(&req.headers)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let (dir, state, upload) = self
            .upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let requested = requested_parts(&input)?;
        let engine = self.engine_for(&user);
        let dst_path = self.inner.store.object_path(&input.bucket, &input.key);
        let binding_key = input.key.clone();
        let (meta, env, sse) = blocking(move || {
            let records = read_parts(&dir)?;
            let uploaded: Vec<sse::UploadedPart> =
                records.iter().filter_map(PartRecord::uploaded).collect();
            let completed = upload
                .complete(&engine, sse.open_with(), &requested, &uploaded)
                .map_err(convert)?;
            let sizes: Vec<u64> = completed
                .order
                .iter()
                .map(|n| {
                    records
                        .iter()
                        .find(|r| r.number == *n)
                        .map_or(0, |r| r.plaintext_len)
                })
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
            create_dir_private(dst_path.parent().unwrap_or(Path::new("."))).map_err(io_err)?;
            let staged = objseal::fs::StagedFile::create(&dst_path).map_err(lib_err)?;
            let file = staged.file();
            (&*file)
                .write_all(&[0u8; HEADER_LEN as usize])
                .map_err(io_err)?;
            let mut out = CountingWriter {
                inner: BufWriter::with_capacity(256 << 10, file),
                n: 0,
                md5: None,
            };
            for n in &completed.order {
                let Some(part) = read_object_part(&part_path(&dir, *n))? else {
                    return Err(s3_error!(InvalidPart));
                };
                let (mut f, len) = part;
                io::copy(&mut (&mut f).take(len), &mut out).map_err(io_err)?;
            }
            out.flush().map_err(io_err)?;
            let body_len = out.n;
            drop(out);
            let mut meta = state.meta;
            meta.key = binding_key;
            meta.size = completed.envelope.plaintext_len;
            meta.etag = completed.etag.clone();
            meta.last_modified_ms = now_ms();
            meta.parts = Some(u32::try_from(completed.order.len()).unwrap_or(u32::MAX));
            meta.part_sizes = sizes;
            meta.sse = super::sse_name(completed.envelope.mode).to_owned();
            finish_object_file(file, body_len, &completed.envelope, &meta).map_err(io_err)?;
            staged.commit().map_err(lib_err)?;
            let _ = std::fs::remove_dir_all(&dir);
            Ok((meta, completed.envelope, sse))
        })
        .await?;
        let mut resp = S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(ETag::Strong(strip_quotes(&meta.etag))),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        });
        add_headers(
            &mut resp.headers,
            sse::response_headers(Operation::CompleteMultipartUpload, &env, &sse)
                .map_err(convert)?,
        );
        Ok(resp)
    }

    pub(super) async fn do_abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let user = self.caller(&req)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let (dir, _, upload) = self
            .upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        upload.abort();
        blocking(move || std::fs::remove_dir_all(&dir).map_err(io_err)).await?;
        Ok(S3Response::with_status(
            AbortMultipartUploadOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(super) async fn do_list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let user = self.caller(&req)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let (dir, _, _) = self
            .upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let records = blocking(move || read_parts(&dir)).await?;
        let marker = input.part_number_marker.unwrap_or(0);
        let max = input.max_parts.map_or(1000, |m| m.clamp(0, 1000));
        let after: Vec<&PartRecord> = records
            .iter()
            .filter(|r| i64::from(r.number) > i64::from(marker))
            .collect();
        let max_usize = usize::try_from(max).unwrap_or(0);
        let truncated = after.len() > max_usize;
        let page = &after[..after.len().min(max_usize)];
        let parts = page
            .iter()
            .map(|r| Part {
                part_number: i32::try_from(r.number).ok(),
                e_tag: Some(ETag::Strong(strip_quotes(&r.etag))),
                size: i64::try_from(r.plaintext_len).ok(),
                last_modified: Some(timestamp(r.last_modified_ms)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: page
                .last()
                .filter(|_| truncated)
                .and_then(|r| i32::try_from(r.number).ok()),
            is_truncated: Some(truncated),
            parts: Some(parts),
            owner: Some(super::owner(&user)),
            initiator: Some(Initiator {
                display_name: Some(user.clone()),
                id: Some(user),
            }),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    pub(super) async fn do_list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let user = self.caller(&req)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let uploads_dir = self.inner.store.bucket_dir(&input.bucket).join("uploads");
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut all = blocking(move || {
            let mut out = Vec::new();
            for d in read_dir_or_empty(&uploads_dir).map_err(io_err)? {
                let Some(id) = d.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                    continue;
                };
                if !valid_upload_id(&id) {
                    continue;
                }
                if let Ok(state) = read_state(&d)
                    && state.key.starts_with(&prefix)
                {
                    out.push((state.key, id, state.initiated_ms));
                }
            }
            Ok(out)
        })
        .await?;
        all.sort();
        let max = input.max_uploads.map_or(1000, |m| m.clamp(0, 1000));
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone().unwrap_or_default();
        let after: Vec<_> = all
            .into_iter()
            .filter(|(k, id, _)| {
                key_marker.is_empty()
                    || *k > key_marker
                    || (*k == key_marker && !id_marker.is_empty() && *id > id_marker)
            })
            .collect();
        let max_usize = usize::try_from(max).unwrap_or(0);
        let truncated = after.len() > max_usize;
        let page = &after[..after.len().min(max_usize)];
        let uploads = page
            .iter()
            .map(|(k, id, t)| MultipartUpload {
                key: Some(k.clone()),
                upload_id: Some(id.clone()),
                initiated: Some(timestamp(*t)),
                owner: Some(super::owner(&user)),
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
            next_key_marker: page.last().filter(|_| truncated).map(|(k, _, _)| k.clone()),
            next_upload_id_marker: page
                .last()
                .filter(|_| truncated)
                .map(|(_, id, _)| id.clone()),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }

    pub(super) async fn do_get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let user = self.caller(&req)?;
        let sse = self.sse_request(&req.headers)?;
        let input = req.input;
        self.owned_bucket(&input.bucket, &user).await?;
        let obj = self.open_file(&input.bucket, &input.key).await?;
        let binding = super::binding(&input.bucket, &input.key)?;
        let engine = self.engine_for(&user);
        let meta = obj.meta.clone();
        blocking(move || {
            let ObjectFile {
                mut file,
                body_start,
                body_len,
                envelope,
                ..
            } = obj;
            if envelope.mode == objseal::Mode::SseC || sse.customer_key().is_some() {
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
            Ok(())
        })
        .await?;
        // The header is a comma-separated list, which may arrive as one item.
        let wants = |a: &str| {
            input
                .object_attributes
                .iter()
                .flat_map(|x| x.as_str().split(','))
                .any(|x| x.trim() == a)
        };
        let object_parts =
            (wants(ObjectAttributes::OBJECT_PARTS) && meta.parts.is_some()).then(|| {
                let marker = input.part_number_marker.unwrap_or(0);
                let max = input.max_parts.map_or(1000, |m| m.clamp(0, 1000));
                let all: Vec<ObjectPart> = meta
                    .part_sizes
                    .iter()
                    .enumerate()
                    .map(|(i, s)| ObjectPart {
                        part_number: i32::try_from(i + 1).ok(),
                        size: i64::try_from(*s).ok(),
                        ..Default::default()
                    })
                    .filter(|p| p.part_number.unwrap_or(0) > marker)
                    .collect();
                let max_usize = usize::try_from(max).unwrap_or(0);
                let truncated = all.len() > max_usize;
                let page: Vec<ObjectPart> = all.into_iter().take(max_usize).collect();
                GetObjectAttributesParts {
                    total_parts_count: meta.parts.and_then(|p| i32::try_from(p).ok()),
                    part_number_marker: input.part_number_marker,
                    next_part_number_marker: page
                        .last()
                        .filter(|_| truncated)
                        .and_then(|p| p.part_number),
                    max_parts: Some(max),
                    is_truncated: Some(truncated),
                    parts: Some(page),
                }
            });
        Ok(S3Response::new(GetObjectAttributesOutput {
            e_tag: wants(ObjectAttributes::ETAG).then(|| ETag::Strong(strip_quotes(&meta.etag))),
            object_size: wants(ObjectAttributes::OBJECT_SIZE)
                .then(|| i64::try_from(meta.size).unwrap_or(i64::MAX)),
            storage_class: wants(ObjectAttributes::STORAGE_CLASS)
                .then(|| StorageClass::from_static(StorageClass::STANDARD)),
            last_modified: Some(timestamp(meta.last_modified_ms)),
            object_parts,
            ..Default::default()
        }))
    }
}

fn check_user_meta_if(input: &CopyObjectInput) -> S3Result<()> {
    super::check_user_meta(input.metadata.as_ref())
}

/// A part file opened at its body, with the body's length.
fn read_object_part(path: &Path) -> S3Result<Option<(std::fs::File, u64)>> {
    Ok(read_sections(path)
        .map_err(io_err)?
        .map(|(f, len, _, _)| (f, len)))
}
