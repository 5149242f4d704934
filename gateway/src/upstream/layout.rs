//! What upstream mode writes to the upstream store (`docs/FORMAT.md` §8):
//! reserved metadata names, the single-part trailer, the multipart
//! manifest, the upload record and the bucket record.

use base64::Engine as _;
use objseal::Envelope;
use objseal::body::HEADER_LEN;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Upstream metadata (`x-amz-meta-…`) holding a single-part object's
/// envelope (standard base64).
pub const META_ENVELOPE: &str = "objseal-envelope";
/// Upstream metadata naming a multipart object's manifest.
pub const META_MANIFEST: &str = "objseal-manifest";
/// Client metadata names may not start with this.
pub const RESERVED_META_PREFIX: &str = "objseal-";
/// Keys under this prefix hold objseal's records; clients never see them.
pub const HIDDEN_PREFIX: &str = ".objseal/";
/// The bucket record.
pub const BUCKET_RECORD: &str = ".objseal/bucket.json";

/// Magic at the start of the trailer.
pub const TRAILER_MAGIC: &[u8; 8] = b"OSUPTRL1";
/// Trailer length: magic, ETag digest (16), plaintext length (u64 BE),
/// and a copy of the body's 56-byte header.
pub const TRAILER_LEN: u64 = 8 + 16 + 8 + HEADER_LEN as u64;

/// The largest record read back (manifest, upload record, bucket record).
pub const MAX_RECORD: usize = 4 << 20;

/// Whether `key` is one of objseal's hidden records.
pub fn is_hidden(key: &str) -> bool {
    key.starts_with(HIDDEN_PREFIX)
}

/// The manifest of a multipart object.
pub fn manifest_key(id: &str) -> String {
    format!("{HIDDEN_PREFIX}manifests/{id}")
}

/// The record of an upload in progress (by the upstream upload id).
pub fn upload_key(upload_id: &str) -> String {
    let digest = Sha256::digest(upload_id.as_bytes());
    format!("{HIDDEN_PREFIX}uploads/{}", hex(&digest))
}

/// Where the client ETags of an upload's parts are kept (one record per
/// part, for ListParts), by the upstream upload id.
pub fn parts_prefix(upload_id: &str) -> String {
    let digest = Sha256::digest(upload_id.as_bytes());
    format!("{HIDDEN_PREFIX}parts/{}/", hex(&digest))
}

/// Lowercase hex of `bytes` (this file is self-contained: the fuzz crate
/// includes it by path).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// The plaintext length of a body `sealed` bytes long, if there is one.
pub fn plaintext_len_of(sealed: u64) -> Option<u64> {
    let chunk = objseal::body::CHUNK_LEN as u64;
    let body = sealed.checked_sub(HEADER_LEN as u64)?;
    let chunks = body.div_ceil(chunk + 16).max(1);
    let n = body.checked_sub(16 * chunks)?;
    (objseal::body::sealed_len(n).ok()? == sealed).then_some(n)
}

/// A single-part object's trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailer {
    /// The client's ETag digest.
    pub etag: [u8; 16],
    /// Plaintext length.
    pub plaintext_len: u64,
    /// The body's header (salt and key commitment).
    pub header: [u8; HEADER_LEN],
}

impl Trailer {
    /// The trailer's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TRAILER_LEN as usize);
        out.extend_from_slice(TRAILER_MAGIC);
        out.extend_from_slice(&self.etag);
        out.extend_from_slice(&self.plaintext_len.to_be_bytes());
        out.extend_from_slice(&self.header);
        out
    }

    /// Parses a trailer; `None` when `bytes` is not one.
    pub fn decode(bytes: &[u8]) -> Option<Trailer> {
        if bytes.len() != TRAILER_LEN as usize || &bytes[..8] != TRAILER_MAGIC {
            return None;
        }
        Some(Trailer {
            etag: bytes[8..24].try_into().ok()?,
            plaintext_len: u64::from_be_bytes(bytes[24..32].try_into().ok()?),
            header: bytes[32..].try_into().ok()?,
        })
    }
}

/// A multipart object's manifest, written before the upstream upload is
/// completed (so the object never exists without it) and never changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version (1).
    pub v: u32,
    /// The completed envelope (part list and MAC), standard base64.
    pub envelope: String,
    /// The client's ETag (quoted).
    pub etag: String,
    /// Each part body's 56-byte header, standard base64, in part order.
    pub headers: Vec<String>,
}

/// An upload in progress, by upstream upload id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadRecord {
    /// Format version (1).
    pub v: u32,
    /// The object key.
    pub key: String,
    /// The manifest id the object's metadata names.
    pub manifest: String,
    /// The creation envelope, standard base64.
    pub envelope: String,
}

/// A part ETag as the client gets it: the upstream part's ETag, then the
/// part body's header and plaintext length (what completion needs and the
/// upstream cannot give back), URL-safe base64.
pub fn part_etag(upstream_etag: &str, header: &[u8; HEADER_LEN], plaintext_len: u64) -> String {
    let mut raw = Vec::with_capacity(HEADER_LEN + 8);
    raw.extend_from_slice(header);
    raw.extend_from_slice(&plaintext_len.to_be_bytes());
    format!(
        "{}.{}",
        upstream_etag.trim_matches('"'),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

/// Splits a client part ETag into the upstream ETag (unquoted), the
/// header and the plaintext length.
pub fn parse_part_etag(etag: &str) -> Option<(String, [u8; HEADER_LEN], u64)> {
    let etag = etag.trim_matches('"');
    let (upstream, extra) = etag.rsplit_once('.')?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(extra)
        .ok()?;
    if raw.len() != HEADER_LEN + 8 || upstream.is_empty() {
        return None;
    }
    let header: [u8; HEADER_LEN] = raw[..HEADER_LEN].try_into().ok()?;
    let len = u64::from_be_bytes(raw[HEADER_LEN..].try_into().ok()?);
    Some((upstream.to_owned(), header, len))
}

/// An envelope as upstream metadata.
pub fn envelope_b64(env: &Envelope) -> Result<String, objseal::Error> {
    env.to_base64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trips_and_refuses_other_bytes() {
        let t = Trailer {
            etag: [7; 16],
            plaintext_len: 1 << 40,
            header: [9; HEADER_LEN],
        };
        let b = t.encode();
        assert_eq!(b.len() as u64, TRAILER_LEN);
        assert_eq!(Trailer::decode(&b), Some(t));
        assert_eq!(Trailer::decode(&b[1..]), None);
        let mut bad = b.clone();
        bad[0] ^= 1;
        assert_eq!(Trailer::decode(&bad), None);
    }

    #[test]
    fn part_etags_carry_the_record() {
        let e = part_etag("\"0123abcd\"", &[5; HEADER_LEN], 5 << 20);
        let (up, h, n) = parse_part_etag(&format!("\"{e}\"")).unwrap();
        assert_eq!((up.as_str(), h, n), ("0123abcd", [5; HEADER_LEN], 5 << 20));
        assert!(parse_part_etag("0123abcd").is_none());
        assert!(parse_part_etag("abc.@@@").is_none());
        assert!(parse_part_etag(".AAAA").is_none());
    }

    #[test]
    fn plaintext_lengths_invert_sealed_lengths() {
        let c = objseal::body::CHUNK_LEN as u64;
        for n in [0, 1, 15, 16, c - 1, c, c + 1, 3 * c, 5 << 20, (5 << 20) + 7] {
            let s = objseal::body::sealed_len(n).unwrap();
            assert_eq!(plaintext_len_of(s), Some(n), "{n}");
        }
        assert_eq!(plaintext_len_of(0), None);
        assert_eq!(plaintext_len_of(HEADER_LEN as u64), None);
    }

    #[test]
    fn hidden_keys() {
        assert!(is_hidden(BUCKET_RECORD));
        assert!(is_hidden(&manifest_key("ab")));
        assert!(is_hidden(&upload_key("x")));
        assert!(parts_prefix("x").starts_with(HIDDEN_PREFIX));
        assert_ne!(parts_prefix("x"), parts_prefix("y"));
        assert!(!is_hidden(".objseal"));
        assert!(!is_hidden("a/.objseal/b"));
    }
}
