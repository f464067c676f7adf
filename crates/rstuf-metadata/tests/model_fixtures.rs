//! The metadata model against the reference worker's files and against bad input.

use rstuf_test_support as support;

use std::path::{Path, PathBuf};

use rstuf_metadata::schema::{Metadata, Root, SchemaError, Signed, Snapshot, Targets, Timestamp};
use serde_json::{Value, json};

fn storage_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["bins-das-storage", "custom-storage"] {
        let dir = support::fixture(&format!("reference-worker/{dir}"));
        let mut found = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
                found += 1;
            }
        }
        assert!(found > 3, "{} holds too few files", dir.display());
    }
    files
}

/// The role type of a stored file, from its name: `<v>.<role>.json` or `timestamp.json`.
fn role_of(path: &Path) -> String {
    let name = path.file_name().unwrap().to_str().unwrap();
    let stem = name.strip_suffix(".json").unwrap();
    match stem.split_once('.') {
        Some((_, role)) => role.to_string(),
        None => stem.to_string(),
    }
}

fn round_trip<T: Signed>(bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let md = Metadata::<T>::from_bytes(bytes).expect("parses");
    let raw: Value = serde_json::from_slice(bytes).unwrap();
    let canonical_raw = rstuf_metadata::cjson::encode_canonical(&raw["signed"]).unwrap();
    assert_eq!(
        md.signed_bytes().unwrap(),
        canonical_raw,
        "canonical form of signed changed"
    );
    (md.to_storage_bytes().unwrap(), bytes.to_vec())
}

#[test]
fn every_reference_file_round_trips_byte_for_byte_through_the_typed_model() {
    for path in storage_files() {
        let bytes = std::fs::read(&path).unwrap();
        let (written, original) = match role_of(&path).as_str() {
            "root" => round_trip::<Root>(&bytes),
            "snapshot" => round_trip::<Snapshot>(&bytes),
            "timestamp" => round_trip::<Timestamp>(&bytes),
            _ => round_trip::<Targets>(&bytes),
        };
        assert!(
            written == original,
            "{} differs after parse and write",
            path.display()
        );
    }
}

fn bins_targets() -> Value {
    let bytes = std::fs::read(support::fixture(
        "reference-worker/bins-das-storage/1.targets.json",
    ))
    .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn unknown_fields_survive_at_every_level() {
    let mut doc = bins_targets();
    doc["x-envelope"] = json!({"a": [1, 2]});
    doc["signatures"][0]["bundle"] = json!({"k": "v"});
    doc["signed"]["x-rstuf-top"] = json!("top");
    doc["signed"]["delegations"]["x-deleg"] = json!(true);
    doc["signed"]["delegations"]["succinct_roles"]["x-succinct"] = json!(null);
    let keyid = doc["signed"]["delegations"]["keys"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    doc["signed"]["delegations"]["keys"][&keyid]["keyval"]["x-private-ish"] = json!("kept");
    doc["signed"]["targets"]["a/b.txt"] =
        json!({"length": 3, "hashes": {"sha256": "00"}, "custom": {"z": 1}, "x-t": 2});
    let md = Metadata::<Targets>::from_value(doc.clone()).unwrap();
    assert_eq!(md.to_value().unwrap(), doc);
    assert_eq!(
        md.signed.targets["a/b.txt"].custom(),
        Some(&json!({"z": 1}))
    );
}

fn expect_err<T: Signed>(doc: Value, needle: &str) -> SchemaError {
    let bytes = serde_json::to_vec(&doc).unwrap();
    let err = Metadata::<T>::from_bytes(&bytes).expect_err(needle);
    let text = err.to_string();
    assert!(
        text.contains(needle),
        "error {text:?} does not mention {needle:?}"
    );
    err
}

#[test]
fn bad_documents_are_refused_with_clear_errors() {
    let base = bins_targets();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut d = base.clone();
        f(&mut d);
        d
    };
    expect_err::<Targets>(
        with(&|d| d["signed"]["version"] = json!(1.5)),
        "signed.version",
    );
    expect_err::<Targets>(
        with(&|d| {
            d["signed"]["targets"]["f"] =
                json!({"length": 1, "hashes": {"sha256": "00"}, "custom": {"p": 0.1}})
        }),
        "signed.targets.f.custom.p",
    );
    expect_err::<Targets>(
        with(&|d| d["signed"]["_type"] = json!("root")),
        "expected type targets, got root",
    );
    expect_err::<Root>(base.clone(), "expected type root, got targets");
    expect_err::<Targets>(
        with(&|d| d["signed"]["expires"] = json!("2026-11-26 01:42:45")),
        "signed.expires",
    );
    expect_err::<Targets>(
        with(&|d| d["signed"]["expires"] = json!("2026-02-30T00:00:00Z")),
        "signed.expires",
    );
    expect_err::<Targets>(
        with(&|d| d["signed"]["version"] = json!(0)),
        "version must be > 0",
    );
    expect_err::<Targets>(
        with(&|d| d["signed"]["version"] = json!(-3)),
        "signed.version",
    );
    expect_err::<Targets>(
        with(&|d| d["signed"]["spec_version"] = json!("2.0.0")),
        "unsupported spec_version",
    );
    expect_err::<Targets>(
        with(&|d| {
            let s = d["signatures"][0].clone();
            d["signatures"].as_array_mut().unwrap().push(s);
        }),
        "multiple signatures found for keyid",
    );
    expect_err::<Targets>(
        with(&|d| d["signed"]["targets"]["f"] = json!({"length": -1, "hashes": {"sha256": "00"}})),
        "signed.targets.f.length",
    );
    expect_err::<Targets>(
        with(&|d| d["signed"]["targets"]["f"] = json!({"length": 1, "hashes": {}})),
        "hashes must be a non empty",
    );
    expect_err::<Targets>(
        with(&|d| d["signed"]["delegations"]["roles"] = json!([])),
        "one of roles and succinct_roles",
    );
    // The delegations with `roles` in place of `succinct_roles`.
    let with_roles = |roles: Value| {
        with(&|d| {
            let delegations = d["signed"]["delegations"].as_object_mut().unwrap();
            delegations.remove("succinct_roles");
            delegations.insert("roles".into(), roles.clone());
        })
    };
    expect_err::<Targets>(
        with_roles(
            json!([{"name": "snapshot", "keyids": [], "threshold": 1, "terminating": true, "paths": ["*"]}]),
        ),
        "top-level role names",
    );
    expect_err::<Targets>(
        with_roles(json!([{"name": "a", "keyids": [], "threshold": 1, "terminating": true}])),
        "only one of (paths, path_hash_prefixes)",
    );
    expect_err::<Targets>(
        with(&|d| d["signed"]["delegations"]["succinct_roles"]["bit_length"] = json!(33)),
        "bit_length",
    );
    expect_err::<Targets>(
        with(&|d| d["signed"]["delegations"]["succinct_roles"]["threshold"] = json!(0)),
        "threshold",
    );
    expect_err::<Targets>(
        with(&|d| {
            d["signed"]
                .as_object_mut()
                .unwrap()
                .remove("targets")
                .map(|_| ())
                .unwrap()
        }),
        "targets",
    );

    for truncated in [
        &b"{\"signed\": {"[..],
        b"",
        b"[]",
        b"null",
        b"{\"signatures\": []}",
    ] {
        assert!(Metadata::<Targets>::from_bytes(truncated).is_err());
    }
    let full = serde_json::to_vec(&base).unwrap();
    for cut in (0..full.len()).step_by(97) {
        assert!(
            Metadata::<Targets>::from_bytes(&full[..cut]).is_err(),
            "prefix of {cut} bytes accepted"
        );
    }
}

#[test]
fn a_bump_of_every_reference_targets_file_signs_what_the_model_would() {
    let expires = rstuf_metadata::schema::Expires::at(
        chrono::DateTime::parse_from_rfc3339("2031-02-03T04:05:06Z")
            .unwrap()
            .with_timezone(&chrono::Utc),
    );
    let mut checked = 0;
    for path in storage_files() {
        if ["root", "snapshot", "timestamp"].contains(&role_of(&path).as_str()) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let mut md = Metadata::<Targets>::from_stored_bytes(&bytes).unwrap();
        md.signed
            .set_version_and_expires(md.signed.version + 1, expires);
        let want = md.signed_bytes().unwrap();
        let fast =
            rstuf_metadata::resign::resign_targets_payload(&bytes, md.signed.version, expires);
        assert_eq!(fast.as_deref(), Some(want.as_slice()), "{}", path.display());
        checked += 1;
    }
    assert!(checked > 3, "only {checked} targets files");
}
