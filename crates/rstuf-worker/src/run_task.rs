//! `rstuf-worker run-task ACTION [PAYLOAD.json|-]`: runs one task as the API would send it,
//! against the configured services, and prints RSTUF's task result JSON. The action runs
//! through the same [`Action::run`] the broker consumer calls.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use rstuf_adapters::faults::{Failpoint, Faulty};
use rstuf_adapters::local_store::LocalStore;
use rstuf_adapters::postgres::PgIndex;
use rstuf_adapters::redis_lock::{LOCK_TARGETS, RedisLock};
use rstuf_adapters::redis_settings::RedisSettings;
use rstuf_adapters::signers::KeyUriSigners;
use rstuf_engine::action::Action;
use rstuf_engine::ports::{ArtifactIndex, MetadataStore, Ports, SettingsStore};
use rstuf_engine::{Engine, artifacts};

use crate::config::{Config, Storage};

/// The longest the repository lock outlives a holder that died.
pub const LOCK_LEASE: std::time::Duration = std::time::Duration::from_secs(5);

/// Builds the engine and its ports from the configuration (and creates the database schema if the database
/// is empty, as the reference worker's entrypoint runs `alembic upgrade head`).
pub async fn ports(config: &Config) -> anyhow::Result<Engine> {
    let Storage::Local(dir) = &config.storage;
    let store = LocalStore::new(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let index = PgIndex::open(&config.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("Failed to initiate the database: {e}"))?;
    let settings = RedisSettings::connect(&config.settings_url)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Renewed every third of its TTL while held, so the TTL only bounds how long a crashed
    // holder blocks the others: at most LOCK_LEASE, however long RSTUF_LOCK_TIMEOUT is. A
    // holder that stalls past it loses the lock and cannot publish: the timestamp write is
    // fenced (see MetadataStore::put_timestamp).
    let lock_ttl = config.lock_timeout.min(LOCK_LEASE);
    let lock = RedisLock::connect(&config.lock_url, LOCK_TARGETS, lock_ttl)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let signers = KeyUriSigners::new(config.online_key_dir.clone())
        .with_env(Arc::new(|k| std::env::var(k).ok()));
    let mut store: Arc<dyn MetadataStore> = Arc::new(store);
    let mut index: Arc<dyn ArtifactIndex> = Arc::new(index);
    let mut settings: Arc<dyn SettingsStore> = Arc::new(settings);
    if let Some(point) = failpoint(config) {
        store = Arc::new(Faulty::new(store, point.clone()));
        index = Arc::new(Faulty::new(index, point.clone()));
        settings = Arc::new(Faulty::new(settings, point));
    }
    let ports = Ports::new(store, index, settings, Arc::new(signers), Arc::new(lock))
        .with_cpu(Arc::new(rstuf_adapters::cpu::BlockingPool::new()));
    Ok(Engine::new(ports))
}

/// The failpoint the crash tests armed, if any (one per process: the ports and the consumer
/// share its count).
pub fn failpoint(config: &Config) -> Option<Arc<Failpoint>> {
    static POINT: std::sync::OnceLock<Option<Arc<Failpoint>>> = std::sync::OnceLock::new();
    POINT
        .get_or_init(|| {
            let spec = config.failpoint.as_deref()?;
            Failpoint::parse(spec).ok()
        })
        .clone()
}

fn new_task_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("system randomness");
    hex::encode(bytes)
}

/// The payload's JSON text, checked to be JSON (kept as text: the action reads its objects in
/// the order they are written).
fn read_payload(arg: Option<&Path>) -> anyhow::Result<Option<String>> {
    let bytes = match arg {
        None => return Ok(None),
        Some(p) if p == Path::new("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading the payload from stdin")?;
            buf
        }
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
    };
    let text = String::from_utf8(bytes).context("the payload is not JSON (not UTF-8)")?;
    serde_json::from_str::<serde_json::Value>(&text).context("the payload is not JSON")?;
    Ok(Some(text))
}

/// The command: exit 0 when the result's status is true, 1 when it carries an error, 2 when
/// the task failed.
pub fn run(action: &str, payload: Option<&Path>) -> anyhow::Result<ExitCode> {
    let action: Action = action.parse()?;
    let payload = read_payload(payload)?;
    let config = Config::from_env(&crate::config::environment()).context("configuration")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let ports = ports(&config).await?;
        let task_id = new_task_id();
        match action
            .run(&ports, payload.as_deref(), &task_id, &artifacts::Unwatched)
            .await
        {
            Ok(reply) => {
                println!("{}", reply.to_json(action, chrono::Utc::now()));
                Ok(if reply.status() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
            Err(e) => {
                eprintln!("rstuf-worker: task {action} failed: {e}");
                Ok(ExitCode::from(2))
            }
        }
    })
}
