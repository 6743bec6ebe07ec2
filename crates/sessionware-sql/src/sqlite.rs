//! SQLite: JSON text edited in place with `json_set` and `json_remove`.

use std::sync::Arc;

use sessionware_core::time::OffsetDateTime;
use sessionware_core::{ChangeSet, Error, Record, SessionId};
use sqlx::{Row as _, SqlitePool};

use crate::codec::{self, Row};
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
    delete: String,
    delete_expired: String,
    user_sessions: String,
    delete_user: String,
}

const COLUMNS: &str = "data, user_id, created_ms, expires_ms";

impl Lite {
    pub(crate) fn new(pool: SqlitePool, table: Table) -> Self {
        Self::with_conns(Arc::new(Conns::new(pool)), table)
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
        let mut conn = self.conns.get().await.map_err(SqlError::Migrate)?;
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

    pub(crate) async fn apply(
        &self,
        id: &SessionId,
        changes: &ChangeSet,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        if !changes.keys().all(|(k, _)| codec::path_safe(k)) {
            return self.apply_in_transaction(id, changes, now).await;
        }
        let mut conn = self.conns.get().await.map_err(backend)?;
        // Built per shape (how many keys set and removed); sqlx keeps each shape prepared.
        let mut data = if changes.is_clear() {
            "json_object()".to_owned()
        } else {
            "data".to_owned()
        };
        let mut params: Vec<String> = Vec::new();
        let removals: Vec<&str> = changes.removals().collect();
        if !removals.is_empty() {
            data = format!("json_remove({data}{})", ", ?".repeat(removals.len()));
            params.extend(removals.iter().map(|k| codec::path(k)));
        }
        let sets: Vec<(&str, &serde_json::Value)> = changes.sets().collect();
        if !sets.is_empty() {
            // json(?) makes the parameter a JSON value, not a JSON string.
            data = format!("json_set({data}{})", ", ?, json(?)".repeat(sets.len()));
            for (k, v) in sets {
                params.push(codec::path(k));
                params.push(codec::value(v)?);
            }
        }
        let user = changes.user();
        let sql = format!(
            "UPDATE {} SET data = {data}{}, expires_ms = ? WHERE id = ? AND expires_ms > ?",
            self.t,
            if user.is_some() { ", user_id = ?" } else { "" },
        );
        let mut query = sqlx::query(&sql);
        for p in params {
            query = query.bind(p);
        }
        if let Some(user) = user {
            query = query.bind(user);
        }
        let done = query
            .bind(codec::ms(changes.expires_at()))
            .bind(id.to_string())
            .bind(codec::ms(now))
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        conn.done();
        Ok(done.rows_affected() > 0)
    }

    crate::shared::shared_statements!();
    crate::shared::create_on_conflict!();
    crate::shared::apply_locked!("BEGIN IMMEDIATE");
}

fn columns(row: &sqlx::sqlite::SqliteRow, at: usize) -> Result<Row, Error> {
    Ok(Row {
        data: row.try_get(at).map_err(backend)?,
        user: row.try_get(at + 1).map_err(backend)?,
        created_ms: row.try_get(at + 2).map_err(backend)?,
        expires_ms: row.try_get(at + 3).map_err(backend)?,
    })
}

/// A pool for a SQLite URL, tuned for sessions.
pub(crate) async fn pool(url: &str) -> Result<SqlitePool, SqlError> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    use std::str::FromStr as _;

    let options = SqliteConnectOptions::from_str(url)
        .map_err(SqlError::Connect)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(5));
    let pool = SqlitePoolOptions::new().test_before_acquire(false);
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
