//! Reading completed multipart objects in bounded memory: from parts stored
//! separately (a [`PartStore`] the caller implements), from parts stored
//! one after another in a positioned source ([`PartsAt`], which is what
//! [`MultipartFile`] reads), or as a plain stream ([`ObjectStream`]).
//!
//! Every reader here checks the part list against its MAC
//! (`docs/FORMAT.md` §6) with [`check_part_list`]: the positioned readers
//! before any part is decrypted, the stream reader (which sees the part
//! headers only as it reaches them) at the end.

use std::fs::File;
use std::io::{self, Chain, Cursor, Read, Take};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use zeroize::Zeroizing;

use super::multipart::{check_mac, creation_view};
use crate::body::{
    self, ByteRange, DataKey, HEADER_LEN, OpenReader, Positioned, RangeReader, ReadAt,
};
use crate::engine::{Engine, ObjectReader, OpenWith};
use crate::error::{BodyError, Error, FormatError};
use crate::format::{Envelope, MAX_PART_NUMBER, ObjectBinding, PartList};

/// Where a caller keeps the part bodies of completed multipart objects, each
/// stored on its own (a file, a blob or a database row per part): the
/// multipart readers ([`MultipartObject`]) fetch a part's length, and bytes
/// of it by offset, through this trait. Reads take `&self` and may come
/// from several threads at once ([`MultipartObject::open_range`] reads the
/// parts a range touches in parallel).
///
/// Implemented by [`PartsAt`] (the parts stored one after another, as in a
/// stored object), and through `&T`, `Box<T>` and `Arc<T>`.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::io;
/// use objseal::body::ReadAt;
/// use objseal::sse::PartStore;
///
/// /// Part bodies in memory, by part number.
/// struct Parts(BTreeMap<u32, Vec<u8>>);
///
/// impl PartStore for Parts {
///     fn part_len(&self, number: u32) -> io::Result<u64> {
///         let part = self.0.get(&number).ok_or(io::ErrorKind::NotFound)?;
///         Ok(part.len() as u64)
///     }
///     fn read_part_at(&self, number: u32, buf: &mut [u8], offset: u64) -> io::Result<usize> {
///         self.0.get(&number).ok_or(io::ErrorKind::NotFound)?.read_at(buf, offset)
///     }
/// }
/// ```
pub trait PartStore {
    /// The stored length of part `number`'s body (its sealed length, as
    /// written by [`super::PartWriter`] or [`super::PartSealer::seal`]).
    fn part_len(&self, number: u32) -> io::Result<u64>;

    /// Reads up to `buf.len()` bytes of part `number`'s body, starting
    /// `offset` bytes into it; returns how many, 0 only at (or past) its end
    /// or for an empty `buf`.
    fn read_part_at(&self, number: u32, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl<T: PartStore + ?Sized> PartStore for &T {
    fn part_len(&self, number: u32) -> io::Result<u64> {
        (**self).part_len(number)
    }
    fn read_part_at(&self, number: u32, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_part_at(number, buf, offset)
    }
}

impl<T: PartStore + ?Sized> PartStore for Box<T> {
    fn part_len(&self, number: u32) -> io::Result<u64> {
        (**self).part_len(number)
    }
    fn read_part_at(&self, number: u32, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_part_at(number, buf, offset)
    }
}

impl<T: PartStore + ?Sized> PartStore for Arc<T> {
    fn part_len(&self, number: u32) -> io::Result<u64> {
        (**self).part_len(number)
    }
    fn read_part_at(&self, number: u32, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_part_at(number, buf, offset)
    }
}

/// One part of a completed multipart object, as its envelope's part list
/// places it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSpan {
    /// Part number (1 to 10000; the list may have gaps).
    pub number: u32,
    /// Where the part's plaintext starts in the object's plaintext.
    pub offset: u64,
    /// The part's plaintext length.
    pub len: u64,
    /// The length of the part's body ([`body::sealed_len`] of `len`).
    pub sealed_len: u64,
}

impl PartSpan {
    /// The bytes of this part that the object range `start..end` holds,
    /// counted from the part's start; `None` when it holds none.
    fn piece(&self, start: u64, end: u64) -> Option<core::ops::Range<u64>> {
        let part_end = self.offset + self.len;
        (self.offset < end && part_end > start)
            .then(|| start.max(self.offset) - self.offset..end.min(part_end) - self.offset)
    }
}

/// The part list of a multipart envelope, or the error for a single-part
/// object given where a multipart one is expected.
fn part_list(env: &Envelope) -> Result<&PartList, Error> {
    env.parts.as_ref().ok_or_else(|| {
        FormatError::OutOfBounds {
            field: "part count (a multipart object's)",
            value: 0,
            min: 1,
            max: MAX_PART_NUMBER.into(),
        }
        .into()
    })
}

/// The parts of a multipart envelope, laid out: plaintext offsets and body
/// lengths. Refuses a list whose lengths do not add up to the envelope's
/// plaintext length.
pub(crate) fn part_spans(env: &Envelope) -> Result<Vec<PartSpan>, Error> {
    let list = part_list(env)?;
    let mut out = Vec::with_capacity(list.parts.len());
    let mut offset = 0u64;
    for p in &list.parts {
        out.push(PartSpan {
            number: p.number,
            offset,
            len: p.plaintext_len,
            sealed_len: body::sealed_len(p.plaintext_len)?,
        });
        offset = offset
            .checked_add(p.plaintext_len)
            .ok_or(BodyError::PartListMismatch)?;
    }
    if offset != env.plaintext_len {
        return Err(BodyError::PartListMismatch.into());
    }
    Ok(out)
}

/// The public part-list check of `docs/FORMAT.md` §6, for a multipart
/// object read as `binding`: unwraps the data key of `env` (with the view
/// of the envelope its key is bound to: plaintext length 0, no part list)
/// and checks the envelope's part-list MAC over `headers`, the first 56
/// bytes (salt and commitment) of each listed part's body, in list order.
/// Returns the data key; each part `n` is then a body under it with the
/// context of `binding.with_part(n)` ([`body::RangeReader`],
/// [`body::open_range_at`], ...). [`MultipartObject::open`] does all of it
/// from a [`PartStore`].
///
/// Fails with [`BodyError::PartListMismatch`] when the MAC differs (a part
/// dropped, reordered, resized or replaced by another upload), when the
/// headers are not one per listed part, or when the list's lengths do not
/// add up; with the key errors of an open (a missing or wrong SSE-C key,
/// a KMS refusal) before the MAC is computed; and with
/// [`FormatError::OutOfBounds`] for an envelope without a part list.
pub fn check_part_list(
    engine: &Engine,
    with: OpenWith<'_>,
    binding: &ObjectBinding,
    env: &Envelope,
    headers: &[[u8; HEADER_LEN]],
) -> Result<DataKey, Error> {
    let list = part_list(env)?;
    part_spans(env)?;
    if headers.len() != list.parts.len() {
        return Err(BodyError::PartListMismatch.into());
    }
    let dek = engine.data_key(with, binding, &creation_view(env))?;
    let refs: Vec<&[u8; HEADER_LEN]> = headers.iter().collect();
    check_mac(&dek, env, &refs)?;
    Ok(dek)
}

/// The part bodies of a multipart object stored one after another in a
/// positioned source, in list order, starting `base` bytes into it: the
/// layout of a stored multipart object (its envelope, then its parts) and of
/// [`super::open_object_detached`]'s body. A [`PartStore`].
///
/// ```
/// use objseal::sse::{PartStore, PartsAt};
/// # use objseal::sse::{CompletedPart, MultipartUpload};
/// # use objseal::{CustomerKey, Engine, ObjectBinding, OpenWith, SealMode};
/// # let engine = Engine::builder().build();
/// # let key = CustomerKey::generate()?;
/// # let object = ObjectBinding::new("b", "k")?;
/// # let upload = MultipartUpload::create(&engine, &SealMode::C(&key), &object).unwrap();
/// # let with = OpenWith::Customer(&key);
/// # let one = upload.upload_part(&engine, with, 1, b"first").unwrap();
/// # let two = upload.upload_part(&engine, with, 2, b"second").unwrap();
/// # let asked = [&one, &two].map(|p| CompletedPart { number: p.record.number, etag: p.record.etag.clone() });
/// # let done = upload.complete(&engine, with, &asked, &[one.record.clone(), two.record.clone()]).unwrap();
/// // `stored` is the envelope followed by the part bodies.
/// let mut stored = done.envelope.encode()?;
/// let base = stored.len() as u64;
/// stored.extend_from_slice(&one.body);
/// stored.extend_from_slice(&two.body);
/// let len = stored.len() as u64 - base;
/// let parts = PartsAt::new(stored, base, len, &done.envelope)?;
/// assert_eq!(parts.part_len(2)?, two.body.len() as u64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PartsAt<S> {
    src: S,
    base: u64,
    /// Each part's number, where its body starts (from `base`), and its length.
    parts: Vec<(u32, u64, u64)>,
}

impl<S: ReadAt> PartsAt<S> {
    /// The parts `env` lists, in bytes `base..base + body_len` of `source`;
    /// refuses ([`BodyError::PartListMismatch`]) a `body_len` other than
    /// the sum of the parts' body lengths.
    pub fn new(source: S, base: u64, body_len: u64, env: &Envelope) -> Result<Self, Error> {
        let spans = part_spans(env)?;
        let mut parts = Vec::with_capacity(spans.len());
        let mut at = 0u64;
        for s in &spans {
            parts.push((s.number, at, s.sealed_len));
            at = at
                .checked_add(s.sealed_len)
                .ok_or(BodyError::PartListMismatch)?;
        }
        if at != body_len {
            return Err(BodyError::PartListMismatch.into());
        }
        Ok(PartsAt {
            src: source,
            base,
            parts,
        })
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.src
    }

    fn find(&self, number: u32) -> io::Result<(u64, u64)> {
        self.parts
            .binary_search_by_key(&number, |p| p.0)
            .map(|i| (self.parts[i].1, self.parts[i].2))
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("part {number} is not in the part list"),
                )
            })
    }
}

impl<S: ReadAt> PartStore for PartsAt<S> {
    fn part_len(&self, number: u32) -> io::Result<u64> {
        Ok(self.find(number)?.1)
    }

    fn read_part_at(&self, number: u32, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let (at, len) = self.find(number)?;
        let left = len.saturating_sub(offset);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        self.src.read_at(&mut buf[..want], self.base + at + offset)
    }
}

/// What the readers of one checked multipart object share.
struct Shared<P> {
    store: P,
    dek: DataKey,
    binding: ObjectBinding,
    envelope: Envelope,
    /// Each part, with the header its MAC was checked over.
    parts: Vec<(PartSpan, [u8; HEADER_LEN])>,
    batch: usize,
}

/// A completed multipart object whose part list was checked against its
/// MAC, read from a [`PartStore`] in bounded memory: any range of it
/// (across part boundaries) as a [`Read`] ([`MultipartObject::range_reader`])
/// or as one vector ([`MultipartObject::open_range`]), decrypting only the
/// chunks the range touches.
///
/// [`MultipartObject::open`] reads each listed part's length and 56-byte
/// header from the store and runs [`check_part_list`] before any part is
/// decrypted. Readers later decrypt with the headers that were checked
/// (never re-reading them), so a part body replaced in the store since
/// fails its chunks. Cloning is cheap (the checked state is shared); the
/// readers own a share too, so with a `'static` store they are `'static`
/// (and `Send` when the store is `Send + Sync`).
///
/// ```
/// use std::collections::BTreeMap;
/// use std::io::{self, Read};
/// use objseal::body::ReadAt;
/// use objseal::sse::{CompletedPart, MultipartObject, MultipartUpload, PartStore};
/// use objseal::{CustomerKey, Engine, ObjectBinding, OpenWith, SealMode};
///
/// struct Parts(BTreeMap<u32, Vec<u8>>);
/// impl PartStore for Parts {
///     fn part_len(&self, n: u32) -> io::Result<u64> {
///         Ok(self.0.get(&n).ok_or(io::ErrorKind::NotFound)?.len() as u64)
///     }
///     fn read_part_at(&self, n: u32, buf: &mut [u8], offset: u64) -> io::Result<usize> {
///         self.0.get(&n).ok_or(io::ErrorKind::NotFound)?.read_at(buf, offset)
///     }
/// }
///
/// let engine = Engine::builder().build();
/// let key = CustomerKey::generate()?;
/// let object = ObjectBinding::new("b", "k")?;
/// let with = OpenWith::Customer(&key);
/// let upload = MultipartUpload::create(&engine, &SealMode::C(&key), &object).unwrap();
/// let sealer = upload.sealer(&engine, with).unwrap();
/// let mut store = BTreeMap::new();
/// let mut records = Vec::new();
/// for (n, fill) in [(2u32, 2u8), (1, 1)] {
///     // Each part streamed into its own storage.
///     let mut w = sealer.writer(n, Vec::new()).unwrap();
///     io::copy(&mut io::repeat(fill).take(20_000), &mut w)?;
///     let part = w.finish().unwrap();
///     store.insert(n, part.inner);
///     records.push(part.record);
/// }
/// records.sort_by_key(|r| r.number);
/// let asked: Vec<CompletedPart> =
///     records.iter().map(|r| CompletedPart { number: r.number, etag: r.etag.clone() }).collect();
/// let done = upload.complete(&engine, with, &asked, &records).unwrap();
///
/// let obj = MultipartObject::open(&engine, with, &object, &done.envelope, Parts(store))?;
/// let mut r = obj.range_reader(19_998..20_003)?;
/// let mut out = Vec::new();
/// r.read_to_end(&mut out)?;
/// assert_eq!(out, [1, 1, 2, 2, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MultipartObject<P> {
    shared: Arc<Shared<P>>,
}

impl<P> Clone for MultipartObject<P> {
    fn clone(&self) -> Self {
        MultipartObject {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<P> core::fmt::Debug for MultipartObject<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MultipartObject")
            .field("binding", &self.shared.binding)
            .field("parts", &self.shared.parts.len())
            .field("plaintext_len", &self.shared.envelope.plaintext_len)
            .finish_non_exhaustive()
    }
}

impl<P: PartStore> MultipartObject<P> {
    /// Checks the multipart object `binding`, whose envelope is `env` and
    /// whose part bodies are in `store`: each listed part's stored length
    /// must be its [`body::sealed_len`] ([`BodyError::PartListMismatch`]
    /// otherwise), and its header must pass [`check_part_list`] (which
    /// unwraps the data key). A single-part envelope is refused with
    /// [`FormatError::OutOfBounds`] on its part count. Reads only each
    /// part's length and first 56 bytes.
    pub fn open(
        engine: &Engine,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        env: &Envelope,
        store: P,
    ) -> Result<Self, Error> {
        env.check_binding(binding)?;
        let spans = part_spans(env)?;
        let mut headers = Vec::with_capacity(spans.len());
        for s in &spans {
            if store.part_len(s.number)? != s.sealed_len {
                return Err(BodyError::PartListMismatch.into());
            }
            let mut header = [0u8; HEADER_LEN];
            let part = PartAt {
                store: &store,
                number: s.number,
            };
            Positioned::new(part, 0, s.sealed_len).read_at(&mut header, 0)?;
            headers.push(header);
        }
        let dek = check_part_list(engine, with, binding, env, &headers)?;
        Ok(MultipartObject {
            shared: Arc::new(Shared {
                store,
                dek,
                binding: binding.clone(),
                envelope: env.clone(),
                parts: spans.into_iter().zip(headers).collect(),
                batch: engine.stream_batch_chunks(),
            }),
        })
    }

    /// The object's envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.shared.envelope
    }

    /// The object's plaintext length (the sum of its parts', authenticated
    /// by the MAC).
    pub fn plaintext_len(&self) -> u64 {
        self.shared.envelope.plaintext_len
    }

    /// The parts, in list order.
    pub fn parts(&self) -> Vec<PartSpan> {
        self.shared.parts.iter().map(|(s, _)| *s).collect()
    }

    /// The store.
    pub fn store(&self) -> &P {
        &self.shared.store
    }

    /// A reader of the bytes `range` of the object (see [`ByteRange`];
    /// an unsatisfiable range fails here with [`BodyError::InvalidRange`]),
    /// part after part, each part read a batch of chunks at a time
    /// ([`Engine::stream_batch_chunks`] of the engine that opened it). No
    /// part is ever held whole in memory.
    pub fn range_reader(&self, range: impl Into<ByteRange>) -> Result<MultipartReader<P>, Error> {
        let range = range.into();
        if let Some(e) = range.reversed() {
            return Err(e.into());
        }
        let r = range.resolve(self.plaintext_len());
        if let Some(e) = r.unsatisfiable {
            return Err(e.into());
        }
        Ok(MultipartReader {
            object: self.clone(),
            start: r.start,
            end: r.end,
            next: 0,
            current: None,
            failed: false,
        })
    }

    /// A reader of the whole object.
    pub fn reader(&self) -> MultipartReader<P> {
        MultipartReader {
            object: self.clone(),
            start: 0,
            end: self.plaintext_len(),
            next: 0,
            current: None,
            failed: false,
        }
    }
}

impl<P: PartStore + Sync> MultipartObject<P> {
    /// Opens the bytes `range` of the object into one vector, decrypting
    /// only the chunks of the parts it touches, the parts in parallel;
    /// returns no plaintext unless all of it authenticated.
    pub fn open_range(&self, range: impl Into<ByteRange>) -> Result<Vec<u8>, Error> {
        let range = range.into();
        if let Some(e) = range.reversed() {
            return Err(e.into());
        }
        let r = range.resolve(self.plaintext_len());
        if let Some(e) = r.unsatisfiable {
            return Err(e.into());
        }
        let len = body_len_usize(r.end - r.start)?;
        let mut out = Zeroizing::new(vec![0u8; len]);
        let mut jobs = Vec::new();
        let mut rest: &mut [u8] = &mut out;
        for (s, header) in &self.shared.parts {
            if let Some(piece) = s.piece(r.start, r.end) {
                let n = body_len_usize(piece.end - piece.start)?;
                let (head, tail) = rest.split_at_mut(n);
                jobs.push((s, header, piece, head));
                rest = tail;
            }
        }
        let shared: &Shared<P> = &self.shared;
        jobs.into_par_iter()
            .try_for_each(|(s, header, piece, dst)| {
                // Batches as large as the piece: the result is in memory anyway.
                let chunks = dst.len().div_ceil(body::CHUNK_LEN) + 1;
                let part = PartAt {
                    store: &shared.store,
                    number: s.number,
                };
                let mut r = shared.part_reader(part, s, header, piece.into(), chunks)?;
                r.read_exact(dst).map_err(Error::from)
            })?;
        Ok(core::mem::take(&mut *out))
    }
}

impl<P> Shared<P> {
    /// A reader of bytes `range` of the part `s` (read from `part`), from
    /// its checked header.
    fn part_reader<S: ReadAt>(
        &self,
        part: S,
        s: &PartSpan,
        header: &[u8; HEADER_LEN],
        range: ByteRange,
        batch: usize,
    ) -> Result<RangeReader<S>, Error> {
        let ctx = self.binding.with_part(s.number)?.body_context();
        RangeReader::with_checked_header(
            &self.dek,
            &ctx,
            Positioned::new(part, 0, s.sealed_len),
            header,
            Some(s.len),
            range,
            batch,
        )
    }
}

fn body_len_usize(len: u64) -> Result<usize, Error> {
    usize::try_from(len).map_err(|_| BodyError::TooLong { what: "range", len }.into())
}

/// One part of a [`PartStore`] as a positioned source.
struct PartAt<P> {
    store: P,
    number: u32,
}

impl<P: PartStore> ReadAt for PartAt<P> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.store.read_part_at(self.number, buf, offset)
    }
}

/// The part store of one checked object, shared with its readers.
struct SharedStore<P>(Arc<Shared<P>>);

impl<P: PartStore> PartStore for SharedStore<P> {
    fn part_len(&self, number: u32) -> io::Result<u64> {
        self.0.store.part_len(number)
    }
    fn read_part_at(&self, number: u32, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.store.read_part_at(number, buf, offset)
    }
}

/// A range (or all) of a [`MultipartObject`] as a [`Read`], part after
/// part: each part the range touches is read with a
/// [`body::RangeReader`] from the header its MAC was checked over, a batch
/// of chunks at a time, so memory stays at two batches whatever the part
/// sizes. Reads return plaintext only from chunks that authenticated; a
/// damaged chunk fails the read that reaches it (after what came before it
/// was released) and every later read. Errors are [`io::Error`]s;
/// `objseal::Error::from` gives the typed error back.
pub struct MultipartReader<P: PartStore = PartsAt<File>> {
    object: MultipartObject<P>,
    start: u64,
    end: u64,
    /// Index of the next part to start.
    next: usize,
    current: Option<RangeReader<PartAt<SharedStore<P>>>>,
    failed: bool,
}

impl<P: PartStore> core::fmt::Debug for MultipartReader<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MultipartReader")
            .field("object", &self.object)
            .field("range", &(self.start..self.end))
            .field("next_part", &self.next)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<P: PartStore> MultipartReader<P> {
    /// The plaintext bytes this reader gives, resolved against the
    /// object's length (for `Content-Range`).
    pub fn range(&self) -> core::ops::Range<u64> {
        self.start..self.end
    }

    /// The object's plaintext length.
    pub fn object_len(&self) -> u64 {
        self.object.plaintext_len()
    }

    /// Starts the next part the range touches, if any.
    fn start_next(&mut self) -> Result<bool, Error> {
        let shared = &self.object.shared;
        while let Some((s, header)) = shared.parts.get(self.next) {
            self.next += 1;
            let Some(piece) = s.piece(self.start, self.end) else {
                if s.offset >= self.end {
                    self.next = shared.parts.len();
                }
                continue;
            };
            let part = PartAt {
                store: SharedStore(Arc::clone(shared)),
                number: s.number,
            };
            self.current = Some(shared.part_reader(part, s, header, piece.into(), shared.batch)?);
            return Ok(true);
        }
        Ok(false)
    }
}

impl<P: PartStore> Read for MultipartReader<P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an earlier read of this multipart object failed",
            ));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(r) = &mut self.current {
                match r.read(buf) {
                    Ok(0) => self.current = None,
                    Ok(n) => return Ok(n),
                    Err(e) => {
                        self.failed = true;
                        return Err(e);
                    }
                }
            }
            match self.start_next() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(e) => {
                    self.failed = true;
                    return Err(e.into_io());
                }
            }
        }
    }
}

/// A completed multipart object stored in a regular file — its envelope
/// followed by the part bodies in list order, as [`super::Completed`]
/// describes — read with positioned reads and in bounded memory, like
/// [`Engine::open_file_range`] and [`Engine::open_reader`] read a
/// single-part object: a [`MultipartObject`] over [`PartsAt`] the file.
///
/// [`MultipartFile::open`] reads the envelope and each part's 56-byte header
/// and checks the part list against its MAC (`docs/FORMAT.md` §6) before
/// any part is decrypted; [`MultipartFile::open_range`] then decrypts only
/// the chunks a range touches, across part boundaries, and
/// [`MultipartFile::into_reader`] streams the whole plaintext part after
/// part, each batch of chunks released only once it authenticated.
///
/// ```
/// use std::io::{Read, Write};
/// use objseal::sse::{CompletedPart, MultipartFile, MultipartUpload};
/// use objseal::{CustomerKey, Engine, ObjectBinding, OpenWith, SealMode};
///
/// let engine = Engine::builder().build();
/// let key = CustomerKey::generate()?;
/// let object = ObjectBinding::new("b", "k")?;
/// let upload = MultipartUpload::create(&engine, &SealMode::C(&key), &object).unwrap();
/// let with = OpenWith::Customer(&key);
/// let one = upload.upload_part(&engine, with, 1, &[1u8; 20_000]).unwrap();
/// let two = upload.upload_part(&engine, with, 2, &[2u8; 300]).unwrap();
/// let asked: Vec<CompletedPart> = [&one, &two]
///     .iter()
///     .map(|p| CompletedPart { number: p.record.number, etag: p.record.etag.clone() })
///     .collect();
/// let done = upload
///     .complete(&engine, with, &asked, &[one.record.clone(), two.record.clone()])
///     .unwrap();
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("object");
/// let mut f = std::fs::File::create(&path)?;
/// f.write_all(&done.envelope.encode()?)?;
/// f.write_all(&one.body)?;
/// f.write_all(&two.body)?;
/// drop(f);
///
/// let file = MultipartFile::open(&engine, with, &object, &path)?;
/// assert_eq!(file.open_range(19_999..20_002)?, [1, 2, 2]);
/// let mut all = Vec::new();
/// file.into_reader().read_to_end(&mut all)?;
/// assert_eq!(all.len(), 20_300);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MultipartFile {
    object: MultipartObject<PartsAt<File>>,
    path: PathBuf,
}

impl core::fmt::Debug for MultipartFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MultipartFile")
            .field("path", &self.path)
            .field("object", &self.object)
            .finish_non_exhaustive()
    }
}

impl MultipartFile {
    /// Opens the multipart object stored in the regular file `src`, read as
    /// `binding`: parses its envelope, checks that the part bodies fill the
    /// rest of the file, and checks the part list against the part bodies'
    /// headers and the MAC (unwrapping the data key as [`super::open_object`]
    /// does). A single-part object is refused with
    /// [`FormatError::OutOfBounds`] on its part count (open it with
    /// [`Engine::open_reader`]); a file that is not a regular file (a FIFO,
    /// device, socket or directory) with an [`Error::Io`] of kind
    /// `InvalidInput`, checked before it is opened.
    pub fn open(
        engine: &Engine,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        src: &Path,
    ) -> Result<Self, Error> {
        let io_err = |e| Error::io_at(src, e);
        // Checked before opening too, so that opening a FIFO cannot block.
        if !std::fs::metadata(src).map_err(io_err)?.is_file() {
            return Err(body::file::not_regular(src));
        }
        let file = File::open(src).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(body::file::not_regular(src));
        }
        let (envelope, used) = Envelope::read_at(&file, 0, meta.len()).map_err(|e| match e {
            Error::Io { path: None, source } => Error::io_at(src, source),
            e => e,
        })?;
        part_list(&envelope)?;
        let parts = PartsAt::new(file, used, meta.len() - used, &envelope)?;
        let object = MultipartObject::open(engine, with, binding, &envelope, parts)?;
        Ok(MultipartFile {
            object,
            path: src.to_path_buf(),
        })
    }

    /// The object's envelope.
    pub fn envelope(&self) -> &Envelope {
        self.object.envelope()
    }

    /// The checked object, for range readers ([`MultipartObject::range_reader`]).
    pub fn object(&self) -> &MultipartObject<PartsAt<File>> {
        &self.object
    }

    /// Opens the bytes `range` of the object (see [`ByteRange`]; the part
    /// lengths are authenticated by the MAC), decrypting only the chunks of
    /// the parts it touches, in parallel.
    pub fn open_range(&self, range: impl Into<ByteRange>) -> Result<Vec<u8>, Error> {
        self.object.open_range(range).map_err(|e| match e {
            Error::Io { path: None, source } => Error::io_at(&self.path, source),
            e => e,
        })
    }

    /// A reader of the whole plaintext, part after part.
    pub fn into_reader(self) -> MultipartReader {
        self.object.reader()
    }
}

type PartStream<R> = OpenReader<Chain<Cursor<[u8; HEADER_LEN]>, Take<R>>>;

/// The plaintext of a stored object, single-part or multipart, read from
/// a plain stream of its body (for a multipart object, the part bodies one
/// after another, in list order), in bounded memory: see
/// [`open_object_reader`].
pub struct ObjectStream<R: Read> {
    inner: StreamKind<R>,
}

enum StreamKind<R: Read> {
    Single(Box<ObjectReader<R>>),
    Parts(Box<Parts<R>>),
}

/// The state of a multipart [`ObjectStream`].
struct Parts<R: Read> {
    dek: DataKey,
    binding: ObjectBinding,
    envelope: Envelope,
    spans: Vec<PartSpan>,
    batch: usize,
    /// Index of the next part to start.
    next: usize,
    /// The input between parts.
    src: Option<R>,
    /// The part being read, and the plaintext bytes it gave.
    current: Option<(PartStream<R>, u64)>,
    headers: Vec<[u8; HEADER_LEN]>,
    done: bool,
    failed: bool,
}

impl<R: Read> core::fmt::Debug for ObjectStream<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut d = f.debug_struct("ObjectStream");
        match &self.inner {
            StreamKind::Single(r) => d.field("single", r),
            StreamKind::Parts(p) => d.field("parts", &p.spans.len()).field("next_part", &p.next),
        };
        d.finish_non_exhaustive()
    }
}

impl<R: Read> ObjectStream<R> {
    /// The object's envelope (for an object of unknown length, its length
    /// is set once the stream ended).
    pub fn envelope(&self) -> &Envelope {
        match &self.inner {
            StreamKind::Single(r) => r.envelope(),
            StreamKind::Parts(p) => &p.envelope,
        }
    }
}

/// Opens a stored object, single-part or multipart, from a plain stream of
/// its body (`body`; the envelope `env` kept apart, or read first with
/// [`Engine::open_reader`]'s rules by the caller), read as `binding`:
/// checks the envelope and unwraps the data key before returning, then
/// decrypts a batch of chunks at a time ([`Engine::stream_batch_chunks`]).
///
/// For a multipart object the part bodies are read one after another, each
/// part's chunks authenticated as they come; the part-list MAC covers the
/// part headers, which a stream reaches only one by one, so it is checked
/// at the end, together with the absence of trailing bytes: a part dropped,
/// reordered or replaced by another upload fails the last read. Plaintext
/// may be released before that failure, as with every stream here: treat
/// the output as untrusted until `read` into a non-empty buffer returns
/// `Ok(0)` (or, when the body can be read by position, check the list first
/// with [`MultipartObject`]). Used by [`super::copy_stream`].
///
/// ```
/// use std::io::Read;
/// use std::sync::Arc;
/// use objseal::sse::open_object_reader;
/// use objseal::{Engine, Keyring, ObjectBinding, OpenWith, SealMode};
///
/// let engine = Engine::builder().keyring(Arc::new(Keyring::in_memory("k")?)).build();
/// let obj = ObjectBinding::new("b", "k")?;
/// let (env, body) = engine.seal_detached(&SealMode::S3, &obj, b"hello")?;
/// let mut r = open_object_reader(&engine, OpenWith::Managed, &obj, &env, &body[..])?;
/// let mut out = Vec::new();
/// r.read_to_end(&mut out)?;
/// assert_eq!(out, b"hello");
/// # Ok::<(), objseal::Error>(())
/// ```
pub fn open_object_reader<R: Read>(
    engine: &Engine,
    with: OpenWith<'_>,
    binding: &ObjectBinding,
    env: &Envelope,
    body: R,
) -> Result<ObjectStream<R>, Error> {
    if env.parts.is_none() {
        let r = engine.open_reader_detached(with, binding, env, body)?;
        return Ok(ObjectStream {
            inner: StreamKind::Single(Box::new(r)),
        });
    }
    env.check_binding(binding)?;
    let spans = part_spans(env)?;
    let dek = engine.data_key(with, binding, &creation_view(env))?;
    Ok(ObjectStream {
        inner: StreamKind::Parts(Box::new(Parts {
            dek,
            binding: binding.clone(),
            envelope: env.clone(),
            headers: Vec::with_capacity(spans.len()),
            spans,
            batch: engine.stream_batch_chunks(),
            next: 0,
            src: Some(body),
            current: None,
            done: false,
            failed: false,
        })),
    })
}

impl<R: Read> Parts<R> {
    /// Starts the next part, or ends the object; returns whether a part
    /// was started.
    fn advance(&mut self) -> Result<bool, Error> {
        let mut src = self.src.take().ok_or(BodyError::PartListMismatch)?;
        let Some(s) = self.spans.get(self.next) else {
            // The end: nothing may follow the last part, and the list must
            // authenticate the headers met.
            let mut probe = [0u8; 1];
            if read_full(&mut src, &mut probe)? != 0 {
                return Err(BodyError::PartListMismatch.into());
            }
            let refs: Vec<&[u8; HEADER_LEN]> = self.headers.iter().collect();
            check_mac(&self.dek, &self.envelope, &refs)?;
            self.done = true;
            return Ok(false);
        };
        self.next += 1;
        let mut header = [0u8; HEADER_LEN];
        if read_full(&mut src, &mut header)? != HEADER_LEN {
            return Err(BodyError::PartListMismatch.into());
        }
        self.headers.push(header);
        let ctx = self.binding.with_part(s.number)?.body_context();
        let rest = src.take(s.sealed_len - HEADER_LEN as u64);
        let r = OpenReader::with_batch_chunks(
            Cursor::new(header).chain(rest),
            &self.dek,
            &ctx,
            self.batch,
        )?;
        self.current = Some((r, 0));
        Ok(true)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, io::Error> {
        loop {
            if let Some((r, got)) = &mut self.current {
                let n = r.read(buf)?;
                *got += n as u64;
                if n > 0 {
                    return Ok(n);
                }
                let (r, got) = self.current.take().expect("checked above");
                let expected = self.spans[self.next - 1].len;
                if got != expected {
                    return Err(Error::from(BodyError::LengthMismatch {
                        expected,
                        actual: got,
                    })
                    .into_io());
                }
                let (_, rest) = r.into_inner().into_inner();
                if rest.limit() != 0 {
                    return Err(Error::from(BodyError::PartListMismatch).into_io());
                }
                self.src = Some(rest.into_inner());
            }
            if self.done {
                return Ok(0);
            }
            if !self.advance().map_err(Error::into_io)? {
                return Ok(0);
            }
        }
    }
}

impl<R: Read> Read for ObjectStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            StreamKind::Single(r) => r.read(buf),
            StreamKind::Parts(p) => {
                if p.failed {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "an earlier read of this multipart object failed",
                    ));
                }
                if buf.is_empty() {
                    return Ok(0);
                }
                p.read(buf).inspect_err(|_| p.failed = true)
            }
        }
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

/// A range of a stored object, single-part or multipart, from a positioned
/// source: see [`open_object_range_reader`].
#[derive(Debug)]
pub enum ObjectRangeReader<S: ReadAt> {
    /// A single-part object's range.
    Single(RangeReader<S>),
    /// A multipart object's range, its part list checked.
    Multipart(MultipartReader<PartsAt<S>>),
}

impl<S: ReadAt> ObjectRangeReader<S> {
    /// The plaintext bytes this reader gives (for `Content-Range`).
    pub fn range(&self) -> core::ops::Range<u64> {
        match self {
            ObjectRangeReader::Single(r) => r.range(),
            ObjectRangeReader::Multipart(r) => r.range(),
        }
    }

    /// The object's plaintext length.
    pub fn object_len(&self) -> u64 {
        match self {
            ObjectRangeReader::Single(r) => r.object_len(),
            ObjectRangeReader::Multipart(r) => r.object_len(),
        }
    }
}

impl<S: ReadAt> Read for ObjectRangeReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ObjectRangeReader::Single(r) => r.read(buf),
            ObjectRangeReader::Multipart(r) => r.read(buf),
        }
    }
}

/// Reads bytes `range` of a stored object, single-part or multipart, whose
/// body (for a multipart object, the part bodies one after another) is in
/// bytes `base..base + body_len` of the positioned `source` and whose
/// envelope `env` is kept apart (or read with [`Envelope::read_at`] from
/// the start of the stored object): a single-part object through
/// [`Engine::open_range_reader_detached`], a multipart one through
/// [`MultipartObject`] over [`PartsAt`] (the part list checked first). An
/// unsatisfiable range fails here with [`BodyError::InvalidRange`].
///
/// ```
/// use std::io::Read;
/// use std::sync::Arc;
/// use objseal::format::Envelope;
/// use objseal::sse::open_object_range_reader;
/// use objseal::{Engine, Keyring, ObjectBinding, OpenWith, SealMode};
///
/// let engine = Engine::builder().keyring(Arc::new(Keyring::in_memory("k")?)).build();
/// let obj = ObjectBinding::new("b", "k")?;
/// let stored: Arc<[u8]> = engine.seal(&SealMode::S3, &obj, b"0123456789")?.into();
/// let len = stored.len() as u64;
/// let (env, used) = Envelope::read_at(&stored, 0, len)?;
/// let mut r = open_object_range_reader(&engine, OpenWith::Managed, &obj, &env, stored, used, len - used, 4..)?;
/// assert_eq!(r.range(), 4..10);
/// let mut out = Vec::new();
/// r.read_to_end(&mut out)?;
/// assert_eq!(out, b"456789");
/// # Ok::<(), objseal::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn open_object_range_reader<S: ReadAt>(
    engine: &Engine,
    with: OpenWith<'_>,
    binding: &ObjectBinding,
    env: &Envelope,
    source: S,
    base: u64,
    body_len: u64,
    range: impl Into<ByteRange>,
) -> Result<ObjectRangeReader<S>, Error> {
    if env.parts.is_none() {
        let r =
            engine.open_range_reader_detached(with, binding, env, source, base, body_len, range)?;
        return Ok(ObjectRangeReader::Single(r));
    }
    let parts = PartsAt::new(source, base, body_len, env)?;
    let object = MultipartObject::open(engine, with, binding, env, parts)?;
    Ok(ObjectRangeReader::Multipart(object.range_reader(range)?))
}
