//! Worker configuration from the reference worker's environment variables (spec 0.5), turned
//! into typed values here and nowhere else. Errors name the variable at fault.

use std::path::PathBuf;
use std::time::Duration;

/// Where metadata is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `RSTUF_STORAGE_BACKEND=LocalStorage`.
    Local(PathBuf),
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
    /// `RSTUF_LOCK_TIMEOUT` (seconds, default 500).
    pub lock_timeout: Duration,
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

impl Config {
    /// Reads the configuration through `env` (the process environment in the binary).
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

        Ok(Config {
            storage,
            settings_url: format!("redis://{hostport}/{settings_db}"),
            lock_url: format!("redis://{hostport}/0"),
            database_url,
            online_key_dir: get("RSTUF_ONLINE_KEY_DIR").map(PathBuf::from),
            lock_timeout: Duration::from_secs(number("RSTUF_LOCK_TIMEOUT", 500)?),
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
        let mut vars = BASE.to_vec();
        vars.push(("RSTUF_REDIS_SERVER_PORT", "six"));
        assert_eq!(
            config(&vars).unwrap_err().variable,
            "RSTUF_REDIS_SERVER_PORT"
        );
        let mut vars = BASE.to_vec();
        vars[0] = ("RSTUF_STORAGE_BACKEND", "Floppy");
        assert!(
            config(&vars)
                .unwrap_err()
                .problem
                .contains("Invalid RSTUF_STORAGE_BACKEND Floppy")
        );
        let mut vars = BASE.to_vec();
        vars.push(("RSTUF_DB_USER", "rstuf"));
        assert_eq!(config(&vars).unwrap_err().variable, "RSTUF_DB_PASSWORD");
        let mut vars = BASE.to_vec();
        vars[3] = ("RSTUF_DB_SERVER", "db:5432");
        assert!(
            config(&vars)
                .unwrap_err()
                .problem
                .contains("requires a scheme")
        );
    }
}
