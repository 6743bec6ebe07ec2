#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
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
