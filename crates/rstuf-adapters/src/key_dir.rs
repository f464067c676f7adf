//! The online-key directory (`RSTUF_ONLINE_KEY_DIR`) as a first start finds it: the keys it
//! already holds, or a fresh ed25519 key written there for a repository that has none yet.
//!
//! A key is a file named by its key id holding unencrypted PKCS#8 PEM, the name the RSTUF
//! CLI's ceremony puts into root as `x-rstuf-online-key-uri: fn:<keyid>`, so a root made with
//! it signs through [`crate::signers::KeyUriSigners`] with nothing else to configure.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rstuf_metadata::keys::{Key, PrivateKey};

/// A private key found in, or written to, the directory.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyFile {
    /// Its key id (also its file name).
    pub keyid: String,
    /// Where it is.
    pub path: PathBuf,
    /// The public key as it goes into root.
    pub public: Key,
}

/// What [`ensure_online_key`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Ensured {
    /// The directory already held these keys; nothing was written.
    Existing(Vec<KeyFile>),
    /// It held none; this one was created.
    Created(KeyFile),
}

fn is_keyid(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The keys in `dir`: files named by a 64-hex-digit key id that load as unencrypted PEM
/// private keys, sorted by name. Other files (`.pub` halves, notes) are ignored.
pub fn online_keys(dir: &Path) -> io::Result<Vec<KeyFile>> {
    let mut keys = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| is_keyid(n)) else {
            continue;
        };
        if !entry.file_type()?.is_file() {
            continue;
        }
        let pem = fs::read(entry.path())?;
        if let Ok(key) = PrivateKey::from_pem(&pem, None) {
            keys.push(KeyFile {
                keyid: name.to_string(),
                path: entry.path(),
                public: key.public_key(),
            });
        }
    }
    keys.sort_by(|a, b| a.keyid.cmp(&b.keyid));
    Ok(keys)
}

/// Makes sure `dir` holds an online key: creates the directory (mode 0700) if missing, and
/// writes a new ed25519 key (mode 0600, made durable before it is named) unless the directory
/// already holds one. The key's file name is its key id, so `fn:<keyid>` finds it.
pub fn ensure_online_key(dir: &Path) -> io::Result<Ensured> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let existing = online_keys(dir)?;
    if !existing.is_empty() {
        return Ok(Ensured::Existing(existing));
    }
    let key = PrivateKey::generate_ed25519();
    let public = key.public_key();
    let keyid = public.compute_keyid();
    let pem = key.to_pkcs8_pem().map_err(io::Error::other)?;
    let path = dir.join(&keyid);
    let tmp = dir.join(format!(".{keyid}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = f.write_all(pem.as_bytes()).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // A hard link never replaces a file that is already there.
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    linked?;
    fs::File::open(dir)?.sync_all()?;
    Ok(Ensured::Created(KeyFile {
        keyid,
        path,
        public,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_fresh_directory_gets_one_private_key_named_by_its_key_id() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let Ensured::Created(created) = ensure_online_key(&dir).unwrap() else {
            panic!("nothing created in an empty directory");
        };
        assert_eq!(created.public.keytype, "ed25519");
        assert_eq!(created.keyid, created.public.compute_keyid());
        assert_eq!(created.path, dir.join(&created.keyid));
        let mode = fs::metadata(&created.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let loaded = PrivateKey::from_pem(&fs::read(&created.path).unwrap(), None).unwrap();
        assert_eq!(loaded.public_key(), created.public);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from(&created.keyid)]);

        // A second start finds it and writes nothing.
        assert_eq!(
            ensure_online_key(&dir).unwrap(),
            Ensured::Existing(vec![created])
        );
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn a_key_the_operator_put_there_is_kept_and_other_files_are_not_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let key = PrivateKey::generate_ecdsa_p256();
        let keyid = key.public_key().compute_keyid();
        fs::write(
            tmp.path().join(&keyid),
            key.to_pkcs8_pem().unwrap().as_bytes(),
        )
        .unwrap();
        fs::write(tmp.path().join(format!("{keyid}.pub")), "public half").unwrap();
        fs::write(tmp.path().join("a".repeat(64)), "not a key").unwrap();
        let Ensured::Existing(found) = ensure_online_key(tmp.path()).unwrap() else {
            panic!("a key was created beside an existing one");
        };
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].keyid, keyid);
        assert_eq!(found[0].public, key.public_key());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 3);
    }
}
