//! `objseal serve` driven by real S3 clients: boto3 and the AWS CLI, run
//! from the Python in `$OBJSEAL_S3_PYTHON` (a virtual environment with
//! `boto3` and `awscli`, as `.ci/run` makes). Each test starts its own
//! server on 127.0.0.1 with a fresh home and runs one script of
//! `tests/s3/`, which asserts what the client sees and exits non-zero on
//! the first difference. Without the clients the tests are skipped (with a
//! note), unless `OBJSEAL_REQUIRE_S3_CLIENTS=1`, which makes that a failure.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT_ACCESS: &str = "OSKTESTROOTACCESSKEY";
const ROOT_SECRET: &str = "test-root-secret-key-0123456789abcdefghij";

/// The Python with boto3 and the AWS CLI, or `None` (test skipped).
fn python() -> Option<PathBuf> {
    let required = std::env::var("OBJSEAL_REQUIRE_S3_CLIENTS").is_ok_and(|v| v == "1");
    let found = std::env::var_os("OBJSEAL_S3_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .filter(|p| {
            Command::new(p)
                .args(["-c", "import boto3, awscli"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    if found.is_none() {
        assert!(
            !required,
            "OBJSEAL_REQUIRE_S3_CLIENTS=1 but OBJSEAL_S3_PYTHON does not name a Python with boto3 and awscli"
        );
        eprintln!(
            "skipping: set OBJSEAL_S3_PYTHON to a Python with boto3 and awscli (see .ci/run)"
        );
    }
    found
}

fn objseal() -> &'static str {
    env!("CARGO_BIN_EXE_objseal")
}

/// A running `objseal serve`, killed on drop.
struct Server {
    child: Child,
    endpoint: String,
    fingerprint: String,
    home: PathBuf,
    data: PathBuf,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(flags: &[&str]) -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), flags)
    }

    /// A server on the home and data directory in `dir` (kept by the server).
    fn start_in(dir: tempfile::TempDir, flags: &[&str]) -> Server {
        let home = dir.path().join("home");
        let data = dir.path().join("data");
        let mut child = Command::new(objseal())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .args(flags)
            .env("OBJSEAL_HOME", &home)
            .env("OBJSEAL_ROOT_ACCESS_KEY", ROOT_ACCESS)
            .env("OBJSEAL_ROOT_SECRET_KEY", ROOT_SECRET)
            .env_remove("OBJSEAL_BACKEND")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(fp) = line.strip_prefix("tls certificate sha256 fingerprint: ") {
                    let _ = tx.send(format!("fp {fp}"));
                }
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let mut fingerprint = String::new();
        let endpoint = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => match line.strip_prefix("fp ") {
                    Some(fp) => fingerprint = fp.to_owned(),
                    None => break line,
                },
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("server did not start: {}", log.lock().unwrap());
                }
            }
        };
        Server {
            child,
            endpoint,
            fingerprint,
            home,
            data,
            log,
            _dir: dir,
        }
    }

    /// Runs `tests/s3/SCRIPT` with the server's details in its environment.
    fn run_script(&self, python: &Path, script: &str, extra: &[(&str, &str)]) {
        self.run_script_args(python, script, &[], extra);
    }

    /// The command running `tests/s3/SCRIPT ARGS...` against this server.
    fn script_command(&self, python: &Path, script: &str, args: &[&str]) -> Command {
        let script_path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("s3")
            .join(script);
        let bin_dir = python.parent().unwrap();
        let mut cmd = Command::new(python);
        cmd.arg(&script_path)
            .args(args)
            .env("S3_ENDPOINT", &self.endpoint)
            .env("S3_ACCESS_KEY", ROOT_ACCESS)
            .env("S3_SECRET_KEY", ROOT_SECRET)
            .env("OBJSEAL_BIN", objseal())
            .env("OBJSEAL_HOME", &self.home)
            .env("S3_DATA_DIR", &self.data)
            .env("S3_TLS_FINGERPRINT", &self.fingerprint)
            .env("AWS_CLI", bin_dir.join("aws"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .env_remove("OBJSEAL_BACKEND");
        cmd
    }

    fn run_script_args(&self, python: &Path, script: &str, args: &[&str], extra: &[(&str, &str)]) {
        let mut cmd = self.script_command(python, script, args);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let start = Instant::now();
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "{script}: {stdout}{stderr}({:.1}s)",
            start.elapsed().as_secs_f64()
        );
        assert!(
            out.status.success(),
            "{script} failed:\n{stdout}\n{stderr}\nserver log (tail):\n{}",
            tail(&self.log.lock().unwrap(), 4000)
        );
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn objects_and_sse_modes_with_boto3() {
    let Some(py) = python() else { return };
    let server = Server::start(&["--allow-sse-c-over-http", "--allow-sse-c-by-default"]);
    server.run_script(&py, "objects.py", &[]);
}

#[test]
fn sse_c_refusals_and_disabled_kms_key() {
    let Some(py) = python() else { return };
    let server = Server::start(&["--allow-sse-c-over-http", "--allow-sse-c-by-default"]);
    server.run_script(&py, "refusals.py", &[]);
}

#[test]
fn sse_c_blocked_for_new_buckets_by_default() {
    let Some(py) = python() else { return };
    let server = Server::start(&["--allow-sse-c-over-http"]);
    server.run_script(&py, "sse_c_blocked.py", &[]);
}

#[test]
fn sse_c_refused_over_plain_http() {
    let Some(py) = python() else { return };
    let server = Server::start(&["--allow-sse-c-by-default"]);
    server.run_script(&py, "sse_c_http.py", &[]);
}

#[test]
fn aws_cli_put_get_with_every_mode() {
    let Some(py) = python() else { return };
    let server = Server::start(&["--allow-sse-c-over-http", "--allow-sse-c-by-default"]);
    server.run_script(&py, "aws_cli.py", &[]);
}

#[test]
fn data_directory_holds_no_plaintext() {
    let Some(py) = python() else { return };
    let server = Server::start(&["--allow-sse-c-over-http", "--allow-sse-c-by-default"]);
    server.run_script(&py, "no_plaintext.py", &[]);
}

#[test]
fn unsigned_and_badly_signed_requests_are_refused() {
    let Some(py) = python() else { return };
    let server = Server::start(&[]);
    server.run_script(&py, "auth.py", &[]);
}

#[test]
fn copy_and_multipart_across_modes() {
    let Some(py) = python() else { return };
    let server = Server::start(&["--allow-sse-c-over-http", "--allow-sse-c-by-default"]);
    server.run_script(&py, "copy_multipart.py", &[]);
}

#[test]
fn users_are_kept_apart() {
    let Some(py) = python() else { return };
    let server = Server::start(&[]);
    server.run_script(&py, "users.py", &[]);
}

#[test]
fn tls_with_a_self_signed_certificate() {
    let Some(py) = python() else { return };
    let server = Server::start(&["--tls-self-signed", "--allow-sse-c-by-default"]);
    server.run_script(&py, "tls.py", &[]);
}

#[test]
fn request_log_and_graceful_shutdown() {
    let Some(py) = python() else { return };
    let mut server = Server::start(&[]);
    server.run_script(&py, "auth.py", &[]);
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "server still running 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
    // The stderr reader thread may still be draining.
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log.lock().unwrap().clone();
    for want in [
        "PUT /authbucket 200",
        "PUT /authbucket/k 200",
        "GET /authbucket/k 200",
        "GET /authbucket/k 403",
    ] {
        assert!(log.contains(want), "no {want:?} in the request log:\n{log}");
    }
    assert!(!log.contains(ROOT_SECRET), "the log shows the secret key");
    assert!(
        !log.contains("X-Amz-Signature"),
        "the log shows a signature"
    );
}

#[test]
fn tls_with_certificate_files() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipping: openssl cannot make a test certificate here");
        return;
    }
    let server = Server::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--allow-sse-c-by-default",
    ]);
    server.run_script(&py, "tls.py", &[("S3_CA_BUNDLE", cert.to_str().unwrap())]);
}

#[test]
fn killed_server_keeps_the_old_object() {
    let Some(py) = python() else { return };
    let mut server = Server::start(&[]);
    server.run_script_args(&py, "crash.py", &["before"], &[]);
    let mut slow = server
        .script_command(&py, "crash.py", &["slow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Let the overwrite get well under way (it takes 30 s), then kill the
    // server outright.
    std::thread::sleep(Duration::from_millis(1500));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let _ = slow.kill();
    let _ = slow.wait();
    let dir = std::mem::replace(&mut server._dir, tempfile::tempdir().unwrap());
    drop(server);
    let server = Server::start_in(dir, &[]);
    server.run_script_args(&py, "crash.py", &["after"], &[]);
}

#[test]
fn size_key_and_metadata_limits() {
    let Some(py) = python() else { return };
    let server = Server::start(&["--max-object-size", "1MiB"]);
    server.run_script(&py, "limits.py", &[]);
}
