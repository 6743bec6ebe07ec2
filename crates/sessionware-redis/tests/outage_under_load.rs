//! Redis killed (SIGKILL) in the middle of load and started again: session routes answer only
//! `2xx` or a prompt `503`, other routes keep answering `200`, nothing hangs, and once Redis is
//! back every session works again in the same application, with every acknowledged write.

mod common;

use common::servers::{self, DURABLE};
use common::{MARGIN, REQUEST_TIMEOUT, TIMEOUT};
use sessionware_test_support::load::{self, Load};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_answers_503_and_recovers_with_every_acknowledged_write() {
    if !servers::available("outage_under_load") {
        return;
    }
    let (redis, store, addr) = common::durable_app().await;
    let load = Load {
        request_timeout: REQUEST_TIMEOUT,
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
