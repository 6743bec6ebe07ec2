//! `increment` and `update` under concurrent requests over real HTTP on every engine
//! (`sessionware::testing::atomic_over_http`); the 409s at the default retry bound are printed.

mod common;

use common::*;
use sessionware_sql::SqlStore;

/// The layer's errors in the test's captured output, so a failure says what the store
/// answered (a 503's body does not).
fn log() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("sessionware=warn,sessionware_sql=warn")
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    log();
    let Some((store, pool, table)) = pg("atomic").await else {
        return;
    };
    let report = sessionware::testing::atomic_over_http(store).await;
    eprintln!("postgres: 50 concurrent updates: {report:?}");
    drop_pg(&pool, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb() {
    log();
    let Some((store, pool, table)) = mysql("atomic").await else {
        return;
    };
    let report = sessionware::testing::atomic_over_http(store).await;
    eprintln!("mariadb: 50 concurrent updates: {report:?}");
    drop_mysql(&pool, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file() {
    log();
    let db = TempDb::new("atomic");
    let store = SqlStore::connect(&db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let report = sessionware::testing::atomic_over_http(store).await;
    eprintln!("sqlite: 50 concurrent updates: {report:?}");
}
