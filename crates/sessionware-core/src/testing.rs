//! The store conformance suite: the contract of [`SessionStore`], checked against a real store.
//!
//! Every store crate runs it in its tests with one call:
//!
//! ```
//! # async fn example(store: impl sessionware_core::SessionStore) {
//! use sessionware_core::testing;
//!
//! testing::run(&store, |id| async move {
//!     // Make the record `id` undecodable, with the backend's own tools.
//! #   let _ = id;
//! })
//! .await;
//! # }
//! ```
//!
//! It panics, naming the check, on the first breach. Times are set relative to the real clock,
//! so a store whose backend also expires keys by itself (a Redis TTL) sees deadlines in the
//! future; the suite deletes what it creates.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test suite: panicking is how it reports

use std::future::Future;

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::{ChangeSet, Clock as _, Data, Error, ExpiryPolicy, Record, SessionId, SessionStore};

/// Runs every check against `store`. `corrupt` must make the stored record of the id it is
/// given undecodable (for example by writing text that is not JSON where the store keeps a
/// value), so the suite can check that the store reports [`Error::Corrupt`].
pub async fn run<S, F, Fut>(store: &S, corrupt: F)
where
    S: SessionStore,
    F: Fn(SessionId) -> Fut,
    Fut: Future<Output = ()>,
{
    // Each check boxed: their state machines together overflow a test thread's stack in debug
    // builds with a large client (fred in Cluster mode).
    Box::pin(round_trip(store)).await;
    Box::pin(unknown_id(store)).await;
    Box::pin(idle_deadline(store)).await;
    Box::pin(absolute_deadline(store)).await;
    Box::pin(touch(store)).await;
    Box::pin(delete(store)).await;
    Box::pin(id_collision(store)).await;
    Box::pin(per_key_changes(store)).await;
    Box::pin(concurrent_changes(store)).await;
    Box::pin(increments(store)).await;
    Box::pin(compare_and_set(store)).await;
    Box::pin(no_resurrection(store)).await;
    Box::pin(user_binding(store)).await;
    Box::pin(user_index(store)).await;
    Box::pin(rekey(store)).await;
    Box::pin(rekey_against_revocation(store)).await;
    Box::pin(corrupt_record(store, corrupt)).await;
}

fn now() -> OffsetDateTime {
    crate::SystemClock.now()
}

fn record(data: Value, now: OffsetDateTime, lives: Duration) -> Record {
    let data: Data = match data {
        Value::Object(map) => map.into_iter().collect(),
        _ => Data::new(),
    };
    Record {
        id: SessionId::generate().expect("random id"),
        data,
        user: None,
        created_at: now,
        expires_at: now + lives,
    }
}

async fn create<S: SessionStore>(store: &S, record: &mut Record) {
    record.id = store.create(record).await.expect("create");
}

async fn load<S: SessionStore>(store: &S, id: &SessionId, now: OffsetDateTime) -> Option<Record> {
    store.load(id, now).await.expect("load")
}

async fn data_of<S: SessionStore>(store: &S, id: &SessionId, now: OffsetDateTime) -> Data {
    load(store, id, now).await.expect("session is live").data
}

async fn round_trip<S: SessionStore>(store: &S) {
    let t0 = now();
    let mut rec = record(
        json!({"count": 3, "name": "ada", "nested": {"list": [1, 2, {"x": null}]}, "unicode": "ünï ✓"}),
        t0,
        Duration::minutes(30),
    );
    create(store, &mut rec).await;
    let back = load(store, &rec.id, t0).await;
    assert_eq!(
        back.as_ref(),
        Some(&rec),
        "round_trip: a created record loads as it was"
    );
    store.delete(&rec.id).await.expect("delete");
}

async fn unknown_id<S: SessionStore>(store: &S) {
    let t0 = now();
    let id = SessionId::generate().expect("random id");
    assert_eq!(load(store, &id, t0).await, None, "unknown_id: load");
    assert!(
        !store
            .touch(&id, t0 + Duration::minutes(1), t0)
            .await
            .expect("touch"),
        "unknown_id: touch reports no session"
    );
    let mut changes = ChangeSet::new(t0 + Duration::minutes(1));
    changes.set("a", json!(1));
    assert!(
        !store.apply(&id, &changes, t0).await.expect("apply"),
        "unknown_id: apply reports no session"
    );
    assert_eq!(
        load(store, &id, t0).await,
        None,
        "unknown_id: apply created nothing"
    );
    store
        .delete(&id)
        .await
        .expect("unknown_id: delete is idempotent");
}

async fn idle_deadline<S: SessionStore>(store: &S) {
    let t0 = now();
    let policy = ExpiryPolicy::new()
        .with_idle_timeout(Some(Duration::minutes(10)))
        .with_absolute_lifetime(Some(Duration::hours(1)))
        .with_refresh_interval(Duration::minutes(1));
    let mut rec = record(json!({"k": 1}), t0, Duration::minutes(10));
    rec.expires_at = policy.deadline(t0, t0);
    create(store, &mut rec).await;

    let before = t0 + Duration::minutes(10) - Duration::milliseconds(1);
    assert!(
        load(store, &rec.id, before).await.is_some(),
        "idle_deadline: live just before"
    );
    let at = t0 + Duration::minutes(10);
    assert_eq!(
        load(store, &rec.id, at).await,
        None,
        "idle_deadline: gone at the deadline"
    );

    // A read refreshes the deadline, so the session lives past its first idle deadline.
    let t5 = t0 + Duration::minutes(5);
    let loaded = store
        .load_refreshed(&rec.id, &policy, t5)
        .await
        .expect("load_refreshed")
        .expect("idle_deadline: live at t+5m");
    assert!(
        loaded.refreshed,
        "idle_deadline: a read past the refresh interval refreshes"
    );
    assert_eq!(loaded.record.expires_at, t0 + Duration::minutes(15));
    assert!(
        load(store, &rec.id, at).await.is_some(),
        "idle_deadline: refresh kept it alive"
    );
    assert_eq!(
        load(store, &rec.id, t0 + Duration::minutes(15)).await,
        None,
        "idle_deadline: gone at the refreshed deadline"
    );
    let again = store
        .load_refreshed(&rec.id, &policy, t5 + Duration::seconds(30))
        .await
        .expect("load_refreshed")
        .expect("live");
    assert!(
        !again.refreshed,
        "idle_deadline: no refresh inside the refresh interval"
    );
    assert_eq!(again.record.expires_at, t0 + Duration::minutes(15));
    store.delete(&rec.id).await.expect("delete");
}

async fn absolute_deadline<S: SessionStore>(store: &S) {
    let t0 = now();
    let policy = ExpiryPolicy::new()
        .with_idle_timeout(Some(Duration::minutes(10)))
        .with_absolute_lifetime(Some(Duration::minutes(25)))
        .with_refresh_interval(Duration::ZERO);
    let mut rec = record(json!({"k": 1}), t0, Duration::ZERO);
    rec.expires_at = policy.deadline(t0, t0);
    create(store, &mut rec).await;
    // Keep it busy: every read slides the idle deadline, until the lifetime caps it.
    let mut t = t0;
    for _ in 0..5 {
        t += Duration::minutes(5);
        let loaded = store
            .load_refreshed(&rec.id, &policy, t)
            .await
            .expect("load_refreshed");
        if t < t0 + Duration::minutes(25) {
            let loaded = loaded.expect("absolute_deadline: live while in use");
            assert_eq!(
                loaded.record.expires_at,
                (t + Duration::minutes(10)).min(t0 + Duration::minutes(25))
            );
        } else {
            assert_eq!(
                loaded, None,
                "absolute_deadline: gone at the lifetime, however busy"
            );
        }
    }
    store.delete(&rec.id).await.expect("delete");
}

async fn touch<S: SessionStore>(store: &S) {
    let t0 = now();
    let mut rec = record(json!({"k": "v"}), t0, Duration::minutes(1));
    create(store, &mut rec).await;
    let later = t0 + Duration::minutes(20);
    assert!(
        store.touch(&rec.id, later, t0).await.expect("touch"),
        "touch: live session"
    );
    let back = load(store, &rec.id, t0 + Duration::minutes(2)).await;
    let back = back.expect("touch: live after its old deadline");
    assert_eq!(back.expires_at, later, "touch: new deadline");
    assert_eq!(back.data, rec.data, "touch: data untouched");
    assert!(
        !store
            .touch(&rec.id, later + Duration::minutes(5), later)
            .await
            .expect("touch"),
        "touch: an expired session is not brought back"
    );
    assert_eq!(load(store, &rec.id, later).await, None);
    store.delete(&rec.id).await.expect("delete");
}

async fn delete<S: SessionStore>(store: &S) {
    let t0 = now();
    let mut rec = record(json!({"k": 1}), t0, Duration::minutes(5));
    create(store, &mut rec).await;
    store.delete(&rec.id).await.expect("delete");
    assert_eq!(load(store, &rec.id, t0).await, None, "delete: gone");
    store.delete(&rec.id).await.expect("delete: idempotent");
}

async fn id_collision<S: SessionStore>(store: &S) {
    let t0 = now();
    let mut first = record(json!({"owner": "first"}), t0, Duration::minutes(5));
    create(store, &mut first).await;
    let mut second = record(json!({"owner": "second"}), t0, Duration::minutes(5));
    second.id = first.id;
    let second_id = store.create(&second).await.expect("create");
    assert_ne!(
        second_id, first.id,
        "id_collision: a taken id is never reused"
    );
    assert_eq!(
        data_of(store, &first.id, t0).await,
        first.data,
        "id_collision: the existing session is untouched"
    );
    assert_eq!(
        data_of(store, &second_id, t0).await,
        second.data,
        "id_collision: the new session is stored under its new id"
    );
    store.delete(&first.id).await.expect("delete");
    store.delete(&second_id).await.expect("delete");
}

async fn per_key_changes<S: SessionStore>(store: &S) {
    let t0 = now();
    let mut rec = record(json!({"a": 1, "b": 2, "c": 3}), t0, Duration::minutes(5));
    create(store, &mut rec).await;

    let mut changes = ChangeSet::new(t0 + Duration::minutes(7));
    changes
        .set("a", json!({"deep": [true]}))
        .remove("b")
        .set("d", json!("new"));
    assert!(store.apply(&rec.id, &changes, t0).await.expect("apply"));
    let back = load(store, &rec.id, t0).await.expect("live");
    assert_eq!(
        back.data,
        Data::from([
            ("a".into(), json!({"deep": [true]})),
            ("c".into(), json!(3)),
            ("d".into(), json!("new")),
        ]),
        "per_key_changes: set, remove, keep"
    );
    assert_eq!(
        back.expires_at,
        t0 + Duration::minutes(7),
        "per_key_changes: deadline moves"
    );
    assert_eq!(back.created_at, t0, "per_key_changes: creation time kept");

    let mut clear = ChangeSet::new(t0 + Duration::minutes(7));
    clear.clear().set("only", json!(0));
    assert!(store.apply(&rec.id, &clear, t0).await.expect("apply"));
    assert_eq!(
        data_of(store, &rec.id, t0).await,
        Data::from([("only".into(), json!(0))]),
        "per_key_changes: clear drops every stored key first"
    );
    store.delete(&rec.id).await.expect("delete");
}

async fn concurrent_changes<S: SessionStore>(store: &S) {
    let t0 = now();
    let mut rec = record(json!({"a": 0, "b": 0, "c": 0}), t0, Duration::minutes(5));
    create(store, &mut rec).await;
    let deadline = t0 + Duration::minutes(6);
    let change = |key: &str, value: Value| {
        let mut c = ChangeSet::new(deadline);
        c.set(key, value);
        c
    };
    let (a, b, c) = (
        change("a", json!(1)),
        change("b", json!(2)),
        change("new", json!(3)),
    );
    let (ra, rb, rc) = tokio::join!(
        store.apply(&rec.id, &a, t0),
        store.apply(&rec.id, &b, t0),
        store.apply(&rec.id, &c, t0)
    );
    assert!(ra.expect("apply") && rb.expect("apply") && rc.expect("apply"));
    assert_eq!(
        data_of(store, &rec.id, t0).await,
        Data::from([
            ("a".into(), json!(1)),
            ("b".into(), json!(2)),
            ("c".into(), json!(0)),
            ("new".into(), json!(3)),
        ]),
        "concurrent_changes: changes to different keys all survive"
    );
    store.delete(&rec.id).await.expect("delete");
}

/// Adds 1 to `n` and 2 to `fresh`, `times` times, one change set after another.
async fn increment_times<S: SessionStore>(store: &S, id: &SessionId, times: usize) {
    let t0 = now();
    for _ in 0..times {
        let mut c = ChangeSet::new(t0 + Duration::minutes(6));
        c.increment("n", 1).increment("fresh", 2);
        assert!(store.apply(id, &c, t0).await.expect("increment"));
    }
}

async fn increments<S: SessionStore>(store: &S) {
    let t0 = now();
    let deadline = t0 + Duration::minutes(6);
    let mut rec = record(
        json!({"n": 1, "s": "1", "f": 1.5, "max": i64::MAX, "min": i64::MIN}),
        t0,
        Duration::minutes(5),
    );
    create(store, &mut rec).await;
    let id = rec.id;
    tokio::join!(
        increment_times(store, &id, 25),
        increment_times(store, &id, 25),
        increment_times(store, &id, 25),
        increment_times(store, &id, 25),
        increment_times(store, &id, 25),
        increment_times(store, &id, 25),
        increment_times(store, &id, 25),
        increment_times(store, &id, 25),
    );
    let data = data_of(store, &id, t0).await;
    assert_eq!(
        (&data["n"], &data["fresh"]),
        (&json!(201), &json!(400)),
        "increments: 200 concurrent increments all count; a missing key counts from 0"
    );
    let refused = |key: &str, by: i64| {
        let mut c = ChangeSet::new(deadline);
        c.set("written", json!(true))
            .increment("n", 1)
            .increment(key, by);
        c
    };
    for key in ["s", "f"] {
        match store.apply(&id, &refused(key, 1), t0).await {
            Err(Error::NotAnInteger { key: k }) if k == key => {}
            other => panic!("increments: {key} is not an integer, got {other:?}"),
        }
    }
    for (key, by) in [("max", 1), ("min", -1), ("n", i64::MAX)] {
        match store.apply(&id, &refused(key, by), t0).await {
            Err(Error::Overflow { key: k }) if k == key => {}
            other => panic!("increments: {key} + {by} overflows, got {other:?}"),
        }
    }
    assert_eq!(
        data_of(store, &id, t0).await,
        data,
        "increments: a refused change set writes nothing"
    );
    let mut c = ChangeSet::new(deadline);
    c.increment("n", -201)
        .increment("max", -1)
        .increment("min", i64::MAX);
    assert!(store.apply(&id, &c, t0).await.expect("apply"));
    let data = data_of(store, &id, t0).await;
    assert_eq!(
        (&data["n"], &data["max"], &data["min"]),
        (&json!(0), &json!(i64::MAX - 1), &json!(-1)),
        "increments: negative and large steps"
    );
    let mut c = ChangeSet::new(deadline);
    c.clear().increment("s", 5);
    assert!(store.apply(&id, &c, t0).await.expect("apply"));
    assert_eq!(
        data_of(store, &id, t0).await,
        Data::from([("s".into(), json!(5))]),
        "increments: after a clear a key counts from 0"
    );
    let mut c = ChangeSet::new(deadline);
    c.increment("n", 1);
    let unknown = SessionId::generate().expect("random id");
    assert!(
        !store.apply(&unknown, &c, t0).await.expect("apply"),
        "increments: no session, nothing written"
    );
    assert_eq!(load(store, &unknown, t0).await, None);
    store.delete(&id).await.expect("delete");
}

/// Adds 1 to the integer under `k` `times` times by compare-and-set, re-reading on conflict
/// from what the store answered; returns how many conflicts it met.
async fn cas_times<S: SessionStore>(store: &S, id: &SessionId, times: usize) -> usize {
    let t0 = now();
    let mut seen = data_of(store, id, t0).await.get("k").cloned();
    let mut conflicts = 0;
    for _ in 0..times {
        loop {
            let next = seen.as_ref().and_then(Value::as_i64).unwrap_or(0) + 1;
            let mut c = ChangeSet::new(t0 + Duration::minutes(6));
            c.expect("k", seen.clone()).set("k", json!(next));
            match store.apply(id, &c, t0).await {
                Ok(true) => {
                    seen = Some(json!(next));
                    break;
                }
                Err(Error::Conflict { current }) => {
                    conflicts += 1;
                    assert_eq!(current.len(), 1, "compare_and_set: only `k` conflicts");
                    seen = current.into_iter().next().and_then(|(_, v)| v);
                }
                other => panic!("compare_and_set: {other:?}"),
            }
        }
    }
    conflicts
}

async fn compare_and_set<S: SessionStore>(store: &S) {
    let t0 = now();
    let deadline = t0 + Duration::minutes(6);
    let object = json!({"b": [1, 2.5, "ü"], "a": {"z": null, "y": 0.1}});
    let mut rec = record(
        json!({"list": [1], "flag": null, "object": object, "big": u64::MAX}),
        t0,
        Duration::minutes(5),
    );
    create(store, &mut rec).await;
    let id = rec.id;
    let cas = |key: &str, expected: Option<Value>| {
        let mut c = ChangeSet::new(deadline);
        c.expect(key, expected).set("written", json!(key));
        c
    };
    for (key, expected) in [
        ("list", Some(json!([1]))),
        ("flag", Some(Value::Null)),
        ("missing", None),
        ("object", Some(object.clone())),
        ("big", Some(json!(u64::MAX))),
    ] {
        assert!(
            store
                .apply(&id, &cas(key, expected), t0)
                .await
                .expect("apply"),
            "compare_and_set: {key} holds what is expected"
        );
    }
    let before = data_of(store, &id, t0).await;
    for (key, expected, current) in [
        ("list", Some(json!([2])), Some(json!([1]))),
        ("flag", None, Some(Value::Null)),
        ("missing", Some(Value::Null), None),
        (
            "object",
            Some(json!({"b": [1, 2.5, "ü"]})),
            Some(object.clone()),
        ),
        ("list", Some(json!("[1]")), Some(json!([1]))),
    ] {
        match store.apply(&id, &cas(key, expected), t0).await {
            Err(Error::Conflict { current: got }) => assert_eq!(
                got,
                [(key.to_owned(), current)],
                "compare_and_set: the conflict says what {key} holds"
            ),
            other => panic!("compare_and_set: {key} changed, got {other:?}"),
        }
    }
    assert_eq!(
        data_of(store, &id, t0).await,
        before,
        "compare_and_set: a refused change set writes nothing"
    );
    let (a, b, c, d) = tokio::join!(
        cas_times(store, &id, 10),
        cas_times(store, &id, 10),
        cas_times(store, &id, 10),
        cas_times(store, &id, 10),
    );
    assert_eq!(
        data_of(store, &id, t0).await["k"],
        json!(40),
        "compare_and_set: concurrent read-modify-writes lose nothing ({} conflicts)",
        a + b + c + d
    );
    let unknown = SessionId::generate().expect("random id");
    assert!(
        !store
            .apply(&unknown, &cas("k", None), t0)
            .await
            .expect("apply"),
        "compare_and_set: no session, nothing written"
    );
    store.delete(&id).await.expect("delete");
}

async fn no_resurrection<S: SessionStore>(store: &S) {
    let t0 = now();
    let mut rec = record(json!({"k": 1}), t0, Duration::minutes(5));
    create(store, &mut rec).await;
    let mut changes = ChangeSet::new(t0 + Duration::minutes(10));
    changes.set("k", json!(2));

    // Expired: the write arrives after the deadline.
    let late = t0 + Duration::minutes(5);
    assert!(
        !store.apply(&rec.id, &changes, late).await.expect("apply"),
        "no_resurrection: apply to an expired session reports false"
    );
    assert_eq!(
        load(store, &rec.id, late).await,
        None,
        "no_resurrection: still expired"
    );
    assert_eq!(
        load(store, &rec.id, t0).await.map(|r| r.data),
        Some(rec.data.clone()),
        "no_resurrection: the refused write changed nothing"
    );

    // Deleted: the write arrives after another request destroyed it.
    store.delete(&rec.id).await.expect("delete");
    assert!(
        !store.apply(&rec.id, &changes, t0).await.expect("apply"),
        "no_resurrection: apply to a deleted session reports false"
    );
    assert_eq!(
        load(store, &rec.id, t0).await,
        None,
        "no_resurrection: still deleted"
    );
}

async fn user_binding<S: SessionStore>(store: &S) {
    let t0 = now();
    let mut rec = record(json!({}), t0, Duration::minutes(5));
    create(store, &mut rec).await;
    assert_eq!(load(store, &rec.id, t0).await.expect("live").user, None);

    let mut bound = record(json!({"k": 1}), t0, Duration::minutes(5));
    bound.user = Some("user-7".into());
    create(store, &mut bound).await;
    assert_eq!(
        load(store, &bound.id, t0)
            .await
            .expect("live")
            .user
            .as_deref(),
        Some("user-7"),
        "user_binding: created bound"
    );
    let mut other = ChangeSet::new(t0 + Duration::minutes(5));
    other.set("x", json!(1)).loaded_by(Some("user-7".into()));
    assert!(store.apply(&bound.id, &other, t0).await.expect("apply"));
    let back = load(store, &bound.id, t0).await.expect("live");
    assert_eq!(
        back.user.as_deref(),
        Some("user-7"),
        "user_binding: kept by changes to the data"
    );
    store.delete(&rec.id).await.expect("delete");
    store.delete(&bound.id).await.expect("delete");
}

async fn user_index<S: SessionStore>(store: &S) {
    let t0 = now();
    // A user name of its own, so stores shared with other tests list only these sessions.
    let user = format!("conformance-{}", SessionId::generate().expect("random id"));
    let other = format!("{user}-other");
    let bound = |lives: Duration, who: &str| {
        let mut r = record(json!({"k": 1}), t0, lives);
        r.user = Some(who.to_owned());
        r
    };
    let ids_of = |records: Vec<Record>| {
        let mut ids: Vec<SessionId> = records.into_iter().map(|r| r.id).collect();
        ids.sort();
        ids
    };
    let sorted = |mut ids: Vec<SessionId>| {
        ids.sort();
        ids
    };
    let list = |at: OffsetDateTime| {
        let user = user.clone();
        async move { store.list_user(&user, at).await.expect("list_user") }
    };

    let mut a = bound(Duration::minutes(5), &user);
    let mut b = bound(Duration::minutes(30), &user);
    let mut c = bound(Duration::minutes(30), &user);
    let mut theirs = bound(Duration::minutes(30), &other);
    let mut anonymous = record(json!({"k": 1}), t0, Duration::minutes(30));
    for r in [&mut a, &mut b, &mut c, &mut theirs, &mut anonymous] {
        create(store, r).await;
    }
    let listed = list(t0).await;
    assert!(
        listed
            .iter()
            .all(|r| r.user.as_deref() == Some(user.as_str()) && r.data == a.data),
        "user_index: listed records are whole and bound to the user"
    );
    assert_eq!(
        ids_of(listed),
        sorted(vec![a.id, b.id, c.id]),
        "user_index: the user's sessions"
    );

    // Binding through `rekey` joins the index; rebinding and deleting leave it.
    let mut signed_in = anonymous.clone();
    signed_in.user = Some(user.clone());
    let anonymous_now = store
        .rekey(&anonymous.id, None, &signed_in, t0)
        .await
        .expect("rekey")
        .expect("rekey: live");
    let mut elsewhere = c.clone();
    elsewhere.id = SessionId::generate().expect("random id");
    elsewhere.user = Some(other.clone());
    let c_now = store
        .rekey(&c.id, Some(&user), &elsewhere, t0)
        .await
        .expect("rekey")
        .expect("rekey: live");
    store.delete(&b.id).await.expect("delete");
    assert_eq!(
        ids_of(list(t0).await),
        sorted(vec![a.id, anonymous_now]),
        "user_index: follows rekey and delete"
    );

    // Everything but the current session ("after a password change").
    let mut d = bound(Duration::minutes(30), &user);
    create(store, &mut d).await;
    let ended = store
        .delete_user(&user, Some(&d.id), t0)
        .await
        .expect("delete_user");
    assert_eq!(ended, 2, "user_index: delete_user ends the others");
    assert_eq!(
        ids_of(list(t0).await),
        vec![d.id],
        "user_index: keep survives"
    );
    assert_eq!(
        load(store, &a.id, t0).await,
        None,
        "user_index: deleted for real"
    );
    assert!(
        load(store, &theirs.id, t0).await.is_some(),
        "user_index: other users untouched"
    );

    // Everything ("log out everywhere").
    assert_eq!(
        store
            .delete_user(&user, None, t0)
            .await
            .expect("delete_user"),
        1
    );
    assert_eq!(list(t0).await, Vec::new(), "user_index: nothing left");
    assert_eq!(load(store, &d.id, t0).await, None);
    assert_eq!(
        store
            .delete_user(&user, None, t0)
            .await
            .expect("delete_user"),
        0
    );

    store
        .delete_user(&other, None, t0)
        .await
        .expect("delete_user");
    assert_eq!(load(store, &theirs.id, t0).await, None);
    assert_eq!(load(store, &c_now, t0).await, None);

    // Last, since a store may prune what it saw expire: time only moves forward from here.
    let mut short = bound(Duration::minutes(5), &user);
    let mut long = bound(Duration::minutes(30), &user);
    create(store, &mut short).await;
    create(store, &mut long).await;
    assert_eq!(
        ids_of(list(t0 + Duration::minutes(5)).await),
        vec![long.id],
        "user_index: an expired session is not listed"
    );
    assert_eq!(
        store
            .delete_user(&user, None, t0 + Duration::minutes(5))
            .await
            .expect("delete_user"),
        1,
        "user_index: delete_user counts live sessions only"
    );
    store.delete(&short.id).await.expect("delete");
}

async fn rekey<S: SessionStore>(store: &S) {
    let t0 = now();
    let user = format!(
        "conformance-rekey-{}",
        SessionId::generate().expect("random id")
    );
    let mut old = record(json!({"k": 1}), t0, Duration::minutes(5));
    create(store, &mut old).await;

    // Live and unbound: signed in as `user`, with new data and a later deadline.
    let mut next = record(json!({"k": 2, "n": [1]}), t0, Duration::minutes(9));
    next.created_at = old.created_at;
    next.user = Some(user.clone());
    let new_id = store
        .rekey(&old.id, None, &next, t0)
        .await
        .expect("rekey")
        .expect("rekey: a live session moves");
    assert_ne!(new_id, old.id, "rekey: a new id");
    assert_eq!(
        load(store, &old.id, t0).await,
        None,
        "rekey: the old id ends"
    );
    let back = load(store, &new_id, t0)
        .await
        .expect("rekey: the new id loads");
    assert_eq!(back.data, next.data, "rekey: the record's data");
    assert_eq!(
        back.user.as_deref(),
        Some(user.as_str()),
        "rekey: the record's user"
    );
    assert_eq!(back.created_at, old.created_at, "rekey: creation time kept");
    assert_eq!(
        back.expires_at, next.expires_at,
        "rekey: the record's deadline"
    );
    let listed: Vec<SessionId> = store
        .list_user(&user, t0)
        .await
        .expect("list_user")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        listed,
        vec![new_id],
        "rekey: the user index holds the new id only"
    );

    // Bound to `user` now: a caller that saw another binding is refused, and nothing changes.
    let mut again = next.clone();
    again.id = SessionId::generate().expect("random id");
    for seen in [None, Some("someone-else")] {
        assert_eq!(
            store.rekey(&new_id, seen, &again, t0).await.expect("rekey"),
            None,
            "rekey: refused when the session is bound to another user than the caller saw"
        );
        assert_eq!(
            load(store, &again.id, t0).await,
            None,
            "rekey: refused, nothing created"
        );
        assert!(
            load(store, &new_id, t0).await.is_some(),
            "rekey: refused, the session stays"
        );
    }

    // A taken id is never overwritten.
    let mut other = record(json!({"owner": "other"}), t0, Duration::minutes(5));
    create(store, &mut other).await;
    let mut onto_taken = next.clone();
    onto_taken.id = other.id;
    let moved = store
        .rekey(&new_id, Some(&user), &onto_taken, t0)
        .await
        .expect("rekey")
        .expect("rekey: the bound user matches");
    assert_ne!(moved, other.id, "rekey: a taken id is never reused");
    assert_eq!(
        data_of(store, &other.id, t0).await,
        other.data,
        "rekey: the session holding the taken id is untouched"
    );
    assert_eq!(
        load(store, &new_id, t0).await,
        None,
        "rekey: the old id ends"
    );

    // Expired or deleted: refused, nothing created, nothing brought back.
    let late = t0 + Duration::minutes(9);
    let mut after = next.clone();
    after.id = SessionId::generate().expect("random id");
    after.expires_at = late + Duration::minutes(5);
    assert_eq!(
        store
            .rekey(&moved, Some(&user), &after, late)
            .await
            .expect("rekey"),
        None,
        "rekey: an expired session is not moved"
    );
    assert_eq!(
        load(store, &after.id, late).await,
        None,
        "rekey: expired, nothing created"
    );
    store.delete(&moved).await.expect("delete");
    assert_eq!(
        store
            .rekey(&moved, Some(&user), &after, t0)
            .await
            .expect("rekey"),
        None,
        "rekey: a deleted session is not moved"
    );
    assert_eq!(
        load(store, &after.id, t0).await,
        None,
        "rekey: deleted, nothing created"
    );
    assert_eq!(
        load(store, &moved, t0).await,
        None,
        "rekey: deleted, still deleted"
    );
    assert!(
        store
            .list_user(&user, t0)
            .await
            .expect("list_user")
            .is_empty(),
        "rekey: no session of the user is left"
    );
    store.delete(&other.id).await.expect("delete");
}

/// "Log out everywhere" racing a sign-in renewal: whichever lands first, once both are done no
/// session of the user is left, because a renewal that finds its session revoked moves
/// nothing, and a revocation also ends what a renewal moved meanwhile.
async fn rekey_against_revocation<S: SessionStore>(store: &S) {
    let t0 = now();
    let user = format!(
        "conformance-race-{}",
        SessionId::generate().expect("random id")
    );
    for round in 0..20 {
        let mut old = record(json!({"round": round}), t0, Duration::minutes(5));
        old.user = Some(user.clone());
        create(store, &mut old).await;
        let mut next = record(json!({"round": round}), t0, Duration::minutes(5));
        next.user = Some(user.clone());
        let (moved, ended) = tokio::join!(
            store.rekey(&old.id, Some(&user), &next, t0),
            store.delete_user(&user, None, t0)
        );
        let moved = moved.expect("rekey");
        ended.expect("delete_user");
        let left = store.list_user(&user, t0).await.expect("list_user");
        assert!(
            left.is_empty(),
            "rekey_against_revocation: round {round}: a session outlived log out everywhere \
             (rekey returned {moved:?})"
        );
        if let Some(id) = moved {
            assert_eq!(
                load(store, &id, t0).await,
                None,
                "rekey_against_revocation: ended"
            );
        }
    }
}

async fn corrupt_record<S, F, Fut>(store: &S, corrupt: F)
where
    S: SessionStore,
    F: Fn(SessionId) -> Fut,
    Fut: Future<Output = ()>,
{
    let t0 = now();
    let mut rec = record(json!({"k": 1}), t0, Duration::minutes(5));
    create(store, &mut rec).await;
    corrupt(rec.id).await;
    match store.load(&rec.id, t0).await {
        Err(Error::Corrupt { reason }) => {
            assert!(
                !reason.contains(&rec.id.to_string()),
                "corrupt_record: the reason must not contain the session id"
            );
        }
        other => panic!("corrupt_record: expected Error::Corrupt, got {other:?}"),
    }
    // Still there, still corrupt: a failed decode overwrites nothing.
    assert!(
        matches!(store.load(&rec.id, t0).await, Err(Error::Corrupt { .. })),
        "corrupt_record: the record is left as it was"
    );
    store
        .delete(&rec.id)
        .await
        .expect("corrupt_record: a corrupt record can be deleted");
    assert_eq!(load(store, &rec.id, t0).await, None);
}
