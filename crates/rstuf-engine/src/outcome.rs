//! What a task returns: the fields of RSTUF's task result that depend on the task.

use serde_json::Value;

use crate::ports::PortError;

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

/// A task that could not run to an outcome (a service failed); the runtime reports it as a
/// Celery FAILURE and may retry it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TaskError {
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// Metadata could not be built or encoded (a bug or corrupt stored data).
    #[error("{0}")]
    Metadata(String),
    /// The repository lock was lost (this task stalled past its lifetime and another worker
    /// took it) before the timestamp was written; nothing was published.
    #[error("the repository lock was lost before the timestamp was written")]
    LockLost,
}

impl TaskError {
    /// Whether running the task again may succeed: a service was unreachable or timed out
    /// (restarting, a network blip). Everything else fails the same way every time.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TaskError::Port(e) if e.kind == crate::ports::PortErrorKind::Transient)
    }
}
