//! The [`Engine`]: seals and opens whole objects (envelope and body) in the
//! three S3 modes, and changes their keys ([`Engine::rewrap`],
//! [`Engine::reencrypt`]).
//!
//! An object is its envelope followed by its body (`docs/FORMAT.md` §1, §5);
//! the `*_detached` entry points keep the envelope apart, as object metadata.

mod stream;

use std::sync::Arc;
use std::time::Duration;

use crate::body::{self, ByteRange, DataKey};
use crate::error::{BodyError, Error, KeyError};
use crate::format::KEK_SALT_LEN;
use crate::format::{Envelope, Mode, ObjectBinding};
use crate::keys::bucket_key::{BucketKeyCache, DEFAULT_BUCKET_KEY_TTL};
use crate::keys::secret::fill_random;
use crate::keys::wrap::{self, WrapScope};
use crate::keys::{
    CustomerKey, Details, EncryptionContext, KEY_CHECK_LEN, Keyring, Kms, KmsDetails, sse_c,
};

pub use stream::{BodyWriter, ObjectReader, ObjectWriter};

/// The random values of a new object, drawn from the OS in one call (each
/// draw is a system call, about 0.27 µs on the machine of
/// `benches/keys.rs`; four separate ones were a tenth of an SSE-C object's
/// cost): its data key, key-wrapping salt, SSE-C check salt (unused in the
/// other modes) and body salt. Every value is used for this one object.
struct Fresh {
    dek: DataKey,
    kek_salt: [u8; KEK_SALT_LEN],
    check_salt: [u8; KEY_CHECK_LEN],
    body_salt: [u8; body::SALT_LEN],
}

impl Fresh {
    fn draw() -> Result<Self, Error> {
        const LEN: usize = 32 + KEK_SALT_LEN + KEY_CHECK_LEN + body::SALT_LEN;
        let mut all = zeroize::Zeroizing::new([0u8; LEN]);
        fill_random(&mut all[..])?;
        let (dek, rest) = all.split_first_chunk::<32>().expect("LEN bytes");
        let (kek_salt, rest) = rest.split_first_chunk().expect("LEN bytes");
        let (check_salt, rest) = rest.split_first_chunk().expect("LEN bytes");
        Ok(Fresh {
            dek: DataKey::from_bytes(*dek),
            kek_salt: *kek_salt,
            check_salt: *check_salt,
            body_salt: rest.try_into().expect("LEN bytes"),
        })
    }
}

/// How to protect a new object's data key.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum SealMode<'a> {
    /// SSE-S3: under the active version of the engine's keyring.
    S3,
    /// SSE-KMS: under a data key (or, with `bucket_key`, a bucket key) from
    /// the engine's KMS.
    Kms {
        /// The customer master key (key id, ARN or alias); `None` for the
        /// engine's default key.
        key_id: Option<&'a str>,
        /// The caller's encryption context, merged with
        /// `{"aws:s3:arn": "arn:aws:s3:::BUCKET/KEY"}` (or the bucket's ARN
        /// for a bucket key).
        context: Option<&'a EncryptionContext>,
        /// Use an S3 Bucket Key: one KMS call per bucket per cache period
        /// instead of one per object.
        bucket_key: bool,
    },
    /// SSE-C: under the customer's key, which is not stored.
    C(&'a CustomerKey),
}

impl<'a> SealMode<'a> {
    /// SSE-KMS under `key_id`, no caller context, no bucket key.
    pub fn kms(key_id: &'a str) -> Self {
        SealMode::Kms {
            key_id: Some(key_id),
            context: None,
            bucket_key: false,
        }
    }

    /// This SSE-KMS mode with the caller's encryption context (no effect on
    /// other modes).
    pub fn with_context(self, ctx: &'a EncryptionContext) -> Self {
        match self {
            SealMode::Kms {
                key_id, bucket_key, ..
            } => SealMode::Kms {
                key_id,
                context: Some(ctx),
                bucket_key,
            },
            other => other,
        }
    }

    /// This SSE-KMS mode with Bucket Keys on or off (no effect on other modes).
    pub fn with_bucket_key(self, on: bool) -> Self {
        match self {
            SealMode::Kms {
                key_id, context, ..
            } => SealMode::Kms {
                key_id,
                context,
                bucket_key: on,
            },
            other => other,
        }
    }

    /// The envelope mode this seal mode produces.
    pub fn mode(&self) -> Mode {
        match self {
            SealMode::S3 => Mode::SseS3,
            SealMode::Kms { .. } => Mode::SseKms,
            SealMode::C(_) => Mode::SseC,
        }
    }
}

/// What the caller brings to open an object.
#[derive(Debug, Clone, Copy)]
pub enum OpenWith<'a> {
    /// Nothing: the object is SSE-S3 or SSE-KMS, whose keys the engine holds
    /// or asks for.
    Managed,
    /// The customer key of an SSE-C object.
    Customer(&'a CustomerKey),
}

/// Builds an [`Engine`].
#[derive(Default)]
pub struct EngineBuilder {
    keyring: Option<Arc<Keyring>>,
    kms: Option<Arc<dyn Kms>>,
    principal: Option<String>,
    default_kms_key: Option<String>,
    bucket_key_ttl: Option<Duration>,
    stream_batch_chunks: Option<usize>,
}

impl EngineBuilder {
    /// The SSE-S3 keyring.
    pub fn keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// The key-management service for SSE-KMS.
    pub fn kms(mut self, kms: Arc<dyn Kms>) -> Self {
        self.kms = Some(kms);
        self
    }

    /// The principal the engine names in KMS requests (default `objseal`).
    pub fn principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    /// The KMS key used when a [`SealMode::Kms`] names none.
    pub fn default_kms_key(mut self, key_id: impl Into<String>) -> Self {
        self.default_kms_key = Some(key_id.into());
        self
    }

    /// How long a bucket key is reused (default 5 minutes).
    pub fn bucket_key_ttl(mut self, ttl: Duration) -> Self {
        self.bucket_key_ttl = Some(ttl);
        self
    }

    /// Chunks per batch in the engine's streams (clamped to
    /// `1..=`[`body::MAX_BATCH_CHUNKS`]); default
    /// [`body::default_batch_chunks`] (128 per rayon thread, at most 1024).
    ///
    /// A batch of `n` chunks is sealed or opened in parallel; each stream
    /// holds about two batches of `16400 × n` bytes at a time (one sealed
    /// or opened while the other is written or read), whatever the object's
    /// size:
    ///
    /// | stream | memory |
    /// |---|---|
    /// | [`ObjectWriter`] / [`BodyWriter`] ([`Engine::seal_writer`], [`Engine::seal_writer_detached`]) | `2 × 16400 × n` |
    /// | [`ObjectReader`] ([`Engine::open_reader`], [`Engine::open_reader_detached`]) | `2 × 16400 × n` (+ up to 189 KiB of envelope) |
    /// | [`body::RangeReader`] ([`Engine::open_range_reader`]) | `2 × 16400 × n` |
    /// | `sse::PartWriter`, `sse::MultipartReader`, `sse::ObjectStream` | `2 × 16400 × n` |
    /// | `sse::copy_stream` | `4 × 16400 × n` (a reader and a writer) |
    ///
    /// So `n = 64` (1 MiB of plaintext per batch) keeps each stream near
    /// 2 MiB; larger batches use more threads per batch. Whole-object calls
    /// on slices ([`Engine::seal`], [`Engine::open`]) and file-to-file calls
    /// are not batched this way.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use objseal::{Engine, Keyring};
    ///
    /// let engine = Engine::builder()
    ///     .keyring(Arc::new(Keyring::in_memory("k")?))
    ///     .stream_batch_chunks(64)
    ///     .build();
    /// assert_eq!(engine.stream_batch_chunks(), 64);
    /// # Ok::<(), objseal::Error>(())
    /// ```
    pub fn stream_batch_chunks(mut self, chunks: usize) -> Self {
        self.stream_batch_chunks = Some(chunks.clamp(1, body::MAX_BATCH_CHUNKS));
        self
    }

    /// The engine.
    pub fn build(self) -> Engine {
        Engine {
            keyring: self.keyring,
            kms: self.kms,
            principal: self.principal.unwrap_or_else(|| "objseal".to_owned()),
            default_kms_key: self.default_kms_key,
            bucket_keys: Arc::new(BucketKeyCache::new(
                self.bucket_key_ttl.unwrap_or(DEFAULT_BUCKET_KEY_TTL),
            )),
            stream_batch_chunks: self.stream_batch_chunks,
        }
    }
}

/// Seals and opens objects in every SSE mode.
///
/// Every seal draws a fresh data key, wraps it per the [`SealMode`] into
/// the envelope, and seals the body (in parallel) under the data key with
/// the object's context. Every open checks, before any decryption, that the
/// envelope names the object asked for and that the right kind of key is
/// given; then it unwraps the data key (a wrong SSE-C key fails as
/// [`KeyError::AccessDenied`]) and opens the body. The opens that see the
/// whole stored object or its size up front (slices, files, ranges) also
/// check that the body's length matches the envelope before decrypting, and
/// release no plaintext unless all of it authenticates; a streaming reader
/// ([`Engine::open_reader`]) sees the length only at the end of its input,
/// checks it there, and may release authentic batches before a later one
/// fails (see [`ObjectReader`]).
///
/// ```
/// use std::sync::Arc;
/// use objseal::{Engine, EncryptionContext, Keyring, LocalKms, ObjectBinding, OpenWith, SealMode};
/// use objseal::keys::CustomerKey;
///
/// let dir = tempfile::tempdir()?;
/// let kms = Arc::new(LocalKms::open(dir.path().join("kms"), "us-east-1", "123456789012")?);
/// let cmk = kms.create_key("app data", "admin")?;
/// let engine = Engine::builder()
///     .keyring(Arc::new(Keyring::create(dir.path().join("keyring.json"), "s3-master")?))
///     .kms(kms)
///     .principal("app")
///     .build();
/// let obj = ObjectBinding::new("bucket", "report.csv")?;
///
/// // SSE-S3
/// let sealed = engine.seal(&SealMode::S3, &obj, b"a,b\n1,2\n")?;
/// assert_eq!(engine.open(OpenWith::Managed, &obj, &sealed)?, b"a,b\n1,2\n");
///
/// // SSE-KMS with a context and a bucket key
/// let ctx = EncryptionContext::new().with("team", "data")?;
/// let mode = SealMode::kms(&cmk.arn).with_context(&ctx).with_bucket_key(true);
/// let sealed = engine.seal(&mode, &obj, b"kms")?;
/// assert_eq!(engine.open_range(OpenWith::Managed, &obj, &sealed, 1..3)?, b"ms");
///
/// // SSE-C: a wrong key is AccessDenied
/// let key = CustomerKey::generate()?;
/// let sealed = engine.seal(&SealMode::C(&key), &obj, b"mine")?;
/// assert_eq!(engine.open(OpenWith::Customer(&key), &obj, &sealed)?, b"mine");
/// let wrong = CustomerKey::generate()?;
/// let err = engine.open(OpenWith::Customer(&wrong), &obj, &sealed).unwrap_err();
/// assert!(matches!(err, objseal::Error::Key(objseal::KeyError::AccessDenied)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Engine {
    keyring: Option<Arc<Keyring>>,
    kms: Option<Arc<dyn Kms>>,
    principal: String,
    default_kms_key: Option<String>,
    bucket_keys: Arc<BucketKeyCache>,
    stream_batch_chunks: Option<usize>,
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("keyring", &self.keyring)
            .field("kms", &self.kms.is_some())
            .field("principal", &self.principal)
            .field("default_kms_key", &self.default_kms_key)
            .field("stream_batch_chunks", &self.stream_batch_chunks)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The same engine naming `principal` in its KMS requests. The bucket-key
    /// cache is shared, but its entries are per principal: `principal` is
    /// handed only bucket keys the KMS gave it, so its first use of each is
    /// a KMS request (which the KMS may refuse, and audits in its name).
    pub fn with_principal(&self, principal: impl Into<String>) -> Engine {
        Engine {
            principal: principal.into(),
            ..self.clone()
        }
    }

    /// Chunks per batch of this engine's streams: the
    /// [`EngineBuilder::stream_batch_chunks`] setting, else
    /// [`body::default_batch_chunks`] for the current rayon pool.
    pub fn stream_batch_chunks(&self) -> usize {
        self.stream_batch_chunks
            .unwrap_or_else(body::default_batch_chunks)
    }

    /// Forgets every cached bucket key (e.g. after disabling a KMS key).
    pub fn clear_bucket_keys(&self) {
        self.bucket_keys.clear();
    }

    fn keyring(&self) -> Result<&Keyring, Error> {
        self.keyring.as_deref().ok_or_else(|| {
            KeyError::NotConfigured {
                what: "an SSE-S3 keyring",
            }
            .into()
        })
    }

    fn kms(&self) -> Result<&dyn Kms, Error> {
        self.kms.as_deref().ok_or_else(|| {
            KeyError::NotConfigured {
                what: "a KMS for SSE-KMS",
            }
            .into()
        })
    }

    /// Wraps `dek` for a new envelope of `binding` under `mode`.
    fn new_envelope(
        &self,
        mode: &SealMode<'_>,
        binding: &ObjectBinding,
        plaintext_len: Option<u64>,
        dek: &DataKey,
    ) -> Result<Envelope, Error> {
        let mut kek_salt = [0u8; KEK_SALT_LEN];
        let mut check_salt = [0u8; KEY_CHECK_LEN];
        fill_random(&mut kek_salt)?;
        // The SSE-C key check's salt is drawn only where it is used.
        if matches!(mode, SealMode::C(_)) {
            fill_random(&mut check_salt)?;
        }
        self.new_envelope_salted(mode, binding, plaintext_len, dek, kek_salt, check_salt)
    }

    /// [`Engine::new_envelope`] with the key-wrapping salt and the SSE-C
    /// check's salt drawn by the caller, for this envelope alone.
    fn new_envelope_salted(
        &self,
        mode: &SealMode<'_>,
        binding: &ObjectBinding,
        plaintext_len: Option<u64>,
        dek: &DataKey,
        kek_salt: [u8; KEK_SALT_LEN],
        check_salt: [u8; KEY_CHECK_LEN],
    ) -> Result<Envelope, Error> {
        if let Some(len) = plaintext_len
            && len > crate::format::MAX_PLAINTEXT_LEN
        {
            return Err(BodyError::TooLong {
                what: "plaintext",
                len,
            }
            .into());
        }
        // An object of unknown length binds the flag's sentinel (see
        // `Envelope::wrap_len`).
        let scope = WrapScope {
            mode: mode.mode(),
            binding,
            plaintext_len: plaintext_len.unwrap_or(u64::MAX),
        };
        let wrapped = match *mode {
            SealMode::S3 => self.keyring()?.wrap_salted(&scope, dek, kek_salt)?,
            SealMode::Kms {
                key_id,
                context,
                bucket_key,
            } => {
                let kms = self.kms()?;
                let key_ref = match key_id.or(self.default_kms_key.as_deref()) {
                    Some(k) => k,
                    None => {
                        return Err(KeyError::NotConfigured {
                            what: "a default KMS key (no key id was given)",
                        }
                        .into());
                    }
                };
                let empty = EncryptionContext::new();
                let caller = context.unwrap_or(&empty);
                if bucket_key {
                    let ctx = EncryptionContext::for_bucket(binding.bucket(), caller)?;
                    let entry = self
                        .bucket_keys
                        .for_seal(kms, key_ref, &ctx, &self.principal)?;
                    let details = Details::SseKms(KmsDetails {
                        bucket_key: true,
                        context: ctx,
                        blob: entry.blob.clone(),
                    })
                    .encode()?;
                    wrap::wrap_salted(
                        entry.key.expose_secret(),
                        &scope,
                        entry.key_arn.clone(),
                        entry.key_version.unwrap_or(0),
                        details,
                        dek,
                        kek_salt,
                    )?
                } else {
                    let ctx = EncryptionContext::for_object(binding, caller)?;
                    let g = kms.generate_data_key(key_ref, &ctx, &self.principal)?;
                    let details = Details::SseKms(KmsDetails {
                        bucket_key: false,
                        context: ctx,
                        blob: g.blob,
                    })
                    .encode()?;
                    wrap::wrap_salted(
                        g.key.expose_secret(),
                        &scope,
                        g.key_arn,
                        g.key_version.unwrap_or(0),
                        details,
                        dek,
                        kek_salt,
                    )?
                }
            }
            SealMode::C(key) => {
                let details = Details::SseC(sse_c::key_check_salted(key, check_salt)).encode()?;
                wrap::wrap_salted(
                    key.expose_secret(),
                    &scope,
                    String::new(),
                    0,
                    details,
                    dek,
                    kek_salt,
                )?
            }
        };
        let mut env = Envelope::new(
            mode.mode(),
            binding.clone(),
            plaintext_len.unwrap_or(0),
            wrapped,
        );
        env.length_from_body = plaintext_len.is_none();
        Ok(env)
    }

    /// Checks the envelope against the object and the caller's key, without
    /// unwrapping: binding, mode, details.
    fn precheck(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        env: &Envelope,
    ) -> Result<Details, Error> {
        env.check_binding(binding)?;
        if let Some(list) = &env.parts {
            return Err(BodyError::MultipartObject {
                parts: list.parts.len(),
            }
            .into());
        }
        // The details are parsed first: an envelope whose mode byte was
        // changed (their layout then no longer fits the mode) is reported as
        // corrupt, not as a request with or without a customer key.
        let details = Details::parse(env.mode, &env.wrapped_key.details)?;
        match (env.mode, with) {
            (Mode::SseC, OpenWith::Managed) => Err(KeyError::CustomerKeyRequired.into()),
            (Mode::SseC, OpenWith::Customer(_)) => Ok(details),
            (mode, OpenWith::Customer(_)) => {
                Err(KeyError::CustomerKeyNotApplicable { mode }.into())
            }
            _ => Ok(details),
        }
    }

    /// Recovers the data key of `env`, read for `binding` (for the body-level
    /// API, e.g. [`crate::body::open_file_range`] on a body stored apart from
    /// its envelope, with context `binding.body_context()`). Handle the key
    /// with care.
    pub fn data_key(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        env: &Envelope,
    ) -> Result<DataKey, Error> {
        self.unwrap_key(with, binding, env)
    }

    /// Recovers the data key of `env`, read for `binding`.
    pub(crate) fn unwrap_key(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        env: &Envelope,
    ) -> Result<DataKey, Error> {
        let details = self.precheck(with, binding, env)?;
        self.unwrap_prechecked(with, binding, env, details)
    }

    /// [`Engine::unwrap_key`] after [`Engine::precheck`] gave `details`.
    fn unwrap_prechecked(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        env: &Envelope,
        details: Details,
    ) -> Result<DataKey, Error> {
        let scope = WrapScope {
            mode: env.mode,
            binding,
            plaintext_len: env.wrap_len(),
        };
        let w = &env.wrapped_key;
        match (details, with) {
            (Details::SseS3, _) => self.keyring()?.unwrap(&scope, w),
            (Details::SseKms(k), _) => {
                let kms = self.kms()?;
                if k.bucket_key {
                    let key = self.bucket_keys.for_open(
                        kms,
                        &w.key_id,
                        &k.blob,
                        &k.context,
                        &self.principal,
                    )?;
                    wrap::unwrap(key.expose_secret(), &scope, w)
                } else {
                    let d = kms.decrypt(&w.key_id, &k.blob, &k.context, &self.principal)?;
                    wrap::unwrap(d.key.expose_secret(), &scope, w)
                }
            }
            (Details::SseC(check), OpenWith::Customer(key)) => {
                sse_c::verify(key, &check)?;
                wrap::unwrap(key.expose_secret(), &scope, w)
            }
            (Details::SseC(_), OpenWith::Managed) => Err(KeyError::CustomerKeyRequired.into()),
        }
    }

    /// Seals `plaintext` as the object `binding` under `mode`; returns the
    /// stored form, envelope then body.
    pub fn seal(
        &self,
        mode: &SealMode<'_>,
        binding: &ObjectBinding,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let fresh = Fresh::draw()?;
        let env = self.new_envelope_salted(
            mode,
            binding,
            Some(plaintext.len() as u64),
            &fresh.dek,
            fresh.kek_salt,
            fresh.check_salt,
        )?;
        let mut out = env.encode()?;
        let head = out.len();
        let body_len = body::sealed_len(plaintext.len() as u64)?;
        let body_len = usize::try_from(body_len).map_err(|_| BodyError::TooLong {
            what: "body",
            len: body_len,
        })?;
        // Sealed in place after the envelope: no second copy of the body.
        out.resize(head + body_len, 0);
        body::seal_into_salted(
            &fresh.dek,
            Some(&fresh.body_salt),
            &env.body_context(),
            plaintext,
            &mut out[head..],
        )?;
        Ok(out)
    }

    /// Seals `plaintext`; returns the envelope (to keep as object metadata,
    /// e.g. [`Envelope::to_base64`]) and the body apart.
    pub fn seal_detached(
        &self,
        mode: &SealMode<'_>,
        binding: &ObjectBinding,
        plaintext: &[u8],
    ) -> Result<(Envelope, Vec<u8>), Error> {
        let fresh = Fresh::draw()?;
        let env = self.new_envelope_salted(
            mode,
            binding,
            Some(plaintext.len() as u64),
            &fresh.dek,
            fresh.kek_salt,
            fresh.check_salt,
        )?;
        let body_len = body::sealed_len(plaintext.len() as u64)?;
        let body_len = usize::try_from(body_len).map_err(|_| BodyError::TooLong {
            what: "body",
            len: body_len,
        })?;
        let mut body = vec![0u8; body_len];
        body::seal_into_salted(
            &fresh.dek,
            Some(&fresh.body_salt),
            &env.body_context(),
            plaintext,
            &mut body,
        )?;
        Ok((env, body))
    }

    /// Opens the stored object (envelope then body) read as `binding`.
    pub fn open(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        object: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let (env, used) = Envelope::parse_prefix(object)?;
        self.open_detached(with, binding, &env, &object[used..])
    }

    /// Opens a body whose envelope is kept apart.
    pub fn open_detached(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        env: &Envelope,
        body: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let dek = self.unwrap_checked(with, binding, env, body.len() as u64)?;
        body::open(&dek, &binding.body_context(), body)
    }

    /// Opens the bytes `range` of the stored object, decrypting only the
    /// chunks the range touches.
    pub fn open_range(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        object: &[u8],
        range: impl Into<ByteRange>,
    ) -> Result<Vec<u8>, Error> {
        let (env, used) = Envelope::parse_prefix(object)?;
        self.open_range_detached(with, binding, &env, &object[used..], range)
    }

    /// Opens a byte range of a body whose envelope is kept apart.
    pub fn open_range_detached(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        env: &Envelope,
        body: &[u8],
        range: impl Into<ByteRange>,
    ) -> Result<Vec<u8>, Error> {
        let dek = self.unwrap_checked(with, binding, env, body.len() as u64)?;
        if env.length_from_body {
            // The length comes from the body's size: authenticated only by
            // the final chunk, which the range reader opens first whatever
            // the range.
            let mut r = body::RangeReader::new(
                &dek,
                &binding.body_context(),
                body,
                0,
                body.len() as u64,
                range,
            )?;
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut r, &mut out)?;
            return Ok(out);
        }
        body::open_range(&dek, &binding.body_context(), body, range)
    }

    /// Checks the body length against the envelope (or, for an envelope
    /// whose body gives the length, that the body has a possible length),
    /// then unwraps.
    fn unwrap_checked(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        env: &Envelope,
        body_len: u64,
    ) -> Result<DataKey, Error> {
        let details = self.precheck(with, binding, env)?;
        let actual = body::plaintext_len(body_len)?;
        if !env.length_from_body && actual != env.plaintext_len {
            return Err(BodyError::LengthMismatch {
                expected: env.plaintext_len,
                actual,
            }
            .into());
        }
        self.unwrap_prechecked(with, binding, env, details)
    }

    /// Re-wraps the data key of `env` (read as `binding` with `with`) under
    /// `to`, with a fresh key-encryption key; the body is not touched and
    /// stays valid. `to` may change the key version (keyring rotation, KMS
    /// key rotation), the KMS data key or bucket-key setting, the encryption
    /// context, the SSE-C customer key, the KMS key, or the mode itself
    /// (the body's context binds only the object, see `docs/FORMAT.md`).
    pub fn rewrap(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        env: &Envelope,
        to: &SealMode<'_>,
    ) -> Result<Envelope, Error> {
        let dek = self.unwrap_key(with, binding, env)?;
        // The new wrapping binds the same kind of length as the old one.
        let wrap_len = if env.length_from_body {
            None
        } else if env.parts.is_some() {
            Some(0)
        } else {
            Some(env.plaintext_len)
        };
        let mut out = self.new_envelope(to, binding, wrap_len, &dek)?;
        out.plaintext_len = env.plaintext_len;
        out.parts = env.parts.clone();
        Ok(out)
    }

    /// [`Engine::rewrap`] on a stored object: a new envelope followed by the
    /// very same body bytes.
    pub fn rewrap_object(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        object: &[u8],
        to: &SealMode<'_>,
    ) -> Result<Vec<u8>, Error> {
        let (env, used) = Envelope::parse_prefix(object)?;
        let body = &object[used..];
        let new = self.rewrap(with, binding, &env, to)?;
        let mut out = new.encode()?;
        out.extend_from_slice(body);
        Ok(out)
    }

    /// Re-encrypts a stored object under a fresh data key and `to` (any mode
    /// and key): opens it, then seals it again, both in parallel.
    pub fn reencrypt(
        &self,
        with: OpenWith<'_>,
        binding: &ObjectBinding,
        object: &[u8],
        to: &SealMode<'_>,
    ) -> Result<Vec<u8>, Error> {
        let plaintext = zeroize::Zeroizing::new(self.open(with, binding, object)?);
        self.seal(to, binding, &plaintext)
    }
}
