//! A user's sessions, as devices: listed for a "your devices" page, revoked one by one or all
//! at once ("log out everywhere").

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use serde_json::Value;
use sessionware_core::time::OffsetDateTime;
use sessionware_core::{ExpiryPolicy, Record, SessionId};

use crate::config::{DEVICE_KEY, Shared};
use crate::events::{RevokedBy, SessionEventKind};
use crate::observe::Op;
use crate::{Error, Session};

/// An opaque, stable name for one of a user's sessions, safe to put in a page or a form: a
/// hash of the session id, from which the id cannot be recovered.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeviceId(String);

impl DeviceId {
    pub(crate) fn of(id: &SessionId) -> Self {
        let hash = digest::digest(&digest::SHA256, id.as_bytes());
        Self(URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16]))
    }

    /// The text form, as it goes into a form field or URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.0)
    }
}

impl FromStr for DeviceId {
    type Err = InvalidDeviceId;

    /// Parses the text form; anything else is [`InvalidDeviceId`].
    fn from_str(s: &str) -> Result<Self, InvalidDeviceId> {
        let well_formed = s.len() == 22
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if well_formed {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidDeviceId)
        }
    }
}

/// Deserializes from the text form, so a handler can take `Path<DeviceId>` or a form field of
/// that type and axum refuses anything else with `400`.
impl<'de> serde::Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Text from a request (a form field, a path) that is not a [`DeviceId`]: the client's
/// mistake, answered `400 bad device id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidDeviceId;

impl fmt::Display for InvalidDeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a device id")
    }
}

impl std::error::Error for InvalidDeviceId {}

impl axum::response::IntoResponse for InvalidDeviceId {
    fn into_response(self) -> axum::response::Response {
        (http::StatusCode::BAD_REQUEST, "bad device id\n").into_response()
    }
}

/// One of a user's live sessions, with what `login` recorded about the client.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Device {
    /// Names this session for [`Session::revoke`] and [`UserSessions::revoke`].
    pub id: DeviceId,
    /// `true` for the session of the request that asked.
    pub current: bool,
    /// When the session was created.
    pub created_at: OffsetDateTime,
    /// When the user signed in on it, if through `login`.
    pub signed_in_at: Option<OffsetDateTime>,
    /// When the session was last used, to within the refresh interval of the expiry policy
    /// (derived from its deadline, so reads need no extra write).
    pub last_seen: OffsetDateTime,
    /// When it ends unless used again.
    pub expires_at: OffsetDateTime,
    /// The `User-Agent` it signed in with.
    pub user_agent: Option<String>,
    /// The client address it signed in from, when the layer records addresses
    /// ([`SessionLayer::with_client_address`](crate::SessionLayer::with_client_address)).
    pub address: Option<String>,
}

impl Device {
    fn from_record(record: &Record, policy: &ExpiryPolicy, current: Option<&SessionId>) -> Self {
        let facts = record.data.get(DEVICE_KEY);
        let text = |key: &str| {
            facts
                .and_then(|f| f.get(key))
                .and_then(Value::as_str)
                .map(String::from)
        };
        let signed_in_at = facts
            .and_then(|f| f.get("signed_in_at"))
            .and_then(Value::as_i64)
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok());
        // A read or write sets the deadline to `min(now + idle, created + lifetime)`, so while
        // the lifetime does not cap it, `deadline - idle` is the time of the last refresh.
        let own = crate::sign_in::remembered_idle(&record.data);
        let idle = crate::sign_in::session_policy(policy, own)
            .idle_timeout()
            .unwrap_or(ExpiryPolicy::MAX_IDLE);
        Self {
            id: DeviceId::of(&record.id),
            current: current == Some(&record.id),
            created_at: record.created_at,
            signed_in_at,
            last_seen: (record.expires_at - idle).max(record.created_at),
            expires_at: record.expires_at,
            user_agent: text("user_agent"),
            address: text("address"),
        }
    }
}

/// The sessions of any user, outside a request: for an admin page, or to end every session of
/// a user whose password was reset. From [`SessionLayer::users`](crate::SessionLayer::users).
///
/// ```
/// # async fn example(layer: sessionware::SessionLayer) -> Result<(), sessionware::Error> {
/// let users = layer.users();
/// for device in users.list("user-42").await? {
///     println!("{} last seen {}", device.user_agent.as_deref().unwrap_or("?"), device.last_seen);
/// }
/// users.revoke_all("user-42").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct UserSessions {
    shared: Arc<Shared>,
}

impl fmt::Debug for UserSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSessions").finish_non_exhaustive()
    }
}

impl UserSessions {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The live sessions of `user`.
    pub async fn list(&self, user: &str) -> Result<Vec<Device>, Error> {
        self.shared.server_store("UserSessions::list")?;
        list(&self.shared, user, None).await
    }

    /// Ends the session `device` of `user`; `false` if there is no such live session.
    pub async fn revoke(&self, user: &str, device: &DeviceId) -> Result<bool, Error> {
        self.shared.server_store("UserSessions::revoke")?;
        match find(&self.shared, user, device).await? {
            Some(id) => {
                self.shared
                    .call(Op::Delete, Some(&id), self.shared.store.delete(&id))
                    .await?;
                revoked(&self.shared, RevokedBy::Admin, user, Some(&id), 1);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Ends every session of `user`; returns how many.
    pub async fn revoke_all(&self, user: &str) -> Result<usize, Error> {
        self.shared.server_store("UserSessions::revoke_all")?;
        let now = self.shared.clock.now();
        let ended = self
            .shared
            .call(
                Op::DeleteUser,
                None,
                self.shared.store.delete_user(user, None, now),
            )
            .await?;
        revoked(&self.shared, RevokedBy::Admin, user, None, ended);
        Ok(ended)
    }
}

/// Reports a revocation: of the session `id`, or of `sessions` of the user's.
pub(crate) fn revoked(
    shared: &Shared,
    by: RevokedBy,
    user: &str,
    id: Option<&SessionId>,
    sessions: usize,
) {
    shared.metrics.revoked(by, sessions);
    shared.emit(|| {
        let kind = SessionEventKind::Revoked { by, sessions };
        let session = id.map(|id| shared.keys.log_id(id));
        (kind, session, Some(user.to_owned()))
    });
}

pub(crate) async fn list(
    shared: &Shared,
    user: &str,
    current: Option<&SessionId>,
) -> Result<Vec<Device>, Error> {
    let now = shared.clock.now();
    let records = shared
        .call(Op::ListUser, None, shared.store.list_user(user, now))
        .await?;
    let mut devices: Vec<Device> = records
        .iter()
        .map(|r| Device::from_record(r, &shared.policy, current))
        .collect();
    devices.sort_by_key(|d| std::cmp::Reverse(d.last_seen));
    Ok(devices)
}

/// The session id behind `device`, if it is one of `user`'s live sessions.
pub(crate) async fn find(
    shared: &Shared,
    user: &str,
    device: &DeviceId,
) -> Result<Option<SessionId>, Error> {
    let now = shared.clock.now();
    let records = shared
        .call(Op::ListUser, None, shared.store.list_user(user, now))
        .await?;
    Ok(records
        .into_iter()
        .map(|r| r.id)
        .find(|id| DeviceId::of(id) == *device))
}

impl Session {
    /// The live sessions of the signed-in user, newest use first, with the current one marked;
    /// empty when no user is signed in. One store call.
    pub async fn devices(&self) -> Result<Vec<Device>, Error> {
        self.shared().server_store("Session::devices")?;
        let (user, id) = {
            let state = self.state();
            (state.user.clone(), state.id)
        };
        match user {
            Some(user) => list(self.shared(), &user, id.as_ref()).await,
            None => Ok(Vec::new()),
        }
    }

    /// Ends one of the signed-in user's sessions; `false` if it is not one of theirs. Revoking
    /// the current session is [`logout`](Self::logout).
    pub async fn revoke(&self, device: &DeviceId) -> Result<bool, Error> {
        self.shared().server_store("Session::revoke")?;
        let (Some(user), current) = ({
            let state = self.state();
            (state.user.clone(), state.id)
        }) else {
            return Ok(false);
        };
        let Some(id) = find(self.shared(), &user, device).await? else {
            return Ok(false);
        };
        if Some(id) == current {
            self.logout();
        } else {
            self.shared()
                .call(Op::Delete, Some(&id), self.shared().store.delete(&id))
                .await?;
            revoked(self.shared(), RevokedBy::User, &user, Some(&id), 1);
        }
        Ok(true)
    }

    /// Ends every session of the signed-in user, this one included ("log out everywhere");
    /// returns how many. This response removes the cookie.
    pub async fn revoke_all(&self) -> Result<usize, Error> {
        self.shared().server_store("Session::revoke_all")?;
        let Some(user) = self.user() else {
            return Ok(0);
        };
        let now = self.shared().clock.now();
        let ended = self
            .shared()
            .call(
                Op::DeleteUser,
                None,
                self.shared().store.delete_user(&user, None, now),
            )
            .await?;
        revoked(self.shared(), RevokedBy::User, &user, None, ended);
        self.logout();
        Ok(ended)
    }

    /// Ends every other session of the signed-in user, keeping this one (after a password
    /// change, say); returns how many.
    pub async fn revoke_others(&self) -> Result<usize, Error> {
        self.shared().server_store("Session::revoke_others")?;
        let (Some(user), current) = ({
            let state = self.state();
            (state.user.clone(), state.id)
        }) else {
            return Ok(0);
        };
        let now = self.shared().clock.now();
        let ended = self
            .shared()
            .call(
                Op::DeleteUser,
                None,
                self.shared()
                    .store
                    .delete_user(&user, current.as_ref(), now),
            )
            .await?;
        revoked(self.shared(), RevokedBy::User, &user, None, ended);
        Ok(ended)
    }
}
