//! The engine over one repository: its [`Ports`] and the state the engine keeps between
//! tasks (parsed metadata, the add and remove tasks' publishing rounds). Every task action
//! takes an [`Engine`]; share one per repository and process.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use rstuf_metadata::schema::{Metadata, Snapshot, Targets};

use crate::ports::Ports;
use crate::queue::PublishQueue;

/// The ports of one repository and the engine's state for it. Cloning shares the state.
///
/// It dereferences to its [`Ports`], so a task reaches a port as `engine.store`.
#[derive(Clone)]
pub struct Engine {
    ports: Ports,
    pub(crate) cache: Arc<MetadataCache>,
    pub(crate) queue: Arc<PublishQueue>,
}

impl Engine {
    /// The engine over `ports`, with an empty cache and no publishing round yet.
    pub fn new(ports: Ports) -> Self {
        Engine {
            ports,
            cache: Arc::default(),
            queue: Arc::default(),
        }
    }

    /// The same engine keeping parsed metadata in `cache` (shared with other engines over the
    /// same repository).
    pub fn with_cache(mut self, cache: Arc<MetadataCache>) -> Self {
        self.cache = cache;
        self
    }

    /// The same engine sharing the publishing rounds of `queue`.
    pub fn with_queue(mut self, queue: Arc<PublishQueue>) -> Self {
        self.queue = queue;
        self
    }

    /// The ports.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }
}

impl Deref for Engine {
    type Target = Ports;

    fn deref(&self) -> &Ports {
        &self.ports
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// The latest snapshot and targets this process read or wrote, parsed. Versioned files are
/// write-once, so a copy kept under its version never goes stale; a publish then costs no
/// re-parse of a snapshot listing 16,384 bins.
///
/// Each slot keeps the newest version seen: a task that reads an older one (the timestamp it
/// read still named it) does not push out the one the next publication needs. The targets
/// version each recent snapshot names is remembered too, so a task that only needs the
/// delegations finds them without parsing the snapshot the timestamp names.
#[derive(Debug, Default)]
pub struct MetadataCache {
    pub(crate) snapshot: Mutex<Option<Arc<Metadata<Snapshot>>>>,
    pub(crate) targets: Mutex<Option<Arc<Metadata<Targets>>>>,
    targets_of: Mutex<std::collections::VecDeque<(u64, u64)>>,
}

/// How many snapshot versions' targets versions the cache remembers.
const REMEMBERED_SNAPSHOTS: usize = 32;

impl MetadataCache {
    /// Drops everything kept: the files were discarded (an interrupted bootstrap's), so the
    /// same names may be written again with other bytes.
    pub(crate) fn forget(&self) {
        *self.snapshot.lock().expect("cache lock") = None;
        *self.targets.lock().expect("cache lock") = None;
        self.targets_of.lock().expect("cache lock").clear();
    }

    /// Notes that snapshot version `snapshot` names targets version `targets`.
    pub(crate) fn note_targets_version(&self, snapshot: u64, targets: u64) {
        let mut known = self.targets_of.lock().expect("cache lock");
        if known.iter().any(|(s, _)| *s == snapshot) {
            return;
        }
        if known.len() == REMEMBERED_SNAPSHOTS {
            known.pop_front();
        }
        known.push_back((snapshot, targets));
    }

    /// The targets version snapshot version `snapshot` names, if noted.
    pub(crate) fn targets_version_of(&self, snapshot: u64) -> Option<u64> {
        let known = self.targets_of.lock().expect("cache lock");
        known.iter().find(|(s, _)| *s == snapshot).map(|(_, t)| *t)
    }
}
