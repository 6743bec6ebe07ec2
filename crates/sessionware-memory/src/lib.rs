//! The in-process session store of [sessionware]: no server, nothing survives a restart.
//!
//! ```
//! use sessionware_memory::MemoryStore;
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = MemoryStore::builder()
//!     .capacity(100_000)
//!     .sweep_interval(sessionware_core::time::Duration::seconds(30))
//!     .build();
//! assert_eq!(store.len(), 0);
//! # }
//! ```
//!
//! Sessions live in shards, each behind its own lock, so concurrent requests rarely wait on
//! each other. The store holds at most [`capacity`](MemoryStoreBuilder::capacity) sessions;
//! creating one more when it is full first drops the expired sessions of the shard the new
//! one lands in; if there are none, it evicts that shard's session with the earliest deadline,
//! which under an idle timeout is the one used least recently. (An empty shard passes the
//! eviction on to the next shard.) Eviction looks at one shard, not the whole store, so it
//! stays cheap at a million sessions: the evicted session is among the oldest, not always the
//! very oldest.
//!
//! Sessions bound to a user are also indexed by user (a second, smaller sharded map), so
//! listing or revoking a user's sessions looks at that user's sessions only.
//!
//! Expired sessions are never returned. A background task (started when the store is built
//! inside a Tokio runtime) removes them every sweep interval, and stops when the last clone
//! of the store is dropped.
//!
//! [sessionware]: https://docs.rs/sessionware

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod id_hash;
mod shard;
mod store;
#[cfg(test)]
mod tests;
mod users;

pub use store::{MemoryStore, MemoryStoreBuilder};
