//! The scheduled bump of online roles with several workers: every slot is bumped exactly
//! once, whichever workers are alive, and the repository stays valid for python-tuf.
//!
//! Its own test binary: the bump lease lives in Redis database 0 (next to `LOCK_TARGETS`,
//! where the reference keeps `BOR`), so no other worker test turns the schedule on.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Producer, Services, Transport, bootstrap_payload};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_bump_each_schedule_slot_once() {
    let services = Services::new("schedule", Transport::Redis, 1, 1).await;
    // Two-second slots stand in for beat's five minutes; every bump re-signs every online
    // role (they all expire "within" the threshold), so each bump is one timestamp version.
    services
        .set_setting("HOURS_BEFORE_EXPIRE", "@int 1000000")
        .await;
    let env = [
        ("RSTUF_BUMP_ONLINE_ROLES_INTERVAL", "2"),
        ("RSTUF_BUMP_ONLINE_ROLES_TTL", "2"),
        ("RSTUF_LOCK_TIMEOUT", "3"),
    ];
    let mut workers = vec![
        services.worker("s1", &env),
        services.worker("s2", &env),
        services.worker("s3", &env),
    ];
    let mut python = Producer::new(&services);
    let (_, r) = services.bootstrap(&mut python, bootstrap_payload()).await;
    assert_eq!(r["api_state"], "SUCCESS", "{r}");

    tokio::time::sleep(Duration::from_secs(10)).await;
    // A worker dies without a word; the others carry on.
    workers[0].signal("KILL");
    tokio::time::sleep(Duration::from_secs(10)).await;
    for w in &workers[1..] {
        w.signal("TERM");
    }
    for w in &mut workers {
        let _ = w.child.wait();
    }

    let mut bumps: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for w in &workers {
        for line in w.log_text().lines() {
            if let Some(rest) = line.split("scheduled bump of slot ").nth(1) {
                let slot: u64 = rest.split(':').next().unwrap().parse().unwrap();
                bumps.entry(slot).or_default().push(line.to_string());
            }
        }
    }
    let logs: Vec<String> = workers.iter().map(|w| w.log_text()).collect();
    for (slot, lines) in &bumps {
        assert_eq!(
            lines.len(),
            1,
            "slot {slot} bumped {} times: {lines:?}",
            lines.len()
        );
    }
    let slots: Vec<u64> = bumps.keys().copied().collect();
    assert!(
        slots.len() >= 8,
        "only {} slots bumped: {logs:#?}",
        slots.len()
    );
    for pair in slots.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            2,
            "a slot was skipped: {slots:?}\n{logs:#?}"
        );
    }

    // Each bump is one new timestamp, and python-tuf accepts the result.
    let timestamp: Value =
        serde_json::from_slice(&std::fs::read(services.storage.join("timestamp.json")).unwrap())
            .unwrap();
    let after_bootstrap = bumps
        .values()
        .filter(|lines| !lines[0].contains(": 0 role(s)"))
        .count() as u64;
    assert_eq!(
        timestamp["signed"]["version"],
        json!(1 + after_bootstrap),
        "{logs:#?}"
    );
    services.client_accepts(json!({}), json!([]));
}
