//! Ports that stop for good at one durable write, as a process that dies there: the engine's
//! own crash tests run every task interrupted at each of its writes in turn, then run it
//! again over what was left (the worker's crash suite does the same with real adapters and a
//! real abort).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::ports::{
    ArtifactIndex, ArtifactRow, MetadataStore, NewArtifact, PortError, PortErrorKind, Ports,
    RoleRecord, RowChange, SettingsStore,
};

/// Where the process "dies": at the `nth` durable write (counted over files, rows and
/// settings together), just before it or just after it.
#[derive(Debug)]
pub struct Interruption {
    nth: u64,
    after: bool,
    writes: AtomicU64,
    dead: AtomicBool,
}

impl Interruption {
    /// Stops at write `nth` (from 1), `after` it was made or before.
    pub fn at(nth: u64, after: bool) -> Arc<Self> {
        Arc::new(Interruption {
            nth,
            after,
            writes: AtomicU64::new(0),
            dead: AtomicBool::new(false),
        })
    }

    /// Whether the interruption happened.
    pub fn happened(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// How many writes were reached (made or stopped at).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// `ports` with files, rows and settings behind this interruption.
    pub fn ports(self: &Arc<Self>, ports: Ports) -> Ports {
        let mut ports = ports;
        ports.store = Arc::new(Cut {
            inner: ports.store.clone(),
            at: self.clone(),
        });
        ports.index = Arc::new(Cut {
            inner: ports.index.clone(),
            at: self.clone(),
        });
        ports.settings = Arc::new(Cut {
            inner: ports.settings.clone(),
            at: self.clone(),
        });
        ports
    }

    fn gone() -> PortError {
        PortError::new(PortErrorKind::Other, "the process was interrupted")
    }

    fn read(&self) -> Result<(), PortError> {
        if self.happened() {
            Err(Self::gone())
        } else {
            Ok(())
        }
    }

    async fn write<T>(
        &self,
        write: impl Future<Output = Result<T, PortError>>,
    ) -> Result<T, PortError> {
        self.read()?;
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n != self.nth {
            return write.await;
        }
        self.dead.store(true, Ordering::SeqCst);
        if self.after {
            write.await?;
        }
        Err(Self::gone())
    }
}

struct Cut<P: ?Sized> {
    inner: Arc<P>,
    at: Arc<Interruption>,
}

#[async_trait]
impl MetadataStore for Cut<dyn MetadataStore> {
    async fn put_versioned(&self, name: &str, bytes: &[u8]) -> Result<(), PortError> {
        self.at.write(self.inner.put_versioned(name, bytes)).await
    }
    async fn put_versioned_many(&self, files: &[(String, Arc<Vec<u8>>)]) -> Result<(), PortError> {
        self.at.write(self.inner.put_versioned_many(files)).await
    }
    async fn put_timestamp(&self, bytes: &[u8], replaces: Option<u64>) -> Result<(), PortError> {
        self.at
            .write(self.inner.put_timestamp(bytes, replaces))
            .await
    }
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, PortError> {
        self.at.read()?;
        self.inner.get(name).await
    }
    async fn get_many(&self, names: &[String]) -> Result<Vec<Option<Vec<u8>>>, PortError> {
        self.at.read()?;
        self.inner.get_many(names).await
    }
    async fn discard(&self, names: &[String]) -> Result<Vec<bool>, PortError> {
        self.at.write(self.inner.discard(names)).await
    }
}

#[async_trait]
impl ArtifactIndex for Cut<dyn ArtifactIndex> {
    async fn create_roles(&self, roles: &[RoleRecord]) -> Result<(), PortError> {
        self.at.write(self.inner.create_roles(roles)).await
    }
    async fn clear(&self) -> Result<(), PortError> {
        self.at.write(self.inner.clear()).await
    }
    async fn role(&self, name: &str) -> Result<Option<RoleRecord>, PortError> {
        self.at.read()?;
        self.inner.role(name).await
    }
    async fn active_roles(
        &self,
        expiring_before: Option<DateTime<Utc>>,
    ) -> Result<Vec<RoleRecord>, PortError> {
        self.at.read()?;
        self.inner.active_roles(expiring_before).await
    }
    async fn add_artifacts(&self, artifacts: &[NewArtifact]) -> Result<(), PortError> {
        self.at.write(self.inner.add_artifacts(artifacts)).await
    }
    async fn remove_artifacts(&self, paths: &[String]) -> Result<Vec<String>, PortError> {
        self.at.write(self.inner.remove_artifacts(paths)).await
    }
    async fn apply_changes(&self, changes: &[RowChange]) -> Result<Vec<Vec<String>>, PortError> {
        self.at.write(self.inner.apply_changes(changes)).await
    }
    async fn roles_with_unpublished(&self) -> Result<Vec<String>, PortError> {
        self.at.read()?;
        self.inner.roles_with_unpublished().await
    }
    async fn artifacts_of(&self, roles: &[String]) -> Result<Vec<ArtifactRow>, PortError> {
        self.at.read()?;
        self.inner.artifacts_of(roles).await
    }
    async fn unpublished_of(&self, roles: &[String]) -> Result<Vec<ArtifactRow>, PortError> {
        self.at.read()?;
        self.inner.unpublished_of(roles).await
    }
    async fn commit_publication(
        &self,
        roles: &[RoleRecord],
        published: &[ArtifactRow],
    ) -> Result<(), PortError> {
        self.at
            .write(self.inner.commit_publication(roles, published))
            .await
    }
}

#[async_trait]
impl SettingsStore for Cut<dyn SettingsStore> {
    async fn get(&self, key: &str) -> Result<Option<Value>, PortError> {
        self.at.read()?;
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: Value) -> Result<(), PortError> {
        self.at.write(self.inner.set(key, value)).await
    }
}
