//! The TUF metadata model (TUF specification 1.0.31, section 4), as python-tuf 7 reads and
//! writes it.
//!
//! Every struct keeps the fields it does not model in `unrecognized`, so a parse and serialize
//! round trip gives the same canonical bytes that were signed (RSTUF stores `x-rstuf-*` fields
//! in keys, roles and the envelope). Parsing goes through [`serde_json::Value`] first so that
//! floats are refused wherever they hide, and errors name the JSON path at fault.
//!
//! Struct fields are declared in the code point order of their JSON keys (`_type` first), the
//! order canonical JSON needs, so [`crate::direct`] writes them without reordering.

#[macro_use]
mod common;
mod root;
mod snapshot;
mod targets;

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use common::{Expires, TopLevel, format_expires, parse_expires};
pub use root::{Role, Root, TOP_LEVEL_ROLES};
pub use snapshot::{MetaFile, Snapshot, Timestamp};
pub use targets::{DelegatedRole, Delegations, TargetFile, Targets};

use crate::cjson::{self, CanonicalError};
use crate::direct;

/// `spec_version` written on all metadata the worker creates (python-tuf 7.0.0 writes this).
pub const SPEC_VERSION: &str = "1.0.31";

/// Why metadata could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The bytes are not JSON.
    #[error("malformed JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// A float (or an integer out of range) somewhere in the document.
    #[error(transparent)]
    Float(#[from] CanonicalError),
    /// A field is missing, has the wrong type or an invalid value.
    #[error("{path}: {message}")]
    Field {
        /// Where in the document, for example `signed.delegations.roles[0].threshold`.
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// A value breaks one of python-tuf's rules (a version of 0, duplicate key ids).
    #[error("{path}: {source}")]
    Rule {
        /// Where in the document.
        path: String,
        /// The rule broken.
        source: RuleError,
    },
    /// The envelope lists two signatures by one key (python-tuf refuses this too).
    #[error("signatures: multiple signatures found for keyid {0}")]
    DuplicateSignature(String),
}

/// A rule of python-tuf's metadata constructors that a value breaks; the texts are
/// python-tuf's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// `spec_version` is not `X.Y` or `X.Y.Z` of digits.
    #[error("failed to parse spec_version {0}")]
    SpecVersionUnparsable(String),
    /// `spec_version` has another major version than 1.
    #[error("unsupported spec_version {0}")]
    SpecVersionUnsupported(String),
    /// A metadata version of 0.
    #[error("version must be > 0, got 0")]
    VersionZero,
    /// A role lists a key id twice.
    #[error("nonunique keyids: {0:?}")]
    NonuniqueKeyids(Vec<String>),
    /// A role's threshold is 0.
    #[error("threshold should be at least 1")]
    ThresholdBelowOne,
    /// A target file has no hashes.
    #[error("hashes must be a non empty dictionary")]
    EmptyHashes,
    /// Succinct hash bins with a `bit_length` outside 1..=32.
    #[error("bit_length must be between 1 and 32")]
    BitLength(u32),
}

impl SchemaError {
    pub(crate) fn rule(path: impl Into<String>, source: RuleError) -> Self {
        SchemaError::Rule {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        SchemaError::Field {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The signed part of a metadata document: one of the four top-level role types.
pub trait Signed: Serialize + DeserializeOwned + Clone + std::fmt::Debug {
    /// The `_type` value (`root`, `targets`, `snapshot`, `timestamp`).
    const TYPE: &'static str;
    /// The metadata version.
    fn version(&self) -> u64;
    /// When the metadata expires.
    fn expires(&self) -> Expires;
    /// Sets the version and expiry (a new version of the same role).
    fn set_version_and_expires(&mut self, version: u64, expires: Expires);
    /// Checks the rules serde cannot express (python-tuf's constructor checks).
    fn validate(&self) -> Result<(), SchemaError>;

    /// Whether the metadata is expired at `at` (python-tuf: `reference_time >= expires`).
    fn is_expired(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        at >= self.expires().0
    }
}

/// A signature in the envelope: `{"keyid": ..., "sig": <lowercase hex>}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Id of the signing key.
    pub keyid: String,
    /// Hex-encoded signature bytes.
    pub sig: String,
    /// Fields we do not model, such as a sigstore `bundle`.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Signature {
    /// A signature by `keyid` over some payload.
    pub fn new(keyid: impl Into<String>, sig: &[u8]) -> Self {
        Signature {
            keyid: keyid.into(),
            sig: hex::encode(sig),
            unrecognized: BTreeMap::new(),
        }
    }
}

/// A payload with its canonical bytes, so they are computed once for signing and storing.
/// Both encodings are written straight from the model ([`crate::direct`]).
#[derive(Debug, Clone)]
pub struct Unsigned<T: Signed> {
    signed: T,
    canonical: Vec<u8>,
}

impl<T: Signed> Unsigned<T> {
    /// Computes the canonical bytes of `signed`.
    pub fn new(signed: T) -> Result<Self, SchemaError> {
        let canonical = direct::to_canonical(&signed)?;
        Ok(Unsigned { signed, canonical })
    }

    /// The bytes signatures cover (what [`Metadata::signed_bytes`] returns).
    pub fn payload(&self) -> &[u8] {
        &self.canonical
    }

    /// The document with `signatures`, and its storage bytes (what
    /// [`Metadata::to_storage_bytes`] returns for it).
    pub fn finish(self, signatures: Vec<Signature>) -> Result<(Metadata<T>, Vec<u8>), SchemaError> {
        let bytes = storage_bytes_of(&self.canonical, &signatures)?;
        let md = Metadata {
            signatures,
            signed: self.signed,
            unrecognized: BTreeMap::new(),
        };
        Ok((md, bytes))
    }
}

/// The storage bytes of a document whose `signed` part has the canonical bytes `canonical`
/// (computed by [`Unsigned::new`], or by [`crate::resign`] for a bump), with `signatures`.
pub fn storage_bytes_of(
    canonical: &[u8],
    signatures: &[Signature],
) -> Result<Vec<u8>, SchemaError> {
    let signature_bytes = direct::to_canonical(signatures)?;
    let mut envelope = Vec::with_capacity(canonical.len() + signature_bytes.len() + 32);
    envelope.extend_from_slice(b"{\"signatures\":");
    envelope.extend_from_slice(&signature_bytes);
    envelope.extend_from_slice(b",\"signed\":");
    envelope.extend_from_slice(canonical);
    envelope.push(b'}');
    Ok(direct::storage_from_canonical(&envelope))
}

/// A metadata document: the signed role plus the signatures over its canonical form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "T: Signed")]
pub struct Metadata<T: Signed> {
    /// Signatures over the canonical JSON of `signed`.
    pub signatures: Vec<Signature>,
    /// The role payload.
    pub signed: T,
    /// Envelope fields we do not model.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl<T: Signed> Metadata<T> {
    /// Wraps `signed` with no signatures yet.
    pub fn new(signed: T) -> Self {
        Metadata {
            signatures: Vec::new(),
            signed,
            unrecognized: BTreeMap::new(),
        }
    }

    /// Parses metadata from JSON bytes, as python-tuf's `Metadata.from_bytes` would, checking
    /// the `_type`, floats, duplicate signatures and python-tuf's field rules.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SchemaError> {
        let value: Value = serde_json::from_slice(bytes).map_err(SchemaError::Json)?;
        Self::from_value(value)
    }

    /// Parses metadata this repository stored (or a reference worker stored, which signed it):
    /// straight from the bytes into the model, without the intermediate JSON tree and float
    /// scan of [`Metadata::from_bytes`] (a float could not have been signed: canonical JSON
    /// has none, and re-signing would refuse it). Any parse error is reported as
    /// [`Metadata::from_bytes`] reports it.
    pub fn from_stored_bytes(bytes: &[u8]) -> Result<Self, SchemaError> {
        match serde_json::from_slice::<Self>(bytes) {
            Ok(md) => md.checked(),
            Err(_) => Self::from_bytes(bytes),
        }
    }

    /// Parses metadata from a JSON value (see [`Metadata::from_bytes`]).
    pub fn from_value(value: Value) -> Result<Self, SchemaError> {
        cjson::check_no_floats(&value)?;
        from_value_with_path::<Self>(value)?.checked()
    }

    /// The checks a parsed document must pass: one signature per key, valid role fields.
    fn checked(self) -> Result<Self, SchemaError> {
        let mut seen = BTreeSet::new();
        for sig in &self.signatures {
            if !seen.insert(sig.keyid.as_str()) {
                return Err(SchemaError::DuplicateSignature(sig.keyid.clone()));
            }
        }
        self.signed.validate()?;
        Ok(self)
    }

    /// The JSON value of the whole document.
    pub fn to_value(&self) -> Result<Value, SchemaError> {
        serde_json::to_value(self).map_err(SchemaError::Json)
    }

    /// The canonical JSON of `signed`: the bytes signatures cover.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, SchemaError> {
        canonical_bytes(&self.signed)
    }

    /// The document as the reference worker stores it (indent 1, sorted keys, ASCII only,
    /// no trailing newline).
    pub fn to_storage_bytes(&self) -> Result<Vec<u8>, SchemaError> {
        Ok(direct::storage_from_canonical(&direct::to_canonical(self)?))
    }

    /// Signs the canonical bytes with `sign` and stores the signature under `keyid`, replacing
    /// an earlier signature by the same key.
    pub fn sign_with<E>(
        &mut self,
        keyid: &str,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    ) -> Result<(), SignError<E>> {
        let payload = self.signed_bytes().map_err(SignError::Schema)?;
        let sig = sign(&payload).map_err(SignError::Signer)?;
        self.add_signature(Signature::new(keyid, &sig));
        Ok(())
    }

    /// Adds `sig`, replacing any signature with the same key id (python-tuf's `Metadata.sign`
    /// with `append=True`).
    pub fn add_signature(&mut self, sig: Signature) {
        match self.signatures.iter_mut().find(|s| s.keyid == sig.keyid) {
            Some(existing) => *existing = sig,
            None => self.signatures.push(sig),
        }
    }

    /// The signature by `keyid`, if any.
    pub fn signature(&self, keyid: &str) -> Option<&Signature> {
        self.signatures.iter().find(|s| s.keyid == keyid)
    }
}

/// Signing failed: either the payload could not be encoded or the signer failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError<E> {
    /// The metadata has no canonical form.
    #[error(transparent)]
    Schema(SchemaError),
    /// The signer refused.
    #[error("signing failed: {0}")]
    Signer(E),
}

/// Canonical JSON of any serializable payload.
pub fn canonical_bytes<T: Serialize>(signed: &T) -> Result<Vec<u8>, SchemaError> {
    if let Some(bytes) = direct::try_canonical(signed) {
        return Ok(bytes);
    }
    let value = serde_json::to_value(signed).map_err(SchemaError::Json)?;
    Ok(cjson::encode_canonical(&value)?)
}

/// Deserializes with the failing JSON path in the error.
pub(crate) fn from_value_with_path<T: DeserializeOwned>(value: Value) -> Result<T, SchemaError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        SchemaError::field(
            if path == "." { "<root>".into() } else { path },
            e.into_inner().to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_rule_is_typed_and_keeps_its_text() {
        let mut targets = Targets::new(1, Expires::at(chrono::Utc::now()));
        targets.version = 0;
        let err = targets.validate().unwrap_err();
        assert!(
            matches!(&err, SchemaError::Rule { path, source: RuleError::VersionZero } if path == "signed"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "signed: version must be > 0, got 0");
        let source = std::error::Error::source(&err).expect("the rule");
        assert_eq!(source.downcast_ref(), Some(&RuleError::VersionZero));
        assert_eq!(
            RuleError::NonuniqueKeyids(vec!["a".into(), "a".into()]).to_string(),
            r#"nonunique keyids: ["a", "a"]"#
        );
    }

    #[test]
    fn unsigned_gives_the_same_bytes_as_the_document() {
        let expires = Expires::at(
            chrono::DateTime::parse_from_rfc3339("2026-11-26T01:30:54Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
        );
        let meta = (0..300)
            .map(|i| (format!("bins-{i:03x}.json"), MetaFile::version_only(i + 1)))
            .collect();
        let mut snapshot = Snapshot::new(7, expires, meta);
        snapshot.unrecognized.insert(
            "x-rstuf-note".into(),
            serde_json::json!({"ü": [1, "\u{1F600}"]}),
        );
        let unsigned = Unsigned::new(snapshot.clone()).unwrap();
        let mut md = Metadata::new(snapshot);
        assert_eq!(unsigned.payload(), md.signed_bytes().unwrap().as_slice());
        let sig = Signature::new("ab".repeat(32), &[1, 2, 3]);
        md.add_signature(sig.clone());
        let (finished, bytes) = unsigned.finish(vec![sig]).unwrap();
        assert_eq!(finished, md);
        assert_eq!(bytes, md.to_storage_bytes().unwrap());
    }
}
