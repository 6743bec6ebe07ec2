//! `increment` and `update` under concurrent requests to one session, over real HTTP.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use serde::Deserialize;
use sessionware_core::SessionStore;
use tokio::sync::{Barrier, Notify};

use super::serve;
use crate::{Error, Key, Session, SessionLayer};

/// What [`atomic_over_http`] measured, for a store's test to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtomicReport {
    /// How many of the concurrent `update`s were stored.
    pub updates_stored: usize,
    /// How many were answered `409` once the default retries were spent.
    pub updates_refused: usize,
}

#[derive(Deserialize)]
struct Params {
    key: Option<String>,
    tag: Option<u32>,
    /// Milliseconds of work between the load and the write-back.
    work: Option<u64>,
    /// Hold the request after its update until the test lets it go.
    gate: Option<bool>,
}

/// Parks gated requests between their update and their write-back.
#[derive(Default)]
struct Gate {
    parked: Notify,
    go: Notify,
}

fn atomic_app(layer: SessionLayer, gate: Arc<Gate>) -> Router {
    Router::new()
        .route(
            "/seed",
            get(|s: Session| async move { s.insert("seed", true) }),
        )
        .route(
            "/increment",
            get(|s: Session, Query(p): Query<Params>| async move {
                let key = p.key.unwrap_or_else(|| "n".into());
                Ok::<_, Error>(s.increment(key, 1)?.to_string())
            }),
        )
        .route(
            "/update",
            get(move |s: Session, Query(p): Query<Params>| async move {
                if let Some(ms) = p.work {
                    // The workload: a handler busy between its read and its write.
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                }
                let tag = p.tag.unwrap_or(0);
                let tags = s.update("tags", move |tags: &mut Vec<u32>| tags.push(tag))?;
                if p.gate == Some(true) {
                    gate.parked.notify_one();
                    gate.go.notified().await;
                }
                Ok::<_, Error>(tags.len().to_string())
            }),
        )
        .route(
            "/get",
            get(|s: Session, Query(p): Query<Params>| async move {
                let key = p.key.unwrap_or_else(|| "n".into());
                s.get_value(&key).map(|v| v.to_string()).unwrap_or_default()
            }),
        )
        .layer(layer)
}

fn layer(store: impl SessionStore, retries: Option<u32>) -> SessionLayer {
    let layer = SessionLayer::new(store).with_signing_key(
        Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 7 ^ i as u8)).unwrap(),
    );
    match retries {
        Some(n) => layer.with_update_retries(n),
        None => layer,
    }
}

/// One session's cookie, shared by every request of the suite.
struct Client {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Client {
    async fn new(base: String) -> Self {
        let http = reqwest::Client::new();
        let r = http.get(format!("{base}/seed")).send().await.unwrap();
        let set = r.headers()["set-cookie"].to_str().unwrap();
        let cookie = set.split(';').next().unwrap().to_owned();
        Self { http, base, cookie }
    }

    fn on(&self, base: &str) -> Self {
        Self {
            http: self.http.clone(),
            base: base.to_owned(),
            cookie: self.cookie.clone(),
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// `n` requests of `path(i)` at once, released together; their answers by `i`.
    async fn burst(
        self: &Arc<Self>,
        n: usize,
        path: impl Fn(usize) -> String,
    ) -> Vec<(u16, String)> {
        let barrier = Arc::new(Barrier::new(n));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let (client, barrier, path) = (self.clone(), barrier.clone(), path(i));
            tasks.spawn(async move {
                barrier.wait().await;
                (i, client.get(&path).await)
            });
        }
        let mut answers = vec![(0, String::new()); n];
        while let Some(done) = tasks.join_next().await {
            let (i, answer) = done.unwrap();
            answers[i] = answer;
        }
        answers
    }
}

/// `increment` and `update` of one key by concurrent requests of one session, through the
/// layer and `store`: 200 increments started together store exactly 200; 50 updates started
/// together, each with 10 ms of work between its read and its write, end with every request
/// either in the value (answered `200`) or answered `409`, none lost; an increment of a value
/// that is not an integer is `422`; an update whose key another request changed is retried
/// (or, with no retries, answered `409` and nothing stored). Returns how the 50 updates went
/// at the default retry bound.
pub async fn atomic_over_http(store: impl SessionStore + Clone) -> AtomicReport {
    let gate = Arc::new(Gate::default());
    let addr = serve(atomic_app(layer(store.clone(), None), gate.clone())).await;
    let strict = serve(atomic_app(layer(store, Some(0)), gate.clone())).await;
    let client = Arc::new(Client::new(format!("http://{addr}")).await);

    let answers = client.burst(200, |_| "/increment".into()).await;
    let failed: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "increment: every request stored: {failed:?}"
    );
    assert_eq!(
        client.get("/get").await,
        (200, "200".into()),
        "increment: 200 concurrent increments of one key store exactly 200"
    );

    let answers = client
        .burst(50, |i| format!("/update?tag={i}&work=10"))
        .await;
    let stored: BTreeSet<u32> = (0..50u32)
        .filter(|i| answers[*i as usize].0 == 200)
        .collect();
    let refused = answers.iter().filter(|(status, _)| *status == 409).count();
    assert_eq!(
        stored.len() + refused,
        50,
        "update: every request is stored or answered 409: {answers:?}"
    );
    let (_, tags) = client.get("/get?key=tags").await;
    let tags: Vec<u32> = serde_json::from_str(&tags).unwrap();
    assert_eq!(
        tags.len(),
        stored.len(),
        "update: each stored update once: {tags:?}"
    );
    assert_eq!(
        tags.iter().copied().collect::<BTreeSet<_>>(),
        stored,
        "update: exactly the requests answered 200 are in the value, none lost"
    );

    let (status, body) = client.get("/increment?key=tags").await;
    assert_eq!(
        (status, body.as_str()),
        (422, "session value is not an integer\n"),
        "increment: a value that is not an integer is refused"
    );

    // A request parked after its update while another changes the key: retried on what the
    // store holds, or, without retries, refused with nothing stored.
    for (base, retried) in [(addr, true), (strict, false)] {
        let parked = client.on(&format!("http://{base}"));
        let first = tokio::spawn(async move { parked.get("/update?tag=1000&gate=true").await });
        gate.parked.notified().await;
        let before: Vec<u32> = serde_json::from_str(&client.get("/get?key=tags").await.1).unwrap();
        assert_eq!(client.get("/update?tag=2000").await.0, 200);
        gate.go.notify_one();
        let (status, _) = first.await.unwrap();
        let (_, after) = client.get("/get?key=tags").await;
        let after: Vec<u32> = serde_json::from_str(&after).unwrap();
        let mut expected = before;
        expected.push(2000);
        if retried {
            assert_eq!(status, 200, "update: a conflict is retried");
            expected.push(1000);
        } else {
            assert_eq!(status, 409, "update: no retries left is 409");
        }
        assert_eq!(
            after, expected,
            "update: retried on the stored value (retries: {retried})"
        );
    }

    AtomicReport {
        updates_stored: stored.len(),
        updates_refused: refused,
    }
}
