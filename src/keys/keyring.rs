//! SSE-S3: the keyring of master key versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::secret::{MasterKey, fill_random};
use super::wrap::{self, WrapScope};
use crate::body::DataKey;
use crate::error::{Error, KeyError};
use crate::format::{Envelope, KEK_SALT_LEN, MAX_KEY_ID_LEN, Mode, WrappedKey};
use crate::fsio;

/// The `format` field of a keyring file.
const FILE_FORMAT: &str = "objseal-keyring/1";
/// Largest keyring file read, in bytes.
const MAX_FILE_LEN: u64 = 16 << 20;

/// The SSE-S3 master keys: one key id with numbered versions, the newest of
/// which is active (wraps new objects); older versions stay to unwrap the
/// objects sealed under them until they are retired.
///
/// A keyring is kept in a JSON file written atomically (temporary file,
/// fsync, rename, directory fsync) with mode 0600; [`Keyring::open`]
/// refuses a file that its group or others can read. All methods take
/// `&self` (the state is behind a lock), so one keyring is shared by an
/// [`crate::engine::Engine`] and rotated while it runs.
///
/// ```
/// use objseal::keys::Keyring;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("keyring.json");
/// let ring = Keyring::create(&path, "s3-master")?;
/// assert_eq!(ring.active_version(), 1);
/// assert_eq!(ring.rotate()?, 2);
/// assert_eq!(ring.rotate_if_older_than(std::time::Duration::from_secs(3600))?, None);
///
/// let again = Keyring::open(&path)?;
/// assert_eq!(again.active_version(), 2);
/// assert_eq!(again.versions().len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Keyring {
    path: Option<PathBuf>,
    state: RwLock<State>,
    /// The file version the state was read from, and when that was last
    /// checked.
    seen: Mutex<Seen>,
}

struct Seen {
    pinned: Option<fsio::Pinned>,
    checked: Instant,
}

/// How often [`Keyring::wrap`] and [`Keyring::unwrap`] look for a rotation
/// or retirement done by another process.
const RECHECK: Duration = Duration::from_secs(1);

impl core::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.read();
        f.debug_struct("Keyring")
            .field("path", &self.path)
            .field("key_id", &s.key_id)
            .field("active", &s.active)
            .field("versions", &s.versions.len())
            .finish_non_exhaustive()
    }
}

struct State {
    key_id: String,
    active: u32,
    versions: BTreeMap<u32, Version>,
}

struct Version {
    created: u64,
    retired: Option<u64>,
    key: Option<MasterKey>,
}

/// What is known about one master key version (no key bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersionInfo {
    /// The version number (1, 2, ...).
    pub version: u32,
    /// When it was created, in seconds since the Unix epoch.
    pub created: u64,
    /// Whether it wraps new objects.
    pub active: bool,
    /// When it was retired (its key material destroyed), if it was.
    pub retired: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    format: String,
    key_id: String,
    active: u32,
    versions: Vec<FileVersion>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVersion {
    version: u32,
    created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl Keyring {
    /// Creates a keyring file at `path` (nothing may exist there, not even
    /// a dangling link) with a fresh version 1 of master key `key_id`.
    pub fn create(path: impl AsRef<Path>, key_id: &str) -> Result<Self, Error> {
        let path = path.as_ref();
        let _lock = fsio::FileLock::acquire(&lock_path(path))?;
        Self::create_locked(path, key_id)
    }

    /// Opens the keyring file at `path`, or creates it with a fresh version
    /// 1 of `key_id` if nothing is there; returns whether it was created.
    /// Safe against other processes doing the same at the same time: one
    /// creates it, the others open what it created.
    ///
    /// A caller that knows the keyring existed before must use
    /// [`Keyring::open`], so that a lost file is an error rather than a
    /// fresh key.
    pub fn open_or_create(path: impl AsRef<Path>, key_id: &str) -> Result<(Self, bool), Error> {
        let path = path.as_ref();
        let _lock = fsio::FileLock::acquire(&lock_path(path))?;
        if std::fs::symlink_metadata(path).is_ok() {
            Ok((Self::open(path)?, false))
        } else {
            Ok((Self::create_locked(path, key_id)?, true))
        }
    }

    fn create_locked(path: &Path, key_id: &str) -> Result<Self, Error> {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(Error::io_at(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "keyring file exists; open it instead",
                ),
            ));
        }
        let state = State::new(key_id)?;
        save(path, &state).map_err(|f| f.error)?;
        Ok(Keyring {
            path: Some(path.to_path_buf()),
            state: RwLock::new(state),
            seen: Mutex::new(Seen {
                pinned: fsio::pin(path),
                checked: Instant::now(),
            }),
        })
    }

    /// A keyring held in memory only (tests, benches, ephemeral stores):
    /// objects sealed under it are lost with it.
    pub fn in_memory(key_id: &str) -> Result<Self, Error> {
        Ok(Keyring {
            path: None,
            state: RwLock::new(State::new(key_id)?),
            seen: Mutex::new(Seen {
                pinned: None,
                checked: Instant::now(),
            }),
        })
    }

    /// Opens the keyring file at `path`. Refuses a file that its group or
    /// others may access ([`KeyError::InsecurePermissions`]), anything but
    /// a regular file ([`KeyError::NotRegularFile`]: links are not
    /// followed) and a file that does not parse ([`KeyError::CorruptStore`]).
    ///
    /// Several processes may use one keyring file: every change
    /// ([`Keyring::rotate`], [`Keyring::retire`]) takes an exclusive lock
    /// on `PATH.lock`, re-reads the file under it, and replaces the file
    /// atomically, so no process's change is lost; changes made by other
    /// processes are picked up when an object names a version this process
    /// has not seen, when wrapping (checked at most once a second), and by
    /// [`Keyring::refresh`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let (state, pinned) = load(path)?;
        Ok(Keyring {
            path: Some(path.to_path_buf()),
            state: RwLock::new(state),
            seen: Mutex::new(Seen {
                pinned: Some(pinned),
                checked: Instant::now(),
            }),
        })
    }

    /// Re-reads the keyring file if another process changed it since this
    /// keyring last read it. Returns whether it did.
    pub fn refresh(&self) -> Result<bool, Error> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.checked = Instant::now();
        if seen.pinned.as_ref().is_some_and(|p| p.is_current(path)) {
            return Ok(false);
        }
        let (state, pinned) = load(path).map_err(|e| fsio::missing_is_lost(e, path))?;
        *self.write() = state;
        seen.pinned = Some(pinned);
        Ok(true)
    }

    /// Applies `change` to the current state of the file, under the
    /// store's lock, and saves the result; the in-memory state follows only
    /// once the file is saved.
    fn change<T>(&self, change: impl FnOnce(&mut State) -> Result<T, Error>) -> Result<T, Error> {
        let Some(path) = &self.path else {
            return change(&mut self.write());
        };
        let _lock = fsio::FileLock::acquire(&lock_path(path))?;
        let (mut state, _) = load(path).map_err(|e| fsio::missing_is_lost(e, path))?;
        let out = change(&mut state)?;
        // A failure after the new file replaced the old one (only the
        // directory's fsync failed) is a change made: report it as made.
        if let Err(f) = save(path, &state)
            && !f.renamed
        {
            return Err(f.error);
        }
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        *self.write() = state;
        seen.pinned = fsio::pin(path);
        seen.checked = Instant::now();
        Ok(out)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The master key's id (the envelope's key id for SSE-S3 objects).
    pub fn key_id(&self) -> String {
        self.read().key_id.clone()
    }

    /// The version that wraps new objects.
    pub fn active_version(&self) -> u32 {
        self.read().active
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> Vec<KeyVersionInfo> {
        let s = self.read();
        s.versions
            .iter()
            .map(|(&version, v)| KeyVersionInfo {
                version,
                created: v.created,
                active: version == s.active,
                retired: v.retired,
            })
            .collect()
    }

    /// Makes a new version the active one and returns its number; older
    /// versions stay for decryption. The file is rewritten atomically first:
    /// if that fails, nothing changes.
    pub fn rotate(&self) -> Result<u32, Error> {
        self.change(|s| {
            let next = s
                .versions
                .keys()
                .next_back()
                .copied()
                .unwrap_or(0)
                .checked_add(1)
                .ok_or(KeyError::VersionsExhausted {
                    key_id: s.key_id.clone(),
                })?;
            s.versions.insert(
                next,
                Version {
                    created: fsio::unix_now(),
                    retired: None,
                    key: Some(MasterKey::generate()?),
                },
            );
            s.active = next;
            Ok(next)
        })
    }

    /// Rotates when the active version is at least `age` old; returns the new
    /// version if it rotated. Call it periodically to rotate regularly.
    pub fn rotate_if_older_than(&self, age: Duration) -> Result<Option<u32>, Error> {
        self.refresh()?;
        let created = {
            let s = self.read();
            s.versions.get(&s.active).map_or(0, |v| v.created)
        };
        if fsio::unix_now().saturating_sub(created) >= age.as_secs() {
            self.rotate().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Retires `version`: destroys its key material (keeping the record), so
    /// objects still wrapped under it can no longer be opened.
    ///
    /// `objects` are the envelopes of the objects the caller still stores;
    /// if any is wrapped under `version`, retiring is refused with
    /// [`KeyError::VersionStillInUse`] unless `force` is set (first
    /// [`Keyring::rewrap`] them). The active version is never retired:
    /// rotate first.
    pub fn retire<'a>(
        &self,
        version: u32,
        objects: impl IntoIterator<Item = &'a Envelope>,
        force: bool,
    ) -> Result<(), Error> {
        let objects: Vec<&Envelope> = objects.into_iter().collect();
        self.change(|s| {
            if version == s.active {
                return Err(KeyError::RetireActive { version }.into());
            }
            let key_id = s.key_id.clone();
            let v = s
                .versions
                .get_mut(&version)
                .ok_or(KeyError::UnknownKeyVersion {
                    key_id: key_id.clone(),
                    version,
                })?;
            if v.retired.is_some() {
                return Ok(());
            }
            let in_use = objects
                .iter()
                .filter(|e| {
                    e.mode == Mode::SseS3
                        && e.wrapped_key.key_id == key_id
                        && e.wrapped_key.key_version == version
                })
                .count();
            if in_use > 0 && !force {
                return Err(KeyError::VersionStillInUse {
                    version,
                    objects: in_use,
                }
                .into());
            }
            v.key = None;
            v.retired = Some(fsio::unix_now());
            Ok(())
        })
    }

    /// Re-seals the data key of an SSE-S3 `envelope` under the active version
    /// with a fresh KEK salt; the body is untouched (its context does not
    /// include the version). Returns the new envelope.
    pub fn rewrap(&self, envelope: &Envelope) -> Result<Envelope, Error> {
        // The length the wrapping binds: 0 for a multipart object (wrapped
        // when the upload began), 2^64-1 for one whose body gives its
        // length (FORMAT.md §5).
        let scope = WrapScope {
            mode: envelope.mode,
            binding: &envelope.binding,
            plaintext_len: envelope.wrap_len(),
        };
        let dek = self.unwrap(&scope, &envelope.wrapped_key)?;
        let mut out = envelope.clone();
        out.wrapped_key = self.wrap(&scope, &dek)?;
        Ok(out)
    }

    /// Wraps `dek` under the active version.
    pub(crate) fn wrap(&self, scope: &WrapScope<'_>, dek: &DataKey) -> Result<WrappedKey, Error> {
        let mut salt = [0u8; KEK_SALT_LEN];
        fill_random(&mut salt)?;
        self.wrap_salted(scope, dek, salt)
    }

    /// [`Keyring::wrap`] with a salt the caller drew for this wrap alone.
    pub(crate) fn wrap_salted(
        &self,
        scope: &WrapScope<'_>,
        dek: &DataKey,
        kek_salt: [u8; KEK_SALT_LEN],
    ) -> Result<WrappedKey, Error> {
        if self.path.is_some() && self.due_for_check() {
            self.refresh()?;
        }
        let s = self.read();
        let key = s
            .versions
            .get(&s.active)
            .and_then(|v| v.key.as_ref())
            .ok_or(KeyError::UnknownKeyVersion {
                key_id: s.key_id.clone(),
                version: s.active,
            })?;
        wrap::wrap_salted(
            key.expose_secret(),
            scope,
            s.key_id.clone(),
            s.active,
            Vec::new(),
            dek,
            kek_salt,
        )
    }

    /// Whether the file was last checked for changes over [`RECHECK`] ago.
    fn due_for_check(&self) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .checked
            .elapsed()
            >= RECHECK
    }

    /// Unwraps an SSE-S3 wrapped key under the version it names, re-reading
    /// the file first if it names a version this keyring has not seen (made
    /// by another process since this one read the file).
    pub(crate) fn unwrap(
        &self,
        scope: &WrapScope<'_>,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, Error> {
        // A version made elsewhere since this keyring read the file is read
        // at once; a retirement made elsewhere within [`RECHECK`].
        let unseen = {
            let s = self.read();
            wrapped.key_id == s.key_id && !s.versions.contains_key(&wrapped.key_version)
        };
        if self.path.is_some() && (unseen || self.due_for_check()) {
            self.refresh()?;
        }
        if scope.mode != Mode::SseS3 {
            return Err(KeyError::ModeMismatch {
                expected: Mode::SseS3,
                found: scope.mode,
            }
            .into());
        }
        let s = self.read();
        if wrapped.key_id != s.key_id {
            return Err(KeyError::WrongKeyring {
                keyring: s.key_id.clone(),
                object: wrapped.key_id.clone(),
            }
            .into());
        }
        if !wrapped.details.is_empty() {
            return Err(crate::error::FormatError::TrailingBytes {
                count: wrapped.details.len() as u64,
            }
            .into());
        }
        let v = s
            .versions
            .get(&wrapped.key_version)
            .ok_or(KeyError::UnknownKeyVersion {
                key_id: s.key_id.clone(),
                version: wrapped.key_version,
            })?;
        let key = v.key.as_ref().ok_or(KeyError::KeyRetired {
            key_id: s.key_id.clone(),
            version: wrapped.key_version,
        })?;
        wrap::unwrap(key.expose_secret(), scope, wrapped)
    }
}

/// Writes `s` to the keyring file at `path`, atomically.
fn save(path: &Path, s: &State) -> Result<(), fsio::CommitFailure> {
    let failed = |error: Error| fsio::CommitFailure {
        renamed: false,
        error,
    };
    let file = FileV1 {
        format: FILE_FORMAT.to_owned(),
        key_id: s.key_id.clone(),
        active: s.active,
        versions: s
            .versions
            .iter()
            .map(|(&version, v)| FileVersion {
                version,
                created: v.created,
                retired: v.retired,
                key: v.key.as_ref().map(|k| BASE64.encode(k.expose_secret())),
            })
            .collect(),
    };
    // Sized up front so the buffer holding key material is never
    // reallocated (a reallocation would leave a copy in freed memory).
    let mut json = Zeroizing::new(Vec::with_capacity(json_capacity(&file)));
    serde_json::to_writer_pretty(&mut *json, &file).map_err(|e| {
        failed(
            KeyError::CorruptStore {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
            .into(),
        )
    })?;
    for v in file.versions {
        if let Some(k) = v.key {
            drop(Zeroizing::new(k));
        }
    }
    fsio::write_private_atomic_tracked(path, &json)
}

/// A generous upper bound of the keyring file's JSON size.
fn json_capacity(file: &FileV1) -> usize {
    256 + file.key_id.len() * 2 + file.versions.len() * 256
}

/// The lock file of the keyring file at `path`: `PATH.lock`.
fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Reads and checks the keyring file at `path`, pinning the version read.
fn load(path: &Path) -> Result<(State, fsio::Pinned), Error> {
    let (bytes, pinned) = fsio::read_private_pinned(path, MAX_FILE_LEN)?;
    let bytes = Zeroizing::new(bytes);
    Ok((load_bytes(path, &bytes)?, pinned))
}

/// Parses and checks the keyring file's contents.
fn load_bytes(path: &Path, bytes: &[u8]) -> Result<State, Error> {
    let corrupt = |reason: String| KeyError::CorruptStore {
        path: path.to_path_buf(),
        reason,
    };
    let file: FileV1 = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if file.format != FILE_FORMAT {
        return Err(corrupt(format!(
            "format {:?}, expected {FILE_FORMAT:?}",
            file.format
        ))
        .into());
    }
    check_key_id(&file.key_id)?;
    let mut versions = BTreeMap::new();
    for v in file.versions {
        let key = match v.key {
            Some(text) => {
                let text = Zeroizing::new(text);
                let raw = Zeroizing::new(
                    BASE64
                        .decode(text.as_bytes())
                        .map_err(|e| corrupt(format!("version {}: {e}", v.version)))?,
                );
                Some(MasterKey::try_from_slice(&raw)?)
            }
            None => None,
        };
        if key.is_none() && v.retired.is_none() {
            return Err(corrupt(format!(
                "version {} has no key and is not retired",
                v.version
            ))
            .into());
        }
        if v.version == 0
            || versions
                .insert(
                    v.version,
                    Version {
                        created: v.created,
                        retired: v.retired,
                        key,
                    },
                )
                .is_some()
        {
            return Err(corrupt(format!("version {} is zero or repeated", v.version)).into());
        }
    }
    if versions.get(&file.active).is_none_or(|v| v.key.is_none()) {
        return Err(corrupt(format!("active version {} has no key", file.active)).into());
    }
    Ok(State {
        key_id: file.key_id,
        active: file.active,
        versions,
    })
}

impl State {
    fn new(key_id: &str) -> Result<Self, Error> {
        check_key_id(key_id)?;
        let mut versions = BTreeMap::new();
        versions.insert(
            1,
            Version {
                created: fsio::unix_now(),
                retired: None,
                key: Some(MasterKey::generate()?),
            },
        );
        Ok(State {
            key_id: key_id.to_owned(),
            active: 1,
            versions,
        })
    }
}

fn check_key_id(key_id: &str) -> Result<(), Error> {
    if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
        return Err(crate::error::FormatError::OutOfBounds {
            field: "keyring key id length",
            value: key_id.len() as u64,
            min: 1,
            max: MAX_KEY_ID_LEN as u64,
        }
        .into());
    }
    Ok(())
}
