//! The store behind Sentinel: one master, one replica and a sentinel the test starts on
//! loopback ports; a failover replaces the master with the replica and sessions survive it.

mod common;

use std::time::{Duration, Instant};

use common::http::Client;
use common::servers;
use sessionware::SessionLayer;
use sessionware_redis::RedisStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_sentinel_failover() {
    if !servers::available("sentinel") {
        return;
    }
    let sentinel = servers::Sentinel::start();
    let old_master = sentinel.master.port.to_string();
    let store = RedisStore::builder(sentinel.url())
        .prefix(common::unique_prefix("sentinel"))
        .connect()
        .await
        .expect("connect through the sentinel");
    let addr = common::http::serve(common::app::app(SessionLayer::new(store.clone()))).await;
    let mut client = Client::new(addr);
    assert_eq!(client.get("/count").await.body, "1");
    assert_eq!(client.get("/count").await.body, "2");
    // Replication is asynchronous: make sure the replica has the writes before failing over.
    assert_eq!(sentinel.master.cli(&["wait", "1", "5000"]), "1");

    assert_eq!(sentinel.master_port(), old_master);
    // The sentinel refuses (NOGOODSLAVE) until it has polled the replica itself.
    servers::wait_for("the sentinel to accept a failover", || {
        sentinel
            .sentinel
            .cli(&["sentinel", "failover", servers::Sentinel::SERVICE])
            == "OK"
    });
    let new_master = sentinel.replica.port.to_string();
    servers::wait_for("the sentinel to promote the replica", || {
        sentinel.master_port() == new_master
    });
    servers::wait_for("the replica to become master", || {
        sentinel.replica.cli(&["role"]).starts_with("master")
    });

    // The sentinel then turns the old master into a replica and closes its clients'
    // connections, which sends the store's pool to the new master.
    servers::wait_for("the store's connections on the new master", || {
        tracking_clients(&sentinel.replica) == RedisStore::DEFAULT_POOL_SIZE
    });
    // Requests may fail while the client moves to the new master; within a bound, the
    // session is back, with its data, and takes writes on the new master.
    let start = Instant::now();
    let body = loop {
        let reply = client.get("/count").await;
        if reply.status == 200 {
            break reply.body;
        }
        assert_eq!(reply.status, 503, "only unavailability while failing over");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no recovery within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body, "3", "the session survived the failover");
    assert_eq!(client.get("/peek").await.body, "3");
    let keys: u64 = sentinel.replica.cli(&["dbsize"]).parse().unwrap();
    assert!(keys >= 1, "the new master holds the session");

    // The near cache after the failover: the connection to the new master tracks again, and
    // a change made there by hand reaches the cached session.
    let stats = store
        .near_cache_stats()
        .expect("the near cache is on behind Sentinel");
    assert!(
        stats.resets >= 1,
        "the failover emptied the cache: {stats:?}"
    );
    servers::wait_for("tracking on the new master", || {
        store.near_cache_stats().unwrap().tracking_connections == RedisStore::DEFAULT_POOL_SIZE
    });
    assert_eq!(client.get("/peek").await.body, "3");
    let hits = store.near_cache_stats().unwrap().hits;
    assert_eq!(client.get("/peek").await.body, "3");
    assert!(
        store.near_cache_stats().unwrap().hits > hits,
        "served from the cache"
    );
    let token = client.jar.clone().expect("a session cookie");
    let id = token.split('.').next().unwrap().to_owned();
    let key = format!("{}{id}", store.prefix());
    assert_eq!(sentinel.replica.cli(&["hset", &key, "d:count", "41"]), "0");
    let start = Instant::now();
    while client.get("/peek").await.body != "41" {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the change on the new master is not served after 2 s"
        );
    }

    // A rekey behind Sentinel is the single-node script, with all its keys on the master; on
    // the promoted replica its first call may also take the `NOSCRIPT` fallback.
    use sessionware_core::{Record, SessionId, SessionStore as _};
    let now = sessionware_core::time::OffsetDateTime::now_utc();
    let record = |user: Option<&str>| Record {
        id: SessionId::generate().unwrap(),
        data: [("k".to_owned(), serde_json::json!(1))].into(),
        user: user.map(str::to_owned),
        created_at: now,
        expires_at: now + sessionware_core::time::Duration::minutes(5),
    };
    let old = store.create(&record(None)).await.unwrap();
    let new = store
        .rekey(&old, None, &record(Some("sentinel-user")), now)
        .await
        .unwrap()
        .expect("a live session moves");
    assert_eq!(store.load(&old, now).await.unwrap(), None);
    let listed = store.list_user("sentinel-user", now).await.unwrap();
    assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![new]);
    assert_eq!(
        store.delete_user("sentinel-user", None, now).await.unwrap(),
        1
    );
}

/// Connections of `server` with client tracking on (`flags=t`): the store's.
fn tracking_clients(server: &servers::Process) -> usize {
    server
        .cli(&["client", "list"])
        .lines()
        .filter(|line| {
            line.split(' ').any(|field| {
                field
                    .strip_prefix("flags=")
                    .is_some_and(|f| f.contains('t'))
            })
        })
        .count()
}
