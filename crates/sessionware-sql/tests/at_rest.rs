//! Encryption at rest on every engine, over real HTTP: a `SELECT` of the whole sessions table
//! (with the engine's own command-line client) shows no stored secret.

mod common;

use common::*;
use sessionware_sql::SqlStore;

/// The table as the engine's client prints it.
async fn select(program: &str, args: Vec<String>) -> String {
    let out = tokio::process::Command::new(program)
        .args(&args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.trim().is_empty(), "{program}: the table has rows");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some((store, pool, table)) = pg("at_rest").await else {
        return;
    };
    let url = pg_url().await.unwrap();
    let t = table.clone();
    sessionware::testing::at_rest_over_http(store, move |_| {
        let args = vec![
            url.clone(),
            "-At".into(),
            "-c".into(),
            format!("SELECT * FROM {t}"),
        ];
        async move { select("psql", args).await }
    })
    .await;
    drop_pg(&pool, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb() {
    let Some((store, pool, table)) = mysql("at_rest").await else {
        return;
    };
    let t = table.clone();
    sessionware::testing::at_rest_over_http(store, move |_| {
        let args = ["-h127.0.0.1", "-P3306", "-uroot", "test", "-e"]
            .map(String::from)
            .into_iter()
            .chain([format!("SELECT * FROM {t}")])
            .collect();
        async move { select("mysql", args).await }
    })
    .await;
    drop_mysql(&pool, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file() {
    let db = TempDb::new("at_rest");
    let store = SqlStore::connect(&db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let path = db.path.display().to_string();
    sessionware::testing::at_rest_over_http(store, move |_| {
        let args = vec![path.clone(), "SELECT * FROM sessions".into()];
        async move { select("sqlite3", args).await }
    })
    .await;
}
