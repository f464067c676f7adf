//! The Celery protocol as RSTUF's Python API and worker speak it (Celery 5.6, kombu 5.6), as
//! captured from a running system (`tests/fixtures/reference-worker/captures`). This crate
//! knows nothing of TUF and does no I/O:
//!
//! - [`message`]: protocol v2 task messages (headers, properties, body
//!   `[args, kwargs, embed]`), transport independent;
//! - [`redis_envelope`]: kombu's Redis transport envelope (JSON with a base64 body, delivery
//!   tag, delivery info) and the `unacked` bookkeeping value;
//! - [`result`]: the result backend records (`celery-task-meta-<id>`): PRE_RUN, STARTED,
//!   RUNNING, SUCCESS, FAILURE, with kombu's datetime encoding.

#![warn(missing_docs)]

pub mod message;
pub mod redis_envelope;
pub mod result;

pub use message::{MessageError, TaskMessage};
