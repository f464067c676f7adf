//! What an interrupted bootstrap left behind, and how the next bootstrap goes on from it.
//!
//! A bootstrap writes role rows, then the files of every role leaves first, root last, then
//! the settings that follow root (`BOOTSTRAP` last). A process killed part-way leaves some of
//! that. Two cases, told apart by the root in storage:
//! - **no root**: nothing was published (a client starts from root, and no root names any of
//!   the files), so every file and row left is discarded and the bootstrap starts afresh,
//!   with the same payload or another one;
//! - **root written**: the repository is published. The bootstrap that planned this very root
//!   (same signed part) only completes the settings that follow it; any other is refused,
//!   since a published root is never replaced.

use rstuf_metadata::schema::{Metadata, Root, Targets, Timestamp};

use super::BootstrapError;
use crate::engine::Engine;
use crate::outcome::TaskError;
use crate::repo::load;

/// The planned root, published with the rest of version 1: only the settings remain.
#[derive(Debug)]
pub(super) struct Published {
    /// The published root (its signatures may differ from the plan's copy).
    pub root: Box<Metadata<Root>>,
    /// The published targets, `1.targets.json`.
    pub targets: Box<Metadata<Targets>>,
}

/// Looks for a published root, reading only: `None` when there is none (whatever else an
/// interrupted attempt left is then for [`clear`]), the published repository when it is
/// `planned`'s first version. `Ok(Err)` refuses the bootstrap: another root, or a
/// repository that moved past its first version.
pub(super) async fn published(
    engine: &Engine,
    planned: &Metadata<Root>,
) -> Result<Result<Option<Published>, BootstrapError>, TaskError> {
    let planned_name = format!("{}.root.json", planned.signed.version);
    let mut stored = None;
    for name in ["1.root.json", planned_name.as_str()] {
        if let Some(bytes) = engine.store.get(name).await? {
            stored = Some((name.to_string(), bytes));
            break;
        }
    }
    let Some((name, bytes)) = stored else {
        return Ok(Ok(None));
    };
    let root =
        Metadata::<Root>::from_stored_bytes(&bytes).map_err(|e| TaskError::unreadable(&name, e))?;
    let same = |md: &Metadata<Root>| md.signed_bytes().ok();
    if name != planned_name || same(&root) != same(planned) {
        return Ok(Err(BootstrapError::OtherRootPublished { file: name }));
    }
    // A repository that moved on (a later root or timestamp) lost its settings; bootstrapping
    // again would not bring them back.
    let next_root = format!("{}.root.json", planned.signed.version + 1);
    let timestamp = load::<Timestamp>(engine, "timestamp.json").await?;
    if engine.store.get(&next_root).await?.is_some() || timestamp.signed.version != 1 {
        return Ok(Err(BootstrapError::PublishedBeyondBootstrap));
    }
    let targets = load::<Targets>(engine, "1.targets.json").await?;
    Ok(Ok(Some(Published {
        root: Box::new(root),
        targets: Box::new(targets),
    })))
}

/// Discards every file and row of a repository that has no root: `timestamp.json` first,
/// then each version of snapshot, targets and every delegated role with a row, then the
/// rows. Each step can be interrupted and run again. Only for a repository whose root was
/// never written ([`published`] found none).
pub(super) async fn clear(engine: &Engine) -> Result<(), TaskError> {
    let rows = engine.index.active_roles(None).await?;
    let mut roles: Vec<String> = ["snapshot", "targets"].map(String::from).into();
    roles.extend(rows.into_iter().map(|r| r.name));
    engine
        .store
        .discard(&["timestamp.json".to_string()])
        .await?;
    // A bootstrap writes version 1 only; later versions are looked for anyway, as long as
    // the one before existed.
    let mut version: u64 = 1;
    while !roles.is_empty() {
        let names: Vec<String> = roles
            .iter()
            .map(|role| format!("{version}.{role}.json"))
            .collect();
        let removed = engine.store.discard(&names).await?;
        let mut removed = removed.into_iter();
        roles.retain(|_| removed.next().unwrap_or(false));
        version += 1;
    }
    engine.index.clear().await?;
    engine.cache.forget();
    Ok(())
}
