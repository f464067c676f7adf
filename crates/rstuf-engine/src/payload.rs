//! Payloads typed at the edge: each action's payload is parsed once into its struct, with the
//! refusal texts the API shows, and the action works on the struct.
//!
//! A payload comes as a [`serde_json::Value`] (a decoded Celery message) or as JSON text
//! ([`PayloadSource`]). Parsing never panics: a value of the wrong type or out of range is a
//! [`PayloadError`] whose text is the task's error. Fields a payload struct does not name are
//! ignored (the API adds `task_id`, the CLI may add more), and a missing or `null` payload
//! reads as `{}`. JSON text keeps the order of its objects, which the result of
//! `update_settings` echoes; a `Value` has its keys sorted.
//!
//! Artifact paths are [`TargetPath`]s: a value of that type is a valid path.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use rstuf_metadata::cjson::check_no_floats;
use rstuf_metadata::schema::{Metadata, Root, Signature, TargetFile};
use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Where a payload is read from: a decoded JSON value or JSON text.
pub trait PayloadSource: Sync {
    /// Deserializes the payload into `T`.
    fn deserialize_into<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error>;
}

impl PayloadSource for Value {
    fn deserialize_into<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(self)
    }
}

/// JSON text; objects are read in the order they are written.
impl PayloadSource for str {
    fn deserialize_into<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self)
    }
}

/// A payload of one action: parsed once, with the refusal texts of that action.
pub trait Payload: Sized {
    /// Parses `source` (`None`: the task had no payload, read as `{}`).
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError>;
}

/// Deserializes the loose form `R` of a payload from `source`, `{}` when there is none.
fn raw<R: DeserializeOwned + Default, S: PayloadSource + ?Sized>(
    source: Option<&S>,
) -> Result<R, PayloadError> {
    match source {
        None => Ok(R::default()),
        Some(source) => source
            .deserialize_into::<Object<R>>()
            .map(|o| o.0)
            .map_err(|e| PayloadError::Unreadable(e.to_string())),
    }
}

/// Why a payload is refused; the text is the task's error as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// A required field is missing (or is `null`).
    #[error("No '{0}' in the payload")]
    Missing(&'static str),
    /// The payload is not JSON the struct can read (JSON text only: a `Value` always is).
    #[error("The payload is not valid: {0}")]
    Unreadable(String),
    /// `artifacts` is not a list.
    #[error("'artifacts' must be a list")]
    ArtifactsNotAList,
    /// A remove request with an empty list (sic, as the reference says it).
    #[error("At list one artifact is required")]
    NoArtifact,
    /// One artifact of the list is refused.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// `settings.expiration` is not an object.
    #[error("'expiration' must map role names to days")]
    ExpirationNotAMap,
    /// `settings.expiration` is empty.
    #[error("No role provided for expiration policy change")]
    NoExpirationRole,
    /// An expiration that is not a whole number of days in range.
    #[error(
        "Invalid expiration for {role}: {days} is not a whole number of days between 1 and {max}"
    )]
    Expiration {
        /// The role as given.
        role: String,
        /// The value as given (JSON).
        days: String,
        /// The longest policy accepted.
        max: u64,
    },
    /// `roles` of a forced update is not a list of strings.
    #[error("'roles' must be a list of role names")]
    RolesNotNames,
    /// `signature` of a signing event is missing or malformed.
    #[error("No valid 'signature' ({{\"keyid\", \"sig\"}}) in the payload")]
    Signature,
    /// `role` of `delete_sign_metadata` is missing or `null`.
    #[error("No role provided for deletion.")]
    NoRoleToDelete,
    /// `role` of `delete_sign_metadata` is not a role name.
    #[error("The role must be a role name, not {0}")]
    NotARoleName(String),
    /// `metadata` of a metadata update has no `root`.
    #[error("Unsupported Metadata type")]
    UnsupportedMetadata,
    /// The new root of a metadata update cannot be read.
    #[error("Failed to verify the trust: {0}")]
    Trust(String),
    /// `action` of `metadata_delegation` is not one it supports.
    #[error("metadata delegation supports 'add', 'update', 'delete'")]
    DelegationAction,
}

/// Reads a map as `T` and anything else as `T::default()`, as the reference's `dict.get` on
/// a payload that is not a dict finds nothing.
#[derive(Debug)]
struct Object<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(Loose::<T>(PhantomData))
            .map(Object)
    }
}

/// Visits a map as `T`, anything else (drained) as `T::default()`.
struct Loose<T>(PhantomData<T>);

macro_rules! loose_scalars {
    ($($name:ident: $ty:ty),*) => {
        $(fn $name<E: de::Error>(self, _: $ty) -> Result<T, E> {
            Ok(T::default())
        })*
    };
}

impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for Loose<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(T::default())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }

    loose_scalars!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_i128: i128,
        visit_u128: u128, visit_f64: f64, visit_str: &str, visit_bytes: &[u8]);
}

/// A JSON object's entries in the order the source gives them (text order for JSON text),
/// or the value that is not an object.
#[derive(Debug, Clone, PartialEq)]
enum Entries {
    Object(Vec<(String, Value)>),
    Other(Value),
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries: Vec<(String, Value)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    // A key given twice keeps its last value at its first place, as a
                    // Python dict does.
                    match entries.iter_mut().find(|(k, _)| *k == key) {
                        Some(entry) => entry.1 = value,
                        None => entries.push((key, value)),
                    }
                }
                Ok(Entries::Object(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Entries, A::Error> {
                Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Entries::Other)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Entries, E> {
                Ok(Entries::Other(Value::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Entries, E> {
                Ok(Entries::Other(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Entries, E> {
                Ok(Entries::Other(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Entries, E> {
                Ok(Entries::Other(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Entries, E> {
                Ok(Entries::Other(Value::String(v.into())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Entries, E> {
                Ok(Entries::Other(Value::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<Entries, E> {
                Ok(Entries::Other(Value::Null))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Entries, D::Error> {
                d.deserialize_any(self)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A field that is there, `null` included (absent fields take `None` from `default`), as the
/// reference's `dict.get` sees it.
fn some<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A field that is absent or `null` counts as missing, as the reference's `dict.get` sees it.
fn present(value: Option<Value>) -> Option<Value> {
    value.filter(|v| !v.is_null())
}

/// A boolean switch: `true` unless the payload says `false` (the reference reads it with
/// `payload.get(name, True)`; the API sends a boolean).
fn switch(value: Option<&Value>) -> bool {
    value.and_then(Value::as_bool).unwrap_or(true)
}

// ---------------------------------------------------------------------------------------------
// Artifact paths and info

/// Why a string is not an artifact path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The empty string.
    #[error("the path is empty")]
    Empty,
    /// A path starting with `/`.
    #[error("the path must be relative (it starts with '/')")]
    Absolute,
    /// A control character or a backslash.
    #[error("the path contains the character {0:?}")]
    Character(char),
    /// An empty, `.` or `..` segment (`a//b`, `./a`, `a/../b`, `a/`).
    #[error("the path has an empty, '.' or '..' segment")]
    Segment,
}

/// An artifact path: relative, of non-empty segments, none of them `.` or `..`, without
/// control characters or backslashes. Only a valid path can be built.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TargetPath(String);

impl TargetPath {
    /// Checks `path` without taking it.
    pub fn check(path: &str) -> Result<(), PathError> {
        if path.is_empty() {
            return Err(PathError::Empty);
        }
        if path.starts_with('/') {
            return Err(PathError::Absolute);
        }
        if let Some(c) = path.chars().find(|c| c.is_control() || *c == '\\') {
            return Err(PathError::Character(c));
        }
        if path
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(PathError::Segment);
        }
        Ok(())
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path as a `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<String> for TargetPath {
    type Error = PathError;

    fn try_from(path: String) -> Result<Self, PathError> {
        TargetPath::check(&path)?;
        Ok(TargetPath(path))
    }
}

impl FromStr for TargetPath {
    type Err = PathError;

    fn from_str(path: &str) -> Result<Self, PathError> {
        TargetPath::check(path)?;
        Ok(TargetPath(path.to_string()))
    }
}

impl From<TargetPath> for String {
    fn from(path: TargetPath) -> String {
        path.0
    }
}

impl AsRef<str> for TargetPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TargetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an artifact's `info` is refused (or, read back from the index, unreadable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    /// Not a JSON object.
    #[error("info must be an object")]
    NotAnObject,
    /// A float somewhere (canonical JSON cannot sign it).
    #[error("info: {0}")]
    Float(String),
    /// No `length`.
    #[error("info.length is missing")]
    LengthMissing,
    /// `length` is not a non-negative integer.
    #[error("info.length must be a non-negative integer")]
    Length,
    /// No `hashes`.
    #[error("info.hashes is missing")]
    HashesMissing,
    /// `hashes` is not an object.
    #[error("info.hashes must be an object")]
    HashesNotAnObject,
    /// `hashes` is empty.
    #[error("info.hashes must not be empty")]
    HashesEmpty,
    /// A hash that is not a hex digest (or has an empty name).
    #[error("info.hashes.{0} must be a hex digest")]
    Digest(String),
    /// `custom` is not an object.
    #[error("info.custom must be an object")]
    Custom,
    /// The entry does not read as a TUF target file.
    #[error("info: {0}")]
    Invalid(String),
    /// The entry breaks a rule of the TUF model.
    #[error("{0}")]
    Schema(String),
    /// Stored info text that is not JSON.
    #[error("{0}")]
    Json(String),
}

/// Checks an artifact's `info` as python-tuf's `TargetFile.from_dict` would read it, and more:
/// a non-negative integer length, a non-empty map of hash names to hex strings, and no floats
/// anywhere (canonical JSON cannot sign them).
pub fn parse_info(info: Value) -> Result<TargetFile, InfoError> {
    let Value::Object(map) = &info else {
        return Err(InfoError::NotAnObject);
    };
    check_no_floats(&info).map_err(|e| InfoError::Float(e.to_string()))?;
    match map.get("length") {
        Some(Value::Number(n)) if n.as_u64().is_some() => {}
        Some(_) => return Err(InfoError::Length),
        None => return Err(InfoError::LengthMissing),
    }
    match map.get("hashes") {
        Some(Value::Object(h)) if h.is_empty() => return Err(InfoError::HashesEmpty),
        Some(Value::Object(h)) => {
            for (alg, digest) in h {
                let ok = digest
                    .as_str()
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_hexdigit()));
                if alg.is_empty() || !ok {
                    return Err(InfoError::Digest(alg.clone()));
                }
            }
        }
        Some(_) => return Err(InfoError::HashesNotAnObject),
        None => return Err(InfoError::HashesMissing),
    }
    if let Some(custom) = map.get("custom")
        && !custom.is_object()
    {
        return Err(InfoError::Custom);
    }
    let file: TargetFile =
        serde_json::from_value(info).map_err(|e| InfoError::Invalid(e.to_string()))?;
    file.validate()
        .map_err(|e| InfoError::Schema(e.to_string()))?;
    Ok(file)
}

/// Parses info text stored in the index (ours, the reference worker's or the CLI's).
pub fn parse_info_text(text: &str) -> Result<TargetFile, InfoError> {
    let value: Value = serde_json::from_str(text).map_err(|e| InfoError::Json(e.to_string()))?;
    parse_info(value)
}

/// Why one artifact of a list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactProblem {
    /// `path` is missing or not a string.
    #[error("'path' must be a string")]
    PathNotAString,
    /// `info` is missing.
    #[error("'info' is missing")]
    InfoMissing,
    /// The path is not valid.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The info is not valid.
    #[error(transparent)]
    Info(#[from] InfoError),
    /// An entry of a remove request that is not a string.
    #[error("paths must be strings")]
    NotAString,
}

/// One artifact of a list refused: `Invalid artifact "<path>": <why>`, or `#<index>` when
/// the entry has no path to name it by.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid artifact {name}: {problem}")]
pub struct ArtifactError {
    /// The path as a quoted string, or `#<index>`.
    pub name: String,
    /// Why.
    pub problem: ArtifactProblem,
}

impl ArtifactError {
    fn at(index: usize, problem: ArtifactProblem) -> Self {
        ArtifactError {
            name: format!("#{index}"),
            problem,
        }
    }

    fn of(path: &str, problem: impl Into<ArtifactProblem>) -> Self {
        ArtifactError {
            name: format!("{path:?}"),
            problem: problem.into(),
        }
    }
}

/// A list field: the list, or the value that is not one.
#[derive(Debug, Clone, PartialEq)]
enum Listed<T> {
    List(Vec<T>),
    Other,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Listed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Listed<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Listed<T>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Listed::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Listed<T>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Listed::Other)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Listed<T>, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Listed<T>, E> {
                Ok(Listed::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Listed<T>, E> {
                Ok(Listed::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Listed<T>, E> {
                Ok(Listed::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Listed<T>, E> {
                Ok(Listed::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Listed<T>, E> {
                Ok(Listed::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Listed<T>, E> {
                Ok(Listed::Other)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Listed<T>, E> {
                Ok(Listed::Other)
            }
        }
        deserializer.deserialize_any(V(PhantomData))
    }
}

/// One entry of an add request as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawArtifact {
    #[serde(deserialize_with = "some")]
    path: Option<Value>,
    #[serde(deserialize_with = "some")]
    info: Option<Value>,
}

/// An artifact to add: a valid path and checked info.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// Where.
    pub path: TargetPath,
    /// The TUF target info (length, hashes, custom, and any other field).
    pub info: TargetFile,
}

impl Artifact {
    fn from_raw(index: usize, raw: RawArtifact) -> Result<Self, ArtifactError> {
        let path = match raw.path {
            Some(Value::String(path)) => path,
            _ => return Err(ArtifactError::at(index, ArtifactProblem::PathNotAString)),
        };
        let Some(info) = raw.info else {
            return Err(ArtifactError::of(&path, ArtifactProblem::InfoMissing));
        };
        if let Err(e) = TargetPath::check(&path) {
            return Err(ArtifactError::of(&path, e));
        }
        let info = parse_info(info).map_err(|e| ArtifactError::of(&path, e))?;
        Ok(Artifact {
            path: TargetPath(path),
            info,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAdd {
    #[serde(deserialize_with = "some")]
    artifacts: Option<Listed<Object<RawArtifact>>>,
    #[serde(deserialize_with = "some")]
    publish_artifacts: Option<Value>,
}

/// `add_artifacts`: `{"artifacts": [{"path", "info"}, ...], "publish_artifacts": bool}`.
#[derive(Debug, Clone, PartialEq)]
pub struct AddArtifacts {
    /// The artifacts, in payload order (a path given twice is kept twice).
    pub artifacts: Vec<Artifact>,
    /// Publish before answering (default), or only record the rows.
    pub publish_artifacts: bool,
}

impl Payload for AddArtifacts {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawAdd = raw(source)?;
        let list = match raw.artifacts {
            None => return Err(PayloadError::Missing("artifacts")),
            Some(Listed::Other) => return Err(PayloadError::ArtifactsNotAList),
            Some(Listed::List(list)) => list,
        };
        let artifacts = list
            .into_iter()
            .enumerate()
            .map(|(i, entry)| Artifact::from_raw(i, entry.0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AddArtifacts {
            artifacts,
            publish_artifacts: switch(raw.publish_artifacts.as_ref()),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawRemove {
    #[serde(deserialize_with = "some")]
    artifacts: Option<Listed<Value>>,
    #[serde(deserialize_with = "some")]
    publish_artifacts: Option<Value>,
}

/// `remove_artifacts`: `{"artifacts": ["path", ...], "publish_artifacts": bool}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveArtifacts {
    /// The paths as given, in payload order (at least one). A string that is not a valid
    /// path is not refused: no role holds it, so it is not found.
    pub artifacts: Vec<String>,
    /// Publish before answering (default), or only record the rows.
    pub publish_artifacts: bool,
}

impl Payload for RemoveArtifacts {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawRemove = raw(source)?;
        let list = match raw.artifacts {
            None => return Err(PayloadError::Missing("artifacts")),
            Some(Listed::Other) => return Err(PayloadError::ArtifactsNotAList),
            Some(Listed::List(list)) => list,
        };
        if list.is_empty() {
            return Err(PayloadError::NoArtifact);
        }
        let artifacts = list
            .into_iter()
            .enumerate()
            .map(|(i, path)| match path {
                Value::String(path) => Ok(path),
                _ => Err(ArtifactError::at(i, ArtifactProblem::NotAString)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RemoveArtifacts {
            artifacts,
            publish_artifacts: switch(raw.publish_artifacts.as_ref()),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Settings and the other actions

/// The longest expiration policy `update_settings` accepts: 100 years.
pub const MAX_POLICY_DAYS: u64 = 36_500;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawUpdateSettings {
    #[serde(deserialize_with = "some")]
    settings: Option<Object<RawExpirationSettings>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawExpirationSettings {
    #[serde(deserialize_with = "some")]
    expiration: Option<Entries>,
}

/// `update_settings`: `{"settings": {"expiration": {"<role>": days, ...}}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateSettings {
    /// Each role as given, with its days (1 to [`MAX_POLICY_DAYS`]), in payload order.
    pub expiration: Vec<(String, u64)>,
}

impl Payload for UpdateSettings {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawUpdateSettings = raw(source)?;
        // `settings: null` is there for the reference (`"settings" in payload`), yet has no
        // expiration.
        let Some(settings) = raw.settings else {
            return Err(PayloadError::Missing("settings"));
        };
        let entries = match settings.0.expiration {
            None => return Err(PayloadError::Missing("expiration")),
            Some(Entries::Other(_)) => return Err(PayloadError::ExpirationNotAMap),
            Some(Entries::Object(entries)) => entries,
        };
        if entries.is_empty() {
            return Err(PayloadError::NoExpirationRole);
        }
        let expiration = entries
            .into_iter()
            .map(
                |(role, days)| match days.as_u64().filter(|d| (1..=MAX_POLICY_DAYS).contains(d)) {
                    Some(d) => Ok((role, d)),
                    None => Err(PayloadError::Expiration {
                        role,
                        days: days.to_string(),
                        max: MAX_POLICY_DAYS,
                    }),
                },
            )
            .collect::<Result<_, _>>()?;
        Ok(UpdateSettings { expiration })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawRoles {
    #[serde(deserialize_with = "some")]
    roles: Option<Value>,
}

/// `force_online_metadata_update`: `{"roles": ["targets", "snapshot", ...]}` (none: `[]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForceOnlineUpdate {
    /// The role names, in payload order.
    pub roles: Vec<String>,
}

impl Payload for ForceOnlineUpdate {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawRoles = raw(source)?;
        let roles = match present(raw.roles) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    _ => Err(PayloadError::RolesNotNames),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(PayloadError::RolesNotNames),
        };
        Ok(ForceOnlineUpdate { roles })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawBump {
    #[serde(deserialize_with = "some")]
    expired: Option<Value>,
}

/// `bump_online_roles` as Celery beat sends it: `{"expired": bool}`, true unless `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BumpOnlineRoles {
    /// Only the roles that expire soon (true), or every online role.
    pub expired: bool,
}

impl Payload for BumpOnlineRoles {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawBump = raw(source)?;
        Ok(BumpOnlineRoles {
            expired: switch(raw.expired.as_ref()),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSign {
    #[serde(deserialize_with = "some")]
    role: Option<Value>,
    #[serde(deserialize_with = "some")]
    signature: Option<Value>,
}

/// `sign_metadata`: `{"role": name, "signature": {"keyid", "sig", ...}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignMetadata {
    /// The role whose pending metadata is signed.
    pub role: String,
    /// The signature (a sigstore `bundle` and any other field kept).
    pub signature: Signature,
}

impl Payload for SignMetadata {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawSign = raw(source)?;
        let Some(Value::String(role)) = raw.role else {
            return Err(PayloadError::Missing("role"));
        };
        let signature = raw
            .signature
            .and_then(|s| serde_json::from_value(s).ok())
            .ok_or(PayloadError::Signature)?;
        Ok(SignMetadata { role, signature })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDeleteSign {
    #[serde(deserialize_with = "some")]
    role: Option<Value>,
}

/// `delete_sign_metadata`: `{"role": name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteSignMetadata {
    /// The role whose signing event stops (non-empty).
    pub role: String,
}

impl Payload for DeleteSignMetadata {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawDeleteSign = raw(source)?;
        match present(raw.role) {
            None => Err(PayloadError::NoRoleToDelete),
            Some(Value::String(role)) if !role.is_empty() => Ok(DeleteSignMetadata { role }),
            Some(other) => Err(PayloadError::NotARoleName(other.to_string())),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawMetadataUpdate {
    #[serde(deserialize_with = "some")]
    metadata: Option<Value>,
}

/// `metadata_update`: `{"metadata": {"root": <Metadata dict>}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataUpdate {
    /// The new root, read (not yet checked against the trusted one).
    pub root: Metadata<Root>,
}

impl Payload for MetadataUpdate {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawMetadataUpdate = raw(source)?;
        let Some(metadata) = raw.metadata else {
            return Err(PayloadError::Missing("metadata"));
        };
        let Some(root) = metadata.get("root") else {
            return Err(PayloadError::UnsupportedMetadata);
        };
        let root = Metadata::<Root>::from_value(root.clone())
            .map_err(|e| PayloadError::Trust(e.to_string()))?;
        Ok(MetadataUpdate { root })
    }
}

/// What `metadata_delegation` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegationAction {
    /// `add`.
    Add,
    /// `update`.
    Update,
    /// `delete`.
    Delete,
}

impl DelegationAction {
    /// The word the API sends.
    pub fn verb(self) -> &'static str {
        match self {
            DelegationAction::Add => "add",
            DelegationAction::Update => "update",
            DelegationAction::Delete => "delete",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDelegation {
    #[serde(deserialize_with = "some")]
    action: Option<Value>,
    #[serde(deserialize_with = "some")]
    delegations: Option<Value>,
}

/// `metadata_delegation`: `{"action": "add"|"update"|"delete", "delegations": {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataDelegation {
    /// What to do.
    pub action: DelegationAction,
    /// The delegations object as sent (checked by the action, with the bootstrap's rules,
    /// once the repository's own delegations are known).
    pub delegations: Value,
}

impl Payload for MetadataDelegation {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawDelegation = raw(source)?;
        let action = match raw.action.as_ref().and_then(Value::as_str) {
            Some("add") => DelegationAction::Add,
            Some("update") => DelegationAction::Update,
            Some("delete") => DelegationAction::Delete,
            _ => return Err(PayloadError::DelegationAction),
        };
        match raw.delegations {
            Some(delegations @ Value::Object(_)) => Ok(MetadataDelegation {
                action,
                delegations,
            }),
            _ => Err(PayloadError::Missing("delegations")),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawBootstrap {
    #[serde(deserialize_with = "some")]
    settings: Option<Value>,
    #[serde(deserialize_with = "some")]
    metadata: Option<Value>,
}

/// `bootstrap`: `{"settings": {"roles": {...}}, "metadata": {"root": {...}}}`. Only their
/// presence is checked here: the rest is the bootstrap's plan, refused after the bootstrap
/// state is known (a refusal then also releases the API's bootstrap lock).
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// `settings` as sent.
    pub settings: Value,
    /// `metadata` as sent.
    pub metadata: Value,
}

impl Payload for Bootstrap {
    fn parse<S: PayloadSource + ?Sized>(source: Option<&S>) -> Result<Self, PayloadError> {
        let raw: RawBootstrap = raw(source)?;
        // Present, even `null`, as the reference's `payload.get(...)` then fails later.
        let settings = raw.settings.ok_or(PayloadError::Missing("settings"))?;
        let metadata = raw.metadata.ok_or(PayloadError::Missing("metadata"))?;
        Ok(Bootstrap { settings, metadata })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from_value<P: Payload>(v: Value) -> Result<P, PayloadError> {
        P::parse(Some(&v))
    }

    #[test]
    fn target_paths_are_valid_or_not_built() {
        for ok in [
            "a",
            "a/b",
            "dir/file-1.0.tar.gz",
            "é/ü",
            "a.b/..c",
            "...",
            "a b",
        ] {
            let path: TargetPath = ok.parse().unwrap();
            assert_eq!(path.as_str(), ok);
            assert_eq!(TargetPath::try_from(ok.to_string()).unwrap(), path);
            assert_eq!(
                serde_json::from_value::<TargetPath>(json!(ok)).unwrap(),
                path
            );
            assert_eq!(serde_json::to_value(&path).unwrap(), json!(ok));
            assert_eq!(path.to_string(), ok);
        }
        let cases = [
            ("", PathError::Empty),
            ("/etc/passwd", PathError::Absolute),
            ("/", PathError::Absolute),
            ("a\\b", PathError::Character('\\')),
            ("a\u{0}b", PathError::Character('\u{0}')),
            ("a\nb", PathError::Character('\n')),
            ("a\u{7f}", PathError::Character('\u{7f}')),
            ("a\u{85}", PathError::Character('\u{85}')),
            ("a//b", PathError::Segment),
            ("a/", PathError::Segment),
            ("./a", PathError::Segment),
            ("a/./b", PathError::Segment),
            ("..", PathError::Segment),
            ("a/../../etc", PathError::Segment),
            (".", PathError::Segment),
        ];
        for (bad, want) in cases {
            assert_eq!(bad.parse::<TargetPath>(), Err(want.clone()), "{bad:?}");
            assert_eq!(TargetPath::try_from(bad.to_string()), Err(want.clone()));
            let err = serde_json::from_value::<TargetPath>(json!(bad)).unwrap_err();
            assert_eq!(err.to_string(), want.to_string(), "{bad:?}");
        }
        // Not a string at all.
        assert!(serde_json::from_value::<TargetPath>(json!(7)).is_err());
        assert_eq!(PathError::Empty.to_string(), "the path is empty");
        assert_eq!(
            PathError::Character('\\').to_string(),
            "the path contains the character '\\\\'"
        );
    }

    #[test]
    fn add_payloads_are_typed_with_the_texts_the_api_shows() {
        let ok: AddArtifacts = from_value(json!({"artifacts": [
            {"path": "a/b", "info": {"length": 3, "hashes": {"sha256": "ab"}, "custom": {"k": 1}}},
            {"path": "c", "info": {"length": 0, "hashes": {"sha256": "cd"}}, "extra": true}
        ], "publish_artifacts": false, "task_id": "x"}))
        .unwrap();
        assert_eq!(ok.artifacts.len(), 2);
        assert_eq!(ok.artifacts[0].path.as_str(), "a/b");
        assert_eq!(ok.artifacts[0].info.length, 3);
        assert_eq!(ok.artifacts[0].info.unrecognized["custom"], json!({"k": 1}));
        assert!(!ok.publish_artifacts);

        let err = |v: Value| from_value::<AddArtifacts>(v).unwrap_err();
        assert_eq!(err(json!({})), PayloadError::Missing("artifacts"));
        assert_eq!(err(json!(null)), PayloadError::Missing("artifacts"));
        assert_eq!(err(json!([1, 2])), PayloadError::Missing("artifacts"));
        assert_eq!(err(json!("x")), PayloadError::Missing("artifacts"));
        assert_eq!(
            err(json!({"artifacts": null})),
            PayloadError::ArtifactsNotAList
        );
        assert_eq!(
            err(json!({"artifacts": {}})),
            PayloadError::ArtifactsNotAList
        );
        let e = err(json!({"artifacts": [{"path": 7, "info": {}}]}));
        assert_eq!(
            e.to_string(),
            "Invalid artifact #0: 'path' must be a string"
        );
        assert_eq!(
            e,
            PayloadError::Artifact(ArtifactError {
                name: "#0".into(),
                problem: ArtifactProblem::PathNotAString
            })
        );
        let e = err(json!({"artifacts": [3]}));
        assert_eq!(
            e.to_string(),
            "Invalid artifact #0: 'path' must be a string"
        );
        let e = err(json!({"artifacts": [{"path": "a//b", "info": {}}]}));
        assert_eq!(
            e,
            PayloadError::Artifact(ArtifactError {
                name: "\"a//b\"".into(),
                problem: ArtifactProblem::Path(PathError::Segment)
            })
        );
        // Hostile values: a length beyond u64, a huge float, deep nesting in custom.
        for (info, want) in [
            (
                json!({"length": 1e300, "hashes": {"sha256": "aa"}}),
                "found 1e+300 at length",
            ),
            (
                json!({"length": -1, "hashes": {"sha256": "aa"}}),
                "info.length must be a non-negative integer",
            ),
            (
                json!({"length": [1], "hashes": {"sha256": "aa"}}),
                "info.length must be a non-negative integer",
            ),
            (
                json!({"length": 1, "hashes": ["aa"]}),
                "info.hashes must be an object",
            ),
            (
                json!({"length": 1, "hashes": {"": "aa"}}),
                "info.hashes. must",
            ),
        ] {
            let e = err(json!({"artifacts": [{"path": "p", "info": info}]}));
            assert!(e.to_string().contains(want), "{e}");
            assert!(matches!(
                e,
                PayloadError::Artifact(ArtifactError {
                    problem: ArtifactProblem::Info(_),
                    ..
                })
            ));
        }
        let text = r#"{"artifacts": [{"path": "p", "info": {"length": 184467440737095516150, "hashes": {"sha256": "aa"}}}]}"#;
        let e = AddArtifacts::parse(Some(text)).unwrap_err();
        assert!(
            e.to_string().starts_with("Invalid artifact \"p\": info"),
            "{e}"
        );
        let e = AddArtifacts::parse(Some("{\"artifacts\": [")).unwrap_err();
        assert!(matches!(e, PayloadError::Unreadable(_)), "{e}");
    }

    #[test]
    fn remove_payloads() {
        let ok: RemoveArtifacts =
            from_value(json!({"artifacts": ["b", "a", "/not/a/path"], "publish_artifacts": true}))
                .unwrap();
        assert_eq!(ok.artifacts, ["b", "a", "/not/a/path"]);
        assert!(ok.publish_artifacts);
        let err = |v: Value| from_value::<RemoveArtifacts>(v).unwrap_err().to_string();
        assert_eq!(err(json!({})), "No 'artifacts' in the payload");
        assert_eq!(
            err(json!({"artifacts": []})),
            "At list one artifact is required"
        );
        assert_eq!(err(json!({"artifacts": "a"})), "'artifacts' must be a list");
        assert_eq!(
            err(json!({"artifacts": ["a", {"path": "b"}]})),
            "Invalid artifact #1: paths must be strings"
        );
    }

    #[test]
    fn update_settings_keeps_the_order_of_json_text() {
        let text = r#"{"settings": {"expiration": {"targets": 100, "snapshot": 50, "timestamp": 20, "bins": 5}}}"#;
        let parsed = UpdateSettings::parse(Some(text)).unwrap();
        let roles: Vec<&str> = parsed.expiration.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(roles, ["targets", "snapshot", "timestamp", "bins"]);
        // A key given twice: its last value, at its first place.
        let parsed = UpdateSettings::parse(Some(
            r#"{"settings": {"expiration": {"b": 1, "a": 2, "b": 3}}}"#,
        ))
        .unwrap();
        assert_eq!(parsed.expiration, [("b".into(), 3), ("a".into(), 2)]);

        let err = |v: Value| from_value::<UpdateSettings>(v).unwrap_err().to_string();
        assert_eq!(err(json!({})), "No 'settings' in the payload");
        assert_eq!(
            err(json!({"settings": {}})),
            "No 'expiration' in the payload"
        );
        assert_eq!(
            err(json!({"settings": 3})),
            "No 'expiration' in the payload"
        );
        assert_eq!(
            err(json!({"settings": {"expiration": [1]}})),
            "'expiration' must map role names to days"
        );
        assert_eq!(
            err(json!({"settings": {"expiration": {}}})),
            "No role provided for expiration policy change"
        );
        for days in [
            json!(0),
            json!(-3),
            json!(1.5),
            json!("7"),
            json!(36_501),
            json!(u64::MAX),
        ] {
            assert_eq!(
                err(json!({"settings": {"expiration": {"targets": days}}})),
                format!(
                    "Invalid expiration for targets: {days} is not a whole number of days between 1 and 36500"
                )
            );
        }
    }

    #[test]
    fn the_other_payloads() {
        let force: ForceOnlineUpdate = from_value(json!({"roles": ["targets", "bins"]})).unwrap();
        assert_eq!(force.roles, ["targets", "bins"]);
        assert_eq!(
            from_value::<ForceOnlineUpdate>(json!({"roles": null})).unwrap(),
            ForceOnlineUpdate::default()
        );
        for bad in [json!({"roles": "bins"}), json!({"roles": [1]})] {
            assert_eq!(
                from_value::<ForceOnlineUpdate>(bad).unwrap_err(),
                PayloadError::RolesNotNames
            );
        }
        assert!(BumpOnlineRoles::parse::<Value>(None).unwrap().expired);
        assert!(
            !from_value::<BumpOnlineRoles>(json!({"expired": false}))
                .unwrap()
                .expired
        );

        let sign: SignMetadata = from_value(
            json!({"role": "root", "signature": {"keyid": "k", "sig": "ab", "bundle": {}}}),
        )
        .unwrap();
        assert_eq!(sign.signature.keyid, "k");
        assert!(sign.signature.unrecognized.contains_key("bundle"));
        assert_eq!(
            from_value::<SignMetadata>(json!({"signature": {}})).unwrap_err(),
            PayloadError::Missing("role")
        );
        assert_eq!(
            from_value::<SignMetadata>(json!({"role": "root", "signature": {"keyid": 1}}))
                .unwrap_err()
                .to_string(),
            "No valid 'signature' ({\"keyid\", \"sig\"}) in the payload"
        );

        assert_eq!(
            from_value::<DeleteSignMetadata>(json!({"role": null})).unwrap_err(),
            PayloadError::NoRoleToDelete
        );
        assert_eq!(
            from_value::<DeleteSignMetadata>(json!({"role": 5}))
                .unwrap_err()
                .to_string(),
            "The role must be a role name, not 5"
        );

        assert_eq!(
            from_value::<MetadataUpdate>(json!({"metadata": {"targets": {}}})).unwrap_err(),
            PayloadError::UnsupportedMetadata
        );
        assert!(
            from_value::<MetadataUpdate>(json!({"metadata": {"root": {}}}))
                .unwrap_err()
                .to_string()
                .starts_with("Failed to verify the trust: ")
        );

        assert_eq!(
            from_value::<MetadataDelegation>(json!({"action": "remove", "delegations": {}}))
                .unwrap_err()
                .to_string(),
            "metadata delegation supports 'add', 'update', 'delete'"
        );
        assert_eq!(
            from_value::<MetadataDelegation>(json!({"action": "add", "delegations": []}))
                .unwrap_err(),
            PayloadError::Missing("delegations")
        );

        assert_eq!(
            from_value::<Bootstrap>(json!({"metadata": {}})).unwrap_err(),
            PayloadError::Missing("settings")
        );
        assert_eq!(
            from_value::<Bootstrap>(json!({"settings": {}})).unwrap_err(),
            PayloadError::Missing("metadata")
        );
    }
}
