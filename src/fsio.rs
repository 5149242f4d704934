//! File helpers shared by every layer: the one staged-file type behind
//! every atomic write (anonymous or locked temporary file beside the
//! destination, fsync, rename, directory fsync), the sweep of temporary
//! files that dead writers left, inter-process locks on key stores, the
//! checks on secret files (regular, private, bounded), and UTC timestamps.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, KeyError};
use crate::keys::secret::fill_random;

/// The prefix and suffix of every temporary file objseal makes.
const TMP_PREFIX: &str = ".objseal-";
const TMP_SUFFIX: &str = ".tmp";

/// A new file being written beside its destination: private to its owner
/// (mode 0600 on unix: it may hold plaintext or keys), put in place over the
/// destination by [`StagedFile::commit`] only once complete and fsynced, and
/// discarded on drop otherwise. A crash or an error therefore leaves the old
/// destination or the complete new one, never a torn file.
///
/// On Linux the file is created without a name (`O_TMPFILE`) in the
/// destination's directory, so a process killed while writing (by `kill
/// -9`, Ctrl-C or a crash) leaves nothing behind: the kernel frees the
/// file. It gets a name (`.objseal-<16 hex digits>.tmp`, locked by the
/// writer) only for the instant between the final fsync and the rename over
/// the destination. Where anonymous files are not supported (other systems,
/// some file systems) the file has that name from the start, and is locked
/// from the start. Either way a temporary file whose lock is free belongs
/// to a writer that died: [`remove_stale_temp_files`] removes those.
///
/// ```
/// use std::io::Write;
/// use objseal::fs::StagedFile;
///
/// let dir = tempfile::tempdir()?;
/// let dst = dir.path().join("out.bin");
/// let mut staged = StagedFile::create(&dst)?;
/// staged.file().write_all(b"complete")?;
/// assert!(!dst.exists()); // nothing at the destination until commit
/// staged.commit()?;
/// assert_eq!(std::fs::read(&dst)?, b"complete");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StagedFile {
    file: File,
    dir: PathBuf,
    dst: PathBuf,
    /// The name the file has now: `None` while it is anonymous.
    named: Option<PathBuf>,
    committed: bool,
}

impl core::fmt::Debug for StagedFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StagedFile")
            .field("dst", &self.dst)
            .field("named", &self.named)
            .finish_non_exhaustive()
    }
}

/// A failed [`StagedFile::commit_tracked`].
pub(crate) struct CommitFailure {
    /// Whether the new file had already replaced the destination.
    pub(crate) renamed: bool,
    /// What failed.
    pub(crate) error: Error,
}

/// Internal name kept for the modules that used it first.
pub(crate) type Staged = StagedFile;

impl StagedFile {
    /// Creates the temporary file for `dst` in `dst`'s directory (which
    /// must exist). `dst` itself is not touched until [`Self::commit`].
    pub fn create(dst: impl AsRef<Path>) -> Result<Self, Error> {
        let dst = dst.as_ref();
        if dst.file_name().is_none() {
            return Err(Error::io_at(
                dst,
                io::Error::new(io::ErrorKind::InvalidInput, "destination has no file name"),
            ));
        }
        let dir = parent_dir(dst);
        #[cfg(target_os = "linux")]
        if proc_fd_available()
            && let Some(file) = anonymous_file(&dir)?
        {
            return Ok(StagedFile {
                file,
                dir,
                dst: dst.to_path_buf(),
                named: None,
                committed: false,
            });
        }
        let (file, tmp) = named_locked_file(&dir)?;
        Ok(StagedFile {
            file,
            dir,
            dst: dst.to_path_buf(),
            named: Some(tmp),
            committed: false,
        })
    }

    /// The file being written (positioned writes from several threads are
    /// fine).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Where the file will be put.
    pub fn destination(&self) -> &Path {
        &self.dst
    }

    /// The path to name in an error about the file being written.
    pub(crate) fn tmp_path(&self) -> &Path {
        self.named.as_deref().unwrap_or(&self.dst)
    }

    /// Makes the file durable, renames it over the destination, and makes
    /// the rename durable by fsyncing the directory.
    ///
    /// If that last fsync fails, the error is returned, but the destination
    /// has already been replaced by the complete new file (the rename is
    /// done and cannot be undone); only its durability across a crash is in
    /// doubt.
    pub fn commit(self) -> Result<(), Error> {
        self.commit_tracked().map_err(|f| f.error)
    }

    /// [`StagedFile::commit`], telling a failure after the rename (the
    /// destination already replaced, only the directory's fsync failed)
    /// from one before it (the destination untouched).
    pub(crate) fn commit_tracked(mut self) -> Result<(), CommitFailure> {
        let before = |error| CommitFailure {
            renamed: false,
            error,
        };
        self.file
            .sync_all()
            .map_err(|e| before(Error::io_at(&self.dst, e)))?;
        let tmp = match self.named.clone() {
            Some(tmp) => tmp,
            None => {
                let tmp = self.link_anonymous().map_err(before)?;
                self.named = Some(tmp.clone());
                tmp
            }
        };
        fs::rename(&tmp, &self.dst).map_err(|e| before(Error::io_at(&self.dst, e)))?;
        self.committed = true;
        sync_dir(&self.dir).map_err(|error| CommitFailure {
            renamed: true,
            error,
        })
    }

    /// Gives the anonymous file a locked temporary name in its directory.
    #[cfg(target_os = "linux")]
    fn link_anonymous(&self) -> Result<PathBuf, Error> {
        use rustix::fs::{AtFlags, CWD, linkat};
        use std::os::fd::AsRawFd;
        // Lock before the file has a name, so no sweeper can take it for
        // a dead writer's.
        lock_exclusive_now(&self.file, &self.dst)?;
        let proc_path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        for _ in 0..16 {
            let tmp = self.dir.join(random_tmp_name()?);
            let linked = linkat(CWD, proc_path.as_str(), CWD, &tmp, AtFlags::SYMLINK_FOLLOW)
                .or_else(|e| {
                    if e == rustix::io::Errno::EXIST {
                        return Err(e);
                    }
                    // Without /proc, linking the descriptor itself needs a
                    // capability; try it before giving up.
                    linkat(&self.file, "", CWD, &tmp, AtFlags::EMPTY_PATH)
                });
            match linked {
                Ok(()) => return Ok(tmp),
                Err(e) if e == rustix::io::Errno::EXIST => continue,
                Err(e) => return Err(Error::io_at(&self.dst, e.into())),
            }
        }
        Err(Error::io_at(
            &self.dst,
            io::Error::other("no free temporary name beside it"),
        ))
    }

    #[cfg(not(target_os = "linux"))]
    fn link_anonymous(&self) -> Result<PathBuf, Error> {
        unreachable!("files are anonymous on Linux only")
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed
            && let Some(tmp) = &self.named
        {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// A random temporary name: `.objseal-<16 hex digits>.tmp`.
fn random_tmp_name() -> Result<String, Error> {
    let mut rnd = [0u8; 8];
    fill_random(&mut rnd)?;
    Ok(format!(
        "{TMP_PREFIX}{:016x}{TMP_SUFFIX}",
        u64::from_le_bytes(rnd)
    ))
}

/// Whether `name` is one of objseal's temporary file names.
fn is_tmp_name(name: &str) -> bool {
    name.len() == TMP_PREFIX.len() + 16 + TMP_SUFFIX.len()
        && name.starts_with(TMP_PREFIX)
        && name.ends_with(TMP_SUFFIX)
        && name[TMP_PREFIX.len()..TMP_PREFIX.len() + 16]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

/// Whether `/proc/self/fd` can name an anonymous file for `linkat` (not in
/// a chroot without /proc: there the named path is used from the start,
/// rather than failing at commit after all the data was written).
#[cfg(target_os = "linux")]
fn proc_fd_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// An anonymous 0600 file in `dir`, or `None` where the file system or
/// kernel has no anonymous files.
#[cfg(target_os = "linux")]
fn anonymous_file(dir: &Path) -> Result<Option<File>, Error> {
    use rustix::fs::{CWD, Mode, OFlags, openat};
    use rustix::io::Errno;
    match openat(
        CWD,
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(e) if e == Errno::OPNOTSUPP || e == Errno::ISDIR || e == Errno::INVAL => Ok(None),
        Err(e) => Err(Error::io_at(dir, e.into())),
    }
}

/// A new 0600 file with a random temporary name in `dir`, exclusively
/// locked, and checked to still have that name once locked (a sweeper
/// could otherwise have removed it between creation and lock).
fn named_locked_file(dir: &Path) -> Result<(File, PathBuf), Error> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    for _ in 0..16 {
        let tmp = dir.join(random_tmp_name()?);
        let file = match opts.open(&tmp) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io_at(&tmp, e)),
        };
        if file.try_lock().is_err() || !same_file(&file, &tmp) {
            continue;
        }
        return Ok((file, tmp));
    }
    Err(Error::io_at(
        dir,
        io::Error::other("no free temporary name in it"),
    ))
}

/// Whether `path` (not followed if a link) is the file open as `file`.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::symlink_metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

/// Takes `file`'s exclusive lock, which must be free.
fn lock_exclusive_now(file: &File, path: &Path) -> Result<(), Error> {
    file.try_lock().map_err(|e| {
        Error::io_at(
            path,
            match e {
                std::fs::TryLockError::Error(e) => e,
                std::fs::TryLockError::WouldBlock => io::Error::other("temporary file is locked"),
            },
        )
    })
}

/// Removes the temporary files that writers which died (killed, crashed,
/// out of power) left in `dir`: files named `.objseal-<16 hex>.tmp` whose
/// lock no live writer holds. Returns how many were removed. A live
/// writer's file is never touched: it holds its lock until it renames the
/// file into place.
///
/// The command line runs this on each directory it writes into and on its
/// key store. A server that writes many files into one directory should
/// run it once at start, not per write: it reads the whole directory.
pub fn remove_stale_temp_files(dir: impl AsRef<Path>) -> Result<usize, Error> {
    let dir = dir.as_ref();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io_at(dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io_at(dir, e))?;
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_tmp_name) {
            continue;
        }
        let path = entry.path();
        // Only regular files, never through a link, never blocking.
        let Ok(file) = open_regular(&path, false) else {
            continue;
        };
        // One that cannot be removed (permissions, immutable) is left for
        // its owner; it must not stop the write that swept beside it.
        if file.try_lock().is_ok() && same_file(&file, &path) && fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Opens `path` for reading (and writing, with `write`), refusing with
/// [`KeyError::NotRegularFile`] anything but a regular file: a symbolic
/// link is not followed, and a FIFO or device is refused without blocking.
pub(crate) fn open_regular(path: &Path, write: bool) -> Result<File, Error> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(write);
    #[cfg(unix)]
    {
        use rustix::fs::OFlags;
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32);
    }
    let file = match opts.open(path) {
        Ok(f) => f,
        Err(e) => {
            // ELOOP: the path is a symbolic link.
            if let Some(kind) = special_kind(path) {
                return Err(KeyError::NotRegularFile {
                    path: path.to_path_buf(),
                    kind,
                }
                .into());
            }
            return Err(Error::io_at(path, e));
        }
    };
    let meta = file.metadata().map_err(|e| Error::io_at(path, e))?;
    if !meta.is_file() {
        return Err(KeyError::NotRegularFile {
            path: path.to_path_buf(),
            kind: kind_of(&meta.file_type()),
        }
        .into());
    }
    Ok(file)
}

/// What `path` is, when it exists and is not a regular file.
pub(crate) fn special_kind(path: &Path) -> Option<&'static str> {
    let meta = fs::symlink_metadata(path).ok()?;
    (!meta.is_file()).then(|| kind_of(&meta.file_type()))
}

/// A file type in words.
fn kind_of(t: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "FIFO (named pipe)";
        }
        if t.is_block_device() || t.is_char_device() {
            return "device";
        }
        if t.is_socket() {
            return "socket";
        }
    }
    if t.is_symlink() {
        "symbolic link"
    } else if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// How long [`FileLock::acquire`] waits, in milliseconds.
static LOCK_TIMEOUT_MS: AtomicU64 = AtomicU64::new(10_000);

/// Sets how long key-store operations wait for another process's lock on
/// the store before failing with [`KeyError::LockTimeout`] (default 10 s).
pub fn set_lock_timeout(timeout: Duration) {
    LOCK_TIMEOUT_MS.store(
        u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

/// An exclusive lock, across processes, on a lock file (an advisory
/// `flock`); released when dropped. The lock file is created (0600) if
/// missing and never removed (removing lock files races with their users).
pub struct FileLock {
    _file: File,
}

impl core::fmt::Debug for FileLock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FileLock")
    }
}

impl FileLock {
    /// Takes the lock on `path` (created 0600 if missing; refused with
    /// [`KeyError::NotRegularFile`] if it is a link, FIFO or device),
    /// waiting at most the lock timeout ([`set_lock_timeout`]), then
    /// [`KeyError::LockTimeout`]. For embedders keeping their own shared
    /// files (user lists, bucket settings) under the same discipline as
    /// objseal's key stores: lock, re-read, replace with a
    /// [`StagedFile`], unlock.
    pub fn acquire(path: &Path) -> Result<FileLock, Error> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use rustix::fs::OFlags;
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
            opts.custom_flags(
                (OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32,
            );
        }
        let file = opts.open(path).map_err(|e| match special_kind(path) {
            Some(kind) => KeyError::NotRegularFile {
                path: path.to_path_buf(),
                kind,
            }
            .into(),
            None => Error::io_at(path, e),
        })?;
        let meta = file.metadata().map_err(|e| Error::io_at(path, e))?;
        if !meta.is_file() {
            return Err(KeyError::NotRegularFile {
                path: path.to_path_buf(),
                kind: kind_of(&meta.file_type()),
            }
            .into());
        }
        let timeout = Duration::from_millis(LOCK_TIMEOUT_MS.load(Ordering::Relaxed));
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(FileLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io_at(path, e)),
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(KeyError::LockTimeout {
                    path: path.to_path_buf(),
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                }
                .into());
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

/// The directory holding `path`.
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes `bytes` to `path` atomically: a new owner-only (0600) temporary
/// file beside it is written and fsynced, renamed over `path`, and the
/// directory is fsynced. A crash leaves the old file or the new one. A
/// failure tells whether it came after the file was replaced (see
/// [`StagedFile::commit_tracked`]).
pub(crate) fn write_private_atomic_tracked(path: &Path, bytes: &[u8]) -> Result<(), CommitFailure> {
    let before = |error| CommitFailure {
        renamed: false,
        error,
    };
    let staged = Staged::create(path).map_err(before)?;
    staged
        .file()
        .write_all(bytes)
        .map_err(|e| before(Error::io_at(staged.tmp_path(), e)))?;
    staged.commit_tracked()
}

/// Fsyncs a directory, so a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io_at(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Refuses a secret file that its group or others can access.
pub(crate) fn check_private_meta(path: &Path, meta: &fs::Metadata) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            }
            .into());
        }
    }
    #[cfg(not(unix))]
    let _ = (path, meta);
    Ok(())
}

/// Reads a secret file: a regular file (not a link, FIFO or device), not
/// accessible to its group or others ([`KeyError::InsecurePermissions`]),
/// at most `max` bytes.
pub fn read_private(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    let file = open_regular(path, false)?;
    read_private_from(path, &file, max)
}

fn read_private_from(path: &Path, file: &File, max: u64) -> Result<Vec<u8>, Error> {
    let meta = file.metadata().map_err(|e| Error::io_at(path, e))?;
    check_private_meta(path, &meta)?;
    let len = meta.len();
    if len > max {
        return Err(KeyError::CorruptStore {
            path: path.to_path_buf(),
            reason: format!("{len} bytes, larger than the {max}-byte limit"),
        }
        .into());
    }
    let mut out = Vec::with_capacity(len as usize);
    let reader = file;
    reader
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::io_at(path, e))?;
    if out.len() as u64 > max {
        return Err(KeyError::CorruptStore {
            path: path.to_path_buf(),
            reason: format!("grew past the {max}-byte limit while read"),
        }
        .into());
    }
    Ok(out)
}

/// Turns "not found" on a key-store file that was read before into
/// [`KeyError::StoreMissing`]: it was deleted or moved under a running
/// store, and must be restored, not re-created.
pub(crate) fn missing_is_lost(e: Error, path: &Path) -> Error {
    match e {
        Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
            KeyError::StoreMissing {
                path: path.to_path_buf(),
                reason: "it was read earlier by this process".into(),
            }
            .into()
        }
        other => other,
    }
}

/// The version of a file that was read (or written), kept open so that its
/// inode cannot be reused while it is held: the file at the path is still
/// that version exactly when it has the same device and inode numbers
/// (every change replaces the file by a rename, never in place). Unlike
/// comparing sizes and times, this cannot be fooled by coarse timestamps
/// or a reused inode number.
pub(crate) struct Pinned {
    _file: File,
    id: Option<(u64, u64)>,
}

impl Pinned {
    /// Pins the file open as `file`.
    fn of(file: File) -> Pinned {
        #[cfg(unix)]
        let id = {
            use std::os::unix::fs::MetadataExt;
            file.metadata().ok().map(|m| (m.dev(), m.ino()))
        };
        #[cfg(not(unix))]
        let id = None;
        Pinned { _file: file, id }
    }

    /// Whether `path` (not followed if a link) is still the pinned file;
    /// always false where files have no inode numbers (then every check
    /// re-reads).
    pub(crate) fn is_current(&self, path: &Path) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            match (self.id, fs::symlink_metadata(path)) {
                (Some(id), Ok(m)) => id == (m.dev(), m.ino()),
                _ => false,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            false
        }
    }
}

/// Pins the file now at `path` (after writing it under the store's lock).
pub(crate) fn pin(path: &Path) -> Option<Pinned> {
    open_regular(path, false).ok().map(Pinned::of)
}

/// [`read_private`], also pinning the version read.
pub(crate) fn read_private_pinned(path: &Path, max: u64) -> Result<(Vec<u8>, Pinned), Error> {
    let file = open_regular(path, false)?;
    let bytes = read_private_from(path, &file, max)?;
    Ok((bytes, Pinned::of(file)))
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `secs` since the epoch as an RFC 3339 UTC timestamp (`2026-01-31T12:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (proleptic calendar, era
/// arithmetic over 400-year cycles of 146097 days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[cfg(unix)]
    #[test]
    fn a_pinned_version_tells_a_same_size_replacement() {
        let write = |p: &std::path::Path, b: &[u8]| {
            super::write_private_atomic_tracked(p, b).map_err(|f| f.error)
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write(&path, b"{\"state\":\"A\"}").unwrap();
        let (bytes, pinned) = super::read_private_pinned(&path, 1024).unwrap();
        assert_eq!(bytes, b"{\"state\":\"A\"}");
        assert!(pinned.is_current(&path));
        // Replaced by a file of the same size (and, on a coarse clock, the
        // same times): the pin, holding the old inode, is not fooled.
        for _ in 0..50 {
            write(&path, b"{\"state\":\"B\"}").unwrap();
            assert!(!pinned.is_current(&path));
        }
        let again = super::pin(&path).unwrap();
        assert!(again.is_current(&path));
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
    }
}
