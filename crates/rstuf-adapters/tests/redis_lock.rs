//! The repository lock against the real Redis, alone and against redis-py's `Lock`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rstuf_adapters::redis_lock::RedisLock;
use rstuf_engine::ports::RepoLock;
use rstuf_test_support as support;

const URL: &str = "redis://127.0.0.1:6379/0";

/// A lock on this test's own key, with `ttl`.
async fn lock_for(test: &str, ttl: Duration) -> (String, RedisLock) {
    let key = name(test);
    let lock = RedisLock::connect(URL, &key, ttl).await.unwrap();
    (key, lock)
}

fn name(test: &str) -> String {
    format!("RSTUF_TEST_LOCK_{test}_{}", std::process::id())
}

fn python(args: &[&str]) -> String {
    String::from_utf8(support::run_python("lock_oracle.py", args, b""))
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_one_holder_at_a_time() {
    let lock = RedisLock::connect(URL, &name("exclusive"), Duration::from_secs(5))
        .await
        .unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (lock, inside, max) = (lock.clone(), inside.clone(), max.clone());
        tasks.push(tokio::spawn(async move {
            let guard = lock.acquire().await.unwrap();
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            assert!(guard.release().await.unwrap());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(max.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_rust_holders_exclude_each_other() {
    let (key, lock) = lock_for("interop", Duration::from_secs(5)).await;
    // Rust holds: redis-py cannot take it; after release it can.
    let guard = lock.acquire().await.unwrap();
    assert_eq!(python(&["try", &key]), "false");
    assert!(guard.release().await.unwrap());
    assert_eq!(python(&["try", &key]), "true");
    // redis-py holds for 600 ms: we wait until it lapses.
    assert_eq!(python(&["take", &key, "600"]), "taken");
    let start = Instant::now();
    let guard = lock.acquire().await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "acquired while redis-py held the lock"
    );
    assert!(guard.release().await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_lock_is_renewed_and_a_stolen_one_is_noticed() {
    let (key, lock) = lock_for("renew", Duration::from_millis(300)).await;
    let guard = lock.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        guard.still_held().await.unwrap(),
        "renewal kept the lock past its TTL"
    );
    assert_eq!(python(&["try", &key]), "false");

    // Someone else takes the key (as after a stall longer than the TTL).
    let client = redis::Client::open(URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("other-token")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!guard.still_held().await.unwrap());
    assert!(
        !guard.release().await.unwrap(),
        "release must not delete another holder's lock"
    );
    let v: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v.as_deref(), Some("other-token"));
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}
