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

/// Checks a custom role name; `Err` says why it is refused.
pub fn check_role_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_ROLE_NAME {
        return Err(format!(
            "Delegated role name {name:?} must have 1 to {MAX_ROLE_NAME} characters"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "Delegated custom target name {name} not allowed Only a-z, A-Z, 0-9, - and _ characters can be used"
        ));
    }
    if name.as_bytes()[0].is_ascii_digit() {
        return Err(format!(
            "Delegated role name {name:?} cannot start with a digit (file names start with the version)"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if TOP_LEVEL_ROLES.contains(&lower.as_str()) || lower == "bins" {
        return Err(format!(
            "Delegated role name {name:?} is reserved for a top-level role or the hash bins"
        ));
    }
    Ok(())
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
pub fn expire_policy(role: &DelegatedRole) -> Result<u32, String> {
    role.unrecognized
        .get(EXPIRE_POLICY)
        .and_then(Value::as_u64)
        .filter(|d| (1..=u64::from(u32::MAX)).contains(d))
        .map(|d| d as u32)
        .ok_or_else(|| {
            format!(
                "Delegated role {}: '{EXPIRE_POLICY}' must be a positive number of days",
                role.name
            )
        })
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
) -> Result<CustomDelegations, String> {
    let mut delegations: Delegations =
        serde_json::from_value(given.clone()).map_err(|e| format!("Invalid delegations: {e}"))?;
    if delegations.succinct_roles.is_some() {
        return Err("Custom delegations cannot use succinct_roles; use bins".into());
    }
    let roles = delegations.roles.take().unwrap_or_default();
    if roles.is_empty() {
        return Err("Custom delegations need at least one role".into());
    }
    let mut seen = BTreeSet::new();
    let mut keys = BTreeMap::from([(online_keyid.to_string(), online_key.clone())]);
    let mut policies = Vec::with_capacity(roles.len());
    let mut completed = Vec::with_capacity(roles.len());
    for mut role in roles {
        check_role_name(&role.name)?;
        if !seen.insert(settings_prefix(&role.name)) {
            return Err(format!(
                "Delegated role name {:?} is used twice (names are compared without case)",
                role.name
            ));
        }
        policies.push((role.name.clone(), expire_policy(&role)?));
        check_paths(&role)?;
        if role.keyids.is_empty() {
            if role.threshold != 1 {
                return Err(format!(
                    "Delegated role {}: If no keys assigned threshold must be 1",
                    role.name
                ));
            }
            role.keyids.push(online_keyid.to_string());
        }
        let unique: BTreeSet<&String> = role.keyids.iter().collect();
        if unique.len() != role.keyids.len() {
            return Err(format!("Delegated role {}: duplicate key ids", role.name));
        }
        if role.threshold < 1 || role.threshold > role.keyids.len() as u64 {
            return Err(format!(
                "Delegated role {}: threshold {} must be between 1 and its {} key(s)",
                role.name,
                role.threshold,
                role.keyids.len()
            ));
        }
        for keyid in &role.keyids {
            if keyid == online_keyid {
                continue;
            }
            let key = delegations.keys.get(keyid).ok_or_else(|| {
                format!(
                    "Delegated role {}: key {keyid} is not in the delegation keys",
                    role.name
                )
            })?;
            key.verifier()
                .map_err(|e| format!("Delegation key {keyid}: {e}"))?;
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

fn check_paths(role: &DelegatedRole) -> Result<(), String> {
    match (&role.paths, &role.path_hash_prefixes) {
        (Some(paths), None) if !paths.is_empty() => {
            if let Some(bad) = paths.iter().find(|p| p.is_empty() || p.contains('\0')) {
                return Err(format!(
                    "Delegated role {}: path pattern {bad:?} is not allowed",
                    role.name
                ));
            }
            Ok(())
        }
        (None, Some(prefixes)) if !prefixes.is_empty() => {
            if let Some(bad) = prefixes
                .iter()
                .find(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(format!(
                    "Delegated role {}: path hash prefix {bad:?} is not hex",
                    role.name
                ));
            }
            Ok(())
        }
        _ => Err(format!(
            "Delegated role {}: exactly one of 'paths' and 'path_hash_prefixes' must be a non-empty list",
            role.name
        )),
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
}
