//! The cookie store's metrics through a real recorder, the process's global one (this binary
//! holds no other test, so the counts are this test's alone).

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sessionware::testing::TestRecorder;
use sessionware::time::Duration;
use sessionware::{CookieStore, Error, ExpiryPolicy, Key, ManualClock, Session, SessionLayer};
use sessionware_test_support::client::{Client, serve};

const NAME: &str = "__Host-session";

#[tokio::test]
async fn the_cookie_store_counts_what_it_does() {
    let recorder = TestRecorder::install();
    let clock = ManualClock::new();
    let layer = SessionLayer::new(CookieStore::new())
        .with_signing_key(
            Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 7 ^ i as u8)).unwrap(),
        )
        .with_clock(clock.clone())
        .with_expiry(
            ExpiryPolicy::new()
                .with_idle_timeout(Some(Duration::minutes(30)))
                .with_refresh_interval(Duration::minutes(10)),
        );
    let app =
        Router::new()
            .route(
                "/inc",
                get(|s: Session| async move { Ok::<_, Error>(s.increment("n", 1)?.to_string()) }),
            )
            .route(
                "/peek",
                get(|s: Session| async move {
                    Ok::<_, Error>(s.get::<i64>("n")?.unwrap_or(0).to_string())
                }),
            )
            .route(
                "/login/{user}",
                get(|s: Session, Path(user): Path<String>| async move { s.login(user) }),
            )
            .route("/logout", get(|s: Session| async move { s.logout() }))
            .layer(layer);
    let addr = serve(app).await;

    let mut a = Client::new(addr);
    a.get("/inc").await; // created
    a.get("/inc").await; // loaded, written
    clock.advance(Duration::minutes(11));
    a.get("/peek").await; // loaded, touched (the cookie re-issued)
    a.get("/login/ana").await; // loaded, written (a new id)
    let value = a.jar.clone().unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(&value).unwrap();
    raw[30] ^= 4;
    let tampered = format!("{NAME}={}", URL_SAFE_NO_PAD.encode(&raw));
    a.get_with_cookie_header("/peek", &tampered).await; // refused
    a.get("/logout").await; // loaded, destroyed
    clock.advance(Duration::minutes(31));
    a.get_with_cookie_header("/peek", &format!("{NAME}={value}"))
        .await; // expired

    let count = |name: &str| recorder.counter(name, &[("store", "cookie")]);
    let expected = [
        ("sessionware_sessions_created_total", 1),
        ("sessionware_sessions_loaded_total", 4),
        ("sessionware_sessions_written_total", 2),
        ("sessionware_sessions_touched_total", 1),
        ("sessionware_sessions_destroyed_total", 1),
        ("sessionware_sessions_expired_total", 1),
    ];
    for (name, want) in expected {
        assert_eq!(count(name), want, "{name}");
    }
    let refused = recorder.counter(
        "sessionware_tokens_refused_total",
        &[("store", "cookie"), ("reason", "invalid")],
    );
    assert_eq!(refused, 1, "the tampered cookie");
}
