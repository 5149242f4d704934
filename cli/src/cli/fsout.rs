//! Output files: written beside their destination and put in place only
//! once complete and synced, so a failure or a kill leaves nothing behind
//! (see [`objseal::fs::StagedFile`]). They are created with mode 0600: an
//! opened file is plaintext.

use std::fs::File;
use std::path::Path;

use objseal::fs::{StagedFile, remove_stale_temp_files};

use super::Failure;

/// Refuses to replace an existing `path` unless `force`, and refuses to
/// replace anything but a regular file even with `force`: a device, FIFO,
/// socket or directory would be swapped for a regular file holding the
/// output, and a symbolic link would be replaced itself, not its target.
pub fn check_new(path: &Path, force: bool) -> Result<(), Failure> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let t = meta.file_type();
    if !t.is_file() {
        let kind = if t.is_symlink() {
            "a symbolic link (give the path it points to)"
        } else if t.is_dir() {
            "a directory"
        } else {
            "a device, FIFO or socket (to write to it, use `-o -` and redirect)"
        };
        return Err(Failure::usage(format!(
            "{} is {kind}; objseal only replaces regular files",
            path.display()
        )));
    }
    if !force {
        return Err(Failure::usage(format!(
            "{} exists; pass --force to replace it",
            path.display()
        )));
    }
    Ok(())
}

/// A file being written for `dst`; discarded on drop unless committed.
pub struct Staged {
    inner: StagedFile,
    dst: std::path::PathBuf,
}

impl Staged {
    /// Creates the temporary file (mode 0600) for `dst`, first removing the
    /// temporary files that killed objseal processes left beside it.
    pub fn create(dst: &Path) -> Result<Staged, Failure> {
        if dst.file_name().is_none() {
            return Err(Failure::usage(format!(
                "{} is not a file name",
                dst.display()
            )));
        }
        let dir = match dst.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let fail = |e| Failure::from_error(e, dst);
        remove_stale_temp_files(dir).map_err(fail)?;
        Ok(Staged {
            inner: StagedFile::create(dst).map_err(fail)?,
            dst: dst.to_path_buf(),
        })
    }

    /// The open file (`&File` is `Write`).
    pub fn file(&mut self) -> &File {
        self.inner.file()
    }

    /// Syncs the file and puts it in place.
    pub fn commit(self) -> Result<(), Failure> {
        let dst = self.dst.clone();
        self.inner
            .commit()
            .map_err(|e| Failure::from_error(e, &dst))
    }
}
