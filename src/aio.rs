//! Async adapters for servers on tokio (feature `tokio`): seal and open
//! objects as byte streams, in bounded memory, without blocking the
//! runtime's worker threads.
//!
//! **Where the work runs.** Every adapter runs the library's synchronous
//! streaming code ([`Engine::seal_writer`], [`Engine::open_reader`], or any
//! reader you build, such as a range reader) on tokio's blocking pool
//! (`spawn_blocking`), with the chunk work fanned out on rayon as usual.
//! The async side only moves [`Bytes`] between your stream and that task
//! through bounded channels. So:
//!
//! - no AES, hashing, fsync or key-management call ever runs on a worker
//!   thread;
//! - a [`Kms`](crate::keys::Kms) that talks to a remote service may block
//!   (it runs on the blocking pool); one built on async code may bridge
//!   with `tokio::runtime::Handle::block_on`, which is allowed there (and
//!   panics if called on a worker thread, which is why the synchronous
//!   [`Engine`] methods must not be called from async code with such a
//!   KMS);
//! - memory is bounded: at most [`CHANNEL_DEPTH`] pieces of at most
//!   [`PIECE_LEN`] bytes wait in each direction, plus the engine's batches
//!   (two batches of chunks; see [`crate::body::SealWriter`]).
//!
//! Dropping an output stream cancels its task: the blocking task sees the
//! closed channel at its next write and stops; nothing half-written is
//! produced except what you already consumed (an object you store from a
//! cancelled stream is incomplete and will not open).
//!
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use objseal::aio::{self, OpenSpec, SealSpec};
//! use objseal::{Engine, Keyring, ObjectBinding};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let engine = Arc::new(Engine::builder().keyring(Arc::new(Keyring::in_memory("k")?)).build());
//! let obj = ObjectBinding::new("bucket", "key")?;
//! // A request body as a stream of pieces, length unknown (chunked upload).
//! let body = aio::iter_stream(vec![Bytes::from_static(b"hello, "), Bytes::from_static(b"world")]);
//! let sealed = aio::seal_stream(engine.clone(), SealSpec::S3, obj.clone(), None, body);
//! let stored = sealed.collect_bytes().await?;
//! let opened = aio::open_stream(engine, OpenSpec::Managed, obj, aio::iter_stream(vec![stored]));
//! assert_eq!(&opened.collect_bytes().await?[..], b"hello, world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use crate::engine::{Engine, OpenWith, SealMode};
use crate::error::Error;
use crate::format::{Envelope, ObjectBinding};
use crate::keys::{CustomerKey, EncryptionContext};

/// Pieces in flight in each direction between the async side and the
/// blocking task.
pub const CHANNEL_DEPTH: usize = 8;
/// Largest piece sent to an output stream, in bytes.
pub const PIECE_LEN: usize = 256 * 1024;

/// How to seal, owned (for tasks that outlive the request's borrows); see
/// [`SealMode`].
#[derive(Debug, Clone)]
pub enum SealSpec {
    /// SSE-S3.
    S3,
    /// SSE-KMS.
    Kms {
        /// The KMS key (id, ARN or alias); `None` for the engine's default.
        key_id: Option<String>,
        /// The caller's encryption context.
        context: Option<EncryptionContext>,
        /// Use an S3 Bucket Key.
        bucket_key: bool,
    },
    /// SSE-C under the customer's key.
    C(Arc<CustomerKey>),
}

impl SealSpec {
    /// The borrowed mode the engine takes.
    pub fn as_mode(&self) -> SealMode<'_> {
        match self {
            SealSpec::S3 => SealMode::S3,
            SealSpec::Kms {
                key_id,
                context,
                bucket_key,
            } => SealMode::Kms {
                key_id: key_id.as_deref(),
                context: context.as_ref(),
                bucket_key: *bucket_key,
            },
            SealSpec::C(key) => SealMode::C(key),
        }
    }
}

/// What the caller brings to open an object, owned; see [`OpenWith`].
#[derive(Debug, Clone)]
pub enum OpenSpec {
    /// The engine's keyring or KMS.
    Managed,
    /// The customer's SSE-C key.
    Customer(Arc<CustomerKey>),
}

impl OpenSpec {
    /// The borrowed form the engine takes.
    pub fn as_open_with(&self) -> OpenWith<'_> {
        match self {
            OpenSpec::Managed => OpenWith::Managed,
            OpenSpec::Customer(key) => OpenWith::Customer(key),
        }
    }
}

/// A stream of output bytes from a blocking task, ending with the task's
/// error if it failed. It is also an [`AsyncRead`]. The task's result
/// (what it reports once all output was produced, e.g. the envelope) is
/// [`ByteStream::finish`]ed from the stream once drained.
pub struct ByteStream<T = ()> {
    rx: mpsc::Receiver<Result<Bytes, Error>>,
    task: Option<tokio::task::JoinHandle<Result<T, Error>>>,
    /// What `poll_read` has not handed out yet.
    pending: Bytes,
    failed: bool,
}

impl<T> core::fmt::Debug for ByteStream<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ByteStream")
            .field("pending", &self.pending.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> ByteStream<T> {
    /// Runs `work` on the blocking pool with a writer whose bytes become
    /// this stream. `work`'s error ends the stream with that error.
    pub fn from_writer_task(
        work: impl FnOnce(&mut dyn Write) -> Result<T, Error> + Send + 'static,
    ) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let task = tokio::task::spawn_blocking(move || {
            let mut out = ChannelWriter { tx: tx.clone() };
            let result = work(&mut out);
            if let Err(e) = &result {
                // The consumer may be gone; then nobody needs the error.
                let _ = tx.blocking_send(Err(Error::Io {
                    path: None,
                    source: io::Error::other(e.to_string()),
                }));
            }
            result
        });
        ByteStream {
            rx,
            task: Some(task),
            pending: Bytes::new(),
            failed: false,
        }
    }

    /// Drains the stream into one buffer (for small objects and tests),
    /// then returns it.
    pub async fn collect_bytes(mut self) -> Result<Bytes, Error> {
        let mut out = BytesMut::new();
        while let Some(piece) = self.next_piece().await {
            out.extend_from_slice(&piece?);
        }
        self.finish().await?;
        Ok(out.freeze())
    }

    /// The next piece of output, `None` at the end.
    pub async fn next_piece(&mut self) -> Option<Result<Bytes, Error>> {
        if !self.pending.is_empty() {
            return Some(Ok(std::mem::take(&mut self.pending)));
        }
        std::future::poll_fn(|cx| self.rx.poll_recv(cx)).await
    }

    /// Waits for the task and returns its result: the error it failed with
    /// (the typed error, unlike the stream's last item), or what it
    /// reported. Call it after the stream ended.
    pub async fn finish(mut self) -> Result<T, Error> {
        // Unblock a task still writing: its output is dropped.
        self.rx.close();
        match self.task.take() {
            Some(task) => task.await.map_err(|e| Error::Io {
                path: None,
                source: io::Error::other(format!("the sealing task ended abnormally: {e}")),
            })?,
            None => Err(Error::Io {
                path: None,
                source: io::Error::other("the task's result was already taken"),
            }),
        }
    }
}

impl<T> Stream for ByteStream<T> {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if !self.pending.is_empty() {
            return Poll::Ready(Some(Ok(std::mem::take(&mut self.pending))));
        }
        self.rx.poll_recv(cx)
    }
}

impl<T> AsyncRead for ByteStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.failed {
            return Poll::Ready(Err(io::Error::other("the stream already failed")));
        }
        while self.pending.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Ok(piece))) => self.pending = piece,
                Poll::Ready(Some(Err(e))) => {
                    self.failed = true;
                    return Poll::Ready(Err(e.into_io()));
                }
            }
        }
        let n = self.pending.len().min(buf.remaining());
        let piece = self.pending.split_to(n);
        buf.put_slice(&piece);
        Poll::Ready(Ok(()))
    }
}

/// A `Write` whose bytes go to a [`ByteStream`], in pieces of at most
/// [`PIECE_LEN`] bytes; blocks (on the blocking pool) while the consumer is
/// [`CHANNEL_DEPTH`] pieces behind.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, Error>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(PIECE_LEN);
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
            .map_err(|_| {
                io::Error::new(io::ErrorKind::BrokenPipe, "the output stream was dropped")
            })?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A `Read` over pieces forwarded from an async stream (by a task that
/// [`input_reader`] spawns); blocks on the blocking pool while none is
/// there.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(piece) => self.current = piece?,
            }
        }
        let n = self.current.len().min(buf.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Forwards `input` into a channel from an async task and returns the
/// blocking side's reader.
fn input_reader<S>(input: S) -> ChannelReader
where
    S: Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    tokio::spawn(async move {
        let mut input = std::pin::pin!(input);
        while let Some(piece) = std::future::poll_fn(|cx| input.as_mut().poll_next(cx)).await {
            let stop = piece.is_err();
            // The blocking side stopped reading (it failed or finished).
            if tx.send(piece).await.is_err() || stop {
                break;
            }
        }
    });
    ChannelReader {
        rx,
        current: Bytes::new(),
    }
}

/// What sealing a stream reports once the output ended.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The object's envelope (also at the start of the output).
    pub envelope: Envelope,
    /// Plaintext bytes sealed.
    pub plaintext_len: u64,
    /// Bytes of output (envelope and body).
    pub stored_len: u64,
}

/// Seals `input` (the plaintext, e.g. a request body) as object `binding`
/// under `mode`; the output stream is the stored object, envelope then
/// body. With `len` the input must be exactly that long
/// ([`crate::BodyError::DeclaredLength`] otherwise, S3's 400
/// `IncompleteBody` when short); without it the length is left to the body
/// (a chunked upload). Key wrapping (and any KMS request) happens on the
/// blocking pool.
pub fn seal_stream<S>(
    engine: Arc<Engine>,
    mode: SealSpec,
    binding: ObjectBinding,
    len: Option<u64>,
    input: S,
) -> ByteStream<Sealed>
where
    S: Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    let mut reader = input_reader(input);
    ByteStream::from_writer_task(move |out| {
        let mut counted = Counting { inner: out, n: 0 };
        let mode = mode.as_mode();
        let mut w = match len {
            Some(len) => engine.seal_writer(&mode, &binding, len, &mut counted)?,
            None => engine.seal_writer_unsized(&mode, &binding, &mut counted)?,
        };
        let plaintext_len = io::copy(&mut reader, &mut w)?;
        let mut envelope = w.envelope().clone();
        w.finish()?;
        envelope.plaintext_len = plaintext_len;
        Ok(Sealed {
            envelope,
            plaintext_len,
            stored_len: counted.n,
        })
    })
}

/// Opens a stored object (envelope then body) arriving as `input`; the
/// output stream is the plaintext. As with [`Engine::open_reader`], the
/// output may end with an error after authentic pieces: a server that
/// already sent a status must then abort the response.
pub fn open_stream<S>(
    engine: Arc<Engine>,
    with: OpenSpec,
    binding: ObjectBinding,
    input: S,
) -> ByteStream<Envelope>
where
    S: Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    let reader = input_reader(input);
    ByteStream::from_writer_task(move |out| {
        let mut r = engine.open_reader(with.as_open_with(), &binding, reader)?;
        io::copy(&mut r, out)?;
        Ok(r.envelope().clone())
    })
}

/// Runs `work` on the blocking pool with a `Read` over `input` (a request
/// body), and returns what it returns: for any synchronous consumer of a
/// body, such as a part writer ([`crate::sse::PartSealer::writer`]) or a
/// copy ([`crate::sse::copy_stream`]) into storage.
pub async fn consume_stream<S, T, F>(input: S, work: F) -> Result<T, Error>
where
    S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    T: Send + 'static,
    F: FnOnce(&mut dyn Read) -> Result<T, Error> + Send + 'static,
{
    let mut reader = input_reader(input);
    tokio::task::spawn_blocking(move || work(&mut reader))
        .await
        .map_err(|e| Error::Io {
            path: None,
            source: io::Error::other(format!("the blocking task ended abnormally: {e}")),
        })?
}

/// Runs a reader built on the blocking pool (by `make`, which may unwrap
/// keys and call the KMS) and streams what it reads: for range reads and
/// any other synchronous reader of the library.
pub fn read_stream<R, F>(make: F) -> ByteStream
where
    R: Read,
    F: FnOnce() -> Result<R, Error> + Send + 'static,
{
    ByteStream::from_writer_task(move |out| {
        let mut r = make()?;
        // Whole pieces: `io::copy`'s 8 KiB writes would make one channel
        // hand-off (and thread wake-up) per 8 KiB.
        let mut buf = zeroize::Zeroizing::new(vec![0u8; PIECE_LEN]);
        let mut eof = false;
        while !eof {
            let mut filled = 0;
            while filled < buf.len() {
                match r.read(&mut buf[filled..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if filled > 0 {
                out.write_all(&buf[..filled])?;
            }
        }
        Ok(())
    })
}

/// A stream over the pieces of `items` (tests, small bodies).
pub fn iter_stream(items: Vec<Bytes>) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    IterStream(items.into_iter())
}

struct IterStream(std::vec::IntoIter<Bytes>);

impl Stream for IterStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.next().map(Ok))
    }
}

/// A stream over an [`AsyncRead`] (a file, a socket), in pieces of at most
/// `piece` bytes.
pub fn reader_stream<R>(
    reader: R,
    piece: usize,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static
where
    R: AsyncRead + Send + 'static,
{
    ReaderStream {
        reader: Box::pin(reader),
        piece: piece.clamp(1, 16 << 20),
        done: false,
    }
}

struct ReaderStream<R> {
    reader: Pin<Box<R>>,
    piece: usize,
    done: bool,
}

impl<R: AsyncRead> Stream for ReaderStream<R> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut buf = BytesMut::zeroed(self.piece);
        let mut rb = ReadBuf::new(&mut buf);
        match self.reader.as_mut().poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    self.done = true;
                    return Poll::Ready(None);
                }
                buf.truncate(n);
                Poll::Ready(Some(Ok(buf.freeze())))
            }
        }
    }
}

/// Counts the bytes written through it.
struct Counting<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
