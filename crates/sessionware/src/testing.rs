//! HTTP-level suites: the layer's behaviour over real loopback HTTP, against a real store.
//! Store crates run them in their integration tests (feature `testing`), next to
//! `sessionware_core::testing::run`:
//!
//! ```no_run
//! # async fn t(store: sessionware_memory::MemoryStore) {
//! sessionware::testing::users_over_http(store).await;
//! # }
//! ```
//!
//! They panic, naming the step, on the first failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test suite: panicking is how it reports

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use serde_json::{Value, json};
use sessionware_core::{SessionId, SessionStore};
use tokio::sync::Notify;

use crate::{DeviceId, Error, Key, Session, SessionLayer};

mod at_rest;
mod atomic;
mod events;
mod metrics;
mod sign_in;
pub use at_rest::at_rest_over_http;
pub use atomic::{AtomicReport, atomic_over_http};
pub use events::events_over_http;
pub use metrics::{TestRecorder, metrics_over_http};
pub use sign_in::sign_in_over_http;

/// Serves `app` on a free loopback port until the test's runtime ends.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route(
            "/inc",
            get(|s: Session| async move {
                let n: u64 = s.get("count")?.unwrap_or(0);
                s.insert("count", n + 1)?;
                Ok::<_, Error>((n + 1).to_string())
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
        .route(
            "/devices",
            get(|s: Session| async move {
                let devices = s.devices().await?;
                let list: Vec<Value> = devices
                    .iter()
                    .map(|d| {
                        json!({
                            "id": d.id.as_str(),
                            "current": d.current,
                            "user_agent": d.user_agent,
                            "created": d.created_at.unix_timestamp(),
                            "last_seen": d.last_seen.unix_timestamp(),
                            "signed_in": d.signed_in_at.map(|t| t.unix_timestamp()),
                        })
                    })
                    .collect();
                Ok::<_, Error>(Value::Array(list).to_string())
            }),
        )
        .route(
            "/revoke/{device}",
            get(|s: Session, Path(device): Path<DeviceId>| async move {
                Ok::<_, Error>(s.revoke(&device).await?.to_string())
            }),
        )
        .route(
            "/revoke-all",
            get(|s: Session| async move { Ok::<_, Error>(s.revoke_all().await?.to_string()) }),
        )
        .route(
            "/revoke-others",
            get(|s: Session| async move { Ok::<_, Error>(s.revoke_others().await?.to_string()) }),
        )
        .route("/logout", get(|s: Session| async move { s.logout() }))
        .layer(layer)
}

/// A client holding either a cookie or a bearer token, with its own user agent.
struct Client {
    http: reqwest::Client,
    base: String,
    agent: String,
    bearer: bool,
    token: Option<String>,
}

struct Reply {
    status: u16,
    body: String,
    headers: reqwest::header::HeaderMap,
}

impl Client {
    fn new(addr: SocketAddr, agent: &str, bearer: bool) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
            agent: agent.into(),
            bearer,
            token: None,
        }
    }

    async fn get(&mut self, path: &str) -> Reply {
        let mut request = self
            .http
            .get(format!("{}{path}", self.base))
            .header("user-agent", &self.agent);
        request = match (&self.token, self.bearer) {
            (Some(t), true) => request.header("authorization", format!("Bearer {t}")),
            (None, true) => request.header("authorization", "Bearer new"),
            (Some(t), false) => request.header("cookie", format!("__Host-session={t}")),
            (None, false) => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if self.bearer {
            assert!(
                headers.get("set-cookie").is_none(),
                "a bearer client never gets a cookie"
            );
            if let Some(t) = headers.get("session-token") {
                let t = t.to_str().unwrap();
                self.token = (!t.is_empty()).then(|| t.to_owned());
            }
        } else if let Some(c) = headers.get("set-cookie") {
            let pair = c.to_str().unwrap().split(';').next().unwrap();
            let value = pair.strip_prefix("__Host-session=").unwrap();
            self.token = (!value.is_empty()).then(|| value.to_owned());
        }
        let body = response.text().await.unwrap();
        Reply {
            status,
            body,
            headers,
        }
    }

    async fn devices(&mut self) -> Vec<Value> {
        let r = self.get("/devices").await;
        assert_eq!(r.status, 200, "devices: {}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }
}

/// Sign-in with id renewal, sign-out, the devices listing, revoking one, all and all-but-this,
/// the per-user cap, and bearer-token clients sharing the user index with cookie clients.
/// `store` must be empty of sessions for the users this suite names (it picks fresh ones).
pub async fn users_over_http(store: impl SessionStore + Clone) {
    let layer = SessionLayer::new(store)
        .with_signing_key(
            Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 3 ^ i as u8)).unwrap(),
        )
        .with_bearer_tokens(true)
        .with_max_sessions_per_user(3)
        .with_clear_site_data(true);
    let addr = serve(app(layer)).await;
    let alice = format!("alice-{}", crate::SessionId::generate().unwrap());

    // Sign-in renews the id and keeps the data.
    let mut laptop = Client::new(addr, "laptop-browser", false);
    laptop.get("/inc").await;
    let before = laptop.token.clone().unwrap();
    let r = laptop.get(&format!("/login/{alice}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["cache-control"], "no-store",
        "login: not cacheable"
    );
    let after = laptop.token.clone().unwrap();
    assert_ne!(before, after, "login: a new id");
    assert_eq!(laptop.get("/whoami").await.body, alice);
    assert_eq!(laptop.get("/inc").await.body, "2", "login: data kept");
    let mut replay = Client::new(addr, "attacker", false);
    replay.token = Some(before);
    assert_eq!(
        replay.get("/whoami").await.body,
        "",
        "login: the old id stopped working"
    );

    // A bearer client of the same user shares the index.
    let mut phone = Client::new(addr, "phone-app", true);
    let r = phone.get(&format!("/login/{alice}")).await;
    assert_eq!(r.status, 200);
    assert!(
        phone.token.is_some(),
        "bearer: the token comes back in Session-Token"
    );
    assert_eq!(phone.get("/whoami").await.body, alice);

    let devices = laptop.devices().await;
    assert_eq!(devices.len(), 2, "devices: laptop and phone: {devices:?}");
    assert_eq!(devices.iter().filter(|d| d["current"] == true).count(), 1);
    let agents: Vec<&str> = devices
        .iter()
        .map(|d| d["user_agent"].as_str().unwrap())
        .collect();
    assert!(agents.contains(&"laptop-browser") && agents.contains(&"phone-app"));
    assert!(
        devices
            .iter()
            .all(|d| d["signed_in"].is_i64() && d["last_seen"].is_i64())
    );

    // Revoke the phone from the laptop.
    let phone_device = devices
        .iter()
        .find(|d| d["user_agent"] == "phone-app")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        laptop.get(&format!("/revoke/{phone_device}")).await.body,
        "true"
    );
    assert_eq!(
        phone.get("/whoami").await.body,
        "",
        "revoke: the phone is signed out"
    );
    assert_eq!(
        laptop.get(&format!("/revoke/{phone_device}")).await.body,
        "false"
    );
    assert_eq!(laptop.get("/revoke/not-a-device").await.status, 400);
    assert_eq!(laptop.devices().await.len(), 1);

    // Another user's device cannot be revoked.
    let mut bob = Client::new(addr, "bob-browser", false);
    bob.get(&format!("/login/bob-{alice}")).await;
    let bob_device = bob.devices().await[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        laptop.get(&format!("/revoke/{bob_device}")).await.body,
        "false"
    );
    assert_eq!(bob.get("/whoami").await.body, format!("bob-{alice}"));

    // All but this one.
    let mut tablet = Client::new(addr, "tablet", false);
    tablet.get(&format!("/login/{alice}")).await;
    let mut phone = Client::new(addr, "phone-app", true);
    phone.get(&format!("/login/{alice}")).await;
    assert_eq!(laptop.devices().await.len(), 3);
    assert_eq!(laptop.get("/revoke-others").await.body, "2");
    assert_eq!(tablet.get("/whoami").await.body, "");
    assert_eq!(phone.get("/whoami").await.body, "");
    assert_eq!(
        laptop.get("/whoami").await.body,
        alice,
        "revoke-others: this one stays"
    );

    // The cap: a fourth sign-in ends the oldest.
    let mut clients = Vec::new();
    for agent in ["second", "third", "fourth"] {
        let mut c = Client::new(addr, agent, false);
        c.get(&format!("/login/{alice}")).await;
        clients.push(c);
    }
    assert_eq!(
        laptop.get("/whoami").await.body,
        "",
        "cap: the oldest (laptop) was ended"
    );
    let mut fourth = clients.pop().unwrap();
    let devices = fourth.devices().await;
    assert_eq!(devices.len(), 3, "cap: three sessions: {devices:?}");

    // Log out everywhere.
    let r = fourth.get("/revoke-all").await;
    assert_eq!(r.body, "3");
    let removal = r.headers["set-cookie"].to_str().unwrap();
    assert!(
        removal.starts_with("__Host-session=;"),
        "revoke-all: this cookie is removed: {removal}"
    );
    assert_eq!(r.headers["clear-site-data"], "\"cookies\"");
    for c in clients.iter_mut() {
        assert_eq!(
            c.get("/whoami").await.body,
            "",
            "revoke-all: signed out everywhere"
        );
    }

    // Sign-out of a bearer client: an empty token comes back.
    let mut phone = Client::new(addr, "phone-app", true);
    phone.get(&format!("/login/{alice}")).await;
    let r = phone.get("/logout").await;
    assert_eq!(
        r.headers["session-token"], "",
        "logout: the bearer token is withdrawn"
    );
    assert_eq!(r.headers["cache-control"], "no-store");
    assert!(phone.token.is_none());
    bob.get("/revoke-all").await;
}

/// Holds a request inside its handler, after the session was loaded, until the test lets go.
#[derive(Default)]
struct Gate {
    entered: Notify,
    release: Notify,
}

impl Gate {
    async fn pass(&self) {
        self.entered.notify_one();
        self.release.notified().await;
    }
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

fn depth_of(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth_of).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

fn security_app(layer: SessionLayer, gate: Arc<Gate>) -> Router {
    let (login_gate, cycle_gate) = (gate.clone(), gate);
    let extra =
        Router::new()
            .route(
                "/slow/login/{user}",
                get(move |s: Session, Path(user): Path<String>| async move {
                    login_gate.pass().await;
                    s.login(user)
                }),
            )
            .route(
                "/slow/cycle",
                get(move |s: Session| async move {
                    cycle_gate.pass().await;
                    s.cycle_id()
                }),
            )
            .route(
                "/deep/{depth}",
                get(|s: Session, Path(depth): Path<usize>| async move {
                    s.insert("deep", nested(depth))
                }),
            )
            .route(
                "/deep",
                get(|s: Session| async move {
                    s.get_value("deep").map_or(0, |v| depth_of(&v)).to_string()
                }),
            )
            .route(
                "/many/{n}",
                get(|s: Session, Path(n): Path<usize>| async move {
                    (0..n).try_for_each(|i| s.insert(format!("k{i}"), i))
                }),
            )
            .route(
                "/unmany/{n}",
                get(|s: Session, Path(n): Path<usize>| async move {
                    (0..n).for_each(|i| drop(s.remove_value(&format!("k{i}"))))
                }),
            )
            .route("/len", get(|s: Session| async move { s.len().to_string() }))
            .route(
                "/nul",
                get(|s: Session| async move {
                    s.insert("nul", "a\u{0}b")?;
                    Ok::<_, Error>("stored")
                }),
            )
            .route(
                "/get/{key}",
                get(|s: Session, Path(key): Path<String>| async move {
                    s.get_value(&key).unwrap_or(Value::Null).to_string()
                }),
            )
            .layer(layer.clone());
    app(layer).merge(extra)
}

/// The security review's findings that involve the store, over real loopback HTTP:
///
/// - an id change (`login`, `cycle_id`) held open across "log out everywhere", a sign-out or
///   a sign-in elsewhere answers `409` and removes the cookie: the ended session is not
///   brought back under a new id;
/// - a value nested past [`MAX_DEPTH`](crate::MAX_DEPTH) is refused at insert (`422`), one at
///   the limit reads back; a record that does not decode starts a fresh session and removes
///   the cookie (sign-out included) instead of failing every request;
/// - 200 keys changed in one request are all stored, and removed;
/// - data the store cannot hold (a NUL character) is never answered as an outage (`503`);
/// - signing in as another user drops the previous user's data.
///
/// `corrupt` must make the stored record of the id it is given undecodable, as for
/// `sessionware_core::testing::run`.
pub async fn security_over_http<S, F, Fut>(store: S, corrupt: F)
where
    S: SessionStore + Clone,
    F: Fn(SessionId) -> Fut,
    Fut: Future<Output = ()>,
{
    let gate = Arc::new(Gate::default());
    let layer = SessionLayer::new(store).with_signing_key(
        Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 5 ^ i as u8)).unwrap(),
    );
    let users = layer.users();
    let addr = serve(security_app(layer, gate.clone())).await;
    let user = format!("mallory-{}", SessionId::generate().unwrap());

    // An id change that a revocation overtook.
    let cases = [
        ("/slow/login", "/revoke-all"),
        ("/slow/cycle", "/revoke-all"),
        ("/slow/login", "/logout"),
        ("/slow/cycle", "/login/someone-else"),
    ];
    for (slow_path, revoke) in cases {
        let mut victim = Client::new(addr, "victim", false);
        victim.get(&format!("/login/{user}")).await;
        let held = victim.token.clone();
        assert!(held.is_some(), "signed in");
        let mut slow = Client::new(addr, "slow", false);
        slow.token = held.clone();
        let path = match slow_path {
            "/slow/login" => format!("{slow_path}/{user}"),
            _ => slow_path.to_owned(),
        };
        let request = tokio::spawn(async move {
            let reply = slow.get(&path).await;
            (reply, slow)
        });
        gate.entered.notified().await;
        let r = victim.get(revoke).await;
        assert_eq!(r.status, 200, "{revoke}");
        gate.release.notify_one();
        let (reply, slow) = request.await.unwrap();
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (409, "session ended\n"),
            "{slow_path} after {revoke}: the ended session is not renewed"
        );
        assert!(
            slow.token.is_none(),
            "{slow_path} after {revoke}: the cookie is removed"
        );
        let mut replay = Client::new(addr, "replay", false);
        replay.token = held;
        assert_eq!(
            replay.get("/whoami").await.body,
            "",
            "{slow_path} after {revoke}"
        );
        if revoke != "/login/someone-else" {
            assert!(
                users.list(&user).await.unwrap().is_empty(),
                "{slow_path} after {revoke}: no session of the user is left"
            );
        }
        victim.get("/logout").await;
    }
    // Without a race the same requests go through.
    let mut c = Client::new(addr, "calm", false);
    c.get(&format!("/login/{user}")).await;
    let before = c.token.clone();
    gate.release.notify_one();
    assert_eq!(c.get("/slow/cycle").await.status, 200);
    gate.entered.notified().await;
    assert_ne!(c.token, before, "cycled");
    assert_eq!(c.get("/whoami").await.body, user);
    c.get("/logout").await;

    // Depth: refused past the limit, nothing stored; the deepest allowed reads back.
    let mut c = Client::new(addr, "deep", false);
    for too_deep in [crate::MAX_DEPTH + 1, 127, 1000] {
        let r = c.get(&format!("/deep/{too_deep}")).await;
        assert_eq!(r.status, 422, "depth {too_deep}: {}", r.body);
        assert!(c.token.is_none(), "depth {too_deep}: nothing stored");
    }
    assert_eq!(
        c.get(&format!("/deep/{}", crate::MAX_DEPTH)).await.status,
        200
    );
    assert_eq!(c.get("/deep").await.body, crate::MAX_DEPTH.to_string());
    c.get("/logout").await;

    // An unreadable record: a fresh session and the cookie removed, sign-out included.
    for then in ["/whoami", "/logout", "/inc"] {
        let mut c = Client::new(addr, "corrupt", false);
        c.get(&format!("/login/{user}")).await;
        c.get("/inc").await;
        let token = c.token.clone().unwrap();
        let id: SessionId = token.split('.').next().unwrap().parse().unwrap();
        corrupt(id).await;
        let r = c.get(then).await;
        assert_eq!(r.status, 200, "{then} on an unreadable record: {}", r.body);
        assert_ne!(
            c.token.as_ref(),
            Some(&token),
            "{then}: the cookie is replaced or removed"
        );
        if then == "/inc" {
            assert_eq!(r.body, "1", "a fresh session");
        } else {
            assert!(c.token.is_none(), "{then}: the cookie is removed");
        }
        assert_eq!(c.get("/whoami").await.body, "", "{then}: not signed in");
    }

    // Many keys changed at once, then removed at once.
    let mut c = Client::new(addr, "many", false);
    c.get("/inc").await;
    for n in [64, 200] {
        let r = c.get(&format!("/many/{n}")).await;
        assert_eq!(r.status, 200, "{n} keys set: {}", r.body);
        assert_eq!(
            c.get("/len").await.body,
            (n + 1).to_string(),
            "{n} keys stored"
        );
        let r = c.get(&format!("/unmany/{n}")).await;
        assert_eq!(r.status, 200, "{n} keys removed: {}", r.body);
        assert_eq!(c.get("/len").await.body, "1", "{n} keys removed");
    }

    // Data the store cannot hold is bad data, not an outage.
    let r = c.get("/nul").await;
    assert_ne!(
        r.status, 503,
        "a NUL character is not an outage: {}",
        r.body
    );
    if r.status == 200 {
        assert_eq!(c.get("/get/nul").await.body, r#""a\u0000b""#);
    }
    assert_eq!(c.get("/inc").await.body, "2", "the session goes on");

    // Signing in as another user drops the previous user's data; from anonymous it is kept.
    let mut c = Client::new(addr, "switch", false);
    c.get("/inc").await;
    c.get(&format!("/login/{user}")).await;
    assert_eq!(
        c.get("/inc").await.body,
        "2",
        "kept from the anonymous session"
    );
    c.get(&format!("/login/{user}")).await;
    assert_eq!(
        c.get("/inc").await.body,
        "3",
        "kept when the same user signs in again"
    );
    c.get(&format!("/login/other-{user}")).await;
    assert_eq!(c.get("/inc").await.body, "1", "dropped for another user");
    c.get("/logout").await;
}
