//! Faults a hostile operator finds: messages that wait far ahead, on both transports, with
//! real workers. (Each test its own Redis database and virtual host.)

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Producer, Services, Transport, task_id};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);

/// Messages of the queue `metadata_repository`: (ready, delivered and unacknowledged).
async fn queue_depth(services: &Services, transport: Transport, vhost: &str) -> (u64, u64) {
    match transport {
        Transport::Redis => services.redis_queue().await,
        Transport::Amqp => {
            let out = Command::new("rabbitmqctl")
                .args(["list_queues", "-q", "--no-table-headers", "-p", vhost])
                .args(["name", "messages_ready", "messages_unacknowledged"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let line = text
                .lines()
                .find(|l| l.split_whitespace().next() == Some("metadata_repository"))
                .unwrap_or_else(|| panic!("no queue in {text}"));
            let n: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .map(|v| v.parse().unwrap())
                .collect();
            (n[0], n[1])
        }
    }
}

/// Three tasks due in an hour and one due now, on a worker with one slot and a visibility
/// timeout of 2 s: the one due now runs at once; the three wait outside the slot, touched,
/// so no restore copies them; shutdown hands back exactly three.
async fn far_eta_tasks_neither_hold_the_slot_nor_multiply(transport: Transport, db: u32) {
    let name = format!("eta_{db}");
    let services = Services::new(&name, transport, db, db).await;
    let worker = services.worker(
        "e1",
        &[
            ("RSTUF_WORKER_CONCURRENCY", "1"),
            ("RSTUF_BROKER_VISIBILITY_TIMEOUT", "2"),
        ],
    );
    let mut python = Producer::new(&services);
    let artifact = json!({"artifacts": [{"path": "a.tar.gz",
        "info": {"length": 1, "hashes": {"sha256": "ab"}}}]});
    for _ in 0..3 {
        python.send_later(&task_id(), "add_artifacts", artifact.clone(), 3600);
    }
    let now = task_id();
    python.send("metadata_repository", &now, "add_artifacts", artifact);
    let r = python.wait_final(&now, LIMIT);
    // Refused (no bootstrap), but it ran: the slot was free.
    assert_eq!(r["api_state"], "ERRORED", "{r}\n{}", worker.log_text());
    // Several visibility timeouts and housekeeping rounds later: still three held, none
    // restored into a second copy.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let vhost = format!("rstuf-test-{name}");
    assert_eq!(
        queue_depth(&services, transport, &vhost).await,
        (0, 3),
        "{}",
        worker.log_text()
    );
    assert!(
        !worker.log_text().contains("restored"),
        "{}",
        worker.log_text()
    );
    worker.signal("TERM");
    let mut worker = worker;
    let _ = worker.child.wait();
    assert_eq!(
        queue_depth(&services, transport, &vhost).await,
        (3, 0),
        "{}",
        worker.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn far_eta_tasks_on_redis_neither_hold_the_slot_nor_multiply() {
    far_eta_tasks_neither_hold_the_slot_nor_multiply(Transport::Redis, 12).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn far_eta_tasks_on_rabbitmq_neither_hold_the_slot_nor_multiply() {
    far_eta_tasks_neither_hold_the_slot_nor_multiply(Transport::Amqp, 13).await;
}

/// The blocking take of an idle worker that is stopped (`SIGSTOP`) takes a message sent
/// meanwhile; killed then, the worker has it in its processing list, not in limbo: another
/// worker restores it and runs it.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_taken_by_a_worker_killed_before_recording_it_still_runs() {
    let services = Services::new("stopped_take", Transport::Redis, 14, 14).await;
    let fast = [("RSTUF_BROKER_VISIBILITY_TIMEOUT", "2")];
    let mut first = services.worker("s1", &fast);
    let mut python = Producer::new(&services);
    let artifact = json!({"artifacts": [{"path": "a.tar.gz",
        "info": {"length": 1, "hashes": {"sha256": "ab"}}}]});
    // Stopped at a random moment, the idle worker is almost always inside a blocking take of
    // a quarter of a second, which takes a message sent at once. When the take had just
    // ended, nothing takes the message: let the worker run it and try again.
    let mut taken = None;
    for _ in 0..20 {
        let id = task_id();
        first.signal("STOP");
        python.send(
            "metadata_repository",
            &id,
            "add_artifacts",
            artifact.clone(),
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        if queue_depth(&services, Transport::Redis, "").await.0 == 0 {
            taken = Some(id);
            break;
        }
        first.signal("CONT");
        python.wait_final(&id, LIMIT);
    }
    let id = taken.expect("the stopped worker's blocking take never took a message");
    first.signal("KILL");
    let _ = first.child.wait();
    let second = services.worker("s2", &fast);
    let r = python.wait_final(&id, LIMIT);
    // Refused (no bootstrap), but it ran.
    assert_eq!(r["api_state"], "ERRORED", "{r}\n{}", second.log_text());
}

/// Defect 7: the repository lock is a short lease. A worker killed while it holds the lock
/// (in the middle of a bootstrap) leaves it for at most 5 s, whatever `RSTUF_LOCK_TIMEOUT`
/// says, and the next worker finishes the bootstrap.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lock_holder_blocks_the_others_for_at_most_five_seconds() {
    let services = Services::new("lease", Transport::Redis, 11, 11).await;
    let mut python = Producer::new(&services);
    let id = task_id();
    services
        .set_setting("BOOTSTRAP", &format!("pre-{id}"))
        .await;
    let mut doomed = services.worker(
        "l1",
        &[
            ("RSTUF_BROKER_VISIBILITY_TIMEOUT", "2"),
            ("RSTUF_TEST_FAILPOINT", "store.put_versioned_many.after"),
        ],
    );
    python.send(
        "metadata_repository",
        &id,
        "bootstrap",
        common::bootstrap_payload(),
    );
    let start = std::time::Instant::now();
    while doomed.alive() {
        assert!(start.elapsed() < LIMIT, "{}", doomed.log_text());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The key is the dead holder's: nobody else can have taken it.
    let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg("LOCK_TARGETS")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        (1..=5000).contains(&ttl),
        "LOCK_TARGETS lapses in {ttl} ms\n{}",
        doomed.log_text()
    );
    let rescue = services.worker("l2", &[("RSTUF_BROKER_VISIBILITY_TIMEOUT", "2")]);
    let r = python.wait_final(&id, LIMIT);
    assert_eq!(r["api_state"], "SUCCESS", "{r}\n{}", rescue.log_text());
    services.client_accepts(json!({}), json!([]));
}
