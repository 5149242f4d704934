//! The thin SSE-mode API: what an object store or S3 gateway calls on every
//! request. S3's encryption headers come in ([`SseRequest::from_headers`]),
//! the bucket's rules pick the mode ([`BucketEncryption::resolve`]), the
//! [`crate::Engine`] seals and opens, and S3's errors ([`S3Error`], with
//! its XML body) and response headers ([`response_headers`], never the key)
//! go out. [`copy_object`] gives CopyObject's semantics and
//! [`MultipartUpload`] the multipart flow.
//!
//! ```
//! use std::sync::Arc;
//! use objseal::{Engine, Keyring, ObjectBinding};
//! use objseal::sse::{self, BucketEncryption, Operation, SseRequest, Transport};
//!
//! let engine = Engine::builder().keyring(Arc::new(Keyring::in_memory("s3-master")?)).build();
//! let bucket = BucketEncryption::default();
//! let obj = ObjectBinding::new("bucket", "hello.txt")?;
//!
//! // PUT with `x-amz-server-side-encryption: AES256`
//! let req = SseRequest::from_headers([("x-amz-server-side-encryption", "AES256")], Transport::Https)?;
//! let mode = bucket.resolve(&req)?;
//! let (env, body) = engine.seal_detached(&mode.seal_mode(), &obj, b"hi")?;
//! let headers = sse::response_headers(Operation::Put, &env, &req)?;
//! assert_eq!(headers, [("x-amz-server-side-encryption", "AES256".to_owned())]);
//!
//! // GET
//! let get = SseRequest::none();
//! assert_eq!(engine.open_detached(get.open_with(), &obj, &env, &body)?, b"hi");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bucket;
mod copy;
mod error;
#[cfg(feature = "http")]
mod http;
mod multipart;
mod parts;
mod request;
mod response;

pub use bucket::{BucketEncryption, DefaultEncryption, ResolvedMode};
pub use copy::{
    CopyOptions, CopyOutcome, CopyStreamOutcome, MSG_COPY_TO_SELF, copy_object, copy_rewrap,
    copy_stream,
};
pub use error::*;
#[cfg(feature = "http")]
pub use http::extend_header_map;
pub use multipart::{
    Completed, CompletedPart, MultipartUpload, PartSealer, PartWriter, SealedPart, UploadedPart,
    WrittenPart, open_object, open_object_detached, open_object_range, part_error, rewrap_envelope,
};
pub use parts::{
    MultipartFile, MultipartObject, MultipartReader, ObjectRangeReader, ObjectStream, PartSpan,
    PartStore, PartsAt, check_part_list, open_object_range_reader, open_object_reader,
};
pub use request::{
    COPY_SSE_C_ALGORITHM, COPY_SSE_C_KEY, COPY_SSE_C_KEY_MD5, MAX_HEADER_VALUE_LEN, SSE,
    SSE_BUCKET_KEY, SSE_C_ALGORITHM, SSE_C_KEY, SSE_C_KEY_MD5, SSE_CONTEXT, SSE_KMS_KEY_ID,
    ServerSideEncryption, SseCustomerKey, SseRequest, Transport,
};
pub use response::{EtagHasher, Operation, etag, multipart_etag, response_headers};
