//! In-memory implementations of every port, for tests (feature `testing`). They keep the
//! same contracts as the real adapters (write-once files, one-field settings writes) and record
//! what was written, in order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rstuf_metadata::keys::{Key, PrivateKey};
use rstuf_metadata::pyjson::to_python_json_ordered;
use rstuf_metadata::schema::TargetFile;
use serde_json::Value;

use crate::ports::{
    ArtifactAction, ArtifactIndex, ArtifactRow, Clock, KeySigner, LockGuard, MetadataStore,
    NewArtifact, PortError, PortErrorKind, Ports, RepoLock, RoleRecord, RowChange, SettingsStore,
    Signer, SignerResolver,
};
use crate::queue::PublishQueue;
use crate::{Engine, MetadataCache};

mod interrupt;

pub use interrupt::Interruption;

/// Metadata files in memory, with the order they were written.
#[derive(Debug, Default)]
pub struct MemoryStore {
    files: Mutex<BTreeMap<String, Vec<u8>>>,
    log: Mutex<Vec<String>>,
}

impl MemoryStore {
    /// All files.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.files.lock().expect("lock").clone()
    }
    /// File names in write order.
    pub fn write_log(&self) -> Vec<String> {
        self.log.lock().expect("lock").clone()
    }
}

#[async_trait]
impl MetadataStore for MemoryStore {
    async fn put_versioned(&self, name: &str, bytes: &[u8]) -> Result<(), PortError> {
        crate::ports::check_versioned_name(name)?;
        let mut files = self.files.lock().expect("lock");
        if let Some(existing) = files.get(name) {
            if existing.as_slice() == bytes {
                return Ok(());
            }
            return Err(PortError::new(
                PortErrorKind::Conflict,
                format!("{name} exists with other content"),
            ));
        }
        files.insert(name.to_string(), bytes.to_vec());
        self.log.lock().expect("lock").push(name.to_string());
        Ok(())
    }

    async fn put_timestamp(&self, bytes: &[u8], replaces: Option<u64>) -> Result<(), PortError> {
        let mut files = self.files.lock().expect("lock");
        let current = files.get("timestamp.json").map(Vec::as_slice);
        crate::ports::check_timestamp_replaces(current, replaces)?;
        files.insert("timestamp.json".into(), bytes.to_vec());
        self.log.lock().expect("lock").push("timestamp.json".into());
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, PortError> {
        Ok(self.files.lock().expect("lock").get(name).cloned())
    }

    async fn discard(&self, names: &[String]) -> Result<Vec<bool>, PortError> {
        for name in names {
            crate::ports::check_discarded_name(name)?;
        }
        let mut files = self.files.lock().expect("lock");
        Ok(names.iter().map(|n| files.remove(n).is_some()).collect())
    }
}

/// The info text the memory index stores: the same as the SQL adapter's (`json.dumps` of
/// the API model's dict: `length`, `hashes`, `custom`, then the rest).
fn info_text(info: &TargetFile) -> Result<String, PortError> {
    let length = Value::from(info.length);
    let hashes = serde_json::to_value(&info.hashes)
        .map_err(|e| PortError::new(PortErrorKind::Other, e.to_string()))?;
    let custom = info.unrecognized.get_key_value("custom");
    let rest = info.unrecognized.iter().filter(|(k, _)| *k != "custom");
    let entries = [("length", &length), ("hashes", &hashes)]
        .into_iter()
        .chain(custom.into_iter().chain(rest).map(|(k, v)| (k.as_str(), v)));
    to_python_json_ordered(entries).map_err(|e| PortError::new(PortErrorKind::Other, e.to_string()))
}

/// The artifact index in memory.
#[derive(Debug, Default)]
pub struct MemoryIndex {
    roles: Mutex<BTreeMap<String, RoleRecord>>,
    files: Mutex<BTreeMap<String, ArtifactRow>>,
}

impl MemoryIndex {
    /// All role rows.
    pub fn roles(&self) -> BTreeMap<String, RoleRecord> {
        self.roles.lock().expect("lock").clone()
    }
    /// All artifact rows, by path.
    pub fn files(&self) -> BTreeMap<String, ArtifactRow> {
        self.files.lock().expect("lock").clone()
    }
    /// Inserts a row as an outside writer would (the RSTUF CLI's `import-artifacts`).
    pub fn insert_row(&self, row: ArtifactRow) {
        self.files
            .lock()
            .expect("lock")
            .insert(row.path.clone(), row);
    }
}

#[async_trait]
impl ArtifactIndex for MemoryIndex {
    async fn create_roles(&self, roles: &[RoleRecord]) -> Result<(), PortError> {
        let mut all = self.roles.lock().expect("lock");
        if let Some(dup) = roles.iter().find(|r| all.contains_key(&r.name)) {
            return Err(PortError::new(
                PortErrorKind::Conflict,
                format!("role {} exists", dup.name),
            ));
        }
        for r in roles {
            all.insert(r.name.clone(), r.clone());
        }
        Ok(())
    }

    async fn clear(&self) -> Result<(), PortError> {
        let mut roles = self.roles.lock().expect("lock");
        self.files.lock().expect("lock").clear();
        roles.clear();
        Ok(())
    }

    async fn role(&self, name: &str) -> Result<Option<RoleRecord>, PortError> {
        Ok(self.roles.lock().expect("lock").get(name).cloned())
    }

    async fn active_roles(
        &self,
        expiring_before: Option<DateTime<Utc>>,
    ) -> Result<Vec<RoleRecord>, PortError> {
        Ok(self
            .roles
            .lock()
            .expect("lock")
            .values()
            .filter(|r| r.active && expiring_before.is_none_or(|t| r.expires < t))
            .cloned()
            .collect())
    }

    async fn add_artifacts(&self, artifacts: &[NewArtifact]) -> Result<(), PortError> {
        self.apply_changes(&[RowChange::Add(artifacts.to_vec())])
            .await
            .map(drop)
    }

    async fn remove_artifacts(&self, paths: &[String]) -> Result<Vec<String>, PortError> {
        let mut changed = self
            .apply_changes(&[RowChange::Remove(paths.to_vec())])
            .await?;
        Ok(changed.pop().unwrap_or_default())
    }

    async fn apply_changes(&self, changes: &[RowChange]) -> Result<Vec<Vec<String>>, PortError> {
        let roles = self.roles.lock().expect("lock");
        // All or nothing: every row's role is checked before anything is written.
        let rows = changes.iter().flat_map(|c| match c {
            RowChange::Add(rows) => rows.as_slice(),
            RowChange::Remove(_) => &[],
        });
        let mut infos = Vec::new();
        for a in rows {
            if !roles.get(&a.role).is_some_and(|r| r.active) {
                return Err(PortError::new(
                    PortErrorKind::Other,
                    format!("role {} has no active row", a.role),
                ));
            }
            infos.push(info_text(&a.info)?);
        }
        let mut infos = infos.into_iter();
        let mut files = self.files.lock().expect("lock");
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            let mut changed = Vec::new();
            match change {
                RowChange::Add(rows) => {
                    for (a, info) in rows.iter().zip(infos.by_ref()) {
                        files.insert(
                            a.path.clone(),
                            ArtifactRow {
                                path: a.path.clone(),
                                info,
                                action: ArtifactAction::Add,
                                published: false,
                                role: a.role.clone(),
                            },
                        );
                    }
                }
                RowChange::Remove(paths) => {
                    for path in paths {
                        if let Some(row) = files.get_mut(path)
                            && !(row.action == ArtifactAction::Remove && row.published)
                        {
                            row.action = ArtifactAction::Remove;
                            row.published = false;
                            changed.push(path.clone());
                        }
                    }
                }
            }
            out.push(changed);
        }
        Ok(out)
    }

    async fn roles_with_unpublished(&self) -> Result<Vec<String>, PortError> {
        let names: BTreeSet<String> = self
            .files
            .lock()
            .expect("lock")
            .values()
            .filter(|r| !r.published)
            .map(|r| r.role.clone())
            .collect();
        Ok(names.into_iter().collect())
    }

    async fn artifacts_of(&self, roles: &[String]) -> Result<Vec<ArtifactRow>, PortError> {
        let wanted: BTreeSet<&String> = roles.iter().collect();
        Ok(self
            .files
            .lock()
            .expect("lock")
            .values()
            .filter(|r| wanted.contains(&r.role))
            .cloned()
            .collect())
    }

    async fn commit_publication(
        &self,
        roles: &[RoleRecord],
        published: &[ArtifactRow],
    ) -> Result<(), PortError> {
        let mut all_roles = self.roles.lock().expect("lock");
        let mut files = self.files.lock().expect("lock");
        for r in roles {
            let Some(row) = all_roles.get_mut(&r.name) else {
                return Err(PortError::new(
                    PortErrorKind::Other,
                    format!("role {} has no row", r.name),
                ));
            };
            row.version = r.version;
            row.expires = r.expires;
            row.active = r.active;
        }
        for p in published {
            if let Some(row) = files.get_mut(&p.path)
                && row.action == p.action
                && row.info == p.info
            {
                row.published = true;
            }
        }
        Ok(())
    }
}

/// The repository lock in memory. [`MemoryLock::lose`] simulates another worker taking the
/// lock from a stalled holder.
#[derive(Debug, Default)]
pub struct MemoryLock {
    mutex: Arc<tokio::sync::Mutex<()>>,
    lost: Arc<AtomicBool>,
    lose_next: AtomicBool,
    acquisitions: AtomicUsize,
}

impl MemoryLock {
    /// Makes the next holder lose the lock right after taking it.
    pub fn lose_next(&self) {
        self.lose_next.store(true, Ordering::SeqCst);
    }
    /// Makes the current holder's `still_held` false.
    pub fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }
    /// How many times the lock was taken.
    pub fn acquisitions(&self) -> usize {
        self.acquisitions.load(Ordering::SeqCst)
    }
}

struct MemoryGuard {
    _held: tokio::sync::OwnedMutexGuard<()>,
    lost: Arc<AtomicBool>,
}

#[async_trait]
impl RepoLock for MemoryLock {
    async fn acquire(&self) -> Result<Box<dyn LockGuard>, PortError> {
        let held = self.mutex.clone().lock_owned().await;
        let lose = self.lose_next.swap(false, Ordering::SeqCst);
        self.lost.store(lose, Ordering::SeqCst);
        self.acquisitions.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(MemoryGuard {
            _held: held,
            lost: self.lost.clone(),
        }))
    }
}

#[async_trait]
impl LockGuard for MemoryGuard {
    async fn still_held(&self) -> Result<bool, PortError> {
        Ok(!self.lost.load(Ordering::SeqCst))
    }
    async fn release(self: Box<Self>) -> Result<bool, PortError> {
        Ok(!self.lost.load(Ordering::SeqCst))
    }
}

/// Repository settings in memory.
#[derive(Debug, Default)]
pub struct MemorySettings {
    values: Mutex<BTreeMap<String, Value>>,
}

impl MemorySettings {
    /// All settings.
    pub fn all(&self) -> BTreeMap<String, Value> {
        self.values.lock().expect("lock").clone()
    }
}

#[async_trait]
impl SettingsStore for MemorySettings {
    async fn get(&self, key: &str) -> Result<Option<Value>, PortError> {
        Ok(self.values.lock().expect("lock").get(key).cloned())
    }
    async fn set(&self, key: &str, value: Value) -> Result<(), PortError> {
        self.values
            .lock()
            .expect("lock")
            .insert(key.to_string(), value);
        Ok(())
    }
}

/// Online keys by key id.
#[derive(Debug, Default)]
pub struct MemorySigners {
    keys: Mutex<BTreeMap<String, Arc<KeySigner>>>,
}

impl MemorySigners {
    /// Makes `key` available under `keyid`.
    pub fn add(&self, keyid: &str, key: PrivateKey) {
        self.keys
            .lock()
            .expect("lock")
            .insert(keyid.to_string(), Arc::new(KeySigner(key)));
    }
}

#[async_trait]
impl SignerResolver for MemorySigners {
    async fn resolve(&self, keyid: &str, key: &Key) -> Result<Arc<dyn Signer>, PortError> {
        let found = self.keys.lock().expect("lock").get(keyid).cloned();
        match found {
            Some(s) if s.0.public_key().keyval == key.keyval => Ok(s),
            Some(_) => Err(PortError::new(
                PortErrorKind::Other,
                "private key does not match the public key",
            )),
            None => Err(PortError::new(
                PortErrorKind::Other,
                format!("no private key for {keyid}"),
            )),
        }
    }
}

/// A clock that stays where it is put.
#[derive(Debug)]
pub struct FixedClock(pub Mutex<DateTime<Utc>>);

impl FixedClock {
    /// A clock at `at`.
    pub fn at(at: DateTime<Utc>) -> Self {
        FixedClock(Mutex::new(at))
    }
    /// Moves the clock.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("lock") = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("lock")
    }
}

/// A full set of in-memory ports, with handles to inspect them.
#[derive(Debug, Clone)]
pub struct MemoryRepo {
    /// Files.
    pub store: Arc<MemoryStore>,
    /// Role rows.
    pub index: Arc<MemoryIndex>,
    /// Settings.
    pub settings: Arc<MemorySettings>,
    /// Online keys.
    pub signers: Arc<MemorySigners>,
    /// The repository lock.
    pub lock: Arc<MemoryLock>,
    /// Time.
    pub clock: Arc<FixedClock>,
    /// Parsed metadata shared by the tasks run on these ports.
    pub cache: Arc<MetadataCache>,
    /// The add and remove tasks' shared rounds.
    pub queue: Arc<PublishQueue>,
}

impl MemoryRepo {
    /// An empty repository at time `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        MemoryRepo {
            store: Arc::default(),
            index: Arc::default(),
            settings: Arc::default(),
            signers: Arc::default(),
            lock: Arc::default(),
            clock: Arc::new(FixedClock::at(now)),
            cache: Arc::default(),
            queue: Arc::default(),
        }
    }

    /// The ports over these fakes (jobs run inline).
    pub fn ports(&self) -> Ports {
        Ports::new(
            self.store.clone(),
            self.index.clone(),
            self.settings.clone(),
            self.signers.clone(),
            self.lock.clone(),
        )
        .with_clock(self.clock.clone())
    }

    /// The engine over these fakes, with this repository's cache and publishing rounds.
    pub fn engine(&self) -> Engine {
        self.engine_over(self.ports())
    }

    /// The engine over `ports` (these fakes with something changed), with this repository's
    /// cache and publishing rounds.
    pub fn engine_over(&self, ports: Ports) -> Engine {
        Engine::new(ports)
            .with_cache(self.cache.clone())
            .with_queue(self.queue.clone())
    }
}

/// The [`MetadataStore`] contract, as a test any implementation can run against itself.
/// Panics on the first breach.
pub async fn metadata_store_conformance(store: &dyn MetadataStore) {
    assert_eq!(
        store.get("1.conformance.json").await.unwrap(),
        None,
        "missing file"
    );
    store
        .put_versioned("1.conformance.json", b"{\"a\": 1}")
        .await
        .unwrap();
    assert_eq!(
        store.get("1.conformance.json").await.unwrap().as_deref(),
        Some(&b"{\"a\": 1}"[..])
    );
    // Same bytes again: a retried write succeeds.
    store
        .put_versioned("1.conformance.json", b"{\"a\": 1}")
        .await
        .unwrap();
    // Different bytes: refused, and the file keeps its content.
    let err = store
        .put_versioned("1.conformance.json", b"{\"a\": 2}")
        .await
        .unwrap_err();
    assert_eq!(err.kind, PortErrorKind::Conflict);
    assert_eq!(
        store.get("1.conformance.json").await.unwrap().as_deref(),
        Some(&b"{\"a\": 1}"[..])
    );
    // The timestamp is replaced only over the version the writer started from.
    let timestamp = |v: u64| format!(r#"{{"signed": {{"version": {v}}}, "signatures": []}}"#);
    let current = || async { store.get("timestamp.json").await.unwrap() };
    store
        .put_timestamp(timestamp(1).as_bytes(), None)
        .await
        .unwrap();
    let err = store
        .put_timestamp(timestamp(2).as_bytes(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, PortErrorKind::Conflict, "{err}");
    store
        .put_timestamp(timestamp(2).as_bytes(), Some(1))
        .await
        .unwrap();
    assert_eq!(current().await, Some(timestamp(2).into_bytes()));
    // A writer that started from version 1 and comes back late changes nothing.
    for stale in [Some(1), Some(3), None] {
        let err = store
            .put_timestamp(timestamp(9).as_bytes(), stale)
            .await
            .unwrap_err();
        assert_eq!(err.kind, PortErrorKind::Conflict, "{stale:?}: {err}");
        assert_eq!(current().await, Some(timestamp(2).into_bytes()));
    }
    // Concurrent writers from the same version: exactly one wins.
    let racers = (3..11).map(|v| {
        let bytes = timestamp(v);
        async move { store.put_timestamp(bytes.as_bytes(), Some(2)).await }
    });
    let won = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .filter(Result::is_ok)
        .count();
    assert_eq!(won, 1);
    // An empty file is a file.
    store
        .put_versioned("2.conformance.json", b"")
        .await
        .unwrap();
    assert_eq!(
        store.get("2.conformance.json").await.unwrap().as_deref(),
        Some(&b""[..])
    );

    // Batches: shared and distinct contents, each file readable under its own name.
    let same = Arc::new(b"{\"empty\": true}".to_vec());
    let mut batch: Vec<(String, Arc<Vec<u8>>)> = (0..100)
        .map(|i| (format!("1.batch-{i}.json"), same.clone()))
        .collect();
    batch.push(("1.other.json".into(), Arc::new(b"other".to_vec())));
    // Enough distinct contents that a store may sync them differently from a few.
    batch.extend((0..100).map(|i| {
        (
            format!("1.distinct-{i}.json"),
            Arc::new(format!("{{\"n\": {i}}}").into_bytes()),
        )
    }));
    store.put_versioned_many(&batch).await.unwrap();
    for (name, bytes) in &batch {
        assert_eq!(
            store.get(name).await.unwrap().as_deref(),
            Some(bytes.as_slice()),
            "{name}"
        );
    }
    // Retried with the same bytes: success.
    store.put_versioned_many(&batch).await.unwrap();
    // A batch touching a published name with other bytes is a conflict, and that file keeps
    // its content.
    let clash = vec![
        ("2.batch-new.json".to_string(), same.clone()),
        ("1.other.json".to_string(), Arc::new(b"changed".to_vec())),
    ];
    let err = store.put_versioned_many(&clash).await.unwrap_err();
    assert_eq!(err.kind, PortErrorKind::Conflict);
    assert_eq!(
        store.get("1.other.json").await.unwrap().as_deref(),
        Some(&b"other"[..])
    );
    // A bad name in a batch is refused before anything is written.
    let bad = vec![
        ("3.batch-new.json".to_string(), same.clone()),
        ("../escape.json".to_string(), same.clone()),
    ];
    assert!(store.put_versioned_many(&bad).await.is_err());
    assert_eq!(store.get("3.batch-new.json").await.unwrap(), None);

    // Discarding: present names go, missing ones are reported, the rest stays; a name
    // outside the rules is refused before anything is removed.
    let names: Vec<String> = ["1.batch-0.json", "9.never.json", "timestamp.json"]
        .map(String::from)
        .into();
    assert_eq!(store.discard(&names).await.unwrap(), [true, false, true]);
    for name in &names {
        assert_eq!(store.get(name).await.unwrap(), None, "{name}");
    }
    assert_eq!(store.discard(&names).await.unwrap(), [false, false, false]);
    assert!(store.get("1.batch-1.json").await.unwrap().is_some());
    let bad = ["1.batch-1.json".to_string(), "../1.root.json".to_string()];
    assert!(store.discard(&bad).await.is_err());
    assert!(store.get("1.batch-1.json").await.unwrap().is_some());
    // A discarded name can be written again, with other bytes.
    store
        .put_versioned("1.batch-0.json", b"again")
        .await
        .unwrap();
    assert_eq!(
        store.get("1.batch-0.json").await.unwrap().as_deref(),
        Some(&b"again"[..])
    );
}

/// The [`ArtifactIndex`] contract, as a test any implementation can run against itself, on
/// an index with no roles and no artifacts. Panics on the first breach.
// Longer than 120 lines: the contract is one scenario, each step building on the state the
// previous ones left, so it reads top to bottom like the trait's documentation.
pub async fn artifact_index_conformance(index: &dyn ArtifactIndex) {
    use chrono::TimeZone;
    let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
    let role = |name: &str, hours: i64, active: bool| RoleRecord {
        name: name.into(),
        version: 1,
        expires: t0 + chrono::Duration::hours(hours),
        active,
    };
    let new = |path: &str, info: &str, role: &str| NewArtifact {
        path: path.into(),
        info: serde_json::from_str(info).expect("test info"),
        role: role.into(),
    };
    let names = |rows: Vec<RoleRecord>| rows.into_iter().map(|r| r.name).collect::<Vec<_>>();

    // Roles: all or nothing, names unique whether active or not, expiry filter.
    index
        .create_roles(&[role("bins-1", 2, true), role("bins-0", 1, true)])
        .await
        .unwrap();
    index
        .create_roles(&[role("retired", 1, false)])
        .await
        .unwrap();
    let err = index
        .create_roles(&[role("fresh", 1, true), role("retired", 1, true)])
        .await
        .unwrap_err();
    assert_eq!(err.kind, PortErrorKind::Conflict);
    assert_eq!(index.role("fresh").await.unwrap(), None);
    assert_eq!(
        index.role("retired").await.unwrap(),
        Some(role("retired", 1, false))
    );
    assert_eq!(
        names(index.active_roles(None).await.unwrap()),
        ["bins-0", "bins-1"]
    );
    let soon = t0 + chrono::Duration::minutes(90);
    assert_eq!(
        names(index.active_roles(Some(soon)).await.unwrap()),
        ["bins-0"]
    );

    let info_a = r#"{"length": 1, "hashes": {"sha256": "aa"}}"#;
    let info_b = r#"{"length": 2, "hashes": {"sha256": "bb"}}"#;
    // Adding to a missing or retired role writes nothing.
    for bad in ["nope", "retired"] {
        let err = index
            .add_artifacts(&[new("a", info_a, "bins-0"), new("b", info_b, bad)])
            .await
            .unwrap_err();
        assert!(err.message.contains(bad), "{err}");
        assert!(index.roles_with_unpublished().await.unwrap().is_empty());
    }

    index
        .add_artifacts(&[new("a", info_a, "bins-1"), new("b", info_b, "bins-0")])
        .await
        .unwrap();
    assert_eq!(
        index.roles_with_unpublished().await.unwrap(),
        ["bins-0", "bins-1"]
    );
    let mut all = index
        .artifacts_of(&["bins-0".into(), "bins-1".into()])
        .await
        .unwrap();
    all.sort_by(|x, y| x.path.cmp(&y.path));
    assert_eq!(
        all,
        [
            ArtifactRow {
                path: "a".into(),
                info: info_a.into(),
                action: ArtifactAction::Add,
                published: false,
                role: "bins-1".into(),
            },
            ArtifactRow {
                path: "b".into(),
                info: info_b.into(),
                action: ArtifactAction::Add,
                published: false,
                role: "bins-0".into(),
            },
        ]
    );

    // Publishing records versions and marks the rows read; a row changed since is kept.
    index
        .add_artifacts(&[new("b", info_a, "bins-0")])
        .await
        .unwrap();
    let published = RoleRecord {
        version: 2,
        expires: t0 + chrono::Duration::days(7),
        ..role("bins-0", 0, true)
    };
    index
        .commit_publication(std::slice::from_ref(&published), &all)
        .await
        .unwrap();
    assert_eq!(index.role("bins-0").await.unwrap(), Some(published));
    let b = index.artifacts_of(&["bins-0".into()]).await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].info.as_str(), b[0].published), (info_a, false));
    let a = index.artifacts_of(&["bins-1".into()]).await.unwrap();
    assert!(a[0].published, "{a:?}");
    assert_eq!(index.roles_with_unpublished().await.unwrap(), ["bins-0"]);
    // Only the unpublished rows, of the named roles only.
    let changes = index
        .unpublished_of(&["bins-0".into(), "bins-1".into()])
        .await
        .unwrap();
    assert_eq!(changes, b);
    assert!(
        index
            .unpublished_of(&["bins-1".into()])
            .await
            .unwrap()
            .is_empty()
    );

    // Re-adding moves a row to its new role, unpublished.
    index
        .add_artifacts(&[new("a", info_a, "bins-0")])
        .await
        .unwrap();
    assert!(
        index
            .artifacts_of(&["bins-1".into()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        index.artifacts_of(&["bins-0".into()]).await.unwrap().len(),
        2
    );

    // Removal: input order, unknown paths skipped, a published removal is not changed again.
    let changed = index
        .remove_artifacts(&["b".into(), "zzz".into(), "a".into()])
        .await
        .unwrap();
    assert_eq!(changed, ["b", "a"]);
    let rows = index.artifacts_of(&["bins-0".into()]).await.unwrap();
    assert!(
        rows.iter()
            .all(|r| r.action == ArtifactAction::Remove && !r.published),
        "{rows:?}"
    );
    index.commit_publication(&[], &rows).await.unwrap();
    assert!(index.roles_with_unpublished().await.unwrap().is_empty());
    assert!(
        index
            .remove_artifacts(&["a".into()])
            .await
            .unwrap()
            .is_empty()
    );
    // Unknown roles in a publication are an error.
    let ghost = role("ghost", 1, true);
    assert!(index.commit_publication(&[ghost], &[]).await.is_err());
    // A deleted role becomes inactive, keeps its row (its name stays taken) and is no longer
    // listed among the active roles.
    let mut retire = role("bins-1", 2, true);
    retire.version = 3;
    retire.active = false;
    index
        .commit_publication(std::slice::from_ref(&retire), &[])
        .await
        .unwrap();
    assert_eq!(index.role("bins-1").await.unwrap(), Some(retire));
    assert_eq!(names(index.active_roles(None).await.unwrap()), ["bins-0"]);

    // A round of changes: its steps in order, in one transaction. The info text is the API
    // model's `json.dumps` (length, hashes, custom first).
    let info_c = r#"{"length": 3, "hashes": {"sha256": "cc"}, "custom": {"k": "v"}}"#;
    let changed = index
        .apply_changes(&[
            RowChange::Add(vec![new("c", info_c, "bins-0"), new("d", info_a, "bins-0")]),
            RowChange::Remove(vec!["c".into(), "a".into(), "zzz".into()]),
            RowChange::Add(vec![new("a", info_b, "bins-0")]),
            RowChange::Remove(vec!["d".into()]),
        ])
        .await
        .unwrap();
    assert_eq!(
        changed,
        [vec![], vec!["c".to_string()], vec![], vec!["d".to_string()]]
    );
    let sorted = |mut rows: Vec<ArtifactRow>| {
        rows.sort_by(|x, y| x.path.cmp(&y.path));
        rows
    };
    let before = sorted(index.artifacts_of(&["bins-0".into()]).await.unwrap());
    let row = |path: &str| before.iter().find(|r| r.path == path).cloned().unwrap();
    assert_eq!(
        (row("a").action, row("a").published, row("a").info.as_str()),
        (ArtifactAction::Add, false, info_b)
    );
    assert_eq!(
        (row("c").action, row("c").published, row("c").info.as_str()),
        (ArtifactAction::Remove, false, info_c)
    );
    assert_eq!(
        (row("d").action, row("d").published),
        (ArtifactAction::Remove, false)
    );
    // All or nothing: a step that fails leaves the earlier ones unwritten.
    let err = index
        .apply_changes(&[
            RowChange::Remove(vec!["a".into()]),
            RowChange::Add(vec![new("e", info_a, "retired")]),
        ])
        .await
        .unwrap_err();
    assert!(err.message.contains("retired"), "{err}");
    assert_eq!(
        sorted(index.artifacts_of(&["bins-0".into()]).await.unwrap()),
        before
    );

    // Clearing deletes every role (active or not) and every artifact; names are free again.
    index.clear().await.unwrap();
    assert!(index.active_roles(None).await.unwrap().is_empty());
    assert_eq!(index.role("retired").await.unwrap(), None);
    assert!(
        index
            .artifacts_of(&["bins-0".into(), "bins-1".into()])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(index.roles_with_unpublished().await.unwrap().is_empty());
    index
        .create_roles(&[role("retired", 1, true)])
        .await
        .unwrap();
    index.clear().await.unwrap();
}
