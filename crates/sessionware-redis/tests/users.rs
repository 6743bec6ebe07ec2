//! Users and devices over real HTTP against a real Redis, and the per-user index's own rules:
//! its expiry stays ahead of its sessions', and it is pruned as they end.

mod common;

use serde_json::json;
use sessionware_core::time::Duration;
use sessionware_core::{ChangeSet, Clock as _, Data, Record, SessionId, SessionStore, SystemClock};
use sessionware_redis::RedisStore;
use sessionware_redis::fred::interfaces::{KeysInterface as _, SetsInterface as _};

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

#[tokio::test]
async fn users_and_devices_over_http() {
    let Some(store) = store("users-http").await else {
        return;
    };
    sessionware::testing::users_over_http(store).await;
}

#[tokio::test]
async fn remember_me_and_recent_sign_in_over_http() {
    let Some(store) = store("sign-in-http").await else {
        return;
    };
    sessionware::testing::sign_in_over_http(store).await;
}

#[tokio::test]
async fn audit_events_over_http() {
    let Some(store) = store("events-http").await else {
        return;
    };
    sessionware::testing::events_over_http(store).await;
}

#[tokio::test]
async fn metrics_over_http() {
    // Before the store connects: the near cache registers its counters then.
    let recorder = sessionware::testing::TestRecorder::install();
    let Some(store) = store("metrics-http").await else {
        return;
    };
    let hits = |name: &str| recorder.counter(name, &[("store", "redis")]);
    let before = (
        hits("sessionware_near_cache_hits_total"),
        hits("sessionware_near_cache_misses_total"),
    );
    sessionware::testing::metrics_over_http(store.clone()).await;
    assert!(
        hits("sessionware_near_cache_hits_total") > before.0,
        "the near cache answered reads"
    );
    assert!(
        hits("sessionware_near_cache_misses_total") > before.1,
        "and passed some on"
    );

    // Another instance ends a session this one holds in its near cache: an invalidation.
    let url = common::redis_url().await.unwrap();
    let other = RedisStore::builder(url)
        .prefix(store.prefix().to_owned())
        .connect()
        .await
        .expect("connect");
    let now = SystemClock.now();
    let id = store
        .create(&Record {
            id: SessionId::generate().unwrap(),
            data: Data::from([("k".into(), json!(1))]),
            user: None,
            created_at: now,
            expires_at: now + Duration::minutes(5),
        })
        .await
        .unwrap();
    store.load(&id, now).await.unwrap().expect("live");
    assert!(store.load(&id, now).await.unwrap().is_some());
    let invalidations = || hits("sessionware_near_cache_invalidations_total");
    let before = invalidations();
    other.delete(&id).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while invalidations() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "no invalidation counted within 5 s"
        );
        // The invalidation is taken in by the store's next command on that connection.
        let _ = store.load(&id, now).await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn security_findings_over_http() {
    let Some(store) = store("security-http").await else {
        return;
    };
    let corrupted = store.clone();
    sessionware::testing::security_over_http(store, move |id| {
        let store = corrupted.clone();
        async move {
            common::corrupt_field(&store, id, "d:count").await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_index_outlives_its_sessions_and_is_pruned() {
    let Some(store) = store("users-index").await else {
        return;
    };
    let now = SystemClock.now();
    let user = "user-index";
    let bound = |lives: Duration| Record {
        id: SessionId::generate().unwrap(),
        data: Data::from([("k".into(), json!(1))]),
        user: Some(user.into()),
        created_at: now,
        expires_at: now + lives,
    };
    let short = store.create(&bound(Duration::minutes(5))).await.unwrap();
    let long = store.create(&bound(Duration::minutes(20))).await.unwrap();
    let index = store.user_key(user);
    let pttl = || async { store.pool().pttl::<i64, _>(&index).await.unwrap() };
    assert!(
        pttl().await > Duration::minutes(19).whole_milliseconds() as i64,
        "set TTL ≥ furthest deadline"
    );

    // A write that extends a bound session extends the index with it.
    let mut changes = ChangeSet::new(now + Duration::minutes(90));
    changes.set("k", json!(2)).loaded_by(Some(user.into()));
    assert!(store.apply(&short, &changes, now).await.unwrap());
    assert!(
        pttl().await > Duration::minutes(89).whole_milliseconds() as i64,
        "followed the write"
    );

    // Deleting leaves a stale member until a listing prunes it.
    store.delete(&long).await.unwrap();
    let members: Vec<String> = store.pool().smembers(&index).await.unwrap();
    assert_eq!(members.len(), 2);
    let listed = store.list_user(user, now).await.unwrap();
    assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![short]);
    let members: Vec<String> = store.pool().smembers(&index).await.unwrap();
    assert_eq!(members, vec![short.to_string()], "pruned");

    // Revoking all empties the index, and Redis drops the empty set.
    assert_eq!(store.delete_user(user, None, now).await.unwrap(), 1);
    assert_eq!(store.pool().exists::<i64, _>(&index).await.unwrap(), 0);
}
