//! Metadata files in a local directory (`RSTUF_LOCAL_STORAGE_BACKEND_PATH`), with the names
//! the reference worker uses: `<version>.<role>.json` and `timestamp.json`.
//!
//! Durability and atomicity, which the reference worker lacks (it truncates and rewrites,
//! so a web server can serve partial JSON):
//! - a versioned file is written to a temporary file, fsynced, then hard-linked to its name.
//!   The link fails if the name exists, so two writers can never both create it and a
//!   published file is never rewritten; the directory is fsynced after the link.
//! - `timestamp.json` is written to a temporary file, fsynced and renamed over the old one, so
//!   a web server serves either the old or the new file, never a partial one. The rename is
//!   fenced: made under an exclusive `flock` of the directory, and only if the file it
//!   replaces is the version the publication started from.
//! - a batch of versioned files (16,384 bins at bootstrap) writes each distinct content once,
//!   makes them durable together (a few: writeback started for all, then one journal commit
//!   serves every `fdatasync`; many: one `syncfs`), then links every name to its content, and
//!   fsyncs the directory once.
//! - where Linux allows it, the "temporary file" has no name at all (`O_TMPFILE`, linked in
//!   through `/proc/self/fd`): one directory entry per published file instead of three
//!   (create, link, unlink), which is most of the kernel's share of a bump of every bin.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use rstuf_engine::ports::{
    MetadataStore, PortError, PortErrorKind, check_discarded_name, check_timestamp_replaces,
    check_versioned_name as check_name,
};

use crate::error::{Context, ServiceError};

/// A metadata directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
    /// Whether unnamed temporary files work here (cleared at the first sign they do not).
    unnamed: Arc<AtomicBool>,
}

/// Content to write once, and where it is until it has its names.
enum Temp {
    /// A named temporary file in the directory.
    Named(PathBuf),
    /// An `O_TMPFILE` file, reachable only through its descriptor.
    Unnamed(File),
}

/// A batch's contents are grouped by their bytes. Hashing the whole of each file (about 10 KB
/// for a bin of a large repository) cost more than the grouping saves, so the hash covers the
/// length and the first and last bytes (the first hold the signature of every metadata file);
/// equal hashes still compare the whole content.
struct Content<'a>(&'a [u8]);

impl Hash for Content<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let n = self.0.len();
        n.hash(state);
        self.0[..n.min(256)].hash(state);
        self.0[n.saturating_sub(256)..].hash(state);
    }
}

impl PartialEq for Content<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Content<'_> {}

/// At most this many unnamed files are open at once in a batch (each holds a descriptor until
/// it is linked); a larger batch is written in rounds.
const OPEN_AT_ONCE: usize = 512;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Up to this many distinct contents in a batch are synced file by file; more are made
/// durable by one `syncfs` of the filesystem.
const FSYNC_EACH_UP_TO: usize = 64;

impl LocalStore {
    /// Uses `dir`, creating it if needed.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, PortError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).with_ctx(|| format!("creating {}", dir.display()))?;
        Ok(LocalStore {
            dir,
            // Unnamed files are linked in through their `/proc/self/fd` entry.
            unnamed: Arc::new(AtomicBool::new(Path::new("/proc/self/fd").is_dir())),
        })
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
        self.write_temp_with(name, bytes, true)
    }

    /// A temporary file holding `bytes`, fsynced when `sync` (a batch syncs them together).
    fn write_temp_with(&self, name: &str, bytes: &[u8], sync: bool) -> io::Result<PathBuf> {
        let tmp = self.temp_path(name);
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let written = f
            .write_all(bytes)
            .and_then(|_| if sync { f.sync_all() } else { Ok(()) });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(tmp)
    }

    /// An unnamed file in the directory holding `bytes` (not yet synced), or `None` when the
    /// filesystem or kernel has no `O_TMPFILE` (then named files are used from now on).
    fn write_unnamed(&self, bytes: &[u8]) -> io::Result<Option<File>> {
        use rustix::fs::{Mode, OFlags};
        if !self.unnamed.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let fd = match rustix::fs::open(
            &self.dir,
            OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        ) {
            Ok(fd) => fd,
            Err(e)
                if [
                    rustix::io::Errno::OPNOTSUPP,
                    rustix::io::Errno::ISDIR,
                    rustix::io::Errno::INVAL,
                    rustix::io::Errno::NOENT,
                ]
                .contains(&e) =>
            {
                self.unnamed.store(false, Ordering::Relaxed);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let mut f = File::from(fd);
        f.write_all(bytes)?;
        Ok(Some(f))
    }

    /// Content for a batch or a single file, not yet durable ([`LocalStore::make_durable`]):
    /// unnamed if possible, else a named temporary file.
    fn write_content(&self, name: &str, bytes: &[u8]) -> io::Result<Temp> {
        match self.write_unnamed(bytes)? {
            Some(f) => Ok(Temp::Unnamed(f)),
            None => self.write_temp_with(name, bytes, false).map(Temp::Named),
        }
    }

    /// Gives the durable content `tmp` the name `name`, once: an existing file with the same
    /// bytes is success (`false`: nothing new), with other bytes a conflict.
    fn link_once(&self, tmp: &Temp, name: &str, bytes: &[u8]) -> Result<bool, PortError> {
        let target = self.dir.join(name);
        let linked = match tmp {
            Temp::Named(path) => fs::hard_link(path, &target),
            Temp::Unnamed(f) => rustix::fs::linkat(
                rustix::fs::CWD,
                format!("/proc/self/fd/{}", f.as_fd().as_raw_fd()),
                rustix::fs::CWD,
                &target,
                rustix::fs::AtFlags::SYMLINK_FOLLOW,
            )
            .map_err(io::Error::from),
        };
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let existing = fs::read(&target).with_ctx(|| format!("reading {name}"))?;
                if existing == bytes {
                    Ok(false)
                } else {
                    Err(PortError::new(
                        PortErrorKind::Conflict,
                        format!("{name} is already published with other content"),
                    ))
                }
            }
            Err(e) => Err(e.port(format!("publishing {name}"))),
        }
    }

    /// Removes what is left of temporary content (named files; unnamed ones vanish on close).
    fn discard(temps: Vec<Temp>) {
        for tmp in temps {
            if let Temp::Named(path) = tmp {
                let _ = fs::remove_file(path);
            }
        }
    }

    /// A batch: each distinct content is written once; the contents are made durable (fsynced
    /// one by one when few, else by one `syncfs`); every name is then hard-linked to its
    /// content, and the directory is fsynced once. Files with the same bytes (16,384 empty
    /// bins at bootstrap) share one inode, which is safe because no published file is ever
    /// modified. More than [`OPEN_AT_ONCE`] distinct contents are written in rounds.
    fn put_versioned_many_blocking(
        &self,
        files: &[(String, Arc<Vec<u8>>)],
    ) -> Result<(), PortError> {
        for (name, _) in files {
            check_name(name)?;
        }
        let mut groups: Vec<(&[u8], Vec<&str>)> = Vec::new();
        let mut by_content: HashMap<Content<'_>, usize> = HashMap::new();
        for (name, bytes) in files {
            let i = *by_content
                .entry(Content(bytes.as_slice()))
                .or_insert_with(|| {
                    groups.push((bytes.as_slice(), Vec::new()));
                    groups.len() - 1
                });
            groups[i].1.push(name);
        }
        let mut linked = false;
        let mut result = Ok(());
        for round in groups.chunks(OPEN_AT_ONCE) {
            result = self.write_round(round, &mut linked);
            if result.is_err() {
                break;
            }
        }
        if linked {
            self.sync_dir().ctx("syncing the metadata directory")?;
        }
        result
    }

    /// Writes, syncs and links one round of a batch.
    fn write_round(
        &self,
        groups: &[(&[u8], Vec<&str>)],
        linked: &mut bool,
    ) -> Result<(), PortError> {
        let mut temps: Vec<Temp> = Vec::with_capacity(groups.len());
        for (bytes, names) in groups {
            match self.write_content(names[0], bytes) {
                Ok(tmp) => temps.push(tmp),
                Err(e) => {
                    Self::discard(temps);
                    return Err(e.port(format!("writing {}", names[0])));
                }
            }
        }
        if let Err(e) = self.make_durable(&temps) {
            Self::discard(temps);
            return Err(e);
        }
        let mut result = Ok(());
        'groups: for ((bytes, names), tmp) in groups.iter().zip(&temps) {
            for name in names {
                match self.link_once(tmp, name, bytes) {
                    Ok(new) => *linked |= new,
                    Err(e) => {
                        result = Err(e);
                        break 'groups;
                    }
                }
            }
        }
        Self::discard(temps);
        result
    }

    /// Makes the contents of a round durable. A few unnamed files: writeback of each is
    /// started first, then each is `fdatasync`ed; the first sync commits the filesystem
    /// journal for all of them, so the rest find their data on disk and return at once (one
    /// journal commit instead of one per file). A few named files are fsynced one by one.
    /// More files: one `syncfs`, which measured faster than any per-file sync for thousands of
    /// files (see BENCHMARKS.md), though it also waits for whatever else on the filesystem is
    /// being written back.
    fn make_durable(&self, temps: &[Temp]) -> Result<(), PortError> {
        if temps.len() > FSYNC_EACH_UP_TO {
            return self.sync_filesystem();
        }
        let sync = |e: io::Error| e.port("syncing new metadata files");
        for tmp in temps {
            if let Temp::Unnamed(f) = tmp {
                // Only a hint to start writing: a failure here is caught by the sync below.
                let _ = rustix::fs::fadvise(f, 0, None, rustix::fs::Advice::DontNeed);
            }
        }
        for tmp in temps {
            match tmp {
                Temp::Named(path) => File::open(path).and_then(|f| f.sync_all()),
                Temp::Unnamed(f) => f.sync_data(),
            }
            .map_err(sync)?;
        }
        Ok(())
    }

    /// Makes every file written so far on this filesystem durable.
    fn sync_filesystem(&self) -> Result<(), PortError> {
        let dir = File::open(&self.dir).ctx("opening the metadata directory")?;
        rustix::fs::syncfs(&dir)
            .map_err(io::Error::from)
            .ctx("syncing the metadata filesystem")
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    /// One file: a round of one.
    fn put_versioned_blocking(&self, name: &str, bytes: &[u8]) -> Result<(), PortError> {
        check_name(name)?;
        let mut linked = false;
        self.write_round(&[(bytes, vec![name])], &mut linked)?;
        if linked {
            self.sync_dir().ctx("syncing the metadata directory")?;
        }
        Ok(())
    }

    /// The fenced commit: under an exclusive `flock` of the directory (held by every writer
    /// of this store, in any process on the host or over NFS), the current `timestamp.json` is
    /// checked to be the version the publication started from, then replaced.
    fn put_timestamp_blocking(&self, bytes: &[u8], replaces: Option<u64>) -> Result<(), PortError> {
        let tmp = self
            .write_temp("timestamp.json", bytes)
            .ctx("writing timestamp.json")?;
        let fenced = File::open(&self.dir).and_then(|dir| {
            rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockExclusive)?;
            Ok(dir)
        });
        let _fenced = match fenced {
            Ok(dir) => dir,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e.port("locking the metadata directory"));
            }
        };
        let current = match fs::read(self.dir.join("timestamp.json")) {
            Ok(current) => Some(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e.port("reading timestamp.json"));
            }
        };
        if let Err(e) = check_timestamp_replaces(current.as_deref(), replaces) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        if let Err(e) = fs::rename(&tmp, self.dir.join("timestamp.json")) {
            let _ = fs::remove_file(&tmp);
            return Err(e.port("replacing timestamp.json"));
        }
        self.sync_dir().ctx("syncing the metadata directory")
    }

    fn discard_blocking(&self, names: &[String]) -> Result<Vec<bool>, PortError> {
        for name in names {
            check_discarded_name(name)?;
        }
        let mut removed = Vec::with_capacity(names.len());
        for name in names {
            removed.push(match fs::remove_file(self.dir.join(name)) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => return Err(e.port(format!("removing {name}"))),
            });
        }
        if removed.contains(&true) {
            self.sync_dir().ctx("syncing the metadata directory")?;
        }
        Ok(removed)
    }

    fn get_blocking(&self, name: &str) -> Result<Option<Vec<u8>>, PortError> {
        if name != "timestamp.json" {
            check_name(name)?;
        }
        match fs::read(self.dir.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.port(format!("reading {name}"))),
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PortError> + Send + 'static,
) -> Result<T, PortError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PortError::caused(PortErrorKind::Other, "storage task failed", e))?
}

#[async_trait]
impl MetadataStore for LocalStore {
    async fn put_versioned(&self, name: &str, bytes: &[u8]) -> Result<(), PortError> {
        let (this, name, bytes) = (self.clone(), name.to_string(), bytes.to_vec());
        blocking(move || this.put_versioned_blocking(&name, &bytes)).await
    }

    async fn put_versioned_many(&self, files: &[(String, Arc<Vec<u8>>)]) -> Result<(), PortError> {
        let (this, files) = (self.clone(), files.to_vec());
        blocking(move || this.put_versioned_many_blocking(&files)).await
    }

    async fn put_timestamp(&self, bytes: &[u8], replaces: Option<u64>) -> Result<(), PortError> {
        let (this, bytes) = (self.clone(), bytes.to_vec());
        blocking(move || this.put_timestamp_blocking(&bytes, replaces)).await
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, PortError> {
        let (this, name) = (self.clone(), name.to_string());
        blocking(move || this.get_blocking(&name)).await
    }

    async fn get_many(&self, names: &[String]) -> Result<Vec<Option<Vec<u8>>>, PortError> {
        let (this, names) = (self.clone(), names.to_vec());
        blocking(move || names.iter().map(|n| this.get_blocking(n)).collect()).await
    }

    async fn discard(&self, names: &[String]) -> Result<Vec<bool>, PortError> {
        let (this, names) = (self.clone(), names.to_vec());
        blocking(move || this.discard_blocking(&names)).await
    }
}
