//! Metadata we build and sign is loaded and trusted by python-tuf: `Metadata.from_bytes`,
//! `verify_delegate` for root, timestamp, snapshot, targets and every bin, and a full
//! `ngclient.Updater` refresh that finds an artifact, for every key type and scheme.

use rstuf_test_support as support;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Duration, Utc};
use rstuf_metadata::audit::{AuditOptions, audit};
use rstuf_metadata::keys::PrivateKey;
use rstuf_metadata::schema::{
    Delegations, Expires, MetaFile, Metadata, Role, Root, Signed, Snapshot, TargetFile, Targets,
    Timestamp,
};
use rstuf_metadata::succinct::SuccinctRoles;
use serde_json::{Value, json};

use support::{SCHEMES, key_for_scheme as key_for};

fn write<T: Signed>(dir: &Path, name: &str, signed: T, key: &PrivateKey, keyid: &str) {
    let mut md = Metadata::new(signed);
    md.sign_with(keyid, |m| key.sign(m)).unwrap();
    std::fs::write(dir.join(name), md.to_storage_bytes().unwrap()).unwrap();
}

/// A consistent-snapshot repository with 4 hash bins, every role signed by `key`.
fn build_repository(dir: &Path, key: &PrivateKey) {
    let mut public = key.public_key();
    let keyid = public.compute_keyid();
    public.unrecognized.insert(
        "x-rstuf-online-key-uri".into(),
        json!(format!("fn:{keyid}")),
    );
    let expires = Expires::at(Utc::now() + Duration::days(30));

    let mut roles = BTreeMap::new();
    for r in ["root", "timestamp", "snapshot", "targets"] {
        roles.insert(r.to_string(), Role::new(vec![keyid.clone()], 1));
    }
    let root: Root = serde_json::from_value(json!({
        "_type": "root", "spec_version": "1.0.31", "version": 1, "expires": expires,
        "consistent_snapshot": true, "keys": {keyid.clone(): public.clone()}, "roles": roles,
        "x-rstuf-extra": {"kept": true},
    }))
    .unwrap();
    write(dir, "1.root.json", root, key, &keyid);

    let bins = SuccinctRoles::new(vec![keyid.clone()], 1, 2, "bins");
    let artifact = "releases/file 1.tar.gz";
    let mut snapshot_meta = BTreeMap::new();
    for name in bins.role_names() {
        let mut bin = Targets::new(1, expires);
        if name == bins.role_for_target(artifact) {
            bin.targets.insert(
                artifact.into(),
                serde_json::from_value::<TargetFile>(json!({
                    "length": 1234, "hashes": {"sha256": "ab".repeat(32)}, "custom": {"é": [1, 2]},
                }))
                .unwrap(),
            );
        }
        write(dir, &format!("1.{name}.json"), bin, key, &keyid);
        snapshot_meta.insert(format!("{name}.json"), MetaFile::version_only(1));
    }
    let mut targets = Targets::new(1, expires);
    targets.delegations = Some(Delegations {
        keys: BTreeMap::from([(keyid.clone(), public)]),
        roles: None,
        succinct_roles: Some(bins),
        unrecognized: BTreeMap::new(),
    });
    write(dir, "1.targets.json", targets, key, &keyid);
    snapshot_meta.insert("targets.json".into(), MetaFile::version_only(1));
    write(
        dir,
        "1.snapshot.json",
        Snapshot::new(1, expires, snapshot_meta),
        key,
        &keyid,
    );
    write(
        dir,
        "timestamp.json",
        Timestamp::new(1, expires, 1),
        key,
        &keyid,
    );
    std::fs::write(
        dir.join("artifact.json"),
        serde_json::to_vec(&json!({"path": artifact, "length": 1234, "sha256": "ab".repeat(32)}))
            .unwrap(),
    )
    .unwrap();
}

#[test]
fn python_tuf_trusts_what_we_sign_with_every_scheme() {
    let base = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for scheme in SCHEMES {
        let dir = base.path().join(scheme);
        std::fs::create_dir(&dir).unwrap();
        build_repository(&dir, &key_for(scheme));
        dirs.push(dir);
    }
    // A tampered copy: one byte of the snapshot signature changed. python-tuf must refuse it.
    let tampered = base.path().join("tampered");
    std::fs::create_dir(&tampered).unwrap();
    build_repository(&tampered, &key_for("ed25519"));
    let snap = tampered.join("1.snapshot.json");
    let text = std::fs::read_to_string(&snap).unwrap();
    let at = text.find("\"sig\": \"").unwrap() + 9;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&snap, bytes).unwrap();
    dirs.push(tampered);

    let args: Vec<&str> = dirs.iter().map(|d| d.to_str().unwrap()).collect();
    let out = support::run_python("tuf_oracle.py", &args, b"");
    let results: Vec<Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(results.len(), SCHEMES.len() + 1);
    for (scheme, r) in SCHEMES.iter().zip(&results) {
        assert_eq!(r["error"], Value::Null, "{scheme}: {r}");
        assert_eq!(r["loaded"].as_array().unwrap().len(), 8, "{scheme}: {r}");
        for flag in ["delegate_ok", "refresh_ok", "artifact_ok"] {
            assert_eq!(r[flag], Value::Bool(true), "{scheme}: {flag} in {r}");
        }
    }
    // Our own audit agrees with python-tuf on every directory.
    for (dir, r) in dirs.iter().zip(&results) {
        let files: BTreeMap<String, Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap() != "artifact.json")
            .map(|p| {
                (
                    p.file_name().unwrap().to_str().unwrap().to_string(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        let options = AuditOptions {
            reference_time: Utc::now(),
            trusted_root: None,
        };
        let report = audit(&files, &options);
        assert_eq!(
            report.accepted(),
            r["refresh_ok"] == Value::Bool(true),
            "{}: {report:?}",
            dir.display()
        );
    }
    let tampered = &results[SCHEMES.len()];
    assert_eq!(tampered["delegate_ok"], Value::Bool(false), "{tampered}");
    assert!(
        tampered["error"].as_str().unwrap().contains("snapshot"),
        "{tampered}"
    );
}
