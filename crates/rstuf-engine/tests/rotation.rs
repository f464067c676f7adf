//! Root rotation over in-memory ports with the API's example payload (v2 replaces the online
//! key 0d9d… by cb20…): checks, a pending root completed by `sign_metadata`, everything the
//! online key signs re-signed by the new key before the new root is written, and a stale
//! pending root refused.

mod common;

use rstuf_engine::bootstrap::bootstrap;
use rstuf_engine::ports::SettingsStore;
use rstuf_engine::rotation::metadata_update;
use rstuf_engine::signing::sign_metadata;
use rstuf_engine::testing::MemoryRepo;
use rstuf_metadata::audit::{AuditOptions, audit};
use serde_json::{Value, json};

use common::{
    ONLINE, TASK, accepted, fixture, key, now, payload, pre, repo, root_key, signature_over,
};

const NEW_ONLINE: &str = "cb20fa1061dde8e6267e0bef0981766aaadae168e917030f7f26edc7a0bab9c2";
const JC: &str = "2f685fa7546f1856b123223ab086b3def14c89d24eef18f49c32508c2f60e241";

/// A repository whose signers also hold the new online key of the update payload.
fn repo_with_both_keys() -> MemoryRepo {
    let repo = repo();
    repo.signers.add(NEW_ONLINE, key(NEW_ONLINE));
    repo
}

async fn bootstrapped() -> MemoryRepo {
    let repo = repo_with_both_keys();
    pre(&repo).await;
    let out = bootstrap(&repo.engine(), &payload("payload_bins.json"), TASK)
        .await
        .unwrap();
    assert!(out.status(), "{out:?}");
    repo
}

fn update() -> Value {
    fixture("api-payloads/metadata/update-root-payload.json")
}

#[tokio::test]
async fn bad_updates_are_refused_and_change_nothing() {
    let repo = bootstrapped().await;
    let before = (repo.settings.all(), repo.store.files());
    let mut skipped = update();
    skipped["metadata"]["root"]["signed"]["version"] = json!(3);
    let mut unsigned_key = update();
    unsigned_key["metadata"]["root"]["signatures"] = json!([]);
    unsigned_key["metadata"]["root"]["signed"]["roles"]["timestamp"]["threshold"] = json!(2);
    for (payload, error) in [
        (json!({}), "No 'metadata' in the payload"),
        (
            json!({"metadata": {"targets": {}}}),
            "Unsupported Metadata type",
        ),
        (
            json!({"metadata": {"root": {"signed": {}}}}),
            "Failed to verify the trust: ",
        ),
        (
            skipped,
            "Failed to verify the trust: Expected root version 2 instead got version 3",
        ),
        (
            unsigned_key,
            "Failed to verify the trust: Root v2: the timestamp role must have the online key, threshold 1",
        ),
    ] {
        let out = metadata_update(&repo.engine(), &payload).await.unwrap();
        assert_eq!(out.message, "Metadata Update Failed", "{payload}");
        assert!(
            out.error.as_deref().unwrap().starts_with(error),
            "{payload}: {out:?}"
        );
        assert_eq!((repo.settings.all(), repo.store.files()), before);
    }
}

#[tokio::test]
async fn a_rotation_of_the_online_key_re_signs_everything_before_the_new_root() {
    let repo = bootstrapped().await;
    // Without JC's signature the new root's threshold is not met: it waits.
    let mut partial = update();
    let signatures = partial["metadata"]["root"]["signatures"].clone();
    let jc = signatures
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["keyid"] == JC)
        .unwrap()
        .clone();
    partial["metadata"]["root"]["signatures"] = json!(
        signatures
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["keyid"] != JC)
            .collect::<Vec<_>>()
    );
    let out = metadata_update(&repo.engine(), &partial).await.unwrap();
    assert_eq!(
        out.details,
        Some(json!({"role": "root", "update": "Root v2 is pending signatures"}))
    );
    assert!(!repo.store.files().contains_key("2.root.json"));

    // A signature by a key of neither root: refused.
    let mut forged = jc.clone();
    forged["keyid"] = json!(ONLINE);
    let out = sign_metadata(
        &repo.engine(),
        &json!({"role": "root", "signature": forged}),
    )
    .await
    .unwrap();
    assert_eq!(out.error.as_deref(), Some("Invalid signature"));

    let writes_before = repo.store.write_log().len();
    let out = sign_metadata(&repo.engine(), &json!({"role": "root", "signature": jc}))
        .await
        .unwrap();
    assert!(out.status(), "{out:?}");
    assert_eq!(
        out.details,
        Some(json!({"update": "Metadata update finished"}))
    );
    let log = repo.store.write_log()[writes_before..].to_vec();
    assert_eq!(log.last().unwrap(), "2.root.json", "{log:?}");
    for name in [
        "2.bins-0.json",
        "2.bins-3.json",
        "2.targets.json",
        "2.snapshot.json",
        "timestamp.json",
    ] {
        assert!(log.contains(&name.to_string()), "{name}: {log:?}");
    }
    let files = repo.store.files();
    let get = |name: &str| -> Value { serde_json::from_slice(&files[name]).unwrap() };
    for name in [
        "2.bins-1.json",
        "2.targets.json",
        "2.snapshot.json",
        "timestamp.json",
    ] {
        assert_eq!(
            get(name)["signatures"][0]["keyid"],
            json!(NEW_ONLINE),
            "{name}"
        );
    }
    let delegations = &get("2.targets.json")["signed"]["delegations"];
    assert_eq!(delegations["succinct_roles"]["keyids"], json!([NEW_ONLINE]));
    assert!(delegations["keys"].get(ONLINE).is_none());
    let s = repo.settings.all();
    assert_eq!(s["ONLINE_KEY"]["keyid"], json!(NEW_ONLINE));
    assert_eq!(s["TRUSTED_ROOT"]["signed"]["version"], json!(2));
    assert_eq!(s["ROOT_SIGNING"], Value::Null);
    // A client starting from 1.root.json follows the rotation.
    accepted(&files, now());

    // The same v2 pending again (a process stopped after trusting v2, before ending the
    // signing event): answered as finished, the event ended, nothing rewritten.
    repo.settings
        .set("ROOT_SIGNING", partial["metadata"]["root"].clone())
        .await
        .unwrap();
    let before = repo.store.files();
    let again = json!({"role": "root", "signature": signatures[0].clone()});
    let engine = repo.engine();
    let sign_again = || sign_metadata(&engine, &again);
    let out = sign_again().await.unwrap();
    assert_eq!(
        out.details,
        Some(json!({"update": "Metadata update finished"})),
        "{out:?}"
    );
    assert_eq!(repo.settings.all()["ROOT_SIGNING"], Value::Null);
    // Delivered once more, with no event left: the trusted root has that signature.
    let out = sign_again().await.unwrap();
    assert!(out.status(), "{out:?}");
    // Another v2 is stale: refused, nothing rewritten.
    let mut other = partial["metadata"]["root"].clone();
    other["signed"]["expires"] = json!("2025-12-30T00:00:00Z");
    repo.settings.set("ROOT_SIGNING", other).await.unwrap();
    let out = sign_again().await.unwrap();
    assert_eq!(
        out.error.as_deref(),
        Some("Root v2 is stale: the trusted root is v2")
    );
    assert_eq!(repo.store.files(), before);
}

#[tokio::test]
async fn updates_and_delegations_wait_for_a_finished_bootstrap() {
    use rstuf_engine::delegation::metadata_delegation;
    let repo = MemoryRepo::new(now());
    for state in [None, Some("pre-abc"), Some("signing-abc")] {
        if let Some(s) = state {
            repo.settings.set("BOOTSTRAP", json!(s)).await.unwrap();
        }
        let before = (repo.settings.all(), repo.store.files());
        let out = metadata_update(&repo.engine(), &update()).await.unwrap();
        assert_eq!(
            out.error.as_deref(),
            Some("Metadata Update requires a completed bootstrap"),
            "{state:?}"
        );
        let out = metadata_delegation(
            &repo.engine(),
            &json!({"action": "add", "delegations": {"roles": []}}),
        )
        .await
        .unwrap();
        assert_eq!(
            out.error.as_deref(),
            Some("Metadata delegation requires a completed bootstrap")
        );
        assert_eq!((repo.settings.all(), repo.store.files()), before);
    }
}

/// Custom roles across an online-key rotation: the online role is re-signed by the new key,
/// the offline role is left alone (its keys did not change), the mixed role waits for its offline key again.
#[tokio::test]
async fn a_rotation_leaves_offline_roles_alone_and_mixed_roles_pending() {
    use rstuf_engine::delegation::metadata_delegation;
    const JH: &str = "c6d8bf2e4f48b41ac2ce8eca21415ca8ef68c133b47fc33df03d4070a7e1e9cc";
    let repo = repo_with_both_keys();
    pre(&repo).await;
    bootstrap(
        &repo.engine(),
        &payload("payload_custom_targets.json"),
        TASK,
    )
    .await
    .unwrap();
    let sign = |role: &str, keyid: &str, file: &str| {
        let pending = repo.settings.all()[&format!("{}_SIGNING", role.to_uppercase())].clone();
        json!({"role": role, "signature": signature_over(&pending, keyid, &root_key(file))})
    };
    for (keyid, file) in [(JC, "JC.rsa"), (JH, "JH.ed25519")] {
        let out = sign_metadata(&repo.engine(), &sign("production", keyid, file))
            .await
            .unwrap();
        assert!(out.status(), "{out:?}");
    }
    let jh_key = fixture("api-payloads/bootstrap/payload_custom_targets.json")["settings"]["roles"]
        ["delegations"]["keys"][JH]
        .clone();
    let out = metadata_delegation(
        &repo.engine(),
        &json!({"action": "add", "delegations": {"keys": {JH: jh_key}, "roles": [{"name": "mixed",
            "terminating": true, "keyids": [ONLINE, JH], "threshold": 2,
            "x-rstuf-expire-policy": 20, "paths": ["mixed/*"]}]}}),
    )
    .await
    .unwrap();
    assert!(out.status(), "{out:?}");
    sign_metadata(&repo.engine(), &sign("mixed", JH, "JH.ed25519"))
        .await
        .unwrap();
    assert!(repo.store.files().contains_key("1.mixed.json"));
    let production_files: Vec<String> = repo
        .store
        .files()
        .into_keys()
        .filter(|n| n.ends_with(".production.json"))
        .collect();

    let out = metadata_update(&repo.engine(), &update()).await.unwrap();
    assert!(out.status(), "{out:?}");
    let files = repo.store.files();
    let get = |name: &str| -> Value { serde_json::from_slice(&files[name]).unwrap() };
    assert_eq!(
        get("2.default.json")["signatures"][0]["keyid"],
        json!(NEW_ONLINE)
    );
    let after: Vec<String> = files
        .keys()
        .filter(|n| n.ends_with(".production.json"))
        .cloned()
        .collect();
    assert_eq!(after, production_files, "the offline role is not re-signed");
    let s = repo.settings.all();
    assert_eq!(s["PRODUCTION_SIGNING"], Value::Null);
    let mixed = &s["MIXED_SIGNING"];
    assert_eq!(mixed["signed"]["version"], json!(2));
    assert_eq!(mixed["signatures"][0]["keyid"], json!(NEW_ONLINE));
    let targets = files
        .keys()
        .filter_map(|n| n.strip_suffix(".targets.json")?.parse::<u64>().ok())
        .max()
        .unwrap();
    let delegations = &get(&format!("{targets}.targets.json"))["signed"]["delegations"];
    let roles = delegations["roles"].as_array().unwrap();
    assert_eq!(roles[0]["keyids"], json!([NEW_ONLINE]));
    assert_eq!(roles[2]["keyids"], json!([NEW_ONLINE, JH]));
    assert!(delegations["keys"].get(ONLINE).is_none());
    // Until JH signs again, the published mixed version no longer meets its delegation (its
    // online signature is by the old key); once JH has signed, a client accepts everything.
    let report = audit(
        &files,
        &AuditOptions {
            reference_time: now(),
            trusted_root: None,
        },
    );
    assert!(!report.accepted());
    let out = sign_metadata(&repo.engine(), &sign("mixed", JH, "JH.ed25519"))
        .await
        .unwrap();
    assert_eq!(
        out.details,
        Some(json!({"update": "Role mixed signing complete"}))
    );
    accepted(&repo.store.files(), now());
}
