//! Artifacts, publishing, scheduled bumps and forced updates over in-memory ports, on a
//! repository bootstrapped from the RSTUF API's bins payload.

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rstuf_engine::TaskError;
use rstuf_engine::artifacts::{add_artifacts, remove_artifacts};
use rstuf_engine::bootstrap::bootstrap;
use rstuf_engine::bump::{BumpScope, bump_online_roles, force_online_metadata_update};
use rstuf_engine::ports::{
    ArtifactAction, ArtifactRow, MetadataStore, PortError, RepoLock, SettingsStore,
};
use rstuf_engine::publish::publish_artifacts;
use rstuf_engine::testing::MemoryRepo;
use rstuf_metadata::schema::{Metadata, Snapshot, Targets, Timestamp};
use serde_json::{Value, json};

use common::{TASK, accepted, fixture, now};

async fn bootstrapped() -> MemoryRepo {
    common::bootstrapped("payload_bins.json").await
}

fn accepted_at(repo: &MemoryRepo, at: DateTime<Utc>) {
    accepted(&repo.store.files(), at);
}

async fn get<T: rstuf_metadata::schema::Signed>(repo: &MemoryRepo, name: &str) -> Metadata<T> {
    Metadata::from_bytes(&repo.store.get(name).await.unwrap().unwrap()).unwrap()
}

/// The artifacts a client finds, by following timestamp, snapshot and every bin.
async fn published(repo: &MemoryRepo) -> BTreeMap<String, Value> {
    let ts: Metadata<Timestamp> = get(repo, "timestamp.json").await;
    let v = ts.signed.snapshot_meta().unwrap().version;
    let snap: Metadata<Snapshot> = get(repo, &format!("{v}.snapshot.json")).await;
    let mut out = BTreeMap::new();
    for (name, meta) in &snap.signed.meta {
        let role = name.trim_end_matches(".json");
        if role == "targets" {
            continue;
        }
        let md: Metadata<Targets> = get(repo, &format!("{}.{role}.json", meta.version)).await;
        for (path, file) in md.signed.targets {
            out.insert(path, serde_json::to_value(file).unwrap());
        }
    }
    out
}

/// Adds these artifacts in one request.
async fn add_list(
    engine: &rstuf_engine::Engine,
    artifacts: Vec<Value>,
) -> Result<rstuf_engine::outcome::TaskOutcome, rstuf_engine::TaskError> {
    add_artifacts(engine, &json!({ "artifacts": artifacts })).await
}

fn artifact(path: &str, length: u64, sha: &str) -> Value {
    json!({"path": path, "info": {"length": length, "hashes": {"sha256": sha}}})
}

#[tokio::test]
async fn add_publishes_the_reference_payload_into_its_bins() {
    let repo = bootstrapped().await;
    let out = add_artifacts(
        &repo.engine(),
        &fixture("api-payloads/artifacts/add_payload.json"),
    )
    .await
    .unwrap();
    assert_eq!(out.message, "Artifact(s) Added");
    // As the reference worker reported for the same payload (transcripts/A_add.txt).
    assert_eq!(
        out.details,
        Some(json!({
            "added_artifacts": ["file1.tar.gz", "file2.tar.gz", "file3.tar.gz"],
            "invalid_paths": [],
            "artifact_roles": ["bins-3", "bins-2"]
        }))
    );
    let log = repo.store.write_log();
    assert_eq!(
        &log[8..],
        [
            "2.bins-2.json",
            "2.bins-3.json",
            "2.snapshot.json",
            "timestamp.json"
        ]
    );
    let found = published(&repo).await;
    assert_eq!(found.len(), 3);
    assert_eq!(
        found["file1.tar.gz"],
        json!({"length": 11342, "hashes": {"blake2b-256": "716f6e863f744b9ac22c97ec7b76ea5f5908bc5b2f67c61510bfc4751384ea7a"}, "custom": {"key": "value"}})
    );
    // Rows: published, info stored as the API's model dumps it.
    let rows = repo.index.files();
    assert!(rows.values().all(|r| r.published));
    assert_eq!(
        rows["file1.tar.gz"].info,
        r#"{"length": 11342, "hashes": {"blake2b-256": "716f6e863f744b9ac22c97ec7b76ea5f5908bc5b2f67c61510bfc4751384ea7a"}, "custom": {"key": "value"}}"#
    );
    assert_eq!(rows["file2.tar.gz"].role, "bins-2");
    let roles = repo.index.roles();
    assert_eq!(roles["bins-2"].version, 2);
    assert_eq!(roles["bins-0"].version, 1);
    accepted_at(&repo, now());
}

#[tokio::test]
async fn remove_readd_and_cli_rows_are_published() {
    let repo = bootstrapped().await;
    let ports = repo.engine();
    add_list(
        &ports,
        vec![artifact("a.txt", 1, "aa"), artifact("b.txt", 2, "bb")],
    )
    .await
    .unwrap();
    let out = remove_artifacts(&ports, &json!({"artifacts": ["a.txt", "missing.txt"]}))
        .await
        .unwrap();
    assert_eq!(
        out.details,
        Some(json!({"deleted_artifacts": ["a.txt"], "not_found_artifacts": ["missing.txt"]}))
    );
    // Removing it again: it is already removed and published.
    let again = remove_artifacts(&ports, &json!({"artifacts": ["a.txt"]}))
        .await
        .unwrap();
    assert_eq!(
        again.details,
        Some(json!({"deleted_artifacts": [], "not_found_artifacts": ["a.txt"]}))
    );
    // Re-adding with new info brings it back with that info.
    add_list(&ports, vec![artifact("a.txt", 9, "99")])
        .await
        .unwrap();
    // A row written by the RSTUF CLI's import-artifacts.
    let role = rstuf_metadata::succinct::SuccinctRoles::new(vec![], 1, 2, "bins")
        .role_for_target("imported.tgz");
    repo.index.insert_row(ArtifactRow {
        path: "imported.tgz".into(),
        info: r#"{"length": 5, "hashes": {"sha256": "abcd"}}"#.into(),
        action: ArtifactAction::Add,
        published: false,
        role,
    });
    let out = publish_artifacts(&ports).await.unwrap();
    assert_eq!(out.message, "Publish Artifacts Processed");
    assert_eq!(
        out.details.as_ref().unwrap()["artifact_roles"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let found = published(&repo).await;
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["a.txt", "b.txt", "imported.tgz"]
    );
    assert_eq!(found["a.txt"]["length"], 9);
    // Nothing left: the reference's empty answer.
    let none = publish_artifacts(&ports).await.unwrap();
    assert_eq!(none.details, Some(json!({"artifact_roles": null})));
    accepted_at(&repo, now());
}

#[tokio::test]
async fn publish_false_leaves_rows_for_the_next_publish() {
    let repo = bootstrapped().await;
    let ports = repo.engine();
    let before = repo.store.files();
    let out = add_artifacts(
        &ports,
        &json!({"artifacts": [artifact("x.txt", 1, "ab")], "publish_artifacts": false}),
    )
    .await
    .unwrap();
    assert!(out.status());
    assert_eq!(repo.store.files(), before);
    assert!(!repo.index.files()["x.txt"].published);
    publish_artifacts(&ports).await.unwrap();
    assert!(repo.index.files()["x.txt"].published);
    assert!(published(&repo).await.contains_key("x.txt"));
}

#[tokio::test]
async fn versions_left_by_an_interrupted_publish_are_skipped_not_reused() {
    let repo = bootstrapped().await;
    let ports = repo.engine();
    // A crashed publish wrote these and never got to the timestamp.
    let role =
        rstuf_metadata::succinct::SuccinctRoles::new(vec![], 1, 2, "bins").role_for_target("y.txt");
    repo.store
        .put_versioned(&format!("2.{role}.json"), b"orphan")
        .await
        .unwrap();
    repo.store
        .put_versioned("2.snapshot.json", b"orphan")
        .await
        .unwrap();
    add_list(&ports, vec![artifact("y.txt", 3, "cd")])
        .await
        .unwrap();
    let files = repo.store.files();
    assert_eq!(files[&format!("2.{role}.json")], b"orphan");
    assert!(files.contains_key(&format!("3.{role}.json")));
    let ts: Metadata<Timestamp> = get(&repo, "timestamp.json").await;
    assert_eq!(ts.signed.snapshot_meta().unwrap().version, 3);
    assert_eq!(repo.index.roles()[&role].version, 3);
    assert!(published(&repo).await.contains_key("y.txt"));
    // The orphans are not metadata a client ever reaches; the rest is a valid repository.
    let mut files = repo.store.files();
    files.retain(|_, bytes| bytes != b"orphan");
    accepted(&files, now());
}

#[tokio::test]
async fn a_lost_lock_publishes_nothing_and_marks_nothing() {
    let repo = bootstrapped().await;
    let ports = repo.engine();
    let ts_before = repo.store.get("timestamp.json").await.unwrap();
    repo.lock.lose_next();
    let err = add_list(&ports, vec![artifact("z.txt", 3, "cd")])
        .await
        .unwrap_err();
    assert!(matches!(err, TaskError::LockLost), "{err:?}");
    assert_eq!(repo.store.get("timestamp.json").await.unwrap(), ts_before);
    assert!(!repo.index.files()["z.txt"].published);
    // The next publish (with the lock) finishes the job.
    publish_artifacts(&ports).await.unwrap();
    assert!(repo.index.files()["z.txt"].published);
    accepted_at(&repo, now());
}

/// A store where another publication commits its timestamp just before ours: what a holder
/// that stalled past its lock (and checked it just before stalling) would meet.
struct Overtaken {
    inner: std::sync::Arc<rstuf_engine::testing::MemoryStore>,
    theirs: std::sync::Mutex<Option<(Vec<u8>, u64)>>,
}

#[async_trait::async_trait]
impl MetadataStore for Overtaken {
    async fn put_versioned(&self, name: &str, bytes: &[u8]) -> Result<(), PortError> {
        self.inner.put_versioned(name, bytes).await
    }
    async fn put_versioned_many(
        &self,
        files: &[(String, std::sync::Arc<Vec<u8>>)],
    ) -> Result<(), PortError> {
        self.inner.put_versioned_many(files).await
    }
    async fn put_timestamp(&self, bytes: &[u8], replaces: Option<u64>) -> Result<(), PortError> {
        let theirs = self.theirs.lock().unwrap().take();
        if let Some((theirs, base)) = theirs {
            self.inner.put_timestamp(&theirs, Some(base)).await?;
        }
        self.inner.put_timestamp(bytes, replaces).await
    }
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, PortError> {
        self.inner.get(name).await
    }
    async fn discard(&self, names: &[String]) -> Result<Vec<bool>, PortError> {
        self.inner.discard(names).await
    }
}

/// The fenced commit point: a publication whose timestamp was overtaken by another writer's
/// (although its lock check passed) writes no timestamp, marks nothing published, and is
/// retryable; the next publication starts from the other one's timestamp and finishes.
#[tokio::test]
async fn a_publication_overtaken_by_another_timestamp_publishes_nothing() {
    let repo = bootstrapped().await;
    let mut theirs: Metadata<Timestamp> = get(&repo, "timestamp.json").await;
    let base = theirs.signed.version;
    theirs.signed.version += 1;
    theirs.signatures.clear();
    let online = common::key(common::ONLINE);
    theirs
        .sign_with(common::ONLINE, |m| online.sign(m))
        .unwrap();
    let theirs = serde_json::to_vec(&theirs.to_value().unwrap()).unwrap();
    let mut ports = repo.ports();
    ports.store = std::sync::Arc::new(Overtaken {
        inner: repo.store.clone(),
        theirs: std::sync::Mutex::new(Some((theirs.clone(), base))),
    });
    let err = add_list(&repo.engine_over(ports), vec![artifact("z.txt", 3, "cd")])
        .await
        .unwrap_err();
    assert!(matches!(err, TaskError::Superseded(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("another publication"), "{err}");
    assert_eq!(
        repo.store.get("timestamp.json").await.unwrap(),
        Some(theirs)
    );
    assert!(!repo.index.files()["z.txt"].published);
    publish_artifacts(&repo.engine()).await.unwrap();
    assert!(repo.index.files()["z.txt"].published);
    let ts: Metadata<Timestamp> = get(&repo, "timestamp.json").await;
    assert_eq!(ts.signed.version, base + 2);
    accepted_at(&repo, now());
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let repo = bootstrapped().await;
    let ports = repo.engine();
    add_list(&ports, vec![artifact("keep.txt", 1, "aa")])
        .await
        .unwrap();
    let files = repo.store.files();
    let rows = repo.index.files();
    let settings = repo.settings.all();
    let info = |v: Value| json!({"artifacts": [artifact("ok.txt", 1, "aa"), {"path": "bad.txt", "info": v}]});
    let path = |p: Value| json!({"artifacts": [artifact("ok.txt", 1, "aa"), {"path": p, "info": {"length": 1, "hashes": {"sha256": "aa"}}}]});
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "No 'artifacts' in the payload"),
        (json!({"artifacts": "x"}), "'artifacts' must be a list"),
        (
            info(json!({"hashes": {"sha256": "aa"}})),
            "info.length is missing",
        ),
        (
            info(json!({"length": -1, "hashes": {"sha256": "aa"}})),
            "info.length must be a non-negative integer",
        ),
        (
            info(json!({"length": 1.5, "hashes": {"sha256": "aa"}})),
            "found 1.5 at length",
        ),
        (
            info(json!({"length": "1", "hashes": {"sha256": "aa"}})),
            "info.length must be a non-negative integer",
        ),
        (
            info(json!({"length": 1, "hashes": {}})),
            "info.hashes must not be empty",
        ),
        (info(json!({"length": 1})), "info.hashes is missing"),
        (
            info(json!({"length": 1, "hashes": {"sha256": 5}})),
            "info.hashes.sha256 must be a hex digest",
        ),
        (
            info(json!({"length": 1, "hashes": {"sha256": "zz"}})),
            "info.hashes.sha256 must be a hex digest",
        ),
        (
            info(json!({"length": 1, "hashes": {"sha256": "aa"}, "custom": 3})),
            "info.custom must be an object",
        ),
        (info(json!("text")), "info must be an object"),
        (json!({"artifacts": [{"path": "p"}]}), "'info' is missing"),
        (path(json!(7)), "'path' must be a string"),
        (path(json!("")), "the path is empty"),
        (path(json!("/etc/passwd")), "must be relative"),
        (path(json!("a/../../etc")), "'..' segment"),
        (path(json!("a//b")), "empty"),
        (path(json!("./a")), "'.'"),
        (path(json!("a\u{0}b")), "character"),
        (path(json!("a\\b")), "character"),
    ];
    for (payload, want) in cases {
        let out = add_artifacts(&ports, &payload).await.unwrap();
        assert_eq!(out.message, "Adding artifact(s) Failed", "{payload}");
        let error = out.error.unwrap_or_default();
        assert!(error.contains(want), "{payload}: {error}");
    }
    let removes: Vec<(Value, &str)> = vec![
        (json!({}), "No 'artifacts' in the payload"),
        (json!({"artifacts": []}), "At list one artifact is required"),
        (json!({"artifacts": [3]}), "paths must be strings"),
    ];
    for (payload, want) in removes {
        let out = remove_artifacts(&ports, &payload).await.unwrap();
        assert_eq!(out.message, "Removing artifact(s) Failed");
        assert_eq!(
            out.error.as_deref().map(|e| e.contains(want)),
            Some(true),
            "{payload}"
        );
    }
    assert_eq!(repo.store.files(), files);
    assert_eq!(repo.index.files(), rows);
    assert_eq!(repo.settings.all(), settings);
}

#[tokio::test]
async fn scheduled_bumps_keep_every_role_valid_for_thirty_days() {
    let repo = bootstrapped().await;
    let ports = repo.engine();
    // Bins outlive the timestamp: the reference worker let snapshot and timestamp expire here.
    repo.settings
        .set("BINS_EXPIRATION", json!(7))
        .await
        .unwrap();
    repo.settings
        .set("SNAPSHOT_EXPIRATION", json!(3))
        .await
        .unwrap();
    add_list(&ports, vec![artifact("keep.txt", 1, "aa")])
        .await
        .unwrap();
    let mut at = now();
    let end = now() + Duration::days(30);
    let mut bumped_roles = 0;
    while at < end {
        at += Duration::minutes(50);
        repo.clock.set(at);
        bumped_roles += bump_online_roles(&ports, BumpScope::ExpiringSoon)
            .await
            .unwrap()
            .len();
        // Just after the bump, and just before the next one.
        accepted_at(&repo, at);
        accepted_at(&repo, at + Duration::minutes(49));
    }
    assert!(
        bumped_roles >= 4 * 4,
        "bins bumped about weekly: {bumped_roles}"
    );
    assert!(published(&repo).await.contains_key("keep.txt"));
    // Bumps before the window changed nothing: a second run right away writes no file.
    let count = repo.store.write_log().len();
    assert_eq!(
        bump_online_roles(&ports, BumpScope::ExpiringSoon)
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(repo.store.write_log().len(), count);
}

#[tokio::test]
async fn forced_updates() {
    let repo = bootstrapped().await;
    let ports = repo.engine();
    let cases: Vec<(Value, Value)> = vec![
        (json!({"roles": []}), json!([])),
        (json!({"roles": ["root"]}), json!([])),
        (json!({"roles": ["timestamp"]}), json!(["timestamp"])),
        (
            json!({"roles": ["snapshot"]}),
            json!(["snapshot", "timestamp"]),
        ),
        (
            json!({"roles": ["targets"]}),
            json!(["snapshot", "timestamp", "targets"]),
        ),
        (
            json!({"roles": ["targets", "snapshot", "bins"]}),
            json!(["snapshot", "timestamp", "targets", "bins"]),
        ),
        (
            json!({"roles": ["bins-1"]}),
            json!(["snapshot", "timestamp", "bins-1"]),
        ),
    ];
    for (payload, want) in cases {
        let out = force_online_metadata_update(&ports, &payload)
            .await
            .unwrap();
        assert_eq!(
            out.message, "Force new online metadata update succeeded",
            "{payload}"
        );
        assert_eq!(
            out.details,
            Some(json!({"updated_roles": want})),
            "{payload}"
        );
        accepted_at(&repo, now());
    }
    // Targets bumped by force are in the snapshot (the reference left them out).
    let ts: Metadata<Timestamp> = get(&repo, "timestamp.json").await;
    let snap: Metadata<Snapshot> = get(
        &repo,
        &format!(
            "{}.snapshot.json",
            ts.signed.snapshot_meta().unwrap().version
        ),
    )
    .await;
    assert_eq!(snap.signed.role_version("targets"), Some(3));
    assert_eq!(snap.signed.role_version("bins-1"), Some(3));

    let files = repo.store.files();
    for (payload, want) in [
        (json!({"roles": ["nope"]}), "Role 'nope' does not exist"),
        (
            json!({"roles": "bins"}),
            "'roles' must be a list of role names",
        ),
    ] {
        let out = force_online_metadata_update(&ports, &payload)
            .await
            .unwrap();
        assert_eq!(out.error.as_deref(), Some(want));
    }
    assert_eq!(repo.store.files(), files);
}

#[tokio::test]
async fn tasks_before_bootstrap_are_refused() {
    let repo = MemoryRepo::new(now());
    let ports = repo.engine();
    let out = add_list(&ports, vec![artifact("a", 1, "aa")])
        .await
        .unwrap();
    assert_eq!(out.error.as_deref(), Some("Requires a completed bootstrap"));
    let out = force_online_metadata_update(&ports, &json!({"roles": ["bins"]}))
        .await
        .unwrap();
    assert_eq!(
        out.error.as_deref(),
        Some("New metadata updates requre completed bootstrap")
    );
    assert_eq!(
        bump_online_roles(&ports, BumpScope::ExpiringSoon)
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    assert!(repo.store.files().is_empty());
}

#[tokio::test]
async fn publishes_and_bumps_spanning_many_role_chunks_cover_every_role() {
    // 2,048 bins: more than one chunk of roles is loaded, signed and written per task.
    let repo = common::repo();
    common::pre(&repo).await;
    let mut payload = common::payload("payload_bins.json");
    payload["settings"]["roles"]["bins"]["number_of_delegated_bins"] = json!(2048);
    let out = bootstrap(&repo.engine(), &payload, TASK).await.unwrap();
    assert!(out.status(), "{out:?}");
    let ports = repo.engine();
    let artifacts: Vec<Value> = (0..2500)
        .map(|i| artifact(&format!("many/{i}.tgz"), i, &format!("{i:064x}")))
        .collect();
    let out = add_artifacts(&ports, &json!({"artifacts": artifacts}))
        .await
        .unwrap();
    let roles = out.details.as_ref().unwrap()["artifact_roles"]
        .as_array()
        .unwrap()
        .len();
    assert!(roles > 1024, "{roles} roles changed");
    let found = published(&repo).await;
    assert_eq!(found.len(), 2500);
    assert!(repo.index.files().values().all(|r| r.published));
    let versions = repo.index.roles();
    assert_eq!(
        versions.values().filter(|r| r.version == 2).count(),
        roles,
        "every changed role, in every chunk, has its new version recorded"
    );

    // A bump of every role re-signs all 2,048 bins across chunks and keeps every artifact.
    let bumped = bump_online_roles(&ports, BumpScope::EveryOnlineRole)
        .await
        .unwrap();
    assert_eq!(bumped.len(), 2048 + 1, "every bin and targets");
    assert_eq!(published(&repo).await.len(), 2500);
    accepted_at(&repo, now());
}

/// Another worker publishes this task's rows while its round waits for the lock, and a later
/// row arrives meanwhile: the round then publishes nothing (whoever wrote the later row will),
/// so a burst spread over several workers costs one publication per turn of the lock.
#[tokio::test]
async fn a_round_whose_rows_another_worker_published_publishes_nothing() {
    use rstuf_engine::Engine;
    use rstuf_engine::ports::{ArtifactIndex, LockGuard, NewArtifact, PortError, RepoLock};
    use std::sync::{Arc, Mutex};

    /// The lock as this worker sees it: on the first turn, another worker (`other`) takes it
    /// first, publishes, and adds a row before this worker gets it.
    struct OtherWorkerFirst {
        inner: Arc<rstuf_engine::testing::MemoryLock>,
        other: Mutex<Option<Engine>>,
    }
    #[async_trait::async_trait]
    impl RepoLock for OtherWorkerFirst {
        async fn acquire(&self) -> Result<Box<dyn LockGuard>, PortError> {
            let other = self.other.lock().unwrap().take();
            if let Some(other) = other {
                publish_artifacts(&other).await.unwrap();
                other
                    .index
                    .add_artifacts(&[NewArtifact {
                        path: "later.tar.gz".into(),
                        info: serde_json::from_str(r#"{"length": 1, "hashes": {"sha256": "cc"}}"#)
                            .unwrap(),
                        role: "bins-0".into(),
                    }])
                    .await
                    .unwrap();
            }
            self.inner.acquire().await
        }
    }

    let repo = bootstrapped().await;
    let before = snapshots(&repo);
    // This worker shares the repository's cache, not its publishing rounds.
    let ports = Engine::new(repo.ports().with_lock(Arc::new(OtherWorkerFirst {
        inner: repo.lock.clone(),
        other: Mutex::new(Some(repo.engine())),
    })))
    .with_cache(repo.cache.clone());
    let out = add_artifacts(
        &ports,
        &json!({"artifacts": [{"path": "file1.tar.gz",
            "info": {"length": 3, "hashes": {"sha256": "ab"}}}]}),
    )
    .await
    .unwrap();
    assert!(out.status(), "{out:?}");
    assert_eq!(
        snapshots(&repo),
        before + 1,
        "only the other worker's publication"
    );
    let rows = repo.index.files();
    assert!(rows["file1.tar.gz"].published);
    assert!(
        !rows["later.tar.gz"].published,
        "left to the task that added it"
    );
    assert_eq!(
        repo.index.roles_with_unpublished().await.unwrap(),
        ["bins-0"]
    );
}

fn snapshots(repo: &MemoryRepo) -> usize {
    repo.store
        .files()
        .keys()
        .filter(|n| n.ends_with(".snapshot.json"))
        .count()
}

fn one_artifact(i: usize) -> Value {
    json!({"artifacts": [artifact(&format!("burst/{i}.tar.gz"), i as u64, "ab")]})
}

/// Yields until `ready` holds (the spawned tasks run on this test's thread).
async fn until(mut ready: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if ready() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the tasks never got there");
}

/// Twenty add tasks arriving while the lock is taken: the first leads a round and waits for
/// the lock; the nineteen others join that round as they arrive (their rows are written while
/// the lock is held elsewhere), so the burst costs one turn of the lock and one publication,
/// and every task returns with its artifact published.
#[tokio::test]
async fn a_burst_of_tasks_shares_one_write_and_one_publication() {
    let repo = bootstrapped().await;
    let before = snapshots(&repo);
    let acquisitions = repo.lock.acquisitions();
    let held = repo.lock.acquire().await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let ports = repo.engine();
            tokio::spawn(async move { add_artifacts(&ports, &one_artifact(i)).await })
        })
        .collect();
    let burst_rows = || {
        repo.index
            .files()
            .keys()
            .filter(|p| p.starts_with("burst/"))
            .count()
    };
    until(|| burst_rows() == 20 && repo.queue.waiting() == 0).await;
    assert_eq!(
        snapshots(&repo),
        before,
        "nothing is published before the lock is free"
    );
    drop(held);
    for task in tasks {
        let out = task.await.unwrap().unwrap();
        assert!(out.status(), "{out:?}");
    }
    assert_eq!(
        repo.lock.acquisitions() - acquisitions,
        1 + 1,
        "the test's turn of the lock, then the round's"
    );
    let publications = snapshots(&repo) - before;
    assert_eq!(publications, 1, "one publication for the burst");
    let published = published(&repo).await;
    for i in 0..20 {
        assert!(published.contains_key(&format!("burst/{i}.tar.gz")), "{i}");
    }
    assert_eq!(repo.queue.waiting(), 0);
    accepted_at(&repo, now());
}

/// The leader of a round is cancelled (time limit) while it waits for the lock: the tasks that
/// joined its round are not answered by it, hand their rows in again, and are published by a
/// round one of them leads. The cancelled task's row, already written, is published too.
#[tokio::test]
async fn a_cancelled_leader_passes_the_lead_on() {
    let repo = bootstrapped().await;
    let held = repo.lock.acquire().await.unwrap();
    let leader = {
        let ports = repo.engine();
        tokio::spawn(async move { add_artifacts(&ports, &one_artifact(0)).await })
    };
    until(|| repo.index.files().contains_key("burst/0.tar.gz")).await;
    let followers: Vec<_> = (1..4)
        .map(|i| {
            let ports = repo.engine();
            tokio::spawn(async move { add_artifacts(&ports, &one_artifact(i)).await })
        })
        .collect();
    // The three join the leader's round: their rows are written, nobody waits in the queue.
    until(|| {
        let rows = repo.index.files();
        (1..4).all(|i| rows.contains_key(&format!("burst/{i}.tar.gz"))) && repo.queue.waiting() == 0
    })
    .await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    drop(held);
    for task in followers {
        let out = task.await.unwrap().unwrap();
        assert!(out.status(), "{out:?}");
    }
    let published = published(&repo).await;
    for i in 0..4 {
        assert!(published.contains_key(&format!("burst/{i}.tar.gz")), "{i}");
    }
    assert_eq!(repo.queue.waiting(), 0);
    // The queue is free again: a later task leads at once.
    let out = add_artifacts(&repo.engine(), &one_artifact(9))
        .await
        .unwrap();
    assert!(out.status(), "{out:?}");
    accepted_at(&repo, now());
}

/// A setting a publication needs that cannot be read fails the task before its first file:
/// no role or targets version is left written without the snapshot that lists it.
#[tokio::test]
async fn an_unreadable_expiration_fails_a_publication_before_it_writes() {
    let repo = bootstrapped().await;
    let files = repo.store.write_log();
    let targets = json!({"roles": ["targets"]});
    repo.settings
        .set("SNAPSHOT_EXPIRATION", json!("soon"))
        .await
        .unwrap();
    let out = force_online_metadata_update(&repo.engine(), &targets).await;
    assert!(out.is_err(), "{out:?}");
    assert_eq!(repo.store.write_log(), files, "nothing written");
    let err = out.unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"setting SNAPSHOT_EXPIRATION is not a positive number: "soon""#
    );
    assert!(!err.is_retryable());

    repo.settings
        .set("SNAPSHOT_EXPIRATION", json!(1))
        .await
        .unwrap();
    repo.settings
        .set("BINS_EXPIRATION", json!(-1))
        .await
        .unwrap();
    let out = bump_online_roles(&repo.engine(), BumpScope::EveryOnlineRole).await;
    assert!(out.is_err(), "{out:?}");
    assert_eq!(repo.store.write_log(), files, "nothing written");
    assert_eq!(
        out.unwrap_err().to_string(),
        "setting BINS_EXPIRATION is not a positive number: -1"
    );

    let out = force_online_metadata_update(&repo.engine(), &targets)
        .await
        .unwrap();
    assert!(out.status(), "{out:?}");
    assert!(repo.store.files().contains_key("2.targets.json"));
}

/// Stored metadata that is missing or does not parse fails the task with an error naming the
/// file (and keeping the parser's error as its source); running again does not help.
#[tokio::test]
async fn unreadable_stored_metadata_names_the_file() {
    let repo = bootstrapped().await;
    let targets = json!({"roles": ["targets"]});
    repo.store
        .put_timestamp(b"{not json", Some(1))
        .await
        .unwrap();
    let err = force_online_metadata_update(&repo.engine(), &targets)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TaskError::Unreadable { file, .. } if file == "timestamp.json"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("timestamp.json: malformed JSON"),
        "{err}"
    );
    let source = std::error::Error::source(&err).expect("the parse error");
    assert!(
        source.is::<rstuf_metadata::schema::SchemaError>(),
        "{source:?}"
    );
    assert!(!err.is_retryable());
}

/// Records what a task reports before it publishes.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<Vec<String>>>);

#[async_trait::async_trait]
impl rstuf_engine::artifacts::Progress for Recorded {
    async fn publishing(&self, roles: &[String]) {
        self.0.lock().unwrap().push(roles.to_vec());
    }
}

/// Adds and removes arriving while the lock is taken share one round: their rows are written
/// in arrival order (a path added and then removed in the same round ends removed), each
/// remove learns from the round's write which of its paths were marked, and the burst costs
/// one publication. A remove whose paths have no rows returns after the write, without
/// waiting for the lock.
#[tokio::test]
async fn adds_and_removes_share_a_round() {
    use rstuf_engine::artifacts::remove;
    use rstuf_engine::payload::{Payload, RemoveArtifacts};
    use std::sync::Arc;

    let repo = bootstrapped().await;
    let ports = repo.engine();
    let out = add_artifacts(
        &ports,
        &json!({"artifacts": [artifact("keep/a", 1, "aa"), artifact("gone/b", 2, "bb"),
            artifact("keep/c", 3, "cc")]}),
    )
    .await
    .unwrap();
    assert!(out.status(), "{out:?}");
    let before = snapshots(&repo);
    let acquisitions = repo.lock.acquisitions();
    let held = repo.lock.acquire().await.unwrap();
    let removing = |paths: Value| {
        let ports = repo.engine();
        let progress = Arc::new(Recorded::default());
        let watched = progress.clone();
        let task = tokio::spawn(async move {
            let payload = RemoveArtifacts::parse(Some(&json!({"artifacts": paths}))).unwrap();
            remove(&ports, payload, watched.as_ref()).await
        });
        (task, progress)
    };
    let row = |path: &str| repo.index.files().get(path).cloned();
    let is_removal = |path: &str| row(path).is_some_and(|r| r.action == ArtifactAction::Remove);

    // In arrival order: add d (the leader, waiting for the lock), remove b, remove d, add e.
    let add_d = {
        let ports = repo.engine();
        tokio::spawn(async move { add_list(&ports, vec![artifact("new/d", 4, "dd")]).await })
    };
    until(|| row("new/d").is_some()).await;
    let (remove_b, progress_b) = removing(json!(["gone/b", "never/x"]));
    until(|| is_removal("gone/b")).await;
    let (remove_d, progress_d) = removing(json!(["new/d"]));
    until(|| is_removal("new/d")).await;
    let add_e = {
        let ports = repo.engine();
        tokio::spawn(async move { add_list(&ports, vec![artifact("new/e", 5, "ee")]).await })
    };
    until(|| row("new/e").is_some() && repo.queue.waiting() == 0).await;
    // Nothing to remove: answered once written, while the round still waits for the lock.
    let (remove_none, progress_none) = removing(json!(["never/y"]));
    until(|| remove_none.is_finished()).await;
    let out = remove_none.await.unwrap().unwrap();
    assert_eq!(
        out.details,
        Some(json!({"deleted_artifacts": [], "not_found_artifacts": ["never/y"]}))
    );
    assert!(progress_none.0.lock().unwrap().is_empty());
    assert_eq!(
        snapshots(&repo),
        before,
        "nothing published while the lock is held"
    );

    drop(held);
    for task in [add_d, add_e] {
        let out = task.await.unwrap().unwrap();
        assert!(out.status(), "{out:?}");
    }
    let out = remove_b.await.unwrap().unwrap();
    assert_eq!(out.message, "Artifact(s) removed");
    assert_eq!(
        out.details,
        Some(json!({"deleted_artifacts": ["gone/b"], "not_found_artifacts": ["never/x"]}))
    );
    let out = remove_d.await.unwrap().unwrap();
    assert_eq!(
        out.details,
        Some(json!({"deleted_artifacts": ["new/d"], "not_found_artifacts": []}))
    );
    // Each remove reported the roles of the paths it marked, once.
    let role_of = |path: &str| row(path).unwrap().role;
    assert_eq!(*progress_b.0.lock().unwrap(), [vec![role_of("gone/b")]]);
    assert_eq!(*progress_d.0.lock().unwrap(), [vec![role_of("new/d")]]);

    assert_eq!(
        snapshots(&repo) - before,
        1,
        "one publication for the round"
    );
    assert_eq!(
        repo.lock.acquisitions() - acquisitions,
        2,
        "the test's turn of the lock, then the round's"
    );
    let published = published(&repo).await;
    let paths: Vec<&str> = published.keys().map(String::as_str).collect();
    assert_eq!(paths, ["keep/a", "keep/c", "new/e"]);
    assert!(repo.index.files().values().all(|r| r.published));
    assert_eq!(repo.queue.waiting(), 0);
    accepted_at(&repo, now());
}
