#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod builder;
mod codec;
mod error;
mod near_cache;
mod script;
mod store;

pub use builder::RedisStoreBuilder;
pub use error::ConnectError;
pub use near_cache::NearCacheStats;
pub use store::RedisStore;

/// Re-exported so an application can build a [`Config`](fred::types::config::Config) or a
/// [`Pool`](fred::clients::Pool) with the same fred the store uses.
pub use fred;
