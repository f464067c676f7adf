//! The consumer over the in-memory broker, results and lease: the order of records and
//! acknowledgements in every path a delivery can take.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use rstuf_celery::{MessageError, TaskMessage};
use rstuf_consumer::testing::{Event, MemoryBroker, MemoryLease, MemoryResults};
use rstuf_consumer::{BUMP_TASK, Consumer, Schedule, Settings, WORKER_TASK};
use rstuf_engine::Engine;
use rstuf_engine::ports::{PortError, PortErrorKind, Ports, SettingsStore};
use rstuf_engine::testing::{MemoryRepo, MemorySettings};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

fn repo() -> MemoryRepo {
    MemoryRepo::new(Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap())
}

fn settings() -> Settings {
    Settings {
        time_limit: Duration::from_secs(20),
        shutdown_timeout: Duration::from_millis(200),
        visibility_timeout: Duration::from_secs(3),
        retry_wait: Duration::from_millis(20),
        ..Settings::new("rstuf@test", 4)
    }
}

fn task(id: &str, action: &str, payload: Value) -> TaskMessage {
    let mut kwargs = Map::new();
    kwargs.insert("action".into(), json!(action));
    kwargs.insert("payload".into(), payload);
    TaskMessage::new(id, WORKER_TASK, kwargs, None, "gen1@api")
}

/// An add of one artifact: refused on a repository that was never bootstrapped, which is a
/// SUCCESS record with `status: false` (the task ran to an outcome).
fn add(id: &str) -> TaskMessage {
    task(
        id,
        "add_artifacts",
        json!({"artifacts": [{"path": "a/b.tar.gz", "info": {"length": 1, "hashes": {"sha256": "ab"}}}]}),
    )
}

struct Run {
    broker: MemoryBroker,
    results: MemoryResults,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

fn start_with(engine: Engine, settings: Settings) -> Run {
    let schedule = Schedule::new(MemoryLease::default(), None);
    start_over(MemoryBroker::new(), engine, settings, schedule)
}

fn start_over(broker: MemoryBroker, engine: Engine, settings: Settings, schedule: Schedule) -> Run {
    let results = broker.results();
    let consumer = Consumer::new(
        broker.clone(),
        results.clone(),
        Arc::new(engine),
        schedule,
        settings,
    );
    let (stop, stop_rx) = watch::channel(false);
    let done = tokio::spawn(consumer.run(stop_rx));
    Run {
        broker,
        results,
        stop,
        done,
    }
}

fn start() -> Run {
    start_with(repo().engine(), settings())
}

impl Run {
    /// Waits (up to 10 s) until the log satisfies `until`.
    async fn wait(&self, until: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        for _ in 0..1000 {
            let log = self.broker.log();
            if until(&log) {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("not reached; log: {:?}", self.broker.log());
    }

    async fn wait_for(&self, event: Event) -> Vec<Event> {
        self.wait(|log| log.contains(&event)).await
    }

    /// Sends an add whose STARTED record is stored and whose final record then cannot be,
    /// and gives the consumer time for many attempts to store it.
    async fn final_record_blocked(&self, id: &str) {
        self.results.unreachable_after(1);
        self.broker.send(add(id));
        self.wait_for(stored(id, "STARTED")).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
    }

    async fn wait_acked(&self, id: &str) -> Vec<Event> {
        let acked = Event::Acked(id.into());
        self.wait(|log| log.contains(&acked)).await
    }

    /// Stops the consumer and waits until it returns.
    async fn shut_down(self) -> Vec<Event> {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.done)
            .await
            .expect("the consumer stops")
            .unwrap();
        self.broker.log()
    }
}

fn of(log: &[Event], id: &str) -> Vec<Event> {
    log.iter()
        .filter(|e| match e {
            Event::Delivered(t)
            | Event::Stored(t, _)
            | Event::PreRun(t)
            | Event::Acked(t)
            | Event::HandedBack(t) => t == id,
        })
        .cloned()
        .collect()
}

fn stored(id: &str, status: &'static str) -> Event {
    Event::Stored(id.into(), status)
}

/// The exception message of a FAILURE or RETRY record.
fn exc_message(record: &rstuf_celery::result::Record) -> &str {
    record.result["exc_message"][0].as_str().unwrap()
}

/// A delivery of `id`, these records in order, then `end`.
fn life(id: &str, records: &[&'static str], end: Event) -> Vec<Event> {
    let mut events = vec![Event::Delivered(id.into())];
    events.extend(records.iter().map(|status| stored(id, status)));
    events.push(end);
    events
}

/// A delivery of `id`, these records in order, then its acknowledgement.
fn acked_after(id: &str, records: &[&'static str]) -> Vec<Event> {
    life(id, records, Event::Acked(id.into()))
}

/// A delivery of `id`, these records in order, then its hand-back.
fn handed_back_after(id: &str, records: &[&'static str]) -> Vec<Event> {
    life(id, records, Event::HandedBack(id.into()))
}

#[tokio::test]
async fn a_task_gets_started_then_its_final_record_then_its_acknowledgement() {
    let run = start();
    run.broker.send(add("t1"));
    let log = run.wait_acked("t1").await;
    assert_eq!(of(&log, "t1"), acked_after("t1", &["STARTED", "SUCCESS"]));
    let record = run.results.record("t1").unwrap();
    assert_eq!(record.result["status"], json!(false));
    assert_eq!(record.result["task"], json!("add_artifacts"));
    assert_eq!(
        record.result["error"],
        json!("Requires a completed bootstrap")
    );
    run.shut_down().await;
}

#[tokio::test]
async fn a_redelivered_task_that_already_succeeded_is_acknowledged_without_running_again() {
    let run = start();
    let done = rstuf_celery::result::Record::success("t2", json!({"done": "before"}), Utc::now());
    run.results.put(done.clone());
    run.broker.send(add("t2"));
    let log = run.wait_acked("t2").await;
    assert_eq!(
        of(&log, "t2"),
        vec![Event::Delivered("t2".into()), Event::Acked("t2".into())]
    );
    assert_eq!(run.results.record("t2").unwrap(), done);
    run.shut_down().await;
}

#[tokio::test]
async fn an_expired_task_is_revoked_and_acknowledged_without_running() {
    let run = start();
    let mut message = add("t3");
    message.headers["expires"] = json!("2020-01-01T00:00:00+00:00");
    run.broker.send(message);
    let log = run.wait_acked("t3").await;
    assert_eq!(of(&log, "t3"), acked_after("t3", &["REVOKED"]));
    run.shut_down().await;
}

#[tokio::test]
async fn a_task_with_an_eta_waits_for_it_then_gets_pre_run_and_started() {
    let run = start();
    let mut message = add("t4");
    let eta = Utc::now() + chrono::TimeDelta::milliseconds(400);
    message.headers["eta"] = json!(eta.to_rfc3339());
    run.broker.send(message);
    run.wait_for(Event::PreRun("t4".into())).await;
    assert!(Utc::now() >= eta, "PRE_RUN only once the ETA is reached");
    let log = run.wait_acked("t4").await;
    assert_eq!(
        of(&log, "t4"),
        vec![
            Event::Delivered("t4".into()),
            Event::PreRun("t4".into()),
            stored("t4", "STARTED"),
            stored("t4", "SUCCESS"),
            Event::Acked("t4".into()),
        ]
    );
    run.shut_down().await;
}

#[tokio::test]
async fn a_task_waiting_for_its_eta_at_shutdown_is_handed_back() {
    let run = start();
    let mut message = add("t5");
    message.headers["eta"] = json!((Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339());
    run.broker.send(message);
    run.wait_for(Event::Delivered("t5".into())).await;
    let broker = run.broker.clone();
    let log = run.shut_down().await;
    assert_eq!(of(&log, "t5"), handed_back_after("t5", &[]));
    assert_eq!(broker.waiting(), 1, "back in its queue");
}

#[tokio::test]
async fn unknown_actions_and_tasks_end_as_the_exceptions_celery_records() {
    let run = start();
    run.broker.send(task("t6", "no_such_action", Value::Null));
    let mut message = add("t7");
    message.task = "app.something_else".into();
    run.broker.send(message);
    run.wait_acked("t6").await;
    run.wait_acked("t7").await;
    let unknown = run.results.record("t6").unwrap();
    assert_eq!(unknown.status, "FAILURE");
    assert_eq!(unknown.result["exc_type"], json!("AttributeError"));
    let unregistered = run.results.record("t7").unwrap();
    assert_eq!(unregistered.status, "FAILURE");
    assert_eq!(unregistered.result["exc_type"], json!("NotRegistered"));
    assert_eq!(
        unregistered.result["exc_message"],
        json!(["'app.something_else'"])
    );
    run.shut_down().await;
}

#[tokio::test]
async fn a_malformed_message_with_an_id_gets_a_failure_record() {
    let run = start();
    let error = MessageError::Header {
        header: "task",
        problem: "missing".into(),
    };
    run.broker.send_malformed(error.clone(), Some("t8"));
    run.broker.send_malformed(error, None);
    let log = run.wait_for(stored("t8", "FAILURE")).await;
    assert_eq!(log, vec![stored("t8", "FAILURE")]);
    let record = run.results.record("t8").unwrap();
    assert_eq!(record.result["exc_type"], json!("ValueError"));
    assert!(exc_message(&record).starts_with("Malformed task message: "));
    run.shut_down().await;
}

/// Settings that fail like an unreachable Redis for the first `failures` reads, panic on the
/// first `panics` reads, or hang for ever when `hang`.
struct FlakySettings {
    inner: Arc<MemorySettings>,
    failures: AtomicU32,
    panics: AtomicU32,
    hang: bool,
}

#[async_trait]
impl SettingsStore for FlakySettings {
    async fn get(&self, key: &str) -> Result<Option<Value>, PortError> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        if self
            .panics
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            panic!("DateTime + TimeDelta overflowed (injected)");
        }
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(PortError::new(
                PortErrorKind::Transient,
                "settings: connection refused",
            ));
        }
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: Value) -> Result<(), PortError> {
        self.inner.set(key, value).await
    }
}

fn engine_with_settings(failures: u32, hang: bool) -> Engine {
    engine_with_flaky(failures, 0, hang)
}

fn engine_with_flaky(failures: u32, panics: u32, hang: bool) -> Engine {
    let repo = repo();
    let settings = FlakySettings {
        inner: repo.settings.clone(),
        failures: AtomicU32::new(failures),
        panics: AtomicU32::new(panics),
        hang,
    };
    let ports = Ports::new(
        repo.store.clone(),
        repo.index.clone(),
        Arc::new(settings),
        repo.signers.clone(),
        repo.lock.clone(),
    );
    repo.engine_over(ports)
}

#[tokio::test]
async fn a_retryable_failure_is_recorded_as_retry_and_run_again() {
    let run = start_with(engine_with_settings(2, false), settings());
    run.broker.send(add("t9"));
    let log = run.wait_acked("t9").await;
    assert_eq!(
        of(&log, "t9"),
        acked_after("t9", &["STARTED", "RETRY", "RETRY", "SUCCESS"])
    );
    run.shut_down().await;
}

#[tokio::test]
async fn a_task_failing_retryably_past_its_retries_ends_as_a_failure() {
    let run = start_with(engine_with_settings(100, false), settings());
    run.broker.send(add("t10"));
    let log = run.wait_acked("t10").await;
    let retries = of(&log, "t10")
        .iter()
        .filter(|e| **e == stored("t10", "RETRY"))
        .count();
    assert_eq!(retries, 3);
    let record = run.results.record("t10").unwrap();
    assert_eq!(record.status, "FAILURE");
    assert!(exc_message(&record).contains("connection refused"));
    run.shut_down().await;
}

#[tokio::test]
async fn a_task_over_its_time_limit_fails_with_time_limit_exceeded() {
    let settings = Settings {
        time_limit: Duration::from_millis(300),
        ..settings()
    };
    let run = start_with(engine_with_settings(0, true), settings);
    run.broker.send(add("t11"));
    run.wait_acked("t11").await;
    let record = run.results.record("t11").unwrap();
    assert_eq!(record.status, "FAILURE");
    assert_eq!(record.result["exc_type"], json!("TimeLimitExceeded"));
    run.shut_down().await;
}

#[tokio::test]
async fn a_task_still_running_at_the_shutdown_deadline_is_handed_back_without_a_final_record() {
    let run = start_with(engine_with_settings(0, true), settings());
    run.broker.send(add("t12"));
    run.wait_for(stored("t12", "STARTED")).await;
    let broker = run.broker.clone();
    let log = run.shut_down().await;
    assert_eq!(of(&log, "t12"), handed_back_after("t12", &["STARTED"]));
    assert_eq!(broker.waiting(), 1);
}

#[tokio::test]
async fn a_message_whose_final_record_cannot_be_stored_is_never_acknowledged() {
    let run = start();
    run.final_record_blocked("t13").await;
    assert_eq!(
        of(&run.broker.log(), "t13"),
        vec![Event::Delivered("t13".into()), stored("t13", "STARTED")],
        "no acknowledgement while the record is not stored"
    );
    let broker = run.broker.clone();
    let log = run.shut_down().await;
    assert_eq!(
        of(&log, "t13").last(),
        Some(&Event::HandedBack("t13".into())),
        "handed back at shutdown"
    );
    assert_eq!(broker.waiting(), 1);
}

#[tokio::test]
async fn a_final_record_stored_once_the_backend_returns_is_then_acknowledged() {
    let run = start();
    run.final_record_blocked("t14").await;
    run.results.set_unreachable(false);
    let log = run.wait_acked("t14").await;
    assert_eq!(of(&log, "t14"), acked_after("t14", &["STARTED", "SUCCESS"]));
    run.shut_down().await;
}

#[tokio::test]
async fn an_acknowledgement_that_fails_is_retried() {
    let run = start();
    run.broker.fail_acks(2);
    run.broker.send(add("t15"));
    let log = run.wait_acked("t15").await;
    assert_eq!(of(&log, "t15").last(), Some(&Event::Acked("t15".into())));
    run.shut_down().await;
}

#[tokio::test]
async fn many_tasks_run_at_most_concurrency_at_once_and_all_finish() {
    let run = start();
    for i in 0..40 {
        run.broker.send(add(&format!("m{i}")));
    }
    let log = run
        .wait(|log| log.iter().filter(|e| matches!(e, Event::Acked(_))).count() == 40)
        .await;
    let mut running = 0i32;
    let mut most = 0;
    for event in &log {
        match event {
            Event::Stored(_, "STARTED") => running += 1,
            Event::Stored(_, "SUCCESS") => running -= 1,
            _ => {}
        }
        most = most.max(running);
    }
    assert!(most <= 4, "at most 4 at once, saw {most}");
    run.shut_down().await;
}

#[tokio::test]
async fn a_bump_message_is_answered_with_the_roles_it_bumped() {
    let run = start();
    let mut kwargs = Map::new();
    kwargs.insert("expired".into(), json!(true));
    run.broker
        .send(TaskMessage::new("b1", BUMP_TASK, kwargs, None, "beat"));
    let log = run.wait_acked("b1").await;
    assert_eq!(of(&log, "b1"), acked_after("b1", &["STARTED", "SUCCESS"]));
    // Nothing to bump in a repository that was never bootstrapped.
    assert_eq!(run.results.record("b1").unwrap().result, json!([]));
    run.shut_down().await;
}

#[tokio::test]
async fn the_in_memory_results_and_lease_keep_their_contracts() {
    let broker = MemoryBroker::new();
    rstuf_consumer::testing::result_backend_conformance(&broker.results(), "c1").await;
    rstuf_consumer::testing::lease_conformance(&MemoryLease::default(), 1_000).await;
}

#[tokio::test]
async fn a_panicking_action_ends_as_a_failure_and_is_acknowledged_once() {
    let run = start_with(engine_with_flaky(0, 1, false), settings());
    run.broker.send(add("p1"));
    let log = run.wait_acked("p1").await;
    assert_eq!(of(&log, "p1"), acked_after("p1", &["STARTED", "FAILURE"]));
    let record = run.results.record("p1").unwrap();
    assert_eq!(record.result["exc_type"], json!("RuntimeError"));
    assert!(exc_message(&record).contains("DateTime + TimeDelta overflowed"));
    // Not delivered again: the panic was the task's end.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(run.broker.deliveries("p1"), 1);
    run.shut_down().await;
}

#[tokio::test]
async fn the_schedule_keeps_bumping_after_a_slot_panics() {
    let lease = MemoryLease::default();
    let schedule = Schedule::new(lease.clone(), Some(Duration::from_secs(1)));
    // The first slot's bump panics reading a setting; later slots read it fine.
    let engine = engine_with_flaky(0, 1, false);
    let run = start_over(MemoryBroker::new(), engine, settings(), schedule);
    let mut slots = std::collections::BTreeSet::new();
    for _ in 0..400 {
        slots.extend(lease.last_done());
        if slots.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(slots.len() >= 3, "slots finished: {slots:?}");
    run.shut_down().await;
}

#[tokio::test]
async fn tasks_waiting_for_their_eta_hold_no_slot_and_are_not_restored_meanwhile() {
    let settings = Settings {
        visibility_timeout: Duration::from_secs(1),
        ..Settings::new("rstuf@test", 1)
    };
    let broker = MemoryBroker::with_visibility(Duration::from_secs(1));
    let schedule = Schedule::new(MemoryLease::default(), None);
    let run = start_over(broker, repo().engine(), settings, schedule);
    let later = (Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    for id in ["e1", "e2", "e3"] {
        let mut message = add(id);
        message.headers["eta"] = json!(later);
        run.broker.send(message);
    }
    run.broker.send(add("now"));
    // The only slot is free for the task due now.
    run.wait_acked("now").await;
    // Several visibility timeouts: touched, the waiting deliveries are never restored.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for id in ["e1", "e2", "e3"] {
        assert_eq!(run.broker.deliveries(id), 1, "{id} delivered once");
    }
    assert_eq!(run.broker.held_reports().iter().max(), Some(&3));
    let broker = run.broker.clone();
    let log = run.shut_down().await;
    for id in ["e1", "e2", "e3"] {
        assert_eq!(
            of(&log, id),
            vec![Event::Delivered(id.into()), Event::HandedBack(id.into())]
        );
    }
    assert_eq!(broker.waiting(), 3);
}
