//! The layer: the builder of every setting, applied around each route it covers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use cookie::SameSite;
use sessionware_core::time::Duration as TimeDuration;
use sessionware_core::{Clock, ExpiryPolicy, SessionStore, SystemClock};
use tower_layer::Layer;

use crate::config::Shared;
use crate::cookie::CookieConfig;
use crate::header::HeaderConfig;
use crate::service::SessionService;
use crate::token::Keys;
use crate::users::UserSessions;
use crate::{Error, Key};

/// Adds sessions to every route below it: a [`Session`](crate::Session) extractor backed by `store`.
///
/// ```
/// use axum::{Router, routing::get};
/// use sessionware::{Key, Session, SessionLayer};
/// use sessionware_memory::MemoryStore;
/// # use tower::ServiceExt as _;
///
/// async fn count(session: Session) -> Result<String, sessionware::Error> {
///     let n: u64 = session.get("count")?.unwrap_or(0);
///     session.insert("count", n + 1)?;
///     Ok((n + 1).to_string())
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = Key::from_hex(&"2f4c9a1be0d37786".repeat(4))?; // from your secret store, 32 bytes or more
/// let app = Router::new()
///     .route("/", get(count))
///     .layer(SessionLayer::new(MemoryStore::new()).with_signing_key(key));
///
/// let response = app.oneshot(http::Request::new(axum::body::Body::empty())).await?;
/// let cookie = response.headers()["set-cookie"].to_str()?;
/// assert!(cookie.starts_with("__Host-session="));
/// assert!(cookie.contains("HttpOnly") && cookie.contains("Secure") && cookie.contains("SameSite=Lax"));
/// # Ok(()) }
/// ```
///
/// # Defaults
///
/// - Cookie `__Host-session`, `HttpOnly; Secure; SameSite=Lax; Path=/`, `Max-Age` following
///   the session's deadline.
/// - [`ExpiryPolicy::new`]: 24 hours idle, 30 days absolute.
/// - A store timeout of 5 seconds; a store that fails or times out answers `503`.
/// - Without [`with_signing_key`](Self::with_signing_key), a random key made at start-up (with
///   a warning): sessions then end when the process does, and instances cannot share them.
#[derive(Clone)]
#[must_use = "a layer does nothing until it is applied with `Router::layer`"]
pub struct SessionLayer {
    /// Shared, so that `layer` (which axum may call for every route) costs one count.
    pub(crate) shared: Arc<Shared>,
}

impl SessionLayer {
    /// The default limit on a session's data: 256 KiB of JSON.
    pub const DEFAULT_MAX_SIZE: usize = 256 * 1024;

    /// How many times, by default, write-back re-runs [`Session::update`](crate::Session::update)
    /// closures after the store refused a compare-and-set; see
    /// [`with_update_retries`](Self::with_update_retries).
    pub const DEFAULT_UPDATE_RETRIES: u32 = 16;

    /// A layer that keeps sessions in `store`, with the defaults above. With a
    /// [`CookieStore`](crate::CookieStore) the sessions live in the client's cookie instead,
    /// sealed with a key derived from this layer's key.
    pub fn new(store: impl SessionStore) -> Self {
        // Without randomness there is no key: then nothing verifies and nothing is signed
        // (a write-back logs an error and issues no token) until `with_signing_key` sets one.
        let key = Key::generate().ok();
        let cookie = CookieConfig::default();
        let store_name = store.name();
        // The cookie store is a store to the application (one line to switch) and a mode to
        // the layer, which then never calls it.
        let any = &store as &dyn std::any::Any;
        let cookie_store = any
            .downcast_ref::<crate::CookieStore>()
            .or_else(|| any.downcast_ref::<Arc<crate::CookieStore>>().map(|s| &**s))
            .cloned();
        let store: Arc<dyn crate::dyn_store::DynSessionStore> = Arc::new(store);
        let metrics = crate::observe::Metrics::new(store_name);
        Self {
            shared: Arc::new(Shared {
                metrics,
                store: store.clone(),
                raw_store: store,
                at_rest: false,
                cookie_store,
                keys: Keys::new(key),
                cookie_name: cookie.full_name(),
                csrf_cookie_name: format!("{}-csrf", cookie.full_name()),
                cookie,
                policy: ExpiryPolicy::new(),
                clock: Arc::new(SystemClock),
                timeout: Duration::from_secs(5),
                on_error: None,
                on_event: None,
                header: None,
                record_address: false,
                max_per_user: None,
                clear_site_data: false,
                max_size: Some(Self::DEFAULT_MAX_SIZE),
                update_retries: Self::DEFAULT_UPDATE_RETRIES,
                generated_key: true,
                key_warning: Arc::new(std::sync::Once::new()),
            }),
        }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.shared)
    }

    /// Changes a cookie attribute; the name follows, since the attributes decide whether the
    /// `__Host-` prefix applies.
    fn cookie_mut(mut self, change: impl FnOnce(&mut CookieConfig)) -> Self {
        let shared = self.shared_mut();
        change(&mut shared.cookie);
        shared.cookie_name = shared.cookie.full_name();
        shared.csrf_cookie_name = format!("{}-csrf", shared.cookie_name);
        self
    }

    /// The key that signs new tokens (and verifies them). Replaces the current signing key;
    /// keys added with [`with_verifying_key`](Self::with_verifying_key) stay.
    pub fn with_signing_key(mut self, key: Key) -> Self {
        let shared = self.shared_mut();
        shared.keys.set_signing(key);
        shared.generated_key = false;
        shared.rebuild_store();
        self
    }

    /// A key that verifies tokens but signs none: the previous key, during a rotation. Keep it
    /// until the sessions it signed have expired (the absolute lifetime), then drop it.
    pub fn with_verifying_key(mut self, key: Key) -> Self {
        let shared = self.shared_mut();
        shared.keys.add_verifying(key);
        shared.rebuild_store();
        self
    }

    /// Encrypts every data value before it reaches the store (off by default), with
    /// AES-256-GCM under a key derived from the layer's key, the session id and the value's
    /// key name as associated data: whoever reads the store (a backup, a replica, a shared
    /// Redis) reads no session data, and a value copied to another session or key is refused
    /// as corrupt. Rotation works as for signing: the first key encrypts, every key decrypts.
    ///
    /// What stays readable in the store: session ids, key names, creation times, deadlines
    /// and the user a session is bound to (the per-user index needs it).
    /// [`Session::increment`](crate::Session::increment) cannot add inside ciphertext: with
    /// encryption on, each write that increments reads the current value first and stores the
    /// sum with a compare-and-set, retried on contention (one more round trip; no count lost).
    /// Under heavy contention on one key a write may give up after 64 rounds with
    /// [`Error::UpdateConflict`] (`409`), storing nothing.
    ///
    /// Values stored in clear before this is turned on do not decrypt: those sessions read as
    /// unreadable and their clients start fresh ones. It has no effect with the
    /// [`CookieStore`](crate::CookieStore), whose cookies are encrypted anyway.
    pub fn with_encryption_at_rest(mut self, enabled: bool) -> Self {
        let shared = self.shared_mut();
        shared.at_rest = enabled;
        shared.rebuild_store();
        self
    }

    /// The expiry policy: idle timeout, absolute lifetime, refresh interval.
    pub fn with_expiry(mut self, policy: ExpiryPolicy) -> Self {
        self.shared_mut().policy = policy;
        self
    }

    /// Shorthand for the idle timeout of the [expiry policy](Self::with_expiry).
    pub fn with_idle_timeout(mut self, idle: Option<TimeDuration>) -> Self {
        let shared = self.shared_mut();
        shared.policy = shared.policy.with_idle_timeout(idle);
        self
    }

    /// Shorthand for the absolute lifetime of the [expiry policy](Self::with_expiry).
    pub fn with_absolute_lifetime(mut self, lifetime: Option<TimeDuration>) -> Self {
        let shared = self.shared_mut();
        shared.policy = shared.policy.with_absolute_lifetime(lifetime);
        self
    }

    /// The cookie's name (default `session`, sent as `__Host-session` while the `__Host-`
    /// prefix applies; see [`with_host_prefix`](Self::with_host_prefix)). The token's
    /// signature is bound to it.
    pub fn with_cookie_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.cookie_mut(|cookie| cookie.name = name)
    }

    /// The cookie's `Domain` (default none: this host only). Setting one drops the default
    /// `__Host-` prefix, which forbids it.
    pub fn with_domain(self, domain: impl Into<String>) -> Self {
        let domain = domain.into();
        self.cookie_mut(|cookie| cookie.domain = Some(domain))
    }

    /// The cookie's `Path` (default `/`). A path other than `/` drops the default `__Host-`
    /// prefix, which requires `/`.
    pub fn with_path(self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.cookie_mut(|cookie| cookie.path = path)
    }

    /// The cookie's `SameSite` (default `Lax`).
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.shared_mut().cookie.same_site = same_site;
        self
    }

    /// Whether the cookie is `Secure` (default `true`). Browsers accept `Secure` cookies from
    /// `http://localhost`, so turn it off only for plain-HTTP hosts other than localhost (which
    /// also drops the default `__Host-` prefix).
    pub fn with_secure(self, secure: bool) -> Self {
        self.cookie_mut(|cookie| cookie.secure = secure)
    }

    /// Whether the cookie is named `__Host-<name>`. Browsers accept such a cookie only with
    /// `Secure`, `Path=/` and no `Domain`, and only from the host itself, so no sibling
    /// subdomain can set or shadow it (cookie tossing).
    ///
    /// By default the prefix is used whenever the other attributes allow it (the defaults do);
    /// `true` enforces those attributes whatever else is configured, `false` never uses it.
    pub fn with_host_prefix(self, enabled: bool) -> Self {
        self.cookie_mut(|cookie| cookie.host_prefix = Some(enabled))
    }

    /// Whether the cookie goes without `Max-Age`, so the browser drops it when it closes
    /// (default `false`). The session still ends at its deadline in the store.
    pub fn with_browser_session_cookie(mut self, enabled: bool) -> Self {
        self.shared_mut().cookie.browser_session = enabled;
        self
    }

    /// Whether the cookie is `Partitioned` (default `false`): with CHIPS, a browser keys it by
    /// the top-level site as well, so an application embedded in other sites (a widget, a
    /// support chat in an iframe) keeps a separate session per embedding site, and browsers
    /// that block third-party cookies still send it. The attribute requires `Secure`, which
    /// goes with it even after [`with_secure(false)`](Self::with_secure). It applies to the
    /// session cookie, its removal and the CSRF nonce cookie alike.
    pub fn with_partitioned(mut self, enabled: bool) -> Self {
        self.shared_mut().cookie.partitioned = enabled;
        self
    }

    /// The clock for deadlines (default the system clock); tests pass a
    /// [`ManualClock`](crate::ManualClock) to move time.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.shared_mut().clock = Arc::new(clock);
        self
    }

    /// The longest any one store call may take (default 5 seconds). A call that takes longer
    /// fails with [`Error::Store`]`(`[`Timeout`](sessionware_core::Error::Timeout)`)`: `503`.
    pub fn with_store_timeout(mut self, timeout: TimeDuration) -> Self {
        // A negative timeout is no time at all.
        self.shared_mut().timeout = timeout.try_into().unwrap_or(Duration::ZERO);
        self
    }

    /// Also accepts the token as `Authorization: Bearer <token>`, for API and mobile clients,
    /// alongside the cookie: one layer, one store, one user index for a browser app and its
    /// mobile client.
    ///
    /// A request that carries the header is a header client: its new or renewed tokens come
    /// back in the `Session-Token` response header, never in a cookie, and an ended session
    /// answers with an empty `Session-Token`. On first contact a client sends any bearer value
    /// (`Authorization: Bearer new`); it is refused like a bad cookie, and the session the
    /// request stores comes back in `Session-Token`. Requests without the header use the cookie.
    ///
    /// `false` turns the header transport off again (the default).
    pub fn with_bearer_tokens(mut self, enabled: bool) -> Self {
        self.shared_mut().header = enabled.then(HeaderConfig::bearer);
        self
    }

    /// Like [`with_bearer_tokens`](Self::with_bearer_tokens), with the bare token in the header
    /// `name` both ways (say `x-session-token`) instead of `Authorization: Bearer`.
    pub fn with_token_header(mut self, name: http::HeaderName) -> Self {
        self.shared_mut().header = Some(HeaderConfig::named(name));
        self
    }

    /// Records the client's IP address with the device facts at
    /// [`login`](crate::Session::login) (off by default: an address is personal data). Needs
    /// the server to provide it: `app.into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn with_client_address(mut self, record: bool) -> Self {
        self.shared_mut().record_address = record;
        self
    }

    /// Caps the live sessions one user may have: a [`login`](crate::Session::login) beyond the
    /// cap ends that user's oldest sessions (by creation). It costs the login one listing of
    /// the user's sessions and a delete per session ended; other requests pay nothing.
    pub fn with_max_sessions_per_user(mut self, max: usize) -> Self {
        self.shared_mut().max_per_user = Some(max.max(1));
        self
    }

    /// Limits a session's data to `bytes` of JSON (default [`Self::DEFAULT_MAX_SIZE`]; `None`
    /// for no limit). An `insert` that would go over fails with [`Error::TooLarge`] (`413`)
    /// and changes nothing, so nothing of it is written.
    pub fn with_max_size(mut self, bytes: Option<usize>) -> Self {
        self.shared_mut().max_size = bytes;
        self
    }

    /// How many times write-back retries a request's [`update`](crate::Session::update)s
    /// when the store refuses their compare-and-set because another request changed one of
    /// the keys since this one read it (default [`Self::DEFAULT_UPDATE_RETRIES`]). Each retry
    /// runs the closures again on the values the refusal returned and costs one store call;
    /// once the retries are spent the response is [`Error::UpdateConflict`](crate::Error)
    /// (`409`) and nothing of the request's changes is stored. `0` tries once.
    pub fn with_update_retries(mut self, retries: u32) -> Self {
        self.shared_mut().update_retries = retries;
        self
    }

    /// Adds `Clear-Site-Data: "cookies"` to [`logout`](crate::Session::logout) responses, so
    /// the browser also drops every other cookie of the site. Left out when the same response
    /// starts a new session (data inserted after `logout`, such as a flash message), which
    /// the header would wipe too.
    pub fn with_clear_site_data(mut self, enabled: bool) -> Self {
        self.shared_mut().clear_site_data = enabled;
        self
    }

    /// Lists and revokes any user's sessions outside a request (an admin page, a password
    /// reset), with this layer's store and settings.
    pub fn users(&self) -> UserSessions {
        UserSessions::new(self.shared.clone())
    }

    /// Builds the response sent when the store fails (instead of the default short `503`),
    /// both when a handler extracts the session and at write-back.
    pub fn with_error_handler(
        mut self,
        handler: impl Fn(&Error) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.shared_mut().on_error = Some(Arc::new(handler));
        self
    }
}

impl SessionLayer {
    /// Hands every [`SessionEvent`](crate::SessionEvent) to `handler` as it happens, in order: sign-ins,
    /// sign-outs, id renewals, revocations (by the user, an admin, or the per-user cap),
    /// sessions found ended at load, refused tokens. For an audit log of the application's
    /// own.
    ///
    /// The handler runs on the request's task, inside the layer, so keep it short: push the
    /// event into a channel (`tokio::sync::mpsc::UnboundedSender::send` never waits) and
    /// write it out elsewhere. Events report what was stored: a sign-in the store refused
    /// (`409`) or could not store (`503`) sends none.
    ///
    /// ```
    /// use sessionware::{SessionEventKind, SessionLayer};
    /// use sessionware_memory::MemoryStore;
    ///
    /// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    /// let layer = SessionLayer::new(MemoryStore::new()).with_event_handler(move |event| {
    ///     let _ = tx.send(event.clone());
    /// });
    /// // elsewhere: while let Some(event) = rx.recv().await { audit_log.write(event) }
    /// # let _ = (layer, &mut rx);
    /// ```
    pub fn with_event_handler(
        mut self,
        handler: impl Fn(&crate::SessionEvent) + Send + Sync + 'static,
    ) -> Self {
        self.shared_mut().on_event = Some(Arc::new(handler));
        self
    }
}

impl SessionLayer {
    /// How many live sessions the store holds, also set as the gauge
    /// `sessionware_sessions_live{store}`; `None` when the store cannot count. Each store
    /// documents its method and cost (memory and SQL: exact, in time proportional to the live
    /// sessions; Redis: exact up to a scan budget, an estimate beyond), so call it from a
    /// metrics scrape or a periodic task, not per request.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), sessionware::Error> {
    /// let layer = sessionware::SessionLayer::new(sessionware_memory::MemoryStore::new());
    /// assert_eq!(layer.count_sessions().await?, Some(0));
    /// # Ok(()) }
    /// ```
    pub async fn count_sessions(&self) -> Result<Option<u64>, Error> {
        let shared = &self.shared;
        let now = shared.clock.now();
        let count = shared
            .call(crate::observe::Op::Count, None, shared.store.count(now))
            .await?;
        if let Some(n) = count {
            shared.metrics.live.set(n as f64);
        }
        Ok(count)
    }
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("cookie", &self.shared.cookie_name)
            .field("policy", &self.shared.policy)
            .field("timeout", &self.shared.timeout)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        if self.shared.generated_key {
            // axum applies a layer once per route and method: one warning, not one each.
            self.shared.key_warning.call_once(|| {
                tracing::warn!(
                    "SessionLayer has no signing key; using a random one: sessions will not \
                     survive a restart or be shared between instances"
                );
            });
        }
        SessionService::new(inner, self.shared.clone())
    }
}
