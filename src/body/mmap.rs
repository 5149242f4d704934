//! Memory-mapped file input: the one module of the body layer with
//! `unsafe` (mapping a file with `memmap2`).
//!
//! # The hazard: SIGBUS
//!
//! A mapping stays valid only while the file is at least as long as it was
//! when mapped. If another process (or another thread of this one)
//! truncates the file while it is mapped, touching a page past the new end
//! raises `SIGBUS`, and the process is killed: an error cannot be returned.
//! Bytes changed (not truncated) by another writer are merely read as they
//! are at that moment, as with positioned reads.
//!
//! objseal therefore never maps a file unless the caller asks for it with
//! [`super::FileInput::Mapped`], which is the caller's promise that nothing
//! truncates the file during the call (for example a file the process
//! itself just wrote and nobody else can write, or one on a read-only or
//! otherwise controlled file system). The default,
//! [`super::FileInput::Read`], reads with positioned reads (`pread`), where
//! a truncated file gives an error naming it.
//!
//! A read error on a mapped page (a bad sector, a network or FUSE file
//! system's server failing, removed media) also raises `SIGBUS` instead of
//! an error: map only files on local, healthy storage.
//!
//! The mapping is a raw one (`MmapRaw`): no Rust reference to the mapped
//! bytes is ever formed. They are only copied, by raw pointer, into the
//! caller's private buffer, where they are sealed or opened. So bytes that
//! another process changes during the copy end up as whatever they were at
//! that instant, exactly as with `pread`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::{Advice, MmapOptions, MmapRaw};

/// A read-only mapping of a whole regular file, read by position. Reads
/// at or past the mapped length fall through to positioned reads of the
/// file itself, so a file that grew since it was mapped is still noticed
/// by the end-of-body check.
pub(crate) struct Mapped {
    /// `None` for an empty file (nothing to map).
    map: Option<MmapRaw>,
    file: File,
}

impl Mapped {
    /// Maps the `len` bytes of `file` (its length, just read from its
    /// metadata).
    ///
    /// The caller MUST have the promise of [`super::FileInput::Mapped`]:
    /// nothing truncates `file` while the returned value lives.
    pub(crate) fn new(file: File, len: u64) -> io::Result<Self> {
        if len == 0 {
            return Ok(Mapped { map: None, file });
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large to map"))?;
        // A raw read-only mapping: safe to create (it hands out no
        // references); the truncation hazard is the caller's promise.
        let map = MmapOptions::new().len(len).map_raw_read_only(&file)?;
        // Sequential read-ahead and early fault-in: a hint only, ignored
        // where unsupported.
        let _ = map.advise(Advice::Sequential);
        let _ = map.advise(Advice::WillNeed);
        Ok(Mapped {
            map: Some(map),
            file,
        })
    }
}

impl super::ReadAt for Mapped {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mapped = self.map.as_ref().map_or(0, |m| m.len());
        let start = match usize::try_from(offset) {
            Ok(s) if s < mapped => s,
            // At or past the mapped end: ask the file (0 if it did not grow).
            _ => return super::file::read_at(&self.file, buf, offset),
        };
        let Some(map) = self.map.as_ref() else {
            return Ok(0);
        };
        let n = (mapped - start).min(buf.len());
        // SAFETY: `start + n <= mapped`, the mapping's length, so the source
        // range lies inside the live raw mapping `map` (borrowed for this
        // call, so not unmapped during it); `buf` is a distinct, private
        // `&mut [u8]` of at least `n` bytes, so the ranges do not overlap.
        // No reference to mapped memory is formed (`MmapRaw` gives a raw
        // pointer only). The pages are backed as long as the file is not
        // truncated and its storage answers: the caller's promise for
        // `FileInput::Mapped` (module docs).
        unsafe {
            std::ptr::copy_nonoverlapping(map.as_ptr().add(start), buf.as_mut_ptr(), n);
        }
        Ok(n)
    }
}
