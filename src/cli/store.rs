//! The embedded key store: where it lives and how it is created on first use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use objseal::{Engine, Error, Keyring, Kms, KmsError, LocalKms};

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
}

impl Store {
    /// Opens the store at `home`, creating what is missing (and saying so
    /// once on stderr).
    pub fn open(home: &Path) -> Result<Store, Failure> {
        let at = |e| Failure::from_error(e, home);
        let mut created = false;
        if !home.exists() {
            std::fs::create_dir_all(home).map_err(|e| Failure::io(home, &e))?;
            created = true;
        }
        #[cfg(unix)]
        if created {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Failure::io(home, &e))?;
        }
        let ring_path = home.join(KEYRING_FILE);
        let keyring = if ring_path.exists() {
            Keyring::open(&ring_path).map_err(at)?
        } else {
            created = true;
            Keyring::create(&ring_path, KEYRING_ID).map_err(at)?
        };
        let kms = LocalKms::open(home.join(KMS_DIR), REGION, ACCOUNT).map_err(at)?;
        if let Err(Error::Kms(KmsError::NotFound { .. })) = kms.describe_key(DEFAULT_ALIAS) {
            let meta = kms
                .create_key("objseal command line default key", PRINCIPAL)
                .map_err(at)?;
            kms.create_alias(DEFAULT_ALIAS, &meta.key_id, PRINCIPAL)
                .map_err(at)?;
            created = true;
        }
        if created {
            eprintln!(
                "objseal: created a key store in {} (SSE-S3 keyring, local KMS with key {DEFAULT_ALIAS}); back it up: sealed files cannot be opened without it",
                home.display()
            );
        }
        Ok(Store {
            home: home.to_path_buf(),
            keyring: Arc::new(keyring),
            kms: Arc::new(kms),
        })
    }

    /// An engine over this store.
    pub fn engine(&self) -> Engine {
        let kms: Arc<dyn Kms> = self.kms.clone();
        Engine::builder()
            .keyring(self.keyring.clone())
            .kms(kms)
            .principal(PRINCIPAL)
            .default_kms_key(DEFAULT_ALIAS)
            .build()
    }
}
