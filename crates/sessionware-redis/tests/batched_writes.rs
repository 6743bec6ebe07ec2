//! Writes that queue behind a running write of their connection go to Redis as one
//! `apply.lua` call (one node and Sentinel), each still answered for itself. On a Redis of the
//! test's own, so `INFO commandstats` counts only these calls.

mod common;

use std::future::{Future, poll_fn};
use std::task::Poll;

use common::servers;
use serde_json::{Value, json};
use sessionware_core::time::{Duration, OffsetDateTime};
use sessionware_core::{
    ChangeSet, Clock as _, Data, Error, Record, SessionId, SessionStore as _, SystemClock,
};
use sessionware_redis::RedisStore;

/// Calls of `name` the server ran since the last reset.
fn calls(redis: &servers::Process, name: &str) -> u64 {
    redis
        .cli(&["info", "commandstats"])
        .lines()
        .find_map(|line| {
            let stats = line.strip_prefix(&format!("cmdstat_{name}:"))?;
            stats
                .split(',')
                .next()?
                .strip_prefix("calls=")?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn record(now: OffsetDateTime) -> Record {
    Record {
        id: SessionId::generate().unwrap(),
        data: Data::new(),
        user: None,
        created_at: now,
        expires_at: now + Duration::hours(1),
    }
}

fn change(expires_at: OffsetDateTime, key: &str, value: Value) -> ChangeSet {
    let mut changes = ChangeSet::new(expires_at);
    changes.set(key, value);
    changes
}

/// One connection, so every write shares one lane.
async fn store(redis: &servers::Process, near_cache: bool) -> RedisStore {
    RedisStore::builder(redis.url())
        .near_cache(near_cache)
        .pool_size(1)
        .connect()
        .await
        .unwrap()
}

/// A store of one connection and one session created in it, with the time it was created.
async fn store_with_session(
    redis: &servers::Process,
    near_cache: bool,
) -> (RedisStore, OffsetDateTime, Record) {
    let store = store(redis, near_cache).await;
    let now = SystemClock.now();
    let session = record(now);
    store.create(&session).await.unwrap();
    (store, now, session)
}

#[tokio::test]
async fn concurrent_writes_share_script_calls_and_each_gets_its_own_answer() {
    if !servers::available("batched writes") {
        return;
    }
    // The requests a batch answers take their answers in in any order; in reverse is the
    // order that once left a session many requests wrote at once out of the cache.
    for (near_cache, order) in [
        (true, Order::AsSent),
        (true, Order::Reversed),
        (false, Order::AsSent),
    ] {
        let redis = servers::start(&[]);
        let (store, now, shared) = store_with_session(&redis, near_cache).await;
        let mut others = Vec::new();
        for _ in 0..40 {
            let other = record(now);
            store.create(&other).await.unwrap();
            // Read once, so the near cache holds each (a write then answers a bare version).
            store.load(&other.id, now).await.unwrap();
            others.push(other);
        }
        let gone = record(now);
        store.create(&gone).await.unwrap();
        store.delete(&gone.id).await.unwrap();
        assert_eq!(
            store.load(&shared.id, now).await.unwrap().map(|r| r.id),
            Some(shared.id)
        );
        assert_eq!(redis.cli(&["config", "resetstat"]), "OK");

        let deadline = shared.expires_at;
        let mut writes = Vec::new();
        // 40 writes to 40 sessions, 30 writes of different keys and 30 increments to one
        // session, a write to a session destroyed meanwhile, and a guard that cannot hold.
        for (i, other) in others.iter().enumerate() {
            writes.push((other.id, change(deadline, "n", json!(i)), true));
        }
        for i in 0..30 {
            writes.push((
                shared.id,
                change(deadline, &format!("k{i}"), json!(i)),
                true,
            ));
            let mut increment = ChangeSet::new(deadline);
            increment.increment("count", 1);
            writes.push((shared.id, increment, true));
        }
        writes.push((gone.id, change(deadline, "n", json!(1)), false));
        let mut guarded = change(deadline, "guarded", json!(1));
        guarded.expect("k0", Some(json!("not what it holds")));
        let calls_before = writes.len() + 1;
        let answers = futures_join(
            order,
            writes
                .iter()
                .map(|(id, changes, _)| store.apply(id, changes, now))
                .chain([store.apply(&shared.id, &guarded, now)]),
        )
        .await;
        let (guard_answer, answers) = answers.split_last().unwrap();
        for ((id, _, expected), answer) in writes.iter().zip(answers) {
            assert_eq!(answer.as_ref().ok(), Some(expected), "the write to {id}");
        }
        assert!(
            matches!(guard_answer, Err(Error::Conflict { .. })),
            "the guard that does not hold is refused on its own: {guard_answer:?}"
        );

        // One goes at once, alone (a connection runs one call at a time); the other 101
        // queue and go 32 a call: 5 calls, where each write alone took 102.
        let scripts = calls(&redis, "evalsha");
        assert!(
            (1..=6).contains(&scripts),
            "{calls_before} writes went in {scripts} script calls (near cache {near_cache})"
        );
        // A session's change sets in a call answer its new version, and only its last one
        // the whole hash: the shared session's 61 writes return it once per call they are
        // in (four or five), plus the refused guard's one.
        let whole_hashes = calls(&redis, "hrandfield");
        assert!(
            whole_hashes <= 10,
            "{whole_hashes} whole hashes answered (near cache {near_cache})"
        );
        let loads_before = calls(&redis, "hgetall");
        for (i, other) in others.iter().enumerate() {
            let loaded = store.load(&other.id, now).await.unwrap().unwrap();
            assert_eq!(loaded.data.get("n"), Some(&json!(i)));
        }
        let loaded = store.load(&shared.id, now).await.unwrap().unwrap();
        for i in 0..30 {
            assert_eq!(loaded.data.get(&format!("k{i}")), Some(&json!(i)));
        }
        assert_eq!(
            loaded.data.get("count"),
            Some(&json!(30)),
            "every increment counts"
        );
        assert_eq!(loaded.data.get("guarded"), None);
        if near_cache {
            // Each session's cache entry followed its writes, whatever order their answers
            // were taken in: the loads above came from it, and held what Redis holds.
            assert_eq!(
                calls(&redis, "hgetall"),
                loads_before,
                "every session written stays cached ({order:?})"
            );
        }
        assert_eq!(
            redis.cli(&["exists", &store.key(&gone.id)]),
            "0",
            "no write brings back a destroyed session"
        );
        assert!(
            redis
                .cli(&["pttl", &store.key(&shared.id)])
                .parse::<i64>()
                .unwrap()
                > 0,
            "the key keeps its TTL"
        );
    }
}

#[tokio::test]
async fn a_session_written_in_batches_stays_tracked() {
    if !servers::available("batched writes") {
        return;
    }
    let redis = servers::start(&[]);
    let (store, now, session) = store_with_session(&redis, true).await;
    store.load(&session.id, now).await.unwrap();
    let deadline = session.expires_at;
    let writes: Vec<_> = (0..20)
        .map(|i| change(deadline, &format!("k{i}"), json!(i)))
        .collect();
    let answers = futures_join(
        Order::AsSent,
        writes
            .iter()
            .map(|changes| store.apply(&session.id, changes, now)),
    )
    .await;
    assert!(answers.into_iter().all(|answer| answer.unwrap()));
    assert!(calls(&redis, "evalsha") < 20, "the writes shared calls");

    // Only a key's last change set in a call reads it after writing; that read keeps the key
    // tracked, so a change by hand still reaches the cached copy.
    let by_hand = json!("by hand").to_string();
    redis.cli(&["hset", &store.key(&session.id), "d:k0", &by_hand]);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let loaded = store.load(&session.id, now).await.unwrap().unwrap();
        if loaded.data.get("k0") == Some(&json!("by hand")) {
            assert_eq!(loaded.data.get("k19"), Some(&json!(19)));
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "a change by hand never reached the instance: the key is no longer tracked"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn writes_queued_behind_a_cancelled_write_still_run() {
    if !servers::available("batched writes") {
        return;
    }
    let redis = servers::start(&[]);
    let (store, now, session) = store_with_session(&redis, true).await;
    let deadline = session.expires_at;

    let first = change(deadline, "first", json!(1));
    let mut leading = Box::pin(store.apply(&session.id, &first, now));
    // Polled once: it leads its lane and its call is out.
    assert!(poll_once(leading.as_mut()).await.is_pending());
    let queued: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            let id = session.id;
            tokio::spawn(async move {
                let changes = change(deadline, &format!("q{i}"), json!(i));
                store.apply(&id, &changes, now).await
            })
        })
        .collect();
    // The spawned writes run until they wait behind the leader, then it goes away.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    drop(leading);
    for write in queued {
        assert!(write.await.unwrap().unwrap(), "a queued write is answered");
    }
    let loaded = store.load(&session.id, now).await.unwrap().unwrap();
    for i in 0..10 {
        assert_eq!(loaded.data.get(&format!("q{i}")), Some(&json!(i)));
    }
}

async fn poll_once<F: Future>(mut future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

/// The order [`futures_join`] polls its futures in after the first pass, which is the order
/// the answers of one batch are taken in.
#[derive(Debug, Clone, Copy)]
enum Order {
    AsSent,
    Reversed,
}

/// Polls every future in turn until all are done: they start in order, so the first leads.
async fn futures_join<F: Future>(order: Order, futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut started = false;
    poll_fn(|cx| {
        let mut pending = false;
        let mut pairs: Vec<_> = futures.iter_mut().zip(outputs.iter_mut()).collect();
        if started && matches!(order, Order::Reversed) {
            pairs.reverse();
        }
        started = true;
        for (future, output) in pairs {
            if let Some(f) = future {
                match f.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *future = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}
