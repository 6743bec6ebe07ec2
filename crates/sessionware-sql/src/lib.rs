#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
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
pub use store::{DEFAULT_MAX_CONNECTIONS, EnginePool, SqlStore, SqlStoreBuilder};

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
