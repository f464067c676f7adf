//! Helpers shared by the workspace's tests: where the workspace, its fixtures and the
//! Python oracles (python-tuf, securesystemslib, dynaconf from PyPI) are, and fresh API
//! payloads signed with the fixture keys the way the RSTUF CLI signs them.

#![warn(missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};

use chrono::{DateTime, Duration, Utc};
use rstuf_metadata::keys::PrivateKey;
use rstuf_metadata::schema::{Expires, Metadata, Root};
use serde_json::Value;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A fixture file under the workspace's `tests/fixtures` (see its README for where each came
/// from).
pub fn fixture(rel: &str) -> PathBuf {
    workspace_root().join("tests/fixtures").join(rel)
}

/// The Python interpreter of the interop virtualenv (`RSTUF_TEST_PYTHON`, else `.venv/bin/python`).
/// Panics with the command to run when it is missing: interop tests never skip themselves.
pub fn python() -> PathBuf {
    let p = match std::env::var_os("RSTUF_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(".venv/bin/python"),
    };
    assert!(
        p.exists(),
        "Python interop virtualenv not found at {}: run scripts/python-env.sh",
        p.display()
    );
    p
}

/// Runs `tests/python/<script>` with `args`, feeding `stdin`; returns stdout, panics on failure.
pub fn run_python(script: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let path = workspace_root().join("tests/python").join(script);
    let mut child = Command::new(python())
        .arg(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("python output");
    assert!(
        out.status.success(),
        "{script} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `tests/python/<script>` with a JSON request on stdin and parses its JSON answer.
pub fn python_json(script: &str, args: &[&str], request: &Value) -> Value {
    let out = run_python(script, args, &serde_json::to_vec(request).expect("JSON"));
    serde_json::from_slice(&out).expect("the oracle answers JSON")
}

/// A long-lived `tests/python/<script>` answering one JSON line per JSON request line, for
/// oracles asked hundreds of times (python-tuf's client over a simulated month).
#[derive(Debug)]
pub struct PythonOracle {
    script: String,
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl PythonOracle {
    /// Starts the script.
    pub fn start(script: &str) -> PythonOracle {
        let path = workspace_root().join("tests/python").join(script);
        let mut child = Command::new(python())
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn python");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        PythonOracle {
            script: script.to_string(),
            child,
            stdout,
        }
    }

    /// Sends one request and reads its answer; panics if the oracle died.
    pub fn ask(&mut self, request: &Value) -> Value {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        let mut line = serde_json::to_vec(request).expect("JSON");
        line.push(b'\n');
        stdin.write_all(&line).expect("write request");
        stdin.flush().expect("flush request");
        let mut answer = String::new();
        let n = self.stdout.read_line(&mut answer).expect("read answer");
        assert!(n > 0, "{} exited without answering", self.script);
        serde_json::from_str(&answer).expect("the oracle answers JSON")
    }
}

impl Drop for PythonOracle {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The test PostgreSQL server (`RSTUF_TEST_POSTGRES`, else 127.0.0.1:5432 as user postgres).
pub fn postgres_server() -> String {
    std::env::var("RSTUF_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A new empty database named after `name` and the process (a leftover of the same name is
/// dropped first); returns its URL.
pub async fn fresh_postgres_db(name: &str) -> String {
    recreate_postgres_db(&format!("rstuf_test_{name}_{}", std::process::id())).await
}

/// Drops database `db` if it exists and creates it empty; returns its URL.
pub async fn recreate_postgres_db(db: &str) -> String {
    use sqlx::{Connection, Executor};
    let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", postgres_server()))
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (scripts/services.sh starts it)");
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .await
        .expect("drop the leftover database");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .await
        .expect("create the database");
    format!("{}/{db}", postgres_server())
}

/// Creates the reference worker's exact schema (its alembic DDL,
/// `tests/fixtures/reference-worker/transcripts/ddl_pg.sql`) in the database at `url`, and
/// returns the connection for any rows a test adds.
pub async fn create_reference_schema(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    let ddl = std::fs::read_to_string(fixture("reference-worker/transcripts/ddl_pg.sql"))
        .expect("schema fixture");
    let mut c = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to the test database");
    sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
        .execute(&mut c)
        .await
        .expect("the reference schema applies");
    c
}

/// An API payload from `tests/fixtures/api-payloads/<rel>`.
pub fn api_payload(rel: &str) -> Value {
    let bytes = std::fs::read(fixture(&format!("api-payloads/{rel}"))).expect("payload fixture");
    serde_json::from_slice(&bytes).expect("payload JSON")
}

/// The private half of a fixture root key, by key id (the CLI test keys, password `hunter2`).
pub fn root_signing_key(keyid: &str) -> Option<PrivateKey> {
    let file = match keyid {
        "c6d8bf2e4f48b41ac2ce8eca21415ca8ef68c133b47fc33df03d4070a7e1e9cc" => "JH.ed25519",
        "50d7e110ad65f3b2dba5c3cfc8c5ca259be9774cc26be3410044ffd4be3aa5f3" => "JJ.ecdsa",
        "2f685fa7546f1856b123223ab086b3def14c89d24eef18f49c32508c2f60e241" => "JC.rsa",
        _ => return None,
    };
    let pem = std::fs::read(fixture(&format!("keys/{file}"))).expect("key fixture");
    Some(PrivateKey::from_pem(&pem, Some(b"hunter2")).expect("fixture key loads"))
}

/// The online key of the fixtures (RSA, PKCS#1 PEM), with its key id.
pub fn online_key() -> (String, PrivateKey) {
    let id = "0d9d3d4bad91c455bc03921daa95774576b86625ac45570d0cac025b08e65043";
    let pem = std::fs::read(fixture(&format!("keys/{id}"))).expect("online key fixture");
    (
        id.to_string(),
        PrivateKey::from_pem(&pem, None).expect("online key loads"),
    )
}

/// A fixture bootstrap payload whose root expires `days` after `now`, re-signed by the same
/// keys that signed the original (the fixture roots expired in 2025-2026).
pub fn fresh_bootstrap_payload(rel: &str, now: DateTime<Utc>, days: i64) -> Value {
    let mut payload = api_payload(rel);
    let mut root = Metadata::<Root>::from_value(payload["metadata"]["root"].clone()).expect("root");
    root.signed.expires = Expires::at(now + Duration::days(days));
    let signers: Vec<String> = root.signatures.iter().map(|s| s.keyid.clone()).collect();
    root.signatures.clear();
    for keyid in signers {
        let key = root_signing_key(&keyid).expect("a fixture key signed this root");
        root.sign_with(&keyid, |m| key.sign(m)).expect("signs");
    }
    payload["metadata"]["root"] = root.to_value().expect("root value");
    payload
}

/// Every signature scheme RSTUF keys use, as securesystemslib names them.
pub const SCHEMES: [&str; 9] = [
    "ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "rsassa-pss-sha256",
    "rsassa-pss-sha384",
    "rsassa-pss-sha512",
    "rsa-pkcs1v15-sha256",
    "rsa-pkcs1v15-sha384",
    "rsa-pkcs1v15-sha512",
];

/// A key for `scheme` (one of [`SCHEMES`]): a new one for ed25519 and ECDSA; RSA schemes reuse
/// the fixture RSA online key (generating RSA keys is slow).
pub fn key_for_scheme(scheme: &str) -> PrivateKey {
    match scheme {
        "ed25519" => PrivateKey::generate_ed25519(),
        "ecdsa-sha2-nistp256" => PrivateKey::generate_ecdsa_p256(),
        "ecdsa-sha2-nistp384" => PrivateKey::generate_ecdsa_p384(),
        rsa_scheme => online_key()
            .1
            .with_scheme(rsa_scheme)
            .expect("an RSA scheme"),
    }
}

/// SplitMix64: a small, deterministic, seeded generator for differential tests, so a failure
/// reproduces from its seed.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Between `min` and `max` pieces of `alphabet`, joined.
    pub fn string(&mut self, alphabet: &[&str], min: u64, max: u64) -> String {
        let n = min + self.below(max - min + 1);
        (0..n).map(|_| *self.pick(alphabet)).collect()
    }
}
