//! Custom delegated roles: names and delegations are checked here, before anything is written
//! (the reference stored roles it could not load again, such as names starting with a digit),
//! for the bootstrap and for delegation changes.
//!
//! A role name becomes a file name (`<version>.<name>.json`) and a settings key
//! (`<NAME>_EXPIRATION`, `<NAME>_SIGNING`, upper-cased), so beyond the API's
//! `[a-zA-Z0-9_-]+` we refuse names that would collide there: top-level role names and `bins`
//! in any case, names that start with a digit (a reader would take the digits for a version),
//! and two names equal but for case.

use std::collections::{BTreeMap, BTreeSet};

use rstuf_metadata::keys::Key;
use rstuf_metadata::schema::{DelegatedRole, Delegations, TOP_LEVEL_ROLES};
use serde_json::Value;

/// Longest role name accepted: file names stay far below the usual 255-byte limit.
pub const MAX_ROLE_NAME: usize = 128;

/// The `x-rstuf-expire-policy` field: days each new version of the role stays valid.
pub const EXPIRE_POLICY: &str = "x-rstuf-expire-policy";

/// Why a custom role name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleNameError {
    /// Empty, or longer than [`MAX_ROLE_NAME`].
    #[error("Delegated role name {0:?} must have 1 to {MAX_ROLE_NAME} characters")]
    Length(String),
    /// A character outside `[a-zA-Z0-9_-]` (the API's rule and text).
    #[error(
        "Delegated custom target name {0} not allowed Only a-z, A-Z, 0-9, - and _ characters can be used"
    )]
    Characters(String),
    /// A leading digit.
    #[error(
        "Delegated role name {0:?} cannot start with a digit (file names start with the version)"
    )]
    LeadingDigit(String),
    /// A top-level role name or `bins`, in any case.
    #[error("Delegated role name {0:?} is reserved for a top-level role or the hash bins")]
    Reserved(String),
}

/// Checks a custom role name; `Err` says why it is refused.
pub fn check_role_name(name: &str) -> Result<(), RoleNameError> {
    if name.is_empty() || name.len() > MAX_ROLE_NAME {
        return Err(RoleNameError::Length(name.to_string()));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(RoleNameError::Characters(name.to_string()));
    }
    if name.as_bytes()[0].is_ascii_digit() {
        return Err(RoleNameError::LeadingDigit(name.to_string()));
    }
    let lower = name.to_ascii_lowercase();
    if TOP_LEVEL_ROLES.contains(&lower.as_str()) || lower == "bins" {
        return Err(RoleNameError::Reserved(name.to_string()));
    }
    Ok(())
}

/// Why custom delegations (a bootstrap's, or a delegation change) are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelegationError {
    /// The object does not read as TUF delegations.
    #[error("Invalid delegations: {0}")]
    Invalid(String),
    /// `succinct_roles` where custom roles were expected.
    #[error("Custom delegations cannot use succinct_roles; use bins")]
    Succinct,
    /// No role.
    #[error("Custom delegations need at least one role")]
    NoRole,
    /// A role name refused.
    #[error(transparent)]
    Name(#[from] RoleNameError),
    /// Two names equal but for case.
    #[error("Delegated role name {0:?} is used twice (names are compared without case)")]
    Twice(String),
    /// No usable `x-rstuf-expire-policy`.
    #[error("Delegated role {0}: 'x-rstuf-expire-policy' must be a positive number of days")]
    ExpirePolicy(String),
    /// An empty path pattern, or one with a NUL.
    #[error("Delegated role {0}: path pattern {1:?} is not allowed")]
    PathPattern(String, String),
    /// A path hash prefix that is not hex.
    #[error("Delegated role {0}: path hash prefix {1:?} is not hex")]
    HashPrefix(String, String),
    /// Not exactly one of the two non-empty.
    #[error(
        "Delegated role {0}: exactly one of 'paths' and 'path_hash_prefixes' must be a non-empty list"
    )]
    Paths(String),
    /// No keys (the online key then) but a threshold above 1.
    #[error("Delegated role {0}: If no keys assigned threshold must be 1")]
    ThresholdWithoutKeys(String),
    /// A key id listed twice.
    #[error("Delegated role {0}: duplicate key ids")]
    DuplicateKeys(String),
    /// A threshold out of range.
    #[error("Delegated role {role}: threshold {threshold} must be between 1 and its {keys} key(s)")]
    Threshold {
        /// The role.
        role: String,
        /// Its threshold.
        threshold: u64,
        /// How many keys it lists.
        keys: usize,
    },
    /// A key id without a key.
    #[error("Delegated role {role}: key {keyid} is not in the delegation keys")]
    UnknownKey {
        /// The role.
        role: String,
        /// The key id.
        keyid: String,
    },
    /// A key that cannot verify.
    #[error("Delegation key {keyid}: {reason}")]
    BadKey {
        /// The key id.
        keyid: String,
        /// Why.
        reason: String,
    },
}

/// The settings key prefix of a role: its name upper-cased, hyphens kept.
pub fn settings_prefix(name: &str) -> String {
    name.to_uppercase()
}

/// The settings key of a role's expiry policy in days (`<ROLE>_EXPIRATION`).
pub fn expiration_key(name: &str) -> String {
    format!("{}_EXPIRATION", settings_prefix(name))
}

/// The settings key of a role's pending metadata (`<ROLE>_SIGNING`).
pub fn signing_key(name: &str) -> String {
    format!("{}_SIGNING", settings_prefix(name))
}

/// A role's `x-rstuf-expire-policy`, a positive number of days.
pub fn expire_policy(role: &DelegatedRole) -> Result<u32, DelegationError> {
    role.unrecognized
        .get(EXPIRE_POLICY)
        .and_then(Value::as_u64)
        .and_then(|d| u32::try_from(d).ok())
        .filter(|d| *d >= 1)
        .ok_or_else(|| DelegationError::ExpirePolicy(role.name.clone()))
}

/// Custom delegations as a bootstrap sends them, checked and completed.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomDelegations {
    /// What the payload sent (stored as the `DELEGATIONS` setting).
    pub given: Value,
    /// What top-level targets delegates: roles in payload order, a role without keys gets the
    /// online key, and the keys are the online key plus every key a role uses.
    pub delegations: Delegations,
    /// Each role's expire policy, in role order.
    pub policies: Vec<(String, u32)>,
}

/// Checks `settings.roles.delegations` of a bootstrap payload: every role name, key id,
/// threshold, path pattern and expire policy, before anything is written.
pub fn check_custom_delegations(
    given: &Value,
    online_keyid: &str,
    online_key: &Key,
) -> Result<CustomDelegations, DelegationError> {
    let mut delegations: Delegations = serde_json::from_value(given.clone())
        .map_err(|e| DelegationError::Invalid(e.to_string()))?;
    if delegations.succinct_roles.is_some() {
        return Err(DelegationError::Succinct);
    }
    let roles = delegations.roles.take().unwrap_or_default();
    if roles.is_empty() {
        return Err(DelegationError::NoRole);
    }
    let mut seen = BTreeSet::new();
    let mut keys = BTreeMap::from([(online_keyid.to_string(), online_key.clone())]);
    let mut policies = Vec::with_capacity(roles.len());
    let mut completed = Vec::with_capacity(roles.len());
    for mut role in roles {
        check_role_name(&role.name)?;
        if !seen.insert(settings_prefix(&role.name)) {
            return Err(DelegationError::Twice(role.name));
        }
        policies.push((role.name.clone(), expire_policy(&role)?));
        check_paths(&role)?;
        if role.keyids.is_empty() {
            if role.threshold != 1 {
                return Err(DelegationError::ThresholdWithoutKeys(role.name));
            }
            role.keyids.push(online_keyid.to_string());
        }
        let unique: BTreeSet<&String> = role.keyids.iter().collect();
        if unique.len() != role.keyids.len() {
            return Err(DelegationError::DuplicateKeys(role.name));
        }
        if role.threshold < 1 || role.threshold > role.keyids.len() as u64 {
            return Err(DelegationError::Threshold {
                keys: role.keyids.len(),
                threshold: role.threshold,
                role: role.name,
            });
        }
        for keyid in &role.keyids {
            if keyid == online_keyid {
                continue;
            }
            let key = delegations
                .keys
                .get(keyid)
                .ok_or_else(|| DelegationError::UnknownKey {
                    role: role.name.clone(),
                    keyid: keyid.clone(),
                })?;
            key.verifier().map_err(|e| DelegationError::BadKey {
                keyid: keyid.clone(),
                reason: e.to_string(),
            })?;
            keys.insert(keyid.clone(), key.clone());
        }
        completed.push(role);
    }
    delegations.keys = keys;
    delegations.roles = Some(completed);
    Ok(CustomDelegations {
        given: given.clone(),
        delegations,
        policies,
    })
}

fn check_paths(role: &DelegatedRole) -> Result<(), DelegationError> {
    match (&role.paths, &role.path_hash_prefixes) {
        (Some(paths), None) if !paths.is_empty() => {
            if let Some(bad) = paths.iter().find(|p| p.is_empty() || p.contains('\0')) {
                return Err(DelegationError::PathPattern(role.name.clone(), bad.clone()));
            }
            Ok(())
        }
        (None, Some(prefixes)) if !prefixes.is_empty() => {
            if let Some(bad) = prefixes
                .iter()
                .find(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(DelegationError::HashPrefix(role.name.clone(), bad.clone()));
            }
            Ok(())
        }
        _ => Err(DelegationError::Paths(role.name.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names() {
        for ok in [
            "default",
            "production",
            "tenant1-group1-policy",
            "a_b",
            "Dev",
        ] {
            assert_eq!(check_role_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a/b",
            "..",
            "a.b",
            "2024rel",
            "0",
            "root",
            "Targets",
            "SNAPSHOT",
            "timestamp",
            "bins",
            "a b",
            "é",
            &"x".repeat(MAX_ROLE_NAME + 1),
        ] {
            assert!(check_role_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refusals_are_typed_with_the_texts_the_api_shows() {
        assert_eq!(
            check_role_name("a/b"),
            Err(RoleNameError::Characters("a/b".into()))
        );
        assert_eq!(
            check_role_name("a/b").unwrap_err().to_string(),
            "Delegated custom target name a/b not allowed Only a-z, A-Z, 0-9, - and _ characters can be used"
        );
        assert_eq!(
            check_role_name("9x"),
            Err(RoleNameError::LeadingDigit("9x".into()))
        );
        assert_eq!(
            check_role_name("BINS"),
            Err(RoleNameError::Reserved("BINS".into()))
        );
        assert_eq!(check_role_name(""), Err(RoleNameError::Length("".into())));

        let key: Key = serde_json::from_value(serde_json::json!({"keytype": "ed25519",
            "scheme": "ed25519", "keyval": {"public": "00".repeat(32)}}))
        .unwrap();
        let check = |given: Value| check_custom_delegations(&given, "online", &key);
        let role = |extra: Value| {
            let mut r = serde_json::json!({"name": "dev", "keyids": [], "threshold": 1,
                "terminating": true, "paths": ["*"], "x-rstuf-expire-policy": 7});
            for (k, v) in extra.as_object().unwrap() {
                r[k] = v.clone();
            }
            serde_json::json!({"keys": {}, "roles": [r]})
        };
        assert!(check(role(serde_json::json!({}))).is_ok());
        let cases = [
            (
                serde_json::json!({"name": "root"}),
                DelegationError::Name(RoleNameError::Reserved("root".into())),
            ),
            (
                serde_json::json!({"x-rstuf-expire-policy": 0}),
                DelegationError::ExpirePolicy("dev".into()),
            ),
            (
                serde_json::json!({"x-rstuf-expire-policy": u64::from(u32::MAX) + 1}),
                DelegationError::ExpirePolicy("dev".into()),
            ),
            (
                serde_json::json!({"threshold": 2}),
                DelegationError::ThresholdWithoutKeys("dev".into()),
            ),
            (
                serde_json::json!({"paths": [""]}),
                DelegationError::PathPattern("dev".into(), "".into()),
            ),
            (
                serde_json::json!({"keyids": ["nope"]}),
                DelegationError::UnknownKey {
                    role: "dev".into(),
                    keyid: "nope".into(),
                },
            ),
        ];
        for (extra, want) in cases {
            assert_eq!(check(role(extra.clone())), Err(want), "{extra}");
        }
        assert_eq!(
            DelegationError::ExpirePolicy("dev".into()).to_string(),
            "Delegated role dev: 'x-rstuf-expire-policy' must be a positive number of days"
        );
        assert_eq!(
            check(serde_json::json!({"keys": {}, "roles": []})),
            Err(DelegationError::NoRole)
        );
    }
}
