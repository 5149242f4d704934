//! Bodies between the blocking pool (where objects are sealed and opened)
//! and the upstream client's async streams.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::Mutex;

use bytes::Bytes;
use futures::StreamExt;
use objseal::body::ReadAt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::client::{ByteStream, Client};

/// Bytes gathered before a piece goes to the upstream request.
const PIECE: usize = 256 << 10;
/// Pieces waiting for the upstream connection.
const DEPTH: usize = 4;

/// A `Write` on the blocking pool whose bytes become an upstream request
/// body ([`ChannelWriter::new`] gives the stream). Dropping it without
/// [`ChannelWriter::finish`] fails the stream, so the upstream request is
/// cut short and stores nothing.
pub struct ChannelWriter {
    tx: Option<mpsc::Sender<io::Result<Bytes>>>,
    buf: Vec<u8>,
    /// Bytes written.
    pub written: u64,
}

impl ChannelWriter {
    /// A writer and the stream its bytes come out of.
    pub fn new() -> (ChannelWriter, ByteStream) {
        let (tx, rx) = mpsc::channel(DEPTH);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        (
            ChannelWriter {
                tx: Some(tx),
                buf: Vec::with_capacity(PIECE),
                written: 0,
            },
            Box::pin(stream),
        )
    }

    fn send(&mut self, item: io::Result<Bytes>) -> io::Result<()> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::other("upstream body already ended"))?;
        tx.blocking_send(item)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upstream request ended"))
    }

    fn push(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
            self.send(Ok(piece))?;
        }
        Ok(())
    }

    /// Sends what is buffered and ends the body.
    pub fn finish(mut self) -> io::Result<()> {
        self.push()?;
        self.tx = None;
        Ok(())
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        self.written += buf.len() as u64;
        if self.buf.len() >= PIECE {
            self.push()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            // Not finished: the request must fail, not store a short body.
            let _ = tx.try_send(Err(io::Error::other("object body abandoned")));
        }
    }
}

/// A blocking `Read` over an upstream response body (on the blocking pool).
pub struct StreamReader {
    handle: Handle,
    stream: ByteStream,
    current: Bytes,
    done: bool,
}

impl StreamReader {
    /// Reads `stream`, driving it on `handle`.
    pub fn new(handle: Handle, stream: ByteStream) -> Self {
        StreamReader {
            handle,
            stream,
            current: Bytes::new(),
            done: false,
        }
    }
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.handle.block_on(self.stream.next()) {
                None => self.done = true,
                Some(Ok(piece)) => self.current = piece,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// An upstream object's body as a [`ReadAt`] for the range readers: bytes
/// known beforehand (part headers from the manifest, the body header from
/// the trailer) are served from memory; other reads come from one upstream
/// range GET that is read forward and replaced when a read jumps. Every GET
/// is conditional on the upstream ETag the object was resolved with, so a
/// replaced object fails instead of mixing two versions.
pub struct UpstreamSource {
    handle: Handle,
    client: Client,
    bucket: String,
    key: String,
    upstream_etag: String,
    body_len: u64,
    known: BTreeMap<u64, Vec<u8>>,
    /// The end (exclusive) of what a new GET asks for at most.
    window_end: u64,
    /// The open GET: position, end (exclusive) and reader.
    current: Mutex<Option<(u64, u64, StreamReader)>>,
}

impl UpstreamSource {
    /// A source over the first `body_len` bytes of `bucket/key` as of
    /// `upstream_etag`.
    pub fn new(
        handle: Handle,
        client: Client,
        bucket: &str,
        key: &str,
        upstream_etag: &str,
        body_len: u64,
        known: BTreeMap<u64, Vec<u8>>,
    ) -> Self {
        UpstreamSource {
            handle,
            client,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upstream_etag: upstream_etag.to_owned(),
            body_len,
            known,
            window_end: body_len,
            current: Mutex::new(None),
        }
    }

    /// Limits the GETs to bytes before `end` (the last chunk a range needs).
    pub fn limit_to(&mut self, end: u64) {
        self.window_end = end.min(self.body_len);
    }

    fn known_bytes(&self, buf: &mut [u8], offset: u64) -> Option<usize> {
        let (start, bytes) = self.known.range(..=offset).next_back()?;
        let at = usize::try_from(offset - start).ok()?;
        let avail = bytes.get(at..).filter(|b| !b.is_empty())?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        Some(n)
    }
}

impl ReadAt for UpstreamSource {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if buf.is_empty() || offset >= self.body_len {
            return Ok(0);
        }
        if let Some(n) = self.known_bytes(buf, offset) {
            return Ok(n);
        }
        let mut cur = self
            .current
            .lock()
            .map_err(|_| io::Error::other("upstream source poisoned"))?;
        // Forward within the open GET: skip the gap.
        if let Some((pos, end, reader)) = cur.as_mut()
            && offset >= *pos
            && offset < *end
            && offset - *pos <= 4 << 20
        {
            let mut skip = offset - *pos;
            let mut scratch = [0u8; 16 << 10];
            while skip > 0 {
                let want = usize::try_from(skip.min(scratch.len() as u64)).unwrap_or(0);
                let n = reader.read(&mut scratch[..want])?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                skip -= n as u64;
                *pos += n as u64;
            }
        } else {
            let end = if self.window_end > offset {
                self.window_end
            } else {
                self.body_len
            };
            let mut headers = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&self.upstream_etag) {
                headers.insert(http::header::IF_MATCH, v);
            }
            let client = self.client.clone();
            let (bucket, key) = (self.bucket.clone(), self.key.clone());
            let resp = self
                .handle
                .block_on(async move {
                    client
                        .get_object(&bucket, &key, Some((offset, end - 1)), headers)
                        .await
                })
                .map_err(|e| {
                    if e.status == 412 {
                        io::Error::other("the object was replaced while it was read")
                    } else {
                        io::Error::other(e.to_string())
                    }
                })?;
            *cur = Some((
                offset,
                end,
                StreamReader::new(self.handle.clone(), resp.body),
            ));
        }
        let Some((pos, _, reader)) = cur.as_mut() else {
            return Err(io::Error::other("no upstream read open"));
        };
        let n = reader.read(buf)?;
        *pos += n as u64;
        Ok(n)
    }
}
