//! End to end without the broker: `bootstrap` with a fresh RSTUF payload writes a repository
//! into a real directory that python-tuf's ngclient refreshes from and our audit accepts.

use std::sync::Arc;

use chrono::Utc;
use rstuf_adapters::local_store::LocalStore;
use rstuf_engine::bootstrap::bootstrap;
use rstuf_engine::ports::SettingsStore;
use rstuf_engine::testing::MemoryRepo;
use rstuf_metadata::audit::{AuditOptions, audit};
use rstuf_test_support as support;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn bootstrapped_directory_is_trusted_by_python_tuf() {
    let now = Utc::now();
    let repo = MemoryRepo::new(now);
    let (keyid, key) = support::online_key();
    repo.signers.add(&keyid, key);
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    let ports = repo.engine_over(repo.ports().with_store(Arc::new(store)));
    repo.settings
        .set("BOOTSTRAP", json!("pre-abc"))
        .await
        .unwrap();
    let payload = support::fresh_bootstrap_payload("bootstrap/payload_bins.json", now, 365);
    let out = bootstrap(&ports, &payload, "abc").await.unwrap();
    assert_eq!(out.error, None, "{out:?}");

    let files: std::collections::BTreeMap<String, Vec<u8>> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_str().unwrap().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    let report = audit(
        &files,
        &AuditOptions {
            reference_time: now,
            trusted_root: None,
        },
    );
    assert!(report.accepted(), "{report:#?}");

    let out = support::run_python("tuf_oracle.py", &[dir.path().to_str().unwrap()], b"");
    let results: Vec<Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(results[0]["error"], Value::Null, "{}", results[0]);
    assert_eq!(results[0]["delegate_ok"], Value::Bool(true));
    assert_eq!(results[0]["refresh_ok"], Value::Bool(true));
}
