//! Online-key signers found from a key's `x-rstuf-online-key-uri`, the way the RSTUF CLI writes
//! it into root:
//! - `fn:<file name>`: an unencrypted PEM private key in `RSTUF_ONLINE_KEY_DIR`;
//! - `file2:<path>`: an unencrypted PEM private key at a path;
//! - `envvar:<NAME>`: an unencrypted PEM private key in an environment variable.
//!
//! The scheme is chosen in [`KeyUriSigners::resolve`] and nowhere else, so cloud KMS and Vault
//! signers plug in as more arms there (each behind a cargo feature). Every signer is checked
//! against the public key in root before use, so a wrong key file is found at once, not after
//! publishing, and signers are cached per key id.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rstuf_engine::ports::{PortError, PortErrorKind, Signer, SignerResolver};
use rstuf_metadata::keys::{Key, PrivateKey};

use crate::error::Context;

/// The key field holding the signer URI.
pub const URI_FIELD: &str = "x-rstuf-online-key-uri";

/// Looks up an environment variable (the binary passes the process environment; adapters
/// never read it themselves).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Resolves signers from key URIs.
#[derive(Default)]
pub struct KeyUriSigners {
    online_key_dir: Option<PathBuf>,
    env: Option<EnvLookup>,
    cache: Mutex<HashMap<String, Arc<ThreadPoolSigner>>>,
}

/// Signs with a private key held in memory, on tokio's blocking threads, so the signatures
/// of many roles (RSA: about 1.5 ms each) use every core.
#[derive(Debug)]
pub struct ThreadPoolSigner(Arc<PrivateKey>);

#[async_trait]
impl Signer for ThreadPoolSigner {
    async fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PortError> {
        let (key, msg) = (self.0.clone(), msg.to_vec());
        tokio::task::spawn_blocking(move || key.sign(&msg))
            .await
            .map_err(|e| PortError::caused(PortErrorKind::Other, "signing task failed", e))?
            .map_err(|e| PortError::from_cause(PortErrorKind::Other, e))
    }

    fn sign_here(&self, msg: &[u8]) -> Option<Result<Vec<u8>, PortError>> {
        Some(
            self.0
                .sign(msg)
                .map_err(|e| PortError::from_cause(PortErrorKind::Other, e)),
        )
    }
}

debug_fields!(KeyUriSigners { online_key_dir });

fn refuse(message: impl Into<String>) -> PortError {
    PortError::new(PortErrorKind::Other, message)
}

impl KeyUriSigners {
    /// Signers whose `fn:` files live in `online_key_dir` (`RSTUF_ONLINE_KEY_DIR`).
    pub fn new(online_key_dir: Option<PathBuf>) -> Self {
        KeyUriSigners {
            online_key_dir,
            env: None,
            cache: Mutex::default(),
        }
    }

    /// Lets `envvar:` URIs read keys through `env`.
    pub fn with_env(mut self, env: EnvLookup) -> Self {
        self.env = Some(env);
        self
    }

    fn load_pem(&self, uri: &str) -> Result<Vec<u8>, PortError> {
        let (scheme, rest) = uri
            .split_once(':')
            .ok_or_else(|| refuse(format!("bad online key URI {uri:?}")))?;
        let read = |path: PathBuf| {
            std::fs::read(&path).with_ctx(|| format!("cannot read online key {}", path.display()))
        };
        match scheme {
            "fn" => {
                if rest.is_empty() || rest.contains('/') || rest == ".." {
                    return Err(refuse(format!(
                        "bad uri: expected 'fn:<file name>', got {uri:?}"
                    )));
                }
                let dir = self.online_key_dir.as_ref().ok_or_else(|| {
                    refuse("RSTUF_ONLINE_KEY_DIR is not set, which fn: online key URIs need")
                })?;
                read(dir.join(rest))
            }
            "file2" => read(PathBuf::from(rest)),
            "envvar" => self
                .env
                .as_ref()
                .and_then(|env| env(rest))
                .map(String::into_bytes)
                .ok_or_else(|| {
                    refuse(format!(
                        "environment variable {rest} (online key) is not set"
                    ))
                }),
            other => Err(refuse(format!(
                "online key URI scheme {other:?} is not supported by this build (fn, file2, envvar)"
            ))),
        }
    }
}

#[async_trait]
impl SignerResolver for KeyUriSigners {
    async fn resolve(&self, keyid: &str, key: &Key) -> Result<Arc<dyn Signer>, PortError> {
        if let Some(found) = self.cache.lock().expect("lock").get(keyid) {
            return Ok(found.clone());
        }
        let uri = key
            .unrecognized
            .get(URI_FIELD)
            .and_then(|v| v.as_str())
            .ok_or_else(|| refuse(format!("key {keyid} has no {URI_FIELD}")))?;
        let pem = self.load_pem(uri)?;
        let private = PrivateKey::from_pem(&pem, None).map_err(|e| {
            PortError::caused(PortErrorKind::Other, format_args!("online key {uri}"), e)
        })?;
        if private.public_key().keyval != key.keyval {
            return Err(refuse(format!(
                "online key {uri} is not the private half of key {keyid}"
            )));
        }
        let private = private.with_scheme(&key.scheme).map_err(|e| {
            PortError::caused(PortErrorKind::Other, format_args!("online key {uri}"), e)
        })?;
        let signer = Arc::new(ThreadPoolSigner(Arc::new(private)));
        self.cache
            .lock()
            .expect("lock")
            .insert(keyid.to_string(), signer.clone());
        Ok(signer)
    }
}
