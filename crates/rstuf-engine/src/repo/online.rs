//! The online key: which key a root names for the online roles, and its signer.

use std::sync::Arc;

use rstuf_metadata::keys::Key;
use rstuf_metadata::schema::{Metadata, Root, Signature, Signed, Unsigned};
use serde_json::Value;

use crate::engine::Engine;
use crate::outcome::{OnlineKeyError, SettingProblem, TaskError};
use crate::ports::Signer;
use crate::settings::{ONLINE_KEY, TRUSTED_ROOT};

/// The online key a root names: the first key of its timestamp role (RSTUF gives the online
/// roles one key).
pub(crate) fn online_key_of(root: &Root) -> Result<(String, Key), OnlineKeyError> {
    let keyid = root
        .role("timestamp")
        .and_then(|r| r.keyids.first())
        .cloned()
        .ok_or(OnlineKeyError::NoTimestampKey)?;
    let key = root
        .keys
        .get(&keyid)
        .cloned()
        .ok_or_else(|| OnlineKeyError::NotInRoot {
            keyid: keyid.clone(),
        })?;
    Ok((keyid, key))
}

/// The `ONLINE_KEY` setting for key `key` with id `keyid`: the key as root lists it, plus
/// its id.
pub(crate) fn online_key_setting(keyid: &str, key: &Key) -> Result<Value, TaskError> {
    let mut value = serde_json::to_value(key).map_err(|e| TaskError::encoding(ONLINE_KEY, e))?;
    value["keyid"] = Value::String(keyid.to_string());
    Ok(value)
}

/// The online key and its signer.
#[derive(Debug, Clone)]
pub(crate) struct Online {
    pub keyid: String,
    pub signer: Arc<dyn Signer>,
}

impl Online {
    /// The online key from `ONLINE_KEY`, or else from the timestamp role of `TRUSTED_ROOT`.
    pub async fn load(engine: &Engine) -> Result<Online, TaskError> {
        let (keyid, key) = match engine.settings.get(ONLINE_KEY).await? {
            Some(Value::Object(mut map)) => {
                let keyid = match map.remove("keyid") {
                    Some(Value::String(id)) => id,
                    _ => return Err(TaskError::setting(ONLINE_KEY, SettingProblem::NoKeyId)),
                };
                let key: Key = serde_json::from_value(Value::Object(map))
                    .map_err(|e| TaskError::unreadable_setting(ONLINE_KEY, e))?;
                (keyid, key)
            }
            _ => {
                // Without ONLINE_KEY, the trusted root says which key is online.
                let root = engine
                    .settings
                    .get(TRUSTED_ROOT)
                    .await?
                    .ok_or_else(|| TaskError::setting(TRUSTED_ROOT, SettingProblem::NotSet))?;
                let root = Metadata::<Root>::from_value(root)
                    .map_err(|e| TaskError::unreadable_setting(TRUSTED_ROOT, e))?;
                online_key_of(&root.signed).map_err(|source| TaskError::OnlineKey {
                    root: TRUSTED_ROOT.to_string(),
                    source,
                })?
            }
        };
        let signer = engine.signers.resolve(&keyid, &key).await?;
        Ok(Online { keyid, signer })
    }

    /// `signed`, signed with the online key.
    pub async fn sign<T: Signed>(&self, signed: T) -> Result<Metadata<T>, TaskError> {
        Ok(self.sign_stored(signed).await?.0)
    }

    /// `signed`, signed with the online key, with its storage bytes; the payload is converted
    /// to JSON once for both.
    pub async fn sign_stored<T: Signed>(
        &self,
        signed: T,
    ) -> Result<(Metadata<T>, Vec<u8>), TaskError> {
        let unsigned = Unsigned::new(signed).map_err(|e| TaskError::encoding(T::TYPE, e))?;
        let sig = self.signer.sign(unsigned.payload()).await?;
        unsigned
            .finish(vec![Signature::new(self.keyid.clone(), &sig)])
            .map_err(|e| TaskError::encoding(T::TYPE, e))
    }

    /// Whether the online key alone meets the threshold of a role delegated with these keys.
    pub fn meets(&self, keyids: &[String], threshold: u64) -> bool {
        threshold <= 1 && keyids.contains(&self.keyid)
    }
}
