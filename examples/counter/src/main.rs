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
//! Instances that share a store and a `SESSION_KEY` share their sessions.
//!
//! - `GET /` counts the visit and answers the new count;
//! - `GET /peek` answers the count and changes nothing;
//! - `GET /health` answers `ok` without touching the session store.

use axum::Router;
use axum::routing::get;
use sessionware::{Error, Session, SessionLayer};

/// `increment` rather than `get` then `insert`: the store adds 1 itself, so requests of one
/// visitor running at once (two tabs) each count, and the answer is this request's count.
async fn count(session: Session) -> Result<String, Error> {
    Ok(session.increment("count", 1)?.to_string())
}

async fn peek(session: Session) -> Result<String, Error> {
    Ok(session.get::<u64>("count")?.unwrap_or(0).to_string())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    example_support::init_tracing();
    let result = async {
        // The store and the key come from the environment (SESSION_STORE, SESSION_KEY); the
        // layer is the library's whole set-up: the defaults are the secure ones.
        let store = example_support::store_from_env("memory").await?;
        let sessions = SessionLayer::new(store).with_signing_key(example_support::signing_key()?);
        let app = Router::new()
            .route("/", get(count))
            .route("/peek", get(peek))
            .route("/health", get(|| async { "ok" }))
            .layer(sessions);
        example_support::serve("counter", app).await
    };
    example_support::exit_code("counter", result.await)
}
