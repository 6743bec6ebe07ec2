//! The sessionware quick-start: a counter kept in each visitor's session.
//!
//! ```text
//! cargo run -p counter                 # http://127.0.0.1:3000, sessions in memory
//! PORT=8080 SESSION_KEY=<64 hex digits> SESSION_STORE=memory cargo run -p counter
//! SESSION_KEY=<64 hex digits> SESSION_STORE=redis://127.0.0.1:6379 cargo run -p counter
//! SESSION_STORE=sqlite://counter.db cargo run -p counter       # sessions survive a restart
//! SESSION_STORE=postgres://user@localhost/db cargo run -p counter
//! SESSION_STORE=mysql://user@localhost/db cargo run -p counter
//! ```
//!
//! `SESSION_STORE` is `memory`, a Redis URL (`redis://`, `rediss://` for TLS,
//! `redis-cluster://host:port?node=host:port`, `redis-sentinel://host:port?sentinelServiceName=name`)
//! or a SQL URL (`postgres://`, `mysql://`, `sqlite:`). Instances that share a store and a
//! `SESSION_KEY` share their sessions.
//!
//! - `GET /` counts the visit and answers the new count;
//! - `GET /peek` answers the count and changes nothing;
//! - `GET /health` answers `ok` without touching the session store.

use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::routing::get;
use sessionware::{Error, Key, Session, SessionLayer};
use sessionware_memory::MemoryStore;
use sessionware_redis::RedisStore;
use sessionware_sql::SqlStore;
use tracing_subscriber::EnvFilter;

async fn count(session: Session) -> Result<String, Error> {
    let n: u64 = session.get("count")?.unwrap_or(0);
    session.insert("count", n + 1)?;
    Ok((n + 1).to_string())
}

async fn peek(session: Session) -> Result<String, Error> {
    Ok(session.get::<u64>("count")?.unwrap_or(0).to_string())
}

fn app(sessions: SessionLayer) -> Router {
    Router::new()
        .route("/", get(count))
        .route("/peek", get(peek))
        .route("/health", get(|| async { "ok" }))
        .layer(sessions)
}

/// The signing key from `SESSION_KEY` (hex), or a random one.
fn key() -> Result<Key, String> {
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

/// The store named by `SESSION_STORE`.
async fn sessions() -> Result<SessionLayer, String> {
    let spec = std::env::var("SESSION_STORE").unwrap_or_else(|_| "memory".into());
    let (layer, kind) = match spec.as_str() {
        "memory" => (SessionLayer::new(MemoryStore::new()), "memory"),
        url if is_redis_url(url) => {
            // The error names the store, not the URL: it may carry a password.
            let store = RedisStore::connect(url)
                .await
                .map_err(|e| format!("SESSION_STORE: {e}"))?;
            (SessionLayer::new(store), "redis")
        }
        url if is_sql_url(url) => (SessionLayer::new(sql_store(url).await?), "sql"),
        other => {
            return Err(format!(
                "SESSION_STORE={other:?} is not supported; use `memory`, a Redis URL \
                 (redis://, rediss://, redis-cluster://, redis-sentinel://) or a SQL URL \
                 (postgres://, mysql://, sqlite:)"
            ));
        }
    };
    tracing::info!(store = kind, "session store ready");
    Ok(layer.with_signing_key(key()?))
}

fn is_sql_url(spec: &str) -> bool {
    ["postgres:", "postgresql:", "mysql:", "mariadb:", "sqlite:"]
        .iter()
        .any(|scheme| spec.starts_with(scheme))
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
        .spawn_cleanup(std::time::Duration::from_secs(600))
        .map_err(|e| format!("SESSION_STORE: {e}"))?;
    Ok(store)
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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("counter: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), String> {
    let port = match std::env::var("PORT") {
        Ok(p) => p
            .parse::<u16>()
            .map_err(|_| format!("PORT={p:?} is not a port number"))?,
        Err(_) => 3000,
    };
    let app = app(sessions().await?);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests read this line to find the port.
    println!("counter listening on http://{addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}
