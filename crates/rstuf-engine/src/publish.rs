//! `publish_artifacts`: publish every role with unpublished artifact rows,
//! whoever wrote them (our add and remove tasks, or the RSTUF CLI's `import-artifacts`).
//!
//! Under the repository lock: read the unpublished rows of the changed roles only, apply them
//! to each role's published version (added or replaced artifacts, removed ones), publish the
//! new versions, the snapshot and the timestamp, and then, in one transaction, record the
//! versions and mark exactly the rows that were read as published (the reference marked
//! them role by role, before the snapshot naming them was written). The cost follows
//! the artifacts that changed and the roles they are in, not the size of the repository or of
//! a role. A role never published, or signed offline, is rebuilt from all its `Add` rows.
//!
//! Applying rows to the published version gives what rebuilding from every row would give:
//! a row is marked published only in the transaction after the version holding it was
//! written, so the published version holds every published row; a row left unpublished by an
//! interrupted run is applied again, which changes nothing.
//!
//! A role whose rows cannot be turned into metadata (rows written by another tool with bad
//! info) is left out and reported; the other roles are published. A role the online
//! key cannot sign alone gets its new version in `<ROLE>_SIGNING` for the offline signers; its
//! rows are published when the signatures arrive.

use std::collections::BTreeMap;

use rstuf_metadata::schema::{Metadata, TargetFile, Targets};
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::outcome::{TaskError, TaskOutcome};
use crate::ports::{ArtifactAction, ArtifactRow, LockGuard};
use crate::repo::{
    Current, Online, Publication, ROLE_CHUNK, Resign, RoleDays, RoleUpdate, expires_in, to_value,
};
use crate::roles::signing_key;

const PROCESSED: &str = "Publish Artifacts Processed";

/// What a publish did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PublishReport {
    /// Roles given a new published version, sorted.
    pub published: Vec<String>,
    /// Roles given new pending metadata in `<ROLE>_SIGNING`, sorted.
    pub pending: Vec<String>,
    /// Roles left out, with the reason.
    pub failed: BTreeMap<String, String>,
}

impl PublishReport {
    /// Every role that had unpublished rows and was processed.
    pub fn roles(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .published
            .iter()
            .chain(&self.pending)
            .cloned()
            .collect();
        all.sort();
        all
    }
}

/// Runs the `publish_artifacts` action.
pub async fn publish_artifacts(engine: &Engine) -> Result<TaskOutcome, TaskError> {
    let report = with_lock!(engine, |guard| publish_locked(engine, guard).await)?;
    let roles = report.roles();
    let mut details =
        json!({"artifact_roles": if roles.is_empty() { Value::Null } else { json!(roles) }});
    if !report.failed.is_empty() {
        details["failed_roles"] = json!(report.failed);
    }
    Ok(TaskOutcome::ok(PROCESSED, Some(details)))
}

/// Evaluates `$body` (which may `.await`) while holding the repository lock as `$guard`, and
/// releases the lock whatever it returned. A macro rather than a function taking an async
/// closure: futures built from async closures over borrowed guards are not provably `Send`
/// (a compiler limitation), and the worker runs tasks on a multi-threaded runtime.
macro_rules! with_lock {
    ($engine:expr, |$guard:ident| $body:expr) => {{
        let held = $engine.lock.acquire().await?;
        let $guard: &dyn $crate::ports::LockGuard = held.as_ref();
        let result = $body;
        // A failed release (lock already expired) does not undo what the body published:
        // the timestamp was written only after `still_held` confirmed the lock.
        let _ = held.release().await;
        result
    }};
}
pub(crate) use with_lock;

/// Publishes every role with unpublished rows. The caller holds the lock.
pub(crate) async fn publish_locked(
    engine: &Engine,
    guard: &dyn LockGuard,
) -> Result<PublishReport, TaskError> {
    let roles = engine.index.roles_with_unpublished().await?;
    publish_roles_locked(engine, guard, roles).await
}

/// Publishes `roles`, the roles with unpublished rows the caller just read under the lock.
pub(crate) async fn publish_roles_locked(
    engine: &Engine,
    guard: &dyn LockGuard,
    roles: Vec<String>,
) -> Result<PublishReport, TaskError> {
    let mut report = PublishReport::default();
    if roles.is_empty() {
        return Ok(report);
    }
    let current = Current::load(engine).await?;
    let online = Online::load(engine).await?;

    let now = engine.clock.now();
    // Every expiry the publication needs is read before anything is written.
    let delegated = roles
        .iter()
        .map(String::as_str)
        .filter(|role| current.online_role(&online, role).is_some())
        .collect();
    let role_days = RoleDays::read(engine, &current, delegated).await?;
    let mut publication = Publication::new(engine, &online, &current).await?;
    let mut covered = Vec::new();
    for chunk in roles.chunks(ROLE_CHUNK) {
        // An online role with a published version gets its unpublished rows applied to that
        // version; a role never published, or signed offline, is rebuilt from all its rows.
        let mut patched = Vec::new();
        let mut rebuilt = Vec::new();
        for role in chunk {
            match current.online_role(&online, role) {
                // A deleted delegation: its rows stay as they are.
                None => {
                    report
                        .failed
                        .insert(role.clone(), "the role is not delegated by targets".into());
                }
                Some(true) => match current.snapshot.signed.role_version(role) {
                    Some(version) => patched.push((role.clone(), version)),
                    None => rebuilt.push((role.clone(), true)),
                },
                Some(false) => rebuilt.push((role.clone(), false)),
            }
        }
        let mut updates = Vec::new();
        let names: Vec<String> = patched.iter().map(|(role, _)| role.clone()).collect();
        let mut changes = if names.is_empty() {
            BTreeMap::new()
        } else {
            rows_by_role(engine.index.unpublished_of(&names).await?)
        };
        for (role, version) in patched {
            let rows = changes.remove(&role).unwrap_or_default();
            let patch = match parse_changes(&rows) {
                Ok(patch) => patch,
                Err(reason) => {
                    report.failed.insert(role, reason);
                    continue;
                }
            };
            let expires = expires_in(now, role_days.of(&role)?);
            let file = format!("{version}.{role}.json");
            covered.extend(rows);
            report.published.push(role.clone());
            updates.push(RoleUpdate::patched(role, file, patch, expires));
        }
        let names: Vec<String> = rebuilt.iter().map(|(role, _)| role.clone()).collect();
        let mut all_rows = if names.is_empty() {
            BTreeMap::new()
        } else {
            rows_by_role(engine.index.artifacts_of(&names).await?)
        };
        for (role, online_only) in rebuilt {
            let rows = all_rows.remove(&role).unwrap_or_default();
            let artifacts = match build_targets(&rows) {
                Ok(artifacts) => artifacts,
                Err(reason) => {
                    report.failed.insert(role, reason);
                    continue;
                }
            };
            let days = role_days.of(&role)?;
            let mut signed = Targets::new(0, expires_in(now, days));
            signed.targets = artifacts;
            if online_only {
                covered.extend(rows.into_iter().filter(|r| !r.published));
                report.published.push(role.clone());
                updates.push(RoleUpdate::new(role, signed.expires, signed));
            } else {
                signed.version = current.snapshot.signed.role_version(&role).unwrap_or(0) + 1;
                set_pending(engine, &online, &current, &role, signed).await?;
                report.pending.push(role);
            }
        }
        if !updates.is_empty() {
            publication.publish_roles(updates).await?;
        }
    }
    report.published.sort();
    report.pending.sort();
    if report.published.is_empty() {
        return Ok(report);
    }
    publication
        .finish(guard, Resign::OnlyChanged, &covered)
        .await?;
    Ok(report)
}

/// Rows grouped by role.
fn rows_by_role(rows: Vec<ArtifactRow>) -> BTreeMap<String, Vec<ArtifactRow>> {
    let mut by_role: BTreeMap<String, Vec<ArtifactRow>> = BTreeMap::new();
    for row in rows {
        by_role.entry(row.role.clone()).or_default().push(row);
    }
    by_role
}

/// What unpublished rows change in a role: artifacts added or replaced, and removed.
fn parse_changes(rows: &[ArtifactRow]) -> Result<Vec<(String, Option<TargetFile>)>, String> {
    rows.iter()
        .map(|row| match row.action {
            ArtifactAction::Add => crate::payload::parse_info_text(&row.info)
                .map(|file| (row.path.clone(), Some(file)))
                .map_err(|e| format!("artifact {:?} has invalid info: {e}", row.path)),
            ArtifactAction::Remove => Ok((row.path.clone(), None)),
        })
        .collect()
}

/// The artifacts of a role from its rows (`Add` rows only).
pub(crate) fn build_targets(rows: &[ArtifactRow]) -> Result<BTreeMap<String, TargetFile>, String> {
    let mut targets = BTreeMap::new();
    for row in rows.iter().filter(|r| r.action == ArtifactAction::Add) {
        let file = crate::payload::parse_info_text(&row.info)
            .map_err(|e| format!("artifact {:?} has invalid info: {e}", row.path))?;
        targets.insert(row.path.clone(), file);
    }
    Ok(targets)
}

/// Puts new pending metadata for an offline (or mixed) role in `<ROLE>_SIGNING`, signed by the
/// online key when it is one of the role's keys. Pending metadata with the same artifacts is
/// left alone, so signatures already collected are kept.
async fn set_pending(
    engine: &Engine,
    online: &Online,
    current: &Current,
    role: &str,
    signed: Targets,
) -> Result<(), TaskError> {
    let key = signing_key(role);
    if let Some(existing) = engine.settings.get(&key).await?
        && let Ok(md) = Metadata::<Targets>::from_value(existing)
        && md.signed.targets == signed.targets
    {
        return Ok(());
    }
    let online_signs = current
        .targets
        .signed
        .delegations
        .as_ref()
        .and_then(|d| d.delegation(role))
        .is_some_and(|d| d.keyids.contains(&online.keyid));
    let md = if online_signs {
        online.sign(signed).await?
    } else {
        Metadata::new(signed)
    };
    engine.settings.set(&key, to_value(&md)?).await?;
    Ok(())
}
