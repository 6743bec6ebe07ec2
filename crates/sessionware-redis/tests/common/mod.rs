//! Helpers shared by the integration tests: HTTP, and Redis servers the tests start themselves.
#![allow(dead_code)]

pub(crate) mod app;
#[allow(unused_imports)] // not every test binary serves an app
pub(crate) use sessionware_test_support::client as http;
pub(crate) mod servers;

use std::net::SocketAddr;
use std::time::Duration;

use sessionware::SessionLayer;
use sessionware_core::{SessionId, SessionStore as _};
use sessionware_redis::RedisStore;
use sessionware_redis::fred::interfaces::{ClientLike as _, HashesInterface as _};

/// fred's per-command timeout in the tests under load: what a request waits for an
/// unreachable Redis.
pub(crate) const TIMEOUT: Duration = Duration::from_millis(500);
/// Allowed on top of a timeout for a loaded, shared two-core machine to schedule the answer.
pub(crate) const MARGIN: Duration = Duration::from_millis(1500);
/// A request longer than this is a hang: two layer timeouts (a write is two store calls),
/// and the margin.
pub(crate) const REQUEST_TIMEOUT: Duration =
    Duration::from_millis(TIMEOUT.as_millis() as u64 * 8 + MARGIN.as_millis() as u64);

/// For the tests under load: a `redis-server` of the test's own whose acknowledged writes
/// survive a SIGKILL, a store on it with the command timeout [`TIMEOUT`], and the load
/// suites' app on that store, served on loopback.
pub(crate) async fn durable_app() -> (servers::Process, RedisStore, SocketAddr) {
    let redis = servers::start(servers::DURABLE);
    let store = RedisStore::builder(redis.url())
        .command_timeout(TIMEOUT.try_into().unwrap())
        // Bounded well under the soak's memory tolerance, so that what its leak check sees
        // is a leak and not the cache filling up, and the bound itself is under test.
        .near_cache_capacity(512 << 10)
        .connect()
        .await
        .unwrap();
    // The layer's own bound is above fred's, so the 503s measured are the store's timeout.
    let layer =
        SessionLayer::new(store.clone()).with_store_timeout((TIMEOUT * 4).try_into().unwrap());
    let addr = sessionware_test_support::load::serve(layer).await;
    (redis, store, addr)
}

/// The shared Redis the tests default to, or `None` (after a loud skip) when it is not up.
pub(crate) async fn redis_url() -> Option<String> {
    sessionware_test_support::service("Redis", "REDIS_URL", "redis://127.0.0.1:6379").await
}

/// A prefix no other test uses, so parallel tests never see each other's keys.
pub(crate) fn unique_prefix(test: &str) -> String {
    let id = SessionId::generate().expect("random id").to_string();
    format!("sessionware-test:{test}:{}:", &id[..8])
}

/// The conformance suite's `corrupt`: text that is not JSON where the store keeps a value.
pub(crate) async fn corrupt(store: &RedisStore, id: SessionId) {
    let written = corrupt_field(store, id, "d:k").await;
    assert_eq!(written, 0, "d:k existed and was overwritten");
}

/// Writes JSON that does not parse into field `field` of session `id`, by hand, and waits
/// until `store` reads the record as corrupt; returns what `HSET` answered.
pub(crate) async fn corrupt_field(store: &RedisStore, id: SessionId, field: &str) -> i64 {
    // A client of its own, as a hand on `redis-cli` would be: a write through one of the
    // store's connections is one its near cache is not told about (`NOLOOP`).
    let client = store.pool().next().clone_new();
    client.init().await.expect("connect");
    let written: i64 = client
        .hset(store.key(&id), (field, "{not json"))
        .await
        .expect("HSET");
    let _ = client.quit().await;
    // The store's near cache hears of the change once Redis's invalidation reaches it, a
    // moment after the write returns here: the corruption counts from then.
    let start = std::time::Instant::now();
    while store
        .load(&id, sessionware_core::time::OffsetDateTime::now_utc())
        .await
        .is_ok()
    {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the store still reads the record as sound 2 s after it was corrupted"
        );
        tokio::task::yield_now().await;
    }
    written
}
