//! `rstuf-bench`: the worker's tasks timed against the real services, one phase per process
//! so each phase's memory peak is its own.
//!
//! The repository lives in PostgreSQL database `rstuf_bench` (127.0.0.1:5432, or
//! `RSTUF_TEST_POSTGRES`), Redis database 7 and a directory (`--dir`). The `bootstrap` phase
//! wipes all three; later phases continue what it left. Each measurement is printed as one
//! JSON line: the phase, wall seconds and the process's peak resident memory so far.
//!
//! ```sh
//! cargo run --release -p rstuf-bench -- bootstrap --bins 16384
//! cargo run --release -p rstuf-bench -- populate --artifacts 1000000
//! cargo run --release -p rstuf-bench -- publish-one --times 20
//! cargo build --release -p rstuf-worker
//! cargo run --release -p rstuf-bench -- roundtrip --tasks 1000
//! ```

mod roundtrip;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rstuf_adapters::local_store::LocalStore;
use rstuf_adapters::postgres::PgIndex;
use rstuf_adapters::redis_lock::RedisLock;
use rstuf_adapters::redis_settings::RedisSettings;
use rstuf_adapters::signers::KeyUriSigners;
use rstuf_engine::Engine;
use rstuf_engine::ports::Ports;
use rstuf_engine::{artifacts, bootstrap, bump, publish};
use rstuf_test_support as support;
use serde_json::{Value, json};

const DATABASE: &str = "rstuf_bench";
const REDIS: &str = "redis://127.0.0.1:6379/7";

#[derive(Parser, Debug)]
#[command(about = "Times the worker's tasks against PostgreSQL, Redis and a local directory")]
struct Cli {
    /// The metadata directory.
    #[arg(long, default_value = "target/bench-repo")]
    dir: PathBuf,
    #[command(subcommand)]
    phase: Phase,
}

#[derive(Subcommand, Debug)]
enum Phase {
    /// Wipes the bench repository and bootstraps one with this many hash bins.
    Bootstrap {
        #[arg(long, default_value_t = 16_384)]
        bins: u64,
        /// The online key: the fixtures' RSA key, or the bench's ed25519 key
        /// (`crates/rstuf-bench/keys/online-ed25519.pem`, a test key).
        #[arg(long, value_enum, default_value_t = OnlineKey::Rsa)]
        online_key: OnlineKey,
    },
    /// Adds artifacts in chunks without publishing, then publishes them all at once.
    Populate {
        #[arg(long, default_value_t = 1_000_000)]
        artifacts: usize,
        #[arg(long, default_value_t = 50_000)]
        chunk: usize,
    },
    /// Adds one new artifact and publishes it, `times` times.
    PublishOne {
        #[arg(long, default_value_t = 20)]
        times: usize,
    },
    /// Re-signs every online role (`bump_online_roles` with `expired = false`).
    BumpAll,
    /// Starts `rstuf-worker worker` on the repository and times one-artifact `add_artifacts`
    /// tasks from the producer's send to their SUCCESS record, on Redis and on RabbitMQ.
    Roundtrip(roundtrip::Options),
}

/// Which online key the bench repository is bootstrapped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OnlineKey {
    /// The fixtures' RSA-2048 key (`fn:0d9d…`).
    Rsa,
    /// The bench's ed25519 key (`file2:` URI to its PEM).
    Ed25519,
}

/// The fixture bootstrap payload with `bins` bins, its online key replaced by the bench's
/// ed25519 key when asked, and its root re-signed by the fixture root keys.
fn bootstrap_payload(bins: u64, online_key: OnlineKey) -> anyhow::Result<Value> {
    use rstuf_metadata::keys::PrivateKey;
    use rstuf_metadata::schema::{Metadata, Root};
    let mut payload =
        support::fresh_bootstrap_payload("bootstrap/payload_bins.json", chrono::Utc::now(), 365);
    payload["settings"]["roles"]["bins"]["number_of_delegated_bins"] = json!(bins);
    if online_key == OnlineKey::Rsa {
        return Ok(payload);
    }
    let pem_path = support::workspace_root().join("crates/rstuf-bench/keys/online-ed25519.pem");
    let private = PrivateKey::from_pem(&std::fs::read(&pem_path)?, None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut key = private.public_key();
    let keyid = key.compute_keyid();
    key.unrecognized.insert(
        "x-rstuf-online-key-uri".into(),
        json!(format!("file2:{}", pem_path.display())),
    );
    key.unrecognized
        .insert("x-rstuf-key-name".into(), json!("bench online ed25519"));
    let mut root = Metadata::<Root>::from_value(payload["metadata"]["root"].clone())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let old = root
        .signed
        .role("timestamp")
        .expect("timestamp role")
        .keyids[0]
        .clone();
    let mut signed = serde_json::to_value(&root.signed)?;
    signed["keys"].as_object_mut().expect("keys").remove(&old);
    signed["keys"][&keyid] = serde_json::to_value(&key)?;
    for role in ["timestamp", "snapshot", "targets"] {
        signed["roles"][role]["keyids"] = json!([keyid]);
    }
    let signers: Vec<String> = root.signatures.iter().map(|s| s.keyid.clone()).collect();
    root = Metadata::<Root>::from_value(json!({"signed": signed, "signatures": []}))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for id in signers {
        let key = support::root_signing_key(&id).expect("a fixture root key");
        root.sign_with(&id, |m| key.sign(m))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    payload["metadata"]["root"] = root.to_value().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(payload)
}

/// Peak resident memory of this process in MiB (`VmHWM`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn report(phase: &str, started: Instant, extra: Value) {
    let mut line = json!({
        "phase": phase,
        "seconds": (started.elapsed().as_secs_f64() * 1e4).round() / 1e4,
        "peak_rss_mib": (peak_rss_mib() * 10.0).round() / 10.0,
    });
    if let (Value::Object(line), Value::Object(extra)) = (&mut line, extra) {
        line.extend(extra);
    }
    println!("{line}");
}

async fn ports(dir: &std::path::Path) -> anyhow::Result<Engine> {
    let url = format!("{}/{DATABASE}", support::postgres_server());
    let index = PgIndex::open(&url)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ports = Ports::new(
        Arc::new(LocalStore::new(dir).map_err(|e| anyhow::anyhow!("{e}"))?),
        Arc::new(index),
        Arc::new(
            RedisSettings::connect(REDIS)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        Arc::new(KeyUriSigners::new(Some(support::fixture("keys")))),
        Arc::new(
            RedisLock::connect(REDIS, "LOCK_TARGETS", std::time::Duration::from_secs(500))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
    )
    .with_cpu(Arc::new(rstuf_adapters::cpu::BlockingPool::new()));
    Ok(Engine::new(ports))
}

async fn wipe(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    support::recreate_postgres_db(DATABASE).await;
    let client = redis::Client::open(REDIS)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    // ASYNC: the keys go at once, their memory is freed in the background (a database of many
    // runs' result records took longer to free than the client waits for a reply).
    let _: () = redis::cmd("FLUSHDB")
        .arg("ASYNC")
        .query_async(&mut c)
        .await?;
    Ok(())
}

fn artifact(i: usize) -> Value {
    json!({
        "path": format!("bench/{}/artifact-{i}.tar.gz", i / 1000),
        "info": {"length": 1024 + i, "hashes": {"sha256": format!("{i:064x}")}},
    })
}

fn check(outcome: &rstuf_engine::TaskOutcome) -> anyhow::Result<()> {
    if outcome.status() {
        Ok(())
    } else {
        bail!("task refused: {outcome:?}")
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.phase {
        Phase::Bootstrap { bins, online_key } => {
            wipe(&cli.dir).await?;
            let ports = ports(&cli.dir).await?;
            let payload = bootstrap_payload(bins, online_key)?;
            ports
                .settings
                .set("BOOTSTRAP", json!("pre-bench"))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let started = Instant::now();
            check(&bootstrap::bootstrap(&ports, &payload, "bench").await?)?;
            report(
                "bootstrap",
                started,
                json!({"bins": bins, "online_key": format!("{online_key:?}")}),
            );
        }
        Phase::Populate { artifacts, chunk } => {
            let ports = ports(&cli.dir).await?;
            let started = Instant::now();
            let mut from = 0;
            while from < artifacts {
                let to = (from + chunk).min(artifacts);
                let batch: Vec<Value> = (from..to).map(artifact).collect();
                let payload = json!({"artifacts": batch, "publish_artifacts": false});
                check(&artifacts::add_artifacts(&ports, &payload).await?)?;
                from = to;
            }
            report("populate-add", started, json!({"artifacts": artifacts}));
            let started = Instant::now();
            check(&publish::publish_artifacts(&ports).await?)?;
            report("populate-publish", started, json!({"artifacts": artifacts}));
            // What autovacuum does soon after a million rows changed; later phases measure the
            // steady state, not a bloated index.
            let url = format!("{}/{DATABASE}", support::postgres_server());
            let pool = sqlx::PgPool::connect(&url).await?;
            let started = Instant::now();
            sqlx::raw_sql("VACUUM ANALYZE").execute(&pool).await?;
            report("populate-vacuum", started, json!({}));
        }
        Phase::PublishOne { times } => {
            let ports = ports(&cli.dir).await?;
            let base = 10_000_000 + (chrono::Utc::now().timestamp() as usize % 1_000_000) * 100;
            let mut seconds = Vec::with_capacity(times);
            for n in 0..times {
                let payload = json!({"artifacts": [artifact(base + n)]});
                let started = Instant::now();
                check(&artifacts::add_artifacts(&ports, &payload).await?)?;
                seconds.push(started.elapsed().as_secs_f64());
            }
            seconds.sort_by(f64::total_cmp);
            let started = Instant::now();
            report(
                "publish-one",
                started,
                json!({
                    "times": times,
                    "median_seconds": seconds[times / 2],
                    "min_seconds": seconds[0],
                    "max_seconds": seconds[times - 1],
                }),
            );
        }
        Phase::BumpAll => {
            let ports = ports(&cli.dir).await?;
            let started = Instant::now();
            let roles = bump::bump_online_roles(&ports, bump::BumpScope::EveryOnlineRole).await?;
            report("bump-all", started, json!({"roles": roles.len()}));
        }
        Phase::Roundtrip(options) => roundtrip::run(&cli.dir, &options).await?,
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tokio::runtime::Runtime::new()?.block_on(run(cli))
}
