//! The envelopes captured from the real RSTUF API, Celery beat and the Python worker parse
//! into the messages they carry, and survive the `unacked` and restore round trips.

use rstuf_celery::redis_envelope::{Envelope, parse_unacked};
use rstuf_test_support as support;
use serde_json::{Value, json};

fn capture(name: &str) -> Vec<u8> {
    std::fs::read(support::fixture(&format!(
        "reference-worker/captures/{name}"
    )))
    .unwrap()
}

#[test]
fn api_envelopes_carry_the_action_and_payload() {
    let add = Envelope::parse(&capture("redis_envelope_add_artifacts.json")).unwrap();
    assert_eq!(add.message.task, "app.repository_service_tuf_worker");
    assert_eq!(add.message.id, "11111111111111111111111111111111");
    assert_eq!(add.message.kwarg("action"), Some(&json!("add_artifacts")));
    assert_eq!(
        add.message.kwarg("payload"),
        Some(
            &json!({"artifacts": [{"info": {"length": 1, "hashes": {"sha256": "ab"}}, "path": "file1.tar.gz"}],
                     "add_task_id_to_custom": false, "publish_artifacts": true})
        )
    );
    assert_eq!(add.routing_key(), Some("metadata_repository"));
    assert_eq!(
        add.delivery_tag(),
        Some("4a948863-40cc-4b21-82a2-8200f02fbbf6")
    );
    assert_eq!(add.message.eta().unwrap(), None);

    let publish = Envelope::parse(&capture("redis_envelope_publish_api.json")).unwrap();
    assert_eq!(publish.message.kwarg("payload"), Some(&Value::Null));
    assert_eq!(publish.routing_key(), Some("rstuf_internals"));

    // Recorded as unacked and restored, the envelope is the producer's plus `redelivered`.
    let (back, queue) = parse_unacked(&add.unacked_value("metadata_repository")).unwrap();
    assert_eq!(
        (back.raw, queue.as_str()),
        (add.raw.clone(), "metadata_repository")
    );
    let restored = Envelope::parse(&add.redelivered()).unwrap();
    assert_eq!(restored.message.kwargs, add.message.kwargs);
    assert_eq!(
        restored.raw["properties"]["delivery_info"]["redelivered"],
        json!(true)
    );
}

#[test]
fn internal_messages_of_the_python_worker_parse() {
    let all: Vec<Value> = serde_json::from_slice(&capture("internal_messages.json")).unwrap();
    assert_eq!(all.len(), 5);
    for entry in &all {
        let env = Envelope::parse(&serde_json::to_vec(&entry["msg"]).unwrap()).unwrap();
        assert_eq!(env.routing_key(), entry["key"].as_str());
        let body = &entry["body"];
        assert_eq!(Value::Array(env.message.args.clone()), body[0]);
        assert_eq!(Value::Object(env.message.kwargs.clone()), body[1]);
        assert_eq!(env.message.embed, body[2]);
    }
    let beat = Envelope::parse(&serde_json::to_vec(&all[0]["msg"]).unwrap()).unwrap();
    assert_eq!(
        (beat.message.task.as_str(), beat.message.id.as_str()),
        ("app.bump_online_roles", "bump_online_roles")
    );
    assert_eq!(beat.message.kwarg("expired"), Some(&json!(true)));
}
