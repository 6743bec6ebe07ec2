//! What the example servers share, so each example shows only its own routes:
//!
//! - `SESSION_STORE`: `memory`, a Redis URL (`redis://`, `rediss://`, `redis-cluster://`,
//!   `redis-sentinel://`) or a SQL URL (`postgres://`, `mysql://`, `sqlite:`);
//! - `SESSION_KEY`: the signing key, 64 hex digits or more (random, with a warning, if unset);
//! - `PORT`: the port on 127.0.0.1 (0 picks a free one).
//!
//! Bad values are errors that name the variable; `main` exits with status 2 on them.

use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use sessionware::time::OffsetDateTime;
use sessionware::{
    ChangeSet, ExpiryPolicy, Key, Loaded, Record, SessionId, SessionLayer, SessionStore, StoreError,
};
use sessionware_memory::MemoryStore;
use sessionware_redis::RedisStore;
use sessionware_sql::SqlStore;
use tracing_subscriber::EnvFilter;

/// Logs to stderr, `info` unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
}

/// The store `SESSION_STORE` names (`default` when unset), connected and ready: one of the
/// three store crates, chosen at run time.
pub async fn store_from_env(default: &str) -> Result<AnyStore, String> {
    let spec = std::env::var("SESSION_STORE").unwrap_or_else(|_| default.to_owned());
    let store = match spec.as_str() {
        "memory" => AnyStore::Memory(MemoryStore::new()),
        url if is_redis_url(url) => {
            // Errors name the store, never the URL: it may carry a password.
            let store = RedisStore::connect(url)
                .await
                .map_err(|e| format!("SESSION_STORE: {e}"))?;
            AnyStore::Redis(store)
        }
        url if is_sql_url(url) => AnyStore::Sql(sql_store(url).await?),
        other => {
            return Err(format!(
                "SESSION_STORE={other:?} is not supported; use `memory`, a Redis URL \
                 (redis://, rediss://, redis-cluster://, redis-sentinel://) or a SQL URL \
                 (postgres://, mysql://, sqlite:)"
            ));
        }
    };
    tracing::info!(store = store.kind(), "session store ready");
    Ok(store)
}

/// A session layer on the store from [`store_from_env`], signed with the key from
/// [`signing_key`].
pub async fn session_layer(default: &str) -> Result<SessionLayer, String> {
    let store = store_from_env(default).await?;
    Ok(SessionLayer::new(store).with_signing_key(signing_key()?))
}

/// Whichever store `SESSION_STORE` named. An application picks one store type at compile
/// time; the examples pick at run time, so they pass every call on to the one they hold.
#[derive(Clone)]
pub enum AnyStore {
    /// `SESSION_STORE=memory`
    Memory(MemoryStore),
    /// a Redis URL
    Redis(RedisStore),
    /// a SQL URL
    Sql(SqlStore),
}

impl AnyStore {
    fn kind(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
            Self::Sql(_) => "sql",
        }
    }
}

macro_rules! each {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Memory($store) => $call.await,
            AnyStore::Redis($store) => $call.await,
            AnyStore::Sql($store) => $call.await,
        }
    };
}

impl SessionStore for AnyStore {
    fn name(&self) -> &'static str {
        match self {
            Self::Memory(s) => s.name(),
            Self::Redis(s) => s.name(),
            Self::Sql(s) => s.name(),
        }
    }
    async fn count(&self, now: OffsetDateTime) -> Result<Option<u64>, StoreError> {
        each!(self, s => s.count(now))
    }
    async fn create(&self, record: &Record) -> Result<SessionId, StoreError> {
        each!(self, s => s.create(record))
    }
    async fn load(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<Record>, StoreError> {
        each!(self, s => s.load(id, now))
    }
    async fn load_refreshed(
        &self,
        id: &SessionId,
        policy: &ExpiryPolicy,
        now: OffsetDateTime,
    ) -> Result<Option<Loaded>, StoreError> {
        each!(self, s => s.load_refreshed(id, policy, now))
    }
    async fn apply(
        &self,
        id: &SessionId,
        changes: &ChangeSet,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        each!(self, s => s.apply(id, changes, now))
    }
    async fn touch(
        &self,
        id: &SessionId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        each!(self, s => s.touch(id, expires_at, now))
    }
    async fn rekey(
        &self,
        old: &SessionId,
        expected_user: Option<&str>,
        record: &Record,
        now: OffsetDateTime,
    ) -> Result<Option<SessionId>, StoreError> {
        each!(self, s => s.rekey(old, expected_user, record, now))
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        each!(self, s => s.delete(id))
    }
    async fn list_user(&self, user: &str, now: OffsetDateTime) -> Result<Vec<Record>, StoreError> {
        each!(self, s => s.list_user(user, now))
    }
    async fn delete_user(
        &self,
        user: &str,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        each!(self, s => s.delete_user(user, keep, now))
    }
}

/// The signing key from `SESSION_KEY` (hex), or a random one.
pub fn signing_key() -> Result<Key, String> {
    match std::env::var("SESSION_KEY") {
        Ok(hex) => Key::from_hex(&hex).map_err(|e| format!("SESSION_KEY: {e}")),
        Err(_) => {
            tracing::warn!(
                "SESSION_KEY is not set: using a random key, so sessions end with this process \
                 (set 64 hex digits, e.g. from `openssl rand -hex 32`)"
            );
            Key::generate().map_err(|e| e.to_string())
        }
    }
}

fn is_sql_url(spec: &str) -> bool {
    ["postgres:", "postgresql:", "mysql:", "mariadb:", "sqlite:"]
        .iter()
        .any(|scheme| spec.starts_with(scheme))
}

fn is_redis_url(spec: &str) -> bool {
    let scheme = spec.split_once("://").map_or("", |(scheme, _)| scheme);
    ["redis", "rediss", "valkey", "valkeys"].iter().any(|base| {
        scheme == *base
            || scheme
                .strip_prefix(base)
                .is_some_and(|rest| rest.starts_with('-'))
    })
}

/// A SQL store with its table in place and expired sessions swept every ten minutes.
async fn sql_store(url: &str) -> Result<SqlStore, String> {
    let store = SqlStore::connect(url)
        .await
        .map_err(|e| format!("SESSION_STORE: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("SESSION_STORE: {e}"))?;
    store
        .spawn_cleanup(sessionware::time::Duration::minutes(10))
        .map_err(|e| format!("SESSION_STORE: {e}"))?;
    Ok(store)
}

/// Serves `app` on 127.0.0.1:`PORT` (default 3000) until Ctrl-C, first printing
/// `<name> listening on http://<addr>` on stdout (tests read it to find the port). Handlers
/// can see the client's address (`ConnectInfo`).
pub async fn serve(name: &str, app: Router) -> Result<(), String> {
    let port = match std::env::var("PORT") {
        Ok(p) => p
            .parse::<u16>()
            .map_err(|_| format!("PORT={p:?} is not a port number"))?,
        Err(_) => 3000,
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("{name} listening on http://{addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| e.to_string())
}

/// Runs `main`'s body and turns an error into a message and exit status 2.
pub fn exit_code(name: &str, result: Result<(), String>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
