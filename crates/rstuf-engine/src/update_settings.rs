//! `update_settings`: new expiration policies, in days, for roles that have
//! one. Nothing is re-signed; the new policies apply from the next bump.
//!
//! As the reference: a role without an `<ROLE>_EXPIRATION` setting is listed in
//! `invalid_roles` and the others are updated, each under the key as given. Unlike the
//! reference, a value that is not a positive whole number of days refuses the whole request
//! before anything is written (it would publish metadata that is already expired).

use serde_json::{Value, json};

use crate::engine::Engine;
use crate::outcome::{TaskError, TaskOutcome};
use crate::roles::expiration_key;

const FAILED: &str = "Update Settings Failed";
/// Sic: the reference's spelling, shown by the API and CLI.
const SUCCEEDED: &str = "Update Settings Succeded";

/// The longest policy accepted: 100 years.
const MAX_DAYS: u64 = 36_500;

/// Runs the `update_settings` action.
pub async fn update_settings(engine: &Engine, payload: &Value) -> Result<TaskOutcome, TaskError> {
    let Some(settings) = payload.get("settings") else {
        return Ok(TaskOutcome::refused(FAILED, "No 'settings' in the payload"));
    };
    let Some(expiration) = settings.get("expiration") else {
        return Ok(TaskOutcome::refused(
            FAILED,
            "No 'expiration' in the payload",
        ));
    };
    let Some(expiration) = expiration.as_object() else {
        return Ok(TaskOutcome::refused(
            FAILED,
            "'expiration' must map role names to days",
        ));
    };
    if expiration.is_empty() {
        return Ok(TaskOutcome::refused(
            FAILED,
            "No role provided for expiration policy change",
        ));
    }
    let mut policies = Vec::with_capacity(expiration.len());
    for (role, days) in expiration {
        match days.as_u64().filter(|d| (1..=MAX_DAYS).contains(d)) {
            Some(d) => policies.push((role, d)),
            None => {
                return Ok(TaskOutcome::refused(
                    FAILED,
                    format!(
                        "Invalid expiration for {role}: {days} is not a whole number of days between 1 and {MAX_DAYS}"
                    ),
                ));
            }
        }
    }
    let mut updated = Vec::new();
    let mut invalid = Vec::new();
    let mut writes = Vec::new();
    for (role, days) in policies {
        let key = expiration_key(role);
        match engine.settings.get(&key).await? {
            None | Some(Value::Null) => invalid.push(role.clone()),
            Some(_) => {
                updated.push(role.clone());
                writes.push((key, days));
            }
        }
    }
    for (key, days) in writes {
        engine.settings.set(&key, json!(days)).await?;
    }
    Ok(TaskOutcome::ok(
        SUCCEEDED,
        Some(json!({"updated_roles": updated, "invalid_roles": invalid})),
    ))
}
