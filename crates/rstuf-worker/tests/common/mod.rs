//! A worker process on the real services, driven by the PyPI Celery producer configured like
//! the RSTUF API. Shared by the worker test binaries.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rstuf_test_support as support;
use serde_json::{Value, json};

pub mod campaign;

/// Which broker a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Redis,
    Amqp,
}

/// The services of one test: its own broker (Redis database or RabbitMQ vhost), result and
/// settings databases, PostgreSQL database and storage directory.
pub struct Services {
    pub dir: tempfile::TempDir,
    pub storage: PathBuf,
    pub db: String,
    pub broker: String,
    pub results_db: u32,
    pub settings_db: u32,
    pub backend: String,
}

async fn flush(db: u32) {
    let client = redis::Client::open(format!("redis://127.0.0.1:6379/{db}")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
}

/// A fresh RabbitMQ virtual host (deleted first if a previous run left it).
pub fn fresh_vhost(name: &str) -> String {
    let ctl = |args: &[&str]| {
        let out = Command::new("rabbitmqctl").args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let _ = ctl(&["delete_vhost", name]);
    let (ok, err) = ctl(&["add_vhost", name]);
    assert!(ok, "rabbitmqctl add_vhost {name}: {err}");
    let (ok, err) = ctl(&["set_permissions", "-p", name, "guest", ".*", ".*", ".*"]);
    assert!(ok, "rabbitmqctl set_permissions: {err}");
    format!("amqp://guest:guest@127.0.0.1:5672/{name}")
}

impl Services {
    /// `name` picks the PostgreSQL database and vhost; the Redis databases are the test's own.
    pub async fn new(name: &str, transport: Transport, results_db: u32, settings_db: u32) -> Self {
        let db = support::fresh_postgres_db(&format!("worker_{name}")).await;
        flush(results_db).await;
        flush(settings_db).await;
        let broker = match transport {
            Transport::Redis => format!("redis://127.0.0.1:6379/{results_db}"),
            Transport::Amqp => fresh_vhost(&format!("rstuf-test-{name}")),
        };
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        Services {
            storage,
            dir,
            db,
            broker,
            results_db,
            settings_db,
            backend: format!("redis://127.0.0.1:6379/{results_db}"),
        }
    }

    /// Sets a repository setting as the API does (raw string values).
    pub async fn set_setting(&self, key: &str, value: &str) {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:6379/{}", self.settings_db)).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("HSET")
            .arg("DYNACONF_MAIN")
            .arg(key)
            .arg(value)
            .query_async(&mut c)
            .await
            .unwrap();
    }

    /// The raw `celery-task-meta-<id>` record.
    pub async fn raw_record(&self, task_id: &str) -> Option<Value> {
        let client = redis::Client::open(self.backend.as_str()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(format!("celery-task-meta-{task_id}"))
            .query_async(&mut c)
            .await
            .unwrap();
        raw.map(|r| serde_json::from_slice(&r).unwrap())
    }

    /// Every record published for `task_id` from now until a final one, by status.
    pub async fn watch(&self, task_id: &str) -> tokio::task::JoinHandle<Vec<String>> {
        use futures_lite::StreamExt;
        let client = redis::Client::open(self.backend.as_str()).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub
            .subscribe(format!("celery-task-meta-{task_id}"))
            .await
            .unwrap();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut stream = pubsub.on_message();
            while let Some(msg) = stream.next().await {
                let record: Value = serde_json::from_slice(msg.get_payload_bytes()).unwrap();
                let status = record["status"].as_str().unwrap().to_string();
                let last = matches!(status.as_str(), "SUCCESS" | "FAILURE");
                seen.push(status);
                if last {
                    break;
                }
            }
            seen
        })
    }

    /// Services on Redis (database `db` for results and settings) with worker `worker`
    /// running, and the API's producer.
    pub async fn with_worker(name: &str, db: u32, worker: &str) -> (Self, WorkerProc, Producer) {
        let services = Services::new(name, Transport::Redis, db, db).await;
        let proc = services.worker(worker, &[]);
        let python = Producer::new(&services);
        (services, proc, python)
    }

    /// [`Services::with_worker`] (name, database, worker id), then the bootstrap of
    /// `fixture`; returns its final state too.
    pub async fn bootstrapped(
        (name, db, worker): (&str, u32, &str),
        fixture: &str,
    ) -> (Self, WorkerProc, Producer, Value) {
        let (services, proc, mut python) = Services::with_worker(name, db, worker).await;
        let (_, r) = services.bootstrap_fixture(&mut python, fixture).await;
        (services, proc, python, r)
    }

    /// [`Services::bootstrap`] of the fixture payload `fixture`, its expiries from now.
    pub async fn bootstrap_fixture(&self, python: &mut Producer, fixture: &str) -> (String, Value) {
        let payload = support::fresh_bootstrap_payload(fixture, chrono::Utc::now(), 365);
        self.bootstrap(python, payload).await
    }

    /// The Redis broker's `metadata_repository` queue: messages waiting, and messages
    /// delivered and not acknowledged (kombu's `unacked`).
    pub async fn redis_queue(&self) -> (u64, u64) {
        let client = redis::Client::open(self.broker.as_str()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let (ready, unacked): (u64, u64) = redis::pipe()
            .cmd("LLEN")
            .arg("metadata_repository")
            .cmd("HLEN")
            .arg("unacked")
            .query_async(&mut c)
            .await
            .unwrap();
        (ready, unacked)
    }

    /// [`client_accepts`] on this repository.
    pub fn client_accepts(&self, present: Value, absent: Value) {
        client_accepts(self.dir.path(), &self.storage, present, absent);
    }

    /// A bootstrap as the API sends it: `BOOTSTRAP = pre-<id>`, then the task; returns the
    /// task id and its final state as `Producer::result` reports it.
    pub async fn bootstrap(&self, python: &mut Producer, payload: Value) -> (String, Value) {
        let boot = task_id();
        self.set_setting("BOOTSTRAP", &format!("pre-{boot}")).await;
        python.send("metadata_repository", &boot, "bootstrap", payload);
        let r = python.wait_final(&boot, Duration::from_secs(120));
        (boot, r)
    }

    /// A repository setting as stored (dynaconf's text, `@json …`, `@none `), if set.
    pub async fn setting(&self, key: &str) -> Option<String> {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:6379/{}", self.settings_db)).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("HGET")
            .arg("DYNACONF_MAIN")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap()
    }

    /// The metadata waiting for signatures of `role` (`<ROLE>_SIGNING`), as the API's
    /// `GET /api/v1/metadata/sign` hands it to the CLI.
    pub async fn pending(&self, role: &str) -> Value {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:6379/{}", self.settings_db)).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let raw: String = redis::cmd("HGET")
            .arg("DYNACONF_MAIN")
            .arg(format!("{}_SIGNING", role.to_uppercase()))
            .query_async(&mut c)
            .await
            .unwrap();
        serde_json::from_str(raw.strip_prefix("@json ").unwrap()).unwrap()
    }

    /// Pushes raw bytes onto a Redis broker queue, as a broken producer might.
    pub async fn push_raw(&self, queue: &str, bytes: &[u8]) {
        let client = redis::Client::open(self.broker.as_str()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("LPUSH")
            .arg(queue)
            .arg(bytes)
            .query_async(&mut c)
            .await
            .unwrap();
    }

    /// Publishes raw bytes with `headers` to a RabbitMQ queue through the default exchange.
    pub async fn publish_raw(&self, queue: &str, headers: &Value, body: &[u8]) {
        use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
        let conn = lapin::Connection::connect(&self.broker, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        let mut table = FieldTable::default();
        for (k, v) in headers.as_object().unwrap() {
            let value = match v.as_str() {
                Some(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
                None => AMQPValue::Void,
            };
            table.insert(ShortString::from(k.as_str()), value);
        }
        channel
            .basic_publish(
                ShortString::from(""),
                ShortString::from(queue),
                lapin::options::BasicPublishOptions::default(),
                body,
                lapin::BasicProperties::default()
                    .with_content_type(ShortString::from("application/json"))
                    .with_headers(table),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        conn.close(200, ShortString::from("OK")).await.unwrap();
    }

    /// Starts a worker process named `id`, with extra environment.
    pub fn worker(&self, id: &str, extra: &[(&str, &str)]) -> WorkerProc {
        let log = self.dir.path().join(format!("{id}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rstuf-worker"));
        cmd.arg("worker")
            .env_clear()
            .env("RSTUF_STORAGE_BACKEND", "LocalStorage")
            .env("RSTUF_LOCAL_STORAGE_BACKEND_PATH", &self.storage)
            .env("RSTUF_REDIS_SERVER", "redis://127.0.0.1")
            .env("RSTUF_REDIS_SERVER_DB_RESULT", self.results_db.to_string())
            .env(
                "RSTUF_REDIS_SERVER_DB_REPO_SETTINGS",
                self.settings_db.to_string(),
            )
            .env("RSTUF_BROKER_SERVER", &self.broker)
            .env("RSTUF_DB_SERVER", &self.db)
            .env("RSTUF_ONLINE_KEY_DIR", support::fixture("keys"))
            .env("RSTUF_WORKER_ID", id)
            .env("RSTUF_WORKER_CONCURRENCY", "2")
            // The schedule shares db 0 with every test; only the schedule test turns it on.
            .env("RSTUF_BUMP_ONLINE_ROLES_INTERVAL", "0")
            .env("DATA_DIR", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let worker = WorkerProc { child, log };
        worker.wait_for_log("ready", Duration::from_secs(30));
        worker
    }
}

/// A running `rstuf-worker worker`; killed when dropped.
pub struct WorkerProc {
    pub child: Child,
    pub log: PathBuf,
}

impl WorkerProc {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle`.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.log_text().contains(needle) {
            assert!(
                start.elapsed() < limit,
                "worker never logged {needle:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends a signal (`TERM`, `KILL`).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python side: a Celery app configured like the RSTUF API.
pub struct Producer {
    oracle: support::PythonOracle,
    broker: String,
    backend: String,
}

impl Producer {
    pub fn new(services: &Services) -> Self {
        Producer {
            oracle: support::PythonOracle::start("celery_producer.py"),
            broker: services.broker.clone(),
            backend: services.backend.clone(),
        }
    }

    /// Sends `action` with `payload` to `queue` as task `task_id`.
    pub fn send(&mut self, queue: &str, task_id: &str, action: &str, payload: Value) {
        let sent = self.oracle.ask(&json!({"op": "send", "broker": self.broker,
            "backend": self.backend, "queue": queue, "task_id": task_id,
            "action": action, "payload": payload}));
        assert_eq!(sent["sent"], json!(task_id), "{sent}");
    }

    /// Sends a task whose payload is this JSON text, objects in its order (as the API sends
    /// what it received; a `Value` would sort them).
    pub fn send_text(&mut self, task_id: &str, action: &str, payload_json: &str) {
        let sent = self.oracle.ask(&json!({"op": "send", "broker": self.broker,
            "backend": self.backend, "queue": "metadata_repository", "task_id": task_id,
            "action": action, "payload_json": payload_json}));
        assert_eq!(sent["sent"], json!(task_id), "{sent}");
    }

    /// Sends a task not to run before `countdown` seconds from now (Celery's `eta` header).
    pub fn send_later(&mut self, task_id: &str, action: &str, payload: Value, countdown: u64) {
        let sent = self.oracle.ask(&json!({"op": "send", "broker": self.broker,
            "backend": self.backend, "queue": "metadata_repository", "task_id": task_id,
            "action": action, "payload": payload, "countdown": countdown}));
        assert_eq!(sent["sent"], json!(task_id), "{sent}");
    }

    /// Sends another task name with raw kwargs.
    pub fn send_raw(&mut self, queue: &str, task_id: &str, task: &str, kwargs: Value) {
        let sent = self
            .oracle
            .ask(&json!({"op": "send_raw", "broker": self.broker,
            "backend": self.backend, "queue": queue, "task_id": task_id,
            "task": task, "kwargs": kwargs}));
        assert_eq!(sent["sent"], json!(task_id), "{sent}");
    }

    /// What `AsyncResult` and the API make of the task now.
    pub fn result(&mut self, task_id: &str) -> Value {
        self.oracle
            .ask(&json!({"op": "result", "broker": self.broker,
            "backend": self.backend, "task_id": task_id}))
    }

    /// Sends `action` to `metadata_repository` and expects SUCCESS as the API shows it;
    /// returns the result the API shows.
    pub fn run(&mut self, action: &str, payload: Value) -> Value {
        let id = task_id();
        self.send("metadata_repository", &id, action, payload);
        let r = self.wait_final(&id, Duration::from_secs(120));
        assert_eq!(r["api_state"], "SUCCESS", "{action}: {r}");
        r["api_result"].clone()
    }

    /// Adds one artifact through [`Producer::run`]; returns the roles it went to.
    pub fn add_artifact(&mut self, path: &str, info: &Value) -> Value {
        let payload = json!({"artifacts": [{"path": path, "info": info}]});
        self.run("add_artifacts", payload)["details"]["artifact_roles"].clone()
    }

    /// As [`Producer::wait_final`], but returns the last state seen at the limit instead of
    /// failing, so the caller can say more.
    pub fn result_within(&mut self, task_id: &str, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let r = self.result(task_id);
            let done = matches!(r["state"].as_str(), Some("SUCCESS" | "FAILURE" | "REVOKED"));
            if done || start.elapsed() > limit {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls until the task is in a final state (SUCCESS, FAILURE, REVOKED).
    pub fn wait_final(&mut self, task_id: &str, limit: Duration) -> Value {
        let r = self.result_within(task_id, limit);
        let done = matches!(r["state"].as_str(), Some("SUCCESS" | "FAILURE" | "REVOKED"));
        assert!(done, "task {task_id} not final: {r}");
        r
    }
}

/// A new task id as the API makes them (`uuid4().hex`).
pub fn task_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A bootstrap payload signed now with the fixture keys.
pub fn bootstrap_payload() -> Value {
    support::fresh_bootstrap_payload("bootstrap/payload_bins.json", chrono::Utc::now(), 365)
}

/// python-tuf's client, from the repository's first root, finds `present` and not `absent`.
pub fn client_accepts(dir: &Path, storage: &Path, present: Value, absent: Value) {
    let mut oracle = support::PythonOracle::start("client_oracle.py");
    let seen = oracle.ask(&json!({
        "repo": storage, "client": dir.join(format!("client-{}", task_id())), "fresh": true,
        "time": null, "present": present, "absent": absent,
    }));
    assert_eq!(seen["ok"], true, "{seen}");
}

/// python-tuf's client keeping its trusted state between refreshes.
pub struct Client {
    oracle: support::PythonOracle,
    dir: PathBuf,
    storage: PathBuf,
}

impl Client {
    pub fn new(services: &Services) -> Self {
        Client {
            oracle: support::PythonOracle::start("client_oracle.py"),
            dir: services.dir.path().join(format!("client-{}", task_id())),
            storage: services.storage.clone(),
        }
    }

    /// Refreshes (from 1.root.json when `fresh`, else from what it trusted before) and
    /// checks the artifacts; returns the versions it trusts.
    pub fn refresh(&mut self, fresh: bool, present: Value, absent: Value) -> Value {
        let seen = self.oracle.ask(&json!({
            "repo": self.storage, "client": self.dir, "fresh": fresh, "time": null,
            "present": present, "absent": absent,
        }));
        assert_eq!(seen["ok"], true, "{seen}");
        seen["versions"].clone()
    }
}
