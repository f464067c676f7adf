//! Group publishing: the add and remove tasks of one process share their database writes and
//! their publications.
//!
//! A task hands its rows to the [`PublishQueue`] and waits. One task at a time leads a round:
//! it takes every row handed in so far, writes them in one transaction, and takes the
//! repository lock; while it waits for the lock (the previous round publishing), every task
//! that arrives joins the round and its rows are written too. Holding the lock, it passes the
//! lead to the next task to arrive, publishes everything unpublished and answers every task
//! whose rows it took. So a burst of one-artifact tasks costs a few transactions and one
//! publication per round, a task whose rows a round covered never queues for the lock, the
//! next round gathers and writes its rows while this one publishes (at most one round waits
//! for the lock), and a round publishes everything that arrived before it could start. A round
//! whose roles an earlier round or another worker published while it waited for the lock
//! publishes nothing.
//!
//! A task answered has its rows in published metadata (or shares the round's error). A leader
//! that is cancelled (time limit, shutdown) answers nobody: the tasks of its round hand their
//! rows in again, which rewrites the same rows (adding a row is idempotent), and the lead
//! passes on.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures_channel::oneshot;

use crate::artifacts::Progress;
use crate::engine::Engine;
use crate::outcome::TaskError;
use crate::ports::{LockGuard, NewArtifact, RowChange};
use crate::publish::publish_roles_locked;

/// What a waiting task is told.
enum Turn {
    /// Its round finished, with this result.
    Done(Result<(), TaskError>),
    /// It leads the next round.
    Lead,
}

/// The rows of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rows {
    /// Rows to add.
    Add(Vec<NewArtifact>),
    /// Paths to mark for removal, each with the role it is in.
    Remove(Vec<(String, String)>),
}

/// What a task hands in: rows to add and the roles they are in, or paths to mark for removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    rows: Rows,
    roles: Vec<String>,
}

impl Change {
    /// Rows to add (or re-add), in `roles`.
    pub(crate) fn add(rows: Vec<NewArtifact>, roles: Vec<String>) -> Self {
        Change {
            rows: Rows::Add(rows),
            roles,
        }
    }

    /// Paths to mark for removal, each with the role it is in.
    pub(crate) fn remove(paths: Vec<(String, String)>) -> Self {
        Change {
            rows: Rows::Remove(paths),
            roles: Vec::new(),
        }
    }

    fn is_remove(&self) -> bool {
        matches!(self.rows, Rows::Remove(_))
    }

    /// The roles the change touched once written: an add's, or those of the paths a removal
    /// changed (`deleted`), in first-seen order.
    fn roles_written(&self, deleted: &[String]) -> Vec<String> {
        match &self.rows {
            Rows::Add(_) => self.roles.clone(),
            Rows::Remove(paths) => {
                let deleted: HashSet<&str> = deleted.iter().map(String::as_str).collect();
                let mut roles: Vec<String> = Vec::new();
                for (_, role) in paths.iter().filter(|(p, _)| deleted.contains(p.as_str())) {
                    if !roles.contains(role) {
                        roles.push(role.clone());
                    }
                }
                roles
            }
        }
    }
}

struct Waiter {
    change: Arc<Change>,
    /// Told the paths of its removal the round's transaction changed, once written.
    written: Option<oneshot::Sender<Vec<String>>>,
    reply: oneshot::Sender<Turn>,
}

#[derive(Default)]
struct State {
    waiting: Vec<Waiter>,
    leading: bool,
    /// Told when a task starts waiting (by a leader waiting for the lock).
    arrival: Option<oneshot::Sender<()>>,
}

/// The rounds of one process (share one per repository, like the metadata cache).
#[derive(Default)]
pub struct PublishQueue {
    state: Mutex<State>,
}

impl std::fmt::Debug for PublishQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("PublishQueue")
            .field("waiting", &state.waiting.len())
            .field("leading", &state.leading)
            .finish()
    }
}

impl PublishQueue {
    /// How many tasks wait for the next round.
    pub fn waiting(&self) -> usize {
        self.state().waiting.len()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The critical sections below cannot panic halfway; a poisoned lock holds a
        // consistent state.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Resolves once a task waits for a round (at once if one does).
    fn arrival(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.state();
        if state.waiting.is_empty() {
            state.arrival = Some(tx);
        } else {
            let _ = tx.send(());
        }
        rx
    }

    /// The waiting tasks, taken into the caller's round; those cancelled while they waited
    /// (time limit, shutdown) failed, and their rows stay out.
    fn take_waiting(&self) -> Vec<Waiter> {
        let mut round = std::mem::take(&mut self.state().waiting);
        round.retain(|w| !w.reply.is_canceled());
        round
    }

    /// Passes the lead to the first waiting task that is still there, or gives it up.
    fn pass_lead(&self) {
        let mut state = self.state();
        while !state.waiting.is_empty() {
            let next = state.waiting.remove(0);
            if next.reply.send(Turn::Lead).is_ok() {
                return;
            }
            // That task was cancelled while it waited: its rows go with it.
        }
        state.leading = false;
    }
}

/// The lead of a round: passed on once the round holds the repository lock (the next round
/// gathers and writes its rows while this one publishes), or when the round ends, however it
/// ends.
struct Leading<'a> {
    queue: &'a PublishQueue,
    passed: bool,
}

impl Leading<'_> {
    fn pass(&mut self) {
        if !std::mem::replace(&mut self.passed, true) {
            self.queue.pass_lead();
        }
    }
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.pass();
    }
}

/// Writes `change` and publishes every role with unpublished rows, sharing the write and the
/// publication with the tasks of this process that do the same at the same time. Returns
/// once the change is in published metadata, with the paths of a removal that were marked
/// (as [`crate::ports::ArtifactIndex::remove_artifacts`] returns them; none for an add). A
/// removal reports to `progress` once its rows are written, if it changed any; one that
/// changed none returns then. If another worker published the change while the round waited
/// for the lock, the round publishes nothing (what arrived since is left to whoever wrote it).
pub(crate) async fn write_and_publish(
    engine: &Engine,
    change: Change,
    progress: &dyn Progress,
) -> Result<Vec<String>, TaskError> {
    let queue = engine.queue.as_ref();
    let change = Arc::new(change);
    // What the first round that wrote the change said (a later round that rewrites it after a
    // cancelled leader may see its own rows).
    let mut deleted: Option<Vec<String>> = None;
    loop {
        let (reply, answer) = oneshot::channel();
        let (written, written_answer) = oneshot::channel();
        let lead_now = {
            let mut state = queue.state();
            if state.leading {
                state.waiting.push(Waiter {
                    change: change.clone(),
                    written: Some(written),
                    reply,
                });
                if let Some(arrival) = state.arrival.take() {
                    let _ = arrival.send(());
                }
                false
            } else {
                state.leading = true;
                true
            }
        };
        if lead_now {
            return lead(engine, queue, &change, progress, deleted).await;
        }
        // Told once the round wrote the change; never, if the round failed first, the lead
        // came or the leader was cancelled.
        if let Ok(paths) = written_answer.await
            && deleted.is_none()
        {
            if change.is_remove() {
                if paths.is_empty() {
                    return Ok(paths);
                }
                progress.publishing(&change.roles_written(&paths)).await;
            }
            deleted = Some(paths);
        }
        match answer.await {
            Ok(Turn::Done(result)) => return result.map(|()| deleted.unwrap_or_default()),
            Ok(Turn::Lead) => return lead(engine, queue, &change, progress, deleted).await,
            // The leader of our round was cancelled: hand the change in again.
            Err(oneshot::Canceled) => continue,
        }
    }
}

/// Runs one round: this task's change, those of every task waiting now, and those of every
/// task that arrives while the round waits for the lock.
async fn lead(
    engine: &Engine,
    queue: &PublishQueue,
    own: &Arc<Change>,
    progress: &dyn Progress,
    mut deleted: Option<Vec<String>>,
) -> Result<Vec<String>, TaskError> {
    let mut leading = Leading {
        queue,
        passed: false,
    };
    let mut round = queue.take_waiting();
    let result = run_round(
        engine,
        queue,
        &mut leading,
        (own, progress, &mut deleted),
        &mut round,
    )
    .await;
    for waiter in round {
        let _ = waiter.reply.send(Turn::Done(result.clone()));
    }
    result.map(|()| deleted.unwrap_or_default())
}

/// The leader's own change, its progress, and what its removal changed (once known).
type Own<'a> = (&'a Change, &'a dyn Progress, &'a mut Option<Vec<String>>);

/// Writes the round's rows and takes the lock; while the lock is held elsewhere (the previous
/// round publishing), the tasks that arrive join this round and their rows are written too, so
/// a round publishes everything that arrived before it could start (without this, rounds
/// alternate between large and small, and a small one pays a publication's fixed cost for a
/// few tasks). Then, under the lock, it publishes every role with unpublished rows unless
/// another round or worker already published the round's roles. A round whose changes
/// touched no role (removals of paths without rows) takes no lock.
async fn run_round(
    engine: &Engine,
    queue: &PublishQueue,
    leading: &mut Leading<'_>,
    (own, progress, own_deleted): Own<'_>,
    round: &mut Vec<Waiter>,
) -> Result<(), TaskError> {
    let mut roles = Vec::new();
    let changes: Vec<&Change> = std::iter::once(own)
        .chain(round.iter().map(|w| w.change.as_ref()))
        .collect();
    let mut written = write_changes(engine, &changes).await?.into_iter();
    let mine = written.next().unwrap_or_default();
    let mine = own_deleted.get_or_insert(mine).clone();
    roles.extend(own.roles_written(&mine));
    if own.is_remove() && !mine.is_empty() {
        progress.publishing(&own.roles_written(&mine)).await;
    }
    tell_written(round, written, &mut roles);
    if roles.is_empty() {
        return Ok(());
    }
    let mut acquire = engine.lock.acquire();
    let mut joined_written = Ok(());
    let held = loop {
        if joined_written.is_err() {
            // Not dropped while it may be taking the lock: it would be left held.
            break acquire.await;
        }
        match futures_util::future::select(acquire, queue.arrival()).await {
            futures_util::future::Either::Left((held, _)) => break held,
            futures_util::future::Either::Right((_, pending)) => {
                acquire = pending;
                let mut joined = queue.take_waiting();
                let changes: Vec<&Change> = joined.iter().map(|w| w.change.as_ref()).collect();
                match write_changes(engine, &changes).await {
                    Ok(written) => tell_written(&mut joined, written.into_iter(), &mut roles),
                    Err(e) => joined_written = Err(e),
                }
                round.extend(joined);
            }
        }
    };
    let held = held?;
    leading.pass();
    let guard: &dyn LockGuard = held.as_ref();
    let result = async {
        joined_written?;
        roles.sort_unstable();
        roles.dedup();
        let pending = engine.index.roles_with_unpublished().await?;
        if roles.iter().any(|r| pending.iter().any(|p| p == r)) {
            publish_roles_locked(engine, guard, pending).await?;
        }
        Ok(())
    }
    .await;
    // A failed release (lock already expired) does not undo what was published: the
    // timestamp was written only after `still_held` confirmed the lock.
    let _ = held.release().await;
    result
}

/// Tells each of `waiters` what the round's write changed of its removal, and adds the roles
/// their changes touched to `roles` (unsorted, may repeat).
fn tell_written(
    waiters: &mut [Waiter],
    written: impl Iterator<Item = Vec<String>>,
    roles: &mut Vec<String>,
) {
    for (waiter, deleted) in waiters.iter_mut().zip(written) {
        roles.extend(waiter.change.roles_written(&deleted));
        if let Some(tell) = waiter.written.take() {
            let _ = tell.send(deleted);
        }
    }
}

/// Writes `changes` in one transaction, in arrival order (consecutive adds merged, see
/// [`merge`], and consecutive removals); returns, for each change, the paths of its removal
/// that were marked (none for an add).
async fn write_changes(
    engine: &Engine,
    changes: &[&Change],
) -> Result<Vec<Vec<String>>, TaskError> {
    let mut steps: Vec<RowChange> = Vec::new();
    let mut step_of = Vec::with_capacity(changes.len());
    let mut adds: Vec<&Change> = Vec::new();
    for change in changes {
        match &change.rows {
            Rows::Add(_) => adds.push(change),
            Rows::Remove(paths) => {
                if !adds.is_empty() {
                    steps.push(RowChange::Add(merge(&std::mem::take(&mut adds))));
                }
                let paths = paths.iter().map(|(p, _)| p.clone());
                match steps.last_mut() {
                    Some(RowChange::Remove(all)) => all.extend(paths),
                    _ => steps.push(RowChange::Remove(paths.collect())),
                }
            }
        }
        // Adds waiting in `adds` become the next step.
        step_of.push(steps.len() - usize::from(change.is_remove()));
    }
    if !adds.is_empty() {
        steps.push(RowChange::Add(merge(&adds)));
    }
    let changed = if steps.is_empty() {
        Vec::new()
    } else {
        engine.index.apply_changes(&steps).await?
    };
    Ok(changes
        .iter()
        .zip(step_of)
        .map(|(change, step)| match &change.rows {
            Rows::Add(_) => Vec::new(),
            Rows::Remove(paths) => {
                let marked: HashSet<&str> = changed
                    .get(step)
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect();
                paths
                    .iter()
                    .filter(|(p, _)| marked.contains(p.as_str()))
                    .map(|(p, _)| p.clone())
                    .collect()
            }
        })
        .collect())
}

/// The rows of consecutive adds in arrival order, a path given more than once keeping its
/// last info (as the tasks' separate writes would have).
fn merge(changes: &[&Change]) -> Vec<NewArtifact> {
    last_per_path(
        changes
            .iter()
            .flat_map(|c| match &c.rows {
                Rows::Add(rows) => rows.as_slice(),
                Rows::Remove(_) => &[],
            })
            .cloned()
            .collect(),
    )
}

/// `rows` with each path once, at the place and with the info of its last occurrence, as
/// writing them one after another would leave them.
pub(crate) fn last_per_path(rows: Vec<NewArtifact>) -> Vec<NewArtifact> {
    let mut seen = HashSet::with_capacity(rows.len());
    let mut unique: Vec<NewArtifact> = rows
        .into_iter()
        .rev()
        .filter(|r| seen.insert(r.path.clone()))
        .collect();
    unique.reverse();
    unique
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, info: &str) -> NewArtifact {
        NewArtifact {
            path: path.into(),
            info: serde_json::from_str(&format!(
                r#"{{"length": {info}, "hashes": {{"sha256": "aa"}}}}"#
            ))
            .unwrap(),
            role: "bins-0".into(),
        }
    }

    #[test]
    fn merge_keeps_arrival_order_and_the_last_info_of_a_path() {
        let change = |rows| Change::add(rows, vec!["bins-0".into()]);
        let a = change(vec![row("x", "1"), row("y", "1")]);
        let b = change(vec![row("z", "2"), row("x", "2")]);
        let merged = merge(&[&a, &b]);
        assert_eq!(merged, vec![row("y", "1"), row("z", "2"), row("x", "2")]);
    }
}
