//! `rstuf-worker worker` driven through both brokers by the PyPI Celery producer configured
//! like the RSTUF API: the states and results Python reads are the reference worker's
//! (fixtures/reference-worker/transcripts), malformed messages are answered without blocking
//! the queue, and the repository the tasks build is one python-tuf trusts.

mod common;

use std::time::Duration;

use common::{Client, Producer, Services, Transport, bootstrap_payload, task_id};
use rstuf_test_support as support;
use serde_json::{Value, json};

/// Key ids of the fixture root keys the tests sign with, as the RSTUF CLI would.
const JH: &str = "c6d8bf2e4f48b41ac2ce8eca21415ca8ef68c133b47fc33df03d4070a7e1e9cc";
const JC: &str = "2f685fa7546f1856b123223ab086b3def14c89d24eef18f49c32508c2f60e241";

/// The CLI's signers: a key id and the fixture key file it signs with.
const BY_JH: (&str, &str) = (JH, "JH.ed25519");
const BY_JC: (&str, &str) = (JC, "JC.rsa");
/// The offline role of the API's delegation payload.
const POLICY: &str = "tenant1-group1-policy";
/// Artifacts of the task the 1 s time limit stops: several seconds of work on this machine
/// even when quiet.
const SLOW: usize = 80_000;
const LIMIT: Duration = Duration::from_secs(60);

/// The reference worker's final record of the API's task (not a subtask's), from a
/// transcript (`RAW {...}` lines).
fn reference_record(transcript: &str) -> Value {
    let text = std::fs::read_to_string(support::fixture(&format!(
        "reference-worker/transcripts/{transcript}"
    )))
    .unwrap();
    text.lines()
        .filter_map(|l| l.split_once("RAW ").map(|(_, r)| r))
        .filter(|r| r.starts_with(r#"{"status": "SUCCESS""#))
        .map(|r| serde_json::from_str::<Value>(r).unwrap())
        .rfind(|r| r.get("parent_id").is_none())
        .unwrap_or_else(|| panic!("no SUCCESS record in {transcript}"))
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Our stored record has the reference's shape: the same fields, the same
/// result fields, task, message and status, details with the same keys, datetimes in kombu's
/// form. (Children differ: we publish inline, with no subtask to poll.)
fn assert_like_reference(ours: &Value, transcript: &str) {
    let theirs = reference_record(transcript);
    assert_eq!(keys(ours), keys(&theirs), "{ours}");
    let (o, t) = (&ours["result"], &theirs["result"]);
    assert_eq!(keys(o), keys(t), "{ours}");
    for field in ["task", "status", "message", "error"] {
        assert_eq!(o[field], t[field], "{field} of {ours}");
    }
    assert_eq!(keys(&o["details"]), keys(&t["details"]), "{ours}");
    assert_eq!(o["last_update"]["__type__"], "datetime", "{ours}");
    assert!(
        ours["date_done"].as_str().unwrap().ends_with("+00:00"),
        "{ours}"
    );
}

async fn drive_every_action(transport: Transport, name: &str, results_db: u32, settings_db: u32) {
    let services = Services::new(name, transport, results_db, settings_db).await;
    let mut worker = services.worker("w1", &[]);
    let mut python = Producer::new(&services);
    let repo = "metadata_repository";

    // Bootstrap, as the API does it: BOOTSTRAP=pre-<id>, then the task.
    let (boot, r) = services.bootstrap(&mut python, bootstrap_payload()).await;
    assert_eq!(r["api_state"], "SUCCESS", "{r}");
    assert_eq!(
        r["api_result"]["details"]["bootstrap"],
        json!(format!("Bootstrap finished {boot}"))
    );
    let record = services.raw_record(&boot).await.unwrap();
    assert_like_reference(&record, "A_bootstrap.txt");

    // A second bootstrap is refused: SUCCESS with status false, which the API shows ERRORED.
    let again = task_id();
    python.send(repo, &again, "bootstrap", bootstrap_payload());
    let r = python.wait_final(&again, LIMIT);
    assert_eq!(r["api_state"], "ERRORED", "{r}");
    assert_eq!(r["api_result"]["message"], "Bootstrap Failed");
    assert_eq!(
        r["api_result"]["error"],
        json!(format!("Bootstrap state is {boot}"))
    );

    // Add the fixture artifacts; they are published before the task ends.
    let add = task_id();
    let payload = support::api_payload("artifacts/add_payload.json");
    let states = services.watch(&add).await;
    python.send(repo, &add, "add_artifacts", payload.clone());
    let r = python.wait_final(&add, LIMIT);
    // As the reference: STARTED, RUNNING while publishing, SUCCESS (PRE_RUN is a plain SET).
    assert_eq!(states.await.unwrap(), ["STARTED", "RUNNING", "SUCCESS"]);
    assert_eq!(r["api_state"], "SUCCESS", "{r}");
    assert_eq!(
        r["api_result"]["details"]["added_artifacts"],
        json!(["file1.tar.gz", "file2.tar.gz", "file3.tar.gz"])
    );
    assert_like_reference(&services.raw_record(&add).await.unwrap(), "A_add.txt");

    // Remove one present and one absent artifact.
    let remove = task_id();
    python.send(
        repo,
        &remove,
        "remove_artifacts",
        json!({"artifacts": ["file3.tar.gz", "nonexistent.tar.gz"], "publish_artifacts": true}),
    );
    let r = python.wait_final(&remove, LIMIT);
    assert_eq!(r["api_state"], "SUCCESS", "{r}");
    assert_eq!(
        r["api_result"]["details"],
        json!({"deleted_artifacts": ["file3.tar.gz"], "not_found_artifacts": ["nonexistent.tar.gz"]})
    );
    assert_like_reference(&services.raw_record(&remove).await.unwrap(), "A_remove.txt");

    // Publish, as the API sends it: no payload, on rstuf_internals.
    let publish = task_id();
    python.send(
        "rstuf_internals",
        &publish,
        "publish_artifacts",
        Value::Null,
    );
    let r = python.wait_final(&publish, LIMIT);
    assert_eq!(r["api_state"], "SUCCESS", "{r}");
    assert_eq!(r["api_result"]["message"], "Publish Artifacts Processed");
    let record = services.raw_record(&publish).await.unwrap();
    assert_eq!(keys(&record), keys(&reference_record("A_publish.txt")));

    // Forced update of the online roles.
    let force = task_id();
    python.send(
        repo,
        &force,
        "force_online_metadata_update",
        json!({"roles": ["snapshot", "timestamp"]}),
    );
    let r = python.wait_final(&force, LIMIT);
    assert_eq!(r["state"], "SUCCESS", "{r}");
    assert_eq!(r["result"]["status"], true, "{r}");

    // Expiration policies: the fixture payload, then one without expirations.
    let settings = task_id();
    let text =
        std::fs::read_to_string(support::fixture("api-payloads/config/update_settings.json"))
            .unwrap();
    python.send_text(&settings, "update_settings", &text);
    let r = python.wait_final(&settings, LIMIT);
    assert_eq!(r["api_state"], "SUCCESS", "{r}");
    // In the payload's order, as the reference answers.
    assert_eq!(
        r["api_result"]["details"]["updated_roles"],
        json!(["targets", "snapshot", "timestamp", "bins"])
    );
    let refused = task_id();
    python.send(repo, &refused, "update_settings", json!({"settings": {}}));
    let r = python.wait_final(&refused, LIMIT);
    assert_eq!(r["api_state"], "ERRORED", "{r}");
    let record = services.raw_record(&refused).await.unwrap();
    assert_like_reference(&record, "A_settings.txt");

    // An action the reference does not have: FAILURE the API can rebuild.
    let unknown = task_id();
    python.send(repo, &unknown, "make_coffee", json!({}));
    let r = python.wait_final(&unknown, LIMIT);
    assert_eq!(r["api_state"], "FAILURE", "{r}");
    assert!(message_of(&r).contains("make_coffee"), "{r}");
    // kwargs without an action, and a task name nobody registered.
    let bare = task_id();
    python.send_raw(
        repo,
        &bare,
        "app.repository_service_tuf_worker",
        json!({"payload": null}),
    );
    let r = python.wait_final(&bare, LIMIT);
    assert_eq!(r["api_state"], "FAILURE", "{r}");
    assert_eq!(r["exception"], "TypeError", "{r}");
    let stranger = task_id();
    python.send_raw(repo, &stranger, "app.something_else", json!({}));
    let r = python.wait_final(&stranger, LIMIT);
    assert_eq!(r["state"], "FAILURE", "{r}");
    assert_eq!(r["exception"], "NotRegistered", "{r}");

    // Signing events with nothing pending, and custom delegations on a hash-bin repository:
    // the reference's refusals.
    for (action, payload, error) in [
        (
            "sign_metadata",
            json!({"role": "root", "signature": {"keyid": "ab", "sig": "cd"}}),
            "No signatures pending for root",
        ),
        (
            "delete_sign_metadata",
            json!({"role": "root"}),
            "The root role is not in a signing process.",
        ),
        (
            "metadata_delegation",
            json!({"action": "add", "delegations": {"keys": {}, "roles": []}}),
            "Delegations already using hash-bins, cannot add custom roles",
        ),
    ] {
        let id = task_id();
        python.send(repo, &id, action, payload);
        let r = python.wait_final(&id, LIMIT);
        assert_eq!(r["api_state"], "ERRORED", "{action}: {r}");
        assert_eq!(r["api_result"]["error"], error, "{action}: {r}");
        assert_eq!(r["api_result"]["task"], action);
    }

    // Root rotation with the API's example (a new online key), as the reference answered it.
    let rotation = task_id();
    python.send(
        repo,
        &rotation,
        "metadata_update",
        support::fresh_bootstrap_payload(
            "metadata/update-root-payload.json",
            chrono::Utc::now(),
            365,
        ),
    );
    let r = python.wait_final(&rotation, LIMIT);
    assert_eq!(r["api_state"], "SUCCESS", "{r}");
    assert_eq!(
        r["api_result"]["message"], "Metadata Update Processed",
        "{r}"
    );
    assert_eq!(r["api_result"]["details"], json!({"role": "root"}));

    malformed_messages_do_not_block(&services, &mut python, transport).await;

    // Celery beat's message: fixed id, rstuf_internals, kwargs {"expired": true}.
    python.send_raw(
        "rstuf_internals",
        "bump_online_roles",
        "app.bump_online_roles",
        json!({"expired": true}),
    );
    let r = python.wait_final("bump_online_roles", LIMIT);
    assert_eq!(r["state"], "SUCCESS", "{r}");

    assert!(worker.alive(), "{}", worker.log_text());
    services.client_accepts(
        json!({
            "file1.tar.gz": payload["artifacts"][0]["info"],
            "file2.tar.gz": payload["artifacts"][1]["info"],
        }),
        json!(["file3.tar.gz", "nonexistent.tar.gz"]),
    );

    // SIGTERM: the worker stops cleanly.
    worker.signal("TERM");
    let start = std::time::Instant::now();
    while worker.alive() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        worker.log_text().contains("stopped"),
        "{}",
        worker.log_text()
    );
}

/// Messages nobody can run: answered with FAILURE when they name a task id, logged always,
/// removed from the queue; a good task sent after them completes.
async fn malformed_messages_do_not_block(
    services: &Services,
    python: &mut Producer,
    transport: Transport,
) {
    let queue = "metadata_repository";
    let answered = task_id();
    match transport {
        Transport::Redis => {
            let headers =
                json!({"lang": "py", "task": "app.repository_service_tuf_worker", "id": answered});
            let properties = json!({"body_encoding": "base64", "delivery_tag": task_id(),
                "delivery_info": {"exchange": "", "routing_key": queue}});
            for bytes in [
                b"not json at all".to_vec(),
                br#"{"body": "x"}"#.to_vec(),
                serde_json::to_vec(&json!({"body": "%%% not base64", "headers": headers,
                    "properties": properties, "content-type": "application/json"}))
                .unwrap(),
                serde_json::to_vec(&json!({"body": "W10=", "headers": {"lang": "py"},
                    "properties": properties}))
                .unwrap(),
            ] {
                services.push_raw(queue, &bytes).await;
            }
        }
        Transport::Amqp => {
            let headers =
                json!({"lang": "py", "task": "app.repository_service_tuf_worker", "id": answered});
            services.publish_raw(queue, &headers, b"{not json").await;
            services
                .publish_raw(queue, &json!({"lang": "py"}), b"[[], {}, {}]")
                .await;
        }
    }
    let r = python.wait_final(&answered, LIMIT);
    assert_eq!(r["api_state"], "FAILURE", "{r}");
    assert!(message_of(&r).contains("Malformed task message"), "{r}");
    let after = task_id();
    python.send("rstuf_internals", &after, "publish_artifacts", Value::Null);
    assert_eq!(python.wait_final(&after, LIMIT)["api_state"], "SUCCESS");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_producer_drives_every_action_on_redis() {
    drive_every_action(Transport::Redis, "actions_redis", 8, 8).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_producer_drives_every_action_on_rabbitmq() {
    drive_every_action(Transport::Amqp, "actions_amqp", 3, 3).await;
}

/// Two workers on one queue; the one running a task is killed with SIGKILL. The other restores
/// the message once its visibility timeout passes, runs it to SUCCESS once, and python-tuf
/// trusts the result.
#[tokio::test(flavor = "multi_thread")]
async fn a_task_whose_worker_is_killed_is_delivered_again_and_completed_once() {
    // Broker, results and settings share Redis database 2 (their keys never collide).
    let services = Services::new("sigkill", Transport::Redis, 2, 2).await;
    let fast = [
        ("RSTUF_BROKER_VISIBILITY_TIMEOUT", "2"),
        ("RSTUF_LOCK_TIMEOUT", "3"),
        ("RSTUF_WORKER_CONCURRENCY", "1"),
    ];
    let mut w1 = services.worker("w1", &fast);
    let mut python = Producer::new(&services);
    let (_, r) = services.bootstrap(&mut python, bootstrap_payload()).await;
    assert_eq!(r["api_state"], "SUCCESS", "{r}");
    let mut w2 = services.worker("w2", &fast);

    // A task big enough to be caught running: 4,000 artifacts added and published.
    let artifacts: Vec<Value> = (0..4000)
        .map(|i| {
            json!({"path": format!("crash/{i}.tar.gz"),
            "info": {"length": i + 1, "hashes": {"sha256": format!("{i:064x}")}}})
        })
        .collect();
    let add = task_id();
    python.send(
        "metadata_repository",
        &add,
        "add_artifacts",
        json!({"artifacts": artifacts, "publish_artifacts": true}),
    );
    // Kill whichever worker reports STARTED, as soon as it does.
    let start = std::time::Instant::now();
    let holder = loop {
        if let Some(record) = services.raw_record(&add).await
            && record["status"] == "STARTED"
        {
            break record["result"]["hostname"].as_str().unwrap().to_string();
        }
        assert!(start.elapsed() < LIMIT, "never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let (killed, survivor) = if holder == "rstuf@w1" {
        (&mut w1, &mut w2)
    } else {
        (&mut w2, &mut w1)
    };
    killed.signal("KILL");
    let _ = killed.child.wait();

    let r = python.wait_final(&add, Duration::from_secs(120));
    assert_eq!(r["api_state"], "SUCCESS", "{r}\n{}", survivor.log_text());
    assert_eq!(
        r["api_result"]["details"]["added_artifacts"]
            .as_array()
            .unwrap()
            .len(),
        4000
    );
    let log = survivor.log_text();
    assert!(log.contains("restored 1 message"), "{log}");
    // Completed once: the survivor ran it once, and nothing is left to deliver.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let runs = survivor
        .log_text()
        .lines()
        .filter(|l| l.contains(&format!("task {add} (")))
        .count();
    assert_eq!(runs, 1, "{}", survivor.log_text());
    assert_eq!(services.redis_queue().await, (0, 0));

    let present: serde_json::Map<String, Value> = (0..4000)
        .step_by(97)
        .map(|i| {
            (
                format!("crash/{i}.tar.gz"),
                json!({"length": i + 1, "hashes": {"sha256": format!("{i:064x}")}}),
            )
        })
        .collect();
    services.client_accepts(Value::Object(present), json!([]));
}

fn many_artifacts(prefix: &str, n: usize) -> Value {
    let artifacts: Vec<Value> = (0..n)
        .map(|i| {
            json!({"path": format!("{prefix}/{i}.tar.gz"),
            "info": {"length": i + 1, "hashes": {"sha256": format!("{i:064x}")}}})
        })
        .collect();
    json!({"artifacts": artifacts, "publish_artifacts": true})
}

async fn wait_started(services: &Services, id: &str) {
    let start = std::time::Instant::now();
    while services.raw_record(id).await.map(|r| r["status"].clone()) != Some(json!("STARTED")) {
        assert!(start.elapsed() < LIMIT, "never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// SIGTERM with a task running past the shutdown deadline hands it back, and another worker
/// completes it; a task past the time limit ends in FAILURE `TimeLimitExceeded` without
/// blocking the next one (its repository lock is released).
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_hands_back_and_the_time_limit_stops_a_task() {
    let services = Services::new("shutdown", Transport::Redis, 1, 1).await;
    let mut python = Producer::new(&services);
    let mut first = services.worker("t1", &[("RSTUF_WORKER_SHUTDOWN_TIMEOUT", "0")]);
    let (_, r) = services.bootstrap(&mut python, bootstrap_payload()).await;
    assert_eq!(r["api_state"], "SUCCESS", "{r}");

    let big = task_id();
    python.send(
        "metadata_repository",
        &big,
        "add_artifacts",
        many_artifacts("big", 40_000),
    );
    wait_started(&services, &big).await;
    first.signal("TERM");
    let _ = first.child.wait();
    let log = first.log_text();
    assert!(
        log.contains(&format!("task {big} handed back unfinished")),
        "{log}"
    );

    let mut second = services.worker("t2", &[]);
    let r = python.wait_final(&big, LIMIT);
    assert_eq!(r["api_state"], "SUCCESS", "{r}\n{}", second.log_text());
    second.signal("TERM");
    let _ = second.child.wait();

    let third = services.worker("t3", &[("RSTUF_TASK_TIME_LIMIT", "1")]);
    let slow = task_id();
    python.send(
        "metadata_repository",
        &slow,
        "add_artifacts",
        many_artifacts("slow", SLOW),
    );
    let r = python.wait_final(&slow, LIMIT);
    assert_eq!(r["api_state"], "FAILURE", "{r}\n{}", third.log_text());
    assert_eq!(r["exception"], "TimeLimitExceeded", "{r}");
    // Its rows were written in one transaction or not at all, depending on whether the limit
    // struck while they were written or while they were published; written rows wait for the
    // next publish, which a worker without the limit completes.
    let db = sqlx::PgPool::connect(&services.db).await.unwrap();
    let (written,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM rstuf_target_files WHERE path LIKE 'slow/%'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(
        written == 0 || written == SLOW as i64,
        "{written} rows of {SLOW}"
    );
    third.signal("TERM");
    drop(third);
    let fourth = services.worker("t4", &[]);
    let quick = task_id();
    let started = std::time::Instant::now();
    python.send(
        "metadata_repository",
        &quick,
        "add_artifacts",
        json!({"artifacts": [{"path": "quick.tar.gz", "info": {"length": 5, "hashes": {"sha256": "ab"}}}]}),
    );
    let r = python.wait_final(&quick, LIMIT);
    assert_eq!(r["api_state"], "SUCCESS", "{r}\n{}", fourth.log_text());
    // Far less than LOCK_TARGETS' TTL: the cancelled task let the lock go.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let mut present = json!({
        "big/39999.tar.gz": {"length": 40_000, "hashes": {"sha256": format!("{:064x}", 39_999)}},
        "quick.tar.gz": {"length": 5, "hashes": {"sha256": "ab"}}});
    let slow_last = json!({"length": SLOW, "hashes": {"sha256": format!("{:064x}", SLOW - 1)}});
    let absent = if written > 0 {
        present[format!("slow/{}.tar.gz", SLOW - 1)] = slow_last;
        json!([])
    } else {
        json!(["slow/0.tar.gz", format!("slow/{}.tar.gz", SLOW - 1)])
    };
    services.client_accepts(present, absent);
}

/// A distributed-signing bootstrap through the broker, signed like the RSTUF CLI signs
/// (securesystemslib from PyPI): a bad signature is refused, the second root key finishes it,
/// and python-tuf trusts the repository.
#[tokio::test(flavor = "multi_thread")]
async fn a_ceremony_bootstrap_finishes_with_a_cli_signature() {
    let (services, _worker, mut python, r) =
        Services::bootstrapped(("ceremony", 9, "c1"), "bootstrap/ceremony-payload.json").await;
    assert_eq!(
        r["api_result"]["details"],
        json!({"bootstrap": "Root v1 is pending signature"}),
        "{r}"
    );

    let pending = services.pending("root").await;
    let sign = |file: &str| {
        support::python_json(
            "cli_signer.py",
            &[],
            &json!({"metadata": pending, "keyid": JH,
                    "key_file": support::fixture(&format!("keys/{file}")), "password": "hunter2"}),
        )["signature"]
            .clone()
    };

    // JH's signature with one byte changed: refused.
    let signature = sign("JH.ed25519");
    let mut forged = signature.clone();
    let sig = forged["sig"].as_str().unwrap().to_string();
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    forged["sig"] = json!(format!("{flipped}{}", &sig[1..]));
    let sign_root = |python: &mut Producer, signature: &Value| {
        let id = task_id();
        let payload = json!({"role": "root", "signature": signature});
        python.send("metadata_repository", &id, "sign_metadata", payload);
        python.wait_final(&id, LIMIT)
    };
    let r = sign_root(&mut python, &forged);
    assert_eq!(r["api_state"], "ERRORED", "{r}");
    assert_eq!(r["api_result"]["error"], "Invalid signature");

    let r = sign_root(&mut python, &signature);
    assert_eq!(r["api_state"], "SUCCESS", "{r}");
    assert_eq!(
        r["api_result"]["details"],
        json!({"bootstrap": "Bootstrap Finished"})
    );
    services.client_accepts(json!({}), json!([]));
}

/// Custom delegations through the broker: an offline role added and signed like the CLI
/// signs, an online role added, filled, updated and deleted; after every step python-tuf,
/// refreshing from what it trusted before, finds exactly the artifacts it should.
#[tokio::test(flavor = "multi_thread")]
async fn custom_delegations_evolve_under_a_client_that_keeps_its_trust() {
    let (services, _worker, mut python, r) = Services::bootstrapped(
        ("delegations", 4, "d1"),
        "bootstrap/payload_custom_targets.json",
    )
    .await;
    assert_eq!(r["api_state"], "SUCCESS", "{r}");
    let mut client = Client::new(&services);
    client.refresh(true, json!({}), json!([]));

    // The API's offline role: pending until JH and JC have signed it.
    let offline = support::api_payload("metadata/delegation-payload.json");
    let r = python.run(
        "metadata_delegation",
        json!({"action": "add",
        "delegations": offline["delegations"]}),
    );
    assert_eq!(r["details"]["delegated_roles"], json!([POLICY]));
    client.refresh(false, json!({}), json!([]));
    let offline_keys = &offline["delegations"]["keys"];
    cli_signs(
        &services,
        &mut python,
        POLICY,
        &[BY_JH, BY_JC],
        offline_keys,
    )
    .await;
    let versions = client.refresh(false, json!({}), json!([]));
    assert!(versions["snapshot"].as_u64().unwrap() >= 3, "{versions}");
    assert!(
        services
            .storage
            .join("1.tenant1-group1-policy.json")
            .exists()
    );

    // An artifact in the offline role waits for its keys, then clients find it.
    let policy = json!({"length": 7, "hashes": {"sha256": "ef"}});
    assert_eq!(
        python.add_artifact("tenant1/group1/policy/p.json", &policy),
        json!([POLICY])
    );
    client.refresh(false, json!({}), json!(["tenant1/group1/policy/p.json"]));
    cli_signs(
        &services,
        &mut python,
        POLICY,
        &[BY_JC, BY_JH],
        offline_keys,
    )
    .await;
    client.refresh(
        false,
        json!({"tenant1/group1/policy/p.json": policy}),
        json!([]),
    );

    // The bootstrap's roles: `default` (online) takes an artifact at once; `production`
    // (JC and JH) is signed, then takes one that waits for both keys.
    let readme = json!({"length": 11, "hashes": {"sha256": "0a"}});
    assert_eq!(
        python.add_artifact("readme.txt", &readme),
        json!(["default"])
    );
    let bootstrap_keys = support::api_payload("bootstrap/payload_custom_targets.json")["settings"]
        ["roles"]["delegations"]["keys"]
        .clone();
    let app = json!({"length": 12, "hashes": {"sha256": "0b"}});
    for round in 0..2 {
        if round == 1 {
            python.add_artifact("production/app.tar.gz", &app);
        }
        cli_signs(
            &services,
            &mut python,
            "production",
            &[BY_JC, BY_JH],
            &bootstrap_keys,
        )
        .await;
    }
    client.refresh(
        false,
        json!({"readme.txt": readme, "production/app.tar.gz": app,
               "tenant1/group1/policy/p.json": policy}),
        json!([]),
    );

    // New keys for the offline role: JH alone, threshold 1; its artifact stays once JH signs.
    let mut rekeyed = offline["delegations"].clone();
    rekeyed["roles"][0]["keyids"] = json!([JH]);
    rekeyed["roles"][0]["threshold"] = json!(1);
    let r = python.run(
        "metadata_delegation",
        json!({"action": "update", "delegations": rekeyed}),
    );
    assert_eq!(r["details"]["delegated_roles"], json!([POLICY]));
    cli_signs(&services, &mut python, POLICY, &[BY_JH], offline_keys).await;
    client.refresh(
        false,
        json!({"tenant1/group1/policy/p.json": policy}),
        json!([]),
    );

    // A mixed role (the online key and JH, threshold 2): signed by the online key, completed
    // by JH, also after an artifact is added to it.
    let online_id = "0d9d3d4bad91c455bc03921daa95774576b86625ac45570d0cac025b08e65043";
    let mixed = json!({"keys": {JH: offline_keys[JH].clone()}, "roles": [{"name": "mixed",
        "terminating": true, "keyids": [online_id, JH], "threshold": 2,
        "x-rstuf-expire-policy": 20, "paths": ["mixed/*"]}]});
    python.run(
        "metadata_delegation",
        json!({"action": "add", "delegations": mixed}),
    );
    let r = cli_signs(&services, &mut python, "mixed", &[BY_JH], offline_keys).await;
    assert_eq!(
        r["details"],
        json!({"update": "Role mixed signing complete"})
    );
    let m = json!({"length": 9, "hashes": {"sha256": "99"}});
    python.add_artifact("mixed/m.bin", &m);
    cli_signs(&services, &mut python, "mixed", &[BY_JH], offline_keys).await;
    client.refresh(false, json!({"mixed/m.bin": m}), json!([]));

    // An online role with an artifact, updated to take a second path, then deleted.
    let dev = |paths: Value, policy: u64| {
        json!({"keys": {}, "roles": [{"name": "dev",
        "terminating": true, "keyids": [], "threshold": 1,
        "x-rstuf-expire-policy": policy, "paths": paths}]})
    };
    python.run(
        "metadata_delegation",
        json!({"action": "add", "delegations": dev(json!(["dev/*"]), 30)}),
    );
    let app = json!({"length": 3, "hashes": {"sha256": "ab"}});
    assert_eq!(python.add_artifact("dev/app.tar.gz", &app), json!(["dev"]));
    client.refresh(
        false,
        json!({"dev/app.tar.gz": app}),
        json!(["qa/tool.tar.gz"]),
    );
    python.run(
        "metadata_delegation",
        json!({"action": "update", "delegations": dev(json!(["dev/*", "qa/*"]), 10)}),
    );
    let tool = json!({"length": 5, "hashes": {"sha256": "cd"}});
    assert_eq!(python.add_artifact("qa/tool.tar.gz", &tool), json!(["dev"]));
    client.refresh(
        false,
        json!({"dev/app.tar.gz": app, "qa/tool.tar.gz": tool}),
        json!([]),
    );
    python.run(
        "metadata_delegation",
        json!({"action": "delete", "delegations": {"roles": [{"name": "dev"}]}}),
    );
    client.refresh(
        false,
        json!({}),
        json!(["dev/app.tar.gz", "qa/tool.tar.gz"]),
    );
    client.refresh(true, json!({}), json!(["dev/app.tar.gz", "qa/tool.tar.gz"]));
}

/// Root rotation through the broker: v2 (the API's example, a new online key) and then v3
/// raising the root threshold, which needs a second signing round with a CLI-made signature.
/// python-tuf, refreshing from the state it held before each change, follows both rotations
/// and still verifies every artifact.
#[tokio::test(flavor = "multi_thread")]
async fn root_rotations_keep_clients_trusting() {
    use rstuf_metadata::schema::{Metadata, Root};
    const JJ: &str = "50d7e110ad65f3b2dba5c3cfc8c5ca259be9774cc26be3410044ffd4be3aa5f3";
    const NEW_ONLINE: &str = "cb20fa1061dde8e6267e0bef0981766aaadae168e917030f7f26edc7a0bab9c2";
    // The last free database of this test binary: broker, results and settings share it.
    let (services, _worker, mut python) = Services::with_worker("rotation", 5, "r1").await;
    let (_, r) = services.bootstrap(&mut python, bootstrap_payload()).await;
    assert_eq!(r["api_state"], "SUCCESS", "{r}");
    let artifacts: Vec<Value> = (0..40)
        .map(|i| {
            json!({"path": format!("rot/{i}.tar.gz"),
            "info": {"length": i + 1, "hashes": {"sha256": format!("{i:064x}")}}})
        })
        .collect();
    python.run("add_artifacts", json!({"artifacts": artifacts}));
    let present: serde_json::Map<String, Value> = artifacts
        .iter()
        .map(|a| (a["path"].as_str().unwrap().to_string(), a["info"].clone()))
        .collect();
    let present = Value::Object(present);
    let mut client = Client::new(&services);
    client.refresh(true, present.clone(), json!([]));

    // v2: the online key changes; signed by both thresholds at once.
    let v2 = support::fresh_bootstrap_payload(
        "metadata/update-root-payload.json",
        chrono::Utc::now(),
        365,
    );
    let r = python.run("metadata_update", v2.clone());
    assert_eq!(r["details"], json!({"role": "root"}));
    let versions = client.refresh(false, present.clone(), json!([]));
    assert_eq!(versions["root"], json!(2), "{versions}");
    assert!(services.storage.join("2.root.json").exists());
    let timestamp: Value =
        serde_json::from_slice(&std::fs::read(services.storage.join("timestamp.json")).unwrap())
            .unwrap();
    assert_eq!(timestamp["signatures"][0]["keyid"], json!(NEW_ONLINE));

    // v3: root threshold 3 of JH, JJ, JC; JJ and JC sign first (v2's threshold is met, v3's
    // is not), then JH signs the pending root like the CLI.
    // JH left root in v2; v3 brings its key back (as v1 listed it).
    let v1 = support::api_payload("bootstrap/payload_bins.json");
    let mut signed = v2["metadata"]["root"]["signed"].clone();
    signed["version"] = json!(3);
    signed["roles"]["root"] = json!({"keyids": [JH, JJ, JC], "threshold": 3});
    signed["keys"][JH] = v1["metadata"]["root"]["signed"]["keys"][JH].clone();
    let mut v3 = Metadata::<Root>::from_value(json!({"signed": signed, "signatures": []})).unwrap();
    for keyid in [JJ, JC] {
        let key = support::root_signing_key(keyid).unwrap();
        v3.sign_with(keyid, |m| key.sign(m)).unwrap();
    }
    let r = python.run(
        "metadata_update",
        json!({"metadata": {"root": v3.to_value().unwrap()}}),
    );
    assert_eq!(
        r["details"],
        json!({"role": "root", "update": "Root v3 is pending signatures"})
    );
    client.refresh(false, present.clone(), json!([]));
    let pending = services.pending("root").await;
    let signature = support::python_json(
        "cli_signer.py",
        &[],
        &json!({"metadata": pending, "keyid": JH,
                "key_file": support::fixture("keys/JH.ed25519"), "password": "hunter2"}),
    )["signature"]
        .clone();
    let r = python.run(
        "sign_metadata",
        json!({"role": "root", "signature": signature}),
    );
    assert_eq!(r["details"], json!({"update": "Metadata update finished"}));
    let versions = client.refresh(false, present.clone(), json!([]));
    assert_eq!(versions["root"], json!(3), "{versions}");
    client.refresh(true, present, json!([]));
}

/// Each of `signers` (key id, key file) signs the pending metadata of `role` the way the CLI
/// does and sends the signature; `keys` holds their public keys (the delegator's keys).
/// Returns the API's result of the last `sign_metadata`.
async fn cli_signs(
    services: &Services,
    python: &mut Producer,
    role: &str,
    signers: &[(&str, &str)],
    keys: &Value,
) -> Value {
    let mut last = Value::Null;
    for (keyid, file) in signers {
        let pending = services.pending(role).await;
        let signature = support::python_json(
            "cli_signer.py",
            &[],
            &json!({"metadata": pending, "keyid": keyid,
                    "key_file": support::fixture(&format!("keys/{file}")), "password": "hunter2",
                    "public_key": keys[*keyid]}),
        )["signature"]
            .clone();
        last = python.run(
            "sign_metadata",
            json!({"role": role, "signature": signature}),
        );
    }
    last
}

/// The `message` of a task result as the API shows it.
fn message_of(r: &Value) -> &str {
    r["api_result"]["message"].as_str().unwrap()
}
