//! PostgreSQL: `jsonb` data edited in place with `-` and `||`.

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
pub(crate) struct Pg {
    conns: Arc<Conns<sqlx::Postgres>>,
    table: Table,
    sql: Sql,
}

#[derive(Debug, Clone)]
struct Sql {
    insert: String,
    load: String,
    apply: String,
    touch: String,
    rekey: String,
    delete: String,
    delete_expired: String,
    user_sessions: String,
    delete_user: String,
    count: String,
}

const COLUMNS: &str = "data::text, user_id, created_ms, expires_ms";

impl Pg {
    /// One pass ends every session, even one a concurrent `rekey` moves meanwhile. `rekey`
    /// updates the row in place (new id, same row), and under READ COMMITTED a DELETE that
    /// meets a row updated by a transaction that committed after its snapshot follows the
    /// update to the row's newest version and re-checks its WHERE clause there: it deletes
    /// the session under its new id (if it is still the user's), however many times it moved.
    const DELETE_USER_PASSES: usize = 1;

    pub(crate) fn new(conns: Conns<sqlx::Postgres>, table: Table) -> Self {
        Self::with_conns(Arc::new(conns), table)
    }

    fn with_conns(conns: Arc<Conns<sqlx::Postgres>>, table: Table) -> Self {
        let t = table.qualified('"');
        let sql = Sql {
            insert: format!(
                "INSERT INTO {t} (id, data, user_id, created_ms, expires_ms) \
                 VALUES ($1, $2::jsonb, $3, $4, $5) ON CONFLICT (id) DO NOTHING"
            ),
            load: format!("SELECT {COLUMNS} FROM {t} WHERE id = $1 AND expires_ms > $2"),
            // `$2` (clear) empties the object first; `-` drops the removed keys, `||` sets the
            // others at top level only (a nested object is replaced, not merged). All of it
            // runs against the row as it is when the update locks it.
            // Increments (`$7` keys, `$8` steps) add in `numeric`, exact, to the value before
            // the clear (none after one); the conditions check first that each is an integer
            // whose sum fits an i64 (`CASE`, so no cast meets a value that is not a number).
            // Guards: `$9` an object of the values keys must hold (compared as jsonb), `$10` the
            // keys that must be absent. A row that fails a condition is not updated, and the
            // store loads it to say why. The conditions are scalar subqueries, not `NOT
            // EXISTS`: the planner turns that into an anti-join, and when a concurrent update
            // made the row wait, the re-check on its newest version (READ COMMITTED's
            // EvalPlanQual) did not re-run the join, so a guard passed on a stale value (lost
            // updates, caught by the conformance suite). A correlated subquery is re-run.
            apply: format!(
                "UPDATE {t} SET \
                   data = ((CASE WHEN $2 THEN '{{}}'::jsonb ELSE data END - $3::text[]) || $4::jsonb) \
                     || COALESCE((SELECT jsonb_object_agg(i.k, to_jsonb(\
                          COALESCE(CASE WHEN $2 THEN NULL ELSE (data ->> i.k)::numeric END, 0) + i.n)) \
                        FROM unnest($7::text[], $8::bigint[]) AS i(k, n)), '{{}}'::jsonb), \
                   expires_ms = $5 \
                 WHERE id = $1 AND expires_ms > $6 \
                   AND (SELECT count(*) FROM jsonb_each($9::jsonb) AS g(k, v) \
                     WHERE data -> g.k IS DISTINCT FROM g.v) = 0 \
                   AND NOT (data ?| $10::text[]) \
                   AND ($2 OR (SELECT count(*) FROM unnest($7::text[], $8::bigint[]) AS i(k, n) \
                     WHERE CASE WHEN NOT (data ? i.k) THEN FALSE \
                       WHEN jsonb_typeof(data -> i.k) <> 'number' THEN TRUE \
                       WHEN (data ->> i.k) !~ '^-?[0-9]+$' THEN TRUE \
                       ELSE (data ->> i.k)::numeric + i.n \
                         NOT BETWEEN -9223372036854775808 AND 9223372036854775807 END) = 0)"
            ),
            touch: format!("UPDATE {t} SET expires_ms = $1 WHERE id = $2 AND expires_ms > $3"),
            rekey: format!(
                "UPDATE {t} SET id = $1, data = $2::jsonb, user_id = $3, created_ms = $4, \
                   expires_ms = $5 \
                 WHERE id = $6 AND expires_ms > $7 AND user_id IS NOT DISTINCT FROM $8"
            ),
            delete: format!("DELETE FROM {t} WHERE id = $1"),
            delete_expired: format!(
                "DELETE FROM {t} WHERE id IN (\
                   SELECT id FROM {t} WHERE expires_ms <= $1 LIMIT {BATCH} FOR UPDATE SKIP LOCKED)"
            ),
            user_sessions: format!(
                "SELECT id, {COLUMNS} FROM {t} WHERE user_id = $1 AND expires_ms > $2 \
                 ORDER BY created_ms"
            ),
            delete_user: format!(
                "DELETE FROM {t} WHERE user_id = $1 AND id <> $2 AND expires_ms > $3"
            ),
            count: format!("SELECT COUNT(*) FROM {t} WHERE expires_ms > $1"),
        };
        Self { conns, table, sql }
    }

    pub(crate) fn with_table(&self, table: Table) -> Self {
        Self::with_conns(self.conns.clone(), table)
    }

    pub(crate) async fn migrate(&self) -> Result<(), SqlError> {
        let mut conn = self.conns.get().await.map_err(SqlError::Migrate)?;
        let t = self.table.qualified('"');
        let expires = self.table.index('"', "expires_idx");
        let user = self.table.index('"', "user_idx");
        let mut ddl = vec![
            // `CREATE ... IF NOT EXISTS` is not safe against a concurrent twin (it can fail on
            // the catalog's unique index), so instances take turns on an advisory lock.
            "SELECT pg_advisory_xact_lock(736573736973)".to_owned(),
        ];
        if let Some(schema) = &self.table.schema {
            ddl.push(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{}\"",
                schema.as_str()
            ));
        }
        ddl.push(format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
               id TEXT PRIMARY KEY, \
               data JSONB NOT NULL, \
               user_id TEXT, \
               created_ms BIGINT NOT NULL, \
               expires_ms BIGINT NOT NULL)"
        ));
        ddl.push(format!(
            "CREATE INDEX IF NOT EXISTS {expires} ON {t} (expires_ms)"
        ));
        ddl.push(format!(
            "CREATE INDEX IF NOT EXISTS {user} ON {t} (user_id, expires_ms) \
             WHERE user_id IS NOT NULL"
        ));
        // One simple-protocol query: PostgreSQL runs its statements as one transaction, which
        // holds the advisory lock to the end.
        sqlx::Executor::execute(&mut *conn, ddl.join("; ").as_str())
            .await
            .map_err(SqlError::Migrate)?;
        conn.done();
        Ok(())
    }

    crate::shared::conditional_apply!();

    /// Every change set runs as one statement, so any can join a group.
    pub(crate) fn groupable(&self, _: &ChangeSet) -> bool {
        true
    }

    async fn apply_once(
        &self,
        id: &SessionId,
        changes: &ChangeSet,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        let mut conn = self.conns.writer().await.map_err(backend)?;
        let applied = self
            .apply_on(&mut conn, id, changes, now)
            .await?
            .map_err(backend)?;
        conn.done();
        Ok(applied)
    }

    /// The change set's one `UPDATE` on `conn`: whether it matched the row, or the engine's
    /// error.
    async fn apply_on(
        &self,
        conn: &mut sqlx::PgConnection,
        id: &SessionId,
        changes: &ChangeSet,
        now: OffsetDateTime,
    ) -> Result<Result<bool, sqlx::Error>, Error> {
        let removals: Vec<&str> = changes.removals().collect();
        let sets: serde_json::Map<String, serde_json::Value> = changes
            .sets()
            .map(|(k, v)| codec::readable(v).map(|()| (k.to_owned(), v.clone())))
            .collect::<Result<_, _>>()?;
        let sets = serde_json::to_string(&sets).map_err(Error::Encode)?;
        let (increment_keys, steps): (Vec<&str>, Vec<i64>) = changes.increments().unzip();
        let mut absent = Vec::new();
        let mut expected = serde_json::Map::new();
        for (key, value) in changes.guards() {
            match value {
                Some(value) => {
                    expected.insert(key.to_owned(), value.clone());
                }
                None => absent.push(key),
            }
        }
        let expected = serde_json::to_string(&expected).map_err(Error::Encode)?;
        let done = sqlx::query(&self.sql.apply)
            .bind(id.to_string())
            .bind(changes.is_clear())
            .bind(removals)
            .bind(sets)
            .bind(codec::ms(changes.expires_at()))
            .bind(codec::ms(now))
            .bind(increment_keys)
            .bind(steps)
            .bind(expected)
            .bind(absent)
            .execute(conn)
            .await;
        Ok(done.map(|done| done.rows_affected() > 0))
    }

    crate::shared::shared_statements!();
    crate::shared::create_on_conflict!();
    crate::shared::apply_grouped!("BEGIN");
}
