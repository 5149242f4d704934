//! `seal`, `open` and `rewrap`.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use objseal::body::ByteRange;
use objseal::{CustomerKey, EncryptionContext, Envelope, ObjectBinding, OpenWith, SealMode};
use zeroize::Zeroizing;

use super::fsout::{Staged, check_new};
use super::{BindingArgs, Ctx, Failure, is_dash};

pub const SEAL_HELP: &str = "\
Examples:
  objseal seal photo.jpg                          # SSE-S3, writes photo.jpg.osl
  objseal seal photo.jpg --sse kms --context dept=eng --bucket-key
  objseal seal photo.jpg --sse kms --kms-key alias/backups -o out.osl
  head -c 32 /dev/urandom > my.key && objseal seal photo.jpg --sse c --customer-key-file my.key
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
after its chunks authenticated: a failure stops the stream with exit code 2.";

pub const REWRAP_HELP: &str = "\
Examples:
  objseal rewrap *.osl --to s3                    # onto the active keyring version
  objseal rewrap a.osl --to kms:alias/backups
  objseal rewrap a.osl --to c --new-customer-key-file new.key
  objseal rewrap a.osl --customer-key-file old.key --to c --new-customer-key-file new.key";

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
    /// SSE-C key file: 32 raw bytes or their base64.
    #[arg(long, value_name = "F")]
    customer_key_file: Option<PathBuf>,
    #[command(flatten)]
    binding: BindingArgs,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Length of the stdin input (e.g. 4GiB, 1000000): stdin is then
    /// streamed in bounded memory, and must hold exactly that many bytes.
    /// Without it stdin is read whole into memory first (the envelope
    /// declares the length). Only with `-` as input.
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
    /// SSE-C key file: 32 raw bytes or their base64.
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
    /// The SSE-C key the files are sealed under now (SSE-C sources).
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

/// Reads an SSE-C key: 32 raw bytes, or base64 of them.
pub fn read_customer_key(path: &Path) -> Result<CustomerKey, Failure> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| Failure::io(path, &e))?);
    if bytes.len() == 32 {
        return CustomerKey::try_from_slice(&bytes).map_err(|e| Failure::from_error(e, path));
    }
    let text = bytes.trim_ascii();
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default(),
    );
    if decoded.len() != 32 {
        return Err(Failure::usage(format!(
            "{}: a customer key file holds 32 raw bytes or their base64 (make one with `head -c 32 /dev/urandom > {}`)",
            path.display(),
            path.display()
        )));
    }
    CustomerKey::try_from_slice(&decoded).map_err(|e| Failure::from_error(e, path))
}

/// Parses S3 Range syntax (without `bytes=`).
pub fn parse_range(s: &str) -> Result<ByteRange, Failure> {
    let bad = || Failure::usage(format!("bad --range {s:?}: use START-END, START- or -N"));
    let s = s.strip_prefix("bytes=").unwrap_or(s);
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let num = |t: &str| t.parse::<u64>().map_err(|_| bad());
    match (a.is_empty(), b.is_empty()) {
        (true, false) => Ok(ByteRange::Last(num(b)?)),
        (false, true) => Ok(ByteRange::From(num(a)?)),
        (false, false) => {
            let (start, last) = (num(a)?, num(b)?);
            if last < start {
                return Err(bad());
            }
            let end = last.checked_add(1).ok_or_else(bad)?;
            Ok(ByteRange::Bounded { start, end })
        }
        (true, true) => Err(bad()),
    }
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

    // The plaintext. The envelope declares the length: stdin is streamed
    // when `--size` gives it (the writer refuses more or fewer bytes), and
    // read whole otherwise.
    let declared = match (&a.size, stdin) {
        (Some(_), false) => {
            return Err(Failure::usage(
                "--size is for stdin (`-`) only: a file's length is known",
            ));
        }
        (Some(s), true) => Some(super::bench::parse_size(s)?),
        (None, _) => None,
    };
    let (mut reader, len): (Box<dyn Read>, u64) = if let Some(len) = declared {
        (Box::new(DeclaredLen::new(io::stdin().lock(), len)), len)
    } else if stdin {
        let buf = Zeroizing::new(
            read_up_to(&mut io::stdin().lock(), u64::MAX).map_err(|e| Failure::io(name, &e))?,
        );
        let len = buf.len() as u64;
        (Box::new(io::Cursor::new(buf)), len)
    } else {
        let f = File::open(name).map_err(|e| Failure::io(name, &e))?;
        let len = f.metadata().map_err(|e| Failure::io(name, &e))?.len();
        (Box::new(f), len)
    };
    let bar = progress(ctx, len);
    let mut reader = bar.wrap_read(&mut reader);
    let fail = |e| Failure::from_error(e, name);
    if stdout {
        let w = engine
            .seal_writer(&mode, &binding, len, io::stdout().lock())
            .map_err(fail)?;
        finish_seal(w, &mut reader, name)?;
    } else {
        let mut staged = Staged::create(&out)?;
        let w = engine
            .seal_writer(&mode, &binding, len, staged.file())
            .map_err(fail)?;
        finish_seal(w, &mut reader, name)?;
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
}

impl<R: Read> DeclaredLen<R> {
    fn new(inner: R, len: u64) -> Self {
        DeclaredLen {
            inner,
            len,
            read: 0,
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
                        "stdin holds more than the {} bytes --size declared; nothing was written",
                        self.len
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
                    "stdin ended after {} of the {} bytes --size declared; nothing was written",
                    self.read, self.len
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
) -> Result<(), Failure> {
    io::copy(r, &mut w).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData if is_dash(name) => {
            Failure::io(name, &e)
        }
        _ => Failure::from_error(e.into(), name),
    })?;
    let mut inner = w.finish().map_err(|e| Failure::from_error(e, name))?;
    inner.flush().map_err(|e| Failure::io(Path::new("-"), &e))
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
    let fail = |e| Failure::from_error(e, name);

    let mut input: Box<dyn Read> = if stdin {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(name).map_err(|e| Failure::io(name, &e))?)
    };
    let (env, _, head) = read_envelope(&mut input, name)?;
    let binding = open_binding(&a.binding, &env, name)?;
    let store = ctx.store()?;
    let engine = store.engine();

    if let Some(range) = range {
        let bytes = if stdin {
            let mut all = head;
            input
                .read_to_end(&mut all)
                .map_err(|e| Failure::io(name, &e))?;
            engine.open_range(with, &binding, &all, range)
        } else {
            engine.open_file_range(with, &binding, name, range)
        };
        let bytes = Zeroizing::new(bytes.map_err(fail)?);
        return write_out(&out, &bytes);
    }
    let bar = progress(ctx, env.plaintext_len);
    let body = io::Cursor::new(head).chain(input);
    let mut r = engine.open_reader(with, &binding, body).map_err(fail)?;
    let copy_fail = |e: io::Error| Failure::from_error(e.into(), name);
    if stdout {
        let mut o = bar.wrap_write(io::stdout().lock());
        io::copy(&mut r, &mut o).map_err(copy_fail)?;
        o.flush().map_err(|e| Failure::io(&out, &e))?;
    } else {
        let mut staged = Staged::create(&out)?;
        let mut o = bar.wrap_write(staged.file());
        io::copy(&mut r, &mut o).map_err(copy_fail)?;
        staged.commit()?;
    }
    bar.finish_and_clear();
    Ok(())
}

fn write_out(out: &Path, bytes: &[u8]) -> Result<(), Failure> {
    if is_dash(out) {
        let mut o = io::stdout().lock();
        o.write_all(bytes)
            .and_then(|()| o.flush())
            .map_err(|e| Failure::io(out, &e))
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
    let fail = |e| Failure::from_error(e, name);
    let mut f = File::open(name).map_err(|e| Failure::io(name, &e))?;
    let (env, used, head) = read_envelope(&mut f, name)?;
    let binding = open_binding(&BindingArgs::default(), &env, name)?;
    let new = engine.rewrap(with, &binding, &env, to).map_err(fail)?;
    let encoded = new.encode().map_err(fail)?;
    let mut staged = Staged::create(name)?;
    let w = staged.file();
    w.write_all(&encoded)
        .and_then(|()| w.write_all(&head[used..]))
        .and_then(|()| io::copy(&mut f, w).map(drop))
        .map_err(|e| Failure::io(name, &e))?;
    staged.commit()?;
    Ok((env.mode, new.mode))
}
