//! The statements every engine runs the same way, written once. sqlx's engines are distinct
//! types with no common trait that is pleasant to bound on, so this is a macro each engine's
//! `impl` invokes; it expects `self.conns`, `self.sql` (with `load`, `touch`, `delete`,
//! `delete_expired`, `user_sessions`, `delete_user`) and a `columns(row, at)` in scope.

macro_rules! shared_statements {
    () => {
        /// The live session `id`.
        pub(crate) async fn load(
            &self,
            id: &SessionId,
            now: OffsetDateTime,
        ) -> Result<Option<Record>, Error> {
            let mut conn = self.conns.get().await.map_err(backend)?;
            let row = sqlx::query(&self.sql.load)
                .bind(id.to_string())
                .bind(codec::ms(now))
                .fetch_optional(&mut *conn)
                .await
                .map_err(backend)?;
            conn.done();
            row.map(|row| columns(&row, 0)?.into_record(*id))
                .transpose()
        }

        /// Moves the deadline of a live session; `?`s: the deadline, the id, now.
        pub(crate) async fn touch(
            &self,
            id: &SessionId,
            expires_at: OffsetDateTime,
            now: OffsetDateTime,
        ) -> Result<bool, Error> {
            let mut conn = self.conns.get().await.map_err(backend)?;
            let done = sqlx::query(&self.sql.touch)
                .bind(codec::ms(expires_at))
                .bind(id.to_string())
                .bind(codec::ms(now))
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
            conn.done();
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn delete(&self, id: &SessionId) -> Result<(), Error> {
            let mut conn = self.conns.get().await.map_err(backend)?;
            sqlx::query(&self.sql.delete)
                .bind(id.to_string())
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
            conn.done();
            Ok(())
        }

        pub(crate) async fn delete_expired_batch(&self, now: OffsetDateTime) -> Result<u64, Error> {
            let mut conn = self.conns.get().await.map_err(backend)?;
            let done = sqlx::query(&self.sql.delete_expired)
                .bind(codec::ms(now))
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
            conn.done();
            Ok(done.rows_affected())
        }

        pub(crate) async fn user_sessions(
            &self,
            user: &str,
            now: OffsetDateTime,
        ) -> Result<Vec<Record>, Error> {
            let mut conn = self.conns.get().await.map_err(backend)?;
            let rows = sqlx::query(&self.sql.user_sessions)
                .bind(user)
                .bind(codec::ms(now))
                .fetch_all(&mut *conn)
                .await
                .map_err(backend)?;
            conn.done();
            rows.iter()
                .map(|row| {
                    let id = crate::stored_id(row.try_get(0).map_err(backend)?)?;
                    columns(row, 1)?.into_record(id)
                })
                .collect()
        }

        /// Deletes the live sessions of `user` but `keep`; expired ones are the cleanup's.
        pub(crate) async fn delete_user(
            &self,
            user: &str,
            keep: Option<&SessionId>,
            now: OffsetDateTime,
        ) -> Result<u64, Error> {
            let mut conn = self.conns.get().await.map_err(backend)?;
            // No id is empty, so "" keeps nothing.
            let keep = keep.map(SessionId::to_string).unwrap_or_default();
            let done = sqlx::query(&self.sql.delete_user)
                .bind(user)
                .bind(keep)
                .bind(codec::ms(now))
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
            conn.done();
            Ok(done.rows_affected())
        }
    };
}

pub(crate) use shared_statements;
