//! The repository lock `LOCK_TARGETS`, compatible with redis-py's `Lock` (what the reference
//! worker uses): the key holds a random token, taken with `SET key token NX PX ttl` and
//! released with the same compare-and-delete Lua script, so our workers and Python workers
//! exclude each other.
//!
//! Unlike the reference worker's lock, which is never renewed, the lock is renewed while held, with redis-py's
//! `reacquire` script, and a holder can ask whether it still holds the lock before it
//! publishes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;
use rstuf_engine::ports::{LockGuard, PortError, RepoLock};

use crate::error::Context;

/// The lock key the reference worker uses.
pub const LOCK_TARGETS: &str = "LOCK_TARGETS";

const RELEASE: &str = r"
local token = redis.call('get', KEYS[1])
if not token or token ~= ARGV[1] then
    return 0
end
redis.call('del', KEYS[1])
return 1";

const REACQUIRE: &str = r"
local token = redis.call('get', KEYS[1])
if not token or token ~= ARGV[1] then
    return 0
end
redis.call('pexpire', KEYS[1], ARGV[2])
return 1";

/// A redis-py compatible lock.
///
/// Tasks of one process queue for it in order (a fair in-process mutex taken before the Redis
/// key) instead of polling against each other, so one task cannot lose the lock to its
/// neighbours again and again; only other processes are polled against.
#[derive(Clone)]
pub struct RedisLock {
    conn: ConnectionManager,
    key: String,
    ttl: Duration,
    poll: Duration,
    local: Arc<tokio::sync::Mutex<()>>,
}

debug_fields!(RedisLock { key, ttl });

impl RedisLock {
    /// A lock on `key` in the Redis at `url`, that lapses `ttl` after its holder stops
    /// renewing it (the reference's `RSTUF_LOCK_TIMEOUT`, 500 s by default).
    pub async fn connect(url: &str, key: &str, ttl: Duration) -> Result<Self, PortError> {
        let conn = crate::redis_settings::connection(url, "Redis").await?;
        Ok(RedisLock {
            conn,
            key: key.to_string(),
            ttl,
            poll: Duration::from_millis(20),
            local: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().max(1) as u64
    }
}

fn token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("system randomness");
    hex::encode(bytes)
}

#[async_trait]
impl RepoLock for RedisLock {
    async fn acquire(&self) -> Result<Box<dyn LockGuard>, PortError> {
        let local = self.local.clone().lock_owned().await;
        let token = token();
        let mut conn = self.conn.clone();
        loop {
            let set: Option<String> = redis::cmd("SET")
                .arg(&self.key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(self.ttl_ms())
                .query_async(&mut conn)
                .await
                .ctx("taking the repository lock")?;
            if set.is_some() {
                break;
            }
            tokio::time::sleep(self.poll).await;
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (mut conn, key, token, lost) = (
                self.conn.clone(),
                self.key.clone(),
                token.clone(),
                lost.clone(),
            );
            let (ttl_ms, every) = (self.ttl_ms(), (self.ttl / 3).max(Duration::from_millis(10)));
            tokio::spawn(async move {
                let script = Script::new(REACQUIRE);
                loop {
                    tokio::time::sleep(every).await;
                    let renewed: Result<i64, _> = script
                        .key(&key)
                        .arg(&token)
                        .arg(ttl_ms)
                        .invoke_async(&mut conn)
                        .await;
                    if matches!(renewed, Ok(0)) {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            })
        };
        Ok(Box::new(RedisLockGuard {
            conn: self.conn.clone(),
            key: self.key.clone(),
            token,
            lost,
            renewer,
            _local: local,
        }))
    }
}

struct RedisLockGuard {
    conn: ConnectionManager,
    key: String,
    token: String,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
    /// This process's turn; released with the guard.
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for RedisLockGuard {
    fn drop(&mut self) {
        // A guard dropped without `release` (its task was cancelled: time limit, shutdown)
        // stops renewing and releases the lock if it still holds it, so the next writer need
        // not wait for the TTL. What the cancelled task wrote is write-once and unreferenced
        // until a timestamp names it, which it never wrote. Without a runtime the lock lapses
        // after its TTL.
        self.renewer.abort();
        if self.token.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let mut conn = self.conn.clone();
            let key = std::mem::take(&mut self.key);
            let token = std::mem::take(&mut self.token);
            runtime.spawn(async move {
                let _: Result<i64, _> = Script::new(RELEASE)
                    .key(&key)
                    .arg(&token)
                    .invoke_async(&mut conn)
                    .await;
            });
        }
    }
}

#[async_trait]
impl LockGuard for RedisLockGuard {
    async fn still_held(&self) -> Result<bool, PortError> {
        if self.lost.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let mut conn = self.conn.clone();
        let current: Option<String> = redis::cmd("GET")
            .arg(&self.key)
            .query_async(&mut conn)
            .await
            .ctx("checking the repository lock")?;
        Ok(current.as_deref() == Some(self.token.as_str()))
    }

    async fn release(mut self: Box<Self>) -> Result<bool, PortError> {
        self.renewer.abort();
        let mut conn = self.conn.clone();
        let token = std::mem::take(&mut self.token);
        let released: i64 = Script::new(RELEASE)
            .key(&self.key)
            .arg(&token)
            .invoke_async(&mut conn)
            .await
            .ctx("releasing the repository lock")?;
        Ok(released == 1)
    }
}
