//! The value encoding dynaconf uses in the Redis hash `DYNACONF_MAIN`, where RSTUF keeps its
//! repository settings (shared with the API).
//!
//! Writing (dynaconf `unparse_conf_data`): booleans become `@bool True`, integers `@int 365`,
//! lists and objects `@json <json.dumps(value)>`, `None` becomes `@none ` (with the trailing
//! space) and strings are stored raw.
//!
//! Reading (dynaconf `parse_conf_data(tomlfy=True)`): a value whose first word is a known
//! converter (`@int`, `@bool`, `@json`, ...) is converted; anything else is read as a TOML value
//! if it parses as one (so a raw `"123"` comes back as the integer 123 and `"true"` as a
//! boolean), else kept as the string.

use serde_json::{Number, Value};

/// A setting value that cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Floats are not written (nothing RSTUF stores is a float, and Python's float repr is not
    /// worth reproducing for it).
    #[error("cannot store a float setting: {0}")]
    Float(String),
    /// A converter whose argument does not convert (dynaconf raises `DynaconfParseError`).
    #[error("cannot parse {raw:?}: {reason}")]
    Parse {
        /// The stored text.
        raw: String,
        /// Why.
        reason: String,
    },
    /// A converter that only makes sense inside dynaconf itself (`@format`, `@merge`, ...).
    #[error("unsupported dynaconf converter {0}")]
    Unsupported(String),
}

/// Encodes a setting value as dynaconf writes it into Redis.
pub fn encode(value: &Value) -> Result<String, CodecError> {
    match value {
        Value::Null => Ok("@none ".to_string()),
        Value::Bool(true) => Ok("@bool True".to_string()),
        Value::Bool(false) => Ok("@bool False".to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(format!("@int {n}")),
        Value::Number(n) => Err(CodecError::Float(n.to_string())),
        Value::String(s) => Ok(s.clone()),
        Value::Array(_) | Value::Object(_) => {
            let json = rstuf_metadata::pyjson::to_python_json(value)
                .map_err(|e| CodecError::Float(e.to_string()))?;
            Ok(format!("@json {json}"))
        }
    }
}

/// The converters dynaconf knows; a first word not in this list means "plain TOML value".
const CONVERTERS: &[&str] = &[
    "@str",
    "@int",
    "@float",
    "@bool",
    "@json",
    "@format",
    "@jinja",
    "@reset",
    "@del",
    "@merge",
    "@merge_unique",
    "@insert",
    "@get",
    "@read_file",
    "@upper",
    "@lower",
    "@title",
    "@capitalize",
    "@strip",
    "@lstrip",
    "@rstrip",
    "@split",
    "@casefold",
    "@swapcase",
    "@note",
    "@comment",
    "@null",
    "@none",
    "@empty",
];

const TRUE_VALUES: &[&str] = &["t", "true", "enabled", "1", "on", "yes"];

/// Decodes a stored setting as dynaconf's Redis loader reads it.
pub fn decode(raw: &str) -> Result<Value, CodecError> {
    let (first, rest) = match raw.split_once(' ') {
        Some((f, r)) => (f, r),
        None => (raw, ""),
    };
    if !raw.is_empty() && CONVERTERS.contains(&first) {
        let parse_err = |reason: &str| CodecError::Parse {
            raw: raw.to_string(),
            reason: reason.to_string(),
        };
        return match first {
            "@none" | "@null" | "@note" | "@comment" => Ok(Value::Null),
            "@str" => Ok(Value::String(rest.to_string())),
            "@bool" => Ok(Value::Bool(
                TRUE_VALUES.contains(&rest.trim().to_lowercase().as_str()),
            )),
            "@int" => python_int(rest)
                .map(Value::from)
                .ok_or_else(|| parse_err("not an integer")),
            "@float" => python_float(rest)
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| parse_err("not a finite float")),
            "@json" => serde_json::from_str(rest).map_err(|e| parse_err(&e.to_string())),
            other => Err(CodecError::Unsupported(other.to_string())),
        };
    }
    Ok(parse_with_toml(raw))
}

/// `tomllib.loads(f"key={data}")["key"]`, or the string itself when that fails.
fn parse_with_toml(raw: &str) -> Value {
    let doc = format!("key={raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut table) if table.len() == 1 => match table.remove("key") {
            Some(v) => toml_to_json(v).unwrap_or_else(|| Value::String(raw.to_string())),
            None => Value::String(raw.to_string()),
        },
        _ => Value::String(raw.to_string()),
    }
}

fn toml_to_json(v: toml::Value) -> Option<Value> {
    Some(match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::Number(Number::from_f64(f)?),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => {
            Value::Array(items.into_iter().map(toml_to_json).collect::<Option<_>>()?)
        }
        toml::Value::Table(t) => Value::Object(
            t.into_iter()
                .map(|(k, v)| Some((k, toml_to_json(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

/// Python's `int(s)` for ASCII text: surrounding whitespace, a sign, decimal digits with single
/// underscores between them.
fn python_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let cleaned = strip_underscores(digits)?;
    if cleaned.is_empty() || !cleaned.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = cleaned.parse().ok()?;
    Some(if neg { -n } else { n })
}

/// Removes underscores that sit between two digits; `None` if any other underscore appears.
fn strip_underscores(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let ok =
                i > 0 && i + 1 < b.len() && b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit();
            if !ok {
                return None;
            }
        } else {
            out.push(c as char);
        }
    }
    Some(out)
}

/// Python's `float(s)` for ASCII text (infinities and NaN parse but are refused later).
fn python_float(s: &str) -> Option<f64> {
    let t = s.trim();
    let cleaned = strip_underscores(t)?;
    let lower = cleaned.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity" | "nan") {
        return None;
    }
    if cleaned.is_empty()
        || !cleaned
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return None;
    }
    cleaned.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_like_dynaconf() {
        assert_eq!(encode(&json!(365)).unwrap(), "@int 365");
        assert_eq!(encode(&json!(true)).unwrap(), "@bool True");
        assert_eq!(encode(&Value::Null).unwrap(), "@none ");
        assert_eq!(encode(&json!("signing-abc")).unwrap(), "signing-abc");
        assert_eq!(
            encode(&json!({"keytype": "ed25519", "keyval": {"public": "é"}})).unwrap(),
            r#"@json {"keytype": "ed25519", "keyval": {"public": "\u00e9"}}"#
        );
        assert!(encode(&json!(1.5)).is_err());
    }

    #[test]
    fn reads_like_dynaconf() {
        assert_eq!(decode("@int 365").unwrap(), json!(365));
        assert_eq!(decode("@bool True").unwrap(), json!(true));
        assert_eq!(decode("@bool off").unwrap(), json!(false));
        assert_eq!(decode("@none ").unwrap(), Value::Null);
        assert_eq!(decode("@json [1, 2]").unwrap(), json!([1, 2]));
        assert_eq!(
            decode("d449c2af4e39481c8e8a64950f406920").unwrap(),
            json!("d449c2af4e39481c8e8a64950f406920")
        );
        assert_eq!(decode("123").unwrap(), json!(123));
        assert_eq!(decode("true").unwrap(), json!(true));
        assert!(matches!(decode("@int x"), Err(CodecError::Parse { .. })));
        assert!(matches!(
            decode("@format {this}"),
            Err(CodecError::Unsupported(_))
        ));
    }
}
