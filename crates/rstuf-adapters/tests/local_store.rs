//! The local directory store keeps the `MetadataStore` contract, leaves no temporary files,
//! refuses names outside the directory, and holds a bootstrap a client accepts.

use rstuf_adapters::local_store::LocalStore;
use rstuf_engine::ports::MetadataStore;
use rstuf_engine::testing::metadata_store_conformance;

#[tokio::test(flavor = "multi_thread")]
async fn local_store_keeps_the_metadata_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("metadata")).unwrap();
    metadata_store_conformance(&store).await;
    let mut names: Vec<String> = std::fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let temporary: Vec<&String> = names.iter().filter(|n| n.starts_with('.')).collect();
    assert!(temporary.is_empty(), "temporary files left: {temporary:?}");
    assert!(names.contains(&"1.batch-99.json".to_string()));
    // Files with the same bytes in one batch share an inode: one write, many names.
    use std::os::unix::fs::MetadataExt;
    let inode = |n: &str| std::fs::metadata(store.dir().join(n)).unwrap().ino();
    // (1.batch-0.json was discarded and written again by the contract.)
    assert_eq!(inode("1.batch-1.json"), inode("1.batch-99.json"));
    assert_ne!(inode("1.batch-1.json"), inode("1.other.json"));
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    for name in [
        "../1.x.json",
        "a/1.x.json",
        ".hidden.json",
        "1.x",
        "",
        "timestamp.json",
        "1.x\0.json",
    ] {
        assert!(
            store.put_versioned(name, b"{}").await.is_err(),
            "{name:?} accepted"
        );
    }
    assert!(store.get("../etc.json").await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_of_one_name_never_both_win() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.put_versioned("7.bins-0.json", &[i; 64]).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "exactly one writer creates the file");
    let bytes = store.get("7.bins-0.json").await.unwrap().unwrap();
    assert!(
        bytes.iter().all(|b| *b == bytes[0]),
        "the file holds one writer's bytes, whole"
    );
}
