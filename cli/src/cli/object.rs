//! `seal`, `open` and `rewrap`.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use objseal::body::ByteRange;
use objseal::sse::{self, MultipartFile};
use objseal::{
    BodyError, CustomerKey, EncryptionContext, Envelope, Error, KeyError, KmsError, ObjectBinding,
    OpenWith, SealMode,
};
use zeroize::Zeroizing;

use super::fsout::{Staged, check_new};
use super::{BindingArgs, Ctx, Failure, fail, is_dash};

pub const SEAL_HELP: &str = "\
Examples:
  objseal seal photo.jpg                          # SSE-S3, writes photo.jpg.osl
  objseal seal photo.jpg --sse kms --context dept=eng --bucket-key
  objseal seal photo.jpg --sse kms --kms-key alias/backups -o out.osl
  (umask 077; head -c 32 /dev/urandom > my.key)  # an SSE-C key, readable by you only
  objseal seal photo.jpg --sse c --customer-key-file my.key
  tar c dir | objseal seal - -o dir.tar.osl --key dir.tar   # stdin, buffered in memory
  objseal seal - --size 4GiB --key disk.img < disk.img > disk.osl  # stdin, streamed";

pub const OPEN_HELP: &str = "\
Examples:
  objseal open photo.jpg.osl                      # writes photo.jpg
  objseal open photo.jpg.osl -o - | less
  objseal open log.osl --range 0-1023 -o head.bin # bytes 0..=1023 (S3 Range syntax)
  objseal open log.osl --range -100 -o -          # the last 100 bytes
  objseal open photo.jpg.osl --customer-key-file my.key

A file output appears only once every byte authenticated; a failure leaves
nothing. On stdout (-o -) plaintext is released batch by batch, each batch only
after its chunks authenticated: a failure stops the stream with exit code 2.

Multipart objects (made with the library's objseal::sse multipart uploads:
an envelope with a part list, then the part bodies) open like single ones,
ranges across parts included; their part list is checked before any part is
decrypted. A range on an empty object: -N gives no bytes, START- and
START-END are not satisfiable (exit 1), as S3 answers 200 and 416.";

pub const REWRAP_HELP: &str = "\
Examples:
  objseal rewrap *.osl --to s3                    # onto the active keyring version
  objseal rewrap a.osl --to kms:alias/backups
  objseal rewrap a.osl --to c --new-customer-key-file new.key
  objseal rewrap a.osl --customer-key-file old.key --to c --new-customer-key-file new.key

Multipart objects are rewrapped like single ones (their part list is kept).";

/// Inputs larger than this get a progress bar (on a terminal).
const PROGRESS_MIN: u64 = 64 << 20;
/// The longest envelope read when looking for one.
const MAX_ENVELOPE: u64 = 1 << 20;

/// The SSE mode to seal in.
#[derive(Clone, Copy, ValueEnum, Default)]
pub enum Sse {
    /// Keyring master key (SSE-S3).
    #[default]
    S3,
    /// Local KMS key (SSE-KMS).
    Kms,
    /// Customer-provided key (SSE-C).
    C,
}

/// `objseal seal`.
#[derive(Args)]
pub struct SealArgs {
    /// File to seal, `-` for stdin.
    input: PathBuf,
    /// Output file, `-` for stdout (default: INPUT.osl; stdout for stdin).
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Encryption mode.
    #[arg(long, value_enum, default_value_t = Sse::S3)]
    sse: Sse,
    /// KMS key id, ARN or alias (SSE-KMS; default alias/objseal).
    #[arg(long, value_name = "ID")]
    kms_key: Option<String>,
    /// Encryption context pair (SSE-KMS), repeatable.
    #[arg(long = "context", value_name = "K=V")]
    context: Vec<String>,
    /// Use an S3 Bucket Key (SSE-KMS).
    #[arg(long)]
    bucket_key: bool,
    /// SSE-C key file: exactly 32 raw bytes, or their base64 (44
    /// characters) or hex (64 digits) optionally followed by a newline; at
    /// most 4 KiB is read. A FIFO, device or directory is refused. A file
    /// readable by group or others is used with a warning on stderr (printed
    /// even with --quiet): `chmod 600` it.
    #[arg(long, value_name = "F")]
    customer_key_file: Option<PathBuf>,
    #[command(flatten)]
    binding: BindingArgs,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Length of the stdin input (e.g. 4GiB, 1000000): the envelope then
    /// records it and stdin must hold exactly that many bytes. Without it
    /// stdin is sealed as a stream of unknown length (the body's size gives
    /// it). Either way stdin is streamed in bounded memory. Only with `-` as
    /// input.
    #[arg(long, value_name = "BYTES")]
    size: Option<String>,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

/// `objseal open`.
#[derive(Args)]
pub struct OpenArgs {
    /// Sealed file, `-` for stdin.
    input: PathBuf,
    /// Output file, `-` for stdout (default: INPUT without `.osl`).
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Byte range, S3 syntax: START-END (inclusive), START- or -N (last N).
    #[arg(long, value_name = "RANGE", allow_hyphen_values = true)]
    range: Option<String>,
    /// SSE-C key file: exactly 32 raw bytes, or their base64 (44
    /// characters) or hex (64 digits) optionally followed by a newline; at
    /// most 4 KiB is read. A FIFO, device or directory is refused. A file
    /// readable by group or others is used with a warning on stderr (printed
    /// even with --quiet): `chmod 600` it.
    #[arg(long, value_name = "F")]
    customer_key_file: Option<PathBuf>,
    #[command(flatten)]
    binding: BindingArgs,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

/// `objseal rewrap`.
#[derive(Args)]
pub struct RewrapArgs {
    /// Sealed files to rewrap in place.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Target: `s3`, `kms` (default key), `kms:ID|ARN|alias` or `c`.
    #[arg(long, value_name = "TARGET")]
    to: String,
    /// The SSE-C key the files are sealed under now (SSE-C sources), in a
    /// key file as for `objseal open --customer-key-file`.
    #[arg(long, value_name = "F")]
    customer_key_file: Option<PathBuf>,
    /// The SSE-C key to wrap under (`--to c`).
    #[arg(long, value_name = "F")]
    new_customer_key_file: Option<PathBuf>,
}

/// Sizes the thread pool that seals and opens chunks.
fn set_threads(n: Option<usize>) -> Result<(), Failure> {
    let Some(n) = n else { return Ok(()) };
    let bad = || Failure::usage(format!("--threads {n}: give at least 1"));
    if n == 0 {
        return Err(bad());
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|_| bad())
}

/// The most bytes read of a customer key file: every accepted form is far
/// shorter, and a larger file is refused without reading further.
const KEY_FILE_MAX: u64 = 4096;

/// What a customer key file holds, for messages.
const KEY_FILE_FORMS: &str = "a customer key file holds exactly 32 raw bytes, or their base64 (44 characters) or hex (64 digits), optionally followed by a newline";

/// How to get a key, for messages; never names a file the user gave.
const NEW_KEY_HINT: &str = "to open an object give the key it was sealed with; to make a new key: `(umask 077; head -c 32 /dev/urandom > NEW.key)`";

/// What a file that is not a regular file is, for messages.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Reads an SSE-C key file (see [`parse_customer_key`] for its forms).
///
/// Only a regular file is read (links are followed): a FIFO, device, socket
/// or directory is a usage error, refused before it is opened, so that
/// neither a FIFO nor a device like `/dev/zero` can block or flood the read;
/// the open itself is non-blocking, and the file is checked again once open.
/// At most [`KEY_FILE_MAX`] bytes are read. A key file readable by its group
/// or others is used, with a warning on stderr (always printed: it is not a
/// note that `--quiet` silences).
pub fn read_customer_key(path: &Path) -> Result<CustomerKey, Failure> {
    let name = path.display();
    let not_regular = |meta: &std::fs::Metadata| {
        Failure::usage(format!(
            "{name} is {}; {KEY_FILE_FORMS}, in a regular file",
            file_kind(meta)
        ))
    };
    let meta = std::fs::metadata(path).map_err(|e| Failure::io(path, &e))?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let mut opts = OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Were the file swapped for a FIFO since the check, opening it must
        // not wait for a writer.
        opts.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = opts.open(path).map_err(|e| Failure::io(path, &e))?;
    let meta = file.metadata().map_err(|e| Failure::io(path, &e))?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "objseal: warning: customer key file {name} has mode {mode:03o}, readable beyond its owner; run `chmod 600` on it, and treat the key as exposed if others could read it"
            );
        }
    }
    // Room for one byte past the bound, so that reading never reallocates
    // (and leaves no copy of the key behind).
    let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_FILE_MAX as usize + 1));
    file.take(KEY_FILE_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::io(path, &e))?;
    let size = if bytes.len() as u64 > KEY_FILE_MAX {
        format!("more than {KEY_FILE_MAX} bytes")
    } else {
        format!("{} bytes", bytes.len())
    };
    let key = parse_customer_key(&bytes).ok_or_else(|| {
        Failure::usage(format!(
            "{name} is not a customer key file: it holds {size}; {KEY_FILE_FORMS} ({NEW_KEY_HINT})"
        ))
    })?;
    CustomerKey::try_from_slice(&key).map_err(|e| Failure::from_error(e, path))
}

/// The 32 key bytes of a customer key file's contents: exactly 32 raw
/// bytes; or, optionally followed by `\n` or `\r\n`, their standard base64
/// with padding (44 characters, as in S3's SSE-C key header) or their hex
/// (64 digits, either case). Anything else is `None`.
pub fn parse_customer_key(bytes: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if bytes.len() == 32 {
        return Some(Zeroizing::new(bytes.to_vec()));
    }
    let text = match bytes.strip_suffix(b"\n") {
        Some(t) => t.strip_suffix(b"\r").unwrap_or(t),
        None => bytes,
    };
    let decoded = match text.len() {
        44 => Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?,
        ),
        64 => {
            let digit = |c: u8| (c as char).to_digit(16);
            let mut out = Zeroizing::new(Vec::with_capacity(32));
            for pair in text.chunks_exact(2) {
                out.push((digit(pair[0])? * 16 + digit(pair[1])?) as u8);
            }
            out
        }
        _ => return None,
    };
    (decoded.len() == 32).then_some(decoded)
}

/// Parses S3 Range syntax (without `bytes=`).
pub fn parse_range(s: &str) -> Result<ByteRange, Failure> {
    let bad = || Failure::usage(format!("bad --range {s:?}: use START-END, START- or -N"));
    ByteRange::parse_spec(s.strip_prefix("bytes=").unwrap_or(s)).ok_or_else(bad)
}

/// Reads up to `limit` bytes from `r` (fewer only at end of input).
fn read_up_to(r: &mut impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(limit).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Reads and parses the envelope at the start of `r`; returns it, its
/// encoded length and the bytes read.
pub fn read_envelope(
    r: &mut impl Read,
    name: &Path,
) -> Result<(Envelope, usize, Vec<u8>), Failure> {
    let head = read_up_to(r, MAX_ENVELOPE).map_err(|e| Failure::io(name, &e))?;
    let (env, used) = Envelope::parse_prefix(&head).map_err(|e| Failure::from_error(e, name))?;
    Ok((env, used, head))
}

/// The binding to open with: the flags, else the envelope's.
fn open_binding(b: &BindingArgs, env: &Envelope, name: &Path) -> Result<ObjectBinding, Failure> {
    let bucket = b
        .bucket
        .clone()
        .unwrap_or_else(|| env.binding.bucket().to_owned());
    let key = b
        .key
        .clone()
        .unwrap_or_else(|| env.binding.key().to_owned());
    let binding = ObjectBinding::new(bucket, key).map_err(|e| Failure::from_error(e, name))?;
    match env.binding.part() {
        Some(n) => binding
            .with_part(n)
            .map_err(|e| Failure::from_error(e, name)),
        None => Ok(binding),
    }
}

fn progress(ctx: &Ctx, len: u64) -> ProgressBar {
    if ctx.quiet || len <= PROGRESS_MIN || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

fn context_of(pairs: &[String]) -> Result<EncryptionContext, Failure> {
    let mut ctx = EncryptionContext::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("bad --context {p:?}: use KEY=VALUE")))?;
        ctx = ctx
            .with(k, v)
            .map_err(|e| Failure::usage(format!("bad --context {p:?}: {e}")))?;
    }
    Ok(ctx)
}

/// `objseal seal`.
pub fn seal(ctx: &Ctx, a: SealArgs) -> Result<(), Failure> {
    set_threads(a.threads)?;
    let stdin = is_dash(&a.input);
    let out = match (&a.output, stdin) {
        (Some(o), _) => o.clone(),
        (None, true) => PathBuf::from("-"),
        (None, false) => {
            let mut o = a.input.clone().into_os_string();
            o.push(".osl");
            PathBuf::from(o)
        }
    };
    let stdout = is_dash(&out);
    if !stdout {
        check_new(&out, a.force)?;
    }
    if !matches!(a.sse, Sse::Kms) && (a.kms_key.is_some() || !a.context.is_empty() || a.bucket_key)
    {
        return Err(Failure::usage(
            "--kms-key, --context and --bucket-key need --sse kms",
        ));
    }
    let customer = match (a.sse, &a.customer_key_file) {
        (Sse::C, Some(f)) => Some(read_customer_key(f)?),
        (Sse::C, None) => return Err(Failure::usage("--sse c needs --customer-key-file F")),
        (_, Some(_)) => return Err(Failure::usage("--customer-key-file needs --sse c")),
        (_, None) => None,
    };
    let enc_ctx = context_of(&a.context)?;
    let bucket = a
        .binding
        .bucket
        .clone()
        .unwrap_or_else(|| "local".to_owned());
    let key = match (&a.binding.key, stdin) {
        (Some(k), _) => k.clone(),
        (None, true) => "stdin".to_owned(),
        (None, false) => a
            .input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Failure::usage("the input has no file name; pass --key K"))?,
    };
    let binding = ObjectBinding::new(bucket, key).map_err(|e| Failure::usage(e.to_string()))?;
    let mode = match (a.sse, &customer) {
        (Sse::C, Some(k)) => SealMode::C(k),
        (Sse::Kms, _) => SealMode::Kms {
            key_id: a.kms_key.as_deref(),
            context: (!enc_ctx.is_empty()).then_some(&enc_ctx),
            bucket_key: a.bucket_key,
        },
        _ => SealMode::S3,
    };
    let store = ctx.store()?;
    let engine = store.engine();
    let name = &a.input;

    // The plaintext, streamed. The envelope declares the length when it is
    // known (a file, or stdin with `--size`: the writer then refuses more or
    // fewer bytes); stdin without `--size` is sealed with the length left
    // to the body (FORMAT.md §1, flag 01).
    let declared = match (&a.size, stdin) {
        (Some(_), false) => {
            return Err(Failure::usage(
                "--size is for stdin (`-`) only: a file's length is known",
            ));
        }
        (Some(s), true) => Some(super::bench::parse_size(s)?),
        (None, _) => None,
    };
    let (mut reader, len): (Box<dyn Read>, Option<u64>) = if let Some(len) = declared {
        let r = DeclaredLen::new(io::stdin().lock(), len, stdout);
        (Box::new(r), Some(len))
    } else if stdin {
        (Box::new(io::stdin().lock()), None)
    } else {
        let f = File::open(name).map_err(|e| Failure::io(name, &e))?;
        let len = f.metadata().map_err(|e| Failure::io(name, &e))?.len();
        (Box::new(f), Some(len))
    };
    let bar = progress(ctx, len.unwrap_or(0));
    let mut reader = bar.wrap_read(&mut reader);
    // Whether writing the output failed: such an error names the output.
    let out_failed = Cell::new(false);
    let fail = |e| output_or(&out_failed, &out, e, |e| Failure::from_error(e, name));
    if stdout {
        let sink = Watched::new(io::stdout().lock(), &out_failed);
        let w = match len {
            Some(len) => engine.seal_writer(&mode, &binding, len, sink),
            None => engine.seal_writer_unsized(&mode, &binding, sink),
        }
        .map_err(fail)?;
        finish_seal(w, &mut reader, name, &out, &out_failed)?;
    } else {
        let mut staged = Staged::create(&out)?;
        let sink = Watched::new(staged.file(), &out_failed);
        let w = match len {
            Some(len) => engine.seal_writer(&mode, &binding, len, sink),
            None => engine.seal_writer_unsized(&mode, &binding, sink),
        }
        .map_err(fail)?;
        finish_seal(w, &mut reader, name, &out, &out_failed)?;
        staged.commit()?;
    }
    bar.finish_and_clear();
    Ok(())
}

/// Stdin with a declared length: yields exactly `len` bytes, or fails with
/// an I/O error that says how the input differs (shorter, or longer: one
/// byte past the length is read to tell).
struct DeclaredLen<R> {
    inner: R,
    len: u64,
    read: u64,
    /// Whether the output is stdout, where what was sealed so far is gone.
    to_stdout: bool,
}

impl<R: Read> DeclaredLen<R> {
    fn new(inner: R, len: u64, to_stdout: bool) -> Self {
        DeclaredLen {
            inner,
            len,
            read: 0,
            to_stdout,
        }
    }

    /// What became of the output, for the messages.
    fn outcome(&self) -> &'static str {
        if self.to_stdout {
            "the output on stdout is incomplete and must be discarded"
        } else {
            "nothing was written"
        }
    }
}

impl<R: Read> Read for DeclaredLen<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read == self.len {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "stdin holds more than the {} bytes --size declared; {}",
                        self.len,
                        self.outcome()
                    ),
                )),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.len - self.read).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "stdin ended after {} of the {} bytes --size declared; {}",
                    self.read,
                    self.len,
                    self.outcome()
                ),
            ));
        }
        self.read += n as u64;
        Ok(n)
    }
}

fn finish_seal<W: Write>(
    mut w: objseal::engine::ObjectWriter<W>,
    r: &mut impl Read,
    name: &Path,
    out: &Path,
    out_failed: &Cell<bool>,
) -> Result<(), Failure> {
    io::copy(r, &mut w).map_err(|e| {
        output_or(out_failed, out, e.into(), |e| match e {
            Error::Io { path: None, source }
                if is_dash(name)
                    && matches!(
                        source.kind(),
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
                    ) =>
            {
                Failure::io(name, &source)
            }
            e => Failure::from_error(e, name),
        })
    })?;
    let mut inner = w
        .finish()
        .map_err(|e| output_or(out_failed, out, e, |e| Failure::from_error(e, name)))?;
    inner.flush().map_err(|e| Failure::io(shown(out), &e))
}

/// How an output path is named in messages (`-` is stdout).
fn shown(out: &Path) -> &Path {
    if is_dash(out) {
        Path::new("stdout")
    } else {
        out
    }
}

/// The failure for `e`, met while copying to `out`: an error on `out` when
/// writing it failed (as `out_failed` recorded), else `other(e)`.
fn output_or(
    out_failed: &Cell<bool>,
    out: &Path,
    e: Error,
    other: impl FnOnce(Error) -> Failure,
) -> Failure {
    if !out_failed.get() {
        return other(e);
    }
    match e {
        Error::Io { path: None, source } => Failure::io(shown(out), &source),
        e => Failure {
            code: fail::IO,
            message: format!("{}: {e}", shown(out).display()),
        },
    }
}

/// A writer that records in a flag whether a write to it failed, so that an
/// error out of a copy is reported on the output, not on the input.
struct Watched<'a, W> {
    inner: W,
    failed: &'a Cell<bool>,
}

impl<'a, W: Write> Watched<'a, W> {
    fn new(inner: W, failed: &'a Cell<bool>) -> Self {
        Watched { inner, failed }
    }
}

impl<W: Write> Write for Watched<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|_| self.failed.set(true))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed.set(true))
    }
}

/// `objseal open`.
pub fn open(ctx: &Ctx, a: OpenArgs) -> Result<(), Failure> {
    set_threads(a.threads)?;
    let stdin = is_dash(&a.input);
    let out = match (&a.output, stdin) {
        (Some(o), _) => o.clone(),
        (None, true) => PathBuf::from("-"),
        (None, false) => match a.input.to_str().and_then(|s| s.strip_suffix(".osl")) {
            Some(s) if !s.is_empty() => PathBuf::from(s),
            _ => {
                return Err(Failure::usage(format!(
                    "{} does not end in .osl; name the output with -o OUT",
                    a.input.display()
                )));
            }
        },
    };
    let stdout = is_dash(&out);
    if !stdout {
        check_new(&out, a.force)?;
    }
    let range = a.range.as_deref().map(parse_range).transpose()?;
    let customer = a
        .customer_key_file
        .as_deref()
        .map(read_customer_key)
        .transpose()?;
    let with = match &customer {
        Some(k) => OpenWith::Customer(k),
        None => OpenWith::Managed,
    };
    let name = &a.input;

    let mut input: Box<dyn Read> = if stdin {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(name).map_err(|e| Failure::io(name, &e))?)
    };
    let (env, _, head) = read_envelope(&mut input, name)?;
    let binding = open_binding(&a.binding, &env, name)?;
    let store = ctx.store()?;
    let engine = store.engine();
    let fail = |e| object_failure(e, name, &env, false);
    let multipart = env.parts.is_some();
    // A regular file is read with positioned reads (ranges, multipart
    // objects); stdin and other streams are read whole for those.
    let regular = !stdin && std::fs::metadata(name).is_ok_and(|m| m.is_file());
    let read_all = |mut input: Box<dyn Read>, head: Vec<u8>| {
        let mut all = head;
        input
            .read_to_end(&mut all)
            .map_err(|e| Failure::io(name, &e))?;
        Ok::<_, Failure>(all)
    };

    if let Some(range) = range {
        let bytes = if !regular {
            let all = read_all(input, head)?;
            sse::open_object_range(&engine, with, &binding, &all, range)
        } else if multipart {
            MultipartFile::open(&engine, with, &binding, name).and_then(|f| f.open_range(range))
        } else {
            engine.open_file_range(with, &binding, name, range)
        };
        let bytes = Zeroizing::new(bytes.map_err(|e| match e {
            Error::Body(BodyError::InvalidRange { len, .. }) => Failure::usage(format!(
                "{}: --range {} is not satisfiable for an object of {len} bytes (S3 answers 416 InvalidRange)",
                name.display(),
                a.range.as_deref().unwrap_or_default()
            )),
            e => fail(e),
        })?);
        return write_out(&out, &bytes);
    }
    let bar = progress(ctx, env.plaintext_len);
    let mut r: Box<dyn Read> = if !multipart {
        let body = io::Cursor::new(head).chain(input);
        Box::new(engine.open_reader(with, &binding, body).map_err(fail)?)
    } else if regular {
        let file = MultipartFile::open(&engine, with, &binding, name).map_err(fail)?;
        Box::new(file.into_reader())
    } else {
        let all = read_all(input, head)?;
        let plain = sse::open_object(&engine, with, &binding, &all).map_err(fail)?;
        Box::new(io::Cursor::new(Zeroizing::new(plain)))
    };
    let out_failed = Cell::new(false);
    let copy_fail = |e: io::Error| output_or(&out_failed, &out, e.into(), fail);
    if stdout {
        let mut o = bar.wrap_write(Watched::new(io::stdout().lock(), &out_failed));
        io::copy(&mut r, &mut o).map_err(copy_fail)?;
        o.flush().map_err(|e| Failure::io(shown(&out), &e))?;
    } else {
        let mut staged = Staged::create(&out)?;
        let mut o = bar.wrap_write(Watched::new(staged.file(), &out_failed));
        io::copy(&mut r, &mut o).map_err(copy_fail)?;
        drop(o);
        staged.commit()?;
    }
    bar.finish_and_clear();
    Ok(())
}

/// The failure for `e`, met while opening or rewrapping the object `env`
/// read from `name`. Besides [`Failure::from_error`]'s codes, a reference to
/// a key that only the object's bytes could have given is a damaged or
/// foreign object (exit 2), not a key-management state (exit 3): a keyring
/// key id or version this keyring never had, and a KMS key that does not
/// exist and is not the key the envelope names (its blob was changed).
/// `kms_target` says that the operation also wraps under a KMS key (a
/// rewrap to SSE-KMS), whose own lookup failures keep their code.
fn object_failure(e: Error, name: &Path, env: &Envelope, kms_target: bool) -> Failure {
    let named = &env.wrapped_key.key_id;
    let foreign = match &e {
        Error::Key(KeyError::WrongKeyring { .. } | KeyError::UnknownKeyVersion { .. }) => true,
        Error::Kms(
            KmsError::NotFound { key_id } | KmsError::InvalidKeyReference { value: key_id },
        ) => !kms_target && named != key_id && !named.ends_with(&format!("/{key_id}")),
        _ => false,
    };
    if foreign {
        Failure::damaged(e, name)
    } else {
        Failure::from_error(e, name)
    }
}

fn write_out(out: &Path, bytes: &[u8]) -> Result<(), Failure> {
    if is_dash(out) {
        let mut o = io::stdout().lock();
        o.write_all(bytes)
            .and_then(|()| o.flush())
            .map_err(|e| Failure::io(shown(out), &e))
    } else {
        let mut staged = Staged::create(out)?;
        staged
            .file()
            .write_all(bytes)
            .map_err(|e| Failure::io(out, &e))?;
        staged.commit()
    }
}

/// `objseal rewrap`.
pub fn rewrap(ctx: &Ctx, a: RewrapArgs) -> Result<(), Failure> {
    let current = a
        .customer_key_file
        .as_deref()
        .map(read_customer_key)
        .transpose()?;
    let new_key = a
        .new_customer_key_file
        .as_deref()
        .map(read_customer_key)
        .transpose()?;
    let to = match a.to.as_str() {
        "s3" => SealMode::S3,
        "kms" => SealMode::Kms {
            key_id: None,
            context: None,
            bucket_key: false,
        },
        "c" => match &new_key {
            Some(k) => SealMode::C(k),
            None => return Err(Failure::usage("--to c needs --new-customer-key-file F")),
        },
        other => match other.strip_prefix("kms:") {
            Some(id) if !id.is_empty() => SealMode::kms(id),
            _ => {
                return Err(Failure::usage(format!(
                    "bad --to {other:?}: use s3, kms, kms:ID or c"
                )));
            }
        },
    };
    let with = match &current {
        Some(k) => OpenWith::Customer(k),
        None => OpenWith::Managed,
    };
    let store = ctx.store()?;
    let engine = store.engine();
    // Every file is tried; each failure is reported, the last one decides
    // the exit code.
    let mut failed = None;
    for name in &a.inputs {
        match rewrap_one(&engine, with, &to, name) {
            Ok((from, to)) if !ctx.quiet => {
                eprintln!("objseal: rewrapped {} ({from:?} -> {to:?})", name.display());
            }
            Ok(_) => {}
            Err(f) => {
                if let Some(earlier) = failed.replace(f) {
                    eprintln!("objseal: {}", earlier.message);
                }
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Rewraps one file in place; returns its old and new modes.
fn rewrap_one(
    engine: &objseal::Engine,
    with: OpenWith<'_>,
    to: &SealMode<'_>,
    name: &Path,
) -> Result<(objseal::Mode, objseal::Mode), Failure> {
    // Rewritten in place, so only a regular file (checked before opening:
    // opening a FIFO would block).
    let meta = std::fs::metadata(name).map_err(|e| Failure::io(name, &e))?;
    if !meta.is_file() {
        return Err(Failure::usage(format!(
            "{} is {}; objseal rewraps regular files in place only",
            name.display(),
            file_kind(&meta)
        )));
    }
    let mut f = File::open(name).map_err(|e| Failure::io(name, &e))?;
    let (env, used, head) = read_envelope(&mut f, name)?;
    let binding = open_binding(&BindingArgs::default(), &env, name)?;
    let kms_target = matches!(to, SealMode::Kms { .. });
    let fail = |e| object_failure(e, name, &env, kms_target);
    // A multipart object keeps its part list (whose MAC depends only on
    // the data key); its body is copied as it is, like a single one's.
    let new = sse::rewrap_envelope(engine, with, &binding, &env, to).map_err(fail)?;
    let encoded = new.encode().map_err(fail)?;
    let mut staged = Staged::create(name)?;
    let mut w = staged.file();
    w.write_all(&encoded)
        .and_then(|()| w.write_all(&head[used..]))
        .and_then(|()| io::copy(&mut f, &mut w).map(drop))
        .map_err(|e| Failure::io(name, &e))?;
    staged.commit()?;
    Ok((env.mode, new.mode))
}
