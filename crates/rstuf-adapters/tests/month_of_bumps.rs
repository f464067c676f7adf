//! A month of scheduled bumps on the real adapters (PostgreSQL index, Redis settings and lock,
//! local directory, key-file signer), with the clock moved forward: python-tuf's ngclient,
//! refreshing at the worst moments (just before the next bump) never sees expired metadata.

use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use rstuf_adapters::local_store::LocalStore;
use rstuf_adapters::postgres::PgIndex;
use rstuf_adapters::redis_lock::RedisLock;
use rstuf_adapters::redis_settings::RedisSettings;
use rstuf_adapters::signers::KeyUriSigners;
use rstuf_engine::Engine;
use rstuf_engine::artifacts::add_artifacts;
use rstuf_engine::bootstrap::bootstrap;
use rstuf_engine::bump::{BumpScope, bump_online_roles};
use rstuf_engine::ports::Ports;
use rstuf_engine::testing::FixedClock;
use rstuf_test_support as support;
use serde_json::{Value, json};

/// This test's Redis database for repository settings.
const SETTINGS_DB: u32 = 14;

async fn settings() -> RedisSettings {
    let url = format!("redis://127.0.0.1:6379/{SETTINGS_DB}");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
    RedisSettings::connect(&url).await.unwrap()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread")]
async fn python_tuf_never_sees_expired_metadata_over_thirty_days_of_bumps() {
    let start = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
    let clock = Arc::new(FixedClock::at(start));
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let index = PgIndex::connect(&support::fresh_postgres_db("month").await)
        .await
        .unwrap();
    index.ensure_schema().await.unwrap();
    let lock_key = format!("RSTUF_TEST_LOCK_month_{}", std::process::id());
    let ports = Engine::new(
        Ports::new(
            Arc::new(LocalStore::new(&storage).unwrap()),
            Arc::new(index),
            Arc::new(settings().await),
            Arc::new(KeyUriSigners::new(Some(support::fixture("keys")))),
            Arc::new(
                RedisLock::connect(
                    "redis://127.0.0.1:6379/0",
                    &lock_key,
                    std::time::Duration::from_secs(60),
                )
                .await
                .unwrap(),
            ),
        )
        .with_clock(clock.clone())
        .with_cpu(Arc::new(rstuf_adapters::cpu::BlockingPool::new())),
    );
    ports
        .settings
        .set("BOOTSTRAP", json!("pre-month"))
        .await
        .unwrap();
    let payload = support::fresh_bootstrap_payload("bootstrap/payload_bins.json", start, 365);
    let out = bootstrap(&ports, &payload, "month").await.unwrap();
    assert!(out.status(), "{out:?}");
    // Bins outlive snapshot and timestamp (1 day): the reference worker let those expire.
    ports
        .settings
        .set("BINS_EXPIRATION", json!(7))
        .await
        .unwrap();
    ports
        .settings
        .set("SNAPSHOT_EXPIRATION", json!(3))
        .await
        .unwrap();
    let artifact = json!({"path": "dists/keep.tar.gz",
        "info": {"length": 4242, "hashes": {"sha256": "ab".repeat(32)}}});
    let out = add_artifacts(&ports, &json!({"artifacts": [artifact]}))
        .await
        .unwrap();
    assert!(out.status(), "{out:?}");
    let present =
        json!({"dists/keep.tar.gz": {"length": 4242, "hashes": {"sha256": "ab".repeat(32)}}});

    let mut oracle = support::PythonOracle::start("client_oracle.py");
    let client = dir.path().join("client");
    let mut ask = |fresh: bool, at: DateTime<Utc>| -> Value {
        let seen = oracle.ask(&json!({
            "repo": storage, "client": client, "fresh": fresh, "time": rfc3339(at),
            "present": present, "absent": ["dists/other.tar.gz"],
        }));
        assert_eq!(seen["ok"], true, "at {at} (fresh={fresh}): {seen}");
        seen
    };
    ask(true, start);

    // Celery beat runs the bump every 5 minutes; we step 50, which the 1-hour window covers.
    let step = Duration::minutes(50);
    let mut at = start;
    let mut bumped = Vec::new();
    let mut timestamps = std::collections::BTreeSet::new();
    while at < start + Duration::days(30) {
        at += step;
        clock.set(at);
        bumped.extend(
            bump_online_roles(&ports, BumpScope::ExpiringSoon)
                .await
                .unwrap(),
        );
        // Just before the next run: the latest a client can meet this state.
        let seen = ask(false, at + step - Duration::seconds(1));
        timestamps.insert(seen["versions"]["timestamp"].as_u64().unwrap());
        if (at - start).num_hours() % 24 == 0 {
            ask(true, at);
        }
    }
    // Bins are re-signed about weekly, the timestamp about daily.
    let bins = bumped.iter().filter(|r| r.starts_with("bins-")).count();
    assert!((4 * 4..=4 * 5).contains(&bins), "{bumped:?}");
    assert!(timestamps.len() >= 30, "{timestamps:?}");
}
