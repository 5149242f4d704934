//! Range reads: open only the chunks a byte range touches.

use std::borrow::Cow;

use core::ops::{Range, RangeFrom, RangeFull};

use zeroize::Zeroizing;

use super::chunk::{Layout, to_usize};
use super::keys::{self, ChunkKey, DataKey};
use super::source::{Positioned, ReadAt};
use super::{CHUNK_LEN, HEADER_LEN, SEALED_CHUNK_LEN, TAG_LEN};
use crate::error::{BodyError, Error};

/// A byte range of an object's plaintext, as in an HTTP `Range` header.
///
/// The plaintext length a body's size implies is unauthenticated until its
/// final chunk opens, so every range whose result depends on that length —
/// [`ByteRange::From`], [`ByteRange::Last`], and a [`ByteRange::Bounded`]
/// range that reaches past the end — also opens and checks the final chunk.
///
/// Which ranges are satisfiable is the rule of HTTP (RFC 9110 §14.1.1),
/// which is also what Amazon S3 answers, including for an empty object:
///
/// - [`ByteRange::Bounded`] and [`ByteRange::From`] (`bytes=start-end`,
///   `bytes=start-`) are satisfiable when `start` is less than the length.
///   On an empty object no such range is (S3: `416 InvalidRange` for
///   `bytes=0-` and `bytes=0-0`).
/// - [`ByteRange::Last`] (`bytes=-n`) is satisfiable when `n` is not 0,
///   whatever the length; on an empty object it gives no bytes (S3 answers
///   `200` with the empty object, and a server should too: a `206` would
///   need a `Content-Range` for zero bytes, which HTTP cannot express).
/// - A bounded range that ends before it starts is never satisfiable.
///
/// Beyond HTTP, an empty `Bounded` range `start..start` with `start` at most
/// the length gives no bytes, as slicing does, and the whole object, `..`
/// (which converts to `ByteRange::Last(u64::MAX)`), is always satisfiable.
/// Unsatisfiable ranges fail with [`BodyError::InvalidRange`] (S3's 416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// Bytes `start..end`; `end` past the object is clamped to its length
    /// (`bytes=start-(end-1)`).
    Bounded {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// Bytes from `start` to the end (`bytes=start-`).
    From(u64),
    /// The last `n` bytes, or the whole object if it is shorter (`bytes=-n`).
    Last(u64),
}

impl From<Range<u64>> for ByteRange {
    fn from(r: Range<u64>) -> Self {
        ByteRange::Bounded {
            start: r.start,
            end: r.end,
        }
    }
}

impl From<RangeFrom<u64>> for ByteRange {
    fn from(r: RangeFrom<u64>) -> Self {
        ByteRange::From(r.start)
    }
}

/// The whole object: the last `u64::MAX` bytes, satisfiable (and empty)
/// even on an empty object.
impl From<RangeFull> for ByteRange {
    fn from(_: RangeFull) -> Self {
        ByteRange::Last(u64::MAX)
    }
}

/// Why a `Range` header value is not one objseal serves (see
/// [`ByteRange::parse_header`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeHeaderError {
    /// Not `bytes=...` with one well-formed range spec (a server ignores
    /// such a header, as RFC 9110 allows and S3 does, and sends the whole
    /// object).
    Malformed,
    /// Several ranges (`bytes=0-1,5-6`): S3 serves one range per request
    /// and ignores the header.
    MultipleRanges,
}

impl core::fmt::Display for RangeHeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RangeHeaderError::Malformed => {
                "not a byte range (use bytes=START-END, bytes=START- or bytes=-N)"
            }
            RangeHeaderError::MultipleRanges => "several byte ranges in one request",
        })
    }
}

impl std::error::Error for RangeHeaderError {}

impl ByteRange {
    /// Parses an HTTP `Range` header value (RFC 9110 §14.1.2): `bytes=A-B`
    /// (bytes A to B inclusive), `bytes=A-` or `bytes=-N`, with optional
    /// spaces around the spec. The `bytes=` prefix is required; a spec whose
    /// last byte is before its first is malformed (RFC 9110), which a
    /// server treats as no `Range` header at all.
    ///
    /// ```
    /// use objseal::body::{ByteRange, RangeHeaderError};
    ///
    /// assert_eq!(ByteRange::parse_header("bytes=0-99"), Ok(ByteRange::from(0..100)));
    /// assert_eq!(ByteRange::parse_header("bytes=100-"), Ok(ByteRange::From(100)));
    /// assert_eq!(ByteRange::parse_header("bytes=-5"), Ok(ByteRange::Last(5)));
    /// assert_eq!(ByteRange::parse_header("bytes=9-2"), Err(RangeHeaderError::Malformed));
    /// assert_eq!(ByteRange::parse_header("bytes=0-1,4-5"), Err(RangeHeaderError::MultipleRanges));
    ///
    /// // Against a 10-byte object: the bytes to send and the Content-Range.
    /// let r = ByteRange::Last(3).satisfiable(10)?;
    /// assert_eq!(r, 7..10);
    /// assert_eq!(objseal::body::content_range(&r, 10), "bytes 7-9/10");
    /// assert!(ByteRange::From(10).satisfiable(10).is_err()); // 416, `bytes */10`
    /// # Ok::<(), objseal::Error>(())
    /// ```
    pub fn parse_header(value: &str) -> Result<ByteRange, RangeHeaderError> {
        let spec = value
            .trim()
            .strip_prefix("bytes=")
            .ok_or(RangeHeaderError::Malformed)?;
        if spec.contains(',') {
            return Err(RangeHeaderError::MultipleRanges);
        }
        Self::parse_spec(spec.trim()).ok_or(RangeHeaderError::Malformed)
    }

    /// Parses one range spec without the unit: `A-B`, `A-` or `-N`.
    pub fn parse_spec(spec: &str) -> Option<ByteRange> {
        let (a, b) = spec.split_once('-')?;
        let num = |t: &str| {
            (!t.is_empty() && t.len() <= 20 && t.bytes().all(|c| c.is_ascii_digit()))
                .then(|| t.parse::<u64>().ok())
                .flatten()
        };
        match (a.is_empty(), b.is_empty()) {
            (true, false) => Some(ByteRange::Last(num(b)?)),
            (false, true) => Some(ByteRange::From(num(a)?)),
            (false, false) => {
                let (start, last) = (num(a)?, num(b)?);
                if last < start {
                    return None;
                }
                Some(ByteRange::Bounded {
                    start,
                    end: last.checked_add(1)?,
                })
            }
            (true, true) => None,
        }
    }

    /// The bytes this range selects of an object of `len` bytes, or
    /// [`BodyError::InvalidRange`] (S3's 416) when it selects none by the
    /// rule above. A server answers 206 with [`content_range`] of the
    /// result, or 416 with `Content-Range: bytes */LEN`; an empty result
    /// (a suffix range of an empty object) is answered 200 with the empty
    /// object.
    pub fn satisfiable(self, len: u64) -> Result<Range<u64>, Error> {
        let r = self.resolve(len);
        match r.unsatisfiable {
            Some(e) => Err(e.into()),
            None => Ok(r.start..r.end),
        }
    }
}

/// The `Content-Range` value of a 206 answer for bytes `range` of an object
/// of `len` bytes: `bytes FIRST-LAST/LEN`. `range` MUST be non-empty (a 206
/// cannot describe zero bytes).
pub fn content_range(range: &Range<u64>, len: u64) -> String {
    format!(
        "bytes {}-{}/{len}",
        range.start,
        range.end.saturating_sub(1)
    )
}

/// A range resolved against an object length.
pub(crate) struct Resolved {
    /// First byte.
    pub(crate) start: u64,
    /// One past the last byte, at most the length.
    pub(crate) end: u64,
    /// Whether the result depends on the length, so the final chunk must be checked.
    pub(crate) check_final: bool,
    /// The error to report (after the final chunk is checked) when the range
    /// is not satisfiable.
    pub(crate) unsatisfiable: Option<BodyError>,
}

impl ByteRange {
    /// A caller error that needs no look at the body: a bounded range that
    /// ends before it starts.
    pub(crate) fn reversed(self) -> Option<BodyError> {
        match self {
            ByteRange::Bounded { start, end } if start > end => Some(BodyError::InvalidRange {
                start,
                end,
                len: u64::MAX,
            }),
            _ => None,
        }
    }

    /// Resolves the range against the (unauthenticated) plaintext length.
    pub(crate) fn resolve(self, len: u64) -> Resolved {
        let (start, end, relative) = match self {
            ByteRange::Bounded { start, end } => (start, end, false),
            ByteRange::From(start) => (start, u64::MAX, true),
            ByteRange::Last(n) => (len.saturating_sub(n), u64::MAX, true),
        };
        let clamped = end.min(len);
        // RFC 9110 §14.1.1: an int-range is satisfiable when it starts before
        // the end, a suffix range when it is not empty; plus the empty
        // bounded range `start..start` within the object, as slicing has it.
        let invalid = match self {
            ByteRange::Bounded { start, end } => {
                start > end || start > len || (start == len && start != end)
            }
            ByteRange::From(start) => start >= len,
            ByteRange::Last(n) => n == 0,
        };
        Resolved {
            start: start.min(clamped),
            end: clamped,
            check_final: relative || end > len,
            unsatisfiable: invalid.then_some(BodyError::InvalidRange { start, end, len }),
        }
    }
}

/// Sealed bytes a range read takes chunks from: a body in memory, or a body
/// in a positioned source (a file read with positioned reads).
pub(crate) trait SealedSource {
    /// Length of the whole body, header included.
    fn body_len(&self) -> u64;
    /// Body bytes `from..to` (both within the body).
    fn sealed(&self, from: u64, to: u64) -> Result<Cow<'_, [u8]>, Error>;
}

impl SealedSource for [u8] {
    fn body_len(&self) -> u64 {
        self.len() as u64
    }

    fn sealed(&self, from: u64, to: u64) -> Result<Cow<'_, [u8]>, Error> {
        Ok(Cow::Borrowed(
            &self[to_usize(from, "body")?..to_usize(to, "body")?],
        ))
    }
}

/// Opens a byte range of the body in bytes `base..base + body_len` of
/// `source` (a file, a buffer, any [`ReadAt`]), as [`super::open_range`]
/// does for a body in memory: reads the 56-byte header and checks it, then
/// reads and opens only the chunks the range touches (and the final chunk
/// when the range depends on the body's length, see [`ByteRange`]). The
/// result is one vector; [`super::RangeReader`] streams a range in bounded
/// memory instead.
///
/// ```
/// use objseal::body::{self, ByteRange, DataKey};
///
/// let key = DataKey::generate()?;
/// let body = body::seal(&key, b"ctx", b"0123456789")?;
/// // The body stored after 3 bytes of something else.
/// let mut stored = b"abc".to_vec();
/// stored.extend_from_slice(&body);
/// let len = body.len() as u64;
/// assert_eq!(body::open_range_at(&key, b"ctx", &stored, 3, len, 2..5)?, b"234");
/// assert_eq!(body::open_range_at(&key, b"ctx", &stored, 3, len, ByteRange::Last(2))?, b"89");
/// # Ok::<(), objseal::Error>(())
/// ```
pub fn open_range_at<S: ReadAt + ?Sized>(
    key: &DataKey,
    context: &[u8],
    source: &S,
    base: u64,
    body_len: u64,
    range: impl Into<ByteRange>,
) -> Result<Vec<u8>, Error> {
    let src = Positioned::new(source, base, body_len);
    open_source_range(key, context, &src, None, range.into())
}

/// Opens `range` of the body in `src`: checks its header against `key` and
/// `context`, and, when `plaintext_len` is given, that the body's length
/// holds exactly that much plaintext (before any chunk is opened, so a body
/// cut at a chunk boundary is refused whatever the range).
pub(crate) fn open_source_range<S: SealedSource + ?Sized>(
    key: &DataKey,
    context: &[u8],
    src: &S,
    plaintext_len: Option<u64>,
    range: ByteRange,
) -> Result<Vec<u8>, Error> {
    let len = src.body_len();
    if len < HEADER_LEN as u64 {
        return Err(BodyError::TruncatedHeader { len }.into());
    }
    let header = src.sealed(0, HEADER_LEN as u64)?;
    let chunk_key = keys::derive_for_open(key, context, &header)?;
    if let Some(expected) = plaintext_len {
        let actual = Layout::for_body(len)?.plaintext_len;
        if actual != expected {
            return Err(BodyError::LengthMismatch { expected, actual }.into());
        }
    }
    // With no length to hold the body to, the body's size is the length,
    // unauthenticated until the final chunk opens: open it whatever the
    // range.
    open_range_checked(&chunk_key, src, range, plaintext_len.is_none())
}

/// Opens `range` of `body` with an already header-checked key.
///
/// The result is a fresh vector of exactly the range: the plaintext of the
/// neighbouring bytes of the chunks it touches is opened into a scratch
/// buffer that is wiped before it is freed.
pub(crate) fn open_range(
    key: &ChunkKey,
    body: &(impl SealedSource + ?Sized),
    range: ByteRange,
) -> Result<Vec<u8>, Error> {
    open_range_checked(key, body, range, false)
}

/// [`open_range`], opening the final chunk first whatever the range when
/// `always_final` (the length is not otherwise authenticated).
fn open_range_checked(
    key: &ChunkKey,
    body: &(impl SealedSource + ?Sized),
    range: ByteRange,
    always_final: bool,
) -> Result<Vec<u8>, Error> {
    if let Some(e) = range.reversed() {
        return Err(e.into());
    }
    let body_len = body.body_len();
    let layout = Layout::for_body(body_len)?;
    let r = range.resolve(layout.plaintext_len);
    let chunk = CHUNK_LEN as u64;
    let sealed_chunk = SEALED_CHUNK_LEN as u64;
    let (first, last) = (r.start / chunk, r.end.saturating_sub(1) / chunk);
    let touches_final = r.end > r.start && last + 1 == layout.chunks;
    if (r.check_final || always_final) && !touches_final {
        let index = layout.chunks - 1;
        let at = HEADER_LEN as u64 + index * sealed_chunk;
        let sealed = body.sealed(at, body_len)?;
        let mut scratch = Zeroizing::new(vec![0u8; sealed.len() - TAG_LEN]);
        key.open_chunks(index, &sealed, &mut scratch)?;
    }
    if let Some(e) = r.unsatisfiable {
        return Err(e.into());
    }
    if r.start == r.end {
        return Ok(Vec::new());
    }
    let sealed_from = HEADER_LEN as u64 + first * sealed_chunk;
    let sealed_to = if last + 1 == layout.chunks {
        body_len
    } else {
        HEADER_LEN as u64 + (last + 1) * sealed_chunk
    };
    let pt_from = first * chunk;
    let pt_to = (pt_from + (last - first + 1) * chunk).min(layout.plaintext_len);
    let mut scratch = Zeroizing::new(vec![0u8; to_usize(pt_to - pt_from, "range")?]);
    let sealed = body.sealed(sealed_from, sealed_to)?;
    key.open_chunks(first, &sealed, &mut scratch)?;
    let skip = to_usize(r.start - pt_from, "range")?;
    let len = to_usize(r.end - r.start, "range")?;
    if skip == 0 && len == scratch.len() {
        return Ok(core::mem::take(&mut *scratch));
    }
    Ok(scratch[skip..skip + len].to_vec())
}
