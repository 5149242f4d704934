//! `cargo bench -p objseal-gateway --bench serve`: `objseal serve` over
//! loopback, with SSE-S3 and against the same server path with the body's
//! seal/open switched off (`Settings::bench_plaintext`, set only here).
//!
//! Prints one table:
//! - PUT and GET of one large object (1 GiB), encrypted and baseline runs
//!   interleaved for several rounds: medians and the ratio (goal ≥ 0.8);
//! - the server's peak RSS (VmHWM of its process) during 4 concurrent
//!   uploads of the large object (goal ≤ 256 MiB);
//! - PUTs and GETs of 4 KiB objects per second, with and without
//!   encryption.
//!
//! Each server is a child process (this executable run again with
//! `OBJSEAL_BENCH_SERVE_CHILD` set), so that its memory is measured alone;
//! the client here is a minimal S3 client: HTTP/1.1 (hyper), SigV4 signed
//! headers with `UNSIGNED-PAYLOAD`, bodies generated and discarded as they
//! stream (never held whole).
//!
//! Knobs (environment): `OBJSEAL_BENCH_SIZE` (bytes of the large object,
//! default 1 GiB), `OBJSEAL_BENCH_ROUNDS` (default 3), `OBJSEAL_BENCH_SMALL_N`
//! (default 2000), `OBJSEAL_BENCH_CONNS` (connections for the small objects,
//! default 4), `OBJSEAL_BENCH_DIR` (where the servers keep their data;
//! default /dev/shm when there is one, so that the disk is not what is
//! measured, else the temporary directory).

use std::convert::Infallible;
use std::error::Error;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{Method, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;
type Body = BoxBody<Bytes, Infallible>;

const CHILD_ENV: &str = "OBJSEAL_BENCH_SERVE_CHILD";
const ACCESS_KEY: &str = "OBJSEALBENCH0000001";
const SECRET_KEY: &str = "objseal-bench-secret-key-not-for-any-data";
const REGION: &str = "us-east-1";
const BUCKET: &str = "bench";
const SMALL: usize = 4096;
const PIECE: usize = 1 << 20;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Res<()> {
    if let Ok(role) = std::env::var(CHILD_ENV) {
        let dir = std::env::args_os()
            .nth(1)
            .map(PathBuf::from)
            .ok_or("child: no directory")?;
        return child(&dir, role == "plaintext");
    }
    let size = env_num("OBJSEAL_BENCH_SIZE", 1 << 30);
    let rounds = env_num("OBJSEAL_BENCH_ROUNDS", 3).max(1) as usize;
    let small_n = env_num("OBJSEAL_BENCH_SMALL_N", 2000) as usize;
    let conns = env_num("OBJSEAL_BENCH_CONNS", 4).max(1) as usize;
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
    let dir = tempfile::Builder::new()
        .prefix("objseal-serve-bench-")
        .tempdir_in(&base)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(dir.path(), size, rounds, small_n, conns))
}

/// The server side: `objseal serve` as the command line starts it, on an
/// in-memory keyring, quiet, on 127.0.0.1:0.
fn child(dir: &Path, plaintext: bool) -> Res<()> {
    let home = dir.join("home");
    std::fs::create_dir_all(&home)?;
    let keyring = objseal::Keyring::in_memory("objseal-bench")?;
    let engine = objseal::Engine::builder()
        .keyring(Arc::new(keyring))
        .principal("objseal-bench")
        .build();
    let config = objseal_gateway::Config {
        home,
        data: dir.join("data"),
        listen: "127.0.0.1:0".parse()?,
        engine: Arc::new(engine),
        settings: objseal_gateway::Settings {
            allow_sse_c_over_http: false,
            tls: false,
            allow_sse_c_by_default: false,
            max_object_size: 1 << 40,
            bench_plaintext: plaintext,
        },
        shutdown_grace: Duration::from_secs(5),
        quiet: true,
        tls: None,
        upstream: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(objseal_gateway::serve(config))?;
    Ok(())
}

/// A server child process.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(dir: &Path, plaintext: bool) -> Res<Server> {
        std::fs::create_dir_all(dir)?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg(dir)
            .env(CHILD_ENV, if plaintext { "plaintext" } else { "sealed" })
            .env("OBJSEAL_ROOT_ACCESS_KEY", ACCESS_KEY)
            .env("OBJSEAL_ROOT_SECRET_KEY", SECRET_KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .ok_or_else(|| format!("server said {line:?}"))?
            .parse()?;
        Ok(Server { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `VmHWM` and `VmRSS` of the server process, in bytes.
    fn memory(&self) -> Res<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb * 1024)
        };
        Ok((
            field("VmHWM:").ok_or("no VmHWM")?,
            field("VmRSS:").ok_or("no VmRSS")?,
        ))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 connection to a server, sending signed requests.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Body>,
    host: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

impl Conn {
    async fn open(addr: SocketAddr) -> Res<Conn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends `method path` with `body` (`len` bytes), signed with SigV4
    /// (`UNSIGNED-PAYLOAD`); returns the status, the response's SSE
    /// header and the number of body bytes received (read and dropped).
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Body,
        len: u64,
    ) -> Res<(StatusCode, Option<String>, u64)> {
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
            "{method}\n{path}\n\nhost:{}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n\n{signed_headers}\n{payload}",
            self.host
        );
        let scope = format!("{date}/{REGION}/s3/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let key = hmac(format!("AWS4{SECRET_KEY}").as_bytes(), &date);
        let key = hmac(&key, REGION);
        let key = hmac(&key, "s3");
        let key = hmac(&key, "aws4_request");
        let signature = hex(&hmac(&key, &to_sign));
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("x-amz-content-sha256", payload)
            .header("x-amz-date", &amz_date)
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
                ),
            )
            .header("content-length", len)
            .body(body)?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let sse = resp
            .headers()
            .get("x-amz-server-side-encryption")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = resp.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                n += data.len() as u64;
            }
        }
        Ok((status, sse, n))
    }

    async fn expect(&mut self, method: Method, path: &str, body: Body, len: u64) -> Res<u64> {
        let what = format!("{method} {path}");
        let (status, _, n) = self.send(method, path, body, len).await?;
        if !status.is_success() {
            return Err(format!("{what}: {status}").into());
        }
        Ok(n)
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

async fn create_bucket(addr: SocketAddr) -> Res<()> {
    Conn::open(addr)
        .await?
        .expect(Method::PUT, &format!("/{BUCKET}"), empty(), 0)
        .await?;
    Ok(())
}

/// PUT then GET of one `size`-byte object: the seconds of each.
async fn large_round(addr: SocketAddr, piece: &Bytes, size: u64, sealed: bool) -> Res<(f64, f64)> {
    let path = format!("/{BUCKET}/large");
    let mut c = Conn::open(addr).await?;
    let t = Instant::now();
    let (status, sse, _) = c
        .send(Method::PUT, &path, big_body(piece.clone(), size), size)
        .await?;
    let put = t.elapsed().as_secs_f64();
    if !status.is_success() {
        return Err(format!("PUT {path}: {status}").into());
    }
    if sealed && sse.as_deref() != Some("AES256") {
        return Err(format!("PUT {path}: SSE header {sse:?}, not AES256").into());
    }
    let t = Instant::now();
    let n = c.expect(Method::GET, &path, empty(), 0).await?;
    let get = t.elapsed().as_secs_f64();
    if n != size {
        return Err(format!("GET {path}: {n} bytes, not {size}").into());
    }
    Ok((put, get))
}

/// `n` PUTs of 4 KiB objects over `conns` connections, then `n` GETs of
/// them: the seconds of each phase.
async fn small_round(addr: SocketAddr, n: usize, conns: usize, round: usize) -> Res<(f64, f64)> {
    let body = noise(SMALL, 0x5eed + round as u64);
    let mut phases = [0.0; 2];
    for (phase, method) in [Method::PUT, Method::GET].into_iter().enumerate() {
        let mut cs = Vec::new();
        for _ in 0..conns {
            cs.push(Conn::open(addr).await?);
        }
        let t = Instant::now();
        let mut tasks = Vec::new();
        for (i, mut c) in cs.into_iter().enumerate() {
            let (method, body) = (method.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                for k in (i..n).step_by(conns) {
                    let path = format!("/{BUCKET}/small/{k:05}");
                    if method == Method::PUT {
                        let len = body.len() as u64;
                        c.expect(Method::PUT, &path, Full::new(body.clone()).boxed(), len)
                            .await?;
                    } else {
                        let got = c.expect(Method::GET, &path, empty(), 0).await?;
                        if got != SMALL as u64 {
                            return Err(format!("GET {path}: {got} bytes").into());
                        }
                    }
                }
                Res::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        phases[phase] = t.elapsed().as_secs_f64();
    }
    Ok((phases[0], phases[1]))
}

/// Peak RSS of a fresh server during `uploads` concurrent PUTs of `size`
/// bytes: (idle RSS before, peak VmHWM, peak of VmRSS sampled every 5 ms,
/// whether the high-water mark was reset after start, seconds).
async fn peak_rss(
    dir: &Path,
    plaintext: bool,
    piece: &Bytes,
    size: u64,
    uploads: usize,
) -> Res<(u64, u64, u64, bool, f64)> {
    let server = Server::start(dir, plaintext)?;
    create_bucket(server.addr).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, idle) = server.memory()?;
    // Start the high-water mark from here (the process is fresh anyway).
    let reset = std::fs::write(format!("/proc/{}/clear_refs", server.pid()), "5").is_ok();
    let done = Arc::new(AtomicBool::new(false));
    let sampled = Arc::new(AtomicU64::new(0));
    let status = format!("/proc/{}/status", server.pid());
    let sampler = {
        let (done, sampled) = (done.clone(), sampled.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(s) = std::fs::read_to_string(&status)
                    && let Some(kb) = s
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    sampled.fetch_max(kb * 1024, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let t = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..uploads {
        let addr = server.addr;
        let body = big_body(piece.clone(), size);
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(addr).await?;
            c.expect(
                Method::PUT,
                &format!("/{BUCKET}/concurrent-{i}"),
                body,
                size,
            )
            .await
        }));
    }
    for task in tasks {
        task.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let (hwm, _) = server.memory()?;
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
    Ok((idle, hwm, sampled.load(Ordering::Relaxed), reset, secs))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
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

fn mib(n: u64) -> f64 {
    n as f64 / f64::from(1u32 << 20)
}

fn list(v: &[f64], digits: usize) -> String {
    v.iter()
        .map(|x| format!("{x:.digits$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn run(dir: &Path, size: u64, rounds: usize, small_n: usize, conns: usize) -> Res<()> {
    println!(
        "objseal serve benchmark: loopback HTTP/1.1, SigV4 (UNSIGNED-PAYLOAD), servers in child processes"
    );
    println!("cpu: {}", cpu_model());
    let report = objseal::cpu_report();
    println!(
        "cpu features: {}; objseal backend: {:?}",
        report
            .features
            .iter()
            .map(|(f, on)| format!("{f}{}", if *on { "+" } else { "-" }))
            .collect::<Vec<_>>()
            .join(" "),
        report.selected
    );
    println!(
        "cores available: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("data: {}", dir.display());
    println!(
        "large object: {size} bytes ({:.2} GiB); {rounds} rounds, SSE-S3 and baseline interleaved (order alternating)",
        size as f64 / f64::from(1u32 << 30)
    );
    println!(
        "small objects: {small_n} x {SMALL} B PUT then GET per round, over {conns} connections"
    );
    println!(
        "baseline: the same server and request path with Settings::bench_plaintext (body copied, not sealed/opened)"
    );
    println!();

    let sealed = Server::start(&dir.join("sealed"), false)?;
    let plain = Server::start(&dir.join("plain"), true)?;
    create_bucket(sealed.addr).await?;
    create_bucket(plain.addr).await?;
    let piece = noise(PIECE, 0x000b_1ec7_5ea1);

    // [sealed, plain] x (put, get) seconds per round.
    let mut large: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    let mut small: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let addr = [sealed.addr, plain.addr][which];
            let r = large_round(addr, &piece, size, which == 0).await?;
            eprintln!(
                "round {round} {}: large PUT {:.2}s GET {:.2}s",
                ["SSE-S3", "baseline"][which],
                r.0,
                r.1
            );
            large[which].push(r);
        }
        for which in order {
            let addr = [sealed.addr, plain.addr][which];
            let r = small_round(addr, small_n, conns, round).await?;
            eprintln!(
                "round {round} {}: small PUT {:.2}s GET {:.2}s",
                ["SSE-S3", "baseline"][which],
                r.0,
                r.1
            );
            small[which].push(r);
        }
    }
    drop((sealed, plain));
    let _ = std::fs::remove_dir_all(dir.join("sealed"));
    let _ = std::fs::remove_dir_all(dir.join("plain"));

    let gbs = |v: &[(f64, f64)], get: bool| -> Vec<f64> {
        v.iter()
            .map(|r| size as f64 / 1e9 / if get { r.1 } else { r.0 })
            .collect()
    };
    let ops = |v: &[(f64, f64)], get: Option<bool>| -> Vec<f64> {
        v.iter()
            .map(|r| {
                small_n as f64
                    / match get {
                        Some(true) => r.1,
                        Some(false) => r.0,
                        None => r.0 + r.1,
                    }
            })
            .collect()
    };
    println!(
        "{:<26} {:>12} {:>12} {:>7}   per-round ratios (SSE-S3/baseline)",
        "operation", "SSE-S3", "baseline", "ratio"
    );
    let rows: [(&str, Vec<f64>, Vec<f64>); 5] = [
        (
            "PUT large (GB/s)",
            gbs(&large[0], false),
            gbs(&large[1], false),
        ),
        (
            "GET large (GB/s)",
            gbs(&large[0], true),
            gbs(&large[1], true),
        ),
        (
            "PUT 4 KiB (ops/s)",
            ops(&small[0], Some(false)),
            ops(&small[1], Some(false)),
        ),
        (
            "GET 4 KiB (ops/s)",
            ops(&small[0], Some(true)),
            ops(&small[1], Some(true)),
        ),
        (
            "PUT+GET 4 KiB (pairs/s)",
            ops(&small[0], None),
            ops(&small[1], None),
        ),
    ];
    for (name, s, b) in &rows {
        let ratios: Vec<f64> = s.iter().zip(b).map(|(s, b)| s / b).collect();
        let digits = if name.contains("GB/s") { 3 } else { 0 };
        println!(
            "{name:<26} {:>12.digits$} {:>12.digits$} {:>7.3}   {}",
            median(s),
            median(b),
            median(s) / median(b),
            list(&ratios, 3)
        );
    }
    println!();
    println!(
        "raw seconds per round: large SSE-S3 PUT [{}] GET [{}]; baseline PUT [{}] GET [{}]",
        list(&large[0].iter().map(|r| r.0).collect::<Vec<_>>(), 2),
        list(&large[0].iter().map(|r| r.1).collect::<Vec<_>>(), 2),
        list(&large[1].iter().map(|r| r.0).collect::<Vec<_>>(), 2),
        list(&large[1].iter().map(|r| r.1).collect::<Vec<_>>(), 2),
    );
    println!();

    for (label, plaintext) in [("SSE-S3", false), ("baseline", true)] {
        let (idle, hwm, sampled, reset, secs) = peak_rss(
            &dir.join(format!("rss-{label}")),
            plaintext,
            &piece,
            size,
            4,
        )
        .await?;
        println!(
            "peak server RSS, 4 concurrent PUTs of {:.2} GiB, {label}: VmHWM {:.1} MiB (sampled VmRSS max {:.1} MiB; idle {:.1} MiB; HWM reset after start: {}; {:.1}s, {:.3} GB/s total)",
            size as f64 / f64::from(1u32 << 30),
            mib(hwm),
            mib(sampled),
            mib(idle),
            if reset { "yes" } else { "no (fresh process)" },
            secs,
            4.0 * size as f64 / 1e9 / secs
        );
    }
    Ok(())
}
