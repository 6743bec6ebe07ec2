//! PostgreSQL stopped (as by a crash) in the middle of load and started again: session routes
//! answer only `2xx` or a `503` within the layer's store timeout, other routes keep answering
//! `200`, nothing hangs, and once the server is back every session works again in the same
//! application, with every acknowledged write.

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use sessionware::SessionLayer;
use sessionware_sql::SqlStore;
use sessionware_test_support::load::{self, Load};

/// The layer's store timeout. It is what bounds a request while the server is down: sqlx's
/// pool keeps trying to connect for its acquire timeout (30 s).
const TIMEOUT: Duration = Duration::from_secs(1);
/// Allowed on top of it for a loaded, shared two-core machine to schedule the answer.
const MARGIN: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_load_answers_503_and_recovers_with_every_acknowledged_write() {
    let Some(postgres) = tokio::task::block_in_place(|| Cluster::start("outage")) else {
        return;
    };
    let store = SqlStore::connect(&postgres.url()).await.unwrap();
    store.migrate().await.unwrap();
    let layer = SessionLayer::new(store.clone()).with_store_timeout(TIMEOUT.try_into().unwrap());
    let addr = load::serve(layer).await;
    let load = Load {
        // A write is two store calls, each bounded by the timeout.
        request_timeout: TIMEOUT * 2 + MARGIN,
        ..Load::new(32)
    };
    load::outage(
        &store,
        addr,
        load,
        TIMEOUT + MARGIN,
        || postgres.stop(),
        || postgres.start_again(),
    )
    .await;
}
