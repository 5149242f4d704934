//! Streaming and file entry points of the [`Engine`]: an object written or
//! read through `Write`/`Read` in bounded memory, and file to file with an
//! atomic rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Chain, Cursor, Read, Write};
use std::path::{Path, PathBuf};

use super::{Engine, OpenWith, SealMode};
use crate::body::{ByteRange, DataKey, OpenReader, SealWriter};
use crate::error::{BodyError, Error, FormatError};
use crate::format::{Envelope, MAX_ENVELOPE_LEN, ObjectBinding};
use crate::keys::fsio;
use crate::keys::secret::fill_random;

/// Writes one object (envelope, then body sealed in parallel batches).
///
/// The plaintext length is declared up front (it is in the envelope, as S3
/// knows `Content-Length`); writing more fails, and [`ObjectWriter::finish`]
/// fails if fewer bytes were written. `finish` MUST be called: without it
/// the body is truncated and the object does not open.
pub struct ObjectWriter<W: Write> {
    inner: SealWriter<W>,
    declared: u64,
    written: u64,
}

impl<W: Write> core::fmt::Debug for ObjectWriter<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("declared", &self.declared)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Write for ObjectWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.declared {
            return Err(Error::from(BodyError::LengthMismatch {
                expected: self.declared,
                actual: self.written + buf.len() as u64,
            })
            .into_io());
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> ObjectWriter<W> {
    /// Seals the final chunk and returns the inner writer. Fails if fewer
    /// bytes than declared were written.
    pub fn finish(self) -> Result<W, Error> {
        if self.written != self.declared {
            return Err(BodyError::LengthMismatch {
                expected: self.declared,
                actual: self.written,
            }
            .into());
        }
        self.inner.finish()
    }
}

/// Reads one object's plaintext: the envelope is read and checked and the
/// data key unwrapped when it is created, then the body is opened a batch at
/// a time. The plaintext length is checked against the envelope at the end.
///
/// As with [`OpenReader`], a damaged object may release authentic batches
/// before the error: treat the output as untrusted until `read` returns
/// `Ok(0)`.
pub struct ObjectReader<R: Read> {
    inner: OpenReader<Chain<Cursor<Vec<u8>>, R>>,
    envelope: Envelope,
    read: u64,
}

impl<R: Read> core::fmt::Debug for ObjectReader<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("envelope", &self.envelope)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl<R: Read> ObjectReader<R> {
    /// The object's envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }
}

impl<R: Read> Read for ObjectReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let expected = self.envelope.plaintext_len;
        if self.read > expected || (n == 0 && !buf.is_empty() && self.read != expected) {
            return Err(Error::from(BodyError::LengthMismatch {
                expected,
                actual: self.read,
            })
            .into_io());
        }
        Ok(n)
    }
}

/// Reads an envelope from the start of `r`; returns it and the bytes read
/// past it. Reads no more than the envelope needs plus one read-ahead, and
/// never more than the largest envelope.
fn read_envelope<R: Read>(r: &mut R) -> Result<(Envelope, Vec<u8>), Error> {
    let mut buf = Vec::new();
    let mut want = 1024usize;
    loop {
        let start = buf.len();
        buf.resize(want, 0);
        let mut got = start;
        while got < want {
            match r.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let eof = got < want;
        buf.truncate(got);
        match Envelope::parse_prefix(&buf) {
            Ok((env, used)) => return Ok((env, buf.split_off(used))),
            Err(Error::Format(FormatError::Truncated {
                needed, available, ..
            })) if !eof && buf.len() < MAX_ENVELOPE_LEN => {
                let more = (needed.saturating_sub(available) as usize).max(buf.len());
                want = (buf.len() + more).min(MAX_ENVELOPE_LEN + 1024);
            }
            Err(e) => return Err(e),
        }
    }
}

/// A temporary file beside `dst`, renamed over it by `commit`, removed on
/// drop otherwise.
struct Staged {
    file: Option<File>,
    tmp: PathBuf,
    dst: PathBuf,
}

impl Staged {
    fn create(dst: &Path) -> Result<Self, Error> {
        let mut rnd = [0u8; 8];
        fill_random(&mut rnd)?;
        // A short name (a long destination name must still fit), private
        // to the owner: the output may be plaintext.
        let tmp =
            fsio::parent_dir(dst).join(format!(".objseal-{:016x}.tmp", u64::from_le_bytes(rnd)));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&tmp).map_err(|e| Error::io_at(&tmp, e))?;
        Ok(Staged {
            file: Some(file),
            tmp,
            dst: dst.to_path_buf(),
        })
    }

    fn commit(mut self, file: File) -> Result<(), Error> {
        file.sync_all().map_err(|e| Error::io_at(&self.tmp, e))?;
        drop(file);
        fs::rename(&self.tmp, &self.dst).map_err(|e| Error::io_at(&self.dst, e))?;
        self.file = None;
        self.tmp = PathBuf::new();
        fsio::sync_dir(&fsio::parent_dir(&self.dst))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Engine {
    /// Starts writing the object `binding` of `plaintext_len` bytes to
    /// `inner` (envelope first, written now).
    pub fn seal_writer<W: Write>(
        &self,
        mode: &SealMode<'_>,
        binding: &ObjectBinding,
        plaintext_len: u64,
        mut inner: W,
    ) -> Result<ObjectWriter<W>, Error> {
        let dek = DataKey::generate()?;
        let env = self.new_envelope(mode, binding, plaintext_len, &dek)?;
        inner.write_all(&env.encode()?)?;
        Ok(ObjectWriter {
            inner: SealWriter::new(inner, &dek, &env.body_context())?,
            declared: plaintext_len,
            written: 0,
        })
    }

    /// Starts reading the object `binding` from `inner`: reads and checks the
    /// envelope and unwraps the data key before returning.
    pub fn open_reader<R: Read>(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        mut inner: R,
    ) -> Result<ObjectReader<R>, Error> {
        let (envelope, ahead) = read_envelope(&mut inner)?;
        let dek = self.unwrap_key(with, binding, &envelope)?;
        let context = binding.body_context();
        let body = Cursor::new(ahead).chain(inner);
        Ok(ObjectReader {
            inner: OpenReader::new(body, &dek, &context)?,
            envelope,
            read: 0,
        })
    }

    /// Seals file `src` as the object `binding` into a new file at `dst`
    /// (envelope then body), written beside it and atomically renamed into
    /// place once complete and fsynced. Returns the stored length.
    pub fn seal_file(
        &self,
        mode: &SealMode<'_>,
        binding: &ObjectBinding,
        src: &Path,
        dst: &Path,
    ) -> Result<u64, Error> {
        let mut input = File::open(src).map_err(|e| Error::io_at(src, e))?;
        let len = input.metadata().map_err(|e| Error::io_at(src, e))?.len();
        let staged = Staged::create(dst)?;
        let file = staged.file.as_ref().map(File::try_clone).transpose();
        let file = file
            .map_err(|e| Error::io_at(dst, e))?
            .ok_or_else(|| Error::io_at(dst, io::Error::other("staging file missing")))?;
        let mut w = self.seal_writer(mode, binding, len, file)?;
        io::copy(&mut (&mut input).take(len), &mut w).map_err(Error::from)?;
        let file = w.finish()?;
        let stored = file.metadata().map_err(|e| Error::io_at(dst, e))?.len();
        staged.commit(file)?;
        Ok(stored)
    }

    /// Opens the stored object in file `src` into a new file at `dst`,
    /// renamed into place only once every byte authenticated; on any error
    /// nothing is left at `dst` (an existing file there is kept). Returns the
    /// plaintext length.
    pub fn open_file(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        src: &Path,
        dst: &Path,
    ) -> Result<u64, Error> {
        let input = File::open(src).map_err(|e| Error::io_at(src, e))?;
        let mut r = self.open_reader(with, binding, input)?;
        let staged = Staged::create(dst)?;
        let file = staged.file.as_ref().map(File::try_clone).transpose();
        let mut file = file
            .map_err(|e| Error::io_at(dst, e))?
            .ok_or_else(|| Error::io_at(dst, io::Error::other("staging file missing")))?;
        let n = io::copy(&mut r, &mut file).map_err(Error::from)?;
        staged.commit(file)?;
        Ok(n)
    }

    /// Opens the bytes `range` of the stored object in file `src`. The body
    /// is streamed from the start of the file up to the end of the range (to
    /// its end when the range depends on the object's length), in bounded
    /// memory. For ranges far into large objects, keep the envelope apart
    /// and use [`crate::body::open_file_range`] with [`Engine::data_key`],
    /// which opens only the chunks the range touches.
    pub fn open_file_range(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        src: &Path,
        range: impl Into<ByteRange>,
    ) -> Result<Vec<u8>, Error> {
        let input = File::open(src).map_err(|e| Error::io_at(src, e))?;
        let mut r = self.open_reader(with, binding, io::BufReader::new(input))?;
        let len = r.envelope().plaintext_len;
        let (start, end, to_end) = match range.into() {
            ByteRange::Bounded { start, end } => (start, end.min(len), end >= len),
            ByteRange::From(start) => (start, len, true),
            ByteRange::Last(n) => (len.saturating_sub(n), len, true),
        };
        let bad = |end| BodyError::InvalidRange { start, end, len };
        if start > end || (start >= len && start != end) {
            return Err(bad(end).into());
        }
        io::copy(&mut (&mut r).take(start), &mut io::sink()).map_err(Error::from)?;
        let mut out = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0).min(64 << 20));
        (&mut r)
            .take(end - start)
            .read_to_end(&mut out)
            .map_err(Error::from)?;
        if to_end {
            io::copy(&mut r, &mut io::sink()).map_err(Error::from)?;
        }
        Ok(out)
    }
}
