//! The app the HTTP tests run: a counter (by insert, increment or update), a read-only peek, a destroy, and a route that never
//! touches the session.

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use sessionware::{Error, Key, Session, SessionLayer};

async fn count(session: Session) -> Result<String, Error> {
    let n: u64 = session.get("count")?.unwrap_or(0);
    session.insert("count", n + 1)?;
    Ok((n + 1).to_string())
}

async fn increment(session: Session) -> Result<String, Error> {
    Ok(session.increment("count", 1)?.to_string())
}

async fn update(session: Session) -> Result<String, Error> {
    let n = session.update("count", |n: &mut u64| *n += 1)?;
    Ok(n.to_string())
}

async fn peek(session: Session) -> Result<String, Error> {
    Ok(session.get::<u64>("count")?.unwrap_or(0).to_string())
}

async fn set(session: Session, Path(key): Path<String>) -> Result<&'static str, Error> {
    session.insert(key, true)?;
    Ok("set")
}

async fn keys(session: Session) -> String {
    let mut keys = session.keys();
    keys.sort();
    keys.join(",")
}

async fn destroy(session: Session) -> &'static str {
    session.destroy();
    "bye"
}

/// The key every instance of the app shares.
pub(crate) fn key() -> Key {
    Key::from_hex(&"5e6f7a8b".repeat(8)).expect("a valid key")
}

pub(crate) fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/count", get(count))
        .route("/increment", get(increment))
        .route("/update", get(update))
        .route("/peek", get(peek))
        .route("/destroy", get(destroy))
        .route("/set/{key}", get(set))
        .route("/keys", get(keys))
        .route("/health", get(|| async { "ok" }))
        .layer(layer.with_signing_key(key()))
}
