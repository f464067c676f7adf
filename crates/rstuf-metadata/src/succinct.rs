//! TAP 15 succinct hash bin delegation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

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

impl SuccinctRoles {
    /// Hash bins for `number_of_bins` bins, signed by `keyids` (threshold `threshold`), named
    /// `<name_prefix>-<hex>`.
    pub fn new(keyids: Vec<String>, threshold: u64, bit_length: u32, name_prefix: &str) -> Self {
        SuccinctRoles {
            keyids,
            threshold,
            bit_length,
            name_prefix: name_prefix.to_string(),
            unrecognized: BTreeMap::new(),
        }
    }

    /// The bit length RSTUF uses for a configured number of bins: `int(math.log(n, 2))`,
    /// computed in double precision exactly as CPython does (so non-powers of two round down).
    /// `None` below 2 bins.
    pub fn bit_length_for_bins(number_of_bins: u64) -> Option<u32> {
        if number_of_bins < 2 {
            return None;
        }
        let bits = ((number_of_bins as f64).ln() / 2f64.ln()) as u32;
        (1..=32).contains(&bits).then_some(bits)
    }

    /// Checks python-tuf's constructor rule: `bit_length` between 1 and 32.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=32).contains(&self.bit_length) {
            return Err("bit_length must be between 1 and 32".into());
        }
        Ok(())
    }

    /// `2^bit_length`.
    pub fn number_of_bins(&self) -> u64 {
        1u64 << self.bit_length
    }

    /// Hex digits in a bin name: the width of the largest bin number.
    pub fn suffix_len(&self) -> usize {
        (self.bit_length as usize).div_ceil(4).max(1)
    }

    /// The bin a target path belongs to: the first `bit_length` bits of sha256(path).
    pub fn bin_index(&self, target_path: &str) -> u32 {
        let digest = Sha256::digest(target_path.as_bytes());
        let prefix = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        prefix.checked_shr(32 - self.bit_length).unwrap_or(0)
    }

    /// The name of bin `index`.
    pub fn role_name(&self, index: u32) -> String {
        format!(
            "{}-{:0width$x}",
            self.name_prefix,
            index,
            width = self.suffix_len()
        )
    }

    /// The bin role for a target path (python-tuf `get_role_for_target`).
    pub fn role_for_target(&self, target_path: &str) -> String {
        self.role_name(self.bin_index(target_path))
    }

    /// All bin names in order (python-tuf `get_roles`).
    pub fn role_names(&self) -> impl Iterator<Item = String> + '_ {
        (0..self.number_of_bins()).map(|i| self.role_name(i as u32))
    }

    /// Whether `name` is one of the bins (python-tuf `is_delegated_role`, including its use of
    /// Python's `int(suffix, 16)`, which tolerates whitespace, a sign, `0x` and underscores).
    pub fn is_delegated_role(&self, name: &str) -> bool {
        let Some(suffix) = name
            .strip_prefix(self.name_prefix.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
        else {
            return false;
        };
        if suffix.chars().count() != self.suffix_len() {
            return false;
        }
        match python_int_base16(suffix) {
            Some(n) => n >= 0 && (n as u128) < u128::from(self.number_of_bins()),
            None => false,
        }
    }
}

/// Python's `int(s, 16)` for ASCII input (returns `None` where Python raises ValueError).
/// Non-ASCII digits, which Python also accepts, are refused here.
fn python_int_base16(s: &str) -> Option<i128> {
    let s = s.trim_matches(|c: char| c.is_whitespace());
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (s, after_prefix) = match s.get(..2) {
        Some("0x" | "0X") => (&s[2..], true),
        _ => (s, false),
    };
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    let mut value: i128 = 0;
    let mut prev_underscore = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            // Single underscores between digits, or right after the base prefix.
            if prev_underscore || (i == 0 && !after_prefix) || i + 1 == bytes.len() {
                return None;
            }
            prev_underscore = true;
            continue;
        }
        prev_underscore = false;
        let digit = (b as char).to_digit(16)?;
        value = value.checked_mul(16)?.checked_add(i128::from(digit))?;
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bins(n: u64) -> SuccinctRoles {
        SuccinctRoles::new(
            vec![],
            1,
            SuccinctRoles::bit_length_for_bins(n).unwrap(),
            "bins",
        )
    }

    #[test]
    fn names_and_widths() {
        assert_eq!(bins(4).role_for_target("file1.tar.gz"), "bins-3");
        assert_eq!(bins(4).role_for_target("file2.tar.gz"), "bins-2");
        assert_eq!(bins(4).role_for_target("a/b/c.txt"), "bins-3");
        assert_eq!(bins(16).suffix_len(), 1);
        assert_eq!(bins(32).suffix_len(), 2);
        assert_eq!(bins(16384).suffix_len(), 4);
        let b = SuccinctRoles::new(vec![], 1, 10, "bins");
        assert_eq!(b.role_for_target("file 1.txt"), "bins-39a");
        assert_eq!(bins(16384).role_names().count(), 16384);
        assert_eq!(bins(256).role_names().last().unwrap(), "bins-ff");
    }

    #[test]
    fn bit_length_rounds_down_like_python() {
        assert_eq!(SuccinctRoles::bit_length_for_bins(2), Some(1));
        assert_eq!(SuccinctRoles::bit_length_for_bins(3), Some(1));
        assert_eq!(SuccinctRoles::bit_length_for_bins(1000), Some(9));
        assert_eq!(SuccinctRoles::bit_length_for_bins(16384), Some(14));
        assert_eq!(SuccinctRoles::bit_length_for_bins(1), None);
    }

    #[test]
    fn delegated_role_names() {
        let b = bins(256);
        assert!(b.is_delegated_role("bins-00"));
        assert!(b.is_delegated_role("bins-ff"));
        assert!(b.is_delegated_role("bins-FF"));
        assert!(b.is_delegated_role("bins- f"));
        assert!(b.is_delegated_role("bins--0"));
        assert!(!b.is_delegated_role("bins--1"));
        assert!(!b.is_delegated_role("bins-0"));
        assert!(!b.is_delegated_role("bins-100"));
        assert!(!b.is_delegated_role("bin-00"));
        assert!(!b.is_delegated_role("bins-_0"));
        assert!(!b.is_delegated_role("bins-g0"));
    }
}
