//! File to file: the input is read with positioned reads, one group of
//! chunks (1 MiB of plaintext) at a time into each rayon worker's reused
//! buffer, sealed or opened in place there, and written with positioned
//! writes into a pre-sized temporary file beside the destination, which is
//! fsynced and atomically renamed over the destination only once everything
//! succeeded. No memory mapping and no `unsafe`: a file that changes size
//! while it is read gives an error, never a crash or a short body.

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

/// An input file, read with positioned reads. Its length is taken once, when
/// it is opened; a file that then shrinks or grows fails the read.
type Input = Positioned<File>;

/// Opens `path`, which must be a regular file (a FIFO, device, socket or
/// directory has no length to seal or open).
fn open_input(path: &Path) -> Result<Input, Error> {
    // Checked before opening too, so that opening a FIFO cannot block.
    let before = fs::metadata(path).map_err(|e| Error::io_at(path, e))?;
    if !before.is_file() {
        return Err(not_regular(path));
    }
    let file = File::open(path).map_err(|e| Error::io_at(path, e))?;
    input_at(file, path, 0)
}

/// The body that starts `base` bytes into the open `file` (named `path` in
/// errors), which must be a regular file at least that long; the body runs
/// to the end of the file.
pub(crate) fn input_at(file: File, path: &Path, base: u64) -> Result<Input, Error> {
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
    Ok(Positioned {
        src: file,
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
struct Output(Staged);

impl Output {
    /// Creates the staged file for `dst` (mode 0o600 on unix) and sizes it
    /// to `len` bytes.
    fn create(dst: &Path, len: u64) -> Result<Self, Error> {
        let staged = Staged::create(dst)?;
        staged
            .file()
            .set_len(len)
            .map_err(|e| Error::io_at(staged.tmp_path(), e))?;
        Ok(Output(staged))
    }

    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Error> {
        write_all_at(self.0.file(), buf, offset).map_err(|e| Error::io_at(self.0.tmp_path(), e))
    }

    /// See [`Staged::commit`].
    fn commit(self) -> Result<(), Error> {
        self.0.commit()
    }
}

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
    let input = open_input(src)?;
    let pt_len = input.len;
    let layout = Layout::for_plaintext(pt_len)?;
    let body_len = layout.body_len()?;
    let (chunk_key, header) = keys::derive_for_seal(key, context)?;
    let out = Output::create(dst, body_len)?;
    out.write_at(&header, 0)?;
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
            out.write_at(sealed, HEADER_LEN as u64 + g * group_sealed)
        },
    )?;
    input.check_end()?;
    out.commit()?;
    Ok(body_len)
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
    let input = open_input(src)?;
    let chunk_key = open_header(key, context, &input)?;
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
    let input = open_input(src)?;
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
