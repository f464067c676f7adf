//! What a task returns: the fields of RSTUF's task result that depend on the task.

use std::fmt;
use std::sync::Arc;

use rstuf_metadata::schema::SchemaError;
use serde_json::Value;

use crate::ports::{PortError, PortErrorKind};

/// A finished task: RSTUF's `TaskResult` without `task` and `last_update`, which the runtime
/// adds. `status` is `error.is_none()`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutcome {
    /// `message` as the API shows it ("Bootstrap Processed", "Bootstrap Failed", ...).
    pub message: String,
    /// The error text, when the task refused the request.
    pub error: Option<String>,
    /// Task-specific details.
    pub details: Option<Value>,
}

impl TaskOutcome {
    /// A success.
    pub fn ok(message: &str, details: Option<Value>) -> Self {
        TaskOutcome {
            message: message.to_string(),
            error: None,
            details,
        }
    }

    /// A refusal: the request was bad or the repository is not in a state to accept it.
    pub fn refused(message: &str, error: impl Into<String>) -> Self {
        TaskOutcome {
            message: message.to_string(),
            error: Some(error.into()),
            details: None,
        }
    }

    /// Whether the task succeeded.
    pub fn status(&self) -> bool {
        self.error.is_none()
    }
}

/// A task that could not run to an outcome; the runtime reports it as a Celery FAILURE and
/// retries it when [`TaskError::is_retryable`] says so.
///
/// Apart from [`TaskError::Port`] and [`TaskError::LockLost`], every variant names what
/// failed: the stored file, the setting, the role or the online key. They mean stored data or
/// configuration the task cannot use (or a bug), never a bad request: a bad request is a
/// refused [`TaskOutcome`].
#[derive(Debug, Clone)]
pub enum TaskError {
    /// A port failed. Retryable when the port says the failure is
    /// [`Transient`](PortErrorKind::Transient).
    Port(PortError),
    /// A metadata file the repository refers to is not in storage. Not retryable.
    Missing {
        /// The file name (`3.snapshot.json`).
        file: String,
    },
    /// A stored metadata file does not parse, or breaks the metadata rules. Not retryable.
    Unreadable {
        /// The file name.
        file: String,
        /// Why it does not parse.
        source: Arc<SchemaError>,
    },
    /// A stored metadata file parses, but does not hold what the files that refer to it
    /// say. Not retryable.
    Inconsistent {
        /// The file name.
        file: String,
        /// What is wrong with it.
        problem: Inconsistency,
    },
    /// A repository setting is missing or holds something the task cannot use. Not
    /// retryable: it fails the same way until the setting changes.
    Setting {
        /// The setting (`TRUSTED_ROOT`, `BINS_EXPIRATION`).
        key: String,
        /// What is wrong with it.
        problem: SettingProblem,
    },
    /// The trusted root does not name a usable online key. Not retryable.
    OnlineKey {
        /// Where the root was read (the `TRUSTED_ROOT` setting).
        root: String,
        /// What is wrong with it.
        source: OnlineKeyError,
    },
    /// Metadata or a value the task built has no JSON, canonical JSON or storage form (a
    /// bug: everything is checked before). Not retryable.
    Encoding {
        /// What was encoded: a role (`root`, `bins-3f`) or a setting.
        what: String,
        /// Why it could not be encoded.
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A role reached writing without a signature (a bug). Not retryable.
    NotSigned {
        /// The role.
        role: String,
    },
    /// A role was signed for another version than its next one (a bug). Not retryable.
    SignedAsOtherVersion {
        /// The role.
        role: String,
        /// The version it was signed as.
        signed: u64,
        /// Its next version.
        next: u64,
    },
    /// The repository lock was lost (this task stalled past its lifetime and another worker
    /// took it) before the timestamp was written; nothing was published. Retryable: the task
    /// starts over from what is published and can succeed.
    LockLost,
    /// Another publication wrote `timestamp.json` after this one started (this task had lost
    /// the lock without noticing in time): the fenced timestamp write refused to replace it,
    /// and nothing of this publication was published. Retryable, like [`TaskError::LockLost`].
    Superseded(PortError),
}

impl From<PortError> for TaskError {
    fn from(e: PortError) -> Self {
        TaskError::Port(e)
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Port(e) => e.fmt(f),
            TaskError::Missing { file } => write!(f, "{file} is missing from storage"),
            TaskError::Unreadable { file, source } => write!(f, "{file}: {source}"),
            TaskError::Inconsistent { file, problem } => write!(f, "{file} {problem}"),
            TaskError::Setting { key, problem } => write!(f, "setting {key} {problem}"),
            TaskError::OnlineKey { root, source } => write!(f, "{root}: {source}"),
            TaskError::Encoding { what, source } => write!(f, "encoding {what}: {source}"),
            TaskError::NotSigned { role } => write!(f, "{role} was not signed"),
            TaskError::SignedAsOtherVersion { role, signed, next } => write!(
                f,
                "{role} was signed as version {signed}, but its next version is {next}"
            ),
            TaskError::LockLost => {
                f.write_str("the repository lock was lost before the timestamp was written")
            }
            TaskError::Superseded(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TaskError {
    /// The port error's own source (a port error shows as itself), or what failed to parse
    /// or encode; the shared causes are given as themselves, so they can be downcast.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TaskError::Port(e) | TaskError::Superseded(e) => e.source(),
            TaskError::Unreadable { source, .. } => Some(source.as_ref()),
            TaskError::Inconsistent { problem, .. } => Some(problem),
            TaskError::Setting { problem, .. } => Some(problem),
            TaskError::OnlineKey { source, .. } => Some(source),
            TaskError::Encoding { source, .. } => Some(&**source),
            TaskError::Missing { .. }
            | TaskError::NotSigned { .. }
            | TaskError::SignedAsOtherVersion { .. }
            | TaskError::LockLost => None,
        }
    }
}

impl TaskError {
    /// Whether running the task again may succeed: a service was unreachable or timed out
    /// (restarting, a network blip), or the repository lock was lost before anything was
    /// published. Everything else (missing or unreadable files and settings, bugs) fails the
    /// same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            TaskError::Port(e) => e.kind == PortErrorKind::Transient,
            TaskError::LockLost | TaskError::Superseded(_) => true,
            TaskError::Missing { .. }
            | TaskError::Unreadable { .. }
            | TaskError::Inconsistent { .. }
            | TaskError::Setting { .. }
            | TaskError::OnlineKey { .. }
            | TaskError::Encoding { .. }
            | TaskError::NotSigned { .. }
            | TaskError::SignedAsOtherVersion { .. } => false,
        }
    }

    /// [`TaskError::Unreadable`] for `file`.
    pub(crate) fn unreadable(file: impl Into<String>, source: SchemaError) -> Self {
        TaskError::Unreadable {
            file: file.into(),
            source: Arc::new(source),
        }
    }

    /// [`TaskError::Setting`] for `key`.
    pub(crate) fn setting(key: impl Into<String>, problem: SettingProblem) -> Self {
        TaskError::Setting {
            key: key.into(),
            problem,
        }
    }

    /// [`TaskError::Setting`] for `key`, whose value does not parse.
    pub(crate) fn unreadable_setting(
        key: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        TaskError::setting(key, SettingProblem::Unreadable(Arc::new(source)))
    }

    /// [`TaskError::Encoding`] of `what`.
    pub(crate) fn encoding(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        TaskError::Encoding {
            what: what.into(),
            source: Arc::new(source),
        }
    }
}

/// What is wrong with a stored metadata file that parses ([`TaskError::Inconsistent`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistency {
    /// Its `version` is not the one its name says.
    #[error("holds version {0}")]
    HoldsVersion(u64),
    /// It lacks an entry the task needs (`snapshot` in timestamp, `targets` in snapshot,
    /// `delegations` in targets).
    #[error("names no {0}")]
    NamesNo(&'static str),
    /// Its delegation keys do not include the online key.
    #[error("does not list the online key {keyid} among its delegation keys")]
    LacksOnlineKey {
        /// The online key's id.
        keyid: String,
    },
}

/// What is wrong with a setting ([`TaskError::Setting`]).
#[derive(Debug, Clone)]
pub enum SettingProblem {
    /// It is unset (or `None`).
    NotSet,
    /// It should hold a positive whole number of days or hours.
    NotPositive(Value),
    /// `ONLINE_KEY` without its `keyid`.
    NoKeyId,
    /// It does not parse as what it should hold (a key, a root, pending metadata).
    Unreadable(Arc<dyn std::error::Error + Send + Sync>),
    /// A publication needed it after its first write without having read it before (a bug:
    /// every setting a publication needs is read before it writes).
    NotReadBeforehand,
}

impl fmt::Display for SettingProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingProblem::NotSet => f.write_str("is not set"),
            SettingProblem::NotPositive(value) => write!(f, "is not a positive number: {value}"),
            SettingProblem::NoKeyId => f.write_str("has no keyid"),
            SettingProblem::Unreadable(e) => write!(f, "is unreadable: {e}"),
            SettingProblem::NotReadBeforehand => {
                f.write_str("was not read before the publication started")
            }
        }
    }
}

impl std::error::Error for SettingProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SettingProblem::Unreadable(e) => Some(&**e),
            _ => None,
        }
    }
}

/// Why a root names no usable online key ([`TaskError::OnlineKey`], or the refusal of a new
/// root).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnlineKeyError {
    /// The timestamp role lists no key.
    #[error("The timestamp role has no key")]
    NoTimestampKey,
    /// The timestamp role's first key is not among the root's keys.
    #[error("The online key {keyid} is not in the root keys")]
    NotInRoot {
        /// The key id the timestamp role lists.
        keyid: String,
    },
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn schema_error() -> SchemaError {
        rstuf_metadata::schema::Metadata::<rstuf_metadata::schema::Root>::from_bytes(b"{")
            .unwrap_err()
    }

    #[test]
    fn retryable_per_variant() {
        let port = |kind| TaskError::Port(PortError::new(kind, "x"));
        let cases = [
            (port(PortErrorKind::Transient), true),
            (port(PortErrorKind::Conflict), false),
            (port(PortErrorKind::Other), false),
            (TaskError::LockLost, true),
            (
                TaskError::Missing {
                    file: "3.snapshot.json".into(),
                },
                false,
            ),
            (
                TaskError::unreadable("3.snapshot.json", schema_error()),
                false,
            ),
            (
                TaskError::Inconsistent {
                    file: "timestamp.json".into(),
                    problem: Inconsistency::NamesNo("snapshot"),
                },
                false,
            ),
            (
                TaskError::setting("TRUSTED_ROOT", SettingProblem::NotSet),
                false,
            ),
            (
                TaskError::OnlineKey {
                    root: "TRUSTED_ROOT".into(),
                    source: OnlineKeyError::NoTimestampKey,
                },
                false,
            ),
            (
                TaskError::encoding("root", std::io::Error::other("x")),
                false,
            ),
            (
                TaskError::NotSigned {
                    role: "bins-0".into(),
                },
                false,
            ),
            (
                TaskError::SignedAsOtherVersion {
                    role: "bins-0".into(),
                    signed: 1,
                    next: 2,
                },
                false,
            ),
        ];
        for (err, retryable) in cases {
            assert_eq!(err.is_retryable(), retryable, "{err:?}");
        }
    }

    #[test]
    fn texts_name_the_file_setting_or_role() {
        let texts = [
            (
                TaskError::Missing {
                    file: "7.bins-3f.json".into(),
                },
                "7.bins-3f.json is missing from storage",
            ),
            (
                TaskError::Inconsistent {
                    file: "3.snapshot.json".into(),
                    problem: Inconsistency::HoldsVersion(4),
                },
                "3.snapshot.json holds version 4",
            ),
            (
                TaskError::Inconsistent {
                    file: "timestamp.json".into(),
                    problem: Inconsistency::NamesNo("snapshot"),
                },
                "timestamp.json names no snapshot",
            ),
            (
                TaskError::setting(
                    "BINS_EXPIRATION",
                    SettingProblem::NotPositive(serde_json::json!(-1)),
                ),
                "setting BINS_EXPIRATION is not a positive number: -1",
            ),
            (
                TaskError::setting("ONLINE_KEY", SettingProblem::NoKeyId),
                "setting ONLINE_KEY has no keyid",
            ),
            (
                TaskError::OnlineKey {
                    root: "TRUSTED_ROOT".into(),
                    source: OnlineKeyError::NotInRoot {
                        keyid: "abc".into(),
                    },
                },
                "TRUSTED_ROOT: The online key abc is not in the root keys",
            ),
            (
                TaskError::NotSigned {
                    role: "bins-0".into(),
                },
                "bins-0 was not signed",
            ),
        ];
        for (err, text) in texts {
            assert_eq!(err.to_string(), text);
        }
    }

    #[test]
    fn unreadable_metadata_keeps_the_schema_error() {
        let err = TaskError::unreadable("3.snapshot.json", schema_error());
        assert_eq!(
            err.to_string(),
            format!("3.snapshot.json: {}", schema_error())
        );
        assert!(err.source().unwrap().is::<SchemaError>());
        let err = TaskError::setting(
            "TRUSTED_ROOT",
            SettingProblem::Unreadable(Arc::new(schema_error())),
        );
        assert!(
            err.to_string()
                .starts_with("setting TRUSTED_ROOT is unreadable: malformed JSON"),
            "{err}"
        );
        let problem = err.source().expect("the problem");
        assert!(problem.source().unwrap().is::<SchemaError>());
    }
}
