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
