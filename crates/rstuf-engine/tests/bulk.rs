//! Publications of thousands of roles: several chunks of roles, their CPU jobs on a thread
//! pool, their writes overlapping the next chunk's encoding, a version left by an interrupted
//! run, and a signer that can only be awaited (a remote key service).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use rstuf_engine::Engine;
use rstuf_engine::artifacts::add_artifacts;
use rstuf_engine::bump::force_online_metadata_update;
use rstuf_engine::ports::{
    Cpu, CpuJob, MetadataStore, PortError, PortErrorKind, Signer, SignerResolver,
};
use rstuf_engine::testing::MemoryRepo;
use rstuf_metadata::keys::Key;
use rstuf_metadata::schema::{Metadata, Snapshot, Targets, Timestamp};
use serde_json::json;

use common::{TASK, accepted, now, payload, pre, repo};

const BINS: u64 = 2048;
const ARTIFACTS: usize = 3000;

/// CPU jobs on tokio's blocking threads, four at once.
#[derive(Debug)]
struct Threads;

#[async_trait]
impl Cpu for Threads {
    fn parallelism(&self) -> usize {
        4
    }

    async fn run(&self, job: CpuJob) -> Result<(), PortError> {
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| PortError::from_cause(PortErrorKind::Other, e))
    }
}

/// A signer that cannot sign on a CPU job, like a cloud KMS.
#[derive(Debug)]
struct Remote(Arc<dyn Signer>);

#[async_trait]
impl Signer for Remote {
    async fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PortError> {
        self.0.sign(msg).await
    }
}

struct RemoteSigners(Arc<dyn SignerResolver>);

#[async_trait]
impl SignerResolver for RemoteSigners {
    async fn resolve(&self, keyid: &str, key: &Key) -> Result<Arc<dyn Signer>, PortError> {
        Ok(Arc::new(Remote(self.0.resolve(keyid, key).await?)))
    }
}

async fn get<T: rstuf_metadata::schema::Signed>(repo: &MemoryRepo, name: &str) -> Metadata<T> {
    Metadata::from_bytes(&repo.store.get(name).await.unwrap().unwrap()).unwrap()
}

/// The current snapshot.
async fn snapshot(repo: &MemoryRepo) -> Metadata<Snapshot> {
    let ts: Metadata<Timestamp> = get(repo, "timestamp.json").await;
    let v = ts.signed.snapshot_meta().unwrap().version;
    get(repo, &format!("{v}.snapshot.json")).await
}

/// Every artifact a client finds, with its length.
async fn published(repo: &MemoryRepo) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (name, meta) in snapshot(repo).await.signed.meta {
        let role = name.trim_end_matches(".json");
        if role == "targets" {
            continue;
        }
        let md: Metadata<Targets> = get(repo, &format!("{}.{role}.json", meta.version)).await;
        for (path, file) in md.signed.targets {
            out.insert(path, file.length);
        }
    }
    out
}

async fn large_repository(ports: &Engine, repo: &MemoryRepo) -> BTreeMap<String, u64> {
    pre(repo).await;
    let mut bootstrap = payload("payload_bins.json");
    bootstrap["settings"]["roles"]["bins"]["number_of_delegated_bins"] = json!(BINS);
    let out = rstuf_engine::bootstrap::bootstrap(ports, &bootstrap, TASK)
        .await
        .unwrap();
    assert!(out.status(), "{out:?}");
    let want: BTreeMap<String, u64> = (0..ARTIFACTS)
        .map(|i| (format!("pkg/{i}/file-{i}.tar.gz"), 1000 + i as u64))
        .collect();
    let artifacts: Vec<_> = want
        .iter()
        .map(|(path, length)| {
            json!({"path": path, "info": {"length": length, "hashes": {"sha256": format!("{length:064x}")}}})
        })
        .collect();
    let out = add_artifacts(ports, &json!({"artifacts": artifacts}))
        .await
        .unwrap();
    assert!(out.status(), "{out:?}");
    want
}

async fn bump_every_bin_around_an_orphan(ports: Engine, repo: MemoryRepo) {
    let want = large_repository(&ports, &repo).await;
    assert_eq!(published(&repo).await, want);
    let before = snapshot(&repo).await.signed.meta;
    assert_eq!(before.len() as u64, BINS + 1);
    // An interrupted run left the next version of one bin of the second chunk of roles.
    let orphaned = "bins-5ff";
    let next = before[&format!("{orphaned}.json")].version + 1;
    repo.store
        .put_versioned(&format!("{next}.{orphaned}.json"), b"orphan")
        .await
        .unwrap();

    let out = force_online_metadata_update(&ports, &json!({"roles": ["bins"]}))
        .await
        .unwrap();
    assert_eq!(out.message, "Force new online metadata update succeeded");

    let after = snapshot(&repo).await.signed.meta;
    for (name, meta) in &before {
        let skip = u64::from(name == &format!("{orphaned}.json"));
        let bumped = u64::from(name != "targets.json");
        assert_eq!(after[name].version, meta.version + bumped + skip, "{name}");
    }
    let files = repo.store.files();
    assert_eq!(files[&format!("{next}.{orphaned}.json")], b"orphan");
    assert_eq!(published(&repo).await, want, "every artifact, re-signed");
    let mut files = files;
    files.retain(|_, bytes| bytes != b"orphan");
    accepted(&files, now());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_bins_on_a_thread_pool() {
    let repo = repo();
    let ports = repo.engine_over(repo.ports().with_cpu(Arc::new(Threads)));
    bump_every_bin_around_an_orphan(ports, repo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_bins_with_a_signer_that_must_be_awaited() {
    let repo = repo();
    let ports = repo.engine_over(
        repo.ports()
            .with_cpu(Arc::new(Threads))
            .with_signers(Arc::new(RemoteSigners(repo.signers.clone()))),
    );
    bump_every_bin_around_an_orphan(ports, repo).await;
}
