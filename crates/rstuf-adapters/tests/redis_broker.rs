//! The Redis broker and result backend against the real Redis and the PyPI Celery producer
//! configured like the RSTUF API: what Python sends we receive, what we record Python reads.

use std::time::Duration;

use chrono::Utc;
use rstuf_adapters::redis_broker::{RedisBroker, RedisResults};
use rstuf_celery::redis_envelope::Envelope;
use rstuf_celery::result::Record;
use rstuf_consumer::{Received, ResultBackend};
use rstuf_test_support as support;
use serde_json::{Value, json};

async fn flush(db: u32) -> String {
    let url = format!("redis://127.0.0.1:6379/{db}");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
    url
}

async fn unacked(url: &str) -> usize {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("HLEN")
        .arg("unacked")
        .query_async(&mut c)
        .await
        .unwrap()
}

async fn next_message(broker: &RedisBroker) -> Envelope {
    for _ in 0..10 {
        match broker.next().await.unwrap() {
            Some(Received::Task { handle, .. }) => return handle,
            Some(other) => panic!("unexpected {other:?}"),
            None => {}
        }
    }
    panic!("no message within 10 s")
}

#[tokio::test(flavor = "multi_thread")]
async fn python_producer_and_result_reader_understand_us() {
    let url = flush(5).await;
    let broker = RedisBroker::connect(&url, &["metadata_repository", "rstuf_internals"])
        .await
        .unwrap();
    broker.declare().await.unwrap();
    let results = RedisResults::connect(&url).await.unwrap();
    let mut python = support::PythonOracle::start("celery_producer.py");
    let payload = support::api_payload("artifacts/add_payload.json");
    let sent = python.ask(&json!({"op": "send", "broker": url, "backend": url,
        "queue": "metadata_repository", "task_id": "a".repeat(32),
        "action": "add_artifacts", "payload": payload}));
    assert_eq!(sent["sent"], json!("a".repeat(32)), "{sent}");

    let env = next_message(&broker).await;
    assert_eq!(env.message.task, "app.repository_service_tuf_worker");
    assert_eq!(env.message.id, "a".repeat(32));
    assert_eq!(env.message.kwarg("action"), Some(&json!("add_artifacts")));
    assert_eq!(env.message.kwarg("payload"), Some(&payload));
    assert_eq!(unacked(&url).await, 1, "recorded until acknowledged");

    let read = |python: &mut support::PythonOracle, id: &str| {
        python.ask(&json!({"op": "result", "broker": url, "backend": url, "task_id": id}))
    };
    assert_eq!(read(&mut python, &env.message.id)["state"], "PENDING");
    assert_eq!(
        results.pre_run(&env.message.id).await.unwrap(),
        None,
        "nothing was stored before"
    );
    assert_eq!(read(&mut python, &env.message.id)["state"], "PRE_RUN");
    results
        .store(&Record::started(&env.message.id, 42, "rstuf@test"))
        .await
        .unwrap();
    assert_eq!(read(&mut python, &env.message.id)["state"], "STARTED");
    let outcome = json!({"task": "add_artifacts", "status": true,
        "last_update": rstuf_celery::result::datetime(Utc::now()),
        "message": "Artifact(s) Added", "error": null, "details": {"added_artifacts": ["file1.tar.gz"]}});
    assert!(
        results
            .store(&Record::success(
                &env.message.id,
                outcome.clone(),
                Utc::now()
            ))
            .await
            .unwrap()
    );
    let seen = read(&mut python, &env.message.id);
    assert_eq!(seen["state"], "SUCCESS", "{seen}");
    assert_eq!(seen["result"]["details"], outcome["details"]);
    assert_eq!(seen["result"]["message"], "Artifact(s) Added");
    // A success is final.
    assert!(
        !results
            .store(&Record::failure(
                &env.message.id,
                "RuntimeError",
                "builtins",
                "late",
                None,
                Utc::now()
            ))
            .await
            .unwrap()
    );
    assert_eq!(read(&mut python, &env.message.id)["state"], "SUCCESS");
    // A redelivered success: PRE_RUN is not written over it, and the worker learns it was done.
    assert_eq!(
        results.pre_run(&env.message.id).await.unwrap().as_deref(),
        Some("SUCCESS")
    );
    assert_eq!(read(&mut python, &env.message.id)["state"], "SUCCESS");
    // A task starting at once stores STARTED and learns what was stored, in one step.
    let started = Record::started(&env.message.id, 43, "rstuf@test");
    assert_eq!(
        results.replace(&started).await.unwrap().as_deref(),
        Some("SUCCESS")
    );
    assert_eq!(read(&mut python, &env.message.id)["state"], "SUCCESS");
    let fresh = Record::started(&"c".repeat(32), 43, "rstuf@test");
    assert_eq!(results.replace(&fresh).await.unwrap(), None);
    assert_eq!(read(&mut python, &"c".repeat(32))["state"], "STARTED");
    assert_eq!(
        results.replace(&fresh).await.unwrap().as_deref(),
        Some("STARTED")
    );
    broker.ack(&env).await.unwrap();
    assert_eq!(unacked(&url).await, 0);

    // A failure is rebuilt by Celery as the exception we name.
    results
        .store(&Record::failure(
            "f".repeat(32).as_str(),
            "RuntimeError",
            "builtins",
            "boom happened",
            None,
            Utc::now(),
        ))
        .await
        .unwrap();
    let failed = read(&mut python, &"f".repeat(32));
    assert_eq!(
        (
            failed["state"].clone(),
            failed["exception"].clone(),
            failed["message"].clone()
        ),
        (
            json!("FAILURE"),
            json!("RuntimeError"),
            json!("boom happened")
        ),
        "{failed}"
    );

    // The beat message and the payload-less publish arrive on rstuf_internals.
    python.ask(&json!({"op": "send_raw", "broker": url, "backend": url, "queue": "rstuf_internals",
        "task_id": "bump_online_roles", "task": "app.bump_online_roles", "kwargs": {"expired": true}}));
    let beat = next_message(&broker).await;
    assert_eq!(beat.message.task, "app.bump_online_roles");
    assert_eq!(beat.routing_key(), Some("rstuf_internals"));
    broker.ack(&beat).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn unacknowledged_messages_come_back_and_bad_ones_never_block_the_queue() {
    let url = flush(6).await;
    let broker = RedisBroker::connect(&url, &["metadata_repository"])
        .await
        .unwrap();
    let mut python = support::PythonOracle::start("celery_producer.py");
    // Garbage first, then a real message: the garbage is reported, the message still comes.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("LPUSH")
        .arg("metadata_repository")
        .arg("{\"body\": \"***\", \"headers\": {\"id\": \"bad\"}, \"properties\": {\"body_encoding\": \"base64\"}}")
        .query_async(&mut c)
        .await
        .unwrap();
    python.ask(&json!({"op": "send", "broker": url, "backend": url,
        "queue": "metadata_repository", "task_id": "b".repeat(32),
        "action": "publish_artifacts", "payload": null}));
    match broker.next().await.unwrap() {
        Some(Received::Malformed { task_id, error, .. }) => {
            assert_eq!(task_id.as_deref(), Some("bad"));
            assert!(error.to_string().contains("base64"), "{error}");
        }
        other => panic!("expected the malformed message first, got {other:?}"),
    }
    let first = next_message(&broker).await;
    assert_eq!(first.message.kwarg("payload"), Some(&Value::Null));

    // The consumer "dies" without acknowledging: not restored before the visibility
    // timeout, restored after it, delivered again with the same tag, marked redelivered.
    assert_eq!(
        broker
            .restore_unacked(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        broker
            .restore_unacked(Duration::from_millis(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(unacked(&url).await, 0);
    let again = next_message(&broker).await;
    assert_eq!(again.delivery_tag(), first.delivery_tag());
    assert_eq!(again.message.headers["redelivered"], json!(true));
    broker.ack(&again).await.unwrap();
    assert_eq!(unacked(&url).await, 0);
    assert!(broker.next().await.unwrap().is_none(), "delivered once");
}

async fn unacked_tags(url: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut tags: Vec<String> = redis::cmd("HKEYS")
        .arg("unacked")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut indexed: Vec<String> = redis::cmd("ZRANGE")
        .arg("unacked_index")
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    tags.sort();
    indexed.sort();
    assert_eq!(tags, indexed, "unacked and its index agree");
    tags
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_takes_what_is_waiting_in_order_and_records_every_task_it_returns() {
    use rstuf_celery::TaskMessage;
    let url = flush(3).await;
    let queue = "metadata_repository";
    let broker = RedisBroker::connect(&url, &[queue, "rstuf_internals"])
        .await
        .unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let message = |id: &str| {
        let mut kwargs = serde_json::Map::new();
        kwargs.insert("action".into(), json!("publish_artifacts"));
        TaskMessage::new(id, "app.repository_service_tuf_worker", kwargs, None, "t@h")
    };
    // Sent in order 1..=4, malformed elements between 2 and 3 (no delivery tag) and after 4
    // (a delivery tag but a body that is not base64: taken and recorded by the script, then
    // found malformed and its record dropped, never restored nor retried), and one on the
    // second queue's priority sub-queue without delivery info (its record names the queue
    // its key belongs to).
    let task = |id: &str, queue: &str| Envelope::build(message(id), queue).to_bytes();
    let mut no_info: Value = serde_json::from_slice(&task("m5", "rstuf_internals")).unwrap();
    no_info["properties"]
        .as_object_mut()
        .unwrap()
        .remove("delivery_info");
    let no_tag = br#"{"body": "e30=", "headers": {"id": "no-tag"}, "properties": {}}"#;
    let bad_body = br#"{"body": "***", "headers": {"id": "bad-body"}, "properties": {"body_encoding": "base64", "delivery_tag": "t-bad"}}"#;
    let sent = [
        (queue, task("m1", queue)),
        (queue, task("m2", queue)),
        (queue, no_tag.to_vec()),
        (queue, task("m3", queue)),
        (queue, task("m4", queue)),
        (queue, bad_body.to_vec()),
        (
            "rstuf_internals\x06\x163",
            serde_json::to_vec(&no_info).unwrap(),
        ),
    ];
    for (key, bytes) in sent {
        let _: () = redis::cmd("LPUSH")
            .arg(key)
            .arg(bytes)
            .query_async(&mut c)
            .await
            .unwrap();
    }

    let ids = |batch: &[Received<Envelope>]| -> Vec<String> {
        batch
            .iter()
            .map(|r| match r {
                Received::Task { message, .. } => message.id.clone(),
                Received::Malformed { task_id, .. } => format!("bad:{}", task_id.clone().unwrap()),
            })
            .collect()
    };
    let first = broker.next_batch(3).await.unwrap();
    assert_eq!(ids(&first), ["m1", "m2", "bad:no-tag"]);
    assert_eq!(
        unacked_tags(&url).await.len(),
        2,
        "the malformed one is not recorded"
    );
    let second = broker.next_batch(10).await.unwrap();
    assert_eq!(ids(&second), ["m3", "m4", "bad:bad-body", "m5"]);
    let tags = unacked_tags(&url).await;
    assert_eq!(tags.len(), 5);
    for received in first.iter().chain(&second) {
        if let Received::Task { handle, queue, .. } = received {
            assert!(tags.contains(&handle.delivery_tag().unwrap().to_string()));
            // The record restores to the right queue, as kombu reads it.
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let value: Vec<u8> = redis::cmd("HGET")
                .arg("unacked")
                .arg(handle.delivery_tag().unwrap())
                .query_async(&mut c)
                .await
                .unwrap();
            let (back, routed) = rstuf_celery::redis_envelope::parse_unacked(&value).unwrap();
            assert_eq!(&back, handle);
            assert_eq!(&routed, queue);
            broker.ack(handle).await.unwrap();
        }
    }
    assert!(unacked_tags(&url).await.is_empty());
    assert!(broker.next_batch(10).await.unwrap().is_empty());

    // Acknowledgements and result records of many concurrent tasks go together (a few
    // transactions and script calls); each still lands, on its own key, with its own answer.
    for n in 0..300 {
        let _: () = redis::cmd("LPUSH")
            .arg(queue)
            .arg(task(&format!("c{n}"), queue))
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let mut handles = Vec::new();
    while handles.len() < 300 {
        for received in broker.next_batch(64).await.unwrap() {
            match received {
                Received::Task { handle, .. } => handles.push(handle),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(unacked_tags(&url).await.len(), 300);
    let results = RedisResults::connect(&url).await.unwrap();
    // Every third task already succeeded: its SUCCESS must stay.
    for n in (0..300).step_by(3) {
        let done = Record::success(&format!("c{n}"), json!("first"), Utc::now());
        assert_eq!(results.replace(&done).await.unwrap(), None);
    }
    let acks: Vec<_> = handles
        .into_iter()
        .map(|handle| {
            let broker = broker.clone();
            let results = results.clone();
            tokio::spawn(async move {
                let id = handle.message.id.clone();
                let record = Record::success(&id, json!("second"), Utc::now());
                let before = results.replace(&record).await.unwrap();
                broker.ack(&handle).await.unwrap();
                (id, before)
            })
        })
        .collect();
    for ack in acks {
        let (id, before) = ack.await.unwrap();
        let n: usize = id[1..].parse().unwrap();
        let expected = if n.is_multiple_of(3) {
            Some("SUCCESS")
        } else {
            None
        };
        assert_eq!(before.as_deref(), expected, "{id}");
        let stored: Vec<u8> = redis::cmd("GET")
            .arg(format!("celery-task-meta-{id}"))
            .query_async(&mut c)
            .await
            .unwrap();
        let stored: Value = serde_json::from_slice(&stored).unwrap();
        assert_eq!(stored["task_id"], json!(id));
        let kept = if n.is_multiple_of(3) {
            "first"
        } else {
            "second"
        };
        assert_eq!(stored["result"], json!(kept), "{id}");
    }
    assert!(unacked_tags(&url).await.is_empty());
}

/// The consumer's contracts of the result backend and the bump lease, on the real Redis.
#[tokio::test(flavor = "multi_thread")]
async fn the_redis_results_and_bump_lease_keep_the_consumer_contracts() {
    let results = RedisResults::connect("redis://127.0.0.1:6379/1")
        .await
        .unwrap();
    let id = format!("conformance-{}", uuid::Uuid::new_v4());
    rstuf_consumer::testing::result_backend_conformance(&results, &id).await;
    // Its own database: the lease's keys are global (`BOR`, the last slot done).
    let url = "redis://127.0.0.1:6379/11";
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
    let lease = rstuf_adapters::redis_schedule::SlotLease::connect(url, Duration::from_secs(5))
        .await
        .unwrap();
    rstuf_consumer::testing::lease_conformance(&lease, 1_800_000_000).await;
}

/// A consumer that died between the blocking move of a message into its processing list
/// and the take that records it: the housekeeping of a live consumer puts the message back
/// on its queue (at the consuming end), and the dead one is forgotten.
#[tokio::test(flavor = "multi_thread")]
async fn the_processing_list_of_a_dead_consumer_goes_back_to_its_queue() {
    use rstuf_celery::TaskMessage;
    use rstuf_consumer::Broker;
    let url = flush(14).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut kwargs = serde_json::Map::new();
    kwargs.insert("action".into(), json!("publish_artifacts"));
    let message = TaskMessage::new(
        "left",
        "app.repository_service_tuf_worker",
        kwargs,
        None,
        "t",
    );
    let envelope = Envelope::build(message, "rstuf_internals").to_bytes();
    let _: () = redis::pipe()
        .cmd("LPUSH")
        .arg("rstuf-worker:processing:dead")
        .arg(&envelope)
        .cmd("SADD")
        .arg(rstuf_adapters::redis_broker::CONSUMERS)
        .arg("dead")
        .query_async(&mut c)
        .await
        .unwrap();

    let broker = RedisBroker::connect(&url, &["metadata_repository", "rstuf_internals"])
        .await
        .unwrap();
    assert_eq!(Broker::maintain(&broker).await.unwrap(), 1);
    let back = list(&mut c, "rstuf_internals").await;
    assert_eq!(back, vec![envelope]);
    let consumers: Vec<String> = redis::cmd("SMEMBERS")
        .arg(rstuf_adapters::redis_broker::CONSUMERS)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(!consumers.contains(&"dead".to_string()), "{consumers:?}");
    assert_eq!(consumers.len(), 1, "the live one stays: {consumers:?}");
    // Taken again from there, recorded as unacknowledged; the live consumer's own
    // processing list is left alone by its own housekeeping.
    match broker.next().await.unwrap() {
        Some(Received::Task { message, .. }) => assert_eq!(message.id, "left"),
        other => panic!("{other:?}"),
    }
    assert_eq!(Broker::maintain(&broker).await.unwrap(), 0);
    // Closing hands back what a blocking move left in its processing list.
    let _: () = redis::cmd("LPUSH")
        .arg(format!("rstuf-worker:processing:{}", consumers[0]))
        .arg(&b"late"[..])
        .query_async(&mut c)
        .await
        .unwrap();
    Broker::close(&broker).await.unwrap();
    let queued = list(&mut c, "metadata_repository").await;
    assert_eq!(queued, vec![b"late".to_vec()]);
}

/// Every element of the list `key`, head first.
async fn list(c: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<Vec<u8>> {
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(c)
        .await
        .unwrap()
}
