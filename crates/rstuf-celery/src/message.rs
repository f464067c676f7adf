//! Celery protocol v2 task messages, independent of the transport.
//!
//! The body is the JSON array `[args, kwargs, embed]`; the dispatch key is the `task` header
//! and the task id the `id` header. Headers we do not interpret are kept, so a message can be
//! handed back to the broker unchanged.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// Why a body is not a JSON array: not JSON at all, or JSON of another shape.
fn body_error(body: &[u8], error: &serde_json::Error) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(_) => "not a JSON array".into(),
        Err(_) => error.to_string(),
    }
}

/// Why a message cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The transport envelope is not what kombu writes.
    #[error("malformed envelope: {0}")]
    Envelope(String),
    /// The body is not `[args, kwargs, embed]` JSON.
    #[error("malformed body: {0}")]
    Body(String),
    /// A required header is missing or has the wrong type.
    #[error("header {header}: {problem}")]
    Header {
        /// The header.
        header: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// A task message: what to run, with what, and Celery's bookkeeping headers.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMessage {
    /// Task id (`id` header): the result key is `celery-task-meta-<id>`.
    pub id: String,
    /// Task name (`task` header), e.g. `app.repository_service_tuf_worker`.
    pub task: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// Callbacks, errbacks, chain and chord (kept as sent).
    pub embed: Value,
    /// All headers as sent, including the ones above.
    pub headers: Map<String, Value>,
    /// Each keyword argument's JSON text as it was sent (objects in the sender's order, which
    /// a parsed [`Value`] does not keep); for messages built here, their compact JSON.
    pub raw_kwargs: BTreeMap<String, Box<str>>,
}

fn header_str(headers: &Map<String, Value>, header: &'static str) -> Result<String, MessageError> {
    match headers.get(header) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(other) => Err(MessageError::Header {
            header,
            problem: format!("expected a non-empty string, got {other}"),
        }),
        None => Err(MessageError::Header {
            header,
            problem: "missing".into(),
        }),
    }
}

fn header_time(
    headers: &Map<String, Value>,
    header: &'static str,
) -> Result<Option<DateTime<Utc>>, MessageError> {
    match headers.get(header) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| MessageError::Header {
                header,
                problem: format!("{s:?} is not an ISO 8601 time: {e}"),
            }),
        Some(other) => Err(MessageError::Header {
            header,
            problem: format!("expected a time or null, got {other}"),
        }),
    }
}

impl TaskMessage {
    /// A message from its headers and JSON body bytes.
    pub fn from_parts(headers: Map<String, Value>, body: &[u8]) -> Result<Self, MessageError> {
        let id = header_str(&headers, "id")?;
        let task = header_str(&headers, "task")?;
        let parts: Vec<&RawValue> =
            serde_json::from_slice(body).map_err(|e| MessageError::Body(body_error(body, &e)))?;
        if parts.len() != 3 {
            return Err(MessageError::Body(format!(
                "expected [args, kwargs, embed], got {} elements",
                parts.len()
            )));
        }
        let value = |raw: &RawValue| -> Result<Value, MessageError> {
            serde_json::from_str(raw.get()).map_err(|e| MessageError::Body(e.to_string()))
        };
        let embed = value(parts[2])?;
        let raw_kwargs: BTreeMap<String, &RawValue> = match serde_json::from_str(parts[1].get()) {
            Ok(map) => map,
            Err(_) => {
                return Err(MessageError::Body(format!(
                    "kwargs is not an object: {}",
                    value(parts[1])?
                )));
            }
        };
        let mut kwargs = Map::new();
        for (name, raw) in &raw_kwargs {
            kwargs.insert(name.clone(), value(raw)?);
        }
        let raw_kwargs = raw_kwargs
            .into_iter()
            .map(|(name, raw)| (name, Box::from(raw.get())))
            .collect();
        let mut parts: Vec<Value> = vec![value(parts[0])?];
        let args = match parts.pop().expect("three elements") {
            Value::Array(args) => args,
            other => return Err(MessageError::Body(format!("args is not a list: {other}"))),
        };
        let message = TaskMessage {
            id,
            task,
            args,
            kwargs,
            embed,
            headers,
            raw_kwargs,
        };
        message.eta()?;
        message.expires()?;
        Ok(message)
    }

    /// A new message as Celery 5.6 sends it (full header set), for tasks the worker sends
    /// itself: the `publish_artifacts-<id>` subtask and the scheduled bump.
    pub fn new(
        id: &str,
        task: &str,
        kwargs: Map<String, Value>,
        parent_id: Option<&str>,
        origin: &str,
    ) -> Self {
        let root_id = parent_id.unwrap_or(id);
        let headers = json!({
            "lang": "py",
            "task": task,
            "id": id,
            "shadow": null,
            "eta": null,
            "expires": null,
            "group": null,
            "group_index": null,
            "retries": 0,
            "timelimit": [null, null],
            "root_id": root_id,
            "parent_id": parent_id,
            "argsrepr": "()",
            "kwargsrepr": python_repr_keys(&kwargs),
            "origin": origin,
            "ignore_result": false,
            "replaced_task_nesting": 0,
            "stamped_headers": null,
            "stamps": {},
        });
        let Value::Object(headers) = headers else {
            unreachable!("an object literal")
        };
        TaskMessage {
            id: id.to_string(),
            task: task.to_string(),
            args: Vec::new(),
            embed: json!({"callbacks": null, "errbacks": null, "chain": null, "chord": null}),
            raw_kwargs: kwargs
                .iter()
                .map(|(name, value)| (name.clone(), value.to_string().into_boxed_str()))
                .collect(),
            kwargs,
            headers,
        }
    }

    /// The body bytes: `[args, kwargs, embed]` as compact JSON.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&json!([self.args, self.kwargs, self.embed])).expect("JSON values")
    }

    /// Not to run before this time (`eta` header), if set.
    pub fn eta(&self) -> Result<Option<DateTime<Utc>>, MessageError> {
        header_time(&self.headers, "eta")
    }

    /// Not to run after this time (`expires` header), if set.
    pub fn expires(&self) -> Result<Option<DateTime<Utc>>, MessageError> {
        header_time(&self.headers, "expires")
    }

    /// The parent task id (`parent_id` header), for subtasks.
    pub fn parent_id(&self) -> Option<&str> {
        self.headers.get("parent_id").and_then(Value::as_str)
    }

    /// A keyword argument.
    pub fn kwarg(&self, name: &str) -> Option<&Value> {
        self.kwargs.get(name)
    }

    /// A keyword argument's JSON text as it was sent, when the message came from a sender.
    pub fn raw_kwarg(&self, name: &str) -> Option<&str> {
        self.raw_kwargs.get(name).map(|raw| &**raw)
    }
}

/// A short stand-in for Python's `repr` of the kwargs, for the `kwargsrepr` header (logging
/// only; consumers never parse it).
fn python_repr_keys(kwargs: &Map<String, Value>) -> String {
    let keys: Vec<String> = kwargs.keys().map(|k| format!("'{k}': ...")).collect();
    format!("{{{}}}", keys.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("object"),
        }
    }

    #[test]
    fn body_parts_and_required_headers() {
        let h = headers(json!({"task": "t", "id": "1"}));
        let m =
            TaskMessage::from_parts(h.clone(), br#"[[], {"action": "x", "payload": null}, {}]"#)
                .unwrap();
        assert_eq!(m.kwarg("action"), Some(&json!("x")));
        assert_eq!(m.kwarg("payload"), Some(&Value::Null));
        assert_eq!(m.eta().unwrap(), None);

        let bad: [(&[u8], &str); 5] = [
            (b"not json", "malformed body"),
            (b"{}", "not a JSON array"),
            (b"[[], {}]", "expected [args, kwargs, embed]"),
            (b"[[], [], {}]", "kwargs is not an object"),
            (b"[{}, {}, {}]", "args is not a list"),
        ];
        for (body, expected) in bad {
            let err = TaskMessage::from_parts(h.clone(), body).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        for (h, expected) in [
            (json!({"task": "t"}), "header id: missing"),
            (json!({"task": "t", "id": 5}), "header id: expected"),
            (json!({"id": "1"}), "header task: missing"),
            (
                json!({"task": "t", "id": "1", "eta": "tomorrow"}),
                "header eta",
            ),
        ] {
            let err = TaskMessage::from_parts(headers(h), b"[[], {}, {}]").unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn eta_is_read_as_celery_writes_it() {
        let h = headers(json!({"task": "t", "id": "1", "eta": "2026-11-25T01:31:36.206589+00:00"}));
        let m = TaskMessage::from_parts(h, b"[[], {}, {}]").unwrap();
        assert_eq!(
            m.eta().unwrap().unwrap().to_rfc3339(),
            "2026-11-25T01:31:36.206589+00:00"
        );
    }

    #[test]
    fn new_messages_carry_celerys_headers() {
        let kwargs = headers(
            json!({"action": "publish_artifacts", "payload": {"delegated_artifacts": ["bins-1"]}}),
        );
        let m = TaskMessage::new(
            "publish_artifacts-abc",
            "app.repository_service_tuf_worker",
            kwargs,
            Some("abc"),
            "rstuf-worker@host",
        );
        assert_eq!(m.headers["root_id"], json!("abc"));
        assert_eq!(m.parent_id(), Some("abc"));
        let again = TaskMessage::from_parts(m.headers.clone(), &m.body()).unwrap();
        assert_eq!(again, m);
    }
}
