//! JSON exactly as Python's `json.dumps` writes it.
//!
//! - [`to_storage_json`]: `json.dumps(v, indent=1, separators=(",", ": "), sort_keys=True,
//!   ensure_ascii=True)` with no trailing newline, which is how the reference worker writes every
//!   metadata file. Clients only need the bytes we sign to be canonical, but operators diff
//!   and mirror these files, so we keep them identical.
//! - [`to_python_json`]: `json.dumps(v)` with default arguments, for values stored in Redis.
//!
//! Both refuse floats (TUF metadata has none).

use serde_json::Value;

use crate::cjson::{CanonicalError, check_no_floats};

/// `json.dumps(value, indent=1, sort_keys=True, ensure_ascii=True)`, no trailing newline.
pub fn to_storage_json(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(1024);
    if write_indented(value, 0, &mut out).is_err() {
        check_no_floats(value)?;
    }
    Ok(out)
}

/// `json.dumps(value)`: separators `", "` and `": "`, ASCII only, keys in map order (sorted).
pub fn to_python_json(value: &Value) -> Result<String, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    if write_compact(value, &mut out).is_err() {
        check_no_floats(value)?;
    }
    Ok(String::from_utf8(out).expect("ASCII output"))
}

/// Marker for "a float was found"; the caller finds its path.
struct FloatFound;

fn write_scalar(value: &Value, out: &mut Vec<u8>) -> Result<(), FloatFound> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            out.extend_from_slice(n.to_string().as_bytes())
        }
        Value::Number(_) => return Err(FloatFound),
        Value::String(s) => write_ascii_string(s, out),
        Value::Array(_) | Value::Object(_) => unreachable!("containers are written by the caller"),
    }
    Ok(())
}

fn indent(level: usize, out: &mut Vec<u8>) {
    out.push(b'\n');
    out.resize(out.len() + level, b' ');
}

fn write_indented(value: &Value, level: usize, out: &mut Vec<u8>) -> Result<(), FloatFound> {
    match value {
        Value::Array(items) if !items.is_empty() => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                indent(level + 1, out);
                write_indented(item, level + 1, out)?;
            }
            indent(level, out);
            out.push(b']');
        }
        Value::Object(map) if !map.is_empty() => {
            out.push(b'{');
            for (i, (k, v)) in sorted(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                indent(level + 1, out);
                write_ascii_string(k, out);
                out.extend_from_slice(b": ");
                write_indented(v, level + 1, out)?;
            }
            indent(level, out);
            out.push(b'}');
        }
        Value::Array(_) => out.extend_from_slice(b"[]"),
        Value::Object(_) => out.extend_from_slice(b"{}"),
        scalar => write_scalar(scalar, out)?,
    }
    Ok(())
}

fn write_compact(value: &Value, out: &mut Vec<u8>) -> Result<(), FloatFound> {
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_compact(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_ascii_string(k, out);
                out.extend_from_slice(b": ");
                write_compact(v, out)?;
            }
            out.push(b'}');
        }
        scalar => write_scalar(scalar, out)?,
    }
    Ok(())
}

fn sorted(map: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    // Already sorted for a BTreeMap-backed Map; sorting keeps us right if that ever changes.
    if !entries.windows(2).all(|w| w[0].0 <= w[1].0) {
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    entries
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_u16_escape(unit: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((unit >> shift) & 0xf) as usize]);
    }
}

/// Python's `py_encode_basestring_ascii`.
fn write_ascii_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            ' '..='~' => out.push(c as u8),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    push_u16_escape(*unit, out);
                }
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn storage(v: Value) -> String {
        String::from_utf8(to_storage_json(&v).unwrap()).unwrap()
    }

    #[test]
    fn indent_one_sorted_no_trailing_newline() {
        let v = json!({"b": [1, {}], "a": {"c": [], "d": null, "e": true}});
        assert_eq!(
            storage(v),
            "{\n \"a\": {\n  \"c\": [],\n  \"d\": null,\n  \"e\": true\n },\n \"b\": [\n  1,\n  {}\n ]\n}"
        );
    }

    #[test]
    fn ascii_escapes_like_python() {
        let v = json!("q\"b\\n\nr\rt\tb\u{8}f\u{c}\u{1}\u{7f}é\u{1F600}");
        assert_eq!(
            storage(v),
            r#""q\"b\\n\nr\rt\tb\bf\f\u0001\u007f\u00e9\ud83d\ude00""#
        );
    }

    #[test]
    fn compact_uses_python_default_separators() {
        let v = json!({"b": [1, 2], "a": {"x": "é"}});
        assert_eq!(
            to_python_json(&v).unwrap(),
            r#"{"a": {"x": "\u00e9"}, "b": [1, 2]}"#
        );
    }

    #[test]
    fn floats_are_refused_with_their_path() {
        let v = json!({"a": [1, {"b": 0.5}]});
        let err = to_storage_json(&v).unwrap_err();
        assert_eq!(
            err,
            CanonicalError::Float {
                path: "a[1].b".into(),
                value: "0.5".into()
            }
        );
        assert!(to_python_json(&v).is_err());
    }
}
