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

use serde_json::Value;

/// A value that has no canonical JSON form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// A JSON number that is not an integer (securesystemslib refuses floats).
    #[error("TUF metadata allows only integers from -2^63 to 2^64-1, found {value} at {path}")]
    Float {
        /// JSON pointer-like location of the number, for example `signed.version`.
        path: String,
        /// The number as it was parsed.
        value: String,
    },
}

/// Encodes `value` in canonical JSON.
pub fn encode_canonical(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    if let Err(e) = write_canonical(value, &mut out) {
        // Name the offending value by its path; the fast path does not track it.
        check_no_floats(value)?;
        return Err(e);
    }
    Ok(out)
}

/// Appends the canonical JSON of `value` to `out`. On error `out` may hold a partial encoding.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.extend_from_slice(n.to_string().as_bytes());
            } else {
                return Err(CanonicalError::Float {
                    path: String::from("<value>"),
                    value: n.to_string(),
                });
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // serde_json's Map is a BTreeMap (the `preserve_order` feature is off), whose order is
            // byte order of the UTF-8 keys, i.e. code point order. Sort anyway so a future feature
            // flip cannot silently change signatures.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if !is_sorted(&entries) {
                entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            }
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_canonical(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn is_sorted(entries: &[(&String, &Value)]) -> bool {
    entries
        .windows(2)
        .all(|w| w[0].0.as_bytes() <= w[1].0.as_bytes())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'"' || b == b'\\' {
            out.extend_from_slice(&bytes[start..i]);
            out.push(b'\\');
            out.push(b);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Checks that `value` holds no floats anywhere, naming the first one found by its path.
pub fn check_no_floats(value: &Value) -> Result<(), CanonicalError> {
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
                    path.push_str(&format!("[{i}]"));
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
        let v = json!([
            "tab\there",
            "nl\n",
            "q\"",
            "bs\\",
            "é",
            "\u{1F600}",
            "\u{7f}"
        ]);
        assert_eq!(
            canon(v).as_bytes(),
            "[\"tab\there\",\"nl\n\",\"q\\\"\",\"bs\\\\\",\"é\",\"\u{1F600}\",\"\u{7f}\"]"
                .as_bytes()
        );
    }

    #[test]
    fn keeps_non_nfc_keys_distinct() {
        let v = json!({"e\u{301}": 1, "\u{e9}": 2});
        assert_eq!(canon(v), "{\"e\u{301}\":1,\"\u{e9}\":2}");
    }

    #[test]
    fn rejects_floats_with_their_path() {
        let v = json!({"signed": {"version": 1.5}});
        let err = encode_canonical(&v).unwrap_err();
        assert!(matches!(err, CanonicalError::Float { .. }));
        let err = check_no_floats(&v).unwrap_err();
        assert_eq!(
            err,
            CanonicalError::Float {
                path: "signed.version".into(),
                value: "1.5".into()
            }
        );
    }

    #[test]
    fn integers_at_the_edges() {
        assert_eq!(
            canon(json!([i64::MIN, u64::MAX, 0, -1])),
            "[-9223372036854775808,18446744073709551615,0,-1]"
        );
    }
}
