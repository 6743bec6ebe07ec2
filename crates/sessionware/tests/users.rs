//! Users and devices over real HTTP on the memory store.

use sessionware_memory::MemoryStore;

#[tokio::test]
async fn users_and_devices_on_the_memory_store() {
    sessionware::testing::users_over_http(MemoryStore::new()).await;
}
