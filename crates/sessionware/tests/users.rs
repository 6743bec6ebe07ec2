//! Users and devices over real HTTP on the memory store.

use sessionware_memory::MemoryStore;

#[tokio::test]
async fn users_and_devices_on_the_memory_store() {
    sessionware::testing::users_over_http(MemoryStore::new()).await;
}

#[tokio::test]
async fn remember_me_and_recent_sign_in_on_the_memory_store() {
    sessionware::testing::sign_in_over_http(MemoryStore::new()).await;
}

#[tokio::test]
async fn audit_events_on_the_memory_store() {
    sessionware::testing::events_over_http(MemoryStore::new()).await;
}

#[tokio::test]
async fn metrics_on_the_memory_store() {
    sessionware::testing::metrics_over_http(MemoryStore::new()).await;
}

#[tokio::test]
async fn security_findings_on_the_memory_store() {
    let store = MemoryStore::new();
    let corrupted = store.clone();
    sessionware::testing::security_over_http(store, move |id| {
        let store = corrupted.clone();
        async move { store.corrupt(&id) }
    })
    .await;
}
