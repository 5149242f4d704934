//! The append-only audit log of [`super::LocalKms`]: one JSON object per
//! line, durable before the operation returns.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, KeyError};
use crate::fsio;
use crate::keys::context::EncryptionContext;

/// Longest audit line read back, in bytes.
const MAX_LINE: u64 = 64 * 1024;

/// One line of the audit log: one use of the KMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When, as RFC 3339 UTC.
    pub time: String,
    /// When, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Who asked.
    pub principal: String,
    /// What was asked (`GenerateDataKey`, `Decrypt`, `CreateKey`, `RotateKey`, ...).
    pub operation: String,
    /// The master key's ARN, or the reference given when it did not resolve.
    pub key_arn: Option<String>,
    /// The master key version used, when one was.
    pub key_version: Option<u32>,
    /// The encryption context of the request.
    pub encryption_context: Option<EncryptionContext>,
    /// `Success` or `Failure`.
    pub outcome: String,
    /// On failure, the error's kind (`NotFound`, `Disabled`, `PendingDeletion`,
    /// `WrongRegion`, `ContextMismatch`, ...).
    pub error: Option<String>,
}

impl AuditRecord {
    /// Whether the operation succeeded.
    pub fn succeeded(&self) -> bool {
        self.outcome == "Success"
    }
}

/// A filter over the audit log; `None` fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this principal.
    pub principal: Option<String>,
    /// Only this operation.
    pub operation: Option<String>,
    /// Only this key ARN.
    pub key_arn: Option<String>,
    /// Only successes (`Some(true)`) or failures (`Some(false)`).
    pub succeeded: Option<bool>,
    /// Only records at or after this time (ms since the Unix epoch).
    pub since_ms: Option<u64>,
}

impl AuditQuery {
    fn matches(&self, r: &AuditRecord) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == r.principal)
            && self.operation.as_ref().is_none_or(|o| *o == r.operation)
            && self
                .key_arn
                .as_ref()
                .is_none_or(|a| Some(a) == r.key_arn.as_ref())
            && self.succeeded.is_none_or(|s| s == r.succeeded())
            && self.since_ms.is_none_or(|t| r.unix_ms >= t)
    }
}

/// A line of the audit log that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedLine {
    /// Its line number, from 1.
    pub line: u64,
    /// Its byte offset in the file.
    pub offset: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// The audit records matching a query, and the lines that could not be
/// read (reported, not fatal).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Matching records, oldest first.
    pub records: Vec<AuditRecord>,
    /// Lines that do not parse, in file order.
    pub damaged: Vec<DamagedLine>,
}

/// The open log file. Appends happen under the KMS's store lock only, so
/// the file grows one complete line (or batch of lines) at a time; a torn
/// tail (a failed or killed append) is cut off by [`AuditLog::repair_tail`]
/// before the next append.
pub(super) struct AuditLog {
    path: PathBuf,
    file: File,
}

impl AuditLog {
    /// Opens (creating, 0600) the log; refuses links, FIFOs and devices
    /// without blocking on them.
    pub(super) fn open(path: &Path) -> Result<Self, Error> {
        let mut opts = OpenOptions::new();
        opts.read(true).append(true).create(true);
        #[cfg(unix)]
        {
            use rustix::fs::OFlags;
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
            opts.custom_flags(
                (OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32,
            );
        }
        let file = opts
            .open(path)
            .map_err(|e| match fsio::special_kind(path) {
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
                kind: "special file",
            }
            .into());
        }
        Ok(AuditLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The log's length in bytes.
    pub(super) fn len(&self) -> Result<u64, Error> {
        Ok(self
            .file
            .metadata()
            .map_err(|e| Error::io_at(&self.path, e))?
            .len())
    }

    /// Cuts off a torn last line (one not ending in a newline), left by an
    /// append that failed (full disk) or was killed. Such a line belongs to
    /// an operation that was never acknowledged, or whose record is still
    /// pending in the key store and is appended again. Returns the number
    /// of bytes cut.
    pub(super) fn repair_tail(&mut self) -> Result<u64, Error> {
        let len = self.len()?;
        if len == 0 {
            return Ok(0);
        }
        let io = |e| Error::io_at(&self.path, e);
        let mut last = [0u8; 1];
        read_at(&self.file, &mut last, len - 1).map_err(io)?;
        if last[0] == b'\n' {
            return Ok(0);
        }
        let mut end = len;
        let mut buf = vec![0u8; 64 * 1024];
        let cut = loop {
            let start = end.saturating_sub(buf.len() as u64);
            let chunk = &mut buf[..(end - start) as usize];
            read_at(&self.file, chunk, start).map_err(io)?;
            if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
                break start + i as u64 + 1;
            }
            if start == 0 {
                break 0;
            }
            end = start;
        };
        self.file.set_len(cut).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        Ok(len - cut)
    }

    /// Appends those of `records`, a batch that was to be appended at
    /// `offset`, that are not in the log yet: the lines from `offset` on are
    /// compared with the batch's records, and only a missing tail of the
    /// batch is appended (a torn line was cut by
    /// [`AuditLog::repair_tail`] first). If the log holds something else
    /// there, or is shorter than `offset`, it was rotated or truncated by
    /// hand since: nothing is appended (the records went to the old log),
    /// so no record is ever written twice.
    pub(super) fn complete_batch(
        &mut self,
        offset: u64,
        log: Option<[u64; 2]>,
        records: &[AuditRecord],
    ) -> Result<(), Error> {
        if records.is_empty() || (log.is_some() && log != self.file_id()) {
            return Ok(());
        }
        let len = self.len()?;
        if len < offset {
            return Ok(());
        }
        let io = |e| Error::io_at(&self.path, e);
        let mut at = offset;
        let mut present = 0;
        for record in records {
            if at == len {
                break;
            }
            let line = line_of(&self.path, record)?;
            if len - at < line.len() as u64 {
                return Ok(());
            }
            let mut found = vec![0u8; line.len()];
            read_at(&self.file, &mut found, at).map_err(io)?;
            if found != line {
                return Ok(());
            }
            at += line.len() as u64;
            present += 1;
        }
        if at != len {
            // Lines after a complete batch: later operations' records.
            return Ok(());
        }
        self.append_all(&records[present..])
    }

    /// The open log's device and inode numbers, where files have them.
    pub(super) fn file_id(&self) -> Option<[u64; 2]> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            self.file.metadata().ok().map(|m| [m.dev(), m.ino()])
        }
        #[cfg(not(unix))]
        None
    }

    /// Reopens the log if its path now names another file (it was rotated
    /// by renaming), so records go to the current log.
    pub(super) fn reopen_if_replaced(&mut self) -> Result<(), Error> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let open = self
                .file
                .metadata()
                .map_err(|e| Error::io_at(&self.path, e))?;
            let current = std::fs::symlink_metadata(&self.path).ok();
            if current.is_none_or(|m| (m.dev(), m.ino()) != (open.dev(), open.ino())) {
                *self = AuditLog::open(&self.path)?;
            }
        }
        Ok(())
    }

    /// Appends `records` (one line each) in one write and fsyncs them.
    pub(super) fn append_all(&mut self, records: &[AuditRecord]) -> Result<(), Error> {
        self.append_unsynced(records)?;
        self.file
            .sync_data()
            .map_err(|e| Error::io_at(&self.path, e))
    }

    /// Appends `records` in one write without waiting for the disk; the
    /// caller makes them durable with [`AuditLog::sync_handle`] before it
    /// acknowledges the operation, after releasing its locks.
    pub(super) fn append_unsynced(&mut self, records: &[AuditRecord]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        for r in records {
            lines.extend_from_slice(&line_of(&self.path, r)?);
        }
        self.file
            .write_all(&lines)
            .map_err(|e| Error::io_at(&self.path, e))
    }

    /// A second handle on the log, to fsync it outside the locks.
    pub(super) fn sync_handle(&self) -> Result<File, Error> {
        self.file
            .try_clone()
            .map_err(|e| Error::io_at(&self.path, e))
    }

    /// Reads the records of the log at `path` in its first `end` bytes that
    /// match `query`, oldest first, reporting lines that do not parse
    /// instead of failing on them. Needs no lock: the log only grows, by
    /// whole lines, below `end` once `end` was read under the lock.
    pub(super) fn report_at(
        path: &Path,
        query: &AuditQuery,
        end: u64,
    ) -> Result<AuditReport, Error> {
        let file = File::open(path).map_err(|e| Error::io_at(path, e))?;
        let mut reader = BufReader::new(file.take(end));
        let mut out = AuditReport::default();
        let mut line = Vec::new();
        let (mut number, mut offset) = (0u64, 0u64);
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_LINE + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| Error::io_at(path, e))?;
            if n == 0 {
                break;
            }
            number += 1;
            let at = offset;
            offset += n as u64;
            if line.last() != Some(&b'\n') {
                let reason = if n as u64 > MAX_LINE {
                    // Skip the rest of the overlong line.
                    let mut rest = Vec::new();
                    let skipped = reader
                        .read_until(b'\n', &mut rest)
                        .map_err(|e| Error::io_at(path, e))?;
                    offset += skipped as u64;
                    "line longer than 64 KiB"
                } else {
                    "last line cut short (an append that failed or was killed)"
                };
                out.damaged.push(DamagedLine {
                    line: number,
                    offset: at,
                    reason: reason.into(),
                });
                continue;
            }
            match serde_json::from_slice::<AuditRecord>(&line) {
                Ok(record) => {
                    if query.matches(&record) {
                        out.records.push(record);
                    }
                }
                Err(e) => out.damaged.push(DamagedLine {
                    line: number,
                    offset: at,
                    reason: e.to_string(),
                }),
            }
        }
        Ok(out)
    }

    /// [`AuditLog::report_at`], where a line that does not parse is an
    /// error naming it.
    pub(super) fn query_at(
        path: &Path,
        query: &AuditQuery,
        end: u64,
    ) -> Result<Vec<AuditRecord>, Error> {
        let report = Self::report_at(path, query, end)?;
        if let Some(d) = report.damaged.first() {
            return Err(KeyError::CorruptStore {
                path: path.to_path_buf(),
                reason: format!("line {} (byte {}): {}", d.line, d.offset, d.reason),
            }
            .into());
        }
        Ok(report.records)
    }
}

/// One record as its log line (JSON and a line feed).
fn line_of(path: &Path, record: &AuditRecord) -> Result<Vec<u8>, Error> {
    let mut line = serde_json::to_vec(record).map_err(|e| KeyError::CorruptStore {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    line.push(b'\n');
    Ok(line)
}

/// Reads exactly `buf.len()` bytes at `offset`.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::Seek;
        let mut f = file;
        f.seek(std::io::SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}
