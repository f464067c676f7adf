//! Canonical JSON exactly as securesystemslib's `encode_canonical` writes it.
//!
//! This is the byte string every TUF signature covers, so it must match the Python
//! implementation byte for byte:
//! - object keys sorted by code point (Python's `sorted()` on `str`), which for UTF-8 is byte order;
//! - strings written raw as UTF-8 with only `\` and `"` escaped (no `\n`, no `\uXXXX`);
//! - no Unicode normalisation (two keys that differ only in NFC form stay distinct);
//! - no whitespace; integers in decimal; `true`, `false`, `null`;
//! - floats are an error.
//!
//! `olpc-cjson` (used by tough) differs on the first three points, which is why we own this.

use std::sync::LazyLock;

use serde_json::{Map, Number, Value};

/// A value that has no canonical JSON form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// A JSON number that is not an integer from -2^63 to 2^64-1. securesystemslib refuses
    /// floats, and serde_json (without `arbitrary_precision`) parses larger integers, and `-0`,
    /// as floats.
    #[error("TUF metadata allows only integers from -2^63 to 2^64-1, found {value} at {path}")]
    Float {
        /// Location of the number, for example `signed.version` or `signed.roles[0]`;
        /// `<root>` when the whole document is the number.
        path: String,
        /// The number as it was parsed.
        value: String,
    },
}

/// Encodes `value` in canonical JSON.
pub fn encode_canonical(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out)?;
    Ok(out)
}

/// Appends the canonical JSON of `value` to `out`. On error `out` may hold a partial encoding.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    write_compact(&CANONICAL, value, out).map_err(|NotInteger| float_error(value))
}

/// The fast path found a number that is not an integer; [`float_error`] finds where.
pub(crate) struct NotInteger;

/// The error for the first non-integer number in `root`, found by walking it again: the
/// writers do not track paths, so that the common case pays nothing for them.
pub(crate) fn float_error(root: &Value) -> CanonicalError {
    match check_no_floats(root) {
        Err(e) => e,
        // Unreachable: the writers and `check_no_floats` accept the same numbers.
        Ok(()) => CanonicalError::Float {
            path: String::from("<unknown>"),
            value: String::from("<unknown>"),
        },
    }
}

/// Whether serde_json's `Map` iterates in key order. It does when it is a `BTreeMap` (the
/// `preserve_order` feature is off), whose order is byte order of the UTF-8 keys, which is
/// code point order, which is Python's `sorted()`. Features are unified across the whole
/// build, so this is checked once rather than assumed: if some crate turns `preserve_order` on,
/// output stays right, only slower.
pub(crate) fn map_is_sorted() -> bool {
    static SORTED: LazyLock<bool> = LazyLock::new(|| {
        let mut probe = Map::new();
        for k in ["b", "a", "c"] {
            probe.insert(k.to_owned(), Value::Null);
        }
        probe.keys().map(String::as_str).eq(["a", "b", "c"])
    });
    *SORTED
}

/// The entries of `map` sorted by key (only used when [`map_is_sorted`] is false).
pub(crate) fn sorted_entries(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    entries
}

/// Appends `n` in decimal if it is an integer (`i64` or `u64`), without allocating.
pub(crate) fn write_integer(n: &Number, out: &mut Vec<u8>) -> Result<(), NotInteger> {
    if let Some(u) = n.as_u64() {
        write_u64(u, out);
    } else if let Some(i) = n.as_i64() {
        // `as_u64` failed, so this is negative.
        out.push(b'-');
        write_u64(i.unsigned_abs(), out);
    } else {
        return Err(NotInteger);
    }
    Ok(())
}

pub(crate) fn write_u64(mut v: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[pos..]);
}

/// A layout without whitespace other than what its separators hold: canonical JSON
/// ([`CANONICAL`]) and Python's `json.dumps` with default arguments.
pub(crate) struct CompactLayout {
    /// Between two items of an array or entries of an object.
    pub(crate) comma: &'static [u8],
    /// Between a key and its value.
    pub(crate) colon: &'static [u8],
    /// Whether object keys are written sorted by code point, or in the map's order.
    pub(crate) sort_keys: bool,
    /// Writes a string, quoted and escaped.
    pub(crate) write_str: fn(&str, &mut Vec<u8>),
}

/// Canonical JSON: no whitespace, sorted keys, only `"` and `\` escaped.
pub(crate) const CANONICAL: CompactLayout = CompactLayout {
    comma: b",",
    colon: b":",
    sort_keys: true,
    write_str: write_string,
};

/// Writes `value` in `layout`.
pub(crate) fn write_compact(
    layout: &CompactLayout,
    value: &Value,
    out: &mut Vec<u8>,
) -> Result<(), NotInteger> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_integer(n, out)?,
        Value::String(s) => (layout.write_str)(s, out),
        Value::Array(items) => {
            out.push(b'[');
            write_separated(items, layout.comma, out, |item, out| {
                write_compact(layout, item, out)
            })?;
            out.push(b']');
        }
        Value::Object(map) if !layout.sort_keys || map_is_sorted() => {
            write_compact_object(layout, map, out)?;
        }
        Value::Object(map) => write_compact_object(layout, sorted_entries(map), out)?,
    }
    Ok(())
}

fn write_compact_object<'a>(
    layout: &CompactLayout,
    entries: impl IntoIterator<Item = (&'a String, &'a Value)>,
    out: &mut Vec<u8>,
) -> Result<(), NotInteger> {
    out.push(b'{');
    write_separated(entries, layout.comma, out, |(k, v), out| {
        (layout.write_str)(k, out);
        out.extend_from_slice(layout.colon);
        write_compact(layout, v, out)
    })?;
    out.push(b'}');
    Ok(())
}

/// Writes each of `items` with `write_item`, with `separator` between each two: the body of
/// a JSON array or object in any of the layouts this crate writes.
pub(crate) fn write_separated<T, E>(
    items: impl IntoIterator<Item = T>,
    separator: &[u8],
    out: &mut Vec<u8>,
    mut write_item: impl FnMut(T, &mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(separator);
        }
        write_item(item, out)?;
    }
    Ok(())
}

pub(crate) const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
pub(crate) const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether any byte of `x` is zero (exact for "any", which is all we ask).
pub(crate) const fn has_zero_byte(x: u64) -> bool {
    x.wrapping_sub(ONES) & !x & HIGHS != 0
}

pub(crate) fn write_string(s: &str, out: &mut Vec<u8>) {
    write_string_bytes(s.as_bytes(), out);
}

/// [`write_string`] of text known to be UTF-8, given as bytes.
pub(crate) fn write_string_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip whole 8-byte words with neither `"` nor `\`: nearly every string in metadata.
        if let Some(word) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            let x = u64::from_ne_bytes(w);
            if !has_zero_byte(x ^ (ONES * u64::from(b'"')))
                && !has_zero_byte(x ^ (ONES * u64::from(b'\\')))
            {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        if b == b'"' || b == b'\\' {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(&[b'\\', b]);
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Strings whose encoding is easy to get wrong (a control character, `"`, `\`, non-ASCII within
/// and beyond the BMP, DEL), for the tests of the encoders.
#[cfg(test)]
pub(crate) const TRICKY_STRINGS: [&str; 7] = [
    "tab\there",
    "nl\n",
    "q\"",
    "bs\\",
    "é",
    "\u{1F600}",
    "\u{7f}",
];

/// Checks that `value` holds no floats anywhere, naming the first one found by its path.
pub fn check_no_floats(value: &Value) -> Result<(), CanonicalError> {
    use std::fmt::Write as _;

    fn walk(value: &Value, path: &mut String) -> Result<(), CanonicalError> {
        match value {
            Value::Number(n) if !(n.is_i64() || n.is_u64()) => Err(CanonicalError::Float {
                path: if path.is_empty() {
                    String::from("<root>")
                } else {
                    path.clone()
                },
                value: n.to_string(),
            }),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    // Writing to a String cannot fail.
                    let _ = write!(path, "[{i}]");
                    walk(item, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            Value::Object(map) => {
                for (k, v) in map {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    walk(v, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    walk(value, &mut String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(v: Value) -> String {
        String::from_utf8(encode_canonical(&v).unwrap()).unwrap()
    }

    #[test]
    fn sorts_keys_by_code_point_not_by_escaped_form() {
        // olpc-cjson puts "a b" and "a!" before "a"; securesystemslib does not.
        let v = json!({"b": 1, "a#": 2, "a\"": 3, "a!": 4, "a b": 5, "a": 6});
        assert_eq!(canon(v), r#"{"a":6,"a b":5,"a!":4,"a\"":3,"a#":2,"b":1}"#);
    }

    #[test]
    fn escapes_only_quote_and_backslash() {
        let v = json!(TRICKY_STRINGS);
        assert_eq!(
            canon(v).as_bytes(),
            "[\"tab\there\",\"nl\n\",\"q\\\"\",\"bs\\\\\",\"é\",\"\u{1F600}\",\"\u{7f}\"]"
                .as_bytes()
        );
    }

    #[test]
    fn escapes_are_found_at_every_offset_of_the_word_scan() {
        for special in ["\"", "\\", "\n", "\u{7f}", "é", "😀", "!", "#", "[", "]"] {
            for pos in 0..20 {
                for tail in [0, 1, 7, 8, 9, 17] {
                    let s = format!("{}{special}{}", "a".repeat(pos), "/".repeat(tail));
                    let want = format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
                    assert_eq!(canon(json!(s)), want, "{s:?}");
                }
            }
        }
    }

    #[test]
    fn keeps_non_nfc_keys_distinct() {
        let v = json!({"e\u{301}": 1, "\u{e9}": 2});
        assert_eq!(canon(v), "{\"e\u{301}\":1,\"\u{e9}\":2}");
    }

    #[test]
    fn rejects_floats_with_their_path() {
        let v = json!({"signed": {"version": 1.5}});
        let want = CanonicalError::Float {
            path: "signed.version".into(),
            value: "1.5".into(),
        };
        assert_eq!(encode_canonical(&v).unwrap_err(), want);
        assert_eq!(check_no_floats(&v).unwrap_err(), want);
        let mut out = Vec::new();
        assert_eq!(write_canonical(&v, &mut out).unwrap_err(), want);

        let v = json!({"a": [1, [2, {"b c": -0.25}]]});
        assert_eq!(
            encode_canonical(&v).unwrap_err(),
            CanonicalError::Float {
                path: "a[1][1].b c".into(),
                value: "-0.25".into()
            }
        );
        assert_eq!(
            encode_canonical(&json!(2.5)).unwrap_err(),
            CanonicalError::Float {
                path: "<root>".into(),
                value: "2.5".into()
            }
        );
    }

    #[test]
    fn integers_out_of_range_are_refused_with_a_clear_message() {
        // Without `arbitrary_precision`, serde_json parses these as floats, and `-0` as `-0.0`.
        for (text, value) in [
            ("{\"n\": 18446744073709551616}", "1.8446744073709552e+19"),
            ("{\"n\": -9223372036854775809}", "-9.223372036854776e+18"),
            ("{\"n\": -0}", "-0.0"),
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            let err = encode_canonical(&v).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "TUF metadata allows only integers from -2^63 to 2^64-1, found {value} at n"
                )
            );
        }
    }

    #[test]
    fn integers_at_the_edges() {
        assert_eq!(
            canon(json!([
                i64::MIN,
                i64::MAX,
                i64::MAX as u64 + 1,
                u64::MAX,
                0,
                -1,
                10,
                -10,
                9,
                99,
                100
            ])),
            "[-9223372036854775808,9223372036854775807,9223372036854775808,18446744073709551615,0,-1,10,-10,9,99,100]"
        );
    }

    #[test]
    fn serde_json_maps_iterate_in_key_order() {
        // Not required for correctness (unsorted maps are sorted on the fly), but the fast path
        // relies on it: this fails if a dependency turns on serde_json's `preserve_order`.
        assert!(map_is_sorted());
    }

    #[test]
    fn empty_containers_and_scalars() {
        assert_eq!(canon(json!({})), "{}");
        assert_eq!(canon(json!([])), "[]");
        assert_eq!(
            canon(json!({"a": {}, "b": [[], {}]})),
            r#"{"a":{},"b":[[],{}]}"#
        );
        assert_eq!(canon(json!("x")), r#""x""#);
        assert_eq!(canon(json!(null)), "null");
        assert_eq!(canon(json!([true, false])), "[true,false]");
    }
}
