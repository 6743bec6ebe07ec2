//! Stores on real servers, each in a table of its own so tests can run in parallel.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod cluster;
pub mod engines;

pub use engines::*;

use std::sync::atomic::{AtomicU32, Ordering};

use sessionware_sql::SqlStore;
use sessionware_test_support::service;

pub const PG_URL: &str = "postgres://root@127.0.0.1:5432/test";
pub const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// A table name no other test (or earlier run) uses.
pub fn unique_table(test: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t_{test}_{}_{}_{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn pg_url() -> Option<String> {
    service("PostgreSQL", "DATABASE_URL_POSTGRES", PG_URL).await
}

pub async fn mysql_url() -> Option<String> {
    service("MariaDB", "DATABASE_URL_MYSQL", MYSQL_URL).await
}

/// A migrated PostgreSQL store in a fresh table, and its pool for checks.
pub async fn pg(test: &str) -> Option<(SqlStore, sqlx::PgPool, String)> {
    let url = pg_url().await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .test_before_acquire(false)
        .connect(&url)
        .await
        .unwrap();
    let table = unique_table(test);
    let store = SqlStore::from_pool(pool.clone())
        .with_table(&table)
        .unwrap();
    store.migrate().await.unwrap();
    Some((store, pool, table))
}

pub async fn mysql(test: &str) -> Option<(SqlStore, sqlx::MySqlPool, String)> {
    let url = mysql_url().await?;
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .test_before_acquire(false)
        .connect(&url)
        .await
        .unwrap();
    let table = unique_table(test);
    let store = SqlStore::from_pool(pool.clone())
        .with_table(&table)
        .unwrap();
    store.migrate().await.unwrap();
    Some((store, pool, table))
}

/// A SQLite database file that is removed (with its WAL files) on drop.
pub struct TempDb {
    pub path: std::path::PathBuf,
}

impl TempDb {
    pub fn new(test: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{}.db", unique_table(test)));
        Self { path }
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

pub async fn drop_pg(pool: &sqlx::PgPool, table: &str) {
    sqlx::raw_sql(&format!("DROP TABLE IF EXISTS \"{table}\""))
        .execute(pool)
        .await
        .unwrap();
}

pub async fn drop_mysql(pool: &sqlx::MySqlPool, table: &str) {
    sqlx::raw_sql(&format!("DROP TABLE IF EXISTS `{table}`"))
        .execute(pool)
        .await
        .unwrap();
}
