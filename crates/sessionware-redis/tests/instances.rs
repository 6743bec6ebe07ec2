//! Two instances of one app on different loopback ports, same signing key, same Redis: a
//! session is one session whichever instance serves the request.

mod common;

use common::http::Client;
use sessionware::SessionLayer;
use sessionware_redis::RedisStore;

#[tokio::test]
async fn two_instances_share_sessions_through_redis() {
    let Some(url) = common::redis_url().await else {
        return;
    };
    let prefix = common::unique_prefix("instances");
    // Each instance has its own store and connections, as two processes would.
    let mut addrs = Vec::new();
    for _ in 0..2 {
        let store = RedisStore::builder(&url)
            .prefix(&prefix)
            .connect()
            .await
            .unwrap();
        addrs.push(common::http::serve(common::app::app(SessionLayer::new(store))).await);
    }
    assert_ne!(addrs[0].port(), addrs[1].port());
    let mut one = Client::new(addrs[0]);

    assert_eq!(
        one.get("/count").await.body,
        "1",
        "created through the first"
    );
    let mut two = one.at(addrs[1]);
    assert_eq!(two.get("/peek").await.body, "1", "read through the second");
    assert_eq!(
        two.get("/count").await.body,
        "2",
        "updated through the second"
    );
    one.jar = two.jar.clone();
    assert_eq!(
        one.get("/peek").await.body,
        "2",
        "the first sees the update"
    );

    let reply = one.get("/destroy").await;
    assert_eq!(reply.body, "bye");
    let removal = reply
        .cookie("__Host-session")
        .expect("destroy removes the cookie");
    assert!(removal.value().is_empty() || removal.max_age().is_some_and(|a| a.is_zero()));
    // The second still holds the old cookie: the session is gone there too.
    let reply = two.get("/peek").await;
    assert_eq!(
        reply.body, "0",
        "destroyed through the first, gone on the second"
    );
    assert!(two.jar.is_none(), "the stale cookie is removed");
}

#[tokio::test]
async fn concurrent_requests_to_two_instances_keep_both_changes() {
    let Some(url) = common::redis_url().await else {
        return;
    };
    let prefix = common::unique_prefix("instances-per-key");
    let mut addrs = Vec::new();
    for _ in 0..2 {
        let store = RedisStore::builder(&url)
            .prefix(&prefix)
            .connect()
            .await
            .unwrap();
        addrs.push(common::http::serve(common::app::app(SessionLayer::new(store))).await);
    }
    let mut one = Client::new(addrs[0]);
    assert_eq!(one.get("/count").await.body, "1");
    // Many rounds of two requests at once, each instance changing its own key of the session:
    // a whole-record overwrite would lose one of them now and then.
    for round in 0..20 {
        let (mut a, mut b) = (one.at(addrs[0]), one.at(addrs[1]));
        let (path_a, path_b) = (format!("/set/a{round}"), format!("/set/b{round}"));
        let (ra, rb) = tokio::join!(a.get(&path_a), b.get(&path_b));
        assert_eq!((ra.status, rb.status), (200, 200));
    }
    let keys = one.get("/keys").await.body;
    for round in 0..20 {
        for key in [format!("a{round}"), format!("b{round}")] {
            assert!(keys.split(',').any(|k| k == key), "{key} survived: {keys}");
        }
    }
    assert!(keys.split(',').any(|k| k == "count"));
}
