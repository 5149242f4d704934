//! `objseal bench`: seal/open throughput per backend and thread count, and
//! the file-to-file path against a plain copy.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Args;
use objseal::body::{self, FileInput};
use objseal::cipher::BACKEND_ENV;
use objseal::{Backend, ObjectBinding, OpenWith, SealMode};
use serde::{Deserialize, Serialize};

use super::{Ctx, Failure};

pub const HELP: &str = "\
Examples:
  objseal bench                           # 256 MiB, 1 and all threads, every backend
  objseal bench --size 1GiB --threads 1 4 8
  objseal bench --backend aesni-clmul --json

Every backend this CPU runs is measured in its own process (OBJSEAL_BACKEND set
for it). The seal/open rows are the best of three runs in memory, into
buffers allocated once (after one object is sealed and opened through the
engine and checked); the file rows seal and open a temporary file with
the default backend, through positioned reads (the default) and a memory
mapping (mmap), against a plain copy made durable the same way (fsync), best of
three interleaved runs; the ÷ copy rows give each as a multiple of the
copy's speed (in the GB/s column).";

/// `objseal bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Bytes per run: a number with an optional KiB, MiB, GiB, KB, MB, GB suffix.
    #[arg(long, default_value = "256MiB")]
    size: String,
    /// Thread counts to run (default: 1 and every core).
    #[arg(long, num_args = 1..)]
    threads: Vec<usize>,
    /// `all`, or one backend name (portable, aesni-clmul, vaes-clmul-avx2, vaes-clmul-avx512).
    #[arg(long, default_value = "all")]
    backend: String,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Skip the file-to-file rows.
    #[arg(long, hide = true)]
    no_files: bool,
}

/// One measurement.
#[derive(Serialize, Deserialize)]
struct Row {
    backend: String,
    threads: usize,
    op: String,
    bytes: u64,
    seconds: f64,
    gb_per_s: f64,
}

#[derive(Serialize, Deserialize)]
struct Report {
    size: u64,
    rows: Vec<Row>,
}

/// Parses `256MiB`, `1GiB`, `64MB`, `4096` (and `0`: callers that need
/// bytes refuse it themselves).
pub fn parse_size(s: &str) -> Result<u64, Failure> {
    let bad = || Failure::usage(format!("bad --size {s:?}: use e.g. 64MiB, 1GiB, 1000000"));
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// Keeps, slot by slot, the faster of `best` and this run's rows.
fn keep_fastest<const N: usize>(best: &mut [Option<Row>; N], run: [Row; N]) {
    for (slot, r) in best.iter_mut().zip(run) {
        if slot.as_ref().is_none_or(|s| r.seconds < s.seconds) {
            *slot = Some(r);
        }
    }
}

fn row(backend: &str, threads: usize, op: &str, bytes: u64, start: Instant) -> Row {
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    Row {
        backend: backend.to_owned(),
        threads,
        op: op.to_owned(),
        bytes,
        seconds,
        gb_per_s: bytes as f64 / seconds / 1e9,
    }
}

/// `objseal bench`.
pub fn run(ctx: &Ctx, a: BenchArgs) -> Result<(), Failure> {
    let size = parse_size(&a.size)?;
    if size == 0 {
        return Err(Failure::usage(
            "--size 0: nothing to measure; give e.g. 64MiB",
        ));
    }
    let len = usize::try_from(size).map_err(|_| Failure::usage("--size too large here"))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = if a.threads.is_empty() {
        vec![1, cores]
    } else {
        a.threads.clone()
    };
    threads.dedup();
    if threads.contains(&0) {
        return Err(Failure::usage("--threads must be at least 1"));
    }
    let backends: Vec<Backend> = if a.backend == "all" {
        Backend::available()
    } else {
        let b = Backend::from_env_value(Some(&a.backend))
            .map_err(|e| Failure::usage(format!("--backend {}: {e}", a.backend)))?;
        b.check()
            .map_err(|e| Failure::usage(format!("--backend {}: {e}", a.backend)))?;
        vec![b]
    };
    let store = ctx.store()?;
    let engine = store.engine();
    let binding =
        ObjectBinding::new("bench", "object").map_err(|e| Failure::usage(e.to_string()))?;
    let mut rows = Vec::new();
    let current = std::env::var(BACKEND_ENV).ok();
    for b in backends {
        if current.as_deref() == Some(b.name()) || (current.is_none() && b == Backend::best()) {
            rows.extend(in_memory(&engine, &binding, b, len, &threads)?);
        } else {
            rows.extend(child(&store.home, b, &a, &threads)?);
        }
    }
    if !a.no_files {
        rows.extend(files(&engine, &binding, len)?);
    }
    let report = Report { size, rows };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(());
    }
    println!(
        "{} bytes per run ({:.0} MiB)",
        size,
        size as f64 / (1 << 20) as f64
    );
    println!(
        "{:<16}  {:>7}  {:<34}  {:>8}  {:>9}",
        "backend", "threads", "operation", "seconds", "GB/s"
    );
    for r in &report.rows {
        println!(
            "{:<16}  {:>7}  {:<34}  {:>8.3}  {:>9.2}",
            r.backend, r.threads, r.op, r.seconds, r.gb_per_s
        );
    }
    Ok(())
}

/// The in-memory rows for backend `b` (the one this process runs): one
/// object sealed and opened through the engine (key wrapping included, and
/// checked), then its body sealed into and opened from buffers allocated
/// once, best of three runs per thread count: the first run also pays for
/// the page faults of fresh memory, which on some machines cost more than
/// the cipher.
fn in_memory(
    engine: &objseal::Engine,
    binding: &ObjectBinding,
    b: Backend,
    len: usize,
    threads: &[usize],
) -> Result<Vec<Row>, Failure> {
    let fail = |e| Failure::from_error(e, Path::new("bench"));
    let plain = vec![0x5au8; len];
    let sealed = engine.seal(&SealMode::S3, binding, &plain).map_err(fail)?;
    let (envelope, _) = objseal::Envelope::parse_prefix(&sealed).map_err(fail)?;
    let key = engine
        .data_key(OpenWith::Managed, binding, &envelope)
        .map_err(fail)?;
    if engine
        .open(OpenWith::Managed, binding, &sealed)
        .map_err(fail)?
        != plain
    {
        return Err(Failure::usage("bench: opened bytes differ (a bug)"));
    }
    drop(sealed);
    let context = binding.body_context();
    let body_len = body::sealed_len(len as u64).map_err(fail)?;
    let mut body =
        vec![0u8; usize::try_from(body_len).map_err(|_| Failure::usage("--size too large here"))?];
    let mut opened = vec![0u8; len];
    let mut rows = Vec::new();
    for &n in threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| Failure::usage(format!("cannot start {n} threads: {e}")))?;
        let mut best: [Option<Row>; 2] = [None, None];
        for _ in 0..3 {
            let start = Instant::now();
            pool.install(|| body::seal_into(&key, &context, &plain, &mut body))
                .map_err(fail)?;
            let seal = row(b.name(), n, "seal", len as u64, start);
            let start = Instant::now();
            pool.install(|| body::open_into(&key, &context, &body, &mut opened))
                .map_err(fail)?;
            let open = row(b.name(), n, "open", len as u64, start);
            if opened != plain {
                return Err(Failure::usage("bench: opened bytes differ (a bug)"));
            }
            keep_fastest(&mut best, [seal, open]);
        }
        rows.extend(best.into_iter().flatten());
    }
    Ok(rows)
}

/// Runs the engine rows for `b` in a child process with `OBJSEAL_BACKEND=b`.
fn child(home: &Path, b: Backend, a: &BenchArgs, threads: &[usize]) -> Result<Vec<Row>, Failure> {
    let exe = std::env::current_exe().map_err(|e| Failure::io(Path::new("objseal"), &e))?;
    let mut cmd = Command::new(&exe);
    cmd.env(BACKEND_ENV, b.name())
        .arg("bench")
        .arg("-q")
        .arg("--home")
        .arg(home)
        .args([
            "--size",
            &a.size,
            "--backend",
            b.name(),
            "--json",
            "--no-files",
        ]);
    cmd.arg("--threads")
        .args(threads.iter().map(|t| t.to_string()));
    let out = cmd.output().map_err(|e| Failure::io(&exe, &e))?;
    let report: Report = serde_json::from_slice(&out.stdout).map_err(|_| Failure {
        code: out
            .status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(1),
        message: format!(
            "bench of backend {} failed: {}",
            b.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })?;
    Ok(report.rows)
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// File-to-file seal and open against a plain copy.
fn files(
    engine: &objseal::Engine,
    binding: &ObjectBinding,
    len: usize,
) -> Result<Vec<Row>, Failure> {
    let dir = TempDir(std::env::temp_dir().join(format!("objseal-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(|e| Failure::io(&dir.0, &e))?;
    let (src, sealed, opened, copied) = (
        dir.0.join("plain"),
        dir.0.join("plain.osl"),
        dir.0.join("opened"),
        dir.0.join("copy"),
    );
    std::fs::write(&src, vec![0x5au8; len]).map_err(|e| Failure::io(&src, &e))?;
    let name = Backend::from_env().map_or("default", |b| b.name());
    let cores = rayon::current_num_threads();
    let size = len as u64;
    let fail = |e, p: &Path| Failure::from_error(e, p);
    // Best of three runs each, interleaved (copy, then each path in turn),
    // so that another load on the machine weighs on all rows alike. The
    // copy is fsynced too: the engine's file outputs are durable (fsynced
    // before the rename), so that is the fair anchor. The input was just
    // written by this process in its own directory, so mapping it is safe
    // (nothing else truncates it).
    // The default path (positioned reads) keeps the plain row names.
    let paths = [(FileInput::Read, ""), (FileInput::Mapped, " (mmap)")];
    let mut best: [Option<Row>; 5] = [None, None, None, None, None];
    for _ in 0..3 {
        let start = Instant::now();
        std::fs::copy(&src, &copied)
            .and_then(|_| std::fs::File::open(&copied)?.sync_all())
            .map_err(|e| Failure::io(&copied, &e))?;
        let copy = row("(plain copy)", 1, "copy+fsync file→file", size, start);
        let _ = std::fs::remove_file(&copied);
        let mut run = vec![copy];
        for (how, label) in paths {
            let _ = std::fs::remove_file(&sealed);
            let start = Instant::now();
            engine
                .seal_file_with(&SealMode::S3, binding, &src, &sealed, how)
                .map_err(|e| fail(e, &src))?;
            run.push(row(
                name,
                cores,
                &format!("seal file→file{label}"),
                size,
                start,
            ));
        }
        for (how, label) in paths {
            let _ = std::fs::remove_file(&opened);
            let start = Instant::now();
            engine
                .open_file_with(OpenWith::Managed, binding, &sealed, &opened, how)
                .map_err(|e| fail(e, &sealed))?;
            run.push(row(
                name,
                cores,
                &format!("open file→file{label}"),
                size,
                start,
            ));
        }
        let run: [Row; 5] = run
            .try_into()
            .map_err(|_| Failure::usage("bench: row count (a bug)"))?;
        keep_fastest(&mut best, run);
    }
    let copy_s = best[0].as_ref().map_or(1e-9, |r| r.seconds);
    let mut rows: Vec<Row> = best.into_iter().flatten().collect();
    // Each file row against the copy (time of the copy / time of the row).
    let ratios: Vec<Row> = rows
        .iter()
        .skip(1)
        .map(|r| Row {
            backend: r.backend.clone(),
            threads: r.threads,
            op: format!("{} ÷ copy (×)", r.op),
            bytes: r.bytes,
            seconds: r.seconds,
            gb_per_s: copy_s / r.seconds,
        })
        .collect();
    rows.extend(ratios);
    Ok(rows)
}
