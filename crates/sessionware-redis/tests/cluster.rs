//! The store on a Redis Cluster of three masters that the test starts from `redis-server`
//! processes on loopback ports, and stops when it ends.

mod common;

use common::servers;
use sessionware_core::testing;
use sessionware_redis::RedisStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_suite_on_a_three_master_cluster() {
    if !servers::available("cluster") {
        return;
    }
    let cluster = servers::Cluster::start();
    let prefix = common::unique_prefix("cluster");
    let store = RedisStore::builder(cluster.url())
        .prefix(prefix.clone())
        .connect()
        .await
        .expect("connect to the cluster");
    testing::run(&store, |id| common::corrupt(&store, id)).await;

    // Sessions land on every master: keys spread over the slots, each script on its key's node.
    let mut ids = Vec::new();
    for _ in 0..30 {
        let record = sessionware_core::Record {
            id: sessionware_core::SessionId::generate().unwrap(),
            data: [("k".to_owned(), serde_json::json!(1))].into(),
            user: None,
            created_at: sessionware_core::time::OffsetDateTime::now_utc(),
            expires_at: sessionware_core::time::OffsetDateTime::now_utc()
                + sessionware_core::time::Duration::minutes(5),
        };
        ids.push(
            sessionware_core::SessionStore::create(&store, &record)
                .await
                .unwrap(),
        );
    }
    for node in &cluster.nodes {
        let keys: u64 = node.cli(&["dbsize"]).parse().unwrap();
        assert!(keys > 0, "node {} holds some sessions", node.port);
    }
    // Counted on every primary, not on one.
    let on_nodes: u64 = cluster
        .nodes
        .iter()
        .map(|node| {
            let keys = node.cli(&["keys", &format!("{prefix}*")]);
            keys.lines()
                .filter(|k| !k.is_empty() && !k.contains("user:"))
                .count() as u64
        })
        .sum();
    assert!(on_nodes >= 30, "{on_nodes}");
    let now = sessionware_core::time::OffsetDateTime::now_utc();
    assert_eq!(
        sessionware_core::SessionStore::count(&store, now)
            .await
            .unwrap(),
        Some(on_nodes),
        "count on the cluster"
    );
    for id in &ids {
        sessionware_core::SessionStore::delete(&store, id)
            .await
            .unwrap();
    }
    for node in &cluster.nodes {
        // Sessions are all gone; a user's index set may outlive a plain `delete` of its
        // sessions, but only until its own TTL.
        for key in node.cli(&["keys", "*"]).lines().filter(|k| !k.is_empty()) {
            assert!(
                key.contains("user:"),
                "the suite and this test cleaned up: {key}"
            );
            let ttl: i64 = node.cli(&["pttl", key]).parse().unwrap();
            assert!(ttl > 0, "{key} carries a TTL");
        }
    }
}
