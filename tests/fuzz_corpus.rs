//! Runs every seed of `fuzz/corpus/<target>/` through the fuzz targets' logic,
//! so the targets' invariants are checked by `cargo test` without nightly.

use std::fs;
use std::path::PathBuf;

fn run_corpus(target: &str, entry: fn(&[u8])) {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "fuzz", "corpus", target]
        .iter()
        .collect();
    let entries =
        fs::read_dir(&dir).unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()));
    let mut seeds = 0;
    for dir_entry in entries {
        let path = dir_entry.expect("directory entry").path();
        if path.is_file() {
            let data = fs::read(&path)
                .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
            entry_point_must_not_panic(&path, &data, entry);
            seeds += 1;
        }
    }
    assert!(seeds >= 3, "only {seeds} seeds in {}", dir.display());
}

fn entry_point_must_not_panic(path: &std::path::Path, data: &[u8], entry: fn(&[u8])) {
    let result = std::panic::catch_unwind(|| entry(data));
    assert!(result.is_ok(), "seed {} broke an invariant", path.display());
}

#[test]
fn path_parser_corpus() {
    run_corpus("path_parser", vcguard::vsphere::fuzz_entry::path_parser);
}

#[test]
fn json_body_corpus() {
    run_corpus("json_body", vcguard::vsphere::fuzz_entry::json_body);
}

#[test]
fn soap_classifier_corpus() {
    run_corpus(
        "soap_classifier",
        vcguard::vsphere::fuzz_entry::soap_classifier,
    );
}
