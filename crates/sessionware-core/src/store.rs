use std::future::Future;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::{ChangeSet, Error, ExpiryPolicy, Record, SessionId};

/// A record as [`SessionStore::load_refreshed`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The record, with its deadline as the store now holds it.
    pub record: Record,
    /// `true` when this load moved the deadline.
    pub refreshed: bool,
}

/// Where sessions live. Implemented by the memory, Redis and SQL stores; the layer talks to a
/// store only through this trait.
///
/// Every method takes the current time from the caller (the layer's [`Clock`](crate::Clock)),
/// so a store decides expiry the same way whatever its own clock says, and tests can move time.
/// A store may also expire records by itself (Redis TTLs, a sweeper): the deadline a record
/// carries is the latest moment it may still be returned.
///
/// The contract, checked for every store by the conformance suite in
/// `sessionware_core::testing` (feature `testing`):
///
/// - [`create`](Self::create) stores a new record and never overwrites one: if the id is taken
///   it draws new ids until one is free, and returns the id it used.
/// - [`load`](Self::load) never returns a record whose deadline has passed, and reports a
///   record it cannot decode as [`Error::Corrupt`], leaving it in place.
/// - [`apply`](Self::apply) changes only the keys a [`ChangeSet`] names, atomically, and never
///   brings back a session that was deleted or has expired: it returns `false` instead.
/// - [`touch`](Self::touch) moves the deadline without rewriting the data, under the same
///   no-resurrection rule.
/// - [`rekey`](Self::rekey) moves a live session to a new id in one atomic step that checks
///   the old session is still live and still bound to the user the caller saw; it never
///   brings back a session that ended, and no moment exists at which both ids load.
/// - [`delete`](Self::delete) is idempotent.
/// - [`list_user`](Self::list_user) returns exactly the live sessions bound to a user, from an
///   index the store keeps (never a scan of every session), and
///   [`delete_user`](Self::delete_user) ends them, including one that a concurrent
///   [`rekey`](Self::rekey) moved to a new id while it ran. The index never grows without
///   bound: entries of sessions that expired or were deleted are pruned.
pub trait SessionStore: Send + Sync + 'static {
    /// A short name of the store's kind (`"memory"`, `"redis"`, `"postgres"`, ...): the
    /// `store` label of the layer's metrics and the `store` field of its spans. Never a
    /// secret or an address.
    fn name(&self) -> &'static str {
        "custom"
    }

    /// Stores a new record under `record.id`, or under a fresh id if that one is taken.
    /// Returns the id used.
    fn create(&self, record: &Record) -> impl Future<Output = Result<SessionId, Error>> + Send;

    /// The live record with this id, if any.
    fn load(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<Record>, Error>> + Send;

    /// Loads a record and moves its deadline as `policy` asks
    /// ([`ExpiryPolicy::refreshed_deadline`]).
    ///
    /// The provided implementation is [`load`](Self::load) followed, when a refresh is due, by
    /// [`touch`](Self::touch). Stores that can do both in one round trip override it.
    fn load_refreshed(
        &self,
        id: &SessionId,
        policy: &ExpiryPolicy,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<Loaded>, Error>> + Send {
        load_then_touch(self, id, policy, now)
    }

    /// Applies `changes` to the live session `id`. Returns `false`, writing nothing, when there
    /// is no such live session.
    fn apply(
        &self,
        id: &SessionId,
        changes: &ChangeSet,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Moves the deadline of the live session `id` to `expires_at`. Returns `false` when there
    /// is no such live session.
    fn touch(
        &self,
        id: &SessionId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Gives the session `old` a new id (a sign-in, a privilege change): stores `record` (the
    /// session as it is to be after the change: data, user, creation time and deadline) under
    /// `record.id`, or under a fresh id if that one is taken, and ends `old`.
    ///
    /// One atomic step that happens only if `old` is live at `now` and bound to `expected_user`
    /// (the user the caller loaded it with; `None` for an unbound session). Otherwise, because
    /// the session was destroyed, revoked, expired or signed in elsewhere meanwhile, it returns
    /// `Ok(None)` and leaves no new session behind. On success it returns the id used, and
    /// from then on `old` never loads again.
    fn rekey(
        &self,
        old: &SessionId,
        expected_user: Option<&str>,
        record: &Record,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<SessionId>, Error>> + Send;

    /// Deletes the session `id`; deleting one that does not exist is not an error.
    fn delete(&self, id: &SessionId) -> impl Future<Output = Result<(), Error>> + Send;

    /// The live sessions bound to `user`, in no particular order.
    fn list_user(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Record>, Error>> + Send;

    /// How many live sessions the store holds at `now`, for a gauge or an admin page; `None`
    /// when the store cannot tell (the provided implementation). Each store documents what
    /// its count costs and whether it is exact; call it at a rate that cost allows (a metrics
    /// scrape, a periodic task), never per request.
    fn count(
        &self,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<u64>, Error>> + Send {
        let _ = now;
        std::future::ready(Ok(None))
    }

    /// Deletes every session bound to `user` except `keep`; returns how many live sessions it
    /// ended.
    fn delete_user(
        &self,
        user: &str,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<usize, Error>> + Send;
}

/// [`SessionStore::load_refreshed`] in two calls: [`load`](SessionStore::load), then, when a
/// refresh is due, [`touch`](SessionStore::touch). The trait's provided implementation, and
/// the fallback of a store that refreshes in one call only on some of its backends.
pub async fn load_then_touch<S: SessionStore + ?Sized>(
    store: &S,
    id: &SessionId,
    policy: &ExpiryPolicy,
    now: OffsetDateTime,
) -> Result<Option<Loaded>, Error> {
    let Some(mut record) = store.load(id, now).await? else {
        return Ok(None);
    };
    let Some(deadline) = policy.refreshed_deadline(record.created_at, record.expires_at, now)
    else {
        return Ok(Some(Loaded {
            record,
            refreshed: false,
        }));
    };
    if !store.touch(id, deadline, now).await? {
        return Ok(None);
    }
    record.expires_at = deadline;
    Ok(Some(Loaded {
        record,
        refreshed: true,
    }))
}

/// A shared store is a store, so an application can keep a handle to the one its layer uses.
impl<S: SessionStore> SessionStore for Arc<S> {
    fn name(&self) -> &'static str {
        S::name(self)
    }
    fn create(&self, record: &Record) -> impl Future<Output = Result<SessionId, Error>> + Send {
        S::create(self, record)
    }
    fn load(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<Record>, Error>> + Send {
        S::load(self, id, now)
    }
    fn load_refreshed(
        &self,
        id: &SessionId,
        policy: &ExpiryPolicy,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<Loaded>, Error>> + Send {
        S::load_refreshed(self, id, policy, now)
    }
    fn apply(
        &self,
        id: &SessionId,
        changes: &ChangeSet,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        S::apply(self, id, changes, now)
    }
    fn touch(
        &self,
        id: &SessionId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        S::touch(self, id, expires_at, now)
    }
    fn rekey(
        &self,
        old: &SessionId,
        expected_user: Option<&str>,
        record: &Record,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<SessionId>, Error>> + Send {
        S::rekey(self, old, expected_user, record, now)
    }
    fn delete(&self, id: &SessionId) -> impl Future<Output = Result<(), Error>> + Send {
        S::delete(self, id)
    }
    fn count(
        &self,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<u64>, Error>> + Send {
        S::count(self, now)
    }
    fn list_user(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Record>, Error>> + Send {
        S::list_user(self, user, now)
    }
    fn delete_user(
        &self,
        user: &str,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<usize, Error>> + Send {
        S::delete_user(self, user, keep, now)
    }
}
