//! Streaming seal and open in bounded memory: batches of chunks are sealed or
//! opened on the rayon pool while the previous batch is written (or the next
//! one read) on the calling thread.

use std::io::{self, Read, Write};

use zeroize::Zeroize;

use super::keys::{self, ChunkKey, DataKey};
use super::{CHUNK_LEN, HEADER_LEN, SEALED_CHUNK_LEN, TAG_LEN};
use crate::error::{BodyError, Error};

/// Default chunks per batch per pool thread: 128 × 16 KiB = 2 MiB.
const CHUNKS_PER_THREAD: usize = 128;
/// Largest default batch: 1024 chunks (16 MiB), whatever the pool size.
const MAX_DEFAULT_BATCH: usize = 1024;
/// Largest batch [`SealWriter::with_batch_chunks`] and
/// [`OpenReader::with_batch_chunks`] accept: 4096 chunks (64 MiB of
/// plaintext); larger requests are clamped to it.
pub const MAX_BATCH_CHUNKS: usize = 4096;

/// Grows `buf` to `len` bytes (the new bytes zero). When that needs a new
/// allocation, the capacity at least doubles (from one sealed chunk) up to
/// `max`, and the old allocation is wiped before it is freed, so plaintext
/// is never left in freed memory. Buffers grow only as far as the data
/// actually needs: a 5-byte object touches one chunk's worth of memory.
pub(crate) fn grow(buf: &mut Vec<u8>, len: usize, max: usize) {
    if len <= buf.len() {
        return;
    }
    if len > buf.capacity() {
        let cap = buf
            .capacity()
            .saturating_mul(2)
            .max(SEALED_CHUNK_LEN)
            .min(max)
            .max(len);
        let mut new = Vec::with_capacity(cap);
        new.extend_from_slice(buf);
        buf.as_mut_slice().zeroize();
        *buf = new;
    }
    buf.resize(len, 0);
}

/// The batch size streams use unless told otherwise: 128 chunks (2 MiB of
/// plaintext) per thread of the current rayon pool, at most 1024 chunks
/// (16 MiB). A stream holds about two batches of `16400 × chunks` bytes
/// each (one being sealed or opened while the other is written or read);
/// see `EngineBuilder::stream_batch_chunks` to choose another size.
///
/// ```
/// let n = objseal::body::default_batch_chunks();
/// assert!((1..=objseal::body::MAX_BATCH_CHUNKS).contains(&n));
/// ```
pub fn default_batch_chunks() -> usize {
    (rayon::current_num_threads() * CHUNKS_PER_THREAD).clamp(1, MAX_DEFAULT_BATCH)
}

/// The default batch size for the current rayon pool.
fn default_batch() -> usize {
    default_batch_chunks()
}

/// Seals a body as it is written, in bounded memory.
///
/// Plaintext written to it is cut into chunks, sealed in parallel batches,
/// and written to the inner writer (header first). Memory is at most two
/// batches of chunks (by default 2 MiB per rayon thread each, at most
/// 16 MiB), whatever the object size, and grows only as far as the data
/// written needs. Plaintext buffers are wiped when dropped.
///
/// [`SealWriter::finish`] MUST be called: it seals the final (short) chunk.
/// A body whose writer was dropped without `finish` is truncated, and
/// opening it fails.
///
/// ```
/// use std::io::Write;
/// use objseal::body::{self, DataKey, SealWriter};
///
/// let key = DataKey::generate()?;
/// let mut w = SealWriter::new(Vec::new(), &key, b"ctx")?;
/// w.write_all(b"hello, ")?;
/// w.write_all(b"world")?;
/// let sealed = w.finish()?;
/// assert_eq!(body::open(&key, b"ctx", &sealed)?, b"hello, world");
/// # Ok::<(), objseal::Error>(())
/// ```
pub struct SealWriter<W: Write> {
    inner: Option<W>,
    key: ChunkKey,
    batch: usize,
    /// Plaintext laid out in chunk slots (16384 bytes + 16 of room each).
    fill: Vec<u8>,
    /// Plaintext bytes in `fill`.
    filled: usize,
    /// Sealed bytes waiting to be written.
    ready: Vec<u8>,
    /// Index of the first chunk in `fill`.
    index: u64,
    poisoned: bool,
}

impl<W: Write> core::fmt::Debug for SealWriter<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SealWriter")
            .field("batch_chunks", &self.batch)
            .field("next_chunk", &self.index)
            .finish_non_exhaustive()
    }
}

impl<W: Write> SealWriter<W> {
    /// Starts a body under `key` and `context`, drawing a fresh salt. Nothing
    /// is written until the first batch fills or [`SealWriter::finish`].
    pub fn new(inner: W, key: &DataKey, context: &[u8]) -> Result<Self, Error> {
        Self::with_batch_chunks(inner, key, context, default_batch())
    }

    /// As [`SealWriter::new`], sealing `batch_chunks` chunks per batch,
    /// clamped to `1..=`[`MAX_BATCH_CHUNKS`].
    pub fn with_batch_chunks(
        inner: W,
        key: &DataKey,
        context: &[u8],
        batch_chunks: usize,
    ) -> Result<Self, Error> {
        let batch = batch_chunks.clamp(1, MAX_BATCH_CHUNKS);
        let (key, header) = keys::derive_for_seal(key, context)?;
        Ok(SealWriter {
            inner: Some(inner),
            key,
            batch,
            fill: Vec::new(),
            filled: 0,
            ready: header.to_vec(),
            index: 0,
            poisoned: false,
        })
    }

    /// Seals the full batch in `fill` while writing `ready`, then swaps them.
    fn flush_batch(&mut self) -> Result<(), Error> {
        let slots = self.batch * SEALED_CHUNK_LEN;
        grow(&mut self.fill, slots, slots);
        self.seal_and_write(slots)?;
        self.index = self
            .index
            .checked_add(self.batch as u64)
            .ok_or(BodyError::TooLong {
                what: "stream",
                len: u64::MAX,
            })?;
        // `fill` now holds only ciphertext; `ready` was written and cleared.
        core::mem::swap(&mut self.fill, &mut self.ready);
        self.filled = 0;
        Ok(())
    }

    /// Seals `fill[..slots]` on the pool while the caller thread writes `ready`.
    fn seal_and_write(&mut self, slots: usize) -> Result<(), Error> {
        let inner = self.inner.as_mut().ok_or(BodyError::WriterPoisoned)?;
        let (key, fill, ready, first) = (&self.key, &mut self.fill, &self.ready, self.index);
        let mut sealed = Ok(());
        let written = rayon::in_place_scope(|s| {
            s.spawn(|_| sealed = key.seal_slots(first, &mut fill[..slots]));
            inner.write_all(ready)
        });
        if let Err(e) = written.map_err(Error::from).and(sealed) {
            self.poisoned = true;
            return Err(e);
        }
        self.ready.clear();
        Ok(())
    }

    /// Seals the final chunk, writes everything, flushes, and returns the
    /// inner writer. The body is complete only once this returns `Ok`.
    pub fn finish(mut self) -> Result<W, Error> {
        if self.poisoned {
            return Err(BodyError::WriterPoisoned.into());
        }
        if self.filled == self.batch * CHUNK_LEN {
            self.flush_batch()?;
        }
        let full = self.filled / CHUNK_LEN;
        let slots = full * SEALED_CHUNK_LEN + self.filled % CHUNK_LEN + TAG_LEN;
        grow(&mut self.fill, slots, self.batch * SEALED_CHUNK_LEN);
        self.seal_and_write(slots)?;
        let mut inner = self.inner.take().ok_or(BodyError::WriterPoisoned)?;
        let done = inner
            .write_all(&self.fill[..slots])
            .and_then(|()| inner.flush());
        done?;
        Ok(inner)
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.poisoned || self.inner.is_none() {
            return Err(Error::from(BodyError::WriterPoisoned).into_io());
        }
        if self.filled == self.batch * CHUNK_LEN {
            self.flush_batch().map_err(Error::into_io)?;
        }
        let (slot, off) = (self.filled / CHUNK_LEN, self.filled % CHUNK_LEN);
        let n = buf.len().min(CHUNK_LEN - off);
        let at = slot * SEALED_CHUNK_LEN + off;
        grow(&mut self.fill, at + n, self.batch * SEALED_CHUNK_LEN);
        self.fill[at..at + n].copy_from_slice(&buf[..n]);
        self.filled += n;
        Ok(n)
    }

    /// Writes out sealed batches; does not seal a partial chunk (only
    /// [`SealWriter::finish`] ends the body).
    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(inner) => inner.flush(),
            None => Ok(()),
        }
    }
}

impl<W: Write> Drop for SealWriter<W> {
    /// Wipes the plaintext not yet sealed (only the length ever used).
    fn drop(&mut self) {
        self.fill.as_mut_slice().zeroize();
    }
}

/// What made a reader fail; it keeps failing with it.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    Body(BodyError),
    Io(io::ErrorKind, String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::Body(b) => Failure::Body(b),
            Error::Io { path: None, source } => Failure::Io(source.kind(), source.to_string()),
            other => Failure::Io(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

impl Failure {
    pub(crate) fn to_io(&self) -> io::Error {
        match self {
            Failure::Body(e) => Error::from(e.clone()).into_io(),
            Failure::Io(kind, msg) => io::Error::new(*kind, msg.clone()),
        }
    }
}

/// Opens a body as it is read, in bounded memory.
///
/// [`OpenReader::new`] reads the 56-byte header and checks the commitment
/// before anything else. Reads then return plaintext a batch at a time, and
/// only after every chunk of the batch authenticated; while the caller
/// consumes a batch, nothing else is held but the next one being read.
/// Buffers grow only as far as the body needs, and are wiped when they are
/// reused or dropped.
///
/// Errors come back as [`io::Error`]s of kind `InvalidData` wrapping an
/// [`Error`]; `objseal::Error::from(io_error)` recovers the typed error.
/// A truncated or tampered stream may first release the authentic batches
/// before the damage, then fails, and every later read fails the same way:
/// treat the output as untrusted until `read` into a non-empty buffer
/// returns `Ok(0)`.
///
/// ```
/// use std::io::Read;
/// use objseal::body::{self, DataKey, OpenReader};
///
/// let key = DataKey::generate()?;
/// let sealed = body::seal(&key, b"ctx", &[7u8; 50_000])?;
/// let mut plain = Vec::new();
/// OpenReader::new(&sealed[..], &key, b"ctx")?.read_to_end(&mut plain)?;
/// assert_eq!(plain, [7u8; 50_000]);
/// # Ok::<(), objseal::Error>(())
/// ```
pub struct OpenReader<R: Read> {
    /// The input; taken only by [`OpenReader::into_inner`].
    inner: Option<R>,
    key: ChunkKey,
    batch: usize,
    /// The opened batch, in chunk slots.
    cur: Vec<u8>,
    /// Bytes of `cur` that hold plaintext (to wipe).
    cur_slots: usize,
    /// Plaintext bytes in `cur`, and how many were returned.
    cur_len: usize,
    pos: usize,
    /// Sealed bytes read ahead.
    next: Vec<u8>,
    next_len: usize,
    /// End of input reached while filling `next`.
    eof: bool,
    /// Index of the first chunk in `next`.
    index: u64,
    /// The final chunk was opened.
    done: bool,
    failed: Option<Failure>,
    /// A read error met while reading ahead, reported once `cur` is consumed.
    pending: Option<io::Error>,
}

impl<R: Read> core::fmt::Debug for OpenReader<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenReader")
            .field("batch_chunks", &self.batch)
            .field("next_chunk", &self.index)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<R: Read> OpenReader<R> {
    /// Reads and checks the header. Fails with a header error
    /// ([`BodyError::TruncatedHeader`], [`BodyError::CommitmentMismatch`])
    /// before any chunk is read.
    pub fn new(inner: R, key: &DataKey, context: &[u8]) -> Result<Self, Error> {
        Self::with_batch_chunks(inner, key, context, default_batch())
    }

    /// As [`OpenReader::new`], opening `batch_chunks` chunks per batch,
    /// clamped to `1..=`[`MAX_BATCH_CHUNKS`].
    pub fn with_batch_chunks(
        mut inner: R,
        key: &DataKey,
        context: &[u8],
        batch_chunks: usize,
    ) -> Result<Self, Error> {
        let batch = batch_chunks.clamp(1, MAX_BATCH_CHUNKS);
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut inner, &mut header)?;
        let key = keys::derive_for_open(key, context, &header[..got])?;
        Ok(OpenReader {
            inner: Some(inner),
            key,
            batch,
            cur: Vec::new(),
            cur_slots: 0,
            cur_len: 0,
            pos: 0,
            next: Vec::new(),
            next_len: 0,
            eof: false,
            index: 0,
            done: false,
            failed: None,
            pending: None,
        })
    }

    /// Reads ahead into `next` until it holds `target` bytes or the input
    /// ends, growing it as the data arrives.
    fn fill_next(
        inner: &mut R,
        next: &mut Vec<u8>,
        target: usize,
    ) -> (usize, bool, Option<io::Error>) {
        let mut len = 0;
        while len < target {
            if len == next.len() {
                grow(
                    next,
                    len.saturating_mul(2).clamp(SEALED_CHUNK_LEN, target),
                    target,
                );
            }
            match inner.read(&mut next[len..]) {
                Ok(0) => return (len, true, None),
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (len, false, Some(e)),
            }
        }
        (len, false, None)
    }

    /// Opens the batch in `next` (reading it first if needed) into `cur`,
    /// reading the following batch meanwhile.
    fn advance(&mut self) -> Result<(), Failure> {
        if let Some(e) = self.pending.take() {
            return Err(Failure::Io(e.kind(), e.to_string()));
        }
        let target = self.batch * SEALED_CHUNK_LEN;
        if self.next_len == 0 && !self.eof {
            let inner = self.inner.as_mut().expect("held until into_inner");
            let (len, eof, err) = Self::fill_next(inner, &mut self.next, target);
            (self.next_len, self.eof) = (len, eof);
            if let Some(e) = err {
                return Err(Failure::Io(e.kind(), e.to_string()));
            }
        }
        let (slots, plain, last) = if self.eof {
            let full = (self.next_len / SEALED_CHUNK_LEN) as u64;
            let tail = (self.next_len % SEALED_CHUNK_LEN) as u64;
            let first = self.index;
            if tail == 0 {
                return Err(Failure::Body(BodyError::MissingFinalChunk {
                    chunks: first + full,
                }));
            }
            if tail < TAG_LEN as u64 {
                return Err(Failure::Body(BodyError::TruncatedChunk {
                    index: first + full,
                    tail,
                }));
            }
            let plain = self.next_len - (full as usize + 1) * TAG_LEN;
            (self.next_len, plain, true)
        } else {
            (self.next_len, self.batch * CHUNK_LEN, false)
        };
        // The consumed plaintext is wiped before its buffer is reused to read.
        self.cur[..self.cur_slots].zeroize();
        (self.cur_slots, self.cur_len, self.pos) = (0, 0, 0);
        core::mem::swap(&mut self.cur, &mut self.next);
        let first = self.index;
        let chunks = slots.div_ceil(SEALED_CHUNK_LEN) as u64;
        self.index = first
            .checked_add(chunks)
            .ok_or(Failure::Body(BodyError::TooLong {
                what: "stream",
                len: u64::MAX,
            }))?;
        let (key, cur, next) = (&self.key, &mut self.cur, &mut self.next);
        let inner = self.inner.as_mut().expect("held until into_inner");
        let mut opened = Ok(());
        let read = rayon::in_place_scope(|s| {
            s.spawn(|_| opened = key.open_slots(first, &mut cur[..slots]));
            if last {
                (0, true, None)
            } else {
                Self::fill_next(inner, next, target)
            }
        });
        self.cur_slots = slots;
        if let Err(e) = opened {
            self.cur[..slots].zeroize();
            return Err(Failure::Body(e));
        }
        (self.next_len, self.eof, self.pending) = read;
        (self.cur_len, self.pos, self.done) = (plain, 0, last);
        Ok(())
    }
}

impl<R: Read> OpenReader<R> {
    /// The input, positioned after what was read of it (read-ahead
    /// included: only at the end of the body is that its end).
    pub(crate) fn into_inner(mut self) -> R {
        self.inner.take().expect("held until into_inner")
    }
}

impl<R: Read> Read for OpenReader<R> {
    /// Returns plaintext that authenticated. `Ok(0)` with a non-empty `buf`
    /// means the body ended and its final chunk authenticated; with an
    /// empty `buf`, `Ok(0)` is returned at once (nothing is read or opened)
    /// and says nothing about the end of the body.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(f) = &self.failed {
                return Err(f.to_io());
            }
            if self.pos < self.cur_len {
                let (slot, off) = (self.pos / CHUNK_LEN, self.pos % CHUNK_LEN);
                let n = buf.len().min(CHUNK_LEN - off).min(self.cur_len - self.pos);
                let at = slot * SEALED_CHUNK_LEN + off;
                buf[..n].copy_from_slice(&self.cur[at..at + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            if let Err(f) = self.advance() {
                self.failed = Some(f);
            }
        }
    }
}

impl<R: Read> Drop for OpenReader<R> {
    /// Wipes both buffers (the length they were used to).
    fn drop(&mut self) {
        self.cur.as_mut_slice().zeroize();
        self.next.as_mut_slice().zeroize();
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, Error> {
    let mut len = 0;
    while len < buf.len() {
        match r.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(len)
}
