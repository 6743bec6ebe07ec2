use std::fmt;

/// What can go wrong while setting up a [`SqlStore`](crate::SqlStore): connecting, naming the
/// table, migrating, starting the cleanup task.
///
/// The store's session methods report [`sessionware_core::Error`] instead, as every store does.
#[derive(Debug)]
#[non_exhaustive]
pub enum SqlError {
    /// The URL's scheme names no engine this build supports (see the crate's cargo features).
    UnsupportedUrl {
        /// The scheme, or the whole URL when it has none.
        scheme: String,
    },
    /// A table or schema name that is not a plain SQL identifier (`[A-Za-z_][A-Za-z0-9_]*`, at
    /// most 48 characters).
    InvalidName {
        /// The name as given.
        name: String,
    },
    /// A schema was set on an engine that has none (MySQL and SQLite name databases in the URL).
    SchemaUnsupported,
    /// The database refused the connection or the URL.
    Connect(sqlx::Error),
    /// Creating the table or its indexes failed.
    Migrate(sqlx::Error),
    /// A method that starts a background task was called outside a Tokio runtime.
    NoRuntime,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedUrl { scheme } => write!(
                f,
                "unsupported database URL scheme {scheme:?} (this build supports: {})",
                crate::store::supported_schemes()
            ),
            Self::InvalidName { name } => write!(
                f,
                "{name:?} is not a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*, at most 48 characters)"
            ),
            Self::SchemaUnsupported => {
                f.write_str("only PostgreSQL has schemas; name the database in the URL instead")
            }
            Self::Connect(e) => write!(f, "cannot connect to the session database: {e}"),
            Self::Migrate(e) => write!(f, "cannot create the session table: {e}"),
            Self::NoRuntime => f.write_str("the cleanup task needs a Tokio runtime"),
        }
    }
}

impl std::error::Error for SqlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(e) | Self::Migrate(e) => Some(e),
            _ => None,
        }
    }
}

/// Maps a driver error from a session method onto the store contract's error.
pub(crate) fn backend(err: sqlx::Error) -> sessionware_core::Error {
    use sessionware_core::Error;
    match err {
        sqlx::Error::PoolTimedOut => Error::Timeout,
        // A column holding something of the wrong type (edited by hand, another writer): the
        // record is corrupt, not the server. sqlx's message names the column, never the row.
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => Error::corrupt(err),
        other => Error::backend(other),
    }
}
