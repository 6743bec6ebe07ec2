//! The statements every engine runs the same way, written once. sqlx's engines are distinct
//! types with no common trait that is pleasant to bound on, so this is a macro each engine's
//! `impl` invokes; it expects `self.conns`, `self.sql` (with `load`, `touch`, `rekey`,
//! `delete`, `delete_expired`, `user_sessions`, `delete_user`, `count`), `Self::DELETE_USER_PASSES` and
//! `codec::columns` in scope.

macro_rules! shared_statements {
    () => {
        /// How many write transactions the store runs at a time (`sessionware_core::lanes`).
        pub(crate) fn write_lanes(&self) -> usize {
            self.conns.write_lanes()
        }

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
            let mut conn = self.conns.writer().await.map_err(backend)?;
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

        /// Live sessions: an exact count over the deadline index, proportional to the live
        /// rows.
        pub(crate) async fn count(&self, now: OffsetDateTime) -> Result<u64, Error> {
            let mut conn = self.conns.get().await.map_err(backend)?;
            let n: i64 = sqlx::query_scalar(&self.sql.count)
                .bind(codec::ms(now))
                .fetch_one(&mut *conn)
                .await
                .map_err(backend)?;
            conn.done();
            Ok(u64::try_from(n).unwrap_or(0))
        }

        pub(crate) async fn delete(&self, id: &SessionId) -> Result<(), Error> {
            let mut conn = self.conns.writer().await.map_err(backend)?;
            sqlx::query(&self.sql.delete)
                .bind(id.to_string())
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
            conn.done();
            Ok(())
        }

        /// Moves the live session `old`, bound to `expected_user`, to a new id: one `UPDATE`
        /// of its row that rewrites the id with everything else (`self.sql.rekey`; `?`s: new
        /// id, data, user, created, expires, old id, now, expected user).
        ///
        /// One statement is atomic on every engine without a transaction: no moment exists at
        /// which both ids load, and a row that a revocation deleted or that expired matches
        /// nothing, so nothing is created. A taken id fails the statement (unique violation),
        /// which changes nothing, and a fresh id is drawn.
        pub(crate) async fn rekey(
            &self,
            old: &SessionId,
            expected_user: Option<&str>,
            record: &Record,
            now: OffsetDateTime,
        ) -> Result<Option<SessionId>, Error> {
            let data = codec::encode(&record.data)?;
            // The session holds its own id: "moving" onto it would leave the old id alive.
            let mut id = if record.id == *old {
                SessionId::generate()?
            } else {
                record.id
            };
            let (mut draws, mut conflicts) = (1, 0);
            let mut conn = self.conns.writer().await.map_err(backend)?;
            loop {
                let done = sqlx::query(&self.sql.rekey)
                    .bind(id.to_string())
                    .bind(&data)
                    .bind(record.user.as_deref())
                    .bind(codec::ms(record.created_at))
                    .bind(codec::ms(record.expires_at))
                    .bind(old.to_string())
                    .bind(codec::ms(now))
                    .bind(expected_user)
                    .execute(&mut *conn)
                    .await;
                match done {
                    Ok(done) => {
                        conn.done();
                        return Ok((done.rows_affected() > 0).then_some(id));
                    }
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        if draws == MAX_CREATE_TRIES {
                            return Err(crate::no_free_id());
                        }
                        draws += 1;
                        id = SessionId::generate()?;
                    }
                    Err(e)
                        if crate::error::is_conflict(&e)
                            && conflicts < crate::error::CONFLICT_RETRIES =>
                    {
                        conflicts += 1;
                    }
                    Err(e) => return Err(backend(e)),
                }
            }
        }

        pub(crate) async fn delete_expired_batch(&self, now: OffsetDateTime) -> Result<u64, Error> {
            let mut conn = self.conns.writer().await.map_err(backend)?;
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
        /// Runs the statement `Self::DELETE_USER_PASSES` times (see the engines for why) and
        /// counts what every pass ended.
        pub(crate) async fn delete_user(
            &self,
            user: &str,
            keep: Option<&SessionId>,
            now: OffsetDateTime,
        ) -> Result<u64, Error> {
            let mut conn = self.conns.writer().await.map_err(backend)?;
            // No id is empty, so "" keeps nothing.
            let keep = keep.map(SessionId::to_string).unwrap_or_default();
            let (mut ended, mut passes, mut conflicts) = (0, 0, 0);
            while passes < Self::DELETE_USER_PASSES {
                let done = sqlx::query(&self.sql.delete_user)
                    .bind(user)
                    .bind(&keep)
                    .bind(codec::ms(now))
                    .execute(&mut *conn)
                    .await;
                match done {
                    Ok(done) => {
                        ended += done.rows_affected();
                        passes += 1;
                    }
                    // A pass that lost a deadlock deleted nothing: run it again.
                    Err(e)
                        if crate::error::is_conflict(&e)
                            && conflicts < crate::error::CONFLICT_RETRIES =>
                    {
                        conflicts += 1;
                    }
                    Err(e) => return Err(backend(e)),
                }
            }
            conn.done();
            Ok(ended)
        }
    };
}

/// `create` for engines with `INSERT ... ON CONFLICT DO NOTHING` (PostgreSQL, SQLite): a taken
/// id inserts no row, and a fresh id is drawn. `self.sql.insert` binds id, data, user,
/// created, expires.
#[allow(unused_macros)] // each serves only some engines; a build may enable one
macro_rules! create_on_conflict {
    () => {
        pub(crate) async fn create(&self, record: &Record) -> Result<SessionId, Error> {
            let data = codec::encode(&record.data)?;
            let mut id = record.id;
            let mut conn = self.conns.writer().await.map_err(backend)?;
            for _ in 0..MAX_CREATE_TRIES {
                let done = sqlx::query(&self.sql.insert)
                    .bind(id.to_string())
                    .bind(&data)
                    .bind(record.user.as_deref())
                    .bind(codec::ms(record.created_at))
                    .bind(codec::ms(record.expires_at))
                    .execute(&mut *conn)
                    .await
                    .map_err(backend)?;
                if done.rows_affected() == 1 {
                    conn.done();
                    return Ok(id);
                }
                id = SessionId::generate()?;
            }
            Err(crate::no_free_id())
        }
    };
}

/// `apply` around one engine's `apply_once` (a conditional `UPDATE`): when it matched no row
/// and the change set has conditions, a load says why (`codec::why_refused`).
macro_rules! conditional_apply {
    () => {
        pub(crate) async fn apply(
            &self,
            id: &SessionId,
            changes: &ChangeSet,
            now: OffsetDateTime,
        ) -> Result<bool, Error> {
            for _ in 0..codec::CONDITIONAL_TRIES {
                if self.apply_once(id, changes, now).await? {
                    return Ok(true);
                }
                if !codec::is_conditional(changes) {
                    return Ok(false);
                }
                if let Some(live) = codec::why_refused(self.load(id, now).await?, changes)? {
                    return Ok(live);
                }
            }
            Err(Error::backend(
                "the session kept changing between a refused write and the load after it",
            ))
        }
    };
}

/// `apply` for engines whose JSON functions take a path (MySQL, SQLite): one `UPDATE` that
/// removes and sets the listed keys inside the stored object, built per shape (how many keys
/// set and removed) so sqlx keeps each shape prepared. Keys no path can name go through
/// `apply_locked`. The arguments spell the engine's functions: the empty object, remove, set,
/// and a parameter read as a JSON value rather than a JSON string.
///
/// Guards and increments become conditions of the same `UPDATE` (`holds`, `absent`,
/// `integer`, each binding the path first), and an increment's value `sum` binds the path and
/// the step; the `?`s of each are listed where the statement is built.
#[allow(unused_macros)] // each serves only some engines; a build may enable one
macro_rules! apply_by_path {
    (
        db: $db:ty,
        empty: $empty:literal, remove: $remove:literal, set: $set:literal, value: $value:literal,
        holds: $holds:literal, absent: $absent:literal, integer: $integer:literal,
        sum: $sum:literal
    ) => {
        crate::shared::conditional_apply!();

        /// Whether `changes` can run as one statement among others in a transaction: every
        /// key must be one a JSON path can name.
        pub(crate) fn groupable(&self, changes: &ChangeSet) -> bool {
            changes.keys().all(|(k, _)| codec::path_safe(k))
        }

        async fn apply_once(
            &self,
            id: &SessionId,
            changes: &ChangeSet,
            now: OffsetDateTime,
        ) -> Result<bool, Error> {
            if !self.groupable(changes) {
                return self.apply_in_transaction(id, changes, now).await;
            }
            let mut conn = self.conns.writer().await.map_err(backend)?;
            // InnoDB can pick one of several concurrent updates of a row as a deadlock victim
            // and roll it back whole, so running it again applies it once.
            let mut conflicts = 0;
            let applied = loop {
                match self.apply_on(&mut *conn, id, changes, now).await? {
                    Ok(applied) => break applied,
                    Err(e)
                        if crate::error::is_conflict(&e)
                            && conflicts < crate::error::CONFLICT_RETRIES =>
                    {
                        conflicts += 1;
                    }
                    Err(e) => return Err(backend(e)),
                }
            };
            conn.done();
            Ok(applied)
        }

        /// The change set's one `UPDATE` on `conn`: whether it matched the row, or the
        /// engine's error for the caller to judge (a deadlock victim runs again).
        async fn apply_on(
            &self,
            conn: &mut <$db as sqlx::Database>::Connection,
            id: &SessionId,
            changes: &ChangeSet,
            now: OffsetDateTime,
        ) -> Result<Result<bool, sqlx::Error>, Error> {
            // Built per shape (how many keys set and removed); sqlx keeps each shape prepared.
            let mut data = if changes.is_clear() {
                $empty.to_owned()
            } else {
                "data".to_owned()
            };
            let mut params: Vec<codec::Param> = Vec::new();
            // Nested calls of at most KEYS_PER_CALL keys each, still one statement: SQLite caps
            // a function at 127 arguments, so one `json_set` of 64 keys or one `json_remove` of
            // 127 would fail, and the session with them. Each call applies its keys to what the
            // inner ones produced, so the result is the same as one call's.
            let removals: Vec<&str> = changes.removals().collect();
            for chunk in removals.chunks(codec::KEYS_PER_CALL) {
                data = format!(concat!($remove, "({}{})"), data, ", ?".repeat(chunk.len()));
            }
            params.extend(removals.iter().map(|k| codec::Param::Text(codec::path(k))));
            let sets: Vec<(&str, &serde_json::Value)> = changes.sets().collect();
            for chunk in sets.chunks(codec::KEYS_PER_CALL) {
                let pair = concat!(", ?, ", $value);
                data = format!(concat!($set, "({}{})"), data, pair.repeat(chunk.len()));
            }
            for (k, v) in sets {
                params.push(codec::Param::Text(codec::path(k)));
                params.push(codec::Param::Text(codec::value(v)?));
            }
            // `?`s of `sum`: the path, the step; after a clear the step alone is the value.
            let increments: Vec<(&str, i64)> = changes.increments().collect();
            for chunk in increments.chunks(codec::KEYS_PER_CALL) {
                let pair = if changes.is_clear() {
                    ", ?, ?".to_owned()
                } else {
                    concat!(", ?, ", $sum).to_owned()
                };
                data = format!(concat!($set, "({}{})"), data, pair.repeat(chunk.len()));
            }
            for &(k, by) in &increments {
                params.push(codec::Param::Text(codec::path(k)));
                if !changes.is_clear() {
                    params.push(codec::Param::Text(codec::path(k)));
                }
                params.push(codec::Param::Int(by));
            }
            let mut conditions = String::new();
            let mut condition_params = Vec::new();
            // `?`s of `holds`: the path, the expected JSON; of `absent`: the path.
            for (k, expected) in changes.guards() {
                condition_params.push(codec::Param::Text(codec::path(k)));
                match expected {
                    Some(v) => {
                        conditions.push_str(concat!(" AND ", $holds));
                        condition_params.push(codec::Param::Text(codec::value(v)?));
                    }
                    None => conditions.push_str(concat!(" AND ", $absent)),
                }
            }
            // `?`s of `integer`: the path three times, the lowest and highest it may be. After a
            // clear every increment counts from 0 and cannot overflow.
            if !changes.is_clear() {
                for &(k, by) in &increments {
                    conditions.push_str(concat!(" AND ", $integer));
                    let (low, high) = codec::addable(by);
                    for _ in 0..3 {
                        condition_params.push(codec::Param::Text(codec::path(k)));
                    }
                    condition_params.extend([codec::Param::Int(low), codec::Param::Int(high)]);
                }
            }
            let sql = format!(
                "UPDATE {} SET data = {data}, expires_ms = ? \
                 WHERE id = ? AND expires_ms > ?{conditions}",
                self.t,
            );
            let mut query = sqlx::query(&sql);
            for p in params {
                query = p.bind(query);
            }
            query = query
                .bind(codec::ms(changes.expires_at()))
                .bind(id.to_string())
                .bind(codec::ms(now));
            for p in condition_params {
                query = p.bind(query);
            }
            // MySQL: sqlx connects with CLIENT_FOUND_ROWS, so a row that matched counts even when
            // the update left it as it was.
            Ok(query
                .execute(conn)
                .await
                .map(|done| done.rows_affected() > 0))
        }
    };
}

/// The change set applied in Rust inside a transaction, for keys no JSON path can name. `$begin`
/// is the statement that opens it and takes the row (MySQL: `BEGIN`, with `self.sql.lock`
/// selecting `FOR UPDATE`) or the database (SQLite: `BEGIN IMMEDIATE`, so no other writer slips
/// in between the read and the write, and no reader-to-writer upgrade can deadlock).
#[allow(unused_macros)] // each serves only some engines; a build may enable one
macro_rules! apply_locked {
    ($begin:literal) => {
        /// For keys no JSON path can name: lock, apply in Rust, write it back.
        async fn apply_in_transaction(
            &self,
            id: &SessionId,
            changes: &ChangeSet,
            now: OffsetDateTime,
        ) -> Result<bool, Error> {
            let mut conn = self.conns.writer().await.map_err(backend)?;
            let mut tx = sqlx::Connection::begin_with(&mut *conn, $begin)
                .await
                .map_err(backend)?;
            let row = sqlx::query(&self.sql.lock)
                .bind(id.to_string())
                .bind(codec::ms(now))
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
            let Some(row) = row else {
                return Ok(false); // dropping `tx` rolls back
            };
            let mut data = codec::decode(&row.try_get::<String, _>(0).map_err(backend)?)?;
            changes.apply_to(&mut data)?; // dropping `tx` rolls back
            let sql = format!(
                "UPDATE {} SET data = ?, expires_ms = ? WHERE id = ?",
                self.t
            );
            sqlx::query(&sql)
                .bind(codec::encode(&data)?)
                .bind(codec::ms(changes.expires_at()))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
            conn.done();
            Ok(true)
        }
    };
}

/// Change sets applied in one transaction (`$begin` opens it), each by the engine's
/// `apply_on` in the order given: one commit for all of them, where each alone would wait for
/// its own. Answers, per change set, whether its `UPDATE` matched its row; `None` when one of
/// them failed, which rolled them all back (the caller then applies them one by one, each to
/// its own answer). An error is one whose outcome is unknown (the commit's), or that no
/// statement ran. The caller orders the group by session id, so that transactions that lock
/// several rows lock them in one order and cannot deadlock each other.
#[allow(unused_macros)] // each serves only some engines; a build may enable one
macro_rules! apply_grouped {
    ($begin:literal) => {
        pub(crate) async fn apply_group(
            &self,
            group: &[(&SessionId, &ChangeSet, OffsetDateTime)],
        ) -> Result<Option<Vec<bool>>, Error> {
            let mut conn = self.conns.writer().await.map_err(backend)?;
            let mut tx = sqlx::Connection::begin_with(&mut *conn, $begin)
                .await
                .map_err(backend)?;
            let mut applied = Vec::with_capacity(group.len());
            for &(id, changes, now) in group {
                match self.apply_on(&mut *tx, id, changes, now).await {
                    Ok(Ok(matched)) => applied.push(matched),
                    // Dropping `tx` rolls back; the connection goes back to the pool to be
                    // tested.
                    Ok(Err(_)) | Err(_) => return Ok(None),
                }
            }
            tx.commit().await.map_err(backend)?;
            conn.done();
            Ok(Some(applied))
        }
    };
}

#[allow(unused_imports)] // likewise
pub(crate) use {
    apply_by_path, apply_grouped, apply_locked, conditional_apply, create_on_conflict,
    shared_statements,
};
