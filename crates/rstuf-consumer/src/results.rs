//! The result backend as the consumer sees it: Celery's records (`celery-task-meta-<id>`),
//! which the API reads. Implemented on Redis in `rstuf-adapters` and in memory by
//! [`crate::testing::MemoryResults`].

use async_trait::async_trait;
use rstuf_celery::result::Record;
use rstuf_engine::ports::PortError;

/// Where task records go.
///
/// Contract: a stored SUCCESS is final. [`store`](ResultBackend::store) and
/// [`replace`](ResultBackend::replace) never overwrite it, nor does
/// [`pre_run`](ResultBackend::pre_run); each returns what was stored before, so a consumer
/// learns in the same round trip that a redelivered task already succeeded.
#[async_trait]
pub trait ResultBackend: Send + Sync + 'static {
    /// The state stored for a task (`SUCCESS`, `FAILURE`, ...), if any.
    async fn state(&self, task_id: &str) -> Result<Option<String>, PortError>;
    /// Writes the PRE_RUN record (not over a SUCCESS); returns the state stored before.
    async fn pre_run(&self, task_id: &str) -> Result<Option<String>, PortError>;
    /// Writes `record` (not over a SUCCESS); returns the state stored before.
    async fn replace(&self, record: &Record) -> Result<Option<String>, PortError>;
    /// Writes `record` (not over a SUCCESS); returns whether it was written.
    async fn store(&self, record: &Record) -> Result<bool, PortError> {
        let before = self.replace(record).await?;
        Ok(before.as_deref() != Some("SUCCESS"))
    }
}
