//! File helpers shared by every layer: the one staged-file type behind
//! every atomic write (temporary file beside the destination, fsync, rename,
//! directory fsync), the permission check on secret files, and UTC
//! timestamps.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, KeyError};
use crate::keys::secret::fill_random;

/// A new file being written under a temporary name beside its destination:
/// private to its owner (mode 0600 on unix: it may hold plaintext or keys),
/// renamed over the destination by [`Staged::commit`] only once complete and
/// fsynced, and removed on drop otherwise. A crash or an error therefore
/// leaves the old destination or the complete new one, never a torn file.
pub(crate) struct Staged {
    file: File,
    tmp: PathBuf,
    dst: PathBuf,
    committed: bool,
}

impl Staged {
    /// Creates the temporary file for `dst`, named `.objseal-<16 hex
    /// digits>.tmp` in the same directory (short, so any destination name
    /// that fits the file system leaves room for it; random, so concurrent
    /// writers never collide; created exclusively, so it never follows or
    /// reuses an existing path).
    pub(crate) fn create(dst: &Path) -> Result<Self, Error> {
        if dst.file_name().is_none() {
            return Err(Error::io_at(
                dst,
                io::Error::new(io::ErrorKind::InvalidInput, "destination has no file name"),
            ));
        }
        let mut rnd = [0u8; 8];
        fill_random(&mut rnd)?;
        let tmp = parent_dir(dst).join(format!(".objseal-{:016x}.tmp", u64::from_le_bytes(rnd)));
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&tmp).map_err(|e| Error::io_at(&tmp, e))?;
        Ok(Staged {
            file,
            tmp,
            dst: dst.to_path_buf(),
            committed: false,
        })
    }

    /// The file being written.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The temporary path, for error messages.
    pub(crate) fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Makes the file durable, renames it over the destination, and makes
    /// the rename durable by fsyncing the directory.
    ///
    /// If that last fsync fails, the error is returned, but the destination
    /// has already been replaced by the complete new file (the rename is
    /// done and cannot be undone); only its durability across a crash is in
    /// doubt.
    pub(crate) fn commit(mut self) -> Result<(), Error> {
        self.file
            .sync_all()
            .map_err(|e| Error::io_at(&self.tmp, e))?;
        fs::rename(&self.tmp, &self.dst).map_err(|e| Error::io_at(&self.dst, e))?;
        self.committed = true;
        sync_dir(&parent_dir(&self.dst))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
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
/// directory is fsynced. A crash leaves the old file or the new one.
pub(crate) fn write_private_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let staged = Staged::create(path)?;
    staged
        .file()
        .write_all(bytes)
        .map_err(|e| Error::io_at(staged.tmp_path(), e))?;
    staged.commit()
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
pub(crate) fn check_private(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path).map_err(|e| Error::io_at(path, e))?;
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
    let _ = path;
    Ok(())
}

/// Reads a secret file after checking its permissions, refusing one larger
/// than `max` bytes.
pub(crate) fn read_private(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    check_private(path)?;
    let len = fs::metadata(path).map_err(|e| Error::io_at(path, e))?.len();
    if len > max {
        return Err(KeyError::CorruptStore {
            path: path.to_path_buf(),
            reason: format!("{len} bytes, larger than the {max}-byte limit"),
        }
        .into());
    }
    fs::read(path).map_err(|e| Error::io_at(path, e))
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

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
    }
}
