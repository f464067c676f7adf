//! The `roundtrip` phase: a real `rstuf-worker worker` process on the bench repository, fed
//! one-artifact `add_artifacts` tasks by a Rust producer on Redis or RabbitMQ; each task is
//! timed from just before the producer's send to the arrival of its SUCCESS record on the
//! result backend's `celery-task-meta-<id>` channel (the worker `PUBLISH`es every record it
//! stores; the bench subscribes before it sends anything).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_lite::StreamExt;
use rstuf_adapters::amqp_broker::AmqpBroker;
use rstuf_adapters::redis_broker::RedisBroker;
use rstuf_celery::TaskMessage;
use rstuf_celery::redis_envelope::{self, Envelope};
use rstuf_test_support as support;
use serde_json::{Value, json};

use crate::{DATABASE, REDIS};

/// The queue the API sends repository tasks to.
const QUEUE: &str = "metadata_repository";
/// The task the API sends.
const TASK: &str = "app.repository_service_tuf_worker";
/// The queue the RabbitMQ producer declares and consumes (it consumes what it is given, so it
/// must not be the worker's queue).
const PRODUCER_QUEUE: &str = "rstuf_bench_producer";
/// The longest one task may take before the run is abandoned.
const TASK_TIMEOUT: Duration = Duration::from_secs(120);

/// The options of the `roundtrip` phase.
#[derive(clap::Args, Debug)]
pub struct Options {
    /// The brokers to run on, one after the other, each with its own worker process.
    #[arg(long, value_enum, default_value = "both")]
    broker: Which,
    /// Tasks measured per broker.
    #[arg(long, default_value_t = 1_000)]
    tasks: usize,
    /// Tasks sent and awaited one at a time before the measured ones (the worker's first task
    /// loads the snapshot and targets into its cache); not counted.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Tasks kept outstanding: 1 measures each round trip alone; more also measures
    /// throughput.
    #[arg(long, default_value_t = 1)]
    inflight: usize,
    /// Artifacts each `add_artifacts` task carries (sustained ingest: e.g. 100 tasks of 100
    /// with `--inflight 100`).
    #[arg(long, default_value_t = 1)]
    artifacts_per_task: usize,
    /// `RSTUF_WORKER_CONCURRENCY` of the worker (default: the worker's own default).
    #[arg(long)]
    concurrency: Option<usize>,
    /// The worker binary (default: `target/release/rstuf-worker` of the workspace).
    #[arg(long)]
    worker: Option<PathBuf>,
    /// `RSTUF_BROKER_SERVER` of the Redis run.
    #[arg(long, default_value = "redis://127.0.0.1:6379/7")]
    redis_broker: String,
    /// `RSTUF_BROKER_SERVER` of the RabbitMQ run; its vhost is created with `rabbitmqctl`.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/rstuf-bench")]
    amqp_broker: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Redis,
    Rabbitmq,
    Both,
}

/// Runs the phase on the brokers asked for, printing one JSON line per broker.
pub async fn run(dir: &Path, options: &Options) -> anyhow::Result<()> {
    if options.tasks == 0 || options.inflight == 0 {
        bail!("--tasks and --inflight must be at least 1");
    }
    let dir = dir.canonicalize().with_context(|| {
        format!(
            "{} (run `cargo run --release -p rstuf-bench -- bootstrap --bins 16384` first)",
            dir.display()
        )
    })?;
    let worker = match &options.worker {
        Some(path) => path.clone(),
        None => support::workspace_root().join("target/release/rstuf-worker"),
    };
    if !worker.exists() {
        bail!(
            "{} not found: run `cargo build --release -p rstuf-worker` or pass --worker",
            worker.display()
        );
    }
    if matches!(options.broker, Which::Redis | Which::Both) {
        measure(&dir, &worker, Broker::Redis, options).await?;
    }
    if matches!(options.broker, Which::Rabbitmq | Which::Both) {
        measure(&dir, &worker, Broker::Rabbitmq, options).await?;
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Broker {
    Redis,
    Rabbitmq,
}

impl Broker {
    fn name(self) -> &'static str {
        match self {
            Broker::Redis => "redis",
            Broker::Rabbitmq => "rabbitmq",
        }
    }
}

/// Sends tasks the way the API does.
enum Producer {
    Redis(RedisBroker),
    Amqp(AmqpBroker),
}

impl Producer {
    async fn send(&self, message: TaskMessage) -> anyhow::Result<()> {
        match self {
            Producer::Redis(broker) => broker
                .publish(&Envelope::build(message, QUEUE), QUEUE)
                .await
                .map_err(|e| anyhow!("{e}")),
            Producer::Amqp(broker) => broker
                .publish(&message, QUEUE)
                .await
                .map_err(|e| anyhow!("{e}")),
        }
    }
}

/// 32 random hex digits.
fn hex32() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A one-artifact `add_artifacts` task with inline publish, as the API sends it.
fn task(i: usize, artifacts: usize) -> TaskMessage {
    let tag = &hex32()[..12];
    let artifacts: Vec<Value> = (0..artifacts.max(1))
        .map(|n| {
            json!({
                "path": format!("roundtrip/{i}-{tag}-{n}.tar.gz"),
                "info": {"length": 1, "hashes": {"sha256": format!("{}{}", hex32(), hex32())}},
            })
        })
        .collect();
    let payload = json!({
        "action": "add_artifacts",
        "payload": {
            "artifacts": artifacts,
            "add_task_id_to_custom": false,
            "publish_artifacts": true,
        },
    });
    let Value::Object(kwargs) = payload else {
        unreachable!("an object literal")
    };
    TaskMessage::new(&hex32(), TASK, kwargs, None, "bench@host")
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// `VmRSS` or `VmHWM` of a process, in MiB.
fn memory_mib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))?;
    Ok(kb / 1024.0)
}

/// CPU time (user + system) a process has used, in ms (`/proc/<pid>/stat`, in Linux's
/// USER_HZ of 100 ticks per second).
fn cpu_ms(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))
    };
    // utime and stime are fields 14 and 15, the 12th and 13th after the name.
    Ok((ticks(11)? + ticks(12)?) * 10.0)
}

/// A running `rstuf-worker worker`, stopped with SIGTERM when dropped.
struct WorkerProcess {
    child: Child,
    log: PathBuf,
    /// The duration in ms the worker logged for each task that succeeded.
    durations: Arc<Mutex<HashMap<String, f64>>>,
}

impl WorkerProcess {
    fn start(
        binary: &Path,
        dir: &Path,
        broker_url: &str,
        concurrency: Option<usize>,
        log: PathBuf,
    ) -> anyhow::Result<WorkerProcess> {
        let mut command = Command::new(binary);
        command.env_clear();
        if let Some(concurrency) = concurrency {
            command.env("RSTUF_WORKER_CONCURRENCY", concurrency.to_string());
        }
        let mut child = command
            .arg("worker")
            .env("RSTUF_STORAGE_BACKEND", "LocalStorage")
            .env("RSTUF_LOCAL_STORAGE_BACKEND_PATH", dir)
            .env("RSTUF_REDIS_SERVER", "redis://127.0.0.1")
            .env("RSTUF_REDIS_SERVER_DB_REPO_SETTINGS", "7")
            .env("RSTUF_REDIS_SERVER_DB_RESULT", "7")
            .env("RSTUF_BROKER_SERVER", broker_url)
            .env(
                "RSTUF_DB_SERVER",
                format!("{}/{DATABASE}", support::postgres_server()),
            )
            .env("RSTUF_ONLINE_KEY_DIR", support::fixture("keys"))
            .env("RSTUF_WORKER_ID", "bench")
            .env("RSTUF_BUMP_ONLINE_ROLES_INTERVAL", "0")
            // No settings.ini is read from the default /data.
            .env("DATA_DIR", dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let mut file = std::fs::File::create(&log)
            .with_context(|| format!("creating the worker log {}", log.display()))?;
        let durations = Arc::new(Mutex::new(HashMap::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let seen = durations.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                if line.contains(" ready: ") {
                    let _ = ready_tx.send(());
                }
                if let Some((id, ms)) = task_duration(&line) {
                    seen.lock().expect("not poisoned").insert(id, ms);
                }
            }
        });
        let mut worker = WorkerProcess {
            child,
            log,
            durations,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(()) => return Ok(worker),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if let Some(status) = worker.child.try_wait()? {
                        bail!("the worker exited ({status}); see {}", worker.log.display());
                    }
                }
                Err(_) => bail!(
                    "the worker did not say it was ready; see {}",
                    worker.log.display()
                ),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for it to exit (killed after 40 s).
    fn stop(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("the worker ignored SIGTERM for 40 s and was killed")
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The task id and duration of a worker log line
/// `task <id> (<task> <action>) on <queue>: SUCCESS in <ms> ms`.
fn task_duration(line: &str) -> Option<(String, f64)> {
    let rest = &line[line.find("rstuf-worker: task ")? + "rstuf-worker: task ".len()..];
    let id = rest.split_whitespace().next()?;
    let ms = rest
        .split_once(": SUCCESS in ")?
        .1
        .strip_suffix(" ms")?
        .parse()
        .ok()?;
    Some((id.to_string(), ms))
}

/// Creates the vhost of an `amqp://` URL and gives `guest` every permission on it;
/// failures (a missing `rabbitmqctl`) are only reported, "already exists" not even that.
fn ensure_vhost(url: &str) {
    let vhost = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, vhost)| vhost)
        .filter(|v| !v.is_empty() && *v != "/" && *v != "%2f");
    let Some(vhost) = vhost else { return };
    let run = |args: &[&str]| match Command::new("rabbitmqctl").args(args).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stderr);
            if !text.contains("already exists") && !text.contains("not_found") {
                eprintln!(
                    "rstuf-bench: rabbitmqctl {}: {}",
                    args.join(" "),
                    text.trim()
                );
            }
        }
        Err(e) => eprintln!("rstuf-bench: rabbitmqctl: {e}"),
    };
    run(&["add_vhost", vhost]);
    run(&["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]);
    // Messages left by an interrupted run would be timed as part of this one.
    run(&["purge_queue", "-p", vhost, QUEUE]);
}

/// Empties the Redis broker's queue (messages left by an interrupted run).
async fn purge_redis_queue(url: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: i64 = redis::cmd("DEL")
        .arg(redis_envelope::queue_keys(QUEUE))
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// The results of one broker's run.
/// CPU time (user + system) used so far by every process whose command name is `name`, ms.
fn cpu_ms_named(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .filter_map(|pid| cpu_ms(pid).ok())
        .sum()
}

/// Busy CPU time of the whole machine so far (all cores; not idle, not waiting for I/O), ms.
fn machine_busy_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = ticks.iter().take(8).sum::<f64>()
        - ticks.get(3).copied().unwrap_or(0.0)
        - ticks.get(4).copied().unwrap_or(0.0);
    busy * 10.0
}

/// CPU time used by each process that takes part in a run, ms, at one instant.
#[derive(Clone, Copy, Default)]
struct CpuShares {
    worker: f64,
    redis: f64,
    postgres: f64,
    bench: f64,
    machine: f64,
}

impl CpuShares {
    fn now(worker: u32) -> anyhow::Result<Self> {
        Ok(CpuShares {
            worker: cpu_ms(worker)?,
            redis: cpu_ms_named("redis-server"),
            postgres: cpu_ms_named("postgres"),
            bench: cpu_ms(std::process::id())?,
            machine: machine_busy_ms(),
        })
    }

    fn since(self, before: CpuShares) -> CpuShares {
        CpuShares {
            worker: self.worker - before.worker,
            redis: self.redis - before.redis,
            postgres: self.postgres - before.postgres,
            bench: self.bench - before.bench,
            machine: self.machine - before.machine,
        }
    }
}

struct Timings {
    /// Round trip of each measured task, ms, in sending order.
    round_trips: Vec<f64>,
    /// Task ids of the measured tasks.
    ids: Vec<String>,
    /// Round trip of each warm-up task, ms.
    warmup: Vec<f64>,
    /// Wall time of the measured tasks.
    elapsed: Duration,
    /// CPU time used during the measured tasks, ms.
    cpu: CpuShares,
}

// Longer than 120 lines: one measurement run (start the worker, send, collect, account the
// CPU of every process), whose steps share the clocks and counters they read.
async fn measure(
    dir: &Path,
    binary: &Path,
    broker: Broker,
    options: &Options,
) -> anyhow::Result<()> {
    let url = match broker {
        Broker::Redis => {
            purge_redis_queue(&options.redis_broker).await?;
            options.redis_broker.as_str()
        }
        Broker::Rabbitmq => {
            ensure_vhost(&options.amqp_broker);
            options.amqp_broker.as_str()
        }
    };
    let concurrency = options.concurrency;
    let log = PathBuf::from(format!("{}-worker-{}.log", dir.display(), broker.name()));
    let mut worker = WorkerProcess::start(binary, dir, url, concurrency, log)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = memory_mib(worker.pid(), "VmRSS:")?;

    let producer = match broker {
        Broker::Redis => Producer::Redis(
            RedisBroker::connect(url, &[QUEUE])
                .await
                .map_err(|e| anyhow!("{e}"))?,
        ),
        Broker::Rabbitmq => Producer::Amqp(
            AmqpBroker::connect(url, &[PRODUCER_QUEUE], 1)
                .await
                .map_err(|e| anyhow!("{e}"))?,
        ),
    };
    let mut pubsub = redis::Client::open(REDIS)?.get_async_pubsub().await?;
    pubsub.psubscribe("celery-task-meta-*").await?;
    let mut records = pubsub.into_on_message();

    let mut next = 0;
    let mut timings = Timings {
        round_trips: Vec::with_capacity(options.tasks),
        ids: Vec::with_capacity(options.tasks),
        warmup: Vec::with_capacity(options.warmup),
        elapsed: Duration::ZERO,
        cpu: CpuShares::default(),
    };
    // Warm-up, one at a time; then the measured tasks with `inflight` outstanding.
    for (warming_up, count, inflight) in [
        (true, options.warmup, 1),
        (false, options.tasks, options.inflight),
    ] {
        let cpu_before = CpuShares::now(worker.pid())?;
        let started = Instant::now();
        let mut pending: HashMap<String, Instant> = HashMap::new();
        let mut sent = 0;
        let mut done = 0;
        while done < count {
            while pending.len() < inflight && sent < count {
                let message = task(
                    next,
                    if warming_up {
                        1
                    } else {
                        options.artifacts_per_task
                    },
                );
                let id = message.id.clone();
                let at = Instant::now();
                producer.send(message).await?;
                pending.insert(id, at);
                sent += 1;
                next += 1;
            }
            let msg = tokio::time::timeout(TASK_TIMEOUT, records.next())
                .await
                .map_err(|_| {
                    anyhow!(
                        "no result within {TASK_TIMEOUT:?} for {:?}; see {}",
                        pending.keys().collect::<Vec<_>>(),
                        worker.log.display()
                    )
                })?
                .ok_or_else(|| anyhow!("the result subscription ended"))?;
            let arrived = Instant::now();
            let Some(id) = msg.get_channel_name().strip_prefix("celery-task-meta-") else {
                continue;
            };
            let Some(sent_at) = pending.get(id).copied() else {
                continue;
            };
            let record: Value = serde_json::from_slice(msg.get_payload_bytes())
                .with_context(|| format!("the record of task {id}"))?;
            match record["status"].as_str() {
                Some("SUCCESS") => {
                    if record["result"]["status"] != json!(true) {
                        bail!("task {id} succeeded with a refusal: {record}");
                    }
                    pending.remove(id);
                    let round_trip = (arrived - sent_at).as_secs_f64() * 1000.0;
                    if warming_up {
                        timings.warmup.push(round_trip);
                    } else {
                        timings.round_trips.push(round_trip);
                        timings.ids.push(id.to_string());
                    }
                    done += 1;
                }
                Some("FAILURE") => bail!("task {id} failed: {record}"),
                _ => {}
            }
        }
        if !warming_up {
            timings.elapsed = started.elapsed();
            timings.cpu = CpuShares::now(worker.pid())?.since(cpu_before);
        }
    }
    drop(records);

    let peak_rss = memory_mib(worker.pid(), "VmHWM:")?;
    worker.stop()?;
    report(
        broker,
        options,
        concurrency,
        idle_rss,
        peak_rss,
        &timings,
        &worker,
    );
    Ok(())
}

fn report(
    broker: Broker,
    options: &Options,
    concurrency: Option<usize>,
    idle_rss: f64,
    peak_rss: f64,
    timings: &Timings,
    worker: &WorkerProcess,
) {
    let mut sorted = timings.round_trips.clone();
    sorted.sort_by(f64::total_cmp);
    let logged = worker.durations.lock().expect("not poisoned");
    let mut in_worker: Vec<f64> = timings
        .ids
        .iter()
        .filter_map(|id| logged.get(id).copied())
        .collect();
    in_worker.sort_by(f64::total_cmp);
    let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
    let seconds = timings.elapsed.as_secs_f64();
    println!(
        "{}",
        json!({
            "phase": "roundtrip",
            "broker": broker.name(),
            "tasks": sorted.len(),
            "inflight": options.inflight,
            "concurrency": concurrency,
            "p50_ms": ms(percentile(&sorted, 50.0)),
            "p90_ms": ms(percentile(&sorted, 90.0)),
            "p99_ms": ms(percentile(&sorted, 99.0)),
            "max_ms": ms(sorted[sorted.len() - 1]),
            "min_ms": ms(sorted[0]),
            "mean_ms": ms(mean),
            "tasks_per_s": (sorted.len() as f64 / seconds * 10.0).round() / 10.0,
            "artifacts_per_task": options.artifacts_per_task,
            "artifacts_per_s":
                (sorted.len() as f64 * options.artifacts_per_task as f64 / seconds).round(),
            "seconds": (seconds * 1e3).round() / 1e3,
            "idle_rss_mib": (idle_rss * 10.0).round() / 10.0,
            "peak_rss_mib": (peak_rss * 10.0).round() / 10.0,
            "worker_logged": in_worker.len(),
            "worker_p50_ms": ms(percentile(&in_worker, 50.0)),
            "worker_p99_ms": ms(percentile(&in_worker, 99.0)),
            "worker_cpu_ms_per_task": ms(timings.cpu.worker / sorted.len() as f64),
            // Everything else the run keeps busy, per task: the producer and result reader
            // (this process), Redis and PostgreSQL, and the whole machine's busy time.
            "bench_cpu_ms_per_task": ms(timings.cpu.bench / sorted.len() as f64),
            "redis_cpu_ms_per_task": ms(timings.cpu.redis / sorted.len() as f64),
            "postgres_cpu_ms_per_task": ms(timings.cpu.postgres / sorted.len() as f64),
            "machine_cpu_ms_per_task": ms(timings.cpu.machine / sorted.len() as f64),
            "machine_busy": ((timings.cpu.machine / 1000.0 / seconds
                / std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64))
                * 100.0).round() / 100.0,
            "warmup_ms": timings.warmup.iter().map(|v| ms(*v)).collect::<Vec<_>>(),
        })
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 500.0);
        assert_eq!(percentile(&v, 90.0), 900.0);
        assert_eq!(percentile(&v, 99.0), 990.0);
        assert_eq!(percentile(&v, 100.0), 1000.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn reads_the_worker_task_line() {
        let line = "[2026-11-26 10:00:00.123] rstuf-worker: task 0123abcd (app.repository_service_tuf_worker add_artifacts) on metadata_repository: SUCCESS in 41.7 ms";
        assert_eq!(task_duration(line), Some(("0123abcd".into(), 41.7)));
        assert_eq!(
            task_duration("[t] rstuf-worker: task x (a b) on q: FAILURE in 3.0 ms"),
            None
        );
    }

    #[test]
    fn the_task_is_what_the_api_sends() {
        let message = task(3, 1);
        assert_eq!(message.id.len(), 32);
        assert_eq!(message.task, TASK);
        assert_eq!(message.kwarg("action"), Some(&json!("add_artifacts")));
        let artifact = &message.kwarg("payload").unwrap()["artifacts"][0];
        assert!(
            artifact["path"]
                .as_str()
                .unwrap()
                .starts_with("roundtrip/3-")
        );
        assert_eq!(
            artifact["info"]["hashes"]["sha256"].as_str().unwrap().len(),
            64
        );
    }
}
