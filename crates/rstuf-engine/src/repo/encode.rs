//! Encoding and signing roles' new versions on the CPU jobs, straight from stored bytes
//! when they have the usual form.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use rstuf_metadata::schema::{
    Expires, Metadata, Signature, Signed, Targets, Unsigned, storage_bytes_of,
};

use super::Online;
use super::publication::{RoleContent, RoleUpdate};
use crate::engine::Engine;
use crate::outcome::TaskError;
use crate::ports::{Signer, on_cpu};

/// A role's new version, encoded: its storage bytes once signed.
pub(super) struct Encoded {
    pub name: String,
    pub version: u64,
    pub expires: Expires,
    pub state: EncodedState,
}

/// How far a role's new version got on its CPU job.
pub(super) enum EncodedState {
    /// Signed on the CPU job. The task's own content comes back for a retry under another
    /// version (and is freed on the thread that built it); stored content is not kept.
    Signed {
        bytes: Arc<Vec<u8>>,
        signed: Option<Targets>,
    },
    /// The signer must be awaited (a remote key service).
    Unsigned(Unsigned<Targets>),
}

/// Roles encoded and signed per CPU job: enough to make a job worth its hand-off, few enough
/// that a chunk spreads over every core.
const ROLES_PER_JOB: usize = 32;

/// Parses (for stored content), encodes and, when the signer can sign on this thread, signs
/// each role; runs as one CPU job.
fn encode_roles(
    jobs: Vec<(RoleUpdate, u64, Option<Vec<u8>>)>,
    signer: &dyn Signer,
    keyid: &str,
) -> Result<Vec<Encoded>, TaskError> {
    let mut out = Vec::with_capacity(jobs.len());
    for (update, version, stored) in jobs {
        let RoleUpdate {
            name,
            content,
            expires,
        } = update;
        let encoding = |e| TaskError::encoding(name.clone(), e);
        let parse = |file: &str, bytes: Option<Vec<u8>>| {
            let bytes = bytes.ok_or_else(|| TaskError::Missing { file: file.into() })?;
            Metadata::<Targets>::from_stored_bytes(&bytes)
                .map(|md| md.signed)
                .map_err(|e| TaskError::unreadable(file, e))
        };
        // A bump re-signs stored content as it is, a publication with its artifacts changed:
        // straight from the bytes when the signer can sign here and the content has the
        // usual form, else through the model.
        if let Some(bytes) = &stored
            && let Some(payload) = payload_from_stored(&content, bytes, version, expires)
            && let Some(sig) = signer.sign_here(&payload)
        {
            let sig = Signature::new(keyid, &sig?);
            let bytes = storage_bytes_of(&payload, &[sig]).map_err(encoding)?;
            out.push(Encoded {
                name,
                version,
                expires,
                state: EncodedState::Signed {
                    bytes: Arc::new(bytes),
                    signed: None,
                },
            });
            continue;
        }
        let (mut signed, keep) = match content {
            RoleContent::Model(signed) => (*signed, true),
            RoleContent::Stored(file) => (parse(&file, stored)?, false),
            RoleContent::Patched(file, changes) => {
                let mut signed = parse(&file, stored)?;
                for (path, change) in changes {
                    match change {
                        Some(info) => signed.targets.insert(path, info),
                        None => signed.targets.remove(&path),
                    };
                }
                (signed, false)
            }
        };
        signed.set_version_and_expires(version, expires);
        let unsigned = Unsigned::new(signed).map_err(encoding)?;
        let state = match signer.sign_here(unsigned.payload()) {
            Some(sig) => {
                let sig = Signature::new(keyid, &sig?);
                let (md, bytes) = unsigned.finish(vec![sig]).map_err(encoding)?;
                EncodedState::Signed {
                    bytes: Arc::new(bytes),
                    signed: keep.then_some(md.signed),
                }
            }
            None => EncodedState::Unsigned(unsigned),
        };
        out.push(Encoded {
            name,
            version,
            expires,
            state,
        });
    }
    Ok(out)
}

/// The canonical payload of a stored role's next version with `content`'s changes, read
/// straight from the stored bytes (see [`rstuf_metadata::resign`]); `None` when the model
/// path must build it (content built by the task, or stored content of unusual form).
fn payload_from_stored(
    content: &RoleContent,
    stored: &[u8],
    version: u64,
    expires: Expires,
) -> Option<Vec<u8>> {
    match content {
        RoleContent::Model(_) => None,
        RoleContent::Stored(_) => {
            rstuf_metadata::resign::resign_targets_payload(stored, version, expires)
        }
        RoleContent::Patched(_, changes) => {
            // Each path once, sorted, its last change winning (as applying them in order).
            let mut last: BTreeMap<&str, Option<Vec<u8>>> = BTreeMap::new();
            for (path, change) in changes {
                let entry = match change {
                    Some(file) => Some(rstuf_metadata::direct::to_canonical(file).ok()?),
                    None => None,
                };
                last.insert(path, entry);
            }
            let changes: Vec<_> = last.iter().map(|(p, e)| (*p, e.as_deref())).collect();
            rstuf_metadata::resign::patch_targets_payload(stored, version, expires, &changes)
        }
    }
}

/// Every role encoded and signed, [`ROLES_PER_JOB`] per CPU job, as many jobs at once as
/// the CPU port has cores; roles the signer cannot sign on a job are signed here.
pub(super) async fn encode(
    engine: &Engine,
    online: &Online,
    jobs: Vec<(RoleUpdate, u64)>,
) -> Result<Vec<Encoded>, TaskError> {
    let mut groups = Vec::new();
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        groups.push(jobs.by_ref().take(ROLES_PER_JOB).collect::<Vec<_>>());
    }
    let parallelism = engine.cpu.parallelism().max(1);
    let encoded: Vec<Vec<Encoded>> = stream::iter(groups.into_iter().map(|group| async move {
        let files: Vec<String> = group
            .iter()
            .filter_map(|(u, _)| u.content.file().map(str::to_string))
            .collect();
        let mut stored = if files.is_empty() {
            Vec::new()
        } else {
            engine.store.get_many(&files).await?
        }
        .into_iter();
        let group: Vec<(RoleUpdate, u64, Option<Vec<u8>>)> = group
            .into_iter()
            .map(|(u, version)| {
                let bytes = u.content.file().and_then(|_| stored.next().flatten());
                (u, version, bytes)
            })
            .collect();
        let signer = online.signer.clone();
        let keyid = online.keyid.clone();
        on_cpu(engine.cpu.as_ref(), move || {
            encode_roles(group, signer.as_ref(), &keyid)
        })
        .await?
    }))
    .buffer_unordered(parallelism)
    .try_collect()
    .await?;
    let mut out = Vec::with_capacity(encoded.iter().map(Vec::len).sum());
    for mut e in encoded.into_iter().flatten() {
        if let EncodedState::Unsigned(unsigned) = e.state {
            let sig = online.signer.sign(unsigned.payload()).await?;
            let (md, bytes) = unsigned
                .finish(vec![Signature::new(online.keyid.clone(), &sig)])
                .map_err(|err| TaskError::encoding(e.name.clone(), err))?;
            e.state = EncodedState::Signed {
                bytes: Arc::new(bytes),
                signed: Some(md.signed),
            };
        }
        out.push(e);
    }
    Ok(out)
}
