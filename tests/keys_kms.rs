//! LocalKms: key references, states, regions, contexts, rotation, and an
//! audit log with exactly one line per use, failures included.

use std::sync::Arc;
use std::time::Duration;

use objseal::keys::{AuditQuery, EncryptionContext, KeyState, Kms, LocalKms};
use objseal::{Engine, Error, KmsError, ObjectBinding, OpenWith, SealMode};

const ACCOUNT: &str = "111122223333";

fn uses(kms: &LocalKms) -> Vec<objseal::keys::AuditRecord> {
    kms.audit(&AuditQuery::default())
        .unwrap()
        .into_iter()
        .filter(|r| r.operation == "GenerateDataKey" || r.operation == "Decrypt")
        .collect()
}

#[test]
fn references_states_regions_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let kms = LocalKms::open(dir.path(), "eu-west-1", ACCOUNT).unwrap();
    let key = kms.create_key("k", "admin").unwrap();
    assert_eq!(
        key.arn,
        format!("arn:aws:kms:eu-west-1:{ACCOUNT}:key/{}", key.key_id)
    );
    kms.create_alias("alias/app", &key.key_id, "admin").unwrap();
    assert!(matches!(
        kms.create_alias("alias/app", &key.key_id, "admin"),
        Err(Error::Kms(KmsError::AliasExists { .. }))
    ));
    let ctx = EncryptionContext::new().with("a", "1").unwrap();
    let mut expected = 0;
    let mut check = |kms: &LocalKms, n: usize| {
        expected += n;
        assert_eq!(uses(kms).len(), expected);
    };
    // Every way to name the key.
    for r in [
        key.key_id.clone(),
        key.arn.clone(),
        "alias/app".to_owned(),
        format!("arn:aws:kms:eu-west-1:{ACCOUNT}:alias/app"),
    ] {
        let g = kms.generate_data_key(&r, &ctx, "app").unwrap();
        assert_eq!(g.key_arn, key.arn);
        assert_eq!(
            kms.decrypt(&g.key_arn, &g.blob, &ctx, "app").unwrap().key,
            g.key
        );
        check(&kms, 2);
    }
    let g = kms.generate_data_key("alias/app", &ctx, "app").unwrap();
    check(&kms, 1);
    // Distinct typed errors, each audited.
    let fails: Vec<(Result<(), Error>, &str)> = vec![
        (
            kms.generate_data_key("alias/nope", &ctx, "app").map(drop),
            "NotFound",
        ),
        (
            kms.generate_data_key(
                &format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{}", key.key_id),
                &ctx,
                "app",
            )
            .map(drop),
            "WrongRegion",
        ),
        (
            kms.decrypt(&g.key_arn, &g.blob, &EncryptionContext::new(), "app")
                .map(drop),
            "ContextMismatch",
        ),
        (
            kms.decrypt("", b"garbage", &ctx, "app").map(drop),
            "InvalidCiphertext",
        ),
    ];
    for (r, kind) in &fails {
        let e = r.as_ref().unwrap_err();
        let name = match e {
            Error::Kms(KmsError::NotFound { .. }) => "NotFound",
            Error::Kms(KmsError::WrongRegion { .. }) => "WrongRegion",
            Error::Kms(KmsError::ContextMismatch) => "ContextMismatch",
            Error::Kms(KmsError::InvalidCiphertext { .. }) => "InvalidCiphertext",
            other => panic!("{other:?}"),
        };
        assert_eq!(&name, kind);
    }
    check(&kms, 4);
    let mut blob = g.blob.clone();
    let n = blob.len();
    blob[n - 1] ^= 1;
    assert!(matches!(
        kms.decrypt("", &blob, &ctx, "app"),
        Err(Error::Kms(KmsError::InvalidCiphertext { .. }))
    ));
    check(&kms, 1);
    kms.disable_key("alias/app", "admin").unwrap();
    assert!(matches!(
        kms.generate_data_key("alias/app", &ctx, "app"),
        Err(Error::Kms(KmsError::Disabled { .. }))
    ));
    assert!(matches!(
        kms.decrypt(&g.key_arn, &g.blob, &ctx, "app"),
        Err(Error::Kms(KmsError::Disabled { .. }))
    ));
    check(&kms, 2);
    kms.enable_key(&key.arn, "admin").unwrap();
    kms.schedule_key_deletion(&key.key_id, 7, "admin").unwrap();
    assert!(matches!(
        kms.describe_key(&key.key_id).unwrap().state,
        KeyState::PendingDeletion { .. }
    ));
    match kms.decrypt(&g.key_arn, &g.blob, &ctx, "app") {
        Err(Error::Kms(KmsError::PendingDeletion { deletion_date, .. })) => {
            assert!(deletion_date.ends_with('Z'))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        kms.enable_key(&key.key_id, "admin"),
        Err(Error::Kms(KmsError::PendingDeletion { .. }))
    ));
    check(&kms, 1);
    kms.cancel_key_deletion(&key.key_id, "admin").unwrap();
    assert_eq!(
        kms.describe_key(&key.key_id).unwrap().state,
        KeyState::Disabled
    );
    kms.enable_key(&key.key_id, "admin").unwrap();
    assert_eq!(
        kms.decrypt(&g.key_arn, &g.blob, &ctx, "app").unwrap().key,
        g.key
    );
    check(&kms, 1);
    // Audit lines carry the fields and outcome.
    let log = uses(&kms);
    let failures: Vec<_> = log.iter().filter(|r| !r.succeeded()).collect();
    assert_eq!(failures.len(), 8);
    assert!(
        log.iter()
            .all(|r| r.principal == "app" && r.time.ends_with('Z'))
    );
    let wrong_ctx = log
        .iter()
        .find(|r| r.error.as_deref() == Some("ContextMismatch"))
        .unwrap();
    assert_eq!(wrong_ctx.key_arn.as_deref(), Some(key.arn.as_str()));
    assert!(wrong_ctx.key_version.is_some());
    assert_eq!(wrong_ctx.encryption_context, Some(EncryptionContext::new()));
    let by_query = kms
        .audit(&AuditQuery {
            operation: Some("Decrypt".into()),
            succeeded: Some(false),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        by_query.len(),
        failures.iter().filter(|r| r.operation == "Decrypt").count()
    );
    // The log on disk: one JSON line per record, admin operations included.
    let text = std::fs::read_to_string(kms.audit_path()).unwrap();
    assert_eq!(
        text.lines().count(),
        kms.audit(&AuditQuery::default()).unwrap().len()
    );
}

#[test]
fn key_in_another_region_of_a_shared_directory() {
    let dir = tempfile::tempdir().unwrap();
    let east = LocalKms::open(dir.path(), "us-east-1", ACCOUNT).unwrap();
    let key = east.create_key("east", "admin").unwrap();
    drop(east);
    let west = LocalKms::open(dir.path(), "us-west-2", ACCOUNT).unwrap();
    let ctx = EncryptionContext::new();
    assert!(matches!(
        west.generate_data_key(&key.key_id, &ctx, "p"),
        Err(Error::Kms(KmsError::WrongRegion { .. }))
    ));
    assert_eq!(
        west.audit(&AuditQuery {
            succeeded: Some(false),
            ..Default::default()
        })
        .unwrap()
        .len(),
        1
    );
    // Through the engine, a bucket in another region than its key.
    let engine = Engine::builder().kms(Arc::new(west)).build();
    let obj = ObjectBinding::new("b", "k").unwrap();
    assert!(matches!(
        engine.seal(&SealMode::kms(&key.arn), &obj, b"x"),
        Err(Error::Kms(KmsError::WrongRegion { .. }))
    ));
}

#[test]
fn rotation_keeps_old_versions() {
    let dir = tempfile::tempdir().unwrap();
    let kms = Arc::new(LocalKms::open(dir.path(), "eu-west-1", ACCOUNT).unwrap());
    let key = kms.create_key("k", "admin").unwrap();
    let engine = Engine::builder()
        .kms(kms.clone())
        .default_kms_key(key.arn.clone())
        .build();
    let default_mode = SealMode::Kms {
        key_id: None,
        context: None,
        bucket_key: false,
    };
    let mut objects = Vec::new();
    for i in 0..3 {
        let obj = ObjectBinding::new("b", format!("k{i}")).unwrap();
        let sealed = engine.seal(&default_mode, &obj, b"data").unwrap();
        assert_eq!(
            objseal::Envelope::parse_prefix(&sealed)
                .unwrap()
                .0
                .wrapped_key
                .key_version,
            i + 1
        );
        objects.push((obj, sealed));
        kms.rotate_key(&key.key_id, "admin").unwrap();
    }
    // Automatic rotation once the period has passed (zero: every use).
    kms.set_rotation_period(&key.key_id, Some(Duration::ZERO), "admin")
        .unwrap();
    let g = kms
        .generate_data_key(&key.key_id, &EncryptionContext::new(), "p")
        .unwrap();
    assert_eq!(g.key_version, Some(5));
    kms.set_rotation_period(&key.key_id, None, "admin").unwrap();
    assert_eq!(
        kms.describe_key(&key.key_id).unwrap().versions,
        vec![1, 2, 3, 4, 5]
    );
    // Reopened from disk, every version still decrypts.
    let reopened = Arc::new(LocalKms::open(dir.path(), "eu-west-1", ACCOUNT).unwrap());
    let engine2 = Engine::builder().kms(reopened).build();
    for (obj, sealed) in &objects {
        assert_eq!(
            engine2.open(OpenWith::Managed, obj, sealed).unwrap(),
            b"data"
        );
        // Rewrap to the current version: same key ARN, body untouched.
        let moved = engine2
            .rewrap_object(OpenWith::Managed, obj, sealed, &SealMode::kms(&key.arn))
            .unwrap();
        assert_eq!(
            objseal::Envelope::parse_prefix(&moved)
                .unwrap()
                .0
                .wrapped_key
                .key_version,
            5
        );
        assert_eq!(
            engine2.open(OpenWith::Managed, obj, &moved).unwrap(),
            b"data"
        );
    }
}

#[test]
fn context_rules() {
    assert!(EncryptionContext::new().with("aws:x", "y").is_err());
    assert!(EncryptionContext::new().with("", "y").is_err());
    assert!(
        EncryptionContext::new()
            .with("k", "v".repeat(3000))
            .is_err()
    );
    let obj = ObjectBinding::new("bkt", "a/b").unwrap();
    let ctx =
        EncryptionContext::for_object(&obj, &EncryptionContext::new().with("x", "1").unwrap())
            .unwrap();
    assert_eq!(ctx.get("aws:s3:arn"), Some("arn:aws:s3:::bkt/a/b"));
    assert_eq!(ctx.get("x"), Some("1"));
    let b = EncryptionContext::for_bucket("bkt", &EncryptionContext::new()).unwrap();
    assert_eq!(b.get("aws:s3:arn"), Some("arn:aws:s3:::bkt"));
    // A deserialized context cannot smuggle the reserved key in.
    let smuggled: EncryptionContext =
        serde_json::from_str(r#"{"aws:s3:arn":"arn:aws:s3:::other/x"}"#).unwrap();
    assert!(EncryptionContext::for_object(&obj, &smuggled).is_err());
}

#[cfg(unix)]
#[test]
fn key_file_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let kms = LocalKms::open(dir.path(), "eu-west-1", ACCOUNT).unwrap();
    kms.create_key("k", "admin").unwrap();
    let path = kms.keys_path();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(kms);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        LocalKms::open(dir.path(), "eu-west-1", ACCOUNT),
        Err(Error::Key(objseal::KeyError::InsecurePermissions { .. }))
    ));
}
