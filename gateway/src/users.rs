//! Users and their access keys: the root key (from the environment, else
//! generated on first start and kept in the home, 0600) and the users file
//! (`users.json` in the home, 0600, changed under `users.json.lock`),
//! re-read whenever it changes, so a running server sees new users.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::store::{to_json, write_atomic};

/// The name of the root user.
pub const ROOT_USER: &str = "root";
/// The users file, in the home.
pub const USERS_FILE: &str = "users.json";
/// The root key file, in the home.
pub const ROOT_FILE: &str = "gateway-root.json";
const MAX_FILE_LEN: u64 = 4 << 20;

/// A user and its access key.
#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    /// The user's name.
    pub user: String,
    /// Its access key id.
    pub access_key_id: String,
    /// Its secret access key.
    pub secret_access_key: String,
}

impl core::fmt::Debug for User {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("User")
            .field("user", &self.user)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Default, Serialize, Deserialize)]
struct UsersFile {
    users: Vec<User>,
}

fn random_from(alphabet: &[u8], n: usize) -> io::Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| io::Error::other(e.to_string()))?;
    // 256 is a multiple of neither alphabet's length; the bias of `% len`
    // on a 32- or 62-letter alphabet is small and irrelevant next to the
    // 40 letters of a secret.
    Ok(buf
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect())
}

/// A new access key for `user`.
pub fn generate(user: &str) -> io::Result<User> {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    Ok(User {
        user: user.to_owned(),
        access_key_id: format!("OSK{}", random_from(UPPER, 17)?),
        secret_access_key: random_from(SECRET, 40)?,
    })
}

/// Whether `name` is a valid user name (1 to 64 of `A-Z a-z 0-9 . _ -`).
pub fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn read_users(path: &Path) -> io::Result<UsersFile> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(UsersFile::default()),
        _ => {}
    }
    let bytes = objseal::fs::read_private(path, MAX_FILE_LEN).map_err(io::Error::other)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Adds user `name` to the users file of `home` with a new access key and
/// returns it. Fails if the name is invalid, `root`, or taken.
pub fn add_user(home: &Path, name: &str) -> io::Result<User> {
    if !valid_user_name(name) || name == ROOT_USER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid user name {name:?} (1 to 64 of A-Z a-z 0-9 . _ -, not \"root\")"),
        ));
    }
    let path = home.join(USERS_FILE);
    let _lock = objseal::fs::FileLock::acquire(&home.join(format!("{USERS_FILE}.lock")))
        .map_err(io::Error::other)?;
    let mut file = read_users(&path)?;
    if file.users.iter().any(|u| u.user == name) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("user {name:?} exists already"),
        ));
    }
    let user = generate(name)?;
    file.users.push(user.clone());
    write_atomic(&path, &to_json(&file)?)?;
    Ok(user)
}

/// The root key: from `OBJSEAL_ROOT_ACCESS_KEY`/`OBJSEAL_ROOT_SECRET_KEY`,
/// else the one kept in the home, else a new one saved there. Returns it
/// and whether it was just generated (the caller prints it, once).
pub fn root_key(home: &Path) -> io::Result<(User, bool)> {
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    if let (Some(a), Some(s)) = (
        env("OBJSEAL_ROOT_ACCESS_KEY"),
        env("OBJSEAL_ROOT_SECRET_KEY"),
    ) {
        return Ok((
            User {
                user: ROOT_USER.to_owned(),
                access_key_id: a,
                secret_access_key: s,
            },
            false,
        ));
    }
    let path = home.join(ROOT_FILE);
    let _lock = objseal::fs::FileLock::acquire(&home.join(format!("{ROOT_FILE}.lock")))
        .map_err(io::Error::other)?;
    if std::fs::symlink_metadata(&path).is_ok() {
        let bytes = objseal::fs::read_private(&path, MAX_FILE_LEN).map_err(io::Error::other)?;
        let user: User = serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        return Ok((user, false));
    }
    let user = generate(ROOT_USER)?;
    write_atomic(&path, &to_json(&user)?)?;
    Ok((user, true))
}

struct Cache {
    stamp: Option<(SystemTime, u64)>,
    users: Vec<User>,
}

/// The users the server knows: root and those of the users file, which is
/// re-read when its modification time or size changes.
pub struct Users {
    root: User,
    path: PathBuf,
    cache: Mutex<Cache>,
}

impl core::fmt::Debug for Users {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Users")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Users {
    /// Root plus the users file of `home`.
    pub fn new(root: User, home: &Path) -> Users {
        Users {
            root,
            path: home.join(USERS_FILE),
            cache: Mutex::new(Cache {
                stamp: None,
                users: Vec::new(),
            }),
        }
    }

    /// The user owning `access_key`, if any.
    pub fn lookup(&self, access_key: &str) -> Option<User> {
        if access_key == self.root.access_key_id {
            return Some(self.root.clone());
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp != cache.stamp {
            match read_users(&self.path) {
                Ok(file) => {
                    cache.users = file.users;
                    cache.stamp = stamp;
                }
                Err(e) => eprintln!("objseal serve: cannot read the users file: {e}"),
            }
        }
        cache
            .users
            .iter()
            .find(|u| u.access_key_id == access_key)
            .cloned()
    }
}

/// The s3s authentication provider over [`Users`].
#[derive(Debug, Clone)]
pub struct Auth(pub std::sync::Arc<Users>);

#[async_trait::async_trait]
impl s3s::auth::S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> s3s::S3Result<s3s::auth::SecretKey> {
        let users = self.0.clone();
        let key = access_key.to_owned();
        let found = tokio::task::spawn_blocking(move || users.lookup(&key))
            .await
            .map_err(|_| s3s::s3_error!(InternalError))?;
        match found {
            Some(u) => Ok(s3s::auth::SecretKey::from(u.secret_access_key)),
            None => Err(s3s::s3_error!(InvalidAccessKeyId)),
        }
    }
}
