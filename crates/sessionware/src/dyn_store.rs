//! Any store behind one pointer: the boxed-future form of the store trait.

use std::future::Future;
use std::pin::Pin;

use sessionware_core::time::OffsetDateTime;
use sessionware_core::{ChangeSet, Error, ExpiryPolicy, Loaded, Record, SessionId, SessionStore};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe form of [`SessionStore`], implemented for every store, so a layer holds any
/// store behind one `Arc<dyn DynSessionStore>` and `SessionLayer` needs no type parameter.
pub(crate) trait DynSessionStore: Send + Sync + 'static {
    fn create<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<SessionId, Error>>;
    fn load<'a>(
        &'a self,
        id: &'a SessionId,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<Record>, Error>>;
    fn load_refreshed<'a>(
        &'a self,
        id: &'a SessionId,
        policy: &'a ExpiryPolicy,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<Loaded>, Error>>;
    fn apply<'a>(
        &'a self,
        id: &'a SessionId,
        changes: &'a ChangeSet,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<bool, Error>>;
    // The layer refreshes through `load_refreshed`; the conformance suite run on the
    // encryption-at-rest wrapper calls this.
    #[cfg_attr(not(test), allow(dead_code))]
    fn touch<'a>(
        &'a self,
        id: &'a SessionId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<bool, Error>>;
    fn rekey<'a>(
        &'a self,
        old: &'a SessionId,
        expected_user: Option<&'a str>,
        record: &'a Record,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<SessionId>, Error>>;
    fn delete<'a>(&'a self, id: &'a SessionId) -> BoxFuture<'a, Result<(), Error>>;
    fn list_user<'a>(
        &'a self,
        user: &'a str,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Vec<Record>, Error>>;
    fn delete_user<'a>(
        &'a self,
        user: &'a str,
        keep: Option<&'a SessionId>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<usize, Error>>;
}

impl<S: SessionStore> DynSessionStore for S {
    fn create<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<SessionId, Error>> {
        Box::pin(SessionStore::create(self, record))
    }
    fn load<'a>(
        &'a self,
        id: &'a SessionId,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        Box::pin(SessionStore::load(self, id, now))
    }
    fn load_refreshed<'a>(
        &'a self,
        id: &'a SessionId,
        policy: &'a ExpiryPolicy,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<Loaded>, Error>> {
        Box::pin(SessionStore::load_refreshed(self, id, policy, now))
    }
    fn apply<'a>(
        &'a self,
        id: &'a SessionId,
        changes: &'a ChangeSet,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(SessionStore::apply(self, id, changes, now))
    }
    fn touch<'a>(
        &'a self,
        id: &'a SessionId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(SessionStore::touch(self, id, expires_at, now))
    }
    fn rekey<'a>(
        &'a self,
        old: &'a SessionId,
        expected_user: Option<&'a str>,
        record: &'a Record,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<SessionId>, Error>> {
        Box::pin(SessionStore::rekey(self, old, expected_user, record, now))
    }
    fn delete<'a>(&'a self, id: &'a SessionId) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(SessionStore::delete(self, id))
    }
    fn list_user<'a>(
        &'a self,
        user: &'a str,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Vec<Record>, Error>> {
        Box::pin(SessionStore::list_user(self, user, now))
    }
    fn delete_user<'a>(
        &'a self,
        user: &'a str,
        keep: Option<&'a SessionId>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<usize, Error>> {
        Box::pin(SessionStore::delete_user(self, user, keep, now))
    }
}
