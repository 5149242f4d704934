//! Chunks: nonces, the body layout, and sealing or opening runs of chunks in
//! parallel. Knows nothing of envelopes or where the key came from.
//!
//! Layout (all offsets in bytes): header `[0, 56)`, then chunk `k` at
//! `56 + k × 16400`; every chunk but the last holds 16384 bytes of plaintext
//! plus a 16-byte tag, the last holds `0..=16383` bytes plus its tag.

use rayon::prelude::*;
use zeroize::Zeroize;

use super::keys::ChunkKey;
use super::{CHUNK_LEN, HEADER_LEN, SEALED_CHUNK_LEN, TAG_LEN};
use crate::cipher::NONCE_LEN;
use crate::error::{BodyError, Error};

/// Chunks per parallel task: 64 × 16 KiB = 1 MiB, so scheduling stays cheap.
pub(crate) const GROUP_CHUNKS: usize = 64;
/// Sealed bytes of one full group.
const GROUP_SEALED: usize = GROUP_CHUNKS * SEALED_CHUNK_LEN;

/// Whether `sealed_len` bytes of chunks are too few to split across
/// threads: less than two full groups run on the calling thread. Handing
/// tasks to the rayon pool costs a cross-thread round trip (tens of
/// microseconds when a worker must be woken, as much as sealing a few
/// hundred KiB), so a second task pays off only once it carries a full
/// group; in particular a 1 MiB object (64 full chunks and an empty final
/// one, just over one group) is sealed without waking anyone.
fn one_group(sealed_len: usize) -> bool {
    sealed_len < 2 * GROUP_SEALED
}

/// The nonce of chunk `index`: the base nonce XOR the index as a 96-bit
/// big-endian integer (the index never exceeds 64 bits, so only the last 8
/// bytes change).
pub(crate) fn chunk_nonce(base: &[u8; NONCE_LEN], index: u64) -> [u8; NONCE_LEN] {
    let mut nonce = *base;
    for (n, i) in nonce[NONCE_LEN - 8..].iter_mut().zip(index.to_be_bytes()) {
        *n ^= i;
    }
    nonce
}

/// The shape of a body: how many chunks and how much plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Plaintext bytes.
    pub(crate) plaintext_len: u64,
    /// Chunks, including the final short (possibly empty) one; at least 1.
    pub(crate) chunks: u64,
}

impl Layout {
    /// The layout of the body sealing `plaintext_len` bytes.
    pub(crate) fn for_plaintext(plaintext_len: u64) -> Result<Self, BodyError> {
        let chunks = plaintext_len / CHUNK_LEN as u64 + 1;
        let layout = Layout {
            plaintext_len,
            chunks,
        };
        layout.body_len().map(|_| layout)
    }

    /// The layout a body of `body_len` bytes must have. The plaintext length
    /// it implies is authenticated only once the final chunk opens.
    pub(crate) fn for_body(body_len: u64) -> Result<Self, BodyError> {
        let area = body_len
            .checked_sub(HEADER_LEN as u64)
            .ok_or(BodyError::TruncatedHeader { len: body_len })?;
        let full = area / SEALED_CHUNK_LEN as u64;
        let tail = area % SEALED_CHUNK_LEN as u64;
        if tail == 0 {
            return Err(BodyError::MissingFinalChunk { chunks: full });
        }
        if tail < TAG_LEN as u64 {
            return Err(BodyError::TruncatedChunk { index: full, tail });
        }
        Ok(Layout {
            plaintext_len: full * CHUNK_LEN as u64 + (tail - TAG_LEN as u64),
            chunks: full + 1,
        })
    }

    /// Length of the whole body, header included.
    pub(crate) fn body_len(&self) -> Result<u64, BodyError> {
        let too_long = BodyError::TooLong {
            what: "plaintext",
            len: self.plaintext_len,
        };
        self.chunks
            .checked_mul(TAG_LEN as u64)
            .and_then(|t| t.checked_add(self.plaintext_len))
            .and_then(|t| t.checked_add(HEADER_LEN as u64))
            .ok_or(too_long)
    }
}

/// Converts a length to `usize`, or says it is too long for this platform.
pub(crate) fn to_usize(len: u64, what: &'static str) -> Result<usize, Error> {
    usize::try_from(len).map_err(|_| BodyError::TooLong { what, len }.into())
}

impl ChunkKey {
    /// Seals one chunk: `slot` holds the plaintext followed by 16 bytes of
    /// room for the tag.
    pub(crate) fn seal_chunk(&self, index: u64, slot: &mut [u8]) -> Result<(), Error> {
        let (pt, tag) = slot.split_at_mut(slot.len() - TAG_LEN);
        let nonce = chunk_nonce(&self.base_nonce, index);
        tag.copy_from_slice(&self.gcm.seal_in_place(&nonce, &[], pt)?);
        Ok(())
    }

    /// Opens one chunk from `sealed` (ciphertext || tag) into `out`, which is
    /// `sealed.len() - 16` bytes. On failure `out` is zeroed.
    pub(crate) fn open_chunk(
        &self,
        index: u64,
        sealed: &[u8],
        out: &mut [u8],
    ) -> Result<(), BodyError> {
        let (ct, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let nonce = chunk_nonce(&self.base_nonce, index);
        self.gcm.open_to(&nonce, &[], ct, tag, out).map_err(|_| {
            // `open_to` zeroed `out` on a wrong tag; on an input error
            // (never: the lengths come from the layout) it left it as
            // it was, so zero it here too.
            out.zeroize();
            BodyError::ChunkAuthentication { index }
        })
    }

    /// Opens one chunk in place: `slot` holds ciphertext || tag and ends up
    /// holding the plaintext followed by the (now meaningless) tag.
    pub(crate) fn open_chunk_in_place(&self, index: u64, slot: &mut [u8]) -> Result<(), BodyError> {
        let (ct, tag) = slot.split_at_mut(slot.len() - TAG_LEN);
        let nonce = chunk_nonce(&self.base_nonce, index);
        let tag: [u8; TAG_LEN] = (&*tag).try_into().expect("tag slot is 16 bytes");
        self.gcm
            .open_in_place(&nonce, &[], ct, &tag)
            .map_err(|_| BodyError::ChunkAuthentication { index })
    }

    /// Seals chunks `first..` from `plaintext` into `out` (their sealed form,
    /// `plaintext.len() + 16 × chunks` bytes), in parallel, 1 MiB per task.
    /// The chunk count is read from `out`: its last slot may hold a short or
    /// empty chunk (the final one) or a full one.
    pub(crate) fn seal_chunks(
        &self,
        first: u64,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<(), Error> {
        let work = |(g, group): (usize, &mut [u8])| -> Result<(), Error> {
            let pt_base = g * GROUP_CHUNKS * CHUNK_LEN;
            for (j, slot) in group.chunks_mut(SEALED_CHUNK_LEN).enumerate() {
                let start = pt_base + j * CHUNK_LEN;
                let n = slot.len() - TAG_LEN;
                let (ct, tag) = slot.split_at_mut(n);
                let nonce = chunk_nonce(&self.base_nonce, first + (g * GROUP_CHUNKS + j) as u64);
                // Read from the plaintext and written to the slot in one
                // pass (no copy first: out of cache, that would halve the
                // throughput).
                tag.copy_from_slice(&self.gcm.seal_to(
                    &nonce,
                    &[],
                    &plaintext[start..start + n],
                    ct,
                )?);
            }
            Ok(())
        };
        if one_group(out.len()) {
            out.chunks_mut(GROUP_SEALED).enumerate().try_for_each(work)
        } else {
            out.par_chunks_mut(GROUP_SEALED)
                .enumerate()
                .try_for_each(work)
        }
    }

    /// Seals, in place and in parallel, `slots` laid out as consecutive chunk
    /// slots (plaintext || 16 bytes of room), the first being chunk `first`.
    pub(crate) fn seal_slots(&self, first: u64, slots: &mut [u8]) -> Result<(), Error> {
        let work = |(g, group): (usize, &mut [u8])| -> Result<(), Error> {
            for (j, slot) in group.chunks_mut(SEALED_CHUNK_LEN).enumerate() {
                self.seal_chunk(first + (g * GROUP_CHUNKS + j) as u64, slot)?;
            }
            Ok(())
        };
        if one_group(slots.len()) {
            slots
                .chunks_mut(GROUP_SEALED)
                .enumerate()
                .try_for_each(work)
        } else {
            slots
                .par_chunks_mut(GROUP_SEALED)
                .enumerate()
                .try_for_each(work)
        }
    }

    /// Opens, in place and in parallel, consecutive chunk slots; returns the
    /// index of the first chunk that failed. Every failed chunk is zeroed;
    /// the caller must discard all of `slots` on failure.
    pub(crate) fn open_slots(&self, first: u64, slots: &mut [u8]) -> Result<(), BodyError> {
        let work = |(g, group): (usize, &mut [u8])| {
            group
                .chunks_mut(SEALED_CHUNK_LEN)
                .enumerate()
                .find_map(|(j, slot)| {
                    self.open_chunk_in_place(first + (g * GROUP_CHUNKS + j) as u64, slot)
                        .err()
                })
        };
        let failed = if one_group(slots.len()) {
            slots
                .chunks_mut(GROUP_SEALED)
                .enumerate()
                .filter_map(work)
                .min_by_key(chunk_index)
        } else {
            slots
                .par_chunks_mut(GROUP_SEALED)
                .enumerate()
                .filter_map(work)
                .min_by_key(chunk_index)
        };
        failed.map_or(Ok(()), Err)
    }

    /// Opens chunks `first..` from `sealed` into `out` (their plaintext,
    /// `sealed.len() - 16 × chunks` bytes), in parallel. `sealed` ends with
    /// the last chunk to open; `out` may be shorter than one chunk, or empty
    /// when that chunk is the empty final one. On failure every byte of `out`
    /// is zeroed and the first failing chunk is reported.
    pub(crate) fn open_chunks(
        &self,
        first: u64,
        sealed: &[u8],
        out: &mut [u8],
    ) -> Result<(), BodyError> {
        let chunks = sealed.len().div_ceil(SEALED_CHUNK_LEN);
        let groups = chunks.div_ceil(GROUP_CHUNKS);
        let mut pieces: Vec<&mut [u8]> = out.chunks_mut(GROUP_CHUNKS * CHUNK_LEN).collect();
        if pieces.len() < groups {
            pieces.push(&mut []);
        }
        let work = |(g, piece): (usize, &mut [u8])| {
            let sealed_base = g * GROUP_CHUNKS * SEALED_CHUNK_LEN;
            let in_group = (chunks - g * GROUP_CHUNKS).min(GROUP_CHUNKS);
            (0..in_group).find_map(|j| {
                let start = (j * CHUNK_LEN).min(piece.len());
                let end = ((j + 1) * CHUNK_LEN).min(piece.len());
                let s = sealed_base + j * SEALED_CHUNK_LEN;
                let sealed_chunk = &sealed[s..s + (end - start) + TAG_LEN];
                self.open_chunk(
                    first + (g * GROUP_CHUNKS + j) as u64,
                    sealed_chunk,
                    &mut piece[start..end],
                )
                .err()
            })
        };
        let failed = if one_group(sealed.len()) {
            pieces
                .into_iter()
                .enumerate()
                .filter_map(work)
                .min_by_key(chunk_index)
        } else {
            pieces
                .into_par_iter()
                .enumerate()
                .filter_map(work)
                .min_by_key(chunk_index)
        };
        match failed {
            None => Ok(()),
            Some(e) => {
                zeroize::Zeroize::zeroize(out);
                Err(e)
            }
        }
    }
}

/// Sort key for picking the first failing chunk.
fn chunk_index(e: &BodyError) -> u64 {
    match e {
        BodyError::ChunkAuthentication { index } => *index,
        _ => u64::MAX,
    }
}
