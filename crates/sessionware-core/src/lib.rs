#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod clock;
mod error;
mod expiry;
mod id;
#[cfg(feature = "lanes")]
#[cfg_attr(docsrs, doc(cfg(feature = "lanes")))]
pub mod lanes;
mod record;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod unix_ms;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use expiry::ExpiryPolicy;
pub use id::SessionId;
pub use record::{Change, ChangeSet, Data, Record, increment};
pub use store::{Loaded, SessionStore, load_then_touch};
pub use unix_ms::{from_unix_ms, to_unix_ms};

/// Re-exported so stores and applications name the same `time` types.
pub use time;
