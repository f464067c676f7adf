//! Celery's Redis result backend records (`celery-task-meta-<id>`), as the RSTUF API reads
//! them with `AsyncResult`.
//!
//! A state write is `SETEX key 86400 record` plus `PUBLISH key record`, skipped when the
//! stored record is already SUCCESS (Celery's rule: a success is final). PRE_RUN is a plain
//! `SET` without expiry, as the reference worker's signal handler writes it. The fields come
//! in Celery's order: `status, result, traceback, children, date_done[, parent_id], task_id`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// Seconds a record lives (Celery's `result_expires` default).
pub const RESULT_TTL_SECS: u64 = 86_400;

/// The key of a task's record.
pub fn result_key(task_id: &str) -> String {
    format!("celery-task-meta-{task_id}")
}

/// kombu's JSON encoding of a datetime: `{"__type__": "datetime", "__value__": iso}`.
pub fn datetime(t: DateTime<Utc>) -> Value {
    json!({"__type__": "datetime", "__value__": isoformat(t)})
}

/// Python's `datetime.isoformat()` of an aware UTC time: microseconds and `+00:00`.
pub fn isoformat(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// `{"status": "PRE_RUN", "task_id": id, "result": null}`, written with a plain `SET`.
pub fn pre_run(task_id: &str) -> Vec<u8> {
    format!(
        "{{\"status\": \"PRE_RUN\", \"task_id\": {}, \"result\": null}}",
        Value::from(task_id)
    )
    .into_bytes()
}

/// A Celery state record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Celery state: STARTED, RUNNING, SUCCESS, FAILURE, RETRY, REVOKED.
    pub status: &'static str,
    /// The state's result (task result, progress meta, exception dict).
    pub result: Value,
    /// Python traceback text for failures.
    pub traceback: Option<String>,
    /// Child tasks: `[[[id, null], null], ...]`.
    pub children: Vec<Value>,
    /// When the task ended (ready states only).
    pub date_done: Option<DateTime<Utc>>,
    /// The parent task, for subtasks.
    pub parent_id: Option<String>,
    /// The task.
    pub task_id: String,
}

impl Record {
    /// STARTED with the worker's pid and host name (`task_track_started`).
    pub fn started(task_id: &str, pid: u32, hostname: &str) -> Record {
        Record::new(
            "STARTED",
            task_id,
            json!({"pid": pid, "hostname": hostname}),
            None,
        )
    }

    /// RUNNING with RSTUF's progress meta (`update_state(state="RUNNING", meta=...)`).
    pub fn running(task_id: &str, message: &str, details: Value, at: DateTime<Utc>) -> Record {
        Record::new(
            "RUNNING",
            task_id,
            json!({"details": details, "message": message, "last_update": datetime(at),
                   "exc_type": null, "exc_message": null}),
            None,
        )
    }

    /// SUCCESS with the task's return value.
    pub fn success(task_id: &str, result: Value, at: DateTime<Utc>) -> Record {
        Record::new("SUCCESS", task_id, result, Some(at))
    }

    /// FAILURE with an exception the API can rebuild: `exc_type` a class Celery finds in
    /// `exc_module` (`builtins`, `celery.exceptions`), `exc_message` its arguments.
    pub fn failure(
        task_id: &str,
        exc_type: &str,
        exc_module: &str,
        message: &str,
        traceback: Option<String>,
        at: DateTime<Utc>,
    ) -> Record {
        let mut record = Record::exception("FAILURE", task_id, exc_type, exc_module, message);
        record.traceback = traceback;
        record.date_done = Some(at);
        record
    }

    /// RETRY: the task failed on `exc_type` and runs again (not a ready state: no date).
    pub fn retry(task_id: &str, exc_type: &str, exc_module: &str, message: &str) -> Record {
        Record::exception("RETRY", task_id, exc_type, exc_module, message)
    }

    /// REVOKED, as Celery writes it (`celery.exceptions.TaskRevokedError`).
    pub fn revoked(task_id: &str, message: &str, at: DateTime<Utc>) -> Record {
        let mut record = Record::exception(
            "REVOKED",
            task_id,
            "TaskRevokedError",
            "celery.exceptions",
            message,
        );
        record.date_done = Some(at);
        record
    }

    fn exception(
        status: &'static str,
        task_id: &str,
        exc_type: &str,
        exc_module: &str,
        message: &str,
    ) -> Record {
        Record::new(
            status,
            task_id,
            json!({"exc_type": exc_type, "exc_message": [message], "exc_module": exc_module}),
            None,
        )
    }

    fn new(
        status: &'static str,
        task_id: &str,
        result: Value,
        date_done: Option<DateTime<Utc>>,
    ) -> Record {
        Record {
            status,
            result,
            traceback: None,
            children: Vec::new(),
            date_done,
            parent_id: None,
            task_id: task_id.to_string(),
        }
    }

    /// Names a child task (the `publish_artifacts-<id>` subtask).
    pub fn with_child(mut self, child_id: &str) -> Record {
        self.children.push(json!([[child_id, null], null]));
        self
    }

    /// Names the parent task (for a subtask's own records).
    pub fn with_parent(mut self, parent_id: &str) -> Record {
        self.parent_id = Some(parent_id.to_string());
        self
    }

    /// The record's JSON, fields in Celery's order.
    pub fn to_bytes(&self) -> Vec<u8> {
        // `json.dumps` separators (", " and ": ") between the record's own fields; each value
        // compact, as serde_json writes it (written straight into the buffer: a task stores
        // three records, and formatting through `Display` was a measurable share of its CPU).
        fn field(out: &mut Vec<u8>, key: &str, value: &impl serde::Serialize) {
            out.extend_from_slice(if out.len() == 1 { b"\"" } else { b", \"" });
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\": ");
            serde_json::to_writer(&mut *out, value).expect("JSON values serialize");
        }
        let mut out = Vec::with_capacity(256);
        out.push(b'{');
        field(&mut out, "status", &self.status);
        field(&mut out, "result", &self.result);
        field(&mut out, "traceback", &self.traceback);
        field(&mut out, "children", &self.children);
        field(&mut out, "date_done", &self.date_done.map(isoformat));
        if let Some(parent) = &self.parent_id {
            field(&mut out, "parent_id", parent);
        }
        field(&mut out, "task_id", &self.task_id);
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 1, 31, 36).unwrap()
            + chrono::Duration::microseconds(206_589)
    }

    #[test]
    fn records_match_the_captured_shapes() {
        assert_eq!(
            String::from_utf8(pre_run("2222")).unwrap(),
            r#"{"status": "PRE_RUN", "task_id": "2222", "result": null}"#
        );
        let started: Value =
            serde_json::from_slice(&Record::started("2222", 14783, "rstuf@probe").to_bytes())
                .unwrap();
        assert_eq!(
            started,
            json!({"status": "STARTED", "result": {"pid": 14783, "hostname": "rstuf@probe"},
                   "traceback": null, "children": [], "date_done": null, "task_id": "2222"})
        );
        let success = Record::success(
            "1111",
            json!({"task": "add_artifacts", "status": true}),
            at(),
        )
        .with_child("publish_artifacts-1111");
        let text = String::from_utf8(success.to_bytes()).unwrap();
        assert!(
            text.starts_with(r#"{"status": "SUCCESS", "result": "#),
            "{text}"
        );
        assert!(
            text.ends_with(r#""children": [[["publish_artifacts-1111",null],null]], "date_done": "2026-11-25T01:31:36.206589+00:00", "task_id": "1111"}"#),
            "{text}"
        );

        let failure: Value = serde_json::from_slice(
            &Record::failure(
                "3333",
                "RuntimeError",
                "builtins",
                "boom happened",
                None,
                at(),
            )
            .with_parent("p")
            .to_bytes(),
        )
        .unwrap();
        assert_eq!(
            failure["result"],
            json!({"exc_type": "RuntimeError", "exc_message": ["boom happened"], "exc_module": "builtins"})
        );
        assert_eq!(failure["parent_id"], json!("p"));
        assert_eq!(
            datetime(at()),
            json!({"__type__": "datetime", "__value__": "2026-11-25T01:31:36.206589+00:00"})
        );
    }
}
