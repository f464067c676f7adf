//! Signing events for metadata that waits for offline signatures (`sign_metadata`,
//! `delete_sign_metadata`): the pending metadata of a role lives in the `<ROLE>_SIGNING` setting until its
//! threshold is met or the event is stopped.

use rstuf_metadata::schema::{Metadata, Root, Signature, Targets};
use rstuf_metadata::verify::{signed_by_one_of, verify_threshold};
use serde_json::{Value, json};

use crate::bootstrap;
use crate::engine::Engine;
use crate::outcome::{TaskError, TaskOutcome};
use crate::payload::{DeleteSignMetadata, SignMetadata};
use crate::ports::{ArtifactAction, ArtifactRow, LockGuard};
use crate::publish::with_lock;
use crate::repo::{Current, Online, Publication, Resign, to_value};
use crate::roles::signing_key;
use crate::settings::{self, BOOTSTRAP, ROOT_SIGNING, TRUSTED_ROOT};

/// The message of a refused `delete_sign_metadata` payload.
pub const DELETE_FAILED: &str = "Deletion of metadata pending signatures failed";

entry_on_value! {
    /// Runs the `delete_sign_metadata` action on a payload as sent.
    delete_sign_metadata(engine): DeleteSignMetadata, DELETE_FAILED, |payload| delete_sign(engine, payload)
}

/// Runs the `delete_sign_metadata` action: stops the signing event of a role. Stopping root's
/// during a bootstrap that waits for signatures also releases the bootstrap (`BOOTSTRAP =
/// None`), so a new bootstrap can be sent.
pub async fn delete_sign(
    engine: &Engine,
    payload: DeleteSignMetadata,
) -> Result<TaskOutcome, TaskError> {
    let role = payload.role.as_str();
    let key = signing_key(role);
    if matches!(engine.settings.get(&key).await?, None | Some(Value::Null)) {
        return Ok(TaskOutcome::refused(
            &format!("Deletion of {role} metadata failed."),
            format!("The {role} role is not in a signing process."),
        ));
    }
    engine.settings.set(&key, Value::Null).await?;
    let mut details = None;
    if role == "root" {
        let state = settings::bootstrap_state(engine.settings.as_ref()).await?;
        if state.as_deref().is_some_and(|s| s.starts_with("signing-")) {
            engine.settings.set(BOOTSTRAP, Value::Null).await?;
            details = Some(json!({"bootstrap": "Bootstrap process has been stopped"}));
        }
    }
    Ok(TaskOutcome::ok(
        &format!("Deletion of {role} metadata successful, signing process stopped"),
        details,
    ))
}

/// The message of a refused signature.
pub const SIGN_FAILED: &str = "Signature Failed";
const SIGN_PROCESSED: &str = "Signature Processed";

entry_on_value! {
    /// Runs the `sign_metadata` action on a payload as sent.
    sign_metadata(engine): SignMetadata, SIGN_FAILED, |payload| sign(engine, payload)
}

/// Runs the `sign_metadata` action: adds one signature to a role's pending metadata.
///
/// Implemented: root during a bootstrap that waits for signatures (the bootstrap finishes when
/// the threshold is met), and delegated roles signed with offline keys (published with a new
/// snapshot and timestamp when their delegator's threshold is met). A new root version after the
/// bootstrap is signed through [`crate::rotation`].
pub async fn sign(engine: &Engine, payload: SignMetadata) -> Result<TaskOutcome, TaskError> {
    let SignMetadata { role, signature } = payload;
    let role = role.as_str();
    let pending = match engine.settings.get(&signing_key(role)).await? {
        None | Some(Value::Null) => {
            let done = if role == "root" {
                root_signed_already(engine, &signature).await?
            } else {
                delegated_signed_already(engine, role, &signature).await?
            };
            if let Some(done) = done {
                return Ok(done);
            }
            return Ok(TaskOutcome::refused(
                SIGN_FAILED,
                format!("No signatures pending for {role}"),
            ));
        }
        Some(pending) => pending,
    };
    let state = settings::bootstrap_state(engine.settings.as_ref()).await?;
    match (
        role,
        state.as_deref().and_then(|s| s.strip_prefix("signing-")),
    ) {
        ("root", Some(task_id)) => sign_bootstrap_root(engine, pending, signature, task_id).await,
        ("root", _) if settings::is_finished(state.as_deref()) => {
            crate::rotation::sign_pending_root(engine, pending, signature).await
        }
        _ if settings::is_finished(state.as_deref()) => {
            sign_delegated(engine, role, pending, signature).await
        }
        _ => Ok(TaskOutcome::refused(
            SIGN_FAILED,
            format!("{role} can be signed only after the bootstrap finished"),
        )),
    }
}

async fn sign_bootstrap_root(
    engine: &Engine,
    pending: Value,
    signature: Signature,
    task_id: &str,
) -> Result<TaskOutcome, TaskError> {
    let mut root = Metadata::<Root>::from_value(pending)
        .map_err(|e| TaskError::unreadable_setting(ROOT_SIGNING, e))?;
    let payload = root
        .signed_bytes()
        .map_err(|e| TaskError::encoding("root", e))?;
    let root_role = root.signed.role("root").expect("a root has a root role");
    if !signed_by_one_of(&root_role.keyids, &root.signed.keys, &payload, &signature) {
        return Ok(TaskOutcome::refused(SIGN_FAILED, "Invalid signature"));
    }
    root.signatures.retain(|s| s.keyid != signature.keyid);
    root.signatures.push(signature);
    if root.signed.verify_delegate("root", &root).is_err() {
        let version = root.signed.version;
        engine.settings.set(ROOT_SIGNING, to_value(&root)?).await?;
        return Ok(TaskOutcome::ok(
            SIGN_PROCESSED,
            Some(json!({"bootstrap": format!("Root v{version} is pending signatures")})),
        ));
    }
    match bootstrap::finish_signed(engine, root, task_id).await? {
        Ok(()) => Ok(bootstrap_finished()),
        Err(reason) => Ok(TaskOutcome::refused(SIGN_FAILED, reason.to_string())),
    }
}

fn bootstrap_finished() -> TaskOutcome {
    TaskOutcome::ok(
        SIGN_PROCESSED,
        Some(json!({"bootstrap": "Bootstrap Finished"})),
    )
}

/// The answer to a root signature that arrives when no root waits for signatures but the
/// trusted root already carries it: the signature that finished a bootstrap or a rotation,
/// delivered again because the process stopped before acknowledging it. `None` otherwise.
async fn root_signed_already(
    engine: &Engine,
    signature: &Signature,
) -> Result<Option<TaskOutcome>, TaskError> {
    let state = settings::bootstrap_state(engine.settings.as_ref()).await?;
    if !settings::is_finished(state.as_deref()) {
        return Ok(None);
    }
    let Some(trusted) = engine.settings.get(TRUSTED_ROOT).await? else {
        return Ok(None);
    };
    let trusted = Metadata::<Root>::from_value(trusted)
        .map_err(|e| TaskError::unreadable_setting(TRUSTED_ROOT, e))?;
    if !trusted.signatures.contains(signature) {
        return Ok(None);
    }
    Ok(Some(root_signature_finished(&trusted)))
}

/// The answer to the root signature that made `root` trusted: the end of the bootstrap for
/// version 1, of a rotation for later versions.
pub(crate) fn root_signature_finished(root: &Metadata<Root>) -> TaskOutcome {
    if root.signed.version == 1 {
        bootstrap_finished()
    } else {
        TaskOutcome::ok(
            SIGN_PROCESSED,
            Some(json!({"update": "Metadata update finished"})),
        )
    }
}

/// A signature for a delegated role's pending metadata, checked against the role's keys in
/// the trusted targets. The role is published once its threshold is met and only if its
/// metadata is still valid (an expired role would lock clients out of its artifacts).
async fn sign_delegated(
    engine: &Engine,
    role: &str,
    pending: Value,
    signature: Signature,
) -> Result<TaskOutcome, TaskError> {
    let current = Current::load(engine).await?;
    let delegations = current.targets.signed.delegations.as_ref();
    let Some(delegated) = current.custom_role(role) else {
        return Ok(TaskOutcome::refused(
            SIGN_FAILED,
            format!("{role} is not delegated by targets"),
        ));
    };
    let keys = &delegations.expect("a delegated role has delegations").keys;
    let mut md = Metadata::<Targets>::from_value(pending)
        .map_err(|e| TaskError::unreadable_setting(signing_key(role), e))?;
    let payload = md
        .signed_bytes()
        .map_err(|e| TaskError::encoding(role, e))?;
    if !signed_by_one_of(&delegated.keyids, keys, &payload, &signature) {
        return Ok(TaskOutcome::refused(SIGN_FAILED, "Invalid signature"));
    }
    md.signatures.retain(|s| s.keyid != signature.keyid);
    md.signatures.push(signature);
    let version = md.signed.version;
    if published_as(engine, &current, role, version, &payload).await? {
        // Published already: the signature that completed it, delivered again before the
        // event was ended.
        engine.settings.set(&signing_key(role), Value::Null).await?;
        return Ok(signing_complete(role));
    }
    let met = verify_threshold(
        &delegated.keyids,
        delegated.threshold,
        keys,
        &payload,
        &md.signatures,
    )
    .verified();
    if !met {
        engine
            .settings
            .set(&signing_key(role), to_value(&md)?)
            .await?;
        return Ok(TaskOutcome::ok(
            SIGN_PROCESSED,
            Some(json!({"update": format!("{role} v{version} is pending signatures")})),
        ));
    }
    let now = engine.clock.now();
    if md.signed.expires.0 <= now {
        return Ok(TaskOutcome::refused(
            SIGN_FAILED,
            format!(
                "{role} v{version} expired at {}; it cannot be published",
                md.signed.expires
            ),
        ));
    }
    let published = with_lock!(engine, |guard| {
        publish_signed_role(engine, guard, role, &md).await
    })?;
    if let Err(reason) = published {
        return Ok(TaskOutcome::refused(SIGN_FAILED, reason));
    }
    engine.settings.set(&signing_key(role), Value::Null).await?;
    Ok(signing_complete(role))
}

fn signing_complete(role: &str) -> TaskOutcome {
    TaskOutcome::ok(
        SIGN_PROCESSED,
        Some(json!({"update": format!("Role {role} signing complete")})),
    )
}

/// Whether the snapshot lists `role` at `version` or later and `<version>.<role>.json` holds
/// metadata whose signed part is `payload` (canonical bytes).
async fn published_as(
    engine: &Engine,
    current: &Current,
    role: &str,
    version: u64,
    payload: &[u8],
) -> Result<bool, TaskError> {
    if current
        .snapshot
        .signed
        .role_version(role)
        .is_none_or(|v| v < version)
    {
        return Ok(false);
    }
    let stored = stored_role(engine, role, version).await?;
    Ok(stored.is_some_and(|md| md.signed_bytes().ok().as_deref() == Some(payload)))
}

/// `<version>.<role>.json`, parsed, if stored.
async fn stored_role(
    engine: &Engine,
    role: &str,
    version: u64,
) -> Result<Option<Metadata<Targets>>, TaskError> {
    let name = format!("{version}.{role}.json");
    let Some(bytes) = engine.store.get(&name).await? else {
        return Ok(None);
    };
    Metadata::<Targets>::from_stored_bytes(&bytes)
        .map(Some)
        .map_err(|e| TaskError::unreadable(&name, e))
}

/// The answer to a signature for a delegated role with no signing event, when the role's
/// published version carries that very signature: the signature that completed it, delivered
/// again. `None` otherwise.
async fn delegated_signed_already(
    engine: &Engine,
    role: &str,
    signature: &Signature,
) -> Result<Option<TaskOutcome>, TaskError> {
    let state = settings::bootstrap_state(engine.settings.as_ref()).await?;
    if !settings::is_finished(state.as_deref()) {
        return Ok(None);
    }
    let current = Current::load(engine).await?;
    let Some(version) = current.snapshot.signed.role_version(role) else {
        return Ok(None);
    };
    let stored = stored_role(engine, role, version).await?;
    Ok(stored
        .filter(|md| md.signatures.contains(signature))
        .map(|_| signing_complete(role)))
}

async fn publish_signed_role(
    engine: &Engine,
    guard: &dyn LockGuard,
    role: &str,
    md: &Metadata<Targets>,
) -> Result<Result<(), String>, TaskError> {
    let current = Current::load(engine).await?;
    let online = Online::load(engine).await?;
    let mut publication = Publication::new(engine, &online, &current).await?;
    if let Err(reason) = publication.publish_presigned(role, md).await? {
        return Ok(Err(reason));
    }
    // The artifact rows this version publishes: added ones it lists as recorded, removed
    // ones it no longer lists. Rows changed since it was prepared wait for the next event.
    let covered: Vec<ArtifactRow> = engine
        .index
        .artifacts_of(&[role.to_string()])
        .await?
        .into_iter()
        .filter(|row| !row.published)
        .filter(|row| {
            let listed = md.signed.targets.get(&row.path);
            match row.action {
                ArtifactAction::Add => {
                    listed.is_some()
                        && crate::payload::parse_info_text(&row.info).ok().as_ref() == listed
                }
                ArtifactAction::Remove => listed.is_none(),
            }
        })
        .collect();
    publication
        .finish(guard, Resign::OnlyChanged, &covered)
        .await?;
    Ok(Ok(()))
}
