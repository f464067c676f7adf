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
use crate::error::{Context, ServiceError};

/// The hash dynaconf uses for the `main` environment.
pub const SETTINGS_HASH: &str = "DYNACONF_MAIN";

/// Settings in a Redis hash.
#[derive(Clone)]
pub struct RedisSettings {
    conn: ConnectionManager,
    hash: String,
}

debug_fields!(RedisSettings { hash });

/// A Redis error as a port error while doing `context` (the brokers' and the schedule's
/// shorthand for [`Context::ctx`]): connection problems are transient.
pub(crate) fn redis_error(context: &str, e: redis::RedisError) -> PortError {
    e.port(context)
}

/// A connection to the Redis at `url` (`what` names it in errors) that reconnects by itself
/// after Redis restarts.
pub(crate) async fn connection(url: &str, what: &str) -> Result<ConnectionManager, PortError> {
    let client = redis::Client::open(url).with_ctx(|| format!("{what} URL"))?;
    client
        .get_connection_manager()
        .await
        .with_ctx(|| format!("connecting to {what}"))
}

impl RedisSettings {
    /// Connects to `url` (for example `redis://127.0.0.1:6379/1`). The connection reconnects by
    /// itself after Redis restarts.
    pub async fn connect(url: &str) -> Result<Self, PortError> {
        let conn = connection(url, "Redis").await?;
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
            .ctx("reading a setting")
    }
}

#[async_trait]
impl SettingsStore for RedisSettings {
    async fn get(&self, key: &str) -> Result<Option<Value>, PortError> {
        match self.raw(key).await? {
            None => Ok(None),
            Some(raw) => dynaconf::decode(&raw).map(Some).map_err(|e| {
                PortError::caused(PortErrorKind::Other, format_args!("setting {key}"), e)
            }),
        }
    }

    async fn set(&self, key: &str, value: Value) -> Result<(), PortError> {
        let encoded = dynaconf::encode(&value).map_err(|e| {
            PortError::caused(PortErrorKind::Other, format_args!("setting {key}"), e)
        })?;
        let mut conn = self.conn.clone();
        conn.hset::<_, _, _, ()>(&self.hash, key.to_uppercase(), encoded)
            .await
            .ctx("writing a setting")
    }
}
