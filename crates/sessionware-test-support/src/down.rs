//! A store that is down, for tests of what an application does then.

use sessionware_core::time::OffsetDateTime;
use sessionware_core::{ChangeSet, Error, Record, SessionId, SessionStore};

/// A store whose every call fails as one that cannot be reached would
/// (`Error::Backend`, "connection refused"): the layer answers `503` on routes that use the
/// session. For testing error handlers and fallbacks without stopping a server.
///
/// ```no_run
/// # async fn t() {
/// use sessionware::SessionLayer;
/// use sessionware_test_support::DownStore;
///
/// let layer = SessionLayer::new(DownStore);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DownStore;

fn down() -> Error {
    Error::backend(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "connection refused",
    ))
}

impl SessionStore for DownStore {
    async fn create(&self, _: &Record) -> Result<SessionId, Error> {
        Err(down())
    }
    async fn load(&self, _: &SessionId, _: OffsetDateTime) -> Result<Option<Record>, Error> {
        Err(down())
    }
    async fn apply(&self, _: &SessionId, _: &ChangeSet, _: OffsetDateTime) -> Result<bool, Error> {
        Err(down())
    }
    async fn touch(
        &self,
        _: &SessionId,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> Result<bool, Error> {
        Err(down())
    }
    async fn rekey(
        &self,
        _: &SessionId,
        _: Option<&str>,
        _: &Record,
        _: OffsetDateTime,
    ) -> Result<Option<SessionId>, Error> {
        Err(down())
    }
    async fn delete(&self, _: &SessionId) -> Result<(), Error> {
        Err(down())
    }
    async fn list_user(&self, _: &str, _: OffsetDateTime) -> Result<Vec<Record>, Error> {
        Err(down())
    }
    async fn delete_user(
        &self,
        _: &str,
        _: Option<&SessionId>,
        _: OffsetDateTime,
    ) -> Result<usize, Error> {
        Err(down())
    }
}
