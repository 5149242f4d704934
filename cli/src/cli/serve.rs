//! `objseal serve` (the S3 endpoint) and `objseal users` (its access keys).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{Ctx, Failure, bench::parse_size, store};

/// Examples for `objseal serve --help`.
pub const SERVE_HELP: &str = "\
Objects are stored sealed under $OBJSEAL_HOME/data (or --data DIR). Every
request must be signed (SigV4 headers or a presigned URL) with the root key
(OBJSEAL_ROOT_ACCESS_KEY / OBJSEAL_ROOT_SECRET_KEY, else generated on first
start, saved in the home and printed once) or a key from `objseal users add`.

Examples:
  objseal serve --listen 127.0.0.1:9000
  objseal serve --tls-cert cert.pem --tls-key key.pem
  objseal serve --tls-self-signed   # prints the certificate's SHA-256 fingerprint
  aws --endpoint-url http://127.0.0.1:9000 s3 mb s3://photos
  aws --endpoint-url http://127.0.0.1:9000 s3 cp cat.jpg s3://photos/ --sse aws:kms

Upstream mode (objects sealed in another S3-compatible store; the gateway
keeps no object state, so several instances sharing one home can serve it):
  AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \\
    objseal serve --upstream http://store.internal:8333
  objseal --kms aws serve --upstream   # SSE-KMS keys in AWS KMS; URLs from AWS_ENDPOINT_URL_*";

/// Examples for `objseal users --help`.
pub const USERS_HELP: &str = "\
Examples:
  objseal users add alice
  objseal users add bob --json   # {\"user\": ..., \"access_key_id\": ..., \"secret_access_key\": ...}";

/// Arguments of `objseal serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Data directory (default: $OBJSEAL_HOME/data).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Accept SSE-C keys over plain HTTP (for tests; S3 refuses them).
    #[arg(long)]
    allow_sse_c_over_http: bool,
    /// New buckets accept SSE-C writes (S3's behaviour before 2026).
    #[arg(long)]
    allow_sse_c_by_default: bool,
    /// The largest object accepted.
    #[arg(long, value_name = "SIZE", default_value = "5120GiB")]
    max_object_size: String,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate made at start (its
    /// SHA-256 fingerprint is printed).
    #[arg(long)]
    tls_self_signed: bool,
    /// Seconds in-flight requests get to finish on SIGINT/SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    shutdown_grace: u64,
    /// Store objects sealed in this S3-compatible store instead of the data
    /// directory (without URL: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL).
    /// Its credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
    /// and AWS_SESSION_TOKEN; its region from AWS_REGION.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    upstream: Option<String>,
    /// Trust this PEM CA certificate for an https upstream (beside the
    /// system's roots).
    #[arg(long, value_name = "FILE", requires = "upstream")]
    upstream_ca: Option<PathBuf>,
}

/// `objseal users` subcommands.
#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user with a new access key (printed once).
    Add {
        /// The user's name (1 to 64 of A-Z a-z 0-9 . _ -).
        name: String,
        /// Print {"user", "access_key_id", "secret_access_key"} as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `objseal serve`.
pub fn serve(ctx: &Ctx, a: ServeArgs) -> Result<(), Failure> {
    let store = ctx.store()?;
    let data = a.data.unwrap_or_else(|| store.home.join("data"));
    let max_object_size = parse_size(&a.max_object_size)?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(
            objseal_gateway::tls::from_pem_files(cert, key).map_err(|e| Failure::io(cert, &e))?,
        ),
        _ if a.tls_self_signed => {
            Some(objseal_gateway::tls::self_signed(&[]).map_err(|e| Failure::io(&store.home, &e))?)
        }
        _ => None,
    };
    let upstream = match &a.upstream {
        None => None,
        Some(url) => {
            let url = Some(url.as_str()).filter(|u| !u.is_empty());
            let mut up = objseal_gateway::upstream::client::UpstreamConfig::from_env(url)
                .map_err(|e| Failure::usage(format!("--upstream: {e}")))?;
            up.ca_file = a.upstream_ca.clone();
            Some(up)
        }
    };
    let config = objseal_gateway::Config {
        home: store.home.clone(),
        data: data.clone(),
        listen: a.listen,
        engine: Arc::new(store.engine()),
        settings: objseal_gateway::Settings {
            allow_sse_c_over_http: a.allow_sse_c_over_http,
            tls: tls.is_some(),
            allow_sse_c_by_default: a.allow_sse_c_by_default,
            max_object_size,
            bench_plaintext: false,
        },
        shutdown_grace: Duration::from_secs(a.shutdown_grace),
        quiet: ctx.quiet,
        tls,
        upstream,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::io(&data, &e))?;
    rt.block_on(objseal_gateway::serve(config))
        .map_err(|e| Failure::io(&data, &e))
}

/// Runs `objseal users`.
pub fn users(ctx: &Ctx, c: UsersCommand) -> Result<(), Failure> {
    let home = store::home_dir(ctx.home.as_deref())?;
    // Creates the home on first use, as every command does.
    let store = store::Store::open(&home, ctx.quiet)?;
    match c {
        UsersCommand::Add { name, json } => {
            let user = objseal_gateway::users::add_user(&store.home, &name).map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidInput
                    || e.kind() == std::io::ErrorKind::AlreadyExists
                {
                    Failure::usage(e.to_string())
                } else {
                    Failure::io(&store.home, &e)
                }
            })?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "user": user.user,
                        "access_key_id": user.access_key_id,
                        "secret_access_key": user.secret_access_key,
                    })
                );
            } else {
                println!(
                    "user: {}\naccess key id: {}\nsecret access key: {}",
                    user.user, user.access_key_id, user.secret_access_key
                );
            }
            Ok(())
        }
    }
}
