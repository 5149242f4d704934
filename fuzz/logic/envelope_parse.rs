//! Logic of the `envelope_parse` fuzz target, shared with the replay test
//! (`tests/fuzz_replay.rs`).
//!
//! Input: arbitrary bytes, parsed as an envelope (whole, as a prefix, and as
//! base64 text). Parsing must never panic; whatever parses must encode back
//! to exactly the bytes it was parsed from, and parse again to the same value.

use objseal::format::Envelope;
use std::hint::black_box;

pub fn run(data: &[u8]) {
    if let Ok(env) = Envelope::parse(data) {
        let bytes = env.encode().expect("a parsed envelope encodes");
        assert_eq!(bytes, data, "parse -> encode is not the identity");
        assert_eq!(Envelope::parse(&bytes).expect("re-parse"), env);
        let text = env.to_base64().expect("base64");
        assert_eq!(
            Envelope::from_base64(&text).expect("base64 round trip"),
            env
        );
    }
    if let Ok((env, used)) = Envelope::parse_prefix(data) {
        assert!(used <= data.len());
        assert_eq!(env.encode().expect("encodes"), &data[..used]);
        black_box(env.body_context());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        black_box(Envelope::from_base64(text).ok());
    }
}
