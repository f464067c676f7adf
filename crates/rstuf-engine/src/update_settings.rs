//! `update_settings`: new expiration policies, in days, for roles that have
//! one. Nothing is re-signed; the new policies apply from the next bump.
//!
//! As the reference: a role without an `<ROLE>_EXPIRATION` setting is listed in
//! `invalid_roles` and the others are updated, each under the key as given, both lists in
//! payload order. Unlike the
//! reference, a value that is not a positive whole number of days refuses the whole request
//! before anything is written (it would publish metadata that is already expired).

use serde_json::{Value, json};

use crate::engine::Engine;
use crate::outcome::{TaskError, TaskOutcome};
use crate::payload::UpdateSettings;
use crate::roles::expiration_key;

/// The message of a refused request.
pub const FAILED: &str = "Update Settings Failed";
/// Sic: the reference's spelling, shown by the API and CLI.
const SUCCEEDED: &str = "Update Settings Succeded";

entry_on_value! {
    /// Runs the `update_settings` action on a payload as sent.
    update_settings(engine): UpdateSettings, FAILED, |payload| update(engine, payload)
}

/// Runs the `update_settings` action. `updated_roles` and `invalid_roles` list the roles in
/// payload order.
pub async fn update(engine: &Engine, payload: UpdateSettings) -> Result<TaskOutcome, TaskError> {
    let mut updated = Vec::new();
    let mut invalid = Vec::new();
    let mut writes = Vec::new();
    for (role, days) in payload.expiration {
        let key = expiration_key(&role);
        match engine.settings.get(&key).await? {
            None | Some(Value::Null) => invalid.push(role),
            Some(_) => {
                updated.push(role);
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
