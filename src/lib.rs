//! # objseal
//!
//! Server-side encryption for object stores, as a library: every object is
//! sealed under its own data key with AES-256-GCM, and the data key is wrapped
//! by a master key (SSE-S3), a key-management service (SSE-KMS) or a key the
//! customer supplies with each request (SSE-C).
//!
//! Layers, from the bottom up:
//!
//! - [`cipher`]: the AES-256-GCM engine, [`cipher::Aes256Gcm`], with runtime
//!   CPU dispatch between backends ([`cipher::Backend`]).
//! - [`body`]: the object body, Cobblestone-256 (C2SP chunked-encryption v1
//!   with AES-256-GCM): key commitment, 16 KiB chunks sealed and opened in
//!   parallel over slices, streams ([`body::SealWriter`], [`body::OpenReader`])
//!   and files (positioned reads by default, or a memory mapping the caller
//!   opts into with [`body::FileInput::Mapped`]; positioned writes), and range
//!   reads that open only the chunks they touch.
//! - [`format`](mod@format): the [`Envelope`], objseal's versioned binary object header
//!   (no cryptography), and the canonical encoding of an object's identity
//!   ([`ObjectBinding`]) that binds a body to its object.
//! - [`keys`]: the key hierarchy: per-object key-encryption keys, the SSE-S3
//!   [`Keyring`], the SSE-KMS [`Kms`] trait and [`LocalKms`] with its audit
//!   log, Bucket Keys, and SSE-C [`CustomerKey`]s.
//! - [`engine`]: the [`Engine`], which seals and opens whole objects in every
//!   mode over slices, streams and files, and rewraps or re-encrypts them.
//! - [`sse`]: the thin SSE-mode API: S3 headers in ([`sse::SseRequest`]),
//!   bucket rules ([`sse::BucketEncryption`]), S3 errors ([`sse::S3Error`])
//!   and response headers out, CopyObject and multipart uploads.
//!
//! The byte-level format is specified in `docs/FORMAT.md`.
//!
//! ```
//! use objseal::cipher::Aes256Gcm;
//!
//! let key = [7u8; 32];
//! let nonce = [1u8; 12];
//! let gcm = Aes256Gcm::new(&key)?;
//!
//! let mut buf = b"hello, object store".to_vec();
//! let tag = gcm.seal_in_place(&nonce, b"bucket/key", &mut buf)?;
//! assert_ne!(&buf[..], b"hello, object store");
//!
//! gcm.open_in_place(&nonce, b"bucket/key", &mut buf, &tag)?;
//! assert_eq!(&buf[..], b"hello, object store");
//! # Ok::<(), objseal::Error>(())
//! ```
//!
//! Sealing an object body under a fresh data key, bound to its object:
//!
//! ```
//! use objseal::{body, DataKey, ObjectBinding};
//!
//! let key = DataKey::generate()?;
//! let object = ObjectBinding::new("bucket", "reports/q3.csv")?;
//! let context = object.body_context();
//!
//! let sealed = body::seal(&key, &context, b"a,b,c\n1,2,3\n")?;
//! assert_eq!(body::open(&key, &context, &sealed)?, b"a,b,c\n1,2,3\n");
//! # Ok::<(), objseal::Error>(())
//! ```
//!
//! `unsafe` is denied at the crate root; the only modules that opt out are the
//! x86 cipher kernels (`grep -rn "allow(unsafe_code)" src` lists them).

#[cfg(feature = "tokio")]
pub mod aio;
pub mod body;
pub mod cipher;
pub mod engine;
mod error;
pub mod format;
mod fsio;

/// File helpers for embedders: the staged (all-or-nothing) output file that
/// every objseal write goes through, the sweep of temporary files left by
/// writers that died, and the wait for key-store locks.
pub mod fs {
    pub use crate::fsio::{
        FileLock, StagedFile, read_private, remove_stale_temp_files, set_lock_timeout,
    };
}
pub mod keys;
pub mod sse;

pub use body::DataKey;
pub use cipher::{Backend, CpuReport, cpu_report};
pub use engine::{Engine, EngineBuilder, OpenWith, SealMode};
pub use error::{BodyError, CipherError, Error, FormatError, KeyError, KmsError};
pub use format::{Envelope, Mode, ObjectBinding};
#[cfg(feature = "aws-kms")]
pub use keys::{AwsKms, AwsKmsConfig};
pub use keys::{CustomerKey, EncryptionContext, Keyring, Kms, LocalKms, MasterKey};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
