//! Helpers shared by the integration tests: where the workspace, the shared fixtures and the
//! Python oracle (python-tuf, securesystemslib from PyPI) are.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// `../shared` beside the project root, or `RSTUF_SHARED`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("RSTUF_SHARED") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join("../shared"),
    }
}

/// A fixture file under `../shared/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    shared_dir().join("fixtures").join(rel)
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
