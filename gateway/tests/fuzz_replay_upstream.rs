//! Replays the kept inputs of the `upstream_records` fuzz target under plain
//! `cargo test`: the committed regressions in
//! `fuzz/regressions/upstream_records/` and the local corpus in
//! `fuzz/corpus/upstream_records/` when a fuzzing run has left one. The
//! target's logic is `fuzz/logic/upstream_records.rs`, shared with the
//! cargo-fuzz binary.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/logic/upstream_records.rs"]
mod upstream_records;

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
}

#[test]
fn replay_upstream_records() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let regressions = files(&root.join("regressions/upstream_records"));
    assert!(
        !regressions.is_empty(),
        "no committed inputs under {}",
        root.join("regressions/upstream_records").display()
    );
    let corpus = files(&root.join("corpus/upstream_records"));
    for path in regressions.iter().chain(&corpus) {
        // A corpus file may go while a fuzzing run reduces the corpus.
        let Ok(data) = std::fs::read(path) else {
            assert!(!regressions.contains(path), "{} unreadable", path.display());
            continue;
        };
        let outcome = std::panic::catch_unwind(|| upstream_records::run(&data));
        assert!(outcome.is_ok(), "fuzz input {} fails", path.display());
    }
}

/// The committed seeds are real records: each reaches past the parser's
/// first refusal (so the fuzzer starts from inputs that parse).
#[test]
fn upstream_records_seeds_parse() {
    use objseal_gateway::upstream::layout::{Manifest, Trailer, UploadRecord, parse_part_etag};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/upstream_records");
    let seed = |name: &str| std::fs::read(dir.join(name)).unwrap()[1..].to_vec();
    assert!(Trailer::decode(&seed("seed-00-trailer-valid")).is_some());
    assert!(Trailer::decode(&seed("seed-01-trailer-bad-magic")).is_none());
    let etag = String::from_utf8(seed("seed-02-part-etag-valid")).unwrap();
    let (up, _, len) = parse_part_etag(&etag).unwrap();
    assert_eq!(
        (up.as_str(), len),
        ("0123456789abcdef0123456789abcdef", 5 << 20)
    );
    let m: Manifest = serde_json::from_slice(&seed("seed-04-manifest")).unwrap();
    objseal::Envelope::from_base64(&m.envelope).unwrap();
    let r: UploadRecord = serde_json::from_slice(&seed("seed-05-upload-record")).unwrap();
    objseal::Envelope::from_base64(&r.envelope).unwrap();
    let xml = files(&dir)
        .iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains("-xml-"))
        .count();
    assert!(xml >= 8, "{xml} XML seeds");
}
