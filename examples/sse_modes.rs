//! The library in each SSE mode: seal and open one object under SSE-S3 (a
//! keyring), SSE-KMS (the local KMS, with an encryption context and a Bucket
//! Key) and SSE-C (a key the caller keeps), then show that a wrong customer
//! key is refused.
//!
//! `cargo run --example sse_modes`

use std::sync::Arc;

use objseal::{
    CustomerKey, EncryptionContext, Engine, Keyring, Kms, LocalKms, ObjectBinding, OpenWith,
    SealMode,
};

fn main() -> Result<(), objseal::Error> {
    let store = tempfile::tempdir()?;
    let keyring = Arc::new(Keyring::create(
        store.path().join("keyring.json"),
        "example-s3",
    )?);
    let kms = Arc::new(LocalKms::open(
        store.path().join("kms"),
        "local-1",
        "000000000000",
    )?);
    let key = kms.create_key("example key", "admin")?;
    kms.create_alias("alias/example", &key.key_id, "admin")?;
    let kms_dyn: Arc<dyn Kms> = kms.clone();
    let engine = Engine::builder()
        .keyring(keyring)
        .kms(kms_dyn)
        .default_kms_key("alias/example")
        .build();

    let object = ObjectBinding::new("photos", "2026/cat.jpg")?;
    let plaintext = b"not really a cat picture".repeat(1000);

    // SSE-S3: the keyring's active master key version wraps the data key.
    let sealed = engine.seal(&SealMode::S3, &object, &plaintext)?;
    assert_eq!(engine.open(OpenWith::Managed, &object, &sealed)?, plaintext);
    println!("SSE-S3:  {} -> {} bytes", plaintext.len(), sealed.len());

    // SSE-KMS: the KMS wraps it, under the caller's context, via a Bucket Key.
    let context = EncryptionContext::new().with("department", "pets")?;
    let mode = SealMode::kms("alias/example")
        .with_context(&context)
        .with_bucket_key(true);
    let sealed = engine.seal(&mode, &object, &plaintext)?;
    assert_eq!(engine.open(OpenWith::Managed, &object, &sealed)?, plaintext);
    println!("SSE-KMS: {} -> {} bytes", plaintext.len(), sealed.len());

    // SSE-C: the customer's key wraps it and is not stored anywhere.
    let customer = CustomerKey::generate()?;
    let sealed = engine.seal(&SealMode::C(&customer), &object, &plaintext)?;
    let opened = engine.open(OpenWith::Customer(&customer), &object, &sealed)?;
    assert_eq!(opened, plaintext);
    println!("SSE-C:   {} -> {} bytes", plaintext.len(), sealed.len());

    let wrong = CustomerKey::generate()?;
    let refused = engine.open(OpenWith::Customer(&wrong), &object, &sealed);
    println!("wrong customer key: {}", refused.unwrap_err());
    Ok(())
}
