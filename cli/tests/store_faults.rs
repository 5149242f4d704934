//! The key store and outputs under faults (issue 11): `objseal` killed with
//! SIGKILL at random points, writes failing for a full disk (RLIMIT_FSIZE),
//! and hostile files in the home (missing store files, links, FIFOs,
//! directories, held locks, stale temporary files).

#![cfg(target_os = "linux")]

#[path = "common/store.rs"]
mod store;
use store::{read_audit_file, temp_files};

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_objseal");
/// Longest any one command may run before the test fails.
const LIMIT: Duration = Duration::from_secs(30);
/// Kill runs per command.
const KILL_RUNS: u64 = 24;

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
    secs: f64,
}

impl Out {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A temporary directory with a key store directory `home` and a working
/// directory `work`.
struct Env {
    root: tempfile::TempDir,
    lock_timeout: &'static str,
}

impl Env {
    fn new() -> Env {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("work")).unwrap();
        Env {
            root,
            lock_timeout: "30",
        }
    }

    fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    fn kms_dir(&self) -> PathBuf {
        self.home().join("kms")
    }

    fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// `objseal ARGS` in `work` on the store at `home`.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args);
        self.setup(&mut c);
        c
    }

    fn setup(&self, c: &mut Command) {
        c.current_dir(self.work())
            .env("OBJSEAL_HOME", self.home())
            .env("OBJSEAL_LOCK_TIMEOUT", self.lock_timeout)
            .env_remove("OBJSEAL_BACKEND");
    }

    /// `objseal ARGS` with writes past `bytes` failing (EFBIG, SIGXFSZ
    /// ignored), as on a full disk.
    fn limited(&self, bytes: u64, args: &[&str]) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(
                "trap '' XFSZ; exec prlimit --fsize={bytes} -- \"$0\" \"$@\""
            ))
            .arg(BIN)
            .args(args);
        self.setup(&mut c);
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        run(self.command(args), LIMIT)
    }

    /// Runs and asserts exit 0.
    fn ok(&self, args: &[&str]) -> Out {
        let o = self.run(args);
        assert!(o.ok(), "{args:?}: exit {:?}: {}", o.code, o.stderr.trim());
        o
    }

    /// Every `.objseal-*.tmp` in the work directory and the store.
    fn temps(&self) -> Vec<PathBuf> {
        let mut t = temp_files(&self.work());
        t.extend(temp_files(&self.home()));
        t.extend(temp_files(&self.kms_dir()));
        t
    }

    fn audit_path(&self) -> PathBuf {
        self.kms_dir().join("audit.jsonl")
    }

    /// `kms audit --json` (which also appends records still pending),
    /// checked to report no damaged line and to equal the log file, parsed
    /// line by line.
    fn audit(&self) -> Vec<serde_json::Value> {
        let o = self.ok(&["kms", "audit", "--json"]);
        assert!(
            !o.stderr.contains("cannot be read"),
            "kms audit reports damaged lines: {}",
            o.stderr
        );
        let listed: Vec<serde_json::Value> = o
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).expect("kms audit --json line"))
            .collect();
        let file = read_audit_file(&self.audit_path());
        assert_eq!(listed, file, "kms audit differs from the log file");
        file
    }

    /// `kms list --json`: ARN to state.
    fn kms_keys(&self) -> BTreeMap<String, String> {
        let o = self.ok(&["kms", "list", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["arn"].as_str().unwrap().to_owned(),
                    k["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// `keys list --json`: the versions and the active one.
    fn ring(&self) -> (Vec<u64>, u64) {
        let o = self.ok(&["keys", "list", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let vs = v["versions"].as_array().unwrap();
        let versions = vs.iter().map(|v| v["version"].as_u64().unwrap()).collect();
        let active: Vec<u64> = vs
            .iter()
            .filter(|v| v["active"].as_bool() == Some(true))
            .map(|v| v["version"].as_u64().unwrap())
            .collect();
        assert_eq!(active.len(), 1, "one active version: {v}");
        (versions, active[0])
    }

    /// Opens `name` to stdout and asserts it gives `plain`.
    fn assert_opens(&self, name: &str, plain: &[u8]) {
        let o = self.ok(&["open", name, "-o", "-"]);
        assert!(o.stdout == plain, "{name} opens to other bytes");
    }
}

/// Runs `c` to completion, failing the test if it runs past `limit`.
fn run(mut c: Command, limit: Duration) -> Out {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = c.spawn().expect("spawn");
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
            panic!("{c:?} still running after {limit:?}: killed (blocked?)");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    };
    Out {
        code: status.code(),
        stdout: t_out.join().expect("stdout reader"),
        stderr: String::from_utf8_lossy(&t_err.join().expect("stderr reader")).into_owned(),
        secs: start.elapsed().as_secs_f64(),
    }
}

/// Records of `op` with outcome Success.
fn successes<'a>(records: &'a [serde_json::Value], op: &str) -> Vec<&'a serde_json::Value> {
    records
        .iter()
        .filter(|r| r["operation"] == op && r["outcome"] == "Success")
        .collect()
}

/// Whether `prlimit` (util-linux) can run here.
fn have_prlimit() -> bool {
    Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success(), "mkfifo {}", path.display());
}

// ---------------------------------------------------------------------------
// Kill tests.

/// How one killed run ended.
#[derive(Default, Debug)]
struct KillStats {
    /// Killed while running.
    killed: usize,
    /// Finished (exit 0) before the kill.
    finished: usize,
    /// Temporary files seen right after a kill, before the next command.
    temps_after_kill: usize,
}

impl KillStats {
    fn report(&self, what: &str, max: u64, extra: &str, t0: Instant) {
        eprintln!(
            "kill {what}: {} runs (delays 0..{:.1} ms), {} killed, {} finished first; {} temp files after kills, 0 after the next command{extra}; {:.1} s",
            self.killed + self.finished,
            max as f64 / 1000.0,
            self.killed,
            self.finished,
            self.temps_after_kill,
            t0.elapsed().as_secs_f64()
        );
    }
}

/// The median time of three uninterrupted runs of a command (all must
/// succeed), to spread the kills over a run's whole life.
fn typical(mut make: impl FnMut(usize) -> Command) -> Duration {
    let mut t: Vec<Duration> = (0..3)
        .map(|i| {
            let mut c = make(i);
            c.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let start = Instant::now();
            let st = c.status().expect("spawn");
            assert!(st.success(), "{c:?}: {st}");
            start.elapsed()
        })
        .collect();
    t.sort();
    t[1]
}

/// Kill delays are drawn from 0 to this many microseconds: one and a half
/// times a typical run, within 2..40 ms.
fn max_delay(typical: Duration) -> u64 {
    (typical.as_micros() as u64 * 3 / 2).clamp(2_000, 40_000)
}

/// Starts `c`, SIGKILLs it after `delay`, and returns whether it finished
/// (exit 0) before the kill; any other exit fails the test.
fn kill_after(mut c: Command, delay: Duration, stats: &mut KillStats) -> bool {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().expect("spawn");
    std::thread::sleep(delay);
    let _ = child.kill();
    let status = child.wait().expect("wait");
    if status.signal() == Some(9) {
        stats.killed += 1;
        false
    } else {
        assert!(
            status.success(),
            "{c:?} ended with {status} before the kill"
        );
        stats.finished += 1;
        true
    }
}

/// After a kill: counts the temporary files it left, runs `next` (a
/// command writing into the work directory, so sweeping it and the
/// store), and asserts that none remain.
fn after_kill(e: &Env, next: &[&str], stats: &mut KillStats) {
    stats.temps_after_kill += e.temps().len();
    e.ok(next);
    let left = e.temps();
    assert!(left.is_empty(), "after {next:?}: temporary files {left:?}");
    read_audit_file(&e.audit_path());
}

#[test]
fn kill_seal() {
    let t0 = Instant::now();
    let e = Env::new();
    let mut rng = Rng(0x5ea1);
    let plain = rng.bytes(4 << 20);
    e.write("big.bin", &plain);
    e.write("small.bin", b"probe");
    e.ok(&["keys", "list"]);
    let max = max_delay(typical(|i| {
        e.command(&["seal", "big.bin", "-o", &format!("cal-{i}.osl")])
    }));
    let mut stats = KillStats::default();
    let mut kms_outputs = 0;
    let mut complete = 0;
    for run in 0..KILL_RUNS {
        let out = format!("out-{run}.osl");
        let mut args = vec!["seal", "big.bin", "-o", &out];
        let kms = run % 2 == 1;
        if kms {
            args.extend(["--sse", "kms"]);
        }
        let delay = Duration::from_micros(rng.below(max));
        let finished = kill_after(e.command(&args), delay, &mut stats);
        let probe = format!("probe-{run}.osl");
        after_kill(&e, &["seal", "small.bin", "-o", &probe], &mut stats);
        if e.path(&out).exists() {
            e.assert_opens(&out, &plain);
            complete += 1;
            kms_outputs += usize::from(kms);
        } else {
            assert!(!finished, "{out}: seal exited 0 but there is no output");
        }
    }
    // Every SSE-KMS object in place had its data key audited.
    let records = e.audit();
    let gdk = successes(&records, "GenerateDataKey").len();
    assert!(
        gdk >= kms_outputs,
        "{kms_outputs} SSE-KMS outputs but {gdk} GenerateDataKey records"
    );
    stats.report(
        "seal (4 MiB)",
        max,
        &format!(
            "; {complete} outputs complete and open, {} absent; {gdk} GenerateDataKey records for {kms_outputs} SSE-KMS outputs",
            KILL_RUNS as usize - complete
        ),
        t0,
    );
}

#[test]
fn kill_open() {
    let t0 = Instant::now();
    let e = Env::new();
    let mut rng = Rng(0x0be7);
    let plain = rng.bytes(4 << 20);
    e.write("big.bin", &plain);
    e.write("small.bin", b"probe");
    e.ok(&["seal", "big.bin", "-o", "s3.osl"]);
    e.ok(&["seal", "big.bin", "-o", "kms.osl", "--sse", "kms"]);
    e.ok(&["seal", "small.bin", "-o", "small.osl"]);
    let max = max_delay(typical(|i| {
        e.command(&["open", "kms.osl", "-o", &format!("cal-{i}.bin")])
    }));
    let mut stats = KillStats::default();
    let mut complete = 0;
    for run in 0..KILL_RUNS {
        let src = if run % 2 == 0 { "s3.osl" } else { "kms.osl" };
        let out = format!("plain-{run}.bin");
        let delay = Duration::from_micros(rng.below(max));
        let finished = kill_after(e.command(&["open", src, "-o", &out]), delay, &mut stats);
        let probe = format!("probe-{run}.bin");
        after_kill(&e, &["open", "small.osl", "-o", &probe], &mut stats);
        match std::fs::read(e.path(&out)) {
            Ok(bytes) => {
                assert!(bytes == plain, "{out} exists but is not the plaintext");
                let mode = std::fs::metadata(e.path(&out))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o077, 0, "{out} has mode {mode:o}");
                complete += 1;
            }
            Err(_) => assert!(!finished, "{out}: open exited 0 but there is no output"),
        }
    }
    read_audit_file(&e.audit_path());
    e.audit();
    stats.report(
        "open (4 MiB)",
        max,
        &format!(
            "; {complete} outputs complete, {} absent",
            KILL_RUNS as usize - complete
        ),
        t0,
    );
}

#[test]
fn kill_rewrap() {
    let t0 = Instant::now();
    let e = Env::new();
    let mut rng = Rng(0x4e37);
    e.write("small.bin", b"probe");
    e.ok(&["seal", "small.bin", "-o", "probe.osl"]);
    let key = e.ok(&["kms", "create-key"]).text().trim().to_owned();
    let to_key = format!("kms:{key}");
    let mut objects = Vec::new();
    for i in 0..4 {
        let plain = rng.bytes((2 << 20) + i * 1000);
        let name = format!("obj-{i}.osl");
        let input = format!("in-{i}.bin");
        e.write(&input, &plain);
        let mut args = vec!["seal", input.as_str(), "-o", name.as_str()];
        if i % 2 == 1 {
            args.extend(["--sse", "kms"]);
        }
        e.ok(&args);
        objects.push((name, plain));
    }
    let head = |name: &str| {
        let mut h = vec![0u8; 1024];
        let n = std::fs::File::open(e.path(name))
            .unwrap()
            .read(&mut h)
            .unwrap();
        h.truncate(n);
        h
    };
    let max = max_delay(typical(|i| {
        e.command(&["rewrap", "obj-0.osl", "--to", ["kms", "s3"][i % 2]])
    }));
    let mut stats = KillStats::default();
    let (mut changed, mut to_kms_committed) = (0, 0);
    for run in 0..KILL_RUNS as usize {
        let (name, plain) = &objects[run % objects.len()];
        let target = ["s3", "kms", to_key.as_str()][run % 3];
        let before = head(name);
        let delay = Duration::from_micros(rng.below(max));
        let finished = kill_after(
            e.command(&["rewrap", name, "--to", target]),
            delay,
            &mut stats,
        );
        after_kill(&e, &["rewrap", "probe.osl", "--to", "s3"], &mut stats);
        // Old or new envelope, never neither: it opens either way.
        e.assert_opens(name, plain);
        if head(name) != before {
            changed += 1;
            to_kms_committed += usize::from(target != "s3");
        } else {
            assert!(
                !finished,
                "{name}: rewrap exited 0 but the file is unchanged"
            );
        }
    }
    // Each SSE-KMS object (two sealed so, and every committed rewrap onto
    // a KMS key) had its data key audited.
    let records = e.audit();
    let gdk = successes(&records, "GenerateDataKey").len();
    assert!(
        gdk >= 2 + to_kms_committed,
        "{gdk} GenerateDataKey records for {} SSE-KMS envelopes",
        2 + to_kms_committed
    );
    stats.report(
        "rewrap (2 MiB)",
        max,
        &format!(
            "; {changed} files rewrapped, {} unchanged, all open; {gdk} GenerateDataKey records for {} SSE-KMS envelopes made",
            KILL_RUNS as usize - changed,
            2 + to_kms_committed
        ),
        t0,
    );
}

#[test]
fn kill_keys_rotate() {
    let t0 = Instant::now();
    let e = Env::new();
    let mut rng = Rng(0x7074);
    let mut objects = Vec::new();
    let mut seal_one = |e: &Env, rng: &mut Rng, n: usize| {
        let plain = rng.bytes(1000 + n);
        let input = format!("in-{n}.bin");
        let name = format!("obj-{n}.osl");
        e.write(&input, &plain);
        e.ok(&["seal", &input, "-o", &name]);
        objects.push((name, plain));
    };
    seal_one(&e, &mut rng, 0);
    let max = max_delay(typical(|_| e.command(&["keys", "rotate"])));
    let mut stats = KillStats::default();
    let mut printed = Vec::new();
    for run in 0..KILL_RUNS as usize {
        let delay = Duration::from_micros(rng.below(max));
        let mut c = e.command(&["keys", "rotate"]);
        // Keep its output: a finished rotate prints its version.
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if out.status.signal() == Some(9) {
            stats.killed += 1;
        } else {
            assert!(out.status.success(), "keys rotate: {}", out.status);
            stats.finished += 1;
            let v: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            printed.push(v);
        }
        stats.temps_after_kill += e.temps().len();
        let (versions, active) = e.ring(); // the next command: reads and sweeps the store
        let left = e.temps();
        assert!(left.is_empty(), "temporary files {left:?}");
        let n = versions.len() as u64;
        assert_eq!(
            versions,
            (1..=n).collect::<Vec<_>>(),
            "versions not 1..={n}"
        );
        assert_eq!(active, n, "newest version not active");
        for v in &printed {
            assert!(versions.contains(v), "rotated version {v} lost");
        }
        if run % 4 == 3 {
            seal_one(&e, &mut rng, run + 1);
        }
    }
    for (name, plain) in &objects {
        e.assert_opens(name, plain);
    }
    let (versions, _) = e.ring();
    stats.report(
        "keys rotate",
        max,
        &format!(
            "; {} versions ({} printed by finished rotates), {} SSE-S3 objects open",
            versions.len(),
            printed.len(),
            objects.len()
        ),
        t0,
    );
}

#[test]
fn kill_kms_create_key() {
    let t0 = Instant::now();
    let e = Env::new();
    let mut rng = Rng(0xc4ea);
    e.ok(&["kms", "list"]);
    let max = max_delay(typical(|_| e.command(&["kms", "create-key"])));
    let mut stats = KillStats::default();
    let mut printed: Vec<String> = Vec::new();
    let mut lagging = 0;
    for _ in 0..KILL_RUNS {
        let delay = Duration::from_micros(rng.below(max));
        let mut c = e.command(&["kms", "create-key"]);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if out.status.signal() == Some(9) {
            stats.killed += 1;
        } else {
            assert!(out.status.success(), "kms create-key: {}", out.status);
            stats.finished += 1;
            printed.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        }
        stats.temps_after_kill += e.temps().len();
        // Whether the kill fell between saving the key (with its record)
        // and appending the record to the log.
        let pending_before = {
            let raw = read_audit_file(&e.audit_path());
            let n = successes(&raw, "CreateKey").len();
            let keys: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.kms_dir().join("keys.json")).unwrap())
                    .unwrap();
            keys["keys"].as_array().unwrap().len() - n
        };
        // The next command (no KMS operation: it reads the store and sweeps
        // its temporary files).
        let keys = e.kms_keys();
        let left = e.temps();
        assert!(left.is_empty(), "temporary files {left:?}");
        for arn in &printed {
            assert!(keys.contains_key(arn), "created key {arn} lost");
        }
        // The log file after the next command: parses, and holds the
        // CreateKey record of every key (one saved with its record still
        // pending, killed between the two, was completed when the store
        // was opened).
        let raw = read_audit_file(&e.audit_path());
        let logged: HashSet<&str> = successes(&raw, "CreateKey")
            .iter()
            .filter_map(|r| r["key_arn"].as_str())
            .collect();
        let unlogged: Vec<&String> = keys
            .keys()
            .filter(|a| !logged.contains(a.as_str()))
            .collect();
        assert!(
            unlogged.is_empty(),
            "keys without a CreateKey record in the log: {unlogged:?}"
        );
        lagging += pending_before;
        // After a KMS command (here `kms audit`), the log has exactly one
        // CreateKey record per key, and none for a key that does not exist.
        let records = e.audit();
        let mut per_key: BTreeMap<&str, usize> = BTreeMap::new();
        for r in successes(&records, "CreateKey") {
            *per_key.entry(r["key_arn"].as_str().unwrap()).or_default() += 1;
        }
        let listed: Vec<&str> = keys.keys().map(String::as_str).collect();
        assert_eq!(
            per_key.keys().copied().collect::<Vec<_>>(),
            listed,
            "CreateKey records and keys differ"
        );
        assert!(
            per_key.values().all(|&n| n == 1),
            "a key has several CreateKey records: {per_key:?}"
        );
    }
    let keys = e.kms_keys();
    stats.report(
        "kms create-key",
        max,
        &format!(
            "; {} keys ({} printed by finished commands, 1 default), each with one CreateKey record; {lagging} kills fell between a key's save and its record's append (completed by the next command)",
            keys.len(),
            printed.len()
        ),
        t0,
    );
}

#[test]
fn kill_first_use() {
    let t0 = Instant::now();
    let mut rng = Rng(0xf125);
    let plain = rng.bytes(100_000);
    let cal: Vec<Env> = (0..3)
        .map(|_| {
            let e = Env::new();
            e.write("a.bin", &plain);
            e
        })
        .collect();
    let max = max_delay(typical(|i| {
        cal[i].command(&["seal", "a.bin", "-o", "a.osl", "--sse", "kms"])
    }));
    let mut stats = KillStats::default();
    let (mut complete, mut extra_keys) = (0, 0);
    for _ in 0..KILL_RUNS {
        let e = Env::new();
        e.write("a.bin", &plain);
        let delay = Duration::from_micros(rng.below(max));
        let finished = kill_after(
            e.command(&["seal", "a.bin", "-o", "a.osl", "--sse", "kms"]),
            delay,
            &mut stats,
        );
        after_kill(
            &e,
            &["seal", "a.bin", "-o", "b.osl", "--sse", "kms"],
            &mut stats,
        );
        assert!(e.home().join("home.json").is_file(), "no creation marker");
        e.assert_opens("b.osl", &plain);
        if e.path("a.osl").exists() {
            e.assert_opens("a.osl", &plain);
            complete += 1;
        } else {
            assert!(!finished, "seal exited 0 but there is no output");
        }
        assert_eq!(e.ring().0, vec![1], "one keyring version");
        let o = e.ok(&["kms", "list", "--json"]);
        let keys: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let keys = keys.as_array().unwrap();
        let aliased = keys
            .iter()
            .filter(|k| k["aliases"].to_string().contains("alias/objseal"))
            .count();
        assert_eq!(aliased, 1, "alias/objseal names one key: {keys:?}");
        // A kill between creating the default key and naming it leaves an
        // unnamed key; the next command makes (and names) another.
        extra_keys += keys.len() - 1;
        let raw = read_audit_file(&e.audit_path());
        let created: HashSet<&str> = successes(&raw, "CreateKey")
            .iter()
            .filter_map(|r| r["key_arn"].as_str())
            .collect();
        for k in keys {
            assert!(
                created.contains(k["arn"].as_str().unwrap()),
                "key without a CreateKey record: {k}"
            );
        }
        e.audit();
    }
    stats.report(
        "first use (seal --sse kms on an empty home)",
        max,
        &format!(
            "; {complete} outputs complete, {} absent; {extra_keys} unnamed default keys left by kills",
            KILL_RUNS as usize - complete
        ),
        t0,
    );
}

// ---------------------------------------------------------------------------
// Full disk (writes past RLIMIT_FSIZE fail with EFBIG).

#[test]
fn full_disk_output_is_all_or_nothing() {
    if !have_prlimit() {
        eprintln!("full_disk_output_is_all_or_nothing: skipped, prlimit is not installed");
        return;
    }
    let e = Env::new();
    let plain = Rng(0xf11).bytes(1 << 20);
    e.write("big.bin", &plain);
    e.ok(&["seal", "big.bin", "-o", "big.osl", "--sse", "kms"]);
    for (args, out) in [
        (vec!["seal", "big.bin", "-o", "s3.osl"], "s3.osl"),
        (
            vec!["seal", "big.bin", "-o", "kms.osl", "--sse", "kms"],
            "kms.osl",
        ),
        (vec!["open", "big.osl", "-o", "plain.bin"], "plain.bin"),
    ] {
        let o = run(e.limited(256 << 10, &args), LIMIT);
        eprintln!("full disk {args:?}: exit {:?}: {}", o.code, o.stderr.trim());
        assert_eq!(o.code, Some(4), "{args:?}: {}", o.stderr);
        assert!(!e.path(out).exists(), "{out} written on a full disk");
        assert!(e.temps().is_empty(), "temporary files {:?}", e.temps());
    }
    // A rewrap in place that cannot be written leaves the old file.
    let before = std::fs::read(e.path("big.osl")).unwrap();
    let o = run(
        e.limited(256 << 10, &["rewrap", "big.osl", "--to", "s3"]),
        LIMIT,
    );
    eprintln!("full disk rewrap: exit {:?}: {}", o.code, o.stderr.trim());
    assert_eq!(o.code, Some(4), "rewrap: {}", o.stderr);
    assert!(
        std::fs::read(e.path("big.osl")).unwrap() == before,
        "big.osl changed"
    );
    assert!(e.temps().is_empty(), "temporary files {:?}", e.temps());
    // The store is intact.
    e.assert_opens("big.osl", &plain);
    e.audit();
}

/// Seals small objects with a large encryption context until the audit log
/// is at least `min` bytes longer than `keys.json`.
fn grow_audit_log(e: &Env, min: u64) {
    e.write("pad.bin", b"pad");
    let pad = "x".repeat(2000);
    let (a, b, c) = (format!("a={pad}"), format!("b={pad}"), format!("c={pad}"));
    for i in 0..20 {
        let audit = std::fs::metadata(e.audit_path()).unwrap().len();
        let keys = std::fs::metadata(e.kms_dir().join("keys.json"))
            .unwrap()
            .len();
        if audit >= keys + min {
            return;
        }
        let out = format!("pad-{i}.osl");
        e.ok(&[
            "seal",
            "pad.bin",
            "-o",
            &out,
            "--sse",
            "kms",
            "--context",
            &a,
            "--context",
            &b,
            "--context",
            &c,
        ]);
    }
    panic!("audit log did not grow");
}

#[test]
fn full_disk_audit_append_is_made_good() {
    if !have_prlimit() {
        eprintln!("full_disk_audit_append_is_made_good: skipped, prlimit is not installed");
        return;
    }
    let e = Env::new();
    e.ok(&["kms", "list"]);
    grow_audit_log(&e, 8 << 10);
    let audit_len = || std::fs::metadata(e.audit_path()).unwrap().len();
    let ends_torn = || !std::fs::read(e.audit_path()).unwrap().ends_with(b"\n");
    let create_key_records = |records: &[serde_json::Value], arn: &str| {
        successes(records, "CreateKey")
            .iter()
            .filter(|r| r["key_arn"] == arn)
            .count()
    };

    // 1. The log is at the limit: the key is saved with its record
    //    pending in keys.json, the append fails, the command succeeds.
    let n0 = e.kms_keys().len();
    let len0 = audit_len();
    let o = run(e.limited(len0, &["kms", "create-key"]), LIMIT);
    assert_eq!(o.code, Some(0), "create-key, log full: {}", o.stderr);
    let first = o.text().trim().to_owned();
    assert!(first.starts_with("arn:aws:kms:"), "{first:?}");
    assert_eq!(audit_len(), len0, "appended past the limit");

    // 2. The next KMS operation must append that record first; with room
    //    for part of a line only, it fails (exit 4) instead of running
    //    while a record is missing, leaving a torn line.
    let o = run(e.limited(len0 + 40, &["kms", "create-key"]), LIMIT);
    assert_eq!(
        o.code,
        Some(4),
        "create-key with a record pending: {}",
        o.stderr
    );
    assert!(audit_len() == len0 + 40 && ends_torn(), "no torn line made");

    // 3. Without the limit, the next command (here `kms list`, no KMS
    //    operation) cuts the torn tail and appends the pending record,
    //    once; the failed create-key made no key.
    let keys = e.kms_keys();
    assert_eq!(keys.len(), n0 + 1, "keys after one success and one failure");
    assert!(keys.contains_key(&first));
    let raw = read_audit_file(&e.audit_path());
    assert_eq!(create_key_records(&raw, &first), 1, "CreateKey of {first}");
    let records = e.audit();
    assert_eq!(
        create_key_records(&records, &first),
        1,
        "CreateKey of {first}"
    );

    // 4. The operation's own append torn: the key is saved (record
    //    pending), the command succeeds; the next operation repairs.
    let len1 = audit_len();
    let o = run(e.limited(len1 + 40, &["kms", "create-key"]), LIMIT);
    assert_eq!(o.code, Some(0), "create-key, own append torn: {}", o.stderr);
    let second = o.text().trim().to_owned();
    assert!(second.starts_with("arn:aws:kms:"), "{second:?}");
    assert!(audit_len() == len1 + 40 && ends_torn(), "no torn line made");
    let records = e.audit();
    assert_eq!(
        create_key_records(&records, &second),
        1,
        "CreateKey of {second}"
    );
    assert_eq!(
        create_key_records(&records, &first),
        1,
        "CreateKey of {first}"
    );

    // 5. An operation with nothing to save (GenerateDataKey) whose record
    //    cannot be appended fails with exit 4 and writes no object; its
    //    torn record is cut, not counted.
    e.write("small.bin", b"small");
    let len2 = audit_len();
    let o = run(
        e.limited(
            len2 + 40,
            &["seal", "small.bin", "-o", "small.osl", "--sse", "kms"],
        ),
        LIMIT,
    );
    eprintln!(
        "full disk GenerateDataKey, record torn: exit {:?}: {}",
        o.code,
        o.stderr.trim()
    );
    assert_eq!(o.code, Some(4), "seal with its audit record failing");
    assert!(
        !e.path("small.osl").exists(),
        "object written without its audit record"
    );
    assert!(ends_torn(), "no torn line made");
    assert!(e.temps().is_empty(), "temporary files {:?}", e.temps());
    let of_small = |records: &[serde_json::Value]| {
        records
            .iter()
            .filter(|r| {
                r["operation"] == "GenerateDataKey"
                    && r["encryption_context"]["aws:s3:arn"] == "arn:aws:s3:::local/small.bin"
            })
            .count()
    };
    let records = e.audit();
    assert_eq!(
        of_small(&records),
        0,
        "the failed GenerateDataKey left a record"
    );
    assert_eq!(audit_len(), len2, "torn record not cut");

    // The log is usable afterwards.
    e.ok(&["seal", "small.bin", "-o", "small.osl", "--sse", "kms"]);
    let records = e.audit();
    assert_eq!(of_small(&records), 1);
    assert_eq!(e.kms_keys().len(), n0 + 2);
    eprintln!(
        "full disk audit: log {len0} bytes; full, torn twice, repaired; now {} bytes, {} records",
        audit_len(),
        records.len()
    );
}

#[test]
fn full_disk_torn_batch_of_records_is_completed() {
    if !have_prlimit() {
        eprintln!(
            "full_disk_torn_batch_of_records_is_completed: skipped, prlimit is not installed"
        );
        return;
    }
    // A GenerateDataKey that rotates its key automatically is one change
    // with two records (RotateKey, then GenerateDataKey), appended in one
    // write. A full disk that lets the first line in and tears the second
    // must not lose the second.
    let e = Env::new();
    let key = e.ok(&["kms", "create-key"]).text().trim().to_owned();
    e.ok(&["kms", "set-rotation", &key, "--days", "1"]);
    let keys_json = e.kms_dir().join("keys.json");
    let mut store: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&keys_json).unwrap()).unwrap();
    for k in store["keys"].as_array_mut().unwrap() {
        if key.ends_with(k["key_id"].as_str().unwrap()) {
            k["last_rotation"] = 1_000_000_000u64.into(); // 2001: rotation due
        }
    }
    std::fs::write(&keys_json, serde_json::to_vec(&store).unwrap()).unwrap();
    grow_audit_log(&e, 8 << 10);
    let len = std::fs::metadata(e.audit_path()).unwrap().len();
    e.write("x.bin", b"x");
    let o = run(
        e.limited(
            len + 400,
            &[
                "seal",
                "x.bin",
                "-o",
                "x.osl",
                "--sse",
                "kms",
                "--kms-key",
                &key,
            ],
        ),
        LIMIT,
    );
    let log = std::fs::read(e.audit_path()).unwrap();
    let tail = String::from_utf8_lossy(&log[len as usize..]).into_owned();
    assert!(
        tail.contains("\"RotateKey\"") && tail.matches('\n').count() == 1 && !tail.ends_with('\n'),
        "expected one complete RotateKey line and a torn one after it: {tail}"
    );
    eprintln!(
        "full disk, torn second record: seal exit {:?}: {}",
        o.code,
        o.stderr.trim()
    );
    let records = e.audit();
    let rotations = records
        .iter()
        .filter(|r| r["operation"] == "RotateKey" && r["key_arn"] == key.as_str())
        .count();
    let gdk = records
        .iter()
        .filter(|r| {
            r["operation"] == "GenerateDataKey"
                && r["encryption_context"]["aws:s3:arn"] == "arn:aws:s3:::local/x.bin"
        })
        .count();
    let versions: Vec<u64> = e
        .ok(&["kms", "list", "--json"])
        .text()
        .parse::<serde_json::Value>()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["arn"] == key.as_str())
        .map(|k| k["current_version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![2], "the automatic rotation is saved");
    assert_eq!(rotations, 1, "RotateKey records");
    if o.code == Some(0) {
        assert!(e.path("x.osl").exists());
        e.ok(&["open", "x.osl", "-o", "-"]);
        assert_eq!(gdk, 1, "sealed with exit 0, GenerateDataKey records");
    } else {
        assert!(!e.path("x.osl").exists());
    }
}

#[test]
fn full_disk_store_save_changes_nothing() {
    if !have_prlimit() {
        eprintln!("full_disk_store_save_changes_nothing: skipped, prlimit is not installed");
        return;
    }
    let e = Env::new();
    // A key with a long description: keys.json well larger than the log.
    let long = "d".repeat(4000);
    e.ok(&["kms", "create-key", "--description", &long]);
    let keys_json = e.kms_dir().join("keys.json");
    let ring_json = e.home().join("keyring.json");
    let snapshot = || {
        (
            std::fs::read(&keys_json).unwrap(),
            std::fs::read(&ring_json).unwrap(),
            std::fs::read(e.audit_path()).unwrap(),
        )
    };

    // Room in the log for the failure record, none for the new keys.json.
    let (keys0, ring0, log0) = snapshot();
    let limit = log0.len() as u64 + 1500;
    assert!(
        limit < keys0.len() as u64,
        "keys.json too small for this test"
    );
    let o = run(e.limited(limit, &["kms", "create-key"]), LIMIT);
    eprintln!(
        "full disk keys.json (limit {limit}): exit {:?}: {}",
        o.code,
        o.stderr.trim()
    );
    assert_eq!(o.code, Some(4), "create-key, keys.json not saved");
    let (keys1, ring1, _) = snapshot();
    assert!(keys1 == keys0, "keys.json changed");
    assert!(ring1 == ring0, "keyring.json changed");
    assert!(e.temps().is_empty(), "temporary files {:?}", e.temps());
    assert_eq!(e.kms_keys().len(), 2, "a key appeared");
    let records = e.audit();
    let failed: Vec<_> = records
        .iter()
        .filter(|r| r["operation"] == "CreateKey" && r["outcome"] == "Failure")
        .collect();
    assert_eq!(failed.len(), 1, "one CreateKey failure record: {records:?}");
    assert_eq!(
        successes(&records, "CreateKey").len(),
        2,
        "only the default and the long key"
    );

    // No room at all: disable, rotate (KMS and keyring) fail with exit 4
    // and change nothing.
    let (keys0, ring0, log0) = snapshot();
    let limit = 100;
    for args in [
        &["kms", "disable", "alias/objseal"][..],
        &["kms", "rotate", "alias/objseal"],
        &["keys", "rotate"],
    ] {
        let o = run(e.limited(limit, args), LIMIT);
        assert_eq!(o.code, Some(4), "{args:?}: {}", o.stderr);
        let (keys1, ring1, log1) = snapshot();
        assert!(keys1 == keys0, "{args:?}: keys.json changed");
        assert!(ring1 == ring0, "{args:?}: keyring.json changed");
        assert!(log1 == log0, "{args:?}: audit log changed");
        assert!(e.temps().is_empty(), "temporary files {:?}", e.temps());
    }
    assert_eq!(e.ring().0, vec![1]);
    let keys = e.kms_keys();
    assert!(keys.values().all(|s| s == "Enabled"), "{keys:?}");
    e.audit();
}

// ---------------------------------------------------------------------------
// Hostile files.

/// Runs `args` and asserts exit `code` within a few seconds.
fn expect_exit(e: &Env, args: &[&str], code: i32) -> Out {
    let o = run(e.command(args), Duration::from_secs(10));
    assert_eq!(
        o.code,
        Some(code),
        "{args:?}: exit {:?}: {}",
        o.code,
        o.stderr.trim()
    );
    o
}

#[test]
fn missing_store_file_is_an_error_not_a_new_key() {
    for (victim, name) in [
        (PathBuf::from("keyring.json"), "keyring.json"),
        (Path::new("kms").join("keys.json"), "keys.json"),
        (PathBuf::from("kms"), "kms"),
    ] {
        let e = Env::new();
        e.write("a.bin", b"hello");
        e.ok(&["seal", "a.bin"]);
        let path = e.home().join(&victim);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
        for args in [
            &["keys", "list"][..],
            &["seal", "a.bin", "-o", "b.osl"],
            &["seal", "a.bin", "-o", "c.osl", "--sse", "kms"],
            &["open", "a.bin.osl", "-o", "a.out"],
            &["kms", "create-key"],
        ] {
            let o = expect_exit(&e, args, 3);
            assert!(
                o.stderr.contains(name) && o.stderr.contains("backup"),
                "{args:?} should name {name} and the backup: {}",
                o.stderr
            );
            assert!(
                std::fs::symlink_metadata(&path).is_err(),
                "{args:?} re-created {}",
                path.display()
            );
        }
        for out in ["b.osl", "c.osl", "a.out"] {
            assert!(!e.path(out).exists(), "{out} written without a store");
        }
    }
}

#[test]
fn links_fifos_and_directories_in_the_store_are_refused() {
    // A dangling link as keyring.json.
    let e = Env::new();
    e.write("a.bin", b"hello");
    e.ok(&["seal", "a.bin"]);
    let ring = e.home().join("keyring.json");
    std::fs::rename(&ring, e.path("moved.json")).unwrap();
    std::os::unix::fs::symlink(e.path("nowhere.json"), &ring).unwrap();
    let o = expect_exit(&e, &["keys", "list"], 3);
    assert!(o.stderr.contains("keyring.json"), "{}", o.stderr);
    assert!(!e.path("nowhere.json").exists(), "link target created");
    assert!(
        std::fs::symlink_metadata(&ring)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // A link to the real keyring is refused too (not followed).
    std::fs::remove_file(&ring).unwrap();
    std::os::unix::fs::symlink(e.path("moved.json"), &ring).unwrap();
    expect_exit(&e, &["keys", "rotate"], 3);
    std::fs::remove_file(&ring).unwrap();
    std::fs::rename(e.path("moved.json"), &ring).unwrap();
    e.ok(&["open", "a.bin.osl", "-o", "-"]);

    // A FIFO as keyring.json: refused at once, not waited on.
    std::fs::rename(&ring, e.path("moved.json")).unwrap();
    mkfifo(&ring);
    let o = expect_exit(&e, &["keys", "list"], 3);
    assert!(o.stderr.contains("keyring.json"), "{}", o.stderr);
    assert!(o.secs < 5.0, "took {:.1} s", o.secs);
    std::fs::remove_file(&ring).unwrap();

    // A directory as keyring.json: exit 3, and no advice to chmod.
    std::fs::create_dir(&ring).unwrap();
    let o = expect_exit(&e, &["keys", "list"], 3);
    assert!(o.stderr.contains("keyring.json"), "{}", o.stderr);
    assert!(!o.stderr.contains("chmod"), "advises chmod: {}", o.stderr);
    std::fs::remove_dir(&ring).unwrap();
    std::fs::rename(e.path("moved.json"), &ring).unwrap();

    // A FIFO as the audit log.
    let audit = e.audit_path();
    std::fs::rename(&audit, e.path("audit.moved")).unwrap();
    mkfifo(&audit);
    for args in [
        &["kms", "list"][..],
        &["seal", "a.bin", "-o", "k.osl", "--sse", "kms"],
        &["kms", "audit"],
    ] {
        let o = expect_exit(&e, args, 3);
        assert!(o.stderr.contains("audit.jsonl"), "{args:?}: {}", o.stderr);
        assert!(o.secs < 5.0, "{args:?} took {:.1} s", o.secs);
    }
    assert!(!e.path("k.osl").exists());
    assert!(
        std::fs::symlink_metadata(&audit)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // A link as the audit log: not followed, not written through.
    std::fs::remove_file(&audit).unwrap();
    std::os::unix::fs::symlink(e.path("audit.moved"), &audit).unwrap();
    let before = std::fs::read(e.path("audit.moved")).unwrap();
    expect_exit(&e, &["seal", "a.bin", "-o", "k.osl", "--sse", "kms"], 3);
    assert!(
        std::fs::read(e.path("audit.moved")).unwrap() == before,
        "written through the link"
    );
    std::fs::remove_file(&audit).unwrap();
    std::fs::rename(e.path("audit.moved"), &audit).unwrap();

    // FIFOs as lock files.
    for lock in [
        e.home().join("keyring.json.lock"),
        e.kms_dir().join("keys.json.lock"),
        e.home().join(".objseal.lock"),
    ] {
        std::fs::remove_file(&lock).unwrap();
        mkfifo(&lock);
        let args: &[&str] = if lock.ends_with("keyring.json.lock") {
            &["keys", "rotate"]
        } else {
            &["kms", "create-key"]
        };
        let o = expect_exit(&e, args, 3);
        assert!(o.secs < 5.0, "{args:?} took {:.1} s", o.secs);
        std::fs::remove_file(&lock).unwrap();
    }
    e.ok(&["open", "a.bin.osl", "-o", "-"]);
    e.audit();
}

#[test]
fn force_replaces_only_regular_files() {
    let e = Env::new();
    e.write("a.bin", b"secret plaintext");
    e.ok(&["seal", "a.bin"]);
    let fifo = e.path("fifo");
    mkfifo(&fifo);
    e.write("target.txt", b"untouched");
    std::os::unix::fs::symlink(e.path("target.txt"), e.path("link")).unwrap();
    std::fs::create_dir(e.path("dir")).unwrap();
    for out in ["fifo", "link", "dir"] {
        for args in [
            &["open", "a.bin.osl", "-o", out, "--force"][..],
            &["seal", "a.bin", "-o", out, "--force"],
            &["open", "a.bin.osl", "-o", out],
        ] {
            let o = expect_exit(&e, args, 1);
            assert!(o.stderr.contains(out), "{args:?}: {}", o.stderr);
        }
    }
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(
        std::fs::symlink_metadata(e.path("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(e.path("target.txt")).unwrap(), b"untouched");
    assert!(e.path("dir").is_dir());
    // A regular file is replaced with --force.
    e.write("plain.txt", b"old");
    e.ok(&["open", "a.bin.osl", "-o", "plain.txt", "--force"]);
    assert_eq!(
        std::fs::read(e.path("plain.txt")).unwrap(),
        b"secret plaintext"
    );
}

#[test]
fn held_lock_times_out_with_exit_3() {
    let mut e = Env::new();
    e.write("a.bin", b"hello");
    e.ok(&["seal", "a.bin"]);
    e.lock_timeout = "1";
    for (lock, args) in [
        (e.home().join("keyring.json.lock"), &["keys", "rotate"][..]),
        (e.kms_dir().join("keys.json.lock"), &["kms", "create-key"]),
        (
            e.kms_dir().join("keys.json.lock"),
            &["seal", "a.bin", "-o", "k.osl", "--sse", "kms"],
        ),
        (e.home().join(".objseal.lock"), &["keys", "list"]),
    ] {
        let held = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&lock)
            .unwrap();
        held.lock().unwrap();
        let o = expect_exit(&e, args, 3);
        let name = lock.file_name().unwrap().to_str().unwrap();
        assert!(
            o.stderr.contains(name),
            "{args:?} should name {name}: {}",
            o.stderr
        );
        assert!(
            (0.9..5.0).contains(&o.secs),
            "{args:?}: {:.1} s for a 1 s lock timeout",
            o.secs
        );
        drop(held);
    }
    assert!(!e.path("k.osl").exists());
    e.lock_timeout = "30";
    assert_eq!(e.ring().0, vec![1], "a rotation went through the held lock");
    assert_eq!(
        e.kms_keys().len(),
        1,
        "a key was created through the held lock"
    );
    e.audit();
}

#[test]
fn stale_temp_files_are_swept_live_ones_kept() {
    let e = Env::new();
    e.write("a.bin", b"hello");
    e.ok(&["seal", "a.bin"]);
    let dirs = [e.work(), e.home(), e.kms_dir()];
    let mut stale = Vec::new();
    let mut live = Vec::new();
    let mut held = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let s = d.join(format!(".objseal-{:016x}.tmp", 0x1000 + i));
        std::fs::write(&s, b"left by a killed writer").unwrap();
        stale.push(s);
        let l = d.join(format!(".objseal-{:016x}.tmp", 0x2000 + i));
        let f = std::fs::File::create(&l).unwrap();
        f.lock().unwrap();
        held.push(f);
        live.push(l);
    }
    // A FIFO with a temporary name is neither waited on nor removed.
    let fifo = e.work().join(format!(".objseal-{:016x}.tmp", 0x3000));
    mkfifo(&fifo);
    let o = run(
        e.command(&["open", "a.bin.osl", "-o", "a.out"]),
        Duration::from_secs(10),
    );
    assert!(o.ok(), "{}", o.stderr);
    for s in &stale {
        assert!(!s.exists(), "stale {} not removed", s.display());
    }
    for l in &live {
        assert!(l.exists(), "live {} removed", l.display());
    }
    assert!(std::fs::symlink_metadata(&fifo).is_ok());
    drop(held);
    std::fs::remove_file(&fifo).unwrap();
    e.ok(&["open", "a.bin.osl", "-o", "b.out"]);
    assert!(e.temps().is_empty(), "{:?}", e.temps());
}

#[test]
fn damaged_audit_line_is_reported_not_fatal() {
    let e = Env::new();
    e.write("a.bin", b"hello");
    e.ok(&["seal", "a.bin", "--sse", "kms"]);
    let mut log = std::fs::read(e.audit_path()).unwrap();
    let first_nl = log.iter().position(|&b| b == b'\n').unwrap();
    log.splice(first_nl + 1..first_nl + 1, b"{not json\n".iter().copied());
    std::fs::write(e.audit_path(), &log).unwrap();
    let o = e.ok(&["kms", "audit", "--json"]);
    assert!(
        o.stderr.contains("line 2"),
        "damaged line not reported: {}",
        o.stderr
    );
    assert_eq!(o.text().lines().count(), 3, "the readable records");
    // KMS operations still work and are still logged.
    e.ok(&["open", "a.bin.osl", "-o", "-"]);
    let o = e.ok(&["kms", "audit", "--json"]);
    assert_eq!(o.text().lines().count(), 4);
}
