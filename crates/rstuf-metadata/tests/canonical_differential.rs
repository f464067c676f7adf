//! Canonical JSON, storage JSON and compact JSON against the Python implementations
//! (securesystemslib `encode_canonical`, `json.dumps`) on thousands of generated documents.

use rstuf_test_support as support;

use rstuf_metadata::cjson::{CanonicalError, encode_canonical, write_canonical};
use rstuf_metadata::direct;
use rstuf_metadata::pyjson::{to_python_json, to_storage_json};
use serde_json::Value;

const SEED: &str = "20261125";
const DOCUMENTS: usize = 6000;

/// One encoder's output that differs from Python's, with enough context to see why.
fn describe(encoder: &str, doc: &str, ours: &[u8], want: &[u8]) -> String {
    let at = ours
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(want.len()));
    let around = |b: &[u8]| {
        String::from_utf8_lossy(&b[at.saturating_sub(30)..(at + 30).min(b.len())]).into_owned()
    };
    let doc: String = doc.chars().take(300).collect();
    format!(
        "{encoder}: first difference at byte {at} (ours {} bytes, Python {})\n  ours:   {:?}\n  python: {:?}\n  doc: {doc}",
        ours.len(),
        want.len(),
        around(ours),
        around(want),
    )
}

/// An encoder's output, or its error as text.
type Encoded = Result<Vec<u8>, String>;

#[test]
fn encoders_match_python_on_generated_documents() {
    let out = support::run_python("canonical_oracle.py", &[SEED, &DOCUMENTS.to_string()], b"");
    let mut checked = 0;
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let rec: Value = serde_json::from_slice(line).expect("oracle line is JSON");
        let text = rec["doc"].as_str().expect("doc");
        let doc: Value = serde_json::from_str(text).expect("doc parses");
        let want = |k: &str| hex::decode(rec[k].as_str().expect(k)).expect("hex");
        // The direct writer (straight from a `Serialize`, used for every role the worker
        // signs) and its storage re-layout must agree with Python too.
        let direct = direct::to_canonical(&doc).map_err(|e| e.to_string());
        let results: [(&str, &str, Encoded); 5] = [
            (
                "canonical",
                "canonical",
                encode_canonical(&doc).map_err(|e| e.to_string()),
            ),
            (
                "storage",
                "storage",
                to_storage_json(&doc).map_err(|e| e.to_string()),
            ),
            (
                "compact",
                "compact",
                to_python_json(&doc)
                    .map(String::into_bytes)
                    .map_err(|e| e.to_string()),
            ),
            ("direct canonical", "canonical", direct.clone()),
            (
                "direct storage",
                "storage",
                direct.map(|c| direct::storage_from_canonical(&c)),
            ),
        ];
        for (encoder, oracle, ours) in results {
            compared += 1;
            match ours {
                Ok(ours) if ours == want(oracle) => {}
                Ok(ours) => mismatches.push(describe(encoder, text, &ours, &want(oracle))),
                Err(e) => mismatches.push(format!("{encoder}: refused ({e})\n  doc: {text}")),
            }
        }
        // The appending form must agree with the allocating one, after existing content.
        let mut appended = b"prefix".to_vec();
        write_canonical(&doc, &mut appended).expect("canonical");
        if appended[6..] != want("canonical")[..] {
            mismatches.push(format!("write_canonical after a prefix\n  doc: {text}"));
        }
        checked += 1;
    }
    assert!(checked >= 5000, "only {checked} documents from the oracle");
    assert_eq!(checked, DOCUMENTS);
    assert_eq!(compared, 5 * DOCUMENTS);
    assert!(
        mismatches.is_empty(),
        "{} mismatches in {checked} documents; the first:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn numbers_outside_the_integer_range_and_floats_are_errors() {
    // serde_json (without `arbitrary_precision`) parses all of these as floats, `-0` included;
    // Python would read `-0` as the integer 0, but no Python JSON encoder ever writes `-0`.
    for (text, path) in [
        ("1.5", "<root>"),
        ("[1.5]", "[0]"),
        ("{\"a\": 18446744073709551616}", "a"),
        ("{\"a\": [0, -9223372036854775809]}", "a[1]"),
        ("[1e3]", "[0]"),
        ("[1E2]", "[0]"),
        ("[-0.0]", "[0]"),
        ("[-0]", "[0]"),
        (
            "{\"signed\": {\"version\": 100000000000000000000000000000}}",
            "signed.version",
        ),
        ("{\"x\": {\"b c\": [{}, {\"d\": 0.0}]}}", "x.b c[1].d"),
    ] {
        let doc: Value = serde_json::from_str(text).unwrap();
        for (encoder, result) in [
            ("canonical", encode_canonical(&doc)),
            ("storage", to_storage_json(&doc)),
            ("compact", to_python_json(&doc).map(String::into_bytes)),
        ] {
            match result {
                Err(CanonicalError::Float { path: p, value }) => {
                    assert_eq!(p, path, "{encoder} {text}");
                    assert!(!value.is_empty(), "{encoder} {text}");
                }
                Ok(out) => panic!(
                    "{encoder} accepted {text}: {}",
                    String::from_utf8_lossy(&out)
                ),
            }
        }
        let err = encode_canonical(&doc).unwrap_err().to_string();
        assert_eq!(direct::to_canonical(&doc).unwrap_err().to_string(), err);
        assert!(
            err.starts_with("TUF metadata allows only integers from -2^63 to 2^64-1, found "),
            "{err}"
        );
    }
    // The integer limits themselves are fine.
    let doc: Value = serde_json::from_str("[18446744073709551615, -9223372036854775808]").unwrap();
    assert_eq!(
        encode_canonical(&doc).unwrap(),
        b"[18446744073709551615,-9223372036854775808]"
    );
}
