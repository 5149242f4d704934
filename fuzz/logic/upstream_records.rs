//! Logic of the `upstream_records` fuzz target, shared with the replay test
//! (`gateway/tests/fuzz_replay_upstream.rs`): what upstream mode of the S3
//! gateway reads back from the upstream store or takes from a client.
//!
//! Input: a selector byte, then the record. `selector % 4`:
//! - 0: a single-part object's trailer (`Trailer::decode`); what decodes
//!   encodes back to the same bytes, and any trailer built from the input
//!   decodes to itself;
//! - 1: a client part ETag (`parse_part_etag`); what parses is rebuilt by
//!   `part_etag` and parses again to the same parts, and `part_etag` of the
//!   input's bytes parses back to them;
//! - 2: a manifest or an upload record (JSON) as read back, then its
//!   envelope (`Envelope::from_base64`) and the manifest's part headers;
//! - 3: an XML answer of the upstream (`gateway/src/upstream/xml.rs`'s
//!   `fuzz_parse_xml`, the functions the client reads answers with), the next
//!   byte choosing which.
//!
//! Nothing may panic; the work is bounded by the input's length.

use base64::Engine as _;
use objseal::Envelope;
use objseal::body::HEADER_LEN;
use std::hint::black_box;

// The gateway's two self-contained parser files, included by path so the
// fuzz crate does not build the whole gateway (s3s, hyper, rustls...).
#[allow(dead_code)]
#[path = "../../gateway/src/upstream/layout.rs"]
mod layout;
#[allow(dead_code)]
#[path = "../../gateway/src/upstream/xml.rs"]
mod xml;

use layout::{Manifest, TRAILER_LEN, Trailer, UploadRecord, parse_part_etag, part_etag};
use xml::fuzz_parse_xml;

pub fn run(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => trailer(rest),
        1 => etag(rest),
        2 => records(rest),
        _ => {
            if let Some((&kind, body)) = rest.split_first() {
                fuzz_parse_xml(kind, body);
            }
        }
    }
}

fn trailer(data: &[u8]) {
    if let Some(t) = Trailer::decode(data) {
        assert_eq!(t.encode(), data, "decode -> encode is not the identity");
    }
    // Any trailer built from the input's bytes round-trips.
    if data.len() >= 16 + 8 + HEADER_LEN {
        let t = Trailer {
            etag: data[..16].try_into().unwrap(),
            plaintext_len: u64::from_be_bytes(data[16..24].try_into().unwrap()),
            header: data[24..24 + HEADER_LEN].try_into().unwrap(),
        };
        let bytes = t.encode();
        assert_eq!(bytes.len() as u64, TRAILER_LEN);
        assert_eq!(Trailer::decode(&bytes), Some(t));
    }
}

fn etag(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some((up, header, len)) = parse_part_etag(text)
    {
        assert!(!up.is_empty());
        let again = part_etag(&up, &header, len);
        let up = up.trim_matches('"');
        // An upstream ETag of quotes only is empty once unquoted.
        let expected = (!up.is_empty()).then(|| (up.to_owned(), header, len));
        assert_eq!(parse_part_etag(&again), expected, "{text:?} -> {again:?}");
    }
    // A part ETag made of the input's bytes parses back to them.
    if data.len() >= HEADER_LEN + 8 {
        let header: [u8; HEADER_LEN] = data[..HEADER_LEN].try_into().unwrap();
        let len = u64::from_be_bytes(data[HEADER_LEN..HEADER_LEN + 8].try_into().unwrap());
        let up = String::from_utf8_lossy(&data[HEADER_LEN + 8..]);
        let up = up.trim_matches('"');
        let made = part_etag(up, &header, len);
        let parsed = parse_part_etag(&made);
        if up.is_empty() {
            assert_eq!(parsed, None, "{made:?}");
        } else {
            assert_eq!(parsed, Some((up.to_owned(), header, len)), "{made:?}");
        }
    }
}

fn records(data: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        black_box(Envelope::from_base64(&m.envelope).ok());
        for h in &m.headers {
            let h = base64::engine::general_purpose::STANDARD.decode(h).ok();
            black_box(h.filter(|h| h.len() == HEADER_LEN));
        }
        black_box(serde_json::to_vec(&m).unwrap());
    }
    if let Ok(r) = serde_json::from_slice::<UploadRecord>(data) {
        black_box(Envelope::from_base64(&r.envelope).ok());
        black_box(serde_json::to_vec(&r).unwrap());
    }
}
