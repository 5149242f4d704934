//! File to file: the input is read with positioned reads, one group of
//! chunks (1 MiB of plaintext) at a time into each rayon worker's reused
//! buffer, sealed or opened in place there, and written with positioned
//! writes into a pre-sized temporary file beside the destination, which is
//! fsynced and atomically renamed over the destination only once everything
//! succeeded. By default ([`FileInput::Read`]) there is no memory mapping:
//! a file that changes size while it is read gives an error, never a crash
//! or a short body. [`FileInput::Mapped`] reads through a memory mapping
//! instead (see `mmap.rs` and the SIGBUS hazard it documents).

use std::fs::{self, File};
use std::io;
use std::path::Path;

use rayon::prelude::*;
use zeroize::Zeroizing;

use super::chunk::{GROUP_CHUNKS, Layout, to_usize};
use super::keys::{self, DataKey};
use super::range::ByteRange;
use super::source::Positioned;
use super::{CHUNK_LEN, HEADER_LEN, SEALED_CHUNK_LEN, TAG_LEN};
use crate::error::{BodyError, Error};
use crate::fsio::Staged;

/// How the file entry points read their input file: with positioned
/// reads (the default) or through a memory mapping.
///
/// The default is [`FileInput::Read`], chosen by measurement and for
/// safety: on Linux with the file in the page cache, mapping was measured
/// no faster end to end (the output writes and the fsync dominate; see the
/// `objseal bench` file rows, which show both), and a mapped file that
/// another process truncates kills this process with `SIGBUS`, which
/// positioned reads turn into an error.
///
/// ```
/// use objseal::body::{self, DataKey, FileInput};
///
/// let dir = tempfile::tempdir()?;
/// let (plain, sealed) = (dir.path().join("a"), dir.path().join("a.sealed"));
/// std::fs::write(&plain, vec![7u8; 100_000])?;
/// let key = DataKey::generate()?;
/// // This process just wrote `plain` and nothing else writes to `dir`: it
/// // may be mapped.
/// body::seal_file_with(&key, b"ctx", &plain, &sealed, FileInput::Mapped)?;
/// let part = body::open_file_range_with(&key, b"ctx", &sealed, 10..20, FileInput::Read)?;
/// assert_eq!(part, [7u8; 10]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileInput {
    /// Positioned reads (`pread` on unix): a file that shrinks or grows
    /// during the call fails it with an [`Error::Io`] naming the file, and
    /// nothing is written. The default.
    #[default]
    Read,
    /// A read-only memory mapping of the input (`memmap2`), copied from
    /// into each worker's buffer.
    ///
    /// **The caller promises that nothing truncates the file during the
    /// call.** If another process (or thread) truncates a mapped file, the
    /// next read of a page past the new end raises `SIGBUS` and the process
    /// is killed; no error can be returned. Choose this only for files no
    /// one else can shorten meanwhile (one this process just wrote in a
    /// private directory, a file on a read-only file system, a file locked
    /// by an agreement all its writers honour); use [`FileInput::Read`]
    /// for anything else. The file must also be on local, healthy
    /// storage: a read error on a mapped page (bad sector, a network or
    /// FUSE file system failing) raises `SIGBUS` too. A file that grows is
    /// still detected (the end is checked with a positioned read), and bytes
    /// changed in place are read as they are at that moment, as with
    /// positioned reads.
    Mapped,
}

/// Where an input file's bytes come from.
pub(crate) enum Source {
    /// Positioned reads of the file.
    Read(File),
    /// A memory mapping of the whole file.
    Mapped(super::mmap::Mapped),
}

impl super::ReadAt for Source {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            Source::Read(f) => read_at(f, buf, offset),
            Source::Mapped(m) => m.read_at(buf, offset),
        }
    }
}

/// An input file, read with positioned reads or from a mapping. Its length
/// is taken once, when it is opened; a file that then shrinks or grows
/// fails the read (or, mapped and shrunk, see [`FileInput::Mapped`]).
pub(crate) type Input = Positioned<Source>;

/// Opens `path`, which must be a regular file (a FIFO, device, socket or
/// directory has no length to seal or open).
pub(crate) fn open_input(path: &Path, how: FileInput) -> Result<Input, Error> {
    // Checked before opening too, so that opening a FIFO cannot block.
    let before = fs::metadata(path).map_err(|e| Error::io_at(path, e))?;
    if !before.is_file() {
        return Err(not_regular(path));
    }
    let file = File::open(path).map_err(|e| Error::io_at(path, e))?;
    input_at(file, path, 0, how)
}

/// The body that starts `base` bytes into the open `file` (named `path` in
/// errors), which must be a regular file at least that long; the body runs
/// to the end of the file.
pub(crate) fn input_at(file: File, path: &Path, base: u64, how: FileInput) -> Result<Input, Error> {
    let meta = file.metadata().map_err(|e| Error::io_at(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path));
    }
    let len = meta.len().checked_sub(base).ok_or_else(|| {
        Error::io_at(
            path,
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file is shorter than the {base} bytes before its body"),
            ),
        )
    })?;
    let src = match how {
        FileInput::Read => Source::Read(file),
        FileInput::Mapped => Source::Mapped(
            super::mmap::Mapped::new(file, meta.len()).map_err(|e| Error::io_at(path, e))?,
        ),
    };
    Ok(Positioned {
        src,
        base,
        len,
        path: Some(path.to_path_buf()),
    })
}

/// The error for a source that is not a regular file.
pub(crate) fn not_regular(path: &Path) -> Error {
    Error::io_at(
        path,
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device, socket or directory); objseal seals and opens regular files only, use SealWriter/OpenReader for streams",
        ),
    )
}

/// A staged output file, pre-sized and written by position from many
/// threads; see [`Staged`].
pub(crate) struct Output(Staged);

impl Output {
    /// Creates the staged file for `dst` (mode 0o600 on unix) and sizes it
    /// to `len` bytes.
    pub(crate) fn create(dst: &Path, len: u64) -> Result<Self, Error> {
        let staged = Staged::create(dst)?;
        staged
            .file()
            .set_len(len)
            .map_err(|e| Error::io_at(staged.tmp_path(), e))?;
        Ok(Output(staged))
    }

    /// Writes all of `buf` at `offset`.
    pub(crate) fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Error> {
        write_all_at(self.0.file(), buf, offset).map_err(|e| Error::io_at(self.0.tmp_path(), e))?;
        start_writeback(self.0.file(), buf.len(), offset);
        Ok(())
    }

    /// See [`Staged::commit`].
    pub(crate) fn commit(self) -> Result<(), Error> {
        self.0.commit()
    }
}

/// Starts writing the `len` bytes just written at `offset` back to disk
/// now, without waiting: the final fsync then finds most of the file
/// already written, so the disk works while the cipher does instead of all
/// after it. On Linux `POSIX_FADV_DONTNEED` starts that writeback (it drops
/// only pages that are already clean, so none of the data written); a hint
/// only: a failed writeback is reported by the final fsync, which then
/// fails the commit. When opening, the output is plaintext that already
/// authenticated, group by group: as with any output, a later failure
/// discards the temporary file (its blocks are freed, not wiped), now
/// possibly after some of it reached the disk.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, len: usize, offset: u64) {
    let Some(len) = std::num::NonZeroU64::new(len as u64) else {
        return;
    };
    let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed);
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _len: usize, _offset: u64) {}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_write(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(not(any(unix, windows)))]
fn write_all_at(_file: &File, _buf: &[u8], _offset: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(unix)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(not(any(unix, windows)))]
pub(crate) fn read_at(_file: &File, _buf: &mut [u8], _offset: u64) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Seals the file `src` into a new body at `dst`; returns the body length.
///
/// `src` MUST be a regular file; anything else (a FIFO, device, socket or
/// directory) is refused with an [`Error::Io`] of kind `InvalidInput`
/// naming it. Groups of 64 chunks (1 MiB) are read with positioned reads,
/// sealed in parallel on the current rayon pool and written in place into a
/// pre-sized temporary file in `dst`'s directory. Only when all is written
/// is the file fsynced and renamed over `dst` (and the directory fsynced):
/// on any error no output is left behind and an existing `dst` is untouched.
/// A `src` that changes length during the call fails with an [`Error::Io`]
/// (kind `UnexpectedEof`) naming it; other concurrent changes to `src` give
/// a body of whatever bytes were read, which still opens.
///
/// On unix the output is created with mode `0o600` (less the umask), and
/// replaces an existing `dst` with that mode: change the permissions after
/// the call to share the file. See [`open_file`] for what happens if the
/// final directory fsync fails.
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
    seal_file_with(key, context, src, dst, FileInput::default())
}

/// [`seal_file`], reading `src` as `how` says (see [`FileInput`]:
/// [`FileInput::Mapped`] is the caller's promise that nothing truncates
/// `src` during the call).
pub fn seal_file_with(
    key: &DataKey,
    context: &[u8],
    src: &Path,
    dst: &Path,
    how: FileInput,
) -> Result<u64, Error> {
    let input = open_input(src, how)?;
    seal_input(key, None, context, &input, dst, &[])
}

/// Seals the body `input` into a new file at `dst`, after `prefix` (an
/// object's envelope; empty for a bare body), under `salt` (drawn here when
/// `None`); returns the length of the file.
pub(crate) fn seal_input(
    key: &DataKey,
    salt: Option<&[u8; super::SALT_LEN]>,
    context: &[u8],
    input: &Input,
    dst: &Path,
    prefix: &[u8],
) -> Result<u64, Error> {
    let pt_len = input.len;
    let layout = Layout::for_plaintext(pt_len)?;
    let body_len = layout.body_len()?;
    let (chunk_key, header) = match salt {
        Some(salt) => keys::derive_for_seal_salted(key, salt, context)?,
        None => keys::derive_for_seal(key, context)?,
    };
    let at = prefix.len() as u64;
    let total = at.checked_add(body_len).ok_or(BodyError::TooLong {
        what: "body",
        len: body_len,
    })?;
    let out = Output::create(dst, total)?;
    if !prefix.is_empty() {
        out.write_at(prefix, 0)?;
    }
    out.write_at(&header, at)?;
    let group_pt = (GROUP_CHUNKS * CHUNK_LEN) as u64;
    let group_sealed = (GROUP_CHUNKS * SEALED_CHUNK_LEN) as u64;
    let groups = layout.chunks.div_ceil(GROUP_CHUNKS as u64);
    (0..groups).into_par_iter().try_for_each_init(
        || Zeroizing::new(vec![0u8; GROUP_CHUNKS * SEALED_CHUNK_LEN]),
        |buf, g| {
            let from = g * group_pt;
            let n = to_usize((from + group_pt).min(pt_len) - from, "input file")?;
            let chunks = if g + 1 == groups {
                n / CHUNK_LEN + 1
            } else {
                GROUP_CHUNKS
            };
            input.read_at(&mut buf[..n], from)?;
            // Spread the plaintext into chunk slots (16 bytes of room after
            // each), last chunk first so nothing is overwritten before it moves.
            for j in (1..chunks).rev() {
                let m = (n - j * CHUNK_LEN).min(CHUNK_LEN);
                buf.copy_within(j * CHUNK_LEN..j * CHUNK_LEN + m, j * SEALED_CHUNK_LEN);
            }
            let sealed = &mut buf[..n + chunks * TAG_LEN];
            let first = g * GROUP_CHUNKS as u64;
            for (j, slot) in sealed.chunks_mut(SEALED_CHUNK_LEN).enumerate() {
                chunk_key.seal_chunk(first + j as u64, slot)?;
            }
            out.write_at(sealed, at + HEADER_LEN as u64 + g * group_sealed)
        },
    )?;
    input.check_end()?;
    out.commit()?;
    Ok(total)
}

/// Opens the body in file `src` into a new file at `dst`; returns the
/// plaintext length.
///
/// `src` MUST be a regular file (see [`seal_file`]). The header is checked
/// before anything is decrypted or created. Groups of chunks are read with
/// positioned reads and opened in parallel into a temporary file beside
/// `dst`; it is renamed over `dst` only once every chunk authenticated. A
/// wrong key, a tampered or truncated body, a `src` that changes length
/// during the call, or an I/O error leave no output, and never replace an
/// existing `dst`.
///
/// On unix the output is created with mode `0o600` (less the umask), also
/// when it replaces an existing `dst`: decrypted plaintext never becomes
/// readable by others unless the caller changes the permissions afterwards.
///
/// If every write succeeded but fsyncing the directory after the rename
/// fails, the error is returned although `dst` has already been replaced by
/// the complete new file; only the durability of the rename across a crash
/// is then in doubt.
pub fn open_file(key: &DataKey, context: &[u8], src: &Path, dst: &Path) -> Result<u64, Error> {
    open_file_with(key, context, src, dst, FileInput::default())
}

/// [`open_file`], reading `src` as `how` says (see [`FileInput`]:
/// [`FileInput::Mapped`] is the caller's promise that nothing truncates
/// `src` during the call).
pub fn open_file_with(
    key: &DataKey,
    context: &[u8],
    src: &Path,
    dst: &Path,
    how: FileInput,
) -> Result<u64, Error> {
    let input = open_input(src, how)?;
    open_input_to(key, context, &input, dst)
}

/// Opens the body `input` into a new file at `dst`; returns the plaintext
/// length.
pub(crate) fn open_input_to(
    key: &DataKey,
    context: &[u8],
    input: &Input,
    dst: &Path,
) -> Result<u64, Error> {
    let chunk_key = open_header(key, context, input)?;
    let layout = Layout::for_body(input.len)?;
    let out = Output::create(dst, layout.plaintext_len)?;
    let group_pt = (GROUP_CHUNKS * CHUNK_LEN) as u64;
    let group_sealed = (GROUP_CHUNKS * SEALED_CHUNK_LEN) as u64;
    let groups = layout.chunks.div_ceil(GROUP_CHUNKS as u64);
    (0..groups).into_par_iter().try_for_each_init(
        || Zeroizing::new(vec![0u8; GROUP_CHUNKS * SEALED_CHUNK_LEN]),
        |buf, g| {
            let from = HEADER_LEN as u64 + g * group_sealed;
            let n = to_usize((from + group_sealed).min(input.len) - from, "body file")?;
            input.read_at(&mut buf[..n], from)?;
            let first = g * GROUP_CHUNKS as u64;
            let mut plain = 0;
            for (j, slot) in buf[..n].chunks_mut(SEALED_CHUNK_LEN).enumerate() {
                chunk_key.open_chunk_in_place(first + j as u64, slot)?;
                plain += slot.len() - TAG_LEN;
            }
            // Close the gaps the tags leave (moving each chunk back).
            for j in 1..n.div_ceil(SEALED_CHUNK_LEN) {
                let m = (n - j * SEALED_CHUNK_LEN - TAG_LEN).min(CHUNK_LEN);
                buf.copy_within(
                    j * SEALED_CHUNK_LEN..j * SEALED_CHUNK_LEN + m,
                    j * CHUNK_LEN,
                );
            }
            out.write_at(&buf[..plain], g * group_pt)
        },
    )?;
    input.check_end()?;
    out.commit()?;
    Ok(layout.plaintext_len)
}

/// Opens a byte range of the body in file `src`, decrypting only the chunks
/// the range touches (and the final chunk when the range depends on the
/// object length; see [`ByteRange`]). `src` MUST be a regular file (see
/// [`seal_file`]); only the header and the chunks needed are read. See
/// [`super::RangeReader`] for a range streamed in bounded memory, and
/// [`super::open_range_at`] for a body at an offset of any positioned source.
pub fn open_file_range(
    key: &DataKey,
    context: &[u8],
    src: &Path,
    range: impl Into<ByteRange>,
) -> Result<Vec<u8>, Error> {
    open_file_range_with(key, context, src, range, FileInput::default())
}

/// [`open_file_range`], reading `src` as `how` says (see [`FileInput`]).
pub fn open_file_range_with(
    key: &DataKey,
    context: &[u8],
    src: &Path,
    range: impl Into<ByteRange>,
    how: FileInput,
) -> Result<Vec<u8>, Error> {
    let input = open_input(src, how)?;
    super::range::open_source_range(key, context, &input, None, range.into())
}

/// Reads and checks the header of the body file `input`.
fn open_header(key: &DataKey, context: &[u8], input: &Input) -> Result<keys::ChunkKey, Error> {
    if input.len < HEADER_LEN as u64 {
        return Err(BodyError::TruncatedHeader { len: input.len }.into());
    }
    let mut header = [0u8; HEADER_LEN];
    input.read_at(&mut header, 0)?;
    keys::derive_for_open(key, context, &header)
}
