//! `increment` and `update` under concurrent requests, over real HTTP on the memory store.

use sessionware_memory::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_updates_on_the_memory_store() {
    let report = sessionware::testing::atomic_over_http(MemoryStore::new()).await;
    eprintln!("memory: 50 concurrent updates: {report:?}");
}
