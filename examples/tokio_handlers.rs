//! Streaming S3 handlers on tokio, built on objseal's public API alone:
//! PutObject (declared or unknown length), GetObject with `Range`,
//! multipart upload with parts sent out of order, and CopyObject into
//! another SSE mode. Request bodies come in as streams of `Bytes` (as hyper
//! or s3s hand them over) and responses go out as streams; no object or
//! part is ever whole in memory, and all crypto, KMS and file work runs on
//! tokio's blocking pool (`objseal::aio`).
//!
//! Storage layout (one directory): `NAME.body` holds the sealed body and
//! `NAME.env` the envelope (base64, as object metadata would), plus the
//! ETag and the plaintext length. A real server adds locking and bucket
//! namespaces.
//!
//! Run: `cargo run --example tokio_handlers --features tokio`

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_core::Stream;
use objseal::aio::{self, ByteStream};
use objseal::body::{ByteRange, content_range};
use objseal::fs::StagedFile;
use objseal::sse::{
    self, BucketEncryption, CompletedPart, CopyOptions, MultipartUpload, Operation, S3Error,
    SseRequest, Transport, UploadedPart,
};
use objseal::{Engine, Envelope, Keyring, LocalKms, ObjectBinding};

type Headers = Vec<(String, String)>;

/// What a handler needs: the engine, the bucket's rules, where objects live.
#[derive(Clone)]
struct Store {
    engine: Arc<Engine>,
    bucket: Arc<BucketEncryption>,
    dir: PathBuf,
}

/// What the store keeps beside a body.
struct Meta {
    envelope: Envelope,
    etag: String,
}

impl Store {
    fn body_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.body"))
    }

    fn save_meta(&self, key: &str, meta: &Meta) -> Result<(), S3Error> {
        let text = format!("{}\n{}\n", meta.envelope.to_base64()?, meta.etag);
        let staged = StagedFile::create(self.dir.join(format!("{key}.env")))?;
        staged.file().write_all(text.as_bytes()).map_err(internal)?;
        staged.commit()?;
        Ok(())
    }

    fn load_meta(&self, key: &str) -> Result<Meta, S3Error> {
        let text = std::fs::read_to_string(self.dir.join(format!("{key}.env")))
            .map_err(|_| S3Error::new("NoSuchKey", 404, "The specified key does not exist."))?;
        let mut lines = text.lines();
        let envelope = Envelope::from_base64(lines.next().unwrap_or_default())?;
        let etag = lines.next().unwrap_or_default().to_owned();
        Ok(Meta { envelope, etag })
    }
}

fn internal(e: impl std::fmt::Display) -> S3Error {
    S3Error::internal().with_source(objseal::Error::Io {
        path: None,
        source: io::Error::other(e.to_string()),
    })
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// PutObject: the body streams through a seal writer into a staged file;
/// the envelope is kept apart. Without `Content-Length` (a chunked upload)
/// the length is left to the body.
async fn put_object(
    store: &Store,
    key: &str,
    headers: Headers,
    body: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
) -> Result<Headers, S3Error> {
    let (store2, key2) = (store.clone(), key.to_owned());
    let (meta, mut out) = aio::consume_stream(body, move |input: &mut dyn Read| {
        Ok(put_blocking(&store2, &key2, &headers, input))
    })
    .await??;
    store.save_meta(key, &meta)?;
    out.push(("ETag".into(), meta.etag));
    Ok(out)
}

fn put_blocking(
    store: &Store,
    key: &str,
    headers: &Headers,
    input: &mut dyn Read,
) -> Result<(Meta, Headers), S3Error> {
    let request = SseRequest::from_headers(headers.clone(), Transport::Https)?;
    let mode = store.bucket.resolve(&request)?.seal_mode();
    let binding = ObjectBinding::new("bucket", key)?;
    let len = header(headers, "content-length").and_then(|v| v.parse::<u64>().ok());
    let staged = StagedFile::create(store.body_path(key))?;
    let (envelope, mut writer) = store.engine.seal_writer_detached(
        &mode,
        &binding,
        len,
        io::BufWriter::new(staged.file()),
    )?;
    // The ETag by S3's rule: MD5 of the plaintext for SSE-S3, else of the
    // stored bytes (hashed back from the file once written).
    let mut etag = sse::EtagHasher::new(envelope.mode);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| S3Error::from(objseal::Error::from(e)))?;
        if n == 0 {
            break;
        }
        etag.plaintext(&buf[..n]);
        writer
            .write_all(&buf[..n])
            .map_err(|e| S3Error::from(objseal::Error::from(e)))?;
    }
    writer.finish()?.flush().map_err(internal)?;
    if !etag.wants_plaintext() {
        let mut f = staged.file();
        io::Seek::rewind(&mut f).map_err(internal)?;
        io::copy(&mut f, &mut HashWriter(&mut etag)).map_err(internal)?;
    }
    staged.commit()?;
    let out = sse::response_headers(Operation::Put, &envelope, &request)?;
    let out = out.into_iter().map(|(n, v)| (n.to_owned(), v)).collect();
    Ok((
        Meta {
            envelope,
            etag: etag.finish(),
        },
        out,
    ))
}

struct HashWriter<'a>(&'a mut sse::EtagHasher);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.stored(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// GetObject: unwraps the key and checks what the range needs on the
/// blocking pool, then answers 200 or 206 with a stream that decrypts only
/// the chunks the range covers, batch by batch.
async fn get_object(
    store: &Store,
    key: &str,
    headers: Headers,
) -> Result<(u16, Headers, ByteStream), S3Error> {
    let meta = store.load_meta(key)?;
    let (store, key) = (store.clone(), key.to_owned());
    tokio::task::spawn_blocking(move || {
        let request = SseRequest::from_headers(headers.clone(), Transport::Https)?;
        let range = header(&headers, "range").and_then(|v| ByteRange::parse_header(v).ok());
        let binding = ObjectBinding::new("bucket", &key)?;
        let file = Arc::new(std::fs::File::open(store.body_path(&key)).map_err(internal)?);
        let body_len = file.metadata().map_err(internal)?.len();
        let reader = sse::open_object_range_reader(
            &store.engine,
            request.open_with(),
            &binding,
            &meta.envelope,
            file,
            0,
            body_len,
            range.unwrap_or(ByteRange::from(..)),
        )?;
        let (r, len) = (reader.range(), reader.object_len());
        let mut out: Headers = sse::response_headers(Operation::Get, &meta.envelope, &request)?
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v))
            .collect();
        out.push(("ETag".into(), meta.etag.clone()));
        out.push(("Content-Length".into(), (r.end - r.start).to_string()));
        let status = if range.is_some() && r.start < r.end {
            out.push(("Content-Range".into(), content_range(&r, len)));
            206
        } else {
            200
        };
        Ok((status, out, aio::read_stream(move || Ok(reader))))
    })
    .await
    .map_err(internal)?
}

/// UploadPart: streams one part into its own file; returns its record.
async fn upload_part(
    store: &Store,
    upload: Arc<MultipartUpload>,
    number: u32,
    headers: Headers,
    body: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
) -> Result<UploadedPart, S3Error> {
    let store = store.clone();
    aio::consume_stream(body, move |input: &mut dyn Read| {
        Ok((|| {
            let request = SseRequest::from_headers(headers, Transport::Https)?;
            let sealer = upload.sealer(&store.engine, request.open_with())?;
            let key = upload.binding().key().to_owned();
            let part = std::fs::File::create(store.dir.join(format!("{key}.part{number}")))
                .map_err(internal)?;
            let mut w = sealer.writer(number, io::BufWriter::new(part))?;
            io::copy(input, &mut w).map_err(|e| S3Error::from(objseal::Error::from(e)))?;
            let written = w.finish()?;
            written
                .inner
                .into_inner()
                .map_err(internal)?
                .sync_all()
                .map_err(internal)?;
            Ok(written.record)
        })())
    })
    .await?
}

/// CompleteMultipartUpload: checks the list, then joins the part files into
/// one body (a real store might keep them apart: `sse::MultipartObject`
/// reads either way).
async fn complete(
    store: &Store,
    upload: Arc<MultipartUpload>,
    requested: Vec<CompletedPart>,
    uploaded: Vec<UploadedPart>,
) -> Result<String, S3Error> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let request = SseRequest::none();
        let done = upload.complete(&store.engine, request.open_with(), &requested, &uploaded)?;
        let key = upload.binding().key().to_owned();
        let staged = StagedFile::create(store.body_path(&key))?;
        let mut out = io::BufWriter::new(staged.file());
        for n in &done.order {
            let mut part =
                std::fs::File::open(store.dir.join(format!("{key}.part{n}"))).map_err(internal)?;
            io::copy(&mut part, &mut out).map_err(internal)?;
        }
        out.flush().map_err(internal)?;
        drop(out);
        staged.commit()?;
        store.save_meta(
            &key,
            &Meta {
                envelope: done.envelope,
                etag: done.etag.clone(),
            },
        )?;
        Ok(done.etag)
    })
    .await
    .map_err(internal)?
}

/// CopyObject: source body streamed through the copy into a new body
/// (or, onto itself without re-encryption, only the envelope changes).
async fn copy_object(
    store: &Store,
    from: &str,
    to: &str,
    headers: Headers,
) -> Result<String, S3Error> {
    let meta = store.load_meta(from)?;
    let (store, from, to) = (store.clone(), from.to_owned(), to.to_owned());
    tokio::task::spawn_blocking(move || {
        let request = SseRequest::from_headers(headers, Transport::Https)?;
        let source = std::fs::File::open(store.body_path(&from)).map_err(internal)?;
        let staged = StagedFile::create(store.body_path(&to))?;
        let (envelope, etag) = {
            let done = sse::copy_stream(
                &store.engine,
                &request,
                &store.bucket,
                &ObjectBinding::new("bucket", &from)?,
                &meta.envelope,
                io::BufReader::new(source),
                &ObjectBinding::new("bucket", &to)?,
                io::BufWriter::new(staged.file()),
                CopyOptions::default(),
            )?;
            let sse::CopyStreamOutcome {
                envelope,
                etag,
                dest,
                ..
            } = done;
            dest.into_inner().map_err(internal)?;
            (envelope, etag)
        };
        staged.commit()?;
        store.save_meta(
            &to,
            &Meta {
                envelope,
                etag: etag.clone(),
            },
        )?;
        Ok(etag)
    })
    .await
    .map_err(internal)?
}

/// A request body: `len` bytes in pieces of `piece`, made on the fly.
fn body(len: usize, piece: usize) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let data: Vec<Bytes> = (0..len)
        .step_by(piece)
        .map(|at| {
            Bytes::from(
                (at..(at + piece).min(len))
                    .map(|i| (i % 253) as u8)
                    .collect::<Vec<u8>>(),
            )
        })
        .collect();
    aio::iter_stream(data)
}

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let kms = Arc::new(LocalKms::open(
        dir.path().join("kms"),
        "local-1",
        "000000000000",
    )?);
    kms.create_key_with_alias("example", "alias/example", "admin")?;
    let store = Store {
        engine: Arc::new(
            Engine::builder()
                .keyring(Arc::new(Keyring::in_memory("example")?))
                .kms(kms)
                .build(),
        ),
        bucket: Arc::new(BucketEncryption::default().allow_sse_c()),
        dir: dir.path().to_path_buf(),
    };

    // PUT 3 MB with a declared length (SSE-S3), and a chunked upload of
    // unknown length (SSE-KMS).
    let len = 3_000_000;
    let hs = put_object(
        &store,
        "a",
        h(&[("content-length", "3000000")]),
        body(len, 64 * 1024),
    )
    .await?;
    println!("PUT a: {hs:?}");
    let kms_headers = h(&[
        ("x-amz-server-side-encryption", "aws:kms"),
        (
            "x-amz-server-side-encryption-aws-kms-key-id",
            "alias/example",
        ),
    ]);
    put_object(&store, "b", kms_headers, body(100_000, 7_000)).await?;

    // GET a range across chunk boundaries.
    let (status, hs, stream) =
        get_object(&store, "a", h(&[("range", "bytes=16000-16999")])).await?;
    let got = stream.collect_bytes().await?;
    assert_eq!(status, 206);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, b)| *b == ((16_000 + i) % 253) as u8)
    );
    println!("GET a 16000-16999: {status}, {hs:?}");

    // Multipart: three parts sent out of order, each streamed to a file.
    let upload = Arc::new(MultipartUpload::create(
        &store.engine,
        &objseal::SealMode::S3,
        &ObjectBinding::new("bucket", "mp")?,
    )?);
    let sizes = [5_300_000usize, 5_300_000, 1_000];
    let mut records = Vec::new();
    for n in [3u32, 1, 2] {
        let part = upload_part(
            &store,
            upload.clone(),
            n,
            Vec::new(),
            body(sizes[n as usize - 1], 128 * 1024),
        )
        .await?;
        records.push(part);
    }
    let requested: Vec<CompletedPart> = {
        let mut r: Vec<_> = records
            .iter()
            .map(|p| CompletedPart {
                number: p.number,
                etag: p.etag.clone(),
            })
            .collect();
        r.sort_by_key(|p| p.number);
        r
    };
    let etag = complete(&store, upload, requested, records).await?;
    println!("multipart mp: ETag {etag}");
    let (_, _, stream) = get_object(&store, "mp", h(&[("range", "bytes=5299990-5300009")])).await?;
    println!(
        "GET mp across parts 1|2: {} bytes",
        stream.collect_bytes().await?.len()
    );

    // Copy the SSE-S3 object into SSE-C, then read it back with the key.
    let key = sse::SseCustomerKey::new(objseal::CustomerKey::generate()?);
    let ssec: Headers = key
        .to_headers(false)
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect();
    let etag = copy_object(&store, "a", "c", ssec.clone()).await?;
    let (status, _, stream) = get_object(&store, "c", ssec).await?;
    let all = stream.collect_bytes().await?;
    assert_eq!((status, all.len()), (200, len));
    println!(
        "COPY a -> c (SSE-C): ETag {etag}, GET 200 with {} bytes",
        all.len()
    );
    // Without the key: S3's 400.
    match get_object(&store, "c", Vec::new()).await {
        Err(e) => println!("GET c without its key: {} {}", e.status, e.code),
        Ok(_) => unreachable!("an SSE-C object needs its key"),
    }
    Ok(())
}
