use std::fmt;

/// Why a [`RedisStore`](crate::RedisStore) could not be set up.
///
/// Store methods report failures as [`sessionware_core::Error`] instead, as every store does.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not one fred understands (`redis://`, `rediss://`, `redis-cluster://`,
    /// `redis-sentinel://`, ...).
    InvalidUrl(fred::error::Error),
    /// The settings were refused when the client was built (for example a TLS setup that
    /// fails).
    Config(fred::error::Error),
    /// The first connection, or loading the store's scripts, failed or timed out.
    Connect(fred::error::Error),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(e) => write!(f, "invalid Redis URL: {e}"),
            Self::Config(e) => write!(f, "invalid Redis settings: {e}"),
            Self::Connect(e) => write!(f, "cannot connect to Redis: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidUrl(e) | Self::Config(e) | Self::Connect(e) => Some(e),
        }
    }
}

/// A fred failure as the store contract names it: timeouts apart, every one is the backend's.
pub(crate) fn from_fred(error: fred::error::Error) -> sessionware_core::Error {
    match error.kind() {
        fred::error::ErrorKind::Timeout => sessionware_core::Error::Timeout,
        _ => sessionware_core::Error::backend(error),
    }
}
