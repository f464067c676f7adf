//! Targets metadata and delegations (TUF specification 4.5, TAP 15 succinct roles).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{Expires, TypeTag, check_role_keys};
use super::root::TOP_LEVEL_ROLES;
use super::{RuleError, SchemaError};
use crate::keys::Key;
use crate::pattern;
use crate::succinct::SuccinctRoles;

/// An artifact entry: length, hashes and optional `custom` data.
///
/// Deserialized by hand rather than with `#[serde(flatten)]`, which buffers every entry
/// through serde's generic content tree: a bin of a large repository holds thousands of these,
/// and re-signing every bin parses a million of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetFile {
    /// Hashes by algorithm (non-empty).
    pub hashes: BTreeMap<String, String>,
    /// Length in bytes.
    pub length: u64,
    /// `custom` and any other field we do not model.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl<'de> Deserialize<'de> for TargetFile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = TargetFile;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an artifact entry {length, hashes, ...}")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TargetFile, A::Error> {
                use serde::de::Error;
                let mut length = None;
                let mut hashes = None;
                let mut unrecognized = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "length" if length.is_none() => length = Some(map.next_value()?),
                        "hashes" if hashes.is_none() => hashes = Some(map.next_value()?),
                        "length" | "hashes" => {
                            return Err(A::Error::duplicate_field("length or hashes"));
                        }
                        _ => {
                            let value: Value = map.next_value()?;
                            unrecognized.insert(key, value);
                        }
                    }
                }
                Ok(TargetFile {
                    length: length.ok_or_else(|| A::Error::missing_field("length"))?,
                    hashes: hashes.ok_or_else(|| A::Error::missing_field("hashes"))?,
                    unrecognized,
                })
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

impl TargetFile {
    /// The `custom` object, if any.
    pub fn custom(&self) -> Option<&Value> {
        self.unrecognized.get("custom")
    }

    /// Checks python-tuf's rules: hashes non-empty.
    pub fn validate(&self) -> Result<(), RuleError> {
        if self.hashes.is_empty() {
            return Err(RuleError::EmptyHashes);
        }
        Ok(())
    }
}

/// A custom delegated role (TUF specification 4.5, `delegations.roles`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegatedRole {
    /// Role name; the role's file is `<version>.<name>.json`.
    pub name: String,
    /// Authorised key ids.
    pub keyids: Vec<String>,
    /// Signatures needed.
    pub threshold: u64,
    /// Whether a match here stops the search (RSTUF resolves first match regardless).
    pub terminating: bool,
    /// Path patterns (fnmatch per `/` segment); exactly one of this and `path_hash_prefixes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Hex prefixes of sha256(path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    /// Fields we do not model, for example `x-rstuf-expire-policy`.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl DelegatedRole {
    /// Whether `target_path` is delegated to this role (python-tuf `is_delegated_path`).
    pub fn is_delegated_path(&self, target_path: &str) -> bool {
        pattern::is_delegated_path(
            target_path,
            self.paths.as_deref(),
            self.path_hash_prefixes.as_deref(),
        )
    }

    fn validate(&self, path: &str) -> Result<(), SchemaError> {
        check_role_keys(&self.keyids, self.threshold).map_err(|r| SchemaError::rule(path, r))?;
        if self.paths.is_some() == self.path_hash_prefixes.is_some() {
            return Err(SchemaError::field(
                path,
                "only one of (paths, path_hash_prefixes) must be set",
            ));
        }
        Ok(())
    }
}

/// `delegations` of a targets role: keys plus either custom roles or succinct hash bins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegations {
    /// Keys of the delegated roles, by key id.
    pub keys: BTreeMap<String, Key>,
    /// Custom roles in priority order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<DelegatedRole>>,
    /// TAP 15 hash bins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succinct_roles: Option<SuccinctRoles>,
    /// Fields we do not model.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// A delegated role as seen by its delegator: the keys and threshold that must sign it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delegation<'a> {
    /// Authorised key ids.
    pub keyids: &'a [String],
    /// Signatures needed.
    pub threshold: u64,
}

impl Delegations {
    /// The role that an artifact path belongs to, as RSTUF resolves it: the bin for succinct
    /// roles, else the first custom role whose patterns or hash prefixes match.
    pub fn role_for_target(&self, target_path: &str) -> Option<String> {
        if let Some(succinct) = &self.succinct_roles {
            return Some(succinct.role_for_target(target_path));
        }
        self.roles
            .as_ref()?
            .iter()
            .find(|r| r.is_delegated_path(target_path))
            .map(|r| r.name.clone())
    }

    /// The keys and threshold for delegated role `name`, if this delegates it.
    pub fn delegation(&self, name: &str) -> Option<Delegation<'_>> {
        if let Some(s) = &self.succinct_roles {
            return s.is_delegated_role(name).then_some(Delegation {
                keyids: &s.keyids,
                threshold: s.threshold,
            });
        }
        self.roles
            .as_ref()?
            .iter()
            .find(|r| r.name == name)
            .map(|r| Delegation {
                keyids: &r.keyids,
                threshold: r.threshold,
            })
    }

    /// Names of all delegated roles (every bin for succinct roles).
    pub fn role_names(&self) -> Vec<String> {
        match (&self.roles, &self.succinct_roles) {
            (_, Some(s)) => s.role_names().collect(),
            (Some(roles), None) => roles.iter().map(|r| r.name.clone()).collect(),
            (None, None) => Vec::new(),
        }
    }

    fn validate(&self) -> Result<(), SchemaError> {
        const PATH: &str = "signed.delegations";
        if self.roles.is_some() == self.succinct_roles.is_some() {
            return Err(SchemaError::field(
                PATH,
                "one of roles and succinct_roles must be set",
            ));
        }
        if let Some(roles) = &self.roles {
            let mut names = BTreeSet::new();
            for (i, role) in roles.iter().enumerate() {
                let path = format!("{PATH}.roles[{i}]");
                if role.name.is_empty() || TOP_LEVEL_ROLES.contains(&role.name.as_str()) {
                    return Err(SchemaError::field(
                        path,
                        "delegated roles cannot be empty or use top-level role names",
                    ));
                }
                if !names.insert(role.name.as_str()) {
                    return Err(SchemaError::field(
                        path,
                        format!("duplicate role {}", role.name),
                    ));
                }
                role.validate(&path)?;
            }
        }
        if let Some(s) = &self.succinct_roles {
            check_role_keys(&s.keyids, s.threshold)
                .and_then(|_| s.validate())
                .map_err(|r| SchemaError::rule(format!("{PATH}.succinct_roles"), r))?;
        }
        Ok(())
    }
}

/// Targets metadata: artifacts and delegations. RSTUF's top-level targets only delegates;
/// bins and custom roles hold the artifacts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    /// Always `targets` (delegated roles use the same type).
    #[serde(rename = "_type")]
    pub type_tag: TypeTag<Targets>,
    /// Delegations, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    /// Expiry.
    pub expires: Expires,
    /// Specification version.
    pub spec_version: String,
    /// Artifacts by path.
    pub targets: BTreeMap<String, TargetFile>,
    /// Metadata version.
    pub version: u64,
    /// Fields we do not model.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

top_level_role!(Targets, "targets");

impl Targets {
    /// The checks specific to this role type (the common ones are in [`Signed::validate`]).
    fn validate_fields(&self) -> Result<(), SchemaError> {
        for (path, file) in &self.targets {
            file.validate()
                .map_err(|r| SchemaError::rule(format!("signed.targets.{path}"), r))?;
        }
        if let Some(d) = &self.delegations {
            d.validate()?;
        }
        Ok(())
    }
}

impl Targets {
    /// A targets role with no artifacts and no delegations.
    pub fn new(version: u64, expires: Expires) -> Self {
        Targets {
            type_tag: TypeTag::new(),
            spec_version: super::SPEC_VERSION.into(),
            version,
            expires,
            targets: BTreeMap::new(),
            delegations: None,
            unrecognized: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, paths: &[&str]) -> DelegatedRole {
        DelegatedRole {
            name: name.into(),
            keyids: vec![],
            threshold: 1,
            terminating: true,
            paths: Some(paths.iter().map(|p| p.to_string()).collect()),
            path_hash_prefixes: None,
            unrecognized: BTreeMap::new(),
        }
    }

    #[test]
    fn custom_roles_resolve_to_the_first_match_in_order() {
        let d = Delegations {
            keys: BTreeMap::new(),
            roles: Some(vec![
                role("dev", &["dev/*"]),
                role("default", &["*"]),
                role("late", &["dev/*", "*"]),
            ]),
            succinct_roles: None,
            unrecognized: BTreeMap::new(),
        };
        assert_eq!(d.role_for_target("dev/x.whl").as_deref(), Some("dev"));
        assert_eq!(d.role_for_target("x.whl").as_deref(), Some("default"));
        assert_eq!(d.role_for_target("other/dir/file"), None);
        assert_eq!(d.delegation("late").map(|x| x.threshold), Some(1));
        assert!(d.delegation("bins-0").is_none());
        assert_eq!(d.role_names(), ["dev", "default", "late"]);
    }
}

#[cfg(test)]
mod target_file_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn artifact_entries_keep_unknown_fields_and_refuse_bad_shapes() {
        let v = json!({"length": 3, "hashes": {"sha256": "ab"}, "custom": {"k": [1, "x"]},
                       "x-extra": null});
        let file: TargetFile = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(file.length, 3);
        assert_eq!(file.custom(), Some(&json!({"k": [1, "x"]})));
        assert_eq!(serde_json::to_value(&file).unwrap(), v);
        let text = r#"{"hashes": {"sha256": "ab"}, "length": 3, "custom": {"a": 1}}"#;
        assert_eq!(serde_json::from_str::<TargetFile>(text).unwrap().length, 3);
        for bad in [
            r#"{"hashes": {"sha256": "ab"}}"#,
            r#"{"length": 3}"#,
            r#"{"length": -1, "hashes": {}}"#,
            r#"{"length": 3, "hashes": {"sha256": 1}}"#,
            r#"{"length": 3, "length": 4, "hashes": {}}"#,
            r#"[3, {}]"#,
        ] {
            assert!(serde_json::from_str::<TargetFile>(bad).is_err(), "{bad}");
        }
    }
}
