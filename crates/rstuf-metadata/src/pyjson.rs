//! JSON exactly as Python's `json.dumps` writes it.
//!
//! - [`to_storage_json`]: `json.dumps(v, indent=1, separators=(",", ": "), sort_keys=True,
//!   ensure_ascii=True)` with no trailing newline, which is how the reference worker writes every
//!   metadata file. Clients only need the bytes we sign to be canonical, but operators diff
//!   and mirror these files, so we keep them identical.
//! - [`to_python_json`]: `json.dumps(v)` with default arguments, for values stored in Redis.
//!
//! What Python does, and so what we do:
//! - `ensure_ascii`: `"` and `\` are escaped, `\n`, `\r`, `\t`, `\b`, `\f` get their short
//!   escapes, every other character outside `0x20..=0x7e` (the other C0 controls, DEL and all
//!   non-ASCII) becomes `\u00XX` in lowercase hex, and characters beyond the BMP become a
//!   lowercase UTF-16 surrogate pair. `/` is not escaped. No Unicode normalisation.
//! - `indent=1`: a newline and one space per level before each item and before the closing
//!   bracket, but empty containers stay `{}` and `[]` on one line at any depth.
//! - `sort_keys=True` sorts by code point, which is UTF-8 byte order (not UTF-16 order: U+FFFF
//!   sorts before U+10000).
//!
//! Both refuse floats and integers outside `-2^63..=2^64-1` (TUF metadata has none).
//! Output is written straight into one `Vec<u8>`: this runs for every file the worker writes.

use serde_json::Value;

use crate::cjson::{
    CanonicalError, CompactLayout, HIGHS, NotInteger, ONES, float_error, has_zero_byte,
    map_is_sorted, sorted_entries, write_compact, write_separated,
};

/// `json.dumps(value, indent=1, separators=(",", ": "), sort_keys=True, ensure_ascii=True)`,
/// no trailing newline.
pub fn to_storage_json(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(1024);
    write_indented(value, 0, &mut out).map_err(|NotInteger| float_error(value))?;
    Ok(out)
}

/// `json.dumps(value)`: separators `", "` and `": "`, ASCII only, keys in the map's order
/// (sorted, as serde_json's `Map` is a `BTreeMap`).
pub fn to_python_json(value: &Value) -> Result<String, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_compact(&PYTHON_COMPACT, value, &mut out).map_err(|NotInteger| float_error(value))?;
    Ok(String::from_utf8(out).expect("only ASCII is written"))
}

/// `json.dumps` with default arguments.
const PYTHON_COMPACT: CompactLayout = CompactLayout {
    comma: b", ",
    colon: b": ",
    sort_keys: false,
    write_str: write_ascii_string,
};

/// `json.dumps(d)` of a dict whose keys were inserted in the order of `entries` (a Python
/// dict keeps insertion order): `{"k": v, ...}` with `to_python_json`'s separators and
/// escapes. A key given twice is written twice; callers pass distinct keys.
pub fn to_python_json_ordered<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a Value)>,
) -> Result<String, CanonicalError> {
    let mut out = String::with_capacity(256);
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&to_python_json(&Value::String(key.to_string()))?);
        out.push_str(": ");
        out.push_str(&to_python_json(value)?);
    }
    out.push('}');
    Ok(out)
}

/// A newline and `level` spaces: Python's `indent=1` before an item or a closing bracket.
pub(crate) fn newline_indent(level: usize, out: &mut Vec<u8>) {
    out.push(b'\n');
    out.resize(out.len() + level, b' ');
}

fn write_indented(value: &Value, level: usize, out: &mut Vec<u8>) -> Result<(), NotInteger> {
    match value {
        Value::Array(items) if items.is_empty() => out.extend_from_slice(b"[]"),
        Value::Object(map) if map.is_empty() => out.extend_from_slice(b"{}"),
        Value::Array(items) => {
            out.push(b'[');
            write_separated(items, b",", out, |item, out| {
                newline_indent(level + 1, out);
                write_indented(item, level + 1, out)
            })?;
            newline_indent(level, out);
            out.push(b']');
        }
        Value::Object(map) if map_is_sorted() => write_indented_object(map.iter(), level, out)?,
        Value::Object(map) => write_indented_object(sorted_entries(map), level, out)?,
        // Scalars are written as `json.dumps` writes them with default arguments.
        scalar => write_compact(&PYTHON_COMPACT, scalar, out)?,
    }
    Ok(())
}

fn write_indented_object<'a>(
    entries: impl IntoIterator<Item = (&'a String, &'a Value)>,
    level: usize,
    out: &mut Vec<u8>,
) -> Result<(), NotInteger> {
    out.push(b'{');
    write_separated(entries, b",", out, |(k, v), out| {
        newline_indent(level + 1, out);
        write_ascii_string(k, out);
        out.extend_from_slice(b": ");
        write_indented(v, level + 1, out)
    })?;
    newline_indent(level, out);
    out.push(b'}');
    Ok(())
}

/// How [`write_ascii_string`] writes each byte: `0` copies it, `U` writes `\u00XX`, `N` starts
/// a non-ASCII character, anything else is the letter of a two-character escape.
const U: u8 = b'u';
const N: u8 = 0xff;
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = U;
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table[0x7f] = U;
    let mut b = 0x80;
    while b < 0x100 {
        // Only lead bytes are ever looked up: continuation bytes are skipped with their lead.
        table[b] = N;
        b += 1;
    }
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_u16_escape(unit: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&[
        b'\\',
        b'u',
        HEX[usize::from(unit >> 12)],
        HEX[usize::from((unit >> 8) & 0xf)],
        HEX[usize::from((unit >> 4) & 0xf)],
        HEX[usize::from(unit & 0xf)],
    ]);
}

/// Skips from `i` over whole 8-byte words of printable ASCII other than `"` and `\`, which
/// make up nearly all of the strings in metadata (hex digests, key ids, paths).
fn skip_plain_words(bytes: &[u8], mut i: usize) -> usize {
    while let Some(word) = bytes.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let x = u64::from_ne_bytes(w);
        let special = x & HIGHS != 0 // non-ASCII
            || x.wrapping_sub(ONES * 0x20) & !x & HIGHS != 0 // a control character
            || has_zero_byte(x ^ (ONES * u64::from(b'"')))
            || has_zero_byte(x ^ (ONES * u64::from(b'\\')))
            || has_zero_byte(x ^ (ONES * 0x7f));
        if special {
            break;
        }
        i += 8;
    }
    i
}

/// Python's `encode_basestring_ascii`, copying runs of printable ASCII in one go.
fn write_ascii_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    write_ascii_body(s.as_bytes(), out);
    out.push(b'"');
}

/// Writes, quoted and ASCII-escaped, the canonical JSON string whose content starts at `b[i]`
/// (just after its opening quote), in one pass; returns the index just past its closing
/// quote. Canonical JSON escapes only `"` and `\`, as `\"` and `\\`, which is also how
/// Python escapes them, so those escapes are copied as they are.
pub(crate) fn write_ascii_canonical_string(b: &[u8], mut i: usize, out: &mut Vec<u8>) -> usize {
    out.push(b'"');
    let mut start = i;
    loop {
        i = skip_plain_words(b, i);
        let Some(&c) = b.get(i) else {
            out.extend_from_slice(&b[start.min(b.len())..]);
            out.push(b'"');
            return b.len();
        };
        match c {
            b'"' => {
                out.extend_from_slice(&b[start..i]);
                out.push(b'"');
                return i + 1;
            }
            b'\\' => i += 2,
            _ => i = escape_at(b, i, &mut start, out),
        }
    }
}

/// The character starting at `i` (a lead byte) of UTF-8 text and its length; U+FFFD where the text is not
/// UTF-8, which never happens for text that came from a `str`.
fn char_at(bytes: &[u8], i: usize) -> (char, usize) {
    let len = match bytes[i] {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    };
    bytes
        .get(i..i + len)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.chars().next())
        .map_or((char::REPLACEMENT_CHARACTER, 1), |c| (c, len))
}

/// The escaped characters of the UTF-8 text `bytes`, without quotes.
fn write_ascii_body(bytes: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        i = skip_plain_words(bytes, i);
        if i < bytes.len() {
            i = escape_at(bytes, i, &mut start, out);
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Steps over the character at `bytes[i]` (an ASCII byte or a lead byte) and returns the index
/// after it. A character that needs an escape first flushes the text copied since `start`,
/// then writes its escape and moves `start` past it.
#[inline]
fn escape_at(bytes: &[u8], i: usize, start: &mut usize, out: &mut Vec<u8>) -> usize {
    let action = ESCAPE[usize::from(bytes[i])];
    if action == 0 {
        return i + 1;
    }
    out.extend_from_slice(&bytes[*start..i]);
    let next = i + write_escape(bytes, i, action, out);
    *start = next;
    next
}

/// Writes the escape of the character at `bytes[i]` (its [`ESCAPE`] action); returns the
/// character's length in bytes.
fn write_escape(bytes: &[u8], i: usize, action: u8, out: &mut Vec<u8>) -> usize {
    match action {
        U => {
            push_u16_escape(u16::from(bytes[i]), out);
            1
        }
        N => {
            // `i` is at a character boundary: we only stop on ASCII bytes and lead bytes.
            let (c, len) = char_at(bytes, i);
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                push_u16_escape(*unit, out);
            }
            len
        }
        letter => {
            out.extend_from_slice(&[b'\\', letter]);
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn storage(v: Value) -> String {
        String::from_utf8(to_storage_json(&v).unwrap()).unwrap()
    }

    fn compact(v: Value) -> String {
        to_python_json(&v).unwrap()
    }

    #[test]
    fn ordered_dicts_keep_the_given_key_order() {
        let (b, a) = (json!({"z": 1, "y": "\u{e9}"}), json!([1.5]));
        assert_eq!(
            to_python_json_ordered([("b", &b), ("\u{e9}", &json!(null))]).unwrap(),
            "{\"b\": {\"y\": \"\\u00e9\", \"z\": 1}, \"\\u00e9\": null}"
        );
        assert_eq!(to_python_json_ordered([]).unwrap(), "{}");
        assert!(to_python_json_ordered([("a", &a)]).is_err());
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
    fn empty_containers_stay_on_one_line_at_any_depth() {
        assert_eq!(storage(json!({})), "{}");
        assert_eq!(storage(json!([])), "[]");
        assert_eq!(
            storage(json!({"a": [[], {}], "b": {"c": {"d": []}}})),
            "{\n \"a\": [\n  [],\n  {}\n ],\n \"b\": {\n  \"c\": {\n   \"d\": []\n  }\n }\n}"
        );
        assert_eq!(storage(json!([[[]]])), "[\n [\n  []\n ]\n]");
        assert_eq!(
            compact(json!({"a": [], "b": {}, "c": [{}, []]})),
            r#"{"a": [], "b": {}, "c": [{}, []]}"#
        );
    }

    #[test]
    fn scalars_at_the_top_level() {
        assert_eq!(storage(json!("x")), r#""x""#);
        assert_eq!(storage(json!(null)), "null");
        assert_eq!(storage(json!(-7)), "-7");
        assert_eq!(compact(json!(true)), "true");
    }

    #[test]
    fn ascii_escapes_like_python() {
        let v = json!("q\"b\\n\nr\rt\tb\u{8}f\u{c}\u{1}\u{7f}é\u{1F600}/");
        assert_eq!(
            storage(v),
            r#""q\"b\\n\nr\rt\tb\bf\f\u0001\u007f\u00e9\ud83d\ude00/""#
        );
    }

    #[test]
    fn every_control_character_and_the_edges_of_each_utf8_length() {
        let short = [(8, 'b'), (9, 't'), (10, 'n'), (12, 'f'), (13, 'r')];
        for c in 0u8..0x20 {
            let want = match short.iter().find(|(b, _)| *b == c) {
                Some((_, l)) => format!("\"\\{l}\""),
                None => format!("\"\\u{c:04x}\""),
            };
            assert_eq!(storage(json!(String::from(char::from(c)))), want, "{c:#x}");
        }
        for (c, want) in [
            ('\u{7f}', r#""\u007f""#),
            ('\u{80}', r#""\u0080""#),
            ('\u{ff}', r#""\u00ff""#),
            ('\u{7ff}', r#""\u07ff""#),
            ('\u{800}', r#""\u0800""#),
            ('\u{feff}', r#""\ufeff""#),
            ('\u{ffff}', r#""\uffff""#),
            ('\u{10000}', r#""\ud800\udc00""#),
            ('\u{10ffff}', r#""\udbff\udfff""#),
        ] {
            assert_eq!(storage(json!(c.to_string())), want, "{c:?}");
            assert_eq!(compact(json!(c.to_string())), want, "{c:?}");
        }
        // Printable ASCII is copied as is, including the characters next to `"` and `\`.
        let printable: String = (0x20u8..0x7f).map(char::from).collect();
        let want = format!(
            "\"{}\"",
            printable.replace('\\', "\\\\").replace('"', "\\\"")
        );
        assert_eq!(storage(json!(printable)), want);
    }

    /// Python's `py_encode_basestring_ascii`, one character at a time.
    fn naive_ascii(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                ' '..='~' => out.push(c),
                _ => {
                    for unit in c.encode_utf16(&mut [0; 2]) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn escapes_are_found_at_every_offset_of_the_word_scan() {
        for special in [
            "\"", "\\", "\n", "\u{1f}", "\u{7f}", "\u{80}", "é", "\u{20ac}", "😀", "~", " ",
        ] {
            for pos in 0..20 {
                for tail in [0, 1, 7, 8, 9, 17] {
                    let s = format!("{}{special}{}", "a".repeat(pos), "/".repeat(tail));
                    assert_eq!(storage(json!(s)), naive_ascii(&s), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn keys_are_escaped_and_sorted_by_code_point() {
        // Python sorts `str` by code point: "\uffff" < "\U00010000" although UTF-16 order is
        // the other way round; "a" < "a b" < "a!" < "a\"" < "a#"; "Z" < "a" < "é".
        let v = json!({
            "\u{10000}": 1, "\u{ffff}": 2, "a#": 3, "a\"": 4, "a!": 5, "a b": 6, "a": 7,
            "é": 8, "Z": 9, "e\u{301}": 10,
        });
        assert_eq!(
            compact(v.clone()),
            r#"{"Z": 9, "a": 7, "a b": 6, "a!": 5, "a\"": 4, "a#": 3, "e\u0301": 10, "\u00e9": 8, "\uffff": 2, "\ud800\udc00": 1}"#
        );
        assert_eq!(
            storage(v),
            "{\n \"Z\": 9,\n \"a\": 7,\n \"a b\": 6,\n \"a!\": 5,\n \"a\\\"\": 4,\n \"a#\": 3,\n \
             \"e\\u0301\": 10,\n \"\\u00e9\": 8,\n \"\\uffff\": 2,\n \"\\ud800\\udc00\": 1\n}"
        );
    }

    #[test]
    fn integers_at_the_edges() {
        let v = json!([i64::MIN, i64::MAX, i64::MAX as u64 + 1, u64::MAX, 0, -1]);
        assert_eq!(
            compact(v),
            "[-9223372036854775808, 9223372036854775807, 9223372036854775808, 18446744073709551615, 0, -1]"
        );
    }

    #[test]
    fn compact_uses_python_default_separators() {
        let v = json!({"b": [1, 2], "a": {"x": "é"}});
        assert_eq!(compact(v), r#"{"a": {"x": "\u00e9"}, "b": [1, 2]}"#);
    }

    #[test]
    fn floats_are_refused_with_their_path() {
        let v = json!({"a": [1, {"b": 0.5}]});
        let want = CanonicalError::Float {
            path: "a[1].b".into(),
            value: "0.5".into(),
        };
        assert_eq!(to_storage_json(&v).unwrap_err(), want);
        assert_eq!(to_python_json(&v).unwrap_err(), want);
        let big: Value = serde_json::from_str(r#"{"x": [18446744073709551616]}"#).unwrap();
        let err = to_storage_json(&big).unwrap_err();
        assert!(
            matches!(&err, CanonicalError::Float { path, .. } if path == "x[0]"),
            "{err}"
        );
    }
}
