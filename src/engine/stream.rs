//! Streaming and file entry points of the [`Engine`]: an object written or
//! read through `Write`/`Read` in bounded memory, and file to file with an
//! atomic rename.

use std::fs::File;
use std::io::{self, Chain, Cursor, Read, Seek, Write};
use std::path::Path;

use super::{Engine, OpenWith, SealMode};
use crate::body::{ByteRange, DataKey, OpenReader, SealWriter};
use crate::error::{BodyError, Error, FormatError};
use crate::format::{Envelope, MAX_ENVELOPE_LEN, ObjectBinding};
use crate::fsio::Staged;

/// Writes one object (envelope, then body sealed in parallel batches).
///
/// Made by [`Engine::seal_writer`], the plaintext length is declared up
/// front (it is in the envelope, as S3 knows `Content-Length`); writing
/// more fails, and [`ObjectWriter::finish`] fails if fewer bytes were
/// written ([`BodyError::DeclaredLength`]). Made by
/// [`Engine::seal_writer_unsized`] (a chunked upload with no length), any
/// length is taken and the body's size records it. `finish` MUST be called:
/// without it the body is truncated and the object does not open.
pub struct ObjectWriter<W: Write> {
    inner: SealWriter<W>,
    envelope: Envelope,
    declared: Option<u64>,
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
        let received = self.written + buf.len() as u64;
        if let Some(declared) = self.declared
            && received > declared
        {
            return Err(Error::from(BodyError::DeclaredLength { declared, received }).into_io());
        }
        if received > crate::format::MAX_PLAINTEXT_LEN {
            return Err(Error::from(BodyError::TooLong {
                what: "plaintext",
                len: received,
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
    /// The object's envelope, as written at the start of the output (its
    /// plaintext length is 0 for an object whose body gives the length).
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Seals the final chunk and returns the inner writer. Fails if fewer
    /// bytes than declared were written.
    pub fn finish(self) -> Result<W, Error> {
        if let Some(declared) = self.declared
            && self.written != declared
        {
            return Err(BodyError::DeclaredLength {
                declared,
                received: self.written,
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
        if self.envelope.length_from_body {
            // The body's final chunk ends it; its length is the object's.
            if n == 0 && !buf.is_empty() {
                self.envelope.plaintext_len = self.read;
            }
            return Ok(n);
        }
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

impl Engine {
    /// Starts writing the object `binding` of `plaintext_len` bytes to
    /// `inner` (envelope first, written now).
    pub fn seal_writer<W: Write>(
        &self,
        mode: &SealMode<'_>,
        binding: &ObjectBinding,
        plaintext_len: u64,
        inner: W,
    ) -> Result<ObjectWriter<W>, Error> {
        self.object_writer(mode, binding, Some(plaintext_len), inner)
    }

    /// Starts writing the object `binding` of a length not known yet (a
    /// chunked or `aws-chunked` upload without `x-amz-decoded-content-length`)
    /// to `inner`, envelope first. The envelope records that the body's
    /// size gives the length (`docs/FORMAT.md` §1, flag `01`); every open
    /// works as for other objects, suffix ranges included.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::sync::Arc;
    /// use objseal::{Engine, Keyring, ObjectBinding, OpenWith, SealMode};
    ///
    /// let engine = Engine::builder().keyring(Arc::new(Keyring::in_memory("k")?)).build();
    /// let obj = ObjectBinding::new("b", "streamed")?;
    /// let mut w = engine.seal_writer_unsized(&SealMode::S3, &obj, Vec::new())?;
    /// w.write_all(b"length unknown ")?;
    /// w.write_all(b"until the end")?;
    /// let stored = w.finish()?;
    /// assert_eq!(engine.open(OpenWith::Managed, &obj, &stored)?, b"length unknown until the end");
    /// assert_eq!(engine.open_range(OpenWith::Managed, &obj, &stored, objseal::body::ByteRange::Last(3))?, b"end");
    /// # Ok::<(), objseal::Error>(())
    /// ```
    pub fn seal_writer_unsized<W: Write>(
        &self,
        mode: &SealMode<'_>,
        binding: &ObjectBinding,
        inner: W,
    ) -> Result<ObjectWriter<W>, Error> {
        self.object_writer(mode, binding, None, inner)
    }

    fn object_writer<W: Write>(
        &self,
        mode: &SealMode<'_>,
        binding: &ObjectBinding,
        plaintext_len: Option<u64>,
        mut inner: W,
    ) -> Result<ObjectWriter<W>, Error> {
        let dek = DataKey::generate()?;
        let env = self.new_envelope(mode, binding, plaintext_len, &dek)?;
        inner.write_all(&env.encode()?)?;
        Ok(ObjectWriter {
            inner: SealWriter::new(inner, &dek, &env.body_context())?,
            envelope: env,
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
        let mut w = self.seal_writer(mode, binding, len, io::BufWriter::new(staged.file()))?;
        io::copy(&mut (&mut input).take(len), &mut w).map_err(Error::from)?;
        w.finish()?
            .flush()
            .map_err(|e| Error::io_at(staged.tmp_path(), e))?;
        let stored = staged
            .file()
            .metadata()
            .map_err(|e| Error::io_at(staged.tmp_path(), e))?
            .len();
        staged.commit()?;
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
        let n = io::copy(&mut r, &mut staged.file()).map_err(Error::from)?;
        staged.commit()?;
        Ok(n)
    }

    /// Opens the bytes `range` of the stored object in file `src`: reads the
    /// envelope, unwraps the data key, then reads and opens only the chunks
    /// the range touches (and the final chunk when the range depends on the
    /// object's length; see [`ByteRange`]), with positioned reads. The body's
    /// length is checked against the envelope's before any chunk is opened.
    /// `src` must be a regular file.
    pub fn open_file_range(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        src: &Path,
        range: impl Into<ByteRange>,
    ) -> Result<Vec<u8>, Error> {
        // Checked before opening, so that opening a FIFO cannot block.
        let meta = std::fs::metadata(src).map_err(|e| Error::io_at(src, e))?;
        if !meta.is_file() {
            return Err(crate::body::file::not_regular(src));
        }
        let mut input = File::open(src).map_err(|e| Error::io_at(src, e))?;
        let (envelope, ahead) = read_envelope(&mut input)?;
        let dek = self.unwrap_key(with, binding, &envelope)?;
        let position = input.stream_position().map_err(|e| Error::io_at(src, e))?;
        // `ahead` holds the bytes read past the envelope; the body starts
        // where they do.
        let base = position - ahead.len() as u64;
        crate::body::file::open_file_range_at(
            &dek,
            &binding.body_context(),
            input,
            src,
            base,
            (!envelope.length_from_body).then_some(envelope.plaintext_len),
            range.into(),
        )
    }
}
