//! Metadata files in a local directory (`RSTUF_LOCAL_STORAGE_BACKEND_PATH`), with the names
//! the reference worker uses: `<version>.<role>.json` and `timestamp.json`.
//!
//! Durability and atomicity, which the reference worker lacks (defect 18):
//! - a versioned file is written to a temporary file, fsynced, then hard-linked to its name.
//!   The link fails if the name exists, so two writers can never both create it and a
//!   published file is never rewritten; the directory is fsynced after the link.
//! - `timestamp.json` is written to a temporary file, fsynced and renamed over the old one, so
//!   a web server serves either the old or the new file, never a partial one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use rstuf_engine::ports::{MetadataStore, PortError, PortErrorKind};

/// A metadata directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn other(context: &str, e: io::Error) -> PortError {
    PortError::new(PortErrorKind::Other, format!("{context}: {e}"))
}

/// Refuses names that could leave the directory or hide files.
fn check_name(name: &str) -> Result<(), PortError> {
    let ok = !name.is_empty()
        && name.ends_with(".json")
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name != "timestamp.json";
    if ok {
        Ok(())
    } else {
        Err(PortError::new(
            PortErrorKind::Other,
            format!("refusing metadata file name {name:?}"),
        ))
    }
}

impl LocalStore {
    /// Uses `dir`, creating it if needed.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, PortError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| other(&format!("creating {}", dir.display()), e))?;
        Ok(LocalStore { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn temp_path(&self, name: &str) -> PathBuf {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join(format!(".{name}.{}.{n}.tmp", std::process::id()))
    }

    fn write_temp(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let tmp = self.temp_path(name);
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let written = f.write_all(bytes).and_then(|_| f.sync_all());
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(tmp)
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn put_versioned_blocking(&self, name: &str, bytes: &[u8]) -> Result<(), PortError> {
        check_name(name)?;
        let target = self.dir.join(name);
        let tmp = self
            .write_temp(name, bytes)
            .map_err(|e| other(&format!("writing {name}"), e))?;
        let linked = fs::hard_link(&tmp, &target);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => self
                .sync_dir()
                .map_err(|e| other("syncing the metadata directory", e)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let existing =
                    fs::read(&target).map_err(|e| other(&format!("reading {name}"), e))?;
                if existing == bytes {
                    Ok(())
                } else {
                    Err(PortError::new(
                        PortErrorKind::Conflict,
                        format!("{name} is already published with other content"),
                    ))
                }
            }
            Err(e) => Err(other(&format!("publishing {name}"), e)),
        }
    }

    fn put_timestamp_blocking(&self, bytes: &[u8]) -> Result<(), PortError> {
        let tmp = self
            .write_temp("timestamp.json", bytes)
            .map_err(|e| other("writing timestamp.json", e))?;
        if let Err(e) = fs::rename(&tmp, self.dir.join("timestamp.json")) {
            let _ = fs::remove_file(&tmp);
            return Err(other("replacing timestamp.json", e));
        }
        self.sync_dir()
            .map_err(|e| other("syncing the metadata directory", e))
    }

    fn get_blocking(&self, name: &str) -> Result<Option<Vec<u8>>, PortError> {
        if name != "timestamp.json" {
            check_name(name)?;
        }
        match fs::read(self.dir.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(other(&format!("reading {name}"), e)),
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PortError> + Send + 'static,
) -> Result<T, PortError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PortError::new(PortErrorKind::Other, format!("storage task failed: {e}")))?
}

#[async_trait]
impl MetadataStore for LocalStore {
    async fn put_versioned(&self, name: &str, bytes: &[u8]) -> Result<(), PortError> {
        let (this, name, bytes) = (self.clone(), name.to_string(), bytes.to_vec());
        blocking(move || this.put_versioned_blocking(&name, &bytes)).await
    }

    async fn put_timestamp(&self, bytes: &[u8]) -> Result<(), PortError> {
        let (this, bytes) = (self.clone(), bytes.to_vec());
        blocking(move || this.put_timestamp_blocking(&bytes)).await
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, PortError> {
        let (this, name) = (self.clone(), name.to_string());
        blocking(move || this.get_blocking(&name)).await
    }
}
