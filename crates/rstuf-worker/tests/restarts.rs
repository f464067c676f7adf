//! PostgreSQL, Redis and RabbitMQ restarted while tasks flow: the worker recovers by itself
//! and every task sent reaches a final state, with a repository python-tuf trusts.
//!
//! Its own test binary, one test: restarting a shared server must not pull it from under
//! tests running at the same time (cargo runs test binaries one after another). Redis keeps
//! nothing on disk on this machine, so its restart is `SAVE` + `SHUTDOWN NOSAVE` + start
//! (which loads the snapshot), as a Redis with persistence would come back.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Producer, Services, Transport, bootstrap_payload, campaign, task_id};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(120);

fn sh(cmd: &str) {
    let out = Command::new("bash").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn services_script() -> String {
    rstuf_test_support::workspace_root()
        .join("scripts/services.sh")
        .display()
        .to_string()
}

fn artifact(tag: &str) -> (String, Value) {
    let path = format!("restart/{tag}.tar.gz");
    let info = json!({"length": tag.len(), "hashes": {"sha256": format!("{:0>64}", hex(tag))}});
    (path, info)
}

fn hex(s: &str) -> String {
    s.bytes()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(64)
        .collect()
}

/// Sends one add per tag; returns the task ids.
fn add(python: &mut Producer, tags: &[&str]) -> Vec<String> {
    tags.iter()
        .map(|tag| {
            let (path, info) = artifact(tag);
            let id = task_id();
            python.send(
                "metadata_repository",
                &id,
                "add_artifacts",
                json!({"artifacts": [{"path": path, "info": info}], "publish_artifacts": true}),
            );
            id
        })
        .collect()
}

fn all_succeed(python: &mut Producer, ids: &[String], log: &dyn Fn() -> String) {
    for id in ids {
        let r = python.wait_final(id, LIMIT);
        assert_eq!(r["api_state"], "SUCCESS", "{r}\n{}", log());
    }
}

async fn scenario(transport: Transport, name: &str, db: u32, restart: &dyn Fn()) -> Vec<String> {
    let services = Services::new(name, transport, db, db).await;
    let worker = services.worker(
        "r1",
        &[
            ("RSTUF_BROKER_VISIBILITY_TIMEOUT", "3"),
            ("RSTUF_LOCK_TIMEOUT", "3"),
        ],
    );
    let log = || worker.log_text();
    let mut python = Producer::new(&services);
    let (_, r) = services.bootstrap(&mut python, bootstrap_payload()).await;
    assert_eq!(r["api_state"], "SUCCESS", "{}", log());

    let before = add(&mut python, &["b1", "b2", "b3"]);
    restart();
    let after = add(&mut python, &["a1", "a2", "a3"]);
    all_succeed(&mut python, &before, &log);
    all_succeed(&mut python, &after, &log);

    let present: serde_json::Map<String, Value> = ["b1", "b2", "b3", "a1", "a2", "a3"]
        .iter()
        .map(|t| artifact(t))
        .collect();
    services.client_accepts(Value::Object(present), json!([]));
    log().lines().map(String::from).collect()
}

/// PostgreSQL: a fast restart terminates every connection, in-flight queries included.
fn restart_postgresql() {
    sh(
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main restart -m fast",
    );
}

/// Redis: broker, results, settings and locks all go away for a moment.
fn restart_redis() {
    sh("redis-cli SAVE >/dev/null && (redis-cli SHUTDOWN NOSAVE || true)");
    std::thread::sleep(Duration::from_secs(2));
    sh(&format!(
        "{} >/dev/null; rm -f /var/lib/redis/dump.rdb",
        services_script()
    ));
}

/// RabbitMQ: the broker application stops and starts; connections drop.
fn restart_rabbitmq() {
    sh("rabbitmqctl stop_app >/dev/null && sleep 1 && rabbitmqctl start_app >/dev/null");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_rides_out_restarts_of_postgresql_redis_and_rabbitmq() {
    scenario(Transport::Redis, "restart_pg", 2, &restart_postgresql).await;
    let log = scenario(Transport::Redis, "restart_redis", 2, &restart_redis).await;
    assert!(
        log.iter().any(|l| l.contains("broker:")),
        "the outage was seen: {log:#?}"
    );

    let log = scenario(Transport::Amqp, "restart_amqp", 2, &restart_rabbitmq).await;
    assert!(
        log.iter().any(|l| l.contains("broker connection restored")),
        "reconnected: {log:#?}"
    );

    // The kill campaign while the services restart (one after another, each once every
    // quarter of the tasks sent, with workers killed all along): over Redis, PostgreSQL then
    // Redis; over RabbitMQ, PostgreSQL, Redis (results, settings, locks) then RabbitMQ.
    let services = Services::new("restart_campaign_redis", Transport::Redis, 2, 2).await;
    let restarts: [&dyn Fn(); 2] = [&restart_postgresql, &restart_redis];
    let mut after_chunk = |chunk: usize| restart_at(chunk, &restarts);
    campaign::run(&services, "restart_campaign_redis", 2, &mut after_chunk).await;
    let services = Services::new("restart_campaign_amqp", Transport::Amqp, 2, 2).await;
    let restarts: [&dyn Fn(); 3] = [&restart_postgresql, &restart_redis, &restart_rabbitmq];
    let mut after_chunk = |chunk: usize| restart_at(chunk, &restarts);
    campaign::run(&services, "restart_campaign_amqp", 3, &mut after_chunk).await;
}

/// Runs the restart due after chunk `chunk`: the n-th of `restarts` after chunk 5n
/// (the 250th, 500th, 750th task).
fn restart_at(chunk: usize, restarts: &[&dyn Fn()]) {
    let every = campaign::TASKS / campaign::CHUNK / 4;
    if chunk % every == every - 1
        && let Some(restart) = restarts.get(chunk / every)
    {
        eprintln!("restart after chunk {chunk}");
        restart();
    }
}
