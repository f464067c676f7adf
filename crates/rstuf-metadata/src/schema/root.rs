//! Root metadata (TUF specification 4.3).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SchemaError;
use super::common::{Expires, TypeTag, check_role_keys};
use crate::keys::Key;

/// The four top-level role names root must delegate, and no others.
pub const TOP_LEVEL_ROLES: [&str; 4] = ["root", "snapshot", "targets", "timestamp"];

/// A role entry in root: who may sign it and how many must.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Authorised key ids (no duplicates).
    pub keyids: Vec<String>,
    /// Number of distinct authorised keys whose signatures are needed (at least 1).
    pub threshold: u64,
    /// Fields we do not model.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Role {
    /// A role with the given keys and threshold.
    pub fn new(keyids: Vec<String>, threshold: u64) -> Self {
        Role {
            keyids,
            threshold,
            unrecognized: BTreeMap::new(),
        }
    }
}

/// Root metadata: the keys of the top-level roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Root {
    /// Always `root`.
    #[serde(rename = "_type")]
    pub type_tag: TypeTag<Root>,
    /// Specification version (major 1).
    pub spec_version: String,
    /// Metadata version, starting at 1.
    pub version: u64,
    /// Expiry.
    pub expires: Expires,
    /// Whether clients fetch `N.<role>.json` names (RSTUF always sets true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_snapshot: Option<bool>,
    /// Keys by key id.
    pub keys: BTreeMap<String, Key>,
    /// The four top-level roles.
    pub roles: BTreeMap<String, Role>,
    /// Fields we do not model.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

top_level_role!(Root, "root");

impl Root {
    /// The checks specific to this role type (the common ones are in [`Signed::validate`]).
    fn validate_fields(&self) -> Result<(), SchemaError> {
        let mut names: Vec<&str> = self.roles.keys().map(String::as_str).collect();
        names.sort_unstable();
        if names != TOP_LEVEL_ROLES {
            return Err(SchemaError::field(
                "signed.roles",
                format!("role names must be the top-level metadata roles, got {names:?}"),
            ));
        }
        for (name, role) in &self.roles {
            check_role_keys(&role.keyids, role.threshold)
                .map_err(|r| SchemaError::rule(format!("signed.roles.{name}"), r))?;
        }
        Ok(())
    }
}

impl Root {
    /// The role entry for a top-level role name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }
}
