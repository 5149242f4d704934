//! A byte range of a body in a positioned source, streamed: batches of the
//! chunks the range touches are read by position and opened in parallel,
//! the next batch read while the current one is opened.

use std::io::{self, Read};
use std::ops::Range;

use zeroize::{Zeroize, Zeroizing};

use super::chunk::{Layout, to_usize};
use super::keys::{self, ChunkKey, DataKey};
use super::range::ByteRange;
use super::source::{Positioned, ReadAt};
use super::stream::{Failure, default_batch_chunks};
use super::{CHUNK_LEN, HEADER_LEN, MAX_BATCH_CHUNKS, SEALED_CHUNK_LEN, TAG_LEN};
use crate::error::{BodyError, Error};

/// Reads a byte range of a body stored in a positioned source (a file, a
/// buffer, any [`ReadAt`]) starting `base` bytes into it, as a [`Read`] in
/// bounded memory: only the chunks the range touches are read and opened,
/// a batch at a time, on the rayon pool, while the next batch is read.
///
/// Creating it reads and checks the body's header (a wrong key, context or
/// body fails there, before anything is decrypted) and resolves the range
/// against the length the body's size gives: when the result depends on
/// that length ([`ByteRange::From`], [`ByteRange::Last`], a bounded range
/// past the end) the final chunk is opened first, which authenticates the
/// length, and an unsatisfiable range fails there with
/// [`BodyError::InvalidRange`]. [`RangeReader::range`] and
/// [`RangeReader::object_len`] then give what an HTTP server answers with
/// (`Content-Range`, `Content-Length`).
///
/// Reads return plaintext only from chunks that authenticated. A damaged
/// chunk fails the read that reaches it, after the batches before it were
/// released, and every later read fails the same way: treat the output as
/// untrusted until `read` into a non-empty buffer returns `Ok(0)`. Errors
/// are [`io::Error`]s; `objseal::Error::from` gives the typed error back.
///
/// Memory: two batches of `16400 × batch_chunks` bytes (by default
/// [`super::default_batch_chunks`], see
/// [`RangeReader::with_batch_chunks`]), wiped when reused or dropped.
/// The reader owns its source, so a `RangeReader<File>` or
/// `RangeReader<Arc<[u8]>>` is `Send + 'static`.
///
/// ```
/// use std::io::Read;
/// use objseal::body::{self, ByteRange, DataKey, RangeReader};
///
/// let key = DataKey::generate()?;
/// let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
/// let body = body::seal(&key, b"ctx", &data)?;
///
/// let mut r = RangeReader::new(&key, b"ctx", body.clone(), 0, body.len() as u64, 20_000..50_000)?;
/// assert_eq!(r.range(), 20_000..50_000);
/// let mut out = Vec::new();
/// r.read_to_end(&mut out)?;
/// assert_eq!(out, &data[20_000..50_000]);
///
/// // A suffix range, small batches.
/// let mut r = RangeReader::new(&key, b"ctx", &body[..], 0, body.len() as u64, ByteRange::Last(10))?
///     .with_batch_chunks(1);
/// let mut tail = Vec::new();
/// r.read_to_end(&mut tail)?;
/// assert_eq!(tail, &data[99_990..]);
/// # Ok::<(), objseal::Error>(())
/// ```
pub struct RangeReader<S: ReadAt> {
    src: Positioned<S>,
    key: ChunkKey,
    batch: usize,
    layout: Layout,
    start: u64,
    end: u64,
    /// Next plaintext byte to return.
    pos: u64,
    /// Opened chunks in their slots: `cur_chunks` chunks from `cur_first`.
    cur: Vec<u8>,
    cur_first: u64,
    cur_chunks: u64,
    /// Sealed chunks read ahead: `next_chunks` chunks from `next_first`.
    next: Vec<u8>,
    next_first: u64,
    next_chunks: u64,
    /// The first chunk not read yet.
    unread: u64,
    /// A read error met while reading ahead, reported when that batch is due.
    pending: Option<Error>,
    failed: Option<Failure>,
}

impl<S: ReadAt> core::fmt::Debug for RangeReader<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RangeReader")
            .field("range", &(self.start..self.end))
            .field("object_len", &self.layout.plaintext_len)
            .field("pos", &self.pos)
            .field("batch_chunks", &self.batch)
            .finish_non_exhaustive()
    }
}

impl<S: ReadAt> RangeReader<S> {
    /// Reads `range` of the body in bytes `base..base + body_len` of
    /// `source`, sealed under `key` and `context`. Reads the header and
    /// (when the range depends on the length) the final chunk before
    /// returning.
    pub fn new(
        key: &DataKey,
        context: &[u8],
        source: S,
        base: u64,
        body_len: u64,
        range: impl Into<ByteRange>,
    ) -> Result<Self, Error> {
        let src = Positioned::new(source, base, body_len);
        Self::from_source(
            key,
            context,
            src,
            None,
            range.into(),
            default_batch_chunks(),
        )
    }

    /// The reader of `range` of the body `src`: reads and checks its header;
    /// `plaintext_len`, when given, is the length the body must hold.
    pub(crate) fn from_source(
        key: &DataKey,
        context: &[u8],
        src: Positioned<S>,
        plaintext_len: Option<u64>,
        range: ByteRange,
        batch: usize,
    ) -> Result<Self, Error> {
        if src.len < HEADER_LEN as u64 {
            return Err(BodyError::TruncatedHeader { len: src.len }.into());
        }
        let mut header = [0u8; HEADER_LEN];
        src.read_at(&mut header, 0)?;
        let chunk_key = keys::derive_for_open(key, context, &header)?;
        Self::open(src, chunk_key, plaintext_len, range, batch)
    }

    /// As the reader would read body `src`, whose header the caller
    /// already checked (against a part-list MAC): the keys come from
    /// `header`, and the header now in the source is never read, so a body
    /// replaced since fails its chunks.
    pub(crate) fn with_checked_header(
        key: &DataKey,
        context: &[u8],
        src: Positioned<S>,
        header: &[u8; HEADER_LEN],
        plaintext_len: Option<u64>,
        range: ByteRange,
        batch: usize,
    ) -> Result<Self, Error> {
        let chunk_key = keys::derive_for_open(key, context, header)?;
        Self::open(src, chunk_key, plaintext_len, range, batch)
    }

    /// The reader of `range` of `src`, whose header checked out under
    /// `key`; `plaintext_len`, when given, is the length the body must hold.
    pub(crate) fn open(
        src: Positioned<S>,
        key: ChunkKey,
        plaintext_len: Option<u64>,
        range: ByteRange,
        batch: usize,
    ) -> Result<Self, Error> {
        if let Some(e) = range.reversed() {
            return Err(e.into());
        }
        let layout = Layout::for_body(src.len)?;
        if let Some(expected) = plaintext_len
            && expected != layout.plaintext_len
        {
            return Err(BodyError::LengthMismatch {
                expected,
                actual: layout.plaintext_len,
            }
            .into());
        }
        let r = range.resolve(layout.plaintext_len);
        let batch = batch.clamp(1, MAX_BATCH_CHUNKS);
        let chunk = CHUNK_LEN as u64;
        let (first, last) = (r.start / chunk, r.end.saturating_sub(1) / chunk);
        let touches_final = r.end > r.start && last + 1 == layout.chunks;
        // The final chunk authenticates the length the range was resolved
        // against: opened now, unless the first batch holds it (then
        // nothing is released before it opens).
        // Without a length to hold the body to (an object whose body gives
        // its length), the length itself is unauthenticated until the final
        // chunk opens: every range then opens it first, so a body cut
        // mid-chunk never yields a range, a length or a Content-Range.
        let check_final = r.check_final || plaintext_len.is_none();
        if check_final && !(touches_final && last - first < batch as u64) {
            let index = layout.chunks - 1;
            let at = HEADER_LEN as u64 + index * SEALED_CHUNK_LEN as u64;
            let mut sealed = Zeroizing::new(vec![0u8; to_usize(src.len - at, "chunk")?]);
            src.read_at(&mut sealed, at)?;
            let mut scratch = Zeroizing::new(vec![0u8; sealed.len() - TAG_LEN]);
            key.open_chunks(index, &sealed, &mut scratch)?;
        }
        if let Some(e) = r.unsatisfiable {
            return Err(e.into());
        }
        Ok(RangeReader {
            src,
            key,
            batch,
            layout,
            start: r.start,
            end: r.end,
            pos: r.start,
            cur: Vec::new(),
            cur_first: 0,
            cur_chunks: 0,
            next: Vec::new(),
            next_first: 0,
            next_chunks: 0,
            unread: first,
            pending: None,
            failed: None,
        })
    }

    /// Opens `batch_chunks` chunks per batch (clamped to
    /// `1..=`[`MAX_BATCH_CHUNKS`]) from the next batch on; memory is about
    /// two batches of `16400 × batch_chunks` bytes.
    pub fn with_batch_chunks(mut self, batch_chunks: usize) -> Self {
        self.batch = batch_chunks.clamp(1, MAX_BATCH_CHUNKS);
        self
    }

    /// The plaintext bytes this reader gives, resolved against the
    /// object's length: what a `Content-Range` header names (with
    /// [`super::content_range`]). Empty for an empty range, or a suffix
    /// range of an empty object.
    pub fn range(&self) -> Range<u64> {
        self.start..self.end
    }

    /// The plaintext length of the whole body (authenticated by the final
    /// chunk when the range depended on it, else by whatever the caller
    /// checked it against, such as the envelope).
    pub fn object_len(&self) -> u64 {
        self.layout.plaintext_len
    }

    /// Plaintext bytes not yet returned.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// The chunk after the last one the range needs.
    fn stop(&self) -> u64 {
        self.end.div_ceil(CHUNK_LEN as u64)
    }

    /// Reads the sealed chunks of the batch from chunk `first` into `buf`;
    /// returns how many chunks.
    fn read_batch(
        src: &Positioned<S>,
        layout: &Layout,
        batch: usize,
        stop: u64,
        first: u64,
        buf: &mut Vec<u8>,
    ) -> Result<u64, Error> {
        let n = (stop - first).min(batch as u64);
        let sealed = SEALED_CHUNK_LEN as u64;
        let from = HEADER_LEN as u64 + first * sealed;
        let to = if first + n == layout.chunks {
            src.len
        } else {
            from + n * sealed
        };
        let len = to_usize(to - from, "batch")?;
        // `buf` holds ciphertext or wiped bytes only, so a reallocation
        // frees no plaintext.
        buf.resize(len, 0);
        src.read_at(buf, from)?;
        Ok(n)
    }

    /// Opens the next batch into `cur` (reading it first if it was not read
    /// ahead), reading the batch after it meanwhile.
    fn advance(&mut self) -> Result<(), Error> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let stop = self.stop();
        if self.next_chunks == 0 {
            let n = Self::read_batch(
                &self.src,
                &self.layout,
                self.batch,
                stop,
                self.unread,
                &mut self.next,
            )?;
            (self.next_first, self.next_chunks) = (self.unread, n);
            self.unread += n;
        }
        // The consumed plaintext is wiped before its buffer takes ciphertext.
        self.cur.zeroize();
        core::mem::swap(&mut self.cur, &mut self.next);
        (self.cur_first, self.cur_chunks) = (self.next_first, 0);
        let chunks = core::mem::take(&mut self.next_chunks);
        let (key, cur, first) = (&self.key, &mut self.cur, self.cur_first);
        let (src, layout, batch, unread, next) = (
            &self.src,
            &self.layout,
            self.batch,
            self.unread,
            &mut self.next,
        );
        let mut opened = Ok(());
        let ahead = rayon::in_place_scope(|s| {
            s.spawn(|_| opened = key.open_slots(first, cur));
            (unread < stop).then(|| Self::read_batch(src, layout, batch, stop, unread, next))
        });
        if let Err(e) = opened {
            self.cur.zeroize();
            return Err(e.into());
        }
        self.cur_chunks = chunks;
        match ahead {
            Some(Ok(n)) => {
                (self.next_first, self.next_chunks) = (self.unread, n);
                self.unread += n;
            }
            Some(Err(e)) => self.pending = Some(e),
            None => {}
        }
        Ok(())
    }
}

impl<S: ReadAt> Read for RangeReader<S> {
    /// Returns plaintext of the range that authenticated; `Ok(0)` with a
    /// non-empty `buf` once all of it was returned.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let chunk = CHUNK_LEN as u64;
        loop {
            if let Some(f) = &self.failed {
                return Err(f.to_io());
            }
            if buf.is_empty() || self.pos >= self.end {
                return Ok(0);
            }
            let index = self.pos / chunk;
            if index >= self.cur_first && index < self.cur_first + self.cur_chunks {
                let off = (self.pos % chunk) as usize;
                let at = (index - self.cur_first) as usize * SEALED_CHUNK_LEN + off;
                let n = buf
                    .len()
                    .min(CHUNK_LEN - off)
                    .min(usize::try_from(self.end - self.pos).unwrap_or(usize::MAX));
                buf[..n].copy_from_slice(&self.cur[at..at + n]);
                self.pos += n as u64;
                return Ok(n);
            }
            if let Err(e) = self.advance() {
                self.failed = Some(Failure::from(e));
            }
        }
    }
}

impl<S: ReadAt> Drop for RangeReader<S> {
    /// Wipes both buffers.
    fn drop(&mut self) {
        self.cur.zeroize();
        self.next.zeroize();
    }
}
