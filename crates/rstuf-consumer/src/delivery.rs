//! The life of one delivery, in the order it happens: a redelivery of a task that already
//! succeeded is acknowledged without running; an expired task is revoked; a task with an ETA
//! waits for it; then STARTED, the run under the time limit (retrying retryable failures),
//! the final record and, only once that record is stored, the acknowledgement. A delivery
//! abandoned at shutdown, or whose final record cannot be stored before shutdown, is handed
//! back to the broker instead.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

use async_trait::async_trait;
use chrono::Utc;
use rstuf_celery::TaskMessage;
use rstuf_celery::result::{self, Record};
use rstuf_engine::action::{Action, Reply};
use rstuf_engine::artifacts::Progress;
use serde_json::Value;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::{BUMP_TASK, Broker, Consumer, WORKER_TASK, log, panic_text};

/// How a task's run ended.
enum Ending {
    /// A result to store as SUCCESS.
    Success(Value),
    /// An exception to store as FAILURE: type, module, message.
    Failure(&'static str, &'static str, String),
    /// Stopped by shutdown before it finished: hand the message back.
    Abandoned,
}

/// What the checks before the run decided.
enum Admission {
    /// Run it; `started_stored` when its STARTED record is already stored.
    Run { started_stored: bool },
    /// Nothing to run: acknowledged (done before, expired) or handed back (shutdown while
    /// waiting for its ETA).
    Settled,
}

/// One delivery being handled.
struct Delivery<'a, B: Broker> {
    ctx: &'a Consumer<B>,
    message: &'a TaskMessage,
    handle: &'a B::Handle,
}

/// Runs one delivered task to its final record, then acknowledges it.
pub(crate) async fn process<B: Broker>(
    ctx: &Consumer<B>,
    message: TaskMessage,
    queue: &str,
    handle: B::Handle,
    mut abandon: watch::Receiver<bool>,
) {
    let delivery = Delivery {
        ctx,
        message: &message,
        handle: &handle,
    };
    let started_stored = match delivery.admit(&mut abandon).await {
        Admission::Run { started_stored } => started_stored,
        Admission::Settled => return,
    };
    let started = Instant::now();
    if !started_stored {
        delivery
            .store(&delivery.started_record(), &mut abandon)
            .await;
    }
    let ending = delivery.execute(&mut abandon).await;
    let record = match ending {
        Ending::Abandoned => {
            log(&format!("task {} handed back unfinished", message.id));
            delivery.hand_back().await;
            return;
        }
        Ending::Success(result) => Record::success(&message.id, result, Utc::now()),
        Ending::Failure(exc_type, module, text) => {
            Record::failure(&message.id, exc_type, module, &text, None, Utc::now())
        }
    };
    log(&format!(
        "task {} ({} {}) on {queue}: {} in {:.1} ms",
        message.id,
        message.task,
        message
            .kwarg("action")
            .and_then(Value::as_str)
            .unwrap_or(""),
        record.status,
        started.elapsed().as_secs_f64() * 1000.0
    ));
    if delivery
        .store(&delivery.with_parent(record), &mut abandon)
        .await
    {
        delivery.ack().await;
    } else {
        log(&format!(
            "task {}: its final record could not be stored before shutdown; handed back",
            message.id
        ));
        delivery.hand_back().await;
    }
}

impl<B: Broker> Delivery<'_, B> {
    fn with_parent(&self, record: Record) -> Record {
        match self.message.parent_id() {
            Some(parent) => record.with_parent(parent),
            None => record,
        }
    }

    fn started_record(&self) -> Record {
        self.with_parent(Record::started(
            &self.message.id,
            std::process::id(),
            &self.ctx.settings.hostname,
        ))
    }

    /// The checks before the run: done before, expired, ETA.
    async fn admit(&self, abandon: &mut watch::Receiver<bool>) -> Admission {
        let id = &self.message.id;
        let now = Utc::now();
        let expired = self
            .message
            .expires()
            .ok()
            .flatten()
            .filter(|expires| *expires < now);
        let eta = self.message.eta().ok().flatten();
        let api_task = self.message.task == WORKER_TASK;
        // A task that runs now stores its STARTED record with the same round trip that reads
        // what was stored before (its PRE_RUN record, optional, would be overwritten at once);
        // one that waits for its ETA gets PRE_RUN and STARTED when it starts.
        let starts_now = api_task && expired.is_none() && eta.is_none();
        let mut started_stored = false;
        if api_task {
            // Delivered again after it finished (its worker died between the record and the
            // acknowledgement): done once, do not run it twice.
            let stored = if starts_now {
                let before = self.ctx.results.replace(&self.started_record()).await;
                started_stored = before.is_ok();
                before
            } else {
                self.ctx.results.state(id).await
            };
            if let Ok(Some(state)) = stored
                && state == "SUCCESS"
            {
                log(&format!(
                    "task {id} already succeeded; acknowledging the redelivery"
                ));
                self.ack().await;
                return Admission::Settled;
            }
        }
        if let Some(expires) = expired {
            log(&format!("task {id} expired at {expires}; revoked"));
            let record = self.with_parent(Record::revoked(id, "expired", Utc::now()));
            if self.store(&record, abandon).await {
                self.ack().await;
            } else {
                self.hand_back().await;
            }
            return Admission::Settled;
        }
        if let Some(eta) = eta {
            let wait = (eta - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = abandoned(abandon) => {
                    self.hand_back().await;
                    return Admission::Settled;
                }
            }
        }
        if api_task && !starts_now {
            let _ = self.ctx.results.pre_run(id).await;
        }
        Admission::Run { started_stored }
    }

    /// The run under the time limit, keeping the delivery from being restored meanwhile.
    async fn execute(&self, abandon: &mut watch::Receiver<bool>) -> Ending {
        let ctx = self.ctx;
        let work = async {
            match self.message.task.as_str() {
                WORKER_TASK => self.run_worker_task().await,
                BUMP_TASK => {
                    let expired = self
                        .message
                        .kwarg("expired")
                        .and_then(Value::as_bool)
                        .unwrap_or(true);
                    match ctx.schedule.bump_now(&ctx.engine, expired).await {
                        Ok(roles) => Ending::Success(Value::from(roles)),
                        Err(e) => Ending::Failure("RuntimeError", "builtins", e.to_string()),
                    }
                }
                other => {
                    Ending::Failure("NotRegistered", "celery.exceptions", format!("'{other}'"))
                }
            }
        };
        let touch_every = (ctx.settings.visibility_timeout / 3).max(Duration::from_millis(500));
        let keep_alive = async {
            loop {
                tokio::time::sleep(touch_every).await;
                let _ = ctx.broker.touch(self.handle).await;
            }
        };
        // A panic in an action ends the task as an exception ends a Celery task: a FAILURE
        // record and an acknowledgement, not a message redelivered for ever.
        let work = AssertUnwindSafe(work).catch_unwind();
        tokio::select! {
            ending = work => ending.unwrap_or_else(|panic| {
                let text = panic_text(panic.as_ref());
                log(&format!("task {} panicked: {text}", self.message.id));
                Ending::Failure("RuntimeError", "builtins", format!("The task failed: {text}"))
            }),
            _ = tokio::time::sleep(ctx.settings.time_limit) => Ending::Failure(
                "TimeLimitExceeded",
                "celery.exceptions",
                format!("Task exceeded its time limit of {} s", ctx.settings.time_limit.as_secs()),
            ),
            _ = abandoned(abandon) => Ending::Abandoned,
            _ = keep_alive => unreachable!("loops forever"),
        }
    }

    /// `app.repository_service_tuf_worker(action, payload=None)`.
    async fn run_worker_task(&self) -> Ending {
        let message = self.message;
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
            Err(unknown) => {
                return Ending::Failure("AttributeError", "builtins", unknown.to_string());
            }
        };
        // The payload's text as sent, so results that echo it keep its order.
        let payload = message
            .raw_kwarg("payload")
            .filter(|_| message.kwarg("payload").is_some_and(|p| !p.is_null()));
        let settings = &self.ctx.settings;
        let mut attempt = 0;
        let mut wait = settings.retry_wait;
        loop {
            let progress = Running { delivery: self };
            match action
                .run(&self.ctx.engine, payload, &message.id, &progress)
                .await
            {
                Ok(reply) => return Ending::Success(celery_result(action, &reply)),
                Err(e) if e.is_retryable() && attempt < settings.retries => {
                    attempt += 1;
                    log(&format!(
                        "task {} ({action}): {e}; retry {attempt} of {} in {wait:?}",
                        message.id, settings.retries
                    ));
                    let record =
                        Record::retry(&message.id, "ConnectionError", "builtins", &e.to_string());
                    store(self.ctx, &record, std::future::pending()).await;
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                }
                Err(e) => return Ending::Failure("RuntimeError", "builtins", e.to_string()),
            }
        }
    }

    async fn store(&self, record: &Record, abandon: &mut watch::Receiver<bool>) -> bool {
        store(self.ctx, record, abandoned(abandon)).await
    }

    /// Acknowledges, retrying while the broker is unreachable. On AMQP a lost connection has
    /// already returned the message to its queue; the redelivery finds the stored SUCCESS.
    async fn ack(&self) {
        let mut wait = FIRST_WAIT;
        for _ in 0..ACK_ATTEMPTS {
            match self.ctx.broker.ack(self.handle).await {
                Ok(()) => return,
                Err(e) => {
                    log(&format!("acknowledging {}: {e}; retrying", self.message.id));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(LONGEST_WAIT);
                }
            }
        }
        log(&format!(
            "gave up acknowledging {}; its redelivery finds the stored record",
            self.message.id
        ));
    }

    async fn hand_back(&self) {
        if let Err(e) = self.ctx.broker.hand_back(self.handle).await {
            log(&format!(
                "handing a message back: {e}; it returns after the visibility timeout"
            ));
        }
    }
}

/// The first wait after a failed write to a service; it doubles up to [`LONGEST_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(100);
const LONGEST_WAIT: Duration = Duration::from_secs(5);
/// About two minutes of acknowledgement attempts.
const ACK_ATTEMPTS: u32 = 40;

/// Stores a record, retrying while the result backend is unreachable (it may be restarting)
/// until it is stored or `give_up` resolves. Returns whether it was stored (a stored SUCCESS
/// it did not overwrite counts: the task's final record is there).
pub(crate) async fn store<B: Broker>(
    ctx: &Consumer<B>,
    record: &Record,
    give_up: impl Future<Output = ()>,
) -> bool {
    let attempts = async {
        let mut wait = FIRST_WAIT;
        loop {
            match ctx.results.store(record).await {
                Ok(_) => return,
                Err(e) => {
                    log(&format!(
                        "storing the {} record of {}: {e}; retrying",
                        record.status, record.task_id
                    ));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(LONGEST_WAIT);
                }
            }
        }
    };
    tokio::select! {
        () = attempts => true,
        () = give_up => false,
    }
}

/// Whether the message asks to run later than now.
pub(crate) fn waits_for_eta(message: &TaskMessage) -> bool {
    message
        .eta()
        .ok()
        .flatten()
        .is_some_and(|eta| eta > Utc::now())
}

/// A delivery waiting for its ETA outside the slots, with its hold on the capacity for them.
pub(crate) struct Held<H> {
    pub(crate) message: TaskMessage,
    pub(crate) queue: String,
    pub(crate) handle: H,
    pub(crate) hold: OwnedSemaphorePermit,
}

/// Waits for the ETA without a slot, touching the delivery so no consumer restores it (and
/// runs it twice); then waits for a slot and runs it. It is handed back as soon as intake has
/// stopped (`closed`).
pub(crate) async fn wait_for_eta<B: Broker>(
    ctx: Arc<Consumer<B>>,
    held: Held<B::Handle>,
    permits: Arc<Semaphore>,
    mut closed: watch::Receiver<bool>,
    abandon: watch::Receiver<bool>,
) {
    let Held {
        message,
        queue,
        handle,
        hold,
    } = held;
    let eta = message.eta().ok().flatten().unwrap_or_else(Utc::now);
    let wait = (eta - Utc::now()).to_std().unwrap_or_default();
    let touch_every = (ctx.settings.visibility_timeout / 3).max(Duration::from_millis(500));
    let keep_alive = async {
        loop {
            tokio::time::sleep(touch_every).await;
            let _ = ctx.broker.touch(&handle).await;
        }
    };
    let ready = async {
        tokio::time::sleep(wait).await;
        drop(hold);
        ctx.report_held().await;
        permits.acquire_owned().await.expect("semaphore open")
    };
    let permit = tokio::select! {
        permit = ready => permit,
        _ = abandoned(&mut closed) => {
            let delivery = Delivery { ctx: &ctx, message: &message, handle: &handle };
            delivery.hand_back().await;
            return;
        }
        _ = keep_alive => unreachable!("loops forever"),
    };
    process(&ctx, message, &queue, handle, abandon).await;
    drop(permit);
}

/// Resolves once the consumer tells running tasks to give up.
pub(crate) async fn abandoned(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|a| *a).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Add and remove tasks shown as RUNNING while they publish, as the reference shows them.
struct Running<'a, 'b, B: Broker> {
    delivery: &'a Delivery<'b, B>,
}

#[async_trait]
impl<B: Broker> Progress for Running<'_, '_, B> {
    async fn publishing(&self, roles: &[String]) {
        // `roles_to_publish` is Python's repr of the list, as the reference writes it.
        let repr: Vec<String> = roles.iter().map(|r| format!("'{r}'")).collect();
        let details = serde_json::json!({
            "published_roles": [],
            "roles_to_publish": format!("[{}]", repr.join(", ")),
        });
        let d = self.delivery;
        let record = Record::running(&d.message.id, "Publishing", details, Utc::now());
        store(d.ctx, &d.with_parent(record), std::future::pending()).await;
    }
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
