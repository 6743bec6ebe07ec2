use std::time::Duration as StdDuration;

use serde_json::json;
use sessionware_core::time::{Duration, OffsetDateTime};
use sessionware_core::{
    ChangeSet, Clock, Data, ManualClock, Record, SessionId, SessionStore, testing,
};

use crate::MemoryStore;

fn record(now: OffsetDateTime, lives: Duration) -> Record {
    Record {
        id: SessionId::generate().unwrap(),
        data: Data::from([("k".into(), json!(1))]),
        user: None,
        created_at: now,
        expires_at: now + lives,
    }
}

#[tokio::test]
async fn conformance() {
    let store = MemoryStore::new();
    testing::run(&store, |id| {
        store.corrupt(&id);
        async {}
    })
    .await;
    assert_eq!(store.len(), 0, "the suite deletes what it creates");
}

#[tokio::test]
async fn len_counts_live_sessions_only() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let now = clock.now();
    for lives in [1, 2, 3] {
        store
            .create(&record(now, Duration::minutes(lives)))
            .await
            .unwrap();
    }
    assert_eq!(store.len(), 3);
    clock.advance(Duration::seconds(90));
    assert_eq!(store.len(), 2, "the expired session is no longer counted");
    assert_eq!(store.sweep(), 1);
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn capacity_evicts_expired_then_earliest_deadline() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .capacity(1)
        .sweep_interval(None)
        .clock(clock.clone())
        .build();
    let now = clock.now();
    // One shard is enough to show the rule: with capacity 1, every create lands on a full store.
    let first = store
        .create(&record(now, Duration::minutes(5)))
        .await
        .unwrap();
    let second = store
        .create(&record(now, Duration::minutes(10)))
        .await
        .unwrap();
    assert_eq!(store.len(), 1, "capacity holds");
    assert!(
        store.load(&second, now).await.unwrap().is_some(),
        "the newest is kept"
    );
    assert!(
        store.load(&first, now).await.unwrap().is_none(),
        "the older one was evicted"
    );
}

#[tokio::test]
async fn a_flood_of_anonymous_sessions_never_evicts_a_signed_in_user() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .capacity(200)
        .sweep_interval(None)
        .clock(clock.clone())
        .build();
    let now = clock.now();
    let mut users = Vec::new();
    for name in ["ana", "ben"] {
        // Signed in first, so their deadlines are the earliest of all.
        let mut r = record(now, Duration::minutes(1));
        r.user = Some(name.into());
        users.push(store.create(&r).await.unwrap());
    }
    for _ in 0..1_000 {
        store
            .create(&record(now, Duration::hours(24)))
            .await
            .unwrap();
    }
    assert_eq!(store.len(), 200, "capacity holds");
    for id in &users {
        assert!(
            store.load(id, now).await.unwrap().is_some(),
            "anonymous sessions are evicted before bound ones"
        );
    }
    // Only bound sessions left to evict: then the earliest of them goes.
    let full = MemoryStore::builder()
        .capacity(2)
        .sweep_interval(None)
        .build();
    for name in ["ana", "ben", "cy"] {
        let mut r = record(now, Duration::minutes(1));
        r.user = Some(name.into());
        full.create(&r).await.unwrap();
    }
    assert_eq!(full.len(), 2, "a sign-in still gets a place");
}

#[tokio::test]
async fn capacity_bound_holds_under_many_creates() {
    let store = MemoryStore::builder()
        .capacity(500)
        .sweep_interval(None)
        .build();
    let now = sessionware_core::SystemClock.now();
    let mut ids = Vec::new();
    for i in 0..5_000 {
        ids.push(
            store
                .create(&record(now, Duration::minutes(i + 1)))
                .await
                .unwrap(),
        );
    }
    assert!(store.len() <= 500, "never more than capacity");
    assert!(
        store.len() >= 400,
        "eviction takes one session at a time, not whole shards"
    );
    // The most recent sessions (the latest deadlines) survive.
    let newest = ids.last().unwrap();
    assert!(store.load(newest, now).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeper_removes_expired_and_stops_with_the_store() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .sweep_interval(Duration::milliseconds(10))
        .clock(clock.clone())
        .build();
    let now = clock.now();
    store
        .create(&record(now, Duration::minutes(1)))
        .await
        .unwrap();
    let keep = store
        .create(&record(now, Duration::minutes(10)))
        .await
        .unwrap();
    clock.advance(Duration::minutes(2));
    // Poll (bounded) until the sweeper has run: the expired entry leaves the shard.
    let swept = poll(|| store.sweep_count_is(1)).await;
    assert!(swept, "the sweeper removed the expired session");
    assert!(store.load(&keep, clock.now()).await.unwrap().is_some());
    assert_eq!(
        metrics.num_alive_tasks(),
        tasks_before + 1,
        "one sweeper task"
    );
    drop(store);
    let stopped = poll(|| metrics.num_alive_tasks() == tasks_before).await;
    assert!(stopped, "the sweeper ends when the store is dropped");
}

async fn poll(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    false
}

impl MemoryStore {
    /// `true` when exactly `n` entries are held (live or not), read without sweeping.
    fn sweep_count_is(&self, n: usize) -> bool {
        self.held() == n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_one_session_lose_nothing() {
    let store = MemoryStore::new();
    let now = sessionware_core::SystemClock.now();
    let id = store
        .create(&record(now, Duration::minutes(10)))
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut c = ChangeSet::new(now + Duration::minutes(10));
            c.set(format!("k{i}"), json!(i));
            assert!(store.apply(&id, &c, now).await.unwrap());
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let data = store.load(&id, now).await.unwrap().unwrap().data;
    assert_eq!(data.len(), 65);
    assert!((0..64).all(|i| data[&format!("k{i}")] == json!(i)));
}

#[tokio::test]
async fn the_user_index_never_outgrows_the_live_sessions() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .capacity(50)
        .sweep_interval(None)
        .clock(clock.clone())
        .build();
    let now = clock.now();
    for i in 0..200 {
        let mut r = record(now, Duration::minutes(10 + i));
        r.user = Some(format!("user-{}", i % 7));
        store.create(&r).await.unwrap();
    }
    assert_eq!(store.indexed(), 50, "evicted sessions left the index");
    clock.advance(Duration::days(1));
    assert_eq!(store.sweep(), 50);
    assert_eq!(store.indexed(), 0, "swept sessions left the index");
}
