//! The ports: what the engine needs from the outside world, as small traits with written
//! contracts. Adapters implement them against Redis, SQL, storage and key services; `testing`
//! implements them in memory.
//!
//! Every port error carries a [`PortErrorKind`] so the engine can tell a conflict (someone
//! else wrote first) from a transient failure (retry) from anything else.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rstuf_metadata::keys::Key;
use rstuf_metadata::schema::TargetFile;
use serde_json::Value;

/// What kind of failure a port reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortErrorKind {
    /// A write-once name already holds different bytes, or a row already exists.
    Conflict,
    /// The service is unreachable or timed out; retrying may succeed.
    Transient,
    /// Anything else (bad configuration, corrupt data).
    Other,
}

/// A failure of a port.
///
/// [`Display`](fmt::Display) shows [`PortError::message`]: what the port was doing, then the
/// underlying error's text when there is one (`"reading a setting: connection refused"`), as
/// users see it in task results. The underlying error itself is the
/// [`source`](std::error::Error::source), for code that inspects the chain.
#[derive(Debug, Clone)]
pub struct PortError {
    /// The kind, for decisions.
    pub kind: PortErrorKind,
    /// What happened, for people (with the cause's text, if any).
    pub message: String,
    /// The underlying error, shared so that a port error stays cheap to clone (one failed
    /// batch answers many waiting tasks).
    cause: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl PortError {
    /// A failure of `kind` with no underlying error.
    pub fn new(kind: PortErrorKind, message: impl Into<String>) -> Self {
        PortError {
            kind,
            message: message.into(),
            cause: None,
        }
    }

    /// A failure of `kind` caused by `err` while doing `context`: the message is
    /// `"{context}: {err}"` and `err` is the source.
    pub fn caused<E>(kind: PortErrorKind, context: impl fmt::Display, err: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        PortError {
            kind,
            message: format!("{context}: {err}"),
            cause: Some(Arc::new(err)),
        }
    }

    /// A failure of `kind` that is `err` and needs no context: the message is `err`'s text
    /// and `err` is the source.
    pub fn from_cause<E>(kind: PortErrorKind, err: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        PortError {
            kind,
            message: err.to_string(),
            cause: Some(Arc::new(err)),
        }
    }
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PortError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The error itself, not the `Arc` around it, so callers can downcast it.
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Where metadata files live (local directory, S3 bucket).
///
/// Contract:
/// - `put_versioned` writes `<version>.<role>.json` (or `1.root.json`) **once**. Writing the
///   same bytes again succeeds (a retried task); writing different bytes under an existing
///   name fails with [`PortErrorKind::Conflict`] and changes nothing. A successful return
///   means the bytes are durable and readers see all or nothing of them.
/// - `put_versioned_many` does the same for many files at once, each with the same rules; a
///   store makes the whole batch durable together (one filesystem sync, concurrent uploads).
///   On error, files of the batch may exist; nothing references them yet, and a retry of the
///   same batch succeeds.
/// - `put_timestamp` atomically replaces `timestamp.json` (readers see the old or the new file),
///   and only if the file it replaces is the one the publication started from: version
///   `replaces`, or no file at all for `None`. Otherwise it writes nothing and fails with
///   [`PortErrorKind::Conflict`]. This compare-and-swap is the fenced commit point of every
///   publication: a writer that stalled past its lock and lost it to another can never
///   publish over that other's timestamp. A store makes the check and the replacement one
///   atomic step against other writers of the same store (a file lock for a directory, a
///   conditional write such as `If-Match` on the version read for an object store).
/// - `get` returns `None` for a missing file. It is not used to find latest versions by
///   listing; the engine knows versions from the artifact index and the timestamp.
/// - `discard` removes files that were written but never published: the engine calls it only
///   for a repository whose bootstrap never wrote its root, to clear what an interrupted
///   bootstrap left before starting again. Each name is removed if present (`true`) or
///   found missing (`false`); on success the removals are durable. `timestamp.json` may be
///   one of the names; any other name follows the versioned-name rules.
#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// Writes a versioned file once.
    async fn put_versioned(&self, name: &str, bytes: &[u8]) -> Result<(), PortError>;
    /// Writes many versioned files once each. The default checks every name, then writes
    /// the files one by one.
    async fn put_versioned_many(&self, files: &[(String, Arc<Vec<u8>>)]) -> Result<(), PortError> {
        for (name, _) in files {
            check_versioned_name(name)?;
        }
        for (name, bytes) in files {
            self.put_versioned(name, bytes).await?;
        }
        Ok(())
    }
    /// Replaces `timestamp.json` if it is still version `replaces` (`None`: absent).
    async fn put_timestamp(&self, bytes: &[u8], replaces: Option<u64>) -> Result<(), PortError>;
    /// Reads a file.
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, PortError>;
    /// Removes never-published files; for each name, whether it existed.
    async fn discard(&self, names: &[String]) -> Result<Vec<bool>, PortError>;
    /// Reads many files (a chunk of roles to re-sign); the default reads them one by one.
    async fn get_many(&self, names: &[String]) -> Result<Vec<Option<Vec<u8>>>, PortError> {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            out.push(self.get(name).await?);
        }
        Ok(out)
    }
}

/// Refuses versioned file names that could leave a directory, hide files or replace
/// `timestamp.json`; every store applies it before writing anything.
pub fn check_versioned_name(name: &str) -> Result<(), PortError> {
    let ok = !name.is_empty()
        && name.ends_with(".json")
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name != "timestamp.json";
    if ok {
        Ok(())
    } else {
        Err(PortError::new(
            PortErrorKind::Other,
            format!("refusing metadata file name {name:?}"),
        ))
    }
}

/// Checks that `current` (the bytes of `timestamp.json`, if any) is what a
/// [`MetadataStore::put_timestamp`] expecting version `replaces` may replace; every store
/// applies it while it holds out other writers.
pub fn check_timestamp_replaces(
    current: Option<&[u8]>,
    replaces: Option<u64>,
) -> Result<(), PortError> {
    let found = current.map(|bytes| {
        serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| v["signed"]["version"].as_u64())
    });
    let describe = |v: Option<Option<u64>>| match v {
        None => "absent".to_string(),
        Some(None) => "unreadable".to_string(),
        Some(Some(n)) => format!("version {n}"),
    };
    if found == replaces.map(Some) {
        Ok(())
    } else {
        Err(PortError::new(
            PortErrorKind::Conflict,
            format!(
                "timestamp.json is {}, not {} as when this publication started: another \
                 publication wrote it first",
                describe(found),
                describe(replaces.map(Some)),
            ),
        ))
    }
}

/// Refuses names [`MetadataStore::discard`] must not touch: `timestamp.json` or a versioned
/// name.
pub fn check_discarded_name(name: &str) -> Result<(), PortError> {
    if name == "timestamp.json" {
        Ok(())
    } else {
        check_versioned_name(name)
    }
}

/// A delegated role's row in the artifact index (`rstuf_target_roles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRecord {
    /// Role name (`bins-3f`, `production`).
    pub name: String,
    /// Latest published version.
    pub version: u64,
    /// Expiry of that version.
    pub expires: DateTime<Utc>,
    /// False once the delegation was deleted (the name is then never reused).
    pub active: bool,
}

/// What an artifact row asks for (`rstuf_target_files.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactAction {
    /// The artifact is (to be) listed in its role.
    Add,
    /// The artifact is (to be) dropped from its role.
    Remove,
}

/// An artifact row of the index (`rstuf_target_files`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRow {
    /// Artifact path, the key of the row.
    pub path: String,
    /// The artifact's TUF target info as the index stores it (JSON text: the index's
    /// encoding of a [`NewArtifact`]'s info, or whatever the reference worker or the CLI
    /// wrote), returned verbatim.
    pub info: String,
    /// Add or remove.
    pub action: ArtifactAction,
    /// Whether published metadata reflects this row.
    pub published: bool,
    /// The delegated role the row belongs to.
    pub role: String,
}

/// An artifact to add (or re-add with new info).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArtifact {
    /// Artifact path.
    pub path: String,
    /// Target info; the index encodes it as the text it stores (for SQL, what the API's
    /// model dumps).
    pub info: TargetFile,
    /// The role it belongs to; must have an active row.
    pub role: String,
}

/// One step of a round of artifact changes (see [`ArtifactIndex::apply_changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowChange {
    /// Adds (or re-adds) artifacts, as [`ArtifactIndex::add_artifacts`].
    Add(Vec<NewArtifact>),
    /// Marks paths for removal, as [`ArtifactIndex::remove_artifacts`].
    Remove(Vec<String>),
}

/// The SQL index of delegated roles and artifacts, shared with the API's CLI import.
///
/// Contract:
/// - `create_roles` inserts all rows in one transaction or none; a name that exists (active
///   or not) is a [`PortErrorKind::Conflict`].
/// - `add_artifacts` and `remove_artifacts` each run in one transaction; `apply_changes`
///   runs its steps in order in one transaction (a backend with transactions overrides the
///   default, which applies them one by one).
/// - `commit_publication` is the only way a row becomes published, and it records the role
///   versions that cover it in the same transaction. A row whose action or info changed since
///   it was read is left unpublished, so a concurrent re-add is never lost.
/// - `clear` deletes every artifact and role row in one transaction; the engine calls it only
///   for a repository whose bootstrap never wrote its root (the rows an interrupted bootstrap
///   left).
#[async_trait]
pub trait ArtifactIndex: Send + Sync {
    /// Inserts new delegated roles.
    async fn create_roles(&self, roles: &[RoleRecord]) -> Result<(), PortError>;
    /// Deletes every row.
    async fn clear(&self) -> Result<(), PortError>;
    /// A role by name, active or not.
    async fn role(&self, name: &str) -> Result<Option<RoleRecord>, PortError>;
    /// Active roles, all of them or those expiring before `expiring_before`.
    async fn active_roles(
        &self,
        expiring_before: Option<DateTime<Utc>>,
    ) -> Result<Vec<RoleRecord>, PortError>;
    /// Adds artifacts: a new path gets a row, an existing row is reset to an unpublished
    /// `Add` with the new info and role. A role without an active row is an
    /// [`PortErrorKind::Other`] error naming it, and nothing is written.
    async fn add_artifacts(&self, artifacts: &[NewArtifact]) -> Result<(), PortError>;
    /// Marks artifacts for removal: each path whose row is not already a published `Remove`
    /// becomes an unpublished `Remove`. Returns the paths changed, in input order.
    async fn remove_artifacts(&self, paths: &[String]) -> Result<Vec<String>, PortError>;
    /// Applies `changes` in order, all or none: each step as its own method would. Returns,
    /// for each step, the paths it changed: those a `Remove` marked (as
    /// [`ArtifactIndex::remove_artifacts`] returns them), none for an `Add`. The default
    /// applies the steps one after another.
    async fn apply_changes(&self, changes: &[RowChange]) -> Result<Vec<Vec<String>>, PortError> {
        let mut changed = Vec::with_capacity(changes.len());
        for change in changes {
            changed.push(match change {
                RowChange::Add(rows) => {
                    self.add_artifacts(rows).await?;
                    Vec::new()
                }
                RowChange::Remove(paths) => self.remove_artifacts(paths).await?,
            });
        }
        Ok(changed)
    }
    /// The names of the roles that have unpublished rows, sorted.
    async fn roles_with_unpublished(&self) -> Result<Vec<String>, PortError>;
    /// Every row of the named roles.
    async fn artifacts_of(&self, roles: &[String]) -> Result<Vec<ArtifactRow>, PortError>;
    /// The unpublished rows of the named roles (what a publish applies to their published
    /// versions); the default filters [`ArtifactIndex::artifacts_of`].
    async fn unpublished_of(&self, roles: &[String]) -> Result<Vec<ArtifactRow>, PortError> {
        let mut rows = self.artifacts_of(roles).await?;
        rows.retain(|r| !r.published);
        Ok(rows)
    }
    /// Records a publication: sets each role's version, expiry and activity (a deleted role
    /// becomes inactive; its name is never used again), and marks published each
    /// row of `published` that still holds the same action and info.
    async fn commit_publication(
        &self,
        roles: &[RoleRecord],
        published: &[ArtifactRow],
    ) -> Result<(), PortError>;
}

/// The repository settings shared with the API (the `DYNACONF_MAIN` hash).
///
/// Contract: each `set` writes one field and nothing else (no read-modify-write of the whole
/// hash); `Value::Null` stores dynaconf's `None`. `get` of a missing field is `None`; of a
/// field holding `None` it is `Some(Value::Null)`.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// Reads one setting.
    async fn get(&self, key: &str) -> Result<Option<Value>, PortError>;
    /// Writes one setting.
    async fn set(&self, key: &str, value: Value) -> Result<(), PortError>;
}

/// Signs with one online key.
#[async_trait]
pub trait Signer: Send + Sync + fmt::Debug {
    /// Signs `msg` with the key's scheme; returns the raw signature bytes.
    async fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PortError>;

    /// Signs `msg` on the calling thread, when the key is in this process (key files,
    /// environment variables): many roles are then encoded and signed together in one
    /// [`Cpu`] job. `None` for signers that must be awaited (a cloud KMS).
    fn sign_here(&self, msg: &[u8]) -> Option<Result<Vec<u8>, PortError>> {
        let _ = msg;
        None
    }
}

/// Signs with a private key held in memory (key files, environment variables).
#[derive(Debug)]
pub struct KeySigner(pub rstuf_metadata::keys::PrivateKey);

#[async_trait]
impl Signer for KeySigner {
    async fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PortError> {
        self.0
            .sign(msg)
            .map_err(|e| PortError::from_cause(PortErrorKind::Other, e))
    }

    fn sign_here(&self, msg: &[u8]) -> Option<Result<Vec<u8>, PortError>> {
        Some(
            self.0
                .sign(msg)
                .map_err(|e| PortError::from_cause(PortErrorKind::Other, e)),
        )
    }
}

/// A job for a [`Cpu`].
pub type CpuJob = Box<dyn FnOnce() + Send + 'static>;

/// Runs CPU-bound jobs (parsing, encoding and signing a group of roles) off the task's
/// thread, so a publication of thousands of roles uses every core.
///
/// Contract: `run` returns after `job` has run to completion, or with an error if it could
/// not run or panicked. A job allocates and frees its working data itself, on its own thread
/// (allocators handle that best); only its result crosses threads.
#[async_trait]
pub trait Cpu: Send + Sync + fmt::Debug {
    /// How many jobs are worth running at once (the number of cores).
    fn parallelism(&self) -> usize;
    /// Runs `job`.
    async fn run(&self, job: CpuJob) -> Result<(), PortError>;
}

/// Runs jobs inline on the caller's thread, one at a time (tests, single-threaded tools).
#[derive(Debug, Clone, Copy, Default)]
pub struct InlineCpu;

#[async_trait]
impl Cpu for InlineCpu {
    fn parallelism(&self) -> usize {
        1
    }

    async fn run(&self, job: CpuJob) -> Result<(), PortError> {
        job();
        Ok(())
    }
}

/// Runs `f` on `cpu` and returns its result.
pub(crate) async fn on_cpu<T: Send + 'static>(
    cpu: &dyn Cpu,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PortError> {
    let slot = Arc::new(Mutex::new(None));
    let filled = slot.clone();
    cpu.run(Box::new(move || {
        let out = f();
        *filled.lock().expect("result slot") = Some(out);
    }))
    .await?;
    let out = slot.lock().expect("result slot").take();
    out.ok_or_else(|| PortError::new(PortErrorKind::Other, "a CPU job ended without a result"))
}

/// Finds the signer for an online key from its `x-rstuf-online-key-uri`.
///
/// Contract: resolving checks that the key material is reachable and matches `key`, so a bad
/// URI is reported before anything is written.
#[async_trait]
pub trait SignerResolver: Send + Sync {
    /// The signer for `key` (id `keyid`).
    async fn resolve(&self, keyid: &str, key: &Key) -> Result<Arc<dyn Signer>, PortError>;
}

/// The current time (tests move it).
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The ports of one repository: the outside services a task talks to. The engine's own state
/// (parsed metadata, publishing rounds) is in [`crate::Engine`], which holds these.
#[derive(Clone)]
pub struct Ports {
    /// Metadata files.
    pub store: Arc<dyn MetadataStore>,
    /// Roles and artifacts.
    pub index: Arc<dyn ArtifactIndex>,
    /// Repository settings.
    pub settings: Arc<dyn SettingsStore>,
    /// Online key signers.
    pub signers: Arc<dyn SignerResolver>,
    /// The repository lock (`LOCK_TARGETS`).
    pub lock: Arc<dyn RepoLock>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Where roles are encoded and signed in bulk.
    pub cpu: Arc<dyn Cpu>,
}

impl Ports {
    /// The ports over these services, with the [`SystemClock`] and jobs run inline
    /// ([`InlineCpu`]); [`Ports::with_clock`] and [`Ports::with_cpu`] change those.
    pub fn new(
        store: Arc<dyn MetadataStore>,
        index: Arc<dyn ArtifactIndex>,
        settings: Arc<dyn SettingsStore>,
        signers: Arc<dyn SignerResolver>,
        lock: Arc<dyn RepoLock>,
    ) -> Self {
        Ports {
            store,
            index,
            settings,
            signers,
            lock,
            clock: Arc::new(SystemClock),
            cpu: Arc::new(InlineCpu),
        }
    }

    /// The same ports with time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same ports with bulk work run on `cpu`.
    pub fn with_cpu(mut self, cpu: Arc<dyn Cpu>) -> Self {
        self.cpu = cpu;
        self
    }

    /// The same ports with files in `store`.
    pub fn with_store(mut self, store: Arc<dyn MetadataStore>) -> Self {
        self.store = store;
        self
    }

    /// The same ports with online keys from `signers`.
    pub fn with_signers(mut self, signers: Arc<dyn SignerResolver>) -> Self {
        self.signers = signers;
        self
    }

    /// The same ports with the repository lock `lock`.
    pub fn with_lock(mut self, lock: Arc<dyn RepoLock>) -> Self {
        self.lock = lock;
        self
    }
}

impl fmt::Debug for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ports { .. }")
    }
}

/// Settings by name, for reading several at once.
pub type SettingsMap = BTreeMap<String, Value>;

/// The repository lock (`LOCK_TARGETS`), shared with reference workers.
///
/// Contract: `acquire` waits until the lock is held by this caller, then keeps it alive until
/// the guard is released. If the lock is lost anyway (the holder stalled longer than the
/// lock's lifetime and another worker took it), `still_held` turns false; a writer checks it
/// before writing the timestamp and aborts if it is false.
#[async_trait]
pub trait RepoLock: Send + Sync {
    /// Waits for and takes the lock.
    async fn acquire(&self) -> Result<Box<dyn LockGuard>, PortError>;
}

/// A held repository lock.
#[async_trait]
pub trait LockGuard: Send + Sync {
    /// Whether the lock is still ours.
    async fn still_held(&self) -> Result<bool, PortError>;
    /// Releases the lock; `Ok(false)` if it had already been lost.
    async fn release(self: Box<Self>) -> Result<bool, PortError>;
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_caused_port_error_keeps_its_source_and_text() {
        let io = std::fs::read("/nonexistent/rstuf/1.root.json").unwrap_err();
        let text = io.to_string();
        let err = PortError::caused(PortErrorKind::Other, "reading 1.root.json", io);
        assert_eq!(err.to_string(), format!("reading 1.root.json: {text}"));
        assert_eq!(err.message, err.to_string());
        let source = err.source().expect("a source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("the io error");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        // Clones share the cause.
        let copy = err.clone();
        assert!(copy.source().unwrap().is::<std::io::Error>());
    }

    #[test]
    fn from_cause_has_the_cause_text() {
        let io = std::io::Error::other("disk on fire");
        let err = PortError::from_cause(PortErrorKind::Transient, io);
        assert_eq!(err.to_string(), "disk on fire");
        assert_eq!(err.kind, PortErrorKind::Transient);
        assert!(err.source().is_some());
    }

    #[test]
    fn a_plain_port_error_has_no_source() {
        let err = PortError::new(PortErrorKind::Conflict, "1.root.json exists");
        assert!(err.source().is_none());
        assert_eq!(err.to_string(), "1.root.json exists");
        assert!(
            check_versioned_name("../x.json")
                .unwrap_err()
                .source()
                .is_none()
        );
    }

    #[test]
    fn a_task_error_passes_the_source_through() {
        let io = std::io::Error::other("gone");
        let err = crate::TaskError::from(PortError::caused(PortErrorKind::Other, "reading", io));
        assert_eq!(err.to_string(), "reading: gone");
        assert!(err.source().unwrap().is::<std::io::Error>());
    }
}
