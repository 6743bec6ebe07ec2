//! The SQL session store of [sessionware], on [sqlx]: PostgreSQL (feature `postgres`),
//! MySQL/MariaDB (feature `mysql`) and SQLite (feature `sqlite`, the default: sessions that
//! survive a restart without running a server).
//!
//! ```no_run
//! use sessionware_sql::SqlStore;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Or "postgres://user@host/db", "mysql://user@host/db", "sqlite::memory:".
//! let store = SqlStore::connect("sqlite://sessions.db").await?;
//! store.migrate().await?; // idempotent: call it at every start
//! let cleanup = store.spawn_cleanup(sessionware_core::time::Duration::minutes(10))?;
//! // let app = Router::new()...layer(SessionLayer::new(store.clone()));
//! # drop(cleanup);
//! # Ok(()) }
//! ```
//!
//! One table (default `sessions`; [`SqlStore::with_table`], and in PostgreSQL
//! [`SqlStore::with_schema`]) holds one row per session: `id` (primary key), `data` (a JSON
//! object: `jsonb` in PostgreSQL, `JSON` in MySQL, text in SQLite), `user_id`, `created_ms`
//! and `expires_ms` (milliseconds since the Unix epoch), with indexes on `expires_ms` for
//! cleanup and on `(user_id, expires_ms)` for a user's sessions.
//!
//! Every statement filters on the caller's `now`, so an expired row is never returned and
//! never written to, whether or not cleanup has removed it yet. Changes are applied key by key
//! inside the database with its JSON functions, so concurrent requests that change different
//! keys of one session all survive.
//!
//! A request costs one round trip to read its session (two in MySQL and SQLite when the read
//! also moves the deadline, which the expiry policy throttles), one more to write changes, and
//! none when the handler does not extract the session. sqlx's pool pings every connection it
//! gets back, so the store keeps connections that finished cleanly for its next query instead
//! (up to half the pool's size). Pools this crate builds also skip the ping on acquire; give
//! [`SqlStore::from_pool`] a pool built with `test_before_acquire(false)` for the
//! same.
//!
//! [sessionware]: https://docs.rs/sessionware

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
// With only some engines compiled in, helpers for the others go unused and engine matches
// have a single arm.
#![cfg_attr(
    not(all(feature = "postgres", feature = "mysql", feature = "sqlite")),
    allow(dead_code, irrefutable_let_patterns)
)]

#[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
compile_error!("sessionware-sql needs at least one of the features `postgres`, `mysql`, `sqlite`");

mod cleanup;
mod codec;
mod conns;
mod error;
#[cfg(feature = "mysql")]
mod mysql;
mod names;
#[cfg(feature = "postgres")]
mod pg;
mod shared;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

pub use cleanup::CleanupTask;
pub use error::SqlError;
pub use store::{EnginePool, SqlStore};

/// Rows a cleanup statement deletes at once, so it never holds locks on a huge set.
const BATCH: u32 = 1000;

/// Ids tried by `create` before giving up; a second collision of 128 random bits means the
/// random source is broken, not bad luck.
const MAX_CREATE_TRIES: usize = 4;

fn no_free_id() -> sessionware_core::Error {
    sessionware_core::Error::backend("no free session id after several random draws")
}

/// An id read back from the table: one the store wrote, or the row is corrupt.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
fn stored_id(text: String) -> Result<sessionware_core::SessionId, sessionware_core::Error> {
    text.parse()
        .map_err(|_| sessionware_core::Error::corrupt("id column is not a session id"))
}
