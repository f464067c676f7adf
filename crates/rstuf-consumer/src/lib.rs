//! The Celery consumer's logic, independent of any transport: a delivery becomes its result
//! records and then its acknowledgement, in the order the API and a crashed worker's successor
//! rely on. `rstuf-worker worker` wires it to Redis or RabbitMQ (`rstuf-adapters`); the tests
//! drive it over [`testing`]'s in-memory broker, results and lease.
//!
//! - [`broker`]: what a transport hands out ([`Received`]) and the [`Broker`] trait;
//! - [`results`]: the [`ResultBackend`] trait (Celery's `celery-task-meta-<id>` records);
//! - [`schedule`]: the five-minute bump of online roles, once per slot across workers, over a
//!   [`schedule::Lease`];
//! - [`Consumer`]: the loop (concurrency, intake, malformed messages, housekeeping, graceful
//!   shutdown) and the life of one delivery (redelivery of a finished task, expiry, ETA,
//!   STARTED, the run under the time limit, retries of transient failures, the final record,
//!   the acknowledgement).
//!
//! The invariant: a message is acknowledged only after its final record is stored, so a
//! worker that dies at any point loses nothing; the message is delivered again and a stored
//! SUCCESS keeps it from running twice.

#![warn(missing_docs)]

pub mod broker;
mod consume;
mod delivery;
pub mod results;
pub mod schedule;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rstuf_engine::Engine;

pub use broker::{Broker, Received};
pub use results::ResultBackend;
pub use schedule::Schedule;

/// The queues a worker consumes (the API publishes to both).
pub const QUEUES: [&str; 2] = ["metadata_repository", "rstuf_internals"];
/// The task the API sends.
pub const WORKER_TASK: &str = "app.repository_service_tuf_worker";
/// The task Celery beat sends every five minutes.
pub const BUMP_TASK: &str = "app.bump_online_roles";

/// A line on standard error, with the time.
pub fn log(line: &str) {
    eprintln!(
        "[{}] rstuf-worker: {line}",
        Utc::now().format("%Y-%m-%d %H:%M:%S%.3f")
    );
}

/// What a caught panic said (its `&str` or `String` payload).
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    match (
        payload.downcast_ref::<&str>(),
        payload.downcast_ref::<String>(),
    ) {
        (Some(text), _) => (*text).to_string(),
        (_, Some(text)) => text.clone(),
        _ => "a panic without a message".to_string(),
    }
}

/// How a consumer runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The node name in STARTED records (`rstuf@<worker id>`).
    pub hostname: String,
    /// Tasks run at once.
    pub concurrency: usize,
    /// A task still running after this is stopped and answered with FAILURE
    /// `TimeLimitExceeded`.
    pub time_limit: Duration,
    /// On shutdown, how long running tasks may take to finish before they are handed back.
    pub shutdown_timeout: Duration,
    /// A delivery not touched for this long may be restored by the broker: running tasks
    /// touch theirs three times as often, and housekeeping runs four times as often.
    pub visibility_timeout: Duration,
    /// How many times a task that failed on a retryable error runs again (the reference
    /// retries `OperationalError` three times).
    pub retries: u32,
    /// The wait before the first retry; it doubles with each retry.
    pub retry_wait: Duration,
    /// How many tasks with a future ETA may wait outside the slots (touched so no consumer
    /// restores them). Beyond it, a waiting task holds a slot.
    pub eta_capacity: usize,
}

impl Settings {
    /// The defaults besides the node name and concurrency (retries as the reference).
    pub fn new(hostname: impl Into<String>, concurrency: usize) -> Self {
        Settings {
            hostname: hostname.into(),
            concurrency: concurrency.max(1),
            time_limit: Duration::from_secs(1800),
            shutdown_timeout: Duration::from_secs(30),
            visibility_timeout: Duration::from_secs(300),
            retries: 3,
            retry_wait: Duration::from_secs(2),
            eta_capacity: 1024,
        }
    }
}

/// A consumer: the broker it takes deliveries from, where their records go, the engine that
/// runs them and the bump schedule.
pub struct Consumer<B: Broker> {
    broker: B,
    results: Box<dyn ResultBackend>,
    engine: Arc<Engine>,
    schedule: Schedule,
    settings: Settings,
    /// One permit per task that may wait for its ETA outside the slots.
    eta_holds: Arc<tokio::sync::Semaphore>,
}

impl<B: Broker> std::fmt::Debug for Consumer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<B: Broker> Consumer<B> {
    /// A consumer over these ports.
    pub fn new(
        broker: B,
        results: impl ResultBackend,
        engine: Arc<Engine>,
        schedule: Schedule,
        settings: Settings,
    ) -> Self {
        Consumer {
            broker,
            results: Box::new(results),
            engine,
            schedule,
            eta_holds: Arc::new(tokio::sync::Semaphore::new(settings.eta_capacity)),
            settings,
        }
    }
}
