//! `add_artifacts` and `remove_artifacts`.
//!
//! Every artifact in the request is checked before anything is written, when the payload is
//! parsed ([`crate::payload::AddArtifacts`]: paths are [`crate::payload::TargetPath`]s, info is
//! a checked `TargetFile`): a bad path or bad info (empty hashes, a negative length, which the
//! reference stored and then failed on in every later publish) refuses the whole request and
//! changes nothing. Unless the request says `publish_artifacts: false`, the task's rows (added
//! artifacts, or paths marked for removal) join the process's next round of writing and
//! publishing ([`crate::queue`]) and the task returns once its change is in published metadata
//! (the reference polled every 3 seconds, several times per task); a burst of adds and removes
//! shares one transaction and one publication. With `publish_artifacts: false` the rows are
//! written in one transaction and the task returns at once; they wait for the next publish.

use serde_json::json;

use crate::engine::Engine;
use crate::outcome::{TaskError, TaskOutcome};
use crate::payload::{AddArtifacts, RemoveArtifacts};
use crate::ports::NewArtifact;
use crate::queue::{Change, last_per_path, write_and_publish};
use crate::repo::Current;
use crate::settings;

/// The message of a refused add.
pub const ADD_FAILED: &str = "Adding artifact(s) Failed";
const ADDED: &str = "Artifact(s) Added";
/// The message of a refused remove.
pub const REMOVE_FAILED: &str = "Removing artifact(s) Failed";
const REMOVED: &str = "Artifact(s) removed";

async fn require_bootstrap(engine: &Engine) -> Result<Option<String>, TaskError> {
    let state = settings::bootstrap_state(engine.settings.as_ref()).await?;
    Ok((!settings::is_finished(state.as_deref()))
        .then(|| "Requires a completed bootstrap".to_string()))
}

/// Told how an add or remove task progresses, so the runtime can show it (the reference
/// worker's RUNNING state, message "Publishing").
#[async_trait::async_trait]
pub trait Progress: Send + Sync {
    /// The request is accepted and its change to `roles` is about to be written and published.
    async fn publishing(&self, roles: &[String]);
}

/// Progress nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unwatched;

#[async_trait::async_trait]
impl Progress for Unwatched {
    async fn publishing(&self, _roles: &[String]) {}
}

entry_on_value! {
    /// Runs the `add_artifacts` action on a payload as sent.
    add_artifacts(engine): AddArtifacts, ADD_FAILED, |payload| add(engine, payload, &Unwatched)
}

/// Runs the `add_artifacts` action, reporting to `progress`.
pub async fn add(
    engine: &Engine,
    payload: AddArtifacts,
    progress: &dyn Progress,
) -> Result<TaskOutcome, TaskError> {
    if payload.artifacts.is_empty() {
        return Ok(TaskOutcome::ok(
            ADDED,
            Some(json!({"added_artifacts": [], "invalid_paths": [], "artifact_roles": []})),
        ));
    }
    if let Some(reason) = require_bootstrap(engine).await? {
        return Ok(TaskOutcome::refused(ADD_FAILED, reason));
    }
    let targets = Current::targets(engine).await?;
    let delegations = targets.signed.delegations.as_ref();
    let mut added = Vec::new();
    let mut invalid = Vec::new();
    let mut roles: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for artifact in payload.artifacts {
        let path = artifact.path.into_string();
        match delegations.and_then(|d| d.role_for_target(&path)) {
            None => invalid.push(path),
            Some(role) => {
                if !roles.contains(&role) {
                    roles.push(role.clone());
                }
                added.push(path.clone());
                rows.push(NewArtifact {
                    path,
                    info: artifact.info,
                    role,
                });
            }
        }
    }
    // A path given twice keeps its last info, as sequential writes would.
    let unique = last_per_path(rows);
    if !unique.is_empty() {
        if payload.publish_artifacts {
            progress.publishing(&roles).await;
            write_and_publish(engine, Change::add(unique, roles.clone()), progress).await?;
        } else {
            engine.index.add_artifacts(&unique).await?;
        }
    }
    Ok(TaskOutcome::ok(
        ADDED,
        Some(json!({"added_artifacts": added, "invalid_paths": invalid, "artifact_roles": roles})),
    ))
}

entry_on_value! {
    /// Runs the `remove_artifacts` action on a payload as sent.
    remove_artifacts(engine): RemoveArtifacts, REMOVE_FAILED, |payload| remove(engine, payload, &Unwatched)
}

/// Runs the `remove_artifacts` action, reporting to `progress`. Paths no role holds are not
/// found; the others are marked for removal in the next round of the [`crate::queue`] (or at
/// once, without publishing, with `publish_artifacts: false`).
pub async fn remove(
    engine: &Engine,
    payload: RemoveArtifacts,
    progress: &dyn Progress,
) -> Result<TaskOutcome, TaskError> {
    if let Some(reason) = require_bootstrap(engine).await? {
        return Ok(TaskOutcome::refused(REMOVE_FAILED, reason));
    }
    let targets = Current::targets(engine).await?;
    let delegations = targets.signed.delegations.as_ref();
    let paths = payload.artifacts;
    let candidates: Vec<(String, String)> = paths
        .iter()
        .filter_map(|p| {
            delegations
                .and_then(|d| d.role_for_target(p))
                .map(|role| (p.clone(), role))
        })
        .collect();
    let deleted = if candidates.is_empty() {
        Vec::new()
    } else if payload.publish_artifacts {
        write_and_publish(engine, Change::remove(candidates), progress).await?
    } else {
        let candidates: Vec<String> = candidates.into_iter().map(|(p, _)| p).collect();
        engine.index.remove_artifacts(&candidates).await?
    };
    let not_found: Vec<&String> = paths.iter().filter(|p| !deleted.contains(p)).collect();
    Ok(TaskOutcome::ok(
        REMOVED,
        Some(json!({"deleted_artifacts": deleted, "not_found_artifacts": not_found})),
    ))
}
