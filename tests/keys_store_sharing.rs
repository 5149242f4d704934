//! Key stores shared by several handles on one directory, as several
//! processes share a home: every change is made on the current state under
//! the store's lock, nothing one handle did is lost by another, a lost
//! store file is an error and never a fresh key, and the audit log keeps
//! exactly one record per operation through torn appends and crashes
//! between the state change and its record.
//!
//! Each handle opens its own lock file descriptor, so handles in one
//! process exclude each other exactly as processes do.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use objseal::keys::{AuditQuery, EncryptionContext, KeyState, Kms, LocalKms};
use objseal::{Engine, Error, KeyError, Keyring, ObjectBinding, OpenWith, SealMode};

const REGION: &str = "eu-west-1";
const ACCOUNT: &str = "111122223333";

fn kms(dir: &std::path::Path) -> LocalKms {
    LocalKms::open(dir, REGION, ACCOUNT).unwrap()
}

#[test]
fn keyring_rotations_from_many_handles_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    Keyring::create(&path, "m").unwrap();
    const HANDLES: usize = 4;
    const ROTATIONS: usize = 15;
    let barrier = Arc::new(Barrier::new(HANDLES));
    let got: Vec<u32> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..HANDLES)
            .map(|_| {
                let barrier = barrier.clone();
                let path = path.clone();
                s.spawn(move || {
                    // A handle opened before the others rotate: its
                    // in-memory state goes stale at once.
                    let ring = Keyring::open(&path).unwrap();
                    barrier.wait();
                    (0..ROTATIONS)
                        .map(|_| ring.rotate().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let distinct: BTreeSet<u32> = got.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        HANDLES * ROTATIONS,
        "versions handed out twice"
    );
    let ring = Keyring::open(&path).unwrap();
    let versions: BTreeSet<u32> = ring.versions().iter().map(|v| v.version).collect();
    assert_eq!(versions.len(), 1 + HANDLES * ROTATIONS);
    assert!(distinct.is_subset(&versions));
    assert_eq!(ring.active_version(), 1 + (HANDLES * ROTATIONS) as u32);
}

#[test]
fn keyring_handle_opens_objects_wrapped_under_versions_made_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    let reader = Arc::new(Keyring::create(&path, "m").unwrap());
    let writer = Arc::new(Keyring::open(&path).unwrap());
    assert_eq!(writer.rotate().unwrap(), 2);
    let seal = Engine::builder().keyring(writer.clone()).build();
    let open = Engine::builder().keyring(reader.clone()).build();
    let obj = ObjectBinding::new("b", "k").unwrap();
    let sealed = seal.seal(&SealMode::S3, &obj, b"made elsewhere").unwrap();
    // The reader has never seen version 2: it re-reads the file.
    assert_eq!(reader.versions().len(), 1);
    assert_eq!(
        open.open(OpenWith::Managed, &obj, &sealed).unwrap(),
        b"made elsewhere"
    );
    assert_eq!(reader.active_version(), 2);
    // A retirement made by the stale handle is made on the current state.
    writer.rotate().unwrap();
    let stale = Keyring::open(&path).unwrap();
    writer.rotate().unwrap();
    stale.retire(1, [], false).unwrap();
    let now = Keyring::open(&path).unwrap();
    assert_eq!(now.versions().len(), 4);
    assert!(now.versions()[0].retired.is_some());
    assert_eq!(now.active_version(), 4);
}

#[test]
fn keyring_lost_file_is_an_error_not_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    let ring = Keyring::create(&path, "m").unwrap();
    std::fs::remove_file(&path).unwrap();
    match ring.rotate() {
        Err(Error::Key(KeyError::StoreMissing { path: p, .. })) => assert_eq!(p, path),
        other => panic!("expected StoreMissing, got {other:?}"),
    }
    assert!(!path.exists(), "rotation re-created the keyring");
    // Creating over a dangling link is refused too.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.path().join("gone"), &path).unwrap();
        assert!(Keyring::create(&path, "m").is_err());
        assert!(matches!(
            Keyring::open(&path),
            Err(Error::Key(KeyError::NotRegularFile { .. }))
        ));
        let (_, created) = Keyring::open_or_create(dir.path().join("new.json"), "m").unwrap();
        assert!(created);
        let (_, created) = Keyring::open_or_create(dir.path().join("new.json"), "m").unwrap();
        assert!(!created);
    }
}

#[test]
fn kms_changes_from_many_handles_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let first = kms(dir.path());
    let shared = first.create_key("shared", "admin").unwrap();
    const HANDLES: usize = 4;
    const KEYS: usize = 6;
    let barrier = Arc::new(Barrier::new(HANDLES));
    let created: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..HANDLES)
            .map(|i| {
                let barrier = barrier.clone();
                let dir = dir.path().to_path_buf();
                let shared = shared.key_id.clone();
                s.spawn(move || {
                    let k = kms(&dir);
                    barrier.wait();
                    let mut mine = Vec::new();
                    for n in 0..KEYS {
                        let m = k.create_key(&format!("w{i}-{n}"), "worker").unwrap();
                        k.rotate_key(&m.key_id, "worker").unwrap();
                        if n.is_multiple_of(2) {
                            k.disable_key(&m.key_id, "worker").unwrap();
                        }
                        mine.push(m.key_id);
                    }
                    k.rotate_key(&shared, "worker").unwrap();
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    // A handle opened before all of it sees all of it.
    let keys = first.list_keys().unwrap();
    assert_eq!(keys.len(), 1 + HANDLES * KEYS);
    for (n, id) in created.iter().enumerate() {
        let m = first.describe_key(id).unwrap();
        assert_eq!(m.versions, vec![1, 2]);
        let expect = if (n % KEYS).is_multiple_of(2) {
            KeyState::Disabled
        } else {
            KeyState::Enabled
        };
        assert_eq!(m.state, expect, "{id}");
    }
    let s = first.describe_key(&shared.key_id).unwrap();
    assert_eq!(s.versions.len(), 1 + HANDLES);
    // One record per operation: 1 + H*K creates, H*K + H rotations, H*K/2 disables.
    let audit = first.audit(&AuditQuery::default()).unwrap();
    let count = |op: &str| audit.iter().filter(|r| r.operation == op).count();
    assert_eq!(count("CreateKey"), 1 + HANDLES * KEYS);
    assert_eq!(count("RotateKey"), HANDLES * KEYS + HANDLES);
    assert_eq!(count("DisableKey"), HANDLES * KEYS / 2);
    assert!(audit.iter().all(|r| r.succeeded() && r.key_arn.is_some()));
}

#[test]
fn kms_disable_elsewhere_takes_effect_here() {
    let dir = tempfile::tempdir().unwrap();
    let a = kms(dir.path());
    let b = kms(dir.path());
    let key = a.create_key("k", "admin").unwrap();
    let ctx = EncryptionContext::new();
    let dk = b.generate_data_key(&key.key_id, &ctx, "app").unwrap();
    a.disable_key(&key.key_id, "admin").unwrap();
    // b's cached state said Enabled; it must not use the key now.
    assert!(b.decrypt(&dk.key_arn, &dk.blob, &ctx, "app").is_err());
    // And a change made through b keeps a's disable.
    b.create_key("other", "admin").unwrap();
    assert_eq!(
        a.describe_key(&key.key_id).unwrap().state,
        KeyState::Disabled
    );
}

#[test]
fn kms_torn_audit_tail_is_cut_and_reported() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let k = kms(dir.path());
    let key = k.create_key("k", "admin").unwrap();
    let log = k.audit_path();
    // An append that failed half way (full disk, kill).
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(br#"{"time":"2026-"#).unwrap();
    drop(f);
    let report = k.audit_report(&AuditQuery::default()).unwrap();
    assert!(report.damaged.is_empty(), "{:?}", report.damaged);
    assert_eq!(report.records.len(), 1);
    // The next operation's record follows complete lines only.
    k.rotate_key(&key.key_id, "admin").unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'));
    assert_eq!(text.lines().count(), 2);
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
    // Damage in the middle is reported by audit_report, an error for audit.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"not json\n").unwrap();
    drop(f);
    k.rotate_key(&key.key_id, "admin").unwrap();
    let report = k.audit_report(&AuditQuery::default()).unwrap();
    assert_eq!(report.records.len(), 3);
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].line, 3);
    assert!(matches!(
        k.audit(&AuditQuery::default()),
        Err(Error::Key(KeyError::CorruptStore { .. }))
    ));
}

#[test]
fn kms_change_whose_record_was_lost_is_recorded_by_the_next_operation() {
    let dir = tempfile::tempdir().unwrap();
    let k = kms(dir.path());
    let key = k.create_key("k", "admin").unwrap();
    let log = k.audit_path();
    let before = std::fs::metadata(&log).unwrap().len();
    k.disable_key(&key.key_id, "admin").unwrap();
    // A crash after keys.json was replaced and before the record reached
    // the log: the log is as it was.
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(before).unwrap();
    drop(f);
    // Another handle (another process) recovers it before its own record.
    let other = kms(dir.path());
    assert!(
        other
            .generate_data_key(&key.key_id, &EncryptionContext::new(), "app")
            .is_err()
    );
    let audit = other.audit(&AuditQuery::default()).unwrap();
    let ops: Vec<&str> = audit.iter().map(|r| r.operation.as_str()).collect();
    assert_eq!(ops, ["CreateKey", "DisableKey", "GenerateDataKey"]);
    assert!(audit[1].succeeded() && !audit[2].succeeded());
    // And it is never appended twice.
    other.enable_key(&key.key_id, "admin").unwrap();
    k.rotate_key(&key.key_id, "admin").unwrap();
    let audit = k.audit(&AuditQuery::default()).unwrap();
    assert_eq!(
        audit.iter().filter(|r| r.operation == "DisableKey").count(),
        1
    );
    assert_eq!(audit.len(), 5);
}

#[test]
fn kms_lost_key_file_is_an_error_not_a_new_store() {
    let dir = tempfile::tempdir().unwrap();
    let k = kms(dir.path());
    let key = k.create_key("k", "admin").unwrap();
    std::fs::remove_file(k.keys_path()).unwrap();
    // The running handle refuses to go on...
    assert!(matches!(
        k.describe_key(&key.key_id),
        Err(Error::Key(KeyError::StoreMissing { .. }))
    ));
    assert!(matches!(
        k.create_key("again", "admin"),
        Err(Error::Key(KeyError::StoreMissing { .. }))
    ));
    // ...and a new one does not start an empty store over the audit log.
    assert!(matches!(
        LocalKms::open(dir.path(), REGION, ACCOUNT),
        Err(Error::Key(KeyError::StoreMissing { .. }))
    ));
    assert!(!k.keys_path().exists());
    // open_existing never creates, even in an empty directory.
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        LocalKms::open_existing(empty.path(), REGION, ACCOUNT),
        Err(Error::Key(KeyError::StoreMissing { .. }))
    ));
}

#[cfg(unix)]
#[test]
fn kms_refuses_special_files_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let status = std::process::Command::new("mkfifo")
        .arg(&log)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(matches!(
        LocalKms::open(dir.path(), REGION, ACCOUNT),
        Err(Error::Key(KeyError::NotRegularFile { .. }))
    ));
    let dir = tempfile::tempdir().unwrap();
    kms(dir.path());
    let keys = dir.path().join("keys.json");
    let target = dir.path().join("elsewhere.json");
    std::fs::rename(&keys, &target).unwrap();
    std::os::unix::fs::symlink(&target, &keys).unwrap();
    assert!(matches!(
        LocalKms::open(dir.path(), REGION, ACCOUNT),
        Err(Error::Key(KeyError::NotRegularFile { .. }))
    ));
}

#[test]
fn stale_temp_files_of_dead_writers_are_swept_live_ones_kept() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    // A dead writer's file: the right name, nobody holds its lock.
    let dead = dir.path().join(".objseal-0123456789abcdef.tmp");
    std::fs::write(&dead, b"plaintext left by a kill").unwrap();
    // A live writer's file: held open and locked.
    let live = dir.path().join(".objseal-fedcba9876543210.tmp");
    let held = std::fs::File::create(&live).unwrap();
    held.lock().unwrap();
    // Not ours: never touched.
    let other = dir.path().join(".objseal-notours.tmp");
    std::fs::write(&other, b"x").unwrap();
    assert_eq!(objseal::fs::remove_stale_temp_files(dir.path()).unwrap(), 1);
    assert!(!dead.exists() && live.exists() && other.exists());
    drop(held);
    assert_eq!(objseal::fs::remove_stale_temp_files(dir.path()).unwrap(), 1);
    // A staged file in progress leaves no stale name to sweep.
    let dst = dir.path().join("out");
    let staged = objseal::fs::StagedFile::create(&dst).unwrap();
    staged.file().write_all(b"half").unwrap();
    assert_eq!(objseal::fs::remove_stale_temp_files(dir.path()).unwrap(), 0);
    staged.commit().unwrap();
    assert_eq!(std::fs::read(&dst).unwrap(), b"half");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}"); // `out` and the foreign file
}

#[test]
fn kms_key_and_alias_created_in_one_change() {
    let dir = tempfile::tempdir().unwrap();
    let k = kms(dir.path());
    let m = k
        .create_key_with_alias("named", "alias/named", "admin")
        .unwrap();
    assert_eq!(m.aliases, vec!["alias/named".to_owned()]);
    // A taken or malformed alias creates no key at all.
    assert!(
        k.create_key_with_alias("again", "alias/named", "admin")
            .is_err()
    );
    assert!(k.create_key_with_alias("bad", "named", "admin").is_err());
    assert_eq!(k.list_keys().unwrap().len(), 1);
    let audit = k.audit(&AuditQuery::default()).unwrap();
    let ops: Vec<(&str, bool)> = audit
        .iter()
        .map(|r| (r.operation.as_str(), r.succeeded()))
        .collect();
    assert_eq!(
        ops,
        [
            ("CreateKey", true),
            ("CreateAlias", true),
            ("CreateAlias", false),
            ("CreateAlias", false)
        ]
    );
    assert!(
        audit[..2]
            .iter()
            .all(|r| r.key_arn.as_deref() == Some(m.arn.as_str()))
    );
    // Both are in keys.json together, as one change's pending records.
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(k.keys_path()).unwrap()).unwrap();
    assert_eq!(stored["pending_audit"].as_array().unwrap().len(), 2);
}

#[test]
fn kms_audit_log_rotated_or_truncated_by_hand_gets_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let k = kms(dir.path());
    let key = k.create_key("k", "admin").unwrap();
    let log = k.audit_path();
    // Rotated by renaming: later records go to the new file.
    let old = dir.path().join("audit.jsonl.1");
    std::fs::rename(&log, &old).unwrap();
    k.rotate_key(&key.key_id, "admin").unwrap();
    let new = std::fs::read_to_string(&log).unwrap();
    assert_eq!(new.lines().count(), 1, "{new}");
    assert!(new.contains("RotateKey"));
    assert_eq!(std::fs::read_to_string(&old).unwrap().lines().count(), 1);
    // Truncated in place below where the last change's records went: they
    // are not written again, however many operations follow.
    k.generate_data_key(&key.key_id, &EncryptionContext::new(), "app")
        .unwrap();
    k.rotate_key(&key.key_id, "admin").unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    for _ in 0..3 {
        k.generate_data_key(&key.key_id, &EncryptionContext::new(), "app")
            .unwrap();
    }
    let ops: Vec<String> = k
        .audit(&AuditQuery::default())
        .unwrap()
        .into_iter()
        .map(|r| r.operation)
        .collect();
    assert_eq!(ops, ["GenerateDataKey"; 3]);
}

#[test]
fn kms_same_size_rewrites_are_seen_by_other_handles() {
    // Two states of keys.json of the same length, written back to back:
    // a handle must see the second even when sizes and times match.
    let dir = tempfile::tempdir().unwrap();
    let a = kms(dir.path());
    let b = kms(dir.path());
    let k1 = a.create_key("k1", "admin").unwrap();
    let k2 = a.create_key("k2", "admin").unwrap();
    // b caches the state with both enabled.
    b.describe_key(&k1.key_id).unwrap();
    for _ in 0..20 {
        a.disable_key(&k1.key_id, "admin").unwrap();
        a.enable_key(&k1.key_id, "admin").unwrap();
        a.disable_key(&k2.key_id, "admin").unwrap();
        // Same length as the state before the first disable.
        a.enable_key(&k2.key_id, "admin").unwrap();
        a.disable_key(&k1.key_id, "admin").unwrap();
        assert_eq!(
            b.describe_key(&k1.key_id).unwrap().state,
            KeyState::Disabled
        );
        assert!(
            b.generate_data_key(&k1.key_id, &EncryptionContext::new(), "app")
                .is_err()
        );
        a.enable_key(&k1.key_id, "admin").unwrap();
    }
}
