//! Audit events over HTTP: each kind, in the order the requests caused them, naming the
//! sessions consistently.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use sessionware_core::SessionStore;

use super::{Client, app};
use crate::{Key, RevokedBy, Session, SessionEvent, SessionEventKind, SessionLayer};

fn extra(layer: SessionLayer) -> Router {
    Router::new()
        .route(
            "/log-id",
            get(|s: Session| async move { s.log_id().map(|l| l.to_string()).unwrap_or_default() }),
        )
        .route("/cycle", get(|s: Session| async move { s.cycle_id() }))
        .route(
            "/confirm",
            get(|s: Session| async move { s.confirm_sign_in() }),
        )
        .layer(layer)
}

/// Audit events on `store`, over real loopback HTTP: refused tokens, conflicting cookies, sign-ins, id renewals
/// (plain and confirmed), a revocation by the per-user cap, the revoked session seen ended at
/// its next load, a revocation by the user and one by an admin, a sign-out; in that order,
/// each naming the session it concerns by the log id handlers see. Panics, naming the step,
/// on the first failure.
pub async fn events_over_http(store: impl SessionStore + Clone) {
    let events: Arc<Mutex<Vec<SessionEvent>>> = Arc::default();
    let sink = events.clone();
    let layer = SessionLayer::new(store)
        .with_signing_key(
            Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 11 ^ i as u8)).unwrap(),
        )
        .with_max_sessions_per_user(2)
        .with_event_handler(move |event| sink.lock().unwrap().push(event.clone()));
    let admin = layer.users();
    let addr = super::serve(app(layer.clone()).merge(extra(layer))).await;
    let user = format!("audit-{}", crate::SessionId::generate().unwrap());
    let take = || std::mem::take(&mut *events.lock().unwrap());
    let kinds = |events: &[SessionEvent]| -> Vec<SessionEventKind> {
        events.iter().map(|e| e.kind.clone()).collect()
    };

    // A token that does not verify.
    let mut first = Client::new(addr, "first", false);
    first.token = Some(format!("{}.{}", "A".repeat(22), "B".repeat(43)));
    first.get("/whoami").await;
    let seen = take();
    assert_eq!(
        kinds(&seen),
        [SessionEventKind::TokenRefused],
        "refused token"
    );
    assert!(seen[0].session.is_some(), "a refused token is named");
    assert_eq!(seen[0].user, None);

    // Sign-in from an anonymous stored session, then two renewals.
    first.get("/inc").await;
    let anonymous = first.get("/log-id").await.body;

    // A real id with a forged tag is named as its session is; two valid cookies of different
    // sessions are neither used, and both are named.
    let mut tosser = Client::new(addr, "tosser", false);
    tosser.get("/inc").await;
    let planted = tosser.get("/log-id").await.body;
    take();
    let token = first.token.clone().unwrap();
    let (id_part, _) = token.split_once('.').unwrap();
    let mut forger = Client::new(addr, "forger", false);
    forger.token = Some(format!("{id_part}.{}", "B".repeat(43)));
    forger.get("/whoami").await;
    let planted_token = tosser.token.clone().unwrap();
    tosser.token = Some(format!("{planted_token}; __Host-session={token}"));
    let r = tosser.get("/log-id").await;
    let seen = take();
    assert_eq!(seen.len(), 2, "one refused, one conflicting pair: {seen:?}");
    assert_eq!(seen[0].kind, SessionEventKind::TokenRefused);
    assert_eq!(
        seen[0].session.map(|l| l.to_string()),
        Some(anonymous.clone()),
        "a forged tag on a real id names that session"
    );
    assert!(
        matches!(&seen[1].kind, SessionEventKind::ConflictingCookies { other } if other.to_string() == anonymous),
        "conflicting cookies name the other session: {seen:?}"
    );
    assert_eq!(seen[1].session.map(|l| l.to_string()), Some(planted));
    assert_eq!(r.body, "", "neither session was used");
    first.get(&format!("/login/{user}")).await;
    let signed_in = first.get("/log-id").await.body;
    first.get("/cycle").await;
    let cycled = first.get("/log-id").await.body;
    first.get("/confirm").await;
    let confirmed = first.get("/log-id").await.body;
    let seen = take();
    let name = |e: &SessionEvent| e.session.map(|l| l.to_string()).unwrap_or_default();
    assert_eq!(seen.len(), 3, "sign-in and two renewals: {seen:?}");
    assert!(
        matches!(&seen[0].kind, SessionEventKind::Login { previous: Some(p) } if p.to_string() == anonymous),
        "login names the anonymous session it replaced: {seen:?}"
    );
    assert_eq!(name(&seen[0]), signed_in);
    assert_eq!(seen[0].user.as_deref(), Some(user.as_str()));
    assert!(matches!(
        &seen[1].kind,
        SessionEventKind::IdRenewed { previous, sign_in_confirmed: false } if previous.to_string() == signed_in
    ));
    assert_eq!(name(&seen[1]), cycled);
    assert!(matches!(
        &seen[2].kind,
        SessionEventKind::IdRenewed { previous, sign_in_confirmed: true } if previous.to_string() == cycled
    ));
    assert_eq!(name(&seen[2]), confirmed);
    assert!(
        seen.windows(2).all(|w| w[0].at <= w[1].at),
        "times in order"
    );

    // Two more devices: the third sign-in is over the cap of 2 and ends the oldest.
    let mut second = Client::new(addr, "second", false);
    second.get(&format!("/login/{user}")).await;
    let mut third = Client::new(addr, "third", false);
    third.get(&format!("/login/{user}")).await;
    let third_name = third.get("/log-id").await.body;
    let seen = take();
    assert_eq!(seen.len(), 3, "two sign-ins, one cap revocation: {seen:?}");
    assert!(matches!(
        seen[0].kind,
        SessionEventKind::Login { previous: None }
    ));
    assert!(matches!(
        seen[1].kind,
        SessionEventKind::Login { previous: None }
    ));
    assert_eq!(name(&seen[1]), third_name);
    assert_eq!(
        seen[2].kind,
        SessionEventKind::Revoked {
            by: RevokedBy::Cap,
            sessions: 1
        }
    );
    assert_eq!(
        name(&seen[2]),
        confirmed,
        "the cap ended the oldest session"
    );

    // The revoked session is seen ended at its next load.
    assert_eq!(first.get("/whoami").await.body, "");
    let seen = take();
    assert_eq!(kinds(&seen), [SessionEventKind::Expired]);
    assert_eq!(name(&seen[0]), confirmed);

    // The user revokes another device; an admin revokes the rest.
    let devices = second.devices().await;
    let other = devices.iter().find(|d| d["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(second.get(&format!("/revoke/{other}")).await.body, "true");
    assert_eq!(admin.revoke_all(&user).await.unwrap(), 1);
    let seen = take();
    assert_eq!(
        kinds(&seen),
        [
            SessionEventKind::Revoked {
                by: RevokedBy::User,
                sessions: 1
            },
            SessionEventKind::Revoked {
                by: RevokedBy::Admin,
                sessions: 1
            }
        ]
    );
    assert_eq!(name(&seen[0]), third_name);
    assert_eq!(
        seen[1].session, None,
        "revoke_all names the user, not a session"
    );
    assert!(
        seen.iter()
            .all(|e| e.user.as_deref() == Some(user.as_str()))
    );

    // A sign-out.
    let mut fourth = Client::new(addr, "fourth", false);
    fourth.get(&format!("/login/{user}")).await;
    let fourth_name = fourth.get("/log-id").await.body;
    take();
    assert_eq!(fourth.get("/logout").await.status, 200);
    let seen = take();
    assert_eq!(kinds(&seen), [SessionEventKind::Logout]);
    assert_eq!(name(&seen[0]), fourth_name);
    assert_eq!(seen[0].user.as_deref(), Some(user.as_str()));
}
