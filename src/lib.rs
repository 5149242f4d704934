//! # objseal
//!
//! Server-side encryption for object stores, as a library: every object is
//! sealed under its own data key with AES-256-GCM, and the data key is wrapped
//! by a master key (SSE-S3), a key-management service (SSE-KMS) or a key the
//! customer supplies with each request (SSE-C).
//!
//! This release provides the AES-256-GCM engine, [`cipher::Aes256Gcm`], with
//! runtime CPU dispatch between backends ([`cipher::Backend`]).
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
//! `unsafe` is denied at the crate root; the only modules that opt out are the
//! x86 cipher kernels (`grep -rn "allow(unsafe_code)" src` lists them).

pub mod cipher;
mod error;

pub use cipher::{Backend, CpuReport, cpu_report};
pub use error::{CipherError, Error};
