//! Writing new versions: a batch of roles at once, and single files, each moving to the next
//! free version when its name is taken (unless the publication is the first one).

use rstuf_metadata::schema::{Expires, Metadata, Signed, Targets};

use super::Online;
use super::encode::{Encoded, EncodedState};
use crate::engine::Engine;
use crate::outcome::TaskError;
use crate::ports::PortErrorKind;

/// How many versions past an orphan (a file left by an interrupted publication) to try.
const MAX_VERSION_PROBES: u64 = 64;

/// What a write does when a file's name already holds other bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taken {
    /// Writes the file under the next free version instead (the name was left by an
    /// interrupted run).
    MoveToNextVersion,
    /// Fails with the conflict (the first publication of a repository, whose files are all
    /// version 1).
    Fail,
}

/// A batch of role files being written while the next batch is encoded.
pub(super) type PendingWrite<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<Written>, TaskError>> + Send + 'a>,
>;

/// A role version now in storage.
pub(super) struct Written {
    pub name: String,
    pub version: u64,
    pub expires: Expires,
}

/// Writes encoded roles as one batch; a role whose name is taken is written under the next
/// free version instead, or fails the batch, as `taken` says.
pub(super) async fn write_batch(
    engine: &Engine,
    online: &Online,
    encoded: Vec<Encoded>,
    taken: Taken,
) -> Result<Vec<Written>, TaskError> {
    let mut entries = Vec::with_capacity(encoded.len());
    let mut batch = Vec::with_capacity(encoded.len());
    for e in encoded {
        let EncodedState::Signed { bytes, signed } = e.state else {
            return Err(TaskError::NotSigned { role: e.name });
        };
        batch.push((format!("{}.{}.json", e.version, e.name), bytes.clone()));
        entries.push((e.name, e.version, e.expires, bytes, signed));
    }
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut written = Vec::with_capacity(entries.len());
    match engine.store.put_versioned_many(&batch).await {
        Ok(()) => {
            written.extend(
                entries
                    .into_iter()
                    .map(|(name, version, expires, _, _)| Written {
                        name,
                        version,
                        expires,
                    }),
            );
        }
        Err(e) if e.kind == PortErrorKind::Conflict && taken == Taken::MoveToNextVersion => {
            for ((name, version, expires, bytes, signed), (file, _)) in
                entries.into_iter().zip(&batch)
            {
                let version = match engine.store.put_versioned(file, &bytes).await {
                    Ok(()) => version,
                    Err(e) if e.kind == PortErrorKind::Conflict => {
                        let signed = match signed {
                            Some(signed) => signed,
                            None => {
                                Metadata::<Targets>::from_stored_bytes(&bytes)
                                    .map_err(|e| TaskError::unreadable(file, e))?
                                    .signed
                            }
                        };
                        let next = version + 1;
                        write_next_version(engine, online, &name, signed, next, expires, taken)
                            .await?
                            .0
                    }
                    Err(e) => return Err(e.into()),
                };
                written.push(Written {
                    name,
                    version,
                    expires,
                });
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(written)
}

/// Waits for a batch being written, if any.
pub(super) async fn wait_for(
    pending: Option<PendingWrite<'_>>,
) -> Result<Option<Vec<Written>>, TaskError> {
    match pending {
        Some(write) => write.await.map(Some),
        None => Ok(None),
    }
}

/// Writes `md`, already signed as its version with storage bytes `bytes`, or (when `taken`
/// allows) its content as the first later version whose name is free.
pub(super) async fn write_signed_or_next<T: Signed>(
    engine: &Engine,
    online: &Online,
    role: &str,
    md: Metadata<T>,
    bytes: Vec<u8>,
    expires: Expires,
    taken: Taken,
) -> Result<(u64, Metadata<T>), TaskError> {
    let version = md.signed.version();
    match engine
        .store
        .put_versioned(&format!("{version}.{role}.json"), &bytes)
        .await
    {
        Ok(()) => Ok((version, md)),
        Err(e) if e.kind == PortErrorKind::Conflict && taken == Taken::MoveToNextVersion => {
            write_next_version(engine, online, role, md.signed, version + 1, expires, taken).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes `signed` as version `start`, or (when `taken` allows) the first later version
/// whose name is free.
pub(super) async fn write_next_version<T: Signed>(
    engine: &Engine,
    online: &Online,
    role: &str,
    mut signed: T,
    start: u64,
    expires: Expires,
    taken: Taken,
) -> Result<(u64, Metadata<T>), TaskError> {
    let mut version = start;
    loop {
        signed.set_version_and_expires(version, expires);
        let (md, bytes) = online.sign_stored(signed).await?;
        match engine
            .store
            .put_versioned(&format!("{version}.{role}.json"), &bytes)
            .await
        {
            Ok(()) => return Ok((version, md)),
            Err(e)
                if e.kind == PortErrorKind::Conflict
                    && taken == Taken::MoveToNextVersion
                    && version < start + MAX_VERSION_PROBES =>
            {
                // Taken back from the signed document instead of copied before each attempt.
                signed = md.signed;
                version += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
