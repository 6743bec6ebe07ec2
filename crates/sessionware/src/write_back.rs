//! After the handler: turn what the request did to its session into the fewest store calls,
//! and the cookie that goes with them.

use std::mem;

use axum::response::Response;
use http::{HeaderName, HeaderValue, header};
use serde_json::Value;
use sessionware_core::time::OffsetDateTime;
use sessionware_core::{ChangeSet, Record, SessionId};

use crate::atomic::KeyOp;
use crate::config::Shared;
use crate::events::{RevokedBy, SessionEventKind as Kind};
use crate::observe::Op;
use crate::session::{State, Transport};

const CLEAR_SITE_DATA: HeaderName = HeaderName::from_static("clear-site-data");
use crate::{Error, Session, StoreError};

/// What write-back does, decided under the state lock and carried out after it is released.
#[derive(Debug)]
enum Plan {
    Nothing,
    /// Store a new record: a new session, or data inserted after `destroy`. `replaces` is
    /// deleted once the new record is stored.
    Create {
        record: Record,
        /// The id drawn already (for a CSRF token); one is drawn at write-back otherwise.
        id: Option<SessionId>,
        replaces: Option<SessionId>,
        /// A sign-in: the user's other sessions are held to the per-user cap.
        login: bool,
    },
    /// Move the stored session `old` to a new id (`login`, `cycle_id`), only while it is
    /// still live and bound to `loaded_user`: never bring back one that ended meanwhile.
    Rekey {
        old: SessionId,
        loaded_user: Option<String>,
        record: Record,
        id: Option<SessionId>,
        /// A sign-in: the user's other sessions are held to the per-user cap.
        login: bool,
        /// `confirm_sign_in`: reported with the id renewal.
        confirmed: bool,
    },
    Apply {
        id: SessionId,
        changes: ChangeSet,
        /// The keys `changes` compare-and-sets, with the steps to replay after a conflict.
        updates: Vec<(String, KeyOp)>,
        resend: bool,
    },
    /// The load moved the deadline: only the cookie's `Max-Age` needs to follow.
    Resend {
        id: SessionId,
        expires_at: OffsetDateTime,
    },
    Remove {
        delete: Option<SessionId>,
    },
}

impl Plan {
    /// The stored session the plan acts on, which names it in a failure's log line.
    fn stored(&self) -> Option<SessionId> {
        match self {
            Plan::Nothing => None,
            Plan::Create { replaces, .. } => *replaces,
            Plan::Rekey { old, .. } => Some(*old),
            Plan::Apply { id, .. } | Plan::Resend { id, .. } => Some(*id),
            Plan::Remove { delete } => *delete,
        }
    }
}

/// What the response carries about the cookie.
enum CookieOut {
    Keep,
    Set(SessionId, OffsetDateTime),
    /// A session sealed whole for the cookie store.
    Sealed(String, OffsetDateTime),
    Remove,
}

/// The write-back a request needs, decided once its handler has run; `None` for the many
/// requests that need none (which then cost no allocation and no await).
pub(crate) struct Pending {
    session: Session,
    plan: Plan,
    transport: Transport,
    logout: bool,
    /// The session chose its own expiry at sign-in: its cookie keeps a `Max-Age` even
    /// when the layer sends browser-session cookies.
    persistent: bool,
    /// The user of the session `destroy` ended, for its sign-out event.
    ended_user: Option<String>,
    /// A CSRF nonce this request made, whose cookie the response sets.
    csrf_nonce: Option<[u8; crate::cookie::NONCE_BYTES]>,
    now: OffsetDateTime,
}

pub(crate) fn prepare(session: Session) -> Option<Pending> {
    if !session.is_loaded() {
        return None;
    }
    let shared = session.shared();
    // Read the clock only if something is to be written: most requests write nothing.
    let clock = std::cell::OnceCell::new();
    let (plan, transport, logout, persistent, ended_user, csrf_nonce) = {
        let now = || *clock.get_or_init(|| shared.clock.now());
        let mut state = session.state();
        let csrf_nonce = state
            .csrf_nonce
            .filter(|_| state.new_csrf_nonce && state.transport == Transport::Cookie);
        // Before planning, which moves the user out for a new record.
        let persistent = state.own_idle().is_some();
        let plan = plan(&mut state, shared, &now);
        if matches!(plan, Plan::Nothing) && csrf_nonce.is_none() {
            return None;
        }
        (
            plan,
            state.transport,
            state.logout,
            persistent,
            state.destroyed_user.take(),
            csrf_nonce,
        )
    };
    let now = clock.into_inner().unwrap_or_else(|| shared.clock.now());
    Some(Pending {
        session,
        plan,
        transport,
        logout,
        persistent,
        ended_user,
        csrf_nonce,
        now,
    })
}

pub(crate) async fn write_back(pending: Pending, mut response: Response) -> Response {
    let Pending {
        session,
        plan,
        transport,
        logout,
        persistent,
        ended_user,
        csrf_nonce,
        now,
    } = pending;
    let shared = session.shared();
    let stored = plan.stored();
    if let Some(value) = csrf_nonce.and_then(|nonce| {
        let value = crate::cookie::encode_nonce(&nonce);
        shared.cookie.csrf(&shared.csrf_cookie_name, value)
    }) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    let executed = match &shared.cookie_store {
        Some(store) => execute_sealed(&session, shared, store, plan, ended_user, transport),
        None => execute(shared, plan, ended_user, now).await,
    };
    match executed {
        Ok(cookie) => {
            // Clear-Site-Data would also drop the anonymous session this response starts (a
            // "signed out" flash set after `logout`), so it goes only with a plain sign-out.
            let starts_session = matches!(cookie, CookieOut::Set(..) | CookieOut::Sealed(..));
            set_cookie(shared, &mut response, cookie, now, transport, persistent);
            if logout && shared.clear_site_data && !starts_session {
                response
                    .headers_mut()
                    .insert(CLEAR_SITE_DATA, HeaderValue::from_static("\"cookies\""));
            }
            response
        }
        Err(error) => {
            shared.metrics.failed(&error);
            tracing::error!(
                %error,
                session = stored.map(|id| display(shared.keys.log_id(&id))),
                "session write-back failed; the handler's response is replaced"
            );
            let cookie = match error {
                Error::SessionGone => CookieOut::Remove,
                _ => CookieOut::Keep,
            };
            let mut response = shared.error_response(error);
            set_cookie(shared, &mut response, cookie, now, transport, persistent);
            response
        }
    }
}

fn plan(state: &mut State, shared: &Shared, now: &dyn Fn() -> OffsetDateTime) -> Plan {
    // A remembered session ("remember me") has an idle timeout of its own.
    let policy = &shared.policy_for(state.own_idle());
    // A cookie's Max-Age must follow the deadline; a header token carries no expiry, unless
    // the token is the sealed session, which carries its deadline inside.
    let resends = shared.cookie_store.is_some()
        || (state.transport == Transport::Cookie
            && (!shared.cookie.browser_session || state.own_idle().is_some()));
    let destroyed = state.destroyed.take();
    let Some(id) = state.id else {
        if !state.data.is_empty() {
            return Plan::Create {
                record: new_record(state, now(), now(), shared),
                id: state.next_id.take(),
                replaces: destroyed,
                login: state.login,
            };
        }
        return if destroyed.is_some() || state.stale_cookie {
            Plan::Remove { delete: destroyed }
        } else {
            Plan::Nothing
        };
    };
    if state.cycle {
        let created_at = state.created_at;
        return Plan::Rekey {
            old: id,
            loaded_user: state.loaded_user.take(),
            record: new_record(state, created_at, now(), shared),
            id: state.next_id.take(),
            login: state.login,
            confirmed: state.confirmed,
        };
    }
    if state.cleared || !state.dirty.is_empty() {
        // A write moves the deadline as a read does, once it has fallen a refresh interval
        // behind: most writes then leave it as it is, and with it the store's expiry index
        // entry (SQL) or key TTL (Redis), which costs the store more than the data change.
        let refreshed = policy.refreshed_deadline(state.created_at, state.expires_at, now());
        let deadline = refreshed.unwrap_or(state.expires_at);
        let mut changes = ChangeSet::new(deadline);
        changes.loaded_by(state.user.clone());
        if state.cleared {
            changes.clear();
        }
        let mut updates = Vec::new();
        for key in state.dirty.drain() {
            let op = state.ops.remove(&key);
            if let Some(by) = op.as_ref().and_then(KeyOp::sum) {
                changes.increment(key, by);
                continue;
            }
            if let Some(op) = op {
                changes.expect(key.clone(), op.base.clone());
                updates.push((key.clone(), op));
            }
            match state.data.get(&key) {
                Some(value) => changes.set(key, value.clone()),
                None => changes.remove(key),
            };
        }
        return Plan::Apply {
            id,
            changes,
            updates,
            resend: resends && (state.refreshed || refreshed.is_some()),
        };
    }
    if state.refreshed && resends {
        return Plan::Resend {
            id,
            expires_at: state.expires_at,
        };
    }
    Plan::Nothing
}

/// The record for a session stored for the first time; its id is drawn by `execute`.
fn new_record(
    state: &mut State,
    created_at: OffsetDateTime,
    now: OffsetDateTime,
    shared: &Shared,
) -> Record {
    let expires_at = shared
        .policy_for(state.own_idle())
        .deadline(created_at, now);
    Record {
        // Replaced by a fresh id in `execute`; the zero id is never stored.
        id: SessionId::from_bytes([0; SessionId::BYTES]),
        data: mem::take(&mut state.data),
        user: state.user.take(),
        created_at,
        expires_at,
    }
}

/// Carries out `plan` at `now`, the one clock reading of this write-back.
async fn execute(
    shared: &Shared,
    plan: Plan,
    ended_user: Option<String>,
    now: OffsetDateTime,
) -> Result<CookieOut, Error> {
    match plan {
        Plan::Nothing => Ok(CookieOut::Keep),
        Plan::Create {
            mut record,
            id,
            replaces,
            login,
        } => {
            record.id = id.map_or_else(SessionId::generate, Ok)?;
            let id = shared
                .call(Op::Create, None, shared.store.create(&record))
                .await?;
            // Only now that the new record is safe is the destroyed one dropped: a failure in
            // between leaves it to be dropped by the next sign-out rather than the new lost.
            if let Some(old) = replaces {
                shared
                    .call(Op::Delete, Some(&old), shared.store.delete(&old))
                    .await?;
                report_removal(shared, &old, ended_user);
            }
            report_creation(shared, &id, replaces.as_ref(), login, &record.user);
            if login {
                enforce_cap(shared, &record, &id, now).await?;
            }
            Ok(CookieOut::Set(id, record.expires_at))
        }
        Plan::Rekey {
            old,
            loaded_user,
            mut record,
            id,
            login,
            confirmed,
        } => {
            record.id = id.map_or_else(SessionId::generate, Ok)?;
            let rekey = shared
                .store
                .rekey(&old, loaded_user.as_deref(), &record, now);
            let Some(id) = shared.call(Op::Rekey, Some(&old), rekey).await? else {
                return Err(Error::SessionGone);
            };
            report_renewal(shared, &old, &id, login, confirmed, &record.user);
            if login {
                enforce_cap(shared, &record, &id, now).await?;
            }
            Ok(CookieOut::Set(id, record.expires_at))
        }
        Plan::Apply {
            id,
            changes,
            updates,
            resend,
        } => {
            let changes = apply(shared, &id, changes, updates, now).await?;
            shared.metrics.written.increment(1);
            Ok(if resend {
                CookieOut::Set(id, changes.expires_at())
            } else {
                CookieOut::Keep
            })
        }
        Plan::Resend { id, expires_at } => Ok(CookieOut::Set(id, expires_at)),
        Plan::Remove { delete } => {
            if let Some(id) = delete {
                shared
                    .call(Op::Delete, Some(&id), shared.store.delete(&id))
                    .await?;
                report_removal(shared, &id, ended_user);
            }
            Ok(CookieOut::Remove)
        }
    }
}

/// What a stored new session reports, on both paths: counted, logged and, for a sign-in,
/// announced.
fn report_creation(
    shared: &Shared,
    id: &SessionId,
    replaces: Option<&SessionId>,
    login: bool,
    user: &Option<String>,
) {
    shared.metrics.created.increment(1);
    tracing::debug!(
        session = %shared.keys.log_id(id),
        replaces = replaces.map(|old| display(shared.keys.log_id(old))),
        "session created"
    );
    if login {
        shared.emit(|| {
            let kind = Kind::Login { previous: None };
            (kind, Some(shared.keys.log_id(id)), user.clone())
        });
    }
}

/// What a stored id renewal (a sign-in's, `cycle_id`'s, `confirm_sign_in`'s) reports.
fn report_renewal(
    shared: &Shared,
    old: &SessionId,
    id: &SessionId,
    login: bool,
    confirmed: bool,
    user: &Option<String>,
) {
    shared.metrics.written.increment(1);
    tracing::debug!(
        session = %shared.keys.log_id(id),
        replaces = %shared.keys.log_id(old),
        "session id renewed"
    );
    shared.emit(|| {
        let previous = shared.keys.log_id(old);
        let kind = if login {
            Kind::Login {
                previous: Some(previous),
            }
        } else {
            Kind::IdRenewed {
                previous,
                sign_in_confirmed: confirmed,
            }
        };
        (kind, Some(shared.keys.log_id(id)), user.clone())
    });
}

/// What an ended session reports.
fn report_removal(shared: &Shared, id: &SessionId, ended_user: Option<String>) {
    tracing::debug!(session = %shared.keys.log_id(id), "session destroyed");
    shared.metrics.destroyed.increment(1);
    shared.emit(|| (Kind::Logout, Some(shared.keys.log_id(id)), ended_user));
}

/// Carries out `plan` for the cookie store: there is no store to call, only the session to
/// seal as the plan leaves it; what it did is reported as the server-side path reports it.
fn execute_sealed(
    session: &Session,
    shared: &Shared,
    store: &crate::CookieStore,
    plan: Plan,
    ended_user: Option<String>,
    transport: Transport,
) -> Result<CookieOut, Error> {
    let issue = |record: &Record| {
        let token = crate::cookie_store::seal(shared, store, transport, record)?;
        Ok(CookieOut::Sealed(token, record.expires_at))
    };
    // The data of a plan that changes a loaded session is still in the state.
    let loaded = |id: SessionId, expires_at: OffsetDateTime| {
        let state = session.state();
        Record {
            id,
            data: state.data.clone(),
            user: state.user.clone(),
            created_at: state.created_at,
            expires_at,
        }
    };
    let capped = |login: bool| {
        if login && shared.max_per_user.is_some() {
            return Err(Error::NeedsServerStore {
                operation: "with_max_sessions_per_user",
            });
        }
        Ok(())
    };
    match plan {
        Plan::Nothing => Ok(CookieOut::Keep),
        Plan::Create {
            mut record,
            id,
            login,
            replaces,
        } => {
            capped(login)?;
            record.id = id.map_or_else(SessionId::generate, Ok)?;
            let cookie = issue(&record)?;
            if let Some(old) = replaces {
                report_removal(shared, &old, ended_user);
            }
            report_creation(shared, &record.id, replaces.as_ref(), login, &record.user);
            Ok(cookie)
        }
        Plan::Rekey {
            mut record,
            id,
            login,
            old,
            confirmed,
            ..
        } => {
            capped(login)?;
            record.id = id.map_or_else(SessionId::generate, Ok)?;
            let cookie = issue(&record)?;
            report_renewal(shared, &old, &record.id, login, confirmed, &record.user);
            Ok(cookie)
        }
        Plan::Apply { id, changes, .. } => {
            let cookie = issue(&loaded(id, changes.expires_at()))?;
            shared.metrics.written.increment(1);
            Ok(cookie)
        }
        Plan::Resend { id, expires_at } => issue(&loaded(id, expires_at)),
        Plan::Remove { delete } => {
            if let Some(id) = delete {
                report_removal(shared, &id, ended_user);
            }
            Ok(CookieOut::Remove)
        }
    }
}

/// `apply`, and while the store refuses a compare-and-set and retries are left, the refused
/// keys' steps replayed on the values the refusal returned. Returns the change set written.
async fn apply(
    shared: &Shared,
    id: &SessionId,
    mut changes: ChangeSet,
    mut updates: Vec<(String, KeyOp)>,
    now: OffsetDateTime,
) -> Result<ChangeSet, Error> {
    let mut retries = shared.update_retries;
    loop {
        let current = match shared
            .call(Op::Apply, Some(id), shared.store.apply(id, &changes, now))
            .await
        {
            Ok(true) => return Ok(changes),
            Ok(false) => return Err(Error::SessionGone),
            Err(Error::Store(StoreError::Conflict { current })) => current,
            Err(error) => return Err(error),
        };
        if retries == 0 {
            let keys = current.into_iter().map(|(key, _)| key).collect();
            return Err(Error::UpdateConflict { keys });
        }
        let attempt = shared.update_retries - retries;
        retries -= 1;
        if attempt == 0 {
            // The refusal brought the keys' current values: try again at once with them.
            for (key, value) in current {
                replay(&mut changes, &mut updates, key, value)?;
            }
            continue;
        }
        // Conflicting again: the requests that conflicted together are retrying together,
        // and only one of them wins each round. A random wait spreads them out, and the
        // values it makes stale are read again after it.
        tokio::time::sleep(crate::atomic::backoff(attempt - 1)).await;
        let Some(record) = shared
            .call(Op::Load, Some(id), shared.store.load(id, now))
            .await?
        else {
            return Err(Error::SessionGone);
        };
        let stale: Vec<(String, Option<Value>)> = changes
            .guards()
            .filter(|(key, expected)| record.data.get(*key) != *expected)
            .map(|(key, _)| (key.to_owned(), record.data.get(key).cloned()))
            .collect();
        for (key, value) in stale {
            replay(&mut changes, &mut updates, key, value)?;
        }
    }
}

/// Runs `key`'s steps again on `value`, what the store holds, and guards the write with it.
fn replay(
    changes: &mut ChangeSet,
    updates: &mut [(String, KeyOp)],
    key: String,
    value: Option<Value>,
) -> Result<(), Error> {
    // A store names only keys the change set guards, and those are all in `updates`; but a
    // store that guards keys itself (encryption at rest turns increments into
    // compare-and-sets) reports one it gave up on after its own retries: contention, `409`.
    let Some((_, op)) = updates.iter_mut().find(|(k, _)| *k == key) else {
        return Err(Error::UpdateConflict { keys: vec![key] });
    };
    let next = op.replay(&key, value.clone())?;
    changes.expect(key.clone(), value).set(key, next);
    Ok(())
}

/// After a sign-in stored as `new`, ends the oldest sessions of its user beyond the cap.
async fn enforce_cap(
    shared: &Shared,
    record: &Record,
    new: &SessionId,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let (Some(user), Some(max)) = (&record.user, shared.max_per_user) else {
        return Ok(());
    };
    let mut others = shared
        .call(Op::ListUser, None, shared.store.list_user(user, now))
        .await?;
    others.retain(|r| r.id != *new);
    if others.len() < max {
        return Ok(());
    }
    others.sort_by_key(|r| r.created_at);
    let excess = others.len() + 1 - max;
    for record in &others[..excess] {
        shared
            .call(
                Op::Delete,
                Some(&record.id),
                shared.store.delete(&record.id),
            )
            .await?;
        crate::users::revoked(shared, RevokedBy::Cap, user, Some(&record.id), 1);
    }
    Ok(())
}

fn set_cookie(
    shared: &Shared,
    response: &mut Response,
    cookie: CookieOut,
    now: OffsetDateTime,
    transport: Transport,
    persistent: bool,
) {
    let name = &shared.cookie_name;
    let token = match cookie {
        CookieOut::Keep => return,
        CookieOut::Set(id, expires_at) => match shared.keys.sign(transport, name, &id) {
            Some(token) => Some((token, expires_at)),
            None => {
                tracing::error!("no signing key; the session token cannot be issued");
                return;
            }
        },
        CookieOut::Sealed(token, expires_at) => Some((token, expires_at)),
        CookieOut::Remove => None,
    };
    let headers = response.headers_mut();
    let set = match (transport, &shared.header) {
        (Transport::Header, Some(header)) => header
            .issue(token.as_ref().map_or("", |(t, _)| t.as_str()))
            .map(|(name, value)| headers.insert(name, value))
            .is_some(),
        _ => {
            let value = match token {
                Some((token, expires_at)) => {
                    shared.cookie.set(name, token, expires_at - now, persistent)
                }
                None => shared.cookie.removal(name),
            };
            value
                .map(|v| headers.append(header::SET_COOKIE, v))
                .is_some()
        }
    };
    if set {
        // A response that hands out a session must never be served to someone else from a
        // shared cache.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// The planning step alone: what a request's session state turns into, with no store involved.
#[cfg(test)]
mod tests {
    use serde_json::json;
    use sessionware_core::time::Duration;

    use super::*;
    use crate::SessionLayer;

    fn shared() -> std::sync::Arc<Shared> {
        SessionLayer::new(sessionware_memory::MemoryStore::new()).shared
    }

    fn at(minutes: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(minutes)
    }

    /// A session loaded from the store: id 1, user `ana`, created at 0, due at 60.
    fn loaded() -> State {
        let mut state = State::new(at(0), at(60));
        state.id = Some(SessionId::from_bytes([1; SessionId::BYTES]));
        state.user = Some("ana".into());
        state.loaded_user = Some("ana".into());
        state.data.insert("count".into(), json!(1));
        state
    }

    fn plan_at(state: &mut State, minutes: i64) -> Plan {
        plan(state, &shared(), &|| at(minutes))
    }

    #[test]
    fn a_new_session_is_stored_only_with_data() {
        let mut empty = State::new(at(0), at(60));
        assert!(matches!(plan_at(&mut empty, 0), Plan::Nothing));
        let mut fresh = State::new(at(0), at(60));
        fresh.data.insert("k".into(), json!(true));
        let Plan::Create {
            record,
            replaces,
            login,
            ..
        } = plan_at(&mut fresh, 0)
        else {
            panic!("a new session with data is created");
        };
        assert_eq!(record.data["k"], json!(true));
        assert_eq!((replaces, login), (None, false));
    }

    #[test]
    fn reads_write_nothing_and_refreshes_only_resend_the_cookie() {
        assert!(matches!(plan_at(&mut loaded(), 1), Plan::Nothing));
        let mut refreshed = loaded();
        refreshed.refreshed = true;
        assert!(matches!(plan_at(&mut refreshed, 1), Plan::Resend { .. }));
        refreshed.transport = Transport::Header;
        refreshed.refreshed = true;
        assert!(
            matches!(plan_at(&mut refreshed, 1), Plan::Nothing),
            "a header token carries no expiry to resend"
        );
    }

    #[test]
    fn changed_keys_become_a_change_set() {
        let mut state = loaded();
        state.data.insert("count".into(), json!(2));
        state.dirty.insert("count".into());
        state.dirty.insert("gone".into());
        let Plan::Apply { id, changes, .. } = plan_at(&mut state, 5) else {
            panic!("a change to a stored session is applied");
        };
        assert_eq!(id, SessionId::from_bytes([1; SessionId::BYTES]));
        assert_eq!(changes.sets().collect::<Vec<_>>(), [("count", &json!(2))]);
        assert_eq!(changes.removals().collect::<Vec<_>>(), ["gone"]);
        assert_eq!(changes.loaded_user(), Some("ana"));
        assert!(
            changes.expires_at() > at(5),
            "the deadline moves with the write"
        );
        assert!(state.dirty.is_empty(), "planning drains the dirty keys");
    }

    #[test]
    fn a_write_moves_the_deadline_only_once_a_refresh_is_due() {
        // Default policy: 24 h idle, refreshed once it is 2.4 h behind.
        let fresh = || {
            let mut state = loaded();
            state.expires_at = at(24 * 60);
            state.data.insert("count".into(), json!(2));
            state.dirty.insert("count".into());
            state
        };
        let Plan::Apply {
            changes, resend, ..
        } = plan_at(&mut fresh(), 60)
        else {
            panic!("a change to a stored session is applied");
        };
        assert_eq!(changes.expires_at(), at(24 * 60), "an hour in: kept");
        assert!(!resend, "nor is the cookie sent again");
        let Plan::Apply {
            changes, resend, ..
        } = plan_at(&mut fresh(), 3 * 60)
        else {
            panic!("a change to a stored session is applied");
        };
        assert_eq!(changes.expires_at(), at(27 * 60), "three hours in: moved");
        assert!(resend, "with the cookie's Max-Age");
    }

    #[test]
    fn increments_and_updates_become_store_side_changes() {
        use crate::atomic::{KeyOp, Step};
        let mut state = loaded();
        // `count` incremented twice, `tags` updated, `plain` inserted.
        let mut count = KeyOp::new(Some(json!(1)));
        count.steps.extend([Step::Add(2), Step::Add(3)]);
        let mut tags = KeyOp::new(None);
        tags.steps.push(Step::Apply(Box::new(|_| Ok(json!(["a"])))));
        state.ops.insert("count".into(), count);
        state.ops.insert("tags".into(), tags);
        state.data.insert("count".into(), json!(6));
        state.data.insert("tags".into(), json!(["a"]));
        state.data.insert("plain".into(), json!(0));
        for key in ["count", "tags", "plain"] {
            state.dirty.insert(key.into());
        }
        let Plan::Apply {
            changes, updates, ..
        } = plan_at(&mut state, 5)
        else {
            panic!("a change to a stored session is applied");
        };
        assert_eq!(changes.increments().collect::<Vec<_>>(), [("count", 5)]);
        let mut sets: Vec<_> = changes.sets().collect();
        sets.sort_by_key(|(k, _)| *k);
        assert_eq!(sets, [("plain", &json!(0)), ("tags", &json!(["a"]))]);
        assert_eq!(changes.guards().collect::<Vec<_>>(), [("tags", None)]);
        assert_eq!(
            updates.len(),
            1,
            "only the update is replayed on a conflict"
        );
        assert!(state.ops.is_empty());
    }

    #[test]
    fn an_id_change_is_a_rekey_checked_against_the_loaded_user() {
        let mut state = loaded();
        state.user = Some("ben".into());
        state.cycle = true;
        state.login = true;
        let Plan::Rekey {
            old,
            loaded_user,
            record,
            login,
            ..
        } = plan_at(&mut state, 5)
        else {
            panic!("a cycled id is a rekey");
        };
        assert_eq!(old, SessionId::from_bytes([1; SessionId::BYTES]));
        assert_eq!(
            loaded_user.as_deref(),
            Some("ana"),
            "the user the store held"
        );
        assert_eq!(
            record.user.as_deref(),
            Some("ben"),
            "the user it is to hold"
        );
        assert_eq!(
            record.created_at,
            at(0),
            "the absolute lifetime is not reset"
        );
        assert!(login);
    }

    #[test]
    fn destroyed_and_refused_sessions_remove_the_cookie() {
        let mut state = State::new(at(0), at(60));
        state.destroyed = Some(SessionId::from_bytes([1; SessionId::BYTES]));
        assert!(matches!(
            plan_at(&mut state, 0),
            Plan::Remove { delete: Some(_) }
        ));
        let mut stale = State::new(at(0), at(60));
        stale.stale_cookie = true;
        assert!(matches!(
            plan_at(&mut stale, 0),
            Plan::Remove { delete: None }
        ));
        let mut replaced = State::new(at(0), at(60));
        replaced.destroyed = Some(SessionId::from_bytes([1; SessionId::BYTES]));
        replaced.data.insert("flash".into(), json!("bye"));
        assert!(matches!(
            plan_at(&mut replaced, 0),
            Plan::Create {
                replaces: Some(_),
                ..
            }
        ));
    }
}
