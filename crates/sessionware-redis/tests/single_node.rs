//! The store against one real Redis (REDIS_URL, default redis://127.0.0.1:6379): the
//! conformance suite, the layout an operator sees, TTLs, prefixes, bad keys, and what a rekey
//! leaves in Redis.

mod common;

use std::collections::HashMap;

use serde_json::json;
use sessionware_core::time::{Duration, OffsetDateTime};
use sessionware_core::{
    ChangeSet, Clock as _, Data, Error, Record, SessionId, SessionStore, SystemClock, testing,
};
use sessionware_redis::fred::interfaces::{HashesInterface as _, KeysInterface as _};
use sessionware_redis::{ConnectError, RedisStore};

async fn store(test: &str) -> Option<RedisStore> {
    let url = common::redis_url().await?;
    Some(
        RedisStore::builder(url)
            .prefix(common::unique_prefix(test))
            .connect()
            .await
            .expect("connect"),
    )
}

fn record(data: serde_json::Value, lives: Duration) -> Record {
    let now = SystemClock.now();
    Record {
        id: SessionId::generate().unwrap(),
        data: match data {
            serde_json::Value::Object(map) => map.into_iter().collect(),
            _ => Data::new(),
        },
        user: None,
        created_at: now,
        expires_at: now + lives,
    }
}

async fn pttl(store: &RedisStore, id: &SessionId) -> i64 {
    store.pool().pttl(store.key(id)).await.unwrap()
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let Some(store) = store("conformance").await else {
        return;
    };
    testing::run(&store, |id| common::corrupt(&store, id)).await;
}

#[tokio::test]
async fn one_readable_hash_per_session_with_json_values() {
    let Some(store) = store("layout").await else {
        return;
    };
    let mut rec = record(json!({"count": 3, "name": "ada"}), Duration::minutes(30));
    rec.user = Some("user-42".into());
    let id = store.create(&rec).await.unwrap();
    assert!(store.key(&id).starts_with("sessionware-test:layout:"));

    let fields: std::collections::HashMap<String, String> =
        store.pool().hgetall(store.key(&id)).await.unwrap();
    let ms =
        |t: OffsetDateTime| ((t - OffsetDateTime::UNIX_EPOCH).whole_milliseconds()).to_string();
    assert_eq!(
        fields,
        [
            ("created_at", ms(rec.created_at)),
            ("expires_at", ms(rec.expires_at)),
            ("user", "user-42".into()),
            ("d:count", "3".into()),
            ("d:name", "\"ada\"".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    );
    store.delete(&id).await.unwrap();
    let exists: i64 = store.pool().exists(store.key(&id)).await.unwrap();
    assert_eq!(exists, 0, "delete removes the key");
}

#[tokio::test]
async fn every_write_leaves_a_ttl_at_the_deadline() {
    let Some(store) = store("ttl").await else {
        return;
    };
    let rec = record(json!({"k": 1}), Duration::minutes(30));
    let id = store.create(&rec).await.unwrap();
    let within = |pttl: i64, of: Duration| {
        let of = of.whole_milliseconds() as i64;
        pttl > of - 60_000 && pttl <= of
    };
    let ttl = pttl(&store, &id).await;
    assert!(within(ttl, Duration::minutes(30)), "after create: {ttl}");

    let now = SystemClock.now();
    let mut changes = ChangeSet::new(now + Duration::hours(2));
    changes
        .set("k", json!(2))
        .remove("nope")
        .loaded_by(Some("u".into()));
    assert!(store.apply(&id, &changes, now).await.unwrap());
    let ttl = pttl(&store, &id).await;
    assert!(within(ttl, Duration::hours(2)), "after apply: {ttl}");

    let mut clear = ChangeSet::new(now + Duration::hours(3));
    clear.clear();
    assert!(store.apply(&id, &clear, now).await.unwrap());
    let ttl = pttl(&store, &id).await;
    assert!(within(ttl, Duration::hours(3)), "after clear: {ttl}");

    assert!(
        store
            .touch(&id, now + Duration::hours(1), now)
            .await
            .unwrap()
    );
    let ttl = pttl(&store, &id).await;
    assert!(within(ttl, Duration::hours(1)), "after touch: {ttl}");

    let policy = sessionware_core::ExpiryPolicy::new()
        .with_idle_timeout(Some(Duration::hours(5)))
        .with_refresh_interval(Duration::ZERO);
    let loaded = store
        .load_refreshed(&id, &policy, now)
        .await
        .unwrap()
        .unwrap();
    assert!(loaded.refreshed);
    let ttl = pttl(&store, &id).await;
    assert!(
        within(ttl, Duration::hours(5)),
        "after a refreshing read: {ttl}"
    );
    store.delete(&id).await.unwrap();
}

#[tokio::test]
async fn prefixes_keep_applications_apart() {
    let Some(url) = common::redis_url().await else {
        return;
    };
    let a = RedisStore::builder(&url)
        .prefix(common::unique_prefix("app-a"))
        .connect()
        .await
        .unwrap();
    let b = RedisStore::builder(&url)
        .prefix(common::unique_prefix("app-b"))
        .connect()
        .await
        .unwrap();
    let rec = record(json!({"k": 1}), Duration::minutes(5));
    let id = a.create(&rec).await.unwrap();
    let now = SystemClock.now();
    assert!(a.load(&id, now).await.unwrap().is_some());
    assert_eq!(
        b.load(&id, now).await.unwrap(),
        None,
        "another prefix does not see it"
    );
    // The same id is free under the other prefix: no collision.
    assert_eq!(b.create(&Record { id, ..rec.clone() }).await.unwrap(), id);
    a.delete(&id).await.unwrap();
    b.delete(&id).await.unwrap();
    assert_eq!(RedisStore::DEFAULT_PREFIX, "session:");
    let default = RedisStore::connect(&url).await.unwrap();
    assert_eq!(default.key(&id), format!("session:{id}"));
}

/// Each call of the store on one session, named, with its result: a load, a touch and a
/// write of one key.
async fn every_call(
    store: &RedisStore,
    id: &SessionId,
    now: OffsetDateTime,
) -> [(&'static str, Result<(), Error>); 3] {
    let deadline = now + Duration::minutes(1);
    let mut changes = ChangeSet::new(deadline);
    changes.set("k", json!(2));
    [
        ("load", store.load(id, now).await.map(|_| ())),
        ("touch", store.touch(id, deadline, now).await.map(|_| ())),
        ("apply", store.apply(id, &changes, now).await.map(|_| ())),
    ]
}

#[tokio::test]
async fn a_key_that_is_not_a_session_is_corrupt_and_left_alone() {
    let Some(store) = store("not-a-session").await else {
        return;
    };
    let id = SessionId::generate().unwrap();
    let key = store.key(&id);
    let () = store
        .pool()
        .set(
            &key,
            "plain string",
            Some(sessionware_redis::fred::types::Expiration::EX(60)),
            None,
            false,
        )
        .await
        .unwrap();
    let now = SystemClock.now();
    for (what, result) in every_call(&store, &id, now).await {
        match result {
            Err(Error::Corrupt { reason }) => assert!(!reason.contains(&id.to_string()), "{what}"),
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
    }
    let value: String = store.pool().get(&key).await.unwrap();
    assert_eq!(value, "plain string", "nothing overwrote it");

    // A hash without its deadline is no session either.
    let key2 = store.key(&SessionId::generate().unwrap());
    let _: i64 = store.pool().hset(&key2, ("d:k", "1")).await.unwrap();
    let _: bool = store.pool().expire(&key2, 60, None).await.unwrap();
    let id2: SessionId = key2.rsplit(':').next().unwrap().parse().unwrap();
    // The write scripts check a deadline by `HINCRBY` of it by 0, which makes a missing field:
    // each must take it back out. And a deadline that is no integer is refused unchanged.
    let key3 = store.key(&SessionId::generate().unwrap());
    let _: i64 = store
        .pool()
        .hset(&key3, [("expires_at", "soon"), ("d:k", "1")])
        .await
        .unwrap();
    let _: bool = store.pool().expire(&key3, 60, None).await.unwrap();
    let id3: SessionId = key3.rsplit(':').next().unwrap().parse().unwrap();
    for (id, key) in [(id2, &key2), (id3, &key3)] {
        let before: HashMap<String, String> = store.pool().hgetall(key).await.unwrap();
        for (what, result) in every_call(&store, &id, now).await {
            assert!(
                matches!(result, Err(Error::Corrupt { .. })),
                "{what} of {before:?}: {result:?}"
            );
        }
        let after: HashMap<String, String> = store.pool().hgetall(key).await.unwrap();
        assert_eq!(after, before, "nothing written to {key}");
    }
    store.delete(&id).await.unwrap();
    store.delete(&id2).await.unwrap();
    store.delete(&id3).await.unwrap();
}

/// A version field that holds no integer (put there by hand) counts as 0, as loads read it:
/// the write scripts bump it by `HINCRBY`, which refuses such a field, so they set it to 1
/// instead of failing the write.
#[tokio::test]
async fn a_version_that_is_no_integer_counts_as_zero() {
    let Some(store) = store("version-no-integer").await else {
        return;
    };
    let rec = record(json!({"k": 1}), Duration::minutes(30));
    store.create(&rec).await.unwrap();
    let key = store.key(&rec.id);
    let now = SystemClock.now();
    let deadline = rec.expires_at;
    let mut changes = ChangeSet::new(deadline);
    changes.set("k", json!(2));
    for (what, write) in [("apply", true), ("touch", false)] {
        let _: i64 = store
            .pool()
            .hset(&key, ("v", "not a number"))
            .await
            .unwrap();
        let done = if write {
            store.apply(&rec.id, &changes, now).await
        } else {
            store.touch(&rec.id, deadline, now).await
        };
        assert_eq!(done.ok(), Some(true), "{what}");
        let version: String = store.pool().hget(&key, "v").await.unwrap();
        assert_eq!(version, "1", "{what}");
    }
    let loaded = store.load(&rec.id, now).await.unwrap().unwrap();
    assert_eq!(loaded.data.get("k"), Some(&json!(2)));
    store.delete(&rec.id).await.unwrap();
}

/// A write to a session that is gone answers so and leaves no key behind (the scripts' check
/// makes the key for a moment and takes it away again).
#[tokio::test]
async fn a_write_to_a_missing_session_leaves_no_key() {
    let Some(store) = store("write-to-missing").await else {
        return;
    };
    let id = SessionId::generate().unwrap();
    let now = SystemClock.now();
    let mut changes = ChangeSet::new(now + Duration::minutes(1));
    changes.set("k", json!(1));
    assert!(!store.apply(&id, &changes, now).await.unwrap());
    assert!(
        !store
            .touch(&id, now + Duration::minutes(1), now)
            .await
            .unwrap()
    );
    let exists: i64 = store.pool().exists(store.key(&id)).await.unwrap();
    assert_eq!(exists, 0, "no key made");
}

#[tokio::test]
async fn a_rekey_keeps_ttls_and_moves_the_id_between_index_sets() {
    use sessionware_redis::fred::interfaces::SetsInterface as _;

    let Some(store) = store("rekey").await else {
        return;
    };
    let now = SystemClock.now();
    let user = "user-rekey";
    let mut old = record(json!({"k": 1}), Duration::minutes(5));
    old.user = Some(user.into());
    let old_id = store.create(&old).await.unwrap();
    let mut next = record(json!({"k": 2}), Duration::hours(2));
    next.created_at = old.created_at;
    next.user = Some(user.into());
    let new_id = store
        .rekey(&old_id, Some(user), &next, now)
        .await
        .unwrap()
        .expect("a live session moves");

    let ttl = pttl(&store, &new_id).await;
    let two_hours = Duration::hours(2).whole_milliseconds() as i64;
    assert!(
        ttl > two_hours - 60_000 && ttl <= two_hours,
        "the new key's TTL is the deadline: {ttl}"
    );
    let fields: std::collections::HashMap<String, String> =
        store.pool().hgetall(store.key(&new_id)).await.unwrap();
    let ms =
        |t: OffsetDateTime| ((t - OffsetDateTime::UNIX_EPOCH).whole_milliseconds()).to_string();
    assert_eq!(
        fields["expires_at"],
        ms(next.expires_at),
        "laid out as create does"
    );
    assert_eq!(fields["created_at"], ms(old.created_at));
    assert_eq!(fields["user"], user);
    assert_eq!(fields["d:k"], "2");
    let old_exists: i64 = store.pool().exists(store.key(&old_id)).await.unwrap();
    assert_eq!(old_exists, 0, "the old key is deleted, not left to expire");

    let members: Vec<String> = store.pool().smembers(store.user_key(user)).await.unwrap();
    assert_eq!(
        members,
        vec![new_id.to_string()],
        "the new id in, the old one out"
    );
    // The set's TTL read first: read after the session's, it would be lower by the time between.
    let set_ttl: i64 = store.pool().pttl(store.user_key(user)).await.unwrap();
    let ttl = pttl(&store, &new_id).await;
    assert!(
        set_ttl >= ttl,
        "the index outlives the session it lists: {set_ttl} < {ttl}"
    );

    // Refused: the session is bound, the caller saw none. Nothing is written, the set included.
    let mut again = next.clone();
    again.id = SessionId::generate().unwrap();
    assert_eq!(store.rekey(&new_id, None, &again, now).await.unwrap(), None);
    let exists: i64 = store.pool().exists(store.key(&again.id)).await.unwrap();
    assert_eq!(exists, 0);
    let members: Vec<String> = store.pool().smembers(store.user_key(user)).await.unwrap();
    assert_eq!(members, vec![new_id.to_string()]);
    store.delete_user(user, None, now).await.unwrap();
}

/// A key that is not a session hash is reported as `Error::Corrupt` by `rekey`, as by every
/// other call, and left as it is, with no new session written: an operator's mistake shows.
#[tokio::test]
async fn a_rekey_of_a_key_that_is_not_a_session_is_corrupt_and_writes_nothing() {
    let Some(store) = store("rekey-not-a-session").await else {
        return;
    };
    let now = SystemClock.now();
    let old = SessionId::generate().unwrap();
    let key = store.key(&old);
    let () = store
        .pool()
        .set(
            &key,
            "plain string",
            Some(sessionware_redis::fred::types::Expiration::EX(60)),
            None,
            false,
        )
        .await
        .unwrap();
    // A hash without its deadline is no session either.
    let old2 = SessionId::generate().unwrap();
    let _: i64 = store
        .pool()
        .hset(store.key(&old2), ("d:k", "1"))
        .await
        .unwrap();
    let _: bool = store
        .pool()
        .expire(store.key(&old2), 60, None)
        .await
        .unwrap();

    for (old, expected) in [(old, None), (old2, Some("someone"))] {
        let mut next = record(json!({"k": 2}), Duration::minutes(5));
        next.user = Some("someone".into());
        match store.rekey(&old, expected, &next, now).await {
            Err(Error::Corrupt { reason }) => assert!(!reason.contains(&old.to_string())),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let exists: i64 = store.pool().exists(store.key(&next.id)).await.unwrap();
        assert_eq!(exists, 0, "no new session");
        let exists: i64 = store
            .pool()
            .exists(store.user_key("someone"))
            .await
            .unwrap();
        assert_eq!(exists, 0, "no index entry");
    }
    let value: String = store.pool().get(&key).await.unwrap();
    assert_eq!(value, "plain string", "nothing overwrote it");
    let kept: std::collections::HashMap<String, String> =
        store.pool().hgetall(store.key(&old2)).await.unwrap();
    assert_eq!(kept.len(), 1, "nothing overwrote it");
    store.delete(&old).await.unwrap();
    store.delete(&old2).await.unwrap();
}

#[tokio::test]
async fn bad_urls_and_unreachable_servers_are_typed_errors() {
    assert!(matches!(
        RedisStore::connect("carrier-pigeon://nowhere").await,
        Err(ConnectError::InvalidUrl(_))
    ));
    // Nothing listens on port 1.
    let err = RedisStore::builder("redis://127.0.0.1:1")
        .connect_timeout(Duration::seconds(2))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Connect(_)), "{err:?}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

#[tokio::test]
async fn sessions_with_many_keys_round_trip() {
    let Some(store) = store("many-keys").await else {
        return;
    };
    let data: serde_json::Map<String, serde_json::Value> =
        (0..1500).map(|i| (format!("k{i}"), json!(i))).collect();
    let rec = record(serde_json::Value::Object(data), Duration::minutes(5));
    let id = store.create(&rec).await.unwrap();
    let now = SystemClock.now();
    assert_eq!(
        store.load(&id, now).await.unwrap().unwrap().data.len(),
        1500
    );
    let mut changes = ChangeSet::new(now + Duration::minutes(5));
    for i in 0..700 {
        changes.set(format!("k{i}"), json!("x"));
    }
    for i in 700..1400 {
        changes.remove(format!("k{i}"));
    }
    assert!(store.apply(&id, &changes, now).await.unwrap());
    let back = store.load(&id, now).await.unwrap().unwrap().data;
    assert_eq!(back.len(), 800);
    assert_eq!(back["k0"], json!("x"));
    assert_eq!(back["k1499"], json!(1499));
    store.delete(&id).await.unwrap();
}

#[tokio::test]
async fn reads_refresh_exactly_as_the_policy_says() {
    let Some(store) = store("refresh-rule").await else {
        return;
    };
    let now = SystemClock.now();
    let minutes = Duration::minutes;
    let (mut refreshed, mut kept) = (0, 0);
    for idle in [None, Some(minutes(10)), Some(minutes(30))] {
        for absolute in [None, Some(minutes(40)), Some(Duration::hours(24))] {
            for interval in [None, Some(Duration::ZERO), Some(minutes(2))] {
                for (age, last_use) in [(5, 0), (20, 1), (35, 3), (39, 39), (60, 2)] {
                    let mut policy = sessionware_core::ExpiryPolicy::new()
                        .with_idle_timeout(idle)
                        .with_absolute_lifetime(absolute);
                    if let Some(interval) = interval {
                        policy = policy.with_refresh_interval(interval);
                    }
                    let created_at = now - minutes(age);
                    let expires_at = policy.deadline(created_at, now - minutes(last_use));
                    if expires_at <= now {
                        continue;
                    }
                    let mut rec = record(json!({"k": 1}), Duration::ZERO);
                    rec.created_at = created_at;
                    rec.expires_at = expires_at;
                    let id = store.create(&rec).await.unwrap();
                    let expected = policy.refreshed_deadline(created_at, expires_at, now);
                    let loaded = store
                        .load_refreshed(&id, &policy, now)
                        .await
                        .unwrap()
                        .unwrap();
                    let case =
                        format!("{idle:?} {absolute:?} {interval:?} age {age} last {last_use}");
                    assert_eq!(loaded.refreshed, expected.is_some(), "{case}");
                    if loaded.refreshed {
                        refreshed += 1;
                    } else {
                        kept += 1;
                    }
                    assert_eq!(
                        loaded.record.expires_at,
                        expected.unwrap_or(expires_at),
                        "{case}"
                    );
                    let stored = store.load(&id, now).await.unwrap().unwrap();
                    assert_eq!(
                        stored.expires_at, loaded.record.expires_at,
                        "{case}: stored"
                    );
                    store.delete(&id).await.unwrap();
                }
            }
        }
    }
    assert!(
        refreshed > 5 && kept > 5,
        "both outcomes covered: {refreshed} / {kept}"
    );
}

#[tokio::test]
async fn works_on_a_pool_the_application_already_has() {
    use sessionware_redis::fred::interfaces::ClientLike as _;
    use sessionware_redis::fred::types::Builder;
    use sessionware_redis::fred::types::config::{Config, ReconnectPolicy};

    let Some(url) = common::redis_url().await else {
        return;
    };
    let pool = Builder::from_config(Config::from_url(&url).unwrap())
        .set_policy(ReconnectPolicy::new_constant(0, 100))
        .build_pool(2)
        .unwrap();
    pool.init().await.unwrap();
    let store = RedisStore::from_pool(pool.clone())
        .prefix(common::unique_prefix("app-pool"))
        .command_timeout(Duration::milliseconds(750))
        .connect()
        .await
        .unwrap();
    assert_eq!(
        store.command_timeout(),
        std::time::Duration::from_millis(750)
    );
    assert_eq!(store.pool().size(), 2);
    let rec = record(json!({"from": "the app's pool"}), Duration::minutes(5));
    let id = store.create(&rec).await.unwrap();
    let back = store.load(&id, SystemClock.now()).await.unwrap().unwrap();
    assert_eq!(back.data, rec.data);
    store.delete(&id).await.unwrap();
    // The application still owns its pool.
    let pong: String = pool.ping(None).await.unwrap();
    assert_eq!(pong, "PONG");
}
