//! Worker configuration from the reference worker's environment variables (`RSTUF_*`), turned
//! into typed values here and nowhere else. Errors name the variable at fault.

use std::path::PathBuf;
use std::time::Duration;

/// Tasks run at once unless `RSTUF_WORKER_CONCURRENCY` says otherwise. Tasks are async and
/// mostly wait (for the repository lock, the database, Redis), so this is not a process
/// count as in Celery: add tasks waiting for the lock are published together by whoever holds
/// it, and the more of them wait, the fewer publications a burst costs (BENCHMARKS.md: 10,000
/// one-artifact tasks sent at once, 709 artifacts/s with 64 at once, 1,516 with 256, 2,300
/// with 1,024). Each running task holds its message and payload in memory (a peak of 58 MiB
/// at 256 with one-artifact tasks), so a worker fed very large payloads may want fewer.
pub const DEFAULT_CONCURRENCY: usize = 256;

/// Where metadata is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `RSTUF_STORAGE_BACKEND=LocalStorage`.
    Local(PathBuf),
}

/// The Celery broker (`RSTUF_BROKER_SERVER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerUrl {
    /// `redis://host[:port][/db]`: kombu's Redis transport.
    Redis(String),
    /// `amqp://user:pass@host[:port][/vhost]`: RabbitMQ.
    Amqp(String),
}

/// How the consumer runs: our own settings, with defaults that match the reference worker's
/// observable behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// `RSTUF_BROKER_SERVER`.
    pub broker: BrokerUrl,
    /// The result backend, `<RSTUF_REDIS_SERVER>:<port>/<RSTUF_REDIS_SERVER_DB_RESULT>`.
    pub result_url: String,
    /// `RSTUF_WORKER_ID` (default: the host name); the node name is `rstuf@<id>`.
    pub worker_id: String,
    /// `RSTUF_WORKER_CONCURRENCY`: tasks run at once (default: [`DEFAULT_CONCURRENCY`], or
    /// the number of CPUs if larger).
    pub concurrency: usize,
    /// `RSTUF_TASK_TIME_LIMIT` (seconds, default 1800): a task still running is stopped and
    /// answered with FAILURE `TimeLimitExceeded`.
    pub time_limit: Duration,
    /// `RSTUF_WORKER_SHUTDOWN_TIMEOUT` (seconds, default 30): on SIGTERM, how long running
    /// tasks may take to finish before they are handed back to the broker (`0`: at once).
    pub shutdown_timeout: Duration,
    /// `RSTUF_BROKER_VISIBILITY_TIMEOUT` (seconds, default 300, Redis only): a message
    /// delivered this long ago and neither acknowledged nor refreshed (its consumer died) is
    /// restored to its queue. Our running tasks refresh theirs, so this can be far below
    /// kombu's 3600.
    pub visibility_timeout: Duration,
    /// `RSTUF_BUMP_ONLINE_ROLES_INTERVAL` (seconds, default 300): the schedule slot of the
    /// online-role bump (Celery beat's `*/5` minutes). `0` turns this worker's schedule off
    /// (when a separate Celery beat sends `app.bump_online_roles`).
    pub bump_interval: Option<Duration>,
    /// `RSTUF_BUMP_ONLINE_ROLES_TTL` (seconds, default 600): the longest a `BOR` holder may
    /// keep it without renewing.
    pub bump_ttl: Duration,
}

/// The typed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Metadata storage.
    pub storage: Storage,
    /// `redis://host:port/db` of the repository settings.
    pub settings_url: String,
    /// `redis://host:port/0` of the locks (the reference uses `RSTUF_REDIS_SERVER` as is).
    pub lock_url: String,
    /// PostgreSQL URL with credentials.
    pub database_url: String,
    /// `RSTUF_ONLINE_KEY_DIR`, for `fn:` key URIs.
    pub online_key_dir: Option<PathBuf>,
    /// `RSTUF_LOCK_TIMEOUT` (seconds, default 500): the reference's lock lifetime; ours is
    /// a renewed lease of at most 5 s (`run_task::LOCK_LEASE`), shorter when this is.
    pub lock_timeout: Duration,
    /// The consumer's settings; `None` when `RSTUF_BROKER_SERVER` is unset (enough for
    /// `run-task`, which needs no broker).
    pub runtime: Option<Runtime>,
    /// `RSTUF_TEST_FAILPOINT` (crash tests only): the durable write to abort the process at,
    /// as `rstuf_adapters::faults::Failpoint::parse` reads it (checked here).
    pub failpoint: Option<String>,
}

/// A missing or malformed variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The variable.
    pub variable: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn error(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

/// A value, read from the file it names when it starts with `/run/secrets` (as RSTUF does),
/// with the trailing newline removed.
fn secret(variable: &'static str, value: String) -> Result<String, ConfigError> {
    if value.starts_with("/run/secrets") {
        let text = std::fs::read_to_string(&value)
            .map_err(|e| error(variable, format!("cannot read {value}: {e}")))?;
        Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
    } else {
        Ok(value)
    }
}

/// The variables as the reference worker sees them (dynaconf, `envvar_prefix="RSTUF"`): the
/// process environment first, then top-level `KEY = value` lines of `$DATA_DIR/settings.ini`
/// (default `/data`) for `RSTUF_KEY`; values decoded as dynaconf does (`@int 5`, TOML
/// literals such as `"quoted"`, else the raw text).
pub fn environment() -> impl Fn(&str) -> Option<String> {
    let data_dir = std::env::var("DATA_DIR").unwrap_or_else(|_| "/data".into());
    let ini = std::fs::read_to_string(std::path::Path::new(&data_dir).join("settings.ini"))
        .map(|text| parse_ini(&text))
        .unwrap_or_default();
    move |name: &str| {
        let raw = std::env::var(name).ok().or_else(|| {
            let key = name.strip_prefix("RSTUF_")?;
            ini.get(&key.to_ascii_uppercase()).cloned()
        })?;
        Some(dynaconf_text(&raw))
    }
}

/// A value read the way dynaconf reads an environment variable, as text.
fn dynaconf_text(raw: &str) -> String {
    match rstuf_adapters::dynaconf::decode(raw) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Null) => String::new(),
        Ok(other) => other.to_string(),
        Err(_) => raw.to_string(),
    }
}

/// configobj's top level: `KEY = value` (quotes around the value removed; `#` comments and
/// `[sections]` ignored), keys upper-cased as dynaconf does.
fn parse_ini(text: &str) -> std::collections::HashMap<String, String> {
    let mut map = std::collections::HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            break;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
                .unwrap_or(value);
            map.insert(key.trim().to_ascii_uppercase(), unquoted.to_string());
        }
    }
    map
}

impl Config {
    /// Reads the configuration through `env` (the process environment in the binary).
    // Longer than 120 lines: one short block per variable (or group of variables), each
    // independent of the others, with the error naming it.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &'static str| env(name).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).ok_or_else(|| error(name, "is required"));
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| error(name, format!("{v:?} is not a number"))),
            }
        };

        let backend = required("RSTUF_STORAGE_BACKEND")?;
        let storage = match backend.to_ascii_uppercase().as_str() {
            "LOCALSTORAGE" => {
                let path = get("RSTUF_LOCAL_STORAGE_BACKEND_PATH")
                    .or_else(|| get("RSTUF_LOCAL_STORAGE_PATH"))
                    .ok_or_else(|| {
                        error(
                            "RSTUF_LOCAL_STORAGE_BACKEND_PATH",
                            "is required (or RSTUF_LOCAL_STORAGE_PATH) with RSTUF_STORAGE_BACKEND=LocalStorage",
                        )
                    })?;
                Storage::Local(PathBuf::from(path))
            }
            "AWSS3" => {
                return Err(error(
                    "RSTUF_STORAGE_BACKEND",
                    "AWSS3 is not supported by this worker yet",
                ));
            }
            _ => {
                return Err(error(
                    "RSTUF_STORAGE_BACKEND",
                    format!(
                        "Invalid RSTUF_STORAGE_BACKEND {backend}. Supported RSTUF_STORAGE_BACKEND AWSS3, LOCALSTORAGE"
                    ),
                ));
            }
        };

        let redis = required("RSTUF_REDIS_SERVER")?;
        let host = redis
            .strip_prefix("redis://")
            .ok_or_else(|| {
                error(
                    "RSTUF_REDIS_SERVER",
                    format!("{redis:?} must look like redis://host"),
                )
            })?
            .trim_end_matches('/');
        let port = number("RSTUF_REDIS_SERVER_PORT", 6379)?;
        let settings_db = number("RSTUF_REDIS_SERVER_DB_REPO_SETTINGS", 1)?;
        let hostport = if host.contains(':') {
            host.to_string()
        } else {
            format!("{host}:{port}")
        };

        let server = required("RSTUF_DB_SERVER")?;
        let (scheme, rest) = server
            .split_once("://")
            .ok_or_else(|| error("RSTUF_DB_SERVER", "requires a scheme. Ex: postgresql://"))?;
        if !matches!(
            scheme,
            "postgresql" | "postgres" | "postgresql+psycopg2" | "postgresql+psycopg"
        ) {
            return Err(error(
                "RSTUF_DB_SERVER",
                format!("scheme {scheme} is not supported; use postgresql://"),
            ));
        }
        let database_url = match get("RSTUF_DB_USER") {
            Some(user) => {
                let password = secret(
                    "RSTUF_DB_PASSWORD",
                    get("RSTUF_DB_PASSWORD").ok_or_else(|| {
                        error("RSTUF_DB_PASSWORD", "is required when using RSTUF_DB_USER")
                    })?,
                )?;
                format!("postgresql://{user}:{password}@{rest}")
            }
            None => format!("postgresql://{rest}"),
        };

        let result_db = number("RSTUF_REDIS_SERVER_DB_RESULT", 0)?;
        let runtime = match get("RSTUF_BROKER_SERVER") {
            None => None,
            Some(url) => {
                let broker = if url.starts_with("redis://") {
                    BrokerUrl::Redis(url)
                } else if url.starts_with("amqp://") || url.starts_with("pyamqp://") {
                    BrokerUrl::Amqp(url.replacen("pyamqp://", "amqp://", 1))
                } else {
                    return Err(error(
                        "RSTUF_BROKER_SERVER",
                        format!("{url:?} must start with redis:// or amqp://"),
                    ));
                };
                let seconds = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
                    match number(name, default)? {
                        0 => Err(error(name, "must be more than 0")),
                        n => Ok(Duration::from_secs(n)),
                    }
                };
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                let concurrency = number(
                    "RSTUF_WORKER_CONCURRENCY",
                    DEFAULT_CONCURRENCY.max(cpus) as u64,
                )?;
                if concurrency == 0 || concurrency > 1024 {
                    return Err(error(
                        "RSTUF_WORKER_CONCURRENCY",
                        "must be between 1 and 1024",
                    ));
                }
                Some(Runtime {
                    broker,
                    result_url: format!("redis://{hostport}/{result_db}"),
                    worker_id: get("RSTUF_WORKER_ID")
                        .or_else(|| get("HOSTNAME"))
                        .unwrap_or_else(|| "localhost".into()),
                    concurrency: concurrency as usize,
                    time_limit: seconds("RSTUF_TASK_TIME_LIMIT", 1800)?,
                    shutdown_timeout: Duration::from_secs(number(
                        "RSTUF_WORKER_SHUTDOWN_TIMEOUT",
                        30,
                    )?),
                    visibility_timeout: seconds("RSTUF_BROKER_VISIBILITY_TIMEOUT", 300)?,
                    bump_interval: match number("RSTUF_BUMP_ONLINE_ROLES_INTERVAL", 300)? {
                        0 => None,
                        n => Some(Duration::from_secs(n)),
                    },
                    bump_ttl: seconds("RSTUF_BUMP_ONLINE_ROLES_TTL", 600)?,
                })
            }
        };

        Ok(Config {
            storage,
            settings_url: format!("redis://{hostport}/{settings_db}"),
            lock_url: format!("redis://{hostport}/0"),
            database_url,
            online_key_dir: get("RSTUF_ONLINE_KEY_DIR").map(PathBuf::from),
            lock_timeout: Duration::from_secs(number("RSTUF_LOCK_TIMEOUT", 500)?),
            runtime,
            failpoint: match get("RSTUF_TEST_FAILPOINT") {
                None => None,
                Some(spec) => {
                    rstuf_adapters::faults::Failpoint::parse(&spec).map_err(|problem| {
                        ConfigError {
                            variable: "RSTUF_TEST_FAILPOINT",
                            problem,
                        }
                    })?;
                    Some(spec)
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_env(&|k| map.get(k).cloned())
    }

    const BASE: [(&str, &str); 4] = [
        ("RSTUF_STORAGE_BACKEND", "LocalStorage"),
        (
            "RSTUF_LOCAL_STORAGE_BACKEND_PATH",
            "/var/opt/repository-service-tuf/storage",
        ),
        ("RSTUF_REDIS_SERVER", "redis://redis"),
        ("RSTUF_DB_SERVER", "postgresql://postgres:secret@db:5432"),
    ];

    #[test]
    fn reads_the_reference_variables() {
        let c = config(&BASE).unwrap();
        assert_eq!(
            c.storage,
            Storage::Local("/var/opt/repository-service-tuf/storage".into())
        );
        assert_eq!(c.settings_url, "redis://redis:6379/1");
        assert_eq!(c.lock_url, "redis://redis:6379/0");
        assert_eq!(c.database_url, "postgresql://postgres:secret@db:5432");
        assert_eq!(c.lock_timeout, Duration::from_secs(500));
    }

    #[test]
    fn reads_the_runtime_variables() {
        let mut vars = BASE.to_vec();
        vars.push(("RSTUF_BROKER_SERVER", "amqp://guest:guest@rabbitmq:5672"));
        vars.push(("RSTUF_REDIS_SERVER_DB_RESULT", "3"));
        vars.push(("RSTUF_WORKER_ID", "w1"));
        vars.push(("RSTUF_WORKER_CONCURRENCY", "4"));
        let runtime = config(&vars).unwrap().runtime.unwrap();
        assert_eq!(
            runtime.broker,
            BrokerUrl::Amqp("amqp://guest:guest@rabbitmq:5672".into())
        );
        assert_eq!(runtime.result_url, "redis://redis:6379/3");
        assert_eq!(runtime.worker_id, "w1");
        assert_eq!(runtime.concurrency, 4);
        assert_eq!(runtime.bump_interval, Some(Duration::from_secs(300)));
        assert_eq!(runtime.bump_ttl, Duration::from_secs(600));
        assert!(config(&BASE).unwrap().runtime.is_none());
        for (name, bad) in [
            ("RSTUF_BROKER_SERVER", "guest:guest@rabbitmq:5672"),
            ("RSTUF_WORKER_CONCURRENCY", "0"),
            ("RSTUF_TASK_TIME_LIMIT", "soon"),
        ] {
            let mut vars = BASE.to_vec();
            vars.push(("RSTUF_BROKER_SERVER", "redis://redis"));
            vars.push((name, bad));
            assert_eq!(config(&vars).unwrap_err().variable, name, "{name}={bad}");
        }
    }

    #[test]
    fn values_are_read_as_dynaconf_reads_them() {
        assert_eq!(dynaconf_text("\"amqp://g:g@h\""), "amqp://g:g@h");
        assert_eq!(dynaconf_text("@int 30"), "30");
        assert_eq!(dynaconf_text("6390"), "6390");
        assert_eq!(dynaconf_text("0123"), "0123");
        assert_eq!(dynaconf_text("redis://redis"), "redis://redis");
        let ini =
            parse_ini("# settings\nbroker_server = 'redis://r'\nLOCK_TIMEOUT=60\n[other]\nX = 1\n");
        assert_eq!(ini.get("BROKER_SERVER").unwrap(), "redis://r");
        assert_eq!(ini.get("LOCK_TIMEOUT").unwrap(), "60");
        assert!(!ini.contains_key("X"));
    }

    #[test]
    fn names_the_variable_at_fault() {
        for (drop, variable) in [
            (0, "RSTUF_STORAGE_BACKEND"),
            (1, "RSTUF_LOCAL_STORAGE_BACKEND_PATH"),
            (2, "RSTUF_REDIS_SERVER"),
            (3, "RSTUF_DB_SERVER"),
        ] {
            let vars: Vec<(&str, &str)> = BASE
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != drop)
                .map(|(_, v)| *v)
                .collect();
            assert_eq!(config(&vars).unwrap_err().variable, variable);
        }
        // BASE with one variable added or replaced: the error it gives.
        let refused = |var: (&'static str, &'static str)| {
            let mut vars = BASE.to_vec();
            match vars.iter_mut().find(|(name, _)| *name == var.0) {
                Some(slot) => *slot = var,
                None => vars.push(var),
            }
            config(&vars).unwrap_err()
        };
        let port = refused(("RSTUF_REDIS_SERVER_PORT", "six"));
        assert_eq!(port.variable, "RSTUF_REDIS_SERVER_PORT");
        let backend = refused(("RSTUF_STORAGE_BACKEND", "Floppy"));
        assert!(
            backend
                .problem
                .contains("Invalid RSTUF_STORAGE_BACKEND Floppy")
        );
        let user = refused(("RSTUF_DB_USER", "rstuf"));
        assert_eq!(user.variable, "RSTUF_DB_PASSWORD");
        let scheme = refused(("RSTUF_DB_SERVER", "db:5432"));
        assert!(scheme.problem.contains("requires a scheme"));
    }
}
