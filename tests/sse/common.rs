//! Shared fixture of the `sse_*` tests (included with `#[path]`).
#![allow(dead_code, missing_docs)]

use std::sync::Arc;

use objseal::keys::{CustomerKey, KeyMetadata, LocalKms};
use objseal::sse::SseCustomerKey;
use objseal::{Engine, Keyring};

pub const ACCOUNT: &str = "111122223333";
pub const REGION: &str = "us-east-1";

pub struct Fx {
    pub _dir: tempfile::TempDir,
    pub kms: Arc<LocalKms>,
    pub engine: Engine,
    pub cmk: KeyMetadata,
    pub cmk2: KeyMetadata,
    pub disabled: KeyMetadata,
    pub pending: KeyMetadata,
}

pub fn fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let kms = Arc::new(LocalKms::open(dir.path().join("kms"), REGION, ACCOUNT).unwrap());
    let cmk = kms.create_key("app", "admin").unwrap();
    let cmk2 = kms.create_key("other", "admin").unwrap();
    kms.create_alias("alias/app", &cmk.key_id, "admin").unwrap();
    let disabled = kms.create_key("disabled", "admin").unwrap();
    kms.disable_key(&disabled.key_id, "admin").unwrap();
    let pending = kms.create_key("pending", "admin").unwrap();
    kms.schedule_key_deletion(&pending.key_id, 7, "admin")
        .unwrap();
    let engine = Engine::builder()
        .keyring(Arc::new(Keyring::in_memory("s3-master").unwrap()))
        .kms(kms.clone())
        .default_kms_key(cmk.arn.clone())
        .principal("s3")
        .build();
    Fx {
        _dir: dir,
        kms,
        engine,
        cmk,
        cmk2,
        disabled,
        pending,
    }
}

pub fn customer(byte: u8) -> SseCustomerKey {
    SseCustomerKey::new(CustomerKey::from_bytes([byte; 32]))
}

/// Owned header list helper.
pub fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// The SSE-C trio of `key` as owned headers.
pub fn ssec(key: &SseCustomerKey, copy_source: bool) -> Vec<(String, String)> {
    key.to_headers(copy_source)
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b))
        .collect()
}
