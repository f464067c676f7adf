//! TAP 15 succinct hash bin delegation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `delegations.succinct_roles` of a targets role (TAP 15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuccinctRoles {
    /// Keys authorised to sign every bin.
    pub keyids: Vec<String>,
    /// Signatures needed on each bin.
    pub threshold: u64,
    /// Number of leading bits of sha256(target path) that select the bin (1..=32).
    pub bit_length: u32,
    /// Bin names are `<name_prefix>-<hex>`; RSTUF uses `bins`.
    pub name_prefix: String,
    /// Fields we do not model.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}
