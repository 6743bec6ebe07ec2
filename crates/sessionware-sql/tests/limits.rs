//! What the engines' limits do to session data, on every engine: change sets far larger than
//! one JSON function call takes apply whole, and data an engine cannot hold is reported as
//! refused (`Error::Rejected`), never as the store being down, with nothing written.

mod common;

use common::*;
use serde_json::{Value, json};
use sessionware_core::time::{Duration, OffsetDateTime};
use sessionware_core::{ChangeSet, Clock as _, Data, Error, SessionId, SessionStore, SystemClock};

fn now() -> OffsetDateTime {
    SystemClock.now()
}

/// A value whose arrays nest `levels` deep.
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!("leaf"), |v, _| json!([v]))
}

/// Values of every JSON type, so a chunk boundary that mixed up parameters would show.
fn value(i: usize) -> Value {
    match i % 4 {
        0 => json!(i),
        1 => json!(format!("v{i} ü \" \\")),
        2 => json!({"i": i, "list": [i, null, true]}),
        _ => json!([i, {"x": i % 3 == 0}]),
    }
}

#[tokio::test]
async fn change_sets_larger_than_a_function_call_apply_whole() {
    for e in engines("bigset", None).await {
        let name = e.name;
        let t0 = now();
        let r = record(t0, Duration::minutes(5), json!({"keep": 1, "drop": 2}));
        let id = e.store.create(&r).await.unwrap();
        let mut expected: Data = r.data.clone();
        for keys in [64, 200, 1000] {
            let mut c = ChangeSet::new(t0 + Duration::minutes(5));
            for i in 0..keys {
                let (k, v) = (format!("k{keys}-{i}"), value(i));
                c.set(k.clone(), v.clone());
                expected.insert(k, v);
            }
            let applied = e.store.apply(&id, &c, t0).await;
            assert!(
                applied.as_ref().is_ok_and(|ok| *ok),
                "{name}: {keys} keys set: {applied:?}"
            );
            let back = e.store.load(&id, t0).await.unwrap().unwrap().data;
            assert_eq!(back, expected, "{name}: {keys} keys set");
        }

        // 200 removed (of the 1000 just set), with sets in the same change.
        let mut c = ChangeSet::new(t0 + Duration::minutes(5));
        for i in 0..200 {
            let k = format!("k1000-{i}");
            c.remove(k.clone());
            expected.remove(&k);
        }
        c.remove("drop").set("late", json!([1, 2]));
        expected.remove("drop");
        expected.insert("late".into(), json!([1, 2]));
        assert!(e.store.apply(&id, &c, t0).await.unwrap(), "{name}");
        let back = e.store.load(&id, t0).await.unwrap().unwrap().data;
        assert_eq!(back, expected, "{name}: 200 keys removed");

        // Cleared, then 200 set.
        let mut c = ChangeSet::new(t0 + Duration::minutes(5));
        c.clear();
        let mut expected = Data::new();
        for i in 0..200 {
            c.set(format!("c{i}"), value(i));
            expected.insert(format!("c{i}"), value(i));
        }
        assert!(e.store.apply(&id, &c, t0).await.unwrap(), "{name}");
        let back = e.store.load(&id, t0).await.unwrap().unwrap().data;
        assert_eq!(back, expected, "{name}: cleared, 200 keys set");
        e.drop_table().await;
    }
}

/// What an engine did with a write of data it may not hold.
#[derive(Debug, PartialEq)]
enum Outcome {
    Stored,
    Rejected,
}

/// Tries `data` (one key, `key`) by every write path: `create`, `apply` and `rekey`. Checks that
/// a refusal is `Error::Rejected` without the session id in it and writes nothing, and that
/// what is stored loads back exactly. Returns what the three paths did, which must agree.
async fn write_each_way(e: &Engine, key: &str, v: &Value) -> Outcome {
    let name = e.name;
    let t0 = now();
    let data = Data::from([(key.to_owned(), v.clone())]);
    let check = |what: &str, id: SessionId, result: Result<(), Error>| {
        let what = format!("{name}: {what} of {key:?}");
        match result {
            Ok(()) => Outcome::Stored,
            Err(Error::Rejected { reason }) => {
                assert!(!reason.contains(&id.to_string()), "{what}: {reason}");
                Outcome::Rejected
            }
            Err(err) => {
                assert!(
                    !err.is_unavailable(),
                    "{what}: reported as an outage: {err}"
                );
                panic!("{what}: {err}");
            }
        }
    };

    // create
    let mut fresh = record(t0, Duration::minutes(5), json!({}));
    fresh.data = data.clone();
    let created = e.store.create(&fresh).await;
    let by_create = check(
        "create",
        fresh.id,
        created.as_ref().map(drop).map_err(clone),
    );
    match created {
        Ok(id) => {
            let back = e.store.load(&id, t0).await.unwrap().unwrap();
            assert_eq!(back.data, data, "{name}: created, loads back");
            e.store.delete(&id).await.unwrap();
        }
        Err(_) => assert_eq!(
            e.store.load(&fresh.id, t0).await.unwrap(),
            None,
            "{name}: nothing created"
        ),
    }

    // apply, onto a session that has other data
    let base = record(t0, Duration::minutes(5), json!({"other": 1}));
    let id = e.store.create(&base).await.unwrap();
    let mut c = ChangeSet::new(t0 + Duration::minutes(5));
    c.set(key, v.clone());
    let applied = e.store.apply(&id, &c, t0).await;
    let by_apply = check("apply", id, applied.as_ref().map(drop).map_err(clone));
    let back = e.store.load(&id, t0).await.unwrap().unwrap().data;
    match applied {
        Ok(ok) => {
            assert!(ok, "{name}");
            let mut expected = base.data.clone();
            expected.extend(data.clone());
            assert_eq!(back, expected, "{name}: applied, loads back");
        }
        Err(_) => assert_eq!(back, base.data, "{name}: a refused change writes nothing"),
    }

    // rekey
    let mut next = record(t0, Duration::minutes(5), json!({}));
    next.data = data.clone();
    let moved = e.store.rekey(&id, None, &next, t0).await;
    let by_rekey = check("rekey", id, moved.as_ref().map(drop).map_err(clone));
    match moved {
        Ok(new_id) => {
            let new_id = new_id.expect("a live session moves");
            let back = e.store.load(&new_id, t0).await.unwrap().unwrap();
            assert_eq!(back.data, data, "{name}: moved, loads back");
            assert_eq!(e.store.load(&id, t0).await.unwrap(), None, "{name}");
            e.store.delete(&new_id).await.unwrap();
        }
        Err(_) => {
            assert!(
                e.store.load(&id, t0).await.unwrap().is_some(),
                "{name}: a refused rekey leaves the session where it was"
            );
            assert_eq!(e.store.load(&next.id, t0).await.unwrap(), None, "{name}");
            e.store.delete(&id).await.unwrap();
        }
    }

    assert_eq!(
        by_create, by_apply,
        "{name}: create and apply of {key:?} agree"
    );
    assert_eq!(
        by_apply, by_rekey,
        "{name}: apply and rekey of {key:?} agree"
    );
    by_apply
}

/// `Error` is not `Clone`; the checks need only the variant and the reason.
fn clone(err: &Error) -> Error {
    match err {
        Error::Rejected { reason } => Error::rejected(reason),
        other => Error::backend(other.to_string()),
    }
}

#[tokio::test]
async fn data_an_engine_cannot_hold_is_refused_not_an_outage() {
    for e in engines("refused", None).await {
        let name = e.name;
        // PostgreSQL's jsonb cannot hold U+0000 (22P05); the others store it.
        let nul = if name == "postgres" {
            Outcome::Rejected
        } else {
            Outcome::Stored
        };
        assert_eq!(
            write_each_way(&e, "s", &json!("a\u{0}b")).await,
            nul,
            "{name}: U+0000 in a value"
        );
        assert_eq!(
            write_each_way(&e, "k\u{0}", &json!(1)).await,
            nul,
            "{name}: U+0000 in a key"
        );

        // MariaDB holds 32 levels of JSON, the whole document included; beyond what the
        // store reads back (126 levels in a value) every engine is refused by the store.
        for (levels, mariadb) in [
            (20, Outcome::Stored),
            (31, Outcome::Rejected),
            (120, Outcome::Rejected),
            (126, Outcome::Rejected),
        ] {
            let expected = if name == "mariadb" {
                mariadb
            } else {
                Outcome::Stored
            };
            assert_eq!(
                write_each_way(&e, "deep", &nested(levels)).await,
                expected,
                "{name}: a value nested {levels} deep"
            );
        }
        for levels in [127, 1000] {
            assert_eq!(
                write_each_way(&e, "deep", &nested(levels)).await,
                Outcome::Rejected,
                "{name}: a value nested {levels} deep"
            );
        }

        // Ordinary sessions keep working next to refused writes.
        let t0 = now();
        let r = record(t0, Duration::minutes(5), json!({"fine": [1, {"x": "y"}]}));
        let id = e.store.create(&r).await.unwrap();
        assert_eq!(e.store.load(&id, t0).await.unwrap().unwrap().data, r.data);
        assert_eq!(e.count().await, 1, "{name}: refused writes left no rows");
        e.drop_table().await;
    }
}

/// A user id longer than MariaDB's column (255 characters) is refused data, not an outage.
#[tokio::test]
async fn a_user_id_too_long_for_the_column_is_refused() {
    for e in engines("longuser", None).await {
        let t0 = now();
        let mut r = record(t0, Duration::minutes(5), json!({}));
        r.user = Some("u".repeat(300));
        let created = e.store.create(&r).await;
        if e.name == "mariadb" {
            assert!(
                matches!(created, Err(Error::Rejected { .. })),
                "{}: {created:?}",
                e.name
            );
        } else {
            let id = created.unwrap();
            assert_eq!(e.store.load(&id, t0).await.unwrap().unwrap().user, r.user);
        }
        e.drop_table().await;
    }
}
