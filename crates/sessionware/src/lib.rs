//! Server-side sessions for [axum] and [tower].
//!
//! Add a [`SessionLayer`] over a store, take a [`Session`] in handlers:
//!
//! ```
//! use axum::{Router, routing::get};
//! use sessionware::{Key, Session, SessionLayer};
//! use sessionware_memory::MemoryStore;
//!
//! async fn count(session: Session) -> Result<String, sessionware::Error> {
//!     let n: u64 = session.get("count")?.unwrap_or(0);
//!     session.insert("count", n + 1)?;
//!     Ok((n + 1).to_string())
//! }
//!
//! # fn main() -> Result<(), sessionware::KeyError> {
//! let key = Key::from_hex(&"2f4c9a1be0d37786".repeat(4))?; // 32 bytes or more, from your secret store
//! let app: Router = Router::new()
//!     .route("/", get(count))
//!     .layer(SessionLayer::new(MemoryStore::new()).with_signing_key(key));
//! # Ok(()) }
//! ```
//!
//! - The client holds only a signed token (the session id and an HMAC-SHA256 tag) in an
//!   `HttpOnly; Secure; SameSite=Lax` cookie; the data stays in the store.
//! - The store is read only by handlers that extract [`Session`], once per request; after the
//!   handler, only what changed is written back, key by key.
//! - A token that fails verification, or names a session the store does not hold (unknown,
//!   expired, destroyed), is never adopted: the request gets a fresh, empty session.
//! - Sessions end at the earlier of an idle timeout and an absolute lifetime
//!   ([`ExpiryPolicy`]).
//! - A store that fails or is slower than the layer's timeout answers `503` on the routes that
//!   use the session; the other routes are unaffected.
//! - Log lines name a session by a short keyed hash ([`LogId`]), never by its id or token.
//!
//! Stores: `sessionware-memory` here; every store implements [`SessionStore`].
//!
//! [tower]: https://docs.rs/tower

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz;
mod config;
mod cookie;
mod csrf;
mod dyn_store;
mod error;
mod flash;
mod header;
mod key;
mod layer;
mod log_id;
mod service;
mod session;
#[cfg(feature = "testing")]
pub mod testing;
mod token;
mod users;
mod write_back;

pub use ::cookie::SameSite;
pub use error::{Error, SessionRejection};
pub use key::{Key, KeyError};
pub use layer::SessionLayer;
pub use log_id::LogId;
pub use service::{ResponseFuture, SessionService};
pub use session::{MAX_DEPTH, Session};
/// The error a [`SessionStore`] reports; a layer's [`Error::Store`] holds one.
pub use sessionware_core::Error as StoreError;
pub use sessionware_core::{
    Change, ChangeSet, Clock, Data, ExpiryPolicy, Loaded, ManualClock, Record, SessionId,
    SessionStore, SystemClock, load_then_touch, time,
};
pub use users::{Device, DeviceId, UserSessions};
