//! The scheduled bump of online roles, in place of Celery beat: every worker wakes at each
//! slot boundary (every five minutes by default, like beat's `*/5` crontab) and claims the
//! slot's lease; the one that wins bumps, the others see the slot done or busy. A busy slot
//! is claimed again every second until it is done, so a holder that died is replaced once its
//! short lease lapses, within the same slot.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_lite::FutureExt;
use rstuf_engine::Engine;
use rstuf_engine::TaskError;
use rstuf_engine::bump;
use rstuf_engine::ports::PortError;
use tokio::sync::watch;

use crate::{log, panic_text};

/// The answer to a claim of a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This worker bumps the slot, holding the lease under this token; it ends with
    /// [`Lease::finish`].
    Won(String),
    /// The slot was bumped already.
    Done,
    /// Someone is bumping now; try again shortly (the slot may still need a bump if the
    /// holder dies).
    Busy,
}

/// The lease shared by every worker that makes each slot's bump run once (on Redis in
/// `rstuf-adapters`, in memory in [`crate::testing::MemoryLease`]).
///
/// Contract: at most one claim of a slot wins while its holder renews the lease; a slot
/// finished (or any slot before it) is never won again; a lease not renewed within
/// [`Lease::ttl`] lapses and the slot can be won by another claim.
#[async_trait]
pub trait Lease: Send + Sync + 'static {
    /// How long a holder keeps the lease without renewing it.
    fn ttl(&self) -> Duration;
    /// Claims the slot starting at `slot` (Unix seconds).
    async fn claim(&self, slot: u64) -> Result<Claim, PortError>;
    /// Extends the lease held under `token`; `false` if it was lost.
    async fn renew(&self, token: &str) -> Result<bool, PortError>;
    /// Records `slot` done and releases the lease held under `token`.
    async fn finish(&self, token: &str, slot: u64) -> Result<(), PortError>;
}

/// Beat's period, for bumps asked by message when this worker's own schedule is off.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// The schedule of one worker.
pub struct Schedule {
    lease: Box<dyn Lease>,
    interval: Option<Duration>,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedule")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The start (Unix seconds) of the slot holding `now`.
fn slot_of(now: f64, interval: Duration) -> u64 {
    let every = interval.as_secs().max(1);
    (now as u64 / every) * every
}

impl Schedule {
    /// A schedule with slots of `interval`; `None` means this worker never bumps on its own.
    pub fn new(lease: impl Lease, interval: Option<Duration>) -> Self {
        Schedule {
            lease: Box::new(lease),
            interval,
        }
    }

    /// Runs the schedule until `stop` turns true.
    pub async fn run(&self, ports: &Engine, mut stop: watch::Receiver<bool>) {
        let Some(interval) = self.interval else {
            return;
        };
        let mut done: Option<u64> = None;
        loop {
            let now = unix_now();
            let slot = slot_of(now, interval);
            if done != Some(slot) {
                match self.lease.claim(slot).await {
                    Ok(Claim::Won(token)) => {
                        // One failed slot, even a panic, must not end the schedule: the next
                        // slot bumps again (with one worker, the timestamp would expire).
                        let bump = AssertUnwindSafe(self.bump_holding(ports, &token, slot, true));
                        match bump.catch_unwind().await {
                            Ok(Ok(roles)) => log(&format!(
                                "scheduled bump of slot {slot}: {} role(s) re-signed",
                                roles.len()
                            )),
                            Ok(Err(e)) => {
                                log(&format!("scheduled bump of slot {slot} failed: {e}"))
                            }
                            Err(panic) => log(&format!(
                                "scheduled bump of slot {slot} panicked: {}",
                                panic_text(panic.as_ref())
                            )),
                        }
                        done = Some(slot);
                    }
                    Ok(Claim::Done) => done = Some(slot),
                    Ok(Claim::Busy) => {}
                    Err(e) => log(&format!("scheduled bump: {e}")),
                }
            }
            let wait = if done == Some(slot) {
                Duration::from_secs_f64(
                    (slot as f64 + interval.as_secs_f64() - unix_now()).max(0.0),
                )
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// `app.bump_online_roles` received as a message (from a Celery beat): bumps unless the
    /// current slot was bumped already or is being bumped. Returns the roles re-signed.
    pub async fn bump_now(&self, ports: &Engine, expired: bool) -> Result<Vec<String>, TaskError> {
        let slot = slot_of(unix_now(), self.interval.unwrap_or(DEFAULT_INTERVAL));
        match self.lease.claim(slot).await? {
            Claim::Won(token) => self.bump_holding(ports, &token, slot, expired).await,
            Claim::Done | Claim::Busy => Ok(Vec::new()),
        }
    }

    /// Bumps while renewing the lease, then records the slot done.
    async fn bump_holding(
        &self,
        ports: &Engine,
        token: &str,
        slot: u64,
        expired: bool,
    ) -> Result<Vec<String>, TaskError> {
        let renew_every = self.lease.ttl() / 3;
        let renew = async {
            loop {
                tokio::time::sleep(renew_every).await;
                if let Ok(false) = self.lease.renew(token).await {
                    log("the bump lease was taken over; LOCK_TARGETS still orders the writes");
                }
            }
        };
        let bump = bump::bump_online_roles(ports, bump::BumpScope::from_expired(expired));
        let result = tokio::select! {
            result = AssertUnwindSafe(bump).catch_unwind() => result,
            _ = renew => unreachable!("loops forever"),
        };
        // The slot is finished even when the bump failed or panicked: the lease is released
        // at once and the next slot tries again.
        self.lease.finish(token, slot).await?;
        match result {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_start_on_the_interval() {
        let five = Duration::from_secs(300);
        assert_eq!(slot_of(1_795_570_499.9, five), 1_795_570_200);
        assert_eq!(slot_of(1_795_570_500.0, five), 1_795_570_500);
        assert_eq!(slot_of(7.5, Duration::from_secs(2)), 6);
    }
}
