//! Checks shared by the key-store fault and stress tests.

use std::path::{Path, PathBuf};

/// `.objseal-*.tmp` files in `dir`.
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".objseal-") && n.ends_with(".tmp"))
        })
        .collect()
}

/// Parses the audit log file line by line: no torn line, every line a
/// JSON object naming its operation and outcome.
pub fn read_audit_file(path: &Path) -> Vec<serde_json::Value> {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "{} ends in a torn line",
        path.display()
    );
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(n, line)| {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_else(|e| {
                panic!(
                    "audit line {} does not parse ({e}): {}",
                    n + 1,
                    String::from_utf8_lossy(line)
                )
            });
            for field in ["operation", "outcome", "principal", "unix_ms"] {
                assert!(
                    !v[field].is_null(),
                    "audit line {} lacks {field}: {v}",
                    n + 1
                );
            }
            v
        })
        .collect()
}
