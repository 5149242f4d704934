//! The `objseal` binary, run for real: every command and mode, stdin/stdout,
//! ranges, and each failure's exit code, message and (absent) output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn home(&self) -> PathBuf {
        self.path("home")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_objseal"));
        c.args(args)
            .current_dir(self.dir.path())
            .env("OBJSEAL_HOME", self.home())
            .env_remove("OBJSEAL_BACKEND");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs and asserts success.
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", stderr(&out));
        out
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// 100 000 bytes: several chunks and a partial last one.
fn data() -> Vec<u8> {
    (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn round_trip_in_every_mode() {
    let e = Env::new();
    let plain = data();
    e.write("a.bin", &plain);
    e.write("raw.key", &[0x42; 32]);
    e.write("b64.key", b"QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=\n");
    let first = e.ok(&["seal", "a.bin"]);
    assert!(stderr(&first).contains("created a key store"));
    e.ok(&["open", "a.bin.osl", "-o", "s3.out", "--threads", "1"]);
    assert_eq!(e.read("s3.out"), plain);

    let second = e.ok(&[
        "seal",
        "a.bin",
        "--sse",
        "kms",
        "--context",
        "dept=eng",
        "-o",
        "k.osl",
    ]);
    assert!(
        !stderr(&second).contains("created a key store"),
        "store announced twice"
    );
    e.ok(&["open", "k.osl", "-o", "k.out", "--threads", "2"]);
    assert_eq!(e.read("k.out"), plain);

    let args = [
        "seal",
        "a.bin",
        "--sse",
        "kms",
        "--bucket-key",
        "--kms-key",
        "alias/objseal",
    ];
    e.ok(&[&args[..], &["-o", "kb.osl"]].concat());
    e.ok(&["open", "kb.osl", "-o", "kb.out"]);
    assert_eq!(e.read("kb.out"), plain);

    e.ok(&[
        "seal",
        "a.bin",
        "--sse",
        "c",
        "--customer-key-file",
        "raw.key",
        "-o",
        "c.osl",
    ]);
    // The base64 file holds the same key.
    e.ok(&[
        "open",
        "c.osl",
        "-o",
        "c.out",
        "--customer-key-file",
        "b64.key",
    ]);
    assert_eq!(e.read("c.out"), plain);

    let bound = [
        "seal",
        "a.bin",
        "--bucket",
        "photos",
        "--key",
        "2026/a.bin",
        "-o",
        "bound.osl",
    ];
    e.ok(&bound);
    let wrong = e.run(&["open", "bound.osl", "-o", "bound.out", "--key", "other"]);
    assert_eq!(code(&wrong), 2, "{}", stderr(&wrong));
    e.ok(&[
        "open",
        "bound.osl",
        "-o",
        "bound.out",
        "--bucket",
        "photos",
        "--key",
        "2026/a.bin",
    ]);
    assert_eq!(e.read("bound.out"), plain);
}

#[cfg(unix)]
#[test]
fn store_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::new();
    e.ok(&["keys", "list"]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&e.home()), 0o700);
    assert_eq!(mode(&e.home().join("keyring.json")), 0o600);
    e.write("a.bin", b"secret plaintext");
    e.ok(&["seal", "a.bin"]);
    e.ok(&["open", "a.bin.osl", "-o", "opened"]);
    assert_eq!(
        mode(&e.path("opened")),
        0o600,
        "plaintext output is private"
    );
    assert_eq!(mode(&e.path("a.bin.osl")), 0o600);
    for f in std::fs::read_dir(e.home().join("kms")).unwrap() {
        let p = f.unwrap().path();
        assert_eq!(mode(&p) & 0o077, 0, "{} is readable by others", p.display());
    }
}

#[test]
fn stdin_and_stdout() {
    let e = Env::new();
    let plain = data();
    let sealed = e.run_with_stdin(&["seal", "-", "--key", "piped"], &plain);
    assert!(sealed.status.success(), "{}", stderr(&sealed));
    let opened = e.run_with_stdin(&["open", "-"], &sealed.stdout);
    assert!(opened.status.success(), "{}", stderr(&opened));
    assert_eq!(opened.stdout, plain);
    // File to stdout and stdin to file.
    std::fs::write(e.path("p.osl"), &sealed.stdout).unwrap();
    assert_eq!(e.ok(&["open", "p.osl", "-o", "-"]).stdout, plain);
    let to_file = e.run_with_stdin(&["open", "-", "-o", "p.out"], &sealed.stdout);
    assert!(to_file.status.success(), "{}", stderr(&to_file));
    assert_eq!(e.read("p.out"), plain);
    // A tampered stream fails with exit 2.
    let mut bad = sealed.stdout.clone();
    let n = bad.len();
    bad[n - 5] ^= 1;
    let failed = e.run_with_stdin(&["open", "-", "-o", "bad.out"], &bad);
    assert_eq!(code(&failed), 2, "{}", stderr(&failed));
    assert!(!e.path("bad.out").exists());
}

#[test]
fn stdin_streamed_with_declared_size() {
    let e = Env::new();
    let plain = data();
    let size = plain.len().to_string();
    let sealed = e.run_with_stdin(
        &["seal", "-", "--size", &size, "--key", "s", "-o", "s.osl"],
        &plain,
    );
    assert!(sealed.status.success(), "{}", stderr(&sealed));
    assert_eq!(
        e.ok(&["open", "s.osl", "--key", "s", "-o", "-"]).stdout,
        plain
    );
    // Empty input with --size 0.
    let empty = e.run_with_stdin(
        &["seal", "-", "--size", "0", "--key", "z", "-o", "z.osl"],
        b"",
    );
    assert!(empty.status.success(), "{}", stderr(&empty));
    assert!(
        e.ok(&["open", "z.osl", "--key", "z", "-o", "-"])
            .stdout
            .is_empty()
    );
    // Shorter or longer than declared: exit 4, the message says which, and
    // no output file.
    let short = e.run_with_stdin(
        &[
            "seal",
            "-",
            "--size",
            &size,
            "--key",
            "s",
            "-o",
            "short.osl",
        ],
        &plain[..plain.len() - 1],
    );
    assert_eq!(code(&short), 4, "{}", stderr(&short));
    assert!(stderr(&short).contains("ended after"), "{}", stderr(&short));
    assert!(!e.path("short.osl").exists());
    let mut long = plain.clone();
    long.push(0);
    let long = e.run_with_stdin(
        &["seal", "-", "--size", &size, "--key", "s", "-o", "long.osl"],
        &long,
    );
    assert_eq!(code(&long), 4, "{}", stderr(&long));
    assert!(stderr(&long).contains("more than"), "{}", stderr(&long));
    assert!(!e.path("long.osl").exists());
    // --size is for stdin only.
    e.write("f.bin", &plain);
    let usage = e.run(&["seal", "f.bin", "--size", &size]);
    assert_eq!(code(&usage), 1, "{}", stderr(&usage));
    assert!(!e.path("f.bin.osl").exists());
}

#[test]
fn ranges() {
    let e = Env::new();
    let plain = data();
    e.write("a.bin", &plain);
    e.ok(&["seal", "a.bin"]);
    let range = |r: &str| e.ok(&["open", "a.bin.osl", "--range", r, "-o", "-"]).stdout;
    assert_eq!(range("0-9"), &plain[..10]);
    assert_eq!(range("16380-16400"), &plain[16380..16401]);
    assert_eq!(range("-100"), &plain[plain.len() - 100..]);
    assert_eq!(range("99990-"), &plain[99_990..]);
    assert_eq!(range("bytes=5-5"), &plain[5..6]);
    e.ok(&["open", "a.bin.osl", "--range", "-7", "-o", "tail.out"]);
    assert_eq!(e.read("tail.out"), &plain[plain.len() - 7..]);
    for bad in ["200000-", "9-3", "x", "-"] {
        let out = e.run(&["open", "a.bin.osl", "--range", bad, "-o", "r.out"]);
        assert_eq!(code(&out), 1, "range {bad}: {}", stderr(&out));
        assert!(!e.path("r.out").exists());
    }
}

#[test]
fn inspect_shows_no_secret() {
    let e = Env::new();
    e.write("a.bin", &data());
    let key = [0x42u8; 32];
    e.write("raw.key", &key);
    e.ok(&[
        "seal",
        "a.bin",
        "--sse",
        "c",
        "--customer-key-file",
        "raw.key",
    ]);
    let out = e.ok(&["inspect", "a.bin.osl", "--json"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["mode"], "SSE-C");
    assert_eq!(v["plaintext_len"], 100_000);
    assert_eq!(v["chunks"], 7);
    assert_eq!(v["key_name"], "a.bin");
    assert_eq!(v["salt"].as_str().unwrap().len(), 48);
    assert_eq!(v["commitment"].as_str().unwrap().len(), 64);
    assert!(!text.to_lowercase().contains(&"42".repeat(32)));
    assert!(!text.contains("QkJCQkJC"));

    e.ok(&[
        "seal",
        "a.bin",
        "--sse",
        "kms",
        "--context",
        "team=ops",
        "-o",
        "k.osl",
    ]);
    let table = String::from_utf8(e.ok(&["inspect", "k.osl"]).stdout).unwrap();
    assert!(table.contains("SSE-KMS") && table.contains("team") && table.contains("arn:aws:kms"));
    let not_sealed = e.write("plain.txt", b"hello");
    let out = e.run(&["inspect", not_sealed.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn wrong_customer_key_exits_2_and_writes_nothing() {
    let e = Env::new();
    e.write("a.bin", &data());
    e.write("one.key", &[1; 32]);
    e.write("two.key", &[2; 32]);
    e.ok(&[
        "seal",
        "a.bin",
        "--sse",
        "c",
        "--customer-key-file",
        "one.key",
        "-o",
        "s.osl",
    ]);
    let out = e.run(&["open", "s.osl", "--customer-key-file", "two.key"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("s.osl"));
    assert!(!e.path("s").exists());
    let out = e.run(&[
        "open",
        "s.osl",
        "-o",
        "x.out",
        "--customer-key-file",
        "two.key",
    ]);
    assert_eq!(code(&out), 2);
    assert!(!e.path("x.out").exists());
    let out = e.run(&["open", "s.osl", "-o", "x.out"]);
    assert_eq!(code(&out), 1, "no key given: {}", stderr(&out));
    e.write("short.key", b"too short");
    let out = e.run(&[
        "open",
        "s.osl",
        "-o",
        "x.out",
        "--customer-key-file",
        "short.key",
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
}

#[test]
fn tampered_file_exits_2_and_writes_nothing() {
    let e = Env::new();
    e.write("a.bin", &data());
    e.ok(&["seal", "a.bin"]);
    let sealed = e.read("a.bin.osl");
    for at in [10, sealed.len() / 2, sealed.len() - 1] {
        let mut bad = sealed.clone();
        bad[at] ^= 0x80;
        e.write("bad.osl", &bad);
        let out = e.run(&["open", "bad.osl", "-o", "bad.out"]);
        assert_eq!(code(&out), 2, "flip at {at}: {}", stderr(&out));
        assert!(stderr(&out).contains("bad.osl"));
        assert!(
            !e.path("bad.out").exists(),
            "partial output after flip at {at}"
        );
    }
    e.write("cut.osl", &sealed[..sealed.len() - 20]);
    let out = e.run(&["open", "cut.osl", "-o", "cut.out"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(!e.path("cut.out").exists());
    let leftovers: Vec<_> = std::fs::read_dir(e.dir.path())
        .unwrap()
        .filter_map(|f| f.ok())
        .filter(|f| f.file_name().to_string_lossy().contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

#[test]
fn io_failures_exit_4() {
    let e = Env::new();
    let out = e.run(&["seal", "missing.bin"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("missing.bin"));
    let out = e.run(&["open", "missing.osl"]);
    assert_eq!(code(&out), 4);
    e.write("a.bin", &data());
    let out = e.run(&["seal", "a.bin", "-o", "no/such/dir/a.osl"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    e.ok(&["seal", "a.bin"]);
    let out = e.run(&["open", "a.bin.osl", "-o", "a.bin/inside"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
}

#[test]
fn existing_output_needs_force() {
    let e = Env::new();
    e.write("a.bin", &data());
    e.write("a.bin.osl", b"precious");
    let out = e.run(&["seal", "a.bin"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"));
    assert_eq!(e.read("a.bin.osl"), b"precious");
    e.ok(&["seal", "a.bin", "--force"]);
    let out = e.run(&["open", "a.bin.osl"]);
    assert_eq!(code(&out), 1, "a.bin exists");
    assert_eq!(e.read("a.bin"), data());
    e.write("a.bin", b"old");
    e.ok(&["open", "a.bin.osl", "--force"]);
    assert_eq!(e.read("a.bin"), data());
}

#[test]
fn usage_errors_exit_1() {
    let e = Env::new();
    assert_eq!(code(&e.run(&["seal"])), 1);
    assert_eq!(code(&e.run(&["frobnicate"])), 1);
    assert_eq!(code(&e.run(&["seal", "x", "--sse", "rot13"])), 1);
    e.write("a.bin", b"abc");
    assert_eq!(code(&e.run(&["seal", "a.bin", "--sse", "c"])), 1);
    assert_eq!(code(&e.run(&["seal", "a.bin", "--kms-key", "k"])), 1);
    assert_eq!(code(&e.run(&["seal", "a.bin", "--threads", "0"])), 1);
    let help = e.ok(&["seal", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples"));
}

#[test]
fn keyring_rotate_retire_and_rewrap() {
    let e = Env::new();
    let plain = data();
    e.write("a.bin", &plain);
    e.ok(&["seal", "a.bin", "-o", "old.osl"]);
    let v = e.ok(&["keys", "rotate"]);
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "2");
    e.ok(&["seal", "a.bin", "-o", "new.osl"]);
    e.ok(&["open", "old.osl", "-o", "old.out"]);
    assert_eq!(e.read("old.out"), plain);
    let list = e.ok(&["keys", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);
    let out = e.run(&["keys", "retire", "1", "--objects", "old.osl", "new.osl"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    e.ok(&["rewrap", "old.osl", "--to", "s3"]);
    e.ok(&["keys", "retire", "1", "--objects", "old.osl", "new.osl"]);
    e.ok(&["open", "old.osl", "-o", "old2.out"]);
    assert_eq!(e.read("old2.out"), plain);
    // One file that cannot be rewrapped does not stop the others.
    e.write("junk.osl", b"not sealed");
    let before = e.read("new.osl");
    let out = e.run(&["rewrap", "junk.osl", "new.osl", "--to", "kms"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("junk.osl"));
    assert_ne!(e.read("new.osl"), before, "the good file was rewrapped");
    e.ok(&["open", "new.osl", "-o", "new.out"]);
    assert_eq!(e.read("new.out"), plain);
    // Rewrap across modes, to SSE-C and back to SSE-KMS.
    e.write("c.key", &[9; 32]);
    e.ok(&[
        "rewrap",
        "old.osl",
        "--to",
        "c",
        "--new-customer-key-file",
        "c.key",
    ]);
    let out = e.run(&["open", "old.osl", "-o", "x.out"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let c = [
        "rewrap",
        "old.osl",
        "--customer-key-file",
        "c.key",
        "--to",
        "kms:alias/objseal",
    ];
    e.ok(&c);
    e.ok(&["open", "old.osl", "-o", "x.out"]);
    assert_eq!(e.read("x.out"), plain);
    // Forced retirement destroys the version: its objects no longer open.
    e.ok(&["seal", "a.bin", "-o", "doomed.osl"]);
    e.ok(&["keys", "rotate"]);
    e.ok(&["keys", "retire", "2", "--objects", "doomed.osl", "--force"]);
    let out = e.run(&["open", "doomed.osl", "-o", "doomed.out"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(!e.path("doomed.out").exists());
    let out = e.run(&["keys", "retire", "3"]);
    assert_eq!(code(&out), 3, "the active version: {}", stderr(&out));
}

#[test]
fn kms_commands() {
    let e = Env::new();
    let plain = data();
    e.write("a.bin", &plain);
    let arn = e.ok(&[
        "kms",
        "create-key",
        "--description",
        "backups",
        "--alias",
        "alias/backups",
    ]);
    assert!(String::from_utf8_lossy(&arn.stdout).starts_with("arn:aws:kms:"));
    let list = e.ok(&["kms", "list", "--json"]);
    let keys: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    e.ok(&[
        "seal",
        "a.bin",
        "--sse",
        "kms",
        "--kms-key",
        "alias/backups",
    ]);
    e.ok(&["kms", "disable", "alias/backups"]);
    let out = e.run(&["open", "a.bin.osl", "-o", "a.out"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("disabled"));
    assert!(!e.path("a.out").exists());
    let out = e.run(&[
        "seal",
        "a.bin",
        "--sse",
        "kms",
        "--kms-key",
        "alias/backups",
        "-o",
        "b.osl",
    ]);
    assert_eq!(code(&out), 3);
    assert!(!e.path("b.osl").exists());
    e.ok(&["kms", "enable", "alias/backups"]);
    e.ok(&["open", "a.bin.osl", "-o", "a.out"]);
    assert_eq!(e.read("a.out"), plain);
    e.ok(&["kms", "rotate", "alias/backups"]);
    e.ok(&["kms", "schedule-deletion", "alias/backups", "--days", "7"]);
    assert_eq!(code(&e.run(&["open", "a.bin.osl", "-o", "b.out"])), 3);
    e.ok(&["kms", "cancel-deletion", "alias/backups"]);
    e.ok(&["kms", "enable", "alias/backups"]);
    let out = e.run(&["open", "a.bin.osl", "-o", "b.out"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = e.run(&["kms", "enable", "alias/nope"]);
    assert_eq!(code(&out), 3);
    let audit = e.ok(&[
        "kms",
        "audit",
        "--key",
        "alias/backups",
        "--since",
        "1h",
        "--json",
    ]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&audit.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|r| r["operation"] == "DisableKey"));
    assert!(lines.iter().any(|r| r["outcome"] == "Failure"));
}

#[test]
fn kms_rotation_period_and_purge() {
    let e = Env::new();
    e.ok(&["kms", "create-key", "--alias", "alias/r"]);
    e.ok(&["kms", "set-rotation", "alias/r", "--days", "90"]);
    e.ok(&["kms", "set-rotation", "alias/r", "--off"]);
    for bad in [
        &["kms", "set-rotation", "alias/r", "--days", "0"][..],
        &["kms", "set-rotation", "alias/r", "--days", "3000"],
        &["kms", "set-rotation", "alias/r"],
        &["kms", "set-rotation", "alias/r", "--days", "9", "--off"],
    ] {
        let out = e.run(bad);
        assert_eq!(code(&out), 1, "{bad:?}: {}", stderr(&out));
    }
    let out = e.run(&["kms", "set-rotation", "alias/nope", "--days", "9"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    // A key scheduled for deletion is not due for 7 days: purge keeps it.
    e.ok(&["kms", "schedule-deletion", "alias/r", "--days", "7"]);
    let purge = e.ok(&["kms", "purge"]);
    assert!(
        purge.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&purge.stdout)
    );
    let list = e.ok(&["kms", "list", "--json"]);
    let keys: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let audit = e.ok(&["kms", "audit", "--json"]);
    let ops: Vec<String> = String::from_utf8_lossy(&audit.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["operation"].to_string())
        .collect();
    assert_eq!(
        ops.iter().filter(|o| o.contains("SetKeyRotation")).count(),
        3,
        "{ops:?}"
    );
    assert!(
        ops.iter().any(|o| o.contains("PurgeDueDeletions")),
        "{ops:?}"
    );
}

#[test]
fn bench_runs_small() {
    let e = Env::new();
    let out = e.ok(&["bench", "--size", "256KiB", "--threads", "1", "2", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["op"] == "seal" && r["backend"] == "portable")
    );
    assert!(rows.iter().any(|r| r["op"] == "open file→file"));
    assert!(rows.iter().all(|r| r["gb_per_s"].as_f64().unwrap() > 0.0));
}

impl Env {
    /// Runs with a deadline: a command that blocks (on a FIFO, say) fails
    /// the test instead of hanging it.
    fn run_within(&self, args: &[&str], secs: u64) -> Output {
        use std::time::{Duration, Instant};
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(secs);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("{args:?} still running after {secs} s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }

    /// Writes a private (0600) file.
    fn write_private(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.write(name, bytes);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        p
    }
}

/// Seals `data()` as `c.osl` under the SSE-C key `[0x42; 32]`.
fn sealed_under_customer_key(e: &Env) {
    e.write("a.bin", &data());
    e.write_private("raw.key", &[0x42; 32]);
    e.ok(&[
        "seal",
        "a.bin",
        "--sse",
        "c",
        "--customer-key-file",
        "raw.key",
        "-o",
        "c.osl",
    ]);
}

#[cfg(unix)]
#[test]
fn customer_key_file_must_be_a_small_regular_file() {
    let e = Env::new();
    sealed_under_customer_key(&e);
    let fifo = e.path("fifo.key");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("/dev/zero", e.path("zero.key")).unwrap();
    std::fs::create_dir(e.path("dir.key")).unwrap();
    e.write_private("k33.key", &[7; 33]);
    e.write_private("big.key", &[b'A'; 5000]);
    for (file, says) in [
        ("fifo.key", "is a FIFO"),
        ("/dev/zero", "is a device"),
        ("zero.key", "is a device"),
        ("dir.key", "is a directory"),
        ("k33.key", "holds 33 bytes"),
        ("big.key", "holds more than 4096 bytes"),
    ] {
        for args in [
            &["open", "c.osl", "-o", "x.out", "--customer-key-file", file][..],
            &[
                "seal",
                "a.bin",
                "--sse",
                "c",
                "-o",
                "x.osl",
                "--customer-key-file",
                file,
            ],
            &[
                "rewrap",
                "c.osl",
                "--to",
                "c",
                "--customer-key-file",
                "raw.key",
                "--new-customer-key-file",
                file,
            ],
        ] {
            let out = e.run_within(args, 20);
            let err = stderr(&out);
            assert_eq!(code(&out), 1, "{args:?}: {err}");
            assert!(err.contains(file) && err.contains(says), "{args:?}: {err}");
            assert!(!e.path("x.out").exists() && !e.path("x.osl").exists());
        }
    }
    // A bad key file's hint names no file of the user's to write to.
    let out = e.run(&[
        "open",
        "c.osl",
        "-o",
        "x.out",
        "--customer-key-file",
        "k33.key",
    ]);
    let err = stderr(&out);
    assert!(err.contains("> NEW.key"), "{err}");
    assert!(!err.contains("> k33.key"), "{err}");
    // A missing key file is an I/O error naming it.
    let out = e.run(&[
        "open",
        "c.osl",
        "-o",
        "x.out",
        "--customer-key-file",
        "nope.key",
    ]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("nope.key"));
    e.ok(&[
        "open",
        "c.osl",
        "-o",
        "x.out",
        "--customer-key-file",
        "raw.key",
    ]);
    assert_eq!(e.read("x.out"), data());
}

#[test]
fn customer_key_file_text_forms() {
    let e = Env::new();
    sealed_under_customer_key(&e);
    let b64 = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
    let hex = "42".repeat(32);
    let good: [(&str, String); 6] = [
        ("b64.key", b64.to_owned()),
        ("b64nl.key", format!("{b64}\n")),
        ("b64crlf.key", format!("{b64}\r\n")),
        ("hex.key", hex.clone()),
        ("hexnl.key", format!("{hex}\n")),
        ("HEX.key", format!("{}\n", hex.to_uppercase())),
    ];
    for (name, text) in &good {
        e.write_private(name, text.as_bytes());
        let out = e.ok(&["open", "c.osl", "-o", "-", "--customer-key-file", name]);
        assert_eq!(out.stdout, data(), "{name}");
    }
    let bad: [(&str, String); 6] = [
        ("lead.key", format!(" {b64}")),
        ("twonl.key", format!("{b64}\n\n")),
        (
            "b64of31.key",
            "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQg==".to_owned(),
        ),
        ("junk44.key", "!".repeat(44)),
        ("hex63.key", "4".repeat(63)),
        ("hexg.key", format!("{}g", "4".repeat(63))),
    ];
    for (name, text) in &bad {
        e.write_private(name, text.as_bytes());
        let out = e.run(&["open", "c.osl", "-o", "x.out", "--customer-key-file", name]);
        assert_eq!(code(&out), 1, "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains("not a customer key file"), "{name}");
        assert!(!e.path("x.out").exists());
    }
}

#[cfg(unix)]
#[test]
fn key_file_readable_by_others_warns_even_when_quiet() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::new();
    sealed_under_customer_key(&e);
    let quiet = e.ok(&[
        "open",
        "c.osl",
        "-o",
        "-",
        "--customer-key-file",
        "raw.key",
        "-q",
    ]);
    assert!(stderr(&quiet).is_empty(), "{}", stderr(&quiet));
    for mode in [0o640, 0o604, 0o644] {
        std::fs::set_permissions(e.path("raw.key"), std::fs::Permissions::from_mode(mode)).unwrap();
        for quiet in [false, true] {
            let args = ["open", "c.osl", "-o", "-", "--customer-key-file", "raw.key"];
            let out = if quiet {
                e.ok(&[&args[..], &["--quiet"]].concat())
            } else {
                e.ok(&args)
            };
            assert_eq!(out.stdout, data());
            let err = stderr(&out);
            assert!(
                err.contains("warning") && err.contains("raw.key") && err.contains("chmod 600"),
                "mode {mode:o}: {err}"
            );
        }
    }
}

/// The envelope's length and where its details start, by the format.
fn envelope_layout(sealed: &[u8]) -> (usize, usize) {
    let (env, used) = objseal::Envelope::parse_prefix(sealed).unwrap();
    // ... details (u32 length, then the bytes) || part count (u16).
    (used, used - 2 - env.wrapped_key.details.len())
}

#[test]
fn every_damaged_region_exits_2() {
    let e = Env::new();
    let plain = data();
    e.write("a.bin", &plain);
    e.write_private("c.key", &[9; 32]);
    e.ok(&["seal", "a.bin", "-o", "s3.osl"]);
    e.ok(&[
        "seal",
        "a.bin",
        "--sse",
        "kms",
        "--context",
        "a=b",
        "-o",
        "kms.osl",
    ]);
    let c = ["--customer-key-file", "c.key"];
    e.ok(&[&["seal", "a.bin", "--sse", "c", "-o", "c.osl"][..], &c].concat());
    for (file, extra) in [("s3.osl", &[][..]), ("kms.osl", &[][..]), ("c.osl", &c[..])] {
        let sealed = e.read(file);
        let (used, details) = envelope_layout(&sealed);
        let mut named = vec![
            ("magic", 0, 0x01),
            ("mode byte to 0", 6, 0x7f & sealed[6]),
            ("mode byte +1", 6, sealed[6] ^ (sealed[6] % 3 + 1)),
            ("mode byte high bit", 6, 0x80),
            ("wrapped data key", details - 4 - 10, 0x10),
            ("body header", used + 3, 0x01),
            ("body chunk", used + 56 + 20_000, 0x04),
            ("final chunk tag", sealed.len() - 1, 0x80),
        ];
        if details < used - 2 {
            named.push(("details version byte", details, 0x02));
        }
        // Every other byte of the envelope, one bit flipped.
        let all: Vec<(&str, usize, u8)> = (0..used).map(|at| ("envelope", at, 0x01)).collect();
        for (region, at, mask) in named.into_iter().chain(all) {
            let mut bad = sealed.clone();
            bad[at] ^= mask;
            e.write("bad.osl", &bad);
            let out = e.run(&[&["open", "bad.osl", "-o", "bad.out"][..], extra].concat());
            assert_eq!(
                code(&out),
                2,
                "{file}: {region} at {at} ^ {mask:#x}: {}",
                stderr(&out)
            );
            assert!(stderr(&out).contains("bad.osl"), "{}", stderr(&out));
            assert!(!e.path("bad.out").exists(), "{file}: output after {region}");
        }
        // Ranges and rewrap refuse the same damage.
        let mut bad = sealed.clone();
        bad[6] ^= 0x80;
        e.write("bad.osl", &bad);
        let out = e.run(&[&["open", "bad.osl", "--range", "0-9", "-o", "-"][..], extra].concat());
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        if details < used - 2 {
            let mut bad = sealed.clone();
            bad[details] ^= 0x02;
            e.write("bad.osl", &bad);
            let out = e.run(&[&["rewrap", "bad.osl", "--to", "s3"][..], extra].concat());
            assert_eq!(code(&out), 2, "{}", stderr(&out));
            assert!(!stderr(&out).contains("upgrade"), "{}", stderr(&out));
            assert_eq!(e.read("bad.osl"), bad, "a failed rewrap leaves the file");
        }
    }
}

#[test]
fn usage_errors_exit_1_whatever_layer_finds_them() {
    let e = Env::new();
    e.write("a.bin", b"abc");
    for days in ["3", "6", "31"] {
        let out = e.run(&["kms", "schedule-deletion", "alias/objseal", "--days", days]);
        assert_eq!(code(&out), 1, "--days {days}: {}", stderr(&out));
        assert!(stderr(&out).contains("7..=30"), "{}", stderr(&out));
    }
    let out = e.run(&["seal", "a.bin", "--sse", "kms", "--kms-key", "not a key!"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(!e.path("a.bin.osl").exists());
    // A key-management state stays 3.
    let out = e.run(&["seal", "a.bin", "--sse", "kms", "--kms-key", "alias/none"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
}

#[cfg(target_os = "linux")]
#[test]
fn output_errors_name_the_output() {
    let e = Env::new();
    let plain = data();
    e.write("input.bin", &plain);
    e.ok(&["seal", "input.bin", "-o", "sealed.osl"]);
    for args in [
        &["open", "sealed.osl", "-o", "-"][..],
        &["open", "sealed.osl", "--range", "0-99", "-o", "-"],
        &["seal", "input.bin", "-o", "-"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = e
            .command(args)
            .stdin(Stdio::null())
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(code(&out), 4, "{args:?}: {err}");
        assert!(err.contains("stdout"), "{args:?}: {err}");
        assert!(
            !err.contains("sealed.osl") && !err.contains("input.bin"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn declared_size_mismatch_tells_what_became_of_the_output() {
    let e = Env::new();
    let plain = data();
    let size = plain.len().to_string();
    let short = &plain[..plain.len() - 1];
    let to_stdout = e.run_with_stdin(&["seal", "-", "--size", &size, "--key", "s"], short);
    assert_eq!(code(&to_stdout), 4, "{}", stderr(&to_stdout));
    let err = stderr(&to_stdout);
    assert!(!to_stdout.stdout.is_empty(), "the envelope went out first");
    assert!(
        err.contains("incomplete") && err.contains("discard"),
        "{err}"
    );
    assert!(!err.contains("nothing was written"), "{err}");
    let to_file = e.run_with_stdin(
        &["seal", "-", "--size", &size, "--key", "s", "-o", "s.osl"],
        short,
    );
    assert_eq!(code(&to_file), 4, "{}", stderr(&to_file));
    assert!(stderr(&to_file).contains("nothing was written"));
    assert!(!e.path("s.osl").exists());
}

/// A completed SSE-C multipart object of parts 1, 3 and 7 (part numbers
/// may have gaps) with `sizes`, bound to `local`/`mp.bin`, stored as the
/// library's `sse` API describes: the envelope, then the part bodies in
/// order. Returns it and its plaintext.
fn multipart_object(key: &[u8; 32], sizes: [usize; 3]) -> (Vec<u8>, Vec<u8>) {
    use objseal::sse::{CompletedPart, MultipartUpload};
    let engine = objseal::Engine::builder().build();
    let ck = objseal::CustomerKey::try_from_slice(key).unwrap();
    let with = objseal::OpenWith::Customer(&ck);
    let object = objseal::ObjectBinding::new("local", "mp.bin").unwrap();
    let upload = MultipartUpload::create(&engine, &objseal::SealMode::C(&ck), &object).unwrap();
    let mut plain = Vec::new();
    let mut parts = Vec::new();
    for (number, size) in [1u32, 3, 7].into_iter().zip(sizes) {
        let bytes: Vec<u8> = (0..size)
            .map(|i| (i * 13 + number as usize) as u8)
            .collect();
        parts.push(upload.upload_part(&engine, with, number, &bytes).unwrap());
        plain.extend_from_slice(&bytes);
    }
    let asked: Vec<CompletedPart> = parts
        .iter()
        .map(|p| CompletedPart {
            number: p.record.number,
            etag: p.record.etag.clone(),
        })
        .collect();
    let records: Vec<_> = parts.iter().map(|p| p.record.clone()).collect();
    let done = upload.complete(&engine, with, &asked, &records).unwrap();
    let mut stored = done.envelope.encode().unwrap();
    for p in &parts {
        stored.extend_from_slice(&p.body);
    }
    (stored, plain)
}

#[test]
fn multipart_objects_open_inspect_and_rewrap() {
    let e = Env::new();
    let key = [0x5a; 32];
    e.write_private("k.key", &key);
    let (stored, plain) = multipart_object(&key, [20_000, 16_384, 5_000]);
    e.write("mp.osl", &stored);
    fn with_key<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [args, &["--customer-key-file", "k.key"][..]].concat()
    }

    e.ok(&with_key(&["open", "mp.osl", "-o", "mp.out"]));
    assert_eq!(e.read("mp.out"), plain);
    assert_eq!(
        e.ok(&with_key(&["open", "mp.osl", "-o", "-"])).stdout,
        plain
    );
    let piped = e.run_with_stdin(&with_key(&["open", "-", "-o", "-"]), &stored);
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert_eq!(piped.stdout, plain);

    // Ranges within a part, across one and across every part boundary.
    let n = plain.len();
    let ranges: [(&str, std::ops::Range<usize>); 7] = [
        ("0-9", 0..10),
        ("19990-20009", 19_990..20_010),
        ("36380-36390", 36_380..36_391),
        ("19999-36384", 19_999..36_385),
        ("-5005", n - 5_005..n),
        ("100-", 100..n),
        ("0-999999", 0..n),
    ];
    for (r, want) in ranges {
        let args = with_key(&["open", "mp.osl", "--range", r, "-o", "-"]);
        assert_eq!(e.ok(&args).stdout, &plain[want.clone()], "range {r}");
        let piped = e.run_with_stdin(&with_key(&["open", "-", "--range", r, "-o", "-"]), &stored);
        assert_eq!(
            piped.stdout,
            &plain[want],
            "stdin range {r}: {}",
            stderr(&piped)
        );
    }
    let out = e.run(&with_key(&[
        "open", "mp.osl", "--range", "41384-", "-o", "-",
    ]));
    assert_eq!(code(&out), 1, "{}", stderr(&out));

    // inspect: the body is the three part bodies.
    let v: serde_json::Value =
        serde_json::from_slice(&e.ok(&["inspect", "mp.osl", "--json"]).stdout).unwrap();
    let sealed_len = |l: u64| 56 + l + 16 * (l / 16_384 + 1);
    let expected = sealed_len(20_000) + sealed_len(16_384) + sealed_len(5_000);
    assert_eq!(v["expected_body_len"], expected, "{v}");
    assert_eq!(v["body_len"], v["expected_body_len"], "{v}");
    assert_eq!(v["plaintext_len"], n as u64);
    assert_eq!(v["parts"], 3);
    assert_eq!(v["chunks"], 2 + 2 + 1);
    assert_eq!(v["part_list"][1]["number"], 3);
    assert_eq!(v["part_list"][2]["plaintext_len"], 5_000);

    // rewrap onto the store's keys and back; the body is untouched.
    let body = stored[stored.len() - expected as usize..].to_vec();
    e.ok(&with_key(&["rewrap", "mp.osl", "--to", "s3"]));
    e.ok(&["open", "mp.osl", "-o", "s3.out"]);
    assert_eq!(e.read("s3.out"), plain);
    e.ok(&["rewrap", "mp.osl", "--to", "kms"]);
    assert_eq!(
        e.ok(&["open", "mp.osl", "--range", "19999-20000", "-o", "-"])
            .stdout,
        &plain[19_999..20_001]
    );
    let now = e.read("mp.osl");
    assert_eq!(&now[now.len() - body.len()..], &body[..]);

    // A damaged part is refused before any output: a changed part header
    // (salt or commitment, which the part-list MAC covers) whatever is read,
    // a changed chunk when it is read.
    let bodies = now.len() - body.len();
    let part2 = bodies + sealed_len(20_000) as usize;
    for (at, args) in [
        (part2 + 5, &["open", "bad.osl", "-o", "bad.out"][..]),
        (
            part2 + 5,
            &["open", "bad.osl", "--range", "0-9", "-o", "bad.out"],
        ),
        (part2 + 5, &["open", "-", "--range", "0-9", "-o", "bad.out"]),
        (part2 + 60, &["open", "bad.osl", "-o", "bad.out"]),
        (
            part2 + 60,
            &["open", "bad.osl", "--range", "20000-20001", "-o", "-"],
        ),
    ] {
        let mut bad = now.clone();
        bad[at] ^= 1;
        e.write("bad.osl", &bad);
        let out = if args[1] == "-" {
            e.run_with_stdin(args, &bad)
        } else {
            e.run(args)
        };
        assert_eq!(code(&out), 2, "{args:?} ^{at}: {}", stderr(&out));
        assert!(out.stdout.is_empty() && !e.path("bad.out").exists());
    }
    let mut cut = now.clone();
    cut.truncate(now.len() - 1);
    e.write("cut.osl", &cut);
    let out = e.run(&["open", "cut.osl", "-o", "cut.out"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("multipart object of"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ranges_of_an_empty_object_follow_s3() {
    let e = Env::new();
    e.write("empty", b"");
    e.ok(&["seal", "empty"]);
    let sealed = e.read("empty.osl");
    // S3: 416 InvalidRange for bytes=0- and bytes=0-0 on an empty object,
    // 200 with the empty object for bytes=-N; the same from a file and from
    // stdin.
    for (range, ok) in [
        ("0-", false),
        ("bytes=0-", false),
        ("0-0", false),
        ("0-10", false),
        ("5-", false),
        ("-0", false),
        ("-1", true),
        ("bytes=-100", true),
    ] {
        let from_file = e.run(&["open", "empty.osl", "--range", range, "-o", "-"]);
        let from_stdin = e.run_with_stdin(&["open", "-", "--range", range, "-o", "-"], &sealed);
        for out in [from_file, from_stdin] {
            assert!(out.stdout.is_empty());
            if ok {
                assert!(out.status.success(), "{range}: {}", stderr(&out));
            } else {
                assert_eq!(code(&out), 1, "{range}: {}", stderr(&out));
                assert!(stderr(&out).contains("not satisfiable"), "{}", stderr(&out));
            }
        }
    }
    e.ok(&["open", "empty.osl", "-o", "whole"]);
    assert!(e.read("whole").is_empty());
}
