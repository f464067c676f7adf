//! `bootstrap`: check the root the API sends, store the repository
//! settings, and either publish the first version of every role (root threshold met) or wait
//! for more root signatures (`BOOTSTRAP = signing-<id>`, `ROOT_SIGNING`).
//!
//! Unlike the reference worker, which saved settings, rows and files before its last checks,
//! everything is validated before anything is written: the root and its signatures, the
//! expiration policies, the bin count and the online key's signer. Files are written leaves
//! first: bins, targets, snapshot, timestamp, and root last (so no client ever sees a
//! reference to a file not yet stored), and `BOOTSTRAP` is set only after all of them are
//! durable. A bootstrap interrupted anywhere is finished or cleared by the next one
//! (see `leftovers.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use rstuf_metadata::keys::Key;
use rstuf_metadata::schema::{Delegations, Expires, Metadata, Root, Targets};
use rstuf_metadata::succinct::SuccinctRoles;
use rstuf_metadata::verify::signed_by_one_of;
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::outcome::{OnlineKeyError, TaskError, TaskOutcome};
use crate::payload::Bootstrap;
use crate::ports::LockGuard;
use crate::ports::RoleRecord;
use crate::publish::with_lock;
use crate::repo::{
    Online, Publication, SignedRole, expires_in, online_key_of, online_key_setting, store_pending,
    to_value,
};
use crate::roles::{CustomDelegations, DelegationError, check_custom_delegations, expiration_key};
use crate::settings::{self, BOOTSTRAP, ONLINE_KEY, ROOT_SIGNING, TRUSTED_ROOT, TRUSTED_TARGETS};

mod leftovers;

use leftovers::Published;

/// The message of a refused bootstrap.
pub const FAILED: &str = "Bootstrap Failed";
const PROCESSED: &str = "Bootstrap Processed";
/// The API accepts 2..=16384 bins (`1 < number_of_delegated_bins < 16385`).
const MAX_BINS: u64 = 16_384;

/// Days each top-level role (and the bins) stays valid, from `settings.roles.<role>.expiration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expirations {
    /// Root.
    pub root: u32,
    /// Targets.
    pub targets: u32,
    /// Snapshot.
    pub snapshot: u32,
    /// Timestamp.
    pub timestamp: u32,
}

/// How top-level targets delegates: TAP 15 hash bins or custom roles.
#[derive(Debug, Clone)]
enum Layout {
    /// `count` bins (`2^bit_length` exist), each valid `expiration` days.
    Bins {
        count: u64,
        expiration: u32,
        bit_length: u32,
    },
    /// Custom roles, checked.
    Custom(CustomDelegations),
}

/// What a valid bootstrap payload asks for.
#[derive(Debug, Clone)]
struct Plan {
    root: Metadata<Root>,
    expirations: Expirations,
    layout: Layout,
    online_keyid: String,
    online_key: Key,
}

/// Why a bootstrap is refused (after the bootstrap state is known: the API's bootstrap lock
/// is then released).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    /// `metadata` has no `root`.
    #[error("No 'root' in the payload metadata")]
    NoRoot,
    /// The root does not read as TUF root metadata.
    #[error("Invalid root metadata: {0}")]
    InvalidRoot(String),
    /// The root has no signature.
    #[error("Metadata requires at least one valid signature")]
    NoSignature,
    /// A signature that is not a valid one of a root key.
    #[error("Bootstrap has invalid signature(s)")]
    InvalidSignature,
    /// `settings` has no `roles`.
    #[error("No 'roles' in the payload settings")]
    NoRoles,
    /// An expiration that is not a positive number of days.
    #[error("settings.roles.{0}.expiration must be a positive number of days")]
    Expiration(&'static str),
    /// The root names no usable online key.
    #[error(transparent)]
    OnlineKey(OnlineKeyError),
    /// Both bins and custom delegations.
    #[error("Bootstrap cannot use both hash bin delegation and custom target delegations")]
    BinsAndDelegations,
    /// Neither bins nor custom delegations.
    #[error("Exactly one of 'bins' and 'delegations' must be set")]
    NoLayout,
    /// A bin count out of range.
    #[error("settings.roles.bins.number_of_delegated_bins must be between 2 and {MAX_BINS}")]
    BinCount,
    /// Custom delegations refused.
    #[error(transparent)]
    Delegations(#[from] DelegationError),
    /// Storage already holds another root than the one planned.
    #[error(
        "Storage already holds {file} with another root than this bootstrap's: a published \
         root is never replaced (bootstrap again with that root, or restore the repository)"
    )]
    OtherRootPublished {
        /// The root file found.
        file: String,
    },
    /// Storage holds this root, but the repository moved past its first version.
    #[error(
        "Storage holds a repository past its first version while the settings show no \
         bootstrap: restore the repository settings instead of bootstrapping again"
    )]
    PublishedBeyondBootstrap,
    /// Storage holds this root with other delegations than the planned ones.
    #[error(
        "Storage already holds this root with other delegations than this bootstrap's: \
         bootstrap again with the payload that published them"
    )]
    OtherLayoutPublished,
    /// The online key's signer cannot be found or does not match.
    #[error("Online key {keyid}: {reason}")]
    Signer {
        /// The online key's id.
        keyid: String,
        /// Why.
        reason: String,
    },
}

fn expiration(roles: &Value, role: &'static str) -> Result<u32, BootstrapError> {
    roles
        .get(role)
        .and_then(|r| r.get("expiration"))
        .and_then(Value::as_u64)
        .and_then(|d| u32::try_from(d).ok())
        .filter(|d| *d >= 1)
        .ok_or(BootstrapError::Expiration(role))
}

/// Checks the payload without touching any port.
fn plan(settings: &Value, metadata: &Value) -> Result<Plan, BootstrapError> {
    let root_value = metadata.get("root").ok_or(BootstrapError::NoRoot)?;
    let root = Metadata::<Root>::from_value(root_value.clone())
        .map_err(|e| BootstrapError::InvalidRoot(e.to_string()))?;
    if root.signatures.is_empty() {
        return Err(BootstrapError::NoSignature);
    }
    // Every signature given must be a valid signature of a root key (python-tuf rules).
    let payload = root
        .signed_bytes()
        .map_err(|e| BootstrapError::InvalidRoot(e.to_string()))?;
    let root_role = root
        .signed
        .role("root")
        .expect("validated root has a root role");
    for sig in &root.signatures {
        if !signed_by_one_of(&root_role.keyids, &root.signed.keys, &payload, sig) {
            return Err(BootstrapError::InvalidSignature);
        }
    }

    let roles = settings.get("roles").ok_or(BootstrapError::NoRoles)?;
    let expirations = Expirations {
        root: expiration(roles, "root")?,
        targets: expiration(roles, "targets")?,
        snapshot: expiration(roles, "snapshot")?,
        timestamp: expiration(roles, "timestamp")?,
    };
    let (online_keyid, online_key) =
        online_key_of(&root.signed).map_err(BootstrapError::OnlineKey)?;

    // The API may send `null` for the one it does not use.
    let present = |key: &str| roles.get(key).filter(|v| !v.is_null());
    let layout = match (present("bins"), present("delegations")) {
        (Some(_), Some(_)) => return Err(BootstrapError::BinsAndDelegations),
        (Some(bins), None) => {
            let count = bins
                .get("number_of_delegated_bins")
                .and_then(Value::as_u64)
                .filter(|n| (2..=MAX_BINS).contains(n))
                .ok_or(BootstrapError::BinCount)?;
            Layout::Bins {
                count,
                expiration: expiration(roles, "bins")?,
                bit_length: SuccinctRoles::bit_length_for_bins(count).expect("2..=16384 bins"),
            }
        }
        (None, Some(delegations)) => Layout::Custom(check_custom_delegations(
            delegations,
            &online_keyid,
            &online_key,
        )?),
        (None, None) => return Err(BootstrapError::NoLayout),
    };
    Ok(Plan {
        root,
        expirations,
        layout,
        online_keyid,
        online_key,
    })
}

/// Runs the `bootstrap` action on a payload as sent. `task_id` is the Celery task id (it
/// becomes `BOOTSTRAP`).
pub async fn bootstrap(
    engine: &Engine,
    payload: &Value,
    task_id: &str,
) -> Result<TaskOutcome, TaskError> {
    crate::payload::run_parsed(Some(payload), FAILED, |payload: Bootstrap| {
        run(engine, payload, task_id)
    })
    .await
}

/// Runs the `bootstrap` action. `task_id` is the Celery task id (it becomes `BOOTSTRAP`).
pub async fn run(
    engine: &Engine,
    payload: Bootstrap,
    task_id: &str,
) -> Result<TaskOutcome, TaskError> {
    let settings_value = &payload.settings;
    let metadata = &payload.metadata;
    let state = settings::bootstrap_state(engine.settings.as_ref()).await?;
    // This very bootstrap, delivered again (the process stopped before it was acknowledged):
    // the same answer as the first time.
    if state.as_deref() == Some(task_id) {
        return Ok(finished(task_id));
    }
    if state.as_deref().and_then(|s| s.strip_prefix("signing-")) == Some(task_id)
        && let Some(root) = engine.settings.get(ROOT_SIGNING).await?
        && let Ok(root) = Metadata::<Root>::from_value(root)
    {
        return Ok(waiting(&root));
    }
    if let Some(state) = state
        && !state.contains("pre-")
    {
        return Ok(TaskOutcome::refused(
            FAILED,
            format!("Bootstrap state is {state}"),
        ));
    }

    // From here a refusal also releases the API's bootstrap lock (BOOTSTRAP = None), as the
    // reference worker does for bad signatures, so the operator can send a corrected request.
    let plan = match plan(settings_value, metadata) {
        Ok(plan) => plan,
        Err(reason) => return refuse_and_unlock(engine, reason).await,
    };
    let online = match online_signer(engine, &plan).await {
        Ok(online) => online,
        Err(reason) => return refuse_and_unlock(engine, reason).await,
    };
    // A root an interrupted bootstrap published is checked before any setting is written.
    if let Err(reason) = published_already(engine, &plan, &online).await? {
        return refuse_and_unlock(engine, reason).await;
    }

    save_settings(engine, &plan).await?;
    if plan.root.signed.verify_delegate("root", &plan.root).is_ok() {
        if let Err(reason) = finalize(engine, &plan, &online, task_id).await? {
            return refuse_and_unlock(engine, reason).await;
        }
        Ok(finished(task_id))
    } else {
        engine
            .settings
            .set(ROOT_SIGNING, to_value(&plan.root)?)
            .await?;
        engine
            .settings
            .set(BOOTSTRAP, Value::String(format!("signing-{task_id}")))
            .await?;
        Ok(waiting(&plan.root))
    }
}

/// The answer of a bootstrap whose root waits for more signatures.
fn waiting(root: &Metadata<Root>) -> TaskOutcome {
    let version = root.signed.version;
    TaskOutcome::ok(
        PROCESSED,
        Some(json!({"bootstrap": format!("Root v{version} is pending signature")})),
    )
}

/// The answer of a bootstrap that published the repository.
fn finished(task_id: &str) -> TaskOutcome {
    TaskOutcome::ok(
        PROCESSED,
        Some(json!({"bootstrap": format!("Bootstrap finished {task_id}")})),
    )
}

/// Finishes a bootstrap that waited for root signatures, now that `root` meets its threshold:
/// the plan is rebuilt from the settings the bootstrap stored (and checked again), then every
/// role is published as if the threshold had been met at once. `Ok(Err)` is a refusal.
pub(crate) async fn finish_signed(
    engine: &Engine,
    root: Metadata<Root>,
    task_id: &str,
) -> Result<Result<(), BootstrapError>, TaskError> {
    let mut roles = serde_json::Map::new();
    for (role, key) in [
        ("root", "ROOT_EXPIRATION"),
        ("targets", "TARGETS_EXPIRATION"),
        ("snapshot", "SNAPSHOT_EXPIRATION"),
        ("timestamp", "TIMESTAMP_EXPIRATION"),
    ] {
        roles.insert(
            role.into(),
            json!({"expiration": setting(engine, key).await?}),
        );
    }
    let bins = setting(engine, "NUMBER_OF_DELEGATED_BINS").await?;
    if bins.is_null() {
        roles.insert("delegations".into(), setting(engine, "DELEGATIONS").await?);
    } else {
        roles.insert(
            "bins".into(),
            json!({"expiration": setting(engine, "BINS_EXPIRATION").await?, "number_of_delegated_bins": bins}),
        );
    }
    let root_value = to_value(&root)?;
    let plan = match plan(&json!({"roles": roles}), &json!({"root": root_value})) {
        Ok(plan) => plan,
        Err(reason) => return Ok(Err(reason)),
    };
    let online = match online_signer(engine, &plan).await {
        Ok(online) => online,
        Err(reason) => return Ok(Err(reason)),
    };
    finalize(engine, &plan, &online, task_id).await
}

/// The plan's online key and its signer; `Err` is the refusal.
async fn online_signer(engine: &Engine, plan: &Plan) -> Result<Online, BootstrapError> {
    let signer = engine
        .signers
        .resolve(&plan.online_keyid, &plan.online_key)
        .await
        .map_err(|e| BootstrapError::Signer {
            keyid: plan.online_keyid.clone(),
            reason: e.message,
        })?;
    Ok(Online {
        keyid: plan.online_keyid.clone(),
        signer,
    })
}

/// A stored setting, `Null` when unset.
async fn setting(engine: &Engine, key: &str) -> Result<Value, TaskError> {
    Ok(engine.settings.get(key).await?.unwrap_or(Value::Null))
}

async fn refuse_and_unlock(
    engine: &Engine,
    reason: BootstrapError,
) -> Result<TaskOutcome, TaskError> {
    engine.settings.set(BOOTSTRAP, Value::Null).await?;
    Ok(TaskOutcome::refused(FAILED, reason.to_string()))
}

/// The repository settings the API and later tasks read.
async fn save_settings(engine: &Engine, plan: &Plan) -> Result<(), TaskError> {
    let root_role = plan.root.signed.role("root").expect("validated");
    let e = plan.expirations;
    let mut values: Vec<(String, Value)> = [
        ("ROOT_EXPIRATION", json!(e.root)),
        ("TARGETS_EXPIRATION", json!(e.targets)),
        ("SNAPSHOT_EXPIRATION", json!(e.snapshot)),
        ("TIMESTAMP_EXPIRATION", json!(e.timestamp)),
        ("ROOT_THRESHOLD", json!(root_role.threshold)),
        // The reference stores the number of signatures here, although the name says keys; we
        // store the same, which the API shows.
        ("ROOT_NUM_KEYS", json!(root_role.keyids.len())),
        ("TARGETS_THRESHOLD", json!(1)),
        ("TARGETS_NUM_KEYS", json!(1)),
        ("SNAPSHOT_THRESHOLD", json!(1)),
        ("SNAPSHOT_NUM_KEYS", json!(1)),
        ("TIMESTAMP_THRESHOLD", json!(1)),
        ("TIMESTAMP_NUM_KEYS", json!(1)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    match &plan.layout {
        Layout::Bins {
            count, expiration, ..
        } => {
            for (k, v) in [
                ("BINS_EXPIRATION", json!(expiration)),
                ("BINS_THRESHOLD", json!(1)),
                ("BINS_NUM_KEYS", json!(1)),
                ("NUMBER_OF_DELEGATED_BINS", json!(count)),
            ] {
                values.push((k.to_string(), v));
            }
        }
        Layout::Custom(custom) => {
            for (name, days) in &custom.policies {
                values.push((expiration_key(name), json!(days)));
            }
            values.push(("DELEGATIONS".to_string(), custom.given.clone()));
        }
    }
    values.push(("TARGETS_ONLINE_KEY".to_string(), Value::Bool(true)));
    for (key, value) in values {
        engine.settings.set(&key, value).await?;
    }
    // The other layout's setting, left by an interrupted bootstrap of another payload, would
    // make the API, the CLI and a finishing `sign_metadata` read the wrong layout.
    let other = match &plan.layout {
        Layout::Bins { .. } => "DELEGATIONS",
        Layout::Custom(_) => "NUMBER_OF_DELEGATED_BINS",
    };
    if !setting(engine, other).await?.is_null() {
        engine.settings.set(other, Value::Null).await?;
    }
    Ok(())
}

/// What storage holds, checked against the plan without writing anything: `None` when no
/// root was published, the published repository when it is the plan's. `Ok(Err)` refuses the
/// bootstrap (another root, other delegations, a repository past its first version).
async fn published_already(
    engine: &Engine,
    plan: &Plan,
    online: &Online,
) -> Result<Result<Option<Published>, BootstrapError>, TaskError> {
    let published = match leftovers::published(engine, &plan.root).await? {
        Ok(Some(published)) => published,
        other => return Ok(other),
    };
    let (delegations, _) = delegated_roles(plan, online, engine.clock.now());
    if published.targets.signed.delegations.as_ref() != Some(&delegations) {
        return Ok(Err(BootstrapError::OtherLayoutPublished));
    }
    Ok(Ok(Some(published)))
}

/// Publishes version 1 of every role, as the first [`Publication`], under the repository
/// lock. Called when the root threshold is met, here or when the last root signature arrives
/// (`sign_metadata`). `Ok(Err)` is a refusal.
///
/// What an interrupted attempt left is dealt with first (see `leftovers.rs`): nothing
/// published, it is cleared; the plan's root published, only the settings remain. Then: role
/// rows, delegated roles, targets, snapshot, timestamp, root; then the settings that follow
/// root (see [`record_bootstrap`]). Custom roles the online key cannot sign alone wait in
/// `<ROLE>_SIGNING`, valid for their policy from now (the reference gave them `expires =
/// now`: already expired when published).
async fn finalize(
    engine: &Engine,
    plan: &Plan,
    online: &Online,
    task_id: &str,
) -> Result<Result<(), BootstrapError>, TaskError> {
    with_lock!(engine, |guard| {
        match published_already(engine, plan, online).await? {
            Err(reason) => Ok(Err(reason)),
            Ok(Some(Published { root, targets })) => {
                let (delegations, roles) = delegated_roles(plan, online, engine.clock.now());
                let pending = pending_of(&delegations, &roles, online).await?;
                record_bootstrap(engine, plan, &root, &targets, &pending, task_id).await?;
                Ok(Ok(()))
            }
            Ok(None) => {
                leftovers::clear(engine).await?;
                let (targets, pending) = publish_first(engine, plan, online, guard).await?;
                record_bootstrap(engine, plan, &plan.root, &targets, &pending, task_id).await?;
                Ok(Ok(()))
            }
        }
    })
}

/// The settings that follow a published root, in an order a crash anywhere can resume from:
/// the online key, the trusted root and targets, the pending metadata of custom roles,
/// `BOOTSTRAP`, and last the end of root's signing event (cleared after `BOOTSTRAP`, so that
/// a `sign_metadata` delivered again finds either the pending root it can finish or a
/// finished bootstrap).
async fn record_bootstrap(
    engine: &Engine,
    plan: &Plan,
    root: &Metadata<Root>,
    targets: &Metadata<Targets>,
    pending: &[(String, Metadata<Targets>)],
    task_id: &str,
) -> Result<(), TaskError> {
    let settings = engine.settings.as_ref();
    let key = online_key_setting(&plan.online_keyid, &plan.online_key)?;
    settings.set(ONLINE_KEY, key).await?;
    settings.set(TRUSTED_ROOT, to_value(root)?).await?;
    settings.set(TRUSTED_TARGETS, to_value(targets)?).await?;
    store_pending(engine, pending).await?;
    settings
        .set(BOOTSTRAP, Value::String(task_id.to_string()))
        .await?;
    settings.set(ROOT_SIGNING, Value::Null).await?;
    Ok(())
}

/// Writes version 1 of every role, root last; returns the targets published and the pending
/// metadata of the roles that wait for offline signatures.
async fn publish_first(
    engine: &Engine,
    plan: &Plan,
    online: &Online,
    guard: &dyn LockGuard,
) -> Result<(Metadata<Targets>, Vec<(String, Metadata<Targets>)>), TaskError> {
    let days = plan.expirations;
    let mut publication = Publication::first(engine, online, days.snapshot, days.timestamp);
    let now = publication.now();

    let (delegations, roles) = delegated_roles(plan, online, now);
    let rows: Vec<RoleRecord> = roles
        .iter()
        .map(|(name, expires, _)| RoleRecord {
            name: name.clone(),
            version: 1,
            expires: expires.0,
            active: true,
        })
        .collect();
    engine.index.create_roles(&rows).await?;

    // Empty version 1 of every role the online key publishes. Roles with the same expiry have
    // the same bytes, so each distinct expiry is signed once (16,384 bins: one signature).
    let mut empty: BTreeMap<DateTime<Utc>, Arc<Vec<u8>>> = BTreeMap::new();
    for (_, expires, publish) in &roles {
        if *publish && !empty.contains_key(&expires.0) {
            let (_, bytes) = online.sign_stored(Targets::new(1, *expires)).await?;
            empty.insert(expires.0, Arc::new(bytes));
        }
    }
    let published: Vec<SignedRole> = roles
        .iter()
        .filter(|(_, _, publish)| *publish)
        .map(|(name, expires, _)| SignedRole {
            name: name.clone(),
            version: 1,
            expires: *expires,
            bytes: empty[&expires.0].clone(),
        })
        .collect();
    publication.publish_signed_roles(published).await?;
    let pending = pending_of(&delegations, &roles, online).await?;

    let mut targets = Targets::new(1, expires_in(now, days.targets));
    targets.delegations = Some(delegations);
    publication.publish_targets(targets, days.targets).await?;
    let targets = publication.finish_first(guard, &plan.root).await?;
    Ok((targets, pending))
}

/// Version 1 of each role of `roles` the online key does not publish, signed by the online
/// key when it is one of the role's keys.
async fn pending_of(
    delegations: &Delegations,
    roles: &[(String, Expires, bool)],
    online: &Online,
) -> Result<Vec<(String, Metadata<Targets>)>, TaskError> {
    let mut pending = Vec::new();
    for (name, expires, _) in roles.iter().filter(|(_, _, publish)| !*publish) {
        let signed = Targets::new(1, *expires);
        let online_signs = delegations
            .delegation(name)
            .is_some_and(|d| d.keyids.contains(&online.keyid));
        let md = if online_signs {
            online.sign(signed).await?
        } else {
            Metadata::new(signed)
        };
        pending.push((name.clone(), md));
    }
    Ok(pending)
}

/// What top-level targets delegates, and each delegated role: its name, its expiry, and
/// whether the online key publishes it now.
fn delegated_roles(
    plan: &Plan,
    online: &Online,
    now: DateTime<Utc>,
) -> (Delegations, Vec<(String, Expires, bool)>) {
    let keyid = online.keyid.as_str();
    match &plan.layout {
        Layout::Bins {
            expiration,
            bit_length,
            ..
        } => {
            let succinct = SuccinctRoles::new(vec![keyid.to_string()], 1, *bit_length, "bins");
            let expires = expires_in(now, *expiration);
            let roles = succinct
                .role_names()
                .map(|name| (name, expires, true))
                .collect();
            let delegations = Delegations {
                keys: BTreeMap::from([(keyid.to_string(), plan.online_key.clone())]),
                roles: None,
                succinct_roles: Some(succinct),
                unrecognized: BTreeMap::new(),
            };
            (delegations, roles)
        }
        Layout::Custom(custom) => {
            let delegated = custom.delegations.roles.as_deref().unwrap_or_default();
            let roles = delegated
                .iter()
                .zip(&custom.policies)
                .map(|(role, (name, days))| {
                    (
                        name.clone(),
                        expires_in(now, *days),
                        online.meets(&role.keyids, role.threshold),
                    )
                })
                .collect();
            (custom.delegations.clone(), roles)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_refusals_are_typed() {
        assert_eq!(
            plan(&json!({}), &json!({})).unwrap_err(),
            BootstrapError::NoRoot
        );
        let err = plan(&json!({}), &json!({"root": {"signed": 1}})).unwrap_err();
        assert!(matches!(err, BootstrapError::InvalidRoot(_)), "{err:?}");
        assert!(err.to_string().starts_with("Invalid root metadata: "));
        let roles = json!({"root": {"expiration": 0}});
        assert_eq!(
            expiration(&roles, "root"),
            Err(BootstrapError::Expiration("root"))
        );
        assert_eq!(
            expiration(&json!({"bins": {"expiration": u64::MAX}}), "bins")
                .unwrap_err()
                .to_string(),
            "settings.roles.bins.expiration must be a positive number of days"
        );
        assert_eq!(
            expiration(&json!({"root": {"expiration": 3}}), "root"),
            Ok(3)
        );
        assert_eq!(
            BootstrapError::BinCount.to_string(),
            "settings.roles.bins.number_of_delegated_bins must be between 2 and 16384"
        );
    }
}
