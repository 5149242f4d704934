//! SSE-S3 keyring: rotation with old versions kept, rewrap to the active
//! version with byte-identical bodies, retirement rules, file permissions.

use std::sync::Arc;
use std::time::Duration;

use objseal::keys::Keyring;
use objseal::{Engine, Envelope, Error, KeyError, ObjectBinding, OpenWith, SealMode};

#[test]
fn rotation_rewrap_and_retire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    let ring = Arc::new(Keyring::create(&path, "s3-master").unwrap());
    let engine = Engine::builder().keyring(ring.clone()).build();
    let mut objects = Vec::new();
    for v in 1..=5u32 {
        if v > 1 {
            assert_eq!(ring.rotate().unwrap(), v);
        }
        let obj = ObjectBinding::new("b", format!("obj-{v}")).unwrap();
        let pt = vec![v as u8; 20_000 + v as usize];
        let sealed = engine.seal(&SealMode::S3, &obj, &pt).unwrap();
        assert_eq!(
            Envelope::parse_prefix(&sealed)
                .unwrap()
                .0
                .wrapped_key
                .key_version,
            v
        );
        objects.push((obj, pt, sealed));
    }
    assert_eq!(ring.active_version(), 5);
    // A fresh handle on the file sees every version, and opens every object.
    let reopened = Engine::builder()
        .keyring(Arc::new(Keyring::open(&path).unwrap()))
        .build();
    for (obj, pt, sealed) in &objects {
        assert_eq!(&engine.open(OpenWith::Managed, obj, sealed).unwrap(), pt);
        assert_eq!(&reopened.open(OpenWith::Managed, obj, sealed).unwrap(), pt);
    }
    // Retiring a version still in use is refused; so is the active version.
    let envelopes: Vec<Envelope> = objects
        .iter()
        .map(|o| Envelope::parse_prefix(&o.2).unwrap().0)
        .collect();
    assert!(matches!(
        ring.retire(1, &envelopes, false),
        Err(Error::Key(KeyError::VersionStillInUse {
            version: 1,
            objects: 1
        }))
    ));
    assert!(matches!(
        ring.retire(5, &envelopes, false),
        Err(Error::Key(KeyError::RetireActive { version: 5 }))
    ));
    // Rewrap moves every object to version 5 without touching its body.
    let mut rewrapped = Vec::new();
    for ((obj, pt, sealed), env) in objects.iter().zip(&envelopes) {
        let new_env = ring.rewrap(env).unwrap();
        assert_eq!(new_env.wrapped_key.key_version, 5);
        assert_ne!(new_env.wrapped_key.kek_salt, env.wrapped_key.kek_salt);
        let used = Envelope::parse_prefix(sealed).unwrap().1;
        let mut moved = new_env.encode().unwrap();
        moved.extend_from_slice(&sealed[used..]);
        // The engine's rewrap gives the same body too.
        let via_engine = engine
            .rewrap_object(OpenWith::Managed, obj, sealed, &SealMode::S3)
            .unwrap();
        assert_eq!(
            via_engine[Envelope::parse_prefix(&via_engine).unwrap().1..],
            sealed[used..]
        );
        assert_eq!(moved[moved.len() - (sealed.len() - used)..], sealed[used..]);
        assert_eq!(&engine.open(OpenWith::Managed, obj, &moved).unwrap(), pt);
        rewrapped.push((new_env, moved));
    }
    let new_envs: Vec<Envelope> = rewrapped.iter().map(|r| r.0.clone()).collect();
    for v in 1..=4 {
        ring.retire(v, &new_envs, false).unwrap();
    }
    // Old objects are now unreadable, with a clear error; new ones open.
    assert!(matches!(
        engine.open(OpenWith::Managed, &objects[0].0, &objects[0].2),
        Err(Error::Key(KeyError::KeyRetired { version: 1, .. }))
    ));
    for ((obj, pt, _), (_, moved)) in objects.iter().zip(&rewrapped) {
        assert_eq!(&engine.open(OpenWith::Managed, obj, moved).unwrap(), pt);
    }
    // The file keeps retired versions as records without key material.
    let again = Keyring::open(&path).unwrap();
    let versions = again.versions();
    assert_eq!(versions.len(), 5);
    assert!(versions[..4].iter().all(|v| v.retired.is_some()));
    assert!(versions[4].active && versions[4].retired.is_none());
}

#[test]
fn forced_retirement() {
    let ring = Keyring::in_memory("m").unwrap();
    let engine = Engine::builder()
        .keyring(Arc::new(Keyring::in_memory("unused").unwrap()))
        .build();
    drop(engine);
    ring.rotate().unwrap();
    let env = Envelope::new(
        objseal::Mode::SseS3,
        ObjectBinding::new("b", "k").unwrap(),
        0,
        objseal::format::WrappedKey::placeholder("m", 1),
    );
    assert!(ring.retire(1, [&env], false).is_err());
    ring.retire(1, [&env], true).unwrap();
    assert!(ring.retire(7, [&env], true).is_err());
}

#[test]
fn rotate_if_older_than() {
    let ring = Keyring::in_memory("m").unwrap();
    assert_eq!(
        ring.rotate_if_older_than(Duration::from_secs(3600))
            .unwrap(),
        None
    );
    assert_eq!(ring.rotate_if_older_than(Duration::ZERO).unwrap(), Some(2));
    assert_eq!(ring.active_version(), 2);
}

#[cfg(unix)]
#[test]
fn keyring_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.json");
    Keyring::create(&path, "m").unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    for mode in [0o640, 0o604, 0o644, 0o666] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = Keyring::open(&path).unwrap_err();
        assert!(
            matches!(err, Error::Key(KeyError::InsecurePermissions { .. })),
            "{mode:o}: {err}"
        );
        assert!(err.to_string().contains("chmod 600"));
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ring = Keyring::open(&path).unwrap();
    ring.rotate().unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Creating over an existing file is refused; a corrupt file is a typed error.
    assert!(Keyring::create(&path, "m").is_err());
    std::fs::write(&path, b"{not json").unwrap();
    assert!(matches!(
        Keyring::open(&path),
        Err(Error::Key(KeyError::CorruptStore { .. }))
    ));
}

#[test]
fn secrets_debug_without_bytes() {
    let ring = Keyring::in_memory("m").unwrap();
    let text = format!("{ring:?}");
    assert!(text.contains("Keyring") && !text.contains("key:"));
    let k = objseal::keys::MasterKey::from_bytes([0xab; 32]);
    assert_eq!(format!("{k:?}"), "MasterKey(..)");
    assert!(k == objseal::keys::MasterKey::from_bytes([0xab; 32]));
    assert!(k != objseal::keys::MasterKey::from_bytes([0xac; 32]));
    assert!(objseal::keys::CustomerKey::try_from_slice(&[0; 31]).is_err());
}
