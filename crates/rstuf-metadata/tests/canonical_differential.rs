//! Canonical JSON, storage JSON and compact JSON against the Python implementations
//! (securesystemslib `encode_canonical`, `json.dumps`) on thousands of generated documents.

use rstuf_test_support as support;

use rstuf_metadata::cjson::{CanonicalError, encode_canonical};
use rstuf_metadata::pyjson::{to_python_json, to_storage_json};
use serde_json::Value;

const DOCUMENTS: usize = 6000;

#[test]
fn encoders_match_python_on_generated_documents() {
    let out = support::run_python(
        "canonical_oracle.py",
        &["20261125", &DOCUMENTS.to_string()],
        b"",
    );
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let rec: Value = serde_json::from_slice(line).unwrap();
        let text = rec["doc"].as_str().unwrap();
        let doc: Value = serde_json::from_str(text).unwrap();
        let want = |k: &str| hex::decode(rec[k].as_str().unwrap()).unwrap();
        let canonical = encode_canonical(&doc).unwrap();
        if canonical != want("canonical") {
            mismatches.push(format!("canonical of {text}"));
        }
        if to_storage_json(&doc).unwrap() != want("storage") {
            mismatches.push(format!("storage of {text}"));
        }
        if to_python_json(&doc).unwrap().into_bytes() != want("compact") {
            mismatches.push(format!("compact of {text}"));
        }
        checked += 1;
    }
    assert_eq!(checked, DOCUMENTS);
    let first: Vec<String> = mismatches
        .iter()
        .take(2)
        .map(|m| m.chars().take(300).collect())
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {first:?}",
        mismatches.len()
    );
}

#[test]
fn numbers_outside_the_integer_range_and_floats_are_errors() {
    for text in [
        "[1.5]",
        "{\"a\": 18446744073709551616}",
        "[-9223372036854775809]",
        "[1e3]",
        "[-0.0]",
    ] {
        let doc: Value = serde_json::from_str(text).unwrap();
        let err = encode_canonical(&doc).unwrap_err();
        assert!(matches!(err, CanonicalError::Float { .. }), "{text}");
        assert!(to_storage_json(&doc).is_err(), "{text}");
    }
}
