//! The append-only audit log of [`super::LocalKms`]: one JSON object per
//! line, fsynced before the operation returns.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, KeyError};
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

/// The open log file.
pub(super) struct AuditLog {
    path: PathBuf,
    file: File,
}

impl AuditLog {
    pub(super) fn open(path: &Path) -> Result<Self, Error> {
        let mut opts = OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(path).map_err(|e| Error::io_at(path, e))?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record and fsyncs it.
    pub(super) fn append(&mut self, record: &AuditRecord) -> Result<(), Error> {
        let mut line = serde_json::to_vec(record).map_err(|e| KeyError::CorruptStore {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::io_at(&self.path, e))
    }

    /// Reads every record matching `query`, oldest first.
    pub(super) fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, Error> {
        let file = File::open(&self.path).map_err(|e| Error::io_at(&self.path, e))?;
        let mut reader = BufReader::new(file);
        let mut out = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_LINE + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| Error::io_at(&self.path, e))?;
            if n == 0 {
                break;
            }
            let corrupt = |reason: String| KeyError::CorruptStore {
                path: self.path.clone(),
                reason,
            };
            if line.last() != Some(&b'\n') {
                return Err(corrupt("audit line too long or cut short".into()).into());
            }
            let record: AuditRecord =
                serde_json::from_slice(&line).map_err(|e| corrupt(e.to_string()))?;
            if query.matches(&record) {
                out.push(record);
            }
        }
        Ok(out)
    }
}
