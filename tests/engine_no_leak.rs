//! No key material in any file the keyring, the KMS or the engine writes,
//! except the keyring file and the KMS key file: every byte of every other
//! file is searched for every key, raw, in hex and in base64.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use objseal::keys::{CustomerKey, EncryptionContext, Keyring, Kms, LocalKms};
use objseal::{Engine, Envelope, ObjectBinding, OpenWith, SealMode};

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out)
        } else {
            out.push(p)
        }
    }
}

fn needles(key: &[u8]) -> Vec<Vec<u8>> {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut v = vec![
        key.to_vec(),
        hex.as_bytes().to_vec(),
        hex.to_uppercase().into_bytes(),
    ];
    for e in [
        STANDARD.encode(key),
        STANDARD_NO_PAD.encode(key),
        URL_SAFE.encode(key),
        URL_SAFE_NO_PAD.encode(key),
    ] {
        v.push(e.into_bytes());
    }
    // Any 16-byte window of the raw key, to catch partial copies.
    v.extend(key.windows(16).step_by(8).map(<[u8]>::to_vec));
    v
}

#[test]
fn no_key_bytes_in_written_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let ring_path = root.join("keyring.json");
    let ring = Arc::new(Keyring::create(&ring_path, "s3").unwrap());
    let kms = Arc::new(LocalKms::open(root.join("kms"), "us-east-1", "123456789012").unwrap());
    let arn = kms.create_key("k", "admin").unwrap().arn;
    let engine = Engine::builder()
        .keyring(ring.clone())
        .kms(kms.clone())
        .build();
    let customer = CustomerKey::generate().unwrap();
    let ctx = EncryptionContext::new().with("x", "y").unwrap();
    let modes = [
        (SealMode::S3, OpenWith::Managed),
        (SealMode::kms(&arn).with_context(&ctx), OpenWith::Managed),
        (SealMode::kms(&arn).with_bucket_key(true), OpenWith::Managed),
        (SealMode::C(&customer), OpenWith::Customer(&customer)),
    ];
    let mut keys: Vec<Vec<u8>> = vec![customer.expose_secret().to_vec()];
    let src = root.join("plain.txt");
    std::fs::write(&src, vec![0u8; 40_000]).unwrap();
    for (i, (mode, with)) in modes.iter().enumerate() {
        ring.rotate().unwrap();
        kms.rotate_key(&arn, "admin").unwrap();
        let obj = ObjectBinding::new("bucket", format!("obj{i}")).unwrap();
        let dst = root.join(format!("obj{i}.sealed"));
        engine.seal_file(mode, &obj, &src, &dst).unwrap();
        engine
            .open_file(*with, &obj, &dst, &root.join(format!("obj{i}.out")))
            .unwrap();
        let bytes = std::fs::read(&dst).unwrap();
        let (env, _) = Envelope::parse_prefix(&bytes).unwrap();
        // The data key, and the KMS data key or bucket key that wrapped it.
        keys.push(
            engine
                .data_key(*with, &obj, &env)
                .unwrap()
                .expose_secret()
                .to_vec(),
        );
        if let objseal::keys::Details::SseKms(d) =
            objseal::keys::Details::parse(env.mode, &env.wrapped_key.details).unwrap()
        {
            keys.push(
                kms.decrypt(&env.wrapped_key.key_id, &d.blob, &d.context, "test")
                    .unwrap()
                    .key
                    .expose_secret()
                    .to_vec(),
            );
        }
        let rewrapped = engine.rewrap_object(*with, &obj, &bytes, mode).unwrap();
        std::fs::write(root.join(format!("obj{i}.rewrapped")), rewrapped).unwrap();
    }
    // Master keys and CMK material, read from their own files.
    let ring_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ring_path).unwrap()).unwrap();
    for v in ring_json["versions"].as_array().unwrap() {
        keys.push(STANDARD.decode(v["key"].as_str().unwrap()).unwrap());
    }
    let kms_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kms.keys_path()).unwrap()).unwrap();
    for k in kms_json["keys"].as_array().unwrap() {
        for v in k["versions"].as_array().unwrap() {
            keys.push(STANDARD.decode(v["material"].as_str().unwrap()).unwrap());
        }
    }
    assert_eq!(keys.len(), 1 + 4 + 2 + 5 + 5);
    let mut all = Vec::new();
    files(root, &mut all);
    let mut searched = 0;
    for path in all {
        if path == ring_path || path == kms.keys_path() {
            continue;
        }
        let hay = std::fs::read(&path).unwrap();
        for key in &keys {
            for needle in needles(key) {
                assert!(
                    !hay.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "key bytes found in {}",
                    path.display()
                );
            }
        }
        searched += 1;
    }
    assert!(searched >= 13, "searched {searched} files");
}
