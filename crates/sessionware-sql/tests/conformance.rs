//! The store contract from `sessionware_core::testing`, against each engine.

mod common;

use common::*;
use sessionware_core::testing;
use sessionware_sql::SqlStore;

#[tokio::test]
async fn postgres() {
    let Some((store, pool, table)) = pg("conf").await else {
        return;
    };
    testing::run(&store, |id| {
        let (pool, table) = (pool.clone(), table.clone());
        async move {
            // jsonb holds only valid JSON: a non-object is what a corrupt row looks like here.
            let done = sqlx::query(&format!(
                "UPDATE \"{table}\" SET data = '[1, 2]'::jsonb WHERE id = $1"
            ))
            .bind(id.to_string())
            .execute(&pool)
            .await
            .unwrap();
            assert_eq!(done.rows_affected(), 1);
        }
    })
    .await;
    assert_eq!(
        count_pg(&pool, &table).await,
        0,
        "the suite deletes what it creates"
    );
    drop_pg(&pool, &table).await;
}

#[tokio::test]
async fn postgres_with_schema() {
    let Some(url) = pg_url().await else { return };
    let table = unique_table("schema");
    let store = SqlStore::connect(&url)
        .await
        .unwrap()
        .with_schema(&table)
        .unwrap()
        .with_table("sessions")
        .unwrap();
    store.migrate().await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    testing::run(&store, |id| {
        let (pool, table) = (pool.clone(), table.clone());
        async move {
            sqlx::query(&format!(
                "UPDATE \"{table}\".sessions SET data = '\"text\"'::jsonb WHERE id = $1"
            ))
            .bind(id.to_string())
            .execute(&pool)
            .await
            .unwrap();
        }
    })
    .await;
    sqlx::raw_sql(&format!("DROP SCHEMA \"{table}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn mariadb() {
    let Some((store, pool, table)) = mysql("conf").await else {
        return;
    };
    testing::run(&store, |id| {
        let (pool, table) = (pool.clone(), table.clone());
        async move {
            let done = sqlx::query(&format!(
                "UPDATE `{table}` SET data = '[1, 2]' WHERE id = ?"
            ))
            .bind(id.to_string())
            .execute(&pool)
            .await
            .unwrap();
            assert_eq!(done.rows_affected(), 1);
        }
    })
    .await;
    let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM `{table}`"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "the suite deletes what it creates");
    drop_mysql(&pool, &table).await;
}

async fn sqlite_conformance(store: &SqlStore, pool: &sqlx::SqlitePool) {
    store.migrate().await.unwrap();
    testing::run(store, |id| {
        let pool = pool.clone();
        async move {
            let done = sqlx::query("UPDATE sessions SET data = 'not json {' WHERE id = ?")
                .bind(id.to_string())
                .execute(&pool)
                .await
                .unwrap();
            assert_eq!(done.rows_affected(), 1);
        }
    })
    .await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "the suite deletes what it creates");
}

#[tokio::test]
async fn sqlite_file() {
    let db = TempDb::new("conf");
    let pool = sqlx::SqlitePool::connect_with(
        db.url()
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .unwrap()
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal),
    )
    .await
    .unwrap();
    let store = SqlStore::from_pool(pool.clone());
    sqlite_conformance(&store, &pool).await;
    assert!(db.path.exists(), "the sessions are in the file");
}

#[tokio::test]
async fn sqlite_in_memory() {
    // One connection, kept: an in-memory database lives only as long as its connections.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let store = SqlStore::from_pool(pool.clone());
    sqlite_conformance(&store, &pool).await;
}

async fn count_pg(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{table}\""))
        .fetch_one(pool)
        .await
        .unwrap()
}
