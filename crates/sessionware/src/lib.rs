#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz;
mod cookie;
mod csrf;
mod error;
mod flash;
mod header;
mod key;
mod layer;
mod log_id;
mod session;
#[cfg(feature = "testing")]
pub mod testing;
mod token;
mod users;
mod write_back;

pub use ::cookie::SameSite;
pub use error::{Error, SessionRejection};
pub use key::Key;
pub use layer::{ResponseFuture, SessionLayer, SessionService};
pub use log_id::LogId;
pub use session::{MAX_DEPTH, Session};
pub use sessionware_core::{
    Clock, ExpiryPolicy, ManualClock, SessionId, SessionStore, SystemClock, time,
};
pub use users::{Device, DeviceId, UserSessions};
