//! The servers under test. Every one answers the same two routes on the same session key:
//! `GET /read` (the count, inserting 0 when missing) and `GET /write` (add 1 by reading the
//! count and inserting the next, a read-modify-write); sessionware's also `GET /increment`
//! (add 1 with `Session::increment`, the store's own atomic step).

use axum::Router;
use axum::routing::get;
use sessionware::{Key, Session, SessionLayer};

/// A system the benchmark can start, by the name used on the command line and in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum System {
    Bare,
    SessionwareMemory,
    SessionwareRedis,
    SessionwarePostgres,
    /// The PostgreSQL store on an application's pool (`SqlStore::from_pool`).
    SessionwarePostgresAppPool,
    SessionwareSqlite,
    SessionwareMariadb,
    /// The encrypted cookie store: no server-side store at all.
    SessionwareCookie,
    /// The memory store with every value encrypted at rest.
    SessionwareMemoryAtRest,
    /// The Redis store with every value encrypted at rest.
    SessionwareRedisAtRest,
    TowerSessionsMemory,
    TowerSessionsRedis,
    TowerSessionsPostgres,
    TowerSessionsSqlite,
    TowerSessionsMysql,
}

impl System {
    pub(crate) const ALL: &[System] = &[
        System::Bare,
        System::SessionwareMemory,
        System::SessionwareRedis,
        System::SessionwarePostgres,
        System::SessionwarePostgresAppPool,
        System::SessionwareSqlite,
        System::SessionwareMariadb,
        System::SessionwareCookie,
        System::SessionwareMemoryAtRest,
        System::SessionwareRedisAtRest,
        System::TowerSessionsMemory,
        System::TowerSessionsRedis,
        System::TowerSessionsPostgres,
        System::TowerSessionsSqlite,
        System::TowerSessionsMysql,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            System::Bare => "axum (no sessions)",
            System::SessionwareMemory => "sessionware memory",
            System::SessionwareRedis => "sessionware redis",
            System::SessionwarePostgres => "sessionware postgres",
            System::SessionwarePostgresAppPool => "sessionware postgres, application's pool",
            System::SessionwareSqlite => "sessionware sqlite",
            System::SessionwareMariadb => "sessionware mariadb",
            System::SessionwareCookie => "sessionware cookie store",
            System::SessionwareMemoryAtRest => "sessionware memory, encrypted at rest",
            System::SessionwareRedisAtRest => "sessionware redis, encrypted at rest",
            System::TowerSessionsMemory => "tower-sessions memory",
            System::TowerSessionsRedis => "tower-sessions redis",
            System::TowerSessionsPostgres => "tower-sessions postgres",
            System::TowerSessionsSqlite => "tower-sessions sqlite",
            System::TowerSessionsMysql => "tower-sessions mariadb",
        }
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            System::Bare => "bare",
            System::SessionwareMemory => "sessionware-memory",
            System::SessionwareRedis => "sessionware-redis",
            System::SessionwarePostgres => "sessionware-postgres",
            System::SessionwarePostgresAppPool => "sessionware-postgres-app-pool",
            System::SessionwareSqlite => "sessionware-sqlite",
            System::SessionwareMariadb => "sessionware-mariadb",
            System::SessionwareCookie => "sessionware-cookie",
            System::SessionwareMemoryAtRest => "sessionware-memory-at-rest",
            System::SessionwareRedisAtRest => "sessionware-redis-at-rest",
            System::TowerSessionsMemory => "tower-sessions-memory",
            System::TowerSessionsRedis => "tower-sessions-redis",
            System::TowerSessionsPostgres => "tower-sessions-postgres",
            System::TowerSessionsSqlite => "tower-sessions-sqlite",
            System::TowerSessionsMysql => "tower-sessions-mariadb",
        }
    }

    pub(crate) fn from_slug(slug: &str) -> Option<System> {
        System::ALL.iter().copied().find(|s| s.slug() == slug)
    }

    /// The system ours is compared with, for the ratio column.
    pub(crate) fn peer(self) -> Option<System> {
        match self {
            System::SessionwareMemory | System::SessionwareMemoryAtRest => {
                Some(System::TowerSessionsMemory)
            }
            System::SessionwareRedis | System::SessionwareRedisAtRest => {
                Some(System::TowerSessionsRedis)
            }
            System::SessionwarePostgres | System::SessionwarePostgresAppPool => {
                Some(System::TowerSessionsPostgres)
            }
            System::SessionwareSqlite => Some(System::TowerSessionsSqlite),
            System::SessionwareMariadb => Some(System::TowerSessionsMysql),
            _ => None,
        }
    }

    pub(crate) fn uses_redis(self) -> bool {
        matches!(
            self,
            System::TowerSessionsRedis | System::SessionwareRedis | System::SessionwareRedisAtRest
        )
    }

    /// The commands this system sends to Redis itself; the others Redis counts ran inside its
    /// scripts. `None`: it runs no scripts, every command counted was sent.
    pub(crate) fn redis_top_level(self) -> Option<&'static [&'static str]> {
        match self {
            System::SessionwareRedis | System::SessionwareRedisAtRest => {
                Some(&["hgetall", "evalsha", "eval", "del", "smembers", "srem"])
            }
            _ => None,
        }
    }

    pub(crate) fn has_sessions(self) -> bool {
        self != System::Bare
    }

    fn is_peer(self) -> bool {
        matches!(
            self,
            System::TowerSessionsMemory
                | System::TowerSessionsRedis
                | System::TowerSessionsPostgres
                | System::TowerSessionsSqlite
                | System::TowerSessionsMysql
        )
    }

    /// Whether the system has `GET /increment`.
    pub(crate) fn has_increment(self) -> bool {
        self.has_sessions() && !self.is_peer()
    }

    pub(crate) async fn app(self, urls: &Urls) -> Result<Router, String> {
        let redis_url = urls.redis.as_str();
        Ok(match self {
            System::Bare => bare(),
            System::SessionwareMemory => {
                sessionware(SessionLayer::new(sessionware_memory::MemoryStore::new()))
            }
            System::SessionwareRedis => {
                let store = sessionware_redis::RedisStore::builder(redis_url)
                    .prefix("bench:session:")
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
                sessionware(SessionLayer::new(store))
            }
            System::SessionwarePostgres => {
                sessionware(SessionLayer::new(sql(&urls.postgres).await?))
            }
            // An application's pool of 32, of which the store uses at most half: the 16 its
            // own pool would have.
            System::SessionwarePostgresAppPool => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(32)
                    .connect(&urls.postgres)
                    .await
                    .map_err(|e| e.to_string())?;
                let store = sessionware_sql::SqlStore::from_pool(pool)
                    .with_table("bench_sessions")
                    .map_err(|e| e.to_string())?;
                store.migrate().await.map_err(|e| e.to_string())?;
                sessionware(SessionLayer::new(store))
            }
            System::SessionwareSqlite => sessionware(SessionLayer::new(sql(&urls.sqlite).await?)),
            System::SessionwareMariadb => sessionware(SessionLayer::new(sql(&urls.mariadb).await?)),
            System::SessionwareCookie => {
                sessionware(SessionLayer::new(sessionware::CookieStore::new()))
            }
            System::SessionwareMemoryAtRest => sessionware(
                SessionLayer::new(sessionware_memory::MemoryStore::new())
                    .with_encryption_at_rest(true),
            ),
            System::SessionwareRedisAtRest => {
                let store = sessionware_redis::RedisStore::builder(redis_url)
                    .prefix("bench:session-at-rest:")
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
                sessionware(SessionLayer::new(store).with_encryption_at_rest(true))
            }
            System::TowerSessionsMemory => {
                tower_sessions_app(tower_sessions::MemoryStore::default())
            }
            System::TowerSessionsRedis => {
                use tower_sessions_redis_store::fred::prelude::*;
                let config = Config::from_url(redis_url).map_err(|e| e.to_string())?;
                let pool = Pool::new(config, None, None, None, 4).map_err(|e| e.to_string())?;
                pool.init().await.map_err(|e| e.to_string())?;
                tower_sessions_app(tower_sessions_redis_store::RedisStore::new(pool))
            }
            // The peer's SQL stores as their README sets them up: the default sqlx pool and
            // the store's own `migrate()`.
            System::TowerSessionsPostgres => {
                let pool = sqlx::PgPool::connect(&urls.postgres)
                    .await
                    .map_err(|e| e.to_string())?;
                let store = tower_sessions_sqlx_store::PostgresStore::new(pool);
                store.migrate().await.map_err(|e| e.to_string())?;
                tower_sessions_app(store)
            }
            System::TowerSessionsMysql => {
                let pool = sqlx::MySqlPool::connect(&urls.mariadb)
                    .await
                    .map_err(|e| e.to_string())?;
                let store = tower_sessions_sqlx_store::MySqlStore::new(pool);
                store.migrate().await.map_err(|e| e.to_string())?;
                tower_sessions_app(store)
            }
            System::TowerSessionsSqlite => {
                // Its own file next to ours, in WAL mode as ours is, so neither waits for the
                // other's writer and both readers run beside their writer.
                let options: sqlx::sqlite::SqliteConnectOptions = peer_sqlite_url(&urls.sqlite)
                    .parse()
                    .map_err(|e: sqlx::Error| e.to_string())?;
                let options = options
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
                let pool = sqlx::SqlitePool::connect_with(options)
                    .await
                    .map_err(|e| e.to_string())?;
                let store = tower_sessions_sqlx_store::SqliteStore::new(pool);
                store.migrate().await.map_err(|e| e.to_string())?;
                tower_sessions_app(store)
            }
        })
    }
}

/// Where the servers' stores are.
#[derive(Debug, Clone)]
pub(crate) struct Urls {
    pub(crate) redis: String,
    pub(crate) postgres: String,
    pub(crate) sqlite: String,
    pub(crate) mariadb: String,
}

/// The peer's SQLite file: ours with `-peer` before the extension.
fn peer_sqlite_url(url: &str) -> String {
    match url.strip_suffix(".db") {
        Some(stem) => format!("{stem}-peer.db"),
        None => format!("{url}-peer"),
    }
}

/// A migrated SQL store in a table of the benchmark's own.
async fn sql(url: &str) -> Result<sessionware_sql::SqlStore, String> {
    let store = sessionware_sql::SqlStore::connect(url)
        .await
        .map_err(|e| e.to_string())?
        .with_table("bench_sessions")
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(store)
}

/// The floor: the same routes with a counter that lives nowhere.
fn bare() -> Router {
    Router::new()
        .route("/read", get(|| async { "0" }))
        .route("/write", get(|| async { "1" }))
}

fn sessionware(layer: SessionLayer) -> Router {
    async fn read(session: Session) -> Result<String, sessionware::Error> {
        let n = match session.get::<u64>("count")? {
            Some(n) => n,
            None => {
                session.insert("count", 0u64)?;
                0
            }
        };
        Ok(n.to_string())
    }
    async fn write(session: Session) -> Result<String, sessionware::Error> {
        let n = session.get::<u64>("count")?.unwrap_or(0) + 1;
        session.insert("count", n)?;
        Ok(n.to_string())
    }
    async fn increment(session: Session) -> Result<String, sessionware::Error> {
        Ok(session.increment("count", 1)?.to_string())
    }
    let key = Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 7 ^ i as u8))
        .unwrap_or_else(|_| unreachable!("32 bytes is a key"));
    Router::new()
        .route("/read", get(read))
        .route("/write", get(write))
        .route("/increment", get(increment))
        .layer(layer.with_signing_key(key))
}

fn tower_sessions_app<S>(store: S) -> Router
where
    S: tower_sessions::SessionStore + Clone,
{
    use tower_sessions::{Session, SessionManagerLayer};
    async fn read(session: Session) -> Result<String, http::StatusCode> {
        let err = |_| http::StatusCode::INTERNAL_SERVER_ERROR;
        let n = match session.get::<u64>("count").await.map_err(err)? {
            Some(n) => n,
            None => {
                session.insert("count", 0u64).await.map_err(err)?;
                0
            }
        };
        Ok(n.to_string())
    }
    async fn write(session: Session) -> Result<String, http::StatusCode> {
        let err = |_| http::StatusCode::INTERNAL_SERVER_ERROR;
        let n = session.get::<u64>("count").await.map_err(err)?.unwrap_or(0) + 1;
        session.insert("count", n).await.map_err(err)?;
        Ok(n.to_string())
    }
    Router::new()
        .route("/read", get(read))
        .route("/write", get(write))
        .layer(SessionManagerLayer::new(store))
}
