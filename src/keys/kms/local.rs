//! [`LocalKms`]: the embedded key-management service, kept in a directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::audit::{AuditLog, AuditQuery, AuditRecord, AuditReport};
use super::{DecryptedDataKey, GeneratedDataKey, Kms};
use crate::cipher::Aes256Gcm;
use crate::error::{Error, KeyError, KmsError};
use crate::fsio;
use crate::keys::context::EncryptionContext;
use crate::keys::secret::{CmkMaterial, KmsDataKey, fill_random};
use crate::keys::wrap::put16;

const KEYS_FILE: &str = "keys.json";
const AUDIT_FILE: &str = "audit.jsonl";
const LOCK_FILE: &str = "keys.json.lock";
/// The principal of the audit records of automatic rotations.
pub const AUTO_ROTATION_PRINCIPAL: &str = "objseal-kms/automatic-rotation";
const FILE_FORMAT: &str = "objseal-localkms/1";
const MAX_FILE_LEN: u64 = 64 << 20;
/// Magic that starts a LocalKms ciphertext blob.
const BLOB_MAGIC: &[u8; 6] = b"OSKMS1";
const BLOB_SALT_LEN: usize = 32;
const BLOB_HASH_LEN: usize = 32;
const BLOB_WRAPPED_LEN: usize = 48;
const KEY_ID_LEN: usize = 36;

/// The state of a customer master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    /// Usable.
    Enabled,
    /// Refuses every cryptographic operation until enabled.
    Disabled,
    /// Scheduled for deletion at `deletion_date` (seconds since the Unix
    /// epoch); refuses every cryptographic operation until cancelled.
    PendingDeletion {
        /// When the key material is destroyed.
        deletion_date: u64,
    },
}

/// What is known about a customer master key (no key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMetadata {
    /// The key id (a UUID).
    pub key_id: String,
    /// `arn:aws:kms:REGION:ACCOUNT:key/ID`.
    pub arn: String,
    /// The key's region.
    pub region: String,
    /// The key's account.
    pub account: String,
    /// Free text.
    pub description: String,
    /// The key's state.
    pub state: KeyState,
    /// The version that encrypts new data keys.
    pub current_version: u32,
    /// Every version kept (all of them, for decryption).
    pub versions: Vec<u32>,
    /// The automatic rotation period, if automatic rotation is on.
    pub rotation_period: Option<Duration>,
    /// Aliases naming the key (`alias/NAME`).
    pub aliases: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    format: String,
    keys: Vec<CmkFile>,
    aliases: BTreeMap<String, String>,
    /// The audit records of the change that wrote this file: durable here
    /// first, then appended to the log at `audit_offset` (again by the next
    /// operation, if the log is shorter than that).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending_audit: Vec<AuditRecord>,
    #[serde(default)]
    audit_offset: u64,
    /// The audit log file those records go to (device and inode): a log
    /// replaced since (rotated by hand) does not get them again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audit_log: Option<[u64; 2]>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CmkFile {
    key_id: String,
    region: String,
    account: String,
    description: String,
    created: u64,
    state: KeyState,
    rotation_period_secs: Option<u64>,
    last_rotation: u64,
    versions: Vec<VersionFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionFile {
    version: u32,
    created: u64,
    material: String,
}

struct Cmk {
    key_id: String,
    region: String,
    account: String,
    description: String,
    created: u64,
    state: KeyState,
    rotation_period_secs: Option<u64>,
    last_rotation: u64,
    versions: BTreeMap<u32, (u64, CmkMaterial)>,
}

impl Cmk {
    fn arn(&self) -> String {
        format!(
            "arn:aws:kms:{}:{}:key/{}",
            self.region, self.account, self.key_id
        )
    }

    fn current(&self) -> u32 {
        self.versions.keys().next_back().copied().unwrap_or(0)
    }
}

struct Inner {
    keys: BTreeMap<String, Cmk>,
    aliases: BTreeMap<String, String>,
    audit: AuditLog,
    /// The version of `keys.json` this state was read from or written as;
    /// `None` forces a re-read.
    pinned: Option<fsio::Pinned>,
    /// The records of the last change and where they go in the log.
    pending: Vec<AuditRecord>,
    pending_offset: u64,
    pending_log: Option<[u64; 2]>,
    /// Set by an operation that changed the state (to be saved).
    dirty: bool,
    /// Records an operation adds besides its own (automatic rotation).
    side_records: Vec<AuditRecord>,
}

/// The embedded key-management service: customer master keys (CMKs) kept in
/// a directory (`keys.json`, mode 0600, written atomically; refused when
/// group- or world-readable) with an append-only, fsynced audit log
/// (`audit.jsonl`, one JSON line per use, failures included).
///
/// A `LocalKms` serves one region and account, as a KMS endpoint does: a key
/// ARN of another region, or a key created in another region of a shared
/// directory, is refused with [`KmsError::WrongRegion`]. Keys are referred
/// to by key id, key ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`), alias
/// (`alias/NAME`) or alias ARN. Rotation (on demand, or automatic once a
/// key's rotation period has passed) adds a version; every old version is
/// kept for decryption.
///
/// Each data key blob is the data key sealed with AES-256-GCM under a
/// key-encryption key derived by HKDF-SHA-256 from the CMK version with a
/// fresh 32-byte salt, the key ARN, the version and the encryption context,
/// so no CMK version ever approaches a nonce limit.
///
/// ```
/// use objseal::keys::{EncryptionContext, Kms, LocalKms, AuditQuery};
///
/// let dir = tempfile::tempdir()?;
/// let kms = LocalKms::open(dir.path(), "eu-west-1", "111122223333")?;
/// let key = kms.create_key("reports", "admin")?;
/// kms.create_alias("alias/reports", &key.key_id, "admin")?;
///
/// let ctx = EncryptionContext::new().with("team", "finance")?;
/// let dk = kms.generate_data_key("alias/reports", &ctx, "app")?;
/// assert_eq!(dk.key_arn, key.arn);
/// let back = kms.decrypt(&dk.key_arn, &dk.blob, &ctx, "app")?;
/// assert_eq!(back.key, dk.key);
///
/// // A wrong context fails, and is audited.
/// assert!(kms.decrypt(&dk.key_arn, &dk.blob, &EncryptionContext::new(), "app").is_err());
/// let uses = kms.audit(&AuditQuery { principal: Some("app".into()), ..Default::default() })?;
/// assert_eq!(uses.len(), 3);
/// assert!(!uses[2].succeeded());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LocalKms {
    dir: PathBuf,
    region: String,
    account: String,
    inner: Mutex<Inner>,
}

impl core::fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LocalKms")
            .field("dir", &self.dir)
            .field("region", &self.region)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// The outcome of one audited operation.
struct Audited<T> {
    result: Result<T, Error>,
    key_arn: Option<String>,
    key_version: Option<u32>,
    /// For an operation on several keys: one success record per key ARN
    /// instead of one record for the operation.
    per_key: Option<Vec<String>>,
}

impl LocalKms {
    /// Opens the KMS kept in `dir`, serving `region` and `account` (12
    /// digits), creating an empty one if `dir` is missing or holds no store
    /// (no `keys.json` and an empty or absent audit log). A `dir` whose
    /// `keys.json` is gone but whose audit log has records is refused with
    /// [`KeyError::StoreMissing`]: its keys must be restored, not replaced.
    ///
    /// Several processes (and threads) may use one directory: each
    /// operation takes an exclusive lock on `keys.json.lock`, re-reads
    /// `keys.json` if another process changed it, makes its change, and
    /// replaces the file atomically; the change's audit records are written
    /// into `keys.json` with it and then appended to the log, so a crash
    /// between the two cannot lose them (the next operation appends them).
    pub fn open(dir: impl AsRef<Path>, region: &str, account: &str) -> Result<Self, Error> {
        Self::open_inner(dir.as_ref(), region, account, true)
    }

    /// Opens the KMS kept in `dir` like [`LocalKms::open`], but never creates
    /// one: a missing `keys.json` is [`KeyError::StoreMissing`]. For callers
    /// that know the store existed.
    pub fn open_existing(
        dir: impl AsRef<Path>,
        region: &str,
        account: &str,
    ) -> Result<Self, Error> {
        Self::open_inner(dir.as_ref(), region, account, false)
    }

    fn open_inner(dir: &Path, region: &str, account: &str, create: bool) -> Result<Self, Error> {
        let dir = dir.to_path_buf();
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(KmsError::InvalidKeyReference {
                value: region.to_owned(),
            }
            .into());
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(KmsError::InvalidKeyReference {
                value: account.to_owned(),
            }
            .into());
        }
        if create {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(&dir).map_err(|e| Error::io_at(&dir, e))?;
        } else if !dir.is_dir() {
            return Err(KeyError::StoreMissing {
                path: dir,
                reason: "the key store was created before".into(),
            }
            .into());
        }
        let this_region = region.to_owned();
        let this_account = account.to_owned();
        let keys_path = dir.join(KEYS_FILE);
        let audit_path = dir.join(AUDIT_FILE);
        let _flock = fsio::FileLock::acquire(&dir.join(LOCK_FILE))?;
        let (loaded, pinned) = if std::fs::symlink_metadata(&keys_path).is_ok() {
            let (loaded, pinned) = load(&keys_path)?;
            (loaded, Some(pinned))
        } else {
            if !create {
                return Err(KeyError::StoreMissing {
                    path: keys_path,
                    reason: "the key store was created before".into(),
                }
                .into());
            }
            let audit_len = std::fs::symlink_metadata(&audit_path).map_or(0, |m| m.len());
            if audit_len > 0 {
                return Err(KeyError::StoreMissing {
                    path: keys_path,
                    reason: format!("its audit log {} has records", audit_path.display()),
                }
                .into());
            }
            let empty = Loaded::default();
            save_file(&keys_path, &empty)?;
            (empty, fsio::pin(&keys_path))
        };
        let mut audit = AuditLog::open(&audit_path)?;
        // Records a killed process saved with its change but did not get
        // into the log are appended now, under the lock, so the log is
        // complete from the first open after the kill on, not only after
        // the next operation. Best effort: if the append fails (full disk),
        // they stay pending and the next operation appends them or fails.
        if !loaded.pending.is_empty() {
            let _ = audit.repair_tail().and_then(|_| {
                audit.complete_batch(loaded.pending_offset, loaded.pending_log, &loaded.pending)
            });
        }
        Ok(LocalKms {
            dir,
            region: this_region,
            account: this_account,
            inner: Mutex::new(Inner {
                keys: loaded.keys,
                aliases: loaded.aliases,
                audit,
                pinned,
                pending: loaded.pending,
                pending_offset: loaded.pending_offset,
                pending_log: loaded.pending_log,
                dirty: false,
                side_records: Vec::new(),
            }),
        })
    }

    /// The region this KMS serves.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The path of the audit log.
    pub fn audit_path(&self) -> PathBuf {
        self.dir.join(AUDIT_FILE)
    }

    /// The path of the key file (the only file holding key material).
    pub fn keys_path(&self) -> PathBuf {
        self.dir.join(KEYS_FILE)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Brings the cached state up to date with the store, under both locks:
    /// re-reads `keys.json` if another process replaced it, cuts a torn
    /// tail off the audit log, and appends the last change's records if
    /// they are not in the log yet.
    fn sync_locked(&self, inner: &mut Inner) -> Result<(), Error> {
        self.refresh_locked(inner)?;
        inner.audit.reopen_if_replaced()?;
        inner.audit.repair_tail()?;
        inner
            .audit
            .complete_batch(inner.pending_offset, inner.pending_log, &inner.pending)?;
        Ok(())
    }

    /// Re-reads `keys.json` if it changed since it was read or written
    /// here (no store lock needed: the file is replaced atomically).
    fn refresh_locked(&self, inner: &mut Inner) -> Result<(), Error> {
        let path = self.keys_path();
        if inner.pinned.as_ref().is_some_and(|p| p.is_current(&path)) {
            return Ok(());
        }
        let (loaded, pinned) = load(&path).map_err(|e| fsio::missing_is_lost(e, &path))?;
        inner.keys = loaded.keys;
        inner.aliases = loaded.aliases;
        inner.pending = loaded.pending;
        inner.pending_offset = loaded.pending_offset;
        inner.pending_log = loaded.pending_log;
        inner.pinned = Some(pinned);
        Ok(())
    }

    /// One audit record, stamped now.
    fn record(
        operation: &str,
        principal: &str,
        key_arn: Option<String>,
        key_version: Option<u32>,
        context: Option<&EncryptionContext>,
        result: Result<(), &Error>,
    ) -> AuditRecord {
        let ms = fsio::unix_now_ms();
        AuditRecord {
            time: fsio::rfc3339(ms / 1000),
            unix_ms: ms,
            principal: principal.to_owned(),
            operation: operation.to_owned(),
            key_arn,
            key_version,
            encryption_context: context.cloned(),
            outcome: if result.is_ok() { "Success" } else { "Failure" }.to_owned(),
            error: result.err().map(error_kind),
        }
    }

    /// Runs `op` under the process's mutex and the store's file lock, on
    /// the store's current state, and records it in the audit log; the
    /// caller sees `op`'s result only once its record is durable.
    ///
    /// A change is saved to `keys.json` together with its audit records
    /// (write-ahead), then the records are appended to the log. If that
    /// append fails, the change stands and its records are appended by the
    /// next operation (which fails rather than run while they are missing).
    fn audited<T>(
        &self,
        operation: &str,
        principal: &str,
        key_ref: &str,
        context: Option<&EncryptionContext>,
        op: impl FnOnce(&Self, &mut Inner) -> Audited<T>,
    ) -> Result<T, Error> {
        let mut inner = self.lock();
        let _flock = fsio::FileLock::acquire(&self.dir.join(LOCK_FILE))?;
        self.sync_locked(&mut inner)?;
        inner.dirty = false;
        inner.side_records.clear();
        let out = op(self, &mut inner);
        let key_arn = out
            .key_arn
            .or_else(|| (!key_ref.is_empty()).then(|| key_ref.to_owned()));
        let mut records = std::mem::take(&mut inner.side_records);
        match out.per_key {
            Some(arns) => {
                for arn in arns {
                    records.push(Self::record(
                        operation,
                        principal,
                        Some(arn),
                        None,
                        context,
                        Ok(()),
                    ));
                }
            }
            None => records.push(Self::record(
                operation,
                principal,
                key_arn.clone(),
                out.key_version,
                context,
                out.result.as_ref().map(|_| ()),
            )),
        }
        if std::mem::take(&mut inner.dirty) {
            if out.result.is_ok() {
                let offset = match inner.audit.len() {
                    Ok(n) => n,
                    Err(e) => {
                        // The change was never saved: drop it from the cache.
                        inner.pinned = None;
                        return Err(e);
                    }
                };
                let before_pending = std::mem::replace(&mut inner.pending, records.clone());
                let before_offset = std::mem::replace(&mut inner.pending_offset, offset);
                let log_id = inner.audit.file_id();
                let before_log = std::mem::replace(&mut inner.pending_log, log_id);
                match self.save(&inner) {
                    // A failure after the new file replaced the old one
                    // (only the directory's fsync failed) is a change made,
                    // with its records: it is reported and logged as made.
                    Err(f) if !f.renamed => {
                        let e = f.error;
                        inner.pending = before_pending;
                        inner.pending_offset = before_offset;
                        inner.pending_log = before_log;
                        inner.pinned = None;
                        let failed = Self::record(
                            operation,
                            principal,
                            key_arn,
                            out.key_version,
                            context,
                            Err(&e),
                        );
                        inner.audit.append_all(&[failed])?;
                        return Err(e);
                    }
                    Ok(()) | Err(_) => {
                        inner.pinned = fsio::pin(&self.keys_path());
                        // Durable in keys.json already: a failed append is
                        // made good by the next operation.
                        let _ = inner.audit.append_all(&records);
                        return out.result;
                    }
                }
            }
            // A failed operation must not leave half a change cached.
            inner.pinned = None;
        }
        // A use of a key changes no state: its record is written under the
        // locks (keeping the log's order) and made durable after them, so
        // concurrent callers share the disk flush instead of queueing on it.
        inner.audit.append_unsynced(&records)?;
        let sync = inner.audit.sync_handle()?;
        drop(_flock);
        drop(inner);
        sync.sync_data()
            .map_err(|e| Error::io_at(self.audit_path(), e))?;
        out.result
    }

    /// Audit records matching `query`, oldest first. A line of the log
    /// that does not parse is an error ([`KeyError::CorruptStore`] naming
    /// it); [`LocalKms::audit_report`] reports such lines instead.
    pub fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, Error> {
        let end = {
            let mut inner = self.lock();
            let _flock = fsio::FileLock::acquire(&self.dir.join(LOCK_FILE))?;
            self.sync_locked(&mut inner)?;
            inner.audit.len()?
        };
        // Read after the locks: the log only grows by whole lines below
        // `end`, so other operations go on while a long log is read.
        AuditLog::query_at(&self.audit_path(), query, end)
    }

    /// Audit records matching `query`, with the lines that could not be
    /// read listed apart instead of failing the whole query. Repairs a torn
    /// last line first when it can (when it cannot, for example on a
    /// read-only store, the torn line is reported).
    pub fn audit_report(&self, query: &AuditQuery) -> Result<AuditReport, Error> {
        let end = {
            let mut inner = self.lock();
            if let Ok(_flock) = fsio::FileLock::acquire(&self.dir.join(LOCK_FILE)) {
                let _ = self.sync_locked(&mut inner);
            }
            inner.audit.len()?
        };
        AuditLog::report_at(&self.audit_path(), query, end)
    }

    /// Creates an enabled customer master key in this region.
    pub fn create_key(&self, description: &str, principal: &str) -> Result<KeyMetadata, Error> {
        self.audited("CreateKey", principal, "", None, |this, inner| {
            match this.insert_new_key(inner, description) {
                Ok(id) => {
                    let cmk = &inner.keys[&id];
                    Audited {
                        key_arn: Some(cmk.arn()),
                        key_version: Some(1),
                        result: Ok(metadata(cmk, &inner.aliases)),
                        per_key: None,
                    }
                }
                Err(e) => fail(e),
            }
        })
    }

    /// Creates an enabled key named `alias` in one change: a crash leaves
    /// both or neither (with [`LocalKms::create_key`] then
    /// [`LocalKms::create_alias`], a crash in between leaves a key with no
    /// name). Audited as a `CreateKey` and a `CreateAlias` record.
    pub fn create_key_with_alias(
        &self,
        description: &str,
        alias: &str,
        principal: &str,
    ) -> Result<KeyMetadata, Error> {
        self.audited("CreateAlias", principal, "", None, |this, inner| {
            if let Err(e) = check_alias(inner, alias) {
                return fail(e.into());
            }
            let id = match this.insert_new_key(inner, description) {
                Ok(id) => id,
                Err(e) => return fail(e),
            };
            let arn = inner.keys[&id].arn();
            inner.side_records.push(Self::record(
                "CreateKey",
                principal,
                Some(arn.clone()),
                Some(1),
                None,
                Ok(()),
            ));
            inner.aliases.insert(alias.to_owned(), id.clone());
            Audited {
                key_arn: Some(arn),
                key_version: None,
                result: Ok(metadata(&inner.keys[&id], &inner.aliases)),
                per_key: None,
            }
        })
    }

    /// Adds a fresh enabled key to the state (to be saved); returns its id.
    fn insert_new_key(&self, inner: &mut Inner, description: &str) -> Result<String, Error> {
        let mut id = [0u8; 16];
        fill_random(&mut id)?;
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        let h: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let key_id = format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        );
        let now = fsio::unix_now();
        let mut versions = BTreeMap::new();
        versions.insert(1, (now, CmkMaterial::generate()?));
        let cmk = Cmk {
            key_id: key_id.clone(),
            region: self.region.clone(),
            account: self.account.clone(),
            description: description.to_owned(),
            created: now,
            state: KeyState::Enabled,
            rotation_period_secs: None,
            last_rotation: now,
            versions,
        };
        inner.keys.insert(key_id.clone(), cmk);
        inner.dirty = true;
        Ok(key_id)
    }

    /// Names key `target` (a key id or ARN) `alias` (`alias/NAME`).
    pub fn create_alias(&self, alias: &str, target: &str, principal: &str) -> Result<(), Error> {
        self.audited("CreateAlias", principal, target, None, |this, inner| {
            if let Err(e) = check_alias(inner, alias) {
                return fail(e.into());
            }
            let id = match this.resolve(inner, target) {
                Ok(cmk) => cmk.key_id.clone(),
                Err(e) => return fail(e.into()),
            };
            inner.aliases.insert(alias.to_owned(), id.clone());
            inner.dirty = true;
            Audited {
                result: Ok(()),
                key_arn: Some(inner.keys[&id].arn()),
                key_version: None,
                per_key: None,
            }
        })
    }

    /// Metadata of the key `key_ref` (not audited: no key material is used).
    pub fn describe_key(&self, key_ref: &str) -> Result<KeyMetadata, Error> {
        let mut inner = self.lock();
        self.refresh_locked(&mut inner)?;
        let cmk = self.resolve(&inner, key_ref)?;
        Ok(metadata(cmk, &inner.aliases))
    }

    /// Every key in this directory, in any region.
    pub fn list_keys(&self) -> Result<Vec<KeyMetadata>, Error> {
        let mut inner = self.lock();
        self.refresh_locked(&mut inner)?;
        Ok(inner
            .keys
            .values()
            .map(|k| metadata(k, &inner.aliases))
            .collect())
    }

    /// Changes a key's state through `change`, saving and auditing.
    fn set_state(
        &self,
        operation: &str,
        key_ref: &str,
        principal: &str,
        change: impl FnOnce(&Cmk) -> Result<KeyState, KmsError>,
    ) -> Result<(), Error> {
        self.audited(operation, principal, key_ref, None, |this, inner| {
            let (id, arn, old, new) = match this
                .resolve(inner, key_ref)
                .and_then(|c| Ok((c.key_id.clone(), c.arn(), c.state, change(c)?)))
            {
                Ok(x) => x,
                Err(e) => return fail(e.into()),
            };
            if new != old {
                set(inner, &id, new);
                inner.dirty = true;
            }
            Audited {
                result: Ok(()),
                key_arn: Some(arn),
                key_version: None,
                per_key: None,
            }
        })
    }

    /// Enables a disabled key.
    pub fn enable_key(&self, key_ref: &str, principal: &str) -> Result<(), Error> {
        self.set_state("EnableKey", key_ref, principal, |c| match c.state {
            KeyState::PendingDeletion { .. } => Err(pending(c)),
            _ => Ok(KeyState::Enabled),
        })
    }

    /// Disables a key: it refuses every cryptographic operation.
    pub fn disable_key(&self, key_ref: &str, principal: &str) -> Result<(), Error> {
        self.set_state("DisableKey", key_ref, principal, |c| match c.state {
            KeyState::PendingDeletion { .. } => Err(pending(c)),
            _ => Ok(KeyState::Disabled),
        })
    }

    /// Schedules a key's deletion in `days` (7 to 30) days.
    pub fn schedule_key_deletion(
        &self,
        key_ref: &str,
        days: u32,
        principal: &str,
    ) -> Result<(), Error> {
        self.set_state("ScheduleKeyDeletion", key_ref, principal, |c| {
            if !(7..=30).contains(&days) {
                return Err(KmsError::InvalidDeletionWindow { days });
            }
            match c.state {
                KeyState::PendingDeletion { .. } => Err(pending(c)),
                _ => Ok(KeyState::PendingDeletion {
                    deletion_date: fsio::unix_now() + u64::from(days) * 86_400,
                }),
            }
        })
    }

    /// Cancels a scheduled deletion; the key becomes disabled, as in AWS KMS.
    pub fn cancel_key_deletion(&self, key_ref: &str, principal: &str) -> Result<(), Error> {
        self.set_state("CancelKeyDeletion", key_ref, principal, |c| match c.state {
            KeyState::PendingDeletion { .. } => Ok(KeyState::Disabled),
            _ => Err(KmsError::InvalidState {
                arn: c.arn(),
                reason: "it is not pending deletion".into(),
            }),
        })
    }

    /// Turns automatic rotation on (every `period`) or off (`None`).
    pub fn set_rotation_period(
        &self,
        key_ref: &str,
        period: Option<Duration>,
        principal: &str,
    ) -> Result<(), Error> {
        self.audited("SetKeyRotation", principal, key_ref, None, |this, inner| {
            let id = match this.resolve(inner, key_ref) {
                Ok(c) => c.key_id.clone(),
                Err(e) => return fail(e.into()),
            };
            let Some(cmk) = inner.keys.get_mut(&id) else {
                return fail(KmsError::NotFound { key_id: id }.into());
            };
            cmk.rotation_period_secs = period.map(|p| p.as_secs());
            let arn = cmk.arn();
            inner.dirty = true;
            Audited {
                result: Ok(()),
                key_arn: Some(arn),
                key_version: None,
                per_key: None,
            }
        })
    }

    /// Rotates a key now: a new version encrypts new data keys; old versions
    /// stay for decryption. Returns the new version.
    pub fn rotate_key(&self, key_ref: &str, principal: &str) -> Result<u32, Error> {
        self.audited("RotateKey", principal, key_ref, None, |this, inner| {
            let id = match this.resolve(inner, key_ref).and_then(usable) {
                Ok(c) => c.key_id.clone(),
                Err(e) => return fail(e.into()),
            };
            match this.rotate_locked(inner, &id) {
                Ok(v) => Audited {
                    result: Ok(v),
                    key_arn: Some(inner.keys[&id].arn()),
                    key_version: Some(v),
                    per_key: None,
                },
                Err(e) => fail_key(e, inner.keys.get(&id)),
            }
        })
    }

    /// Destroys the keys whose deletion date has passed; returns their ARNs.
    pub fn purge_due_deletions(&self, principal: &str) -> Result<Vec<String>, Error> {
        self.audited("PurgeDueDeletions", principal, "", None, |_, inner| {
            let now = fsio::unix_now();
            let due: Vec<String> = inner
                .keys
                .values()
                .filter(|c| matches!(c.state, KeyState::PendingDeletion { deletion_date } if deletion_date <= now))
                .map(|c| c.key_id.clone())
                .collect();
            let mut removed = Vec::new();
            for id in &due {
                if let Some(c) = inner.keys.remove(id) {
                    removed.push(c.arn());
                }
                inner.aliases.retain(|_, target| target != id);
            }
            inner.dirty = !removed.is_empty();
            Audited {
                // One record per destroyed key, naming it; one record with
                // no key when none was due.
                per_key: (!removed.is_empty()).then(|| removed.clone()),
                result: Ok(removed),
                key_arn: None,
                key_version: None,
            }
        })
    }

    fn rotate_locked(&self, inner: &mut Inner, id: &str) -> Result<u32, Error> {
        let _ = self;
        let cmk = inner.keys.get_mut(id).ok_or(KmsError::NotFound {
            key_id: id.to_owned(),
        })?;
        let next = cmk.current().checked_add(1).ok_or(KmsError::InvalidState {
            arn: cmk.arn(),
            reason: "no version number left".into(),
        })?;
        let now = fsio::unix_now();
        cmk.versions.insert(next, (now, CmkMaterial::generate()?));
        cmk.last_rotation = now;
        inner.dirty = true;
        Ok(next)
    }

    /// Resolves a key id, key ARN, alias or alias ARN to a key of this
    /// region and account.
    fn resolve<'a>(&self, inner: &'a Inner, key_ref: &str) -> Result<&'a Cmk, KmsError> {
        let not_found = || KmsError::NotFound {
            key_id: key_ref.to_owned(),
        };
        let id = if let Some(rest) = key_ref.strip_prefix("arn:aws:kms:") {
            let mut it = rest.splitn(3, ':');
            let (Some(region), Some(account), Some(resource)) = (it.next(), it.next(), it.next())
            else {
                return Err(KmsError::InvalidKeyReference {
                    value: key_ref.to_owned(),
                });
            };
            if region != self.region {
                return Err(KmsError::WrongRegion {
                    arn: key_ref.to_owned(),
                    key_region: region.to_owned(),
                    region: self.region.clone(),
                });
            }
            if account != self.account {
                return Err(not_found());
            }
            if let Some(id) = resource.strip_prefix("key/") {
                id.to_owned()
            } else if resource.starts_with("alias/") {
                inner.aliases.get(resource).cloned().ok_or_else(not_found)?
            } else {
                return Err(KmsError::InvalidKeyReference {
                    value: key_ref.to_owned(),
                });
            }
        } else if key_ref.starts_with("alias/") {
            inner.aliases.get(key_ref).cloned().ok_or_else(not_found)?
        } else if key_ref.len() == KEY_ID_LEN {
            key_ref.to_owned()
        } else {
            return Err(KmsError::InvalidKeyReference {
                value: key_ref.to_owned(),
            });
        };
        let cmk = inner.keys.get(&id).ok_or_else(not_found)?;
        if cmk.region != self.region {
            return Err(KmsError::WrongRegion {
                arn: cmk.arn(),
                key_region: cmk.region.clone(),
                region: self.region.clone(),
            });
        }
        if cmk.account != self.account {
            return Err(not_found());
        }
        Ok(cmk)
    }

    fn save(&self, inner: &Inner) -> Result<(), fsio::CommitFailure> {
        let path = self.keys_path();
        let file = store_file(
            &inner.keys,
            &inner.aliases,
            &inner.pending,
            inner.pending_offset,
            inner.pending_log,
        );
        write_store(&path, file)
    }

    fn generate_locked(
        &self,
        inner: &mut Inner,
        key_ref: &str,
        context: &EncryptionContext,
    ) -> Audited<GeneratedDataKey> {
        if let Err(e) = context.check() {
            return fail(e);
        }
        let (id, due) = match self.resolve(inner, key_ref).and_then(usable) {
            Ok(c) => (
                c.key_id.clone(),
                c.rotation_period_secs
                    .is_some_and(|p| fsio::unix_now().saturating_sub(c.last_rotation) >= p),
            ),
            Err(e) => return fail_key(e, self.resolve(inner, key_ref).ok()),
        };
        if due {
            match self.rotate_locked(inner, &id) {
                Ok(v) => {
                    let arn = inner.keys.get(&id).map(Cmk::arn);
                    inner.side_records.push(Self::record(
                        "RotateKey",
                        AUTO_ROTATION_PRINCIPAL,
                        arn,
                        Some(v),
                        None,
                        Ok(()),
                    ));
                }
                Err(e) => return fail(e),
            }
        }
        let cmk = &inner.keys[&id];
        let arn = cmk.arn();
        let version = cmk.current();
        let result = (|| {
            let key = KmsDataKey::generate()?;
            let (_, material) = &cmk.versions[&version];
            let mut salt = [0u8; BLOB_SALT_LEN];
            fill_random(&mut salt)?;
            let mut blob = Vec::with_capacity(
                6 + 2 + KEY_ID_LEN + 4 + BLOB_SALT_LEN + BLOB_HASH_LEN + BLOB_WRAPPED_LEN,
            );
            blob.extend_from_slice(BLOB_MAGIC);
            put16(&mut blob, id.as_bytes());
            blob.extend_from_slice(&version.to_be_bytes());
            blob.extend_from_slice(&salt);
            blob.extend_from_slice(&context_hash(context));
            let gcm = blob_kek(material, &salt, &arn, version, context)?;
            let mut wrapped = [0u8; 32];
            wrapped.copy_from_slice(key.expose_secret());
            let tag = gcm.seal_in_place(&[0u8; 12], &blob, &mut wrapped)?;
            blob.extend_from_slice(&wrapped);
            blob.extend_from_slice(&tag);
            Ok(GeneratedDataKey {
                key,
                blob,
                key_arn: arn.clone(),
                key_version: Some(version),
            })
        })();
        Audited {
            result,
            key_arn: Some(arn.clone()),
            key_version: Some(version),
            per_key: None,
        }
    }

    fn decrypt_locked(
        &self,
        inner: &Inner,
        key_id: &str,
        blob: &[u8],
        context: &EncryptionContext,
    ) -> Audited<DecryptedDataKey> {
        let invalid = |reason: &str| {
            fail(
                KmsError::InvalidCiphertext {
                    reason: reason.to_owned(),
                }
                .into(),
            )
        };
        let header_len = 6 + 2 + KEY_ID_LEN + 4 + BLOB_SALT_LEN + BLOB_HASH_LEN;
        if blob.len() != header_len + BLOB_WRAPPED_LEN
            || &blob[..6] != BLOB_MAGIC
            || blob[6..8] != (KEY_ID_LEN as u16).to_be_bytes()
        {
            return invalid("not a LocalKms blob of the expected length");
        }
        let Ok(id) = std::str::from_utf8(&blob[8..8 + KEY_ID_LEN]) else {
            return invalid("key id is not UTF-8");
        };
        let mut at = 8 + KEY_ID_LEN;
        let version = u32::from_be_bytes(blob[at..at + 4].try_into().expect("4 bytes"));
        at += 4;
        let salt: [u8; BLOB_SALT_LEN] = blob[at..at + BLOB_SALT_LEN].try_into().expect("32 bytes");
        at += BLOB_SALT_LEN;
        let hash = &blob[at..at + BLOB_HASH_LEN];
        let cmk = match self.resolve(inner, id).and_then(usable) {
            Ok(c) => c,
            Err(e) => {
                return Audited {
                    result: Err(e.into()),
                    key_arn: Some(
                        self.resolve(inner, id)
                            .map_or_else(|_| id.to_owned(), Cmk::arn),
                    ),
                    key_version: Some(version),
                    per_key: None,
                };
            }
        };
        let arn = cmk.arn();
        // The key named for the blob must be the blob's key (an empty name
        // leaves the choice to the blob).
        if !key_id.is_empty() {
            let named = self.resolve(inner, key_id).map(|c| c.key_id.clone());
            if named.as_deref().ok() != Some(cmk.key_id.as_str()) {
                return Audited {
                    result: Err(KmsError::IncorrectKey {
                        expected: key_id.to_owned(),
                        found: arn.clone(),
                    }
                    .into()),
                    key_arn: Some(arn),
                    key_version: Some(version),
                    per_key: None,
                };
            }
        }
        let with = |result| Audited {
            result,
            key_arn: Some(arn.clone()),
            key_version: Some(version),
            per_key: None,
        };
        if hash != context_hash(context) {
            return with(Err(KmsError::ContextMismatch.into()));
        }
        let Some((_, material)) = cmk.versions.get(&version) else {
            return with(Err(KmsError::InvalidCiphertext {
                reason: format!("key version {version} does not exist"),
            }
            .into()));
        };
        let result = (|| {
            let gcm = blob_kek(material, &salt, &arn, version, context)?;
            let mut key = [0u8; 32];
            key.copy_from_slice(&blob[header_len..header_len + 32]);
            if gcm
                .open_in_place(
                    &[0u8; 12],
                    &blob[..header_len],
                    &mut key,
                    &blob[header_len + 32..],
                )
                .is_err()
            {
                key.zeroize();
                return Err(KmsError::InvalidCiphertext {
                    reason: "it does not authenticate (corrupt or forged)".into(),
                }
                .into());
            }
            let out = KmsDataKey::from_bytes(key);
            key.zeroize();
            Ok(DecryptedDataKey {
                key: out,
                key_arn: arn.clone(),
                key_version: Some(version),
            })
        })();
        with(result)
    }
}

impl Kms for LocalKms {
    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<GeneratedDataKey, Error> {
        self.audited(
            "GenerateDataKey",
            principal,
            key_id,
            Some(context),
            |this, inner| this.generate_locked(inner, key_id, context),
        )
    }

    fn decrypt(
        &self,
        key_id: &str,
        blob: &[u8],
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<DecryptedDataKey, Error> {
        self.audited("Decrypt", principal, "", Some(context), |this, inner| {
            this.decrypt_locked(inner, key_id, blob, context)
        })
    }
}

fn fail<T>(e: Error) -> Audited<T> {
    Audited {
        result: Err(e),
        key_arn: None,
        key_version: None,
        per_key: None,
    }
}

fn fail_key<T>(e: impl Into<Error>, cmk: Option<&Cmk>) -> Audited<T> {
    Audited {
        result: Err(e.into()),
        key_arn: cmk.map(Cmk::arn),
        key_version: None,
        per_key: None,
    }
}

/// Refuses an alias that is malformed or taken.
fn check_alias(inner: &Inner, alias: &str) -> Result<(), KmsError> {
    let valid = alias.strip_prefix("alias/").is_some_and(|n| {
        !n.is_empty()
            && n.len() <= 256
            && !n.starts_with("aws/")
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
    });
    if !valid {
        return Err(KmsError::InvalidKeyReference {
            value: alias.to_owned(),
        });
    }
    if inner.aliases.contains_key(alias) {
        return Err(KmsError::AliasExists {
            alias: alias.to_owned(),
        });
    }
    Ok(())
}

fn set(inner: &mut Inner, id: &str, state: KeyState) {
    if let Some(c) = inner.keys.get_mut(id) {
        c.state = state;
    }
}

fn pending(c: &Cmk) -> KmsError {
    match c.state {
        KeyState::PendingDeletion { deletion_date } => KmsError::PendingDeletion {
            arn: c.arn(),
            deletion_date: fsio::rfc3339(deletion_date),
        },
        _ => KmsError::InvalidState {
            arn: c.arn(),
            reason: "unexpected state".into(),
        },
    }
}

/// Refuses a key that is not enabled.
fn usable(c: &Cmk) -> Result<&Cmk, KmsError> {
    match c.state {
        KeyState::Enabled => Ok(c),
        KeyState::Disabled => Err(KmsError::Disabled { arn: c.arn() }),
        KeyState::PendingDeletion { .. } => Err(pending(c)),
    }
}

fn context_hash(context: &EncryptionContext) -> [u8; BLOB_HASH_LEN] {
    let mut h = Sha256::new();
    h.update(b"objseal/v1 localkms context\0");
    h.update(context.encode());
    h.finalize().into()
}

fn blob_kek(
    material: &CmkMaterial,
    salt: &[u8; BLOB_SALT_LEN],
    arn: &str,
    version: u32,
    context: &EncryptionContext,
) -> Result<Aes256Gcm, Error> {
    let mut info = b"objseal/v1 localkms wrap\0".to_vec();
    put16(&mut info, arn.as_bytes());
    info.extend_from_slice(&version.to_be_bytes());
    info.extend_from_slice(&context.encode());
    let mut kek = [0u8; 32];
    Hkdf::<Sha256>::new(Some(salt), material.expose_secret())
        .expand(&info, &mut kek)
        .map_err(|_| KmsError::Unavailable {
            reason: "HKDF output length".into(),
        })?;
    let gcm = Aes256Gcm::new(&kek);
    kek.zeroize();
    gcm
}

fn metadata(c: &Cmk, aliases: &BTreeMap<String, String>) -> KeyMetadata {
    KeyMetadata {
        key_id: c.key_id.clone(),
        arn: c.arn(),
        region: c.region.clone(),
        account: c.account.clone(),
        description: c.description.clone(),
        state: c.state,
        current_version: c.current(),
        versions: c.versions.keys().copied().collect(),
        rotation_period: c.rotation_period_secs.map(Duration::from_secs),
        aliases: aliases
            .iter()
            .filter(|(_, t)| **t == c.key_id)
            .map(|(a, _)| a.clone())
            .collect(),
    }
}

/// The short name of an error, for the audit log.
fn error_kind(e: &Error) -> String {
    let kind = match e {
        Error::Kms(k) => match k {
            KmsError::NotFound { .. } => "NotFound",
            KmsError::Disabled { .. } => "Disabled",
            KmsError::PendingDeletion { .. } => "PendingDeletion",
            KmsError::WrongRegion { .. } => "WrongRegion",
            KmsError::InvalidContext { .. } => "InvalidContext",
            KmsError::ContextMismatch => "ContextMismatch",
            KmsError::InvalidCiphertext { .. } => "InvalidCiphertext",
            KmsError::IncorrectKey { .. } => "IncorrectKey",
            KmsError::InvalidKeyReference { .. } => "InvalidKeyReference",
            KmsError::AliasExists { .. } => "AliasExists",
            KmsError::InvalidState { .. } => "InvalidState",
            KmsError::AccessDenied { .. } => "AccessDenied",
            KmsError::InvalidDeletionWindow { .. } => "InvalidDeletionWindow",
            _ => "Kms",
        },
        Error::Io { .. } => "Io",
        _ => "Internal",
    };
    kind.to_owned()
}

/// The contents of `keys.json`.
#[derive(Default)]
struct Loaded {
    /// Keys by id.
    keys: BTreeMap<String, Cmk>,
    /// Aliases to key ids.
    aliases: BTreeMap<String, String>,
    /// The audit records of the change that wrote the file.
    pending: Vec<AuditRecord>,
    /// Where they go in the audit log.
    pending_offset: u64,
    /// Which log file they go to.
    pending_log: Option<[u64; 2]>,
}

/// Writes an empty or loaded store to `path`.
fn save_file(path: &Path, l: &Loaded) -> Result<(), Error> {
    write_store(
        path,
        store_file(
            &l.keys,
            &l.aliases,
            &l.pending,
            l.pending_offset,
            l.pending_log,
        ),
    )
    .map_err(|f| f.error)
}

/// The file form of a store.
fn store_file(
    keys: &BTreeMap<String, Cmk>,
    aliases: &BTreeMap<String, String>,
    pending: &[AuditRecord],
    offset: u64,
    log: Option<[u64; 2]>,
) -> StoreFile {
    StoreFile {
        format: FILE_FORMAT.to_owned(),
        aliases: aliases.clone(),
        keys: keys
            .values()
            .map(|c| CmkFile {
                key_id: c.key_id.clone(),
                region: c.region.clone(),
                account: c.account.clone(),
                description: c.description.clone(),
                created: c.created,
                state: c.state,
                rotation_period_secs: c.rotation_period_secs,
                last_rotation: c.last_rotation,
                versions: c
                    .versions
                    .iter()
                    .map(|(&version, (created, m))| VersionFile {
                        version,
                        created: *created,
                        material: BASE64.encode(m.expose_secret()),
                    })
                    .collect(),
            })
            .collect(),
        pending_audit: pending.to_vec(),
        audit_offset: offset,
        audit_log: log,
    }
}

/// Serialises `file` and replaces `path` with it atomically, wiping the
/// encoded key material from memory afterwards.
fn write_store(path: &Path, file: StoreFile) -> Result<(), fsio::CommitFailure> {
    // Sized up front so the buffer holding key material is never
    // reallocated (which would leave a copy in freed memory).
    let capacity = 1024
        + file.pending_audit.len() * 2048
        + file.aliases.len() * 512
        + file
            .keys
            .iter()
            .map(|k| 512 + k.description.len() * 6 + k.versions.len() * 128)
            .sum::<usize>();
    let mut json = Zeroizing::new(Vec::with_capacity(capacity));
    if let Err(e) = serde_json::to_writer(&mut *json, &file) {
        return Err(fsio::CommitFailure {
            renamed: false,
            error: KeyError::CorruptStore {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
            .into(),
        });
    }
    for k in file.keys {
        for mut v in k.versions {
            v.material.zeroize();
        }
    }
    fsio::write_private_atomic_tracked(path, &json)
}

/// Reads `keys.json`, pinning the version read.
fn load(path: &Path) -> Result<(Loaded, fsio::Pinned), Error> {
    let (bytes, pinned) = fsio::read_private_pinned(path, MAX_FILE_LEN)?;
    let bytes = Zeroizing::new(bytes);
    Ok((load_bytes(path, &bytes)?, pinned))
}

fn load_bytes(path: &Path, bytes: &[u8]) -> Result<Loaded, Error> {
    let corrupt = |reason: String| KeyError::CorruptStore {
        path: path.to_path_buf(),
        reason,
    };
    let file: StoreFile = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if file.format != FILE_FORMAT {
        return Err(corrupt(format!(
            "format {:?}, expected {FILE_FORMAT:?}",
            file.format
        ))
        .into());
    }
    let mut keys = BTreeMap::new();
    for k in file.keys {
        if k.key_id.len() != KEY_ID_LEN {
            return Err(corrupt(format!("key id {:?}", k.key_id)).into());
        }
        let mut versions = BTreeMap::new();
        for v in k.versions {
            let text = Zeroizing::new(v.material);
            let raw = Zeroizing::new(
                BASE64
                    .decode(text.as_bytes())
                    .map_err(|e| corrupt(e.to_string()))?,
            );
            let material = CmkMaterial::try_from_slice(&raw)?;
            if v.version == 0 || versions.insert(v.version, (v.created, material)).is_some() {
                return Err(corrupt(format!(
                    "key {} version {} is zero or repeated",
                    k.key_id, v.version
                ))
                .into());
            }
        }
        if versions.is_empty() {
            return Err(corrupt(format!("key {} has no versions", k.key_id)).into());
        }
        keys.insert(
            k.key_id.clone(),
            Cmk {
                key_id: k.key_id,
                region: k.region,
                account: k.account,
                description: k.description,
                created: k.created,
                state: k.state,
                rotation_period_secs: k.rotation_period_secs,
                last_rotation: k.last_rotation,
                versions,
            },
        );
    }
    Ok(Loaded {
        keys,
        aliases: file.aliases,
        pending: file.pending_audit,
        pending_offset: file.audit_offset,
        pending_log: file.audit_log,
    })
}
