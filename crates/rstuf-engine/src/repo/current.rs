//! What clients currently see (timestamp, snapshot, targets), read through the metadata
//! cache, and the day counts of delegated roles.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use rstuf_metadata::schema::{DelegatedRole, Metadata, Signed, Snapshot, Targets, Timestamp};

use super::{Online, load};
use crate::engine::Engine;
use crate::outcome::{Inconsistency, SettingProblem, TaskError};
use crate::settings;

/// What clients currently see.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    pub timestamp: Metadata<Timestamp>,
    pub snapshot: Arc<Metadata<Snapshot>>,
    pub targets: Arc<Metadata<Targets>>,
}

/// Puts `md` in `slot` unless the slot holds a newer version.
pub(crate) fn keep<T: Signed>(slot: &Mutex<Option<Arc<Metadata<T>>>>, md: Arc<Metadata<T>>) {
    let mut slot = slot.lock().expect("cache lock");
    if slot
        .as_ref()
        .is_none_or(|kept| kept.signed.version() <= md.signed.version())
    {
        *slot = Some(md);
    }
}

/// `<version>.<role>.json`, from the cache when it holds that version, else from storage
/// (and then kept, unless the cache holds a newer version).
pub(super) async fn cached<T: Signed>(
    engine: &Engine,
    slot: &Mutex<Option<Arc<Metadata<T>>>>,
    role: &str,
    version: u64,
) -> Result<Arc<Metadata<T>>, TaskError> {
    if let Some(md) = slot.lock().expect("cache lock").as_ref()
        && md.signed.version() == version
    {
        return Ok(md.clone());
    }
    let md = Arc::new(load::<T>(engine, &format!("{version}.{role}.json")).await?);
    if md.signed.version() != version {
        return Err(TaskError::Inconsistent {
            file: format!("{version}.{role}.json"),
            problem: Inconsistency::HoldsVersion(md.signed.version()),
        });
    }
    keep(slot, md.clone());
    Ok(md)
}

/// The snapshot version `timestamp` names.
fn snapshot_version(timestamp: &Metadata<Timestamp>) -> Result<u64, TaskError> {
    timestamp
        .signed
        .snapshot_meta()
        .map(|m| m.version)
        .ok_or_else(|| TaskError::Inconsistent {
            file: "timestamp.json".into(),
            problem: Inconsistency::NamesNo("snapshot"),
        })
}

/// `<version>.snapshot.json` and the targets version it names (noted in the cache).
pub(super) async fn snapshot_at(
    engine: &Engine,
    version: u64,
) -> Result<(Arc<Metadata<Snapshot>>, u64), TaskError> {
    let snapshot = cached(engine, &engine.cache.snapshot, "snapshot", version).await?;
    let targets =
        snapshot
            .signed
            .role_version("targets")
            .ok_or_else(|| TaskError::Inconsistent {
                file: format!("{version}.snapshot.json"),
                problem: Inconsistency::NamesNo("targets"),
            })?;
    engine.cache.note_targets_version(version, targets);
    Ok((snapshot, targets))
}

impl Current {
    /// Follows `timestamp.json` to its snapshot and targets.
    pub async fn load(engine: &Engine) -> Result<Current, TaskError> {
        let timestamp: Metadata<Timestamp> = load(engine, "timestamp.json").await?;
        let (snapshot, targets_version) =
            snapshot_at(engine, snapshot_version(&timestamp)?).await?;
        let targets = cached(engine, &engine.cache.targets, "targets", targets_version).await?;
        Ok(Current {
            timestamp,
            snapshot,
            targets,
        })
    }

    /// The targets `timestamp.json` leads to, without the snapshot when the cache knows which
    /// targets version it names (what an add or remove task needs to find artifacts' roles).
    pub async fn targets(engine: &Engine) -> Result<Arc<Metadata<Targets>>, TaskError> {
        let timestamp: Metadata<Timestamp> = load(engine, "timestamp.json").await?;
        let snapshot_version = snapshot_version(&timestamp)?;
        let targets_version = match engine.cache.targets_version_of(snapshot_version) {
            Some(version) => version,
            None => snapshot_at(engine, snapshot_version).await?.1,
        };
        cached(engine, &engine.cache.targets, "targets", targets_version).await
    }

    /// The custom delegated role `name`, if targets delegates it.
    pub fn custom_role(&self, name: &str) -> Option<&DelegatedRole> {
        self.targets
            .signed
            .delegations
            .as_ref()?
            .roles
            .as_ref()?
            .iter()
            .find(|r| r.name == name)
    }

    /// Whether the online key alone can publish delegated role `name`; `None` when targets
    /// does not delegate it.
    pub fn online_role(&self, online: &Online, name: &str) -> Option<bool> {
        let delegation = self.targets.signed.delegations.as_ref()?.delegation(name)?;
        Some(online.meets(delegation.keyids, delegation.threshold))
    }
}

/// Days a role's new versions stay valid: `<ROLE>_EXPIRATION`, or for bins `BINS_EXPIRATION`.
/// A custom role without its setting falls back to its `x-rstuf-expire-policy`. Every
/// setting a task needs is read at once, before the task writes anything, so a failing read
/// never leaves a publication half-written; each is read once (16,384 bins share one).
pub(crate) struct RoleDays<'a> {
    current: &'a Current,
    read: HashMap<String, u32>,
}

impl<'a> RoleDays<'a> {
    /// Reads the day counts of the roles `names` (as `current` delegates them).
    pub async fn read(
        engine: &Engine,
        current: &'a Current,
        names: Vec<&str>,
    ) -> Result<Self, TaskError> {
        let mut days = RoleDays {
            current,
            read: HashMap::new(),
        };
        for name in names {
            let (key, default) = days.setting_of(name);
            if let Entry::Vacant(slot) = days.read.entry(key) {
                let value = settings::days(engine.settings.as_ref(), slot.key(), default).await?;
                slot.insert(value);
            }
        }
        Ok(days)
    }

    /// The days of role `name`, which must be one of the names read.
    pub fn of(&self, name: &str) -> Result<u32, TaskError> {
        let (key, _) = self.setting_of(name);
        self.read
            .get(&key)
            .copied()
            .ok_or_else(|| TaskError::setting(key, SettingProblem::NotReadBeforehand))
    }

    /// The setting holding the days of role `name`, and the days when it is unset.
    fn setting_of(&self, name: &str) -> (String, u32) {
        let is_bin = self
            .current
            .targets
            .signed
            .delegations
            .as_ref()
            .and_then(|d| d.succinct_roles.as_ref())
            .is_some_and(|s| s.is_delegated_role(name));
        if is_bin {
            ("BINS_EXPIRATION".to_string(), 1)
        } else {
            let policy = self
                .current
                .custom_role(name)
                .and_then(|r| crate::roles::expire_policy(r).ok())
                .unwrap_or(1);
            (crate::roles::expiration_key(name), policy)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MetadataCache;
    use crate::repo::expires_in;

    fn targets(version: u64) -> Arc<Metadata<Targets>> {
        let expires = expires_in(chrono::Utc::now(), 1);
        Arc::new(Metadata::new(Targets::new(version, expires)))
    }

    #[test]
    fn the_cache_keeps_the_newest_version_it_was_given() {
        let cache = MetadataCache::default();
        keep(&cache.targets, targets(2));
        keep(&cache.targets, targets(1));
        let kept = cache.targets.lock().unwrap().clone().unwrap();
        assert_eq!(
            kept.signed.version, 2,
            "an older version does not push it out"
        );
        keep(&cache.targets, targets(3));
        let kept = cache.targets.lock().unwrap().clone().unwrap();
        assert_eq!(kept.signed.version, 3);
    }

    #[test]
    fn the_cache_remembers_the_targets_version_of_recent_snapshots() {
        let cache = MetadataCache::default();
        for snapshot in 1..=40 {
            cache.note_targets_version(snapshot, snapshot / 10 + 1);
        }
        assert_eq!(cache.targets_version_of(40), Some(5));
        assert_eq!(cache.targets_version_of(8), None, "only the last 32");
        assert_eq!(cache.targets_version_of(9), Some(1));
        assert_eq!(cache.targets_version_of(41), None);
        cache.note_targets_version(40, 99);
        assert_eq!(
            cache.targets_version_of(40),
            Some(5),
            "a version's answer never changes"
        );
    }
}
