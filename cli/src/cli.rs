//! Argument parsing and dispatch of the `objseal` command line.

mod bench;
mod fail;
mod fsout;
mod inspect;
mod keys;
mod object;
mod serve;
mod store;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use fail::Failure;

const ROOT_HELP: &str = "\
Exit codes: 0 ok, 1 usage, 2 authentication failure (wrong key, damaged or
foreign file), 3 key management error, 4 I/O error.

The key store lives in --home, else $OBJSEAL_HOME, else $XDG_DATA_HOME/objseal,
else ~/.local/share/objseal; the first command that needs keys creates it.

With --kms aws, SSE-KMS data keys come from AWS KMS (or a service speaking
its API) configured as the AWS SDKs are: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION (or AWS_DEFAULT_REGION),
AWS_ENDPOINT_URL_KMS (or AWS_ENDPOINT_URL). The SSE-S3 keyring stays in the
key store.

Examples:
  objseal seal report.csv                 # writes report.csv.osl (SSE-S3)
  objseal open report.csv.osl -o copy.csv
  objseal inspect report.csv.osl --json
  objseal bench --size 256MiB";

/// Seal and open files with S3-style server-side encryption (SSE-S3,
/// SSE-KMS, SSE-C) on an embedded local key store.
#[derive(Parser)]
#[command(name = "objseal", version, after_help = ROOT_HELP)]
pub struct Cli {
    /// Key store directory (overrides $OBJSEAL_HOME and the data directory).
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// No progress bar and no notes on stderr (errors and warnings, such as
    /// a key file readable by others, are still printed).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Where SSE-KMS data keys come from: the key store's local KMS, or AWS
    /// KMS configured from the environment (AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
    /// AWS_ENDPOINT_URL_KMS).
    #[arg(long, global = true, value_enum, default_value_t = KmsBackend::Local, value_name = "KMS")]
    kms: KmsBackend,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seal a file (or stdin) into an objseal object.
    #[command(after_help = object::SEAL_HELP)]
    Seal(object::SealArgs),
    /// Open a sealed object, whole or a byte range.
    #[command(after_help = object::OPEN_HELP)]
    Open(object::OpenArgs),
    /// Show a sealed object's envelope (no secrets).
    #[command(after_help = inspect::HELP)]
    Inspect(inspect::InspectArgs),
    /// Manage the SSE-S3 keyring.
    #[command(subcommand, after_help = keys::KEYS_HELP)]
    Keys(keys::KeysCommand),
    /// Manage the local KMS (SSE-KMS keys, aliases, audit log).
    #[command(subcommand, after_help = keys::KMS_HELP)]
    Kms(keys::KmsCommand),
    /// Re-wrap sealed objects' data keys under another mode or key, in place
    /// (the body is not re-encrypted).
    #[command(after_help = object::REWRAP_HELP)]
    Rewrap(object::RewrapArgs),
    /// Measure seal/open throughput per backend and thread count.
    #[command(after_help = bench::HELP)]
    Bench(bench::BenchArgs),
    /// Serve an S3-compatible endpoint that stores every object sealed.
    #[command(after_help = serve::SERVE_HELP)]
    Serve(serve::ServeArgs),
    /// Manage the S3 endpoint's users and access keys.
    #[command(subcommand, after_help = serve::USERS_HELP)]
    Users(serve::UsersCommand),
}

/// Where SSE-KMS data keys come from (`--kms`).
#[derive(Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum KmsBackend {
    /// The key store's local KMS.
    #[default]
    Local,
    /// AWS KMS, configured from the environment as the AWS SDKs are.
    Aws,
}

/// What every command gets besides its own arguments.
pub struct Ctx {
    home: Option<PathBuf>,
    /// Whether to keep stderr to errors only.
    pub quiet: bool,
    /// Where SSE-KMS data keys come from.
    pub kms: KmsBackend,
}

impl Ctx {
    /// Opens (creating on first use) the key store; with `--kms aws`, its
    /// engine asks AWS KMS for SSE-KMS data keys.
    pub fn store(&self) -> Result<store::Store, Failure> {
        let home = store::home_dir(self.home.as_deref())?;
        let mut store = store::Store::open(&home, self.quiet)?;
        if self.kms == KmsBackend::Aws {
            store.use_aws_kms()?;
        }
        Ok(store)
    }
}

/// Object identity options shared by seal, open and rewrap.
#[derive(Args, Clone, Default)]
pub struct BindingArgs {
    /// Bucket the object is bound to (seal: default `local`; open: default
    /// the one recorded in the file).
    #[arg(long, value_name = "B")]
    bucket: Option<String>,
    /// Object key it is bound to (seal: default the input's file name; open:
    /// default the one recorded in the file).
    #[arg(long, value_name = "K")]
    key: Option<String>,
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { fail::USAGE } else { 0 });
        }
    };
    let ctx = Ctx {
        home: cli.home,
        quiet: cli.quiet,
        kms: cli.kms,
    };
    let result = match cli.command {
        Command::Seal(a) => object::seal(&ctx, a),
        Command::Open(a) => object::open(&ctx, a),
        Command::Inspect(a) => inspect::run(a),
        Command::Keys(c) => keys::keys(&ctx, c),
        Command::Kms(_) if ctx.kms == KmsBackend::Aws => Err(Failure::usage(
            "`objseal kms` manages the local KMS only; with --kms aws, manage keys, aliases and audit logs in AWS KMS (console, aws kms CLI)",
        )),
        Command::Kms(c) => keys::kms(&ctx, c),
        Command::Rewrap(a) => object::rewrap(&ctx, a),
        Command::Bench(a) => bench::run(&ctx, a),
        Command::Serve(a) => serve::serve(&ctx, a),
        Command::Users(c) => serve::users(&ctx, c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("objseal: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Whether `p` names stdin/stdout.
pub fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}
