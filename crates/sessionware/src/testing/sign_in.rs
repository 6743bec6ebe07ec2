//! Remember-me and recent sign-in over HTTP, on a manual clock: a remembered session outlives
//! a default one and still ends at the absolute lifetime, on the cookie and the header
//! transport; the sign-in's age gates a "sudo" route until it is confirmed again.

use axum::Router;
use axum::extract::{Path, Query};
use axum::routing::get;
use sessionware_core::time::Duration;
use sessionware_core::{ManualClock, SessionStore, SystemClock};

use super::{Client, Reply, serve};
use crate::{Clock, Error, Key, Session, SessionLayer};

const IDLE: Duration = Duration::minutes(30);
const ABSOLUTE: Duration = Duration::days(7);
const REMEMBER: Duration = Duration::days(3);

#[derive(serde::Deserialize)]
struct Remember {
    remember: Option<bool>,
}

fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route(
            "/login/{user}",
            get(
                |s: Session, Path(user): Path<String>, Query(q): Query<Remember>| async move {
                    s.login(user);
                    if q.remember == Some(true) {
                        s.remember_for(REMEMBER);
                    }
                },
            ),
        )
        .route(
            "/whoami",
            get(|s: Session| async move { s.user().unwrap_or_default() }),
        )
        .route(
            "/sudo",
            get(|s: Session| async move {
                s.require_sign_in_within(Duration::minutes(5))?;
                Ok::<_, Error>("sudo")
            }),
        )
        .route(
            "/confirm",
            get(|s: Session| async move { s.confirm_sign_in() }),
        )
        .layer(layer)
}

/// The `Max-Age` of the cookie a reply sets, if it sets one.
fn max_age(reply: &Reply) -> Option<i64> {
    let cookie = reply.headers.get("set-cookie")?.to_str().ok()?;
    cookie
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Max-Age="))
        .and_then(|v| v.parse().ok())
}

/// Remember-me and recent sign-in on `store`, over real loopback HTTP with a manual clock
/// that starts at the real time (so a store's own expiry, a Redis TTL, never fires first).
/// Panics, naming the step, on the first failure.
pub async fn sign_in_over_http(store: impl SessionStore + Clone) {
    let clock = ManualClock::at(SystemClock.now());
    let layer = SessionLayer::new(store)
        .with_signing_key(
            Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 7 ^ i as u8)).unwrap(),
        )
        .with_bearer_tokens(true)
        .with_idle_timeout(Some(IDLE))
        .with_absolute_lifetime(Some(ABSOLUTE))
        .with_clock(clock.clone());
    let addr = serve(app(layer)).await;
    let user = format!("rem-{}", crate::SessionId::generate().unwrap());

    let mut plain = Client::new(addr, "plain", false);
    let r = plain.get(&format!("/login/{user}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        max_age(&r),
        Some(IDLE.whole_seconds()),
        "default: Max-Age is the idle timeout"
    );

    let mut remembered = Client::new(addr, "remembered", false);
    let r = remembered
        .get(&format!("/login/{user}?remember=true"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        max_age(&r),
        Some(REMEMBER.whole_seconds()),
        "remember me: Max-Age is the remembered idle timeout"
    );
    let mut app_client = Client::new(addr, "app", true);
    assert_eq!(
        app_client
            .get(&format!("/login/{user}?remember=true"))
            .await
            .status,
        200
    );
    assert!(app_client.token.is_some(), "bearer: token issued");

    // Recent sign-in: fresh now, stale after five minutes, fresh again once confirmed.
    assert_eq!(
        remembered.get("/sudo").await.body,
        "sudo",
        "sudo: just signed in"
    );
    clock.advance(Duration::minutes(6));
    let r = remembered.get("/sudo").await;
    assert_eq!(
        r.status, 401,
        "sudo: a sign-in 6 minutes old is refused: {}",
        r.body
    );
    let before = remembered.token.clone();
    let r = remembered.get("/confirm").await;
    assert_eq!(r.status, 200);
    assert_ne!(remembered.token, before, "confirm: the id is renewed");
    assert_eq!(
        max_age(&r),
        Some(REMEMBER.whole_seconds()),
        "confirm: remember-me is kept"
    );
    assert_eq!(
        remembered.get("/sudo").await.body,
        "sudo",
        "sudo: confirmed"
    );
    let mut anonymous = Client::new(addr, "anonymous", false);
    assert_eq!(
        anonymous.get("/sudo").await.status,
        401,
        "sudo: nobody signed in"
    );

    // Past the default idle timeout: the default session ended, the remembered ones did not.
    clock.advance(IDLE + Duration::minutes(1));
    assert_eq!(
        plain.get("/whoami").await.body,
        "",
        "default: ended after its idle timeout"
    );
    assert_eq!(
        remembered.get("/whoami").await.body,
        user,
        "remembered: still signed in"
    );
    assert_eq!(
        app_client.get("/whoami").await.body,
        user,
        "remembered bearer: still signed in"
    );

    // Used every two days it slides by its own timeout (the store's refresh knows only the
    // layer's), until the absolute lifetime ends it however recently it was used.
    for day in [2, 4, 6] {
        clock.advance(Duration::days(2));
        let r = remembered.get("/whoami").await;
        assert_eq!(r.body, user, "remembered: signed in on day {day}");
        assert_eq!(
            app_client.get("/whoami").await.body,
            user,
            "bearer: day {day}"
        );
    }
    clock.advance(Duration::days(1) + Duration::minutes(1));
    assert_eq!(
        remembered.get("/whoami").await.body,
        "",
        "remembered: ended at the absolute lifetime"
    );
    assert_eq!(
        app_client.get("/whoami").await.body,
        "",
        "bearer: ended at the absolute lifetime"
    );

    // Unused for longer than its own timeout, a remembered session ends too.
    let mut idle = Client::new(addr, "idle", false);
    idle.get(&format!("/login/{user}?remember=true")).await;
    clock.advance(REMEMBER + Duration::minutes(1));
    assert_eq!(
        idle.get("/whoami").await.body,
        "",
        "remembered: ended after its own idle timeout"
    );

    // A later sign-in without the box goes back to the default.
    let mut again = Client::new(addr, "again", false);
    again.get(&format!("/login/{user}?remember=true")).await;
    let r = again.get(&format!("/login/{user}")).await;
    assert_eq!(
        max_age(&r),
        Some(IDLE.whole_seconds()),
        "sign-in again: remember-me dropped"
    );
    clock.advance(IDLE + Duration::minutes(1));
    assert_eq!(
        again.get("/whoami").await.body,
        "",
        "sign-in again: default expiry"
    );
}
