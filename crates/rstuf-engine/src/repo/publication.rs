//! A publication: new versions of delegated roles and targets, then snapshot and timestamp,
//! then the index (see the module documentation of `repo`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rstuf_metadata::schema::{
    Expires, MetaFile, Metadata, Root, Signed, Snapshot, TargetFile, Targets, Timestamp,
};

use super::current::keep;
use super::encode::{Encoded, EncodedState, encode};
use super::write::{
    PendingWrite, Taken, Written, wait_for, write_batch, write_next_version, write_signed_or_next,
};
use super::{Current, Online, expires_in, storage_bytes, to_value};
use crate::engine::Engine;
use crate::outcome::TaskError;
use crate::ports::{ArtifactRow, LockGuard, PortErrorKind, RoleRecord};
use crate::settings::{self, TRUSTED_TARGETS};

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
    pub(super) fn file(&self) -> Option<&str> {
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

/// What [`Publication::finish`] re-signs when nothing else changed (when a role or targets
/// changed, a new snapshot and timestamp are always written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resign {
    /// Nothing: snapshot and timestamp follow the changes only.
    OnlyChanged,
    /// A new timestamp, naming the same snapshot.
    Timestamp,
    /// A new snapshot, and so a new timestamp.
    SnapshotAndTimestamp,
}

/// What a finished publication wrote.
#[derive(Debug, Default)]
pub(crate) struct Published {
    /// The new snapshot version, if one was written.
    pub snapshot: Option<u64>,
    /// Whether a new timestamp was written.
    pub timestamp: bool,
}

/// A role's new version whose storage bytes the task signed itself.
#[derive(Debug)]
pub(crate) struct SignedRole {
    /// The role.
    pub name: String,
    /// The version the bytes were signed as: the role's next version.
    pub version: u64,
    /// The expiry the bytes hold.
    pub expires: Expires,
    /// The storage bytes.
    pub bytes: Arc<Vec<u8>>,
}

/// The published versions a publication builds on.
struct Base<'a> {
    /// The current snapshot's entries.
    meta: &'a BTreeMap<String, MetaFile>,
    /// The current snapshot, targets and timestamp versions (0 before the first publication).
    snapshot: u64,
    targets: u64,
    timestamp: u64,
}

/// The snapshot entries of a repository that has published nothing yet.
static NOTHING_PUBLISHED: BTreeMap<String, MetaFile> = BTreeMap::new();

/// A set of new versions being published (see the module documentation).
pub(crate) struct Publication<'a> {
    engine: &'a Engine,
    online: &'a Online,
    base: Base<'a>,
    /// Whether a file name already taken moves the file to a later version.
    taken: Taken,
    now: DateTime<Utc>,
    /// Days the new snapshot and timestamp stay valid, read before anything is written.
    snapshot_days: u32,
    timestamp_days: u32,
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
    /// A publication over `current`, signed by `online`. Reads `SNAPSHOT_EXPIRATION` and
    /// `TIMESTAMP_EXPIRATION` now, so no settings read comes after the first write.
    pub async fn new(
        engine: &'a Engine,
        online: &'a Online,
        current: &'a Current,
    ) -> Result<Self, TaskError> {
        let settings = engine.settings.as_ref();
        let snapshot_days = settings::days(settings, "SNAPSHOT_EXPIRATION", 1).await?;
        let timestamp_days = settings::days(settings, "TIMESTAMP_EXPIRATION", 1).await?;
        let base = Base {
            meta: &current.snapshot.signed.meta,
            snapshot: current.snapshot.signed.version,
            targets: current.targets.signed.version,
            timestamp: current.timestamp.signed.version,
        };
        let taken = Taken::MoveToNextVersion;
        Ok(Self::build(
            engine,
            online,
            base,
            taken,
            snapshot_days,
            timestamp_days,
        ))
    }

    /// The first publication of a repository (a bootstrap): every file is version 1, and a
    /// name already taken fails the publication. The snapshot and timestamp stay valid for
    /// the days given; [`Publication::finish_first`] ends it.
    pub fn first(
        engine: &'a Engine,
        online: &'a Online,
        snapshot_days: u32,
        timestamp_days: u32,
    ) -> Self {
        let base = Base {
            meta: &NOTHING_PUBLISHED,
            snapshot: 0,
            targets: 0,
            timestamp: 0,
        };
        Self::build(
            engine,
            online,
            base,
            Taken::Fail,
            snapshot_days,
            timestamp_days,
        )
    }

    fn build(
        engine: &'a Engine,
        online: &'a Online,
        base: Base<'a>,
        taken: Taken,
        snapshot_days: u32,
        timestamp_days: u32,
    ) -> Self {
        Publication {
            engine,
            online,
            base,
            taken,
            now: engine.clock.now(),
            snapshot_days,
            timestamp_days,
            meta: BTreeMap::new(),
            records: Vec::new(),
            targets: None,
            pending: Mutex::new(None),
        }
    }

    /// The snapshot entry of `file` as this publication leaves it so far.
    fn meta_of(&self, file: &str) -> Option<&MetaFile> {
        self.meta.get(file).or_else(|| self.base.meta.get(file))
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
            futures_util::future::join(wait_for(previous), encode(self.engine, self.online, jobs))
                .await;
        if let Some(written) = previous? {
            self.record(written);
        }
        self.start_writing(encoded?);
        Ok(())
    }

    /// Starts writing, as [`Publication::publish_roles`] does, roles whose bytes the task
    /// signed itself (a bootstrap signs identical empty roles once). Each must be signed as
    /// the role's next version.
    pub async fn publish_signed_roles(&mut self, roles: Vec<SignedRole>) -> Result<(), TaskError> {
        let mut encoded = Vec::with_capacity(roles.len());
        for role in roles {
            let next = self
                .meta_of(&format!("{}.json", role.name))
                .map_or(1, |m| m.version + 1);
            if role.version != next {
                return Err(TaskError::SignedAsOtherVersion {
                    role: role.name,
                    signed: role.version,
                    next,
                });
            }
            encoded.push(Encoded {
                name: role.name,
                version: role.version,
                expires: role.expires,
                state: EncodedState::Signed {
                    bytes: role.bytes,
                    signed: None,
                },
            });
        }
        self.flush().await?;
        self.start_writing(encoded);
        Ok(())
    }

    /// Plans the encoded roles' versions in the snapshot and starts writing them as one batch.
    fn start_writing(&mut self, encoded: Vec<Encoded>) {
        for e in &encoded {
            self.meta.insert(
                format!("{}.json", e.name),
                MetaFile::version_only(e.version),
            );
        }
        let write = write_batch(self.engine, self.online, encoded, self.taken);
        *self.pending.get_mut().expect("pending write") = Some(Box::pin(write));
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
            .engine
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
            .max(self.base.targets + 1);
        let expires = expires_in(self.now, days);
        let (engine, online, taken) = (self.engine, self.online, self.taken);
        let (version, md) =
            write_next_version(engine, online, "targets", signed, start, expires, taken).await?;
        self.meta
            .insert("targets.json".into(), MetaFile::version_only(version));
        keep(&self.engine.cache.targets, Arc::new(md.clone()));
        self.targets = Some(md);
        Ok(())
    }

    /// Writes the snapshot (when anything changed, or when `resign` asks for it) and the
    /// timestamp (when the snapshot changed, or when `resign` asks for it), then records role
    /// versions and `published` rows in the index. The timestamp is written only while
    /// `guard` holds.
    pub async fn finish(
        mut self,
        guard: &dyn LockGuard,
        resign: Resign,
        published: &[ArtifactRow],
    ) -> Result<Published, TaskError> {
        let mut out = Published::default();
        let mut snapshot_version = self.base.snapshot;
        if self.changed() || resign == Resign::SnapshotAndTimestamp {
            snapshot_version = self.write_snapshot().await?;
            out.snapshot = Some(snapshot_version);
        }
        if out.snapshot.is_some() || resign != Resign::OnlyChanged {
            self.write_timestamp(snapshot_version, Some(guard)).await?;
            out.timestamp = true;
        }
        if !self.records.is_empty() || !published.is_empty() {
            self.engine
                .index
                .commit_publication(&self.records, published)
                .await?;
        }
        if let Some(targets) = &self.targets {
            let settings = self.engine.settings.as_ref();
            settings.set(TRUSTED_TARGETS, to_value(targets)?).await?;
        }
        Ok(out)
    }

    /// Ends the first publication of a repository: writes the snapshot, the timestamp and
    /// `root` last, each while `guard` holds, and returns the targets it published (for the
    /// settings that follow: see `bootstrap`). The index is not written: the caller created
    /// the role rows, at version 1, before the first file.
    pub async fn finish_first(
        mut self,
        guard: &dyn LockGuard,
        root: &Metadata<Root>,
    ) -> Result<Metadata<Targets>, TaskError> {
        let snapshot_version = self.write_snapshot().await?;
        self.write_timestamp(snapshot_version, Some(guard)).await?;
        if !guard.still_held().await? {
            return Err(TaskError::LockLost);
        }
        let root_name = format!("{}.root.json", root.signed.version);
        self.engine
            .store
            .put_versioned(&root_name, &storage_bytes(root)?)
            .await?;
        self.targets.ok_or_else(|| TaskError::Missing {
            file: "1.targets.json".into(),
        })
    }

    /// Writes the next snapshot version, listing what this publication changed, and returns
    /// its version.
    async fn write_snapshot(&mut self) -> Result<u64, TaskError> {
        let expires = expires_in(self.now, self.snapshot_days);
        let start = self.base.snapshot + 1;
        // The last batch of roles is made durable while the snapshot listing the versions
        // planned for it is built, encoded and signed; a role that had to take a later
        // version (its name left by an interrupted run) has the snapshot signed again.
        let pending = self.take_pending();
        let changed = std::mem::take(&mut self.meta);
        let base = self.base.meta;
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
        let (engine, taken) = (self.engine, self.taken);
        let (version, md) =
            write_signed_or_next(engine, online, "snapshot", md, bytes, expires, taken).await?;
        if let Some(targets) = md.signed.role_version("targets") {
            self.engine.cache.note_targets_version(version, targets);
        }
        keep(&self.engine.cache.snapshot, Arc::new(md));
        Ok(version)
    }

    /// Writes the next timestamp, naming snapshot version `snapshot`: only while `guard`
    /// holds, when there is one.
    async fn write_timestamp(
        &self,
        snapshot: u64,
        guard: Option<&dyn LockGuard>,
    ) -> Result<(), TaskError> {
        let timestamp = Timestamp::new(
            self.base.timestamp + 1,
            expires_in(self.now, self.timestamp_days),
            snapshot,
        );
        let (_, timestamp) = self.online.sign_stored(timestamp).await?;
        if let Some(guard) = guard
            && !guard.still_held().await?
        {
            return Err(TaskError::LockLost);
        }
        // The commit point, fenced: only over the timestamp this publication started from.
        let replaces = (self.base.timestamp > 0).then_some(self.base.timestamp);
        match self.engine.store.put_timestamp(&timestamp, replaces).await {
            Err(e) if e.kind == PortErrorKind::Conflict => Err(TaskError::Superseded(e)),
            other => Ok(other?),
        }
    }
}
