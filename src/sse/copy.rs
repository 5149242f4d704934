//! CopyObject: the source opened with its own mode (the copy-source SSE-C
//! headers for an SSE-C source), the destination sealed with the request's
//! or the bucket's mode.
//!
//! A copy of an object onto itself (a new SSE-C key, another KMS key or
//! context or Bucket Key setting, another mode, SSE-S3 after a keyring
//! rotation) *rewraps*: the data key is kept, a new envelope is written,
//! and the body bytes are not touched (the body's context binds only the
//! object). [`CopyOptions::reencrypt`] asks for a fresh data key and a new
//! body instead; a copy to another object always re-encrypts, since the
//! body is bound to its object.

use super::bucket::BucketEncryption;
use super::error::{ErrorMapping, S3Error};
use super::multipart::{open_object, rewrap_envelope};
use super::request::SseRequest;
use super::response::EtagHasher;
use crate::engine::Engine;
use crate::error::Error;
use crate::format::{Envelope, ObjectBinding};

/// Options of a copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// Re-encrypt under a fresh data key even where a rewrap would do.
    pub reencrypt: bool,
    /// The request replaces the object's metadata (`x-amz-metadata-directive:
    /// REPLACE`), which makes a copy onto itself legal without encryption
    /// changes.
    pub metadata_replaced: bool,
}

/// The result of a copy.
#[derive(Debug, Clone)]
pub struct CopyOutcome {
    /// The destination object to store: envelope, then body.
    pub object: Vec<u8>,
    /// The destination's envelope.
    pub envelope: Envelope,
    /// Whether the data key was kept and the body bytes reused.
    pub rewrapped: bool,
    /// The destination's ETag (quoted), by the rule of [`super::etag`]: a
    /// copy is a new object stored in one piece, whatever the source was.
    pub etag: String,
}

/// 400 `InvalidRequest` for a copy onto itself that changes nothing.
pub const MSG_COPY_TO_SELF: &str = "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.";

/// CopyObject from `source` (stored as `source_object`, envelope then body)
/// to `dest` in a bucket configured by `bucket`, with the request's headers.
pub fn copy_object(
    engine: &Engine,
    request: &SseRequest,
    bucket: &BucketEncryption,
    source: &ObjectBinding,
    source_object: &[u8],
    dest: &ObjectBinding,
    options: CopyOptions,
) -> Result<CopyOutcome, S3Error> {
    let map = |e: Error| ErrorMapping::default().map_error(e);
    let same = source == dest;
    if same && !options.reencrypt && !options.metadata_replaced && !request.is_encrypted_request() {
        return Err(S3Error::invalid_request(MSG_COPY_TO_SELF));
    }
    let resolved = bucket.resolve(request)?;
    let to = resolved.seal_mode();
    let with = request.copy_source_open_with();
    let (env, used) = Envelope::parse_prefix(source_object).map_err(map)?;
    if same && !options.reencrypt {
        let new = rewrap_envelope(engine, with, source, &env, &to).map_err(map)?;
        let mut object = new.encode().map_err(map)?;
        object.extend_from_slice(&source_object[used..]);
        let mut etag = EtagHasher::new(new.mode);
        if etag.wants_plaintext() {
            let plaintext = zeroize::Zeroizing::new(
                open_object(engine, with, source, source_object).map_err(map)?,
            );
            etag.plaintext(&plaintext);
        }
        etag.stored(&object);
        return Ok(CopyOutcome {
            object,
            envelope: new,
            rewrapped: true,
            etag: etag.finish(),
        });
    }
    let plaintext =
        zeroize::Zeroizing::new(open_object(engine, with, source, source_object).map_err(map)?);
    let (envelope, body) = engine.seal_detached(&to, dest, &plaintext).map_err(map)?;
    let mut object = envelope.encode().map_err(map)?;
    object.extend_from_slice(&body);
    let etag = super::etag(envelope.mode, &plaintext, &object);
    Ok(CopyOutcome {
        object,
        envelope,
        rewrapped: false,
        etag,
    })
}
