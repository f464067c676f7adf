//! `metadata_delegation` over in-memory ports, on a repository bootstrapped with the API's
//! custom-delegations payload: every step publishes leaves first and leaves a repository a
//! client accepts; refusals change nothing.

mod common;

use rstuf_engine::artifacts::add_artifacts;
use rstuf_engine::delegation::metadata_delegation;
use rstuf_engine::ports::ArtifactIndex;
use rstuf_engine::testing::MemoryRepo;
use serde_json::{Value, json};

use common::{bootstrapped, fixture, now};

fn file(repo: &MemoryRepo, name: &str) -> Value {
    serde_json::from_slice(&repo.store.files()[name]).unwrap()
}

fn latest(repo: &MemoryRepo, role: &str) -> Value {
    let files = repo.store.files();
    let version = files
        .keys()
        .filter_map(|n| n.strip_suffix(&format!(".{role}.json")))
        .filter_map(|v| v.parse::<u64>().ok())
        .max()
        .unwrap();
    file(repo, &format!("{version}.{role}.json"))
}

fn accepted(repo: &MemoryRepo) {
    common::accepted(&repo.store.files(), now());
}

fn role_names(repo: &MemoryRepo) -> Vec<String> {
    latest(repo, "targets")["signed"]["delegations"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

async fn delegate(
    repo: &MemoryRepo,
    action: &str,
    delegations: Value,
) -> rstuf_engine::TaskOutcome {
    metadata_delegation(
        &repo.engine(),
        &json!({"action": action, "delegations": delegations}),
    )
    .await
    .unwrap()
}

fn dev(paths: &[&str], policy: u64) -> Value {
    json!({"keys": {}, "roles": [{"name": "dev", "terminating": true, "keyids": [],
        "threshold": 1, "x-rstuf-expire-policy": policy, "paths": paths}]})
}

#[tokio::test]
async fn add_update_and_delete_custom_roles() {
    let repo = bootstrapped("payload_custom_targets.json").await;
    assert_eq!(role_names(&repo), ["default", "production"]);

    // An offline role (the API's example payload): targets delegates it, it waits for its keys.
    let offline = fixture("api-payloads/metadata/delegation-payload.json")["delegations"].clone();
    let out = delegate(&repo, "add", offline.clone()).await;
    assert_eq!(
        out.details,
        Some(json!({"delegated_roles": ["tenant1-group1-policy"], "failed_roles": []}))
    );
    assert_eq!(
        role_names(&repo),
        ["default", "production", "tenant1-group1-policy"]
    );
    let s = repo.settings.all();
    assert_eq!(s["TENANT1-GROUP1-POLICY_EXPIRATION"], json!(365));
    let pending = &s["TENANT1-GROUP1-POLICY_SIGNING"];
    assert_eq!(pending["signed"]["version"], json!(1));
    assert_eq!(pending["signatures"], json!([]));
    assert!(
        !repo
            .store
            .files()
            .contains_key("1.tenant1-group1-policy.json")
    );
    assert!(
        repo.index
            .role("tenant1-group1-policy")
            .await
            .unwrap()
            .is_some()
    );
    accepted(&repo);

    // An online role: published at once, valid for its policy.
    let out = delegate(&repo, "add", dev(&["dev/*"], 30)).await;
    assert_eq!(
        out.details,
        Some(json!({"delegated_roles": ["dev"], "failed_roles": []}))
    );
    let dev1 = file(&repo, "1.dev.json");
    assert_eq!(dev1["signed"]["expires"], json!("2025-07-01T12:00:00Z"));
    assert_eq!(
        latest(&repo, "snapshot")["signed"]["meta"]["dev.json"],
        json!({"version": 1})
    );
    accepted(&repo);
    // Its artifacts go to it.
    let out = add_artifacts(
        &repo.engine(),
        &json!({"artifacts": [{"path": "dev/app.tar.gz",
            "info": {"length": 3, "hashes": {"sha256": "ab"}}}]}),
    )
    .await
    .unwrap();
    assert_eq!(out.details.unwrap()["artifact_roles"], json!(["dev"]));
    assert!(file(&repo, "2.dev.json")["signed"]["targets"]["dev/app.tar.gz"].is_object());

    // The same add again (delivered again after it was published): answered as the first
    // time, nothing published. A taken name with another definition fails.
    let files = repo.store.files();
    let out = delegate(&repo, "add", dev(&["dev/*"], 30)).await;
    assert_eq!(
        out.details,
        Some(json!({"delegated_roles": ["dev"], "failed_roles": []}))
    );
    assert_eq!(repo.store.files(), files);
    let out = delegate(&repo, "add", dev(&["elsewhere/*"], 30)).await;
    assert_eq!(
        out.details,
        Some(json!({"delegated_roles": [],
            "failed_roles": [{"role": "dev", "reason": "role already exists or name used in the past"}]}))
    );

    // Bad requests change nothing.
    let before = (repo.settings.all(), repo.store.files());
    for (bad, error) in [
        (
            json!({"action": "rename", "delegations": {}}),
            "metadata delegation supports",
        ),
        (json!({"action": "add"}), "No 'delegations' in the payload"),
        (
            json!({"action": "add", "delegations": dev(&["x/*"], 0)}),
            "x-rstuf-expire-policy",
        ),
        (add_one("../up", json!([]), 1), ""),
        (add_one("snapshot", json!([]), 1), ""),
        (
            add_one("qa", json!([]), 2),
            "Delegated role qa: If no keys assigned threshold must be 1",
        ),
        (
            add_one("qa", json!(["feed"]), 1),
            "key feed is not in the delegation keys",
        ),
    ] {
        let out = metadata_delegation(&repo.engine(), &bad).await.unwrap();
        assert!(!out.status(), "{bad}");
        assert!(
            out.error.as_deref().unwrap().contains(error),
            "{bad}: {out:?}"
        );
        assert_eq!((repo.settings.all(), repo.store.files()), before, "{bad}");
    }

    // Update keeps the role's place and its artifacts.
    let out = delegate(&repo, "update", dev(&["dev/*", "qa/*"], 10)).await;
    assert_eq!(
        out.details,
        Some(json!({"delegated_roles": ["dev"], "failed_roles": []}))
    );
    assert_eq!(
        role_names(&repo),
        ["default", "production", "tenant1-group1-policy", "dev"]
    );
    let dev3 = file(&repo, "3.dev.json");
    assert!(dev3["signed"]["targets"]["dev/app.tar.gz"].is_object());
    assert_eq!(repo.settings.all()["DEV_EXPIRATION"], json!(10));
    let out = delegate(
        &repo,
        "update",
        json!({"keys": {}, "roles": [{"name": "nope", "terminating": true, "keyids": [],
            "threshold": 1, "x-rstuf-expire-policy": 1, "paths": ["*"]}]}),
    )
    .await;
    assert_eq!(
        out.details.unwrap()["failed_roles"],
        json!([{"role": "nope", "reason": "Role 'nope' does not exists"}])
    );
    accepted(&repo);

    // Delete: targets stops delegating, the snapshot still lists its last version, the name
    // is burnt.
    let snapshot_before = latest(&repo, "snapshot");
    let out = delegate(
        &repo,
        "delete",
        json!({"roles": [{"name": "dev"}, {"name": "ghost"}]}),
    )
    .await;
    assert_eq!(
        out.details,
        Some(json!({"delegated_roles": ["dev"],
            "failed_roles": [{"role": "ghost", "reason": "Role 'ghost' does not exists"}]}))
    );
    assert_eq!(
        role_names(&repo),
        ["default", "production", "tenant1-group1-policy"]
    );
    let snapshot = latest(&repo, "snapshot");
    assert_eq!(
        snapshot["signed"]["version"].as_u64().unwrap(),
        snapshot_before["signed"]["version"].as_u64().unwrap() + 1
    );
    assert_eq!(
        snapshot["signed"]["meta"]["dev.json"],
        json!({"version": 3})
    );
    assert!(!repo.index.role("dev").await.unwrap().unwrap().active);
    accepted(&repo);
    let out = delegate(&repo, "add", dev(&["dev/*"], 30)).await;
    assert_eq!(out.details.unwrap()["delegated_roles"], json!([]));

    // New keys for the offline role: JH alone now; its pending metadata starts over.
    const JH: &str = "c6d8bf2e4f48b41ac2ce8eca21415ca8ef68c133b47fc33df03d4070a7e1e9cc";
    let mut rekeyed = offline.clone();
    rekeyed["roles"][0]["keyids"] = json!([JH]);
    rekeyed["roles"][0]["threshold"] = json!(1);
    let out = delegate(&repo, "update", rekeyed).await;
    assert_eq!(
        out.details,
        Some(json!({"delegated_roles": ["tenant1-group1-policy"], "failed_roles": []}))
    );
    let role = latest(&repo, "targets")["signed"]["delegations"]["roles"][2].clone();
    assert_eq!(role["name"], json!("tenant1-group1-policy"));
    assert_eq!(role["keyids"], json!([JH]));
    assert_eq!(role["threshold"], json!(1));
    let pending = &repo.settings.all()["TENANT1-GROUP1-POLICY_SIGNING"];
    assert_eq!(pending["signed"]["version"], json!(1));
    assert_eq!(pending["signatures"], json!([]));
    accepted(&repo);
}

#[tokio::test]
async fn hash_bin_repositories_refuse_custom_roles() {
    let repo = bootstrapped("payload_bins.json").await;
    let before = (repo.settings.all(), repo.store.files());
    for action in ["add", "update", "delete"] {
        let out = delegate(&repo, action, dev(&["dev/*"], 30)).await;
        assert_eq!(
            out.error,
            Some(format!(
                "Delegations already using hash-bins, cannot {action} custom roles"
            ))
        );
    }
    assert_eq!((repo.settings.all(), repo.store.files()), before);
}

/// An add of one online role without keys of its own unless `keyids` says, policy 1 day,
/// every path.
fn add_one(name: &str, keyids: Value, threshold: u64) -> Value {
    json!({"action": "add", "delegations": {"keys": {}, "roles": [{"name": name,
        "terminating": true, "keyids": keyids, "threshold": threshold,
        "x-rstuf-expire-policy": 1, "paths": ["*"]}]}})
}
