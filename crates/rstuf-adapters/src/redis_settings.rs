//! Repository settings in Redis: the hash `DYNACONF_MAIN` in db
//! `RSTUF_REDIS_SERVER_DB_REPO_SETTINGS`, shared with the RSTUF API.
//!
//! Each write is one `HSET` of one field, encoded as dynaconf encodes it ([`crate::dynaconf`]).
//! The reference worker (and dynaconf's loader) re-reads the whole hash and writes every field
//! back, which loses concurrent updates; we never do that.

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use rstuf_engine::ports::{PortError, PortErrorKind, SettingsStore};
use serde_json::Value;

use crate::dynaconf;

/// The hash dynaconf uses for the `main` environment.
pub const SETTINGS_HASH: &str = "DYNACONF_MAIN";

/// Settings in a Redis hash.
#[derive(Clone)]
pub struct RedisSettings {
    conn: ConnectionManager,
    hash: String,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Maps a Redis error to a port error: connection problems are transient.
pub(crate) fn redis_error(context: &str, e: redis::RedisError) -> PortError {
    let kind = if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading | redis::ServerErrorKind::TryAgain
            )
        ) {
        PortErrorKind::Transient
    } else {
        PortErrorKind::Other
    };
    PortError::new(kind, format!("{context}: {e}"))
}

impl RedisSettings {
    /// Connects to `url` (for example `redis://127.0.0.1:6379/1`). The connection reconnects by
    /// itself after Redis restarts.
    pub async fn connect(url: &str) -> Result<Self, PortError> {
        let client = redis::Client::open(url).map_err(|e| redis_error("Redis URL", e))?;
        let conn = client
            .get_connection_manager()
            .await
            .map_err(|e| redis_error("connecting to Redis", e))?;
        Ok(RedisSettings {
            conn,
            hash: SETTINGS_HASH.to_string(),
        })
    }

    /// Uses another hash name (tests run side by side in one database).
    pub fn with_hash(mut self, hash: &str) -> Self {
        self.hash = hash.to_string();
        self
    }

    /// The raw stored text of a field, as the API would read it.
    pub async fn raw(&self, key: &str) -> Result<Option<String>, PortError> {
        let mut conn = self.conn.clone();
        conn.hget(&self.hash, key.to_uppercase())
            .await
            .map_err(|e| redis_error("reading a setting", e))
    }
}

#[async_trait]
impl SettingsStore for RedisSettings {
    async fn get(&self, key: &str) -> Result<Option<Value>, PortError> {
        match self.raw(key).await? {
            None => Ok(None),
            Some(raw) => dynaconf::decode(&raw)
                .map(Some)
                .map_err(|e| PortError::new(PortErrorKind::Other, format!("setting {key}: {e}"))),
        }
    }

    async fn set(&self, key: &str, value: Value) -> Result<(), PortError> {
        let encoded = dynaconf::encode(&value)
            .map_err(|e| PortError::new(PortErrorKind::Other, format!("setting {key}: {e}")))?;
        let mut conn = self.conn.clone();
        conn.hset::<_, _, _, ()>(&self.hash, key.to_uppercase(), encoded)
            .await
            .map_err(|e| redis_error("writing a setting", e))
    }
}
