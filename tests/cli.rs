//! The `objseal` binary, run for real: every command and mode, stdin/stdout,
//! ranges, and each failure's exit code, message and (absent) output.

#![cfg(feature = "cli")]

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
