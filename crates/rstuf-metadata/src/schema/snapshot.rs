//! Snapshot and timestamp metadata (TUF specification 4.4 and 4.6).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SchemaError;
use super::common::{Expires, TypeTag};

/// A `meta` entry: the version of a role file, optionally its length and hashes
/// (RSTUF writes the version only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    /// Hashes by algorithm, if given (non-empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
    /// Length in bytes, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Version of the referenced metadata (at least 1).
    pub version: u64,
    /// Fields we do not model.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl MetaFile {
    /// A version-only entry, as RSTUF writes them.
    pub fn version_only(version: u64) -> Self {
        MetaFile {
            version,
            length: None,
            hashes: None,
            unrecognized: BTreeMap::new(),
        }
    }

    fn validate(&self, path: &str) -> Result<(), SchemaError> {
        if self.version == 0 {
            return Err(SchemaError::field(
                path,
                "metafile version must be > 0, got 0",
            ));
        }
        if let Some(h) = &self.hashes
            && h.is_empty()
        {
            return Err(SchemaError::field(
                path,
                "hashes must be a non empty dictionary",
            ));
        }
        Ok(())
    }
}

/// Snapshot metadata: the versions of targets and every delegated targets role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always `snapshot`.
    #[serde(rename = "_type")]
    pub type_tag: TypeTag<Snapshot>,
    /// Expiry.
    pub expires: Expires,
    /// `<role>.json` to its meta entry.
    pub meta: BTreeMap<String, MetaFile>,
    /// Specification version.
    pub spec_version: String,
    /// Metadata version.
    pub version: u64,
    /// Fields we do not model.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

top_level_role!(Snapshot, "snapshot");

impl Snapshot {
    /// The checks specific to this role type (the common ones are in [`Signed::validate`]).
    fn validate_fields(&self) -> Result<(), SchemaError> {
        for (name, meta) in &self.meta {
            meta.validate(&format!("signed.meta.{name}"))?;
        }
        Ok(())
    }
}

impl Snapshot {
    /// A new snapshot.
    pub fn new(version: u64, expires: Expires, meta: BTreeMap<String, MetaFile>) -> Self {
        Snapshot {
            type_tag: TypeTag::new(),
            spec_version: super::SPEC_VERSION.into(),
            version,
            expires,
            meta,
            unrecognized: BTreeMap::new(),
        }
    }

    /// The version the snapshot lists for a role (`role` without `.json`).
    pub fn role_version(&self, role: &str) -> Option<u64> {
        self.meta.get(&format!("{role}.json")).map(|m| m.version)
    }
}

/// Timestamp metadata: the current snapshot version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Always `timestamp`.
    #[serde(rename = "_type")]
    pub type_tag: TypeTag<Timestamp>,
    /// Expiry.
    pub expires: Expires,
    /// Exactly `{"snapshot.json": ...}`.
    pub meta: BTreeMap<String, MetaFile>,
    /// Specification version.
    pub spec_version: String,
    /// Metadata version.
    pub version: u64,
    /// Fields we do not model.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

top_level_role!(Timestamp, "timestamp");

impl Timestamp {
    /// The checks specific to this role type (the common ones are in [`Signed::validate`]).
    fn validate_fields(&self) -> Result<(), SchemaError> {
        let Some(snap) = self.meta.get("snapshot.json") else {
            return Err(SchemaError::field("signed.meta", "missing snapshot.json"));
        };
        snap.validate("signed.meta.snapshot.json")
    }
}

impl Timestamp {
    /// A new timestamp naming snapshot version `snapshot_version`.
    pub fn new(version: u64, expires: Expires, snapshot_version: u64) -> Self {
        let mut meta = BTreeMap::new();
        meta.insert(
            "snapshot.json".into(),
            MetaFile::version_only(snapshot_version),
        );
        Timestamp {
            type_tag: TypeTag::new(),
            spec_version: super::SPEC_VERSION.into(),
            version,
            expires,
            meta,
            unrecognized: BTreeMap::new(),
        }
    }

    /// The snapshot entry (validated to exist on parse).
    pub fn snapshot_meta(&self) -> Option<&MetaFile> {
        self.meta.get("snapshot.json")
    }
}
