//! The fault-injection suite: a worker aborted (not unwound) just before or just after each
//! durable write of a task (files, SQL transactions, settings, result records,
//! acknowledgements), then a fresh worker: the task's message comes back and ends in
//! SUCCESS, no published file changed bytes, python-tuf refreshes from the state it held
//! and from `1.root.json` and finds every artifact of every SUCCESS task, `rstuf-worker
//! verify` accepts, and every role version the database names has its file.
//!
//! Each scenario is one test on its own repository; its cases run one after another on it,
//! so the repository carries every earlier crash.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Client, Producer, Services, Transport, task_id};
use rstuf_adapters::faults::FAILPOINTS;
use serde_json::{Map, Value, json};

const LIMIT: Duration = Duration::from_secs(60);
/// Short timeouts so a dead worker's message comes back within seconds.
const FAST: [(&str, &str); 2] = [
    ("RSTUF_BROKER_VISIBILITY_TIMEOUT", "2"),
    ("RSTUF_LOCK_TIMEOUT", "3"),
];

fn files(storage: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(storage)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// What a scenario's case asks of the repository: the task to send and what it changes.
struct Change {
    action: &'static str,
    payload: Value,
    added: Map<String, Value>,
    removed: Vec<String>,
}

impl Change {
    /// A task that changes no artifact.
    fn nothing_visible(action: &'static str, payload: Value) -> Change {
        Change {
            action,
            payload,
            added: Map::new(),
            removed: Vec::new(),
        }
    }
}

/// The repository under test and what every client must find in it.
struct Repo {
    name: String,
    services: Services,
    python: Producer,
    client: Client,
    present: Map<String, Value>,
    absent: Vec<String>,
    /// Which failpoints the scenario's tasks reached.
    reached: Vec<String>,
}

impl Repo {
    async fn bootstrapped(name: &str, db: u32) -> Repo {
        let services = Services::new(name, Transport::Redis, db, db).await;
        let mut python = Producer::new(&services);
        {
            let _worker = services.worker(&format!("{name}-boot"), &FAST);
            let (_, r) = services
                .bootstrap(&mut python, common::bootstrap_payload())
                .await;
            assert_eq!(r["api_state"], "SUCCESS", "{r}");
        }
        let mut client = Client::new(&services);
        client.refresh(true, json!({}), json!([]));
        Repo {
            name: name.to_string(),
            services,
            python,
            client,
            present: Map::new(),
            absent: Vec::new(),
            reached: Vec::new(),
        }
    }

    /// Runs `change` with a worker armed to abort at `failpoint`, then recovers with a fresh
    /// worker and checks the repository.
    async fn crash_at(&mut self, failpoint: &str, change: Change) {
        eprintln!("crash at {failpoint}");
        let before = files(&self.services.storage);
        let id = task_id();
        let armed = [FAST[0], FAST[1], ("RSTUF_TEST_FAILPOINT", failpoint)];
        let mut doomed = self.services.worker(&format!("doomed-{id}"), &armed);
        self.python
            .send("metadata_repository", &id, change.action, change.payload);
        // Either it aborts at the failpoint, or the task never reaches that write.
        let start = Instant::now();
        let mut aborted = false;
        loop {
            if !doomed.alive() {
                aborted = true;
                break;
            }
            let r = self.python.result(&id);
            if r["state"] == "SUCCESS" && doomed.log_text().contains(&format!("task {id}")) {
                break;
            }
            assert!(start.elapsed() < LIMIT, "{}", doomed.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let doomed_log = doomed.log_text();
        drop(doomed);
        if aborted {
            assert!(
                doomed_log.contains(&format!("failpoint {failpoint} reached")),
                "{doomed_log}"
            );
            self.reached.push(failpoint.to_string());
        }
        // A fresh worker: the message comes back (restored from unacked or from the dead
        // worker's processing list) and the task ends in SUCCESS.
        let rescue = self.services.worker(&format!("rescue-{id}"), &FAST);
        let r = self.python.result_within(&id, LIMIT);
        assert_eq!(
            r["api_state"],
            "SUCCESS",
            "{failpoint}: {r}\n{doomed_log}\n{}",
            rescue.log_text()
        );
        drop(rescue);
        for (path, info) in change.added {
            self.absent.retain(|p| *p != path);
            self.present.insert(path, info);
        }
        for path in change.removed {
            self.present.remove(&path);
            self.absent.push(path);
        }
        self.check(failpoint, &before).await;
    }

    /// The scenario's tasks went through each of these failpoints (the suite reaches what
    /// it means to test).
    fn reached_all(&self, needed: &[&str]) {
        eprintln!(
            "{}: {} failpoints reached: {:?}",
            self.name,
            self.reached.len(),
            self.reached
        );
        if std::env::var_os("RSTUF_CRASH_ONLY").is_some() {
            return;
        }
        for needed in needed {
            assert!(
                self.reached.iter().any(|r| r == needed),
                "{:?}",
                self.reached
            );
        }
    }

    async fn check(&mut self, failpoint: &str, before: &BTreeMap<String, Vec<u8>>) {
        let after = files(&self.services.storage);
        for (name, bytes) in before {
            if name == "timestamp.json" {
                continue;
            }
            assert_eq!(
                after.get(name),
                Some(bytes),
                "{failpoint}: {name} was rewritten or removed"
            );
        }
        let present = Value::Object(self.present.clone());
        let absent = json!(self.absent);
        self.client.refresh(false, present.clone(), absent.clone());
        self.services.client_accepts(present, absent);
        let out = Command::new(env!("CARGO_BIN_EXE_rstuf-worker"))
            .arg("verify")
            .arg(&self.services.storage)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{failpoint}: verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Every role version the database names is published.
        let db = sqlx::PgPool::connect(&self.services.db).await.unwrap();
        let roles: Vec<(String, i32)> =
            sqlx::query_as("SELECT rolename, version FROM rstuf_target_roles WHERE active")
                .fetch_all(&db)
                .await
                .unwrap();
        for (role, version) in roles {
            let name = format!("{version}.{role}.json");
            assert!(after.contains_key(&name), "{failpoint}: {name} is missing");
        }
        db.close().await;
    }
}

/// Every failpoint, before and after its write (only those containing
/// `RSTUF_CRASH_ONLY` when it is set, to reproduce one case).
fn failpoints() -> Vec<String> {
    let only = std::env::var("RSTUF_CRASH_ONLY").unwrap_or_default();
    FAILPOINTS
        .iter()
        .flat_map(|w| [format!("{w}.before"), format!("{w}.after")])
        .filter(|point| point.contains(&only))
        .collect()
}

fn artifact(path: &str, n: usize) -> (String, Value) {
    let info = json!({"length": n + 1, "hashes": {"sha256": format!("{n:064x}")}});
    (path.to_string(), info)
}

fn add_change(prefix: &str, case: usize) -> Change {
    let added: Map<String, Value> = (0..3)
        .map(|k| artifact(&format!("{prefix}/{case}-{k}.tar.gz"), case * 3 + k))
        .collect();
    let artifacts: Vec<Value> = added
        .iter()
        .map(|(path, info)| json!({"path": path, "info": info}))
        .collect();
    Change {
        action: "add_artifacts",
        payload: json!({"artifacts": artifacts}),
        added,
        removed: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_add_survives_a_crash_at_every_durable_write() {
    let mut repo = Repo::bootstrapped("crash_add", 10).await;
    for (case, failpoint) in failpoints().iter().enumerate() {
        repo.crash_at(failpoint, add_change("add", case)).await;
    }
    repo.reached_all(&[
        "store.put_timestamp.before",
        "index.commit_publication.after",
    ]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remove_survives_a_crash_at_every_durable_write() {
    let mut repo = Repo::bootstrapped("crash_remove", 15).await;
    let points = failpoints();
    // The artifacts to remove, one per case, published first.
    let setup = add_change("rm", 0);
    let mut all: Vec<(String, Value)> = Vec::new();
    for case in 0..points.len() {
        all.push(artifact(&format!("rm/{case}.tar.gz"), 1000 + case));
    }
    {
        let _worker = repo.services.worker("crash_remove-setup", &FAST);
        let artifacts: Vec<Value> = all
            .iter()
            .map(|(path, info)| json!({"path": path, "info": info}))
            .collect();
        repo.python
            .run("add_artifacts", json!({"artifacts": artifacts}));
    }
    drop(setup);
    repo.present.extend(all.iter().cloned());
    for (case, failpoint) in points.iter().enumerate() {
        let path = all[case].0.clone();
        let change = Change {
            action: "remove_artifacts",
            payload: json!({"artifacts": [path]}),
            added: Map::new(),
            removed: vec![path],
        };
        repo.crash_at(failpoint, change).await;
    }
    repo.reached_all(&["store.put_timestamp.after"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_update_of_the_online_roles_survives_a_crash_at_every_durable_write() {
    let mut repo = Repo::bootstrapped("crash_force", 8).await;
    let roles = json!({"roles": ["targets", "snapshot", "timestamp", "bins"]});
    for failpoint in failpoints() {
        let change = Change::nothing_visible("force_online_metadata_update", roles.clone());
        repo.crash_at(&failpoint, change).await;
    }
    repo.reached_all(&["store.put_versioned_many.after"]);
}
