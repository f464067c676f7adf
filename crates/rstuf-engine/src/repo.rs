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
    DelegatedRole, Expires, MetaFile, Metadata, Root, Signature, Signed, Snapshot, TargetFile,
    Targets, Timestamp, Unsigned, storage_bytes_of,
};
use serde_json::Value;

use crate::outcome::TaskError;
use crate::ports::{ArtifactRow, LockGuard, PortErrorKind, Ports, RoleRecord, Signer, on_cpu};
use crate::settings::{self, ONLINE_KEY, TRUSTED_ROOT, TRUSTED_TARGETS};

/// How many versions past an orphan (a file left by an interrupted publication) to try.
const MAX_VERSION_PROBES: u64 = 64;

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
    keep(slot, md.clone());
    Ok(md)
}

/// The snapshot version `timestamp` names.
fn snapshot_version(timestamp: &Metadata<Timestamp>) -> Result<u64, TaskError> {
    timestamp
        .signed
        .snapshot_meta()
        .map(|m| m.version)
        .ok_or_else(|| TaskError::Metadata("timestamp.json names no snapshot".into()))
}

/// `<version>.snapshot.json` and the targets version it names (noted in the cache).
async fn snapshot_at(
    ports: &Ports,
    version: u64,
) -> Result<(Arc<Metadata<Snapshot>>, u64), TaskError> {
    let snapshot = cached(ports, &ports.cache.snapshot, "snapshot", version).await?;
    let targets = snapshot
        .signed
        .role_version("targets")
        .ok_or_else(|| TaskError::Metadata("the snapshot names no targets".into()))?;
    ports.cache.note_targets_version(version, targets);
    Ok((snapshot, targets))
}

impl Current {
    /// Follows `timestamp.json` to its snapshot and targets.
    pub async fn load(ports: &Ports) -> Result<Current, TaskError> {
        let timestamp: Metadata<Timestamp> = load(ports, "timestamp.json").await?;
        let (snapshot, targets_version) = snapshot_at(ports, snapshot_version(&timestamp)?).await?;
        let targets = cached(ports, &ports.cache.targets, "targets", targets_version).await?;
        Ok(Current {
            timestamp,
            snapshot,
            targets,
        })
    }

    /// The targets `timestamp.json` leads to, without the snapshot when the cache knows which
    /// targets version it names (what an add or remove task needs to find artifacts' roles).
    pub async fn targets(ports: &Ports) -> Result<Arc<Metadata<Targets>>, TaskError> {
        let timestamp: Metadata<Timestamp> = load(ports, "timestamp.json").await?;
        let snapshot_version = snapshot_version(&timestamp)?;
        let targets_version = match ports.cache.targets_version_of(snapshot_version) {
            Some(version) => version,
            None => snapshot_at(ports, snapshot_version).await?.1,
        };
        cached(ports, &ports.cache.targets, "targets", targets_version).await
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

/// Where the content of a role's new version comes from.
#[derive(Debug)]
pub(crate) enum RoleContent {
    /// Built by the task (publish, delegation changes).
    Model(Box<Targets>),
    /// The content of this stored file, unchanged (a bump re-signs it): read, parsed and
    /// re-encoded on the CPU job that signs it.
    Stored(String),
    /// The content of this stored file (the role's published version) with these artifacts
    /// added or replaced (`Some`) or removed (`None`): a publish applies a role's unpublished
    /// rows to what clients already have, reading neither the rest of its rows nor more than
    /// the one file.
    Patched(String, Vec<(String, Option<TargetFile>)>),
}

impl RoleContent {
    /// The stored file the content starts from, if any.
    fn file(&self) -> Option<&str> {
        match self {
            RoleContent::Model(_) => None,
            RoleContent::Stored(file) | RoleContent::Patched(file, _) => Some(file),
        }
    }
}

/// A new version of a delegated role to publish: its content; the publication sets version
/// and expiry.
#[derive(Debug)]
pub(crate) struct RoleUpdate {
    pub name: String,
    pub content: RoleContent,
    pub expires: Expires,
}

impl RoleUpdate {
    /// A new version with content built by the task.
    pub fn new(name: String, expires: Expires, signed: Targets) -> Self {
        RoleUpdate {
            name,
            content: RoleContent::Model(Box::new(signed)),
            expires,
        }
    }

    /// A new version with the content of the stored file `file`.
    pub fn stored(name: String, file: String, expires: Expires) -> Self {
        RoleUpdate {
            name,
            content: RoleContent::Stored(file),
            expires,
        }
    }

    /// A new version with the content of the stored file `file` changed by `changes`.
    pub fn patched(
        name: String,
        file: String,
        changes: Vec<(String, Option<TargetFile>)>,
        expires: Expires,
    ) -> Self {
        RoleUpdate {
            name,
            content: RoleContent::Patched(file, changes),
            expires,
        }
    }
}

/// A role's new version, encoded: its storage bytes once signed.
struct Encoded {
    name: String,
    version: u64,
    expires: Expires,
    state: EncodedState,
}

enum EncodedState {
    /// Signed on the CPU job. The task's own content comes back for a retry under another
    /// version (and is freed on the thread that built it); stored content is not kept.
    Signed {
        bytes: Arc<Vec<u8>>,
        signed: Option<Targets>,
    },
    /// The signer must be awaited (a remote key service).
    Unsigned(Unsigned<Targets>),
}

/// Roles encoded and signed per CPU job: enough to make a job worth its hand-off, few enough
/// that a chunk spreads over every core.
const ROLES_PER_JOB: usize = 32;

/// Parses (for stored content), encodes and, when the signer can sign on this thread, signs
/// each role; runs as one CPU job.
fn encode_roles(
    jobs: Vec<(RoleUpdate, u64, Option<Vec<u8>>)>,
    signer: &dyn Signer,
    keyid: &str,
) -> Result<Vec<Encoded>, TaskError> {
    let metadata = |e: rstuf_metadata::schema::SchemaError| TaskError::Metadata(e.to_string());
    let mut out = Vec::with_capacity(jobs.len());
    for (update, version, stored) in jobs {
        let RoleUpdate {
            name,
            content,
            expires,
        } = update;
        let parse = |file: &str, bytes: Option<Vec<u8>>| {
            let bytes = bytes
                .ok_or_else(|| TaskError::Metadata(format!("{file} is missing from storage")))?;
            Metadata::<Targets>::from_stored_bytes(&bytes)
                .map(|md| md.signed)
                .map_err(|e| TaskError::Metadata(format!("{file}: {e}")))
        };
        // A bump re-signs stored content as it is, a publication with its artifacts changed:
        // straight from the bytes when the signer can sign here and the content has the
        // usual form, else through the model.
        if let Some(bytes) = &stored
            && let Some(payload) = payload_from_stored(&content, bytes, version, expires)
            && let Some(sig) = signer.sign_here(&payload)
        {
            let sig = Signature::new(keyid, &sig?);
            let bytes = storage_bytes_of(&payload, &[sig]).map_err(metadata)?;
            out.push(Encoded {
                name,
                version,
                expires,
                state: EncodedState::Signed {
                    bytes: Arc::new(bytes),
                    signed: None,
                },
            });
            continue;
        }
        let (mut signed, keep) = match content {
            RoleContent::Model(signed) => (*signed, true),
            RoleContent::Stored(file) => (parse(&file, stored)?, false),
            RoleContent::Patched(file, changes) => {
                let mut signed = parse(&file, stored)?;
                for (path, change) in changes {
                    match change {
                        Some(info) => signed.targets.insert(path, info),
                        None => signed.targets.remove(&path),
                    };
                }
                (signed, false)
            }
        };
        signed.set_version_and_expires(version, expires);
        let unsigned = Unsigned::new(signed).map_err(metadata)?;
        let state = match signer.sign_here(unsigned.payload()) {
            Some(sig) => {
                let sig = Signature::new(keyid, &sig?);
                let (md, bytes) = unsigned.finish(vec![sig]).map_err(metadata)?;
                EncodedState::Signed {
                    bytes: Arc::new(bytes),
                    signed: keep.then_some(md.signed),
                }
            }
            None => EncodedState::Unsigned(unsigned),
        };
        out.push(Encoded {
            name,
            version,
            expires,
            state,
        });
    }
    Ok(out)
}

/// The canonical payload of a stored role's next version with `content`'s changes, read
/// straight from the stored bytes (see [`rstuf_metadata::resign`]); `None` when the model
/// path must build it (content built by the task, or stored content of unusual form).
fn payload_from_stored(
    content: &RoleContent,
    stored: &[u8],
    version: u64,
    expires: Expires,
) -> Option<Vec<u8>> {
    match content {
        RoleContent::Model(_) => None,
        RoleContent::Stored(_) => {
            rstuf_metadata::resign::resign_targets_payload(stored, version, expires)
        }
        RoleContent::Patched(_, changes) => {
            // Each path once, sorted, its last change winning (as applying them in order).
            let mut last: BTreeMap<&str, Option<Vec<u8>>> = BTreeMap::new();
            for (path, change) in changes {
                let entry = match change {
                    Some(file) => Some(rstuf_metadata::direct::to_canonical(file).ok()?),
                    None => None,
                };
                last.insert(path, entry);
            }
            let changes: Vec<_> = last.iter().map(|(p, e)| (*p, e.as_deref())).collect();
            rstuf_metadata::resign::patch_targets_payload(stored, version, expires, &changes)
        }
    }
}

/// A batch of role files being written while the next batch is encoded.
type PendingWrite<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<Written>, TaskError>> + Send + 'a>,
>;

/// A role version now in storage.
struct Written {
    name: String,
    version: u64,
    expires: Expires,
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
    /// The snapshot entries this publication changed (the rest are the current snapshot's);
    /// a batch being written has its planned versions here until it is recorded.
    meta: BTreeMap<String, MetaFile>,
    records: Vec<RoleRecord>,
    targets: Option<Metadata<Targets>>,
    /// The batch of role files being written (see [`Publication::publish_roles`]). In a
    /// mutex only so the publication is `Sync`; it is reached through `&mut self`.
    pending: Mutex<Option<PendingWrite<'a>>>,
}

impl<'a> Publication<'a> {
    pub fn new(ports: &'a Ports, online: &'a Online, current: &'a Current) -> Self {
        Publication {
            ports,
            online,
            current,
            now: ports.clock.now(),
            meta: BTreeMap::new(),
            records: Vec::new(),
            targets: None,
            pending: Mutex::new(None),
        }
    }

    /// The snapshot entry of `file` as this publication leaves it so far.
    fn meta_of(&self, file: &str) -> Option<&MetaFile> {
        self.meta
            .get(file)
            .or_else(|| self.current.snapshot.signed.meta.get(file))
    }

    /// The time the publication started.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Whether anything besides snapshot and timestamp was written (or is being written).
    pub fn changed(&self) -> bool {
        !self.records.is_empty()
            || self.targets.is_some()
            || self.pending.lock().expect("pending write").is_some()
    }

    /// Encodes and signs the next version of each role on the CPU jobs, and starts writing
    /// them as one batch; the write goes on while the caller prepares the next batch, and is
    /// waited for by the next call or by [`Publication::finish`]. A name already taken (left
    /// by an interrupted run) sends that role to the next free version.
    pub async fn publish_roles(&mut self, updates: Vec<RoleUpdate>) -> Result<(), TaskError> {
        let jobs: Vec<(RoleUpdate, u64)> = updates
            .into_iter()
            .map(|u| {
                let version = self
                    .meta_of(&format!("{}.json", u.name))
                    .map_or(1, |m| m.version + 1);
                (u, version)
            })
            .collect();
        let previous = self.take_pending();
        let (previous, encoded) =
            futures_util::future::join(wait_for(previous), self.encode(jobs)).await;
        if let Some(written) = previous? {
            self.record(written);
        }
        let encoded = encoded?;
        for e in &encoded {
            self.meta.insert(
                format!("{}.json", e.name),
                MetaFile::version_only(e.version),
            );
        }
        *self.pending.get_mut().expect("pending write") =
            Some(Box::pin(write_batch(self.ports, self.online, encoded)));
        Ok(())
    }

    fn take_pending(&mut self) -> Option<PendingWrite<'a>> {
        self.pending.get_mut().expect("pending write").take()
    }

    /// Waits for the batch being written, if any.
    async fn flush(&mut self) -> Result<(), TaskError> {
        if let Some(written) = wait_for(self.take_pending()).await? {
            self.record(written);
        }
        Ok(())
    }

    fn record(&mut self, written: Vec<Written>) {
        for w in written {
            self.meta.insert(
                format!("{}.json", w.name),
                MetaFile::version_only(w.version),
            );
            self.records.push(RoleRecord {
                name: w.name,
                version: w.version,
                expires: w.expires.0,
                active: true,
            });
        }
    }

    /// Every role encoded and signed, [`ROLES_PER_JOB`] per CPU job, as many jobs at once as
    /// the CPU port has cores; roles the signer cannot sign on a job are signed here.
    async fn encode(&self, jobs: Vec<(RoleUpdate, u64)>) -> Result<Vec<Encoded>, TaskError> {
        let ports = self.ports;
        let online = self.online;
        let mut groups = Vec::new();
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            groups.push(jobs.by_ref().take(ROLES_PER_JOB).collect::<Vec<_>>());
        }
        let parallelism = ports.cpu.parallelism().max(1);
        let encoded: Vec<Vec<Encoded>> = stream::iter(groups.into_iter().map(|group| async move {
            let files: Vec<String> = group
                .iter()
                .filter_map(|(u, _)| u.content.file().map(str::to_string))
                .collect();
            let mut stored = if files.is_empty() {
                Vec::new()
            } else {
                ports.store.get_many(&files).await?
            }
            .into_iter();
            let group: Vec<(RoleUpdate, u64, Option<Vec<u8>>)> = group
                .into_iter()
                .map(|(u, version)| {
                    let bytes = u.content.file().and_then(|_| stored.next().flatten());
                    (u, version, bytes)
                })
                .collect();
            let signer = online.signer.clone();
            let keyid = online.keyid.clone();
            on_cpu(ports.cpu.as_ref(), move || {
                encode_roles(group, signer.as_ref(), &keyid)
            })
            .await?
        }))
        .buffer_unordered(parallelism)
        .try_collect()
        .await?;
        let mut out = Vec::with_capacity(encoded.iter().map(Vec::len).sum());
        for mut e in encoded.into_iter().flatten() {
            if let EncodedState::Unsigned(unsigned) = e.state {
                let sig = online.signer.sign(unsigned.payload()).await?;
                let (md, bytes) = unsigned
                    .finish(vec![Signature::new(online.keyid.clone(), &sig)])
                    .map_err(|e| TaskError::Metadata(e.to_string()))?;
                e.state = EncodedState::Signed {
                    bytes: Arc::new(bytes),
                    signed: Some(md.signed),
                };
            }
            out.push(e);
        }
        Ok(out)
    }

    /// Writes a delegated role's metadata signed elsewhere (offline keys), at its own version.
    /// It must be the next version of the role; the name must be free or hold these bytes.
    /// `Ok(Err)` is a refusal text.
    pub async fn publish_presigned(
        &mut self,
        name: &str,
        md: &Metadata<Targets>,
    ) -> Result<Result<(), String>, TaskError> {
        self.flush().await?;
        let version = md.signed.version;
        let next = self
            .meta_of(&format!("{name}.json"))
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
        self.flush().await?;
        let start = self
            .meta_of("targets.json")
            .map_or(1, |m| m.version + 1)
            .max(self.current.targets.signed.version + 1);
        let expires = expires_in(self.now, days);
        let (version, md) =
            write_next_version(self.ports, self.online, "targets", signed, start, expires).await?;
        self.meta
            .insert("targets.json".into(), MetaFile::version_only(version));
        keep(&self.ports.cache.targets, Arc::new(md.clone()));
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
            let start = snapshot_version + 1;
            // The last batch of roles is made durable while the snapshot listing the versions
            // planned for it is built, encoded and signed; a role that had to take a later
            // version (its name left by an interrupted run) has the snapshot signed again.
            let pending = self.take_pending();
            let changed = std::mem::take(&mut self.meta);
            let base = &self.current.snapshot.signed.meta;
            let snapshot = async move {
                // The 16,385-entry map of 16,384 bins copied while the batch is written.
                let mut meta = base.clone();
                meta.extend(changed);
                let mut snapshot = Snapshot::new(0, expires, meta);
                snapshot.set_version_and_expires(start, expires);
                snapshot
            };
            let online = self.online;
            let (written, signed) = futures_util::future::join(wait_for(pending), async {
                online.sign_stored(snapshot.await).await
            })
            .await;
            let (mut md, mut bytes) = signed?;
            if let Some(written) = written? {
                let moved: Vec<(String, u64)> = written
                    .iter()
                    .map(|w| (format!("{}.json", w.name), w.version))
                    .filter(|(file, version)| {
                        md.signed.meta.get(file).map(|m| m.version) != Some(*version)
                    })
                    .collect();
                self.record(written);
                if !moved.is_empty() {
                    let mut snapshot = md.signed;
                    for (file, version) in moved {
                        snapshot.meta.insert(file, MetaFile::version_only(version));
                    }
                    (md, bytes) = online.sign_stored(snapshot).await?;
                }
            }
            let (version, md) =
                write_signed_or_next(self.ports, online, "snapshot", md, bytes, expires).await?;
            if let Some(targets) = md.signed.role_version("targets") {
                self.ports.cache.note_targets_version(version, targets);
            }
            keep(&self.ports.cache.snapshot, Arc::new(md));
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

/// Writes encoded roles as one batch; a role whose name is taken is written under the next
/// free version instead.
async fn write_batch(
    ports: &Ports,
    online: &Online,
    encoded: Vec<Encoded>,
) -> Result<Vec<Written>, TaskError> {
    let mut entries = Vec::with_capacity(encoded.len());
    let mut batch = Vec::with_capacity(encoded.len());
    for e in encoded {
        let EncodedState::Signed { bytes, signed } = e.state else {
            return Err(TaskError::Metadata(format!("{} was not signed", e.name)));
        };
        batch.push((format!("{}.{}.json", e.version, e.name), bytes.clone()));
        entries.push((e.name, e.version, e.expires, bytes, signed));
    }
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut written = Vec::with_capacity(entries.len());
    match ports.store.put_versioned_many(&batch).await {
        Ok(()) => {
            written.extend(
                entries
                    .into_iter()
                    .map(|(name, version, expires, _, _)| Written {
                        name,
                        version,
                        expires,
                    }),
            );
        }
        Err(e) if e.kind == PortErrorKind::Conflict => {
            for ((name, version, expires, bytes, signed), (file, _)) in
                entries.into_iter().zip(&batch)
            {
                let version = match ports.store.put_versioned(file, &bytes).await {
                    Ok(()) => version,
                    Err(e) if e.kind == PortErrorKind::Conflict => {
                        let signed = match signed {
                            Some(signed) => signed,
                            None => {
                                Metadata::<Targets>::from_stored_bytes(&bytes)
                                    .map_err(|e| TaskError::Metadata(format!("{file}: {e}")))?
                                    .signed
                            }
                        };
                        write_next_version(ports, online, &name, signed, version + 1, expires)
                            .await?
                            .0
                    }
                    Err(e) => return Err(e.into()),
                };
                written.push(Written {
                    name,
                    version,
                    expires,
                });
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(written)
}

/// Waits for a batch being written, if any.
async fn wait_for(pending: Option<PendingWrite<'_>>) -> Result<Option<Vec<Written>>, TaskError> {
    match pending {
        Some(write) => write.await.map(Some),
        None => Ok(None),
    }
}

/// Writes `md`, already signed as its version with storage bytes `bytes`, or its content as
/// the first later version whose name is free.
async fn write_signed_or_next<T: Signed>(
    ports: &Ports,
    online: &Online,
    role: &str,
    md: Metadata<T>,
    bytes: Vec<u8>,
    expires: Expires,
) -> Result<(u64, Metadata<T>), TaskError> {
    let version = md.signed.version();
    match ports
        .store
        .put_versioned(&format!("{version}.{role}.json"), &bytes)
        .await
    {
        Ok(()) => Ok((version, md)),
        Err(e) if e.kind == PortErrorKind::Conflict => {
            write_next_version(ports, online, role, md.signed, version + 1, expires).await
        }
        Err(e) => Err(e.into()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MetadataCache;

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
