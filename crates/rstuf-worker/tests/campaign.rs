//! A kill campaign: three workers share the queues while one of them, chosen at random, is
//! killed with SIGKILL every second or two and started again; a thousand one-artifact tasks
//! go through. Every task must reach SUCCESS and every artifact must be in the published
//! metadata python-tuf trusts. Once with Redis as the broker, once with RabbitMQ.

mod common;

use std::time::{Duration, Instant};

use common::{Producer, Services, Transport, WorkerProc, task_id};
use serde_json::{Map, Value, json};

const TASKS: usize = 1000;
const LIMIT: Duration = Duration::from_secs(300);

async fn campaign(name: &str, transport: Transport, db: u32) {
    let services = Services::new(name, transport, db, db).await;
    let fast = [
        ("RSTUF_BROKER_VISIBILITY_TIMEOUT", "2"),
        ("RSTUF_LOCK_TIMEOUT", "3"),
        ("RSTUF_WORKER_CONCURRENCY", "16"),
    ];
    let start_worker = |n: usize| services.worker(&format!("{name}-{n}"), &fast);
    let mut python = Producer::new(&services);
    let mut workers: Vec<WorkerProc> = (0..3).map(start_worker).collect();
    let (_, r) = services
        .bootstrap(&mut python, common::bootstrap_payload())
        .await;
    assert_eq!(r["api_state"], "SUCCESS", "{r}");

    let mut rng = rstuf_test_support::Rng(u64::from(db));
    let mut kills = 0;
    let mut started = workers.len();
    // Kills one worker at random (SIGKILL) and starts another in its place.
    let mut kill_one = |workers: &mut Vec<WorkerProc>, rng: &mut rstuf_test_support::Rng| {
        let victim = rng.below(workers.len() as u64) as usize;
        workers[victim].signal("KILL");
        let _ = workers[victim].child.wait();
        workers[victim] = start_worker(started);
        started += 1;
        kills += 1;
    };
    let begin = Instant::now();
    // Sent in chunks, a worker killed after each, then killed every 0.3-0.8 s until every
    // task is final.
    let mut present = Map::new();
    let mut ids = Vec::with_capacity(TASKS);
    for chunk in 0..TASKS / 50 {
        for i in chunk * 50..(chunk + 1) * 50 {
            let path = format!("campaign/{i}.tar.gz");
            let info = json!({"length": i + 1, "hashes": {"sha256": format!("{i:064x}")}});
            let id = task_id();
            let payload = json!({"artifacts": [{"path": path, "info": info}]});
            python.send("metadata_repository", &id, "add_artifacts", payload);
            present.insert(path, info);
            ids.push(id);
        }
        kill_one(&mut workers, &mut rng);
    }
    let mut pending: Vec<String> = ids.clone();
    while !pending.is_empty() {
        assert!(
            begin.elapsed() < LIMIT,
            "{} tasks never finished",
            pending.len()
        );
        pending.retain(|id| {
            let r = python.result(id);
            !matches!(r["state"].as_str(), Some("SUCCESS" | "FAILURE" | "REVOKED"))
        });
        if !pending.is_empty() {
            kill_one(&mut workers, &mut rng);
            let wait = 300 + rng.below(500);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
    for id in &ids {
        let r = python.result(id);
        assert_eq!(r["api_state"], "SUCCESS", "{id}: {r}");
    }
    eprintln!(
        "{name}: {TASKS} tasks, {kills} kills, {:.1} s",
        begin.elapsed().as_secs_f64()
    );
    assert!(kills >= 20, "the campaign killed only {kills} workers");
    services.client_accepts(Value::Object(present), json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_tasks_on_redis_survive_random_kills() {
    campaign("campaign_redis", Transport::Redis, 5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_tasks_on_rabbitmq_survive_random_kills() {
    campaign("campaign_amqp", Transport::Amqp, 6).await;
}
