//! Users and devices over real HTTP on every engine: sign-in with id renewal, the devices
//! listing, revoking one, all and all-but-this, the per-user cap, bearer clients.

mod common;

use common::*;
use sessionware_sql::SqlStore;

#[tokio::test]
async fn postgres() {
    let Some((store, pool, table)) = pg("users").await else {
        return;
    };
    sessionware::testing::users_over_http(store).await;
    drop_pg(&pool, &table).await;
}

#[tokio::test]
async fn mariadb() {
    let Some((store, pool, table)) = mysql("users").await else {
        return;
    };
    sessionware::testing::users_over_http(store).await;
    drop_mysql(&pool, &table).await;
}

#[tokio::test]
async fn sqlite_file() {
    let db = TempDb::new("users");
    let store = SqlStore::connect(&db.url()).await.unwrap();
    store.migrate().await.unwrap();
    sessionware::testing::users_over_http(store).await;
}

/// Remember-me and recent sign-in on each engine.
mod sign_in {
    use super::*;
    use sessionware::testing::sign_in_over_http;

    #[tokio::test]
    async fn postgres() {
        let Some((store, pool, table)) = pg("sign_in").await else {
            return;
        };
        sign_in_over_http(store).await;
        drop_pg(&pool, &table).await;
    }

    #[tokio::test]
    async fn mariadb() {
        let Some((store, pool, table)) = mysql("sign_in").await else {
            return;
        };
        sign_in_over_http(store).await;
        drop_mysql(&pool, &table).await;
    }

    #[tokio::test]
    async fn sqlite_file() {
        let db = TempDb::new("sign_in");
        let store = SqlStore::connect(&db.url()).await.unwrap();
        store.migrate().await.unwrap();
        sign_in_over_http(store).await;
    }
}

/// Audit events on each engine.
mod events {
    use super::*;
    use sessionware::testing::events_over_http;

    #[tokio::test]
    async fn postgres() {
        let Some((store, pool, table)) = pg("events").await else {
            return;
        };
        events_over_http(store).await;
        drop_pg(&pool, &table).await;
    }

    #[tokio::test]
    async fn mariadb() {
        let Some((store, pool, table)) = mysql("events").await else {
            return;
        };
        events_over_http(store).await;
        drop_mysql(&pool, &table).await;
    }

    #[tokio::test]
    async fn sqlite_file() {
        let db = TempDb::new("events");
        let store = SqlStore::connect(&db.url()).await.unwrap();
        store.migrate().await.unwrap();
        events_over_http(store).await;
    }
}

/// Metrics through a real recorder on each engine.
mod metrics {
    use super::*;
    use sessionware::testing::metrics_over_http;

    #[tokio::test]
    async fn postgres() {
        let Some((store, pool, table)) = pg("metrics").await else {
            return;
        };
        metrics_over_http(store).await;
        drop_pg(&pool, &table).await;
    }

    #[tokio::test]
    async fn mariadb() {
        let Some((store, pool, table)) = mysql("metrics").await else {
            return;
        };
        metrics_over_http(store).await;
        drop_mysql(&pool, &table).await;
    }

    #[tokio::test]
    async fn sqlite_file() {
        let db = TempDb::new("metrics");
        let store = SqlStore::connect(&db.url()).await.unwrap();
        store.migrate().await.unwrap();
        metrics_over_http(store).await;
    }
}

/// The security review's findings over HTTP on each engine; a record is made unreadable by
/// writing data that is not a JSON object (or not JSON).
mod security {
    use super::*;
    use sessionware::testing::security_over_http;

    #[tokio::test]
    async fn postgres() {
        let Some((store, pool, table)) = pg("security").await else {
            return;
        };
        security_over_http(store, |id| {
            let (pool, table) = (pool.clone(), table.clone());
            async move {
                let sql = format!("UPDATE \"{table}\" SET data = '[1, 2]'::jsonb WHERE id = $1");
                let done = sqlx::query(&sql).bind(id.to_string()).execute(&pool).await;
                assert_eq!(done.unwrap().rows_affected(), 1);
            }
        })
        .await;
        drop_pg(&pool, &table).await;
    }

    #[tokio::test]
    async fn mariadb() {
        let Some((store, pool, table)) = mysql("security").await else {
            return;
        };
        security_over_http(store, |id| {
            let (pool, table) = (pool.clone(), table.clone());
            async move {
                let sql = format!("UPDATE `{table}` SET data = '[1, 2]' WHERE id = ?");
                let done = sqlx::query(&sql).bind(id.to_string()).execute(&pool).await;
                assert_eq!(done.unwrap().rows_affected(), 1);
            }
        })
        .await;
        drop_mysql(&pool, &table).await;
    }

    #[tokio::test]
    async fn sqlite_file() {
        let db = TempDb::new("security");
        let store = SqlStore::connect(&db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let pool = sqlx::SqlitePool::connect(&db.url()).await.unwrap();
        security_over_http(store, |id| {
            let pool = pool.clone();
            async move {
                let sql = "UPDATE sessions SET data = 'not json {' WHERE id = ?";
                let done = sqlx::query(sql).bind(id.to_string()).execute(&pool).await;
                assert_eq!(done.unwrap().rows_affected(), 1);
            }
        })
        .await;
    }
}
