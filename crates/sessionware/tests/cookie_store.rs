//! The encrypted cookie store over real HTTP on loopback: the session lives in the cookie.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sessionware::time::Duration;
use sessionware::{CookieStore, Error, ExpiryPolicy, Key, ManualClock, Session, SessionLayer};
use sessionware_test_support::client::{Client, serve};

const NAME: &str = "__Host-session";

fn key(byte: u8) -> Key {
    Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| byte ^ i as u8)).unwrap()
}

fn layer() -> SessionLayer {
    SessionLayer::new(CookieStore::new()).with_signing_key(key(1))
}

fn routes(layer: SessionLayer) -> Router {
    Router::new()
        .route(
            "/inc",
            get(|s: Session| async move { Ok::<_, Error>(s.increment("count", 1)?.to_string()) }),
        )
        .route(
            "/peek",
            get(|s: Session| async move {
                Ok::<_, Error>(s.get::<i64>("count")?.unwrap_or(0).to_string())
            }),
        )
        .route(
            "/set/{k}/{v}",
            get(|s: Session, Path((k, v)): Path<(String, String)>| async move { s.insert(k, v) }),
        )
        .route(
            "/fill/{n}",
            get(|s: Session, Path(n): Path<usize>| async move { s.insert("blob", "x".repeat(n)) }),
        )
        .route(
            "/get/{k}",
            get(|s: Session, Path(k): Path<String>| async move {
                Ok::<_, Error>(s.get::<String>(&k)?.unwrap_or_default())
            }),
        )
        .route(
            "/login/{user}",
            get(|s: Session, Path(user): Path<String>| async move { s.login(user) }),
        )
        .route(
            "/whoami",
            get(|s: Session| async move { s.user().unwrap_or_default() }),
        )
        .route("/logout", get(|s: Session| async move { s.logout() }))
        .route("/cycle", get(|s: Session| async move { s.cycle_id() }))
        .route(
            "/id",
            get(|s: Session| async move { s.id().map(|id| id.to_string()).unwrap_or_default() }),
        )
        .route(
            "/tags",
            get(|s: Session| async move {
                let tags = s.update("tags", |t: &mut Vec<String>| t.push("a".into()))?;
                Ok::<_, Error>(tags.len().to_string())
            }),
        )
        .route("/csrf", get(|s: Session| async move { s.csrf_token() }))
        .route(
            "/check/{token}",
            get(|s: Session, Path(t): Path<String>| async move { s.verify_csrf(&t) }),
        )
        .route(
            "/devices",
            get(|s: Session| async move { Ok::<_, Error>(s.devices().await?.len().to_string()) }),
        )
        .route(
            "/revoke-all",
            get(|s: Session| async move { Ok::<_, Error>(s.revoke_all().await?.to_string()) }),
        )
        .route(
            "/revoke-others",
            get(|s: Session| async move { Ok::<_, Error>(s.revoke_others().await?.to_string()) }),
        )
        .layer(layer)
}

async fn app(layer: SessionLayer) -> SocketAddr {
    serve(routes(layer)).await
}

#[tokio::test]
async fn the_session_round_trips_in_the_cookie() {
    let addr = app(layer()).await;
    let mut c = Client::new(addr);
    let r = c.get("/inc").await;
    assert_eq!((r.status, r.body.as_str()), (200, "1"));
    let cookie = r.cookie(NAME).expect("the session is in the cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.max_age(), Some(Duration::hours(24)));
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    assert!(!cookie.value().contains("count"), "encrypted, not encoded");

    assert_eq!(c.get("/inc").await.body, "2");
    assert_eq!(c.get("/set/theme/dark").await.status, 200);
    assert_eq!(c.get("/get/theme").await.body, "dark");
    assert_eq!(c.get("/tags").await.body, "1");
    assert_eq!(
        c.get("/tags").await.body,
        "2",
        "update runs on the sealed value"
    );

    // Reads that do not move the deadline by the refresh interval re-issue nothing.
    let r = c.get("/peek").await;
    assert_eq!(r.body, "2");
    assert!(r.set_cookies.is_empty(), "a read re-issues no cookie");

    // A second instance with the same key serves the same session: nothing is stored.
    let other = app(layer()).await;
    let mut d = c.at(other);
    assert_eq!(d.get("/inc").await.body, "3");

    // Sign-in binds the user and draws a new id; sign-out removes the cookie.
    let before = c.get("/id").await.body;
    assert_eq!(before.len(), 22);
    c.get("/login/ana").await;
    assert_eq!(c.get("/whoami").await.body, "ana");
    assert_ne!(c.get("/id").await.body, before, "login cycles the id");
    assert_eq!(c.get("/peek").await.body, "2", "data kept through login");
    let id = c.get("/id").await.body;
    c.get("/cycle").await;
    assert_ne!(c.get("/id").await.body, id);
    let token = c.get("/csrf").await.body;
    assert_eq!(c.get(&format!("/check/{token}")).await.status, 200);
    let r = c.get("/logout").await;
    assert!(r.cookie(NAME).unwrap().value().is_empty(), "removed");
    assert_eq!(c.jar, None);
    assert_eq!(c.get("/whoami").await.body, "");

    // A visitor that only reads gets no cookie.
    let mut e = Client::new(addr);
    let r = e.get("/peek").await;
    assert!(r.set_cookies.is_empty());
}

/// The sealed bytes of a cookie value, and the value for changed bytes.
fn decode(value: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(value).unwrap()
}

#[tokio::test]
async fn changing_any_byte_is_refused() {
    let addr = app(layer()).await;
    let mut c = Client::new(addr);
    c.get("/set/k/v").await;
    c.get("/login/ana").await;
    let value = c.jar.clone().unwrap();
    let raw = decode(&value);
    assert!(raw.len() > 50);
    for i in 0..raw.len() {
        let mut changed = raw.clone();
        changed[i] ^= 1 << (i % 8);
        let header = format!("{NAME}={}", URL_SAFE_NO_PAD.encode(&changed));
        let r = c.get_with_cookie_header("/whoami", &header).await;
        assert_eq!((r.status, r.body.as_str()), (200, ""), "byte {i}");
        let removal = r.cookie(NAME).expect("a refused cookie is removed");
        assert!(removal.value().is_empty(), "byte {i}");
    }
    for cut in [1, 10, value.len() / 2, value.len() - 1] {
        let header = format!("{NAME}={}", &value[..cut]);
        let r = c.get_with_cookie_header("/whoami", &header).await;
        assert_eq!(r.body, "", "cut at {cut}");
    }
    let r = c
        .get_with_cookie_header("/whoami", &format!("{NAME}={value}"))
        .await;
    assert_eq!(r.body, "ana", "the untouched cookie still works");
}

#[tokio::test]
async fn a_cookie_of_another_key_or_another_name_is_refused() {
    let ours = app(layer()).await;
    let theirs = app(SessionLayer::new(CookieStore::new()).with_signing_key(key(2))).await;
    let renamed = app(layer().with_cookie_name("other")).await;
    let signed_ids =
        app(SessionLayer::new(sessionware_memory::MemoryStore::new()).with_signing_key(key(1)))
            .await;
    let mut c = Client::new(ours);
    c.get("/inc").await;
    let value = c.jar.clone().unwrap();

    let r = Client::new(theirs)
        .get_with_cookie_header("/peek", &format!("{NAME}={value}"))
        .await;
    assert_eq!(r.body, "0", "another key");
    assert!(r.cookie(NAME).unwrap().value().is_empty());
    let r = Client::named(renamed, "__Host-other")
        .get_with_cookie_header("/peek", &format!("__Host-other={value}"))
        .await;
    assert_eq!(r.body, "0", "another cookie name");
    let r = Client::new(signed_ids)
        .get_with_cookie_header("/peek", &format!("{NAME}={value}"))
        .await;
    assert_eq!(r.body, "0", "a server-side store's layer");
}

#[tokio::test]
async fn expiry_is_enforced_from_inside_the_ciphertext() {
    let clock = ManualClock::new();
    let policy = ExpiryPolicy::new()
        .with_idle_timeout(Some(Duration::minutes(30)))
        .with_absolute_lifetime(Some(Duration::hours(2)))
        .with_refresh_interval(Duration::minutes(10));
    let addr = app(layer().with_clock(clock.clone()).with_expiry(policy)).await;
    let mut c = Client::new(addr);
    c.get("/inc").await;

    // The refresh interval throttles re-issuing: not at 5 minutes, at 10.
    clock.advance(Duration::minutes(5));
    assert!(c.get("/peek").await.set_cookies.is_empty());
    clock.advance(Duration::minutes(5));
    let r = c.get("/peek").await;
    assert_eq!(r.body, "1");
    let cookie = r.cookie(NAME).expect("a due refresh re-issues the cookie");
    assert_eq!(cookie.max_age(), Some(Duration::minutes(30)));

    // Idle: the client holds on to the cookie past its deadline (ignoring Max-Age).
    let stale = c.jar.clone().unwrap();
    clock.advance(Duration::minutes(31));
    let r = c
        .get_with_cookie_header("/peek", &format!("{NAME}={stale}"))
        .await;
    assert_eq!(r.body, "0", "idle timeout from the sealed deadline");

    // Absolute: used every 20 minutes, the session still ends 2 hours after creation.
    let mut d = Client::new(addr);
    d.get("/inc").await;
    for _ in 0..5 {
        clock.advance(Duration::minutes(20));
        assert_eq!(d.get("/inc").await.status, 200);
    }
    assert!(d.get("/peek").await.body != "0", "1h40 in, still live");
    clock.advance(Duration::minutes(21));
    assert_eq!(d.get("/peek").await.body, "0", "past the absolute lifetime");
}

#[tokio::test]
async fn rotation_reads_old_cookies_and_re_seals_them() {
    let old = app(layer()).await;
    let rotated = app(SessionLayer::new(CookieStore::new())
        .with_signing_key(key(2))
        .with_verifying_key(key(1)))
    .await;
    let new_only = app(SessionLayer::new(CookieStore::new()).with_signing_key(key(2))).await;
    let mut c = Client::new(old);
    c.get("/inc").await;
    let old_cookie = c.jar.clone().unwrap();

    let mut c = c.at(rotated);
    let r = c.get("/peek").await;
    assert_eq!(r.body, "1", "the old key still decrypts");
    let resealed = r.cookie(NAME).expect("a read with an old key re-seals");
    assert_ne!(resealed.value(), old_cookie);
    let mut c = c.at(new_only);
    assert_eq!(
        c.get("/inc").await.body,
        "2",
        "the re-sealed cookie is the new key's"
    );
    let r = Client::new(old)
        .get_with_cookie_header("/peek", &format!("{NAME}={}", c.jar.clone().unwrap()))
        .await;
    assert_eq!(r.body, "0", "the old key alone does not read it");
}

#[tokio::test]
async fn a_session_too_large_for_a_cookie_is_refused_before_anything_is_sent() {
    let addr = app(layer()).await;
    let mut c = Client::new(addr);
    c.get("/set/theme/dark").await;
    let before = c.jar.clone().unwrap();

    // About 3 KB of data fits in the 4096 bytes of a cookie...
    let r = c.get("/fill/2900").await;
    assert_eq!(r.status, 200);
    let cookie = r.cookie(NAME).unwrap();
    assert!(cookie.name().len() + 1 + cookie.value().len() <= 4096);
    // ...a little more does not: 413, and no cookie at all.
    let r = c.get("/fill/3100").await;
    assert_eq!(r.status, 413);
    assert!(r.set_cookies.is_empty(), "nothing truncated, nothing sent");
    assert_eq!(
        c.get("/get/blob").await.body.len(),
        2900,
        "the last cookie holds"
    );
    assert_ne!(c.jar.as_deref(), Some(before.as_str()));

    // A smaller limit is the application's to choose.
    let small = app(
        SessionLayer::new(CookieStore::new().with_max_cookie_size(200)).with_signing_key(key(1)),
    )
    .await;
    let mut d = Client::new(small);
    assert_eq!(d.get("/fill/20").await.status, 200);
    let r = d.get("/fill/150").await;
    assert_eq!(r.status, 413);
    assert!(r.set_cookies.is_empty());

    // A change known only at write-back (a long user id at sign-in) is refused there.
    let mut e = Client::new(small);
    e.get("/fill/20").await;
    let r = e.get(&format!("/login/{}", "u".repeat(100))).await;
    assert_eq!(r.status, 413);
    assert!(r.set_cookies.is_empty());
    assert_eq!(
        e.get("/whoami").await.body,
        "",
        "the sign-in did not happen"
    );
}

#[tokio::test]
async fn an_older_cookie_replays_until_its_own_deadline() {
    let clock = ManualClock::new();
    let policy = ExpiryPolicy::new()
        .with_idle_timeout(Some(Duration::hours(1)))
        .with_absolute_lifetime(Some(Duration::hours(3)));
    let addr = app(layer().with_clock(clock.clone()).with_expiry(policy)).await;
    let mut c = Client::new(addr);
    c.get("/login/ana").await;
    c.get("/inc").await;
    let first = c.jar.clone().unwrap();
    c.get("/inc").await;
    c.get("/logout").await;
    assert_eq!(c.jar, None);

    // The inherent limit of sessions kept by the client: the copy taken before still works,
    // with the data it held then, after the sign-out.
    let replay = format!("{NAME}={first}");
    let r = c.get_with_cookie_header("/whoami", &replay).await;
    assert_eq!(r.body, "ana", "a copy outlives logout");
    assert_eq!(c.get_with_cookie_header("/peek", &replay).await.body, "1");
    // It is bounded by its own sealed deadline: the idle timeout...
    clock.advance(Duration::minutes(61));
    assert_eq!(c.get_with_cookie_header("/whoami", &replay).await.body, "");

    // ...and, however often it was refreshed, the absolute lifetime.
    let mut d = Client::new(addr);
    d.get("/login/ben").await;
    let mut copies = Vec::new();
    for _ in 0..5 {
        clock.advance(Duration::minutes(35));
        d.get("/inc").await;
        copies.push(d.jar.clone().unwrap());
    }
    clock.advance(Duration::minutes(6));
    for copy in &copies {
        let r = d
            .get_with_cookie_header("/whoami", &format!("{NAME}={copy}"))
            .await;
        assert_eq!(r.body, "", "3 hours after creation no copy works");
    }
}

#[tokio::test]
async fn bearer_clients_carry_the_sealed_session() {
    let addr = app(layer().with_bearer_tokens(true)).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");
    let r = http
        .get(url("/inc"))
        .header("authorization", "Bearer new")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().get("set-cookie").is_none(),
        "no cookie for a header client"
    );
    let token = r.headers()["session-token"].to_str().unwrap().to_owned();
    assert_eq!(r.text().await.unwrap(), "1");
    let r = http
        .get(url("/inc"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let token = r.headers()["session-token"].to_str().unwrap().to_owned();
    assert_eq!(r.text().await.unwrap(), "2");
    let r = http
        .get(url("/peek"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "2");
    // A bearer token is not a cookie: sealed for one transport, refused by the other.
    let r = Client::new(addr)
        .get_with_cookie_header("/peek", &format!("{NAME}={token}"))
        .await;
    assert_eq!(r.body, "0");
}

#[tokio::test]
async fn what_needs_a_server_is_a_typed_error() {
    let addr = app(layer()).await;
    let mut c = Client::new(addr);
    c.get("/login/ana").await;
    for path in ["/devices", "/revoke-all", "/revoke-others"] {
        let r = c.get(path).await;
        assert_eq!(r.status, 501, "{path}");
        assert!(
            r.body.contains("cookie session store"),
            "{path}: {}",
            r.body
        );
    }
    assert_eq!(c.get("/whoami").await.body, "ana", "nothing was done");

    let users = layer().users();
    assert!(matches!(
        users.revoke_all("ana").await,
        Err(Error::NeedsServerStore {
            operation: "UserSessions::revoke_all"
        })
    ));
    assert!(matches!(
        users.list("ana").await,
        Err(Error::NeedsServerStore { .. })
    ));

    let capped = app(layer().with_max_sessions_per_user(2)).await;
    let mut d = Client::new(capped);
    let r = d.get("/login/ana").await;
    assert_eq!(r.status, 501, "the per-user cap cannot be kept");
    assert!(r.set_cookies.is_empty());
}

#[tokio::test]
async fn a_shared_cookie_store_is_recognized_too() {
    let store = std::sync::Arc::new(CookieStore::new());
    let addr = app(SessionLayer::new(store).with_signing_key(key(1))).await;
    let mut c = Client::new(addr);
    assert_eq!(c.get("/inc").await.body, "1");
    assert_eq!(
        c.get("/inc").await.body,
        "2",
        "not a store that fails every call"
    );
}

#[tokio::test]
async fn refused_and_conflicting_cookies_are_announced() {
    use sessionware::{SessionEvent, SessionEventKind};
    use std::sync::{Arc, Mutex};

    let events: Arc<Mutex<Vec<SessionEvent>>> = Arc::default();
    let sink = events.clone();
    let layer = layer().with_event_handler(move |e| sink.lock().unwrap().push(e.clone()));
    let addr = app(layer).await;
    let (mut a, mut b) = (Client::new(addr), Client::new(addr));
    a.get("/inc").await;
    b.get("/inc").await;
    let (a_value, b_value) = (a.jar.clone().unwrap(), b.jar.clone().unwrap());
    let take = || std::mem::take(&mut *events.lock().unwrap());
    take();

    let mut raw = decode(&a_value);
    raw[20] ^= 1;
    let tampered = format!("{NAME}={}", URL_SAFE_NO_PAD.encode(&raw));
    let r = a.get_with_cookie_header("/peek", &tampered).await;
    assert_eq!(r.body, "0");
    let seen = take();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].kind, SessionEventKind::TokenRefused);
    assert!(seen[0].session.is_some(), "the refused cookie is named");

    let both = format!("{NAME}={a_value}; {NAME}={b_value}");
    let r = a.get_with_cookie_header("/peek", &both).await;
    assert_eq!(r.body, "0", "neither session is used");
    assert!(r.cookie(NAME).is_none(), "and neither cookie is removed");
    let seen = take();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        matches!(seen[0].kind, SessionEventKind::ConflictingCookies { other } if Some(other) != seen[0].session),
        "{seen:?}"
    );
}

#[tokio::test]
async fn lifecycle_events_arrive_in_order() {
    use sessionware::{SessionEvent, SessionEventKind};
    use std::sync::{Arc, Mutex};

    let events: Arc<Mutex<Vec<SessionEvent>>> = Arc::default();
    let sink = events.clone();
    let clock = ManualClock::new();
    let layer = layer()
        .with_clock(clock.clone())
        .with_expiry(ExpiryPolicy::new().with_idle_timeout(Some(Duration::minutes(30))))
        .with_event_handler(move |e| sink.lock().unwrap().push(e.clone()));
    let addr = app(layer).await;
    let take = || std::mem::take(&mut *events.lock().unwrap());
    let kinds = |seen: &[SessionEvent]| seen.iter().map(|e| e.kind.clone()).collect::<Vec<_>>();

    let mut c = Client::new(addr);
    c.get("/inc").await;
    assert_eq!(take(), [], "an anonymous session announces nothing");
    c.get("/login/ana").await;
    c.get("/cycle").await;
    let seen = take();
    assert!(
        matches!(
            &seen[..],
            [
                SessionEvent {
                    kind: SessionEventKind::Login { previous: Some(_) },
                    ..
                },
                SessionEvent {
                    kind: SessionEventKind::IdRenewed {
                        sign_in_confirmed: false,
                        ..
                    },
                    ..
                },
            ]
        ),
        "{seen:?}"
    );
    assert_eq!(seen[0].user.as_deref(), Some("ana"));
    let SessionEventKind::IdRenewed { previous, .. } = &seen[1].kind else {
        unreachable!()
    };
    assert_eq!(
        Some(*previous),
        seen[0].session,
        "the renewal names the signed-in session"
    );
    let renewed = seen[1].session;

    // Held past its deadline: seen expired, by the session's own name.
    let stale = c.jar.clone().unwrap();
    clock.advance(Duration::minutes(31));
    c.get_with_cookie_header("/peek", &format!("{NAME}={stale}"))
        .await;
    let seen = take();
    assert_eq!(kinds(&seen), [SessionEventKind::Expired]);
    assert_eq!(seen[0].session, renewed);
    assert_eq!(seen[0].user.as_deref(), Some("ana"));

    let mut d = Client::new(addr);
    d.get("/login/bo").await;
    d.get("/logout").await;
    let seen = take();
    assert_eq!(
        kinds(&seen),
        [
            SessionEventKind::Login { previous: None },
            SessionEventKind::Logout
        ]
    );
    assert_eq!(
        seen[0].session, seen[1].session,
        "the sign-out names the session"
    );
    assert_eq!(seen[1].user.as_deref(), Some("bo"));
}

/// A limit set above what the store opens again (8192 bytes of token) would send sessions that
/// the next request cannot read: their data lost. Such a session is refused with `413` instead.
#[tokio::test]
async fn a_limit_above_what_opens_again_still_refuses_what_would_not_open() {
    let big = app(
        SessionLayer::new(CookieStore::new().with_max_cookie_size(32 * 1024))
            .with_signing_key(key(1)),
    )
    .await;
    let mut c = Client::new(big);
    assert_eq!(c.get("/fill/5000").await.status, 200);
    assert_eq!(
        c.get("/get/blob").await.body.len(),
        5000,
        "5 KB opens again"
    );
    let r = c.get("/fill/9000").await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.set_cookies.is_empty());
    assert_eq!(
        c.get("/get/blob").await.body.len(),
        5000,
        "the last cookie that opens holds"
    );
}
