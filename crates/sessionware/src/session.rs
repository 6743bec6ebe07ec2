use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sessionware_core::time::OffsetDateTime;
use sessionware_core::{Data, Loaded, SessionId};
use tokio::sync::OnceCell;

use crate::Error;
use crate::atomic::{self, KeyOp, Step};
use crate::config::{DEVICE_KEY, Shared, device_facts, is_reserved};
use crate::cookie::Presented;
use crate::error::SessionRejection;
use crate::events::SessionEventKind;
use crate::observe::Op;
use crate::sign_in::{IDLE_KEY, remembered_idle};
pub(crate) use crate::token::Transport;

/// The deepest nesting of arrays and objects a value may have. A session is stored as an
/// object holding the values, and every JSON engine on the way has a depth limit (MariaDB 32
/// levels for the whole document, scalars counted; MySQL 100; serde_json 128), so a value
/// accepted here is one every store can hold and read back: moving to another store never
/// turns yesterday's data into an error.
pub const MAX_DEPTH: usize = 30;

/// `true` when `value` nests arrays and objects more than `budget` levels deep; looks no
/// deeper than that, so the check's own recursion is bounded.
fn nested_deeper_than(value: &Value, budget: usize) -> bool {
    match value {
        Value::Array(_) | Value::Object(_) if budget == 0 => true,
        Value::Array(items) => items.iter().any(|v| nested_deeper_than(v, budget - 1)),
        Value::Object(map) => map.values().any(|v| nested_deeper_than(v, budget - 1)),
        _ => false,
    }
}

/// `value` as JSON, refused when nested deeper than [`MAX_DEPTH`].
fn to_checked_value<T: Serialize>(key: &str, value: &T) -> Result<Value, Error> {
    let value = serde_json::to_value(value).map_err(|source| Error::Serialize {
        key: key.to_owned(),
        source,
    })?;
    if nested_deeper_than(&value, MAX_DEPTH) {
        return Err(Error::TooDeep {
            key: key.to_owned(),
            limit: MAX_DEPTH,
        });
    }
    Ok(value)
}

/// The current request's session: an axum extractor with synchronous, typed accessors.
///
/// The store is read when a handler extracts `Session` (once per request, however many
/// extractors ask), never for a route that does not. After the handler has run, the layer
/// writes back only what changed; see [`SessionLayer`](crate::SessionLayer).
///
/// Values are any serde type, stored as JSON. A new session that is still empty when the
/// response goes out is not stored and sets no cookie.
///
/// ```
/// use sessionware::Session;
///
/// async fn count(session: Session) -> Result<String, sessionware::Error> {
///     let n: u64 = session.get("count")?.unwrap_or(0);
///     session.insert("count", n + 1)?;
///     Ok((n + 1).to_string())
/// }
/// ```
#[derive(Clone)]
pub struct Session(Arc<Handle>);

/// How the service hands a request's session to the extractor: a type of this crate's own, so
/// `Extension<Session>` finds nothing rather than a session that was never loaded.
#[derive(Clone)]
pub(crate) struct Slot(pub(crate) Session);

pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
    loaded: OnceCell<()>,
    state: Mutex<State>,
}

/// The session as this request sees it, and what the request did to it.
#[derive(Debug)]
pub(crate) struct State {
    /// The stored id; `None` for a session not stored yet.
    pub(crate) id: Option<SessionId>,
    /// The id the session gets at write-back when one is drawn early (a CSRF token handed out
    /// after `login` is bound to the id the session will have).
    pub(crate) next_id: Option<SessionId>,
    pub(crate) data: Data,
    pub(crate) user: Option<String>,
    /// The user the store held the session for when it was loaded: an id change goes through
    /// only while it still does.
    pub(crate) loaded_user: Option<String>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) expires_at: OffsetDateTime,
    /// Keys set or removed since the load.
    pub(crate) dirty: HashSet<String>,
    /// Dirty keys changed by `increment` or `update` from the value loaded: written back as
    /// a store-side increment or a compare-and-set rather than as their value.
    pub(crate) ops: std::collections::HashMap<String, KeyOp>,
    pub(crate) cleared: bool,
    pub(crate) cycle: bool,
    /// The stored session `destroy` ended; deleted at write-back.
    pub(crate) destroyed: Option<SessionId>,
    /// The user the destroyed session was bound to, for its sign-out event.
    pub(crate) destroyed_user: Option<String>,
    /// The load moved the deadline.
    pub(crate) refreshed: bool,
    /// The client sent a token we did not accept (bad tag, unknown or expired id).
    pub(crate) stale_cookie: bool,
    /// How this client carries its token.
    pub(crate) transport: Transport,
    /// `login` was called: enforce the per-user cap at write-back.
    pub(crate) login: bool,
    /// `logout` was called: add `Clear-Site-Data` if configured.
    pub(crate) logout: bool,
    /// `remember_for` was called: a `login` in the same request keeps its choice.
    pub(crate) remembered: bool,
    /// The idle timeout of this session's own (`remember_for`), read from the data once at
    /// the load so write-back need not look it up again.
    pub(crate) own_idle: Option<sessionware_core::time::Duration>,
    /// `confirm_sign_in` was called.
    pub(crate) confirmed: bool,
    /// Facts about the client, kept from the request for `login`.
    pub(crate) user_agent: Option<http::HeaderValue>,
    pub(crate) address: Option<std::net::SocketAddr>,
    /// The data's size as JSON, once something needed it.
    pub(crate) size: Option<usize>,
    /// The CSRF nonce cookie the request carried, for visitors without a stored session.
    pub(crate) csrf_nonce: Option<[u8; crate::cookie::NONCE_BYTES]>,
    /// A CSRF nonce made by this request: its cookie goes out with the response.
    pub(crate) new_csrf_nonce: bool,
}

/// Bytes `key: value` adds to the data's JSON object, separator included.
fn entry_size(key: &str, value: &Value) -> usize {
    // Writing into a counter cannot fail for a `Value` with string keys.
    let mut counter = Counter(0);
    let _ = serde_json::to_writer(&mut counter, value);
    let _ = serde_json::to_writer(&mut counter, key);
    counter.0 + 2
}

struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl State {
    fn size(&mut self) -> usize {
        *self.size.get_or_insert_with(|| {
            2 + self
                .data
                .iter()
                .map(|(k, v)| entry_size(k, v))
                .sum::<usize>()
        })
    }
}

impl State {
    pub(crate) fn new(created_at: OffsetDateTime, expires_at: OffsetDateTime) -> Self {
        Self {
            id: None,
            next_id: None,
            data: Data::new(),
            user: None,
            loaded_user: None,
            created_at,
            expires_at,
            dirty: HashSet::new(),
            ops: std::collections::HashMap::new(),
            cleared: false,
            cycle: false,
            destroyed: None,
            destroyed_user: None,
            refreshed: false,
            stale_cookie: false,
            transport: Transport::Cookie,
            login: false,
            logout: false,
            remembered: false,
            own_idle: None,
            confirmed: false,
            user_agent: None,
            address: None,
            size: None,
            csrf_nonce: None,
            new_csrf_nonce: false,
        }
    }
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let epoch = OffsetDateTime::UNIX_EPOCH;
        Self(Arc::new(Handle {
            shared,
            loaded: OnceCell::new(),
            state: Mutex::new(State::new(epoch, epoch)),
        }))
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.0.shared
    }

    /// A poisoned lock means a handler panicked while holding it. Every accessor leaves the
    /// state consistent at each step, so it is safe to go on.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_loaded(&self) -> bool {
        self.0.loaded.initialized()
    }

    async fn load(&self, parts: &Parts) -> Result<(), Error> {
        self.0
            .loaded
            .get_or_try_init(|| async {
                let shared = &self.0.shared;
                let now = shared.clock.now();
                // The deadline a new session would get is worked out only if there is none.
                let mut state = State::new(now, now);
                if shared.cookie_store.is_some() {
                    crate::cookie_store::load(shared, parts, &mut state, now);
                    *self.state() = state;
                    return Ok(());
                }
                let name = &shared.cookie_name;
                let presented = presented(
                    shared,
                    &parts.headers,
                    &mut state,
                    |transport, token| shared.keys.verify(transport, name, token),
                    |id| *id,
                );
                state.user_agent = parts.headers.get(http::header::USER_AGENT).cloned();
                if shared.record_address {
                    state.address = parts
                        .extensions
                        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                        .map(|info| info.0);
                }
                match usable(shared, &mut state, presented) {
                    None => {}
                    Some(id) => {
                        let mut unreadable = false;
                        let loaded = shared
                            .call(
                                Op::LoadRefreshed,
                                Some(&id),
                                shared.store.load_refreshed(&id, &shared.policy, now),
                            )
                            .await;
                        let loaded = match loaded {
                            Ok(loaded) => loaded,
                            // A record that does not decode would fail every request until
                            // it expires, sign-out included: start afresh and drop the
                            // cookie, and leave the record for the operator to look at.
                            Err(Error::Store(error)) if !error.is_unavailable() => {
                                tracing::error!(
                                    %error,
                                    session = %shared.keys.log_id(&id),
                                    "session record unreadable; starting a fresh session"
                                );
                                unreadable = true;
                                None
                            }
                            Err(error) => {
                                tracing::error!(
                                    %error,
                                    session = %shared.keys.log_id(&id),
                                    "session could not be loaded"
                                );
                                shared.metrics.failed(&error);
                                return Err(error);
                            }
                        };
                        // Only a signed-in session can have chosen its own expiry, so anonymous
                        // ones (most of them) pay no lookup for it.
                        let own_idle = loaded
                            .as_ref()
                            .filter(|l| l.record.user.is_some())
                            .and_then(|l| remembered_idle(&l.record.data));
                        let mut loaded = loaded;
                        if let Some(l) = loaded.as_mut().filter(|_| own_idle.is_some()) {
                            // Boxed: the rare path keeps its future out of every load's.
                            if !Box::pin(self.refresh_remembered(l, own_idle, now)).await? {
                                loaded = None;
                            }
                        }
                        match loaded {
                            Some(Loaded { record, refreshed }) => {
                                state.own_idle = own_idle;
                                shared.metrics.loaded.increment(1);
                                if refreshed {
                                    shared.metrics.touched.increment(1);
                                }
                                state.id = Some(record.id);
                                state.data = record.data;
                                state.loaded_user = record.user.clone();
                                state.user = record.user;
                                state.created_at = record.created_at;
                                state.expires_at = record.expires_at;
                                state.refreshed = refreshed;
                            }
                            None if unreadable => state.stale_cookie = true,
                            None => {
                                state.stale_cookie = true;
                                shared.metrics.expired.increment(1);
                                shared.emit(|| {
                                    let session = Some(shared.keys.log_id(&id));
                                    (SessionEventKind::Expired, session, None)
                                });
                            }
                        }
                    }
                }
                if state.id.is_none() {
                    state.expires_at = shared.policy.deadline(now, now);
                }
                *self.state() = state;
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// The store refreshed `loaded` by the layer's idle timeout; a session that chose a
    /// longer one at sign-in ("remember me") moves its deadline by that one, with a `touch`
    /// when due. `false` when the session ended in between.
    async fn refresh_remembered(
        &self,
        loaded: &mut Loaded,
        own_idle: Option<sessionware_core::time::Duration>,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        let shared = &self.0.shared;
        let policy = shared.policy_for(own_idle);
        if policy == shared.policy {
            return Ok(true);
        }
        let record = &loaded.record;
        let Some(deadline) = policy.refreshed_deadline(record.created_at, record.expires_at, now)
        else {
            return Ok(true);
        };
        let touched = shared
            .call(
                Op::Touch,
                Some(&record.id),
                shared.store.touch(&record.id, deadline, now),
            )
            .await;
        match touched {
            Ok(true) => {
                loaded.record.expires_at = deadline;
                loaded.refreshed = true;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(error) => {
                tracing::error!(
                    %error,
                    session = %shared.keys.log_id(&loaded.record.id),
                    "session deadline could not be moved"
                );
                shared.metrics.failed(&error);
                Err(error)
            }
        }
    }

    /// The value under `key`, deserialized as `T`; `Ok(None)` when there is none, and
    /// [`Error::Deserialize`] when the stored value is not a `T` (the value is kept).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let state = self.state();
        state
            .data
            .get(key)
            .map(|value| {
                T::deserialize(value).map_err(|source| Error::Deserialize {
                    key: key.to_owned(),
                    source,
                })
            })
            .transpose()
    }

    /// The raw JSON value under `key`.
    pub fn get_value(&self, key: &str) -> Option<Value> {
        self.state().data.get(key).cloned()
    }

    /// Stores `value` under `key`. Setting a key to the value it already holds changes nothing
    /// and writes nothing. A value nested more than [`MAX_DEPTH`] levels deep is refused with
    /// [`Error::TooDeep`], and one over the layer's size limit with [`Error::TooLarge`]; either
    /// way nothing changes.
    pub fn insert<T: Serialize>(&self, key: impl Into<String>, value: T) -> Result<(), Error> {
        let key = key.into();
        let value = to_checked_value(&key, &value)?;
        let mut state = self.state();
        // A value the request decides replaces any increment or update of the key: last
        // writer wins.
        let had_op = state.ops.remove(&key).is_some();
        if !had_op && state.data.get(&key) == Some(&value) {
            return Ok(());
        }
        self.put(&mut state, key, value)
    }

    /// Sets `key` locally and marks it changed, within the size limit.
    fn put(&self, state: &mut State, key: String, value: Value) -> Result<(), Error> {
        let shared = &self.0.shared;
        if shared.max_size.is_some() || shared.cookie_store.is_some() {
            let old = state.data.get(&key).map_or(0, |v| entry_size(&key, v));
            let size = state.size() - old + entry_size(&key, &value);
            if let Some(limit) = shared.max_size.filter(|limit| size > *limit) {
                return Err(Error::TooLarge { size, limit });
            }
            if let Some(store) = &shared.cookie_store {
                let user = state.user.as_ref().map(String::len);
                store.check_fits(&shared.cookie_name, size, user)?;
            }
            state.size = Some(size);
        }
        state.data.insert(key.clone(), value);
        state.dirty.insert(key);
        Ok(())
    }

    /// Whether write-back can send `key`'s change as an atomic one, and from which value
    /// (what the key held at the load): only for a stored session, not cleared by this
    /// request, whose key's value was not decided by an `insert` or `remove` (then the value
    /// is known and goes as it is). Asked before the local change, recorded after it.
    fn trackable(state: &State, key: &str) -> Option<Option<Value>> {
        let decided = state.dirty.contains(key) && !state.ops.contains_key(key);
        if state.id.is_none() || state.cleared || decided {
            return None;
        }
        Some(state.data.get(key).cloned())
    }

    fn record_step(state: &mut State, key: String, base: Option<Option<Value>>, step: Step) {
        if let Some(base) = base {
            let op = state.ops.entry(key).or_insert_with(|| KeyOp::new(base));
            op.steps.push(step);
        }
    }

    /// Adds `by` to the integer under `key` (subtracts, if negative) and returns the value
    /// this request now sees. A missing key counts from 0.
    ///
    /// At write-back the store adds `by` itself in one atomic step (Redis `HINCRBY` inside
    /// the write script, JSON arithmetic inside the SQL `UPDATE`, under the shard lock in
    /// memory), so concurrent increments of one key never conflict and never lose a count,
    /// at the cost of a plain [`insert`](Self::insert). The value returned is this
    /// request's view (what it loaded plus its own increments); increments of concurrent
    /// requests add to the stored total but not to it.
    ///
    /// A key holding anything but a JSON integer in the `i64` range is
    /// [`Error::NotAnInteger`], a result outside that range [`Error::Overflow`] (checked
    /// arithmetic, never wrapping), both `422`: here if the loaded value says so, or at
    /// write-back if another request stored such a value meanwhile; either way nothing
    /// changes.
    ///
    /// ```
    /// use sessionware::Session;
    ///
    /// async fn add_to_cart(session: Session) -> Result<String, sessionware::Error> {
    ///     let items = session.increment("cart_items", 1)?;
    ///     Ok(format!("{items} items"))
    /// }
    /// ```
    pub fn increment(&self, key: impl Into<String>, by: i64) -> Result<i64, Error> {
        let key = key.into();
        let mut state = self.state();
        let next = atomic::add(&key, state.data.get(&key), by)?;
        if by == 0 {
            return Ok(next);
        }
        let base = Self::trackable(&state, &key);
        self.put(&mut state, key.clone(), Value::from(next))?;
        Self::record_step(&mut state, key, base, Step::Add(by));
        Ok(next)
    }

    /// Changes the value under `key` with `f` and returns the new value; a missing key starts
    /// from `T::default()`.
    ///
    /// At write-back the new value is stored only if the key still holds what this request
    /// read (a compare-and-set, in the same store call as the rest of the write: no extra
    /// round trip when nothing conflicts). If another request changed the key meanwhile, the
    /// store refuses, and the layer runs `f` again on the value the store holds now and
    /// retries, up to [`SessionLayer::with_update_retries`](crate::SessionLayer::with_update_retries)
    /// times; then the response is [`Error::UpdateConflict`] (`409`) and nothing of the
    /// request's changes is stored. So `f` may run more than once: keep it a pure function
    /// of its argument. The response the handler built is sent as it is after a retry that
    /// succeeded, so it may show the value of the first run.
    ///
    /// [`insert`](Self::insert) after `update` of the same key makes it a plain last-writer-
    /// wins write again.
    ///
    /// ```
    /// use sessionware::Session;
    ///
    /// async fn add_tag(session: Session) -> Result<String, sessionware::Error> {
    ///     let tags = session.update("tags", |tags: &mut Vec<String>| {
    ///         if !tags.iter().any(|t| t == "rust") {
    ///             tags.push("rust".to_owned());
    ///         }
    ///     })?;
    ///     Ok(tags.join(", "))
    /// }
    /// ```
    pub fn update<T, F>(&self, key: impl Into<String>, mut f: F) -> Result<T, Error>
    where
        T: Serialize + DeserializeOwned + Default,
        F: FnMut(&mut T) + Send + 'static,
    {
        let key = key.into();
        let mut state = self.state();
        let mut value = match state.data.get(&key) {
            Some(v) => T::deserialize(v).map_err(|source| Error::Deserialize {
                key: key.clone(),
                source,
            })?,
            None => T::default(),
        };
        f(&mut value);
        let new = to_checked_value(&key, &value)?;
        if state.data.get(&key) == Some(&new) {
            return Ok(value);
        }
        let replay_key = key.clone();
        let closure: atomic::Closure = Box::new(move |current| {
            let mut value = match current {
                Some(v) => T::deserialize(v).map_err(|source| Error::Deserialize {
                    key: replay_key.clone(),
                    source,
                })?,
                None => T::default(),
            };
            f(&mut value);
            to_checked_value(&replay_key, &value)
        });
        let base = Self::trackable(&state, &key);
        self.put(&mut state, key.clone(), new)?;
        Self::record_step(&mut state, key, base, Step::Apply(closure));
        Ok(value)
    }

    /// Removes `key` and returns its value as `T`. If the value is not a `T`, returns
    /// [`Error::Deserialize`] and leaves it in place.
    pub fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let value = self.get::<T>(key)?;
        self.remove_value(key);
        Ok(value)
    }

    /// Removes `key` and returns its raw value.
    pub fn remove_value(&self, key: &str) -> Option<Value> {
        let mut state = self.state();
        let value = state.data.remove(key);
        state.ops.remove(key);
        if let Some(v) = &value {
            state.dirty.insert(key.to_owned());
            if let Some(size) = state.size {
                state.size = Some(size.saturating_sub(entry_size(key, v)));
            }
        }
        value
    }

    /// `true` if `key` holds a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.state().data.contains_key(key)
    }

    /// The keys, in no particular order.
    pub fn keys(&self) -> Vec<String> {
        let state = self.state();
        state
            .data
            .keys()
            .filter(|k| !is_reserved(k))
            .cloned()
            .collect()
    }

    /// How many keys hold values.
    pub fn len(&self) -> usize {
        self.state().data.keys().filter(|k| !is_reserved(k)).count()
    }

    /// `true` when no key holds a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every key. The session (its id, cookie and signed-in user) stays.
    pub fn clear(&self) {
        let mut state = self.state();
        if state.data.keys().all(|k| is_reserved(k)) && state.dirty.iter().all(|k| is_reserved(k)) {
            return;
        }
        state.data.retain(|k, _| is_reserved(k));
        state.ops.retain(|k, _| is_reserved(k));
        state.size = None;
        // The store drops every key; the library's own ones are written back with the clear.
        state.dirty = state.data.keys().cloned().collect();
        state.cleared = true;
    }

    /// Signs `user` in: binds the session to the user and gives it a new id in the same
    /// write-back, so the id the client held before (perhaps one an attacker planted) stops
    /// working at once. Records the device facts the devices listing shows: sign-in time, user
    /// agent, and the client address if the layer is configured to.
    ///
    /// Signing in as another user than the one signed in drops the session's data first (the
    /// previous user's cart is not the next one's); signing in from an anonymous session keeps
    /// it. If the session ends while the request runs (signed out elsewhere, revoked, expired),
    /// the new id is not issued: the response is [`Error::SessionGone`] (`409`).
    ///
    /// ```
    /// use sessionware::Session;
    ///
    /// async fn sign_in(session: Session) -> &'static str {
    ///     // ... after checking the password:
    ///     session.login("user-42");
    ///     "welcome"
    /// }
    /// ```
    pub fn login(&self, user: impl Into<String>) {
        let now = self.0.shared.clock.now();
        let mut state = self.state();
        let user_agent = state.user_agent.as_ref().and_then(|v| v.to_str().ok());
        let facts = device_facts(user_agent, state.address.map(|a| a.ip().to_string()), now);
        let user = user.into();
        if state.user.as_ref().is_some_and(|current| *current != user) {
            state.data.retain(|k, _| is_reserved(k));
        }
        // Each sign-in chooses its expiry: "remember me" is not inherited from the last one.
        if !state.remembered && state.data.remove(IDLE_KEY).is_some() {
            state.dirty.insert(IDLE_KEY.to_owned());
            state.own_idle = None;
        }
        state.data.insert(DEVICE_KEY.to_owned(), facts);
        state.dirty.insert(DEVICE_KEY.to_owned());
        state.size = None;
        state.user = Some(user);
        state.cycle = true;
        state.login = true;
    }

    /// Signs out: ends the session (deleted at write-back) and removes the cookie.
    pub fn logout(&self) {
        self.destroy();
        self.state().logout = true;
    }

    /// The signed-in user, if any.
    pub fn user(&self) -> Option<String> {
        self.state().user.clone()
    }

    /// Gives the session a new id at write-back, keeping its data; the old id stops working.
    /// Do this whenever privileges change (sign-in, sign-out, role change) so that an id an
    /// attacker planted or saw before cannot ride along.
    ///
    /// Like [`login`](Self::login), the new id is issued only if the session is still live and
    /// bound to the same user when the response is written; otherwise the response is
    /// [`Error::SessionGone`] (`409`).
    pub fn cycle_id(&self) {
        self.state().cycle = true;
    }

    /// Ends the session: at write-back it is deleted from the store and the cookie is removed.
    /// Anything inserted after `destroy` starts a new session with a new id (for a "signed
    /// out" message, say).
    pub fn destroy(&self) {
        let mut state = self.state();
        let now = self.0.shared.clock.now();
        let (old, old_user) = match state.id.take() {
            Some(id) => (Some(id), state.user.take()),
            None => (state.destroyed, state.destroyed_user.take()),
        };
        let mut fresh = State::new(now, self.0.shared.policy.deadline(now, now));
        fresh.destroyed = old;
        fresh.destroyed_user = old_user;
        fresh.stale_cookie = state.stale_cookie;
        fresh.transport = state.transport;
        fresh.csrf_nonce = state.csrf_nonce;
        fresh.new_csrf_nonce = state.new_csrf_nonce;
        fresh.user_agent = state.user_agent.take();
        fresh.address = state.address;
        *state = fresh;
    }

    /// The name this session goes by in the layer's log lines (the `session` field), for an
    /// application's own: a keyed hash of the id, never the id. `None` for a new session
    /// until the response stores it.
    ///
    /// ```
    /// use sessionware::Session;
    ///
    /// async fn checkout(session: Session) {
    ///     if let Some(log_id) = session.log_id() {
    ///         tracing::info!(session = %log_id, "checkout started");
    ///     }
    /// }
    /// ```
    pub fn log_id(&self) -> Option<crate::LogId> {
        let id = self.state().id?;
        Some(self.0.shared.keys.log_id(&id))
    }

    /// The stored session's id; `None` for a new session until the response stores it. After
    /// [`cycle_id`](Self::cycle_id) this is still the old id until write-back.
    pub fn id(&self) -> Option<SessionId> {
        self.state().id
    }

    /// When the session expires unless used again: the earlier of the idle and absolute
    /// deadlines. For a new session, the deadline it will get if it is stored now.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.state().expires_at
    }

    /// When the session was created.
    pub fn created_at(&self) -> OffsetDateTime {
        self.state().created_at
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("Session")
            .field("id", &state.id)
            .field("keys", &state.data.len())
            .field("expires_at", &state.expires_at)
            .finish()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(Slot(session)) = parts.extensions.get::<Slot>().cloned() else {
            return Err(SessionRejection {
                error: Error::MissingLayer,
                handler: None,
            });
        };
        // `load` has logged the failure: it knows which session it was.
        match session.load(parts).await {
            Ok(()) => Ok(session),
            Err(error) => Err(SessionRejection {
                error,
                handler: session.0.shared.on_error.clone(),
            }),
        }
    }
}

/// `Option<Session>`: the session the client presented, if the store holds it live, and `None`
/// for a visitor without one (no token, a token that does not verify, or one naming a session
/// that ended). For routes that act only on existing sessions; nothing a `None` handler does
/// creates one. A store failure is still the rejection (`503`).
impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let session = <Session as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        let stored = session.state().id.is_some();
        Ok(stored.then_some(session))
    }
}

/// The session a request's token names, if the layer may use it. A refused token is counted,
/// announced and its cookie removed; a conflicting pair is counted and announced, and its
/// cookies are left alone: removing ours would leave the planted one the only valid cookie.
pub(crate) fn usable<T>(shared: &Shared, state: &mut State, presented: Presented<T>) -> Option<T> {
    match presented {
        Presented::Nothing => None,
        Presented::Valid(value) => Some(value),
        Presented::Invalid(claimed) => {
            state.stale_cookie = true;
            shared.metrics.refused.increment(1);
            shared.emit(|| (SessionEventKind::TokenRefused, Some(claimed), None));
            None
        }
        Presented::Conflicting(first, other) => {
            shared.metrics.conflicting.increment(1);
            shared.emit(|| {
                let kind = SessionEventKind::ConflictingCookies { other };
                (kind, Some(first), None)
            });
            None
        }
    }
}

/// What a request presents: the header's token first (API clients), else the session cookies;
/// `state` learns the transport and the CSRF nonce that came with them. `open` judges a token
/// for its transport (an id's signature, or a sealed session), `id` names the session a
/// judged token presents.
pub(crate) fn presented<T>(
    shared: &Shared,
    headers: &http::HeaderMap,
    state: &mut State,
    open: impl Fn(Transport, &str) -> Option<T>,
    id: impl Fn(&T) -> SessionId,
) -> Presented<T> {
    let name = &shared.cookie_name;
    let by_header = shared.header.as_ref().and_then(|h| {
        h.read_with(&shared.keys, headers, |token| {
            open(Transport::Header, token)
        })
    });
    if let Some(presented) = by_header {
        state.transport = Transport::Header;
        return presented;
    }
    let read = shared.cookie.read_with(
        name,
        &shared.csrf_cookie_name,
        &shared.keys,
        headers,
        |token| open(Transport::Cookie, token),
        id,
    );
    state.csrf_nonce = read.csrf_nonce;
    read.presented
}
