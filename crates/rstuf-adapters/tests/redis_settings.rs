//! Repository settings in the real Redis (127.0.0.1:6379), read back by dynaconf's own Redis
//! loader the way the RSTUF API reads them.

use rstuf_adapters::redis_settings::RedisSettings;
use rstuf_engine::ports::SettingsStore;
use rstuf_test_support as support;
use serde_json::{Value, json};

const DB: u32 = 11;

async fn settings(prefix: &str) -> RedisSettings {
    let s = RedisSettings::connect(&format!("redis://127.0.0.1:6379/{DB}"))
        .await
        .expect("Redis on 127.0.0.1:6379 (scripts/services.sh starts it)")
        .with_hash(&format!("{prefix}_MAIN"));
    let client = redis::Client::open(format!("redis://127.0.0.1:6379/{DB}")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}_MAIN"))
        .query_async(&mut conn)
        .await
        .unwrap();
    s
}

#[tokio::test]
async fn settings_round_trip_and_dynaconf_reads_what_we_write() {
    let prefix = format!("RSTUFTEST{}", std::process::id());
    let s = settings(&prefix).await;
    let values = [
        (
            "BOOTSTRAP",
            json!("signing-2144a576f423441cb6f640f57e316e2c"),
        ),
        ("ROOT_EXPIRATION", json!(365)),
        ("TARGETS_ONLINE_KEY", json!(true)),
        ("ROOT_SIGNING", Value::Null),
        (
            "ONLINE_KEY",
            json!({"keytype": "ed25519", "keyval": {"public": "ab"}, "keyid": "k", "x-rstuf-online-key-uri": "fn:k"}),
        ),
        ("DELEGATED_ROLES_NAMES", json!(["bins-0", "bins-1"])),
    ];
    for (k, v) in &values {
        s.set(k, v.clone()).await.unwrap();
    }
    for (k, v) in &values {
        assert_eq!(s.get(k).await.unwrap().as_ref(), Some(v), "{k}");
    }
    assert_eq!(s.get("MISSING").await.unwrap(), None);
    assert_eq!(
        s.raw("ROOT_SIGNING").await.unwrap().as_deref(),
        Some("@none ")
    );
    assert_eq!(
        s.raw("ROOT_EXPIRATION").await.unwrap().as_deref(),
        Some("@int 365")
    );

    let keys: Vec<&str> = values.iter().map(|(k, _)| *k).collect();
    let mut args = vec![prefix.as_str(), "11"];
    args.extend(&keys);
    let out = support::run_python("dynaconf_redis_oracle.py", &args, b"");
    let read: Value = serde_json::from_slice(&out).unwrap();
    for (k, v) in &values {
        assert_eq!(&read[k], v, "dynaconf reads {k}");
    }
}

#[tokio::test]
async fn one_field_writes_never_clobber_other_writers() {
    let prefix = format!("RSTUFTESTB{}", std::process::id());
    let a = settings(&prefix).await;
    let b = RedisSettings::connect(&format!("redis://127.0.0.1:6379/{DB}"))
        .await
        .unwrap()
        .with_hash(&format!("{prefix}_MAIN"));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (a, b) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            a.set(&format!("A_{i}"), json!(i)).await.unwrap();
            b.set(&format!("B_{i}"), json!(i)).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for i in 0..50 {
        assert_eq!(a.get(&format!("A_{i}")).await.unwrap(), Some(json!(i)));
        assert_eq!(a.get(&format!("B_{i}")).await.unwrap(), Some(json!(i)));
    }
}
