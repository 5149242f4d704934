//! Several `objseal` processes on one key store at once (issue 11): four
//! workers race first use of an empty home, then seal (SSE-S3, SSE-KMS
//! under the default key and under their own keys), open, rotate the
//! keyring, create KMS keys and disable/enable the keys they own, for a
//! fixed time. Afterwards every acknowledged effect must be there: each
//! object whose seal exited 0 opens to its plaintext, each created key and
//! rotated version exists, each owned key is in the state its last
//! successful command set, and the audit log parses and holds exactly one
//! record per KMS operation.

#[path = "common/store.rs"]
mod store;
use store::{read_audit_file, temp_files};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_objseal");
/// Workers (processes in flight at once).
const WORKERS: u64 = 4;
/// How long the workers run.
const DURATION: Duration = Duration::from_secs(7);
/// Commands per worker at most, whatever the time.
const CAP: usize = 600;
/// Longest any one command may run before the test fails.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// Small deterministic PRNG (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// What a finished command left.
struct Out {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// `objseal ARGS` in `cwd` on the store at `home`.
fn objseal(home: &Path, cwd: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(cwd)
        .env("OBJSEAL_HOME", home)
        // Waiting for the store lock is expected here; a lock timeout
        // would be a failure of the test machine, not of objseal.
        .env("OBJSEAL_LOCK_TIMEOUT", "60")
        .env_remove("OBJSEAL_BACKEND");
    c
}

/// Runs `c` to completion, failing the test if it runs past `limit`.
fn run(mut c: Command, limit: Duration) -> Out {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = c.spawn().expect("spawn objseal");
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let mut pause = Duration::from_micros(200);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{c:?} still running after {limit:?}: killed");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(2));
    };
    Out {
        code: status.code(),
        stdout: t_out.join().expect("stdout reader"),
        stderr: String::from_utf8_lossy(&t_err.join().expect("stderr reader")).into_owned(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Kind {
    SealS3,
    SealKmsDefault,
    SealKmsOwn,
    OpenS3,
    OpenKms,
    Rotate,
    CreateKey,
    Disable,
    Enable,
}

/// One command a worker ran.
struct Rec {
    worker: u64,
    kind: Kind,
    args: Vec<String>,
    out: Out,
}

/// An object whose seal exited 0.
struct Sealed {
    path: PathBuf,
    plain: Vec<u8>,
    /// `None` for SSE-S3; `Some("")` for the default KMS key; else the ARN.
    kms_key: Option<String>,
}

#[derive(Default)]
struct WorkerLog {
    recs: Vec<Rec>,
    sealed: Vec<Sealed>,
    /// ARNs printed by successful `kms create-key`, with whether the key
    /// is enabled after this worker's last successful command on it.
    owned: Vec<(String, bool)>,
    /// Versions printed by successful `keys rotate`.
    versions: Vec<u32>,
    /// Objects opened (and checked) during the run.
    opened: usize,
}

fn worker(id: u64, home: PathBuf, dir: PathBuf, start: Arc<Barrier>) -> WorkerLog {
    let mut rng = Rng(0x5eed_0000 + id * 0x1_0000_0001);
    let mut log = WorkerLog::default();
    start.wait();
    let began = Instant::now();
    let mut i = 0usize;
    while began.elapsed() < DURATION && i < CAP {
        i += 1;
        let roll = rng.below(100);
        let enabled_own: Vec<usize> = (0..log.owned.len()).filter(|&k| log.owned[k].1).collect();
        let kind = match roll {
            0..=29 => Kind::SealS3,
            30..=51 => Kind::SealKmsDefault,
            52..=61 if !enabled_own.is_empty() => Kind::SealKmsOwn,
            52..=61 => Kind::SealKmsDefault,
            62..=69 => Kind::Rotate,
            70..=77 => Kind::CreateKey,
            78..=89 if log.owned.is_empty() => Kind::CreateKey,
            78..=89 => Kind::Disable, // or Enable: decided below
            _ if log.sealed.is_empty() => Kind::SealS3,
            _ => Kind::OpenS3, // or OpenKms: decided below
        };
        match kind {
            Kind::SealS3 | Kind::SealKmsDefault | Kind::SealKmsOwn => {
                let len = match rng.below(10) {
                    0 => 0,
                    1 => 16 * 1024 + rng.below(40_000) as usize,
                    _ => rng.below(16 * 1024) as usize,
                };
                let mut plain = format!("worker {id} object {i}\n").into_bytes();
                plain.extend(rng.bytes(len));
                if len == 0 {
                    plain.clear();
                }
                let input = dir.join(format!("in-{i}.bin"));
                std::fs::write(&input, &plain).unwrap();
                let output = dir.join(format!("obj-{i}.osl"));
                let mut args: Vec<String> = vec![
                    "seal".into(),
                    input.display().to_string(),
                    "-o".into(),
                    output.display().to_string(),
                ];
                let kms_key = match kind {
                    Kind::SealS3 => None,
                    Kind::SealKmsDefault => {
                        args.extend(["--sse".into(), "kms".into()]);
                        Some(String::new())
                    }
                    _ => {
                        let k = enabled_own[rng.below(enabled_own.len() as u64) as usize];
                        let arn = log.owned[k].0.clone();
                        args.extend([
                            "--sse".into(),
                            "kms".into(),
                            "--kms-key".into(),
                            arn.clone(),
                        ]);
                        Some(arn)
                    }
                };
                let out = exec(&home, &dir, &args);
                if out.ok() {
                    log.sealed.push(Sealed {
                        path: output,
                        plain,
                        kms_key,
                    });
                }
                log.recs.push(Rec {
                    worker: id,
                    kind,
                    args,
                    out,
                });
            }
            Kind::OpenS3 | Kind::OpenKms => {
                // An earlier object of this worker whose key is usable
                // (only this worker disables its own keys).
                let usable: Vec<usize> = (0..log.sealed.len())
                    .filter(|&s| match &log.sealed[s].kms_key {
                        Some(arn) if !arn.is_empty() => {
                            log.owned.iter().any(|(a, on)| a == arn && *on)
                        }
                        _ => true,
                    })
                    .collect();
                if usable.is_empty() {
                    continue;
                }
                let s = usable[rng.below(usable.len() as u64) as usize];
                let kind = if log.sealed[s].kms_key.is_some() {
                    Kind::OpenKms
                } else {
                    Kind::OpenS3
                };
                let args: Vec<String> = vec![
                    "open".into(),
                    log.sealed[s].path.display().to_string(),
                    "-o".into(),
                    "-".into(),
                ];
                let out = exec(&home, &dir, &args);
                if out.ok() {
                    assert!(
                        out.stdout == log.sealed[s].plain,
                        "worker {id}: {} opened to other bytes",
                        log.sealed[s].path.display()
                    );
                    log.opened += 1;
                }
                log.recs.push(Rec {
                    worker: id,
                    kind,
                    args,
                    out,
                });
            }
            Kind::Rotate => {
                let args: Vec<String> = vec!["keys".into(), "rotate".into()];
                let out = exec(&home, &dir, &args);
                if out.ok() {
                    let v: u32 = out
                        .text()
                        .trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("keys rotate printed {:?}", out.text()));
                    log.versions.push(v);
                }
                log.recs.push(Rec {
                    worker: id,
                    kind,
                    args,
                    out,
                });
            }
            Kind::CreateKey => {
                let args: Vec<String> = vec![
                    "kms".into(),
                    "create-key".into(),
                    "--description".into(),
                    format!("worker {id} key {i}"),
                ];
                let out = exec(&home, &dir, &args);
                if out.ok() {
                    let arn = out.text().trim().to_owned();
                    assert!(
                        arn.starts_with("arn:aws:kms:"),
                        "create-key printed {arn:?}"
                    );
                    log.owned.push((arn, true));
                }
                log.recs.push(Rec {
                    worker: id,
                    kind,
                    args,
                    out,
                });
            }
            Kind::Disable | Kind::Enable => {
                let k = rng.below(log.owned.len() as u64) as usize;
                let (arn, enabled) = log.owned[k].clone();
                let (kind, verb) = if enabled {
                    (Kind::Disable, "disable")
                } else {
                    (Kind::Enable, "enable")
                };
                let args: Vec<String> = vec!["kms".into(), verb.into(), arn];
                let out = exec(&home, &dir, &args);
                if out.ok() {
                    log.owned[k].1 = !enabled;
                }
                log.recs.push(Rec {
                    worker: id,
                    kind,
                    args,
                    out,
                });
            }
        }
    }
    log
}

fn exec(home: &Path, cwd: &Path, args: &[String]) -> Out {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(objseal(home, cwd, &args), COMMAND_LIMIT)
}

#[test]
fn concurrent_processes_on_one_store_lose_nothing() {
    let t0 = Instant::now();
    let root = tempfile::tempdir().unwrap();
    // Does not exist yet: the workers race its creation.
    let home = root.path().join("home");
    let start = Arc::new(Barrier::new(WORKERS as usize));
    let handles: Vec<_> = (0..WORKERS)
        .map(|w| {
            let dir = root.path().join(format!("w{w}"));
            std::fs::create_dir(&dir).unwrap();
            let (home, start) = (home.clone(), start.clone());
            std::thread::spawn(move || worker(w, home, dir, start))
        })
        .collect();
    let logs: Vec<WorkerLog> = handles
        .into_iter()
        .map(|h| h.join().expect("worker panicked"))
        .collect();
    let run_secs = t0.elapsed().as_secs_f64();

    // Commands per kind and exit codes.
    let mut per_kind: BTreeMap<Kind, (usize, usize)> = BTreeMap::new();
    let mut codes: BTreeMap<Option<i32>, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut announced = 0;
    for r in logs.iter().flat_map(|l| &l.recs) {
        let e = per_kind.entry(r.kind).or_default();
        e.0 += 1;
        if r.out.ok() {
            e.1 += 1;
        }
        *codes.entry(r.out.code).or_default() += 1;
        if !r.out.ok() {
            failures.push(format!(
                "worker {} {:?} {:?} exit {:?}: {}",
                r.worker,
                r.kind,
                r.args,
                r.out.code,
                r.out.stderr.trim()
            ));
        }
        if r.out.stderr.contains("created a key store") {
            announced += 1;
        }
    }
    let total: usize = per_kind.values().map(|v| v.0).sum();
    eprintln!(
        "stress: {WORKERS} workers, {total} commands in {run_secs:.1} s; exit codes {codes:?}"
    );
    for (k, (n, ok)) in &per_kind {
        eprintln!("stress:   {k:?}: {n} run, {ok} exit 0");
    }
    assert!(
        failures.is_empty(),
        "{} commands failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        announced, 1,
        "the store creation must be announced by exactly one process"
    );
    assert!(home.join("home.json").is_file(), "creation marker missing");
    let count = |k: Kind| per_kind.get(&k).map_or(0, |v| v.1);

    // Every key a successful create-key printed exists, in the state its
    // owner's last successful disable/enable left it.
    let listed = run(
        objseal(&home, root.path(), &["kms", "list", "--json"]),
        COMMAND_LIMIT,
    );
    assert!(listed.ok(), "kms list: {}", listed.stderr);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let states: HashMap<String, String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["arn"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let created: Vec<&(String, bool)> = logs.iter().flat_map(|l| &l.owned).collect();
    let distinct: HashSet<&str> = created.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(distinct.len(), created.len(), "an ARN was printed twice");
    let mut missing = 0;
    let mut wrong_state = Vec::new();
    for (arn, enabled) in &created {
        match states.get(arn) {
            None => missing += 1,
            Some(s) => {
                let want = if *enabled { "Enabled" } else { "Disabled" };
                if s != want {
                    wrong_state.push(format!("{arn}: {s}, expected {want}"));
                }
            }
        }
    }
    eprintln!(
        "stress: {} keys created (+1 default), {} listed, {missing} missing, {} in a wrong state",
        created.len(),
        states.len(),
        wrong_state.len()
    );
    assert_eq!(missing, 0, "keys reported as created are missing");
    assert!(
        wrong_state.is_empty(),
        "state changes lost: {wrong_state:?}"
    );
    assert_eq!(
        states.len(),
        created.len() + 1,
        "keys beyond the created ones and the default"
    );

    // Every version a successful rotate printed exists; all are distinct;
    // nothing else was made.
    let ring = run(
        objseal(&home, root.path(), &["keys", "list", "--json"]),
        COMMAND_LIMIT,
    );
    assert!(ring.ok(), "keys list: {}", ring.stderr);
    let ring: serde_json::Value = serde_json::from_slice(&ring.stdout).unwrap();
    let versions: Vec<u64> = ring["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    let active: Vec<u64> = ring["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["active"].as_bool() == Some(true))
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    let printed: Vec<u32> = logs
        .iter()
        .flat_map(|l| l.versions.iter().copied())
        .collect();
    let printed_set: HashSet<u32> = printed.iter().copied().collect();
    eprintln!(
        "stress: {} rotations printed {} distinct versions; keyring holds {} versions, active {active:?}",
        printed.len(),
        printed_set.len(),
        versions.len()
    );
    assert_eq!(
        printed_set.len(),
        printed.len(),
        "a version was printed twice"
    );
    for v in &printed {
        assert!(versions.contains(&u64::from(*v)), "version {v} lost");
    }
    assert_eq!(
        versions,
        (1..=printed.len() as u64 + 1).collect::<Vec<_>>(),
        "keyring versions are not exactly 1 and the rotated ones"
    );
    assert_eq!(
        active,
        vec![versions.len() as u64],
        "newest version not active"
    );

    // Re-enable the disabled keys (audited), then open every object.
    let mut enables_after = 0;
    for (arn, enabled) in &created {
        if !enabled {
            let o = run(
                objseal(&home, root.path(), &["kms", "enable", arn]),
                COMMAND_LIMIT,
            );
            assert!(o.ok(), "enable {arn}: {}", o.stderr);
            enables_after += 1;
        }
    }
    let sealed: Vec<&Sealed> = logs.iter().flat_map(|l| &l.sealed).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let bad = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(obj) = sealed.get(n) else { break };
                    let path = obj.path.display().to_string();
                    let o = run(
                        objseal(&home, root.path(), &["open", &path, "-o", "-"]),
                        COMMAND_LIMIT,
                    );
                    if !o.ok() {
                        bad.lock().unwrap().push(format!(
                            "{path}: exit {:?}: {}",
                            o.code,
                            o.stderr.trim()
                        ));
                    } else if o.stdout != obj.plain {
                        bad.lock().unwrap().push(format!("{path}: other bytes"));
                    }
                }
            });
        }
    });
    let bad = bad.into_inner().unwrap();
    let kms_objects = sealed.iter().filter(|o| o.kms_key.is_some()).count();
    eprintln!(
        "stress: {} objects sealed with exit 0 ({} SSE-S3, {kms_objects} SSE-KMS), {} opened during the run; {} do not open",
        sealed.len(),
        sealed.len() - kms_objects,
        logs.iter().map(|l| l.opened).sum::<usize>(),
        bad.len()
    );
    assert!(bad.is_empty(), "sealed objects that do not open: {bad:#?}");

    // The audit log: parses line by line, and holds exactly one record per
    // KMS operation. The CLI's seal asks for one data key per object (no
    // bucket key) and its open one Decrypt per SSE-KMS object.
    let report = run(
        objseal(&home, root.path(), &["kms", "audit", "--json"]),
        COMMAND_LIMIT,
    );
    assert!(report.ok(), "kms audit: {}", report.stderr);
    assert!(
        !report.stderr.contains("cannot be read"),
        "kms audit reported damaged lines: {}",
        report.stderr
    );
    let from_cli: Vec<serde_json::Value> = report
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("kms audit --json line"))
        .collect();
    let records = read_audit_file(&home.join("kms").join("audit.jsonl"));
    assert_eq!(from_cli, records, "kms audit differs from the log file");
    let mut by_op: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &records {
        assert!(
            r["key_arn"].as_str().is_some_and(|a| a.starts_with("arn:")),
            "record without a key: {r}"
        );
        *by_op
            .entry((
                r["operation"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            ))
            .or_default() += 1;
    }
    eprintln!("stress: audit log: {} records {by_op:?}", records.len());
    let kms_opens = count(Kind::OpenKms) + kms_objects;
    let expected: BTreeMap<(String, String), usize> = [
        ("CreateKey", count(Kind::CreateKey) + 1),
        ("CreateAlias", 1),
        (
            "GenerateDataKey",
            count(Kind::SealKmsDefault) + count(Kind::SealKmsOwn),
        ),
        ("Decrypt", kms_opens),
        ("DisableKey", count(Kind::Disable)),
        ("EnableKey", count(Kind::Enable) + enables_after),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(op, n)| ((op.to_owned(), "Success".to_owned()), n))
    .collect();
    eprintln!("stress: expected      {expected:?}");
    assert_eq!(by_op, expected, "audit records do not match the operations");

    // No temporary file left anywhere.
    let mut temps = temp_files(&home);
    temps.extend(temp_files(&home.join("kms")));
    for w in 0..WORKERS {
        temps.extend(temp_files(&root.path().join(format!("w{w}"))));
    }
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    eprintln!("stress: total {:.1} s", t0.elapsed().as_secs_f64());
}
