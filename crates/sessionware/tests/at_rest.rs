//! Encryption at rest on the memory store, over real HTTP on loopback.

use sessionware::{Clock as _, SessionStore as _, SystemClock};
use sessionware_memory::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_holds_no_plaintext() {
    let store = MemoryStore::new();
    let view = store.clone();
    sessionware::testing::at_rest_over_http(store, move |id| {
        let view = view.clone();
        async move { format!("{:?}", view.load(&id, SystemClock.now()).await.unwrap()) }
    })
    .await;
}
