//! MySQL and MariaDB: a `JSON` column edited in place with `JSON_SET` and `JSON_REMOVE`.

use std::sync::Arc;

use sessionware_core::time::OffsetDateTime;
use sessionware_core::{ChangeSet, Error, Record, SessionId};
use sqlx::Row as _;

use crate::codec::{self, columns};
use crate::conns::Conns;
use crate::error::backend;
use crate::names::Table;
use crate::{BATCH, MAX_CREATE_TRIES, SqlError};

#[derive(Debug, Clone)]
pub(crate) struct My {
    conns: Arc<Conns<sqlx::MySql>>,
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

// Converted to a non-binary collation on the way out: sqlx reads `*_bin` columns (and MySQL's
// native JSON) as bytes, not text.
const COLUMNS: &str = "CAST(data AS CHAR), CONVERT(user_id USING utf8mb4), created_ms, expires_ms";

impl My {
    /// Two passes, so that `delete_user` also ends a session a concurrent `rekey` moved
    /// while it ran. InnoDB changes a primary key by deleting the old index entries and
    /// inserting new ones, so the session's new entry is a new row to a DELETE. Under READ
    /// COMMITTED (no gap locks) a `rekey` can run wholly while the first pass's scan is under
    /// way: the pass finds the old entry gone and, when the new one landed behind its scan,
    /// never sees it. That `rekey` committed before the first pass ended, so the second pass,
    /// a new statement reading the latest committed rows, ends it. (A `rekey` holding the row
    /// when the scan reaches it deadlocks with the scan instead, and the loser runs again;
    /// under REPEATABLE READ, MariaDB's default, gap locks make a `rekey` behind the scan
    /// wait or deadlock likewise, and the second pass finds nothing.)
    const DELETE_USER_PASSES: usize = 2;

    pub(crate) fn new(conns: Conns<sqlx::MySql>, table: Table) -> Self {
        Self::with_conns(Arc::new(conns), table)
    }

    fn with_conns(conns: Arc<Conns<sqlx::MySql>>, table: Table) -> Self {
        let t = table.qualified('`');
        let sql = Sql {
            insert: format!(
                "INSERT INTO {t} (id, data, user_id, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?)"
            ),
            load: format!("SELECT {COLUMNS} FROM {t} WHERE id = ? AND expires_ms > ?"),
            lock: format!(
                "SELECT CAST(data AS CHAR) FROM {t} WHERE id = ? AND expires_ms > ? FOR UPDATE"
            ),
            touch: format!("UPDATE {t} SET expires_ms = ? WHERE id = ? AND expires_ms > ?"),
            rekey: format!(
                "UPDATE {t} SET id = ?, data = ?, user_id = ?, created_ms = ?, expires_ms = ? \
                 WHERE id = ? AND expires_ms > ? AND user_id <=> ?"
            ),
            delete: format!("DELETE FROM {t} WHERE id = ?"),
            delete_expired: format!("DELETE FROM {t} WHERE expires_ms <= ? LIMIT {BATCH}"),
            user_sessions: format!(
                "SELECT CONVERT(id USING utf8mb4), {COLUMNS} FROM {t} WHERE user_id = ? AND expires_ms > ? \
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
        let mut conn = self.conns.get().await.map_err(SqlError::Migrate)?;
        let t = &self.t;
        let expires = self.table.index('`', "expires_idx");
        let user = self.table.index('`', "user_idx");
        // One statement, indexes included: MySQL has no `CREATE INDEX IF NOT EXISTS`, and a
        // concurrent twin of `CREATE TABLE IF NOT EXISTS` waits on the metadata lock and then
        // finds the table. Ids compare byte for byte (`ascii_bin`): base64url is case-sensitive.
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
               id VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, \
               data JSON NOT NULL, \
               user_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL, \
               created_ms BIGINT NOT NULL, \
               expires_ms BIGINT NOT NULL, \
               PRIMARY KEY (id), \
               KEY {expires} (expires_ms), \
               KEY {user} (user_id, expires_ms)\
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        );
        sqlx::Executor::execute(&mut *conn, ddl.as_str())
            .await
            .map_err(SqlError::Migrate)?;
        conn.done();
        Ok(())
    }

    pub(crate) async fn create(&self, record: &Record) -> Result<SessionId, Error> {
        let data = codec::encode(&record.data)?;
        let mut id = record.id;
        let mut conn = self.conns.writer().await.map_err(backend)?;
        for _ in 0..MAX_CREATE_TRIES {
            // A plain INSERT: `INSERT IGNORE` would also turn real errors into warnings.
            let done = sqlx::query(&self.sql.insert)
                .bind(id.to_string())
                .bind(&data)
                .bind(record.user.as_deref())
                .bind(codec::ms(record.created_at))
                .bind(codec::ms(record.expires_at))
                .execute(&mut *conn)
                .await;
            match done {
                Ok(_) => {
                    conn.done();
                    return Ok(id);
                }
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    id = SessionId::generate()?;
                }
                Err(e) => return Err(backend(e)),
            }
        }
        Err(crate::no_free_id())
    }

    crate::shared::shared_statements!();
    // MariaDB keeps JSON as text in its own formatting, so a guard compares values with
    // `JSON_EQUALS` (MariaDB 10.7+; MySQL 8 lacks it: see the known limits in docs/design.md).
    // The `CASE` keeps `CAST` away from a value that is not an integer, which strict mode
    // would turn from a warning into an error.
    crate::shared::apply_by_path!(
        db: sqlx::MySql,
        empty: "JSON_OBJECT()", remove: "JSON_REMOVE", set: "JSON_SET", value: "JSON_EXTRACT(?, '$')",
        holds: "JSON_EQUALS(JSON_EXTRACT(data, ?), JSON_EXTRACT(?, '$')) = 1",
        absent: "JSON_CONTAINS_PATH(data, 'one', ?) = 0",
        integer: "(CASE WHEN JSON_CONTAINS_PATH(data, 'one', ?) = 0 THEN 1 \
                   WHEN JSON_TYPE(JSON_EXTRACT(data, ?)) <> 'INTEGER' THEN 0 \
                   ELSE CAST(JSON_EXTRACT(data, ?) AS SIGNED) BETWEEN ? AND ? END)",
        sum: "CAST(COALESCE(JSON_EXTRACT(data, ?), '0') AS SIGNED) + ?"
    );
    crate::shared::apply_locked!("BEGIN");
    crate::shared::apply_grouped!("BEGIN");
}
