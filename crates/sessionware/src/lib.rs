#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz;
mod at_rest;
mod atomic;
mod config;
mod cookie;
mod cookie_store;
mod csrf;
mod dyn_store;
mod error;
mod events;
mod flash;
mod header;
mod key;
mod layer;
mod log_id;
mod observe;
mod sealed;
mod service;
mod session;
mod sign_in;
#[cfg(feature = "testing")]
pub mod testing;
mod token;
mod users;
mod write_back;

pub use ::cookie::SameSite;
pub use cookie_store::CookieStore;
pub use error::{Error, SessionRejection};
pub use events::{RevokedBy, SessionEvent, SessionEventKind};
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
pub use users::{Device, DeviceId, InvalidDeviceId, UserSessions};
