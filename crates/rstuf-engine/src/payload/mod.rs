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

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

mod actions;
mod artifacts;
#[cfg(test)]
mod tests;

pub use actions::*;
pub use artifacts::*;

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

/// `run` on the payload parsed as `P`, or the refusal as an outcome with message `failed`.
pub(crate) async fn run_parsed<P, S, F>(
    source: Option<&S>,
    failed: &str,
    run: impl FnOnce(P) -> F,
) -> Result<crate::outcome::TaskOutcome, crate::outcome::TaskError>
where
    P: Payload,
    S: PayloadSource + ?Sized,
    F: std::future::Future<Output = Result<crate::outcome::TaskOutcome, crate::outcome::TaskError>>,
{
    match P::parse(source) {
        Ok(payload) => run(payload).await,
        Err(refused) => Ok(crate::outcome::TaskOutcome::refused(
            failed,
            refused.to_string(),
        )),
    }
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
