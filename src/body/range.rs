//! Range reads: open only the chunks a byte range touches.

use core::ops::{Range, RangeFrom, RangeFull};

use super::chunk::{Layout, to_usize};
use super::keys::ChunkKey;
use super::{CHUNK_LEN, HEADER_LEN, SEALED_CHUNK_LEN, TAG_LEN};
use crate::error::{BodyError, Error};

/// A byte range of an object's plaintext, as in an HTTP `Range` header.
///
/// The plaintext length a body's size implies is unauthenticated until its
/// final chunk opens, so every range whose result depends on that length —
/// [`ByteRange::From`], [`ByteRange::Last`], and a [`ByteRange::Bounded`]
/// range that reaches past the end — also opens and checks the final chunk.
///
/// A range is not satisfiable ([`BodyError::InvalidRange`]) when it ends
/// before it starts, or when it is non-empty and starts at or past the end
/// of the object; an empty `Bounded` range within the object gives no bytes.
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

impl From<RangeFull> for ByteRange {
    fn from(_: RangeFull) -> Self {
        ByteRange::From(0)
    }
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
        let invalid = start > end || (start >= clamped && start != end);
        Resolved {
            start: start.min(clamped),
            end: clamped,
            check_final: relative || end > len,
            unsatisfiable: invalid.then_some(BodyError::InvalidRange { start, end, len }),
        }
    }
}

/// Opens `range` of `body` with an already header-checked key.
pub(crate) fn open_range(key: &ChunkKey, body: &[u8], range: ByteRange) -> Result<Vec<u8>, Error> {
    if let Some(e) = range.reversed() {
        return Err(e.into());
    }
    let layout = Layout::for_body(body.len() as u64)?;
    let r = range.resolve(layout.plaintext_len);
    let chunk = CHUNK_LEN as u64;
    let (first, last) = (r.start / chunk, r.end.saturating_sub(1) / chunk);
    let touches_final = r.end > r.start && last + 1 == layout.chunks;
    if r.check_final && !touches_final {
        let index = layout.chunks - 1;
        let at = HEADER_LEN + to_usize(index, "body")? * SEALED_CHUNK_LEN;
        let mut scratch = vec![0u8; body.len() - at - TAG_LEN];
        key.open_chunks(index, &body[at..], &mut scratch)?;
    }
    if let Some(e) = r.unsatisfiable {
        return Err(e.into());
    }
    if r.start == r.end {
        return Ok(Vec::new());
    }
    let sealed_from = HEADER_LEN + to_usize(first, "body")? * SEALED_CHUNK_LEN;
    let sealed_to = if last + 1 == layout.chunks {
        body.len()
    } else {
        HEADER_LEN + to_usize(last + 1, "body")? * SEALED_CHUNK_LEN
    };
    let pt_from = first * chunk;
    let pt_to = (pt_from + (last - first + 1) * chunk).min(layout.plaintext_len);
    let mut out = vec![0u8; to_usize(pt_to - pt_from, "range")?];
    key.open_chunks(first, &body[sealed_from..sealed_to], &mut out)?;
    let skip = (r.start - pt_from) as usize;
    let len = (r.end - r.start) as usize;
    out.copy_within(skip..skip + len, 0);
    out.truncate(len);
    Ok(out)
}
