//! File to file: the input is memory-mapped, chunks are sealed or opened in
//! parallel and written with positioned writes into a pre-sized temporary
//! file beside the destination, which is fsynced and atomically renamed
//! over the destination only once everything succeeded.
//!
//! This module holds objseal's one `unsafe` outside the cipher kernels: the
//! memory mapping of the input file.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use rayon::prelude::*;

use super::chunk::{GROUP_CHUNKS, Layout, to_usize};
use super::keys::{self, DataKey, fill_random};
use super::range::ByteRange;
use super::{CHUNK_LEN, HEADER_LEN, SEALED_CHUNK_LEN, TAG_LEN};
use crate::error::Error;

/// A read-only view of a whole input file. Empty files are not mapped
/// (a zero-length mapping is an error on most systems).
struct Input {
    map: Option<Mmap>,
}

impl Input {
    /// Maps `path` read-only.
    ///
    /// The caller of the public functions promises, as their docs state, that
    /// the file is not modified or truncated while the call runs.
    fn open(path: &Path) -> Result<Self, Error> {
        let file = File::open(path).map_err(|e| Error::io_at(path, e))?;
        let len = file.metadata().map_err(|e| Error::io_at(path, e))?.len();
        if len == 0 {
            return Ok(Input { map: None });
        }
        to_usize(len, "input file")?;
        // SAFETY: `Mmap::map` is unsafe because the mapped file could be
        // changed underneath the mapping, which would break the `&[u8]`
        // invariants (and truncation raises SIGBUS). Every public function
        // of this module documents that the caller MUST NOT let the file be
        // modified or truncated while the call runs; that promise is what
        // makes this sound, as in ripgrep's searcher. The mapping is
        // read-only and dropped before the function returns.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io_at(path, e))?;
        Ok(Input { map: Some(map) })
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// A temporary file beside the destination, removed on drop unless
/// [`Output::commit`] renamed it into place.
struct Output {
    file: File,
    tmp: PathBuf,
    dst: PathBuf,
    committed: bool,
}

impl Output {
    /// Creates a new, pre-sized temporary file in `dst`'s directory.
    fn create(dst: &Path, len: u64) -> Result<Self, Error> {
        let name = dst.file_name().ok_or_else(|| {
            Error::io_at(
                dst,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "destination has no file name",
                ),
            )
        })?;
        let dir = parent_dir(dst);
        let mut rnd = [0u8; 8];
        fill_random(&mut rnd)?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{:016x}.objseal-tmp", u64::from_le_bytes(rnd)));
        let tmp = dir.join(tmp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io_at(&tmp, e))?;
        let out = Output {
            file,
            tmp,
            dst: dst.to_path_buf(),
            committed: false,
        };
        out.file
            .set_len(len)
            .map_err(|e| Error::io_at(&out.tmp, e))?;
        Ok(out)
    }

    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Error> {
        write_all_at(&self.file, buf, offset).map_err(|e| Error::io_at(&self.tmp, e))
    }

    /// Makes the file durable and renames it over the destination.
    fn commit(mut self) -> Result<(), Error> {
        self.file
            .sync_all()
            .map_err(|e| Error::io_at(&self.tmp, e))?;
        fs::rename(&self.tmp, &self.dst).map_err(|e| Error::io_at(&self.dst, e))?;
        self.committed = true;
        sync_dir(&parent_dir(&self.dst))
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes a rename in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io_at(dir, e))
}

/// Directories cannot be fsynced on this platform; the rename is as durable
/// as the platform makes it.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), Error> {
    Ok(())
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_write(file, buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(not(any(unix, windows)))]
fn write_all_at(_file: &File, _buf: &[u8], _offset: u64) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Seals the file `src` into a new body at `dst`; returns the body length.
///
/// `src` is memory-mapped and chunks are sealed in parallel on the current
/// rayon pool, 1 MiB per task, each written in place into a pre-sized
/// temporary file in `dst`'s directory. Only when all is written is the file
/// fsynced and renamed over `dst` (and the directory fsynced): on any error
/// no output is left behind and an existing `dst` is untouched.
///
/// The caller MUST ensure that `src` is not modified or truncated (by this
/// or any other process) while the call runs: it is memory-mapped, and a
/// change would corrupt the output or crash the process (SIGBUS).
///
/// ```
/// use objseal::body::{self, DataKey};
///
/// let dir = tempfile::tempdir()?;
/// let (plain, sealed, back) = (dir.path().join("a"), dir.path().join("a.sealed"), dir.path().join("a.out"));
/// std::fs::write(&plain, b"file contents")?;
///
/// let key = DataKey::generate()?;
/// body::seal_file(&key, b"ctx", &plain, &sealed)?;
/// body::open_file(&key, b"ctx", &sealed, &back)?;
/// assert_eq!(std::fs::read(&back)?, b"file contents");
///
/// // A wrong key leaves no output behind.
/// let other = DataKey::generate()?;
/// assert!(body::open_file(&other, b"ctx", &sealed, &dir.path().join("x")).is_err());
/// assert!(!dir.path().join("x").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn seal_file(key: &DataKey, context: &[u8], src: &Path, dst: &Path) -> Result<u64, Error> {
    let input = Input::open(src)?;
    let plaintext = input.bytes();
    let layout = Layout::for_plaintext(plaintext.len() as u64)?;
    let body_len = layout.body_len()?;
    let (chunk_key, header) = keys::derive_for_seal(key, context)?;
    let out = Output::create(dst, body_len)?;
    out.write_at(&header, 0)?;
    let group_pt = GROUP_CHUNKS * CHUNK_LEN;
    let groups = to_usize(layout.chunks, "input file")?.div_ceil(GROUP_CHUNKS);
    (0..groups).into_par_iter().try_for_each_init(
        || vec![0u8; GROUP_CHUNKS * SEALED_CHUNK_LEN],
        |buf, g| {
            let pt = &plaintext[g * group_pt..((g + 1) * group_pt).min(plaintext.len())];
            let chunks = if g + 1 == groups {
                pt.len() / CHUNK_LEN + 1
            } else {
                GROUP_CHUNKS
            };
            let sealed = &mut buf[..pt.len() + chunks * TAG_LEN];
            chunk_key.seal_chunks((g * GROUP_CHUNKS) as u64, pt, sealed)?;
            out.write_at(
                sealed,
                (HEADER_LEN + g * GROUP_CHUNKS * SEALED_CHUNK_LEN) as u64,
            )
        },
    )?;
    out.commit()?;
    Ok(body_len)
}

/// Opens the body in file `src` into a new file at `dst`; returns the
/// plaintext length.
///
/// The header is checked before anything is decrypted or created. Chunks
/// are opened in parallel into a temporary file beside `dst`; it is renamed
/// over `dst` only once every chunk authenticated. A wrong key, a tampered
/// or truncated body, or an I/O error leave no output, and never replace an
/// existing `dst`.
///
/// The caller MUST ensure that `src` is not modified or truncated while the
/// call runs (it is memory-mapped; see [`seal_file`]).
pub fn open_file(key: &DataKey, context: &[u8], src: &Path, dst: &Path) -> Result<u64, Error> {
    let input = Input::open(src)?;
    let body = input.bytes();
    let chunk_key = keys::derive_for_open(key, context, body)?;
    let layout = Layout::for_body(body.len() as u64)?;
    let out = Output::create(dst, layout.plaintext_len)?;
    let chunks = body.len() - HEADER_LEN;
    let groups = to_usize(layout.chunks, "body file")?.div_ceil(GROUP_CHUNKS);
    let group_sealed = GROUP_CHUNKS * SEALED_CHUNK_LEN;
    (0..groups).into_par_iter().try_for_each_init(
        || vec![0u8; GROUP_CHUNKS * CHUNK_LEN],
        |buf, g| {
            let from = HEADER_LEN + g * group_sealed;
            let to = (from + group_sealed).min(HEADER_LEN + chunks);
            let sealed = &body[from..to];
            let n = sealed.len() - sealed.len().div_ceil(SEALED_CHUNK_LEN) * TAG_LEN;
            let plain = &mut buf[..n];
            chunk_key.open_chunks((g * GROUP_CHUNKS) as u64, sealed, plain)?;
            out.write_at(plain, (g * GROUP_CHUNKS * CHUNK_LEN) as u64)
        },
    )?;
    out.commit()?;
    Ok(layout.plaintext_len)
}

/// Opens a byte range of the body in file `src`, decrypting only the chunks
/// the range touches (and the final chunk when the range depends on the
/// object length; see [`ByteRange`]).
///
/// The caller MUST ensure that `src` is not modified or truncated while the
/// call runs (it is memory-mapped; see [`seal_file`]).
pub fn open_file_range(
    key: &DataKey,
    context: &[u8],
    src: &Path,
    range: impl Into<ByteRange>,
) -> Result<Vec<u8>, Error> {
    let input = Input::open(src)?;
    let body = input.bytes();
    let chunk_key = keys::derive_for_open(key, context, body)?;
    super::range::open_range(&chunk_key, body, range.into())
}
