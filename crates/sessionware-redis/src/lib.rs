//! The Redis session store of [sessionware], on [fred]: one node, Redis Cluster, Sentinel,
//! TLS. The store to use when an application runs as more than one instance.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use sessionware::{Key, Session, SessionLayer};
//! use sessionware_redis::RedisStore;
//!
//! async fn count(session: Session) -> Result<String, sessionware::Error> {
//!     let n: u64 = session.get("count")?.unwrap_or(0);
//!     session.insert("count", n + 1)?;
//!     Ok((n + 1).to_string())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder("redis://127.0.0.1:6379")
//!     .prefix("myapp:session:")
//!     .command_timeout(sessionware::time::Duration::milliseconds(500))
//!     .connect()
//!     .await?;
//! let key = Key::from_hex(&"2f4c9a1be0d37786".repeat(4))?; // the same key on every instance
//! let app: Router = Router::new()
//!     .route("/", get(count))
//!     .layer(SessionLayer::new(store).with_signing_key(key));
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! One hash per session, at `<prefix><id>` (prefix `session:` by default), readable with
//! `redis-cli`:
//!
//! ```text
//! > HGETALL session:q3Vx1bV8mH0TtZ8n1uGv2A
//! 1) "created_at"   2) "1763784717000"      Unix milliseconds
//! 3) "expires_at"   4) "1763786517000"      the session's deadline
//! 5) "user"         6) "user-42"            only when the session is bound to a user
//! 7) "d:count"      8) "3"                  one field per data key: "d:" + key, JSON value
//! ```
//!
//! Every write sets the key's TTL to the deadline (`PEXPIREAT`) in the same atomic step, so no
//! session key ever lives without one. The store still compares `expires_at` with the
//! caller's `now` on every call, so a session is gone at its deadline whatever the server's
//! clock says.
//!
//! # Round trips
//!
//! Every store call but `rekey` on a Cluster (below) is one command, atomic on the node that
//! holds the key: a plain `HGETALL` to read, `DEL` to delete, and a Lua script run with
//! `EVALSHA` for every write, which must check that the session is still live in the same
//! step:
//!
//! | request | round trips |
//! | --- | --- |
//! | does not extract the session | 0 |
//! | reads the session | 1 |
//! | reads the session when the policy moves its deadline (at most once per refresh interval) | 2 |
//! | changes an existing session (per key: `HSET`/`HDEL` of only the changed fields) | 2 |
//! | creates a session | 1 (one more per id collision) |
//! | destroys a session | 2 (read, `DEL`) |
//! | signs in or cycles the id ([`rekey`](sessionware_core::SessionStore::rekey)) | 2 (read, the `rekey` script); on a Cluster 3, or 4 when the new record is bound to a user |
//!
//! A server that lost its script cache (restarted, failed over) answers the first `EVALSHA`
//! of each script with `NOSCRIPT`; the store then sends the script once with `EVAL`.
//!
//! Writes check, in the same script, that the session is still live: a change never brings
//! back a session another request destroyed or that expired in between, and two requests
//! that change different keys of one session both survive.
//!
//! A new id (`rekey`, at sign-in) is one script that checks the old session is live and bound
//! to the user the caller saw, writes the new hash, deletes the old key and moves the id in
//! the user's index set, atomically. A Cluster cannot run one script over keys in different
//! slots, so there the store writes the new record and its index entry first, then deletes
//! the old key only if it is still live and bound as seen, and otherwise deletes the copy it
//! made: the client never learns the new id before that check, and a concurrent "log out
//! everywhere" ([`delete_user`](sessionware_core::SessionStore::delete_user)) lists the user's
//! index again after its deletes, so it ends a session moved meanwhile.
//!
//! # Failures
//!
//! Each command has a timeout ([`RedisStoreBuilder::command_timeout`], default one second):
//! a stalled or unreachable Redis yields [`Error::Timeout`](sessionware_core::Error::Timeout)
//! or [`Error::Backend`](sessionware_core::Error::Backend), which the layer answers with
//! `503`. The pool reconnects by itself, so the store recovers when Redis comes back. A key
//! that does not decode (edited by hand, not a hash) is reported as
//! [`Error::Corrupt`](sessionware_core::Error::Corrupt) and left in place.
//!
//! [sessionware]: https://docs.rs/sessionware
//! [fred]: https://docs.rs/fred

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod builder;
mod codec;
mod error;
mod script;
mod store;

pub use builder::RedisStoreBuilder;
pub use error::ConnectError;
pub use store::RedisStore;

/// Re-exported so an application can build a [`Config`](fred::types::config::Config) or a
/// [`Pool`](fred::clients::Pool) with the same fred the store uses.
pub use fred;
