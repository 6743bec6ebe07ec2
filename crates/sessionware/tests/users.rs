//! Users and devices over real HTTP on the memory store.

use sessionware_memory::MemoryStore;

#[tokio::test]
async fn users_and_devices_on_the_memory_store() {
    sessionware::testing::users_over_http(MemoryStore::new()).await;
}

#[tokio::test]
async fn remember_me_and_recent_sign_in_on_the_memory_store() {
    sessionware::testing::sign_in_over_http(MemoryStore::new()).await;
}

#[tokio::test]
async fn audit_events_on_the_memory_store() {
    sessionware::testing::events_over_http(MemoryStore::new()).await;
}

#[tokio::test]
async fn metrics_on_the_memory_store() {
    sessionware::testing::metrics_over_http(MemoryStore::new()).await;
}

#[tokio::test]
async fn security_findings_on_the_memory_store() {
    let store = MemoryStore::new();
    let corrupted = store.clone();
    sessionware::testing::security_over_http(store, move |id| {
        let store = corrupted.clone();
        async move { store.corrupt(&id) }
    })
    .await;
}

/// With browser-session cookies, a remembered sign-in still gets a persistent cookie: outliving
/// the browser is what "remember me" asks for.
#[tokio::test]
async fn remember_me_makes_a_browser_session_cookie_persistent() {
    use axum::Router;
    use axum::routing::get;
    use sessionware::time::Duration;
    use sessionware::{Key, Session, SessionLayer};
    use tower::ServiceExt as _;

    let layer = SessionLayer::new(MemoryStore::new())
        .with_signing_key(
            Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 5 ^ i as u8)).unwrap(),
        )
        .with_browser_session_cookie(true);
    let app = Router::new()
        .route("/plain", get(|s: Session| async move { s.login("ana") }))
        .route(
            "/remembered",
            get(|s: Session| async move {
                s.login("ana");
                s.remember_for(Duration::days(30));
            }),
        )
        .layer(layer);
    let cookie = |path: &'static str| {
        let app = app.clone();
        async move {
            let request = http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            response.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    let plain = cookie("/plain").await;
    assert!(
        !plain.contains("Max-Age"),
        "a browser-session cookie: {plain}"
    );
    let remembered = cookie("/remembered").await;
    assert!(
        remembered.contains("Max-Age=2592000"),
        "persistent for 30 days: {remembered}"
    );
}

#[tokio::test]
async fn remember_me_and_recent_sign_in_on_the_cookie_store() {
    sessionware::testing::sign_in_over_http(sessionware::CookieStore::new()).await;
}
