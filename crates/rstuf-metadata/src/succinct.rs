//! TAP 15 succinct hash bin delegation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::schema::RuleError;

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
    /// Hash bins with `2^bit_length` bins, signed by `keyids` (threshold `threshold`), named
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

    /// The bit length RSTUF derives from a configured number of bins: `int(math.log(n, 2))`.
    ///
    /// CPython computes `math.log(n, 2)` as `log(float(n)) / log(2.0)` in double precision
    /// (the int is rounded to the nearest double first), and `int()` truncates. This does the
    /// same, so non-powers of two round down and powers of two come out exact (for 2^29, 2^31
    /// and 2^39 the quotient is slightly *above* the integer, never below, for 2^1..2^63).
    /// `None` below 2 bins, where Python gives 0 or raises. The result is not range-checked:
    /// more than 2^32 bins gives more than 32 bits, which [`validate`](Self::validate) refuses
    /// as python-tuf's constructor does.
    pub fn bit_length_for_bins(number_of_bins: u64) -> Option<u32> {
        if number_of_bins < 2 {
            return None;
        }
        let bits = (number_of_bins as f64).ln() / 2f64.ln();
        // Truncation toward zero, as Python's int(float); the value is in [1, 64].
        Some(bits as u32)
    }

    /// python-tuf's constructor rule: `bit_length` must be between 1 and 32.
    ///
    /// The other methods assume a valid `bit_length`; outside 1..=32 they do not panic, but
    /// their answers are meaningless (python-tuf cannot even build such an object).
    pub fn validate(&self) -> Result<(), RuleError> {
        if !(1..=32).contains(&self.bit_length) {
            return Err(RuleError::BitLength(self.bit_length));
        }
        Ok(())
    }

    /// `2**bit_length` (saturating at `u64::MAX` for absurd bit lengths).
    pub fn number_of_bins(&self) -> u64 {
        1u64.checked_shl(self.bit_length).unwrap_or(u64::MAX)
    }

    /// Hex digits in a bin name: `len(f"{2**bit_length - 1:x}")`, that is
    /// `ceil(bit_length / 4)`, at least 1.
    pub fn suffix_len(&self) -> usize {
        (self.bit_length as usize).div_ceil(4).max(1)
    }

    /// The bin of a target path: the first `bit_length` bits of `sha256(path.encode("utf-8"))`
    /// read big-endian. Allocation-free.
    pub fn bin_index(&self, target_path: &str) -> u32 {
        let digest = Sha256::digest(target_path.as_bytes());
        let prefix = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        prefix
            .checked_shr(32u32.saturating_sub(self.bit_length))
            .unwrap_or(0)
    }

    /// The name of bin `index`: `f"{name_prefix}-{index:0{suffix_len}x}"`.
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
    pub fn role_names(&self) -> impl Iterator<Item = String> {
        let bins = self.number_of_bins().min(1 << 32);
        (0..bins).map(|i| self.role_name(i as u32))
    }

    /// Whether `name` is one of the bins, exactly as python-tuf's `is_delegated_role`:
    /// `name` starts with `name_prefix + "-"`, the rest has `suffix_len` code points, and
    /// Python's `int(rest, 16)` accepts it with a value in `0..number_of_bins`.
    ///
    /// `int(s, 16)` is lenient, and so is this: surrounding whitespace (`"bins- f"`), a sign
    /// (`"bins--0"`, `"bins-+1"`), a `0x` prefix, single underscores between digits, uppercase
    /// hex, and Unicode decimal digits (`"bins-١"` is bin 1).
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
            // Python raised ValueError, or the value is beyond i128 (so out of range too).
            None => false,
        }
    }
}

/// The code points of the Unicode 14.0 (CPython 3.11 `unicodedata`) characters whose decimal
/// value is 0; each starts a contiguous run of the digits 0 to 9. These are all 660 characters
/// `int()` reads as decimal digits.
const UNICODE_DECIMAL_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66,
    0xde6, 0xe50, 0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90,
    0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10,
    0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650,
    0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50,
    0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
];

/// The decimal value of a Unicode decimal digit (`unicodedata.decimal`), if `c` is one.
fn unicode_decimal(c: char) -> Option<u8> {
    let cp = u32::from(c);
    let i = UNICODE_DECIMAL_ZEROS.partition_point(|&zero| zero <= cp);
    let zero = *UNICODE_DECIMAL_ZEROS.get(i.checked_sub(1)?)?;
    (cp - zero < 10).then(|| (cp - zero) as u8)
}

/// CPython's `_PyUnicode_TransformDecimalAndSpaceToASCII` for one character: ASCII below
/// 0x7f is kept, Unicode whitespace becomes a space, Unicode decimal digits become ASCII
/// digits, anything else is invalid (`None`).
fn ascii_for_int(c: char) -> Option<u8> {
    if (c as u32) < 0x7f {
        Some(c as u8)
    } else if c.is_whitespace() {
        // Rust's White_Space above U+007F is exactly CPython's Py_UNICODE_ISSPACE there.
        Some(b' ')
    } else {
        unicode_decimal(c).map(|d| b'0' + d)
    }
}

/// Python's `int(s, 16)` (`PyLong_FromUnicodeObject` then `PyLong_FromString`): `None` where
/// Python raises ValueError, or where the value does not fit an i128.
fn python_int_base16(s: &str) -> Option<i128> {
    let ascii: Vec<u8> = s.chars().map(ascii_for_int).collect::<Option<_>>()?;
    // Py_ISSPACE: space, \t, \n, \v, \f, \r (not \x1c..\x1f, unlike str.isspace()).
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = ascii.iter().position(|b| !is_space(b))?;
    let end = ascii.iter().rposition(|b| !is_space(b))? + 1;
    let mut s = &ascii[start..end];
    let negative = match s.first() {
        Some(b'-') => {
            s = &s[1..];
            true
        }
        Some(b'+') => {
            s = &s[1..];
            false
        }
        _ => false,
    };
    if let [b'0', b'x' | b'X', rest @ ..] = s {
        s = rest;
        // One underscore is allowed right after the base prefix.
        if let [b'_', rest @ ..] = s {
            s = rest;
        }
    }
    // Otherwise the digits may not start or end with an underscore, nor hold two in a row.
    if s.is_empty() || s[0] == b'_' || s[s.len() - 1] == b'_' || s.windows(2).any(|w| w == b"__") {
        return None;
    }
    let mut value: i128 = 0;
    for &b in s.iter().filter(|&&b| b != b'_') {
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
        assert_eq!(SuccinctRoles::bit_length_for_bins(0), None);
        assert_eq!(SuccinctRoles::bit_length_for_bins(1 << 29), Some(29));
        assert_eq!(SuccinctRoles::bit_length_for_bins(1 << 40), Some(40));
        assert_eq!(SuccinctRoles::bit_length_for_bins(u64::MAX), Some(64));
    }

    #[test]
    fn validate_is_python_tufs_constructor_rule() {
        for (bits, ok) in [(0, false), (1, true), (32, true), (33, false), (64, false)] {
            let b = SuccinctRoles::new(vec![], 1, bits, "bins");
            assert_eq!(b.validate().is_ok(), ok, "{bits}");
            // Invalid lengths give meaningless answers but never panic.
            let _ = (b.bin_index("x"), b.number_of_bins(), b.suffix_len());
            let _ = b.is_delegated_role("bins-0");
        }
        let b = SuccinctRoles::new(vec![], 1, 32, "bins");
        assert_eq!(b.role_names().next().unwrap(), "bins-00000000");
        assert!(b.is_delegated_role("bins-ffffffff"));
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
        assert!(!b.is_delegated_role("bins-0\u{1c}"));
        assert!(b.is_delegated_role("bins-0\u{b}"));
        assert!(b.is_delegated_role("bins-\u{3000}1"));
        // Unicode decimal digits, even as the 0 of a 0x prefix.
        assert!(b.is_delegated_role("bins-\u{661}\u{662}"));
        assert!(b.is_delegated_role("bins-\u{ff11}f"));
        let b = bins(4096);
        assert!(b.is_delegated_role("bins-\u{660}x1"));
        assert!(!b.is_delegated_role("bins-0x_"));
        assert!(b.is_delegated_role("bins-0x1"));
        assert!(b.is_delegated_role("bins-1_1"));
        assert!(!b.is_delegated_role("bins-\u{ff21}00"));
    }
}
