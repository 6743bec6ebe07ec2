//! What sessionware's own tests, examples and benchmarks share. Not published, and not API:
//! it changes with the tests that use it. Published crates take it only as a dev-dependency
//! (path only, no version), which `cargo publish` strips.
//!
//! - [`service`] and [`skip`]: find the server or tool a test needs, and when it is missing
//!   say so where the user sees it (or fail, under `SESSIONWARE_REQUIRE_SERVICES=1`);
//! - [`client`]: an app served on loopback and a browser-like client with a cookie jar;
//! - [`DownStore`]: a store that is down;
//! - [`load`]: many clients through the layer while the store fails, and a ledger of what
//!   was acknowledged.
//!
//! The HTTP-level suites a store crate runs (`sessionware::testing`) and the store conformance
//! suite (`sessionware_core::testing`) are not here: they are public, for stores written
//! outside this workspace.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: panicking is how it reports

pub mod client;
mod down;
pub mod load;
mod skip;

pub use down::DownStore;
pub use skip::{REQUIRE_SERVICES, service, skip};
