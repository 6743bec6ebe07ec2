use std::fmt;

/// Everything that can go wrong in the model or in a store.
///
/// Stores map their backend's failures onto these variants, so that the layer (and an
/// application) can tell an outage from a corrupt record without knowing the backend.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A session id that is not the base64url encoding of exactly
    /// [`SessionId::BYTES`](crate::SessionId::BYTES) bytes.
    InvalidId,
    /// The operating system's random number generator failed.
    Random,
    /// A record in the store could not be decoded (edited by hand, truncated, or written by an
    /// incompatible version). The record is left as it is.
    Corrupt {
        /// What failed to decode, for the operator. Never contains the session id.
        reason: String,
    },
    /// A value could not be encoded as JSON.
    Encode(serde_json::Error),
    /// The backend refused the data as something it cannot hold (a value nested deeper than
    /// the engine allows, a character it cannot store). Bad data, not an outage: nothing of
    /// the change was written.
    Rejected {
        /// What the backend refused, for the operator. Never contains the session id.
        reason: String,
    },
    /// A compare-and-set refused: keys a change set [expected](crate::ChangeSet::expect) to
    /// hold some values hold others now. Nothing was written.
    Conflict {
        /// The keys that changed, with what they hold now (`None`: absent).
        current: Vec<(String, Option<serde_json::Value>)>,
    },
    /// An [increment](crate::Change::Increment) of a key that holds something other than a
    /// JSON integer in the `i64` range. Nothing was written.
    NotAnInteger {
        /// The session key.
        key: String,
    },
    /// An [increment](crate::Change::Increment) whose result leaves the `i64` range. Nothing
    /// was written.
    Overflow {
        /// The session key.
        key: String,
    },
    /// The store did not answer within its timeout.
    Timeout,
    /// The store failed: connection refused or lost, protocol error, server error.
    Backend(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl Error {
    /// Wraps a backend's error as [`Error::Backend`].
    pub fn backend(err: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Backend(err.into())
    }

    /// Builds an [`Error::Corrupt`] from anything that describes the failure.
    pub fn corrupt(reason: impl fmt::Display) -> Self {
        Self::Corrupt {
            reason: reason.to_string(),
        }
    }

    /// Builds an [`Error::Rejected`] from anything that describes what was refused.
    pub fn rejected(reason: impl fmt::Display) -> Self {
        Self::Rejected {
            reason: reason.to_string(),
        }
    }

    /// `true` for failures of the store itself (down, slow or broken), as opposed to bad data
    /// or a failing random source (the store is fine; retrying elsewhere will not help). The
    /// layer answers these with `503 Service Unavailable`.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Timeout | Self::Backend(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidId => f.write_str("malformed session id"),
            Self::Random => f.write_str("the system random number generator failed"),
            Self::Corrupt { reason } => write!(f, "session record does not decode: {reason}"),
            Self::Encode(e) => write!(f, "session value does not encode as JSON: {e}"),
            Self::Rejected { reason } => write!(f, "the store refused the session data: {reason}"),
            Self::Conflict { current } => {
                f.write_str("session keys changed since they were read:")?;
                for (key, _) in current {
                    write!(f, " {key:?}")?;
                }
                Ok(())
            }
            Self::NotAnInteger { key } => {
                write!(f, "session value {key:?} is not an integer to increment")
            }
            Self::Overflow { key } => write!(f, "incrementing session value {key:?} overflows"),
            Self::Timeout => f.write_str("session store timed out"),
            Self::Backend(e) => write!(f, "session store failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Encode(e) => Some(e),
            Self::Backend(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}
