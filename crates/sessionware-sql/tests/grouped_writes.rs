//! Concurrent writes, on every engine: the ones that queue behind a running
//! write run together in one transaction, each still answered for itself, and none is lost
//! when the write they queued behind is cancelled.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use serde_json::json;
use sessionware_core::time::{Duration, OffsetDateTime};
use sessionware_core::{ChangeSet, Error, SessionStore};

/// The tests take turns: one counts the cluster's transactions.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

type Write<'a> = Pin<Box<dyn Future<Output = Result<bool, Error>> + Send + 'a>>;

/// Polls every write in turn until all are done, in one task: each enters the store's queue
/// at its first poll, before the first one's statement can have come back.
async fn all<'a>(mut writes: Vec<Write<'a>>) -> Vec<Result<bool, Error>> {
    let mut answers: Vec<Option<Result<bool, Error>>> = writes.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (write, answer) in writes.iter_mut().zip(answers.iter_mut()) {
            if answer.is_none()
                && let Poll::Ready(done) = write.as_mut().poll(cx)
            {
                *answer = Some(done);
            }
        }
        if answers.iter().all(Option::is_some) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    answers.into_iter().map(Option::unwrap).collect()
}

/// Write transactions the PostgreSQL cluster has started (`txid_current` takes one itself).
async fn pg_transactions(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT txid_current()::text::bigint")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The answers of `writes`, run together by [`all`], and on PostgreSQL how many write
/// transactions they took.
async fn counted<'a>(
    raw: &common::Raw,
    writes: Vec<Write<'a>>,
) -> (Vec<Result<bool, Error>>, Option<i64>) {
    let common::Raw::Pg(pool) = raw else {
        return (all(writes).await, None);
    };
    let before = pg_transactions(pool).await;
    let answers = all(writes).await;
    let transactions = pg_transactions(pool).await - before - 1;
    (answers, Some(transactions))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_behind_one_run_together_and_each_gets_its_answer() {
    let _alone = SERIAL.lock().await;
    for engine in common::engines("grouped", None).await {
        let name = engine.name;
        let now = OffsetDateTime::now_utc();
        let record = common::record(now, Duration::minutes(5), json!({"g": 0}));
        let id = engine.store.create(&record).await.unwrap();
        let expires = record.expires_at;
        let mut changes = Vec::new();
        for i in 0..50 {
            let mut c = ChangeSet::new(expires);
            c.set(format!("k{i}"), json!(i));
            changes.push(c);
        }
        for _ in 0..20 {
            let mut c = ChangeSet::new(expires);
            c.increment("n", 1);
            changes.push(c);
        }
        // A compare-and-set that cannot hold: refused, with what the key holds.
        let mut refused = ChangeSet::new(expires);
        refused.expect("g", Some(json!(1))).set("g", json!(2));
        changes.push(refused);

        let writes = changes
            .iter()
            .map(|c| Box::pin(engine.store.apply(&id, c, now)) as Write<'_>)
            .collect();
        let (answers, transactions) = counted(&engine.raw, writes).await;
        if let Some(transactions) = transactions {
            // One by one, each write would be a transaction of its own: 71. Grouped: the first,
            // the rest together, the refused one again alone; a few to spare for the server's
            // own work.
            assert!(
                transactions <= 8,
                "{name}: 71 writes took {transactions} transactions"
            );
        }
        let (last, rest) = answers.split_last().unwrap();
        for (i, answer) in rest.iter().enumerate() {
            assert!(matches!(answer, Ok(true)), "{name}: write {i}: {answer:?}");
        }
        assert!(
            matches!(last, Err(Error::Conflict { current }) if current == &[("g".to_owned(), Some(json!(0)))]),
            "{name}: the refused compare-and-set: {last:?}"
        );
        let stored = engine.store.load(&id, now).await.unwrap().unwrap();
        for i in 0..50 {
            assert_eq!(
                stored.data.get(&format!("k{i}")),
                Some(&json!(i)),
                "{name}: k{i}"
            );
        }
        assert_eq!(
            stored.data.get("n"),
            Some(&json!(20)),
            "{name}: every increment counted"
        );
        assert_eq!(
            stored.data.get("g"),
            Some(&json!(0)),
            "{name}: the refused write"
        );
        engine.drop_table().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_of_many_sessions_share_commits_and_each_lands_on_its_own_session() {
    let _alone = SERIAL.lock().await;
    for engine in common::engines("grouped_many", None).await {
        let name = engine.name;
        let now = OffsetDateTime::now_utc();
        let mut ids = Vec::new();
        for _ in 0..20 {
            let record = common::record(now, Duration::minutes(5), json!({}));
            ids.push(engine.store.create(&record).await.unwrap());
        }
        let expires = now + Duration::minutes(5);
        let mut changes = Vec::new();
        for round in 0..3 {
            for (s, id) in ids.iter().enumerate() {
                let mut c = ChangeSet::new(expires);
                c.set(format!("r{round}"), json!(s)).increment("n", 1);
                changes.push((id, c));
            }
        }
        let writes = changes
            .iter()
            .map(|(id, c)| Box::pin(engine.store.apply(id, c, now)) as Write<'_>)
            .collect();
        let (answers, transactions) = counted(&engine.raw, writes).await;
        if let Some(transactions) = transactions {
            assert!(
                transactions < 30,
                "{name}: 60 writes of 20 sessions took {transactions} transactions"
            );
        }
        assert!(
            answers.iter().all(|a| matches!(a, Ok(true))),
            "{name}: {answers:?}"
        );
        for (s, id) in ids.iter().enumerate() {
            let stored = engine.store.load(id, now).await.unwrap().unwrap();
            for round in 0..3 {
                assert_eq!(
                    stored.data.get(&format!("r{round}")),
                    Some(&json!(s)),
                    "{name}"
                );
            }
            assert_eq!(stored.data.get("n"), Some(&json!(3)), "{name}: session {s}");
        }
        engine.drop_table().await;
    }
}

/// A client holding what the store's write needs, until it is dropped (a transaction rolls
/// back) or, for SQLite, commits.
enum Holder {
    Pg(#[allow(dead_code)] sqlx::Transaction<'static, sqlx::Postgres>),
    My(#[allow(dead_code)] sqlx::Transaction<'static, sqlx::MySql>),
    Lite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_behind_a_cancelled_one_still_run() {
    let _alone = SERIAL.lock().await;
    for engine in common::engines("handover", None).await {
        let name = engine.name;
        let now = OffsetDateTime::now_utc();
        let record = common::record(now, Duration::minutes(5), json!({}));
        let id = engine.store.create(&record).await.unwrap();
        let mut first = ChangeSet::new(record.expires_at);
        first.set("first", json!(true));
        // Another client holds the row (SQLite: the database), so the first write waits.
        let t = &engine.table;
        let key = id.to_string();
        let mut holder = match &engine.raw {
            common::Raw::Pg(pool) => {
                let mut tx = pool.begin().await.unwrap();
                let lock = format!("SELECT 1 FROM \"{t}\" WHERE id = $1 FOR UPDATE");
                sqlx::query(&lock)
                    .bind(&key)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                Holder::Pg(tx)
            }
            common::Raw::My(pool) => {
                let mut tx = pool.begin().await.unwrap();
                let lock = format!("SELECT 1 FROM `{t}` WHERE id = ? FOR UPDATE");
                sqlx::query(&lock)
                    .bind(&key)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                Holder::My(tx)
            }
            common::Raw::Lite(pool, _) => {
                let mut conn = pool.acquire().await.unwrap();
                sqlx::Executor::execute(&mut *conn, "BEGIN IMMEDIATE")
                    .await
                    .unwrap();
                Holder::Lite(conn)
            }
        };
        let mut leader = Box::pin(engine.store.apply(&id, &first, now));
        let pending =
            std::future::poll_fn(|cx| Poll::Ready(leader.as_mut().poll(cx).is_pending())).await;
        assert!(pending, "{name}: the first write waits on the database");
        let changes: Vec<ChangeSet> = (0..10)
            .map(|i| {
                let mut c = ChangeSet::new(record.expires_at);
                c.set(format!("k{i}"), json!(i));
                c
            })
            .collect();
        let mut queued: Vec<Write<'_>> = changes
            .iter()
            .map(|c| Box::pin(engine.store.apply(&id, c, now)) as Write<'_>)
            .collect();
        for write in &mut queued {
            let pending =
                std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx).is_pending())).await;
            assert!(pending, "{name}: a write behind a running one waits");
        }
        // The request that led went away (a timeout, a client gone); then the row is free.
        drop(leader);
        match &mut holder {
            Holder::Pg(_) | Holder::My(_) => {}
            Holder::Lite(conn) => {
                sqlx::Executor::execute(&mut **conn, "COMMIT")
                    .await
                    .unwrap();
            }
        }
        drop(holder);
        let answers = tokio::time::timeout(std::time::Duration::from_secs(10), all(queued))
            .await
            .expect("the queued writes are answered");
        assert!(
            answers.iter().all(|a| matches!(a, Ok(true))),
            "{name}: {answers:?}"
        );
        let stored = engine.store.load(&id, now).await.unwrap().unwrap();
        for i in 0..10 {
            assert_eq!(
                stored.data.get(&format!("k{i}")),
                Some(&json!(i)),
                "{name}: k{i}"
            );
        }
        engine.drop_table().await;
    }
}
