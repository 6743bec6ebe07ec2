//! Encryption at rest on Redis, over real HTTP: `redis-cli HGETALL` of a session's key shows no
//! stored secret, with the near cache and without.

mod common;

use sessionware_redis::RedisStore;

async fn run(test: &str, near_cache: bool) {
    let Some(url) = common::redis_url().await else {
        return;
    };
    let store = RedisStore::builder(url.clone())
        .prefix(common::unique_prefix(test))
        .near_cache(near_cache)
        .connect()
        .await
        .expect("connect");
    let view = store.clone();
    sessionware::testing::at_rest_over_http(store, move |id| {
        let key = view.key(&id);
        let url = url.clone();
        async move {
            let out = tokio::process::Command::new("redis-cli")
                .args(["-u", &url, "--no-raw", "HGETALL", &key])
                .output()
                .await
                .expect("redis-cli runs");
            assert!(out.status.success(), "redis-cli HGETALL {key}");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(!text.trim().is_empty(), "the session's hash exists: {key}");
            text
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_near_cache() {
    run("at-rest-cached", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_near_cache() {
    run("at-rest-uncached", false).await;
}
