//! In-memory broker, result backend and lease, for tests of the consumer and of code that
//! drives one. Each keeps a log of what was asked of it, in order, so tests can check the
//! order of records and acknowledgements; each can be told to fail like an unreachable
//! service.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rstuf_celery::result::Record;
use rstuf_celery::{MessageError, TaskMessage};
use rstuf_engine::ports::{PortError, PortErrorKind};
use tokio::sync::Notify;

use crate::schedule::{Claim, Lease};
use crate::{Broker, Received, ResultBackend};

fn unreachable_service(what: &str) -> PortError {
    PortError::new(PortErrorKind::Transient, format!("{what} is unreachable"))
}

/// What happened to deliveries and records, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A task message was handed to the consumer.
    Delivered(String),
    /// A record with this status was stored for the task.
    Stored(String, &'static str),
    /// The task's PRE_RUN record was written.
    PreRun(String),
    /// The task's delivery was acknowledged.
    Acked(String),
    /// The task's delivery was handed back to its queue.
    HandedBack(String),
}

/// The shared log of a [`MemoryBroker`] and the [`MemoryResults`] made with it.
pub type EventLog = Arc<Mutex<Vec<Event>>>;

/// The hold on one in-memory delivery.
#[derive(Debug, Clone)]
pub struct MemoryHandle {
    /// The delivered message, put back on the queue if handed back.
    pub message: TaskMessage,
    /// Which delivery of the message this is (1 for the first).
    pub delivery: u32,
    /// The delivery's tag among those outstanding.
    tag: u64,
}

#[derive(Debug, Default)]
struct BrokerState {
    queue: VecDeque<(TaskMessage, u32)>,
    malformed: VecDeque<(MessageError, Option<String>)>,
    deliveries: BTreeMap<String, u32>,
    failing_acks: u32,
    /// Deliveries neither acknowledged nor handed back: the message and when it was
    /// delivered or last touched.
    outstanding: BTreeMap<u64, (TaskMessage, Instant)>,
    next_tag: u64,
    /// Restore deliveries untouched for this long ([`MemoryBroker::with_visibility`]).
    visibility: Option<Duration>,
    held: Vec<usize>,
}

/// A broker holding one queue in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryBroker {
    state: Arc<Mutex<BrokerState>>,
    arrived: Arc<Notify>,
    log: EventLog,
}

impl MemoryBroker {
    /// An empty broker writing to its own log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A broker that, like kombu's Redis transport, puts a delivery back on its queue when
    /// housekeeping finds it neither acknowledged nor touched for `visibility`.
    pub fn with_visibility(visibility: Duration) -> Self {
        let broker = Self::default();
        broker.state.lock().expect("broker").visibility = Some(visibility);
        broker
    }

    /// Every count of deliveries held outside the slots the consumer reported, in order.
    pub fn held_reports(&self) -> Vec<usize> {
        self.state.lock().expect("broker").held.clone()
    }

    /// The log shared with results made by [`MemoryBroker::results`].
    pub fn log(&self) -> Vec<Event> {
        self.log.lock().expect("log").clone()
    }

    /// A result backend writing to the same log.
    pub fn results(&self) -> MemoryResults {
        MemoryResults {
            state: Arc::default(),
            log: self.log.clone(),
        }
    }

    /// Queues a task message.
    pub fn send(&self, message: TaskMessage) {
        self.state
            .lock()
            .expect("broker")
            .queue
            .push_back((message, 0));
        self.arrived.notify_one();
    }

    /// Queues something that is not a usable message.
    pub fn send_malformed(&self, error: MessageError, task_id: Option<&str>) {
        self.state
            .lock()
            .expect("broker")
            .malformed
            .push_back((error, task_id.map(String::from)));
        self.arrived.notify_one();
    }

    /// The next `n` acknowledgements fail as if the broker were unreachable.
    pub fn fail_acks(&self, n: u32) {
        self.state.lock().expect("broker").failing_acks = n;
    }

    /// Messages waiting in the queue.
    pub fn waiting(&self) -> usize {
        self.state.lock().expect("broker").queue.len()
    }

    /// How many times the task was delivered.
    pub fn deliveries(&self, task_id: &str) -> u32 {
        let state = self.state.lock().expect("broker");
        state.deliveries.get(task_id).copied().unwrap_or(0)
    }

    fn take(&self, max: usize) -> Vec<Received<MemoryHandle>> {
        let mut state = self.state.lock().expect("broker");
        let mut out = Vec::new();
        while let Some((error, task_id)) = state.malformed.pop_front() {
            out.push(Received::Malformed {
                queue: "metadata_repository".into(),
                error,
                task_id,
            });
        }
        while out.len() < max {
            let Some((message, _)) = state.queue.pop_front() else {
                break;
            };
            let count = state.deliveries.entry(message.id.clone()).or_default();
            *count += 1;
            let delivery = *count;
            state.next_tag += 1;
            let tag = state.next_tag;
            state
                .outstanding
                .insert(tag, (message.clone(), Instant::now()));
            self.log
                .lock()
                .expect("log")
                .push(Event::Delivered(message.id.clone()));
            out.push(Received::Task {
                queue: "metadata_repository".into(),
                handle: MemoryHandle {
                    message: message.clone(),
                    delivery,
                    tag,
                },
                message,
            });
        }
        out
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    type Handle = MemoryHandle;

    async fn next_batch(&self, max: usize) -> Result<Vec<Received<MemoryHandle>>, PortError> {
        let taken = self.take(max);
        if !taken.is_empty() {
            return Ok(taken);
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), self.arrived.notified()).await;
        Ok(self.take(max))
    }

    async fn ack(&self, handle: &MemoryHandle) -> Result<(), PortError> {
        let mut state = self.state.lock().expect("broker");
        if state.failing_acks > 0 {
            state.failing_acks -= 1;
            return Err(unreachable_service("the broker"));
        }
        state.outstanding.remove(&handle.tag);
        self.log
            .lock()
            .expect("log")
            .push(Event::Acked(handle.message.id.clone()));
        Ok(())
    }

    async fn hand_back(&self, handle: &MemoryHandle) -> Result<(), PortError> {
        let mut state = self.state.lock().expect("broker");
        self.log
            .lock()
            .expect("log")
            .push(Event::HandedBack(handle.message.id.clone()));
        if state.outstanding.remove(&handle.tag).is_some() {
            state.queue.push_back((handle.message.clone(), 0));
        }
        self.arrived.notify_one();
        Ok(())
    }

    async fn touch(&self, handle: &MemoryHandle) -> Result<(), PortError> {
        let mut state = self.state.lock().expect("broker");
        if let Some((_, touched)) = state.outstanding.get_mut(&handle.tag) {
            *touched = Instant::now();
        }
        Ok(())
    }

    async fn set_held(&self, held: usize) -> Result<(), PortError> {
        self.state.lock().expect("broker").held.push(held);
        Ok(())
    }

    async fn maintain(&self) -> Result<usize, PortError> {
        let mut state = self.state.lock().expect("broker");
        let Some(visibility) = state.visibility else {
            return Ok(0);
        };
        let stale: Vec<u64> = state
            .outstanding
            .iter()
            .filter(|(_, (_, touched))| touched.elapsed() >= visibility)
            .map(|(tag, _)| *tag)
            .collect();
        for tag in &stale {
            if let Some((message, _)) = state.outstanding.remove(tag) {
                state.queue.push_back((message, 0));
            }
        }
        if !stale.is_empty() {
            self.arrived.notify_one();
        }
        Ok(stale.len())
    }
}

#[derive(Debug, Default)]
struct ResultsState {
    records: BTreeMap<String, Record>,
    pre_run: BTreeSet<String>,
    failing: bool,
    /// Writes that still succeed before the backend becomes unreachable.
    writes_left: Option<u32>,
}

impl ResultsState {
    /// Fails while unreachable; counts a write towards [`MemoryResults::unreachable_after`].
    fn check(&mut self, write: bool) -> Result<(), PortError> {
        if write && let Some(left) = self.writes_left.as_mut() {
            if *left == 0 {
                self.failing = true;
                self.writes_left = None;
            } else {
                *left -= 1;
            }
        }
        if self.failing {
            return Err(unreachable_service("the result backend"));
        }
        Ok(())
    }
}

/// A result backend in memory, following the SUCCESS-is-final rule.
#[derive(Debug, Clone)]
pub struct MemoryResults {
    state: Arc<Mutex<ResultsState>>,
    log: EventLog,
}

impl MemoryResults {
    /// The record stored for a task.
    pub fn record(&self, task_id: &str) -> Option<Record> {
        self.state
            .lock()
            .expect("results")
            .records
            .get(task_id)
            .cloned()
    }

    /// Stores a record as another worker would have.
    pub fn put(&self, record: Record) {
        let mut state = self.state.lock().expect("results");
        state.records.insert(record.task_id.clone(), record);
    }

    /// While `true`, every call fails as if the backend were unreachable.
    pub fn set_unreachable(&self, failing: bool) {
        let mut state = self.state.lock().expect("results");
        state.failing = failing;
        state.writes_left = None;
    }

    /// The next `writes` writes succeed, then the backend is unreachable until
    /// [`MemoryResults::set_unreachable`]`(false)`.
    pub fn unreachable_after(&self, writes: u32) {
        self.state.lock().expect("results").writes_left = Some(writes);
    }

    fn stored_status(state: &ResultsState, task_id: &str) -> Option<String> {
        match state.records.get(task_id) {
            Some(record) => Some(record.status.to_string()),
            None => state
                .pre_run
                .contains(task_id)
                .then(|| "PRE_RUN".to_string()),
        }
    }
}

#[async_trait]
impl ResultBackend for MemoryResults {
    async fn state(&self, task_id: &str) -> Result<Option<String>, PortError> {
        let mut state = self.state.lock().expect("results");
        state.check(false)?;
        Ok(Self::stored_status(&state, task_id))
    }

    async fn pre_run(&self, task_id: &str) -> Result<Option<String>, PortError> {
        let mut state = self.state.lock().expect("results");
        state.check(true)?;
        let before = Self::stored_status(&state, task_id);
        if before.as_deref() != Some("SUCCESS") {
            state.records.remove(task_id);
            state.pre_run.insert(task_id.to_string());
            self.log
                .lock()
                .expect("log")
                .push(Event::PreRun(task_id.to_string()));
        }
        Ok(before)
    }

    async fn replace(&self, record: &Record) -> Result<Option<String>, PortError> {
        let mut state = self.state.lock().expect("results");
        state.check(true)?;
        let before = Self::stored_status(&state, &record.task_id);
        if before.as_deref() != Some("SUCCESS") {
            state.pre_run.remove(&record.task_id);
            state.records.insert(record.task_id.clone(), record.clone());
            self.log
                .lock()
                .expect("log")
                .push(Event::Stored(record.task_id.clone(), record.status));
        }
        Ok(before)
    }
}

#[derive(Debug, Default)]
struct LeaseState {
    holder: Option<String>,
    last_done: Option<u64>,
    claims: u64,
}

/// A bump lease in memory (it never lapses: tests release it by finishing).
#[derive(Debug, Clone, Default)]
pub struct MemoryLease {
    state: Arc<Mutex<LeaseState>>,
}

impl MemoryLease {
    /// The last slot finished.
    pub fn last_done(&self) -> Option<u64> {
        self.state.lock().expect("lease").last_done
    }
}

#[async_trait]
impl Lease for MemoryLease {
    fn ttl(&self) -> Duration {
        Duration::from_secs(60)
    }

    async fn claim(&self, slot: u64) -> Result<Claim, PortError> {
        let mut state = self.state.lock().expect("lease");
        if state.last_done.is_some_and(|done| done >= slot) {
            return Ok(Claim::Done);
        }
        if state.holder.is_some() {
            return Ok(Claim::Busy);
        }
        state.claims += 1;
        let token = format!("token-{}", state.claims);
        state.holder = Some(token.clone());
        Ok(Claim::Won(token))
    }

    async fn renew(&self, token: &str) -> Result<bool, PortError> {
        Ok(self.state.lock().expect("lease").holder.as_deref() == Some(token))
    }

    async fn finish(&self, token: &str, slot: u64) -> Result<(), PortError> {
        let mut state = self.state.lock().expect("lease");
        state.last_done = Some(state.last_done.map_or(slot, |done| done.max(slot)));
        if state.holder.as_deref() == Some(token) {
            state.holder = None;
        }
        Ok(())
    }
}

/// The [`ResultBackend`] contract, as a test any implementation can run against itself (on
/// a backend where `task_id` has no record yet). Panics on the first breach.
pub async fn result_backend_conformance(results: &dyn ResultBackend, task_id: &str) {
    let now = chrono::Utc::now();
    assert_eq!(results.state(task_id).await.unwrap(), None);
    assert_eq!(results.pre_run(task_id).await.unwrap(), None);
    assert_eq!(
        results.state(task_id).await.unwrap().as_deref(),
        Some("PRE_RUN")
    );
    let started = Record::started(task_id, 7, "rstuf@conformance");
    assert_eq!(
        results.replace(&started).await.unwrap().as_deref(),
        Some("PRE_RUN"),
        "replace returns the state it replaced"
    );
    let retry = Record::retry(task_id, "ConnectionError", "builtins", "down");
    assert!(results.store(&retry).await.unwrap());
    assert_eq!(
        results.state(task_id).await.unwrap().as_deref(),
        Some("RETRY")
    );
    let success = Record::success(task_id, serde_json::json!({"n": 1}), now);
    assert!(results.store(&success).await.unwrap());
    // A SUCCESS is final: no later record or PRE_RUN replaces it.
    let failure = Record::failure(task_id, "RuntimeError", "builtins", "late", None, now);
    assert!(!results.store(&failure).await.unwrap());
    assert_eq!(
        results.replace(&started).await.unwrap().as_deref(),
        Some("SUCCESS")
    );
    assert_eq!(
        results.pre_run(task_id).await.unwrap().as_deref(),
        Some("SUCCESS")
    );
    assert_eq!(
        results.state(task_id).await.unwrap().as_deref(),
        Some("SUCCESS")
    );
}

/// The [`Lease`] contract, as a test any implementation can run against itself (on a lease
/// no one holds, whose last finished slot is before `slot`). Panics on the first breach.
pub async fn lease_conformance(lease: &dyn Lease, slot: u64) {
    let Claim::Won(token) = lease.claim(slot).await.unwrap() else {
        panic!("a free lease is won");
    };
    assert_eq!(
        lease.claim(slot).await.unwrap(),
        Claim::Busy,
        "held by the winner"
    );
    assert!(lease.renew(&token).await.unwrap());
    assert!(!lease.renew("someone-else").await.unwrap());
    lease.finish(&token, slot).await.unwrap();
    assert_eq!(lease.claim(slot).await.unwrap(), Claim::Done, "slot done");
    assert_eq!(
        lease.claim(slot - 1).await.unwrap(),
        Claim::Done,
        "earlier slots are done too"
    );
    assert!(!lease.renew(&token).await.unwrap(), "released");
    let Claim::Won(next) = lease.claim(slot + 1).await.unwrap() else {
        panic!("the next slot is won");
    };
    assert_ne!(next, token, "each claim its own token");
    lease.finish(&next, slot + 1).await.unwrap();
}
