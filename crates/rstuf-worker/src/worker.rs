//! `rstuf-worker worker`: wires the Celery consumer ([`rstuf_consumer::Consumer`]) to the
//! configured broker (Redis or RabbitMQ), the Redis result backend and bump lease, and the
//! engine, and runs it until SIGTERM or SIGINT (stop taking messages; running tasks get
//! [`Runtime::shutdown_timeout`] to finish, then are handed back).

use std::sync::Arc;
use std::time::Duration;

use rstuf_adapters::amqp_broker::AmqpBroker;
use rstuf_adapters::faults::Faulty;
use rstuf_adapters::redis_broker::{RedisBroker, RedisResults};
use rstuf_adapters::redis_schedule::SlotLease;
use rstuf_consumer::{Broker, Consumer, QUEUES, Schedule, Settings, log};
use rstuf_engine::Engine;
use tokio::sync::watch;

use crate::config::{BrokerUrl, Config, Runtime};
use crate::run_task;

/// Starts the worker from the configuration and runs it until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let runtime = config
        .runtime
        .clone()
        .ok_or_else(|| anyhow::anyhow!("RSTUF_BROKER_SERVER: is required to run the worker"))?;
    let engine = Arc::new(run_task::ports(&config).await?);
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
    let parts = Parts {
        results,
        engine,
        schedule,
        settings: settings(&runtime),
    };
    match runtime.broker {
        BrokerUrl::Redis(url) => {
            let broker = RedisBroker::connect(&url, &QUEUES)
                .await
                .map_err(|e| anyhow::anyhow!("broker {url}: {e}"))?
                .with_visibility(runtime.visibility_timeout);
            broker.declare().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            parts.run(broker, &config, stop_rx).await;
        }
        BrokerUrl::Amqp(url) => {
            let prefetch = u16::try_from(runtime.concurrency).unwrap_or(u16::MAX);
            let broker = AmqpBroker::connect(&url, &QUEUES, prefetch)
                .await
                .map_err(|e| anyhow::anyhow!("broker: {e}"))?;
            parts.run(broker, &config, stop_rx).await;
        }
    }
    Ok(())
}

/// The consumer's settings from the worker's configuration.
fn settings(runtime: &Runtime) -> Settings {
    Settings {
        time_limit: runtime.time_limit,
        shutdown_timeout: runtime.shutdown_timeout,
        visibility_timeout: runtime.visibility_timeout,
        ..Settings::new(format!("rstuf@{}", runtime.worker_id), runtime.concurrency)
    }
}

/// Everything a consumer needs besides its broker.
struct Parts {
    results: RedisResults,
    engine: Arc<Engine>,
    schedule: Schedule,
    settings: Settings,
}

impl Parts {
    /// Runs the consumer over `broker` until `stop` (with the crash tests' failpoint around
    /// the broker and the results when one is armed).
    async fn run<B: Broker>(self, broker: B, config: &Config, stop: watch::Receiver<bool>) {
        let Parts {
            results,
            engine,
            schedule,
            settings,
        } = self;
        match run_task::failpoint(config) {
            Some(point) => {
                let results = Faulty::new(results, point.clone());
                let broker = Faulty::new(broker, point);
                Consumer::new(broker, results, engine, schedule, settings)
                    .run(stop)
                    .await
            }
            None => {
                Consumer::new(broker, results, engine, schedule, settings)
                    .run(stop)
                    .await
            }
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
