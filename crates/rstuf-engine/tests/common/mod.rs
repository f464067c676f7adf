//! What the engine's integration tests share: the fixtures, the keys they were signed with,
//! a clock before the fixture roots expire, and in-memory repositories bootstrapped from the
//! API's payloads.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use rstuf_engine::bootstrap::bootstrap;
use rstuf_engine::ports::SettingsStore;
use rstuf_engine::testing::MemoryRepo;
use rstuf_metadata::audit::{AuditOptions, audit};
use rstuf_metadata::keys::PrivateKey;
use serde_json::{Value, json};

/// The fixtures' online key id (its private key is `fixtures/keys/<id>`).
pub const ONLINE: &str = "0d9d3d4bad91c455bc03921daa95774576b86625ac45570d0cac025b08e65043";
/// The bootstrap task id the tests use.
pub const TASK: &str = "d449c2af4e39481c8e8a64950f406920";

/// The workspace's `tests/fixtures` directory (see its README for where each file came from).
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A JSON fixture under `tests/fixtures/`.
pub fn fixture(rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join(rel)).unwrap()).unwrap()
}

/// A bootstrap payload of the API (`fixtures/api-payloads/bootstrap/<name>`).
pub fn payload(name: &str) -> Value {
    fixture(&format!("api-payloads/bootstrap/{name}"))
}

/// An unencrypted private key of `fixtures/keys`.
pub fn key(file: &str) -> PrivateKey {
    let pem = std::fs::read(fixtures().join("keys").join(file)).unwrap();
    PrivateKey::from_pem(&pem, None).unwrap()
}

/// A fixture root key (the RSTUF CLI's test keys, password `hunter2`).
pub fn root_key(file: &str) -> PrivateKey {
    let pem = std::fs::read(fixtures().join("keys").join(file)).unwrap();
    PrivateKey::from_pem(&pem, Some(b"hunter2")).unwrap()
}

/// Before the fixture roots expire (2025-12-31).
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
}

/// An empty repository at [`now`] whose signers hold the fixtures' online key.
pub fn repo() -> MemoryRepo {
    let repo = MemoryRepo::new(now());
    repo.signers.add(ONLINE, key(ONLINE));
    repo
}

/// `BOOTSTRAP = pre-<TASK>`, as the API sets it before sending the bootstrap.
pub async fn pre(repo: &MemoryRepo) {
    repo.settings
        .set("BOOTSTRAP", json!(format!("pre-{TASK}")))
        .await
        .unwrap();
}

/// [`repo`] bootstrapped with the API's payload `name`.
pub async fn bootstrapped(name: &str) -> MemoryRepo {
    let repo = repo();
    pre(&repo).await;
    let out = bootstrap(&repo.engine(), &payload(name), TASK)
        .await
        .unwrap();
    assert!(out.status(), "{out:?}");
    repo
}

/// A signature `{keyid, sig}` by `key` over the canonical form of `md["signed"]`, as the CLI
/// posts it to `sign_metadata`.
pub fn signature_over(md: &Value, keyid: &str, key: &PrivateKey) -> Value {
    let payload = rstuf_metadata::cjson::encode_canonical(&md["signed"]).unwrap();
    let sig: String = key
        .sign(&payload)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({"keyid": keyid, "sig": sig})
}

/// A client starting from `1.root.json` accepts `files` at `at`.
pub fn accepted(files: &BTreeMap<String, Vec<u8>>, at: DateTime<Utc>) {
    let report = audit(
        files,
        &AuditOptions {
            reference_time: at,
            trusted_root: None,
        },
    );
    assert!(report.accepted(), "at {at}: {report:#?}");
}
