//! `Range` header parsing and resolution (`ByteRange::parse_header`,
//! `satisfiable`, `content_range`) on arbitrary input: never panics, and
//! what it accepts is consistent. Input: u64 object length (8 bytes,
//! big-endian, reduced below 2^40) || header value (any bytes).

use objseal::body::{ByteRange, content_range};

pub fn run(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let len = u64::from_be_bytes(data[..8].try_into().unwrap()) % (1 << 40);
    let Ok(value) = std::str::from_utf8(&data[8..]) else {
        return;
    };
    let Ok(range) = ByteRange::parse_header(value) else {
        return;
    };
    // Well-formed specs are what the value says, and only those.
    assert!(value.trim().starts_with("bytes=") && !value.contains(','));
    match range.satisfiable(len) {
        Ok(r) => {
            assert!(r.start <= r.end && r.end <= len, "{value:?} {len} -> {r:?}");
            if let ByteRange::Bounded { start, .. } | ByteRange::From(start) = range {
                assert_eq!(r.start, start);
                assert!(start < len);
            }
            if let ByteRange::Last(n) = range {
                assert!(n > 0 && r.end == len && r.end - r.start == n.min(len));
            }
            if r.start < r.end {
                let text = content_range(&r, len);
                assert_eq!(text, format!("bytes {}-{}/{len}", r.start, r.end - 1));
            }
        }
        Err(_) => match range {
            ByteRange::Bounded { start, .. } | ByteRange::From(start) => assert!(start >= len),
            ByteRange::Last(n) => assert_eq!(n, 0),
        },
    }
}
