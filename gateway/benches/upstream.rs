//! `cargo bench -p objseal-gateway --bench upstream`: `objseal serve
//! --upstream` over loopback, in front of SeaweedFS (`weed mini`, S3 with
//! SigV4 checked), against the same client talking to SeaweedFS directly.
//!
//! Prints one table:
//! - PUT and GET of one large object (1 GiB) through the gateway (SSE-S3)
//!   and straight to the upstream, interleaved for several rounds (order
//!   alternating): medians, ranges and the ratio gateway/direct (goal
//!   ≥ 0.7), with the CPU seconds each process spent;
//! - PUTs of 4 KiB objects per second through a gateway run with
//!   `objseal --kms aws` against a KMS stub (in this process) that adds
//!   50 ms to every call: one bucket with default encryption aws:kms and
//!   Bucket Keys on, one with Bucket Keys off, and the KMS calls each
//!   phase made.
//!
//! Upstream, gateway and client share the machine's cores. The gateway is
//! the `objseal` binary (`OBJSEAL_BIN`, else `cargo build --release -p
//! objseal-cli` is run first and target/release/objseal used) started as a
//! child process, its request log kept in a file (its tail is printed when
//! something fails). The client is a minimal S3 client: HTTP/1.1 (hyper),
//! SigV4 signed headers with `UNSIGNED-PAYLOAD`, bodies generated and
//! discarded as they stream. Every child is killed on exit, on error and on
//! panic (and by a watchdog when the whole run overstays its time limit).
//!
//! Knobs (environment): `OBJSEAL_BENCH_SIZE` (bytes of the large object,
//! default 1 GiB), `OBJSEAL_BENCH_ROUNDS` (default 3),
//! `OBJSEAL_BENCH_SMALL_N` (4 KiB PUTs per bucket and round, default 300),
//! `OBJSEAL_BENCH_CONNS` (connections for them, default 4),
//! `OBJSEAL_BENCH_KMS_DELAY_MS` (default 50), `OBJSEAL_BENCH_DIR` (where the
//! upstream keeps its data; default /dev/shm when there is one),
//! `OBJSEAL_BENCH_TIMEOUT_S` (the whole run, default 3600),
//! `OBJSEAL_BENCH_KEEP` (set: keep the directory with the logs), `OBJSEAL_BIN`,
//! `OBJSEAL_WEED` (the `weed` binary; default: beside `$OBJSEAL_S3_PYTHON`,
//! else /tmp/uvenv/bin/weed, else `weed` on the PATH).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::error::Error;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use md5::Md5;
use sha2::{Digest, Sha256};

type BoxErr = Box<dyn Error + Send + Sync>;
type Res<T> = Result<T, BoxErr>;
type Body = BoxBody<Bytes, Infallible>;

/// The gateway's root key (what the client signs with).
const GW_ACCESS: &str = "OBJSEALBENCHUP00001";
const GW_SECRET: &str = "objseal-upstream-bench-secret-not-for-data";
/// The upstream's one identity (SigV4 checked by SeaweedFS).
const UP_ACCESS: &str = "OSBENCHUPSTREAMACCESS";
const UP_SECRET: &str = "upstream-bench-secret-0123456789abcdefghij";
const REGION: &str = "us-east-1";
const KMS_ACCOUNT_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/";
const KMS_KEY: &str = "alias/objseal-bench";
const SMALL: usize = 4096;
const PIECE: usize = 1 << 20;
/// How long a child gets to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(90);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------
// Child processes: killed on drop, and by the watchdog through this registry.

static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn kill_registered() {
    let pids = CHILDREN.lock().map(|v| v.clone()).unwrap_or_default();
    for pid in pids {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// A child process with its log file, killed on drop.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command, log: PathBuf, stdout: bool) -> Res<Proc> {
        let out = File::create(&log)?;
        cmd.stdin(Stdio::null()).stderr(out.try_clone()?);
        if stdout {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(out);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {name} ({:?}): {e}", cmd.get_program()))?;
        if let Ok(mut v) = CHILDREN.lock() {
            v.push(child.id());
        }
        Ok(Proc { name, child, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read(&self.log).unwrap_or_default();
        let from = log.len().saturating_sub(n);
        format!(
            "--- {} log ({}), last {} bytes ---\n{}",
            self.name,
            self.log.display(),
            log.len() - from,
            String::from_utf8_lossy(&log[from..])
        )
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "{} exited ({status})\n{}",
                self.name,
                self.log_tail(6000)
            )),
            _ => None,
        }
    }

    /// User + system CPU seconds so far.
    fn cpu_secs(&self) -> f64 {
        cpu_secs_of(&self.pid().to_string())
    }

    fn rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(mut v) = CHILDREN.lock() {
            v.retain(|p| *p != self.child.id());
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(4000));
        }
    }
}

/// User + system CPU seconds of process `pid` (or `self`) so far (assumes
/// 100 clock ticks a second, Linux's USER_HZ everywhere).
fn cpu_secs_of(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15: 11 and 12 after the name.
    (tick(11) + tick(12)) as f64 / 100.0
}

/// Whether something answers HTTP on `addr` (any status).
fn http_answers(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 8];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// `n` distinct free ports on 127.0.0.1, plus a pair `(p, p + 10000)` (the
/// admin server's HTTP and gRPC ports: its worker dials `p + 10000`). Held
/// until all are chosen; another process could still take one before
/// `weed` binds it, which [`Weed::start`] answers by trying again.
fn free_ports(n: usize) -> Res<(Vec<u16>, (u16, u16))> {
    let bind = |port: u16| TcpListener::bind(("127.0.0.1", port));
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..n {
        let l = bind(0)?;
        ports.push(l.local_addr()?.port());
        held.push(l);
    }
    for _ in 0..200 {
        let l = bind(0)?;
        let p = l.local_addr()?.port();
        if p > 55535 {
            continue;
        }
        if let Ok(g) = bind(p + 10000) {
            held.push(l);
            held.push(g);
            return Ok((ports, (p, p + 10000)));
        }
    }
    Err("no free port pair (p, p + 10000) on 127.0.0.1".into())
}

fn weed_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OBJSEAL_WEED") {
        return PathBuf::from(p);
    }
    if let Some(py) = std::env::var_os("OBJSEAL_S3_PYTHON") {
        let p = Path::new(&py).with_file_name("weed");
        if p.is_file() {
            return p;
        }
    }
    let venv = Path::new("/tmp/uvenv/bin/weed");
    if venv.is_file() {
        return venv.to_path_buf();
    }
    PathBuf::from("weed")
}

/// SeaweedFS in one process, S3 on 127.0.0.1 with one SigV4 identity.
struct Weed {
    proc: Proc,
    addr: SocketAddr,
    started_in: f64,
}

impl Weed {
    fn start(dir: &Path) -> Res<Weed> {
        let mut why = String::new();
        for attempt in 0..3 {
            match Self::try_start(&dir.join(format!("weed-{attempt}"))) {
                Ok(w) => return Ok(w),
                Err(e) => {
                    eprintln!("weed mini did not start, trying again: {e}");
                    why = e.to_string();
                }
            }
        }
        Err(format!("weed mini did not start three times:\n{why}").into())
    }

    fn try_start(dir: &Path) -> Res<Weed> {
        let t0 = Instant::now();
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        let config = dir.join("s3.json");
        let identities = serde_json::json!({"identities": [{
            "name": "objseal-bench",
            "credentials": [{"accessKey": UP_ACCESS, "secretKey": UP_SECRET}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        std::fs::write(&config, identities.to_string())?;
        let (p, (admin, admin_grpc)) = free_ports(8)?;
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut cmd = Command::new(weed_bin());
        cmd.arg("mini")
            .arg(format!("-dir={}", path(&data)))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-admin.port={admin}"))
            .arg(format!("-admin.port.grpc={admin_grpc}"))
            .args(["-admin.ui=false", "-webdav=false"])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .args(["-master.telemetry=false", "-master.volumeSizeLimitMB=256"])
            .arg(format!("-s3.config={}", path(&config)))
            .arg(format!(
                "-filer.localSocket={}",
                path(&dir.join("filer.sock"))
            ))
            .arg(format!("-s3.localSocket={}", path(&dir.join("s3.sock"))))
            .current_dir(dir)
            .env("TMPDIR", dir)
            .env_remove("S3_BUCKET")
            .env_remove("S3_TABLE_BUCKET")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        let mut proc = Proc::spawn("weed", cmd, dir.join("weed.log"), false)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], p[6]));
        loop {
            if let Some(why) = proc.exited() {
                return Err(why.into());
            }
            if http_answers(addr) {
                break;
            }
            if t0.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "weed did not answer on {addr} within {START_TIMEOUT:?}\n{}",
                    proc.log_tail(6000)
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Weed {
            proc,
            addr,
            started_in: t0.elapsed().as_secs_f64(),
        })
    }
}

/// The `objseal` binary: `OBJSEAL_BIN`, else built (release) and taken
/// from the workspace's target directory.
fn objseal_bin() -> Res<PathBuf> {
    if let Some(p) = std::env::var_os("OBJSEAL_BIN") {
        // Relative to where cargo was run (the workspace, usually), else
        // to here (cargo runs benches in the package's directory).
        let p = PathBuf::from(p);
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let found = [workspace.join(&p), p.clone()]
            .into_iter()
            .find(|c| c.is_file())
            .ok_or_else(|| format!("OBJSEAL_BIN: no file {}", p.display()))?;
        return Ok(found.canonicalize()?);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().ok_or("no workspace directory")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the objseal binary: cargo build --release -p objseal-cli --bin objseal");
    let mut child = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "objseal-cli",
            "--bin",
            "objseal",
        ])
        .current_dir(workspace)
        .stdin(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(1800);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("building objseal took over 30 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.success() {
        return Err(format!("cargo build -p objseal-cli failed ({status})").into());
    }
    let bin = target.join("release").join("objseal");
    if !bin.is_file() {
        return Err(format!("no {} after the build", bin.display()).into());
    }
    Ok(bin)
}

/// `objseal [--kms aws] serve --upstream` as a child process.
struct Gateway {
    proc: Proc,
    addr: SocketAddr,
}

impl Gateway {
    fn start(
        bin: &Path,
        dir: &Path,
        upstream: SocketAddr,
        kms: Option<SocketAddr>,
    ) -> Res<Gateway> {
        let home = dir.join("home");
        std::fs::create_dir_all(&home)?;
        let mut cmd = Command::new(bin);
        cmd.arg("--home").arg(&home);
        if kms.is_some() {
            cmd.args(["--kms", "aws"]);
        }
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--upstream"])
            .arg(format!("http://{upstream}"))
            .env("OBJSEAL_ROOT_ACCESS_KEY", GW_ACCESS)
            .env("OBJSEAL_ROOT_SECRET_KEY", GW_SECRET)
            .env("AWS_ACCESS_KEY_ID", UP_ACCESS)
            .env("AWS_SECRET_ACCESS_KEY", UP_SECRET)
            .env("AWS_REGION", REGION)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_S3")
            .env_remove("AWS_ENDPOINT_URL_KMS")
            .env_remove("OBJSEAL_HOME")
            .current_dir(dir);
        if let Some(k) = kms {
            cmd.env("AWS_ENDPOINT_URL_KMS", format!("http://{k}"));
        }
        let log = dir.join("gateway.log");
        let mut proc = Proc::spawn("objseal serve", cmd, log.clone(), true)?;
        let stdout = proc.child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Drains stdout for the child's life: the address line first.
            let mut told = false;
            let mut log = std::fs::OpenOptions::new().append(true).open(&log).ok();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(l) = log.as_mut() {
                    let _ = writeln!(l, "[stdout] {line}");
                }
                if !told && let Some(a) = line.trim().strip_prefix("listening on http://") {
                    told = true;
                    let _ = tx.send(a.to_owned());
                }
            }
        });
        let t0 = Instant::now();
        let addr = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(a) => break a.parse()?,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(100));
                    return Err(proc
                        .exited()
                        .unwrap_or_else(|| "the gateway closed its stdout".to_owned())
                        .into());
                }
            }
            if let Some(why) = proc.exited() {
                return Err(why.into());
            }
            if t0.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "the gateway printed no address within {START_TIMEOUT:?}\n{}",
                    proc.log_tail(6000)
                )
                .into());
            }
        };
        Ok(Gateway { proc, addr })
    }
}

// ---------------------------------------------------------------------------
// The KMS stub: AWS KMS's JSON protocol, GenerateDataKey and Decrypt, 50 ms
// added to every call.

struct Stored {
    key: [u8; 32],
    arn: String,
    context: BTreeMap<String, String>,
}

#[derive(Default)]
struct KmsState {
    blobs: Mutex<HashMap<Vec<u8>, Stored>>,
    next: AtomicU64,
    generate: AtomicU64,
    decrypt: AtomicU64,
    other: AtomicU64,
    refused: AtomicU64,
}

impl KmsState {
    /// (GenerateDataKey, Decrypt, other operations, refused) so far.
    fn counts(&self) -> [u64; 4] {
        [
            self.generate.load(Ordering::Relaxed),
            self.decrypt.load(Ordering::Relaxed),
            self.other.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        ]
    }
}

/// The ARN a key reference names: an ARN of a key as is, a bare id as the
/// ARN of that id, an alias (or alias ARN) as a key id derived from it.
fn key_arn(key_id: &str) -> String {
    if key_id.starts_with("arn:") && key_id.contains(":key/") {
        return key_id.to_owned();
    }
    let alias = key_id
        .split_once(":alias/")
        .map(|(_, a)| format!("alias/{a}"))
        .unwrap_or_else(|| key_id.to_owned());
    if !alias.starts_with("alias/") {
        return format!("{KMS_ACCOUNT_ARN}{alias}");
    }
    let h = hex(&Sha256::digest(alias.as_bytes()));
    format!(
        "{KMS_ACCOUNT_ARN}{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn kms_json(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    r
}

fn kms_error(state: &KmsState, kind: &str, message: &str) -> Response<Full<Bytes>> {
    state.refused.fetch_add(1, Ordering::Relaxed);
    kms_json(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({"__type": kind, "message": message}),
    )
}

fn context_of(v: &serde_json::Value) -> BTreeMap<String, String> {
    v.get("EncryptionContext")
        .and_then(|c| c.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn kms_answer(state: &KmsState, target: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(body) else {
        return kms_error(state, "SerializationException", "the body is not JSON");
    };
    let key_id = req.get("KeyId").and_then(|v| v.as_str()).unwrap_or("");
    match target {
        "TrentService.GenerateDataKey" => {
            state.generate.fetch_add(1, Ordering::Relaxed);
            if key_id.is_empty() {
                return kms_error(state, "ValidationException", "KeyId is required");
            }
            if req.get("KeySpec").and_then(|v| v.as_str()) != Some("AES_256") {
                return kms_error(state, "ValidationException", "KeySpec must be AES_256");
            }
            let mut key = [0u8; 32];
            if getrandom::fill(&mut key).is_err() {
                return kms_error(state, "KMSInternalException", "no randomness");
            }
            let n = state.next.fetch_add(1, Ordering::Relaxed);
            let blob = format!("objseal-bench-kms-stub-blob-{n:016x}").into_bytes();
            let arn = key_arn(key_id);
            let answer = serde_json::json!({
                "CiphertextBlob": B64.encode(&blob),
                "Plaintext": B64.encode(key),
                "KeyId": arn,
            });
            if let Ok(mut m) = state.blobs.lock() {
                m.insert(
                    blob,
                    Stored {
                        key,
                        arn,
                        context: context_of(&req),
                    },
                );
            }
            kms_json(StatusCode::OK, &answer)
        }
        "TrentService.Decrypt" => {
            state.decrypt.fetch_add(1, Ordering::Relaxed);
            let blob = req
                .get("CiphertextBlob")
                .and_then(|v| v.as_str())
                .and_then(|b| B64.decode(b).ok())
                .unwrap_or_default();
            let found = state.blobs.lock().ok().and_then(|m| {
                m.get(&blob)
                    .map(|s| (s.key, s.arn.clone(), s.context.clone()))
            });
            let Some((key, arn, context)) = found else {
                return kms_error(state, "InvalidCiphertextException", "unknown blob");
            };
            if context != context_of(&req) {
                return kms_error(
                    state,
                    "InvalidCiphertextException",
                    "the encryption context differs",
                );
            }
            if !key_id.is_empty() && key_arn(key_id) != arn {
                return kms_error(state, "IncorrectKeyException", "another key");
            }
            kms_json(
                StatusCode::OK,
                &serde_json::json!({"Plaintext": B64.encode(key), "KeyId": arn}),
            )
        }
        other => {
            state.other.fetch_add(1, Ordering::Relaxed);
            kms_error(
                state,
                "UnsupportedOperationException",
                &format!("the benchmark's KMS stub does not do {other}"),
            )
        }
    }
}

/// Starts the stub on 127.0.0.1 (its own thread and runtime; it lives as
/// long as the process).
fn start_kms_stub(delay: Duration) -> Res<(SocketAddr, Arc<KmsState>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let state = Arc::new(KmsState::default());
    let st = state.clone();
    std::thread::Builder::new()
        .name("kms-stub".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let st = st.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(
                            move |req: Request<hyper::body::Incoming>| {
                                let st = st.clone();
                                async move {
                                    let target = req
                                        .headers()
                                        .get("x-amz-target")
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or("")
                                        .to_owned();
                                    let signed = req.headers().contains_key("authorization");
                                    let body = req.into_body().collect().await?.to_bytes();
                                    tokio::time::sleep(delay).await;
                                    Ok::<_, hyper::Error>(if signed {
                                        kms_answer(&st, &target, &body)
                                    } else {
                                        kms_error(&st, "MissingAuthenticationToken", "unsigned")
                                    })
                                }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        })?;
    Ok((addr, state))
}

// ---------------------------------------------------------------------------
// The client.

/// One HTTP/1.1 connection to a server, sending signed requests.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Body>,
    host: String,
    access: &'static str,
    secret: &'static str,
}

/// What came back.
struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    n: u64,
    /// The body, when asked to keep it.
    body: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// S3's canonical query string for the simple queries sent here.
fn canonical_query(q: &str) -> String {
    let mut parts: Vec<String> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => format!("{k}={v}"),
            None => format!("{p}="),
        })
        .collect();
    parts.sort();
    parts.join("&")
}

impl Conn {
    async fn open(addr: SocketAddr, access: &'static str, secret: &'static str) -> Res<Conn> {
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))??;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            host: addr.to_string(),
            access,
            secret,
        })
    }

    /// Sends `method target` (path and optional query) with `body` (`len`
    /// bytes) and `extra` headers, signed with SigV4 (`UNSIGNED-PAYLOAD`);
    /// reads the response body to its end (kept when `keep`).
    async fn send(
        &mut self,
        method: Method,
        target: &str,
        extra: &[(&str, String)],
        body: Body,
        len: u64,
        keep: bool,
    ) -> Res<Answer> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let now = time::OffsetDateTime::now_utc();
        let date = format!(
            "{:04}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        );
        let amz_date = format!(
            "{date}T{:02}{:02}{:02}Z",
            now.hour(),
            now.minute(),
            now.second()
        );
        let payload = "UNSIGNED-PAYLOAD";
        let signed_headers = "host;x-amz-content-sha256;x-amz-date";
        let canonical = format!(
            "{method}\n{path}\n{}\nhost:{}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n\n{signed_headers}\n{payload}",
            canonical_query(query),
            self.host
        );
        let scope = format!("{date}/{REGION}/s3/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let key = hmac(format!("AWS4{}", self.secret).as_bytes(), &date);
        let key = hmac(&key, REGION);
        let key = hmac(&key, "s3");
        let key = hmac(&key, "aws4_request");
        let signature = hex(&hmac(&key, &to_sign));
        let mut req = Request::builder()
            .method(method)
            .uri(target)
            .header("host", &self.host)
            .header("x-amz-content-sha256", payload)
            .header("x-amz-date", &amz_date)
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
                    self.access
                ),
            )
            .header("content-length", len);
        for (k, v) in extra {
            req = req.header(*k, v);
        }
        let req = req.body(body)?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut body = resp.into_body();
        let mut n = 0u64;
        let mut kept = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                n += data.len() as u64;
                if keep || !status.is_success() {
                    kept.extend_from_slice(&data[..data.len().min(1 << 20)]);
                }
            }
        }
        Ok(Answer {
            status,
            headers,
            n,
            body: kept,
        })
    }

    /// [`Conn::send`], an error unless the status is 2xx.
    async fn expect(
        &mut self,
        method: Method,
        target: &str,
        extra: &[(&str, String)],
        body: Body,
        len: u64,
        keep: bool,
    ) -> Res<Answer> {
        let what = format!("{method} {target}");
        let a = self.send(method, target, extra, body, len, keep).await?;
        if !a.status.is_success() {
            let text = String::from_utf8_lossy(&a.body[..a.body.len().min(600)]).into_owned();
            return Err(format!("{what}: {} {text}", a.status).into());
        }
        Ok(a)
    }
}

fn empty() -> Body {
    Full::new(Bytes::new()).boxed()
}

/// Pseudo-random bytes (xorshift), so that nothing compresses or repeats
/// within a piece.
fn noise(n: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    Bytes::from(v)
}

/// A body of `len` bytes made of `piece` repeated, streamed piece by piece.
fn big_body(piece: Bytes, len: u64) -> Body {
    let full = len / piece.len() as u64;
    let rest = (len % piece.len() as u64) as usize;
    let tail = piece.slice(..rest);
    let pieces = (0..full)
        .map(move |_| piece.clone())
        .chain((rest > 0).then_some(tail));
    StreamBody::new(futures::stream::iter(
        pieces.map(|b| Ok::<_, Infallible>(Frame::data(b))),
    ))
    .boxed()
}

/// Where requests go: the gateway or the upstream directly.
#[derive(Clone, Copy)]
struct Target {
    addr: SocketAddr,
    access: &'static str,
    secret: &'static str,
    bucket: &'static str,
    gateway: bool,
}

impl Target {
    async fn conn(&self) -> Res<Conn> {
        Conn::open(self.addr, self.access, self.secret).await
    }
}

async fn create_bucket(t: Target, bucket: &str) -> Res<()> {
    t.conn()
        .await?
        .expect(Method::PUT, &format!("/{bucket}"), &[], empty(), 0, false)
        .await?;
    Ok(())
}

/// Default encryption aws:kms on `bucket`, Bucket Keys on or off.
async fn kms_default(t: Target, bucket: &str, bucket_key: bool) -> Res<()> {
    let xml = format!(
        "<ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>{KMS_KEY}</KMSMasterKeyID></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>{bucket_key}</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>"
    );
    let md5 = B64.encode(Md5::digest(xml.as_bytes()));
    let len = xml.len() as u64;
    let mut c = t.conn().await?;
    c.expect(
        Method::PUT,
        &format!("/{bucket}?encryption"),
        &[
            ("content-md5", md5),
            ("content-type", "application/xml".to_owned()),
        ],
        Full::new(Bytes::from(xml)).boxed(),
        len,
        false,
    )
    .await?;
    let got = c
        .expect(
            Method::GET,
            &format!("/{bucket}?encryption"),
            &[],
            empty(),
            0,
            true,
        )
        .await?;
    let text = String::from_utf8_lossy(&got.body);
    if !text.contains("aws:kms") {
        return Err(format!("GetBucketEncryption {bucket}: {text}").into());
    }
    Ok(())
}

/// Bounds a future in time.
async fn bounded<T>(what: &str, limit: Duration, f: impl Future<Output = Res<T>>) -> Res<T> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| format!("{what}: no answer within {limit:?}"))?
}

/// Seconds and CPU seconds (gateway, upstream) of one timed operation.
#[derive(Clone, Copy, Default)]
struct Timed {
    secs: f64,
    gw_cpu: f64,
    up_cpu: f64,
    /// This process (the client).
    own_cpu: f64,
}

/// PUT then GET of one `size`-byte object: the timing of each.
async fn large_round(
    t: Target,
    procs: (&Proc, &Proc),
    piece: &Bytes,
    size: u64,
    limit: Duration,
) -> Res<(Timed, Timed)> {
    let path = format!("/{}/large", t.bucket);
    let mut c = t.conn().await?;
    let cpu = || (procs.0.cpu_secs(), procs.1.cpu_secs(), cpu_secs_of("self"));
    let mut out = [Timed::default(); 2];
    for (i, get) in [false, true].into_iter().enumerate() {
        let c0 = cpu();
        let t0 = Instant::now();
        let a = if get {
            bounded(
                &format!("GET {path}"),
                limit,
                c.expect(Method::GET, &path, &[], empty(), 0, false),
            )
            .await?
        } else {
            bounded(
                &format!("PUT {path}"),
                limit,
                c.expect(
                    Method::PUT,
                    &path,
                    &[],
                    big_body(piece.clone(), size),
                    size,
                    false,
                ),
            )
            .await?
        };
        let secs = t0.elapsed().as_secs_f64();
        let c1 = cpu();
        out[i] = Timed {
            secs,
            gw_cpu: c1.0 - c0.0,
            up_cpu: c1.1 - c0.1,
            own_cpu: c1.2 - c0.2,
        };
        if get && a.n != size {
            return Err(format!("GET {path}: {} bytes, not {size}", a.n).into());
        }
        let sse = a
            .headers
            .get("x-amz-server-side-encryption")
            .and_then(|v| v.to_str().ok());
        if t.gateway && sse != Some("AES256") {
            return Err(format!("{path}: SSE header {sse:?}, not AES256").into());
        }
    }
    Ok((out[0], out[1]))
}

/// `n` PUTs of 4 KiB objects over `conns` connections into `bucket`: the
/// seconds, after checking one of them reads back.
async fn small_puts(t: Target, n: usize, conns: usize, round: usize, bucket_key: bool) -> Res<f64> {
    let body = noise(SMALL, 0x5eed + round as u64);
    let mut cs = Vec::new();
    for _ in 0..conns {
        cs.push(t.conn().await?);
    }
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (i, mut c) in cs.into_iter().enumerate() {
        let body = body.clone();
        let bucket = t.bucket;
        tasks.push(tokio::spawn(async move {
            for k in (i..n).step_by(conns) {
                let path = format!("/{bucket}/small/{round}/{k:05}");
                let a = c
                    .expect(
                        Method::PUT,
                        &path,
                        &[],
                        Full::new(body.clone()).boxed(),
                        SMALL as u64,
                        false,
                    )
                    .await?;
                let sse = a
                    .headers
                    .get("x-amz-server-side-encryption")
                    .and_then(|v| v.to_str().ok());
                let bk = a
                    .headers
                    .get("x-amz-server-side-encryption-bucket-key-enabled")
                    .and_then(|v| v.to_str().ok());
                if sse != Some("aws:kms") || (bucket_key && bk != Some("true")) {
                    return Err(format!("PUT {path}: SSE {sse:?}, bucket key {bk:?}").into());
                }
            }
            Res::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let secs = t0.elapsed().as_secs_f64();
    let path = format!("/{}/small/{round}/00000", t.bucket);
    let got = t
        .conn()
        .await?
        .expect(Method::GET, &path, &[], empty(), 0, true)
        .await?;
    if got.body != body {
        return Err(format!("GET {path}: {} bytes, not what was stored", got.n).into());
    }
    Ok(secs)
}

// ---------------------------------------------------------------------------
// Figures.

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn range(v: &[f64], digits: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.digits$}-{hi:.digits$}")
}

fn list(v: &[f64], digits: usize) -> String {
    v.iter()
        .map(|x| format!("{x:.digits$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn main() -> Res<()> {
    let size = env_num("OBJSEAL_BENCH_SIZE", 1 << 30).max(1);
    let rounds = env_num("OBJSEAL_BENCH_ROUNDS", 3).max(1) as usize;
    let small_n = env_num("OBJSEAL_BENCH_SMALL_N", 300).max(1) as usize;
    let conns = env_num("OBJSEAL_BENCH_CONNS", 4).max(1) as usize;
    let delay = Duration::from_millis(env_num("OBJSEAL_BENCH_KMS_DELAY_MS", 50));
    let timeout = Duration::from_secs(env_num("OBJSEAL_BENCH_TIMEOUT_S", 3600));
    let base = std::env::var_os("OBJSEAL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let shm = Path::new("/dev/shm");
            if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            }
        });
    // The watchdog: past the limit, every child is killed and the run ends.
    std::thread::spawn(move || {
        std::thread::sleep(timeout);
        eprintln!("upstream bench: over OBJSEAL_BENCH_TIMEOUT_S ({timeout:?}); killing children");
        kill_registered();
        std::process::exit(3);
    });
    let bin = objseal_bin()?;
    let dir = tempfile::Builder::new()
        .prefix("objseal-upstream-bench-")
        .tempdir_in(&base)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(run(&bin, dir.path(), size, rounds, small_n, conns, delay));
    if std::env::var_os("OBJSEAL_BENCH_KEEP").is_some() {
        eprintln!("logs and data kept in {}", dir.keep().display());
    }
    result
}

#[allow(clippy::too_many_lines)]
async fn run(
    bin: &Path,
    dir: &Path,
    size: u64,
    rounds: usize,
    small_n: usize,
    conns: usize,
    delay: Duration,
) -> Res<()> {
    let weed = Weed::start(dir)?;
    let version = Command::new(weed_bin())
        .arg("version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "objseal serve --upstream benchmark: loopback HTTP/1.1, SigV4 (UNSIGNED-PAYLOAD), gateway and upstream as child processes"
    );
    println!("cpu: {}", cpu_model());
    println!(
        "cores available: {} (upstream, gateway and client share them)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("objseal binary: {}", bin.display());
    println!(
        "upstream: {} ({version}), weed mini on {}, data in {} (answered after {:.1}s)",
        weed_bin().display(),
        weed.addr,
        dir.display(),
        weed.started_in
    );
    println!(
        "large object: {size} bytes ({:.2} GiB); {rounds} rounds, gateway (SSE-S3) and direct interleaved (order alternating)",
        size as f64 / f64::from(1u32 << 30)
    );
    println!(
        "small objects: {small_n} x {SMALL} B PUTs per bucket and round over {conns} connections; gateway with --kms aws, KMS stub adding {} ms per call",
        delay.as_millis()
    );
    println!();

    let direct = Target {
        addr: weed.addr,
        access: UP_ACCESS,
        secret: UP_SECRET,
        bucket: "direct",
        gateway: false,
    };
    let limit = Duration::from_secs(120) + Duration::from_secs_f64(size as f64 / 5e6);
    let piece = noise(PIECE, 0x000b_1ec7_5ea1);

    // Part 1: large objects, SSE-S3 through the gateway vs direct.
    let gw = Gateway::start(bin, &dir.join("gw-sse-s3"), weed.addr, None)?;
    let sealed = Target {
        addr: gw.addr,
        access: GW_ACCESS,
        secret: GW_SECRET,
        bucket: "sealed",
        gateway: true,
    };
    let fail = |e: Box<dyn Error + Send + Sync>,
                gw: &Gateway,
                weed: &Weed|
     -> Box<dyn Error + Send + Sync> {
        format!(
            "{e}\n{}\n{}",
            gw.proc.log_tail(4000),
            weed.proc.log_tail(2000)
        )
        .into()
    };
    let setup = async {
        create_bucket(direct, direct.bucket).await?;
        create_bucket(sealed, sealed.bucket).await
    };
    bounded("creating buckets", Duration::from_secs(60), setup)
        .await
        .map_err(|e| fail(e, &gw, &weed))?;
    // [gateway, direct] x (put, get).
    let mut large: [Vec<(Timed, Timed)>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let t = [sealed, direct][which];
            let r = large_round(t, (&gw.proc, &weed.proc), &piece, size, limit)
                .await
                .map_err(|e| fail(e, &gw, &weed))?;
            eprintln!(
                "round {round} {}: large PUT {:.2}s GET {:.2}s (CPU s PUT/GET: gateway {:.1}/{:.1}, upstream {:.1}/{:.1}, client {:.1}/{:.1})",
                ["gateway", "direct"][which],
                r.0.secs,
                r.1.secs,
                r.0.gw_cpu,
                r.1.gw_cpu,
                r.0.up_cpu,
                r.1.up_cpu,
                r.0.own_cpu,
                r.1.own_cpu
            );
            large[which].push(r);
        }
    }
    let gw_rss = gw.proc.rss_mib();
    drop(gw);

    // Part 2: small PUTs with SSE-KMS, Bucket Keys on and off.
    let (kms_addr, kms) = start_kms_stub(delay)?;
    let gw = Gateway::start(bin, &dir.join("gw-kms"), weed.addr, Some(kms_addr))?;
    let kms_targets = [true, false].map(|bk| Target {
        addr: gw.addr,
        access: GW_ACCESS,
        secret: GW_SECRET,
        bucket: if bk {
            "kms-bucket-key"
        } else {
            "kms-no-bucket-key"
        },
        gateway: true,
    });
    let setup = async {
        for (t, bk) in kms_targets.iter().zip([true, false]) {
            create_bucket(*t, t.bucket).await?;
            kms_default(*t, t.bucket, bk).await?;
        }
        Res::Ok(())
    };
    bounded("creating the KMS buckets", Duration::from_secs(60), setup)
        .await
        .map_err(|e| fail(e, &gw, &weed))?;
    let small_limit = Duration::from_secs(60)
        + delay * (2 * small_n as u32).div_ceil(conns as u32)
        + Duration::from_millis(20 * small_n as u64);
    // [bucket keys, none]: (seconds, KMS calls [generate, decrypt, other, refused]).
    let mut small: [Vec<(f64, [u64; 4])>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let before = kms.counts();
            let secs = bounded(
                "small PUTs",
                small_limit,
                small_puts(kms_targets[which], small_n, conns, round, which == 0),
            )
            .await
            .map_err(|e| fail(e, &gw, &weed))?;
            let after = kms.counts();
            let calls = [0, 1, 2, 3].map(|i| after[i] - before[i]);
            eprintln!(
                "round {round} {}: {small_n} PUTs in {secs:.2}s; KMS GenerateDataKey {} Decrypt {} other {} refused {}",
                ["bucket keys", "no bucket keys"][which],
                calls[0],
                calls[1],
                calls[2],
                calls[3]
            );
            small[which].push((secs, calls));
        }
    }
    drop(gw);
    let weed_rss = weed.proc.rss_mib();
    drop(weed);

    let gbs = |v: &[(Timed, Timed)], get: bool| -> Vec<f64> {
        v.iter()
            .map(|r| size as f64 / 1e9 / if get { r.1.secs } else { r.0.secs })
            .collect()
    };
    println!(
        "{:<36} {:>17} {:>17} {:>7}   per-round ratios (gateway/direct)",
        "operation", "gateway", "direct", "ratio"
    );
    println!(
        "{:<36} {:>17} {:>17}",
        "", "median (range)", "median (range)"
    );
    for (name, get) in [
        ("PUT large, SSE-S3 (GB/s)", false),
        ("GET large, SSE-S3 (GB/s)", true),
    ] {
        let (g, d) = (gbs(&large[0], get), gbs(&large[1], get));
        let ratios: Vec<f64> = g.iter().zip(&d).map(|(g, d)| g / d).collect();
        println!(
            "{name:<36} {:>17} {:>17} {:>7.3}   {}",
            format!("{:.3} ({})", median(&g), range(&g, 2)),
            format!("{:.3} ({})", median(&d), range(&d, 2)),
            median(&g) / median(&d),
            list(&ratios, 3)
        );
    }
    for (which, name) in [
        (0, "PUT 4 KiB, SSE-KMS + bucket key"),
        (1, "PUT 4 KiB, SSE-KMS, no bkey"),
    ] {
        let ops: Vec<f64> = small[which].iter().map(|r| small_n as f64 / r.0).collect();
        let calls: Vec<String> = small[which]
            .iter()
            .map(|r| {
                let mut s = format!("{}+{}", r.1[0], r.1[1]);
                if r.1[2] + r.1[3] > 0 {
                    s.push_str(&format!(" (other {}, refused {})", r.1[2], r.1[3]));
                }
                s
            })
            .collect();
        println!(
            "{:<36} {:>17} {:>17} {:>7}   KMS calls per round (GenerateDataKey+Decrypt): {}",
            format!("{name} (/s)"),
            format!("{:.0} ({})", median(&ops), range(&ops, 0)),
            "-",
            "-",
            calls.join(", ")
        );
    }
    println!();
    let gib = size as f64 / f64::from(1u32 << 30);
    let cpu = |v: &[(Timed, Timed)], get: bool| -> String {
        let of = |f: fn(&Timed) -> f64| {
            median(
                &v.iter()
                    .map(|r| f(if get { &r.1 } else { &r.0 }) / gib)
                    .collect::<Vec<_>>(),
            )
        };
        format!(
            "gateway {:.2} + upstream {:.2} + client {:.2}",
            of(|t| t.gw_cpu),
            of(|t| t.up_cpu),
            of(|t| t.own_cpu)
        )
    };
    println!(
        "CPU seconds per GiB (medians): PUT via gateway {}; direct {}",
        cpu(&large[0], false),
        cpu(&large[1], false)
    );
    println!(
        "                               GET via gateway {}; direct {}",
        cpu(&large[0], true),
        cpu(&large[1], true)
    );
    let secs = |v: &[(Timed, Timed)], get: bool| -> Vec<f64> {
        v.iter()
            .map(|r| if get { r.1.secs } else { r.0.secs })
            .collect()
    };
    println!(
        "raw seconds per round: gateway PUT [{}] GET [{}]; direct PUT [{}] GET [{}]",
        list(&secs(&large[0], false), 2),
        list(&secs(&large[0], true), 2),
        list(&secs(&large[1], false), 2),
        list(&secs(&large[1], true), 2),
    );
    println!("peak RSS: gateway (SSE-S3 part) {gw_rss:.0} MiB, weed {weed_rss:.0} MiB");
    Ok(())
}
