//! The payloads of settings and the other actions.

use super::*;

use rstuf_metadata::schema::{Metadata, Root, Signature};
use serde::Deserialize;
use serde_json::Value;

/// The longest expiration policy `update_settings` accepts: 100 years.
pub const MAX_POLICY_DAYS: u64 = 36_500;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawUpdateSettings {
    #[serde(deserialize_with = "some")]
    settings: Option<Object<RawExpirationSettings>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawExpirationSettings {
    #[serde(deserialize_with = "some")]
    expiration: Option<Entries>,
}

/// `update_settings`: `{"settings": {"expiration": {"<role>": days, ...}}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateSettings {
    /// Each role as given, with its days (1 to [`MAX_POLICY_DAYS`]), in payload order.
    pub expiration: Vec<(String, u64)>,
}

impl Payload for UpdateSettings {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawUpdateSettings = raw(source)?;
        // `settings: null` is there for the reference (`"settings" in payload`), yet has no
        // expiration.
        let Some(settings) = raw.settings else {
            return Err(PayloadError::Missing("settings"));
        };
        let entries = match settings.0.expiration {
            None => return Err(PayloadError::Missing("expiration")),
            Some(Entries::Other(_)) => return Err(PayloadError::ExpirationNotAMap),
            Some(Entries::Object(entries)) => entries,
        };
        if entries.is_empty() {
            return Err(PayloadError::NoExpirationRole);
        }
        let expiration = entries
            .into_iter()
            .map(
                |(role, days)| match days.as_u64().filter(|d| (1..=MAX_POLICY_DAYS).contains(d)) {
                    Some(d) => Ok((role, d)),
                    None => Err(PayloadError::Expiration {
                        role,
                        days: days.to_string(),
                        max: MAX_POLICY_DAYS,
                    }),
                },
            )
            .collect::<Result<_, _>>()?;
        Ok(UpdateSettings { expiration })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawRoles {
    #[serde(deserialize_with = "some")]
    roles: Option<Value>,
}

/// `force_online_metadata_update`: `{"roles": ["targets", "snapshot", ...]}` (none: `[]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForceOnlineUpdate {
    /// The role names, in payload order.
    pub roles: Vec<String>,
}

impl Payload for ForceOnlineUpdate {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawRoles = raw(source)?;
        let roles = match present(raw.roles) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    _ => Err(PayloadError::RolesNotNames),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(PayloadError::RolesNotNames),
        };
        Ok(ForceOnlineUpdate { roles })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawBump {
    #[serde(deserialize_with = "some")]
    expired: Option<Value>,
}

/// `bump_online_roles` as Celery beat sends it: `{"expired": bool}`, true unless `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BumpOnlineRoles {
    /// Only the roles that expire soon (true), or every online role.
    pub expired: bool,
}

impl Payload for BumpOnlineRoles {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawBump = raw(source)?;
        Ok(BumpOnlineRoles {
            expired: switch(raw.expired.as_ref()),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSign {
    #[serde(deserialize_with = "some")]
    role: Option<Value>,
    #[serde(deserialize_with = "some")]
    signature: Option<Value>,
}

/// `sign_metadata`: `{"role": name, "signature": {"keyid", "sig", ...}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignMetadata {
    /// The role whose pending metadata is signed.
    pub role: String,
    /// The signature (a sigstore `bundle` and any other field kept).
    pub signature: Signature,
}

impl Payload for SignMetadata {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawSign = raw(source)?;
        let Some(Value::String(role)) = raw.role else {
            return Err(PayloadError::Missing("role"));
        };
        let signature = raw
            .signature
            .and_then(|s| serde_json::from_value(s).ok())
            .ok_or(PayloadError::Signature)?;
        Ok(SignMetadata { role, signature })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDeleteSign {
    #[serde(deserialize_with = "some")]
    role: Option<Value>,
}

/// `delete_sign_metadata`: `{"role": name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteSignMetadata {
    /// The role whose signing event stops (non-empty).
    pub role: String,
}

impl Payload for DeleteSignMetadata {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawDeleteSign = raw(source)?;
        match present(raw.role) {
            None => Err(PayloadError::NoRoleToDelete),
            Some(Value::String(role)) if !role.is_empty() => Ok(DeleteSignMetadata { role }),
            Some(other) => Err(PayloadError::NotARoleName(other.to_string())),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawMetadataUpdate {
    #[serde(deserialize_with = "some")]
    metadata: Option<Value>,
}

/// `metadata_update`: `{"metadata": {"root": <Metadata dict>}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataUpdate {
    /// The new root, read (not yet checked against the trusted one).
    pub root: Metadata<Root>,
}

impl Payload for MetadataUpdate {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawMetadataUpdate = raw(source)?;
        let Some(metadata) = raw.metadata else {
            return Err(PayloadError::Missing("metadata"));
        };
        let Some(root) = metadata.get("root") else {
            return Err(PayloadError::UnsupportedMetadata);
        };
        let root = Metadata::<Root>::from_value(root.clone())
            .map_err(|e| PayloadError::Trust(e.to_string()))?;
        Ok(MetadataUpdate { root })
    }
}

/// What `metadata_delegation` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegationAction {
    /// `add`.
    Add,
    /// `update`.
    Update,
    /// `delete`.
    Delete,
}

impl DelegationAction {
    /// The word the API sends.
    pub fn verb(self) -> &'static str {
        match self {
            DelegationAction::Add => "add",
            DelegationAction::Update => "update",
            DelegationAction::Delete => "delete",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDelegation {
    #[serde(deserialize_with = "some")]
    action: Option<Value>,
    #[serde(deserialize_with = "some")]
    delegations: Option<Value>,
}

/// `metadata_delegation`: `{"action": "add"|"update"|"delete", "delegations": {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataDelegation {
    /// What to do.
    pub action: DelegationAction,
    /// The delegations object as sent (checked by the action, with the bootstrap's rules,
    /// once the repository's own delegations are known).
    pub delegations: Value,
}

impl Payload for MetadataDelegation {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawDelegation = raw(source)?;
        let action = match raw.action.as_ref().and_then(Value::as_str) {
            Some("add") => DelegationAction::Add,
            Some("update") => DelegationAction::Update,
            Some("delete") => DelegationAction::Delete,
            _ => return Err(PayloadError::DelegationAction),
        };
        match raw.delegations {
            Some(delegations @ Value::Object(_)) => Ok(MetadataDelegation {
                action,
                delegations,
            }),
            _ => Err(PayloadError::Missing("delegations")),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawBootstrap {
    #[serde(deserialize_with = "some")]
    settings: Option<Value>,
    #[serde(deserialize_with = "some")]
    metadata: Option<Value>,
}

/// `bootstrap`: `{"settings": {"roles": {...}}, "metadata": {"root": {...}}}`. Only their
/// presence is checked here: the rest is the bootstrap's plan, refused after the bootstrap
/// state is known (a refusal then also releases the API's bootstrap lock).
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// `settings` as sent.
    pub settings: Value,
    /// `metadata` as sent.
    pub metadata: Value,
}

impl Payload for Bootstrap {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawBootstrap = raw(source)?;
        // Present, even `null`, as the reference's `payload.get(...)` then fails later.
        let settings = raw.settings.ok_or(PayloadError::Missing("settings"))?;
        let metadata = raw.metadata.ok_or(PayloadError::Missing("metadata"))?;
        Ok(Bootstrap { settings, metadata })
    }
}
