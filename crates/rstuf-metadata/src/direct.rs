//! Canonical and storage JSON written straight from the model, without building a
//! [`serde_json::Value`] tree first.
//!
//! Every role the worker publishes is encoded twice (the canonical bytes it signs, the storage
//! bytes it writes). Going through `Value` allocated a map node and a string per field of every
//! artifact, and freed them again; for a bump of 16,384 bins that conversion and its frees were
//! the largest cost after the signatures. Here:
//! - [`to_canonical`] is a `serde::Serializer` that writes canonical JSON
//!   ([`crate::cjson`]) into one buffer. Keys usually arrive sorted (`BTreeMap`s, struct fields
//!   declared in order); a map whose keys do not (struct fields followed by flattened unknown
//!   fields) has its entries reordered in place when it ends.
//! - [`storage_from_canonical`] re-lays canonical bytes out as Python's `json.dumps(indent=1,
//!   sort_keys=True, ensure_ascii=True)` ([`crate::pyjson`]): canonical JSON is already sorted
//!   by code point, which is the order `sort_keys` gives, so only whitespace and string escapes
//!   change.
//!
//! Anything this writer refuses (a float, a non-string key, a duplicate key) is encoded again
//! through `Value` by the caller, so errors and results are exactly those of the `Value` path.

use serde::ser::{self, Impossible, Serialize};

use crate::cjson::write_separated;
use crate::pyjson::{self, newline_indent};
use crate::schema::SchemaError;

/// Why the direct writer gave up (the caller falls back to the `Value` path).
#[derive(Debug)]
pub(crate) struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("value has no direct canonical form")
    }
}

impl std::error::Error for Refused {}

impl ser::Error for Refused {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        Refused
    }
}

/// The canonical JSON of `value`, or `None` when only the `Value` path can say why not (or
/// which duplicate key wins).
pub(crate) fn try_canonical<T: Serialize + ?Sized>(value: &T) -> Option<Vec<u8>> {
    let mut w = Writer {
        out: Vec::with_capacity(1024),
        keys: String::new(),
        entries: Vec::new(),
        sort_entries: Vec::new(),
        sort_bytes: Vec::new(),
    };
    value.serialize(&mut w).ok()?;
    Some(w.out)
}

/// The canonical JSON of `value`, as [`crate::cjson::encode_canonical`] of its `Value` gives it
/// (with the same errors).
pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, SchemaError> {
    if let Some(bytes) = try_canonical(value) {
        return Ok(bytes);
    }
    let value = serde_json::to_value(value).map_err(SchemaError::Json)?;
    Ok(crate::cjson::encode_canonical(&value)?)
}

/// One map entry written so far: its key (in `Writer::keys`) and its bytes in the output
/// (`"key":value`, without the separating comma).
#[derive(Clone, Copy)]
struct Entry {
    key: (usize, usize),
    span: (usize, usize),
}

struct Writer {
    out: Vec<u8>,
    /// The raw keys of the maps being written, innermost last.
    keys: String,
    /// The entries of the maps being written, innermost last.
    entries: Vec<Entry>,
    /// Reused when a map's entries arrive out of order.
    sort_entries: Vec<Entry>,
    sort_bytes: Vec<u8>,
}

impl Writer {
    fn write_str(&mut self, s: &str) {
        crate::cjson::write_string(s, &mut self.out);
    }

    fn write_u64(&mut self, v: u64) {
        crate::cjson::write_u64(v, &mut self.out);
    }

    fn write_i64(&mut self, v: i64) {
        if v < 0 {
            self.out.push(b'-');
        }
        self.write_u64(v.unsigned_abs());
    }
}

/// A map or struct being written.
struct MapWriter<'a> {
    w: &'a mut Writer,
    /// Where the body (after `{`) starts in the output.
    body: usize,
    /// The first entry of this map in `Writer::entries`.
    first: usize,
    /// Where this map's keys start in `Writer::keys`.
    keys_mark: usize,
    /// Whether the keys so far arrived in strictly increasing order.
    sorted: bool,
}

impl<'a> MapWriter<'a> {
    fn new(w: &'a mut Writer) -> Self {
        w.out.push(b'{');
        MapWriter {
            body: w.out.len(),
            first: w.entries.len(),
            keys_mark: w.keys.len(),
            sorted: true,
            w,
        }
    }

    fn key(&mut self, key: &str) {
        let start = self.w.keys.len();
        self.w.keys.push_str(key);
        self.key_added(start);
    }

    /// Writes the key appended to `Writer::keys` from `key_start` on.
    fn key_added(&mut self, key_start: usize) {
        let w = &mut *self.w;
        if w.entries.len() > self.first {
            w.out.push(b',');
        }
        let start = w.out.len();
        let key = (key_start, w.keys.len());
        if let Some(prev) = w.entries[self.first..].last()
            && w.keys[prev.key.0..prev.key.1] >= w.keys[key.0..key.1]
        {
            self.sorted = false;
        }
        crate::cjson::write_string(&w.keys[key.0..key.1], &mut w.out);
        w.out.push(b':');
        w.entries.push(Entry {
            key,
            span: (start, 0),
        });
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        value.serialize(&mut *self.w)?;
        let end = self.w.out.len();
        let entry = self.w.entries.last_mut().expect("a key before each value");
        entry.span.1 = end;
        Ok(())
    }

    fn end(self) -> Result<(), Refused> {
        let MapWriter {
            w,
            body,
            first,
            keys_mark,
            sorted,
        } = self;
        if !sorted {
            let Writer {
                out,
                keys,
                entries,
                sort_entries,
                sort_bytes,
            } = w;
            sort_entries.clear();
            sort_entries.extend_from_slice(&entries[first..]);
            let key = |e: &Entry| &keys.as_bytes()[e.key.0..e.key.1];
            sort_entries.sort_unstable_by(|a, b| key(a).cmp(key(b)));
            if sort_entries.windows(2).any(|p| key(&p[0]) == key(&p[1])) {
                return Err(Refused);
            }
            sort_bytes.clear();
            let Ok(()) = write_separated(&*sort_entries, b",", sort_bytes, |e, sorted| {
                sorted.extend_from_slice(&out[e.span.0..e.span.1]);
                Ok::<(), std::convert::Infallible>(())
            });
            out.truncate(body);
            out.extend_from_slice(sort_bytes);
        }
        w.entries.truncate(first);
        w.keys.truncate(keys_mark);
        w.out.push(b'}');
        Ok(())
    }
}

/// A sequence being written.
struct SeqWriter<'a> {
    w: &'a mut Writer,
    first: bool,
}

impl SeqWriter<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
        value.serialize(&mut *self.w)
    }

    fn end(self) {
        self.w.out.push(b']');
    }
}

/// Methods that refuse a scalar (a float, or a map key that is not a string).
macro_rules! refuse_scalars {
    ($($method:ident: $ty:ty),* $(,)?) => {$(
        fn $method(self, _v: $ty) -> Result<(), Refused> {
            Err(Refused)
        }
    )*};
}

/// Methods that write an integer, widened to 64 bits.
macro_rules! integers {
    ($($method:ident: $ty:ty => $write:ident),* $(,)?) => {$(
        fn $method(self, v: $ty) -> Result<(), Refused> {
            self.$write(v.into());
            Ok(())
        }
    )*};
}

/// The methods both serializers write alike: a newtype struct is its content, and tuple and
/// struct variants are refused (the model has none; the `Value` path handles them if one
/// appears).
macro_rules! shared_methods {
    () => {
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _name: &'static str,
            value: &T,
        ) -> Result<(), Refused> {
            value.serialize(self)
        }
        fn serialize_tuple_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeTupleVariant, Refused> {
            Err(Refused)
        }
        fn serialize_struct_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeStructVariant, Refused> {
            Err(Refused)
        }
    };
}

impl<'a> ser::Serializer for &'a mut Writer {
    type Ok = ();
    type Error = Refused;
    type SerializeSeq = SeqWriter<'a>;
    type SerializeTuple = SeqWriter<'a>;
    type SerializeTupleStruct = SeqWriter<'a>;
    type SerializeTupleVariant = Impossible<(), Refused>;
    type SerializeMap = MapWriter<'a>;
    type SerializeStruct = MapWriter<'a>;
    type SerializeStructVariant = Impossible<(), Refused>;

    fn serialize_bool(self, v: bool) -> Result<(), Refused> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!(
        serialize_i8: i8 => write_i64,
        serialize_i16: i16 => write_i64,
        serialize_i32: i32 => write_i64,
        serialize_i64: i64 => write_i64,
        serialize_u8: u8 => write_u64,
        serialize_u16: u16 => write_u64,
        serialize_u32: u32 => write_u64,
        serialize_u64: u64 => write_u64,
    );
    // Floats have no canonical form; 128-bit integers take the `Value` path, which decides.
    refuse_scalars!(
        serialize_i128: i128,
        serialize_u128: u128,
        serialize_f32: f32,
        serialize_f64: f64,
    );
    fn serialize_char(self, v: char) -> Result<(), Refused> {
        self.write_str(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Refused> {
        self.write_str(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Refused> {
        // serde_json writes bytes as an array of numbers.
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.element(b)?;
        }
        seq.end();
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Refused> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Refused> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Refused> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Refused> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Refused> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Refused> {
        let mut map = MapWriter::new(self);
        map.key(variant);
        map.value(value)?;
        map.end()
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<SeqWriter<'a>, Refused> {
        self.out.push(b'[');
        Ok(SeqWriter {
            w: self,
            first: true,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqWriter<'a>, Refused> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqWriter<'a>, Refused> {
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<MapWriter<'a>, Refused> {
        Ok(MapWriter::new(self))
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<MapWriter<'a>, Refused> {
        Ok(MapWriter::new(self))
    }
    shared_methods!();
}

/// The three sequence forms serde distinguishes are one JSON array.
macro_rules! seq_forms {
    ($($form:ident :: $method:ident),*) => {$(
        impl ser::$form for SeqWriter<'_> {
            type Ok = ();
            type Error = Refused;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
                self.element(value)
            }
            fn end(self) -> Result<(), Refused> {
                SeqWriter::end(self);
                Ok(())
            }
        }
    )*};
}

seq_forms!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field
);

impl ser::SerializeMap for MapWriter<'_> {
    type Ok = ();
    type Error = Refused;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Refused> {
        let start = self.w.keys.len();
        key.serialize(KeyText(&mut self.w.keys))?;
        self.key_added(start);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        self.value(value)
    }
    fn end(self) -> Result<(), Refused> {
        MapWriter::end(self)
    }
}

impl ser::SerializeStruct for MapWriter<'_> {
    type Ok = ();
    type Error = Refused;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Refused> {
        self.key(key);
        self.value(value)
    }
    fn end(self) -> Result<(), Refused> {
        MapWriter::end(self)
    }
}

/// A map key, appended to the writer's key stack: only strings are accepted here (the `Value`
/// path decides about the rest).
struct KeyText<'k>(&'k mut String);

impl ser::Serializer for KeyText<'_> {
    type Ok = ();
    type Error = Refused;
    type SerializeSeq = Impossible<(), Refused>;
    type SerializeTuple = Impossible<(), Refused>;
    type SerializeTupleStruct = Impossible<(), Refused>;
    type SerializeTupleVariant = Impossible<(), Refused>;
    type SerializeMap = Impossible<(), Refused>;
    type SerializeStruct = Impossible<(), Refused>;
    type SerializeStructVariant = Impossible<(), Refused>;

    refuse_scalars!(
        serialize_bool: bool,
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_f32: f32,
        serialize_f64: f64,
        serialize_char: char
    );

    fn serialize_str(self, v: &str) -> Result<(), Refused> {
        self.0.push_str(v);
        Ok(())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Refused> {
        Err(Refused)
    }
    fn serialize_none(self) -> Result<(), Refused> {
        Err(Refused)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _v: &T) -> Result<(), Refused> {
        Err(Refused)
    }
    fn serialize_unit(self) -> Result<(), Refused> {
        Err(Refused)
    }
    fn serialize_unit_struct(self, _n: &'static str) -> Result<(), Refused> {
        Err(Refused)
    }
    fn serialize_unit_variant(
        self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
    ) -> Result<(), Refused> {
        self.0.push_str(variant);
        Ok(())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _n: &'static str,
        _i: u32,
        _v: &'static str,
        _value: &T,
    ) -> Result<(), Refused> {
        Err(Refused)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Refused> {
        Err(Refused)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Refused> {
        Err(Refused)
    }
    fn serialize_tuple_struct(
        self,
        _n: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Refused> {
        Err(Refused)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Refused> {
        Err(Refused)
    }
    fn serialize_struct(
        self,
        _n: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Refused> {
        Err(Refused)
    }
    shared_methods!();
}

/// Storage JSON from canonical JSON this crate wrote (see the module documentation).
/// `canonical` must be canonical JSON: compact, keys sorted, strings escaping only `"` and `\`.
pub fn storage_from_canonical(canonical: &[u8]) -> Vec<u8> {
    // ASCII escapes and indentation make the storage form larger; a third covers metadata.
    let mut out = Vec::with_capacity(canonical.len() + canonical.len() / 3 + 64);
    let mut level = 0usize;
    let mut i = 0;
    let b = canonical;
    while i < b.len() {
        match b[i] {
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                if b.get(i + 1) == Some(&close) {
                    out.extend_from_slice(&[open, close]);
                    i += 2;
                    continue;
                }
                out.push(open);
                level += 1;
                newline_indent(level, &mut out);
            }
            close @ (b'}' | b']') => {
                level = level.saturating_sub(1);
                newline_indent(level, &mut out);
                out.push(close);
            }
            b',' => {
                out.push(b',');
                newline_indent(level, &mut out);
            }
            b':' => out.extend_from_slice(b": "),
            b'"' => {
                i = pyjson::write_ascii_canonical_string(b, i + 1, &mut out);
                continue;
            }
            other => out.push(other),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    fn both(v: &Value) -> (Vec<u8>, Vec<u8>) {
        let canonical = to_canonical(v).unwrap();
        (canonical.clone(), storage_from_canonical(&canonical))
    }

    #[test]
    fn matches_the_value_path_on_awkward_documents() {
        let docs = [
            json!({}),
            json!([]),
            json!({"a": {}, "b": [[], {}], "c": [{}, []]}),
            json!({"b": 1, "a#": 2, "a\"": 3, "a!": 4, "a b": 5, "a": 6, "a\\": 7}),
            json!(
                crate::cjson::TRICKY_STRINGS
                    .iter()
                    .chain(&["\u{1}", "\\\"", "\"\\", "end\\"])
                    .collect::<Vec<_>>()
            ),
            json!({"e\u{301}": 1, "\u{e9}": 2, "\u{ffff}": 3, "\u{10000}": 4}),
            json!([i64::MIN, i64::MAX, u64::MAX, 0, -1, true, false, null]),
            json!({"signed": {"targets": {"a/b c.tgz": {"hashes": {"sha256": "ab"}, "length": 3,
                  "custom": {"x": [1, {"y": null}]}}}, "x-rstuf-z": "q\"uote"}}),
        ];
        for doc in &docs {
            let (canonical, storage) = both(doc);
            assert_eq!(
                canonical,
                crate::cjson::encode_canonical(doc).unwrap(),
                "{doc}"
            );
            assert_eq!(storage, pyjson::to_storage_json(doc).unwrap(), "{doc}");
        }
    }

    #[derive(serde::Serialize)]
    struct Flattened {
        zeta: u8,
        alpha: &'static str,
        #[serde(flatten)]
        rest: BTreeMap<String, Value>,
    }

    #[test]
    fn struct_fields_and_flattened_keys_are_sorted_together() {
        let rest = BTreeMap::from([
            ("beta".to_string(), json!({"k": [1, 2]})),
            ("x-rstuf".to_string(), json!("v")),
            ("a".to_string(), json!(null)),
        ]);
        let value = Flattened {
            zeta: 1,
            alpha: "é\"",
            rest,
        };
        let via_value = serde_json::to_value(&value).unwrap();
        let canonical = to_canonical(&value).unwrap();
        assert_eq!(
            canonical,
            crate::cjson::encode_canonical(&via_value).unwrap()
        );
        assert_eq!(
            storage_from_canonical(&canonical),
            pyjson::to_storage_json(&via_value).unwrap()
        );
    }

    #[test]
    fn duplicate_keys_and_floats_take_the_value_path() {
        let dup = Flattened {
            zeta: 1,
            alpha: "a",
            rest: BTreeMap::from([("zeta".to_string(), json!(2))]),
        };
        assert!(try_canonical(&dup).is_none());
        let via_value = serde_json::to_value(&dup).unwrap();
        assert_eq!(
            to_canonical(&dup).unwrap(),
            crate::cjson::encode_canonical(&via_value).unwrap()
        );
        let float = json!({"a": [1, {"b": 0.5}]});
        assert!(try_canonical(&float).is_none());
        assert_eq!(
            to_canonical(&float).unwrap_err().to_string(),
            crate::cjson::encode_canonical(&float)
                .unwrap_err()
                .to_string()
        );
    }

    #[test]
    fn every_character_class_survives_the_storage_relayout() {
        let mut s = String::new();
        for c in (0u32..0x300).chain([0x7ff, 0x800, 0xfffd, 0xffff, 0x10000, 0x10ffff]) {
            if let Some(c) = char::from_u32(c) {
                s.push(c);
            }
        }
        let doc = json!({s.clone(): [s.clone(), {"k": s}]});
        let (canonical, storage) = both(&doc);
        assert_eq!(canonical, crate::cjson::encode_canonical(&doc).unwrap());
        assert_eq!(storage, pyjson::to_storage_json(&doc).unwrap());
    }
}
