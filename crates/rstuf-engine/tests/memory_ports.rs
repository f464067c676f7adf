//! The in-memory fakes keep the port contracts the real adapters keep.

use rstuf_engine::testing::{MemoryIndex, MemoryStore, metadata_store_conformance};

#[tokio::test]
async fn memory_store_keeps_the_metadata_store_contract() {
    metadata_store_conformance(&MemoryStore::default()).await;
}

#[tokio::test]
async fn memory_index_keeps_the_artifact_index_contract() {
    rstuf_engine::testing::artifact_index_conformance(&MemoryIndex::default()).await;
}
