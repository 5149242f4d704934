//! Bucket Keys: sealing 1,000 objects costs one KMS call with the flag on,
//! 1,000 with it off (counted through a wrapper around LocalKms), and each
//! call is one audit line. The cache is per principal.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use objseal::keys::{
    AuditQuery, DecryptedDataKey, EncryptionContext, GeneratedDataKey, Kms, LocalKms,
};
use objseal::{Engine, Error, KmsError, ObjectBinding, OpenWith, SealMode};

/// LocalKms behind a counter of the calls that reach it, refusing one
/// principal (if any) before that, as a key policy would.
struct Counting {
    inner: Arc<LocalKms>,
    generate: AtomicUsize,
    decrypt: AtomicUsize,
    refused: Option<&'static str>,
}

impl Counting {
    fn new(inner: Arc<LocalKms>) -> Self {
        Counting {
            inner,
            generate: AtomicUsize::new(0),
            decrypt: AtomicUsize::new(0),
            refused: None,
        }
    }

    fn check(&self, principal: &str, key_id: &str) -> Result<(), Error> {
        if self.refused == Some(principal) {
            return Err(KmsError::AccessDenied {
                principal: principal.to_owned(),
                key_id: key_id.to_owned(),
            }
            .into());
        }
        Ok(())
    }
}

impl Kms for Counting {
    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<GeneratedDataKey, Error> {
        self.check(principal, key_id)?;
        self.generate.fetch_add(1, Ordering::SeqCst);
        self.inner.generate_data_key(key_id, context, principal)
    }

    fn decrypt(
        &self,
        key_id: &str,
        blob: &[u8],
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<DecryptedDataKey, Error> {
        self.check(principal, key_id)?;
        self.decrypt.fetch_add(1, Ordering::SeqCst);
        self.inner.decrypt(key_id, blob, context, principal)
    }
}

fn run(bucket_key: bool, n: usize) -> (usize, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalKms::open(dir.path(), "eu-west-1", "111122223333").unwrap());
    let arn = local.create_key("k", "admin").unwrap().arn;
    let counting = Arc::new(Counting::new(local.clone()));
    let engine = Engine::builder().kms(counting.clone()).build();
    let mode = SealMode::kms(&arn).with_bucket_key(bucket_key);
    let mut sealed = Vec::new();
    for i in 0..n {
        let obj = ObjectBinding::new("bucket", format!("o{i}")).unwrap();
        sealed.push((
            engine
                .seal(&mode, &obj, format!("object {i}").as_bytes())
                .unwrap(),
            obj,
        ));
    }
    let generated = counting.generate.load(Ordering::SeqCst);
    // A fresh engine (empty cache) opens a sample.
    let reader = Engine::builder().kms(counting.clone()).build();
    for (i, (s, obj)) in sealed.iter().enumerate().step_by(n / 10) {
        assert_eq!(
            reader.open(OpenWith::Managed, obj, s).unwrap(),
            format!("object {i}").as_bytes()
        );
    }
    let decrypts = counting.decrypt.load(Ordering::SeqCst);
    let calls = counting.generate.load(Ordering::SeqCst) + decrypts;
    let lines = local
        .audit(&AuditQuery::default())
        .unwrap()
        .iter()
        .filter(|r| r.operation == "GenerateDataKey" || r.operation == "Decrypt")
        .count();
    assert_eq!(lines, calls, "one audit line per KMS use");
    (generated, decrypts, lines)
}

#[test]
fn bucket_keys_on_one_kms_call() {
    let (generated, decrypts, _) = run(true, 1000);
    assert_eq!(generated, 1);
    assert_eq!(decrypts, 1);
}

#[test]
fn bucket_keys_off_one_call_per_object() {
    let (generated, decrypts, _) = run(false, 1000);
    assert_eq!(generated, 1000);
    assert_eq!(decrypts, 10);
}

#[test]
fn bucket_key_cache_expires() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalKms::open(dir.path(), "eu-west-1", "111122223333").unwrap());
    let arn = local.create_key("k", "admin").unwrap().arn;
    let counting = Arc::new(Counting::new(local));
    let engine = Engine::builder()
        .kms(counting.clone())
        .bucket_key_ttl(std::time::Duration::ZERO)
        .build();
    let mode = SealMode::kms(&arn).with_bucket_key(true);
    for i in 0..3 {
        engine
            .seal(
                &mode,
                &ObjectBinding::new("b", format!("{i}")).unwrap(),
                b"x",
            )
            .unwrap();
    }
    assert_eq!(counting.generate.load(Ordering::SeqCst), 3);
    // Different buckets get different bucket keys.
    let engine = Engine::builder().kms(counting.clone()).build();
    engine
        .seal(&mode, &ObjectBinding::new("b1", "k").unwrap(), b"x")
        .unwrap();
    engine
        .seal(&mode, &ObjectBinding::new("b2", "k").unwrap(), b"x")
        .unwrap();
    engine
        .seal(&mode, &ObjectBinding::new("b1", "j").unwrap(), b"x")
        .unwrap();
    assert_eq!(counting.generate.load(Ordering::SeqCst), 5);
}

#[test]
fn bucket_keys_are_cached_per_principal() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalKms::open(dir.path(), "eu-west-1", "111122223333").unwrap());
    let arn = local.create_key("k", "admin").unwrap().arn;
    let kms = Arc::new(Counting {
        refused: Some("mallory"),
        ..Counting::new(local.clone())
    });
    let app = Engine::builder().kms(kms).principal("app").build();
    let mode = SealMode::kms(&arn).with_bucket_key(true);
    let obj = ObjectBinding::new("bucket", "o").unwrap();
    let sealed = app.seal(&mode, &obj, b"payload").unwrap();
    // The app's cache now holds the bucket key, both ways.
    assert_eq!(
        app.open(OpenWith::Managed, &obj, &sealed).unwrap(),
        b"payload"
    );

    // An engine sharing that cache for a principal the KMS refuses gets
    // nothing from the cache: neither to open nor to seal.
    let mallory = app.with_principal("mallory");
    let err = mallory.open(OpenWith::Managed, &obj, &sealed).unwrap_err();
    assert!(
        matches!(err, Error::Kms(KmsError::AccessDenied { ref principal, .. }) if principal == "mallory"),
        "{err:?}"
    );
    let err = mallory.seal(&mode, &obj, b"x").unwrap_err();
    assert!(
        matches!(err, Error::Kms(KmsError::AccessDenied { .. })),
        "{err:?}"
    );

    // An allowed principal asks the KMS once (one audited Decrypt in its
    // name), then uses its own cache entry.
    let auditor = app.with_principal("auditor");
    for _ in 0..3 {
        assert_eq!(
            auditor.open(OpenWith::Managed, &obj, &sealed).unwrap(),
            b"payload"
        );
    }
    let uses = |principal: &str| {
        local
            .audit(&AuditQuery {
                principal: Some(principal.into()),
                ..Default::default()
            })
            .unwrap()
            .iter()
            .filter(|r| r.operation == "GenerateDataKey" || r.operation == "Decrypt")
            .count()
    };
    assert_eq!(uses("auditor"), 1);
    // The app's own uses: one GenerateDataKey; its open was served by the
    // entry that seal left.
    assert_eq!(uses("app"), 1);
    assert_eq!(uses("mallory"), 0, "refused before reaching the KMS");
}
