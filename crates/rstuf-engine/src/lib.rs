//! The RSTUF worker's task logic, over small ports.
//!
//! Each task action is a function `(engine, payload) -> Result<TaskOutcome, TaskError>`, the
//! [`Engine`] holding the [`Ports`] and the state kept between tasks, the payload parsed once
//! into the action's struct ([`payload`]). The engine never names
//! Redis, SQL, S3, Celery or environment variables: it talks to [`ports`], and time comes
//! from the [`ports::Clock`]. A request that is wrong gets a
//! [`TaskOutcome`] with an error and changes nothing; a service that fails gives a
//! [`TaskError`].

#![warn(missing_docs)]

/// An action's entry point on a payload as sent (`&Value`): parsed as `$payload`, run with
/// `$run`, or refused with the outcome message `$failed`.
macro_rules! entry_on_value {
    ($(#[$doc:meta])* $name:ident($engine:ident): $payload:ty, $failed:expr, |$p:ident| $run:expr) => {
        $(#[$doc])*
        pub async fn $name(
            $engine: &crate::engine::Engine,
            payload: &serde_json::Value,
        ) -> Result<crate::outcome::TaskOutcome, crate::outcome::TaskError> {
            crate::payload::run_parsed(Some(payload), $failed, |$p: $payload| $run).await
        }
    };
}

pub mod action;
pub mod artifacts;
pub mod bootstrap;
pub mod bump;
pub mod delegation;
mod engine;
pub mod outcome;
pub mod payload;
pub mod ports;
pub mod publish;
pub mod queue;
mod repo;
pub mod roles;
pub mod rotation;
mod settings;
pub mod signing;
#[cfg(feature = "testing")]
pub mod testing;
pub mod update_settings;

pub use engine::{Engine, MetadataCache};
pub use outcome::{TaskError, TaskOutcome};
pub use ports::Ports;
