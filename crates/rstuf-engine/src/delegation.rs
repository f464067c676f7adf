//! `metadata_delegation`: add, update and delete custom delegated roles of
//! top-level targets, under the repository lock.
//!
//! The whole request is checked before anything is written (names, keys, thresholds, paths,
//! expire policies); roles that cannot be applied (a name taken, now or in the
//! past; a role that does not exist: "Role 'x' does not exists", sic, as the reference says it)
//! are listed in `failed_roles` and the others applied. Every
//! change is published leaves first: the roles' new versions, targets, snapshot, timestamp.
//! A role the online key can sign alone is published at once and valid for its policy (the
//! reference published it already expired); the others wait in `<ROLE>_SIGNING`. An updated role keeps its place in
//! the delegation order and its artifacts. A deleted role's name is never used again and its
//! last version stays in the snapshot (clients refuse a snapshot that drops a role), and no
//! published file is rewritten (the reference rewrote the current snapshot in place, without
//! re-signing it, on a delete).

use std::collections::{BTreeMap, BTreeSet};

use rstuf_metadata::schema::{DelegatedRole, Delegations, Metadata, Signed, Targets};
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::outcome::{Inconsistency, TaskError, TaskOutcome};
use crate::payload::{DelegationAction as Action, MetadataDelegation};
use crate::ports::{LockGuard, RoleRecord};
use crate::publish::with_lock;
use crate::repo::{
    self, Current, Online, Publication, Resign, RoleUpdate, expires_in, store_pending,
};
use crate::roles::{check_custom_delegations, expiration_key, settings_prefix, signing_key};
use crate::settings;

const PROCESSED: &str = "Metadata Delegation Processed";
/// The message of a refused request.
pub const FAILED: &str = "Metadata Delegation Failed";

entry_on_value! {
    /// Runs the `metadata_delegation` action on a payload as sent.
    metadata_delegation(engine): MetadataDelegation, FAILED, |payload| delegate(engine, payload)
}

/// Runs the `metadata_delegation` action.
pub async fn delegate(
    engine: &Engine,
    payload: MetadataDelegation,
) -> Result<TaskOutcome, TaskError> {
    let MetadataDelegation {
        action,
        delegations: given,
    } = payload;
    let given = &given;
    let state = settings::bootstrap_state(engine.settings.as_ref()).await?;
    if !settings::is_finished(state.as_deref()) {
        return Ok(TaskOutcome::refused(
            FAILED,
            "Metadata delegation requires a completed bootstrap",
        ));
    }
    let outcome = with_lock!(engine, |guard| locked(engine, guard, action, given).await)?;
    Ok(outcome)
}

/// A role that could not be applied, as the API shows it.
fn failure(role: &str, reason: impl Into<String>) -> Value {
    json!({"role": role, "reason": reason.into()})
}

async fn locked(
    engine: &Engine,
    guard: &dyn LockGuard,
    action: Action,
    given: &Value,
) -> Result<TaskOutcome, TaskError> {
    let current = Current::load(engine).await?;
    let Some(existing) = current.targets.signed.delegations.clone() else {
        return Err(TaskError::Inconsistent {
            file: format!("{}.targets.json", current.targets.signed.version),
            problem: Inconsistency::NamesNo("delegations"),
        });
    };
    if existing.succinct_roles.is_some() {
        return Ok(TaskOutcome::refused(
            FAILED,
            format!(
                "Delegations already using hash-bins, cannot {} custom roles",
                action.verb()
            ),
        ));
    }
    let online = Online::load(engine).await?;
    match action {
        Action::Delete => delete(engine, guard, &current, &online, existing, given).await,
        Action::Add | Action::Update => {
            add_or_update(engine, guard, &current, &online, existing, given, action).await
        }
    }
}

async fn delete(
    engine: &Engine,
    guard: &dyn LockGuard,
    current: &Current,
    online: &Online,
    mut delegations: Delegations,
    given: &Value,
) -> Result<TaskOutcome, TaskError> {
    let Some(asked) = given.get("roles").and_then(Value::as_array) else {
        return Ok(TaskOutcome::refused(
            FAILED,
            "'delegations.roles' must be a list of {\"name\": ...}",
        ));
    };
    let mut names = Vec::with_capacity(asked.len());
    for role in asked {
        match role.get("name").and_then(Value::as_str) {
            Some(name) => names.push(name.to_string()),
            None => {
                return Ok(TaskOutcome::refused(
                    FAILED,
                    "'delegations.roles' must be a list of {\"name\": ...}",
                ));
            }
        }
    }
    let mut roles = delegations.roles.take().unwrap_or_default();
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    // Roles targets no longer delegates but that have a row: a delete delivered again, after
    // its timestamp (the row may still be active: it is retired now) or after it finished.
    let mut finished = Vec::new();
    for name in names {
        match roles.iter().position(|r| r.name == name) {
            Some(i) => {
                roles.remove(i);
                deleted.push(name);
            }
            None => match engine.index.role(&name).await? {
                Some(row) if row.active => finished.push(row),
                // Deleted already (this very delete, delivered again after it finished).
                Some(row) => finished.push(row),
                None => failed.push(failure(&name, format!("Role '{name}' does not exists"))),
            },
        }
    }
    if !finished.is_empty() {
        let retired: Vec<RoleRecord> = finished
            .into_iter()
            .map(|row| RoleRecord {
                active: false,
                ..row
            })
            .collect();
        engine.index.commit_publication(&retired, &[]).await?;
        save_trusted_targets(engine, current).await?;
        for row in &retired {
            engine
                .settings
                .set(&signing_key(&row.name), Value::Null)
                .await?;
        }
        if deleted.is_empty() {
            let names: Vec<String> = retired.into_iter().map(|r| r.name).collect();
            return Ok(processed(&names, failed));
        }
        deleted.extend(retired.into_iter().map(|r| r.name));
    }
    if deleted.is_empty() {
        return Ok(processed(&deleted, failed));
    }
    delegations.roles = Some(roles);
    keep_used_keys(&mut delegations);

    // Every expiry the publication needs is read before anything is written.
    let targets_days = targets_days(engine).await?;
    let mut publication = Publication::new(engine, online, current).await?;
    for name in &deleted {
        let record = engine.index.role(name).await?.unwrap_or(RoleRecord {
            name: name.clone(),
            version: 1,
            expires: publication.now(),
            active: true,
        });
        publication.deactivate(record);
    }
    publish_targets(&mut publication, current, delegations, targets_days).await?;
    publication.finish(guard, Resign::OnlyChanged, &[]).await?;
    for name in &deleted {
        engine.settings.set(&signing_key(name), Value::Null).await?;
    }
    Ok(processed(&deleted, failed))
}

// One sequence read top to bottom (merge the keys, check, apply, create rows, publish, then
// the settings), longer than 120 lines because each step hands the next its values.
async fn add_or_update(
    engine: &Engine,
    guard: &dyn LockGuard,
    current: &Current,
    online: &Online,
    mut delegations: Delegations,
    given: &Value,
    action: Action,
) -> Result<TaskOutcome, TaskError> {
    // Keys the repository already knows need not be sent again.
    let mut given = given.clone();
    let mut keys = serde_json::to_value(&delegations.keys)
        .map_err(|e| TaskError::encoding("the delegation keys of targets", e))?;
    if let (Some(known), Some(sent)) = (
        keys.as_object_mut(),
        given.get("keys").and_then(Value::as_object),
    ) {
        for (id, key) in sent {
            known.insert(id.clone(), key.clone());
        }
    }
    given["keys"] = keys;
    let checked =
        match check_custom_delegations(&given, &online.keyid, &online_key(current, online)?) {
            Ok(checked) => checked,
            Err(reason) => return Ok(TaskOutcome::refused(FAILED, reason.to_string())),
        };
    let asked = checked.delegations.roles.clone().unwrap_or_default();
    let mut roles = delegations.roles.take().unwrap_or_default();
    let mut applied: Vec<(DelegatedRole, u32)> = Vec::new();
    // Roles delegated exactly as asked already, and roles whose row an interrupted add left.
    let mut already: Vec<(DelegatedRole, u32)> = Vec::new();
    let mut resumed: BTreeSet<String> = BTreeSet::new();
    let mut failed = Vec::new();
    for (role, (_, days)) in asked.into_iter().zip(checked.policies) {
        let taken = roles
            .iter()
            .position(|r| settings_prefix(&r.name) == settings_prefix(&role.name));
        match (action, taken) {
            // The same add delivered again after it was published.
            (Action::Add, Some(i)) if roles[i] == role => already.push((role, days)),
            (Action::Add, Some(_)) => failed.push(failure(
                &role.name,
                "role already exists or name used in the past",
            )),
            (Action::Add, None) => match engine.index.role(&role.name).await? {
                None => {
                    roles.push(role.clone());
                    applied.push((role, days));
                }
                // An active row for a role targets does not delegate and no snapshot ever
                // listed: an add interrupted before it published. It goes on.
                Some(row)
                    if row.active && current.snapshot.signed.role_version(&row.name).is_none() =>
                {
                    resumed.insert(row.name);
                    roles.push(role.clone());
                    applied.push((role, days));
                }
                Some(_) => failed.push(failure(
                    &role.name,
                    "role already exists or name used in the past",
                )),
            },
            (Action::Update, Some(i)) if roles[i].name == role.name => {
                roles[i] = role.clone();
                applied.push((role, days));
            }
            (Action::Update, _) => failed.push(failure(
                &role.name,
                format!("Role '{}' does not exists", role.name),
            )),
            (Action::Delete, _) => unreachable!("handled by delete"),
        }
    }
    if applied.is_empty() {
        settle_already(engine, current, online, &already).await?;
        let names: Vec<String> = already.into_iter().map(|(r, _)| r.name).collect();
        return Ok(processed(&names, failed));
    }
    for (id, key) in &checked.delegations.keys {
        delegations
            .keys
            .entry(id.clone())
            .or_insert_with(|| key.clone());
    }
    delegations.roles = Some(roles);
    keep_used_keys(&mut delegations);

    let now = engine.clock.now();
    // Every expiry the publication needs is read before anything is written (the new roles'
    // rows included).
    let targets_days = targets_days(engine).await?;
    let mut publication = Publication::new(engine, online, current).await?;
    if action == Action::Add {
        let rows: Vec<RoleRecord> = applied
            .iter()
            .filter(|(role, _)| !resumed.contains(&role.name))
            .map(|(role, days)| RoleRecord {
                name: role.name.clone(),
                version: 1,
                expires: expires_in(now, *days).0,
                active: true,
            })
            .collect();
        engine.index.create_roles(&rows).await?;
    }
    let mut updates = Vec::new();
    let mut pending: Vec<(String, Metadata<Targets>)> = Vec::new();
    for (role, days) in &applied {
        let expires = expires_in(now, *days);
        let published = current
            .snapshot
            .signed
            .role_version(&role.name)
            .filter(|_| action == Action::Update);
        // An updated role keeps what it delegates; a new one starts empty.
        let mut signed = match published {
            Some(version) => {
                repo::load::<Targets>(engine, &format!("{version}.{}.json", role.name))
                    .await?
                    .signed
            }
            None => Targets::new(1, expires),
        };
        if online.meets(&role.keyids, role.threshold) {
            updates.push(RoleUpdate::new(role.name.clone(), expires, signed));
        } else {
            signed.set_version_and_expires(published.map_or(1, |v| v + 1), expires);
            let md = if role.keyids.contains(&online.keyid) {
                online.sign(signed).await?
            } else {
                Metadata::new(signed)
            };
            pending.push((role.name.clone(), md));
        }
    }
    publication.publish_roles(updates).await?;
    publish_targets(&mut publication, current, delegations, targets_days).await?;
    publication.finish(guard, Resign::OnlyChanged, &[]).await?;

    // Settings after the files they describe.
    let pending_names: BTreeSet<&str> = pending.iter().map(|(n, _)| n.as_str()).collect();
    for (role, days) in &applied {
        engine
            .settings
            .set(&expiration_key(&role.name), json!(days))
            .await?;
        if !pending_names.contains(role.name.as_str()) {
            engine
                .settings
                .set(&signing_key(&role.name), Value::Null)
                .await?;
        }
    }
    store_pending(engine, &pending).await?;
    settle_already(engine, current, online, &already).await?;
    let names: Vec<String> = applied
        .into_iter()
        .chain(already)
        .map(|(r, _)| r.name)
        .collect();
    Ok(processed(&names, failed))
}

/// The settings of roles an add delivered again finds delegated as asked: what the first
/// delivery may not have written after it published (the expire policy; for a role that
/// waits for offline keys and was never published, its pending metadata) and the trusted
/// targets. Nothing is published.
async fn settle_already(
    engine: &Engine,
    current: &Current,
    online: &Online,
    already: &[(DelegatedRole, u32)],
) -> Result<(), TaskError> {
    if already.is_empty() {
        return Ok(());
    }
    save_trusted_targets(engine, current).await?;
    let now = engine.clock.now();
    let mut pending = Vec::new();
    for (role, days) in already {
        engine
            .settings
            .set(&expiration_key(&role.name), json!(days))
            .await?;
        let waits = !online.meets(&role.keyids, role.threshold)
            && current.snapshot.signed.role_version(&role.name).is_none()
            && engine
                .settings
                .get(&signing_key(&role.name))
                .await?
                .is_none();
        if waits {
            let signed = Targets::new(1, expires_in(now, *days));
            let md = if role.keyids.contains(&online.keyid) {
                online.sign(signed).await?
            } else {
                Metadata::new(signed)
            };
            pending.push((role.name.clone(), md));
        }
    }
    store_pending(engine, &pending).await
}

fn processed(roles: &[String], failed: Vec<Value>) -> TaskOutcome {
    TaskOutcome::ok(
        PROCESSED,
        Some(json!({"delegated_roles": roles, "failed_roles": failed})),
    )
}

/// The online key as root lists it (with its `x-rstuf-*` fields).
fn online_key(current: &Current, online: &Online) -> Result<rstuf_metadata::keys::Key, TaskError> {
    current
        .targets
        .signed
        .delegations
        .as_ref()
        .and_then(|d| d.keys.get(&online.keyid))
        .cloned()
        .ok_or_else(|| TaskError::Inconsistent {
            file: format!("{}.targets.json", current.targets.signed.version),
            problem: Inconsistency::LacksOnlineKey {
                keyid: online.keyid.clone(),
            },
        })
}

/// Drops the keys no role uses any more.
fn keep_used_keys(delegations: &mut Delegations) {
    let used: BTreeSet<&String> = delegations
        .roles
        .iter()
        .flatten()
        .flat_map(|r| r.keyids.iter())
        .collect();
    let keys: BTreeMap<_, _> = std::mem::take(&mut delegations.keys)
        .into_iter()
        .filter(|(id, _)| used.contains(id))
        .collect();
    delegations.keys = keys;
}

/// `TRUSTED_TARGETS` set to the published targets, for a request delivered again after its
/// first delivery published them but stopped before saying so.
async fn save_trusted_targets(engine: &Engine, current: &Current) -> Result<(), TaskError> {
    let targets = repo::to_value(current.targets.as_ref())?;
    engine
        .settings
        .set(crate::settings::TRUSTED_TARGETS, targets)
        .await?;
    Ok(())
}

/// Days a new targets version stays valid: `TARGETS_EXPIRATION`, 365 when unset.
async fn targets_days(engine: &Engine) -> Result<u32, TaskError> {
    settings::days(engine.settings.as_ref(), "TARGETS_EXPIRATION", 365).await
}

/// A new targets version with `delegations`, keeping what targets itself lists, valid for
/// `days`.
async fn publish_targets(
    publication: &mut Publication<'_>,
    current: &Current,
    delegations: Delegations,
    days: u32,
) -> Result<(), TaskError> {
    let mut signed = current.targets.signed.clone();
    signed.delegations = Some(delegations);
    publication.publish_targets(signed, days).await
}
