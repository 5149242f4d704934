//! Streaming and file entry points of the [`Engine`]: an object written or
//! read through `Write`/`Read` in bounded memory, and file to file with an
//! atomic rename.

use std::fs::File;
use std::io::{self, Chain, Cursor, Read, Seek, Write};
use std::path::Path;

use super::{Engine, OpenWith, SealMode};
use crate::body::file;
use crate::body::{
    ByteRange, DataKey, FileInput, OpenReader, Positioned, RangeReader, ReadAt, SealWriter,
};
use crate::error::{BodyError, Error, FormatError};
use crate::format::{Envelope, MAX_ENVELOPE_LEN, ObjectBinding};

/// Writes one object (envelope, then body sealed in parallel batches), or
/// only its body ([`BodyWriter`], made by [`Engine::seal_writer_detached`]).
///
/// Made with a plaintext length ([`Engine::seal_writer`]), the length is
/// declared up front (it is in the envelope, as S3 knows `Content-Length`);
/// writing more fails, and [`ObjectWriter::finish`] fails if fewer bytes
/// were written ([`BodyError::DeclaredLength`]). Made without one
/// ([`Engine::seal_writer_unsized`], a chunked upload with no length), any
/// length is taken and the body's size records it. `finish` MUST be called:
/// without it the body is truncated and the object does not open.
///
/// Memory: two batches of [`Engine::stream_batch_chunks`] chunks (see
/// [`crate::EngineBuilder::stream_batch_chunks`]).
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

/// The body-only [`ObjectWriter`] of [`Engine::seal_writer_detached`]: the
/// envelope is returned apart (for object metadata), the inner writer gets
/// the body alone.
pub type BodyWriter<W> = ObjectWriter<W>;

impl<W: Write> ObjectWriter<W> {
    /// The object's envelope, as written at the start of the output (its
    /// plaintext length is 0 for an object whose body gives the length);
    /// for a [`BodyWriter`], the envelope returned apart.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Plaintext bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The plaintext length declared up front, if any.
    pub fn declared_len(&self) -> Option<u64> {
        self.declared
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

/// Reads one object's plaintext: the envelope is read (or, detached, given)
/// and checked and the data key unwrapped when it is created, then the body
/// is opened a batch at a time. The plaintext length is checked against the
/// envelope at the end.
///
/// As with [`OpenReader`], a damaged object may release authentic batches
/// before the error: treat the output as untrusted until `read` returns
/// `Ok(0)`. Memory: two batches of [`Engine::stream_batch_chunks`] chunks.
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

    /// Starts sealing the object `binding` with its envelope kept apart
    /// (object metadata, e.g. [`Envelope::to_base64`]): returns the
    /// envelope now and a writer that writes only the body to `inner`.
    /// `plaintext_len` is the declared length (checked as for
    /// [`Engine::seal_writer`]), or `None` when it is not known until the
    /// end (the envelope then says the body's size gives it, as for
    /// [`Engine::seal_writer_unsized`]). Open the body with
    /// [`Engine::open_reader_detached`], [`Engine::open_detached`] or
    /// [`Engine::open_range_reader_detached`].
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::sync::Arc;
    /// use objseal::{Engine, Envelope, Keyring, ObjectBinding, OpenWith, SealMode};
    ///
    /// let engine = Engine::builder().keyring(Arc::new(Keyring::in_memory("k")?)).build();
    /// let obj = ObjectBinding::new("b", "k")?;
    /// let (env, mut w) = engine.seal_writer_detached(&SealMode::S3, &obj, None, Vec::new())?;
    /// w.write_all(b"streamed, ")?;
    /// w.write_all(b"length unknown")?;
    /// let body = w.finish()?;
    ///
    /// // The store keeps the envelope as metadata, the body as data.
    /// let meta = env.to_base64()?;
    /// let env = Envelope::from_base64(&meta)?;
    /// let mut r = engine.open_reader_detached(OpenWith::Managed, &obj, &env, &body[..])?;
    /// let mut out = Vec::new();
    /// r.read_to_end(&mut out)?;
    /// assert_eq!(out, b"streamed, length unknown");
    /// assert_eq!(r.envelope().plaintext_len, 24); // resolved at the end
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seal_writer_detached<W: Write>(
        &self,
        mode: &SealMode<'_>,
        binding: &ObjectBinding,
        plaintext_len: Option<u64>,
        inner: W,
    ) -> Result<(Envelope, BodyWriter<W>), Error> {
        let dek = DataKey::generate()?;
        let env = self.new_envelope(mode, binding, plaintext_len, &dek)?;
        let writer = self.body_writer(env.clone(), &dek, plaintext_len, inner)?;
        Ok((env, writer))
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
        self.body_writer(env, &dek, plaintext_len, inner)
    }

    /// A writer of the body of `envelope` under `dek` (in batches of this
    /// engine's size).
    pub(crate) fn body_writer<W: Write>(
        &self,
        envelope: Envelope,
        dek: &DataKey,
        plaintext_len: Option<u64>,
        inner: W,
    ) -> Result<ObjectWriter<W>, Error> {
        Ok(ObjectWriter {
            inner: SealWriter::with_batch_chunks(
                inner,
                dek,
                &envelope.body_context(),
                self.stream_batch_chunks(),
            )?,
            envelope,
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
        self.object_reader(with, binding, envelope, ahead, inner)
    }

    /// Starts reading the body `body` of the object `binding` whose
    /// envelope `env` is kept apart (object metadata): checks the envelope
    /// and unwraps the data key before returning. The plaintext length is
    /// checked against the envelope's at the end (and, for an envelope of
    /// unknown length, taken from the body there: see
    /// [`ObjectReader::envelope`]). See [`Engine::seal_writer_detached`].
    pub fn open_reader_detached<R: Read>(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        env: &Envelope,
        body: R,
    ) -> Result<ObjectReader<R>, Error> {
        self.object_reader(with, binding, env.clone(), Vec::new(), body)
    }

    fn object_reader<R: Read>(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        envelope: Envelope,
        ahead: Vec<u8>,
        inner: R,
    ) -> Result<ObjectReader<R>, Error> {
        let dek = self.unwrap_key(with, binding, &envelope)?;
        let context = binding.body_context();
        let body = Cursor::new(ahead).chain(inner);
        Ok(ObjectReader {
            inner: OpenReader::with_batch_chunks(body, &dek, &context, self.stream_batch_chunks())?,
            envelope,
            read: 0,
        })
    }

    /// Starts reading bytes `range` of the object `binding` stored, envelope
    /// then body, in bytes `base..base + len` of the positioned `source` (a
    /// file, a buffer, a shared store: any [`ReadAt`]): reads and checks the
    /// envelope, unwraps the data key, checks the body's length against the
    /// envelope and returns the envelope and a [`RangeReader`] that streams
    /// the range in bounded memory. See
    /// [`Engine::open_range_reader_detached`] for the rules; a multipart
    /// object is refused ([`BodyError::MultipartObject`]: see
    /// `objseal::sse::open_object_range_reader`).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::sync::Arc;
    /// use objseal::body::ByteRange;
    /// use objseal::{Engine, Keyring, ObjectBinding, OpenWith, SealMode};
    ///
    /// let engine = Engine::builder().keyring(Arc::new(Keyring::in_memory("k")?)).build();
    /// let obj = ObjectBinding::new("b", "k")?;
    /// let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    /// let stored = engine.seal(&SealMode::S3, &obj, &data)?;
    ///
    /// // The object sits 100 bytes into a file.
    /// let mut file = tempfile::tempfile()?;
    /// file.write_all(&[0u8; 100])?;
    /// file.write_all(&stored)?;
    /// let len = stored.len() as u64;
    /// let (env, mut r) =
    ///     engine.open_range_reader(OpenWith::Managed, &obj, file, 100, len, ByteRange::Last(5))?;
    /// assert_eq!(env.plaintext_len, 50_000);
    /// assert_eq!(r.range(), 49_995..50_000);
    /// let mut tail = Vec::new();
    /// r.read_to_end(&mut tail)?;
    /// assert_eq!(tail, &data[49_995..]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_range_reader<S: ReadAt>(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        source: S,
        base: u64,
        len: u64,
        range: impl Into<ByteRange>,
    ) -> Result<(Envelope, RangeReader<S>), Error> {
        let (env, used) = Envelope::read_at(&source, base, len)?;
        let src = Positioned::new(source, base + used, len - used);
        let r = self.range_reader(with, binding, &env, src, range.into())?;
        Ok((env, r))
    }

    /// Starts reading bytes `range` of the body of the object `binding`,
    /// stored in bytes `base..base + body_len` of the positioned `source`,
    /// whose envelope `env` is kept apart (object metadata). Before
    /// returning, it checks the envelope against the object and the key,
    /// checks that the body's length is the one the envelope records (an
    /// envelope of unknown length, flag `01`, takes the body's), unwraps
    /// the data key, reads and checks the body's header, and, when the
    /// range depends on the object's length (suffix and open ranges, ranges
    /// past the end), authenticates the final chunk; an unsatisfiable range
    /// fails then with [`BodyError::InvalidRange`] (S3's 416). The
    /// [`RangeReader`] then reads and opens only the chunks the range
    /// touches, [`Engine::stream_batch_chunks`] at a time.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::sync::Arc;
    /// use objseal::{Engine, Keyring, ObjectBinding, OpenWith, SealMode};
    ///
    /// let engine = Engine::builder().keyring(Arc::new(Keyring::in_memory("k")?)).build();
    /// let obj = ObjectBinding::new("b", "k")?;
    /// let (env, body) = engine.seal_detached(&SealMode::S3, &obj, b"0123456789")?;
    /// let body: Arc<[u8]> = body.into();
    /// let len = body.len() as u64;
    /// let mut r =
    ///     engine.open_range_reader_detached(OpenWith::Managed, &obj, &env, body, 0, len, 3..6)?;
    /// let mut out = String::new();
    /// r.read_to_string(&mut out)?;
    /// assert_eq!(out, "345");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn open_range_reader_detached<S: ReadAt>(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        env: &Envelope,
        source: S,
        base: u64,
        body_len: u64,
        range: impl Into<ByteRange>,
    ) -> Result<RangeReader<S>, Error> {
        let src = Positioned::new(source, base, body_len);
        self.range_reader(with, binding, env, src, range.into())
    }

    /// [`Engine::open_range_reader_detached`] over the body `src`.
    fn range_reader<S: ReadAt>(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        env: &Envelope,
        src: Positioned<S>,
        range: ByteRange,
    ) -> Result<RangeReader<S>, Error> {
        let dek = self.unwrap_checked(with, binding, env, src.len)?;
        let expected = (!env.length_from_body).then_some(env.plaintext_len);
        RangeReader::from_source(
            &dek,
            &binding.body_context(),
            src,
            expected,
            range,
            self.stream_batch_chunks(),
        )
    }

    /// Seals file `src` as the object `binding` into a new file at `dst`
    /// (envelope then body), written beside it and atomically renamed into
    /// place once complete and fsynced. Returns the stored length. `src`
    /// must be a regular file; it is read with positioned reads, groups of
    /// chunks sealed in parallel on the current rayon pool (see
    /// [`crate::body::seal_file`]).
    pub fn seal_file(
        &self,
        mode: &SealMode<'_>,
        binding: &ObjectBinding,
        src: &Path,
        dst: &Path,
    ) -> Result<u64, Error> {
        self.seal_file_with(mode, binding, src, dst, FileInput::default())
    }

    /// [`Engine::seal_file`], reading `src` as `how` says
    /// ([`FileInput::Mapped`] is the caller's promise that nothing
    /// truncates `src` during the call; see [`FileInput`]).
    pub fn seal_file_with(
        &self,
        mode: &SealMode<'_>,
        binding: &ObjectBinding,
        src: &Path,
        dst: &Path,
        how: FileInput,
    ) -> Result<u64, Error> {
        let input = file::open_input(src, how)?;
        let fresh = super::Fresh::draw()?;
        let env = self.new_envelope_salted(
            mode,
            binding,
            Some(input.len),
            &fresh.dek,
            fresh.kek_salt,
            fresh.check_salt,
        )?;
        let head = env.encode()?;
        file::seal_input(
            &fresh.dek,
            Some(&fresh.body_salt),
            &env.body_context(),
            &input,
            dst,
            &head,
        )
    }

    /// Opens the stored object in file `src` into a new file at `dst`,
    /// renamed into place only once every byte authenticated; on any error
    /// nothing is left at `dst` (an existing file there is kept). Returns the
    /// plaintext length. `src` must be a regular file; the body's length is
    /// checked against the envelope's before any chunk is opened, and
    /// groups of chunks are opened in parallel (see
    /// [`crate::body::open_file`]).
    pub fn open_file(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        src: &Path,
        dst: &Path,
    ) -> Result<u64, Error> {
        self.open_file_with(with, binding, src, dst, FileInput::default())
    }

    /// [`Engine::open_file`], reading `src` as `how` says (see
    /// [`FileInput`]).
    pub fn open_file_with(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        src: &Path,
        dst: &Path,
        how: FileInput,
    ) -> Result<u64, Error> {
        let (envelope, body) = object_file(src, how)?;
        let dek = self.unwrap_checked(with, binding, &envelope, body.len)?;
        file::open_input_to(&dek, &binding.body_context(), &body, dst)
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
        self.open_file_range_with(with, binding, src, range, FileInput::default())
    }

    /// [`Engine::open_file_range`], reading `src` as `how` says (see
    /// [`FileInput`]).
    pub fn open_file_range_with(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        src: &Path,
        range: impl Into<ByteRange>,
        how: FileInput,
    ) -> Result<Vec<u8>, Error> {
        let (envelope, body) = object_file(src, how)?;
        let dek = self.unwrap_key(with, binding, &envelope)?;
        crate::body::open_source_range(
            &dek,
            &binding.body_context(),
            &body,
            (!envelope.length_from_body).then_some(envelope.plaintext_len),
            range.into(),
        )
    }
}

/// Reads the envelope of the stored object in the regular file `src`;
/// returns it and the body that follows it, to be read as `how` says.
fn object_file(src: &Path, how: FileInput) -> Result<(Envelope, file::Input), Error> {
    // Checked before opening, so that opening a FIFO cannot block.
    let meta = std::fs::metadata(src).map_err(|e| Error::io_at(src, e))?;
    if !meta.is_file() {
        return Err(file::not_regular(src));
    }
    let mut input = File::open(src).map_err(|e| Error::io_at(src, e))?;
    let (envelope, ahead) = read_envelope(&mut input)?;
    let position = input.stream_position().map_err(|e| Error::io_at(src, e))?;
    // `ahead` holds the bytes read past the envelope; the body starts
    // where they do.
    let base = position - ahead.len() as u64;
    let body = file::input_at(input, src, base, how)?;
    Ok((envelope, body))
}
