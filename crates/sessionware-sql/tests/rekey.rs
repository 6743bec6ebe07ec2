//! `rekey` racing "log out everywhere", made to interleave on purpose rather than by luck: a
//! third connection holds a row of the user's, so the revocation's scan stops there while the
//! renewal waits with it or runs meanwhile, and both go on the moment it is released. The
//! conformance suite's race check rarely hits these windows; these rounds always do.

mod common;

use std::time::Duration as StdDuration;

use common::*;
use serde_json::json;
use sessionware_core::time::Duration;
use sessionware_core::{Clock as _, SessionId, SessionStore, SystemClock};
use sessionware_sql::SqlStore;

/// A row lock on one session, held by a transaction outside the store.
enum Held {
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
    My(sqlx::Transaction<'static, sqlx::MySql>),
}

impl Held {
    async fn take(raw: &Raw, table: &str, id: &SessionId) -> Self {
        match raw {
            Raw::Pg(pool) => {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query(&format!(
                    "SELECT 1 FROM \"{table}\" WHERE id = $1 FOR UPDATE"
                ))
                .bind(id.to_string())
                .fetch_one(&mut *tx)
                .await
                .unwrap();
                Self::Pg(tx)
            }
            Raw::My(pool) => {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query(&format!("SELECT 1 FROM `{table}` WHERE id = ? FOR UPDATE"))
                    .bind(id.to_string())
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                Self::My(tx)
            }
            Raw::Lite(..) => unreachable!("SQLite runs one writer at a time: nothing to race"),
        }
    }

    async fn release(self) {
        match self {
            Self::Pg(tx) => tx.commit().await.unwrap(),
            Self::My(tx) => tx.commit().await.unwrap(),
        }
    }
}

/// Which row the third connection holds.
#[derive(Debug, Clone, Copy)]
enum Hold {
    /// The moving session's own: the renewal queues on it, then the revocation behind it.
    Moving,
    /// Another session of the user, whose deadline sorts between the moving session's old
    /// and new ones in the `(user_id, expires_ms)` index: the revocation's scan waits there,
    /// past the new entry's place, while the renewal runs to completion.
    Other,
}

/// One round. The session moves to a deadline `later` or earlier than its own, so its new
/// index entry lands ahead of the revocation's scan or behind it.
async fn round(name: &str, e: &Race, hold: Hold, later: bool) {
    let (store, t0) = (&e.store, SystemClock.now());
    let user = format!("race-{}", SessionId::generate().unwrap());
    let mut old = record(t0, Duration::minutes(5), json!({"k": 1}));
    old.user = Some(user.clone());
    let old_id = store.create(&old).await.unwrap();
    let mut other = record(t0, Duration::seconds(210), json!({}));
    other.user = Some(user.clone());
    let other_id = store.create(&other).await.unwrap();
    let lives = if later { 9 } else { 2 };
    let mut next = record(t0, Duration::minutes(lives), json!({"k": 2}));
    next.user = Some(user.clone());

    let held = match hold {
        Hold::Moving => Held::take(&e.raw, &e.table, &old_id).await,
        Hold::Other => Held::take(&e.raw, &e.table, &other_id).await,
    };
    let spawn_rekey = || {
        let (store, user, next) = (store.clone(), user.clone(), next.clone());
        tokio::spawn(async move { store.rekey(&old_id, Some(&user), &next, t0).await })
    };
    let spawn_revoke = || {
        let (store, user) = (store.clone(), user.clone());
        tokio::spawn(async move { store.delete_user(&user, None, t0).await })
    };
    let pause = || tokio::time::sleep(StdDuration::from_millis(200));
    let (rekey, revoke) = match hold {
        Hold::Moving => {
            let rekey = spawn_rekey();
            pause().await;
            let revoke = spawn_revoke();
            pause().await;
            assert!(!rekey.is_finished(), "{name}: the renewal waits");
            (rekey, revoke)
        }
        Hold::Other => {
            let revoke = spawn_revoke();
            pause().await;
            let rekey = spawn_rekey();
            pause().await;
            if e.renewal_passes_the_scan {
                // Polled with a bound: on a loaded machine the renewal may need longer than
                // the pause, and it must still finish while the revocation waits.
                let deadline = std::time::Instant::now() + StdDuration::from_secs(10);
                while !rekey.is_finished() && std::time::Instant::now() < deadline {
                    tokio::time::sleep(StdDuration::from_millis(10)).await;
                }
                assert!(rekey.is_finished(), "{name}: the renewal ran meanwhile");
            }
            (rekey, revoke)
        }
    };
    assert!(!revoke.is_finished(), "{name}: the revocation waits");
    held.release().await;

    let moved = rekey.await.unwrap().unwrap();
    let ended = revoke.await.unwrap().unwrap();
    let case = format!("{name} ({hold:?}, later: {later}, rekey: {moved:?})");
    assert!(
        store.list_user(&user, t0).await.unwrap().is_empty(),
        "{case}: a session outlived log out everywhere"
    );
    if let Some(id) = moved {
        assert_eq!(store.load(&id, t0).await.unwrap(), None, "{case}");
    }
    assert_eq!(store.load(&old_id, t0).await.unwrap(), None, "{case}");
    // The other session, and the moving one under whichever id it had when it ended.
    assert_eq!(ended, 2, "{case}");
}

struct Race {
    store: SqlStore,
    raw: Raw,
    table: String,
    /// Whether a renewal can complete while the revocation's scan is under way (no gap
    /// locks hold it back).
    renewal_passes_the_scan: bool,
}

async fn rounds(name: &str, e: &Race) {
    for hold in [Hold::Moving, Hold::Other] {
        for later in [false, true] {
            round(name, e, hold, later).await;
        }
    }
}

#[tokio::test]
async fn postgres() {
    let Some((store, pool, table)) = pg("race").await else {
        return;
    };
    let race = Race {
        store,
        raw: Raw::Pg(pool.clone()),
        table,
        renewal_passes_the_scan: true,
    };
    rounds("postgres", &race).await;
    drop_pg(&pool, &race.table).await;
}

/// MariaDB's default isolation: the revocation's gap locks make a renewal behind its scan
/// wait, or lose a deadlock and run again.
#[tokio::test]
async fn mariadb_repeatable_read() {
    let Some((store, pool, table)) = mysql("race_rr").await else {
        return;
    };
    let race = Race {
        store,
        raw: Raw::My(pool.clone()),
        table,
        renewal_passes_the_scan: false,
    };
    rounds("mariadb (repeatable read)", &race).await;
    drop_mysql(&pool, &race.table).await;
}

/// No gap locks: a renewal whose new entry lands behind the revocation's first pass is ended
/// by the second.
#[tokio::test]
async fn mariadb_read_committed() {
    let Some(url) = mysql_url().await else { return };
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                let set = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";
                sqlx::Executor::execute(&mut *conn, set).await.map(drop)
            })
        })
        .connect(&url)
        .await
        .unwrap();
    let table = unique_table("race_rc");
    let store = SqlStore::from_pool(pool.clone())
        .with_table(&table)
        .unwrap();
    store.migrate().await.unwrap();
    let isolation: String = sqlx::query_scalar("SELECT @@tx_isolation")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(isolation, "READ-COMMITTED");
    let race = Race {
        store,
        raw: Raw::My(pool.clone()),
        table,
        renewal_passes_the_scan: true,
    };
    rounds("mariadb (read committed)", &race).await;
    drop_mysql(&pool, &race.table).await;
}
