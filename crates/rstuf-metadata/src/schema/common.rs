//! Pieces shared by the four role types: the `_type` tag and the `expires` timestamp.

use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::RuleError;

/// The expiry of a role, in whole seconds, UTC (`"%Y-%m-%dT%H:%M:%SZ"` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expires(pub DateTime<Utc>);

impl Expires {
    /// An expiry at `at`, with sub-second precision dropped as python-tuf does.
    pub fn at(at: DateTime<Utc>) -> Self {
        Expires(at.with_nanosecond_zero())
    }
}

trait NanoZero {
    fn with_nanosecond_zero(self) -> Self;
}

impl NanoZero for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap_or(self)
    }
}

impl fmt::Display for Expires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_expires(self.0))
    }
}

/// Formats a time as TUF metadata does: `2026-11-25T01:31:16Z`.
pub fn format_expires(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses `%Y-%m-%dT%H:%M:%SZ` (python-tuf uses `datetime.strptime` with this format).
pub fn parse_expires(s: &str) -> Result<DateTime<Utc>, String> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ")
        .map(|naive| naive.and_utc())
        .map_err(|e| format!("expires {s:?} is not in the format YYYY-MM-DDTHH:MM:SSZ: {e}"))
}

impl Serialize for Expires {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_expires(self.0))
    }
}

impl<'de> Deserialize<'de> for Expires {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        parse_expires(&s)
            .map(Expires)
            .map_err(serde::de::Error::custom)
    }
}

/// Names a top-level role type for the `_type` tag.
pub trait TopLevel {
    /// The `_type` string.
    const NAME: &'static str;
}

/// The `_type` field: serializes as the role's name and refuses any other value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TypeTag<R: TopLevel>(PhantomData<R>);

impl<R: TopLevel> TypeTag<R> {
    pub(crate) fn new() -> Self {
        TypeTag(PhantomData)
    }
}

impl<R: TopLevel> Default for TypeTag<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: TopLevel> fmt::Debug for TypeTag<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(R::NAME)
    }
}

impl<R: TopLevel> Serialize for TypeTag<R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(R::NAME)
    }
}

impl<'de, R: TopLevel> Deserialize<'de> for TypeTag<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        if s == R::NAME {
            Ok(TypeTag::new())
        } else {
            Err(serde::de::Error::custom(format!(
                "expected type {}, got {s}",
                R::NAME
            )))
        }
    }
}

/// Implements [`TopLevel`] and [`super::Signed`] for a role type with `spec_version`, `version`
/// and `expires` fields and an inherent `validate_fields` for its own checks; the common checks
/// (python-tuf's `Signed` constructor) are written once here.
macro_rules! top_level_role {
    ($ty:ident, $name:literal) => {
        impl $crate::schema::common::TopLevel for $ty {
            const NAME: &'static str = $name;
        }

        impl $crate::schema::Signed for $ty {
            const TYPE: &'static str = $name;
            fn version(&self) -> u64 {
                self.version
            }
            fn expires(&self) -> $crate::schema::Expires {
                self.expires
            }
            fn set_version_and_expires(&mut self, version: u64, expires: $crate::schema::Expires) {
                self.version = version;
                self.expires = expires;
            }
            fn validate(&self) -> Result<(), $crate::schema::SchemaError> {
                $crate::schema::common::check_spec_version(&self.spec_version)
                    .and_then(|_| $crate::schema::common::check_version(self.version))
                    .map_err(|r| $crate::schema::SchemaError::rule("signed", r))?;
                self.validate_fields()
            }
        }
    };
}

/// Checks `spec_version` as python-tuf does: `X.Y` or `X.Y.Z` of digits with major version 1.
pub(crate) fn check_spec_version(spec_version: &str) -> Result<(), RuleError> {
    let parts: Vec<&str> = spec_version.split('.').collect();
    if !(parts.len() == 2 || parts.len() == 3)
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(RuleError::SpecVersionUnparsable(spec_version.into()));
    }
    if parts[0] != "1" {
        return Err(RuleError::SpecVersionUnsupported(spec_version.into()));
    }
    Ok(())
}

/// Checks a role version (python-tuf: `version must be > 0`).
pub(crate) fn check_version(version: u64) -> Result<(), RuleError> {
    if version == 0 {
        Err(RuleError::VersionZero)
    } else {
        Ok(())
    }
}

/// Checks a list of key ids has no duplicates and a threshold of at least 1.
pub(crate) fn check_role_keys(keyids: &[String], threshold: u64) -> Result<(), RuleError> {
    let mut seen = std::collections::BTreeSet::new();
    for k in keyids {
        if !seen.insert(k) {
            return Err(RuleError::NonuniqueKeyids(keyids.to_vec()));
        }
    }
    if threshold < 1 {
        return Err(RuleError::ThresholdBelowOne);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_round_trip() {
        let t = parse_expires("2026-11-26T01:42:45Z").unwrap();
        assert_eq!(format_expires(t), "2026-11-26T01:42:45Z");
    }

    #[test]
    fn malformed_expires_are_refused() {
        for bad in [
            "2026-11-26 01:42:45Z",
            "2026-11-26T01:42:45",
            "2026-11-26T01:42:45.123Z",
            "2026-13-26T01:42:45Z",
            "2026-11-26T01:42:45+00:00",
            "",
        ] {
            assert!(parse_expires(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn spec_versions() {
        assert!(check_spec_version("1.0.31").is_ok());
        assert!(check_spec_version("1.0").is_ok());
        assert_eq!(
            check_spec_version("2.0.0"),
            Err(RuleError::SpecVersionUnsupported("2.0.0".into()))
        );
        assert_eq!(
            check_spec_version("1").unwrap_err().to_string(),
            "failed to parse spec_version 1"
        );
        assert!(check_spec_version("1").is_err());
        assert!(check_spec_version("1.a.0").is_err());
        assert!(check_spec_version("1..0").is_err());
    }
}
