//! `rstuf-worker verify` on the reference worker's hash-bin repository and on damaged copies.

use std::path::{Path, PathBuf};
use std::process::Command;

use rstuf_metadata::keys::PrivateKey;
use rstuf_metadata::schema::{MetaFile, Metadata, Signed, Snapshot, Targets, Timestamp};

const ONLINE: &str = "0d9d3d4bad91c455bc03921daa95774576b86625ac45570d0cac025b08e65043";
const AT: &str = "2026-04-30T00:00:00Z";

/// A fixture under the workspace's `tests/fixtures`.
fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

fn bins_repo() -> tempfile::TempDir {
    let src = fixture("reference-worker/bins-das-storage");
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        n += 1;
    }
    assert!(n >= 6, "fixture directory {} incomplete", src.display());
    dir
}

fn verify(dir: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rstuf-worker"))
        .arg("verify")
        .arg(dir)
        .args(["--time", AT])
        .args(extra)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn line_for<'a>(text: &'a str, role: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(role))
        .unwrap_or_else(|| panic!("no line for {role} in:\n{text}"))
}

/// The hash-bin repository with version 2 of bins-0, snapshot and timestamp published.
fn bins_repo_at_v2() -> (tempfile::TempDir, PrivateKey) {
    let dir = bins_repo();
    let key = online_key();
    publish(dir.path(), &key, 2, 2, 2);
    (dir, key)
}

/// Runs `verify`, expects exit 1 with `role`'s line a FAIL naming `problem`; returns the output.
fn refused(dir: &std::path::Path, role: &str, problem: &str) -> String {
    let (code, out) = verify(dir, &[]);
    assert_eq!(code, 1, "{out}");
    let line = line_for(&out, role);
    assert!(line.starts_with("FAIL") && line.contains(problem), "{out}");
    out
}

fn online_key() -> PrivateKey {
    let pem = std::fs::read(fixture("keys").join(ONLINE)).unwrap();
    PrivateKey::from_pem(&pem, None).unwrap()
}

fn read<T: Signed>(dir: &Path, name: &str) -> Metadata<T> {
    Metadata::from_bytes(&std::fs::read(dir.join(name)).unwrap()).unwrap()
}

fn write_signed<T: Signed>(dir: &Path, name: &str, mut md: Metadata<T>, key: &PrivateKey) {
    md.signatures.clear();
    md.sign_with(ONLINE, |m| key.sign(m)).unwrap();
    std::fs::write(dir.join(name), md.to_storage_bytes().unwrap()).unwrap();
}

/// Publishes `bins-0` v`bin_version` in a new snapshot `snap_version` and a new timestamp.
fn publish(
    dir: &Path,
    key: &PrivateKey,
    bin_version: u64,
    snap_version: u64,
    listed_bin_version: u64,
) {
    let mut bin = read::<Targets>(dir, "1.bins-0.json");
    bin.signed.version = bin_version;
    write_signed(dir, &format!("{bin_version}.bins-0.json"), bin, key);
    let mut snap = read::<Snapshot>(dir, "1.snapshot.json");
    snap.signed.version = snap_version;
    snap.signed.meta.insert(
        "bins-0.json".into(),
        MetaFile::version_only(listed_bin_version),
    );
    write_signed(dir, &format!("{snap_version}.snapshot.json"), snap, key);
    let mut ts = read::<Timestamp>(dir, "timestamp.json");
    ts.signed.version += 1;
    ts.signed
        .meta
        .insert("snapshot.json".into(), MetaFile::version_only(snap_version));
    write_signed(dir, "timestamp.json", ts, key);
}

#[test]
fn reference_bins_repository_is_accepted() {
    let dir = bins_repo();
    let (code, out) = verify(dir.path(), &[]);
    assert_eq!(code, 0, "{out}");
    for role in [
        "root",
        "timestamp",
        "snapshot",
        "targets",
        "bins-0",
        "bins-1",
    ] {
        assert!(line_for(&out, role).starts_with("ok"), "{out}");
    }
    assert!(out.contains("ACCEPTED"), "{out}");
}

#[test]
fn expired_metadata_is_rejected_at_a_later_time() {
    let dir = bins_repo();
    let out = Command::new(env!("CARGO_BIN_EXE_rstuf-worker"))
        .arg("verify")
        .arg(dir.path())
        .args(["--time", "2030-01-01T00:00:00Z"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(line_for(&text, "timestamp").contains("expired"), "{text}");
}

#[test]
fn a_changed_signature_byte_is_rejected_naming_the_role() {
    for name in [
        "1.root.json",
        "timestamp.json",
        "1.snapshot.json",
        "1.targets.json",
        "1.bins-1.json",
    ] {
        let dir = bins_repo();
        let path = dir.path().join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let at = text.find("\"sig\": \"").unwrap() + 8 + 10;
        let mut bytes = text.into_bytes();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        std::fs::write(&path, bytes).unwrap();
        let (code, out) = verify(dir.path(), &[]);
        assert_eq!(code, 1, "{name}: {out}");
        let role = name.trim_start_matches("1.").trim_end_matches(".json");
        assert!(line_for(&out, role).starts_with("FAIL"), "{name}: {out}");
    }
}

#[test]
fn a_missing_bin_file_is_rejected_naming_the_bin() {
    let dir = bins_repo();
    std::fs::remove_file(dir.path().join("1.bins-1.json")).unwrap();
    let out = refused(dir.path(), "bins-1", "1.bins-1.json not found");
    assert!(line_for(&out, "bins-0").starts_with("ok"), "{out}");
}

#[test]
fn a_new_correctly_signed_version_is_accepted() {
    let (dir, _) = bins_repo_at_v2();
    let (code, out) = verify(dir.path(), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(line_for(&out, "bins-0").contains("v2"), "{out}");
    assert!(line_for(&out, "snapshot").contains("v2"), "{out}");
}

#[test]
fn a_snapshot_listing_a_lower_version_than_an_earlier_one_is_rejected() {
    let (dir, key) = bins_repo_at_v2();
    // Snapshot 3 goes back to bins-0 v1: a rollback a client refuses.
    let mut snap = read::<Snapshot>(dir.path(), "2.snapshot.json");
    snap.signed.version = 3;
    snap.signed
        .meta
        .insert("bins-0.json".into(), MetaFile::version_only(1));
    write_signed(dir.path(), "3.snapshot.json", snap, &key);
    let mut ts = read::<Timestamp>(dir.path(), "timestamp.json");
    ts.signed.version += 1;
    ts.signed
        .meta
        .insert("snapshot.json".into(), MetaFile::version_only(3));
    write_signed(dir.path(), "timestamp.json", ts, &key);

    refused(dir.path(), "snapshot", "rollback of bins-0");
}

#[test]
fn trust_can_start_from_a_given_root_and_bad_times_are_refused() {
    let dir = bins_repo();
    let root = dir.path().join("1.root.json");
    let (code, out) = verify(dir.path(), &["--root", root.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let out = Command::new(env!("CARGO_BIN_EXE_rstuf-worker"))
        .args(["verify", "/nonexistent-dir", "--time", "yesterday"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_rstuf-worker"))
        .args(["verify", "/nonexistent-dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn reference_custom_repository_is_rejected_for_the_reference_worker_defects() {
    let dir = fixture("reference-worker/custom-storage");
    let (code, out) = verify(&dir, &[]);
    assert_eq!(code, 1, "{out}");
    // Snapshot 9 was rewritten without re-signing when a role was deleted.
    assert!(
        line_for(&out, "snapshot").contains("9.snapshot.json: not signed"),
        "{out}"
    );
    // The snapshot lists production v2, which was never stored.
    assert!(
        line_for(&out, "production").contains("2.production.json not found"),
        "{out}"
    );
    // A role whose name starts with a digit was stored without a version.
    assert!(line_for(&out, "2024rel").starts_with("FAIL"), "{out}");
    assert!(line_for(&out, "targets").starts_with("ok"), "{out}");
}
