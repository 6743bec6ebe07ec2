//! `increment` and `update` under concurrent requests over real HTTP against a real Redis
//! (`sessionware::testing::atomic_over_http`), with the near cache and without; the 409s at
//! the default retry bound are printed.

mod common;

use sessionware_redis::RedisStore;

async fn store(test: &str, near_cache: bool) -> Option<RedisStore> {
    let url = common::redis_url().await?;
    Some(
        RedisStore::builder(url)
            .prefix(common::unique_prefix(test))
            .near_cache(near_cache)
            .connect()
            .await
            .expect("connect"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_near_cache() {
    let Some(store) = store("atomic-cached", true).await else {
        return;
    };
    let report = sessionware::testing::atomic_over_http(store).await;
    eprintln!("redis (near cache): 50 concurrent updates: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_near_cache() {
    let Some(store) = store("atomic-uncached", false).await else {
        return;
    };
    let report = sessionware::testing::atomic_over_http(store).await;
    eprintln!("redis: 50 concurrent updates: {report:?}");
}
