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

pub mod client;
mod down;
pub mod load;

pub use down::DownStore;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use serde_json::{Value, json};
use sessionware_core::SessionStore;

use crate::{DeviceId, Error, Key, Session, SessionLayer};

use client::serve;

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
            get(|s: Session, Path(device): Path<String>| async move {
                let device: DeviceId = device.parse()?;
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
        .route("/health", get(|| async { "ok" }))
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
        .with_bearer_tokens()
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
