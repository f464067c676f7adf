//! The lease that makes the scheduled bump of online roles run once per schedule slot across
//! any number of workers, Python or Rust.
//!
//! Python workers guard the bump with `SET BOR locked NX EX 600` and `DEL BOR` at the end; that
//! excludes overlapping runs but not a second run in the same slot once the first ended. We
//! take the same `BOR` key (so Python and Rust workers never bump at once) with a unique
//! token, a short TTL renewed while the bump runs (a crashed holder blocks for one TTL, not
//! ten minutes), and record the last slot done under [`LAST_SLOT`]: a claim for a slot at or
//! before it is refused, so every slot is bumped once. Claim, renewal and finish are Lua
//! scripts, atomic on the server.

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;
use rstuf_consumer::schedule::Lease;
use rstuf_engine::ports::PortError;

use crate::redis_settings::redis_error;

/// The reference worker's bump guard.
pub const BOR: &str = "BOR";
/// The last schedule slot bumped (its start, in Unix seconds).
pub const LAST_SLOT: &str = "rstuf-worker:bump-online-roles:last-slot";

const CLAIM: &str = r"
local last = tonumber(redis.call('get', KEYS[2]) or '-1')
if last >= tonumber(ARGV[3]) then return 0 end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return -1";

const RENEW: &str = r"
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0";

const FINISH: &str = r"
local last = tonumber(redis.call('get', KEYS[2]) or '-1')
if last < tonumber(ARGV[2]) then
    redis.call('set', KEYS[2], ARGV[2], 'EX', 604800)
end
if redis.call('get', KEYS[1]) == ARGV[1] then
    redis.call('del', KEYS[1])
end
return 1";

pub use rstuf_consumer::schedule::Claim;

/// The bump lease in db 0 of `RSTUF_REDIS_SERVER`, next to `LOCK_TARGETS`.
#[derive(Clone)]
pub struct SlotLease {
    conn: ConnectionManager,
    ttl: Duration,
}

debug_fields!(SlotLease { ttl });

impl SlotLease {
    /// The lease in milliseconds, as Redis takes it (a signed 64-bit count at most).
    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .min(i64::MAX as u64 / 2)
    }

    /// Connects to the lock database; a holder keeps the lease for `ttl` between renewals.
    pub async fn connect(url: &str, ttl: Duration) -> Result<Self, PortError> {
        let conn = crate::redis_settings::connection(url, "the lock database").await?;
        Ok(SlotLease { conn, ttl })
    }
}

#[async_trait]
impl Lease for SlotLease {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn claim(&self, slot: u64) -> Result<Claim, PortError> {
        let token = format!("rstuf-worker-{}", uuid::Uuid::new_v4().simple());
        let mut conn = self.conn.clone();
        let answer: i64 = Script::new(CLAIM)
            .key(BOR)
            .key(LAST_SLOT)
            .arg(&token)
            .arg(self.ttl_ms())
            .arg(slot)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error("claiming the bump slot", e))?;
        Ok(match answer {
            1 => Claim::Won(token),
            0 => Claim::Done,
            _ => Claim::Busy,
        })
    }

    async fn renew(&self, token: &str) -> Result<bool, PortError> {
        let mut conn = self.conn.clone();
        let renewed: i64 = Script::new(RENEW)
            .key(BOR)
            .arg(token)
            .arg(self.ttl_ms())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error("renewing the bump lease", e))?;
        Ok(renewed == 1)
    }

    async fn finish(&self, token: &str, slot: u64) -> Result<(), PortError> {
        let mut conn = self.conn.clone();
        let _: i64 = Script::new(FINISH)
            .key(BOR)
            .key(LAST_SLOT)
            .arg(token)
            .arg(slot)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error("finishing the bump slot", e))?;
        Ok(())
    }
}
