//! `rstuf-worker worker`: the Celery consumer. It takes task messages from the broker (Redis or
//! RabbitMQ), runs them with [`Action::run`], writes Celery's result records the
//! API reads, and acknowledges each message only after its final record is stored (acks
//! late), so a worker that dies mid-task loses nothing: the message is delivered again.
//!
//! Around that: a concurrency limit, a time limit per task, retries of tasks that failed on a
//! transient service error, the 5-minute bump of online roles (once per slot across every
//! worker, [`crate::schedule`]), and a graceful shutdown on SIGTERM or SIGINT (stop taking
//! messages; running tasks get [`Runtime::shutdown_timeout`] to finish, then are handed back).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use rstuf_adapters::amqp_broker::{AmqpBroker, AmqpDelivery};
use rstuf_adapters::redis_broker::{RedisBroker, RedisResults};
use rstuf_adapters::redis_schedule::SlotLease;
use rstuf_celery::redis_envelope::Envelope;
use rstuf_celery::result::{self, Record};
use rstuf_celery::{Received, TaskMessage};
use rstuf_engine::Engine;
use rstuf_engine::TaskError;
use rstuf_engine::artifacts::Progress;
use rstuf_engine::ports::{PortError, PortErrorKind};
use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::{BrokerUrl, Config, Runtime};
use rstuf_engine::action::{Action, Reply};

use crate::run_task;
use crate::schedule::Schedule;

/// The queues a worker consumes (the API publishes to both).
pub const QUEUES: [&str; 2] = ["metadata_repository", "rstuf_internals"];
/// The task the API sends.
pub const WORKER_TASK: &str = "app.repository_service_tuf_worker";
/// The task Celery beat sends every five minutes.
pub const BUMP_TASK: &str = "app.bump_online_roles";
/// How many times a task that failed on a transient error (a service restarting) runs
/// again, as the reference retries `OperationalError` three times.
const RETRIES: u32 = 3;
/// The most messages taken from the broker in one go (never more than there are free slots).
const INTAKE_BATCH: usize = 64;

/// A broker transport as the consumer loop uses it.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// The transport's hold on one delivery.
    type Handle: Send + Sync + 'static;
    /// The next delivery, or `None` after about a second without one.
    async fn next(&self) -> Result<Option<Received<Self::Handle>>, PortError>;
    /// The next delivery and up to `max - 1` more already waiting (empty after about a
    /// second without one). Every one returned is the consumer's to run.
    async fn next_batch(&self, max: usize) -> Result<Vec<Received<Self::Handle>>, PortError> {
        let _ = max;
        Ok(self.next().await?.into_iter().collect())
    }
    /// Done: never deliver again.
    async fn ack(&self, handle: &Self::Handle) -> Result<(), PortError>;
    /// Not done: deliver again (to any worker).
    async fn hand_back(&self, handle: &Self::Handle) -> Result<(), PortError>;
    /// Still running: keep it from being restored to its queue.
    async fn touch(&self, _handle: &Self::Handle) -> Result<(), PortError> {
        Ok(())
    }
    /// Periodic housekeeping (restoring deliveries of consumers that died).
    async fn maintain(&self) -> Result<(), PortError> {
        Ok(())
    }
}

/// The Redis transport with its visibility timeout.
#[derive(Debug)]
pub struct RedisTransport {
    broker: RedisBroker,
    visibility: Duration,
}

#[async_trait]
impl Broker for RedisTransport {
    type Handle = Envelope;
    async fn next(&self) -> Result<Option<Received<Envelope>>, PortError> {
        self.broker.next().await
    }
    async fn next_batch(&self, max: usize) -> Result<Vec<Received<Envelope>>, PortError> {
        self.broker.next_batch(max).await
    }
    async fn ack(&self, handle: &Envelope) -> Result<(), PortError> {
        self.broker.ack(handle).await
    }
    async fn hand_back(&self, handle: &Envelope) -> Result<(), PortError> {
        self.broker.hand_back(handle).await
    }
    async fn touch(&self, handle: &Envelope) -> Result<(), PortError> {
        self.broker.touch(handle).await
    }
    async fn maintain(&self) -> Result<(), PortError> {
        let restored = self.broker.restore_unacked(self.visibility).await?;
        if restored > 0 {
            log(&format!(
                "restored {restored} message(s) left unacknowledged by a consumer that stopped"
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Broker for AmqpBroker {
    type Handle = AmqpDelivery;
    async fn next(&self) -> Result<Option<Received<AmqpDelivery>>, PortError> {
        AmqpBroker::next(self).await
    }
    async fn ack(&self, handle: &AmqpDelivery) -> Result<(), PortError> {
        AmqpBroker::ack(self, handle).await
    }
    async fn hand_back(&self, handle: &AmqpDelivery) -> Result<(), PortError> {
        AmqpBroker::hand_back(self, handle).await
    }
}

/// A line on standard error, with the time.
pub fn log(line: &str) {
    eprintln!(
        "[{}] rstuf-worker: {line}",
        Utc::now().format("%Y-%m-%d %H:%M:%S%.3f")
    );
}

/// What every task shares, whatever the transport.
struct Setup {
    results: RedisResults,
    ports: Arc<Engine>,
    runtime: Runtime,
    schedule: Schedule,
    hostname: String,
}

/// [`Setup`] and the broker.
struct Context<B: Broker> {
    broker: B,
    setup: Setup,
}

/// Starts the worker from the configuration and runs it until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let runtime = config
        .runtime
        .clone()
        .ok_or_else(|| anyhow::anyhow!("RSTUF_BROKER_SERVER: is required to run the worker"))?;
    let ports = Arc::new(run_task::ports(&config).await?);
    let results = RedisResults::connect(&runtime.result_url)
        .await
        .map_err(|e| anyhow::anyhow!("result backend {}: {e}", runtime.result_url))?;
    let lease = SlotLease::connect(
        &config.lock_url,
        runtime.bump_ttl.min(Duration::from_secs(60)),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let schedule = Schedule::new(lease, runtime.bump_interval);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        log("shutting down: no new tasks; running tasks may finish");
        let _ = stop_tx.send(true);
    });
    let setup = Setup {
        results,
        ports,
        hostname: format!("rstuf@{}", runtime.worker_id),
        runtime: runtime.clone(),
        schedule,
    };
    match runtime.broker {
        BrokerUrl::Redis(url) => {
            let broker = RedisBroker::connect(&url, &QUEUES)
                .await
                .map_err(|e| anyhow::anyhow!("broker {url}: {e}"))?;
            broker.declare().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let transport = RedisTransport {
                broker,
                visibility: runtime.visibility_timeout,
            };
            consume(transport, setup, stop_rx).await
        }
        BrokerUrl::Amqp(url) => {
            let prefetch = u16::try_from(runtime.concurrency).unwrap_or(u16::MAX);
            let broker = AmqpBroker::connect(&url, &QUEUES, prefetch)
                .await
                .map_err(|e| anyhow::anyhow!("broker: {e}"))?;
            consume(broker, setup, stop_rx).await
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

async fn consume<B: Broker>(
    broker: B,
    setup: Setup,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let ctx = Arc::new(Context { broker, setup });
    log(&format!(
        "{} ready: concurrency {}, queues {}",
        ctx.setup.hostname,
        ctx.setup.runtime.concurrency,
        QUEUES.join(", ")
    ));
    let mut background = JoinSet::new();
    background.spawn(maintain(ctx.clone(), stop.clone()));
    background.spawn(scheduled_bumps(ctx.clone(), stop.clone()));

    // Tasks still running at the shutdown deadline are told to hand their message back.
    let (abandon_tx, abandon_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(ctx.setup.runtime.concurrency));
    let mut jobs = JoinSet::new();
    let mut failures = 0u32;
    while !*stop.borrow() {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("semaphore open"),
            _ = stop.changed() => break,
        };
        // Not raced against the stop signal: a pop in flight must reach the unacked record.
        // As many messages as there are free slots (this loop alone takes permits, so the
        // free ones stay free until it takes them).
        let max = (1 + permits.available_permits()).min(INTAKE_BATCH);
        let mut permit = Some(permit);
        match ctx.broker.next_batch(max).await {
            Ok(batch) => {
                failures = 0;
                for received in batch {
                    match received {
                        Received::Task {
                            message,
                            queue,
                            handle,
                        } => {
                            let permit = match permit.take() {
                                Some(permit) => permit,
                                None => permits
                                    .clone()
                                    .acquire_owned()
                                    .await
                                    .expect("semaphore open"),
                            };
                            let ctx = ctx.clone();
                            let abandon = abandon_rx.clone();
                            jobs.spawn(async move {
                                process(&ctx, message, &queue, handle, abandon).await;
                                drop(permit);
                            });
                        }
                        Received::Malformed {
                            queue,
                            error,
                            task_id,
                        } => {
                            answer_malformed(&ctx, &queue, &error.to_string(), task_id.as_deref())
                                .await;
                        }
                    }
                }
            }
            Err(e) => {
                failures += 1;
                let wait = Duration::from_millis(250 * u64::from(failures.min(20)));
                log(&format!("broker: {e}; retrying in {wait:?}"));
                tokio::time::sleep(wait).await;
            }
        }
        while jobs.try_join_next().is_some() {}
    }
    let deadline = ctx.setup.runtime.shutdown_timeout;
    if !jobs.is_empty() {
        log(&format!(
            "waiting up to {deadline:?} for {} running task(s)",
            jobs.len()
        ));
    }
    let finished = tokio::time::timeout(deadline, async {
        while jobs.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        log("shutdown deadline reached: handing running tasks back to the broker");
        let _ = abandon_tx.send(true);
        while jobs.join_next().await.is_some() {}
    }
    background.abort_all();
    log("stopped");
    Ok(())
}

/// Restores deliveries of dead consumers now and then (and once at start).
async fn maintain<B: Broker>(ctx: Arc<Context<B>>, mut stop: watch::Receiver<bool>) {
    let every = (ctx.setup.runtime.visibility_timeout / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        if let Err(e) = ctx.broker.maintain().await {
            log(&format!("broker housekeeping: {e}"));
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn scheduled_bumps<B: Broker>(ctx: Arc<Context<B>>, stop: watch::Receiver<bool>) {
    ctx.setup.schedule.run(&ctx.setup.ports, stop).await;
}

/// A FAILURE record for a message that cannot run, when its id is known; a log line always.
async fn answer_malformed<B: Broker>(
    ctx: &Context<B>,
    queue: &str,
    error: &str,
    task_id: Option<&str>,
) {
    log(&format!(
        "rejected a malformed message on {queue} (task {}): {error}",
        task_id.unwrap_or("unknown")
    ));
    if let Some(id) = task_id {
        let record = Record::failure(
            id,
            "ValueError",
            "builtins",
            &format!("Malformed task message: {error}"),
            None,
            Utc::now(),
        );
        store(ctx, &record).await;
    }
}

/// Runs `attempt` until it succeeds, waiting longer each time (100 ms doubling to 5 s) while a
/// service is unreachable (it may be restarting); gives up after about two minutes.
async fn persist<F: Future<Output = Result<(), PortError>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) {
    let mut wait = Duration::from_millis(100);
    for _ in 0..40 {
        match attempt().await {
            Ok(()) => return,
            Err(e) => {
                log(&format!("{what}: {e}; retrying"));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
    log(&format!("gave up {what}"));
}

/// Stores a record, retrying while the result backend is unreachable.
async fn store<B: Broker>(ctx: &Context<B>, record: &Record) {
    let what = format!("storing the {} record of {}", record.status, record.task_id);
    persist(&what, || async {
        ctx.setup.results.store(record).await.map(|_| ())
    })
    .await;
}

/// Acknowledges, retrying while the broker is unreachable. On AMQP a lost connection has
/// already returned the message to its queue; the redelivery finds the stored SUCCESS.
async fn ack<B: Broker>(ctx: &Context<B>, handle: &B::Handle) {
    persist("acknowledging", || ctx.broker.ack(handle)).await;
}

/// How a task ended.
enum Ending {
    /// A result to store as SUCCESS.
    Success(Value),
    /// An exception to store as FAILURE: type, module, message.
    Failure(&'static str, &'static str, String),
    /// Stopped by shutdown before it finished: hand the message back.
    Abandoned,
}

/// Runs one delivered task to its final record, then acknowledges it.
// Longer than 120 lines: the life cycle of one delivery (redelivery check, ETA and expiry,
// STARTED, the run under the time limit, the final record, the ack) in the order it happens;
// it moves into a library module with unit tests of its own (the consumer work of the issue).
async fn process<B: Broker>(
    ctx: &Context<B>,
    message: TaskMessage,
    queue: &str,
    handle: B::Handle,
    mut abandon: watch::Receiver<bool>,
) {
    let id = message.id.clone();
    let parent = message.parent_id().map(String::from);
    let with_parent = |record: Record| match &parent {
        Some(p) => record.with_parent(p),
        None => record,
    };

    let expired = message
        .expires()
        .ok()
        .flatten()
        .filter(|expires| *expires < Utc::now());
    let eta = message.eta().ok().flatten();
    let started_record = with_parent(Record::started(
        &id,
        std::process::id(),
        &ctx.setup.hostname,
    ));
    // A task that runs now stores its STARTED record with the same round trip that reads
    // what was stored before (its PRE_RUN record, optional, would be overwritten at once);
    // one that waits for its ETA gets PRE_RUN and STARTED when it starts.
    let starts_now = message.task == WORKER_TASK && expired.is_none() && eta.is_none();
    let mut started_stored = false;
    if message.task == WORKER_TASK {
        // Delivered again after it finished (its worker died between the record and the
        // acknowledgement): done once, do not run it twice.
        let stored = if starts_now {
            let before = ctx.setup.results.replace(&started_record).await;
            started_stored = before.is_ok();
            before
        } else {
            ctx.setup.results.state(&id).await
        };
        if let Ok(Some(state)) = stored
            && state == "SUCCESS"
        {
            log(&format!(
                "task {id} already succeeded; acknowledging the redelivery"
            ));
            ack(ctx, &handle).await;
            return;
        }
    }
    if let Some(expires) = expired {
        log(&format!("task {id} expired at {expires}; revoked"));
        store(
            ctx,
            &with_parent(Record::revoked(&id, "expired", Utc::now())),
        )
        .await;
        ack(ctx, &handle).await;
        return;
    }
    if let Some(eta) = eta {
        let wait = (eta - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = abandoned(&mut abandon) => {
                hand_back(ctx, &handle).await;
                return;
            }
        }
    }

    let started = std::time::Instant::now();
    if message.task == WORKER_TASK && !starts_now {
        let _ = ctx.setup.results.pre_run(&id).await;
    }
    if !started_stored {
        store(ctx, &started_record).await;
    }

    let work = async {
        match message.task.as_str() {
            WORKER_TASK => run_worker_task(ctx, &message).await,
            BUMP_TASK => {
                let expired = message
                    .kwarg("expired")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                match ctx.setup.schedule.bump_now(&ctx.setup.ports, expired).await {
                    Ok(roles) => Ending::Success(Value::from(roles)),
                    Err(e) => Ending::Failure("RuntimeError", "builtins", e.to_string()),
                }
            }
            other => Ending::Failure("NotRegistered", "celery.exceptions", format!("'{other}'")),
        }
    };
    let touch_every = (ctx.setup.runtime.visibility_timeout / 3).max(Duration::from_millis(500));
    let keep_alive = async {
        loop {
            tokio::time::sleep(touch_every).await;
            let _ = ctx.broker.touch(&handle).await;
        }
    };
    let ending = tokio::select! {
        ending = work => ending,
        _ = tokio::time::sleep(ctx.setup.runtime.time_limit) => Ending::Failure(
            "TimeLimitExceeded",
            "celery.exceptions",
            format!("Task exceeded its time limit of {} s", ctx.setup.runtime.time_limit.as_secs()),
        ),
        _ = abandoned(&mut abandon) => Ending::Abandoned,
        _ = keep_alive => unreachable!("loops forever"),
    };
    let now = Utc::now();
    let record = match ending {
        Ending::Abandoned => {
            log(&format!("task {id} handed back unfinished"));
            hand_back(ctx, &handle).await;
            return;
        }
        Ending::Success(result) => Record::success(&id, result, now),
        Ending::Failure(exc_type, module, text) => {
            Record::failure(&id, exc_type, module, &text, None, now)
        }
    };
    log(&format!(
        "task {id} ({} {}) on {queue}: {} in {:.1} ms",
        message.task,
        message
            .kwarg("action")
            .and_then(Value::as_str)
            .unwrap_or(""),
        record.status,
        started.elapsed().as_secs_f64() * 1000.0
    ));
    store(ctx, &with_parent(record)).await;
    ack(ctx, &handle).await;
}

/// Resolves once the worker tells running tasks to give up.
async fn abandoned(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|a| *a).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn hand_back<B: Broker>(ctx: &Context<B>, handle: &B::Handle) {
    if let Err(e) = ctx.broker.hand_back(handle).await {
        log(&format!(
            "handing a message back: {e}; it returns after the visibility timeout"
        ));
    }
}

/// `app.repository_service_tuf_worker(action, payload=None)`.
async fn run_worker_task<B: Broker>(ctx: &Context<B>, message: &TaskMessage) -> Ending {
    let Some(action) = message.kwarg("action") else {
        return Ending::Failure(
            "TypeError",
            "builtins",
            "repository_service_tuf_worker() missing 1 required argument: 'action'".into(),
        );
    };
    let Some(action) = action.as_str() else {
        return Ending::Failure(
            "TypeError",
            "builtins",
            format!("action must be a string, not {action}"),
        );
    };
    let action: Action = match action.parse() {
        Ok(action) => action,
        Err(unknown) => return Ending::Failure("AttributeError", "builtins", unknown.to_string()),
    };
    let payload = message.kwarg("payload").filter(|p| !p.is_null());
    let mut attempt = 0;
    loop {
        let progress = Running {
            ctx,
            task_id: &message.id,
            parent: message.parent_id(),
        };
        match action
            .run(&ctx.setup.ports, payload, &message.id, &progress)
            .await
        {
            Ok(reply) => return Ending::Success(celery_result(action, &reply)),
            Err(e) if transient(&e) && attempt < RETRIES => {
                attempt += 1;
                let wait = Duration::from_secs(1 << attempt);
                log(&format!(
                    "task {} ({action}): {e}; retry {attempt} of {RETRIES} in {wait:?}",
                    message.id
                ));
                let record =
                    Record::retry(&message.id, "ConnectionError", "builtins", &e.to_string());
                store(ctx, &record).await;
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Ending::Failure("RuntimeError", "builtins", e.to_string()),
        }
    }
}

/// Add and remove tasks shown as RUNNING while they publish, as the reference shows them.
struct Running<'a, B: Broker> {
    ctx: &'a Context<B>,
    task_id: &'a str,
    parent: Option<&'a str>,
}

#[async_trait]
impl<B: Broker> Progress for Running<'_, B> {
    async fn publishing(&self, roles: &[String]) {
        // `roles_to_publish` is Python's repr of the list, as the reference writes it.
        let repr: Vec<String> = roles.iter().map(|r| format!("'{r}'")).collect();
        let details = serde_json::json!({
            "published_roles": [],
            "roles_to_publish": format!("[{}]", repr.join(", ")),
        });
        let mut record = Record::running(self.task_id, "Publishing", details, Utc::now());
        if let Some(parent) = self.parent {
            record = record.with_parent(parent);
        }
        store(self.ctx, &record).await;
    }
}

fn transient(e: &TaskError) -> bool {
    matches!(
        e,
        TaskError::Port(PortError {
            kind: PortErrorKind::Transient,
            ..
        })
    )
}

/// The task result as the Python worker stores it: `last_update` in kombu's datetime form.
fn celery_result(action: Action, reply: &Reply) -> Value {
    let mut value = reply.to_json(action, Utc::now());
    if let Some(text) = value.get("last_update").and_then(Value::as_str)
        && let Ok(t) = chrono::DateTime::parse_from_rfc3339(text)
    {
        value["last_update"] = result::datetime(t.with_timezone(&Utc));
    }
    value
}
