//! SQLite: JSON text edited in place with `json_set` and `json_remove`.

use std::sync::Arc;

use sessionware_core::time::OffsetDateTime;
use sessionware_core::{ChangeSet, Error, Record, SessionId};
use sqlx::{Row as _, SqlitePool};

use crate::codec::{self, columns};
use crate::conns::Conns;
use crate::error::backend;
use crate::names::Table;
use crate::{BATCH, MAX_CREATE_TRIES, SqlError};

#[derive(Debug, Clone)]
pub(crate) struct Lite {
    conns: Arc<Conns<sqlx::Sqlite>>,
    table: Table,
    t: String,
    sql: Sql,
}

#[derive(Debug, Clone)]
struct Sql {
    insert: String,
    load: String,
    lock: String,
    touch: String,
    rekey: String,
    delete: String,
    delete_expired: String,
    user_sessions: String,
    delete_user: String,
    count: String,
}

const COLUMNS: &str = "data, user_id, created_ms, expires_ms";

impl Lite {
    /// One pass: SQLite runs one writer at a time, so a `rekey` lands wholly before or after
    /// the DELETE, which then ends the session under its new id or finds it gone.
    const DELETE_USER_PASSES: usize = 1;

    pub(crate) fn new(conns: Conns<sqlx::Sqlite>, table: Table) -> Self {
        Self::with_conns(Arc::new(conns), table)
    }

    fn with_conns(conns: Arc<Conns<sqlx::Sqlite>>, table: Table) -> Self {
        let t = table.qualified('"');
        let sql = Sql {
            insert: format!(
                "INSERT INTO {t} (id, data, user_id, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (id) DO NOTHING"
            ),
            load: format!("SELECT {COLUMNS} FROM {t} WHERE id = ? AND expires_ms > ?"),
            lock: format!("SELECT data FROM {t} WHERE id = ? AND expires_ms > ?"),
            touch: format!("UPDATE {t} SET expires_ms = ? WHERE id = ? AND expires_ms > ?"),
            rekey: format!(
                "UPDATE {t} SET id = ?, data = ?, user_id = ?, created_ms = ?, expires_ms = ? \
                 WHERE id = ? AND expires_ms > ? AND user_id IS ?"
            ),
            delete: format!("DELETE FROM {t} WHERE id = ?"),
            delete_expired: format!(
                "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE expires_ms <= ? LIMIT {BATCH})"
            ),
            user_sessions: format!(
                "SELECT id, {COLUMNS} FROM {t} WHERE user_id = ? AND expires_ms > ? \
                 ORDER BY created_ms"
            ),
            delete_user: format!(
                "DELETE FROM {t} WHERE user_id = ? AND id <> ? AND expires_ms > ?"
            ),
            count: format!("SELECT COUNT(*) FROM {t} WHERE expires_ms > ?"),
        };
        Self {
            conns,
            table,
            t,
            sql,
        }
    }

    pub(crate) fn with_table(&self, table: Table) -> Self {
        Self::with_conns(self.conns.clone(), table)
    }

    pub(crate) async fn migrate(&self) -> Result<(), SqlError> {
        let mut conn = self.conns.writer().await.map_err(SqlError::Migrate)?;
        let t = &self.t;
        let expires = self.table.index('"', "expires_idx");
        let user = self.table.index('"', "user_idx");
        // Each statement is atomic and idempotent on its own; a second process migrating at
        // the same time waits for the write lock (busy timeout), then finds each in place.
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
               id TEXT NOT NULL PRIMARY KEY, \
               data TEXT NOT NULL, \
               user_id TEXT, \
               created_ms INTEGER NOT NULL, \
               expires_ms INTEGER NOT NULL\
             ) WITHOUT ROWID; \
             CREATE INDEX IF NOT EXISTS {expires} ON {t} (expires_ms); \
             CREATE INDEX IF NOT EXISTS {user} ON {t} (user_id, expires_ms) \
               WHERE user_id IS NOT NULL;"
        );
        sqlx::Executor::execute(&mut *conn, ddl.as_str())
            .await
            .map_err(SqlError::Migrate)?;
        conn.done();
        Ok(())
    }

    crate::shared::shared_statements!();
    // `->` gives a value's JSON text (NULL when absent), compared with the expected value as
    // `json()` minifies it: both are serde_json's compact text of the same value.
    crate::shared::apply_by_path!(
        db: sqlx::Sqlite,
        empty: "json_object()", remove: "json_remove", set: "json_set", value: "json(?)",
        holds: "data -> ? IS json(?)",
        absent: "json_type(data, ?) IS NULL",
        integer: "(CASE WHEN json_type(data, ?) IS NULL THEN 1 \
                   WHEN json_type(data, ?) <> 'integer' THEN 0 \
                   ELSE json_extract(data, ?) BETWEEN ? AND ? END)",
        sum: "COALESCE(json_extract(data, ?), 0) + ?"
    );
    crate::shared::create_on_conflict!();
    crate::shared::apply_locked!("BEGIN IMMEDIATE");
    crate::shared::apply_grouped!("BEGIN IMMEDIATE");
}

/// A pool for a SQLite URL, tuned for sessions.
pub(crate) async fn pool(url: &str, max_connections: u32) -> Result<SqlitePool, SqlError> {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    use std::str::FromStr as _;

    let options = SqliteConnectOptions::from_str(url)
        .map_err(SqlError::Connect)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(5))
        // WAL with NORMAL: a commit is safe from an application crash at once and from a
        // power loss at the next checkpoint, and costs no fsync of its own. FULL (sqlx's
        // default) made every write wait for one: a fifth of the write rate. An application
        // that wants FULL passes its own pool to `SqlStore::from_pool`.
        .synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new()
        .test_before_acquire(false)
        .max_connections(max_connections);
    // An in-memory database lives as long as one of its connections: keep exactly one, for
    // good (one connection also rules out shared-cache table locks).
    let pool = if url.contains(":memory:") || url.contains("mode=memory") {
        pool.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool
    };
    pool.connect_with(options).await.map_err(SqlError::Connect)
}
