//! Failpoints for the crash tests: wrappers around every port that writes something durable
//! (metadata files, SQL transactions, settings, result records, acknowledgements) which
//! abort the process just before or just after the n-th call of one named write. Abort, not
//! unwind: nothing after the failpoint runs, as when the machine loses power or the process
//! is killed.
//!
//! Armed only by `RSTUF_TEST_FAILPOINT=<name>[@<n>]` (see [`FAILPOINTS`] for the names);
//! without it the worker never builds these wrappers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rstuf_celery::result::Record;
use rstuf_consumer::{Broker, Received, ResultBackend};
use rstuf_engine::ports::{
    ArtifactIndex, ArtifactRow, MetadataStore, NewArtifact, PortError, RoleRecord, RowChange,
    SettingsStore,
};
use serde_json::Value;

/// Every durable write a failpoint can stop at; each is armed as `<write>.before` or
/// `<write>.after`.
pub const FAILPOINTS: &[&str] = &[
    "store.put_versioned",
    "store.put_versioned_many",
    "store.put_timestamp",
    "store.discard",
    "index.create_roles",
    "index.clear",
    "index.add_artifacts",
    "index.remove_artifacts",
    "index.apply_changes",
    "index.commit_publication",
    "settings.set",
    "results.record",
    "broker.ack",
];

/// One armed failpoint: abort at the `nth` time `name` is reached.
#[derive(Debug)]
pub struct Failpoint {
    name: String,
    nth: u64,
    hits: AtomicU64,
}

impl Failpoint {
    /// Parses `<write>.before` or `<write>.after`, optionally `@<n>` (default 1).
    pub fn parse(spec: &str) -> Result<Arc<Failpoint>, String> {
        let (name, nth) = match spec.split_once('@') {
            Some((name, n)) => (
                name,
                n.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{n:?} is not a positive count"))?,
            ),
            None => (spec, 1),
        };
        let known = FAILPOINTS.iter().any(|w| {
            name.strip_prefix(w)
                .is_some_and(|rest| rest == ".before" || rest == ".after")
        });
        if !known {
            return Err(format!(
                "unknown failpoint {name:?}: one of {} with .before or .after",
                FAILPOINTS.join(", ")
            ));
        }
        Ok(Arc::new(Failpoint {
            name: name.to_string(),
            nth,
            hits: AtomicU64::new(0),
        }))
    }

    fn reach(&self, write: &str, when: &str) {
        if self.name.strip_prefix(write) == Some(when)
            && self.hits.fetch_add(1, Ordering::SeqCst) + 1 == self.nth
        {
            eprintln!("rstuf-worker: failpoint {} reached: aborting", self.name);
            std::process::abort();
        }
    }

    /// Runs `write`, stopping the process before or after it if this is the failpoint.
    async fn around<T>(
        &self,
        name: &str,
        write: impl Future<Output = Result<T, PortError>>,
    ) -> Result<T, PortError> {
        self.reach(name, ".before");
        let result = write.await;
        if result.is_ok() {
            self.reach(name, ".after");
        }
        result
    }
}

/// A port with a failpoint around its durable writes.
#[derive(Debug, Clone)]
pub struct Faulty<P> {
    inner: P,
    point: Arc<Failpoint>,
}

impl<P> Faulty<P> {
    /// `inner`, stopping at `point`.
    pub fn new(inner: P, point: Arc<Failpoint>) -> Self {
        Faulty { inner, point }
    }
}

#[async_trait]
impl MetadataStore for Faulty<Arc<dyn MetadataStore>> {
    async fn put_versioned(&self, name: &str, bytes: &[u8]) -> Result<(), PortError> {
        let write = self.inner.put_versioned(name, bytes);
        self.point.around("store.put_versioned", write).await
    }
    async fn put_versioned_many(&self, files: &[(String, Arc<Vec<u8>>)]) -> Result<(), PortError> {
        let write = self.inner.put_versioned_many(files);
        self.point.around("store.put_versioned_many", write).await
    }
    async fn put_timestamp(&self, bytes: &[u8], replaces: Option<u64>) -> Result<(), PortError> {
        let write = self.inner.put_timestamp(bytes, replaces);
        self.point.around("store.put_timestamp", write).await
    }
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, PortError> {
        self.inner.get(name).await
    }
    async fn discard(&self, names: &[String]) -> Result<Vec<bool>, PortError> {
        let write = self.inner.discard(names);
        self.point.around("store.discard", write).await
    }
    async fn get_many(&self, names: &[String]) -> Result<Vec<Option<Vec<u8>>>, PortError> {
        self.inner.get_many(names).await
    }
}

#[async_trait]
impl ArtifactIndex for Faulty<Arc<dyn ArtifactIndex>> {
    async fn create_roles(&self, roles: &[RoleRecord]) -> Result<(), PortError> {
        let write = self.inner.create_roles(roles);
        self.point.around("index.create_roles", write).await
    }
    async fn clear(&self) -> Result<(), PortError> {
        let write = self.inner.clear();
        self.point.around("index.clear", write).await
    }
    async fn role(&self, name: &str) -> Result<Option<RoleRecord>, PortError> {
        self.inner.role(name).await
    }
    async fn active_roles(
        &self,
        expiring_before: Option<DateTime<Utc>>,
    ) -> Result<Vec<RoleRecord>, PortError> {
        self.inner.active_roles(expiring_before).await
    }
    async fn add_artifacts(&self, artifacts: &[NewArtifact]) -> Result<(), PortError> {
        let write = self.inner.add_artifacts(artifacts);
        self.point.around("index.add_artifacts", write).await
    }
    async fn remove_artifacts(&self, paths: &[String]) -> Result<Vec<String>, PortError> {
        let write = self.inner.remove_artifacts(paths);
        self.point.around("index.remove_artifacts", write).await
    }
    async fn apply_changes(&self, changes: &[RowChange]) -> Result<Vec<Vec<String>>, PortError> {
        let write = self.inner.apply_changes(changes);
        self.point.around("index.apply_changes", write).await
    }
    async fn roles_with_unpublished(&self) -> Result<Vec<String>, PortError> {
        self.inner.roles_with_unpublished().await
    }
    async fn artifacts_of(&self, roles: &[String]) -> Result<Vec<ArtifactRow>, PortError> {
        self.inner.artifacts_of(roles).await
    }
    async fn unpublished_of(&self, roles: &[String]) -> Result<Vec<ArtifactRow>, PortError> {
        self.inner.unpublished_of(roles).await
    }
    async fn commit_publication(
        &self,
        roles: &[RoleRecord],
        published: &[ArtifactRow],
    ) -> Result<(), PortError> {
        let write = self.inner.commit_publication(roles, published);
        self.point.around("index.commit_publication", write).await
    }
}

#[async_trait]
impl SettingsStore for Faulty<Arc<dyn SettingsStore>> {
    async fn get(&self, key: &str) -> Result<Option<Value>, PortError> {
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: Value) -> Result<(), PortError> {
        let write = self.inner.set(key, value);
        self.point.around("settings.set", write).await
    }
}

#[async_trait]
impl<R: ResultBackend> ResultBackend for Faulty<R> {
    async fn state(&self, task_id: &str) -> Result<Option<String>, PortError> {
        self.inner.state(task_id).await
    }
    async fn pre_run(&self, task_id: &str) -> Result<Option<String>, PortError> {
        self.inner.pre_run(task_id).await
    }
    async fn replace(&self, record: &Record) -> Result<Option<String>, PortError> {
        let write = self.inner.replace(record);
        self.point.around("results.record", write).await
    }
}

#[async_trait]
impl<B: Broker> Broker for Faulty<B> {
    type Handle = B::Handle;
    async fn next_batch(&self, max: usize) -> Result<Vec<Received<B::Handle>>, PortError> {
        self.inner.next_batch(max).await
    }
    async fn ack(&self, handle: &B::Handle) -> Result<(), PortError> {
        self.point
            .around("broker.ack", self.inner.ack(handle))
            .await
    }
    async fn hand_back(&self, handle: &B::Handle) -> Result<(), PortError> {
        self.inner.hand_back(handle).await
    }
    async fn touch(&self, handle: &B::Handle) -> Result<(), PortError> {
        self.inner.touch(handle).await
    }
    async fn set_held(&self, held: usize) -> Result<(), PortError> {
        self.inner.set_held(held).await
    }
    async fn maintain(&self) -> Result<usize, PortError> {
        self.inner.maintain().await
    }
    async fn close(&self) -> Result<(), PortError> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failpoints_parse_with_their_count_and_refuse_unknown_names() {
        let point = Failpoint::parse("store.put_timestamp.before@3").unwrap();
        assert_eq!(
            (point.name.as_str(), point.nth),
            ("store.put_timestamp.before", 3)
        );
        assert_eq!(Failpoint::parse("broker.ack.after").unwrap().nth, 1);
        assert!(Failpoint::parse("store.put_timestamp").is_err());
        assert!(Failpoint::parse("store.delete.before").is_err());
        assert!(Failpoint::parse("settings.set.after@0").is_err());
    }

    #[test]
    fn only_the_nth_hit_of_the_named_write_stops() {
        let point = Failpoint::parse("settings.set.after@2").unwrap();
        point.reach("settings.set", ".before");
        point.reach("settings.set", ".after");
        point.reach("store.put_timestamp", ".after");
        assert_eq!(point.hits.load(Ordering::SeqCst), 1);
    }
}
