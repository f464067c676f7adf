//! The kill campaign, shared by `campaign.rs` (kills only) and `restarts.rs` (kills while the
//! services restart): three workers share the queues while one of them, chosen at random, is
//! killed with SIGKILL and started again; a thousand one-artifact tasks go through. Every
//! task must reach SUCCESS and every artifact must be in the published metadata python-tuf
//! trusts.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{Producer, Services, WorkerProc, task_id};

/// Tasks per campaign.
pub const TASKS: usize = 1000;
/// Tasks sent between two kills while sending.
pub const CHUNK: usize = 50;
const LIMIT: Duration = Duration::from_secs(300);

/// What a campaign did.
#[derive(Debug)]
pub struct Figures {
    /// Workers killed.
    pub kills: usize,
    /// From the first task sent to the last final result.
    pub elapsed: Duration,
}

/// Runs a campaign on bootstrapped-to-be `services`: after each chunk of [`CHUNK`] tasks is
/// sent, one worker is killed and `after_chunk(chunk)` runs (a restart of a service, say),
/// then workers are killed every 0.3-0.8 s until every task is final.
pub async fn run(
    services: &Services,
    name: &str,
    seed: u64,
    after_chunk: &mut dyn FnMut(usize),
) -> Figures {
    let fast = [
        ("RSTUF_BROKER_VISIBILITY_TIMEOUT", "2"),
        ("RSTUF_LOCK_TIMEOUT", "3"),
        ("RSTUF_WORKER_CONCURRENCY", "16"),
    ];
    let start_worker = |n: usize| services.worker(&format!("{name}-{n}"), &fast);
    let mut python = Producer::new(services);
    let mut workers: Vec<WorkerProc> = (0..3).map(start_worker).collect();
    let (_, r) = services
        .bootstrap(&mut python, super::bootstrap_payload())
        .await;
    assert_eq!(r["api_state"], "SUCCESS", "{r}");

    let mut rng = rstuf_test_support::Rng(seed);
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
    let mut present = Map::new();
    let mut ids = Vec::with_capacity(TASKS);
    for chunk in 0..TASKS / CHUNK {
        for i in chunk * CHUNK..(chunk + 1) * CHUNK {
            let path = format!("campaign/{i}.tar.gz");
            let info = json!({"length": i + 1, "hashes": {"sha256": format!("{i:064x}")}});
            let id = task_id();
            let payload = json!({"artifacts": [{"path": path, "info": info}]});
            python.send("metadata_repository", &id, "add_artifacts", payload);
            present.insert(path, info);
            ids.push(id);
        }
        kill_one(&mut workers, &mut rng);
        after_chunk(chunk);
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
    let figures = Figures {
        kills,
        elapsed: begin.elapsed(),
    };
    eprintln!(
        "{name}: {TASKS} tasks, {} kills, {:.1} s",
        figures.kills,
        figures.elapsed.as_secs_f64()
    );
    assert!(kills >= 20, "the campaign killed only {kills} workers");
    services.client_accepts(Value::Object(present), json!([]));
    figures
}
