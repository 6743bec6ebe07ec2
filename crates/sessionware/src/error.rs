use std::fmt;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// Everything a handler, the extractor or the layer can fail with.
///
/// Implements [`IntoResponse`], so a handler can return `Result<_, sessionware::Error>` and use
/// `?` on session calls. The responses are short plain text: `503` when the store is down or
/// slow (and only then: data the store refuses, or a failing random source, is a `500`), `409`
/// when the session ended while the request was changing it or an
/// [`update`](crate::Session::update) ran out of retries, `422` for an
/// [`increment`](crate::Session::increment) of a value that is not an integer or that would
/// overflow, `413` for a session over a size limit, `501` for what the
/// [`CookieStore`](crate::CookieStore) cannot do, `500` otherwise. Configuration
/// errors are not here: a bad key is a [`KeyError`](crate::KeyError) at start-up.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The store failed, timed out, or holds a record that does not decode.
    Store(sessionware_core::Error),
    /// The value under `key` does not deserialize as the type asked for. The value is kept.
    Deserialize {
        /// The session key.
        key: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// The value for `key` does not serialize to JSON. Nothing was changed.
    Serialize {
        /// The session key.
        key: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// The session was destroyed, revoked or expired while this request was changing it. Its
    /// changes were not stored: a write never brings back a session that has ended.
    SessionGone,
    /// A handler extracted [`Session`](crate::Session) on a route without a
    /// [`SessionLayer`](crate::SessionLayer).
    MissingLayer,
    /// A change would make the session's data larger than the layer's limit
    /// ([`SessionLayer::with_max_size`](crate::SessionLayer::with_max_size)). Nothing of it
    /// was applied.
    TooLarge {
        /// The size the data would have had, in bytes of JSON.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A value nested deeper than [`MAX_DEPTH`](crate::MAX_DEPTH) levels of arrays and
    /// objects: it could not be read back once stored. Nothing was changed.
    TooDeep {
        /// The session key.
        key: String,
        /// The limit.
        limit: usize,
    },
    /// [`Session::require_sign_in_within`](crate::Session::require_sign_in_within): nobody is
    /// signed in, or the sign-in is older than the action asks for. `401`; show a page that
    /// asks for the password again and call
    /// [`Session::confirm_sign_in`](crate::Session::confirm_sign_in).
    SignInRequired,
    /// A form post whose CSRF token is not the session's
    /// ([`Session::verify_csrf`](crate::Session::verify_csrf)).
    CsrfMismatch,
    /// [`Session::update`](crate::Session::update): other requests kept changing these keys
    /// between each read and the compare-and-set, more times than the layer retries
    /// ([`SessionLayer::with_update_retries`](crate::SessionLayer::with_update_retries)).
    /// Nothing of the request's changes was stored. `409`.
    UpdateConflict {
        /// The keys that changed under the last attempt.
        keys: Vec<String>,
    },
    /// [`Session::increment`](crate::Session::increment) of a key that holds something other
    /// than a JSON integer in the `i64` range (at the call, or in the store at write-back).
    /// Nothing was changed. `422`.
    NotAnInteger {
        /// The session key.
        key: String,
    },
    /// [`Session::increment`](crate::Session::increment) whose result leaves the `i64` range
    /// (at the call, or in the store at write-back). Nothing was changed. `422`.
    Overflow {
        /// The session key.
        key: String,
    },
    /// With the [`CookieStore`](crate::CookieStore): the session would make the cookie
    /// (name, `=` and value) larger than the limit
    /// ([`CookieStore::with_max_cookie_size`](crate::CookieStore::with_max_cookie_size)).
    /// Refused at the `insert` that would cross it (nothing changed), or at write-back (the
    /// response is this error, and no cookie is sent). `413`.
    CookieTooLarge {
        /// The cookie's size, in bytes (an upper bound when refused at the `insert`).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// With the [`CookieStore`](crate::CookieStore): an operation that needs sessions kept on
    /// the server (listing or revoking a user's devices, the per-user cap). Nothing was
    /// done. `501`.
    NeedsServerStore {
        /// The operation, as its method is named.
        operation: &'static str,
    },
}

impl Error {
    /// The status this error answers with by default.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::SessionGone | Self::UpdateConflict { .. } => StatusCode::CONFLICT,
            Self::NotAnInteger { .. } | Self::Overflow { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::CsrfMismatch => StatusCode::FORBIDDEN,
            Self::SignInRequired => StatusCode::UNAUTHORIZED,
            Self::TooLarge { .. } | Self::CookieTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NeedsServerStore { .. } => StatusCode::NOT_IMPLEMENTED,
            Self::TooDeep { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => e.fmt(f),
            Self::Deserialize { key, source } => {
                write!(f, "session value {key:?} has an unexpected type: {source}")
            }
            Self::Serialize { key, source } => {
                write!(f, "session value {key:?} does not serialize: {source}")
            }
            Self::SessionGone => f.write_str("the session ended while this request was using it"),
            Self::MissingLayer => f.write_str("Session extracted on a route without SessionLayer"),
            Self::CsrfMismatch => f.write_str("CSRF token missing or wrong"),
            Self::SignInRequired => f.write_str("a recent sign-in is required"),
            Self::UpdateConflict { keys } => write!(
                f,
                "session values {keys:?} kept changing under concurrent requests"
            ),
            Self::NotAnInteger { key } => {
                write!(f, "session value {key:?} is not an integer to increment")
            }
            Self::Overflow { key } => write!(f, "incrementing session value {key:?} overflows"),
            Self::TooDeep { key, limit } => {
                write!(
                    f,
                    "session value {key:?} nests more than {limit} levels of arrays and objects"
                )
            }
            Self::CookieTooLarge { size, limit } => {
                write!(
                    f,
                    "the session cookie would be {size} bytes, over the limit of {limit}"
                )
            }
            Self::NeedsServerStore { operation } => write!(
                f,
                "{operation} needs sessions kept on the server; the cookie store keeps none"
            ),
            Self::TooLarge { size, limit } => {
                write!(
                    f,
                    "session data would be {size} bytes, over the limit of {limit}"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            Self::Deserialize { source, .. } | Self::Serialize { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A store's refusal of an increment becomes the variant `increment` itself returns, so a
/// caller matches one variant wherever it was found.
impl From<sessionware_core::Error> for Error {
    fn from(e: sessionware_core::Error) -> Self {
        match e {
            sessionware_core::Error::NotAnInteger { key } => Self::NotAnInteger { key },
            sessionware_core::Error::Overflow { key } => Self::Overflow { key },
            e => Self::Store(e),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = match self.status() {
            StatusCode::SERVICE_UNAVAILABLE => "session store unavailable\n",
            StatusCode::FORBIDDEN => "CSRF token missing or wrong\n",
            StatusCode::PAYLOAD_TOO_LARGE => "session too large\n",
            StatusCode::NOT_IMPLEMENTED => "not available with the cookie session store\n",
            _ => match self {
                Self::SessionGone => "session ended\n",
                Self::SignInRequired => "recent sign-in required\n",
                Self::UpdateConflict { .. } => "session value changed by concurrent requests\n",
                Self::TooDeep { .. } => "session value nested too deep\n",
                Self::NotAnInteger { .. } => "session value is not an integer\n",
                Self::Overflow { .. } => "session value would overflow\n",
                Self::Store(sessionware_core::Error::Rejected { .. }) => {
                    "session data refused by the store\n"
                }
                Self::Store(sessionware_core::Error::Random) => "random source failed\n",
                Self::Store(_) => "session could not be read\n",
                _ => "session error\n",
            },
        };
        (self.status(), body).into_response()
    }
}

/// Turns a store failure into the response sent instead of the handler's; set with
/// [`SessionLayer::with_error_handler`](crate::SessionLayer::with_error_handler).
pub(crate) type ErrorHandler = Arc<dyn Fn(&Error) -> Response + Send + Sync>;

/// Why the [`Session`](crate::Session) extractor failed. Its response is the layer's error
/// handler's, or [`Error`]'s own. Extract `Result<Session, SessionRejection>` to handle it in
/// the handler instead.
pub struct SessionRejection {
    pub(crate) error: Error,
    pub(crate) handler: Option<ErrorHandler>,
}

impl SessionRejection {
    /// What went wrong.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The error, taken out.
    pub fn into_error(self) -> Error {
        self.error
    }
}

impl fmt::Debug for SessionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionRejection")
            .field(&self.error)
            .finish()
    }
}

impl fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for SessionRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        match self.handler {
            Some(handler) => handler(&self.error),
            None => self.error.into_response(),
        }
    }
}
