//! The consumer loop: takes deliveries while slots are free, runs each in its own task, and on
//! shutdown lets running tasks finish for a while before telling them to hand back.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rstuf_celery::result::Record;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::delivery::{Held, process, store, wait_for_eta, waits_for_eta};
use crate::{Broker, Consumer, QUEUES, Received, log};

/// The most messages taken from the broker in one go (never more than there are free slots).
const INTAKE_BATCH: usize = 64;
/// How long the FAILURE record of a malformed message is retried while the result backend is
/// unreachable.
const MALFORMED_PATIENCE: Duration = Duration::from_secs(120);

impl<B: Broker> Consumer<B> {
    /// Consumes until `stop` turns true, then waits up to [`crate::Settings::shutdown_timeout`]
    /// for running tasks and hands back those still running.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let ctx = Arc::new(self);
        log(&format!(
            "{} ready: concurrency {}, queues {}",
            ctx.settings.hostname,
            ctx.settings.concurrency,
            QUEUES.join(", ")
        ));
        let mut background = JoinSet::new();
        background.spawn(housekeeping(ctx.clone(), stop.clone()));
        let bumps = ctx.clone();
        let bumps_stop = stop.clone();
        background.spawn(async move { bumps.schedule.run(&bumps.engine, bumps_stop).await });

        // Tasks still running at the shutdown deadline are told to hand their message back.
        let (abandon_tx, abandon_rx) = watch::channel(false);
        // Tasks waiting for their ETA hand their message back once intake has stopped (not
        // before: the last take could take it again).
        let (closed_tx, closed_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(ctx.settings.concurrency));
        let mut jobs = JoinSet::new();
        let mut failures = 0u32;
        while !*stop.borrow() {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("semaphore open"),
                _ = stop.changed() => break,
            };
            // Not raced against the stop signal: a take in flight must reach the broker's
            // record of what this consumer holds. As many messages as there are free slots
            // (this loop alone takes permits, so the free ones stay free until it takes them).
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
                                let ctx = ctx.clone();
                                let abandon = abandon_rx.clone();
                                // A task whose ETA is ahead waits outside the slots.
                                if waits_for_eta(&message)
                                    && let Ok(hold) = ctx.eta_holds.clone().try_acquire_owned()
                                {
                                    ctx.report_held().await;
                                    let (permits, closed) = (permits.clone(), closed_rx.clone());
                                    jobs.spawn(async move {
                                        let held = Held {
                                            message,
                                            queue,
                                            handle,
                                            hold,
                                        };
                                        wait_for_eta(ctx, held, permits, closed, abandon).await;
                                    });
                                    continue;
                                }
                                let permit = match permit.take() {
                                    Some(permit) => permit,
                                    None => permits
                                        .clone()
                                        .acquire_owned()
                                        .await
                                        .expect("semaphore open"),
                                };
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
                                answer_malformed(&ctx, &queue, &error.to_string(), task_id).await;
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
        let _ = closed_tx.send(true);
        if let Err(e) = ctx.broker.close().await {
            log(&format!("closing the broker consumer: {e}"));
        }
        let deadline = ctx.settings.shutdown_timeout;
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
    }
}

impl<B: Broker> Consumer<B> {
    /// Tells the broker how many deliveries wait for their ETA outside the slots.
    pub(crate) async fn report_held(&self) {
        let held = self.settings.eta_capacity - self.eta_holds.available_permits();
        if let Err(e) = self.broker.set_held(held).await {
            log(&format!(
                "widening the delivery window for tasks waiting for their ETA: {e}"
            ));
        }
    }
}

/// Restores deliveries of dead consumers now and then (and once at start).
async fn housekeeping<B: Broker>(ctx: Arc<Consumer<B>>, mut stop: watch::Receiver<bool>) {
    let every = (ctx.settings.visibility_timeout / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        match ctx.broker.maintain().await {
            Ok(0) => {}
            Ok(restored) => log(&format!(
                "restored {restored} message(s) left unacknowledged by a consumer that stopped"
            )),
            Err(e) => log(&format!("broker housekeeping: {e}")),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// A FAILURE record for a message that cannot run, when its id is known; a log line always.
async fn answer_malformed<B: Broker>(
    ctx: &Consumer<B>,
    queue: &str,
    error: &str,
    task_id: Option<String>,
) {
    log(&format!(
        "rejected a malformed message on {queue} (task {}): {error}",
        task_id.as_deref().unwrap_or("unknown")
    ));
    if let Some(id) = task_id {
        let record = Record::failure(
            &id,
            "ValueError",
            "builtins",
            &format!("Malformed task message: {error}"),
            None,
            Utc::now(),
        );
        // The message is already off its queue; the record is a courtesy to the sender,
        // tried for a while.
        store(ctx, &record, tokio::time::sleep(MALFORMED_PATIENCE)).await;
    }
}
