//! Positioned sources: where range readers and multipart readers take sealed
//! bytes from, by offset, without a cursor (a file read with `pread`, a body
//! in memory, or any `Read + Seek` behind [`SeekAt`]).

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::chunk::to_usize;
use super::range::SealedSource;
use crate::error::Error;

/// Bytes read by position: the source of [`super::RangeReader`],
/// [`super::open_range_at`] and, through `objseal::sse::PartStore`, of
/// multipart readers. Reads take `&self`, so one source serves many readers
/// at once (a file with `pread`, a shared buffer).
///
/// Implemented for [`File`] (positioned reads: `pread` on unix,
/// `seek_read` on Windows, which moves the file's cursor there), `[u8]`,
/// `Vec<u8>`, and through `&T`, `Box<T>` and `Arc<T>` (so `Arc<[u8]>`,
/// `Arc<File>`); wrap any `Read + Seek` in [`SeekAt`].
///
/// ```
/// use objseal::body::ReadAt;
///
/// let data = b"hello, world".to_vec();
/// let mut buf = [0u8; 5];
/// data.read_exact_at(&mut buf, 7)?;
/// assert_eq!(&buf, b"world");
/// assert_eq!(data.read_at(&mut buf, 12)?, 0); // the end
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait ReadAt {
    /// Reads up to `buf.len()` bytes starting `offset` bytes into the
    /// source; returns how many were read, 0 only at (or past) the end or
    /// for an empty `buf`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Fills `buf` from `offset`, or fails with `UnexpectedEof` if the
    /// source ends first (retrying `Interrupted` reads).
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        super::file::read_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        let Some(rest) = self.get(start..) else {
            return Ok(0);
        };
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.as_slice().read_at(buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
}

/// A `Read + Seek` (a cursor, a file handle shared with nobody, a client of
/// a store with seekable reads) as a [`ReadAt`]: every positioned read
/// takes a lock, seeks and reads, so readers sharing one `SeekAt` take
/// turns.
///
/// ```
/// use std::io::Cursor;
/// use objseal::body::{ReadAt, SeekAt};
///
/// let src = SeekAt::new(Cursor::new(b"0123456789".to_vec()));
/// let mut buf = [0u8; 3];
/// src.read_exact_at(&mut buf, 4)?;
/// assert_eq!(&buf, b"456");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct SeekAt<R>(Mutex<R>);

impl<R: Read + Seek> SeekAt<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        SeekAt(Mutex::new(inner))
    }

    /// The wrapped reader (at whatever position the last read left it).
    pub fn into_inner(self) -> R {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl<R: Read + Seek> ReadAt for SeekAt<R> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        // A panic in another reader cannot leave the reader in a state that
        // a seek does not reset.
        let mut r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        r.seek(SeekFrom::Start(offset))?;
        r.read(buf)
    }
}

/// The `len` bytes of a source that start `base` bytes into it: one body.
/// Reads past them are errors, so a source that is shorter than it was said
/// to be fails the read (naming `path`, when the source is a file).
pub(crate) struct Positioned<S> {
    pub(crate) src: S,
    /// Where the body starts in the source.
    pub(crate) base: u64,
    /// The body's length.
    pub(crate) len: u64,
    /// The file it is, for error messages.
    pub(crate) path: Option<PathBuf>,
}

impl<S: ReadAt> Positioned<S> {
    /// Bytes `base..base + len` of `src`.
    pub(crate) fn new(src: S, base: u64, len: u64) -> Self {
        Positioned {
            src,
            base,
            len,
            path: None,
        }
    }

    /// Fills `buf` from body offset `offset`, or fails if the source ends
    /// first.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        let at = self
            .base
            .checked_add(offset)
            .ok_or_else(|| self.changed())?;
        self.src.read_exact_at(buf, at).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.changed()
            } else {
                self.io(e)
            }
        })
    }

    /// Checks that the source holds no byte past the body: it did not
    /// grow, and it is not a file whose size is not its length (such as the
    /// files of `/proc`, which report 0).
    pub(crate) fn check_end(&self) -> Result<(), Error> {
        let mut probe = [0u8; 1];
        match self.src.read_at(&mut probe, self.base + self.len) {
            Ok(0) => Ok(()),
            Ok(_) => Err(self.changed()),
            Err(e) => Err(self.io(e)),
        }
    }

    /// `e`, naming the file when there is one.
    pub(crate) fn io(&self, e: io::Error) -> Error {
        match &self.path {
            Some(p) => Error::io_at(p, e),
            None => Error::from(e),
        }
    }

    /// The error for a source that ends before the body does.
    pub(crate) fn changed(&self) -> Error {
        let msg = match &self.path {
            Some(_) => format!(
                "file is no longer {} bytes long: it changed while being read (or its size is not its length); nothing was written",
                self.base + self.len
            ),
            None => format!(
                "the source ends before byte {} (a body of {} bytes at offset {}): it is shorter than its stated length",
                self.base + self.len,
                self.len,
                self.base
            ),
        };
        self.io(io::Error::new(io::ErrorKind::UnexpectedEof, msg))
    }
}

impl<S: ReadAt> SealedSource for Positioned<S> {
    fn body_len(&self) -> u64 {
        self.len
    }

    fn sealed(&self, from: u64, to: u64) -> Result<Cow<'_, [u8]>, Error> {
        let mut buf = vec![0u8; to_usize(to - from, "body range")?];
        self.read_at(&mut buf, from)?;
        Ok(Cow::Owned(buf))
    }
}
