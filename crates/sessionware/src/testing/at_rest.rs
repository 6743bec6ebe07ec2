//! Encryption at rest over real HTTP, against a real store.

use std::future::Future;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use serde_json::Value;
use sessionware_core::{ChangeSet, Clock as _, SessionId, SessionStore, SystemClock};

use super::{Client, serve};
use crate::at_rest::PREFIX;
use crate::{Error, Key, Session, SessionLayer};

fn key(byte: u8) -> Key {
    Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| byte ^ i as u8)).unwrap()
}

fn at_rest_app(layer: SessionLayer) -> Router {
    Router::new()
        .route(
            "/set/{k}/{v}",
            get(|s: Session, Path((k, v)): Path<(String, String)>| async move { s.insert(k, v) }),
        )
        .route(
            "/get/{k}",
            get(|s: Session, Path(k): Path<String>| async move {
                Ok::<_, Error>(s.get::<String>(&k)?.unwrap_or_default())
            }),
        )
        .route(
            "/inc",
            get(|s: Session| async move { Ok::<_, Error>(s.increment("n", 1)?.to_string()) }),
        )
        .route(
            "/n",
            get(|s: Session| async move {
                Ok::<_, Error>(s.get::<i64>("n")?.unwrap_or(0).to_string())
            }),
        )
        .route(
            "/tag/{t}",
            get(|s: Session, Path(t): Path<String>| async move {
                let tags = s.update("tags", move |tags: &mut Vec<String>| tags.push(t.clone()))?;
                Ok::<_, Error>(tags.join(","))
            }),
        )
        .route(
            "/login/{user}",
            get(|s: Session, Path(user): Path<String>| async move { s.login(user) }),
        )
        .route(
            "/id",
            get(|s: Session| async move { s.id().map(|id| id.to_string()).unwrap_or_default() }),
        )
        .route(
            "/devices",
            get(|s: Session| async move {
                let devices = s.devices().await?;
                let agents: Vec<_> = devices.iter().map(|d| d.user_agent.clone()).collect();
                Ok::<_, Error>(serde_json::to_string(&agents).unwrap_or_default())
            }),
        )
        .layer(layer)
}

async fn id_of(client: &mut Client) -> SessionId {
    client.get("/id").await.body.parse().unwrap()
}

/// Moves the stored (sealed) value of `from_key` in session `from` to `to_key` of session `to`,
/// through the store itself, as someone with write access to it could.
async fn copy_value<S: SessionStore>(
    store: &S,
    from: &SessionId,
    from_key: &str,
    to: &SessionId,
    to_key: &str,
) {
    let now = SystemClock.now();
    let record = store.load(from, now).await.unwrap().unwrap();
    let sealed = record.data[from_key].clone();
    let target = store.load(to, now).await.unwrap().unwrap();
    let mut changes = ChangeSet::new(target.expires_at);
    changes.set(to_key, sealed);
    assert!(store.apply(to, &changes, now).await.unwrap());
}

/// [`SessionLayer::with_encryption_at_rest`] on `store`, over real loopback HTTP:
///
/// - what the store holds for a session (`dump` of its id: the store's own client's view,
///   such as `redis-cli HGETALL` of its key or a `SELECT` of the sessions table) contains
///   none of the values the session stored, and every stored value is sealed;
/// - the values, increments, compare-and-set updates and the devices listing work as without
///   encryption; 20 concurrent increments of one key all count, and of 10 concurrent updates
///   of one key exactly those answered `200` are stored;
/// - a sealed value copied to another session, or to another key of its session, is refused:
///   the session reads as unreadable and its client starts afresh;
/// - after a key rotation, values sealed with the previous key read, increment and update.
///
/// `store` must be empty of the sessions this suite makes (it makes fresh ones).
pub async fn at_rest_over_http<S, F, Fut>(store: S, dump: F)
where
    S: SessionStore + Clone,
    F: Fn(SessionId) -> Fut,
    Fut: Future<Output = String>,
{
    let layer = |keys: &[u8]| {
        let mut layer = SessionLayer::new(store.clone())
            .with_signing_key(key(keys[0]))
            .with_encryption_at_rest(true);
        for k in &keys[1..] {
            layer = layer.with_verifying_key(key(*k));
        }
        layer
    };
    let addr = serve(at_rest_app(layer(&[1]))).await;
    let secret = format!("hunter2-{}", SessionId::generate().unwrap());
    let agent = format!("agent-{}", SessionId::generate().unwrap());
    let user = format!("ana-{}", SessionId::generate().unwrap());

    let mut a = Client::new(addr, &agent, false);
    assert_eq!(
        a.get(&format!("/set/db_password/{secret}")).await.status,
        200
    );
    a.get(&format!("/login/{user}")).await;
    assert_eq!(a.get("/inc").await.body, "1");
    assert_eq!(a.get("/inc").await.body, "2");
    assert_eq!(a.get("/tag/x").await.body, "x");
    assert_eq!(a.get("/tag/y").await.body, "x,y");
    assert_eq!(a.get("/get/db_password").await.body, secret);
    let devices = a.get("/devices").await.body;
    assert!(devices.contains(&agent), "device facts decrypt: {devices}");

    let a_id = id_of(&mut a).await;
    let seen = dump(a_id).await;
    assert!(
        seen.contains(PREFIX),
        "the dump shows the sealed values: {seen}"
    );
    assert!(seen.contains(&user), "the user binding stays readable");
    for plain in [secret.as_str(), agent.as_str(), "hunter2"] {
        assert!(
            !seen.contains(plain),
            "{plain:?} readable in the store: {seen}"
        );
    }
    let raw = store.load(&a_id, SystemClock.now()).await.unwrap().unwrap();
    assert!(raw.data.len() >= 4);
    for (k, v) in &raw.data {
        let sealed = v.as_str().is_some_and(|s| s.starts_with(PREFIX));
        assert!(sealed, "{k} is stored sealed: {v}");
    }

    // Concurrent increments cannot add inside ciphertext; none is lost all the same.
    let increments = (0..20).map(|_| {
        let mut c = Client::new(addr, &agent, false);
        c.token = a.token.clone();
        tokio::spawn(async move { c.get("/inc").await.status })
    });
    for status in futures_join(increments).await {
        assert_eq!(status, 200);
    }
    assert_eq!(
        a.get("/n").await.body,
        "22",
        "every concurrent increment counted"
    );

    // Concurrent updates: compare-and-sets on ciphertext. Each one stored is in the list, and
    // only those (a refusal after the retries is a 409 that stores nothing).
    let updates = (0..10).map(|i| {
        let mut c = Client::new(addr, &agent, false);
        c.token = a.token.clone();
        tokio::spawn(async move { (i, c.get(&format!("/tag/t{i}")).await.status) })
    });
    let mut stored = Vec::new();
    for (i, status) in futures_join(updates).await {
        assert!(status == 200 || status == 409, "update {i}: {status}");
        if status == 200 {
            stored.push(format!("t{i}"));
        }
    }
    assert!(!stored.is_empty());
    let tags = a.get("/tag/last").await.body;
    let mut listed: Vec<&str> = tags.split(',').filter(|t| t.starts_with('t')).collect();
    listed.sort_unstable();
    stored.sort_unstable();
    assert_eq!(listed, stored, "exactly the updates acknowledged: {tags}");

    // A value moved to another session, or to another key, does not open.
    let mut b = Client::new(addr, "b", false);
    b.get("/set/db_password/mine").await;
    let b_id = id_of(&mut b).await;
    copy_value(&store, &a_id, "db_password", &b_id, "db_password").await;
    let r = b.get("/get/db_password").await;
    assert_eq!(r.body, "", "another session's value is refused");
    assert!(
        b.token.is_none(),
        "the unreadable session's cookie is removed"
    );
    let mut c = Client::new(addr, "c", false);
    c.get("/set/theme/dark").await;
    c.get("/set/db_password/mine").await;
    let c_id = id_of(&mut c).await;
    copy_value(&store, &c_id, "theme", &c_id, "db_password").await;
    assert_eq!(
        c.get("/get/theme").await.body,
        "",
        "another key's value is refused"
    );

    // Rotation: the new key seals, the old one still opens what it sealed.
    let rotated = serve(at_rest_app(layer(&[2, 1]))).await;
    let mut a = Client {
        base: format!("http://{rotated}"),
        ..a
    };
    assert_eq!(a.get("/get/db_password").await.body, secret);
    assert_eq!(
        a.get("/inc").await.body,
        "23",
        "an old key's integer increments"
    );
    let tags = a.get("/tag/z").await.body;
    assert!(
        tags.starts_with("x,y,") && tags.ends_with(",last,z"),
        "an old key's value updates: {tags}"
    );
    a.get("/set/theme/light").await;
    let raw = store.load(&a_id, SystemClock.now()).await.unwrap().unwrap();
    let new_only = SessionLayer::new(store.clone())
        .with_signing_key(key(2))
        .with_encryption_at_rest(true);
    let opened = new_only
        .shared
        .keys
        .at_rest
        .open(&a_id, "theme", &raw.data["theme"]);
    assert_eq!(
        opened.unwrap(),
        Value::from("light"),
        "written with the new key"
    );
}

async fn futures_join<T: Send + 'static>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        out.push(task.await.unwrap());
    }
    out
}
