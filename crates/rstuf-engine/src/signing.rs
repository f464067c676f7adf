//! Signing events for metadata that waits for offline signatures (spec sections 1.2, 1.3 and
//! 2.2-2.3): the pending metadata of a role lives in the `<ROLE>_SIGNING` setting until its
//! threshold is met or the event is stopped.

use serde_json::{Value, json};

use crate::outcome::{TaskError, TaskOutcome};
use crate::ports::Ports;
use crate::roles::signing_key;
use crate::settings::{self, BOOTSTRAP};

/// Runs the `delete_sign_metadata` action: stops the signing event of a role. Stopping root's
/// during a bootstrap that waits for signatures also releases the bootstrap (`BOOTSTRAP =
/// None`), so a new bootstrap can be sent.
pub async fn delete_sign_metadata(
    ports: &Ports,
    payload: &Value,
) -> Result<TaskOutcome, TaskError> {
    let role = match payload.get("role") {
        None | Some(Value::Null) => {
            return Ok(TaskOutcome::refused(
                "Deletion of metadata pending signatures failed",
                "No role provided for deletion.",
            ));
        }
        Some(Value::String(role)) if !role.is_empty() => role.as_str(),
        Some(other) => {
            return Ok(TaskOutcome::refused(
                "Deletion of metadata pending signatures failed",
                format!("The role must be a role name, not {other}"),
            ));
        }
    };
    let key = signing_key(role);
    if matches!(ports.settings.get(&key).await?, None | Some(Value::Null)) {
        return Ok(TaskOutcome::refused(
            &format!("Deletion of {role} metadata failed."),
            format!("The {role} role is not in a signing process."),
        ));
    }
    ports.settings.set(&key, Value::Null).await?;
    let mut details = None;
    if role == "root" {
        let state = settings::bootstrap_state(ports.settings.as_ref()).await?;
        if state.as_deref().is_some_and(|s| s.starts_with("signing-")) {
            ports.settings.set(BOOTSTRAP, Value::Null).await?;
            details = Some(json!({"bootstrap": "Bootstrap process has been stopped"}));
        }
    }
    Ok(TaskOutcome::ok(
        &format!("Deletion of {role} metadata successful, signing process stopped"),
        details,
    ))
}
