//! The key store's files on arbitrary content: `keyring.json`,
//! `kms/keys.json` and `kms/audit.jsonl` as a damaged or hostile disk
//! could hold them. Opening and querying never panics and never allocates
//! without bound; a damaged file is a typed error, and a damaged audit line
//! is reported, not fatal. Input: a selector byte, then the file's bytes.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use objseal::keys::{AuditQuery, Keyring, LocalKms};

fn write_private(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

pub fn run(data: &[u8]) {
    let Some((&which, content)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    match which % 3 {
        0 => {
            let path = dir.path().join("keyring.json");
            write_private(&path, content);
            if let Ok(ring) = Keyring::open(&path) {
                // Whatever opened is usable.
                let _ = ring.versions();
                let _ = ring.active_version();
            }
        }
        1 => {
            write_private(&dir.path().join("keys.json"), content);
            if let Ok(kms) = LocalKms::open_existing(dir.path(), "local-1", "000000000000") {
                let _ = kms.list_keys();
                let _ = kms.describe_key("alias/objseal");
                let _ = kms.audit_report(&AuditQuery::default());
            }
        }
        _ => {
            // A valid, empty store, then the audit log's content.
            drop(LocalKms::open(dir.path(), "local-1", "000000000000").unwrap());
            write_private(&dir.path().join("audit.jsonl"), content);
            let kms = LocalKms::open_existing(dir.path(), "local-1", "000000000000");
            if let Ok(kms) = kms {
                let report = kms.audit_report(&AuditQuery::default());
                let strict = kms.audit(&AuditQuery::default());
                if let (Ok(report), Ok(records)) = (report, strict) {
                    assert!(report.damaged.is_empty());
                    assert_eq!(report.records, records);
                }
            }
        }
    }
}
