//! Output files written beside their destination and renamed into place only
//! once complete and synced, so a failure leaves nothing behind. They are
//! created with mode 0600: an opened file is plaintext.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::Failure;

/// Refuses to replace an existing `path` unless `force`.
pub fn check_new(path: &Path, force: bool) -> Result<(), Failure> {
    if !force && path.exists() {
        return Err(Failure::usage(format!(
            "{} exists; pass --force to replace it",
            path.display()
        )));
    }
    Ok(())
}

/// A file being written under a temporary name beside its destination;
/// removed on drop unless committed.
pub struct Staged {
    tmp: PathBuf,
    dst: PathBuf,
    file: File,
}

impl Staged {
    /// Creates the temporary file (mode 0600) for `dst`.
    pub fn create(dst: &Path) -> Result<Staged, Failure> {
        let dir = match dst.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dst
            .file_name()
            .ok_or_else(|| Failure::usage(format!("{} is not a file name", dst.display())))?;
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        for n in 0..100u32 {
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!(".objseal-{}-{n}.tmp", std::process::id()));
            let tmp = dir.join(tmp_name);
            match opts.open(&tmp) {
                Ok(file) => {
                    return Ok(Staged {
                        tmp,
                        dst: dst.to_path_buf(),
                        file,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Failure::io(dst, &e)),
            }
        }
        Err(Failure::io(
            dst,
            &io::Error::other("no free temporary name beside it"),
        ))
    }

    /// The open file.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Syncs the file and renames it into place.
    pub fn commit(mut self) -> Result<(), Failure> {
        let dst = self.dst.clone();
        self.file.flush().map_err(|e| Failure::io(&dst, &e))?;
        self.file.sync_all().map_err(|e| Failure::io(&dst, &e))?;
        std::fs::rename(&self.tmp, &dst).map_err(|e| Failure::io(&dst, &e))?;
        self.tmp = PathBuf::new();
        // Make the rename durable (best effort: not every platform can
        // open a directory).
        if let Some(dir) = dst.parent().filter(|p| !p.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
