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
use rstuf_test_support as support;
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
        Repo::bootstrapped_with(name, db, "bootstrap/payload_bins.json").await
    }

    /// A repository bootstrapped with the API payload `fixture`.
    async fn bootstrapped_with(name: &str, db: u32, fixture: &str) -> Repo {
        let services = Services::new(name, Transport::Redis, db, db).await;
        let mut python = Producer::new(&services);
        {
            let _worker = services.worker(&format!("{name}-boot"), &FAST);
            let (_, r) = services.bootstrap_fixture(&mut python, fixture).await;
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
        let before = files(&self.services.storage);
        let id = task_id();
        let aborted = crash_then_rescue(
            &self.services,
            &mut self.python,
            &[failpoint],
            (&id, change.action, change.payload),
        )
        .await;
        self.reached.extend(aborted);
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

    /// The scenario's tasks went through each of these failpoints.
    fn reached_all(&self, needed: &[&str]) {
        reached_all(&self.name, &self.reached, needed);
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
        verified(&self.services, failpoint).await;
    }
}

/// `rstuf-worker verify` accepts the repository, and every role version the database names
/// is published.
async fn verified(services: &Services, label: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_rstuf-worker"))
        .arg("verify")
        .arg(&services.storage)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{label}: verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = files(&services.storage);
    let db = sqlx::PgPool::connect(&services.db).await.unwrap();
    let roles: Vec<(String, i32)> =
        sqlx::query_as("SELECT rolename, version FROM rstuf_target_roles WHERE active")
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(!roles.is_empty(), "{label}: no role rows");
    // Roles waiting for offline signatures since they were added have a row and no file yet;
    // every role the snapshot lists has the file of the version its row names.
    let parse = |name: &str| -> Value { serde_json::from_slice(&stored[name]).unwrap() };
    let snapshot = parse("timestamp.json")["signed"]["meta"]["snapshot.json"]["version"].clone();
    let listed = parse(&format!("{snapshot}.snapshot.json"))["signed"]["meta"].clone();
    for (role, version) in roles {
        if listed.get(format!("{role}.json")).is_none() {
            continue;
        }
        let name = format!("{version}.{role}.json");
        assert!(stored.contains_key(&name), "{label}: {name} is missing");
    }
    db.close().await;
}

/// The scenario `name` went through each of the `needed` failpoints (the suite reaches what
/// it means to test); not checked when `RSTUF_CRASH_ONLY` runs a part of it.
fn reached_all(name: &str, reached: &[String], needed: &[&str]) {
    eprintln!("{name}: {} failpoints reached: {reached:?}", reached.len());
    if std::env::var_os("RSTUF_CRASH_ONLY").is_some() {
        return;
    }
    for needed in needed {
        assert!(reached.iter().any(|r| r == needed), "{needed}: {reached:?}");
    }
}

/// Sends `task` (id, action, payload), with a worker armed to abort at each of `failpoints`
/// in turn (the next one started when the previous aborted or the task ended), then a fresh
/// worker: the message comes back (restored from unacked or from the dead worker's
/// processing list) and the task must end in SUCCESS. Returns the failpoints reached.
async fn crash_then_rescue(
    services: &Services,
    python: &mut Producer,
    failpoints: &[&str],
    (id, action, payload): (&str, &str, Value),
) -> Vec<String> {
    python.send("metadata_repository", id, action, payload);
    let mut reached = Vec::new();
    let mut logs = String::new();
    for (n, failpoint) in failpoints.iter().enumerate() {
        eprintln!("{id}: crash at {failpoint}");
        let armed = [FAST[0], FAST[1], ("RSTUF_TEST_FAILPOINT", failpoint)];
        let mut doomed = services.worker(&format!("doomed-{n}-{id}"), &armed);
        // Either it aborts at the failpoint, or the task never reaches that write.
        let start = Instant::now();
        let mut aborted = false;
        let mut finished: Option<Instant> = None;
        loop {
            if !doomed.alive() {
                aborted = true;
                break;
            }
            // Once the task's SUCCESS is stored, the acknowledgement follows: give the worker
            // a moment to reach it (a failpoint there aborts it) before stopping it.
            if finished.is_some_and(|at| at.elapsed() > Duration::from_millis(500)) {
                break;
            }
            if finished.is_none()
                && python.result(id)["state"] == "SUCCESS"
                && doomed.log_text().contains(&format!("task {id}"))
            {
                finished = Some(Instant::now());
            }
            assert!(start.elapsed() < LIMIT, "{}", doomed.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = doomed.log_text();
        drop(doomed);
        if aborted {
            let name = failpoint.split('@').next().unwrap();
            assert!(log.contains(&format!("failpoint {name} reached")), "{log}");
            reached.push(failpoint.to_string());
        }
        logs.push_str(&log);
    }
    let rescue = services.worker(&format!("rescue-{id}"), &FAST);
    let r = python.result_within(id, LIMIT);
    assert_eq!(
        r["api_state"],
        "SUCCESS",
        "{failpoints:?}: {r}\n{logs}\n{}",
        rescue.log_text()
    );
    reached
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

/// The bootstrap's failpoints: every write it makes, the settings around root among them
/// (`settings.set@n`: 17 settings before the first file, 5 after root, `BOOTSTRAP` the 21st).
fn bootstrap_failpoints(settings: &[u32]) -> Vec<String> {
    let only = std::env::var("RSTUF_CRASH_ONLY").unwrap_or_default();
    let writes = [
        "store.discard",
        "index.clear",
        "index.create_roles",
        "store.put_versioned_many",
        "store.put_versioned",
        "store.put_timestamp",
        "results.record",
        "broker.ack",
    ];
    let mut points: Vec<String> = writes
        .iter()
        .flat_map(|w| [format!("{w}.before"), format!("{w}.after")])
        .collect();
    for n in [2, 3] {
        // The second and third versioned file: snapshot, then root.
        points.push(format!("store.put_versioned.before@{n}"));
        points.push(format!("store.put_versioned.after@{n}"));
    }
    points.push("results.record.after@2".into());
    for n in settings {
        points.push(format!("settings.set.before@{n}"));
        points.push(format!("settings.set.after@{n}"));
    }
    points.retain(|p| p.contains(&only));
    points
}

/// A fresh repository for one bootstrap case.
async fn fresh(name: &str, db: u32) -> (Services, Producer) {
    let services = Services::new(name, Transport::Redis, db, db).await;
    let python = Producer::new(&services);
    (services, python)
}

/// After a bootstrap crashed and was rescued: `BOOTSTRAP` names the task, no root signing
/// event is left, python-tuf trusts the repository from `1.root.json`, `verify` accepts it
/// and every role row has its file.
async fn bootstrapped_after(services: &Services, id: &str, label: &str) {
    assert_eq!(services.setting("BOOTSTRAP").await.as_deref(), Some(id));
    let signing = services.setting("ROOT_SIGNING").await;
    assert!(
        signing.as_deref().is_none_or(|s| s.starts_with("@none")),
        "{label}: {signing:?}"
    );
    services.client_accepts(json!({}), json!([]));
    verified(services, label).await;
}

/// Defect 2: a bootstrap killed at any of its writes (once, or again while it resumes)
/// completes when its message comes back; no client ever sees a half repository.
#[tokio::test(flavor = "multi_thread")]
async fn a_bootstrap_survives_a_crash_at_every_durable_write() {
    let mut cases: Vec<Vec<String>> = bootstrap_failpoints(&[1, 17, 18, 19, 20, 21, 22])
        .into_iter()
        .map(|p| vec![p])
        .collect();
    // Crashed again while clearing what the first crash left, or while resuming after root.
    for twice in [
        ["store.put_versioned_many.after", "store.discard.after@2"],
        ["store.put_versioned_many.after", "index.clear.before"],
        ["store.put_versioned.after@3", "settings.set.after@20"],
    ] {
        cases.push(twice.map(String::from).into());
    }
    let mut reached = Vec::new();
    for points in cases {
        let (services, mut python) = fresh("crash_bootstrap", 11).await;
        let id = task_id();
        services
            .set_setting("BOOTSTRAP", &format!("pre-{id}"))
            .await;
        let payload = common::bootstrap_payload();
        let points: Vec<&str> = points.iter().map(String::as_str).collect();
        let label = points.join(" then ");
        reached.extend(
            crash_then_rescue(&services, &mut python, &points, (&id, "bootstrap", payload)).await,
        );
        bootstrapped_after(&services, &id, &label).await;
    }
    reached_all(
        "bootstrap",
        &reached,
        &[
            "store.put_versioned_many.after",
            "store.put_versioned.after@3",
            "store.discard.after@2",
            "index.clear.before",
            "settings.set.after@21",
            "settings.set.after@22",
            "broker.ack.before",
        ],
    );
}

/// Defect 2 for a distributed-signing bootstrap: the `sign_metadata` whose root signature
/// meets the threshold publishes everything; killed at any of its writes, it completes when
/// its message comes back.
#[tokio::test(flavor = "multi_thread")]
async fn a_ceremony_survives_a_crash_at_every_durable_write_of_its_last_signature() {
    const JH: &str = "c6d8bf2e4f48b41ac2ce8eca21415ca8ef68c133b47fc33df03d4070a7e1e9cc";
    let mut reached = Vec::new();
    for point in bootstrap_failpoints(&[1, 2, 4, 5]) {
        let (services, mut python) = fresh("crash_ceremony", 12).await;
        let boot = {
            let _worker = services.worker("crash_ceremony-boot", &FAST);
            let (boot, r) = services
                .bootstrap_fixture(&mut python, "bootstrap/ceremony-payload.json")
                .await;
            assert_eq!(r["api_state"], "SUCCESS", "{r}");
            boot
        };
        let pending = services.pending("root").await;
        let payload = json!({"role": "root", "signature": signature(&pending, JH)});
        let id = task_id();
        reached.extend(
            crash_then_rescue(
                &services,
                &mut python,
                &[&point],
                (&id, "sign_metadata", payload),
            )
            .await,
        );
        let r = python.result(&id);
        assert_eq!(
            r["api_result"]["details"],
            json!({"bootstrap": "Bootstrap Finished"}),
            "{point}: {r}"
        );
        bootstrapped_after(&services, &boot, &point).await;
    }
    reached_all(
        "ceremony",
        &reached,
        &[
            "store.put_versioned_many.after",
            "store.put_versioned.after@3",
            "settings.set.after@4",
            "settings.set.after@5",
        ],
    );
}

/// The failpoints on the path of a task that publishes without artifact rows (rotation,
/// delegation changes, signing events), before and after each write.
fn publishing_failpoints() -> Vec<String> {
    let only = std::env::var("RSTUF_CRASH_ONLY").unwrap_or_default();
    [
        "store.put_versioned_many",
        "store.put_versioned",
        "store.put_timestamp",
        "index.create_roles",
        "index.commit_publication",
        "settings.set",
        "results.record",
        "broker.ack",
    ]
    .iter()
    .flat_map(|w| [format!("{w}.before"), format!("{w}.after")])
    .filter(|p| p.contains(&only))
    .collect()
}

/// A signature by `keyid` (a fixture key) over `md["signed"]`, as the CLI sends it.
fn signature(md: &Value, keyid: &str) -> Value {
    let canonical = rstuf_metadata::cjson::encode_canonical(&md["signed"]).unwrap();
    let key = support::root_signing_key(keyid).unwrap();
    let sig: String = key
        .sign(&canonical)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({"keyid": keyid, "sig": sig})
}

/// A stored `@json` setting, parsed.
async fn json_setting(services: &Services, key: &str) -> Value {
    let raw = services.setting(key).await.unwrap();
    serde_json::from_str(raw.strip_prefix("@json ").unwrap()).unwrap()
}

/// Root rotations: for each failpoint, the next root version (same keys, a later expiry)
/// signed by every root key, killed there, then delivered again.
#[tokio::test(flavor = "multi_thread")]
async fn a_root_rotation_survives_a_crash_at_every_durable_write() {
    let mut repo = Repo::bootstrapped("crash_rotation", 3).await;
    for failpoint in publishing_failpoints() {
        let trusted = json_setting(&repo.services, "TRUSTED_ROOT").await;
        let mut next = json!({"signed": trusted["signed"].clone(), "signatures": []});
        let version = trusted["signed"]["version"].as_u64().unwrap() + 1;
        next["signed"]["version"] = json!(version);
        let keyids = next["signed"]["roles"]["root"]["keyids"].clone();
        let signatures: Vec<Value> = keyids
            .as_array()
            .unwrap()
            .iter()
            .map(|k| signature(&next, k.as_str().unwrap()))
            .collect();
        next["signatures"] = json!(signatures);
        let change =
            Change::nothing_visible("metadata_update", json!({"metadata": {"root": next}}));
        repo.crash_at(&failpoint, change).await;
        let root = format!("{version}.root.json");
        assert!(
            repo.services.storage.join(&root).exists(),
            "{failpoint}: {root}"
        );
        let trusted = json_setting(&repo.services, "TRUSTED_ROOT").await;
        assert_eq!(trusted["signed"]["version"], json!(version), "{failpoint}");
    }
    repo.reached_all(&["store.put_versioned.after", "settings.set.after"]);
}

/// Delegation changes: for each failpoint, an online role added, then updated, then deleted,
/// each killed there and delivered again.
#[tokio::test(flavor = "multi_thread")]
async fn delegation_changes_survive_a_crash_at_every_durable_write() {
    let mut repo = Repo::bootstrapped_with(
        "crash_delegation",
        5,
        "bootstrap/payload_custom_targets.json",
    )
    .await;
    let role = |name: &str, paths: Value| {
        json!({"keys": {}, "roles": [{"name": name, "terminating": true, "keyids": [],
            "threshold": 1, "x-rstuf-expire-policy": 30, "paths": paths}]})
    };
    for (case, failpoint) in publishing_failpoints().iter().enumerate() {
        let name = format!("r{case}");
        for (action, delegations) in [
            ("add", role(&name, json!([format!("{name}/*")]))),
            (
                "update",
                role(&name, json!([format!("{name}/*"), "shared/*"])),
            ),
            ("delete", json!({"roles": [{"name": name}]})),
        ] {
            let payload = json!({"action": action, "delegations": delegations});
            let change = Change::nothing_visible("metadata_delegation", payload);
            repo.crash_at(failpoint, change).await;
        }
        let trusted = json_setting(&repo.services, "TRUSTED_TARGETS").await;
        let roles = trusted["signed"]["delegations"]["roles"]
            .as_array()
            .unwrap();
        assert!(!roles.iter().any(|r| r["name"] == name), "{failpoint}");
    }
    repo.reached_all(&["index.create_roles.after", "store.put_timestamp.after"]);
}

/// Signing events: for each failpoint, an offline role (JC's key, threshold 1) added, then
/// the signature that publishes it, killed there and delivered again.
#[tokio::test(flavor = "multi_thread")]
async fn a_signing_event_survives_a_crash_at_every_durable_write() {
    const JC: &str = "2f685fa7546f1856b123223ab086b3def14c89d24eef18f49c32508c2f60e241";
    let mut repo =
        Repo::bootstrapped_with("crash_signing", 6, "bootstrap/payload_custom_targets.json").await;
    let bootstrap = support::api_payload("bootstrap/payload_custom_targets.json");
    let jc_key = bootstrap["settings"]["roles"]["delegations"]["keys"][JC].clone();
    for (case, failpoint) in publishing_failpoints().iter().enumerate() {
        let name = format!("o{case}");
        {
            let _worker = repo
                .services
                .worker(&format!("signing-setup-{case}"), &FAST);
            let r = repo.python.run(
                "metadata_delegation",
                json!({"action": "add", "delegations": {"keys": {JC: jc_key},
                    "roles": [{"name": name, "terminating": true, "keyids": [JC],
                    "threshold": 1, "x-rstuf-expire-policy": 30,
                    "paths": [format!("{name}/*")]}]}}),
            );
            assert_eq!(r["details"]["delegated_roles"], json!([name]), "{r}");
        }
        let pending = repo.services.pending(&name).await;
        let payload = json!({"role": name, "signature": signature(&pending, JC)});
        repo.crash_at(failpoint, Change::nothing_visible("sign_metadata", payload))
            .await;
        let file = format!("1.{name}.json");
        assert!(
            repo.services.storage.join(&file).exists(),
            "{failpoint}: {file}"
        );
        let left = repo
            .services
            .setting(&format!("{}_SIGNING", name.to_uppercase()))
            .await;
        assert!(
            left.as_deref().is_none_or(|s| s.starts_with("@none")),
            "{failpoint}: {left:?}"
        );
    }
    repo.reached_all(&["store.put_timestamp.after", "settings.set.after"]);
}
