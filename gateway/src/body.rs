//! Moving request bodies from async streams to the blocking pool, and
//! counting and hashing what passes.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use tokio::sync::mpsc;

/// Pieces of a request body waiting between the connection and the
/// sealing task (each at most what hyper read at once).
const DEPTH: usize = 4;

/// A `Read` over a request body forwarded by an async task; blocks (on the
/// blocking pool) while no piece is there.
pub struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
    /// Set when the client's body failed (disconnect, bad chunk signature).
    pub client_failed: Arc<AtomicBool>,
}

impl core::fmt::Debug for ChannelReader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChannelReader").finish_non_exhaustive()
    }
}

/// Forwards `body` (if any) into a channel from an async task; returns the
/// blocking side.
pub fn reader(body: Option<s3s::dto::StreamingBlob>) -> ChannelReader {
    let (tx, rx) = mpsc::channel(DEPTH);
    if let Some(mut body) = body {
        tokio::spawn(async move {
            while let Some(piece) = body.next().await {
                let stop = piece.is_err();
                if tx.send(piece.map_err(|e| e.to_string())).await.is_err() || stop {
                    break;
                }
            }
        });
    }
    ChannelReader {
        rx,
        current: Bytes::new(),
        client_failed: Arc::new(AtomicBool::new(false)),
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(piece)) => self.current = piece,
                Some(Err(e)) => {
                    self.client_failed.store(true, Ordering::Relaxed);
                    return Err(io::Error::other(format!("request body: {e}")));
                }
            }
        }
        let n = self.current.len().min(buf.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Counts (and optionally hashes) what is read through it, and refuses to
/// read past `limit` bytes.
pub struct CountingReader<R> {
    /// The source.
    pub inner: R,
    /// Bytes read so far.
    pub n: u64,
    /// MD5 of what was read, when wanted.
    pub md5: Option<Md5>,
    /// The most bytes accepted.
    pub limit: u64,
    /// Set when the limit was passed.
    pub too_large: bool,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        if self.n > self.limit {
            self.too_large = true;
            return Err(io::Error::other("request body over the size limit"));
        }
        if let Some(h) = &mut self.md5 {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Counts (and optionally hashes) what is written through it.
pub struct CountingWriter<W> {
    /// The destination.
    pub inner: W,
    /// Bytes written so far.
    pub n: u64,
    /// MD5 of what was written, when wanted.
    pub md5: Option<Md5>,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        if let Some(h) = &mut self.md5 {
            h.update(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}
