//! A repository the reference worker bootstrapped (its storage, the settings it writes through
//! dynaconf, its alembic schema and rows) is continued by our engine on the real adapters, and
//! python-tuf's client, whether it held the reference's state or starts from 1.root.json,
//! does not notice the change of worker.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use rstuf_adapters::local_store::LocalStore;
use rstuf_adapters::postgres::{PgIndex, SchemaState};
use rstuf_adapters::redis_lock::RedisLock;
use rstuf_adapters::redis_settings::RedisSettings;
use rstuf_adapters::signers::KeyUriSigners;
use rstuf_engine::Engine;
use rstuf_engine::artifacts::{add_artifacts, remove_artifacts};
use rstuf_engine::bump::{BumpScope, bump_online_roles};
use rstuf_engine::ports::{ArtifactIndex, Ports};
use rstuf_engine::testing::FixedClock;
use rstuf_test_support as support;
use serde_json::{Value, json};

/// This test's Redis database for repository settings.
const SETTINGS_DB: u32 = 10;
/// The reference's bootstrap task (transcript B_das).
const REFERENCE_TASK: &str = "2144a576f423441cb6f640f57e316e2c";

fn reference_dir() -> std::path::PathBuf {
    support::fixture("reference-worker/bins-das-storage")
}

fn reference_json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(reference_dir().join(name)).unwrap()).unwrap()
}

/// The settings the reference worker leaves after this bootstrap (the key list of transcript
/// A_bootstrap, with this repository's values), written by dynaconf itself.
async fn reference_settings() -> RedisSettings {
    let url = format!("redis://127.0.0.1:6379/{SETTINGS_DB}");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
    let root = reference_json("1.root.json");
    let online_id = root["signed"]["roles"]["timestamp"]["keyids"][0].clone();
    let mut online = root["signed"]["keys"][online_id.as_str().unwrap()].clone();
    online["keyid"] = online_id;
    let settings = json!({
        "BOOTSTRAP": REFERENCE_TASK,
        "ROOT_EXPIRATION": 365, "TARGETS_EXPIRATION": 365, "SNAPSHOT_EXPIRATION": 1,
        "TIMESTAMP_EXPIRATION": 1, "BINS_EXPIRATION": 1,
        "ROOT_THRESHOLD": 2, "ROOT_NUM_KEYS": 1,
        "TARGETS_THRESHOLD": 1, "TARGETS_NUM_KEYS": 1, "SNAPSHOT_THRESHOLD": 1,
        "SNAPSHOT_NUM_KEYS": 1, "TIMESTAMP_THRESHOLD": 1, "TIMESTAMP_NUM_KEYS": 1,
        "BINS_THRESHOLD": 1, "BINS_NUM_KEYS": 1, "NUMBER_OF_DELEGATED_BINS": 2,
        "TARGETS_ONLINE_KEY": true, "ROOT_SIGNING": null,
        "TRUSTED_ROOT": root, "TRUSTED_TARGETS": reference_json("1.targets.json"),
        "ONLINE_KEY": online,
    });
    support::run_python(
        "reference_settings.py",
        &[&SETTINGS_DB.to_string()],
        &serde_json::to_vec(&settings).unwrap(),
    );
    RedisSettings::connect(&url).await.unwrap()
}

/// The reference's schema (its alembic DDL) and the rows its bootstrap inserted.
async fn reference_database() -> PgIndex {
    let url = support::fresh_postgres_db("continue").await;
    let mut c = support::create_reference_schema(&url).await;
    sqlx::raw_sql(
        "INSERT INTO rstuf_target_roles (rolename, expires, version, active, last_update) VALUES \
         ('bins-0', '2026-11-26 01:42:45', 1, true, '2026-11-25 01:42:45.1'), \
         ('bins-1', '2026-11-26 01:42:45', 1, true, '2026-11-25 01:42:45.1')",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let index = PgIndex::connect(&url).await.unwrap();
    assert_eq!(index.ensure_schema().await.unwrap(), SchemaState::Current);
    index
}

fn artifact(i: usize) -> Value {
    json!({"path": format!("releases/{i}/pkg-{i}.whl"),
           "info": {"length": 100 + i, "hashes": {"sha256": format!("{i:064x}")}}})
}

fn expected(range: std::ops::Range<usize>) -> BTreeMap<String, Value> {
    range
        .map(|i| {
            let a = artifact(i);
            (
                a["path"].as_str().unwrap().to_string(),
                json!({"length": a["info"]["length"], "hashes": a["info"]["hashes"]}),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reference_repository_is_continued_without_clients_noticing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    std::fs::create_dir(&storage).unwrap();
    let mut reference_files = BTreeMap::new();
    for entry in std::fs::read_dir(reference_dir()).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        std::fs::write(storage.join(entry.file_name()), &bytes).unwrap();
        reference_files.insert(entry.file_name(), bytes);
    }
    // Just after the reference's bootstrap; the client checks expiry before the fixture root
    // expires (2026-05-01), which every file, old or new, outlives.
    let start = Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap();
    let client_time = "2026-04-30T00:00:00Z";
    let clock = Arc::new(FixedClock::at(start));
    let index = Arc::new(reference_database().await);
    let ports = Engine::new(
        Ports::new(
            Arc::new(LocalStore::new(&storage).unwrap()),
            index.clone(),
            Arc::new(reference_settings().await),
            Arc::new(KeyUriSigners::new(Some(support::fixture("keys")))),
            Arc::new(
                RedisLock::connect(
                    "redis://127.0.0.1:6379/0",
                    &format!("RSTUF_TEST_LOCK_continue_{}", std::process::id()),
                    std::time::Duration::from_secs(60),
                )
                .await
                .unwrap(),
            ),
        )
        .with_clock(clock.clone())
        .with_cpu(Arc::new(rstuf_adapters::cpu::BlockingPool::new())),
    );

    let mut oracle = support::PythonOracle::start("client_oracle.py");
    let held = dir.path().join("client-held");
    let mut ask = |client: &std::path::Path,
                   fresh: bool,
                   present: BTreeMap<String, Value>,
                   absent: Vec<String>| {
        let seen = oracle.ask(&json!({
            "repo": storage, "client": client, "fresh": fresh, "time": client_time,
            "present": present, "absent": absent,
        }));
        assert_eq!(seen["ok"], true, "fresh={fresh}: {seen}");
        seen
    };
    // The client trusts the reference's repository first.
    let seen = ask(
        &held,
        true,
        expected(0..0),
        vec![artifact(0)["path"].as_str().unwrap().into()],
    );
    assert_eq!(seen["versions"]["snapshot"], 1);

    let artifacts: Vec<Value> = (0..40).map(artifact).collect();
    let out = add_artifacts(&ports, &json!({"artifacts": artifacts}))
        .await
        .unwrap();
    assert!(out.status(), "{out:?}");
    ask(&held, false, expected(0..40), Vec::new());

    clock.set(start + Duration::hours(3));
    let removed: Vec<String> = (30..40)
        .map(|i| artifact(i)["path"].as_str().unwrap().to_string())
        .collect();
    let out = remove_artifacts(&ports, &json!({"artifacts": removed}))
        .await
        .unwrap();
    assert!(out.status(), "{out:?}");
    // A day after the removal, everything published so far is within the hour before expiry
    // and the scheduled bump renews it.
    clock.set(start + Duration::minutes(26 * 60 + 30));
    let bumped = bump_online_roles(&ports, BumpScope::ExpiringSoon)
        .await
        .unwrap();
    assert_eq!(bumped, ["bins-0", "bins-1"]);
    let seen = ask(&held, false, expected(0..30), removed.clone());
    ask(
        &dir.path().join("client-new"),
        true,
        expected(0..30),
        removed,
    );
    assert!(
        seen["versions"]["snapshot"].as_u64().unwrap() >= 4,
        "{seen}"
    );

    // The reference's versioned files are untouched, the rows follow the files.
    for (name, bytes) in &reference_files {
        if name != "timestamp.json" {
            assert_eq!(
                &std::fs::read(storage.join(name)).unwrap(),
                bytes,
                "{name:?}"
            );
        }
    }
    for role in index.active_roles(None).await.unwrap() {
        let file = storage.join(format!("{}.{}.json", role.version, role.name));
        let md: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(
            md["signed"]["expires"],
            json!(role.expires.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            "{}",
            role.name
        );
        assert!(
            !storage
                .join(format!("{}.{}.json", role.version + 1, role.name))
                .exists()
        );
    }
    // The API reads our settings with dynaconf as it read the reference's.
    let read: Value = serde_json::from_slice(&support::run_python(
        "dynaconf_redis_oracle.py",
        &[
            "DYNACONF",
            &SETTINGS_DB.to_string(),
            "BOOTSTRAP",
            "TRUSTED_TARGETS",
            "NUMBER_OF_DELEGATED_BINS",
        ],
        b"",
    ))
    .unwrap();
    assert_eq!(read["BOOTSTRAP"], REFERENCE_TASK);
    assert_eq!(read["NUMBER_OF_DELEGATED_BINS"], 2);
    assert_eq!(read["TRUSTED_TARGETS"]["signed"]["_type"], "targets");
}
