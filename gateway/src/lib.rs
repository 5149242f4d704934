//! `objseal serve`: an S3-compatible endpoint that stores every object
//! sealed with objseal (SSE-S3 by default, SSE-KMS on the home's local KMS,
//! SSE-C with the client's key), built on `s3s`, hyper and tokio.
//!
//! [`serve`] binds the address, prints it, and serves HTTP/1.1 until
//! SIGINT or SIGTERM, then lets requests in flight finish (within
//! [`Config::shutdown_grace`]). Every request must be signed (SigV4 headers
//! or presigned URL) with the root key or a user's key ([`users`]); each
//! user sees only the buckets it created. One line per request goes to
//! stderr: method, path, status, bytes in and out, duration (never a key,
//! a signature or a query string).

pub mod body;
pub mod s3;
pub mod store;
pub mod tls;
pub mod upstream;
pub mod users;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use objseal::Engine;
use s3s::service::S3ServiceBuilder;

pub use s3::Settings;

/// What [`serve`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The objseal home (root key and users file live there).
    pub home: PathBuf,
    /// The data directory (objects, buckets).
    pub data: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The engine (keyring and local KMS of the home).
    pub engine: Arc<Engine>,
    /// Service settings.
    pub settings: Settings,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// No request log.
    pub quiet: bool,
    /// Serve HTTPS with this configuration (plain HTTP without).
    pub tls: Option<tls::Tls>,
    /// Store objects in this S3-compatible store instead of `data`
    /// (upstream mode, [`upstream`]).
    pub upstream: Option<upstream::client::UpstreamConfig>,
}

/// Serves S3 on `config.listen` until SIGINT or SIGTERM. Prints
/// `listening on http://ADDR` on stdout once bound (so `--listen
/// 127.0.0.1:0` callers learn the port), and, the first time, the root
/// key it generated.
pub async fn serve(config: Config) -> io::Result<()> {
    let home = config.home.clone();
    let (root, generated) = tokio::task::spawn_blocking(move || users::root_key(&home)).await??;
    let users = Arc::new(users::Users::new(root.clone(), &config.home));
    let service = match &config.upstream {
        Some(up) => {
            let region = up.region.clone();
            let client = upstream::client::Client::new(up.clone())?;
            let gateway = upstream::UpstreamGateway::new(
                client,
                config.engine.clone(),
                users.clone(),
                config.settings.clone(),
                region,
            );
            let mut builder = S3ServiceBuilder::new(gateway.clone());
            builder.set_route(s3::EncryptionRoute::Upstream(gateway));
            builder.set_auth(users::Auth(users.clone()));
            builder.build()
        }
        None => {
            let data = config.data.clone();
            let store = tokio::task::spawn_blocking(move || {
                let store = store::Store::open(&data)?;
                store.sweep()?;
                Ok::<_, io::Error>(store)
            })
            .await??;
            let gateway = s3::Gateway::new(
                store,
                config.engine.clone(),
                users.clone(),
                config.settings.clone(),
            );
            let mut builder = S3ServiceBuilder::new(gateway.clone());
            builder.set_route(s3::EncryptionRoute::Local(gateway));
            builder.set_auth(users::Auth(users.clone()));
            builder.build()
        }
    };

    if config.settings.bench_plaintext {
        eprintln!("objseal serve: BENCHMARK BASELINE: object bodies are stored unencrypted");
    }
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = io::stdout().lock();
        if generated {
            writeln!(
                out,
                "root access key: {}\nroot secret key: {}\n(saved in {}; shown only this once)",
                root.access_key_id,
                root.secret_access_key,
                config.home.join(users::ROOT_FILE).display()
            )?;
        }
        let scheme = match &config.tls {
            Some(t) => {
                writeln!(out, "tls certificate sha256 fingerprint: {}", t.fingerprint)?;
                "https"
            }
            None => "http",
        };
        writeln!(out, "listening on {scheme}://{addr}")?;
        out.flush()?;
    }

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("objseal serve: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        // Responses go out as headers then body pieces: without this,
        // Nagle's algorithm holds a small body back until the client's
        // delayed ACK of the headers (~40 ms per small GET).
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let quiet = config.quiet;
        let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let service = service.clone();
            async move {
                let start = Instant::now();
                let method = req.method().clone();
                let path = req.uri().path().to_owned();
                let bytes_in = req
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                let has_body = bytes_in > 0
                    || req.headers().contains_key(http::header::TRANSFER_ENCODING)
                    || req.headers().contains_key(http::header::EXPECT);
                let mut result = service.call(req.map(s3s::Body::from)).await;
                // A request refused before its body was read (often one
                // that waited for `100 Continue`) leaves the body's bytes,
                // or their absence, on the connection: close it rather than
                // read the next request from the wrong place.
                if let Ok(resp) = &mut result
                    && has_body
                    && !resp.status().is_success()
                {
                    resp.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                if !quiet {
                    let (status, bytes_out) = match &result {
                        Ok(resp) => (
                            resp.status().as_u16(),
                            resp.headers()
                                .get(http::header::CONTENT_LENGTH)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<u64>().ok())
                                .unwrap_or(0),
                        ),
                        Err(_) => (500, 0),
                    };
                    eprintln!(
                        "objseal serve: {method} {} {status} in={bytes_in} out={bytes_out} {:.1}ms",
                        log_path(&path),
                        start.elapsed().as_secs_f64() * 1000.0
                    );
                }
                result
            }
        });
        match &config.tls {
            None => {
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            Some(t) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(t.config.clone());
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    let Ok(Ok(tls_stream)) = handshake.await else {
                        return;
                    };
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls_stream), svc);
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(config.shutdown_grace) => {
            eprintln!("objseal serve: requests still running after {:?}; stopping", config.shutdown_grace);
        }
    }
    Ok(())
}

/// The request path as logged: at most 512 bytes, control characters
/// escaped (the path is what the client sent, percent-encoded).
fn log_path(path: &str) -> String {
    path.chars()
        .take(512)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
