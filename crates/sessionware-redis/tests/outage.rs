//! A stalled or vanished Redis: requests that use the session answer `503` within the command
//! timeout, the others keep working, and the store recovers by itself when Redis is back.

mod common;

use std::time::{Duration, Instant};

use common::http::Client;
use common::servers;
use sessionware::SessionLayer;
use sessionware_redis::RedisStore;

const TIMEOUT: Duration = Duration::from_millis(300);

/// Polls `GET path` until it answers `status`, for at most 30 s.
async fn until(client: &mut Client, path: &str, status: u16) -> common::http::Reply {
    let start = Instant::now();
    loop {
        let reply = client.get(path).await;
        if reply.status == status {
            return reply;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{path} did not answer {status} within 30 s (last: {} {:?})",
            reply.status,
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_is_a_prompt_503_and_the_store_recovers() {
    if !servers::available("outage") {
        return;
    }
    let mut redis = servers::start(&[]);
    let store = RedisStore::builder(redis.url())
        .command_timeout(TIMEOUT.try_into().unwrap())
        .connect()
        .await
        .unwrap();
    assert_eq!(
        store.command_timeout(),
        sessionware_core::time::Duration::try_from(TIMEOUT).unwrap()
    );
    let addr = common::http::serve(common::app::app(SessionLayer::new(store.clone()))).await;
    let mut client = Client::new(addr);
    assert_eq!(client.get("/count").await.body, "1");

    // Stalled: the server accepts nothing for a while.
    assert_eq!(redis.cli(&["client", "pause", "3000", "all"]), "OK");
    let start = Instant::now();
    let reply = client.get("/peek").await;
    assert_eq!(
        reply.status, 503,
        "a stalled store is a 503: {:?}",
        reply.body
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "promptly, not after the layer's 5 s: {:?}",
        start.elapsed()
    );
    assert_eq!(
        client.get("/health").await.status,
        200,
        "routes without the session work"
    );
    let reply = until(&mut client, "/peek", 200).await;
    assert_eq!(reply.body, "1", "after the stall, the session is there");
    assert_eq!(client.get("/count").await.body, "2");

    // Gone: the server is killed; then started again on the same port (empty: no persistence).
    redis.kill();
    // The session is in the near cache; once the client sees its connection gone, the cache
    // is bypassed, since it may have missed an invalidation.
    servers::wait_for("the pool to see the server gone", || {
        store.near_cache_stats().unwrap().tracking_connections == 0
    });
    let start = Instant::now();
    let reply = client.get("/peek").await;
    assert_eq!(reply.status, 503, "an unreachable store is a 503");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(client.get("/health").await.status, 200);

    redis.restart(&[]);
    // The same store, never rebuilt, works again: its pool reconnected by itself (and reloads
    // its scripts into the new server's empty cache).
    client.jar = None;
    let reply = until(&mut client, "/count", 200).await;
    assert_eq!(reply.body, "1");
    assert_eq!(client.get("/count").await.body, "2");
    let stats = store.near_cache_stats().unwrap();
    assert!(
        stats.resets >= 1,
        "the reconnection emptied the cache: {stats:?}"
    );
    servers::wait_for("tracking to be on again", || {
        store.near_cache_stats().unwrap().tracking_connections == RedisStore::DEFAULT_POOL_SIZE
    });
    assert_eq!(client.get("/peek").await.body, "2");
    let hits = store.near_cache_stats().unwrap().hits;
    assert_eq!(client.get("/peek").await.body, "2");
    assert_eq!(
        store.near_cache_stats().unwrap().hits,
        hits + 1,
        "the cache serves again"
    );
}

/// A pool the application built has no command timeout of its own: the store's still bounds
/// every one of its commands on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_pool_still_gets_the_command_timeout() {
    use sessionware_core::{Clock as _, SessionId, SessionStore as _, SystemClock};
    use sessionware_redis::fred::interfaces::ClientLike as _;
    use sessionware_redis::fred::types::Builder;
    use sessionware_redis::fred::types::config::Config;

    if !servers::available("outage") {
        return;
    }
    let redis = servers::start(&[]);
    let pool = Builder::from_config(Config::from_url(&redis.url()).unwrap())
        .build_pool(1)
        .unwrap();
    pool.init().await.unwrap();
    let store = RedisStore::from_pool(pool)
        .command_timeout(TIMEOUT.try_into().unwrap())
        .connect()
        .await
        .unwrap();
    assert!(
        store.near_cache_stats().is_none(),
        "an application pool on RESP2 cannot track keys: the store runs without a near cache"
    );
    assert_eq!(redis.cli(&["client", "pause", "3000", "all"]), "OK");
    let start = Instant::now();
    let id = SessionId::generate().unwrap();
    let result = store.load(&id, SystemClock.now()).await;
    assert!(
        matches!(result, Err(sessionware_core::Error::Timeout)),
        "{result:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "within the store's timeout, not the 3 s pause: {:?}",
        start.elapsed()
    );
}
