//! Redis killed (SIGKILL) in the middle of load and started again: session routes answer only
//! `2xx` or a prompt `503`, other routes keep answering `200`, nothing hangs, and once Redis is
//! back every session works again in the same application, with every acknowledged write.

mod common;

use std::time::Duration;

use common::servers::{self, DURABLE};
use sessionware::SessionLayer;
use sessionware::testing::load::{self, Load};
use sessionware_redis::RedisStore;

/// fred's per-command timeout: what a request waits for an unreachable Redis.
const TIMEOUT: Duration = Duration::from_millis(500);
/// Allowed on top of it for a loaded, shared two-core machine to schedule the answer.
const MARGIN: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_answers_503_and_recovers_with_every_acknowledged_write() {
    if !servers::available("outage_under_load") {
        return;
    }
    let redis = servers::start(DURABLE);
    let store = RedisStore::builder(redis.url())
        .command_timeout(TIMEOUT)
        .connect()
        .await
        .unwrap();
    // The layer's own bound is above fred's, so the 503s measured are the store's timeout.
    let layer = SessionLayer::new(store.clone()).with_store_timeout(TIMEOUT * 4);
    let addr = load::serve(layer).await;
    let load = Load {
        request_timeout: TIMEOUT * 8 + MARGIN,
        ..Load::new(32)
    };
    let redis = std::cell::RefCell::new(redis);
    load::outage(
        &store,
        addr,
        load,
        TIMEOUT + MARGIN,
        || redis.borrow_mut().kill(),
        // Same port, same directory: the application's store is never told.
        || redis.borrow_mut().restart(DURABLE),
    )
    .await;
}
