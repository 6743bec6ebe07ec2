//! The behaviours beyond the shared contract, against each engine.

mod common;

use std::time::Duration as StdDuration;

use common::*;
use serde_json::json;
use sessionware_core::time::{Duration, OffsetDateTime};
use sessionware_core::{ChangeSet, Clock, Data, Error, ManualClock, SessionId, SessionStore};
use sessionware_sql::{SqlError, SqlStore};

#[tokio::test]
async fn expired_rows_are_never_returned_and_delete_expired_removes_them() {
    let clock = ManualClock::new();
    for e in engines("expired", Some(clock.clone())).await {
        let t0 = clock.now();
        let mut ids = Vec::new();
        for minutes in [1, 2, 60] {
            let r = record(t0, Duration::minutes(minutes), json!({"k": minutes}));
            ids.push(e.store.create(&r).await.unwrap());
        }
        let later = t0 + Duration::minutes(1);
        assert_eq!(
            e.store.load(&ids[0], later).await.unwrap(),
            None,
            "{}",
            e.name
        );
        assert_eq!(e.count().await, 3, "{}: the row is still there", e.name);
        assert_eq!(e.store.delete_expired().await.unwrap(), 0, "{}", e.name);
        clock.advance(Duration::seconds(90));
        assert_eq!(e.store.delete_expired().await.unwrap(), 1, "{}", e.name);
        clock.advance(Duration::minutes(1));
        assert_eq!(e.store.delete_expired().await.unwrap(), 1, "{}", e.name);
        assert_eq!(e.count().await, 1, "{}", e.name);
        assert!(e.store.load(&ids[2], clock.now()).await.unwrap().is_some());
        clock.set(t0);
        e.drop_table().await;
    }
}

#[tokio::test]
async fn delete_expired_works_in_batches() {
    let clock = ManualClock::new();
    for e in engines("batches", Some(clock.clone())).await {
        let t0 = clock.now();
        // More than one batch (1000), created concurrently in groups to keep it quick.
        for chunk in 0..5 {
            let creates = (0..250).map(|i| {
                let r = record(t0, Duration::seconds(1 + (chunk * 250 + i) % 7), json!({}));
                let store = e.store.clone();
                async move { store.create(&r).await.unwrap() }
            });
            let mut set = tokio::task::JoinSet::new();
            for c in creates {
                set.spawn(c);
            }
            set.join_all().await;
        }
        clock.advance(Duration::minutes(1));
        assert_eq!(e.store.delete_expired().await.unwrap(), 1250, "{}", e.name);
        assert_eq!(e.count().await, 0, "{}", e.name);
        clock.set(t0);
        e.drop_table().await;
    }
}

#[tokio::test]
async fn cleanup_task_deletes_expired_rows_and_stops_with_the_store() {
    let clock = ManualClock::new();
    for e in engines("cleanup", Some(clock.clone())).await {
        let t0 = clock.now();
        e.store
            .create(&record(t0, Duration::minutes(1), json!({"k": 1})))
            .await
            .unwrap();
        let live = e
            .store
            .create(&record(t0, Duration::hours(1), json!({"k": 2})))
            .await
            .unwrap();
        let task = e.store.spawn_cleanup(Duration::milliseconds(20)).unwrap();
        clock.advance(Duration::minutes(2));
        let mut tries = 0;
        while e.count().await != 1 {
            tries += 1;
            assert!(tries < 250, "{}: the cleanup task did not run", e.name);
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
        assert!(e.store.load(&live, clock.now()).await.unwrap().is_some());
        assert!(!task.is_finished());
        let Engine {
            store,
            raw,
            table,
            name,
        } = e;
        drop(store);
        let mut tries = 0;
        while !task.is_finished() {
            tries += 1;
            assert!(tries < 250, "{name}: the task outlived the store");
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
        clock.set(t0);
        Engine {
            name,
            store: SqlStore::connect("sqlite::memory:").await.unwrap(),
            raw,
            table,
        }
        .drop_table()
        .await;
    }
}

#[tokio::test]
async fn cleanup_task_can_be_stopped() {
    let store = SqlStore::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let task = store.spawn_cleanup(Duration::milliseconds(10)).unwrap();
    assert!(!task.is_finished());
    task.stop();
    // Outside a runtime there is nothing to run the task on: a typed error, not a panic.
    let outside = std::thread::spawn(move || store.spawn_cleanup(Duration::seconds(1)).err())
        .join()
        .unwrap();
    assert!(matches!(outside, Some(SqlError::NoRuntime)));
}

/// Keys no JSON path names (quotes, backslashes, control characters) take the transactional
/// path; the others are edited in SQL. Both must keep every other key.
const KEYS: [&str; 10] = [
    "plain",
    "a.b",
    "ünï ✓",
    "*",
    "[0]",
    "",
    "q\"uote",
    "back\\slash",
    "line\nbreak",
    "$",
];

#[tokio::test]
async fn concurrent_changes_to_different_keys_all_survive() {
    for e in engines("concurrent", None).await {
        let t0 = SystemClockNow::now();
        let r = record(t0, Duration::minutes(5), json!({"keep": {"x": null}}));
        let id = e.store.create(&r).await.unwrap();
        let mut set = tokio::task::JoinSet::new();
        for (i, key) in KEYS.iter().enumerate() {
            for round in 0..2 {
                let store = e.store.clone();
                let mut c = ChangeSet::new(t0 + Duration::minutes(6));
                c.set(
                    format!("{key}{round}"),
                    json!({"i": i, "nested": [true, null, 1.5]}),
                );
                set.spawn(async move { store.apply(&id, &c, t0).await.unwrap() });
            }
        }
        assert!(set.join_all().await.into_iter().all(|ok| ok), "{}", e.name);
        let data = e.store.load(&id, t0).await.unwrap().unwrap().data;
        assert_eq!(data.len(), 1 + 2 * KEYS.len(), "{}: {data:?}", e.name);
        assert_eq!(data["keep"], json!({"x": null}), "{}", e.name);
        for (i, key) in KEYS.iter().enumerate() {
            assert_eq!(
                data[&format!("{key}1")],
                json!({"i": i, "nested": [true, null, 1.5]}),
                "{}: {key:?}",
                e.name
            );
        }

        // Removal and replacement by any key, on either path.
        for key in KEYS {
            let mut c = ChangeSet::new(t0 + Duration::minutes(6));
            c.remove(format!("{key}0"))
                .set(format!("{key}1"), json!("s"));
            assert!(e.store.apply(&id, &c, t0).await.unwrap(), "{}", e.name);
        }
        let data = e.store.load(&id, t0).await.unwrap().unwrap().data;
        let mut expected: Data = KEYS.iter().map(|k| (format!("{k}1"), json!("s"))).collect();
        expected.insert("keep".into(), json!({"x": null}));
        assert_eq!(data, expected, "{}", e.name);
        e.drop_table().await;
    }
}

#[tokio::test]
async fn no_write_resurrects_a_session_on_either_path() {
    for e in engines("resurrect", None).await {
        let t0 = SystemClockNow::now();
        for key in ["plain", "q\"uote"] {
            let id = e
                .store
                .create(&record(t0, Duration::minutes(5), json!({"k": 1})))
                .await
                .unwrap();
            let mut c = ChangeSet::new(t0 + Duration::minutes(10));
            c.set(key, json!(2));
            assert!(
                !e.store
                    .apply(&id, &c, t0 + Duration::minutes(5))
                    .await
                    .unwrap(),
                "{}: expired, {key:?}",
                e.name
            );
            e.store.delete(&id).await.unwrap();
            assert!(!e.store.apply(&id, &c, t0).await.unwrap(), "{}", e.name);
            assert_eq!(e.store.load(&id, t0).await.unwrap(), None, "{}", e.name);
        }
        assert_eq!(e.count().await, 0, "{}", e.name);
        e.drop_table().await;
    }
}

#[tokio::test]
async fn a_users_sessions_are_listed_and_revoked() {
    let clock = ManualClock::new();
    for e in engines("users", Some(clock.clone())).await {
        let t0 = clock.now();
        let mut mine = Vec::new();
        for (user, lives) in [("ada", 60), ("ada", 30), ("bob", 60), ("ada", 1)] {
            let mut r = record(t0, Duration::minutes(lives), json!({}));
            r.user = Some(user.into());
            r.created_at = t0 - Duration::minutes(lives);
            let id = e.store.create(&r).await.unwrap();
            if user == "ada" && lives > 1 {
                mine.push(id);
            }
        }
        clock.advance(Duration::minutes(2));
        let now = clock.now();
        let listed: Vec<SessionId> = e
            .store
            .list_user("ada", now)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(listed, mine, "{}: live ones, oldest first", e.name);
        assert_eq!(
            e.store.list_user("ADA", now).await.unwrap(),
            vec![],
            "{}",
            e.name
        );
        assert_eq!(
            e.store.delete_user("ada", None, now).await.unwrap(),
            2,
            "{}: the live ones; the expired row is the cleanup's",
            e.name
        );
        assert_eq!(e.store.list_user("ada", now).await.unwrap(), vec![]);
        assert_eq!(
            e.store.list_user("bob", now).await.unwrap().len(),
            1,
            "{}",
            e.name
        );
        clock.set(t0);
        e.drop_table().await;
    }
}

#[tokio::test]
async fn migrate_is_idempotent_and_safe_concurrently() {
    let mut stores = Vec::new();
    if let Some(url) = pg_url().await {
        let schema = unique_table("mig");
        let store = SqlStore::connect(&url).await.unwrap();
        stores.push((store.with_schema(&schema).unwrap(), Some(schema)));
    }
    if let Some(url) = mysql_url().await {
        let table = unique_table("mig");
        let store = SqlStore::connect(&url).await.unwrap();
        stores.push((store.with_table(&table).unwrap(), None));
    }
    let db = TempDb::new("mig");
    stores.push((SqlStore::connect(&db.url()).await.unwrap(), None));
    for (store, _) in &stores {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let s = store.clone();
            set.spawn(async move { s.migrate().await });
        }
        for r in set.join_all().await {
            r.unwrap();
        }
        store.migrate().await.unwrap();
        let t0 = SystemClockNow::now();
        let id = store
            .create(&record(t0, Duration::minutes(1), json!({"k": 1})))
            .await
            .unwrap();
        assert!(store.load(&id, t0).await.unwrap().is_some(), "{store:?}");
    }
    // Remove what the test made on the servers.
    if let Some(url) = pg_url().await {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        for (_, schema) in &stores {
            if let Some(schema) = schema {
                sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        }
    }
}

#[tokio::test]
async fn lookups_cleanup_and_user_queries_use_indexes() {
    if let Some((_, pool, table)) = pg("plan").await {
        let mut conn = pool.acquire().await.unwrap();
        // Tiny tables make a sequential scan cheapest: forbid it to see whether an index
        // can serve each query at all.
        sqlx::raw_sql("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await
            .unwrap();
        for query in [
            format!("SELECT data FROM \"{table}\" WHERE id = 'x' AND expires_ms > 1"),
            format!("SELECT id FROM \"{table}\" WHERE expires_ms <= 1"),
            format!("SELECT id FROM \"{table}\" WHERE user_id = 'u' AND expires_ms > 1"),
        ] {
            let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {query}"))
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            let plan = plan.join("\n");
            assert!(plan.contains("Index"), "{query}: {plan}");
            assert!(!plan.contains("Seq Scan"), "{query}: {plan}");
        }
        sqlx::raw_sql("RESET enable_seqscan")
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        drop_pg(&pool, &table).await;
    }
    if let Some((store, pool, table)) = mysql("plan").await {
        // An empty table lets MariaDB answer from metadata alone; give it rows to plan over.
        let t0 = SystemClockNow::now();
        let mut id = None;
        for user in ["u", "v", "w"] {
            let mut r = record(t0, Duration::minutes(5), json!({}));
            r.user = Some(user.into());
            id = Some(store.create(&r).await.unwrap());
        }
        let id = id.unwrap();
        for (query, index) in [
            (
                format!("SELECT data FROM `{table}` WHERE id = '{id}' AND expires_ms > 1"),
                "PRIMARY",
            ),
            (
                format!("SELECT id FROM `{table}` WHERE expires_ms <= 1"),
                "expires_idx",
            ),
            (
                format!("SELECT id FROM `{table}` WHERE user_id = 'u' AND expires_ms > 1"),
                "user_idx",
            ),
        ] {
            let row: sqlx::mysql::MySqlRow = sqlx::query(&format!("EXPLAIN {query}"))
                .fetch_one(&pool)
                .await
                .unwrap();
            use sqlx::Row as _;
            let keys: Option<Vec<u8>> = row.try_get("possible_keys").unwrap();
            let keys = String::from_utf8(keys.unwrap_or_default()).unwrap();
            assert!(keys.contains(index), "{query}: possible keys {keys:?}");
        }
        drop_mysql(&pool, &table).await;
    }
    let db = TempDb::new("plan");
    let store = SqlStore::connect(&db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let pool = sqlx::SqlitePool::connect(&db.url()).await.unwrap();
    for query in [
        "SELECT data FROM sessions WHERE id = 'x' AND expires_ms > 1",
        "SELECT id FROM sessions WHERE expires_ms <= 1",
        "SELECT id FROM sessions WHERE user_id = 'u' AND expires_ms > 1",
    ] {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {query}"))
                .fetch_all(&pool)
                .await
                .unwrap();
        let plan: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
        assert!(
            plan.iter().all(|step| step.starts_with("SEARCH")),
            "{query}: {plan:?}"
        );
    }
}

#[tokio::test]
async fn sqlite_sessions_survive_a_restart() {
    let db = TempDb::new("restart");
    let t0 = SystemClockNow::now();
    let id = {
        let store = SqlStore::connect(&db.url()).await.unwrap();
        store.migrate().await.unwrap();
        store
            .create(&record(t0, Duration::minutes(5), json!({"kept": true})))
            .await
            .unwrap()
    };
    let store = SqlStore::connect(&db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let back = store.load(&id, t0).await.unwrap().unwrap();
    assert_eq!(back.data["kept"], json!(true));
}

#[tokio::test]
async fn bad_names_urls_and_servers_are_typed_errors() {
    assert!(matches!(
        SqlStore::connect("redis://127.0.0.1:6379").await,
        Err(SqlError::UnsupportedUrl { scheme }) if scheme == "redis"
    ));
    let store = SqlStore::connect("sqlite::memory:").await.unwrap();
    assert!(matches!(
        store.clone().with_table("s\"; DROP TABLE x; --"),
        Err(SqlError::InvalidName { .. })
    ));
    assert!(matches!(
        store.clone().with_schema("auth"),
        Err(SqlError::SchemaUnsupported)
    ));
    // Not migrated: the server's error is a backend failure (a 503), not a panic or a
    // "no session".
    let t0 = SystemClockNow::now();
    let err = store
        .load(&SessionId::generate().unwrap(), t0)
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");

    // A server that refuses the database: a typed error.
    let mut urls = Vec::new();
    if let Some(url) = pg_url().await {
        urls.push(url.replace("/test", "/no_such_database_here"));
    }
    if let Some(url) = mysql_url().await {
        urls.push(url.replace("/test", "/no_such_database_here"));
    }
    for url in urls {
        let err = tokio::time::timeout(StdDuration::from_secs(30), SqlStore::connect(&url))
            .await
            .expect("connect gives up");
        assert!(matches!(err, Err(SqlError::Connect(_))), "{url}: {err:?}");
    }
}

#[tokio::test]
async fn corrupt_rows_are_reported_not_returned() {
    let db = TempDb::new("corrupt");
    let store = SqlStore::connect(&db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let pool = sqlx::SqlitePool::connect(&db.url()).await.unwrap();
    let t0 = SystemClockNow::now();
    for (column, value) in [
        ("data", json!(42)),
        ("data", json!("[1,2]")),
        ("expires_ms", json!(i64::MAX - 1)),
        ("created_ms", json!("yesterday")),
    ] {
        let id = store
            .create(&record(t0, Duration::minutes(5), json!({"k": 1})))
            .await
            .unwrap();
        let q = format!("UPDATE sessions SET {column} = ? WHERE id = ?");
        let q = sqlx::query(&q);
        let q = match &value {
            serde_json::Value::Number(n) => q.bind(n.as_i64().unwrap()),
            v => q.bind(v.as_str().unwrap().to_owned()),
        };
        q.bind(id.to_string()).execute(&pool).await.unwrap();
        let err = store.load(&id, t0).await.unwrap_err();
        match &err {
            Error::Corrupt { reason } => {
                assert!(!reason.contains(&id.to_string()), "{reason}")
            }
            other => panic!("{column}={value}: expected Corrupt, got {other:?}"),
        }
        store.delete(&id).await.unwrap();
    }
}

/// The wall clock in whole milliseconds, as the layer passes it.
struct SystemClockNow;
impl SystemClockNow {
    fn now() -> OffsetDateTime {
        sessionware_core::SystemClock.now()
    }
}

#[tokio::test]
async fn a_connection_the_server_dropped_fails_one_call_then_is_replaced() {
    let Some(url) = pg_url().await else { return };
    let table = unique_table("dropped");
    let store = SqlStore::connect(&url)
        .await
        .unwrap()
        .with_table(&table)
        .unwrap();
    store.migrate().await.unwrap();
    let t0 = SystemClockNow::now();
    let id = store
        .create(&record(t0, Duration::minutes(5), json!({"k": 1})))
        .await
        .unwrap();
    assert!(store.load(&id, t0).await.unwrap().is_some());
    // The store keeps that connection for its next query; the server now ends it.
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'",
    )
    .bind(&table)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(!killed.is_empty() && killed.iter().all(|k| *k));
    let mut failures = 0;
    let mut tries = 0;
    loop {
        tries += 1;
        assert!(tries <= 3, "the store did not recover");
        match store.load(&id, t0).await {
            Ok(found) => {
                assert!(found.is_some());
                break;
            }
            Err(e) => {
                assert!(e.is_unavailable(), "{e:?}");
                failures += 1;
            }
        }
    }
    assert!(failures <= 1, "only the call on the dead connection fails");
    drop_pg(&admin, &table).await;
}

/// PostgreSQL computes the refreshed deadline in SQL; every engine must agree with
/// `ExpiryPolicy::refreshed_deadline` for every kind of policy.
#[tokio::test]
async fn reads_refresh_exactly_as_the_policy_says() {
    use sessionware_core::ExpiryPolicy;

    let policies = [
        ExpiryPolicy::new(),
        ExpiryPolicy::new().with_absolute_lifetime(None),
        ExpiryPolicy::new().with_idle_timeout(None),
        ExpiryPolicy::new()
            .with_idle_timeout(None)
            .with_absolute_lifetime(None),
        ExpiryPolicy::new()
            .with_idle_timeout(Some(Duration::minutes(10)))
            .with_absolute_lifetime(Some(Duration::minutes(25)))
            .with_refresh_interval(Duration::microseconds(1500)),
        ExpiryPolicy::new()
            .with_idle_timeout(Some(Duration::minutes(10)))
            .with_absolute_lifetime(Some(Duration::MAX)),
    ];
    let steps = [
        Duration::ZERO,
        Duration::milliseconds(1),
        Duration::milliseconds(2),
        Duration::seconds(59),
        Duration::minutes(1),
        Duration::minutes(3),
        Duration::minutes(9),
        Duration::hours(3),
        Duration::days(2),
    ];
    for e in engines("policy", None).await {
        for (p, policy) in policies.iter().enumerate() {
            let t0 = SystemClockNow::now();
            let mut model = record(t0, Duration::ZERO, json!({"p": p}));
            model.expires_at = policy.deadline(t0, t0);
            let id = e.store.create(&model).await.unwrap();
            model.id = id;
            let mut t = t0;
            for step in steps {
                t += step;
                let got = e.store.load_refreshed(&id, policy, t).await.unwrap();
                if model.expires_at <= t {
                    assert_eq!(got, None, "{} policy {p} at +{}", e.name, t - t0);
                    break;
                }
                let next = policy.refreshed_deadline(model.created_at, model.expires_at, t);
                if let Some(next) = next {
                    model.expires_at = next;
                }
                let got = got.unwrap_or_else(|| panic!("{} policy {p}: live", e.name));
                assert_eq!(
                    got.refreshed,
                    next.is_some(),
                    "{} policy {p} at +{}",
                    e.name,
                    t - t0
                );
                assert_eq!(got.record, model, "{} policy {p} at +{}", e.name, t - t0);
            }
        }
        e.drop_table().await;
    }
}

/// SQLite takes one writer at a time; the store queues its own writers for their turn rather
/// than leaving them to SQLite's busy handler. With no busy timeout at all (an application's
/// pool set so), concurrent writes on several connections would fail with "database is
/// locked"; queued, every one lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writers_of_one_store_take_turns() {
    let db = TempDb::new("writers");
    let options: sqlx::sqlite::SqliteConnectOptions = db.url().parse().unwrap();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(
            options
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(StdDuration::ZERO),
        )
        .await
        .unwrap();
    let store = SqlStore::from_pool(pool);
    store.migrate().await.unwrap();
    let now = OffsetDateTime::now_utc();
    let mut ids = Vec::new();
    for i in 0..8 {
        let r = record(now, Duration::hours(1), json!({ "n": i }));
        ids.push(store.create(&r).await.unwrap());
    }
    let mut writes = tokio::task::JoinSet::new();
    for round in 0..25 {
        for id in &ids {
            let (store, id) = (store.clone(), *id);
            writes.spawn(async move {
                let mut changes = ChangeSet::new(now + Duration::hours(1));
                changes.set(format!("k{round}"), json!(round));
                // A read beside every write, as a request does, so connections are busy both ways.
                store.load(&id, now).await?;
                store.apply(&id, &changes, now).await
            });
        }
    }
    let mut failed = Vec::new();
    while let Some(done) = writes.join_next().await {
        match done.unwrap() {
            Ok(true) => {}
            other => failed.push(format!("{other:?}")),
        }
    }
    assert!(failed.is_empty(), "every write lands: {failed:?}");
    for id in &ids {
        let data = store.load(id, now).await.unwrap().unwrap().data;
        assert_eq!(data.len(), 26, "each of the 25 keys and n");
    }
}

/// `SqlStore::builder(url).max_connections(n)`: however many queries are in flight, the store
/// has at most `n` connections open, counted by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_opens_at_most_max_connections_and_keeps_them() {
    let Some(url) = pg_url().await else { return };
    let name = unique_table("pool_size");
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = SqlStore::builder(&format!("{url}{sep}application_name={name}"))
        .max_connections(3)
        .connect()
        .await
        .unwrap()
        .with_table(&name)
        .unwrap();
    store.migrate().await.unwrap();
    let now = OffsetDateTime::now_utc();
    let id = store
        .create(&record(now, Duration::hours(1), json!({})))
        .await
        .unwrap();
    let mut loads = tokio::task::JoinSet::new();
    for _ in 0..60 {
        let store = store.clone();
        loads.spawn(async move { store.load(&id, now).await.map(|r| r.is_some()) });
    }
    while let Some(done) = loads.join_next().await {
        assert!(done.unwrap().unwrap(), "every load finds the session");
    }
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
            .bind(&name)
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!((1..=3).contains(&open), "at most 3 connections: {open}");
    drop_pg(&admin, &name).await;
}

/// `SqlStore::from_pool(pool)`: while the store is busy it uses at most half the pool; once it
/// is not, every connection is back in the application's pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_pool_gets_all_its_connections_back() {
    let Some(url) = pg_url().await else { return };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await
        .unwrap();
    let name = unique_table("lend");
    let store = SqlStore::from_pool(pool.clone()).with_table(&name).unwrap();
    store.migrate().await.unwrap();
    let now = OffsetDateTime::now_utc();
    let id = store
        .create(&record(now, Duration::hours(1), json!({})))
        .await
        .unwrap();
    let mut work = tokio::task::JoinSet::new();
    for i in 0..60 {
        let store = store.clone();
        work.spawn(async move {
            let mut changes = ChangeSet::new(now + Duration::hours(1));
            changes.set(format!("k{i}"), json!(i));
            let wrote = store.apply(&id, &changes, now).await?;
            let read = store.load(&id, now).await?.is_some();
            Ok::<_, Error>(wrote && read)
        });
    }
    while let Some(done) = work.join_next().await {
        assert!(
            done.unwrap().unwrap(),
            "every write and read finds the session"
        );
    }
    // The pool tests each returned connection before it is idle again: poll, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pool.num_idle() < pool.size() as usize {
        assert!(
            std::time::Instant::now() < deadline,
            "the store still holds {} of the pool's {} connections",
            pool.size() as usize - pool.num_idle(),
            pool.size()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut conns = Vec::new();
    for _ in 0..8 {
        conns.push(pool.acquire().await.unwrap());
    }
    drop(conns);
    drop_pg(&pool, &name).await;
}
