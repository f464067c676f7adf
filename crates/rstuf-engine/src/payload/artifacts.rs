//! Artifact paths and info, and the add and remove payloads.

use super::*;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use rstuf_metadata::cjson::check_no_floats;
use rstuf_metadata::schema::TargetFile;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

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
