//! The layer and extractor over real HTTP on loopback, on the memory store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use sessionware::time::{Duration, OffsetDateTime};
use sessionware::{
    Error, ExpiryPolicy, Key, ManualClock, SameSite, Session, SessionId, SessionLayer,
    SessionRejection, SessionStore,
};
use sessionware_core::{ChangeSet, Loaded, Record};
use sessionware_memory::MemoryStore;
use sessionware_test_support::DownStore as Down;
use sessionware_test_support::client::{Client, serve};
use tokio::sync::Notify;

/// The layer's default cookie name: `session` with the `__Host-` prefix its defaults allow.
const NAME: &str = "__Host-session";

fn key(byte: u8) -> Key {
    Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| byte ^ i as u8)).unwrap()
}

async fn inc(session: Session) -> Result<String, Error> {
    let n: u64 = session.get("count")?.unwrap_or(0);
    session.insert("count", n + 1)?;
    Ok((n + 1).to_string())
}

async fn peek(session: Session) -> Result<String, Error> {
    Ok(session.get::<u64>("count")?.unwrap_or(0).to_string())
}

async fn set(session: Session, Path((k, v)): Path<(String, String)>) -> Result<(), Error> {
    session.insert(k, v)
}

async fn get_key(session: Session, Path(k): Path<String>) -> Result<String, Error> {
    Ok(session.get::<String>(&k)?.unwrap_or_default())
}

#[derive(Clone, Default)]
struct Gate {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

/// Loads the session, waits until the test releases it, then writes.
async fn slow_set(session: Session, State(gate): State<Gate>) -> Result<(), Error> {
    gate.entered.notify_one();
    gate.release.notified().await;
    session.insert("late", "write")
}

fn routes(layer: SessionLayer) -> Router {
    Router::new()
        .route("/inc", get(inc))
        .route("/peek", get(peek))
        .route("/health", get(|| async { "ok" }))
        .route("/set/{k}/{v}", get(set))
        .route("/get/{k}", get(get_key))
        .route("/destroy", get(|s: Session| async move { s.destroy() }))
        .route(
            "/destroy-then-flash",
            get(|s: Session| async move {
                s.destroy();
                s.insert("flash", "signed out")
            }),
        )
        .route("/cycle", get(|s: Session| async move { s.cycle_id() }))
        .route("/clear", get(|s: Session| async move { s.clear() }))
        .route(
            "/id",
            get(|s: Session| async move { s.id().map(|id| id.to_string()).unwrap_or_default() }),
        )
        .route("/slow-set", get(slow_set))
        .with_state(Gate::default())
        .layer(layer)
}

async fn app(layer: SessionLayer) -> std::net::SocketAddr {
    serve(routes(layer)).await
}

fn layer(store: impl SessionStore) -> SessionLayer {
    SessionLayer::new(store).with_signing_key(key(1))
}

#[tokio::test]
async fn first_visit_sets_a_secure_cookie_and_later_visits_continue() {
    let store = MemoryStore::new();
    let addr = app(layer(store.clone())).await;
    let mut c = Client::new(addr);

    let r = c.get("/inc").await;
    assert_eq!((r.status, r.body.as_str()), (200, "1"));
    let cookie = r.cookie(NAME).expect("a new session sets its cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.same_site(), Some(SameSite::Lax));
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.domain(), None);
    assert_eq!(
        cookie.max_age(),
        Some(Duration::hours(24)),
        "Max-Age follows the idle deadline"
    );
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    assert_eq!(store.len(), 1);

    let r = c.get("/inc").await;
    assert_eq!(r.body, "2");
    assert!(r.set_cookies.is_empty(), "nothing about the cookie changed");
    assert_eq!(c.get("/peek").await.body, "2");
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn a_new_visitor_that_only_reads_stores_nothing_and_gets_no_cookie() {
    let store = MemoryStore::new();
    let addr = app(layer(store.clone())).await;
    let mut c = Client::new(addr);
    let r = c.get("/peek").await;
    assert_eq!((r.status, r.body.as_str()), (200, "0"));
    assert!(r.set_cookies.is_empty());
    assert_eq!(r.cache_control, None);
    assert_eq!(store.len(), 0, "an empty new session is not stored");
}

/// A real memory store that counts the calls the layer makes.
#[derive(Clone, Default)]
struct Counting {
    store: MemoryStore,
    calls: Arc<AtomicUsize>,
}

impl Counting {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

impl SessionStore for Counting {
    async fn create(&self, r: &Record) -> Result<SessionId, sessionware_core::Error> {
        self.count();
        self.store.create(r).await
    }
    async fn load(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<Record>, sessionware_core::Error> {
        self.count();
        self.store.load(id, now).await
    }
    async fn load_refreshed(
        &self,
        id: &SessionId,
        policy: &ExpiryPolicy,
        now: OffsetDateTime,
    ) -> Result<Option<Loaded>, sessionware_core::Error> {
        self.count();
        self.store.load_refreshed(id, policy, now).await
    }
    async fn apply(
        &self,
        id: &SessionId,
        c: &ChangeSet,
        now: OffsetDateTime,
    ) -> Result<bool, sessionware_core::Error> {
        self.count();
        self.store.apply(id, c, now).await
    }
    async fn touch(
        &self,
        id: &SessionId,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, sessionware_core::Error> {
        self.count();
        self.store.touch(id, at, now).await
    }
    async fn rekey(
        &self,
        old: &SessionId,
        user: Option<&str>,
        r: &Record,
        now: OffsetDateTime,
    ) -> Result<Option<SessionId>, sessionware_core::Error> {
        self.count();
        self.store.rekey(old, user, r, now).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), sessionware_core::Error> {
        self.count();
        self.store.delete(id).await
    }
    async fn list_user(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Record>, sessionware_core::Error> {
        self.count();
        self.store.list_user(user, now).await
    }
    async fn delete_user(
        &self,
        user: &str,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
    ) -> Result<usize, sessionware_core::Error> {
        self.count();
        self.store.delete_user(user, keep, now).await
    }
}

#[tokio::test]
async fn store_calls_per_request() {
    let store = Counting::default();
    let addr = app(layer(store.clone())).await;
    let mut c = Client::new(addr);

    c.get("/health").await;
    assert_eq!(
        store.calls(),
        0,
        "a route that does not extract the session: no store call"
    );
    c.get("/peek").await;
    assert_eq!(
        store.calls(),
        0,
        "a new visitor that only reads: no store call"
    );
    c.get("/inc").await;
    assert_eq!(store.calls(), 1, "creating a session: one call");
    c.get("/peek").await;
    assert_eq!(store.calls(), 2, "a read: one call");
    c.get("/inc").await;
    assert_eq!(store.calls(), 4, "a write: the read and the change set");
    c.get("/health").await;
    assert_eq!(
        store.calls(),
        4,
        "still nothing for a route without the session"
    );
    c.get("/set/count/2").await;
    assert_eq!(store.calls(), 6, "a changed value: read and write");
    c.get("/set/count/2").await;
    assert_eq!(
        store.calls(),
        7,
        "writing the value a key already holds writes nothing"
    );
    let token = c.jar.clone().unwrap();
    let flipped = if &token[40..41] == "A" { "B" } else { "A" };
    let forged = format!("{}{flipped}{}", &token[..40], &token[41..]);
    let r = c
        .get_with_cookie_header("/peek", &format!("__Host-session={forged}"))
        .await;
    assert_eq!(r.body, "0");
    assert_eq!(
        store.calls(),
        7,
        "a token that fails verification costs no store lookup"
    );
}

#[tokio::test]
async fn tampered_foreign_and_unknown_cookies_start_a_fresh_session() {
    let store = MemoryStore::new();
    let addr = app(layer(store.clone())).await;
    let mut c = Client::new(addr);
    c.get("/inc").await;
    c.get("/inc").await;
    let good = c.jar.clone().unwrap();
    let (id_text, tag) = good.split_once('.').unwrap();

    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let other_id = SessionId::generate().unwrap();
    for bad in [
        flipped,
        format!("{other_id}.{tag}"),
        id_text.to_owned(),
        format!("{id_text}."),
        String::new(),
        "x".repeat(5000),
        format!("{good}{good}"),
    ] {
        let r = c
            .get_with_cookie_header("/peek", &format!("__Host-session={bad}"))
            .await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "0"),
            "{bad:?} is not accepted"
        );
        let removal = r.cookie(NAME).expect("the bad cookie is removed");
        assert_eq!(removal.max_age(), Some(Duration::ZERO));
    }

    // Signed for another cookie name: the tag is bound to the name.
    let addr2 = app(layer(MemoryStore::new()).with_cookie_name("other")).await;
    let r = Client::new(addr2)
        .get_with_cookie_header("/peek", &format!("__Host-other={good}"))
        .await;
    assert_eq!(r.body, "0");

    // A good cookie next to a bad one of the same name still works.
    let r = c
        .get_with_cookie_header(
            "/peek",
            &format!("__Host-session=garbage; __Host-session={good}"),
        )
        .await;
    assert_eq!(r.body, "2");
    assert_eq!(
        c.get("/peek").await.body,
        "2",
        "the real session was never touched"
    );
}

#[tokio::test]
async fn an_unknown_id_with_a_valid_signature_is_never_adopted() {
    let store = MemoryStore::new();
    let addr = app(layer(store.clone())).await;
    let mut c = Client::new(addr);
    c.get("/inc").await;
    let old = c.jar.clone().unwrap();
    c.get("/destroy").await;
    assert_eq!(c.jar, None, "destroy removed the cookie");

    // Replay the old, validly signed cookie.
    c.jar = Some(old.clone());
    let r = c.get("/inc").await;
    assert_eq!(r.body, "1", "a fresh session");
    let new = c.jar.clone().unwrap();
    assert_ne!(
        new.split('.').next(),
        old.split('.').next(),
        "a new id is issued"
    );
}

#[tokio::test]
async fn key_rotation_first_signs_all_verify() {
    let store = MemoryStore::new();
    let old_app = app(SessionLayer::new(store.clone()).with_signing_key(key(1))).await;
    let mut c = Client::new(old_app);
    c.get("/inc").await;

    let rotated = app(SessionLayer::new(store.clone())
        .with_signing_key(key(2))
        .with_verifying_key(key(1)))
    .await;
    let mut c = c.at(rotated);
    assert_eq!(
        c.get("/inc").await.body,
        "2",
        "a cookie signed with the old key still works"
    );
    c.get("/cycle").await;
    let new_only = app(SessionLayer::new(store.clone()).with_signing_key(key(2))).await;
    let mut c = c.at(new_only);
    assert_eq!(
        c.get("/inc").await.body,
        "3",
        "a cycled cookie is signed with the new key"
    );

    let mut stale = Client::new(old_app);
    stale.get("/inc").await;
    let mut stale = stale.at(new_only);
    assert_eq!(
        stale.get("/peek").await.body,
        "0",
        "once the old key is dropped, it fails"
    );
}

fn timed_layer(store: MemoryStore, clock: &ManualClock) -> SessionLayer {
    layer(store).with_clock(clock.clone()).with_expiry(
        ExpiryPolicy::new()
            .with_idle_timeout(Some(Duration::minutes(10)))
            .with_absolute_lifetime(Some(Duration::hours(1))),
    )
}

#[tokio::test]
async fn idle_timeout_slides_with_use_and_ends_an_unused_session() {
    let clock = ManualClock::new();
    let addr = app(timed_layer(MemoryStore::new(), &clock)).await;
    let mut c = Client::new(addr);
    c.get("/inc").await;

    clock.advance(Duration::minutes(9));
    let r = c.get("/peek").await;
    assert_eq!(r.body, "1", "alive before the idle deadline");
    let refreshed = r.cookie(NAME).expect("the refresh re-sends the cookie");
    assert_eq!(
        refreshed.max_age(),
        Some(Duration::minutes(10)),
        "Max-Age follows"
    );

    clock.advance(Duration::minutes(9));
    assert_eq!(c.get("/peek").await.body, "1", "the read slid the deadline");

    clock.advance(Duration::minutes(10));
    let r = c.get("/peek").await;
    assert_eq!(r.body, "0", "idle for the whole timeout: gone");
}

#[tokio::test]
async fn absolute_lifetime_ends_even_a_busy_session() {
    let clock = ManualClock::new();
    let policy = ExpiryPolicy::new()
        .with_idle_timeout(Some(Duration::minutes(10)))
        .with_absolute_lifetime(Some(Duration::minutes(57)));
    let addr = app(layer(MemoryStore::new())
        .with_clock(clock.clone())
        .with_expiry(policy))
    .await;
    let mut c = Client::new(addr);
    c.get("/inc").await;
    for minute in (5..60).step_by(5) {
        clock.advance(Duration::minutes(5));
        let r = c.get("/inc").await;
        assert_ne!(r.body, "1", "alive at minute {minute}");
        if minute == 50 {
            let cookie = r.cookie(NAME).expect("cookie re-sent");
            assert_eq!(
                cookie.max_age(),
                Some(Duration::minutes(7)),
                "capped by the lifetime"
            );
        }
        if minute == 55 {
            assert!(r.set_cookies.is_empty(), "the capped deadline did not move");
        }
    }
    clock.advance(Duration::minutes(5));
    assert_eq!(
        c.get("/peek").await.body,
        "0",
        "the absolute lifetime is over"
    );
}

#[tokio::test]
async fn reads_inside_the_refresh_interval_set_no_cookie() {
    let clock = ManualClock::new();
    let addr = app(timed_layer(MemoryStore::new(), &clock)).await;
    let mut c = Client::new(addr);
    c.get("/inc").await;
    clock.advance(Duration::seconds(30));
    let r = c.get("/peek").await;
    assert!(
        r.set_cookies.is_empty(),
        "a refresh under one minute is not worth a write"
    );
}

#[tokio::test]
async fn cookie_attributes_are_configurable() {
    let addr = app(layer(MemoryStore::new())
        .with_cookie_name("sid")
        .with_domain("example.test")
        .with_path("/app")
        .with_same_site(SameSite::Strict)
        .with_secure(false))
    .await;
    let r = Client::named(addr, "sid").get("/inc").await;
    let cookie = r.cookie("sid").unwrap();
    assert_eq!(cookie.domain(), Some("example.test"));
    assert_eq!(cookie.path(), Some("/app"));
    assert_eq!(cookie.same_site(), Some(SameSite::Strict));
    assert_eq!(cookie.secure(), None);
    assert_eq!(cookie.http_only(), Some(true), "HttpOnly is not negotiable");

    let addr = app(layer(MemoryStore::new())
        .with_host_prefix(true)
        .with_domain("ignored.test")
        .with_path("/ignored")
        .with_secure(false))
    .await;
    let mut c = Client::named(addr, "__Host-session");
    let cookie = c
        .get("/inc")
        .await
        .cookie("__Host-session")
        .cloned()
        .unwrap();
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.domain(), None);
    assert_eq!(c.get("/inc").await.body, "2");

    let addr = app(layer(MemoryStore::new()).with_browser_session_cookie(true)).await;
    let cookie = Client::new(addr)
        .get("/inc")
        .await
        .cookie(NAME)
        .cloned()
        .unwrap();
    assert_eq!(
        cookie.max_age(),
        None,
        "a browser-session cookie has no Max-Age"
    );
    assert_eq!(cookie.expires(), None);
}

#[tokio::test]
async fn destroy_deletes_and_removes_the_cookie_with_the_same_attributes() {
    let store = MemoryStore::new();
    let addr = app(layer(store.clone())
        .with_path("/")
        .with_same_site(SameSite::Strict))
    .await;
    let mut c = Client::new(addr);
    c.get("/inc").await;
    assert_eq!(store.len(), 1);
    let r = c.get("/destroy").await;
    let removal = r.cookie(NAME).unwrap();
    assert_eq!(removal.value(), "");
    assert_eq!(removal.max_age(), Some(Duration::ZERO));
    assert_eq!(removal.path(), Some("/"));
    assert_eq!(removal.same_site(), Some(SameSite::Strict));
    assert_eq!(removal.http_only(), Some(true));
    assert_eq!(removal.secure(), Some(true));
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    assert_eq!(store.len(), 0, "deleted from the store");
}

#[tokio::test]
async fn data_inserted_after_destroy_lives_in_a_new_session() {
    let store = MemoryStore::new();
    let addr = app(layer(store.clone())).await;
    let mut c = Client::new(addr);
    c.get("/inc").await;
    let old = c.get("/id").await.body;
    c.get("/destroy-then-flash").await;
    assert_eq!(c.get("/get/flash").await.body, "signed out");
    assert_eq!(c.get("/peek").await.body, "0", "the old data is gone");
    assert_ne!(c.get("/id").await.body, old);
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn cycle_id_keeps_data_under_a_new_id_and_kills_the_old_one() {
    let store = MemoryStore::new();
    let addr = app(layer(store.clone())).await;
    let mut c = Client::new(addr);
    c.get("/inc").await;
    let old_cookie = c.jar.clone().unwrap();
    let old_id = c.get("/id").await.body;
    let r = c.get("/cycle").await;
    assert!(r.cookie(NAME).is_some());
    assert_ne!(c.get("/id").await.body, old_id);
    assert_eq!(c.get("/peek").await.body, "1", "data kept");
    let r = c
        .get_with_cookie_header("/peek", &format!("__Host-session={old_cookie}"))
        .await;
    assert_eq!(r.body, "0", "the old id no longer works");
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn clear_empties_the_session_but_keeps_it() {
    let addr = app(layer(MemoryStore::new())).await;
    let mut c = Client::new(addr);
    c.get("/inc").await;
    c.get("/set/a/b").await;
    let id = c.get("/id").await.body;
    c.get("/clear").await;
    assert_eq!(c.get("/peek").await.body, "0");
    assert_eq!(c.get("/get/a").await.body, "");
    assert_eq!(c.get("/id").await.body, id);
}

#[tokio::test]
async fn concurrent_requests_changing_different_keys_both_survive() {
    let addr = app(layer(MemoryStore::new())).await;
    let mut c = Client::new(addr);
    c.get("/inc").await;
    for round in 0..20 {
        let (mut a, mut b) = (c.at(addr), c.at(addr));
        let (ka, kb) = (format!("/set/a{round}/x"), format!("/set/b{round}/y"));
        let (ra, rb) = tokio::join!(a.get(&ka), b.get(&kb));
        assert_eq!((ra.status, rb.status), (200, 200));
    }
    for round in 0..20 {
        assert_eq!(c.get(&format!("/get/a{round}")).await.body, "x");
        assert_eq!(c.get(&format!("/get/b{round}")).await.body, "y");
    }
}

#[tokio::test]
async fn a_write_to_a_session_destroyed_meanwhile_is_refused_not_resurrected() {
    let store = MemoryStore::new();
    let gate = Gate::default();
    let router = Router::new()
        .route("/slow-set", get(slow_set))
        .route("/inc", get(inc))
        .route("/destroy", get(|s: Session| async move { s.destroy() }))
        .with_state(gate.clone())
        .layer(layer(store.clone()));
    let addr = serve(router).await;
    let mut c = Client::new(addr);
    c.get("/inc").await;

    let mut slow = c.at(addr);
    let pending = tokio::spawn(async move { slow.get("/slow-set").await });
    gate.entered.notified().await;
    c.get("/destroy").await;
    gate.release.notify_one();
    let r = pending.await.unwrap();
    assert_eq!(
        r.status, 409,
        "the write was not stored, so the request did not succeed"
    );
    assert!(r.cookie(NAME).is_some_and(|c| c.value().is_empty()));
    assert_eq!(store.len(), 0, "the destroyed session stays destroyed");
}

#[tokio::test]
async fn a_value_of_the_wrong_type_is_a_typed_error_and_is_kept() {
    let addr = app(layer(MemoryStore::new())).await;
    let mut c = Client::new(addr);
    c.get("/set/count/not-a-number").await;
    let r = c.get("/inc").await;
    assert_eq!(r.status, 500);
    assert_eq!(
        c.get("/get/count").await.body,
        "not-a-number",
        "the value was not lost"
    );
}

#[tokio::test]
async fn without_the_layer_extraction_is_a_clear_500() {
    let addr = serve(Router::new().route("/peek", get(peek))).await;
    let r = Client::new(addr).get("/peek").await;
    assert_eq!(r.status, 500);
    assert!(r.body.contains("session"));
}

/// A store that never answers.
#[derive(Clone)]
struct Stalled;

impl SessionStore for Stalled {
    async fn create(&self, _: &Record) -> Result<SessionId, sessionware_core::Error> {
        std::future::pending().await
    }
    async fn load(
        &self,
        _: &SessionId,
        _: OffsetDateTime,
    ) -> Result<Option<Record>, sessionware_core::Error> {
        std::future::pending().await
    }
    async fn apply(
        &self,
        _: &SessionId,
        _: &ChangeSet,
        _: OffsetDateTime,
    ) -> Result<bool, sessionware_core::Error> {
        std::future::pending().await
    }
    async fn touch(
        &self,
        _: &SessionId,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> Result<bool, sessionware_core::Error> {
        std::future::pending().await
    }
    async fn rekey(
        &self,
        _: &SessionId,
        _: Option<&str>,
        _: &Record,
        _: OffsetDateTime,
    ) -> Result<Option<SessionId>, sessionware_core::Error> {
        std::future::pending().await
    }
    async fn delete(&self, _: &SessionId) -> Result<(), sessionware_core::Error> {
        std::future::pending().await
    }
    async fn list_user(
        &self,
        _: &str,
        _: OffsetDateTime,
    ) -> Result<Vec<Record>, sessionware_core::Error> {
        std::future::pending().await
    }
    async fn delete_user(
        &self,
        _: &str,
        _: Option<&SessionId>,
        _: OffsetDateTime,
    ) -> Result<usize, sessionware_core::Error> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_failing_store_gives_503_on_session_routes_only() {
    // Creating a session (write-back) and loading one (extraction) both fail.
    let addr = app(layer(Down)).await;
    let mut c = Client::new(addr);
    let r = c.get("/inc").await;
    assert_eq!(
        r.status, 503,
        "a write that could not be stored never answers 2xx"
    );
    assert_eq!(r.body, "session store unavailable\n");
    assert!(r.set_cookies.is_empty());
    let token = {
        let ok = app(layer(MemoryStore::new())).await;
        let mut c = Client::new(ok);
        c.get("/inc").await;
        c.jar.unwrap()
    };
    let r = c
        .get_with_cookie_header("/peek", &format!("__Host-session={token}"))
        .await;
    assert_eq!(r.status, 503, "a load that fails");
    let r = c.get("/health").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "ok"),
        "routes without the session work"
    );
}

#[tokio::test]
async fn a_stalled_store_gives_503_within_the_timeout() {
    let addr = app(layer(Stalled).with_store_timeout(Duration::milliseconds(100))).await;
    let mut c = Client::new(addr);
    let token = {
        let ok = app(layer(MemoryStore::new())).await;
        let mut c = Client::new(ok);
        c.get("/inc").await;
        c.jar.unwrap()
    };
    let started = std::time::Instant::now();
    let r = c
        .get_with_cookie_header("/peek", &format!("__Host-session={token}"))
        .await;
    assert_eq!(r.status, 503);
    // Bounded, not timed: the point is that it returns at all, well before a hang would.
    assert!(started.elapsed() < StdDuration::from_secs(10));
    assert_eq!(c.get("/health").await.status, 200);
}

#[tokio::test]
async fn a_custom_error_handler_shapes_the_failure() {
    let addr = app(layer(Down).with_error_handler(|e: &Error| {
        (
            http::StatusCode::SERVICE_UNAVAILABLE,
            format!("custom: {}", e.status()),
        )
            .into_response()
    }))
    .await;
    let r = Client::new(addr).get("/inc").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "custom: 503 Service Unavailable")
    );
}

#[tokio::test]
async fn a_handler_can_see_the_rejection_itself() {
    let router = Router::new()
        .route(
            "/maybe",
            get(|s: Result<Session, SessionRejection>| async move {
                match s {
                    Ok(_) => "session".to_owned(),
                    Err(r) => format!("degraded: {}", r.error()),
                }
            }),
        )
        .layer(layer(Down));
    let addr = serve(router).await;
    let token = {
        let ok = app(layer(MemoryStore::new())).await;
        let mut c = Client::new(ok);
        c.get("/inc").await;
        c.jar.unwrap()
    };
    let r = Client::new(addr)
        .get_with_cookie_header("/maybe", &format!("__Host-session={token}"))
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.starts_with("degraded: session store failed"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_custom_token_header_carries_the_token_both_ways() {
    let store = MemoryStore::new();
    let name = http::HeaderName::from_static("x-session-token");
    let addr = app(layer(store.clone()).with_token_header(name)).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");

    let first = http
        .get(url("/inc"))
        .header("x-session-token", "")
        .send()
        .await
        .unwrap();
    assert!(
        first.headers().get("set-cookie").is_none(),
        "a header client gets no cookie"
    );
    let token = first.headers()["x-session-token"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(first.text().await.unwrap(), "1");
    let second = http
        .get(url("/inc"))
        .header("x-session-token", &token)
        .send()
        .await
        .unwrap();
    assert!(
        second.headers().get("x-session-token").is_none(),
        "unchanged: not re-sent"
    );
    assert_eq!(second.text().await.unwrap(), "2");

    // A header token is no cookie: the transport is part of what is signed, so a token a page
    // script could read never becomes the HttpOnly credential, and the reverse.
    let r = Client::new(addr)
        .get_with_cookie_header("/peek", &format!("__Host-session={token}"))
        .await;
    assert_eq!(r.body, "0", "a header token sent as a cookie is refused");
    let mut browser = Client::new(addr);
    browser.get("/inc").await;
    let cookie_token = browser.jar.clone().unwrap();
    let r = http
        .get(url("/peek"))
        .header("x-session-token", &cookie_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.text().await.unwrap(),
        "0",
        "a cookie token sent as a header is refused"
    );

    let mut tampered = token.clone();
    tampered.replace_range(30..31, if &token[30..31] == "A" { "B" } else { "A" });
    let r = http
        .get(url("/peek"))
        .header("x-session-token", tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.text().await.unwrap(),
        "0",
        "a tampered token is not accepted"
    );
}

#[tokio::test]
async fn authorization_of_another_scheme_leaves_the_cookie_in_charge() {
    let addr = app(layer(MemoryStore::new()).with_bearer_tokens(true)).await;
    let mut c = Client::new(addr);
    c.get("/inc").await;
    let cookie = format!("__Host-session={}", c.jar.clone().unwrap());
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/inc"))
        .header("cookie", cookie)
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("session-token").is_none());
    assert_eq!(r.text().await.unwrap(), "2");
}

#[tokio::test]
async fn flash_messages_are_shown_once_and_survive_logout() {
    let router = Router::new()
        .route(
            "/flash/{m}",
            get(|s: Session, Path(m): Path<String>| async move { s.flash(m) }),
        )
        .route(
            "/flashes",
            get(|s: Session| async move { s.take_flashes().join("|") }),
        )
        .route(
            "/logout",
            get(|s: Session| async move {
                s.login("u");
                s.logout();
                s.flash("signed out");
            }),
        )
        .route("/keys", get(|s: Session| async move { s.keys().join(",") }))
        .layer(layer(MemoryStore::new()));
    let addr = serve(router).await;
    let mut c = Client::new(addr);
    c.get("/flash/one").await;
    c.get("/flash/two").await;
    assert_eq!(
        c.get("/keys").await.body,
        "",
        "flash is the library's, not in keys()"
    );
    assert_eq!(c.get("/flashes").await.body, "one|two");
    assert_eq!(c.get("/flashes").await.body, "", "read once");
    c.get("/logout").await;
    assert_eq!(c.get("/flashes").await.body, "signed out");
}

#[tokio::test]
async fn csrf_tokens_store_nothing_are_masked_and_renewed_at_login() {
    let store = MemoryStore::new();
    let router = Router::new()
        .route("/form", get(|s: Session| async move { s.csrf_token() }))
        .route(
            "/post/{t}",
            get(|s: Session, Path(t): Path<String>| async move { s.verify_csrf(&t) }),
        )
        .route("/login", get(|s: Session| async move { s.login("u") }))
        .route(
            "/login-as/{u}",
            get(|s: Session, Path(u): Path<String>| async move { s.login(u) }),
        )
        .route(
            "/login-and-form",
            get(|s: Session| async move {
                s.login("v");
                s.csrf_token()
            }),
        )
        .layer(layer(store.clone()));
    let addr = serve(router).await;
    let mut c = Client::new(addr);
    assert_eq!(c.get("/post/anything").await.status, 403, "no token yet");

    // A form for a visitor without a session stores nothing: the token is bound to a nonce
    // cookie of its own.
    let token = c.get("/form").await.body;
    assert_eq!(token.len(), 86, "a 32-byte pad and the masked 32-byte tag");
    assert!(c.jar.is_none(), "no session cookie for a form");
    assert!(
        c.others.contains_key("__Host-session-csrf"),
        "{:?}",
        c.others
    );
    let mut visitors = Vec::new();
    for _ in 0..300 {
        let mut v = Client::new(addr);
        assert_eq!(v.get("/form").await.status, 200);
        visitors.push(v);
    }
    assert_eq!(store.len(), 0, "300 form views stored no session");

    // Masked: different text every time, each of them valid.
    let again = c.get("/form").await.body;
    assert_ne!(again, token, "a fresh mask per token");
    assert_eq!(c.get(&format!("/post/{token}")).await.status, 200);
    assert_eq!(c.get(&format!("/post/{again}")).await.status, 200);
    let r = c.get("/post/wrong").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (403, "CSRF token missing or wrong\n")
    );
    let theirs = visitors[0].get("/form").await.body;
    assert_eq!(
        c.get(&format!("/post/{theirs}")).await.status,
        403,
        "another visitor's token"
    );
    let mut cookieless = Client::new(addr);
    assert_eq!(
        cookieless.get(&format!("/post/{token}")).await.status,
        403,
        "a token without its nonce cookie"
    );

    // Signed in: tokens from before stop working, new ones are bound to the session.
    c.get("/login").await;
    assert!(c.jar.is_some());
    assert_eq!(
        c.get(&format!("/post/{token}")).await.status,
        403,
        "renewed at login"
    );
    let fresh = c.get("/form").await.body;
    assert_eq!(c.get(&format!("/post/{fresh}")).await.status, 200);
    c.others.clear();
    assert_eq!(
        c.get(&format!("/post/{fresh}")).await.status,
        200,
        "a signed-in session's token needs no nonce cookie"
    );
    c.get("/login-as/someone-else").await;
    assert_eq!(
        c.get(&format!("/post/{fresh}")).await.status,
        403,
        "new id, new tokens"
    );

    // A form rendered in the very response that signs in is bound to the id it gets, on a
    // stored session and on a new one alike.
    for mut visitor in [c, Client::new(addr)] {
        let token = visitor.get("/login-and-form").await.body;
        assert_eq!(
            visitor.get(&format!("/post/{token}")).await.status,
            200,
            "a token from the sign-in response"
        );
    }
}

#[tokio::test]
async fn a_change_over_the_size_limit_is_refused_and_nothing_is_written() {
    let store = MemoryStore::new();
    let addr = app(layer(store.clone()).with_max_size(Some(200))).await;
    let mut c = Client::new(addr);
    assert_eq!(c.get("/set/small/value").await.status, 200);
    let big = "x".repeat(300);
    let r = c.get(&format!("/set/big/{big}")).await;
    assert_eq!((r.status, r.body.as_str()), (413, "session too large\n"));
    assert_eq!(
        c.get("/get/big").await.body,
        "",
        "nothing of it was written"
    );
    assert_eq!(
        c.get("/get/small").await.body,
        "value",
        "the rest is intact"
    );
    let fits = "y".repeat(100);
    assert_eq!(
        c.get(&format!("/set/small/{fits}")).await.status,
        200,
        "replacing counts the old value out"
    );
    let r = c.get(&format!("/set/other/{fits}")).await;
    assert_eq!(r.status, 413, "two 100-byte values do not fit in 200");
    assert_eq!(c.get("/get/small").await.body, fits);
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn clear_site_data_goes_with_a_plain_sign_out_only() {
    let router = Router::new()
        .route("/login", get(|s: Session| async move { s.login("u") }))
        .route("/logout", get(|s: Session| async move { s.logout() }))
        .route(
            "/logout-with-flash",
            get(|s: Session| async move {
                s.logout();
                s.flash("signed out");
            }),
        )
        .layer(layer(MemoryStore::new()).with_clear_site_data(true));
    let addr = serve(router).await;
    let mut c = Client::new(addr);
    c.get("/login").await;
    let r = c
        .get_with_cookie_header(
            "/logout",
            &format!("__Host-session={}", c.jar.clone().unwrap()),
        )
        .await;
    assert_eq!(r.cookie(NAME).map(|c| c.value().is_empty()), Some(true));
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/logout"))
        .header(
            "cookie",
            format!("__Host-session={}", c.jar.clone().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(plain.headers()["clear-site-data"], "\"cookies\"");
    c.get("/login").await;
    let flash = reqwest::Client::new()
        .get(format!("http://{addr}/logout-with-flash"))
        .header(
            "cookie",
            format!("__Host-session={}", c.jar.clone().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert!(
        flash.headers().get("clear-site-data").is_none(),
        "it would wipe the flash"
    );
    assert!(
        flash.headers().get("set-cookie").is_some(),
        "the flash's new session"
    );
}

/// A `Cookie` header with exactly these bytes.
async fn get_with_raw_cookie(addr: std::net::SocketAddr, path: &str, cookie: &[u8]) -> String {
    reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .header(
            "cookie",
            reqwest::header::HeaderValue::from_bytes(cookie).unwrap(),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_non_ascii_cookie_beside_ours_does_not_hide_the_session() {
    let addr = app(layer(MemoryStore::new())).await;
    let mut c = Client::new(addr);
    c.get("/inc").await;
    let good = c.jar.clone().unwrap();
    let mut count = 1;
    for other in ["lang=żółć".as_bytes(), b"latin=caf\xe9", b"q=\"\x80\""] {
        for header in [
            [other, format!("; {NAME}={good}").as_bytes()].concat(),
            [format!("{NAME}={good}; ").as_bytes(), other].concat(),
        ] {
            count += 1;
            assert_eq!(
                get_with_raw_cookie(addr, "/inc", &header).await,
                count.to_string(),
                "{}",
                String::from_utf8_lossy(&header)
            );
        }
    }
}

#[tokio::test]
async fn two_valid_cookies_naming_different_sessions_count_as_none() {
    // The plain name, as an application that turned the `__Host-` prefix off has it: then a
    // sibling subdomain can plant a cookie of that name for the parent domain.
    let store = MemoryStore::new();
    let addr = app(layer(store.clone()).with_host_prefix(false)).await;
    let mut ours = Client::named(addr, "session");
    let mut planted = Client::named(addr, "session");
    ours.get("/inc").await;
    ours.get("/inc").await;
    planted.get("/inc").await;
    let (a, b) = (ours.jar.clone().unwrap(), planted.jar.clone().unwrap());
    for header in [
        format!("session={b}; session={a}"),
        format!("session={a}; session={b}"),
    ] {
        let r = ours.get_with_cookie_header("/peek", &header).await;
        assert_eq!(r.body, "0", "neither session is used: {header}");
        assert!(
            r.cookie("session").is_none(),
            "and neither cookie is removed"
        );
    }
    let r = ours
        .get_with_cookie_header("/inc", &format!("session={b}; session={a}"))
        .await;
    assert_eq!(r.body, "1", "a write starts a session of its own");
    assert_eq!(ours.get("/peek").await.body, "2", "ours is untouched");
    assert_eq!(
        planted.get("/peek").await.body,
        "1",
        "the planted one is untouched"
    );
    let twice = format!("session={a}; session={a}");
    assert_eq!(ours.get_with_cookie_header("/peek", &twice).await.body, "2");

    // By default the cookie is `__Host-session`, which no other host can set.
    let addr = app(layer(MemoryStore::new())).await;
    let r = Client::new(addr).get("/inc").await;
    let cookie = r.cookie(NAME).expect("the default name carries the prefix");
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.domain(), None);
}

#[tokio::test]
async fn only_the_first_few_cookies_of_our_name_are_verified() {
    let addr = app(layer(MemoryStore::new())).await;
    let mut c = Client::new(addr);
    c.get("/inc").await;
    let good = c.jar.clone().unwrap();
    let junk = format!("{NAME}={}.{}; ", "A".repeat(22), "A".repeat(43));
    let behind = |n: usize| format!("{}{NAME}={good}", junk.repeat(n));
    assert_eq!(
        c.get_with_cookie_header("/peek", &behind(3)).await.body,
        "1"
    );
    // 5,000 of them used to cost 5,000 HMACs; now the fifth and later are not looked at.
    let r = c.get_with_cookie_header("/peek", &behind(5_000)).await;
    assert_eq!((r.status, r.body.as_str()), (200, "0"));
}

#[tokio::test]
async fn the_extractor_is_the_only_way_to_the_session() {
    // `Extension<Session>` once found the unloaded handle: it read nothing and its writes were
    // dropped, with a 200. Now it finds nothing, and says so.
    let router = Router::new()
        .route(
            "/ext",
            get(|axum::Extension(s): axum::Extension<Session>| async move { s.insert("lost", 1) }),
        )
        .layer(layer(MemoryStore::new()));
    let addr = serve(router).await;
    let r = Client::new(addr).get("/ext").await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.body.contains("Missing request extension"), "{}", r.body);
    assert!(r.cookie(NAME).is_none(), "nothing was stored");
}

#[tokio::test]
async fn an_optional_session_is_none_for_a_visitor_without_one() {
    let store = MemoryStore::new();
    let router = Router::new()
        .route(
            "/maybe",
            get(|s: Option<Session>| async move {
                match s {
                    Some(s) => s.get::<u64>("count").unwrap().unwrap_or(0).to_string(),
                    None => "none".to_owned(),
                }
            }),
        )
        .route("/inc", get(inc))
        .layer(layer(store.clone()));
    let addr = serve(router).await;
    let mut c = Client::new(addr);
    assert_eq!(c.get("/maybe").await.body, "none");
    assert!(c.jar.is_none(), "and nothing was created");
    c.get("/inc").await;
    assert_eq!(c.get("/maybe").await.body, "1");
    let r = c
        .get_with_cookie_header("/maybe", &format!("{NAME}=forged.token"))
        .await;
    assert_eq!(r.body, "none");
    let failing = serve(
        Router::new()
            .route(
                "/maybe",
                get(|s: Option<Session>| async move { s.is_some().to_string() }),
            )
            .layer(layer(Down)),
    )
    .await;
    let token = c.jar.clone().unwrap();
    let r = Client::new(failing)
        .get_with_cookie_header("/maybe", &format!("{NAME}={token}"))
        .await;
    assert_eq!(r.status, 503, "a store failure is still the rejection");
}
