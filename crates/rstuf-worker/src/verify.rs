//! `rstuf-worker verify DIR`: reads a local metadata directory and prints the audit.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use rstuf_metadata::audit::{self, AuditOptions, MetadataSource, RoleReport};

/// A directory of metadata files, read into memory up front.
struct Dir(BTreeMap<String, Vec<u8>>);

impl Dir {
    fn read(dir: &Path) -> anyhow::Result<Self> {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".json") {
                continue;
            }
            let bytes = std::fs::read(entry.path())
                .with_context(|| format!("reading {}", entry.path().display()))?;
            files.insert(name, bytes);
        }
        Ok(Dir(files))
    }
}

impl MetadataSource for Dir {
    fn list(&self) -> Vec<String> {
        self.0.list()
    }
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        self.0.get(name).cloned()
    }
}

fn line(r: &RoleReport) -> String {
    let version = r
        .version
        .map(|v| format!("v{v}"))
        .unwrap_or_else(|| "-".into());
    let expires = r
        .expires
        .map(|e| format!(" expires {e}"))
        .unwrap_or_default();
    let status = if r.ok() { "ok  " } else { "FAIL" };
    let mut out = format!("{status} {:<12} {version}{expires}", r.role);
    for p in &r.problems {
        out.push_str(&format!("; {p}"));
    }
    for n in &r.notes {
        out.push_str(&format!("; note: {n}"));
    }
    out
}

/// Runs the audit and prints one line per role; exit 0 when a client accepts the repository.
pub fn run(
    dir: &Path,
    time: Option<chrono::DateTime<chrono::Utc>>,
    root: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let files = Dir::read(dir)?;
    let trusted_root = match root {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let options = AuditOptions {
        reference_time: time.unwrap_or_else(chrono::Utc::now),
        trusted_root,
    };
    let report = audit::audit(&files, &options);
    for r in &report.roles {
        println!("{}", line(r));
    }
    for n in &report.notes {
        println!("note {n}");
    }
    let failed = report.roles.iter().filter(|r| !r.ok()).count();
    if report.accepted() {
        println!(
            "ACCEPTED: {} roles verified at {}",
            report.roles.len(),
            options.reference_time.format("%Y-%m-%dT%H:%M:%SZ")
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("REJECTED: {failed} of {} roles fail", report.roles.len());
        Ok(ExitCode::from(1))
    }
}
