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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use rstuf_metadata::keys::Key;
use rstuf_metadata::schema::{
    DelegatedRole, Expires, MetaFile, Metadata, Root, Signature, Signed, Snapshot, Targets,
    Timestamp, Unsigned,
};
use serde_json::Value;

use crate::outcome::TaskError;
use crate::ports::{ArtifactRow, LockGuard, PortErrorKind, Ports, RoleRecord, Signer};
use crate::settings::{self, ONLINE_KEY, TRUSTED_ROOT, TRUSTED_TARGETS};

/// How many versions past an orphan (a file left by an interrupted publication) to try.
const MAX_VERSION_PROBES: u64 = 64;
/// Roles signed and written at once.
pub(crate) const CONCURRENCY: usize = 32;

/// Roles whose artifacts are loaded, signed and written together: a publish or bump of every
/// bin of a large repository holds one chunk's artifacts in memory, not the repository's.
pub(crate) const ROLE_CHUNK: usize = 1024;

/// The online key a root names: the first key of its timestamp role (RSTUF gives the online
/// roles one key).
pub(crate) fn online_key_of(root: &Root) -> Result<(String, Key), String> {
    let keyid = root
        .role("timestamp")
        .and_then(|r| r.keyids.first())
        .cloned()
        .ok_or("The timestamp role has no key")?;
    let key = root
        .keys
        .get(&keyid)
        .cloned()
        .ok_or_else(|| format!("The online key {keyid} is not in the root keys"))?;
    Ok((keyid, key))
}

/// The online key and its signer.
#[derive(Debug, Clone)]
pub(crate) struct Online {
    pub keyid: String,
    pub signer: Arc<dyn Signer>,
}

impl Online {
    /// The online key from `ONLINE_KEY`, or else from the timestamp role of `TRUSTED_ROOT`.
    pub async fn load(ports: &Ports) -> Result<Online, TaskError> {
        let (keyid, key) = match ports.settings.get(ONLINE_KEY).await? {
            Some(Value::Object(mut map)) => {
                let keyid = match map.remove("keyid") {
                    Some(Value::String(id)) => id,
                    _ => return Err(TaskError::Metadata("ONLINE_KEY has no keyid".into())),
                };
                let key: Key = serde_json::from_value(Value::Object(map))
                    .map_err(|e| TaskError::Metadata(format!("ONLINE_KEY: {e}")))?;
                (keyid, key)
            }
            _ => {
                let root = ports.settings.get(TRUSTED_ROOT).await?.ok_or_else(|| {
                    TaskError::Metadata("neither ONLINE_KEY nor TRUSTED_ROOT is set".into())
                })?;
                let root = Metadata::<Root>::from_value(root)
                    .map_err(|e| TaskError::Metadata(format!("TRUSTED_ROOT: {e}")))?;
                online_key_of(&root.signed).map_err(TaskError::Metadata)?
            }
        };
        let signer = ports.signers.resolve(&keyid, &key).await?;
        Ok(Online { keyid, signer })
    }

    /// `signed`, signed with the online key.
    pub async fn sign<T: Signed>(&self, signed: T) -> Result<Metadata<T>, TaskError> {
        Ok(self.sign_stored(signed).await?.0)
    }

    /// `signed`, signed with the online key, with its storage bytes; the payload is converted
    /// to JSON once for both.
    pub async fn sign_stored<T: Signed>(
        &self,
        signed: T,
    ) -> Result<(Metadata<T>, Vec<u8>), TaskError> {
        let unsigned = Unsigned::new(signed).map_err(|e| TaskError::Metadata(e.to_string()))?;
        let sig = self.signer.sign(unsigned.payload()).await?;
        unsigned
            .finish(vec![Signature::new(self.keyid.clone(), &sig)])
            .map_err(|e| TaskError::Metadata(e.to_string()))
    }

    /// Whether the online key alone meets the threshold of a role delegated with these keys.
    pub fn meets(&self, keyids: &[String], threshold: u64) -> bool {
        threshold <= 1 && keyids.contains(&self.keyid)
    }
}

/// The storage form of metadata.
pub(crate) fn storage_bytes<T: Signed>(md: &Metadata<T>) -> Result<Vec<u8>, TaskError> {
    md.to_storage_bytes()
        .map_err(|e| TaskError::Metadata(e.to_string()))
}

/// The JSON value of metadata (for settings copies).
pub(crate) fn to_value<T: Signed>(md: &Metadata<T>) -> Result<Value, TaskError> {
    md.to_value()
        .map_err(|e| TaskError::Metadata(e.to_string()))
}

/// `now + days`, at second precision.
pub(crate) fn expires_in(now: DateTime<Utc>, days: u32) -> Expires {
    Expires::at(now + Duration::days(i64::from(days)))
}

/// Reads and parses a stored metadata file.
pub(crate) async fn load<T: Signed>(ports: &Ports, name: &str) -> Result<Metadata<T>, TaskError> {
    let bytes = ports
        .store
        .get(name)
        .await?
        .ok_or_else(|| TaskError::Metadata(format!("{name} is missing from storage")))?;
    Metadata::from_stored_bytes(&bytes).map_err(|e| TaskError::Metadata(format!("{name}: {e}")))
}

/// What clients currently see.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    pub timestamp: Metadata<Timestamp>,
    pub snapshot: Arc<Metadata<Snapshot>>,
    pub targets: Arc<Metadata<Targets>>,
}

/// `<version>.<role>.json`, from the cache when it holds that version, else from storage
/// (and then kept).
async fn cached<T: Signed>(
    ports: &Ports,
    slot: &Mutex<Option<Arc<Metadata<T>>>>,
    role: &str,
    version: u64,
) -> Result<Arc<Metadata<T>>, TaskError> {
    if let Some(md) = slot.lock().expect("cache lock").as_ref()
        && md.signed.version() == version
    {
        return Ok(md.clone());
    }
    let md = Arc::new(load::<T>(ports, &format!("{version}.{role}.json")).await?);
    if md.signed.version() != version {
        return Err(TaskError::Metadata(format!(
            "{version}.{role}.json holds version {}",
            md.signed.version()
        )));
    }
    *slot.lock().expect("cache lock") = Some(md.clone());
    Ok(md)
}

impl Current {
    /// Follows `timestamp.json` to its snapshot and targets.
    pub async fn load(ports: &Ports) -> Result<Current, TaskError> {
        let timestamp: Metadata<Timestamp> = load(ports, "timestamp.json").await?;
        let snapshot_version = timestamp
            .signed
            .snapshot_meta()
            .map(|m| m.version)
            .ok_or_else(|| TaskError::Metadata("timestamp.json names no snapshot".into()))?;
        let snapshot = cached(ports, &ports.cache.snapshot, "snapshot", snapshot_version).await?;
        let targets_version = snapshot
            .signed
            .role_version("targets")
            .ok_or_else(|| TaskError::Metadata("the snapshot names no targets".into()))?;
        let targets = cached(ports, &ports.cache.targets, "targets", targets_version).await?;
        Ok(Current {
            timestamp,
            snapshot,
            targets,
        })
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
/// A custom role without its setting falls back to its `x-rstuf-expire-policy`. Each setting
/// is read once per task (16,384 bins share one).
pub(crate) struct RoleDays<'a> {
    ports: &'a Ports,
    current: &'a Current,
    read: std::collections::HashMap<String, u32>,
}

impl<'a> RoleDays<'a> {
    pub fn new(ports: &'a Ports, current: &'a Current) -> Self {
        RoleDays {
            ports,
            current,
            read: std::collections::HashMap::new(),
        }
    }

    pub async fn of(&mut self, name: &str) -> Result<u32, TaskError> {
        let is_bin = self
            .current
            .targets
            .signed
            .delegations
            .as_ref()
            .and_then(|d| d.succinct_roles.as_ref())
            .is_some_and(|s| s.is_delegated_role(name));
        let (key, default) = if is_bin {
            ("BINS_EXPIRATION".to_string(), 1)
        } else {
            let policy = self
                .current
                .custom_role(name)
                .and_then(|r| crate::roles::expire_policy(r).ok())
                .unwrap_or(1);
            (crate::roles::expiration_key(name), policy)
        };
        if let Some(days) = self.read.get(&key) {
            return Ok(*days);
        }
        let days = settings::days(self.ports.settings.as_ref(), &key, default).await?;
        self.read.insert(key, days);
        Ok(days)
    }
}

/// A new version of a delegated role to publish: its content; the publication sets version
/// and expiry.
#[derive(Debug)]
pub(crate) struct RoleUpdate {
    pub name: String,
    pub signed: Targets,
    pub expires: Expires,
}

/// What a finished publication wrote.
#[derive(Debug, Default)]
pub(crate) struct Published {
    /// The new snapshot version, if one was written.
    pub snapshot: Option<u64>,
    /// Whether a new timestamp was written.
    pub timestamp: bool,
}

/// A set of new versions being published (see the module documentation).
pub(crate) struct Publication<'a> {
    ports: &'a Ports,
    online: &'a Online,
    current: &'a Current,
    now: DateTime<Utc>,
    meta: BTreeMap<String, MetaFile>,
    records: Vec<RoleRecord>,
    targets: Option<Metadata<Targets>>,
}

impl<'a> Publication<'a> {
    pub fn new(ports: &'a Ports, online: &'a Online, current: &'a Current) -> Self {
        Publication {
            ports,
            online,
            current,
            now: ports.clock.now(),
            meta: current.snapshot.signed.meta.clone(),
            records: Vec::new(),
            targets: None,
        }
    }

    /// The time the publication started.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Whether anything besides snapshot and timestamp was written.
    pub fn changed(&self) -> bool {
        !self.records.is_empty() || self.targets.is_some()
    }

    /// Signs the next version of each role (several signatures at a time) and writes them as
    /// one batch. A name already taken (left by an interrupted run) sends that role to the
    /// next free version; the others keep what the batch wrote.
    pub async fn publish_roles(&mut self, updates: Vec<RoleUpdate>) -> Result<(), TaskError> {
        let ports = self.ports;
        let online = self.online;
        let signed: Vec<(RoleUpdate, u64, Arc<Vec<u8>>)> =
            stream::iter(updates.into_iter().map(|mut u| {
                let version = self
                    .meta
                    .get(&format!("{}.json", u.name))
                    .map_or(1, |m| m.version + 1);
                async move {
                    u.signed.set_version_and_expires(version, u.expires);
                    let (_, bytes) = online.sign_stored(u.signed.clone()).await?;
                    let bytes = Arc::new(bytes);
                    Ok::<_, TaskError>((u, version, bytes))
                }
            }))
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let batch: Vec<(String, Arc<Vec<u8>>)> = signed
            .iter()
            .map(|(u, version, bytes)| (format!("{version}.{}.json", u.name), bytes.clone()))
            .collect();
        let mut written: Vec<(String, u64, Expires)> = Vec::with_capacity(signed.len());
        match ports.store.put_versioned_many(&batch).await {
            Ok(()) => {
                written.extend(signed.into_iter().map(|(u, v, _)| (u.name, v, u.expires)));
            }
            Err(e) if e.kind == PortErrorKind::Conflict => {
                for ((u, version, bytes), (name, _)) in signed.into_iter().zip(&batch) {
                    match ports.store.put_versioned(name, &bytes).await {
                        Ok(()) => written.push((u.name, version, u.expires)),
                        Err(e) if e.kind == PortErrorKind::Conflict => {
                            let (version, _) = write_next_version(
                                ports,
                                online,
                                &u.name,
                                u.signed,
                                version + 1,
                                u.expires,
                            )
                            .await?;
                            written.push((u.name, version, u.expires));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        for (name, version, expires) in written {
            self.meta
                .insert(format!("{name}.json"), MetaFile::version_only(version));
            self.records.push(RoleRecord {
                name,
                version,
                expires: expires.0,
                active: true,
            });
        }
        Ok(())
    }

    /// Writes a delegated role's metadata signed elsewhere (offline keys), at its own version.
    /// It must be the next version of the role; the name must be free or hold these bytes.
    /// `Ok(Err)` is a refusal text.
    pub async fn publish_presigned(
        &mut self,
        name: &str,
        md: &Metadata<Targets>,
    ) -> Result<Result<(), String>, TaskError> {
        let version = md.signed.version;
        let next = self
            .meta
            .get(&format!("{name}.json"))
            .map_or(1, |m| m.version + 1);
        if version != next {
            return Ok(Err(format!(
                "{name} v{version} is not the next version of {name} (v{next})"
            )));
        }
        let bytes = storage_bytes(md)?;
        match self
            .ports
            .store
            .put_versioned(&format!("{version}.{name}.json"), &bytes)
            .await
        {
            Ok(()) => {}
            Err(e) if e.kind == PortErrorKind::Conflict => {
                return Ok(Err(format!(
                    "{version}.{name}.json already holds other metadata"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.meta
            .insert(format!("{name}.json"), MetaFile::version_only(version));
        self.records.push(RoleRecord {
            name: name.to_string(),
            version,
            expires: md.signed.expires.0,
            active: true,
        });
        Ok(Ok(()))
    }

    /// Records a deleted delegated role: its row becomes inactive. Its last version stays in
    /// the snapshot (clients refuse a snapshot that drops a role it listed).
    pub fn deactivate(&mut self, mut record: RoleRecord) {
        record.active = false;
        self.records.push(record);
    }

    /// Signs and writes the next version of targets.
    pub async fn publish_targets(&mut self, signed: Targets, days: u32) -> Result<(), TaskError> {
        let start = self
            .meta
            .get("targets.json")
            .map_or(1, |m| m.version + 1)
            .max(self.current.targets.signed.version + 1);
        let expires = expires_in(self.now, days);
        let (version, md) =
            write_next_version(self.ports, self.online, "targets", signed, start, expires).await?;
        self.meta
            .insert("targets.json".into(), MetaFile::version_only(version));
        *self.ports.cache.targets.lock().expect("cache lock") = Some(Arc::new(md.clone()));
        self.targets = Some(md);
        Ok(())
    }

    /// Writes the snapshot (when anything changed or `force_snapshot`) and the timestamp
    /// (when the snapshot changed or `force_timestamp`), then records role versions and
    /// `published` rows in the index. The timestamp is written only while `guard` holds.
    pub async fn finish(
        mut self,
        guard: &dyn LockGuard,
        force_snapshot: bool,
        force_timestamp: bool,
        published: &[ArtifactRow],
    ) -> Result<Published, TaskError> {
        let settings = self.ports.settings.as_ref();
        let mut out = Published::default();
        let mut snapshot_version = self.current.snapshot.signed.version;
        if self.changed() || force_snapshot {
            let days = settings::days(settings, "SNAPSHOT_EXPIRATION", 1).await?;
            let expires = expires_in(self.now, days);
            // The meta map is not needed after this (16,385 entries for 16,384 bins: moved,
            // not copied).
            let snapshot = Snapshot::new(0, expires, std::mem::take(&mut self.meta));
            let (version, md) = write_next_version(
                self.ports,
                self.online,
                "snapshot",
                snapshot,
                snapshot_version + 1,
                expires,
            )
            .await?;
            *self.ports.cache.snapshot.lock().expect("cache lock") = Some(Arc::new(md));
            snapshot_version = version;
            out.snapshot = Some(version);
        }
        if out.snapshot.is_some() || force_timestamp {
            let days = settings::days(settings, "TIMESTAMP_EXPIRATION", 1).await?;
            let timestamp = Timestamp::new(
                self.current.timestamp.signed.version + 1,
                expires_in(self.now, days),
                snapshot_version,
            );
            let (_, timestamp) = self.online.sign_stored(timestamp).await?;
            if !guard.still_held().await? {
                return Err(TaskError::LockLost);
            }
            self.ports.store.put_timestamp(&timestamp).await?;
            out.timestamp = true;
        }
        if !self.records.is_empty() || !published.is_empty() {
            self.ports
                .index
                .commit_publication(&self.records, published)
                .await?;
        }
        if let Some(targets) = &self.targets {
            settings.set(TRUSTED_TARGETS, to_value(targets)?).await?;
        }
        Ok(out)
    }
}

/// Writes `signed` as version `start`, or the first later version whose name is free.
async fn write_next_version<T: Signed>(
    ports: &Ports,
    online: &Online,
    role: &str,
    mut signed: T,
    start: u64,
    expires: Expires,
) -> Result<(u64, Metadata<T>), TaskError> {
    let mut version = start;
    loop {
        signed.set_version_and_expires(version, expires);
        let (md, bytes) = online.sign_stored(signed).await?;
        match ports
            .store
            .put_versioned(&format!("{version}.{role}.json"), &bytes)
            .await
        {
            Ok(()) => return Ok((version, md)),
            Err(e) if e.kind == PortErrorKind::Conflict && version < start + MAX_VERSION_PROBES => {
                // Taken back from the signed document instead of copied before each attempt.
                signed = md.signed;
                version += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
