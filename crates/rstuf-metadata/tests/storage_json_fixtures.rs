//! Every metadata file the reference worker wrote, re-encoded from a plain `serde_json::Value`
//! with `to_storage_json`, must come out byte for byte as it was stored.

use rstuf_test_support as support;

use std::path::PathBuf;

use rstuf_metadata::pyjson::to_storage_json;
use serde_json::Value;

/// Every file of `tests/fixtures/reference-worker/<dir>`; panics if it is missing or empty.
fn files_of(dir: &str) -> Vec<PathBuf> {
    let dir = support::fixture(&format!("reference-worker/{dir}"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    assert!(!files.is_empty(), "{} holds no files", dir.display());
    files.sort();
    files
}

fn check_dir(dir: &str) {
    let files = files_of(dir);
    let mut failures = Vec::new();
    for path in &files {
        let stored = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let value: Value = serde_json::from_slice(&stored)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let ours = to_storage_json(&value)
            .unwrap_or_else(|e| panic!("{} cannot be encoded: {e}", path.display()));
        if ours != stored {
            let at = ours
                .iter()
                .zip(&stored)
                .position(|(a, b)| a != b)
                .unwrap_or(ours.len().min(stored.len()));
            let around = |b: &[u8]| {
                String::from_utf8_lossy(&b[at.saturating_sub(40)..(at + 40).min(b.len())])
                    .into_owned()
            };
            failures.push(format!(
                "{}: first difference at byte {at} (ours {} bytes, stored {}):\n ours:   {:?}\n stored: {:?}",
                path.display(),
                ours.len(),
                stored.len(),
                around(&ours),
                around(&stored)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files differ:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn bins_das_storage_files_are_reproduced_byte_for_byte() {
    check_dir("bins-das-storage");
}

#[test]
fn custom_storage_files_are_reproduced_byte_for_byte() {
    check_dir("custom-storage");
}

#[test]
fn stored_files_have_no_trailing_newline() {
    // What `to_storage_json` leaves out must really be absent from the reference files.
    for dir in ["bins-das-storage", "custom-storage"] {
        for path in files_of(dir) {
            let stored = std::fs::read(&path).unwrap();
            assert_eq!(stored.last(), Some(&b'}'), "{}", path.display());
        }
    }
}

/// The fast parse of stored files gives exactly what the checked parse gives, on every file
/// the reference worker stored.
#[test]
fn stored_files_parse_the_same_both_ways() {
    use rstuf_metadata::schema::{Metadata, Root, Snapshot, Targets, Timestamp};
    let mut seen = 0;
    for dir in ["bins-das-storage", "custom-storage"] {
        for path in files_of(dir) {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let bytes = std::fs::read(&path).unwrap();
            macro_rules! same {
                ($t:ty) => {{
                    let fast = Metadata::<$t>::from_stored_bytes(&bytes).map_err(|e| e.to_string());
                    let checked = Metadata::<$t>::from_bytes(&bytes).map_err(|e| e.to_string());
                    assert_eq!(fast, checked, "{name}");
                }};
            }
            if name.ends_with("root.json") {
                same!(Root)
            } else if name.ends_with("snapshot.json") {
                same!(Snapshot)
            } else if name == "timestamp.json" {
                same!(Timestamp)
            } else if name.ends_with(".json") {
                same!(Targets)
            } else {
                continue;
            }
            seen += 1;
        }
    }
    assert!(seen > 10, "{seen}");
}
