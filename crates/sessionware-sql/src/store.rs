use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sessionware_core::lanes::{self, Batches, Lanes, Queued, Turn};
use sessionware_core::time::OffsetDateTime;
use sessionware_core::{ChangeSet, Clock, Error, Record, SessionId, SessionStore, SystemClock};

use crate::names::{Ident, Table};
use crate::{BATCH, CleanupTask, SqlError};

/// A sqlx pool of an engine this build supports, for [`SqlStore::from_pool`]. Sealed: the
/// engines are the crate's to add.
pub trait EnginePool: sealed::Sealed {
    /// The store on this pool; `owned`: the store opened the pool and is its only user.
    #[doc(hidden)]
    fn into_store(self, owned: bool) -> SqlStore;
}

mod sealed {
    pub trait Sealed {}
}

#[cfg(feature = "postgres")]
impl sealed::Sealed for sqlx::PgPool {}
#[cfg(feature = "postgres")]
impl EnginePool for sqlx::PgPool {
    fn into_store(self, owned: bool) -> SqlStore {
        let conns = crate::conns::Conns::new(self, owned);
        SqlStore::with_engine(Engine::Postgres(crate::pg::Pg::new(conns, default_table())))
    }
}

#[cfg(feature = "mysql")]
impl sealed::Sealed for sqlx::MySqlPool {}
#[cfg(feature = "mysql")]
impl EnginePool for sqlx::MySqlPool {
    fn into_store(self, owned: bool) -> SqlStore {
        let conns = crate::conns::Conns::new(self, owned);
        SqlStore::with_engine(Engine::MySql(crate::mysql::My::new(conns, default_table())))
    }
}

#[cfg(feature = "sqlite")]
impl sealed::Sealed for sqlx::SqlitePool {}
#[cfg(feature = "sqlite")]
impl EnginePool for sqlx::SqlitePool {
    fn into_store(self, owned: bool) -> SqlStore {
        let conns = crate::conns::Conns::with_one_writer(self, owned);
        SqlStore::with_engine(Engine::Sqlite(crate::sqlite::Lite::new(
            conns,
            default_table(),
        )))
    }
}

/// A session store in a SQL database. Cheap to clone: clones share one pool.
///
/// Build it with [`connect`](Self::connect) from a URL, or from a pool the application
/// already has ([`from_pool`](Self::from_pool)); then call [`migrate`](Self::migrate) once at start.
#[derive(Clone)]
pub struct SqlStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    engine: Engine,
    table: Table,
    clock: Arc<dyn Clock>,
    /// Writes queued behind a running write of their session.
    writes: Lanes<Write, Result<bool, Error>>,
}

#[derive(Debug, Clone)]
enum Engine {
    #[cfg(feature = "postgres")]
    Postgres(crate::pg::Pg),
    #[cfg(feature = "mysql")]
    MySql(crate::mysql::My),
    #[cfg(feature = "sqlite")]
    Sqlite(crate::sqlite::Lite),
}

/// Runs `$body` with `$e` bound to whichever engine the store uses.
macro_rules! dispatch {
    ($engine:expr, $e:ident => $body:expr) => {
        match $engine {
            #[cfg(feature = "postgres")]
            Engine::Postgres($e) => $body,
            #[cfg(feature = "mysql")]
            Engine::MySql($e) => $body,
            #[cfg(feature = "sqlite")]
            Engine::Sqlite($e) => $body,
        }
    };
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = dispatch!(&self.inner.engine, _e => std::any::type_name_of_val(_e));
        f.debug_struct("SqlStore")
            .field("engine", &engine.rsplit("::").next().unwrap_or(engine))
            .field("table", &self.inner.table)
            .finish_non_exhaustive()
    }
}

const DEFAULT_TABLE: &str = "sessions";

fn default_table() -> Table {
    Table {
        schema: None,
        name: Ident(DEFAULT_TABLE.to_owned()),
    }
}

/// How many connections a store that opens its own pool keeps, unless told otherwise
/// ([`SqlStoreBuilder::max_connections`]). Writes wait for their commit to reach the disk, and
/// the server flushes the commits in flight together, so writes gain from more connections than
/// the cores (sqlx's default is 10); six instances of 16 fit PostgreSQL's default limit of 100.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// A store that opens its own pool, with the pool's size chosen: [`SqlStore::builder`].
///
/// ```no_run
/// # async fn f() -> Result<(), sessionware_sql::SqlError> {
/// let store = sessionware_sql::SqlStore::builder("postgres://app@db/app")
///     .max_connections(20)
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqlStoreBuilder {
    url: String,
    max_connections: u32,
}

impl SqlStoreBuilder {
    /// The most connections the store opens, and so the most of its queries in flight at once
    /// (default [`DEFAULT_MAX_CONNECTIONS`]; 0 counts as 1). The store keeps every one of
    /// them open between its queries. An in-memory SQLite database always has exactly one.
    ///
    /// Each instance of the application opens its own, so the instances together need that
    /// many times their count of the server's `max_connections` (PostgreSQL's default is 100,
    /// MariaDB's 151), beside what the application itself uses. More connections than the
    /// server has cores rarely speed up reads; writes wait for their commit to reach the
    /// disk, and more of them in flight let the server commit several with one flush.
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Opens the pool and connects to the database (see [`SqlStore::connect`]).
    pub async fn connect(self) -> Result<SqlStore, SqlError> {
        let url = self.url.as_str();
        let scheme = url.split(':').next().unwrap_or(url);
        match scheme {
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(self.max_connections)
                    .test_before_acquire(false)
                    .connect(url)
                    .await
                    .map_err(SqlError::Connect)?;
                Ok(pool.into_store(true))
            }
            #[cfg(feature = "mysql")]
            "mysql" | "mariadb" => {
                let url = match url.strip_prefix("mariadb:") {
                    Some(rest) => format!("mysql:{rest}"),
                    None => url.to_owned(),
                };
                let pool = sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(self.max_connections)
                    .test_before_acquire(false)
                    .connect(&url)
                    .await
                    .map_err(SqlError::Connect)?;
                Ok(pool.into_store(true))
            }
            #[cfg(feature = "sqlite")]
            "sqlite" => Ok(crate::sqlite::pool(url, self.max_connections)
                .await?
                .into_store(true)),
            _ => Err(SqlError::UnsupportedUrl {
                scheme: scheme.to_owned(),
            }),
        }
    }
}

impl SqlStore {
    /// Connects to the database at `url` and builds a pool for it:
    /// `postgres://…`, `mysql://…` (or `mariadb://…`), `sqlite:path` / `sqlite://path`
    /// (the file is created if missing) or `sqlite::memory:`.
    ///
    /// The pool has [`DEFAULT_MAX_CONNECTIONS`] connections ([`builder`](Self::builder)
    /// chooses another size), which the store keeps open between its queries and never pings
    /// before or after one (a dead one fails its query and is replaced), so a request pays
    /// only for its own queries. SQLite files use WAL journaling, so readers do not wait for
    /// the writer.
    pub async fn connect(url: &str) -> Result<Self, SqlError> {
        Self::builder(url).connect().await
    }

    /// A store that opens its own pool, as [`connect`](Self::connect) does, with the pool's
    /// size chosen ([`SqlStoreBuilder::max_connections`]).
    pub fn builder(url: &str) -> SqlStoreBuilder {
        SqlStoreBuilder {
            url: url.to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// A store on a pool the application already has: a `PgPool`, `MySqlPool` or
    /// `SqlitePool`, whichever engines this build has (features `postgres`, `mysql`,
    /// `sqlite`). The store holds at most half of the pool's connections, so the application
    /// always has the rest, and it keeps one between its queries only while another of its
    /// queries waits for it: when the store is not busy, the whole pool is the
    /// application's again (each connection handed back costs sqlx's ping, a round trip the
    /// request does not wait for). On a pool of one connection it borrows that one for each
    /// query.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::SqlitePool::connect("sqlite://sessions.db").await?;
    /// let store = sessionware_sql::SqlStore::from_pool(pool);
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub fn from_pool(pool: impl EnginePool) -> Self {
        pool.into_store(false)
    }

    fn with_engine(engine: Engine) -> Self {
        let lanes = dispatch!(&engine, e => e.write_lanes());
        Self {
            inner: Arc::new(Inner {
                engine,
                table: default_table(),
                clock: Arc::new(SystemClock),
                writes: Lanes::new(lanes),
            }),
        }
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    /// Keeps sessions in table `name` (default `sessions`), a plain identifier.
    pub fn with_table(self, name: &str) -> Result<Self, SqlError> {
        let name = Ident::new(name)?;
        let schema = self.inner.table.schema.clone();
        Ok(self.rebuilt(Table { schema, name }))
    }

    /// Puts the table in PostgreSQL schema `name` ([`migrate`](Self::migrate) creates it).
    /// Other engines have no schemas: this is [`SqlError::SchemaUnsupported`] there.
    pub fn with_schema(self, name: &str) -> Result<Self, SqlError> {
        let schema = Ident::new(name)?;
        if !self.is_postgres() {
            return Err(SqlError::SchemaUnsupported);
        }
        let name = self.inner.table.name.clone();
        Ok(self.rebuilt(Table {
            schema: Some(schema),
            name,
        }))
    }

    /// Takes "now" for [`delete_expired`](Self::delete_expired), the cleanup task and
    /// the store's own calls from `clock` (default: the system clock).
    /// Session methods take the time from their caller, as the store contract says.
    pub fn with_clock(self, clock: impl Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine: self.inner.engine.clone(),
                table: self.inner.table.clone(),
                clock: Arc::new(clock),
                writes: Lanes::new(dispatch!(&self.inner.engine, e => e.write_lanes())),
            }),
        }
    }

    fn is_postgres(&self) -> bool {
        #[cfg(feature = "postgres")]
        if let Engine::Postgres(_) = self.inner.engine {
            return true;
        }
        false
    }

    fn rebuilt(self, table: Table) -> Self {
        let engine = match &self.inner.engine {
            #[cfg(feature = "postgres")]
            Engine::Postgres(e) => Engine::Postgres(e.with_table(table.clone())),
            #[cfg(feature = "mysql")]
            Engine::MySql(e) => Engine::MySql(e.with_table(table.clone())),
            #[cfg(feature = "sqlite")]
            Engine::Sqlite(e) => Engine::Sqlite(e.with_table(table.clone())),
        };
        let lanes = dispatch!(&engine, e => e.write_lanes());
        Self {
            inner: Arc::new(Inner {
                engine,
                table,
                clock: self.inner.clock.clone(),
                writes: Lanes::new(lanes),
            }),
        }
    }

    /// Creates the table and its indexes if they do not exist (and, in PostgreSQL, the
    /// schema). Idempotent, and safe to run from several instances at once.
    pub async fn migrate(&self) -> Result<(), SqlError> {
        dispatch!(&self.inner.engine, e => e.migrate().await)
    }

    /// Deletes every session whose deadline has passed, in batches; returns how many.
    pub async fn delete_expired(&self) -> Result<u64, Error> {
        let now = self.inner.clock.now();
        let mut total = 0;
        loop {
            let n = dispatch!(&self.inner.engine, e => e.delete_expired_batch(now).await)?;
            total += n;
            if n < u64::from(BATCH) {
                return Ok(total);
            }
        }
    }

    /// Starts a task on the current Tokio runtime that runs
    /// [`delete_expired`](Self::delete_expired) every `period`, until the last clone of this
    /// store is dropped or the runtime shuts down.
    pub fn spawn_cleanup(
        &self,
        period: sessionware_core::time::Duration,
    ) -> Result<CleanupTask, SqlError> {
        // A timer needs a period above zero.
        let period = Duration::try_from(period)
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(1));
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SqlError::NoRuntime)?;
        Ok(CleanupTask::spawn(
            &runtime,
            Arc::downgrade(&self.inner),
            period,
            |inner| async move { SqlStore::from_inner(inner).delete_expired().await },
        ))
    }
}

impl SessionStore for SqlStore {
    /// Exact: `SELECT COUNT(*) ... WHERE expires_ms > now`, a range scan of the deadline
    /// index, in time proportional to the live sessions.
    async fn count(&self, now: OffsetDateTime) -> Result<Option<u64>, Error> {
        dispatch!(&self.inner.engine, e => e.count(now).await).map(Some)
    }

    fn name(&self) -> &'static str {
        match &self.inner.engine {
            #[cfg(feature = "postgres")]
            Engine::Postgres(_) => "postgres",
            #[cfg(feature = "mysql")]
            Engine::MySql(_) => "mysql",
            #[cfg(feature = "sqlite")]
            Engine::Sqlite(_) => "sqlite",
        }
    }

    async fn list_user(&self, user: &str, now: OffsetDateTime) -> Result<Vec<Record>, Error> {
        dispatch!(&self.inner.engine, e => e.user_sessions(user, now).await)
    }

    async fn delete_user(
        &self,
        user: &str,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
    ) -> Result<usize, Error> {
        let ended = dispatch!(&self.inner.engine, e => e.delete_user(user, keep, now).await)?;
        Ok(usize::try_from(ended).unwrap_or(usize::MAX))
    }

    async fn create(&self, record: &Record) -> Result<SessionId, Error> {
        dispatch!(&self.inner.engine, e => e.create(record).await)
    }

    async fn load(&self, id: &SessionId, now: OffsetDateTime) -> Result<Option<Record>, Error> {
        dispatch!(&self.inner.engine, e => e.load(id, now).await)
    }

    /// A write that finds its lane busy waits, and then runs with whatever else queued
    /// meanwhile, in one transaction (see `sessionware_core::lanes`).
    async fn apply(
        &self,
        id: &SessionId,
        changes: &ChangeSet,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        let lane = lanes::lane_of(id, self.inner.writes.len());
        let write = || Write {
            id: *id,
            changes: changes.clone(),
            now,
        };
        match lanes::enter(&self.inner, lane, write) {
            Turn::Wait(answer) => answer.await.unwrap_or_else(|| Err(abandoned())),
            Turn::Lead(_leader) => {
                dispatch!(&self.inner.engine, e => e.apply(id, changes, now).await)
            }
        }
    }

    async fn touch(
        &self,
        id: &SessionId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        dispatch!(&self.inner.engine, e => e.touch(id, expires_at, now).await)
    }

    async fn rekey(
        &self,
        old: &SessionId,
        expected_user: Option<&str>,
        record: &Record,
        now: OffsetDateTime,
    ) -> Result<Option<SessionId>, Error> {
        dispatch!(&self.inner.engine, e => e.rekey(old, expected_user, record, now).await)
    }

    async fn delete(&self, id: &SessionId) -> Result<(), Error> {
        dispatch!(&self.inner.engine, e => e.delete(id).await)
    }
}

fn abandoned() -> Error {
    Error::backend("the write queued behind another was not run")
}

/// A write queued behind a running one of its lane.
pub(crate) struct Write {
    id: SessionId,
    changes: ChangeSet,
    now: OffsetDateTime,
}

type Waiting = Queued<Write, Result<bool, Error>>;

impl Batches for Inner {
    type Item = Write;
    type Answer = Result<bool, Error>;

    fn lanes(&self) -> &Lanes<Write, Result<bool, Error>> {
        &self.writes
    }

    /// Runs `queued`: the change sets that can share a transaction as one group, ordered by
    /// session id (a stable sort: a session's writes keep their arrival order), then each
    /// other one alone, in arrival order. Any order is one the requests could have had: all
    /// of them were in flight together, none answered yet. A refused compare-and-set, or a
    /// group the engine rolled back, runs again alone, by the path that explains a refusal.
    async fn run(&self, _lane: usize, queued: Vec<Waiting>) {
        let (mut group, alone): (Vec<Waiting>, Vec<Waiting>) = queued
            .into_iter()
            .partition(|w| dispatch!(&self.engine, e => e.groupable(&w.item.changes)));
        let alone = if group.len() < 2 {
            group.into_iter().chain(alone).collect()
        } else {
            group.sort_by(|a, b| a.item.id.as_bytes().cmp(b.item.id.as_bytes()));
            let changes: Vec<(&SessionId, &ChangeSet, OffsetDateTime)> = group
                .iter()
                .map(|w| (&w.item.id, &w.item.changes, w.item.now))
                .collect();
            let applied = dispatch!(&self.engine, e => e.apply_group(&changes).await);
            for (i, w) in group.into_iter().enumerate() {
                let Write { id, changes, now } = &w.item;
                let answer = match &applied {
                    Ok(Some(applied)) if applied[i] => Ok(true),
                    Ok(Some(_)) if !crate::codec::is_conditional(changes) => Ok(false),
                    Ok(_) => dispatch!(&self.engine, e => e.apply(id, changes, *now).await),
                    // Committed or not, nobody knows: running them again could count an
                    // increment twice.
                    Err(error) => Err(Error::backend(format!("a grouped write failed: {error}"))),
                };
                w.answer(answer);
            }
            alone
        };
        for w in alone {
            let Write { id, changes, now } = &w.item;
            let applied = dispatch!(&self.engine, e => e.apply(id, changes, *now).await);
            w.answer(applied);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>(_: T) {}

    #[test]
    fn futures_are_send() {
        // Only compiled, never run: applications spawn these.
        let run = || async {
            let store = SqlStore::connect("sqlite::memory:").await?;
            send(store.migrate());
            send(store.delete_expired());
            Ok::<_, SqlError>(())
        };
        let _ = run;
    }
}
