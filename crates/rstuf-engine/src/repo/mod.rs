//! The published repository as the engine sees it, and the one way new versions get
//! published ([`Publication`]), shared by publish, the scheduled bump and the forced update.
//!
//! The current state is what clients see: `timestamp.json`, the snapshot it names and the
//! targets the snapshot names. Versions of delegated roles come from that snapshot, never from
//! listing storage. A publication writes leaves first (delegated roles, then targets), then the
//! snapshot, checks the repository lock is still held, writes the timestamp, and only then
//! records the new versions (and the artifacts they cover) in the index, in one transaction.
//!
//! Version numbers are never reused: a versioned name is write-once, and when a crashed or
//! stalled earlier attempt left a file under the next version, the write is refused
//! ([`PortErrorKind::Conflict`]) and the publication moves on to the version after it.

mod current;
mod encode;
mod online;
mod publication;
mod write;

use chrono::{DateTime, Duration, Utc};
use rstuf_metadata::schema::{Expires, Metadata, Signed, Targets};
use serde_json::Value;

use crate::engine::Engine;
use crate::outcome::TaskError;

pub(crate) use current::{Current, RoleDays};
pub(crate) use online::{Online, online_key_of, online_key_setting};
pub(crate) use publication::{Publication, Resign, RoleUpdate, SignedRole};

/// Roles whose artifacts are loaded, signed and written together: a publish or bump of every
/// bin of a large repository holds one chunk's artifacts in memory, not the repository's.
pub(crate) const ROLE_CHUNK: usize = 1024;

/// The storage form of metadata.
pub(crate) fn storage_bytes<T: Signed>(md: &Metadata<T>) -> Result<Vec<u8>, TaskError> {
    md.to_storage_bytes()
        .map_err(|e| TaskError::encoding(T::TYPE, e))
}

/// The JSON value of metadata (for settings copies).
pub(crate) fn to_value<T: Signed>(md: &Metadata<T>) -> Result<Value, TaskError> {
    md.to_value().map_err(|e| TaskError::encoding(T::TYPE, e))
}

/// Stores each role's metadata that waits for offline signatures in its `<ROLE>_SIGNING`
/// setting, where signing events find it.
pub(crate) async fn store_pending(
    engine: &Engine,
    pending: &[(String, Metadata<Targets>)],
) -> Result<(), TaskError> {
    for (name, md) in pending {
        engine
            .settings
            .set(&crate::roles::signing_key(name), to_value(md)?)
            .await?;
    }
    Ok(())
}

/// `now + days`, at second precision.
pub(crate) fn expires_in(now: DateTime<Utc>, days: u32) -> Expires {
    Expires::at(now + Duration::days(i64::from(days)))
}

/// Reads and parses a stored metadata file.
pub(crate) async fn load<T: Signed>(engine: &Engine, name: &str) -> Result<Metadata<T>, TaskError> {
    let bytes = engine
        .store
        .get(name)
        .await?
        .ok_or_else(|| TaskError::Missing { file: name.into() })?;
    Metadata::from_stored_bytes(&bytes).map_err(|e| TaskError::unreadable(name, e))
}
