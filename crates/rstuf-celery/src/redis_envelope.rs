//! kombu's Redis transport envelope: what `LPUSH <queue>` stores and `BRPOP` returns.
//!
//! ```json
//! {"body": "<base64 of the JSON body>", "content-encoding": "utf-8",
//!  "content-type": "application/json", "headers": {...},
//!  "properties": {"correlation_id", "reply_to", "delivery_mode": 2,
//!                 "delivery_info": {"exchange": "", "routing_key": "<queue>"},
//!                 "priority": 0, "body_encoding": "base64", "delivery_tag": "<uuid4>"}}
//! ```
//!
//! The envelope is kept as received: a message restored to its queue (after a crash) or
//! recorded in `unacked` is the producer's, with only `redelivered` added, as kombu does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::message::{MessageError, TaskMessage};

/// The hash of messages delivered and not yet acknowledged.
pub const UNACKED: &str = "unacked";
/// Delivery tags by delivery time (float UNIX seconds).
pub const UNACKED_INDEX: &str = "unacked_index";
/// The lock kombu takes while restoring unacknowledged messages.
pub const UNACKED_MUTEX: &str = "unacked_mutex";
/// kombu's separator between a queue name and its priority suffix.
pub const PRIORITY_SEP: &str = "\x06\x16";
/// The priority steps kombu polls, highest first after the plain queue.
pub const PRIORITY_STEPS: [u8; 3] = [3, 6, 9];
/// kombu's default visibility timeout: a message unacknowledged this long is restored.
pub const VISIBILITY_TIMEOUT_SECS: u64 = 3600;

/// The list keys a consumer of `queue` pops from, in kombu's order.
pub fn queue_keys(queue: &str) -> Vec<String> {
    let mut keys = vec![queue.to_string()];
    keys.extend(
        PRIORITY_STEPS
            .iter()
            .map(|p| format!("{queue}{PRIORITY_SEP}{p}")),
    );
    keys
}

/// The binding member kombu adds for a direct queue (`_kombu.binding.<queue>`).
pub fn binding(queue: &str) -> (String, String) {
    (
        format!("_kombu.binding.{queue}"),
        format!("{queue}{PRIORITY_SEP}{PRIORITY_SEP}{queue}"),
    )
}

/// A message as it travels on the Redis transport.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The decoded task message.
    pub message: TaskMessage,
    /// The envelope exactly as received (or built), for `unacked` and restores.
    pub raw: Map<String, Value>,
}

fn envelope_err(problem: impl Into<String>) -> MessageError {
    MessageError::Envelope(problem.into())
}

impl Envelope {
    /// Parses a list element.
    pub fn parse(bytes: &[u8]) -> Result<Self, MessageError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| envelope_err(format!("not JSON: {e}")))?;
        let Value::Object(raw) = value else {
            return Err(envelope_err("not a JSON object"));
        };
        let properties = raw
            .get("properties")
            .and_then(Value::as_object)
            .ok_or_else(|| envelope_err("no properties"))?;
        let body = raw
            .get("body")
            .and_then(Value::as_str)
            .ok_or_else(|| envelope_err("no body"))?;
        let body = match properties.get("body_encoding").and_then(Value::as_str) {
            Some("base64") => STANDARD
                .decode(body)
                .map_err(|e| envelope_err(format!("body is not base64: {e}")))?,
            None => body.as_bytes().to_vec(),
            Some(other) => return Err(envelope_err(format!("body encoding {other:?}"))),
        };
        if let Some(ct) = raw.get("content-type").and_then(Value::as_str)
            && ct != "application/json"
        {
            return Err(envelope_err(format!("content type {ct:?} (only JSON)")));
        }
        let headers = raw
            .get("headers")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| envelope_err("no headers"))?;
        let message = TaskMessage::from_parts(headers, &body)?;
        Ok(Envelope { message, raw })
    }

    /// A new envelope for `message` on `queue`, with a fresh delivery tag, as kombu builds it.
    pub fn build(message: TaskMessage, queue: &str) -> Self {
        let raw = json!({
            "body": STANDARD.encode(message.body()),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": message.headers,
            "properties": {
                "correlation_id": message.id,
                "reply_to": uuid::Uuid::new_v4().to_string(),
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": uuid::Uuid::new_v4().to_string(),
            },
        });
        let Value::Object(raw) = raw else {
            unreachable!("an object literal")
        };
        Envelope { message, raw }
    }

    fn properties(&self) -> Option<&Map<String, Value>> {
        self.raw.get("properties").and_then(Value::as_object)
    }

    /// The producer's delivery tag: the key of this message in `unacked`.
    pub fn delivery_tag(&self) -> Option<&str> {
        self.properties()?.get("delivery_tag")?.as_str()
    }

    /// The queue the message was routed to (`delivery_info.routing_key`).
    pub fn routing_key(&self) -> Option<&str> {
        self.properties()?
            .get("delivery_info")?
            .get("routing_key")?
            .as_str()
    }

    /// The envelope's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.raw).expect("JSON values")
    }

    /// The `unacked` hash value kombu writes: `[envelope, exchange, routing_key]`.
    pub fn unacked_value(&self, queue: &str) -> Vec<u8> {
        serde_json::to_vec(&json!([self.raw, "", self.routing_key().unwrap_or(queue)]))
            .expect("JSON values")
    }

    /// The envelope as kombu restores it to its queue: `redelivered` set in the headers and
    /// the delivery info.
    pub fn redelivered(&self) -> Vec<u8> {
        let mut raw = self.raw.clone();
        if let Some(Value::Object(headers)) = raw.get_mut("headers") {
            headers.insert("redelivered".into(), Value::Bool(true));
        }
        if let Some(Value::Object(info)) = raw
            .get_mut("properties")
            .and_then(|p| p.get_mut("delivery_info"))
        {
            info.insert("redelivered".into(), Value::Bool(true));
        }
        serde_json::to_vec(&raw).expect("JSON values")
    }
}

/// The envelope stored in an `unacked` hash value (`[envelope, exchange, routing_key]`), and
/// the queue to restore it to.
pub fn parse_unacked(bytes: &[u8]) -> Result<(Envelope, String), MessageError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| envelope_err(format!("not JSON: {e}")))?;
    let Value::Array(parts) = value else {
        return Err(envelope_err("unacked value is not a list"));
    };
    let [envelope, _exchange, routing_key] = parts.as_slice() else {
        return Err(envelope_err(
            "unacked value is not [envelope, exchange, key]",
        ));
    };
    let queue = routing_key
        .as_str()
        .ok_or_else(|| envelope_err("unacked routing key is not a string"))?
        .to_string();
    let envelope = Envelope::parse(&serde_json::to_vec(envelope).expect("JSON values"))?;
    Ok((envelope, queue))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_binding_are_kombus() {
        assert_eq!(
            queue_keys("metadata_repository"),
            [
                "metadata_repository",
                "metadata_repository\x06\x163",
                "metadata_repository\x06\x166",
                "metadata_repository\x06\x169"
            ]
        );
        assert_eq!(
            binding("rstuf_internals"),
            (
                "_kombu.binding.rstuf_internals".to_string(),
                "rstuf_internals\x06\x16\x06\x16rstuf_internals".to_string()
            )
        );
    }

    #[test]
    fn malformed_envelopes_are_errors_not_panics() {
        let good = Envelope::build(TaskMessage::new("1", "t", Map::new(), None, "o"), "q");
        let mut cases: Vec<(Vec<u8>, &str)> = vec![
            (b"nope".to_vec(), "not JSON"),
            (b"[]".to_vec(), "not a JSON object"),
            (b"{}".to_vec(), "no properties"),
        ];
        let mut bad_b64 = good.raw.clone();
        bad_b64["body"] = json!("***");
        cases.push((serde_json::to_vec(&bad_b64).unwrap(), "not base64"));
        let mut bad_body = good.raw.clone();
        bad_body["body"] = json!(STANDARD.encode(b"{\"a\": 1}"));
        cases.push((serde_json::to_vec(&bad_body).unwrap(), "not a JSON array"));
        let mut pickle = good.raw.clone();
        pickle["content-type"] = json!("application/x-python-serialize");
        cases.push((serde_json::to_vec(&pickle).unwrap(), "only JSON"));
        for (bytes, expected) in cases {
            let err = Envelope::parse(&bytes).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn built_envelopes_round_trip_and_restore_as_kombu_does() {
        let mut kwargs = Map::new();
        kwargs.insert("expired".into(), json!(true));
        let env = Envelope::build(
            TaskMessage::new(
                "bump_online_roles",
                "app.bump_online_roles",
                kwargs,
                None,
                "o",
            ),
            "rstuf_internals",
        );
        let parsed = Envelope::parse(&env.to_bytes()).unwrap();
        assert_eq!(parsed, env);
        assert_eq!(parsed.routing_key(), Some("rstuf_internals"));
        let (back, queue) = parse_unacked(&env.unacked_value("rstuf_internals")).unwrap();
        assert_eq!((back, queue.as_str()), (env.clone(), "rstuf_internals"));
        let restored = Envelope::parse(&env.redelivered()).unwrap();
        assert_eq!(restored.message.headers["redelivered"], json!(true));
        assert_eq!(restored.delivery_tag(), env.delivery_tag());
    }
}
