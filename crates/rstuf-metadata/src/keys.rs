//! Public keys as they appear in TUF metadata, private keys for signing, key ids.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A public key in TUF metadata (`keys` of root, `delegations.keys` of targets).
///
/// Key ids are the map keys around this struct and are never recomputed for keys we load:
/// RSTUF keys carry `x-rstuf-*` fields, and other tools computed their ids in other ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// `ed25519`, `ecdsa`, `ecdsa-sha2-nistp256`, `rsa`, ...
    pub keytype: String,
    /// The signature scheme, for example `rsassa-pss-sha256`.
    pub scheme: String,
    /// Key material; `public` holds hex (ed25519) or SubjectPublicKeyInfo PEM (rsa, ecdsa).
    pub keyval: BTreeMap<String, Value>,
    /// Fields we do not model, such as `x-rstuf-online-key-uri`, kept for round trips.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}
