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

#[tokio::test]
async fn each_kind_of_request_costs_what_the_issue_says() {
    if !servers::available("round trips") {
        return;
    }
    let redis = servers::start(&[]);
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let clock = ManualClock::new();
    let policy = ExpiryPolicy::new()
        .with_idle_timeout(Some(Duration::minutes(30)))
        .with_refresh_interval(Duration::minutes(1));
    let layer = SessionLayer::new(store.clone())
        .with_expiry(policy)
        .with_clock(clock.clone());
    let addr = common::http::serve(common::app::app(layer)).await;
    let mut client = Client::new(addr);

    reset(&redis);
    assert_eq!(client.get("/health").await.body, "ok");
    assert_eq!(round_trips(&redis), 0, "a route without the session");

    reset(&redis);
    assert_eq!(client.get("/count").await.body, "1");
    assert_eq!(round_trips(&redis), 1, "creating a session");

    reset(&redis);
    assert_eq!(client.get("/peek").await.body, "1");
    assert_eq!(round_trips(&redis), 1, "a read-only request");

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
        2,
        "a read-only request that refreshes: the read, then the touch"
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
    assert_eq!(round_trips(&redis), 2, "a write to an existing session");

    // A server that lost its script cache costs a write one more round trip, once.
    assert_eq!(redis.cli(&["script", "flush"]), "OK");
    reset(&redis);
    assert_eq!(client.get("/count").await.body, "3");
    assert_eq!(
        round_trips(&redis),
        3,
        "the read, then EVALSHA answered NOSCRIPT, then EVAL"
    );
    reset(&redis);
    assert_eq!(client.get("/count").await.body, "4");
    assert_eq!(round_trips(&redis), 2, "the script is cached again");

    reset(&redis);
    assert_eq!(client.get("/destroy").await.body, "bye");
    assert_eq!(round_trips(&redis), 2, "destroying: the read and the DEL");
    assert_eq!(redis.cli(&["exists", &store.key(&id)]), "0");
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
