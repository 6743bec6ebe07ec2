//! Helpers shared by the integration tests: HTTP, and Redis servers the tests start themselves.
#![allow(dead_code)]

pub(crate) mod app;
#[allow(unused_imports)] // not every test binary serves an app
pub(crate) use sessionware::testing::client as http;
pub(crate) mod servers;

use sessionware_core::SessionId;
use sessionware_redis::RedisStore;
use sessionware_redis::fred::interfaces::HashesInterface as _;

/// The shared Redis the tests default to, or `None` (after a loud skip) when it is not up.
pub(crate) async fn redis_url() -> Option<String> {
    sessionware_core::testing::service("Redis", "REDIS_URL", "redis://127.0.0.1:6379").await
}

/// A prefix no other test uses, so parallel tests never see each other's keys.
pub(crate) fn unique_prefix(test: &str) -> String {
    let id = SessionId::generate().expect("random id").to_string();
    format!("sessionware-test:{test}:{}:", &id[..8])
}

/// The conformance suite's `corrupt`: text that is not JSON where the store keeps a value.
pub(crate) async fn corrupt(store: &RedisStore, id: SessionId) {
    let written: i64 = store
        .pool()
        .hset(store.key(&id), ("d:k", "{not json"))
        .await
        .expect("HSET");
    assert_eq!(written, 0, "d:k existed and was overwritten");
}
