//! The task's actions: the `action` argument of the API's Celery task, parsed once into
//! [`Action`], and run through one dispatch, [`Action::run`], whatever sent it (the Celery
//! consumer, `rstuf-worker run-task`, the scheduled bump).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::artifacts::{self, Progress};
use crate::engine::Engine;
use crate::outcome::{TaskError, TaskOutcome};
use crate::payload::{self as p, Payload, PayloadSource};
use crate::{bootstrap, bump, delegation, publish, rotation, signing, update_settings};

/// Every action of the reference worker's task: the API's, plus the bump Celery beat sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `bootstrap`.
    Bootstrap,
    /// `update_settings`.
    UpdateSettings,
    /// `add_artifacts`.
    AddArtifacts,
    /// `remove_artifacts`.
    RemoveArtifacts,
    /// `publish_artifacts`.
    PublishArtifacts,
    /// `metadata_update`.
    MetadataUpdate,
    /// `force_online_metadata_update`.
    ForceOnlineMetadataUpdate,
    /// `sign_metadata`.
    SignMetadata,
    /// `delete_sign_metadata`.
    DeleteSignMetadata,
    /// `metadata_delegation`.
    MetadataDelegation,
    /// `bump_online_roles`.
    BumpOnlineRoles,
}

impl Action {
    /// Every action, in the reference worker's order.
    pub const ALL: [Action; 11] = [
        Action::Bootstrap,
        Action::UpdateSettings,
        Action::AddArtifacts,
        Action::RemoveArtifacts,
        Action::PublishArtifacts,
        Action::MetadataUpdate,
        Action::ForceOnlineMetadataUpdate,
        Action::SignMetadata,
        Action::DeleteSignMetadata,
        Action::MetadataDelegation,
        Action::BumpOnlineRoles,
    ];

    /// The name the API sends (and results carry as `task`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Bootstrap => "bootstrap",
            Action::UpdateSettings => "update_settings",
            Action::AddArtifacts => "add_artifacts",
            Action::RemoveArtifacts => "remove_artifacts",
            Action::PublishArtifacts => "publish_artifacts",
            Action::MetadataUpdate => "metadata_update",
            Action::ForceOnlineMetadataUpdate => "force_online_metadata_update",
            Action::SignMetadata => "sign_metadata",
            Action::DeleteSignMetadata => "delete_sign_metadata",
            Action::MetadataDelegation => "metadata_delegation",
            Action::BumpOnlineRoles => "bump_online_roles",
        }
    }

    /// Runs the action with `payload` (`None` when the task had none), as task `task_id`.
    /// The payload is parsed once into the action's struct ([`crate::payload`]); one that is
    /// refused gets the action's failure message and the refusal as its error. JSON text keeps
    /// the order of its objects (which `update_settings` echoes); a `Value` has sorted keys.
    /// `bump_online_roles` reads `{"expired": bool}` (true when absent), as Celery beat sends
    /// it. Add and remove report to `progress` before they publish.
    pub async fn run<S: PayloadSource + ?Sized>(
        self,
        engine: &Engine,
        payload: Option<&S>,
        task_id: &str,
        progress: &dyn Progress,
    ) -> Result<Reply, TaskError> {
        /// The action run on its parsed payload, or its refusal with `failed` as message.
        macro_rules! parsed {
            ($payload:ty, $failed:expr, |$p:ident| $run:expr) => {
                match <$payload>::parse(payload) {
                    Ok($p) => $run.await?,
                    Err(refused) => TaskOutcome::refused($failed, refused.to_string()),
                }
            };
        }
        let outcome = match self {
            Action::Bootstrap => parsed!(p::Bootstrap, bootstrap::FAILED, |p| {
                bootstrap::run(engine, p, task_id)
            }),
            Action::UpdateSettings => {
                parsed!(p::UpdateSettings, update_settings::FAILED, |p| {
                    update_settings::update(engine, p)
                })
            }
            Action::AddArtifacts => parsed!(p::AddArtifacts, artifacts::ADD_FAILED, |p| {
                artifacts::add(engine, p, progress)
            }),
            Action::RemoveArtifacts => {
                parsed!(p::RemoveArtifacts, artifacts::REMOVE_FAILED, |p| {
                    artifacts::remove(engine, p, progress)
                })
            }
            Action::PublishArtifacts => publish::publish_artifacts(engine).await?,
            // Refused payloads are reported after the bootstrap check, as the reference does.
            Action::MetadataUpdate => {
                rotation::update_root(engine, p::MetadataUpdate::parse(payload)).await?
            }
            Action::ForceOnlineMetadataUpdate => {
                bump::force(engine, p::ForceOnlineUpdate::parse(payload)).await?
            }
            Action::SignMetadata => parsed!(p::SignMetadata, signing::SIGN_FAILED, |p| {
                signing::sign(engine, p)
            }),
            Action::DeleteSignMetadata => {
                parsed!(p::DeleteSignMetadata, signing::DELETE_FAILED, |p| {
                    signing::delete_sign(engine, p)
                })
            }
            Action::MetadataDelegation => {
                parsed!(p::MetadataDelegation, delegation::FAILED, |p| {
                    delegation::delegate(engine, p)
                })
            }
            Action::BumpOnlineRoles => {
                // Never refused: anything but `expired: false` bumps what expires soon.
                let expired = p::BumpOnlineRoles::parse(payload)
                    .ok()
                    .is_none_or(|p| p.expired);
                let scope = bump::BumpScope::from_expired(expired);
                return Ok(Reply::Roles(bump::bump_online_roles(engine, scope).await?));
            }
        };
        Ok(Reply::Outcome(outcome))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an action; its message is the `AttributeError` the reference raises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'MetadataRepository' object has no attribute '{0}'")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .ok_or_else(|| UnknownAction(name.to_string()))
    }
}

/// What a task returns: RSTUF's result record for the API's actions, a plain list of role
/// names for the scheduled bump (as the reference's Celery task returns it).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A task result with status, message, error and details.
    Outcome(TaskOutcome),
    /// The roles `bump_online_roles` re-signed.
    Roles(Vec<String>),
}

impl Reply {
    /// Whether the task did what it was asked.
    pub fn status(&self) -> bool {
        match self {
            Reply::Outcome(o) => o.status(),
            Reply::Roles(_) => true,
        }
    }

    /// The JSON the result backend stores for `action`, with `last_update` at `now`.
    pub fn to_json(&self, action: Action, now: DateTime<Utc>) -> Value {
        match self {
            Reply::Outcome(o) => json!({
                "task": action.as_str(),
                "status": o.status(),
                "last_update": now.to_rfc3339_opts(SecondsFormat::Micros, false),
                "message": o.message,
                "error": o.error,
                "details": o.details,
            }),
            Reply::Roles(roles) => json!(roles),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_parses_from_its_name_and_nothing_else_does() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
        }
        let names: std::collections::BTreeSet<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), Action::ALL.len());
        for bad in ["", "Bootstrap", "bootstrap ", "publish", "__init__"] {
            assert_eq!(
                bad.parse::<Action>().unwrap_err().to_string(),
                format!("'MetadataRepository' object has no attribute '{bad}'")
            );
        }
    }
}
