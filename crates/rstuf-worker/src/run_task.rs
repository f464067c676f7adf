//! `rstuf-worker run-task ACTION [PAYLOAD.json|-]`: runs one task as the API would send it,
//! against the configured services, and prints RSTUF's task result JSON. The broker consumer
//! will call the same [`execute`].

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use rstuf_adapters::local_store::LocalStore;
use rstuf_adapters::postgres::PgIndex;
use rstuf_adapters::redis_lock::{LOCK_TARGETS, RedisLock};
use rstuf_adapters::redis_settings::RedisSettings;
use rstuf_adapters::signers::KeyUriSigners;
use rstuf_engine::ports::Ports;
use rstuf_engine::{Engine, TaskError, TaskOutcome, artifacts};
use serde_json::{Value, json};

use crate::config::{Config, Storage};

/// Builds the engine and its ports from the configuration (and creates the database schema if the database
/// is empty, as the reference worker's entrypoint runs `alembic upgrade head`).
pub async fn ports(config: &Config) -> anyhow::Result<Engine> {
    let Storage::Local(dir) = &config.storage;
    let store = LocalStore::new(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let index = PgIndex::connect(&config.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("Failed to initiate the database: {e}"))?;
    index
        .ensure_schema()
        .await
        .map_err(|e| anyhow::anyhow!("Failed to initiate the database: {e}"))?;
    let settings = RedisSettings::connect(&config.settings_url)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Renewed every third of its TTL while held, so the TTL only bounds how long a crashed
    // holder blocks the others: at most 30 s, however long RSTUF_LOCK_TIMEOUT is.
    let lock_ttl = config.lock_timeout.min(std::time::Duration::from_secs(30));
    let lock = RedisLock::connect(&config.lock_url, LOCK_TARGETS, lock_ttl)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let signers = KeyUriSigners::new(config.online_key_dir.clone())
        .with_env(Arc::new(|k| std::env::var(k).ok()));
    let ports = Ports::new(
        Arc::new(store),
        Arc::new(index),
        Arc::new(settings),
        Arc::new(signers),
        Arc::new(lock),
    )
    .with_cpu(Arc::new(rstuf_adapters::cpu::BlockingPool::new()));
    Ok(Engine::new(ports))
}

/// What a task returns: RSTUF's result record for the API's actions, a plain list of role
/// names for the scheduled bump (as the reference's Celery task returns it).
#[derive(Debug, Clone, PartialEq)]
pub enum TaskReply {
    /// A task result with status, message, error and details.
    Outcome(TaskOutcome),
    /// The roles `bump_online_roles` re-signed.
    Roles(Vec<String>),
}

impl TaskReply {
    /// Whether the task did what it was asked.
    pub fn status(&self) -> bool {
        match self {
            TaskReply::Outcome(o) => o.status(),
            TaskReply::Roles(_) => true,
        }
    }

    /// The JSON the Celery result backend stores for the task `action`.
    pub fn to_json(&self, action: &str) -> Value {
        match self {
            TaskReply::Outcome(o) => task_result(action, o),
            TaskReply::Roles(roles) => json!(roles),
        }
    }
}

/// Every action of the reference worker's task (the API's, plus the bump it schedules).
pub const ACTIONS: [&str; 11] = [
    "bootstrap",
    "update_settings",
    "add_artifacts",
    "remove_artifacts",
    "publish_artifacts",
    "metadata_update",
    "force_online_metadata_update",
    "sign_metadata",
    "delete_sign_metadata",
    "metadata_delegation",
    "bump_online_roles",
];

/// Runs `action` with `payload`, as the worker does for a Celery task with id `task_id`.
/// `bump_online_roles` reads `{"expired": bool}` (true when absent), as Celery beat sends it.
/// Add and remove report to `progress` before they publish.
pub async fn execute(
    ports: &Engine,
    action: &str,
    payload: Option<&Value>,
    task_id: &str,
    progress: &dyn artifacts::Progress,
) -> Result<TaskReply, TaskError> {
    use rstuf_engine::{bootstrap, bump, publish};
    let empty = Value::Null;
    let payload = payload.unwrap_or(&empty);
    let outcome = match action {
        "bootstrap" => bootstrap::bootstrap(ports, payload, task_id).await?,
        "add_artifacts" => artifacts::add_artifacts_watched(ports, payload, progress).await?,
        "remove_artifacts" => artifacts::remove_artifacts_watched(ports, payload, progress).await?,
        "publish_artifacts" => publish::publish_artifacts(ports).await?,
        "metadata_update" => rstuf_engine::rotation::metadata_update(ports, payload).await?,
        "metadata_delegation" => {
            rstuf_engine::delegation::metadata_delegation(ports, payload).await?
        }
        "sign_metadata" => rstuf_engine::signing::sign_metadata(ports, payload).await?,
        "delete_sign_metadata" => {
            rstuf_engine::signing::delete_sign_metadata(ports, payload).await?
        }
        "update_settings" => rstuf_engine::update_settings::update_settings(ports, payload).await?,
        "force_online_metadata_update" => {
            bump::force_online_metadata_update(ports, payload).await?
        }
        "bump_online_roles" => {
            let scope = bump::BumpScope::from_expired(
                payload
                    .get("expired")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
            );
            return Ok(TaskReply::Roles(
                bump::bump_online_roles(ports, scope).await?,
            ));
        }
        other => {
            return Err(TaskError::Metadata(format!(
                "action {other:?} is not implemented by this worker yet"
            )));
        }
    };
    Ok(TaskReply::Outcome(outcome))
}

/// RSTUF's task result record for an outcome.
pub fn task_result(action: &str, outcome: &TaskOutcome) -> Value {
    json!({
        "task": action,
        "status": outcome.status(),
        "last_update": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        "message": outcome.message,
        "error": outcome.error,
        "details": outcome.details,
    })
}

fn new_task_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("system randomness");
    hex::encode(bytes)
}

fn read_payload(arg: Option<&Path>) -> anyhow::Result<Option<Value>> {
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
    serde_json::from_slice(&bytes)
        .context("the payload is not JSON")
        .map(Some)
}

/// The command: exit 0 when the result's status is true, 1 when it carries an error, 2 when
/// the task failed.
pub fn run(action: &str, payload: Option<&Path>) -> anyhow::Result<ExitCode> {
    let payload = read_payload(payload)?;
    let config = Config::from_env(&crate::config::environment()).context("configuration")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let ports = ports(&config).await?;
        let task_id = new_task_id();
        match execute(
            &ports,
            action,
            payload.as_ref(),
            &task_id,
            &artifacts::Unwatched,
        )
        .await
        {
            Ok(reply) => {
                println!("{}", reply.to_json(action));
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
