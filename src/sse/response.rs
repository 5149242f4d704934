//! Response headers for encrypted objects, and the ETag rule.
//!
//! **ETag rule.** S3 reports the MD5 of the plaintext as the ETag of an
//! SSE-S3 object uploaded in one PUT, and something that is *not* the
//! plaintext's MD5 for SSE-KMS and SSE-C objects. objseal does the same:
//! [`etag`] gives the hex MD5 of the plaintext for SSE-S3, and for SSE-KMS
//! and SSE-C the hex MD5 of the stored (sealed) bytes, which are fresh
//! random-looking bytes for every seal and say nothing about the plaintext.
//! A multipart object's ETag is [`multipart_etag`]: the MD5 of the parts'
//! binary MD5s followed by `-N`, each part's ETag following the same rule.

use md5::{Digest, Md5};

use super::error::S3Error;
use super::request::{
    SSE, SSE_BUCKET_KEY, SSE_C_ALGORITHM, SSE_C_KEY_MD5, SSE_CONTEXT, SSE_KMS_KEY_ID, SseRequest,
    context_header,
};
use crate::format::{Envelope, Mode};
use crate::keys::Details;

/// The S3 operation a response is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// PutObject.
    Put,
    /// GetObject.
    Get,
    /// HeadObject.
    Head,
    /// CopyObject (headers describe the destination).
    Copy,
    /// CreateMultipartUpload.
    CreateMultipartUpload,
    /// UploadPart.
    UploadPart,
    /// CompleteMultipartUpload.
    CompleteMultipartUpload,
}

/// The encryption headers of the response to `op` on the object whose
/// envelope is `env`, for `request`: the mode, the KMS key ARN, the Bucket
/// Key flag, the encryption context (PUT, copy and create echo the
/// caller's), and for SSE-C the algorithm and the key MD5 the request sent.
/// The key itself is never returned.
pub fn response_headers(
    op: Operation,
    env: &Envelope,
    request: &SseRequest,
) -> Result<Vec<(&'static str, String)>, S3Error> {
    let mut out = Vec::with_capacity(4);
    match env.mode {
        Mode::SseS3 => out.push((SSE, "AES256".to_owned())),
        Mode::SseKms => {
            out.push((SSE, "aws:kms".to_owned()));
            out.push((SSE_KMS_KEY_ID, env.wrapped_key.key_id.clone()));
            let bucket_key = match Details::parse(env.mode, &env.wrapped_key.details) {
                Ok(Details::SseKms(d)) => d.bucket_key,
                _ => return Err(S3Error::internal()),
            };
            if bucket_key {
                out.push((SSE_BUCKET_KEY, "true".to_owned()));
            }
            let echoes = matches!(
                op,
                Operation::Put | Operation::Copy | Operation::CreateMultipartUpload
            );
            if let (true, Some(ctx)) = (echoes, request.encryption_context()) {
                out.push((SSE_CONTEXT, context_header(ctx)));
            }
        }
        Mode::SseC => {
            if let Some(key) = request.customer_key() {
                out.push((SSE_C_ALGORITHM, "AES256".to_owned()));
                out.push((SSE_C_KEY_MD5, key.key_md5()));
            } else if op != Operation::CompleteMultipartUpload {
                return Err(S3Error::invalid_request(super::error::MSG_SSE_C_REQUIRED));
            }
        }
    }
    Ok(out)
}

/// The ETag (quoted) of an object sealed in one piece (see the module docs):
/// the MD5 of `plaintext` for SSE-S3, the MD5 of `stored` (the sealed
/// bytes as stored) for SSE-KMS and SSE-C.
pub fn etag(mode: Mode, plaintext: &[u8], stored: &[u8]) -> String {
    let digest: [u8; 16] = match mode {
        Mode::SseS3 => Md5::digest(plaintext).into(),
        _ => Md5::digest(stored).into(),
    };
    format!("\"{}\"", hex(&digest))
}

/// An incremental ETag (see the module docs), for objects and parts that
/// stream through a server: feed it the plaintext and the stored bytes as
/// they pass (only the one its mode needs is hashed), then
/// [`EtagHasher::finish`].
///
/// ```
/// use objseal::Mode;
/// use objseal::sse::{EtagHasher, etag};
///
/// let mut h = EtagHasher::new(Mode::SseS3);
/// h.plaintext(b"hello ");
/// h.plaintext(b"world");
/// h.stored(b"(ignored for SSE-S3)");
/// assert_eq!(h.finish(), etag(Mode::SseS3, b"hello world", b""));
/// assert!(!EtagHasher::new(Mode::SseKms).wants_plaintext());
/// ```
#[derive(Clone)]
pub struct EtagHasher {
    of_plaintext: bool,
    md5: Md5,
}

impl core::fmt::Debug for EtagHasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EtagHasher")
            .field("of_plaintext", &self.of_plaintext)
            .finish_non_exhaustive()
    }
}

impl EtagHasher {
    /// A hasher for an object (or part) sealed in `mode`.
    pub fn new(mode: Mode) -> Self {
        EtagHasher {
            of_plaintext: mode == Mode::SseS3,
            md5: Md5::new(),
        }
    }

    /// Whether this ETag is of the plaintext (SSE-S3) rather than of the
    /// stored bytes.
    pub fn wants_plaintext(&self) -> bool {
        self.of_plaintext
    }

    /// The next plaintext bytes.
    pub fn plaintext(&mut self, bytes: &[u8]) {
        if self.of_plaintext {
            self.md5.update(bytes);
        }
    }

    /// The next stored (sealed) bytes, envelope included when it is stored
    /// with the body.
    pub fn stored(&mut self, bytes: &[u8]) {
        if !self.of_plaintext {
            self.md5.update(bytes);
        }
    }

    /// The quoted ETag.
    pub fn finish(self) -> String {
        let digest: [u8; 16] = self.md5.finalize().into();
        format!("\"{}\"", hex(&digest))
    }
}

/// The ETag (quoted) of a multipart object from its parts' ETags in part
/// order: `MD5(md5_1 || ... || md5_n)-n`. An ETag that is not 32 hex digits
/// contributes its bytes as they are.
pub fn multipart_etag<S: AsRef<str>>(part_etags: &[S]) -> String {
    let mut h = Md5::new();
    for e in part_etags {
        let e = e.as_ref().trim_matches('"');
        match unhex(e) {
            Some(raw) => h.update(raw),
            None => h.update(e.as_bytes()),
        }
    }
    let digest: [u8; 16] = h.finalize().into();
    format!("\"{}-{}\"", hex(&digest), part_etags.len())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let d = |c: u8| (c as char).to_digit(16);
        out[i] = (d(pair[0])? * 16 + d(pair[1])?) as u8;
    }
    Some(out)
}
