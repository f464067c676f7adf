//! `rstuf-worker run-task` against the real PostgreSQL, Redis and a local directory, configured
//! only through the reference worker's environment variables.

use std::path::Path;
use std::process::{Command, Output};

use rstuf_test_support as support;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

const SETTINGS_DB: u32 = 12;

async fn fresh_database(name: &str) -> String {
    let db = format!("rstuf_worker_{name}_{}", std::process::id());
    let mut admin = PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .await
        .unwrap();
    format!("postgresql://postgres@127.0.0.1:5432/{db}")
}

async fn redis_settings(bootstrap: Option<&str>) {
    let client = redis::Client::open(format!("redis://127.0.0.1:6379/{SETTINGS_DB}")).unwrap();
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
    Command::new(env!("CARGO_BIN_EXE_rstuf-worker"))
        .args(args)
        .env_clear()
        .env("RSTUF_STORAGE_BACKEND", "LocalStorage")
        .env("RSTUF_LOCAL_STORAGE_BACKEND_PATH", storage)
        .env("RSTUF_REDIS_SERVER", "redis://127.0.0.1")
        .env(
            "RSTUF_REDIS_SERVER_DB_REPO_SETTINGS",
            SETTINGS_DB.to_string(),
        )
        .env("RSTUF_DB_SERVER", db)
        .env("RSTUF_ONLINE_KEY_DIR", support::fixture("keys"))
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_through_run_task_publishes_a_repository_clients_accept() {
    let db = fresh_database("bootstrap").await;
    redis_settings(Some("pre-0123")).await;
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
