//! Replays the kept inputs of the `aws_kms_answers` fuzz target under plain
//! `cargo test`: the committed regressions in
//! `fuzz/regressions/aws_kms_answers/` and the local corpus in
//! `fuzz/corpus/aws_kms_answers/` when a fuzzing run has left one. The
//! target's logic is `fuzz/logic/aws_kms_answers.rs`, shared with the
//! cargo-fuzz binary.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/logic/aws_kms_answers.rs"]
mod aws_kms_answers;

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
fn replay_aws_kms_answers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let regressions = files(&root.join("regressions/aws_kms_answers"));
    assert!(
        !regressions.is_empty(),
        "no committed inputs under {}",
        root.join("regressions/aws_kms_answers").display()
    );
    let corpus = files(&root.join("corpus/aws_kms_answers"));
    for path in regressions.iter().chain(&corpus) {
        // A corpus file may go while a fuzzing run reduces the corpus.
        let Ok(data) = std::fs::read(path) else {
            assert!(!regressions.contains(path), "{} unreadable", path.display());
            continue;
        };
        let outcome = std::panic::catch_unwind(|| aws_kms_answers::run(&data));
        assert!(outcome.is_ok(), "fuzz input {} fails", path.display());
    }
}
