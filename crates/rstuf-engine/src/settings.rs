//! Names and typed access for repository settings (the `DYNACONF_MAIN` hash the API shares).

use serde_json::Value;

use crate::outcome::{SettingProblem, TaskError};
use crate::ports::SettingsStore;

/// `BOOTSTRAP`: `None`, `pre-<id>`, `signing-<id>` or the finished task id.
pub(crate) const BOOTSTRAP: &str = "BOOTSTRAP";
pub(crate) const ROOT_SIGNING: &str = "ROOT_SIGNING";
pub(crate) const ONLINE_KEY: &str = "ONLINE_KEY";
pub(crate) const TRUSTED_ROOT: &str = "TRUSTED_ROOT";
pub(crate) const TRUSTED_TARGETS: &str = "TRUSTED_TARGETS";

/// Reads `BOOTSTRAP` as a string (`None` when unset or `None`). A value that dynaconf typed
/// (an all-digit id read as TOML) is turned back into its text.
pub(crate) async fn bootstrap_state(
    settings: &dyn SettingsStore,
) -> Result<Option<String>, TaskError> {
    Ok(match settings.get(BOOTSTRAP).await? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// Reads a positive whole-number setting (days, hours), or `default` when it is unset or
/// `None`. Dynaconf may hand back a number or a string holding one.
pub(crate) async fn days(
    settings: &dyn SettingsStore,
    key: &str,
    default: u32,
) -> Result<u32, TaskError> {
    let value = settings.get(key).await?;
    let parsed = match &value {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    parsed
        .and_then(|d| u32::try_from(d).ok())
        .filter(|d| *d > 0)
        .ok_or_else(|| {
            let value = value.unwrap_or(Value::Null);
            TaskError::setting(key, SettingProblem::NotPositive(value))
        })
}

/// Whether `BOOTSTRAP` says the bootstrap finished (neither unset, `pre-` nor `signing-`).
pub(crate) fn is_finished(state: Option<&str>) -> bool {
    state.is_some_and(|s| !s.starts_with("pre-") && !s.starts_with("signing"))
}
