//! The payload of a stored role's next version when its version and expiry change (a bump),
//! and when some of its artifacts change too (a publication), computed from the stored bytes
//! without building the model.
//!
//! A bump of 16,384 bins re-signs every bin's stored content unchanged, and a publication
//! re-signs each changed bin with a few artifacts added or removed. Parsing each bin into the
//! model and encoding it again allocates and frees every artifact entry; here the stored JSON
//! is read once and its `signed` object is written out as canonical JSON, with `version` and
//! `expires` replaced and the changed entries of `targets` merged in at their place. Anything
//! unusual (keys out of order, a float, a lone surrogate, a missing field, a `_type` other
//! than `targets`) gives `None`, and the caller takes the model path, so the result is always
//! what the model path would sign.

use crate::cjson;
use crate::schema::{Expires, format_expires};

/// The canonical bytes of the `signed` object of the stored targets metadata `stored`, with
/// `version` and `expires` replaced; `None` when the model path must decide.
pub fn resign_targets_payload(stored: &[u8], version: u64, expires: Expires) -> Option<Vec<u8>> {
    patch_targets_payload(stored, version, expires, &[])
}

/// One artifact's change: its path and its new entry as canonical JSON, or `None` when it is
/// removed.
pub type ArtifactChange<'a> = (&'a str, Option<&'a [u8]>);

/// As [`resign_targets_payload`], with `changes` applied to `targets`: each path's entry
/// replaced, added or removed (removing a path that is not there changes nothing). `changes`
/// must be sorted by path, each path once (else `None`).
pub fn patch_targets_payload(
    stored: &[u8],
    version: u64,
    expires: Expires,
    changes: &[ArtifactChange<'_>],
) -> Option<Vec<u8>> {
    if changes.windows(2).any(|w| w[0].0 >= w[1].0) {
        return None;
    }
    let mut r = Reader {
        b: stored,
        i: 0,
        key: Vec::new(),
        keys: Vec::new(),
        scratch: Vec::new(),
    };
    let mut out = Vec::with_capacity(stored.len());
    r.ws();
    r.expect(b'{')?;
    let mut signed = None;
    loop {
        r.ws();
        if r.peek()? == b'}' && signed.is_none() {
            return None;
        }
        r.string_into_key()?;
        r.ws();
        r.expect(b':')?;
        r.ws();
        if r.key == b"signed" {
            if signed.is_some() {
                return None;
            }
            let start = out.len();
            let replace = Replace {
                version,
                expires: format_expires(expires.0),
                changes,
            };
            r.object(&mut out, Some(&replace))?;
            signed = Some(start);
        } else {
            r.skip_value()?;
        }
        r.ws();
        match r.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    r.ws();
    if r.i != r.b.len() {
        return None;
    }
    signed.map(|_| out)
}

/// The top-level fields of `signed` to replace, and the changes to `targets`.
struct Replace<'c> {
    version: u64,
    expires: String,
    changes: &'c [ArtifactChange<'c>],
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    /// The last key read, decoded.
    key: Vec<u8>,
    /// Decoded keys of the objects being read, for the order check.
    keys: Vec<u8>,
    /// A string value being decoded.
    scratch: Vec<u8>,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    /// Reads a string, decoded, into `self.key`.
    fn string_into_key(&mut self) -> Option<()> {
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        let done = self.string(&mut key);
        self.key = key;
        done
    }

    /// Reads a JSON string and appends its decoded UTF-8 to `out`.
    fn string(&mut self, out: &mut Vec<u8>) -> Option<()> {
        self.expect(b'"')?;
        loop {
            let start = self.i;
            while let Some(&c) = self.b.get(self.i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.extend_from_slice(&self.b[start..self.i]);
            match self.next()? {
                b'"' => break,
                b'\\' => {
                    let c = match self.next()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let unit = self.hex4()?;
                            match unit {
                                0xd800..=0xdbff => {
                                    self.expect(b'\\')?;
                                    self.expect(b'u')?;
                                    let low = self.hex4()?;
                                    if !(0xdc00..=0xdfff).contains(&low) {
                                        return None;
                                    }
                                    let c = 0x10000
                                        + ((u32::from(unit) - 0xd800) << 10)
                                        + (u32::from(low) - 0xdc00);
                                    char::from_u32(c)?
                                }
                                0xdc00..=0xdfff => return None,
                                _ => char::from_u32(u32::from(unit))?,
                            }
                        }
                        _ => return None,
                    };
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                // A raw control character: not JSON.
                _ => return None,
            }
        }
        // The input is only known to be bytes; the decoded string must be UTF-8.
        std::str::from_utf8(out).ok().map(|_| ())
    }

    fn hex4(&mut self) -> Option<u16> {
        let digits = self.b.get(self.i..self.i + 4)?;
        self.i += 4;
        u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    }

    /// Copies a value as canonical JSON.
    fn value(&mut self, out: &mut Vec<u8>) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(out, None),
            b'[' => {
                self.i += 1;
                out.push(b'[');
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    out.push(b']');
                    return Some(());
                }
                loop {
                    self.ws();
                    self.value(out)?;
                    self.ws();
                    match self.next()? {
                        b',' => out.push(b','),
                        b']' => break,
                        _ => return None,
                    }
                }
                out.push(b']');
                Some(())
            }
            b'"' => {
                let mut s = std::mem::take(&mut self.scratch);
                s.clear();
                let done = self.string(&mut s);
                if done.is_some() {
                    write_canonical_str(&s, out);
                }
                self.scratch = s;
                done
            }
            b't' => self.literal(b"true", out),
            b'f' => self.literal(b"false", out),
            b'n' => self.literal(b"null", out),
            _ => self.integer(out),
        }
    }

    fn literal(&mut self, word: &[u8], out: &mut Vec<u8>) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? != word {
            return None;
        }
        self.i += word.len();
        out.extend_from_slice(word);
        Some(())
    }

    /// An integer from -2^63 to 2^64-1 in JSON's form; anything else (a fraction, an
    /// exponent, `-0`) has no canonical form here.
    fn integer(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        let body = &self.b[digits..self.i];
        if body.is_empty() || (body[0] == b'0' && body.len() > 1) || text == "-0" {
            return None;
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        if text.starts_with('-') {
            text.parse::<i64>().ok()?;
        } else {
            text.parse::<u64>().ok()?;
        }
        out.extend_from_slice(text.as_bytes());
        Some(())
    }

    /// Copies an object as canonical JSON: its keys must already be in canonical order. At
    /// the top of `signed` (`replace`), `version` and `expires` are replaced and `_type`
    /// must be `targets`.
    fn object(&mut self, out: &mut Vec<u8>, replace: Option<&Replace<'_>>) -> Option<()> {
        self.expect(b'{')?;
        out.push(b'{');
        let mark = self.keys.len();
        let mut prev: Option<(usize, usize)> = None;
        let mut seen = 0u8;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            out.push(b'}');
            return replace.is_none().then_some(());
        }
        loop {
            self.ws();
            self.string_into_key()?;
            let start = self.keys.len();
            self.keys.extend_from_slice(&self.key);
            let this = (start, self.keys.len());
            if let Some(p) = prev
                && self.keys[p.0..p.1] >= self.keys[this.0..this.1]
            {
                return None;
            }
            prev = Some(this);
            if out.last() != Some(&b'{') {
                out.push(b',');
            }
            let key = std::mem::take(&mut self.key);
            write_canonical_str(&key, out);
            out.push(b':');
            self.ws();
            self.expect(b':')?;
            self.ws();
            match (replace, key.as_slice()) {
                (Some(r), b"version") => {
                    self.skip_value()?;
                    cjson::write_u64(r.version, out);
                    seen |= 1;
                }
                (Some(r), b"expires") => {
                    self.skip_value()?;
                    write_canonical_str(r.expires.as_bytes(), out);
                    seen |= 2;
                }
                (Some(_), b"_type") => {
                    let before = out.len();
                    self.value(out)?;
                    if &out[before..] != b"\"targets\"" {
                        return None;
                    }
                    seen |= 4;
                }
                (Some(r), b"targets") if !r.changes.is_empty() => {
                    self.targets(out, r.changes)?;
                    seen |= 8;
                }
                _ => self.value(out)?,
            }
            self.key = key;
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        self.keys.truncate(mark);
        out.push(b'}');
        match replace {
            None => Some(()),
            // Changes need a `targets` object to go into.
            Some(r) => ((seen & 7) == 7 && (r.changes.is_empty() || (seen & 8) == 8)).then_some(()),
        }
    }

    /// Copies the `targets` object as canonical JSON with `changes` (sorted by path) merged
    /// in: an entry whose path changes is replaced or left out, new paths go in at their
    /// place in key order.
    fn targets(&mut self, out: &mut Vec<u8>, changes: &[ArtifactChange<'_>]) -> Option<()> {
        fn entry(out: &mut Vec<u8>, path: &[u8], value: &[u8]) {
            if out.last() != Some(&b'{') {
                out.push(b',');
            }
            write_canonical_str(path, out);
            out.push(b':');
            out.extend_from_slice(value);
        }
        self.expect(b'{')?;
        out.push(b'{');
        let mut pending = changes.iter().peekable();
        let mut prev: Option<Vec<u8>> = None;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
        } else {
            loop {
                self.ws();
                self.string_into_key()?;
                let path = std::mem::take(&mut self.key);
                if prev.as_ref().is_some_and(|p| *p >= path) {
                    return None;
                }
                while let Some((new, value)) = pending.next_if(|(p, _)| p.as_bytes() < &path[..]) {
                    if let Some(value) = value {
                        entry(out, new.as_bytes(), value);
                    }
                }
                self.ws();
                self.expect(b':')?;
                self.ws();
                match pending.next_if(|(p, _)| p.as_bytes() == &path[..]) {
                    Some((_, change)) => {
                        self.skip_value()?;
                        if let Some(value) = change {
                            entry(out, &path, value);
                        }
                    }
                    None => {
                        entry(out, &path, b"");
                        self.value(out)?;
                    }
                }
                self.key = prev.replace(path).unwrap_or_default();
                self.ws();
                match self.next()? {
                    b',' => continue,
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        for (new, value) in pending {
            if let Some(value) = value {
                entry(out, new.as_bytes(), value);
            }
        }
        out.push(b'}');
        Some(())
    }

    /// Skips a value (checked as JSON, not kept).
    fn skip_value(&mut self) -> Option<()> {
        let mut sink = Vec::new();
        let keys = self.keys.len();
        let done = self.value(&mut sink);
        self.keys.truncate(keys);
        done
    }
}

/// A decoded string (UTF-8, as `Reader::string` checked) as canonical JSON writes it.
fn write_canonical_str(s: &[u8], out: &mut Vec<u8>) {
    cjson::write_string_bytes(s, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Metadata, Signature, Signed, TargetFile, Targets};
    use serde_json::json;

    fn expires() -> Expires {
        Expires::at(
            chrono::DateTime::parse_from_rfc3339("2031-02-03T04:05:06Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
        )
    }

    /// What the model path signs for the same bump.
    fn model(stored: &[u8]) -> Vec<u8> {
        let mut md = Metadata::<Targets>::from_stored_bytes(stored).unwrap();
        md.signed.set_version_and_expires(42, expires());
        md.signed_bytes().unwrap()
    }

    fn stored(signed: serde_json::Value) -> Vec<u8> {
        let md: Metadata<Targets> = Metadata::from_value(json!({
            "signatures": [{"keyid": "ab", "sig": "cd"}],
            "signed": signed,
        }))
        .unwrap();
        md.to_storage_bytes().unwrap()
    }

    #[test]
    fn gives_what_the_model_path_signs() {
        let doc = stored(json!({
            "_type": "targets", "spec_version": "1.0.31", "version": 7,
            "expires": "2030-01-01T00:00:00Z",
            "targets": {
                "a/b c.tgz": {"length": 3, "hashes": {"sha256": "00ff"}},
                "é/\u{1F600}\"\\\n\t\u{7f}\u{1}": {"length": 0, "hashes": {"sha512": "aa"},
                    "custom": {"x": [1, -2, true, null, {"y": "\u{ffff}"}], "a": {}}},
                "zz": {"length": 18446744073709551615_u64, "hashes": {"b": "1", "a": "2"}}
            },
            "x-rstuf-extra": [[], {}]
        }));
        assert_eq!(
            resign_targets_payload(&doc, 42, expires()).unwrap(),
            model(&doc)
        );
        let mut with_sigs = Metadata::<Targets>::from_stored_bytes(&doc).unwrap();
        with_sigs.add_signature(Signature::new("ef", &[1, 2]));
        let doc = with_sigs.to_storage_bytes().unwrap();
        assert_eq!(
            resign_targets_payload(&doc, 42, expires()).unwrap(),
            model(&doc)
        );
    }

    #[test]
    fn compact_python_json_with_other_escapes_works_too() {
        // The same content as Python's compact `json.dumps`, `\/` and uppercase hex included.
        let doc = br#"{"signed": {"_type": "targets", "expires": "2030-01-01T00:00:00Z", "spec_version": "1.0.31", "targets": {"a\/b\u00E9\uD83D\uDE00": {"hashes": {"sha256": "ab"}, "length": 1}}, "version": 1}, "signatures": []}"#;
        assert_eq!(
            resign_targets_payload(doc, 42, expires()).unwrap(),
            model(doc)
        );
    }

    /// What the model path signs for a publication: the stored role with `changes` applied
    /// in order.
    fn model_patched(stored: &[u8], changes: &[(String, Option<TargetFile>)]) -> Vec<u8> {
        let mut md = Metadata::<Targets>::from_stored_bytes(stored).unwrap();
        for (path, change) in changes {
            match change {
                Some(file) => md.signed.targets.insert(path.clone(), file.clone()),
                None => md.signed.targets.remove(path),
            };
        }
        md.signed.set_version_and_expires(42, expires());
        md.signed_bytes().unwrap()
    }

    fn file(n: u64) -> TargetFile {
        serde_json::from_value(json!({
            "length": n,
            "hashes": {"sha256": format!("{n:064x}")},
            "custom": {"n": n, "s": "é\u{1F600}\"\n"},
        }))
        .unwrap()
    }

    fn patched(stored: &[u8], changes: &[(String, Option<TargetFile>)]) -> Option<Vec<u8>> {
        let encoded: Vec<(String, Option<Vec<u8>>)> = changes
            .iter()
            .map(|(p, f)| {
                (
                    p.clone(),
                    f.as_ref().map(|f| crate::direct::to_canonical(f).unwrap()),
                )
            })
            .collect();
        let refs: Vec<ArtifactChange<'_>> = encoded
            .iter()
            .map(|(p, f)| (p.as_str(), f.as_deref()))
            .collect();
        patch_targets_payload(stored, 42, expires(), &refs)
    }

    #[test]
    fn patching_gives_what_the_model_path_signs() {
        let existing = ["a/b c.tgz", "m\"q", "é/x", "zz"];
        let doc = |paths: &[&str]| {
            let targets: serde_json::Map<String, serde_json::Value> = paths
                .iter()
                .enumerate()
                .map(|(i, p)| (p.to_string(), serde_json::to_value(file(i as u64)).unwrap()))
                .collect();
            stored(json!({
                "_type": "targets", "spec_version": "1.0.31", "version": 7,
                "expires": "2030-01-01T00:00:00Z", "targets": targets,
                "x-rstuf-extra": {"z": [1, {}]}
            }))
        };
        // Paths before, between and after the stored ones, the stored ones themselves, and
        // non-ASCII ones (escaped in storage, raw in canonical JSON).
        let pool = [
            "",
            "0",
            "a/b c.tgz",
            "a/b c.tgz0",
            "m\"q",
            "m\\q",
            "é/x",
            "é/y",
            "z",
            "zz",
            "zzz",
            "\u{1F600}",
        ];
        let mut checked = 0;
        for stored_paths in [&existing[..], &existing[..1], &[][..]] {
            let doc = doc(stored_paths);
            // Every subset of the pool up to three paths, each added and removed.
            let mut seed = 7u64;
            for a in 0..pool.len() {
                for b in a..pool.len() {
                    for c in b..pool.len() {
                        let mut paths: Vec<&str> = vec![pool[a], pool[b], pool[c]];
                        paths.sort_unstable();
                        paths.dedup();
                        let changes: Vec<(String, Option<TargetFile>)> = paths
                            .iter()
                            .map(|p| {
                                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                                let change = !(seed >> 33).is_multiple_of(3);
                                (p.to_string(), change.then(|| file(seed >> 40)))
                            })
                            .collect();
                        assert_eq!(
                            patched(&doc, &changes).as_deref(),
                            Some(&model_patched(&doc, &changes)[..]),
                            "{stored_paths:?} {changes:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 500);
    }

    #[test]
    fn changes_out_of_order_or_without_targets_are_left_to_the_model_path() {
        let doc = stored(json!({
            "_type": "targets", "spec_version": "1.0.31", "version": 7,
            "expires": "2030-01-01T00:00:00Z", "targets": {}
        }));
        let unsorted = [("b".to_string(), Some(file(1))), ("a".to_string(), None)];
        assert_eq!(patched(&doc, &unsorted), None);
        let twice = [("a".to_string(), Some(file(1))), ("a".to_string(), None)];
        assert_eq!(patched(&doc, &twice), None);
        let no_targets = br#"{"signatures": [], "signed": {"_type": "targets", "expires": "x", "spec_version": "1", "version": 1}}"#;
        assert_eq!(patched(no_targets, &[("a".to_string(), None)]), None);
        // Without changes, a document without targets is re-signed as it is (a bump).
        assert!(resign_targets_payload(no_targets, 2, expires()).is_some());
    }

    #[test]
    fn anything_unusual_is_left_to_the_model_path() {
        for doc in [
            // keys out of order, duplicate keys
            r#"{"signatures": [], "signed": {"version": 1, "_type": "targets", "expires": "x", "spec_version": "1", "targets": {}}}"#,
            r#"{"signatures": [], "signed": {"_type": "targets", "expires": "x", "spec_version": "1", "targets": {"b": 1, "a": 2}, "version": 1}}"#,
            r#"{"signatures": [], "signed": {"_type": "targets", "expires": "x", "spec_version": "1", "targets": {"a": 1, "a": 2}, "version": 1}}"#,
            // numbers without a canonical form
            r#"{"signatures": [], "signed": {"_type": "targets", "expires": "x", "spec_version": "1", "targets": {"a": 1.0}, "version": 1}}"#,
            r#"{"signatures": [], "signed": {"_type": "targets", "expires": "x", "spec_version": "1", "targets": {"a": -0}, "version": 1}}"#,
            r#"{"signatures": [], "signed": {"_type": "targets", "expires": "x", "spec_version": "1", "targets": {"a": 18446744073709551616}, "version": 1}}"#,
            r#"{"signatures": [], "signed": {"_type": "targets", "expires": "x", "spec_version": "1", "targets": {"a": 1e3}, "version": 1}}"#,
            // a lone surrogate, a raw control character
            r#"{"signatures": [], "signed": {"_type": "targets", "expires": "x", "spec_version": "1", "targets": {"\ud800": 1}, "version": 1}}"#,
            "{\"signatures\": [], \"signed\": {\"_type\": \"targets\", \"expires\": \"x\", \"spec_version\": \"1\", \"targets\": {\"\u{1}\": 1}, \"version\": 1}}",
            // another type, a missing field, no signed, trailing bytes, truncated
            r#"{"signatures": [], "signed": {"_type": "snapshot", "expires": "x", "spec_version": "1", "targets": {}, "version": 1}}"#,
            r#"{"signatures": [], "signed": {"_type": "targets", "spec_version": "1", "targets": {}, "version": 1}}"#,
            r#"{"signatures": []}"#,
            r#"{"signatures": [], "signed": {"_type": "targets", "expires": "x", "spec_version": "1", "targets": {}, "version": 1}} x"#,
            r#"{"signatures": [], "signed": {"_type": "targets", "expires": "x""#,
        ] {
            assert_eq!(
                resign_targets_payload(doc.as_bytes(), 42, expires()),
                None,
                "{doc}"
            );
        }
    }
}
