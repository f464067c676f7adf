//! `rstuf-worker run-task` against the real PostgreSQL, Redis and a local directory, configured
//! only through the reference worker's environment variables.

use std::path::Path;
use std::process::{Command, Output};

use rstuf_test_support as support;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

/// Each test keeps its repository settings in its own Redis database (tests run at once).
const SETTINGS_DB: u32 = 12;
const ARTIFACTS_SETTINGS_DB: u32 = 13;

async fn fresh_database(name: &str) -> String {
    support::fresh_postgres_db(&format!("worker_{name}")).await
}

async fn redis_settings(settings_db: u32, bootstrap: Option<&str>) {
    let client = redis::Client::open(format!("redis://127.0.0.1:6379/{settings_db}")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg("DYNACONF_MAIN")
        .query_async(&mut c)
        .await
        .unwrap();
    if let Some(b) = bootstrap {
        let _: () = redis::cmd("HSET")
            .arg("DYNACONF_MAIN")
            .arg("BOOTSTRAP")
            .arg(b)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

fn worker(args: &[&str], storage: &Path, db: &str) -> Output {
    worker_with(args, storage, db, SETTINGS_DB)
}

fn worker_with(args: &[&str], storage: &Path, db: &str, settings_db: u32) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rstuf-worker"))
        .args(args)
        .env_clear()
        .env("RSTUF_STORAGE_BACKEND", "LocalStorage")
        .env("RSTUF_LOCAL_STORAGE_BACKEND_PATH", storage)
        .env("RSTUF_REDIS_SERVER", "redis://127.0.0.1")
        .env(
            "RSTUF_REDIS_SERVER_DB_REPO_SETTINGS",
            settings_db.to_string(),
        )
        .env("RSTUF_DB_SERVER", db)
        .env("RSTUF_ONLINE_KEY_DIR", support::fixture("keys"))
        .output()
        .unwrap()
}

/// A repository on the real services, driven through `run-task` as the API would.
struct Repo {
    dir: tempfile::TempDir,
    storage: std::path::PathBuf,
    db: String,
    settings_db: u32,
}

impl Repo {
    async fn new(name: &str, settings_db: u32, bootstrap: &str) -> Repo {
        let db = fresh_database(name).await;
        redis_settings(settings_db, Some(bootstrap)).await;
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        Repo {
            dir,
            storage,
            db,
            settings_db,
        }
    }

    /// Runs `action` (payload from a file when given), expects exit 0, returns the result.
    fn task(&self, action: &str, payload: Option<&Value>) -> Value {
        let mut args = vec!["run-task".to_string(), action.to_string()];
        if let Some(p) = payload {
            let file = self.dir.path().join(format!("{action}.json"));
            std::fs::write(&file, serde_json::to_vec(p).unwrap()).unwrap();
            args.push(file.to_str().unwrap().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = worker_with(&args, &self.storage, &self.db, self.settings_db);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{action}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_through_run_task_publishes_a_repository_clients_accept() {
    let db = fresh_database("bootstrap").await;
    redis_settings(SETTINGS_DB, Some("pre-0123")).await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let payload = dir.path().join("payload.json");
    let fresh =
        support::fresh_bootstrap_payload("bootstrap/payload_bins.json", chrono::Utc::now(), 365);
    std::fs::write(&payload, serde_json::to_vec(&fresh).unwrap()).unwrap();

    let out = worker(
        &["run-task", "bootstrap", payload.to_str().unwrap()],
        &storage,
        &db,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["task"], "bootstrap");
    assert_eq!(result["status"], true);
    assert_eq!(result["message"], "Bootstrap Processed");
    assert_eq!(result["error"], Value::Null);
    assert!(
        result["details"]["bootstrap"]
            .as_str()
            .unwrap()
            .starts_with("Bootstrap finished ")
    );

    let verify = worker(&["verify", storage.to_str().unwrap()], &storage, &db);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // A second bootstrap is refused: exit 1, the reference's message.
    let again = worker(
        &["run-task", "bootstrap", payload.to_str().unwrap()],
        &storage,
        &db,
    );
    assert_eq!(again.status.code(), Some(1));
    let result: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(result["status"], false);
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .starts_with("Bootstrap state is "),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_errors_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rstuf-worker"))
        .args(["run-task", "bootstrap"])
        .env_clear()
        .env("RSTUF_STORAGE_BACKEND", "LocalStorage")
        .env("RSTUF_LOCAL_STORAGE_BACKEND_PATH", dir.path())
        .env("RSTUF_REDIS_SERVER", "redis://127.0.0.1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("payload is not JSON") || err.contains("RSTUF_DB_SERVER"),
        "{err}"
    );
    let out = worker(&["run-task", "bootstrap"], dir.path(), "mysql://x");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RSTUF_DB_SERVER"));
}

/// One artifact's payload entry; `generation` changes the info of a re-added path.
fn artifact(i: usize, generation: u8) -> Value {
    let digest = |alg: &str| {
        let seed = format!("{alg}/{i}/{generation}");
        let mut hex = String::new();
        while hex.len() < 64 {
            hex.push_str(&format!(
                "{:016x}",
                fxhash(&format!("{seed}/{}", hex.len()))
            ));
        }
        hex
    };
    let mut info = json!({
        "length": 1000 + i as u64 * 7 + u64::from(generation),
        "hashes": {"sha256": digest("sha256")},
    });
    if i.is_multiple_of(3) {
        info["hashes"]["blake2b-256"] = json!(digest("blake2b"));
        info["custom"] = json!({"generation": generation, "i": i});
    }
    json!({"path": format!("pkgs/{}/artifact-{i}.tar.gz", i % 17), "info": info})
}

/// A stable non-cryptographic hash (FNV-1a), for made-up digests.
fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `{path: {"length", "hashes"}}`, as the client oracle expects.
fn expected(artifacts: &[Value]) -> serde_json::Map<String, Value> {
    artifacts
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_string(),
                json!({"length": a["info"]["length"], "hashes": a["info"]["hashes"]}),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_added_removed_and_published_are_what_python_tuf_clients_see() {
    let repo = Repo::new("artifacts", ARTIFACTS_SETTINGS_DB, "pre-4567").await;
    let (dir, storage, db) = (&repo.dir, &repo.storage, &repo.db);
    let task = |action: &str, payload: Option<Value>| repo.task(action, payload.as_ref());
    let bootstrap =
        support::fresh_bootstrap_payload("bootstrap/payload_bins.json", chrono::Utc::now(), 365);
    task("bootstrap", Some(bootstrap));

    // 600 artifacts, published by the task itself.
    let first: Vec<Value> = (0..600).map(|i| artifact(i, 0)).collect();
    let added = task("add_artifacts", Some(json!({"artifacts": first})));
    assert_eq!(added["message"], "Artifact(s) Added");
    assert_eq!(
        added["details"]["added_artifacts"]
            .as_array()
            .unwrap()
            .len(),
        600
    );
    let mut oracle = support::PythonOracle::start("client_oracle.py");
    let before = dir.path().join("client-before");
    let seen = oracle.ask(&json!({
        "repo": storage, "client": before, "fresh": true, "time": null,
        "present": expected(&first), "absent": [artifact(700, 0)["path"]],
    }));
    assert_eq!(seen["ok"], true, "{seen}");

    // 400 new paths and 100 re-added with new info, not published yet.
    let mut second: Vec<Value> = (600..1000).map(|i| artifact(i, 0)).collect();
    second.extend((0..100).map(|i| artifact(i, 1)));
    let added = task(
        "add_artifacts",
        Some(json!({"artifacts": second, "publish_artifacts": false})),
    );
    assert_eq!(
        added["details"]["added_artifacts"]
            .as_array()
            .unwrap()
            .len(),
        500
    );
    // 50 rows as the RSTUF CLI's import-artifacts writes them: unpublished ADD rows.
    let imported: Vec<Value> = (1000..1050).map(|i| artifact(i, 0)).collect();
    let bins = rstuf_metadata::succinct::SuccinctRoles::new(
        Vec::new(),
        1,
        rstuf_metadata::succinct::SuccinctRoles::bit_length_for_bins(4).unwrap(),
        "bins",
    );
    let mut c = PgConnection::connect(db).await.unwrap();
    for a in &imported {
        let path = a["path"].as_str().unwrap();
        sqlx::query(
            "INSERT INTO rstuf_target_files (path, info, published, action, last_update, targets_role) \
             SELECT $1, $2::json, false, 'ADD', now(), id FROM rstuf_target_roles WHERE rolename = $3",
        )
        .bind(path)
        .bind(a["info"].to_string())
        .bind(bins.role_for_target(path))
        .execute(&mut c)
        .await
        .unwrap();
    }
    // 100 published artifacts removed, plus one path never added.
    let removed: Vec<Value> = (500..600).map(|i| artifact(i, 0)["path"].clone()).collect();
    let mut remove = removed.clone();
    remove.push(json!("never/added.tar.gz"));
    let out = task(
        "remove_artifacts",
        Some(json!({"artifacts": remove, "publish_artifacts": false})),
    );
    assert_eq!(out["message"], "Artifact(s) removed");
    assert_eq!(out["details"]["deleted_artifacts"], json!(removed));
    assert_eq!(
        out["details"]["not_found_artifacts"],
        json!(["never/added.tar.gz"])
    );

    let published = task("publish_artifacts", None);
    assert_eq!(
        published["message"], "Publish Artifacts Processed",
        "{published}"
    );
    assert_eq!(
        published["details"]["artifact_roles"],
        json!(["bins-0", "bins-1", "bins-2", "bins-3"])
    );
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rstuf_target_files WHERE NOT published")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(unpublished, 0);

    // What clients must see: the latest info of every present path, none of the removed.
    let mut present = expected(&first[..500]);
    present.extend(expected(&second));
    present.extend(expected(&imported));
    assert_eq!(present.len(), 950);
    for (client, fresh) in [(&before, false), (&dir.path().join("client-new"), true)] {
        let seen = oracle.ask(&json!({
            "repo": storage, "client": client, "fresh": fresh, "time": null,
            "present": present, "absent": removed,
        }));
        assert_eq!(seen["ok"], true, "fresh={fresh}: {seen}");
    }

    // Publishing again with nothing to do changes no file.
    let files = std::fs::read_dir(storage).unwrap().count();
    let again = task("publish_artifacts", None);
    assert_eq!(again["details"]["artifact_roles"], Value::Null, "{again}");
    assert_eq!(std::fs::read_dir(storage).unwrap().count(), files);
}

const CUSTOM_SETTINGS_DB: u32 = 15;

async fn settings_field(settings_db: u32, field: &str) -> Option<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:6379/{settings_db}")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("HGET")
        .arg("DYNACONF_MAIN")
        .arg(field)
        .query_async(&mut c)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_roles_publish_online_artifacts_and_queue_offline_ones_for_signing() {
    let repo = Repo::new("custom", CUSTOM_SETTINGS_DB, "pre-89ab").await;
    let (dir, storage, db) = (&repo.dir, &repo.storage, &repo.db);
    let task = |action: &str, payload: &Value| repo.task(action, Some(payload));
    let bootstrap = support::fresh_bootstrap_payload(
        "bootstrap/payload_custom_targets.json",
        chrono::Utc::now(),
        365,
    );
    let out = task("bootstrap", &bootstrap);
    assert_eq!(out["status"], true, "{out}");
    let pending = settings_field(CUSTOM_SETTINGS_DB, "PRODUCTION_SIGNING").await;
    assert!(
        pending.as_deref().is_some_and(|v| v.starts_with("@json ")),
        "{pending:?}"
    );

    // The reference's C_add request: one artifact per role and one path no role matches.
    let app = json!({"path": "production/app-1.0.tar.gz", "info": {"length": 10, "hashes": {"sha256": "aa"}}});
    let file = json!({"path": "file-x.tar.gz", "info": {"length": 20, "hashes": {"sha256": "bb"}}});
    let other =
        json!({"path": "other/dir/file", "info": {"length": 30, "hashes": {"sha256": "cc"}}});
    let out = task("add_artifacts", &json!({"artifacts": [app, file, other]}));
    assert_eq!(
        out["details"],
        json!({"added_artifacts": ["production/app-1.0.tar.gz", "file-x.tar.gz"],
               "invalid_paths": ["other/dir/file"],
               "artifact_roles": ["production", "default"]}),
        "{out}"
    );
    // The offline role's new content waits for its keys; its row stays unpublished.
    let pending = settings_field(CUSTOM_SETTINGS_DB, "PRODUCTION_SIGNING")
        .await
        .unwrap();
    let pending: Value = serde_json::from_str(pending.strip_prefix("@json ").unwrap()).unwrap();
    assert_eq!(
        pending["signed"]["targets"],
        json!({"production/app-1.0.tar.gz": {"length": 10, "hashes": {"sha256": "aa"}}})
    );
    assert_eq!(pending["signatures"], json!([]));
    let mut c = PgConnection::connect(db).await.unwrap();
    let rows: Vec<(String, bool)> =
        sqlx::query_as("SELECT path, published FROM rstuf_target_files ORDER BY path")
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [
            ("file-x.tar.gz".to_string(), true),
            ("production/app-1.0.tar.gz".to_string(), false)
        ]
    );

    let mut oracle = support::PythonOracle::start("client_oracle.py");
    let seen = oracle.ask(&json!({
        "repo": storage, "client": dir.path().join("client"), "fresh": true, "time": null,
        "present": {"file-x.tar.gz": {"length": 20, "hashes": {"sha256": "bb"}}},
        "absent": ["other/dir/file"],
    }));
    assert_eq!(seen["ok"], true, "{seen}");
}
