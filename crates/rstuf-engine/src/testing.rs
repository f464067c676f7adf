//! In-memory implementations of every port, for tests (feature `testing`). They keep the
//! same contracts as the real adapters (write-once files, one-field settings writes) and record
//! what was written, in order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rstuf_metadata::keys::{Key, PrivateKey};
use serde_json::Value;

use crate::ports::{
    ArtifactIndex, Clock, KeySigner, MetadataStore, PortError, PortErrorKind, Ports, RoleRecord,
    SettingsStore, Signer, SignerResolver,
};

/// Metadata files in memory, with the order they were written.
#[derive(Debug, Default)]
pub struct MemoryStore {
    files: Mutex<BTreeMap<String, Vec<u8>>>,
    log: Mutex<Vec<String>>,
}

impl MemoryStore {
    /// All files.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.files.lock().expect("lock").clone()
    }
    /// File names in write order.
    pub fn write_log(&self) -> Vec<String> {
        self.log.lock().expect("lock").clone()
    }
}

#[async_trait]
impl MetadataStore for MemoryStore {
    async fn put_versioned(&self, name: &str, bytes: &[u8]) -> Result<(), PortError> {
        let mut files = self.files.lock().expect("lock");
        if let Some(existing) = files.get(name) {
            if existing.as_slice() == bytes {
                return Ok(());
            }
            return Err(PortError::new(
                PortErrorKind::Conflict,
                format!("{name} exists with other content"),
            ));
        }
        files.insert(name.to_string(), bytes.to_vec());
        self.log.lock().expect("lock").push(name.to_string());
        Ok(())
    }

    async fn put_timestamp(&self, bytes: &[u8]) -> Result<(), PortError> {
        self.files
            .lock()
            .expect("lock")
            .insert("timestamp.json".into(), bytes.to_vec());
        self.log.lock().expect("lock").push("timestamp.json".into());
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, PortError> {
        Ok(self.files.lock().expect("lock").get(name).cloned())
    }
}

/// The artifact index in memory.
#[derive(Debug, Default)]
pub struct MemoryIndex {
    roles: Mutex<BTreeMap<String, RoleRecord>>,
}

impl MemoryIndex {
    /// All role rows.
    pub fn roles(&self) -> BTreeMap<String, RoleRecord> {
        self.roles.lock().expect("lock").clone()
    }
}

#[async_trait]
impl ArtifactIndex for MemoryIndex {
    async fn create_roles(&self, roles: &[RoleRecord]) -> Result<(), PortError> {
        let mut all = self.roles.lock().expect("lock");
        if let Some(dup) = roles.iter().find(|r| all.contains_key(&r.name)) {
            return Err(PortError::new(
                PortErrorKind::Conflict,
                format!("role {} exists", dup.name),
            ));
        }
        for r in roles {
            all.insert(r.name.clone(), r.clone());
        }
        Ok(())
    }

    async fn role(&self, name: &str) -> Result<Option<RoleRecord>, PortError> {
        Ok(self.roles.lock().expect("lock").get(name).cloned())
    }
}

/// Repository settings in memory.
#[derive(Debug, Default)]
pub struct MemorySettings {
    values: Mutex<BTreeMap<String, Value>>,
}

impl MemorySettings {
    /// All settings.
    pub fn all(&self) -> BTreeMap<String, Value> {
        self.values.lock().expect("lock").clone()
    }
}

#[async_trait]
impl SettingsStore for MemorySettings {
    async fn get(&self, key: &str) -> Result<Option<Value>, PortError> {
        Ok(self.values.lock().expect("lock").get(key).cloned())
    }
    async fn set(&self, key: &str, value: Value) -> Result<(), PortError> {
        self.values
            .lock()
            .expect("lock")
            .insert(key.to_string(), value);
        Ok(())
    }
}

/// Online keys by key id.
#[derive(Debug, Default)]
pub struct MemorySigners {
    keys: Mutex<BTreeMap<String, Arc<KeySigner>>>,
}

impl MemorySigners {
    /// Makes `key` available under `keyid`.
    pub fn add(&self, keyid: &str, key: PrivateKey) {
        self.keys
            .lock()
            .expect("lock")
            .insert(keyid.to_string(), Arc::new(KeySigner(key)));
    }
}

#[async_trait]
impl SignerResolver for MemorySigners {
    async fn resolve(&self, keyid: &str, key: &Key) -> Result<Arc<dyn Signer>, PortError> {
        let found = self.keys.lock().expect("lock").get(keyid).cloned();
        match found {
            Some(s) if s.0.public_key().keyval == key.keyval => Ok(s),
            Some(_) => Err(PortError::new(
                PortErrorKind::Other,
                "private key does not match the public key",
            )),
            None => Err(PortError::new(
                PortErrorKind::Other,
                format!("no private key for {keyid}"),
            )),
        }
    }
}

/// A clock that stays where it is put.
#[derive(Debug)]
pub struct FixedClock(pub Mutex<DateTime<Utc>>);

impl FixedClock {
    /// A clock at `at`.
    pub fn at(at: DateTime<Utc>) -> Self {
        FixedClock(Mutex::new(at))
    }
    /// Moves the clock.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("lock") = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("lock")
    }
}

/// A full set of in-memory ports, with handles to inspect them.
#[derive(Debug, Clone)]
pub struct MemoryRepo {
    /// Files.
    pub store: Arc<MemoryStore>,
    /// Role rows.
    pub index: Arc<MemoryIndex>,
    /// Settings.
    pub settings: Arc<MemorySettings>,
    /// Online keys.
    pub signers: Arc<MemorySigners>,
    /// Time.
    pub clock: Arc<FixedClock>,
}

impl MemoryRepo {
    /// An empty repository at time `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        MemoryRepo {
            store: Arc::default(),
            index: Arc::default(),
            settings: Arc::default(),
            signers: Arc::default(),
            clock: Arc::new(FixedClock::at(now)),
        }
    }

    /// The ports over these fakes.
    pub fn ports(&self) -> Ports {
        Ports {
            store: self.store.clone(),
            index: self.index.clone(),
            settings: self.settings.clone(),
            signers: self.signers.clone(),
            clock: self.clock.clone(),
        }
    }
}

/// The [`MetadataStore`] contract, as a test any implementation can run against itself.
/// Panics on the first breach.
pub async fn metadata_store_conformance(store: &dyn MetadataStore) {
    assert_eq!(
        store.get("1.conformance.json").await.unwrap(),
        None,
        "missing file"
    );
    store
        .put_versioned("1.conformance.json", b"{\"a\": 1}")
        .await
        .unwrap();
    assert_eq!(
        store.get("1.conformance.json").await.unwrap().as_deref(),
        Some(&b"{\"a\": 1}"[..])
    );
    // Same bytes again: a retried write succeeds.
    store
        .put_versioned("1.conformance.json", b"{\"a\": 1}")
        .await
        .unwrap();
    // Different bytes: refused, and the file keeps its content.
    let err = store
        .put_versioned("1.conformance.json", b"{\"a\": 2}")
        .await
        .unwrap_err();
    assert_eq!(err.kind, PortErrorKind::Conflict);
    assert_eq!(
        store.get("1.conformance.json").await.unwrap().as_deref(),
        Some(&b"{\"a\": 1}"[..])
    );
    // The timestamp is replaced.
    store.put_timestamp(b"one").await.unwrap();
    store.put_timestamp(b"two").await.unwrap();
    assert_eq!(
        store.get("timestamp.json").await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    // An empty file is a file.
    store
        .put_versioned("2.conformance.json", b"")
        .await
        .unwrap();
    assert_eq!(
        store.get("2.conformance.json").await.unwrap().as_deref(),
        Some(&b""[..])
    );
}
