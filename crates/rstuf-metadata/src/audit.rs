//! Checks a repository's metadata files the way a TUF client (python-tuf ngclient) would, and
//! a little more: the whole root chain, the current timestamp, snapshot, targets and every
//! delegated role the snapshot lists, plus the history of versions kept in storage (every
//! stored version must be signed by a key set that was trusted for it, and no snapshot may
//! list a lower version of a role than an earlier snapshot did).
//!
//! Files come from a [`MetadataSource`], so this module does no I/O itself.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::schema::{Expires, MetaFile, Metadata, Root, Signed, Snapshot, Targets, Timestamp};

/// Where the audit reads metadata files from (a directory, a bucket, a map in tests).
pub trait MetadataSource {
    /// Names of all files (no directories), such as `1.root.json` and `timestamp.json`.
    fn list(&self) -> Vec<String>;
    /// The bytes of a file, or `None` if it does not exist.
    fn read(&self, name: &str) -> Option<Vec<u8>>;
}

impl MetadataSource for BTreeMap<String, Vec<u8>> {
    fn list(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        self.get(name).cloned()
    }
}

/// How to audit.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Expiry is judged at this time.
    pub reference_time: DateTime<Utc>,
    /// Start of trust; `None` means the repository's own `1.root.json` (trust on first use).
    pub trusted_root: Option<Vec<u8>>,
}

/// What the audit found for one role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleReport {
    /// Role name (`root`, `timestamp`, `bins-3f`, ...).
    pub role: String,
    /// The version a client ends up trusting, if any.
    pub version: Option<u64>,
    /// Its expiry.
    pub expires: Option<Expires>,
    /// Reasons a client would reject the repository.
    pub problems: Vec<String>,
    /// Things worth knowing that a client does not reject.
    pub notes: Vec<String>,
}

impl RoleReport {
    fn new(role: &str) -> Self {
        RoleReport {
            role: role.to_string(),
            ..Default::default()
        }
    }

    /// Whether nothing about this role makes a client reject the repository.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The audit result: one report per role, in client order (root, timestamp, snapshot,
/// targets, delegated roles).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Per-role findings.
    pub roles: Vec<RoleReport>,
    /// Findings about files that belong to no role.
    pub notes: Vec<String>,
}

impl Report {
    /// Whether a client would accept the repository.
    pub fn accepted(&self) -> bool {
        self.roles.iter().all(RoleReport::ok)
    }

    fn role_mut(&mut self, role: &str) -> &mut RoleReport {
        if let Some(i) = self.roles.iter().position(|r| r.role == role) {
            &mut self.roles[i]
        } else {
            self.roles.push(RoleReport::new(role));
            self.roles.last_mut().expect("just pushed")
        }
    }
}

/// Versioned files by role name, from file names `<version>.<role>.json`.
#[derive(Debug, Default)]
struct FileIndex {
    versions: BTreeMap<String, BTreeSet<u64>>,
    timestamp: bool,
    other: Vec<String>,
}

impl FileIndex {
    fn new(names: Vec<String>) -> Self {
        let mut index = FileIndex::default();
        for name in names {
            if name == "timestamp.json" {
                index.timestamp = true;
                continue;
            }
            let parsed = name.strip_suffix(".json").and_then(|stem| {
                let (v, role) = stem.split_once('.')?;
                let version: u64 = v
                    .parse()
                    .ok()
                    .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))?;
                (!role.is_empty()).then(|| (version, role.to_string()))
            });
            match parsed {
                Some((version, role)) => {
                    index.versions.entry(role).or_default().insert(version);
                }
                None => index.other.push(name),
            }
        }
        index
    }

    fn versions(&self, role: &str) -> impl Iterator<Item = u64> + '_ {
        self.versions.get(role).into_iter().flatten().copied()
    }
}

fn file_name(role: &str, version: u64) -> String {
    format!("{version}.{role}.json")
}

/// How a file differs from the meta entry that refers to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum MetaFileError {
    /// Its length is not the one listed.
    #[error("length {actual} differs from {listed} in meta")]
    Length { actual: u64, listed: u64 },
    /// A hash is listed with an algorithm we do not compute.
    #[error("unsupported hash algorithm {0}")]
    UnsupportedHash(String),
    /// Its hash is not the one listed.
    #[error("{0} hash differs from meta")]
    HashDiffers(String),
}

/// Checks `bytes` against the length and hashes a meta entry gives, if it gives any.
fn check_meta_file(meta: &MetaFile, bytes: &[u8]) -> Result<(), MetaFileError> {
    if let Some(len) = meta.length
        && len != bytes.len() as u64
    {
        return Err(MetaFileError::Length {
            actual: bytes.len() as u64,
            listed: len,
        });
    }
    for (alg, want) in meta.hashes.iter().flatten() {
        let got = match alg.as_str() {
            "sha256" => hex::encode(Sha256::digest(bytes)),
            "sha384" => hex::encode(Sha384::digest(bytes)),
            "sha512" => hex::encode(Sha512::digest(bytes)),
            other => return Err(MetaFileError::UnsupportedHash(other.into())),
        };
        if &got != want {
            return Err(MetaFileError::HashDiffers(alg.clone()));
        }
    }
    Ok(())
}

struct Auditor<'a, S: MetadataSource> {
    src: &'a S,
    files: FileIndex,
    now: DateTime<Utc>,
    report: Report,
}

/// Audits the repository in `src`.
pub fn audit<S: MetadataSource>(src: &S, options: &AuditOptions) -> Report {
    let mut a = Auditor {
        src,
        files: FileIndex::new(src.list()),
        now: options.reference_time,
        report: Report::default(),
    };
    a.run(options.trusted_root.as_deref());
    a.report
}

impl<S: MetadataSource> Auditor<'_, S> {
    fn problem(&mut self, role: &str, msg: impl Into<String>) {
        self.report.role_mut(role).problems.push(msg.into());
    }

    fn note(&mut self, role: &str, msg: impl Into<String>) {
        self.report.role_mut(role).notes.push(msg.into());
    }

    fn load<T: Signed>(&mut self, role: &str, name: &str) -> Option<(Metadata<T>, Vec<u8>)> {
        let Some(bytes) = self.src.read(name) else {
            self.problem(role, format!("{name} not found"));
            return None;
        };
        match Metadata::<T>::from_bytes(&bytes) {
            Ok(md) => Some((md, bytes)),
            Err(e) => {
                self.problem(role, format!("{name}: {e}"));
                None
            }
        }
    }

    fn trusted(&mut self, role: &str, version: u64, expires: Expires) {
        let now = self.now;
        let r = self.report.role_mut(role);
        r.version = Some(version);
        r.expires = Some(expires);
        if now >= expires.0 {
            r.problems.push(format!("v{version} expired at {expires}"));
        }
    }

    fn run(&mut self, trusted_root: Option<&[u8]>) {
        let Some(chain) = self.root_chain(trusted_root) else {
            return;
        };
        let root = chain.last().expect("chain is never empty").signed.clone();
        let Some(snapshot) = self.timestamp_and_snapshot(&root) else {
            self.snapshot_history(&chain, None);
            return;
        };
        let targets = self.targets(&root, &snapshot);
        self.snapshot_history(&chain, Some(&snapshot));
        let targets_history = self.top_level_history::<Targets>("targets", &chain);
        if let Some(targets) = targets {
            self.delegated_roles(&snapshot, &targets, &targets_history);
        }
        let known: BTreeSet<String> = self.report.roles.iter().map(|r| r.role.clone()).collect();
        for (role, versions) in &self.files.versions {
            if !known.contains(role) {
                let versions: Vec<String> = versions.iter().map(u64::to_string).collect();
                self.report.notes.push(format!(
                    "{role}: versions {} stored but not reachable from the snapshot",
                    versions.join(",")
                ));
            }
        }
        for other in std::mem::take(&mut self.files.other) {
            self.report.notes.push(format!(
                "{other}: not a metadata file name a client would fetch"
            ));
        }
    }

    /// Loads the trusted root and every next version, as `Updater.refresh` does.
    fn root_chain(&mut self, trusted_root: Option<&[u8]>) -> Option<Vec<Metadata<Root>>> {
        let first = match trusted_root {
            Some(bytes) => match Metadata::<Root>::from_bytes(bytes) {
                Ok(md) => md,
                Err(e) => {
                    self.problem("root", format!("trusted root: {e}"));
                    return None;
                }
            },
            None => self.load::<Root>("root", "1.root.json")?.0,
        };
        if let Err(e) = first.signed.verify_delegate("root", &first) {
            self.problem("root", format!("v{}: {e}", first.signed.version));
            return None;
        }
        let mut chain = vec![first];
        loop {
            let current = chain.last().expect("non-empty");
            let next = current.signed.version + 1;
            let name = file_name("root", next);
            if self.src.read(&name).is_none() {
                break;
            }
            let Some((md, _)) = self.load::<Root>("root", &name) else {
                break;
            };
            let checks = (|| {
                if md.signed.version != next {
                    return Err(format!(
                        "{name}: expected version {next}, got {}",
                        md.signed.version
                    ));
                }
                current.signed.verify_delegate("root", &md).map_err(|e| {
                    format!("{name}: not trusted by v{}: {e}", current.signed.version)
                })?;
                md.signed
                    .verify_delegate("root", &md)
                    .map_err(|e| format!("{name}: not self-signed: {e}"))?;
                Ok(())
            })();
            if let Err(msg) = checks {
                self.problem("root", msg);
                break;
            }
            chain.push(md);
        }
        let last = chain.last().expect("non-empty");
        let (version, expires) = (last.signed.version, last.signed.expires);
        let first_version = chain[0].signed.version;
        self.trusted("root", version, expires);
        if chain.len() > 1 {
            self.note("root", format!("chain v{first_version}..v{version}"));
        }
        let beyond: Vec<u64> = self
            .files
            .versions("root")
            .filter(|v| *v > version + 1)
            .collect();
        if !beyond.is_empty() {
            self.note(
                "root",
                format!("root versions {beyond:?} are not reachable (gap after v{version})"),
            );
        }
        Some(chain)
    }

    fn timestamp_and_snapshot(&mut self, root: &Root) -> Option<Metadata<Snapshot>> {
        let (ts, _) = self.load::<Timestamp>("timestamp", "timestamp.json")?;
        if let Err(e) = root.verify_delegate("timestamp", &ts) {
            self.problem("timestamp", e.to_string());
        }
        self.trusted("timestamp", ts.signed.version, ts.signed.expires);
        let meta = ts.signed.snapshot_meta()?.clone();
        let name = if root.consistent_snapshot == Some(false) {
            "snapshot.json".to_string()
        } else {
            file_name("snapshot", meta.version)
        };
        let (snap, bytes) = self.load::<Snapshot>("snapshot", &name)?;
        self.check_referenced(
            "snapshot",
            &name,
            &meta,
            &bytes,
            snap.signed.version,
            "timestamp",
        );
        if let Err(e) = root.verify_delegate("snapshot", &snap) {
            self.problem("snapshot", e.to_string());
        }
        self.trusted("snapshot", snap.signed.version, snap.signed.expires);
        let newer: Vec<u64> = self
            .files
            .versions("snapshot")
            .filter(|v| *v > meta.version)
            .collect();
        if !newer.is_empty() {
            self.note(
                "snapshot",
                format!("versions {newer:?} stored but not named by the timestamp"),
            );
        }
        Some(snap)
    }

    fn check_referenced(
        &mut self,
        role: &str,
        name: &str,
        meta: &MetaFile,
        bytes: &[u8],
        version: u64,
        by: &str,
    ) {
        if version != meta.version {
            self.problem(
                role,
                format!(
                    "{name}: version {version}, but {by} lists v{}",
                    meta.version
                ),
            );
        }
        if let Err(e) = check_meta_file(meta, bytes) {
            self.problem(role, format!("{name}: {e}"));
        }
    }

    fn targets(&mut self, root: &Root, snapshot: &Metadata<Snapshot>) -> Option<Targets> {
        let Some(meta) = snapshot.signed.meta.get("targets.json").cloned() else {
            self.problem(
                "targets",
                format!(
                    "snapshot v{} has no targets.json entry",
                    snapshot.signed.version
                ),
            );
            return None;
        };
        let name = file_name("targets", meta.version);
        let (md, bytes) = self.load::<Targets>("targets", &name)?;
        self.check_referenced(
            "targets",
            &name,
            &meta,
            &bytes,
            md.signed.version,
            "snapshot",
        );
        if let Err(e) = root.verify_delegate("targets", &md) {
            self.problem("targets", e.to_string());
        }
        self.trusted("targets", md.signed.version, md.signed.expires);
        Some(md.signed)
    }

    /// Every stored snapshot version: signed by some trusted root, and no rollback of any role
    /// between consecutive stored versions.
    fn snapshot_history(&mut self, chain: &[Metadata<Root>], current: Option<&Metadata<Snapshot>>) {
        let versions: Vec<u64> = self.files.versions("snapshot").collect();
        let mut previous: Option<Snapshot> = None;
        for v in versions {
            let name = file_name("snapshot", v);
            let loaded = match current {
                Some(c) if c.signed.version == v => Some(c.clone()),
                _ => self.load::<Snapshot>("snapshot", &name).map(|(md, _)| md),
            };
            let Some(md) = loaded else {
                previous = None;
                continue;
            };
            if md.signed.version != v {
                self.problem(
                    "snapshot",
                    format!("{name}: holds version {}", md.signed.version),
                );
            }
            if !signed_by_any_root(chain, "snapshot", &md) {
                self.problem(
                    "snapshot",
                    format!("{name}: not signed by the snapshot keys of any trusted root version"),
                );
            }
            if let Some(prev) = &previous {
                for (file, old) in &prev.meta {
                    let role = file.strip_suffix(".json").unwrap_or(file);
                    match md.signed.meta.get(file) {
                        None => self.problem(
                            "snapshot",
                            format!("{name}: drops {role}, which v{} listed (a client rejects this snapshot)", prev.version),
                        ),
                        Some(new) if new.version < old.version => self.problem(
                            "snapshot",
                            format!(
                                "{name}: lists {role} v{}, lower than v{} in snapshot v{} (rollback of {role})",
                                new.version, old.version, prev.version
                            ),
                        ),
                        Some(_) => {}
                    }
                }
            }
            previous = Some(md.signed);
        }
    }

    /// Every stored version of a top-level role must be signed by the role's keys in some
    /// trusted root. Returns the versions that verified.
    fn top_level_history<T: Signed>(&mut self, role: &str, chain: &[Metadata<Root>]) -> Vec<T> {
        let mut ok = Vec::new();
        let versions: Vec<u64> = self.files.versions(role).collect();
        for v in versions {
            let name = file_name(role, v);
            let Some((md, _)) = self.load::<T>(role, &name) else {
                continue;
            };
            if md.signed.version() != v {
                self.problem(
                    role,
                    format!("{name}: holds version {}", md.signed.version()),
                );
            } else if !signed_by_any_root(chain, role, &md) {
                self.problem(
                    role,
                    format!("{name}: not signed by the {role} keys of any trusted root version"),
                );
            } else {
                ok.push(md.signed);
            }
        }
        ok
    }

    fn delegated_roles(
        &mut self,
        snapshot: &Metadata<Snapshot>,
        targets: &Targets,
        targets_history: &[Targets],
    ) {
        let delegations = targets.delegations.as_ref();
        let delegated: Vec<String> = delegations.map(|d| d.role_names()).unwrap_or_default();
        let bins = delegations.is_some_and(|d| d.succinct_roles.is_some());
        let listed: BTreeSet<String> = snapshot
            .signed
            .meta
            .keys()
            .filter(|k| k.as_str() != "targets.json")
            .map(|k| k.strip_suffix(".json").unwrap_or(k).to_string())
            .collect();

        for role in &delegated {
            let Some(meta) = snapshot.signed.meta.get(&format!("{role}.json")).cloned() else {
                if bins {
                    self.problem(
                        role,
                        format!(
                            "delegated by targets but missing from snapshot v{}",
                            snapshot.signed.version
                        ),
                    );
                } else {
                    self.note(
                        role,
                        "delegated by targets, not in the snapshot yet (pending signatures?)",
                    );
                }
                continue;
            };
            let name = file_name(role, meta.version);
            if let Some((md, bytes)) = self.load::<Targets>(role, &name) {
                self.check_referenced(role, &name, &meta, &bytes, md.signed.version, "snapshot");
                if let Err(e) = targets.verify_delegate(role, &md) {
                    self.problem(role, e.to_string());
                }
                self.trusted(role, md.signed.version, md.signed.expires);
            }
            self.delegated_history(role, meta.version, targets_history);
        }
        let delegated: BTreeSet<String> = delegated.into_iter().collect();
        for role in listed.difference(&delegated) {
            self.note(
                role,
                "listed in the snapshot but no longer delegated by targets",
            );
        }
    }

    /// Older stored versions of a delegated role must each be signed by the role's keys in
    /// some stored targets version.
    fn delegated_history(&mut self, role: &str, current: u64, targets_history: &[Targets]) {
        let versions: Vec<u64> = self
            .files
            .versions(role)
            .filter(|v| *v != current)
            .collect();
        for v in versions {
            let name = file_name(role, v);
            let Some((md, _)) = self.load::<Targets>(role, &name) else {
                continue;
            };
            if md.signed.version != v {
                self.problem(role, format!("{name}: holds version {}", md.signed.version));
                continue;
            }
            let signed = targets_history
                .iter()
                .any(|t| t.verify_delegate(role, &md).is_ok());
            if !signed {
                self.problem(role, format!("{name}: not signed by the keys any stored targets version delegates to {role}"));
            }
            if v > current {
                self.note(
                    role,
                    format!("{name} stored but the snapshot lists v{current}"),
                );
            }
        }
    }
}

fn signed_by_any_root<T: Signed>(chain: &[Metadata<Root>], role: &str, md: &Metadata<T>) -> bool {
    chain
        .iter()
        .any(|r| r.signed.verify_delegate(role, md).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_file_mismatches_keep_their_texts() {
        let meta = |hashes: serde_json::Value| -> MetaFile {
            serde_json::from_value(serde_json::json!({"version": 1, "length": 3, "hashes": hashes}))
                .unwrap()
        };
        let err = check_meta_file(&meta(serde_json::json!({"sha256": "00"})), b"ab").unwrap_err();
        assert_eq!(
            err,
            MetaFileError::Length {
                actual: 2,
                listed: 3
            }
        );
        assert_eq!(err.to_string(), "length 2 differs from 3 in meta");
        let err = check_meta_file(&meta(serde_json::json!({"sha256": "00"})), b"abc").unwrap_err();
        assert_eq!(err.to_string(), "sha256 hash differs from meta");
        let err = check_meta_file(&meta(serde_json::json!({"md5": "00"})), b"abc").unwrap_err();
        assert_eq!(err.to_string(), "unsupported hash algorithm md5");
    }
}
