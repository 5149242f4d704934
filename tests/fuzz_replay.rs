//! Replays every kept fuzz input under plain `cargo test`: the committed
//! regressions in `fuzz/regressions/TARGET/`, and the local corpus in
//! `fuzz/corpus/TARGET/` when a fuzzing run has left one. Each target's logic
//! lives in `fuzz/logic/TARGET.rs`, shared with the cargo-fuzz binary.
//!
//! To add a target: write `fuzz/logic/NAME.rs` with `pub fn run(data: &[u8])`,
//! a binary in `fuzz/fuzz_targets/NAME.rs`, seeds in `fuzz/regressions/NAME/`,
//! and one `mod` + `#[test]` pair below.

use std::path::Path;

/// Runs `run` on every file under the target's regression and corpus
/// directories; returns how many inputs were replayed.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for dir in [
        root.join("regressions").join(target),
        root.join("corpus").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "fuzz input {} fails", path.display());
            count += 1;
        }
    }
    assert!(
        count > 0,
        "no inputs for fuzz target {target} under {}",
        root.display()
    );
    count
}

#[path = "../fuzz/logic/cipher_differential.rs"]
mod cipher_differential;

#[test]
fn replay_cipher_differential() {
    replay("cipher_differential", cipher_differential::run);
}

#[path = "../fuzz/logic/envelope_parse.rs"]
mod envelope_parse;

#[test]
fn replay_envelope_parse() {
    replay("envelope_parse", envelope_parse::run);
}

#[path = "../fuzz/logic/body_open.rs"]
mod body_open;

#[test]
fn replay_body_open() {
    replay("body_open", body_open::run);
}

#[path = "../fuzz/logic/body_roundtrip.rs"]
mod body_roundtrip;

#[test]
fn replay_body_roundtrip() {
    replay("body_roundtrip", body_roundtrip::run);
}

#[path = "../fuzz/logic/keys_open.rs"]
mod keys_open;

#[test]
fn replay_keys_open() {
    replay("keys_open", keys_open::run);
}

#[path = "../fuzz/logic/sse_headers.rs"]
mod sse_headers;

#[test]
fn replay_sse_headers() {
    replay("sse_headers", sse_headers::run);
}

#[path = "../fuzz/logic/range_header.rs"]
mod range_header;

#[test]
fn replay_range_header() {
    replay("range_header", range_header::run);
}

#[cfg(unix)]
#[path = "../fuzz/logic/store_files.rs"]
mod store_files;

#[cfg(unix)]
#[test]
fn replay_store_files() {
    replay("store_files", store_files::run);
}
