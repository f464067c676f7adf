//! `add_artifacts` and `remove_artifacts`.
//!
//! Every artifact in the request is checked before anything is written: a bad path or bad info
//! (empty hashes, a negative length, which the reference stored and then failed on in every
//! later publish) refuses the whole request and changes nothing. Unless the request says
//! `publish_artifacts: false`, the task's rows join the process's next round of writing and
//! publishing ([`crate::queue`]) and the task returns once its artifacts are in published
//! metadata (the reference polled every 3 seconds, several times per task); a burst of tasks shares one transaction and one
//! publication. With `publish_artifacts: false` the rows are written in one transaction and the
//! task returns at once; they wait for the next publish.

use rstuf_metadata::cjson::check_no_floats;
use rstuf_metadata::pyjson::to_python_json;
use rstuf_metadata::schema::TargetFile;
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::outcome::{TaskError, TaskOutcome};
use crate::ports::NewArtifact;
use crate::queue::{last_per_path, write_and_publish};
use crate::repo::Current;
use crate::settings;

const ADD_FAILED: &str = "Adding artifact(s) Failed";
const ADDED: &str = "Artifact(s) Added";
const REMOVE_FAILED: &str = "Removing artifact(s) Failed";
const REMOVED: &str = "Artifact(s) removed";

/// Checks an artifact path: a relative path of non-empty segments, none of them `.` or `..`,
/// without control characters or backslashes.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.starts_with('/') {
        return Err("the path must be relative (it starts with '/')".into());
    }
    if let Some(c) = path.chars().find(|c| c.is_control() || *c == '\\') {
        return Err(format!("the path contains the character {c:?}"));
    }
    if path
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err("the path has an empty, '.' or '..' segment".into());
    }
    Ok(())
}

/// Checks an artifact's `info` as python-tuf's `TargetFile.from_dict` would read it, and more:
/// a non-negative integer length, a non-empty map of hash names to hex strings, and no floats
/// anywhere (canonical JSON cannot sign them).
pub fn parse_info(info: &Value) -> Result<TargetFile, String> {
    let Value::Object(map) = info else {
        return Err("info must be an object".into());
    };
    check_no_floats(info).map_err(|e| format!("info: {e}"))?;
    match map.get("length") {
        Some(Value::Number(n)) if n.as_u64().is_some() => {}
        Some(_) => return Err("info.length must be a non-negative integer".into()),
        None => return Err("info.length is missing".into()),
    }
    match map.get("hashes") {
        Some(Value::Object(h)) if h.is_empty() => {
            return Err("info.hashes must not be empty".into());
        }
        Some(Value::Object(h)) => {
            for (alg, digest) in h {
                let ok = digest
                    .as_str()
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_hexdigit()));
                if alg.is_empty() || !ok {
                    return Err(format!("info.hashes.{alg} must be a hex digest"));
                }
            }
        }
        Some(_) => return Err("info.hashes must be an object".into()),
        None => return Err("info.hashes is missing".into()),
    }
    if let Some(custom) = map.get("custom")
        && !custom.is_object()
    {
        return Err("info.custom must be an object".into());
    }
    let file: TargetFile =
        serde_json::from_value(info.clone()).map_err(|e| format!("info: {e}"))?;
    file.validate().map_err(|e| e.to_string())?;
    Ok(file)
}

/// Why an artifact's info text is unusable: the text read from the index, or the info a
/// task stores.
#[derive(Debug, thiserror::Error)]
pub enum StoredInfoError {
    /// The text is not JSON.
    #[error("{0}")]
    Json(#[source] serde_json::Error),
    /// The JSON is not valid target info (the reason [`parse_info`] gives).
    #[error("{0}")]
    Invalid(String),
}

/// Parses info text stored in the index (ours, the reference worker's or the CLI's).
pub(crate) fn parse_info_text(text: &str) -> Result<TargetFile, StoredInfoError> {
    let value: Value = serde_json::from_str(text).map_err(StoredInfoError::Json)?;
    parse_info(&value).map_err(StoredInfoError::Invalid)
}

/// The info as the API's model dumps it and SQLAlchemy stores it: `json.dumps` with `length`,
/// `hashes` and `custom` first, in that order.
pub fn info_text(info: &Value) -> Result<String, TaskError> {
    const WHAT: &str = "artifact info";
    let Value::Object(map) = info else {
        let reason = StoredInfoError::Invalid("info must be an object".into());
        return Err(TaskError::encoding(WHAT, reason));
    };
    let first = ["length", "hashes", "custom"];
    let ordered = first
        .iter()
        .filter_map(|k| map.get_key_value(*k))
        .chain(map.iter().filter(|(k, _)| !first.contains(&k.as_str())));
    let mut parts = Vec::new();
    for (k, v) in ordered {
        let key =
            to_python_json(&Value::String(k.clone())).map_err(|e| TaskError::encoding(WHAT, e))?;
        let value = to_python_json(v).map_err(|e| TaskError::encoding(WHAT, e))?;
        parts.push(format!("{key}: {value}"));
    }
    Ok(format!("{{{}}}", parts.join(", ")))
}

fn publish_requested(payload: &Value) -> bool {
    payload
        .get("publish_artifacts")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

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

/// The payload's `artifacts` list, or the refusal (with the task's failure message) when it is
/// missing or not a list: the check add and remove share.
fn artifact_list<'a>(payload: &'a Value, failed: &str) -> Result<&'a [Value], TaskOutcome> {
    match payload.get("artifacts").map(Value::as_array) {
        None => Err(TaskOutcome::refused(
            failed,
            "No 'artifacts' in the payload",
        )),
        Some(None) => Err(TaskOutcome::refused(failed, "'artifacts' must be a list")),
        Some(Some(list)) => Ok(list),
    }
}

/// Runs the `add_artifacts` action.
pub async fn add_artifacts(engine: &Engine, payload: &Value) -> Result<TaskOutcome, TaskError> {
    add_artifacts_watched(engine, payload, &Unwatched).await
}

/// Runs the `add_artifacts` action, reporting to `progress`.
pub async fn add_artifacts_watched(
    engine: &Engine,
    payload: &Value,
    progress: &dyn Progress,
) -> Result<TaskOutcome, TaskError> {
    let artifacts = match artifact_list(payload, ADD_FAILED) {
        Ok(artifacts) => artifacts,
        Err(refused) => return Ok(refused),
    };
    let mut parsed = Vec::with_capacity(artifacts.len());
    for (i, artifact) in artifacts.iter().enumerate() {
        let path = artifact.get("path").and_then(Value::as_str);
        let checked = match (path, artifact.get("info")) {
            (None, _) => Err("'path' must be a string".to_string()),
            (Some(_), None) => Err("'info' is missing".to_string()),
            (Some(path), Some(info)) => check_path(path)
                .and_then(|()| parse_info(info))
                .map(|_| (path.to_string(), info)),
        };
        match checked {
            Ok((path, info)) => parsed.push((path, info_text(info)?)),
            Err(reason) => {
                let name = path.map_or_else(|| format!("#{i}"), |p| format!("{p:?}"));
                return Ok(TaskOutcome::refused(
                    ADD_FAILED,
                    format!("Invalid artifact {name}: {reason}"),
                ));
            }
        }
    }
    if parsed.is_empty() {
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
    for (path, info) in parsed {
        match delegations.and_then(|d| d.role_for_target(&path)) {
            None => invalid.push(path),
            Some(role) => {
                if !roles.contains(&role) {
                    roles.push(role.clone());
                }
                added.push(path.clone());
                rows.push(NewArtifact { path, info, role });
            }
        }
    }
    // A path given twice keeps its last info, as sequential writes would.
    let unique = last_per_path(rows);
    if !unique.is_empty() {
        if publish_requested(payload) {
            progress.publishing(&roles).await;
            write_and_publish(engine, unique, roles.clone()).await?;
        } else {
            engine.index.add_artifacts(&unique).await?;
        }
    }
    Ok(TaskOutcome::ok(
        ADDED,
        Some(json!({"added_artifacts": added, "invalid_paths": invalid, "artifact_roles": roles})),
    ))
}

/// Runs the `remove_artifacts` action.
pub async fn remove_artifacts(engine: &Engine, payload: &Value) -> Result<TaskOutcome, TaskError> {
    remove_artifacts_watched(engine, payload, &Unwatched).await
}

/// Runs the `remove_artifacts` action, reporting to `progress`.
pub async fn remove_artifacts_watched(
    engine: &Engine,
    payload: &Value,
    progress: &dyn Progress,
) -> Result<TaskOutcome, TaskError> {
    let artifacts = match artifact_list(payload, REMOVE_FAILED) {
        Ok(artifacts) => artifacts,
        Err(refused) => return Ok(refused),
    };
    if artifacts.is_empty() {
        return Ok(TaskOutcome::refused(
            REMOVE_FAILED,
            "At list one artifact is required",
        ));
    }
    let mut paths = Vec::with_capacity(artifacts.len());
    for (i, a) in artifacts.iter().enumerate() {
        match a.as_str() {
            Some(p) => paths.push(p.to_string()),
            None => {
                return Ok(TaskOutcome::refused(
                    REMOVE_FAILED,
                    format!("Invalid artifact #{i}: paths must be strings"),
                ));
            }
        }
    }
    if let Some(reason) = require_bootstrap(engine).await? {
        return Ok(TaskOutcome::refused(REMOVE_FAILED, reason));
    }
    let targets = Current::targets(engine).await?;
    let delegations = targets.signed.delegations.as_ref();
    let candidates: Vec<String> = paths
        .iter()
        .filter(|p| delegations.and_then(|d| d.role_for_target(p)).is_some())
        .cloned()
        .collect();
    let deleted = engine.index.remove_artifacts(&candidates).await?;
    let not_found: Vec<&String> = paths.iter().filter(|p| !deleted.contains(p)).collect();
    if !deleted.is_empty() && publish_requested(payload) {
        let mut roles: Vec<String> = Vec::new();
        for role in deleted
            .iter()
            .filter_map(|p| delegations.and_then(|d| d.role_for_target(p)))
        {
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        progress.publishing(&roles).await;
        write_and_publish(engine, Vec::new(), roles).await?;
    }
    Ok(TaskOutcome::ok(
        REMOVED,
        Some(json!({"deleted_artifacts": deleted, "not_found_artifacts": not_found})),
    ))
}
