//! The encrypted cookie store: no server-side record at all. The layer seals the whole session
//! into the token it hands out (see `sealed`), and reads it back from the token it is shown.

use std::future::Future;

use http::request::Parts;
use sessionware_core::time::OffsetDateTime;
use sessionware_core::{ChangeSet, Record, SessionId, SessionStore};

use crate::config::Shared;
use crate::sealed::{Opened, SealError, SealKeys};
use crate::session::{State, Transport};
use crate::{Error, SessionEventKind, StoreError};

/// Keeps each session in the client's cookie (or bearer token), encrypted and authenticated
/// with AES-256-GCM under a key derived from the layer's key: no server-side store, nothing to
/// run, any number of instances that share the key.
///
/// It goes where any store goes, so moving between it and a server-side store is one line:
///
/// ```
/// use axum::{Router, routing::get};
/// use sessionware::{CookieStore, Key, Session, SessionLayer};
///
/// async fn count(session: Session) -> Result<String, sessionware::Error> {
///     let n = session.increment("count", 1)?;
///     Ok(n.to_string())
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = Key::from_hex(&"2f4c9a1be0d37786".repeat(4))?;
/// let app: Router = Router::new()
///     .route("/", get(count))
///     .layer(SessionLayer::new(CookieStore::new()).with_signing_key(key));
/// // With Redis instead: SessionLayer::new(RedisStore::connect("redis://127.0.0.1:6379").await?)
/// # Ok(()) }
/// ```
///
/// The session's data, user, id, creation time and deadline all travel in the cookie. The
/// layer's [keys](crate::SessionLayer::with_signing_key) rotate as they do for signed ids: the
/// first key encrypts, every key decrypts, and a cookie sealed with an older key is sealed
/// again with the first one in the response that reads it. Idle timeout and absolute lifetime
/// are enforced from the deadline and creation time inside the ciphertext, which the client
/// cannot change; a read re-issues the cookie only when it moves the deadline by the refresh
/// interval or more.
///
/// # Limits
///
/// - **Size.** A browser keeps about 4 KB per cookie. A change that would make the cookie
///   (name, `=` and value) longer than [`max_cookie_size`](Self::with_max_cookie_size) is
///   refused with [`Error::CookieTooLarge`] (`413`): at the `insert` when its size is known
///   there, at write-back otherwise (a sign-in's device facts), and then the response says so
///   instead of sending a cookie the browser would drop.
/// - **No server-side view.** Without a server-side record there is nothing to list or end
///   from elsewhere: [`Session::devices`](crate::Session::devices),
///   [`revoke`](crate::Session::revoke), [`revoke_all`](crate::Session::revoke_all),
///   [`revoke_others`](crate::Session::revoke_others), the [`UserSessions`](crate::UserSessions)
///   calls and the per-user cap ([`with_max_sessions_per_user`](crate::SessionLayer::with_max_sessions_per_user))
///   fail with [`Error::NeedsServerStore`].
/// - **Replay.** A copy of an older cookie stays valid until its own deadline: `logout`
///   removes the cookie from the browser but cannot make a copy taken before stop working,
///   and a client can present an older copy of its own session (an earlier cart, a counter
///   before its last increments). The absolute lifetime bounds how long any copy works;
///   rotating the key ends every copy at once.
/// - **Concurrent requests** of one client each seal their own copy: the last response the
///   browser stores wins, increments included.
///
/// The [`SessionStore`] methods of this type are never called by the layer, which recognizes
/// it (also as an `Arc<CookieStore>`); called directly, they fail with
/// [`StoreError::Backend`].
#[derive(Debug, Clone)]
pub struct CookieStore {
    max_cookie_size: usize,
}

impl CookieStore {
    /// The default limit on a cookie's name and value together: 4096 bytes, what every major
    /// browser keeps.
    pub const DEFAULT_MAX_COOKIE_SIZE: usize = 4096;

    /// A cookie store with the default size limit.
    pub fn new() -> Self {
        Self {
            max_cookie_size: Self::DEFAULT_MAX_COOKIE_SIZE,
        }
    }

    /// Limits the cookie's name, `=` and value together to `bytes` (default
    /// [`Self::DEFAULT_MAX_COOKIE_SIZE`]). The limit applies to bearer tokens too. A token
    /// is never longer than 8192 bytes whatever the limit, because the layer does not open a
    /// longer one again (it bounds the work an oversized header can cause): a session that
    /// would need more is refused with [`Error::CookieTooLarge`], as over any limit.
    pub fn with_max_cookie_size(mut self, bytes: usize) -> Self {
        self.max_cookie_size = bytes;
        self
    }

    /// The size a cookie named `name` would have for a session whose data is at most
    /// `data_json` bytes of JSON and whose user id has `user` bytes.
    pub(crate) fn cookie_len(name: &str, data_json: usize, user: Option<usize>) -> usize {
        name.len() + 1 + SealKeys::token_len(SealKeys::plaintext_len(data_json, user))
    }

    /// Refuses a change that makes the data `data_json` bytes of JSON if the cookie would not
    /// fit. The size the session tracks is an upper bound of its JSON, so this refuses nothing
    /// that fits by more than a few bytes; write-back checks the exact size.
    pub(crate) fn check_fits(
        &self,
        name: &str,
        data_json: usize,
        user: Option<usize>,
    ) -> Result<(), Error> {
        let size = Self::cookie_len(name, data_json, user);
        let limit = self.limit(name);
        if size > limit {
            return Err(Error::CookieTooLarge { size, limit });
        }
        Ok(())
    }

    /// The longest cookie named `name` the store sends: the configured limit, or less where a
    /// token that long would not open again.
    fn limit(&self, name: &str) -> usize {
        self.max_cookie_size
            .min(name.len() + 1 + crate::sealed::MAX_TOKEN_LEN)
    }
}

impl Default for CookieStore {
    fn default() -> Self {
        Self::new()
    }
}

fn not_a_server_store() -> StoreError {
    StoreError::backend("the cookie store keeps no server-side records; only its layer uses it")
}

impl SessionStore for CookieStore {
    fn name(&self) -> &'static str {
        "cookie"
    }
    fn create(&self, _: &Record) -> impl Future<Output = Result<SessionId, StoreError>> + Send {
        std::future::ready(Err(not_a_server_store()))
    }
    fn load(
        &self,
        _: &SessionId,
        _: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send {
        std::future::ready(Err(not_a_server_store()))
    }
    fn apply(
        &self,
        _: &SessionId,
        _: &ChangeSet,
        _: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        std::future::ready(Err(not_a_server_store()))
    }
    fn touch(
        &self,
        _: &SessionId,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        std::future::ready(Err(not_a_server_store()))
    }
    fn rekey(
        &self,
        _: &SessionId,
        _: Option<&str>,
        _: &Record,
        _: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<SessionId>, StoreError>> + Send {
        std::future::ready(Err(not_a_server_store()))
    }
    fn delete(&self, _: &SessionId) -> impl Future<Output = Result<(), StoreError>> + Send {
        std::future::ready(Err(not_a_server_store()))
    }
    fn list_user(
        &self,
        _: &str,
        _: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send {
        std::future::ready(Err(not_a_server_store()))
    }
    fn delete_user(
        &self,
        _: &str,
        _: Option<&SessionId>,
        _: OffsetDateTime,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        std::future::ready(Err(not_a_server_store()))
    }
}

/// Fills `state` from the session the request presents, if it opens and is live at `now`.
pub(crate) fn load(shared: &Shared, parts: &Parts, state: &mut State, now: OffsetDateTime) {
    state.user_agent = parts.headers.get(http::header::USER_AGENT).cloned();
    if shared.record_address {
        state.address = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0);
    }
    open_presented(shared, parts, state, now);
    if state.id.is_none() {
        state.expires_at = shared.policy.deadline(now, now);
    }
}

fn open_presented(shared: &Shared, parts: &Parts, state: &mut State, now: OffsetDateTime) {
    let name = &shared.cookie_name;
    let sealed = &shared.keys.sealed;
    let presented = crate::session::presented(
        shared,
        &parts.headers,
        state,
        |transport, token| sealed.open(transport, name, token),
        |opened: &Opened| opened.record.id,
    );
    let Some(Opened { record, old_key }) = crate::session::usable(shared, state, presented) else {
        return;
    };
    // A signed-in session may have chosen its own idle timeout ("remember me").
    let own_idle = record
        .user
        .as_ref()
        .and_then(|_| crate::sign_in::remembered_idle(&record.data));
    let policy = shared.policy_for(own_idle);
    // Both clocks from inside the ciphertext; the policy's absolute lifetime also applies to a
    // cookie sealed under a longer one.
    let deadline = record
        .expires_at
        .min(policy.deadline(record.created_at, now));
    let lifetime_over = policy
        .absolute_lifetime()
        .is_some_and(|life| record.created_at + life <= now);
    if deadline <= now || lifetime_over {
        let name = shared.keys.log_id(&record.id);
        tracing::debug!(
            session = %name,
            "sealed session expired; starting a fresh session"
        );
        state.stale_cookie = true;
        shared.metrics.expired.increment(1);
        shared.emit(|| (SessionEventKind::Expired, Some(name), record.user));
        return;
    }
    let refreshed = policy.refreshed_deadline(record.created_at, record.expires_at, now);
    shared.metrics.loaded.increment(1);
    if refreshed.is_some() {
        shared.metrics.touched.increment(1);
    }
    state.own_idle = own_idle;
    state.id = Some(record.id);
    state.data = record.data;
    state.loaded_user = record.user.clone();
    state.user = record.user;
    state.created_at = record.created_at;
    state.expires_at = refreshed.unwrap_or(record.expires_at);
    // An old key's cookie goes out again sealed with the current key.
    state.refreshed = refreshed.is_some() || old_key;
}

/// The cookie a sealed session's write-back sends, or why it cannot.
pub(crate) fn seal(
    shared: &Shared,
    store: &CookieStore,
    transport: Transport,
    record: &Record,
) -> Result<String, Error> {
    let name = &shared.cookie_name;
    let limit = store.limit(name);
    let token = shared
        .keys
        .sealed
        .seal(transport, name, record)
        .map_err(|e| match e {
            SealError::Random | SealError::NoKey => Error::Store(StoreError::Random),
            SealError::UserTooLong => Error::CookieTooLarge {
                size: usize::MAX,
                limit,
            },
            SealError::TooLong(token) => Error::CookieTooLarge {
                size: name.len() + 1 + token,
                limit,
            },
            SealError::Encode => Error::Store(StoreError::rejected(
                "the session does not encode for sealing",
            )),
        })?;
    let size = name.len() + 1 + token.len();
    if size > limit {
        return Err(Error::CookieTooLarge { size, limit });
    }
    Ok(token)
}
