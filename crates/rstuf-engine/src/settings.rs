//! Names and typed access for repository settings (spec section 3).

use serde_json::Value;

use crate::outcome::TaskError;
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
