//! Keeping online roles valid: the scheduled `bump_online_roles` and
//! `force_online_metadata_update`.
//!
//! Both run under the repository lock, so they never interleave with a publish (the
//! reference's bump ran without it). A
//! bump re-signs the stored content of a role with a new version and expiry; it never mixes in
//! unpublished rows (that is publish's job). Snapshot and timestamp are checked on every run
//! and refreshed before they expire, whatever the delegated roles do (the reference let them
//! expire when no delegated role was due).

use chrono::Duration;
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::outcome::{TaskError, TaskOutcome};
use crate::payload::{ForceOnlineUpdate, Payload, PayloadError};
use crate::ports::LockGuard;
use crate::publish::with_lock;
use crate::repo::{
    Current, Online, Publication, ROLE_CHUNK, Resign, RoleDays, RoleUpdate, expires_in,
};
use crate::settings;

const FORCE_FAILED: &str = "Force new online metadata update failed";
const FORCE_OK: &str = "Force new online metadata update succeeded";
const TOP_LEVEL: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// Which roles a bump re-signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BumpScope {
    /// The online roles, targets, snapshot and timestamp that expire within
    /// `HOURS_BEFORE_EXPIRE` hours (the scheduled bump).
    ExpiringSoon,
    /// Every online delegated role, targets, snapshot and timestamp.
    EveryOnlineRole,
}

impl BumpScope {
    /// The scope of a `bump_online_roles` Celery task from its `expired` argument: only
    /// roles about to expire when true.
    pub fn from_expired(expired: bool) -> Self {
        if expired {
            BumpScope::ExpiringSoon
        } else {
            BumpScope::EveryOnlineRole
        }
    }
}

/// Runs the scheduled bump: every online role, targets, snapshot and timestamp in `scope`
/// gets a new version. Returns the names of the roles bumped (delegated roles and
/// `targets`); empty before the bootstrap finished.
pub async fn bump_online_roles(
    engine: &Engine,
    scope: BumpScope,
) -> Result<Vec<String>, TaskError> {
    let state = settings::bootstrap_state(engine.settings.as_ref()).await?;
    if !settings::is_finished(state.as_deref()) {
        return Ok(Vec::new());
    }
    with_lock!(engine, |guard| bump_locked(engine, guard, scope).await)
}

async fn bump_locked(
    engine: &Engine,
    guard: &dyn LockGuard,
    scope: BumpScope,
) -> Result<Vec<String>, TaskError> {
    let expired = scope == BumpScope::ExpiringSoon;
    let current = Current::load(engine).await?;
    let online = Online::load(engine).await?;
    let hours = settings::days(engine.settings.as_ref(), "HOURS_BEFORE_EXPIRE", 1).await?;
    let now = engine.clock.now();
    let deadline = now + Duration::hours(i64::from(hours));
    let due = |expires: chrono::DateTime<chrono::Utc>| !expired || expires <= deadline;

    // The index keeps each role's expiry, so finding the due roles costs no file reads.
    let rows = engine
        .index
        .active_roles(expired.then_some(deadline))
        .await?;
    let names: Vec<String> = rows.into_iter().map(|r| r.name).collect();
    // Every expiry the publication needs is read before anything is written.
    let roles = bumpable(&current, &online, &names);
    let names = roles.iter().map(|(name, _)| name.as_str()).collect();
    let role_days = RoleDays::read(engine, &current, names).await?;
    let targets_days = if due(current.targets.signed.expires.0) {
        Some(settings::days(engine.settings.as_ref(), "TARGETS_EXPIRATION", 365).await?)
    } else {
        None
    };
    let mut publication = Publication::new(engine, &online, &current).await?;
    let mut out = bump_roles(&mut publication, roles, &role_days).await?;
    if let Some(days) = targets_days {
        publication
            .publish_targets(current.targets.signed.clone(), days)
            .await?;
        out.push("targets".into());
    }
    // A new snapshot comes with a new timestamp.
    let resign = if due(current.snapshot.signed.expires.0) {
        Resign::SnapshotAndTimestamp
    } else if due(current.timestamp.signed.expires.0) {
        Resign::Timestamp
    } else {
        Resign::OnlyChanged
    };
    publication.finish(guard, resign, &[]).await?;
    Ok(out)
}

/// The roles of `names` a bump can re-sign, with their published versions: roles that are
/// not delegated, not online or never published are left out.
pub(crate) fn bumpable(current: &Current, online: &Online, names: &[String]) -> Vec<(String, u64)> {
    names
        .iter()
        .filter(|name| current.online_role(online, name) == Some(true))
        .filter_map(|name| Some((name.clone(), current.snapshot.signed.role_version(name)?)))
        .collect()
}

/// Re-signs the stored content of each role of `roles` (from [`bumpable`]) with a new version
/// and expiry, its days from `days`. Returns the names bumped.
pub(crate) async fn bump_roles(
    publication: &mut Publication<'_>,
    roles: Vec<(String, u64)>,
    days: &RoleDays<'_>,
) -> Result<Vec<String>, TaskError> {
    let mut bumped = Vec::new();
    for chunk in roles.chunks(ROLE_CHUNK) {
        let mut updates = Vec::new();
        for (name, version) in chunk {
            let expires = expires_in(publication.now(), days.of(name)?);
            updates.push(RoleUpdate::stored(
                name.clone(),
                format!("{version}.{name}.json"),
                expires,
            ));
        }
        bumped.extend(updates.iter().map(|u| u.name.clone()));
        if !updates.is_empty() {
            publication.publish_roles(updates).await?;
        }
    }
    Ok(bumped)
}

/// Runs `force_online_metadata_update` with payload `{"roles": [...]}`, as sent.
pub async fn force_online_metadata_update(
    engine: &Engine,
    payload: &Value,
) -> Result<TaskOutcome, TaskError> {
    force(engine, ForceOnlineUpdate::parse(Some(payload))).await
}

/// Runs `force_online_metadata_update` on its parsed payload; a refused payload is reported
/// after the bootstrap check, as the reference does.
pub async fn force(
    engine: &Engine,
    payload: Result<ForceOnlineUpdate, PayloadError>,
) -> Result<TaskOutcome, TaskError> {
    let state = settings::bootstrap_state(engine.settings.as_ref()).await?;
    if !settings::is_finished(state.as_deref()) {
        return Ok(TaskOutcome::refused(
            FORCE_FAILED,
            "New metadata updates requre completed bootstrap",
        ));
    }
    let roles = match payload {
        Ok(payload) => payload.roles,
        Err(refused) => return Ok(TaskOutcome::refused(FORCE_FAILED, refused.to_string())),
    };
    let result = (async {
        Ok(with_lock!(engine, |guard| force_locked(
            engine, guard, &roles
        )
        .await))
    })
    .await
    .and_then(|r| r);
    match result {
        Ok(Ok(updated)) => Ok(TaskOutcome::ok(
            FORCE_OK,
            Some(json!({"updated_roles": updated})),
        )),
        Ok(Err(reason)) => Ok(TaskOutcome::refused(FORCE_FAILED, reason)),
        Err(TaskError::LockLost | TaskError::Superseded(_)) => Ok(TaskOutcome::refused(
            FORCE_FAILED,
            "The task to update online roles exceeded the lock timeout.",
        )),
        Err(e) => Err(e),
    }
}

/// The forced update; the inner `Err` is a refusal (nothing was written).
async fn force_locked(
    engine: &Engine,
    guard: &dyn LockGuard,
    roles: &[String],
) -> Result<Result<Vec<String>, String>, TaskError> {
    let current = Current::load(engine).await?;
    let online = Online::load(engine).await?;
    let delegations = current.targets.signed.delegations.as_ref();
    let bins: Vec<String> = delegations
        .and_then(|d| d.succinct_roles.as_ref())
        .map(|s| s.role_names().collect())
        .unwrap_or_default();
    // Which delegated roles: all bins for "bins", else the custom names given.
    let mut delegated_names = Vec::new();
    let mut requested_delegated = Vec::new();
    for role in roles {
        if TOP_LEVEL.contains(&role.as_str()) {
            continue;
        }
        if role == "bins" && !bins.is_empty() {
            delegated_names.clone_from(&bins);
            requested_delegated = vec!["bins".to_string()];
            break;
        }
        match current.online_role(&online, role) {
            Some(true) => {}
            Some(false) => {
                return Ok(Err(format!(
                    "Role '{role}' is not signed by the online key"
                )));
            }
            None => return Ok(Err(format!("Role '{role}' does not exist"))),
        }
        if current.snapshot.signed.role_version(role).is_none() {
            return Ok(Err(format!("Role '{role}' has never been published")));
        }
        delegated_names.push(role.clone());
        requested_delegated.push(role.clone());
    }
    let has = |r: &str| roles.iter().any(|x| x == r);
    // Every expiry the publication needs is read before anything is written.
    let bumped = bumpable(&current, &online, &delegated_names);
    let names = bumped.iter().map(|(name, _)| name.as_str()).collect();
    let role_days = RoleDays::read(engine, &current, names).await?;
    let targets_days = if has("targets") {
        Some(settings::days(engine.settings.as_ref(), "TARGETS_EXPIRATION", 365).await?)
    } else {
        None
    };
    let mut publication = Publication::new(engine, &online, &current).await?;
    let mut updated = Vec::new();
    if has("targets") || !delegated_names.is_empty() {
        updated.extend(["snapshot".to_string(), "timestamp".to_string()]);
        if let Some(days) = targets_days {
            publication
                .publish_targets(current.targets.signed.clone(), days)
                .await?;
            updated.push("targets".into());
        }
        bump_roles(&mut publication, bumped, &role_days).await?;
        updated.extend(requested_delegated);
        publication
            .finish(guard, Resign::SnapshotAndTimestamp, &[])
            .await?;
    } else if has("snapshot") {
        publication
            .finish(guard, Resign::SnapshotAndTimestamp, &[])
            .await?;
        updated.extend(["snapshot".to_string(), "timestamp".to_string()]);
    } else if has("timestamp") {
        publication.finish(guard, Resign::Timestamp, &[]).await?;
        updated.push("timestamp".into());
    }
    Ok(Ok(updated))
}
