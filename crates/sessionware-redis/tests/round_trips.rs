//! Round trips per request, counted by a Redis of the test's own (`INFO commandstats` after
//! `CONFIG RESETSTAT`): every store call is one top-level command (`HGETALL`, `EVALSHA`,
//! `EVAL` or `DEL`; what a script calls inside is not a round trip), so the count of those is
//! the count of network round trips.

mod common;

use common::http::Client;
use common::servers;
use sessionware::{Clock as _, ExpiryPolicy, ManualClock, SessionLayer, time::Duration};
use sessionware_redis::RedisStore;

/// Top-level commands the server ran since the last reset.
fn round_trips(redis: &servers::Process) -> u64 {
    redis
        .cli(&["info", "commandstats"])
        .lines()
        .filter_map(|line| {
            let (name, stats) = line.split_once(':')?;
            let name = name.strip_prefix("cmdstat_")?;
            ["hgetall", "evalsha", "eval", "del", "unlink", "script|load"]
                .contains(&name)
                .then(|| {
                    stats
                        .split(',')
                        .next()?
                        .strip_prefix("calls=")?
                        .parse::<u64>()
                        .ok()
                })?
        })
        .sum()
}

fn reset(redis: &servers::Process) {
    assert_eq!(redis.cli(&["config", "resetstat"]), "OK");
}

/// What each kind of request costs, with and without the near cache.
struct Costs {
    create: u64,
    first_read: u64,
    read: u64,
    refresh: u64,
    write: u64,
    destroy: u64,
}

#[tokio::test]
async fn each_kind_of_request_costs_what_the_issue_says() {
    // With the near cache, the session's first read fills it and later reads send nothing;
    // a write to a cached session is its one script, a refresh its one touch.
    let cached = Costs {
        create: 1,
        first_read: 1,
        read: 0,
        refresh: 1,
        write: 1,
        destroy: 1,
    };
    // Without it, every request reads first.
    let uncached = Costs {
        create: 1,
        first_read: 1,
        read: 1,
        refresh: 2,
        write: 2,
        destroy: 2,
    };
    for (near_cache, costs) in [(true, cached), (false, uncached)] {
        if !servers::available("round trips") {
            return;
        }
        count_round_trips(near_cache, costs).await;
    }
}

async fn count_round_trips(near_cache: bool, costs: Costs) {
    let redis = servers::start(&[]);
    let store = RedisStore::builder(redis.url())
        .near_cache(near_cache)
        .connect()
        .await
        .unwrap();
    assert_eq!(store.near_cache_stats().is_some(), near_cache);
    let clock = ManualClock::new();
    let policy = ExpiryPolicy::new()
        .with_idle_timeout(Some(Duration::minutes(30)))
        .with_refresh_interval(Duration::minutes(1));
    let layer = SessionLayer::new(store.clone())
        .with_expiry(policy)
        .with_clock(clock.clone());
    let addr = common::http::serve(common::app::app(layer)).await;
    let mut client = Client::new(addr);
    let with = if near_cache { "with" } else { "without" };

    reset(&redis);
    assert_eq!(client.get("/health").await.body, "ok");
    assert_eq!(round_trips(&redis), 0, "a route without the session");

    reset(&redis);
    assert_eq!(client.get("/count").await.body, "1");
    assert_eq!(round_trips(&redis), costs.create, "creating a session");

    reset(&redis);
    assert_eq!(client.get("/peek").await.body, "1");
    assert_eq!(round_trips(&redis), costs.first_read, "the first read");

    reset(&redis);
    assert_eq!(client.get("/peek").await.body, "1");
    assert_eq!(
        round_trips(&redis),
        costs.read,
        "a read-only request {with} the near cache"
    );

    clock.advance(Duration::minutes(5));
    reset(&redis);
    let reply = client.get("/peek").await;
    assert_eq!(reply.body, "1");
    assert!(
        reply.cookie("__Host-session").is_some(),
        "the refresh moved the deadline, so the cookie follows"
    );
    assert_eq!(
        round_trips(&redis),
        costs.refresh,
        "a read-only request that refreshes {with} the near cache"
    );
    let id = store_id(&client);
    let expires = redis.cli(&["hget", &store.key(&id), "expires_at"]);
    let expected = clock.now() + Duration::minutes(30);
    assert_eq!(
        expires,
        ((expected - sessionware::time::OffsetDateTime::UNIX_EPOCH).whole_milliseconds())
            .to_string(),
        "the refresh was written"
    );

    reset(&redis);
    assert_eq!(client.get("/count").await.body, "2");
    assert_eq!(
        round_trips(&redis),
        costs.write,
        "a write to an existing session {with} the near cache"
    );
    reset(&redis);
    assert_eq!(client.get("/count").await.body, "3");
    assert_eq!(round_trips(&redis), costs.write, "the next write");
    // Without contention an increment or a compare-and-set is the same one script.
    reset(&redis);
    assert_eq!(client.get("/increment").await.body, "4");
    assert_eq!(round_trips(&redis), costs.write, "an increment");
    reset(&redis);
    assert_eq!(client.get("/update").await.body, "5");
    assert_eq!(round_trips(&redis), costs.write, "an update");
    reset(&redis);
    assert_eq!(client.get("/peek").await.body, "5");
    reset(&redis);
    assert_eq!(client.get("/count").await.body, "6");
    reset(&redis);
    assert_eq!(client.get("/count").await.body, "7");
    assert_eq!(round_trips(&redis), costs.write, "a write after them");

    // A server that lost its script cache costs a write one more round trip, once.
    assert_eq!(redis.cli(&["script", "flush"]), "OK");
    reset(&redis);
    assert_eq!(client.get("/count").await.body, "8");
    assert_eq!(
        round_trips(&redis),
        costs.write + 1,
        "EVALSHA answered NOSCRIPT, then EVAL"
    );
    reset(&redis);
    assert_eq!(client.get("/count").await.body, "9");
    assert_eq!(
        round_trips(&redis),
        costs.write,
        "the script is cached again"
    );

    reset(&redis);
    assert_eq!(client.get("/destroy").await.body, "bye");
    assert_eq!(
        round_trips(&redis),
        costs.destroy,
        "destroying {with} the near cache"
    );
    assert_eq!(redis.cli(&["exists", &store.key(&id)]), "0");
    if near_cache {
        let stats = store.near_cache_stats().unwrap();
        assert_eq!(stats.entries, 0, "the destroyed session left the cache");
        assert!(stats.hits >= 6, "{stats:?}");
    }
}

/// The session id in the client's cookie (the token is `<id>.<tag>`).
fn store_id(client: &Client) -> sessionware::SessionId {
    let token = client.jar.as_deref().expect("a session cookie");
    token
        .split('.')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("token {token:?} starts with the id"))
}
