//! The model and the store contract of [sessionware]: session ids, records, change sets, the
//! expiry policy, clocks, and the [`SessionStore`] trait every store implements.
//!
//! This crate does no I/O and knows nothing of HTTP. Applications depend on `sessionware`,
//! which re-exports what they need from here; store crates depend on this crate alone, and
//! run the conformance suite in [`testing`] (feature `testing`) against a real backend.
//!
//! [sessionware]: https://docs.rs/sessionware

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod clock;
mod error;
mod expiry;
mod id;
mod record;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod unix_ms;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use expiry::ExpiryPolicy;
pub use id::SessionId;
pub use record::{Change, ChangeSet, Data, Record};
pub use store::{Loaded, SessionStore, load_then_touch};
pub use unix_ms::{from_unix_ms, to_unix_ms};

/// Re-exported so stores and applications name the same `time` types.
pub use time;
