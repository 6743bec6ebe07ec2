//! Per-session expiry ("remember me") and the age of the sign-in ("sudo mode").
//!
//! Both live in the session's data under reserved keys, so no store needs a schema change and
//! every store and transport gets them alike: the idle timeout a sign-in chose under
//! [`IDLE_KEY`], the sign-in time in the device facts `login` records.

use serde_json::Value;
use sessionware_core::time::{Duration, OffsetDateTime};
use sessionware_core::{Data, ExpiryPolicy};

use crate::config::{DEVICE_KEY, Shared};
use crate::{Error, Session};

/// The data key holding the idle timeout this session was given at sign-in, in milliseconds.
pub(crate) const IDLE_KEY: &str = "sessionware.idle_ms";

/// The expiry policy of a session given its own idle timeout `idle` at sign-in: the layer's,
/// with that timeout when it is longer. The absolute lifetime is always the layer's.
pub(crate) fn session_policy(policy: &ExpiryPolicy, idle: Option<Duration>) -> ExpiryPolicy {
    match idle {
        Some(idle) if policy.idle_timeout().is_some_and(|layer| idle > layer) => {
            policy.with_idle_timeout(Some(idle))
        }
        _ => *policy,
    }
}

/// The idle timeout stored by [`Session::remember_for`], if any (and well-formed: anything
/// else in the key, say a record edited by hand, is ignored and the layer's timeout applies).
pub(crate) fn remembered_idle(data: &Data) -> Option<Duration> {
    data.get(IDLE_KEY)
        .and_then(Value::as_i64)
        .filter(|ms| *ms > 0)
        .map(Duration::milliseconds)
}

/// When the session's user signed in (or last confirmed it), from the device facts.
pub(crate) fn signed_in_at(data: &Data) -> Option<OffsetDateTime> {
    let seconds = data.get(DEVICE_KEY)?.get("signed_in_at")?.as_i64()?;
    OffsetDateTime::from_unix_timestamp(seconds).ok()
}

impl Session {
    /// Gives this session an idle timeout of its own, `idle` instead of the layer's: "remember
    /// me" at sign-in. The session then stays signed in for `idle` after each use (30 days,
    /// say, instead of the default 24 hours), but never past the layer's absolute lifetime,
    /// which still counts from the session's creation. The cookie follows the new deadline,
    /// and stays persistent (with `Max-Age`) even when the layer sends
    /// [browser-session cookies](crate::SessionLayer::with_browser_session_cookie).
    ///
    /// The choice belongs to a sign-in: call it with (before or after) [`login`](Self::login)
    /// in the same request; a session without a signed-in user keeps the layer's timeout. A
    /// later `login` without it goes back to the layer's idle timeout.
    /// A duration no longer than the layer's idle timeout changes nothing. It works on every
    /// store and transport, since it is kept in the session's data (a reserved key).
    ///
    /// The layer's own refresh of the deadline knows only its idle timeout, so a remembered
    /// session pays one more store call (`touch`) on a read that moves its deadline (at most
    /// once per refresh interval, a tenth of `idle` by default).
    ///
    /// ```
    /// use sessionware::{Session, time::Duration};
    ///
    /// async fn sign_in(session: Session, remember: bool) {
    ///     // ... after checking the password:
    ///     session.login("user-42");
    ///     if remember {
    ///         session.remember_for(Duration::days(30));
    ///     }
    /// }
    /// ```
    pub fn remember_for(&self, idle: Duration) {
        let idle = idle.clamp(Duration::ZERO, ExpiryPolicy::MAX_IDLE);
        let ms = i64::try_from(idle.whole_milliseconds()).unwrap_or(i64::MAX);
        let mut state = self.state();
        state.remembered = true;
        state.own_idle = (ms > 0).then(|| Duration::milliseconds(ms));
        if state.data.get(IDLE_KEY).and_then(Value::as_i64) != Some(ms) {
            state.data.insert(IDLE_KEY.to_owned(), Value::from(ms));
            state.dirty.insert(IDLE_KEY.to_owned());
            state.size = None;
        }
    }

    /// The idle timeout [`remember_for`](Self::remember_for) gave this session, if any (and
    /// a user is signed in).
    pub fn remembered_for(&self) -> Option<Duration> {
        self.state().own_idle()
    }

    /// When the signed-in user signed in, or last confirmed it with
    /// [`confirm_sign_in`](Self::confirm_sign_in), to the second; `None` when no user is
    /// signed in.
    pub fn signed_in_at(&self) -> Option<OffsetDateTime> {
        let state = self.state();
        state.user.as_ref()?;
        signed_in_at(&state.data)
    }

    /// `true` when a user is signed in and signed in (or confirmed it) within `within` of
    /// now: the check before a sensitive action ("sudo mode": change the password, delete the
    /// account). See [`require_sign_in_within`](Self::require_sign_in_within).
    pub fn signed_in_within(&self, within: Duration) -> bool {
        let now = self.shared().clock.now();
        self.signed_in_at().is_some_and(|at| now - at <= within)
    }

    /// [`signed_in_within`](Self::signed_in_within) as a `Result` for `?`:
    /// [`Error::SignInRequired`] (`401 recent sign-in required`) when the sign-in is older
    /// than `within` or nobody is signed in. Catch it to show a page that asks for the
    /// password again, then call [`confirm_sign_in`](Self::confirm_sign_in).
    ///
    /// ```
    /// use axum::response::{IntoResponse, Redirect, Response};
    /// use sessionware::{Error, Session, time::Duration};
    ///
    /// async fn delete_account(session: Session) -> Result<Response, Error> {
    ///     match session.require_sign_in_within(Duration::minutes(5)) {
    ///         Err(Error::SignInRequired) => return Ok(Redirect::to("/confirm").into_response()),
    ///         other => other?,
    ///     }
    ///     // ... the sensitive action ...
    ///     Ok("deleted".into_response())
    /// }
    /// ```
    pub fn require_sign_in_within(&self, within: Duration) -> Result<(), Error> {
        if self.signed_in_within(within) {
            Ok(())
        } else {
            Err(Error::SignInRequired)
        }
    }

    /// Records that the signed-in user has just proven who they are again (entered their
    /// password on a "confirm it's you" page): the sign-in time becomes now, so
    /// [`signed_in_within`](Self::signed_in_within) holds again, and the id is renewed as at
    /// sign-in, since privileges change. Everything else (data, device facts, remember-me)
    /// stays. Does nothing when no user is signed in; [`login`](Self::login) is for that.
    pub fn confirm_sign_in(&self) {
        let now = self.shared().clock.now();
        let mut state = self.state();
        if state.user.is_none() {
            return;
        }
        let mut facts = state
            .data
            .get(DEVICE_KEY)
            .filter(|v| v.is_object())
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        facts["signed_in_at"] = Value::from(now.unix_timestamp());
        state.data.insert(DEVICE_KEY.to_owned(), facts);
        state.dirty.insert(DEVICE_KEY.to_owned());
        state.size = None;
        state.cycle = true;
        state.confirmed = true;
    }
}

impl crate::session::State {
    /// The session's own idle timeout, which only a signed-in session has.
    pub(crate) fn own_idle(&self) -> Option<Duration> {
        self.own_idle.filter(|_| self.user.is_some())
    }
}

impl Shared {
    /// The expiry policy of a session with its own idle timeout `idle`, if any.
    pub(crate) fn policy_for(&self, idle: Option<Duration>) -> ExpiryPolicy {
        session_policy(&self.policy, idle)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_a_longer_idle_timeout_replaces_the_layers() {
        let layer = ExpiryPolicy::new();
        let month = session_policy(&layer, Some(Duration::days(30)));
        assert_eq!(month.idle_timeout(), Some(Duration::days(30)));
        assert_eq!(month.absolute_lifetime(), layer.absolute_lifetime());
        assert_eq!(
            month.refresh_interval(),
            Duration::days(3),
            "a tenth of its own"
        );
        assert_eq!(session_policy(&layer, Some(Duration::hours(1))), layer);
        assert_eq!(session_policy(&layer, None), layer);
        let unbounded = layer.with_idle_timeout(None);
        assert_eq!(
            session_policy(&unbounded, Some(Duration::days(30))),
            unbounded
        );
    }

    #[test]
    fn a_malformed_remembered_timeout_is_ignored() {
        for value in [json!("30d"), json!(-5), json!(0), json!(1.5), json!(null)] {
            let data = Data::from([(IDLE_KEY.to_owned(), value.clone())]);
            assert_eq!(remembered_idle(&data), None, "{value}");
        }
        let data = Data::from([(IDLE_KEY.to_owned(), json!(60_000))]);
        assert_eq!(remembered_idle(&data), Some(Duration::minutes(1)));
    }

    #[test]
    fn the_sign_in_time_is_read_from_the_device_facts() {
        let data = Data::from([(
            DEVICE_KEY.to_owned(),
            json!({ "signed_in_at": 1_700_000_000 }),
        )]);
        assert_eq!(
            signed_in_at(&data).map(OffsetDateTime::unix_timestamp),
            Some(1_700_000_000)
        );
        let junk = Data::from([(
            DEVICE_KEY.to_owned(),
            json!({ "signed_in_at": "yesterday" }),
        )]);
        assert_eq!(signed_in_at(&junk), None);
    }
}
