//! Root rotation: `metadata_update` with a new root version, and the
//! signatures that complete a pending one (`sign_metadata` for root outside a bootstrap).
//!
//! A new root must be the next version of the trusted root (`TRUSTED_ROOT`), not expired, and
//! signed by the thresholds of both the trusted and the new root; short of signatures it waits
//! in `ROOT_SIGNING`. A stale pending root (its version no longer the next one) is refused and
//! can never overwrite a published version.
//!
//! When the online key changes, everything it signs is re-signed under the lock with the new
//! key: the delegations are re-keyed (hash bins and custom roles that used the old key), every
//! online role gets a new version, then targets, snapshot and timestamp; roles with offline
//! keys only are left alone (the reference sent them all back for offline signing), and roles that need offline signatures besides the
//! online key wait in `<ROLE>_SIGNING` for them. The new root is written last.
//!
//! Known window: a mixed role's published version carries the old online key's signature,
//! which the re-keyed delegation no longer counts, so its artifacts cannot be verified until
//! its offline keys have signed the pending version (the reference has the same window).

use std::sync::Arc;

use rstuf_metadata::keys::Key;
use rstuf_metadata::schema::{Delegations, Metadata, Root, Signature, Signed, Targets};
use rstuf_metadata::verify::signed_by_one_of;
use serde_json::{Value, json};

use crate::bump::{bump_roles, bumpable};
use crate::engine::Engine;
use crate::outcome::{SettingProblem, TaskError, TaskOutcome};
use crate::payload::{MetadataUpdate, Payload, PayloadError};
use crate::ports::{LockGuard, PortErrorKind};
use crate::publish::with_lock;
use crate::repo::{
    Current, Online, Publication, Resign, RoleDays, expires_in, load, online_key_of,
    online_key_setting, storage_bytes, to_value,
};
use crate::roles::signing_key;
use crate::settings::{self, ONLINE_KEY, ROOT_SIGNING, TRUSTED_ROOT};

const UPDATE_FAILED: &str = "Metadata Update Failed";
const UPDATE_PROCESSED: &str = "Metadata Update Processed";

/// The trusted root: `TRUSTED_ROOT`, kept current by bootstrap and rotation.
async fn trusted_root(engine: &Engine) -> Result<Metadata<Root>, TaskError> {
    let value = engine
        .settings
        .get(TRUSTED_ROOT)
        .await?
        .filter(|v| !v.is_null())
        .ok_or_else(|| TaskError::setting(TRUSTED_ROOT, SettingProblem::NotSet))?;
    Metadata::<Root>::from_value(value).map_err(|e| TaskError::unreadable_setting(TRUSTED_ROOT, e))
}

/// Whether `new` is the trusted root already: a rotation that finished but was interrupted
/// before it ended root's signing event, delivered again. The event is ended then (it could
/// never publish anything).
async fn finished_already(
    engine: &Engine,
    trusted: &Metadata<Root>,
    new: &Metadata<Root>,
) -> Result<bool, TaskError> {
    let bytes = |md: &Metadata<Root>| {
        md.signed_bytes()
            .map_err(|e| TaskError::encoding("root", e))
    };
    if bytes(trusted)? != bytes(new)? {
        return Ok(false);
    }
    if !matches!(
        engine.settings.get(ROOT_SIGNING).await?,
        None | Some(Value::Null)
    ) {
        engine.settings.set(ROOT_SIGNING, Value::Null).await?;
    }
    Ok(true)
}

/// Whether the root role of `by` accepts `new` (threshold of valid signatures).
fn accepted_by(by: &Root, new: &Metadata<Root>) -> bool {
    by.verify_delegate("root", new).is_ok()
}

/// Checks `new` as the next root after `trusted`: `Ok(true)` when both thresholds are met,
/// `Ok(false)` when signatures are missing, `Err` with the reason it can never be accepted.
fn check_next(
    trusted: &Metadata<Root>,
    new: &Metadata<Root>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, String> {
    let expected = trusted.signed.version + 1;
    if new.signed.version != expected {
        return Err(format!(
            "Expected root version {expected} instead got version {}",
            new.signed.version
        ));
    }
    if new.signed.expires.0 <= now {
        return Err(format!(
            "Root v{} expired at {}",
            new.signed.version, new.signed.expires
        ));
    }
    for role in ["timestamp", "snapshot", "targets"] {
        if new
            .signed
            .role(role)
            .is_none_or(|r| r.keyids.is_empty() || r.threshold != 1)
        {
            return Err(format!(
                "Root v{}: the {role} role must have the online key, threshold 1",
                new.signed.version
            ));
        }
    }
    Ok(accepted_by(&trusted.signed, new) && accepted_by(&new.signed, new))
}

/// Runs the `metadata_update` action (root only) on a payload as sent.
pub async fn metadata_update(engine: &Engine, payload: &Value) -> Result<TaskOutcome, TaskError> {
    update_root(engine, MetadataUpdate::parse(Some(payload))).await
}

/// Runs the `metadata_update` action (root only) on its parsed payload; a refused payload is
/// reported after the bootstrap check, as the reference does.
pub async fn update_root(
    engine: &Engine,
    payload: Result<MetadataUpdate, PayloadError>,
) -> Result<TaskOutcome, TaskError> {
    let state = settings::bootstrap_state(engine.settings.as_ref()).await?;
    if !settings::is_finished(state.as_deref()) {
        return Ok(TaskOutcome::refused(
            UPDATE_FAILED,
            "Metadata Update requires a completed bootstrap",
        ));
    }
    let new = match payload {
        Ok(payload) => payload.root,
        Err(refused) => return Ok(TaskOutcome::refused(UPDATE_FAILED, refused.to_string())),
    };
    let trusted = trusted_root(engine).await?;
    if finished_already(engine, &trusted, &new).await? {
        return Ok(TaskOutcome::ok(
            UPDATE_PROCESSED,
            Some(json!({"role": "root"})),
        ));
    }
    match check_next(&trusted, &new, engine.clock.now()) {
        Err(reason) => Ok(TaskOutcome::refused(
            UPDATE_FAILED,
            format!("Failed to verify the trust: {reason}"),
        )),
        Ok(false) => {
            let version = new.signed.version;
            engine.settings.set(ROOT_SIGNING, to_value(&new)?).await?;
            Ok(TaskOutcome::ok(
                UPDATE_PROCESSED,
                Some(
                    json!({"role": "root", "update": format!("Root v{version} is pending signatures")}),
                ),
            ))
        }
        Ok(true) => match finalize(engine, &trusted, &new).await? {
            Ok(()) => Ok(TaskOutcome::ok(
                UPDATE_PROCESSED,
                Some(json!({"role": "root"})),
            )),
            Err(reason) => Ok(TaskOutcome::refused(UPDATE_FAILED, reason)),
        },
    }
}

/// A signature for a pending new root version (not a bootstrap): valid for a root key of the
/// trusted or of the new root; both thresholds met publish it.
pub(crate) async fn sign_pending_root(
    engine: &Engine,
    pending: Value,
    signature: Signature,
) -> Result<TaskOutcome, TaskError> {
    const FAILED: &str = "Signature Failed";
    let mut new = Metadata::<Root>::from_value(pending)
        .map_err(|e| TaskError::unreadable_setting(ROOT_SIGNING, e))?;
    let trusted = trusted_root(engine).await?;
    if finished_already(engine, &trusted, &new).await? {
        return Ok(crate::signing::root_signature_finished(&trusted));
    }
    if new.signed.version != trusted.signed.version + 1 {
        return Ok(TaskOutcome::refused(
            FAILED,
            format!(
                "Root v{} is stale: the trusted root is v{}",
                new.signed.version, trusted.signed.version
            ),
        ));
    }
    let payload = new
        .signed_bytes()
        .map_err(|e| TaskError::encoding("root", e))?;
    let valid_for = |root: &Root| {
        root.role("root")
            .is_some_and(|r| signed_by_one_of(&r.keyids, &root.keys, &payload, &signature))
    };
    if !valid_for(&trusted.signed) && !valid_for(&new.signed) {
        return Ok(TaskOutcome::refused(FAILED, "Invalid signature"));
    }
    new.signatures.retain(|s| s.keyid != signature.keyid);
    new.signatures.push(signature);
    match check_next(&trusted, &new, engine.clock.now()) {
        Err(reason) => Ok(TaskOutcome::refused(FAILED, reason)),
        Ok(false) => {
            let version = new.signed.version;
            engine.settings.set(ROOT_SIGNING, to_value(&new)?).await?;
            Ok(TaskOutcome::ok(
                "Signature Processed",
                Some(json!({"update": format!("Root v{version} is pending signatures")})),
            ))
        }
        Ok(true) => match finalize(engine, &trusted, &new).await? {
            Ok(()) => Ok(TaskOutcome::ok(
                "Signature Processed",
                Some(json!({"update": "Metadata update finished"})),
            )),
            Err(reason) => Ok(TaskOutcome::refused(FAILED, reason)),
        },
    }
}

/// Publishes an accepted new root; re-signs everything online first when the online key
/// changed. `Ok(Err)` is a refusal text (nothing was written).
async fn finalize(
    engine: &Engine,
    trusted: &Metadata<Root>,
    new: &Metadata<Root>,
) -> Result<Result<(), String>, TaskError> {
    let (old_id, _) = online_key_of(&trusted.signed).map_err(|source| TaskError::OnlineKey {
        root: TRUSTED_ROOT.to_string(),
        source,
    })?;
    let (new_id, new_key) = match online_key_of(&new.signed) {
        Ok(online) => online,
        Err(reason) => return Ok(Err(reason.to_string())),
    };
    let signer = if new_id == old_id {
        None
    } else {
        match engine.signers.resolve(&new_id, &new_key).await {
            Ok(signer) => Some(Online {
                keyid: new_id.clone(),
                signer,
            }),
            Err(e) => return Ok(Err(format!("Online key {new_id}: {}", e.message))),
        }
    };
    let result = with_lock!(engine, |guard| {
        publish_root(engine, guard, new, &old_id, signer.as_ref(), &new_key).await
    })?;
    if result.is_err() {
        return Ok(result);
    }
    if signer.is_some() {
        let value = online_key_setting(&new_id, &new_key)?;
        engine.settings.set(ONLINE_KEY, value).await?;
    }
    engine.settings.set(TRUSTED_ROOT, to_value(new)?).await?;
    engine.settings.set(ROOT_SIGNING, Value::Null).await?;
    Ok(Ok(()))
}

async fn publish_root(
    engine: &Engine,
    guard: &dyn LockGuard,
    new: &Metadata<Root>,
    old_id: &str,
    rotate_to: Option<&Online>,
    new_key: &Key,
) -> Result<Result<(), String>, TaskError> {
    if let Some(online) = rotate_to {
        re_sign_online(engine, guard, old_id, online, new_key).await?;
    }
    let name = format!("{}.root.json", new.signed.version);
    match engine
        .store
        .put_versioned(&name, &storage_bytes(new)?)
        .await
    {
        Ok(()) => Ok(Ok(())),
        Err(e) if e.kind == PortErrorKind::Conflict => {
            Ok(Err(format!("{name} already holds another root")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Every role the old online key signs, re-signed by `online` with a new version; then
/// targets, snapshot and timestamp.
async fn re_sign_online(
    engine: &Engine,
    guard: &dyn LockGuard,
    old_id: &str,
    online: &Online,
    new_key: &Key,
) -> Result<(), TaskError> {
    let current = Current::load(engine).await?;
    let mut targets = current.targets.signed.clone();
    let mixed = match targets.delegations.as_mut() {
        Some(delegations) => rekey(delegations, old_id, &online.keyid, new_key),
        None => Vec::new(),
    };
    let rekeyed = Current {
        timestamp: current.timestamp.clone(),
        snapshot: current.snapshot.clone(),
        targets: Arc::new(Metadata::new(targets.clone())),
    };
    let names: Vec<String> = engine
        .index
        .active_roles(None)
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect();
    // Every expiry needed is read before anything is written: the online roles', the
    // targets', and those of the roles signed after the publication.
    let roles = bumpable(&rekeyed, online, &names);
    let signed_now = roles.iter().map(|(name, _)| name.as_str());
    let names = signed_now.chain(mixed.iter().map(String::as_str)).collect();
    let role_days = RoleDays::read(engine, &rekeyed, names).await?;
    let targets_days = settings::days(engine.settings.as_ref(), "TARGETS_EXPIRATION", 365).await?;
    let mut publication = Publication::new(engine, online, &rekeyed).await?;
    bump_roles(&mut publication, roles, &role_days).await?;
    publication.publish_targets(targets, targets_days).await?;
    let now = publication.now();
    publication
        .finish(guard, Resign::SnapshotAndTimestamp, &[])
        .await?;

    // Roles that need offline signatures besides the online key: a new version signed by
    // the new key, waiting for the others.
    for name in mixed {
        let Some(version) = current.snapshot.signed.role_version(&name) else {
            continue;
        };
        let mut signed: Targets = load::<Targets>(engine, &format!("{version}.{name}.json"))
            .await?
            .signed;
        let days = role_days.of(&name)?;
        signed.set_version_and_expires(version + 1, expires_in(now, days));
        let md = online.sign(signed).await?;
        engine
            .settings
            .set(&signing_key(&name), to_value(&md)?)
            .await?;
    }
    Ok(())
}

/// Replaces the old online key by the new one wherever the delegations use it. Returns the
/// custom roles that used it and need other keys' signatures as well.
fn rekey(delegations: &mut Delegations, old_id: &str, new_id: &str, new_key: &Key) -> Vec<String> {
    let swap = |keyids: &mut Vec<String>| {
        let mut changed = false;
        for id in keyids.iter_mut() {
            if id == old_id {
                *id = new_id.to_string();
                changed = true;
            }
        }
        changed
    };
    let mut used = false;
    if let Some(succinct) = delegations.succinct_roles.as_mut() {
        used |= swap(&mut succinct.keyids);
    }
    let mut mixed = Vec::new();
    for role in delegations.roles.iter_mut().flatten() {
        if swap(&mut role.keyids) {
            used = true;
            if role.threshold > 1 {
                mixed.push(role.name.clone());
            }
        }
    }
    if used {
        delegations.keys.remove(old_id);
        delegations.keys.insert(new_id.to_string(), new_key.clone());
    }
    mixed
}
