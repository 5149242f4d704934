//! The embedded key store: where it lives and how it is created on first use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use objseal::{AwsKms, Engine, Error, KeyError, Keyring, Kms, KmsError, LocalKms};

use super::Failure;

/// The region the local KMS serves.
pub const REGION: &str = "local-1";
/// The account the local KMS serves.
pub const ACCOUNT: &str = "000000000000";
/// The alias of the default KMS key.
pub const DEFAULT_ALIAS: &str = "alias/objseal";
/// The principal the command line names in KMS requests and its audit log.
pub const PRINCIPAL: &str = "objseal-cli";
const KEYRING_FILE: &str = "keyring.json";
const KMS_DIR: &str = "kms";
const KEYRING_ID: &str = "objseal-s3";
/// Written last when a store is created: from then on its files are never
/// created again.
const MARKER_FILE: &str = "home.json";
/// The home's lock, held while the store is opened or created.
const LOCK_FILE: &str = ".objseal.lock";

/// Takes the home's lock (an advisory lock on `.objseal.lock`), waiting at
/// most the store lock timeout; a link, FIFO or device there is refused
/// without blocking.
fn lock_home(home: &Path) -> Result<objseal::fs::FileLock, Error> {
    objseal::fs::FileLock::acquire(&home.join(LOCK_FILE))
}

/// The store lock timeout: `$OBJSEAL_LOCK_TIMEOUT` seconds, else 10 s.
pub fn lock_timeout() -> std::time::Duration {
    std::env::var("OBJSEAL_LOCK_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(
            std::time::Duration::from_secs(10),
            std::time::Duration::from_secs_f64,
        )
}

/// An I/O error on `path`.
fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: Some(path.to_path_buf()),
        source: e,
    }
}

/// Writes the creation marker atomically.
fn write_marker(path: &Path) -> Result<(), Error> {
    use std::io::Write as _;
    let staged = objseal::fs::StagedFile::create(path)?;
    let text = format!(
        "{{\"format\":\"objseal-home/1\",\"created_unix\":{}}}\n",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    staged
        .file()
        .write_all(text.as_bytes())
        .map_err(|e| io_error(path, e))?;
    staged.commit()
}

/// The store directory: `--home`, else `$OBJSEAL_HOME`, else
/// `$XDG_DATA_HOME/objseal`, else `$HOME/.local/share/objseal`.
pub fn home_dir(flag: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    let env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("OBJSEAL_HOME") {
        return Ok(p);
    }
    if let Some(p) = env("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        return Ok(p.join("objseal"));
    }
    if let Some(p) = env("HOME") {
        return Ok(p.join(".local").join("share").join("objseal"));
    }
    Err(Failure::usage(
        "cannot find a place for the key store: set OBJSEAL_HOME or pass --home DIR",
    ))
}

/// The opened key store.
pub struct Store {
    /// Its directory.
    pub home: PathBuf,
    /// The SSE-S3 keyring.
    pub keyring: Arc<Keyring>,
    /// The local KMS.
    pub kms: Arc<LocalKms>,
    /// AWS KMS (`--kms aws`): when set, the engine's SSE-KMS keys come from
    /// it instead of the local KMS.
    pub aws_kms: Option<Arc<AwsKms>>,
}

impl Store {
    /// Opens the store at `home`, creating it on first use (and saying so
    /// once on stderr).
    ///
    /// Creation is atomic across processes (under the home's lock, and
    /// marked by `home.json`, written last). Once a store was created, a
    /// missing keyring or KMS file is an error naming it, never a new key.
    pub fn open(home: &Path, quiet: bool) -> Result<Store, Failure> {
        let at = |e| Failure::from_error(e, home);
        objseal::fs::set_lock_timeout(lock_timeout());
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(home).map_err(|e| Failure::io(home, &e))?;
        if !home.is_dir() {
            return Err(Failure::io(
                home,
                &std::io::Error::other("the key store path is not a directory"),
            ));
        }
        let kms_dir = home.join(KMS_DIR);
        // Temporary files of killed writers (key store saves): swept here.
        for dir in [home, kms_dir.as_path()] {
            objseal::fs::remove_stale_temp_files(dir).map_err(at)?;
        }
        let ring_path = home.join(KEYRING_FILE);
        let marker = home.join(MARKER_FILE);
        let _lock = lock_home(home).map_err(at)?;
        let existed = match std::fs::symlink_metadata(&marker) {
            Ok(m) if m.is_file() => true,
            Ok(_) => {
                return Err(at(Error::Key(KeyError::NotRegularFile {
                    path: marker,
                    kind: "special file",
                })));
            }
            Err(_) => false,
        };
        let (keyring, kms) = if existed {
            let lost = |path: &Path| {
                at(Error::Key(KeyError::StoreMissing {
                    path: path.to_path_buf(),
                    reason: format!("{} records its creation", marker.display()),
                }))
            };
            if std::fs::symlink_metadata(&ring_path).is_err() {
                return Err(lost(&ring_path));
            }
            let keyring = Keyring::open(&ring_path).map_err(at)?;
            let kms = LocalKms::open_existing(&kms_dir, REGION, ACCOUNT).map_err(|e| match e {
                Error::Key(KeyError::StoreMissing { path, .. }) => lost(&path),
                e => at(e),
            })?;
            (keyring, kms)
        } else {
            // First use (or a store made before the marker existed: adopt
            // what is there, create what is not). A keyring is created only
            // where no other part of a store is: with a local KMS already
            // there, a missing keyring was lost (the marker with it), not
            // never made.
            let kms_used = std::fs::symlink_metadata(kms_dir.join("keys.json")).is_ok()
                || std::fs::symlink_metadata(kms_dir.join("audit.jsonl"))
                    .is_ok_and(|m| m.len() > 0);
            if kms_used && std::fs::symlink_metadata(&ring_path).is_err() {
                return Err(at(Error::Key(KeyError::StoreMissing {
                    path: ring_path,
                    reason: format!("{} holds a local KMS of this store", kms_dir.display()),
                })));
            }
            let (keyring, _) = Keyring::open_or_create(&ring_path, KEYRING_ID).map_err(at)?;
            let kms = LocalKms::open(&kms_dir, REGION, ACCOUNT).map_err(at)?;
            match kms.describe_key(DEFAULT_ALIAS) {
                Ok(_) => {}
                Err(Error::Kms(KmsError::NotFound { .. })) => {
                    kms.create_key_with_alias(
                        "objseal command line default key",
                        DEFAULT_ALIAS,
                        PRINCIPAL,
                    )
                    .map_err(at)?;
                }
                Err(e) => return Err(at(e)),
            }
            write_marker(&marker).map_err(at)?;
            if !quiet {
                eprintln!(
                    "objseal: created a key store in {} (SSE-S3 keyring, local KMS with key {DEFAULT_ALIAS}); back it up: sealed files cannot be opened without it",
                    home.display()
                );
            }
            (keyring, kms)
        };
        Ok(Store {
            home: home.to_path_buf(),
            keyring: Arc::new(keyring),
            kms: Arc::new(kms),
            aws_kms: None,
        })
    }

    /// Makes the engine ask AWS KMS, configured from the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_REGION`, `AWS_ENDPOINT_URL_KMS`, ...), for SSE-KMS data keys.
    /// Makes no request: a missing variable fails here, an unreachable
    /// KMS on first use.
    pub fn use_aws_kms(&mut self) -> Result<(), Failure> {
        let kms = AwsKms::from_env().map_err(|e| Failure {
            code: super::fail::code_of(&e),
            message: format!("--kms aws: {e}"),
        })?;
        self.aws_kms = Some(Arc::new(kms));
        Ok(())
    }

    /// An engine over this store.
    pub fn engine(&self) -> Engine {
        let kms: Arc<dyn Kms> = match &self.aws_kms {
            Some(aws) => aws.clone(),
            None => self.kms.clone(),
        };
        Engine::builder()
            .keyring(self.keyring.clone())
            .kms(kms)
            .principal(PRINCIPAL)
            .default_kms_key(DEFAULT_ALIAS)
            .build()
    }
}
