//! Audit events: what happened to which session, handed to the application's handler as it
//! happens, for an audit log of its own.

use std::sync::Arc;

use sessionware_core::time::OffsetDateTime;

use crate::LogId;

/// Something that happened to a session, for an application's audit log
/// ([`SessionLayer::with_event_handler`](crate::SessionLayer::with_event_handler)).
///
/// A session is named by its [`LogId`] (the name it has in the layer's log lines), never by
/// its id or token, so events can be stored and shown without handing out credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionEvent {
    /// What happened.
    pub kind: SessionEventKind,
    /// The session it happened to, when there is one to name.
    pub session: Option<LogId>,
    /// The user it concerns, when known.
    pub user: Option<String>,
    /// When, by the layer's clock.
    pub at: OffsetDateTime,
}

/// What a [`SessionEvent`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEventKind {
    /// [`Session::login`](crate::Session::login) was stored: `session` is the new session
    /// (a sign-in always renews the id), `previous` the one it replaced, if the visitor had a
    /// stored session before.
    Login {
        /// The session before the sign-in's id renewal.
        previous: Option<LogId>,
    },
    /// A session was ended by [`logout`](crate::Session::logout) or
    /// [`destroy`](crate::Session::destroy) (which `revoke_all` and revoking the current
    /// device also call).
    Logout,
    /// The id was renewed without a sign-in ([`cycle_id`](crate::Session::cycle_id),
    /// [`confirm_sign_in`](crate::Session::confirm_sign_in)); `session` is the new id's name.
    IdRenewed {
        /// The session's name before.
        previous: LogId,
        /// `true` for [`confirm_sign_in`](crate::Session::confirm_sign_in): the user proved
        /// who they are again.
        sign_in_confirmed: bool,
    },
    /// Sessions of `user` were ended by someone else than their own request. `session` names
    /// the one ended when it was one; `sessions` says how many ended.
    Revoked {
        /// Who ended them.
        by: RevokedBy,
        /// How many live sessions ended.
        sessions: usize,
    },
    /// A correctly signed token named a session the store no longer holds: it expired, or
    /// it was ended elsewhere (a sign-out in another tab, a revocation) and this client did not
    /// know yet. Stores answer alike for all of those, so the layer cannot tell them apart.
    Expired,
    /// A token that failed verification (a bad signature, a key no longer configured, a
    /// cookie token sent as a bearer token, a sealed cookie that does not open): a fresh
    /// session is started instead. `session` names what the token claims to be, as the
    /// layer's log line does: for a signed id, the name that session has in every other event
    /// and log line, so a real id presented with a forged or retired tag lines up with its
    /// session's history. The claim is unverified, so it proves nothing about who sent it.
    TokenRefused,
    /// Two cookies of the session cookie's name both verified but named different sessions,
    /// as when a sibling subdomain plants its own cookie beside ours ("cookie tossing"):
    /// neither is used, and the request goes on without a session. `session` names the first
    /// the browser sent.
    ConflictingCookies {
        /// The other session named.
        other: LogId,
    },
}

/// Who revoked a session ([`SessionEventKind::Revoked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokedBy {
    /// The user, from one of their sessions: [`Session::revoke`](crate::Session::revoke),
    /// [`revoke_all`](crate::Session::revoke_all),
    /// [`revoke_others`](crate::Session::revoke_others).
    User,
    /// The application, outside a request: [`SessionLayer::users`](crate::SessionLayer::users).
    Admin,
    /// A sign-in beyond
    /// [`with_max_sessions_per_user`](crate::SessionLayer::with_max_sessions_per_user) ended
    /// the user's oldest session.
    Cap,
}

impl RevokedBy {
    /// The label value of the `sessionware_sessions_revoked_total` metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
            Self::Cap => "cap",
        }
    }
}

/// The handler a layer hands its events to.
pub(crate) type EventHandler = Arc<dyn Fn(&SessionEvent) + Send + Sync>;

impl crate::config::Shared {
    /// Hands an event to the application's handler, if it has one. `make` runs only then:
    /// without a handler an event costs a branch.
    pub(crate) fn emit(
        &self,
        make: impl FnOnce() -> (SessionEventKind, Option<LogId>, Option<String>),
    ) {
        if let Some(handler) = &self.on_event {
            let (kind, session, user) = make();
            handler(&SessionEvent {
                kind,
                session,
                user,
                at: self.clock.now(),
            });
        }
    }
}
