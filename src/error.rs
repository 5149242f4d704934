//! The crate's error type: one `#[non_exhaustive]` enum with a nested kind per
//! layer, so callers can match broadly (`Error::Cipher(_)`) or precisely.

use std::io;
use std::path::PathBuf;

use crate::cipher::Backend;
use crate::format::Mode;

/// Every error objseal returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The AES-256-GCM engine refused its input or failed to authenticate.
    #[error(transparent)]
    Cipher(#[from] CipherError),
    /// The object body (Cobblestone-256 chunks) is malformed, or does not
    /// authenticate under the key and context it was opened with.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The envelope (objseal's binary object header) is malformed or does not
    /// belong to the object it was read for.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A data key could not be wrapped or unwrapped, or a keyring or key
    /// store refused the operation.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The key-management service (SSE-KMS) refused the request.
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// Reading or writing failed.
    #[error("{}: {source}", match path { Some(p) => format!("I/O error on {}", p.display()), None => "I/O error".to_owned() })]
    Io {
        /// The file involved, when there is one.
        path: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// An [`Error::Io`] for an operation on `path`.
    pub(crate) fn io_at(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: Some(path.into()),
            source,
        }
    }

    /// This error as an [`io::Error`], for `Read`/`Write` implementations.
    /// [`From<io::Error>`] undoes the wrapping, so `?` gives the typed error back.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            Error::Io { path: None, source } => source,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Unwraps an objseal error carried inside an [`io::Error`] (as the streaming
/// reader and writer return them); any other I/O error becomes [`Error::Io`].
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        if !e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return Error::Io {
                path: None,
                source: e,
            };
        }
        let kind = e.kind();
        match e.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(err)) => *err,
            Some(Err(other)) => Error::Io {
                path: None,
                source: io::Error::new(kind, other),
            },
            None => Error::Io {
                path: None,
                source: io::Error::from(kind),
            },
        }
    }
}

/// Errors of the AES-256-GCM engine ([`crate::cipher::Aes256Gcm`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CipherError {
    /// The nonce is not 96 bits. objseal only accepts 12-byte nonces, the size
    /// for which SP 800-38D defines the counter block directly.
    #[error("nonce is {got} bytes; AES-256-GCM here takes exactly 12-byte (96-bit) nonces")]
    InvalidNonceLength {
        /// Length of the nonce that was passed, in bytes.
        got: usize,
    },
    /// The key is not 32 bytes.
    #[error("key is {got} bytes; AES-256 takes exactly 32-byte keys")]
    InvalidKeyLength {
        /// Length of the key that was passed, in bytes.
        got: usize,
    },
    /// The tag is not 16 bytes. Truncated tags are not accepted.
    #[error("tag is {got} bytes; AES-256-GCM here takes exactly 16-byte tags")]
    InvalidTagLength {
        /// Length of the tag that was passed, in bytes.
        got: usize,
    },
    /// The message exceeds the GCM limit of 2^39 - 256 bits
    /// (SP 800-38D §5.2.1.1), i.e. 2^36 - 32 bytes.
    #[error(
        "message of {len} bytes exceeds the AES-GCM limit of 2^36 - 32 bytes (SP 800-38D 5.2.1.1); split it into chunks"
    )]
    MessageTooLong {
        /// Length of the message, in bytes.
        len: u64,
    },
    /// The associated data exceeds the GCM limit of 2^64 - 1 bits.
    #[error("associated data of {len} bytes exceeds the AES-GCM limit of 2^61 - 1 bytes")]
    AssociatedDataTooLong {
        /// Length of the associated data, in bytes.
        len: u64,
    },
    /// An output buffer is not exactly as long as the input it receives.
    #[error("output buffer is {output} bytes but the input is {input}; they must be equal")]
    OutputLengthMismatch {
        /// Length of the input, in bytes.
        input: usize,
        /// Length of the output buffer, in bytes.
        output: usize,
    },
    /// The tag did not match: wrong key, wrong nonce, wrong associated data,
    /// or the ciphertext or tag was modified. The buffer has been zeroed.
    #[error(
        "authentication failed: the ciphertext, tag, nonce, associated data or key is not the one it was sealed with"
    )]
    TagMismatch,
    /// `OBJSEAL_BACKEND` or a backend name passed to the API is not one objseal knows.
    #[error(
        "unknown AES-GCM backend {name:?}; expected one of: auto, portable, aesni-clmul, vaes-clmul-avx2, vaes-clmul-avx512"
    )]
    UnknownBackend {
        /// The name that was given.
        name: String,
    },
    /// A backend was forced that this CPU (or this build) cannot run.
    #[error("AES-GCM backend {backend} is not available here: {reason}")]
    BackendUnavailable {
        /// The backend that was asked for.
        backend: Backend,
        /// Why it cannot run (missing CPU features, or not built for this target).
        reason: &'static str,
    },
}

/// Errors of the object body, Cobblestone-256 ([`crate::body`]).
///
/// Header errors ([`BodyError::InvalidKeyLength`], [`BodyError::TruncatedHeader`],
/// [`BodyError::CommitmentMismatch`]) are raised before any chunk is opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The data key is not 32 bytes.
    #[error("data key is {got} bytes; Cobblestone-256 takes exactly 32-byte keys")]
    InvalidKeyLength {
        /// Length of the key that was passed, in bytes.
        got: usize,
    },
    /// The body is shorter than its 56-byte header (salt and commitment).
    #[error(
        "body is {len} bytes, shorter than the 56-byte header; the object is truncated or is not an objseal body"
    )]
    TruncatedHeader {
        /// Length of what was read, in bytes.
        len: u64,
    },
    /// The key commitment in the header does not match the data key and
    /// context: wrong key, body moved to another object (different context),
    /// or a modified salt or commitment. No chunk was opened.
    #[error(
        "key commitment mismatch: wrong data key, wrong object (bucket, key, part, mode or key id), or a corrupted header; nothing was decrypted"
    )]
    CommitmentMismatch,
    /// The body ends on a chunk boundary without its final (short, possibly
    /// empty) chunk: it was truncated.
    #[error("body ends after chunk {chunks} without its final chunk; the object is truncated")]
    MissingFinalChunk {
        /// Number of complete chunks present.
        chunks: u64,
    },
    /// The body's length leaves a last chunk shorter than a 16-byte tag.
    #[error(
        "body ends {tail} bytes into chunk {index}, too short for its 16-byte tag; the object is truncated or has trailing bytes"
    )]
    TruncatedChunk {
        /// Index of the incomplete chunk.
        index: u64,
        /// Bytes present of it.
        tail: u64,
    },
    /// A chunk did not authenticate: it was modified, reordered, duplicated,
    /// cut short, or followed by trailing data. Its output was zeroed.
    #[error(
        "chunk {index} failed authentication: the body was modified, truncated, reordered or has trailing data; no plaintext of it was released"
    )]
    ChunkAuthentication {
        /// Index of the first chunk that failed.
        index: u64,
    },
    /// A plaintext or body length does not fit the format or this platform.
    #[error("{what} of {len} bytes is too long for a Cobblestone-256 body on this platform")]
    TooLong {
        /// What was measured.
        what: &'static str,
        /// The length, in bytes (saturated at `u64::MAX`).
        len: u64,
    },
    /// A byte range starts at or past the end of the object, or ends before it starts.
    #[error("range {start}..{end} is not satisfiable for an object of {len} bytes")]
    InvalidRange {
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for (`u64::MAX` for an open range).
        end: u64,
        /// Plaintext length of the object (authenticated by its final chunk).
        len: u64,
    },
    /// The plaintext length recorded elsewhere (e.g. in the envelope) does not
    /// match the body.
    #[error(
        "body holds {actual} bytes of plaintext but {expected} were expected; envelope and body do not belong together"
    )]
    LengthMismatch {
        /// Length that was expected.
        expected: u64,
        /// Length the body's size implies.
        actual: u64,
    },
    /// A writer was given another number of plaintext bytes than its
    /// caller declared (an S3 client's `Content-Length`): the client's
    /// request is wrong, nothing is stored. Not to be confused with
    /// [`BodyError::LengthMismatch`], a stored object that disagrees with
    /// itself.
    #[error(
        "{received} bytes of plaintext were given where {declared} were declared; nothing was stored"
    )]
    DeclaredLength {
        /// The length declared up front.
        declared: u64,
        /// The bytes received (so far, when more than declared).
        received: u64,
    },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {reason}")]
    Random {
        /// What getrandom reported.
        reason: String,
    },
    /// A multipart object's part list does not authenticate against its part
    /// bodies: a part was dropped, reordered, replaced or resized, or the
    /// bodies do not add up to the listed parts. Nothing was decrypted.
    #[error(
        "the multipart part list does not match the part bodies: a part was dropped, reordered, replaced or resized; nothing was decrypted"
    )]
    PartListMismatch,
    /// A multipart object was given to an entry point that reads one body.
    #[error(
        "this is a multipart object of {parts} parts; open it with objseal::sse::open_object (or open_object_range), which checks its part list"
    )]
    MultipartObject {
        /// Number of parts the envelope lists.
        parts: usize,
    },
    /// A streaming writer was used after an earlier error or after `finish`.
    #[error("the body writer already failed or finished; start a new object")]
    WriterPoisoned,
}

/// Errors of the envelope ([`crate::format`]): what is wrong with its bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The input does not start with the envelope magic.
    #[error("not an objseal envelope: bad magic bytes")]
    BadMagic,
    /// The envelope is of a version this build does not read.
    #[error(
        "envelope version {version} is not supported (this build reads version 1); upgrade objseal"
    )]
    UnsupportedVersion {
        /// The version found.
        version: u8,
    },
    /// The body algorithm id is not one this build knows.
    #[error("body algorithm {id} is not supported (this build knows 1 = Cobblestone-256)")]
    UnsupportedAlgorithm {
        /// The id found.
        id: u8,
    },
    /// The encryption mode byte is not SSE-S3, SSE-KMS or SSE-C.
    #[error("encryption mode {id} is unknown (1 = SSE-S3, 2 = SSE-KMS, 3 = SSE-C)")]
    UnknownMode {
        /// The id found.
        id: u8,
    },
    /// A reserved byte or flag is not zero.
    #[error(
        "reserved field {field} is {value}, must be 0; the envelope is corrupt or from a newer objseal"
    )]
    Reserved {
        /// Which field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// The input ends before the field that was being read.
    #[error("envelope truncated: {field} needs {needed} more bytes, {available} left")]
    Truncated {
        /// Which field.
        field: &'static str,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left in the input.
        available: u64,
    },
    /// A length or count is outside its bounds.
    #[error("{field} is {value}, outside the allowed {min}..={max}")]
    OutOfBounds {
        /// Which field.
        field: &'static str,
        /// The value found.
        value: u64,
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// A text field is not valid UTF-8.
    #[error("{field} is not valid UTF-8")]
    NotUtf8 {
        /// Which field.
        field: &'static str,
    },
    /// Parts are not listed in strictly increasing order of part number.
    #[error("multipart part list is not strictly increasing at part number {number}")]
    PartOrder {
        /// The part number out of order.
        number: u32,
    },
    /// Bytes follow the end of the envelope.
    #[error("{count} trailing bytes after the envelope")]
    TrailingBytes {
        /// How many.
        count: u64,
    },
    /// The base64 form does not decode.
    #[error("envelope base64 does not decode: {reason}")]
    Base64 {
        /// What the decoder reported.
        reason: String,
    },
    /// The envelope names another object than the one it was read for.
    #[error(
        "envelope belongs to {found}, not {expected}; it was moved or copied from another object"
    )]
    BindingMismatch {
        /// The object it was read for.
        expected: String,
        /// The object it names.
        found: String,
    },
}

/// Errors of the key hierarchy ([`crate::keys`], [`crate::engine`]): wrapping
/// and unwrapping data keys, the SSE-S3 keyring, SSE-C customer keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {reason}")]
    Random {
        /// What getrandom reported.
        reason: String,
    },
    /// A key is not 32 bytes.
    #[error("{what} is {got} bytes; it must be exactly 32 bytes (256 bits)")]
    InvalidKeyLength {
        /// Which kind of key.
        what: &'static str,
        /// Length that was passed, in bytes.
        got: usize,
    },
    /// The wrapped data key does not open under the key-encryption key
    /// derived for this object: it was copied from another object, read under
    /// another mode, key or version, or its envelope was modified.
    #[error(
        "the wrapped data key ({mode:?}, key {key_id:?} version {key_version}) does not open: the envelope was copied from another object, read under another mode or key, or modified; nothing was decrypted"
    )]
    UnwrapFailed {
        /// The envelope's mode.
        mode: Mode,
        /// The envelope's key id.
        key_id: String,
        /// The envelope's key version.
        key_version: u32,
    },
    /// The keyring has no such version.
    #[error(
        "master key {key_id:?} has no version {version}; was the object sealed under another keyring?"
    )]
    UnknownKeyVersion {
        /// The key id.
        key_id: String,
        /// The version asked for.
        version: u32,
    },
    /// The version was retired and its key material destroyed.
    #[error(
        "master key {key_id:?} version {version} was retired; objects still wrapped under it cannot be opened"
    )]
    KeyRetired {
        /// The key id.
        key_id: String,
        /// The retired version.
        version: u32,
    },
    /// The object was sealed under another keyring's master key.
    #[error(
        "object was sealed under master key {object:?}, but this keyring holds {keyring:?}; open it with its keyring"
    )]
    WrongKeyring {
        /// This keyring's key id.
        keyring: String,
        /// The key id in the envelope.
        object: String,
    },
    /// No version number is left.
    #[error("master key {key_id:?} has used every version number; create a new keyring")]
    VersionsExhausted {
        /// The key id.
        key_id: String,
    },
    /// Retiring the active version was asked for.
    #[error("version {version} is the active master key version; rotate first, then retire it")]
    RetireActive {
        /// The version.
        version: u32,
    },
    /// Objects are still wrapped under the version to retire.
    #[error(
        "master key version {version} still wraps {objects} object(s); rewrap them first, or force the retirement to make them unreadable"
    )]
    VersionStillInUse {
        /// The version.
        version: u32,
        /// How many of the listed objects use it.
        objects: usize,
    },
    /// A secret key file may be read by its group or others.
    #[error("{} has mode {mode:o}, readable beyond its owner; run `chmod 600` on it (and check who read it)", path.display())]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A keyring or key-store file does not parse.
    #[error("key store {} is corrupt: {reason}; restore it from a backup", path.display())]
    CorruptStore {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key-store file (or a file objseal must read or replace safely) is
    /// a link, directory, FIFO, device or socket instead of a regular file.
    #[error("{} is a {kind}, not a regular file; objseal only reads and replaces regular files here (links are not followed)", path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// Another process held a key store's lock for longer than the lock
    /// timeout.
    #[error("{} is locked by another objseal process and stayed locked for {waited_ms} ms; try again, or find the process holding it (`fuser {}`)", path.display(), path.display())]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long it was waited for.
        waited_ms: u64,
    },
    /// A file of a key store that was created before is missing.
    #[error("key store file {} is missing, though this key store was created before ({reason}); objects sealed under it cannot be opened without it: restore it from a backup (objseal never creates a new key in its place)", path.display())]
    StoreMissing {
        /// The missing file.
        path: PathBuf,
        /// How it is known the store existed.
        reason: String,
    },
    /// The object is not encrypted in the mode the operation needs.
    #[error("object is encrypted with {found:?}, not {expected:?}")]
    ModeMismatch {
        /// The mode the operation needs.
        expected: Mode,
        /// The object's mode.
        found: Mode,
    },
    /// The wrapped key's details are of a version this build does not read.
    #[error(
        "{mode:?} key details version {version} is not supported (this build reads version 1): the envelope is damaged, or from a newer objseal"
    )]
    UnsupportedDetails {
        /// The envelope's mode.
        mode: Mode,
        /// The version found.
        version: u8,
    },
    /// The encryption context in the details is not sorted or repeats a key.
    #[error(
        "encryption context in the envelope is not in canonical order at key {key:?}; the envelope is corrupt"
    )]
    ContextNotCanonical {
        /// The key out of order.
        key: String,
    },
    /// SSE-C: the customer key is not the one the object was sealed with.
    #[error(
        "access denied: the customer-provided key does not match the key this object was encrypted with"
    )]
    AccessDenied,
    /// SSE-C: the object needs its customer key and none was given.
    #[error(
        "the object is encrypted with a customer-provided key (SSE-C); supply that key to read it"
    )]
    CustomerKeyRequired,
    /// A customer key was given for an object that is not SSE-C.
    #[error(
        "a customer-provided key was given, but the object is encrypted with {mode:?}; do not send SSE-C parameters for it"
    )]
    CustomerKeyNotApplicable {
        /// The object's mode.
        mode: Mode,
    },
    /// The engine was built without what this mode needs.
    #[error("{what} is not configured on this engine; add it with the builder")]
    NotConfigured {
        /// What is missing (a keyring, a KMS, a default KMS key).
        what: &'static str,
    },
}

/// Errors of a key-management service (SSE-KMS). Each is distinct, and
/// [`crate::keys::LocalKms`] audits each one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// No key has this id, ARN or alias.
    #[error("KMS key {key_id:?} does not exist (check the id, ARN or alias)")]
    NotFound {
        /// The key reference that was given.
        key_id: String,
    },
    /// The key is disabled.
    #[error("KMS key {arn} is disabled; enable it to use it")]
    Disabled {
        /// The key's ARN.
        arn: String,
    },
    /// The key is scheduled for deletion.
    #[error("KMS key {arn} is pending deletion on {deletion_date}; cancel the deletion to use it")]
    PendingDeletion {
        /// The key's ARN.
        arn: String,
        /// When it will be deleted (RFC 3339, UTC).
        deletion_date: String,
    },
    /// The key is in another region than the bucket (the KMS endpoint).
    #[error(
        "KMS key {arn} is in region {key_region}, but the bucket is in {region}; use a key in the bucket's region"
    )]
    WrongRegion {
        /// The key's ARN (or the reference given).
        arn: String,
        /// The key's region.
        key_region: String,
        /// The region of the request.
        region: String,
    },
    /// The encryption context is malformed (reserved key, out of bounds).
    #[error("invalid encryption context: {reason}")]
    InvalidContext {
        /// What is wrong.
        reason: String,
    },
    /// The encryption context differs from the one the data key was
    /// generated under.
    #[error(
        "the encryption context does not match the one the data key was generated with; pass the same context"
    )]
    ContextMismatch,
    /// The ciphertext blob was made under another master key than the one
    /// named for it.
    #[error(
        "KMS ciphertext blob was made under key {found:?}, not the key {expected:?} named for it"
    )]
    IncorrectKey {
        /// The key named (recorded in the envelope).
        expected: String,
        /// The key the blob names.
        found: String,
    },
    /// The ciphertext blob is malformed or does not decrypt.
    #[error("KMS ciphertext blob is invalid: {reason}")]
    InvalidCiphertext {
        /// What is wrong.
        reason: String,
    },
    /// A key reference is neither a key id, a key ARN nor an alias.
    #[error(
        "{value:?} is not a KMS key id, key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) or alias (alias/NAME)"
    )]
    InvalidKeyReference {
        /// The reference given.
        value: String,
    },
    /// The alias already names a key.
    #[error("alias {alias} already exists; delete it or choose another name")]
    AliasExists {
        /// The alias.
        alias: String,
    },
    /// The key's state does not allow this operation.
    #[error("KMS key {arn}: {reason}")]
    InvalidState {
        /// The key's ARN.
        arn: String,
        /// Why the operation is refused.
        reason: String,
    },
    /// A deletion window outside 7..=30 days.
    #[error("deletion window of {days} days is outside 7..=30")]
    InvalidDeletionWindow {
        /// Days asked for.
        days: u32,
    },
    /// The principal may not use the key (a key policy or grant of another
    /// implementation; [`crate::keys::LocalKms`] has no policies).
    #[error("principal {principal:?} is not allowed to use KMS key {key_id}")]
    AccessDenied {
        /// Who asked.
        principal: String,
        /// The key reference or ARN asked for.
        key_id: String,
    },
    /// The service could not be reached or failed (other implementations;
    /// `AwsKms` (feature `aws-kms`) after its retries: 5xx answers, transport
    /// errors, timeouts, malformed answers).
    #[error("KMS unavailable: {reason}; retry later")]
    Unavailable {
        /// What failed.
        reason: String,
    },
    /// The service kept throttling the requests (AWS KMS
    /// `ThrottlingException` or `LimitExceededException`) through every
    /// retry.
    #[error(
        "KMS at {endpoint} throttled the request ({attempts} attempt(s)); reduce the request rate (or use S3 Bucket Keys) and retry later"
    )]
    Throttled {
        /// The service's endpoint.
        endpoint: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The service refused the request with an error that has no variant
    /// of its own (AWS KMS `ValidationException`, ...).
    #[error("KMS refused the request: {code}: {message}")]
    Refused {
        /// The service's error code (AWS's `__type` without its namespace,
        /// or `HTTP <status>`).
        code: String,
        /// The service's message.
        message: String,
    },
    /// The KMS client is not configured (a missing or malformed setting,
    /// such as an unset `AWS_ACCESS_KEY_ID`).
    #[error("KMS client configuration: {variable} {reason}")]
    Configuration {
        /// The setting or environment variable at fault.
        variable: String,
        /// What is wrong with it.
        reason: String,
    },
}
