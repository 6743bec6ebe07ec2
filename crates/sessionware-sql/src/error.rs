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
                supported_schemes()
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
///
/// The one place that decides whether a failure is the store's (`Backend`, `Timeout`: the
/// layer answers 503 and the client may retry) or the data's (`Rejected`: the same request
/// fails the same way on a healthy server, so calling it an outage would send operators
/// chasing a server that is fine and invite clients to retry it forever).
pub(crate) fn backend(err: sqlx::Error) -> sessionware_core::Error {
    use sessionware_core::Error;
    match err {
        sqlx::Error::PoolTimedOut => Error::Timeout,
        // A column holding something of the wrong type (edited by hand, another writer): the
        // record is corrupt, not the server. sqlx's message names the column, never the row.
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => Error::corrupt(err),
        sqlx::Error::Database(db) => match refusal(db.as_ref()) {
            Some(reason) => Error::rejected(reason),
            None => Error::backend(sqlx::Error::Database(db)),
        },
        other => Error::backend(other),
    }
}

/// What the engine refused, when the error says the data (not the server, the connection or
/// the SQL) is at fault.
fn refusal(db: &dyn sqlx::error::DatabaseError) -> Option<String> {
    use sqlx::error::ErrorKind;
    // Duplicate-key messages quote the key, which can be a session id; the store's own
    // duplicate handling (a fresh id) runs before this, so only the kind is worth telling.
    if matches!(db.kind(), ErrorKind::UniqueViolation) {
        return Some("a unique key is taken".to_owned());
    }
    let code = db.code()?;
    let refused = if is_sqlite(db) {
        sqlite_refuses(&code, db.message())
    } else {
        sql_state_refuses(&code) || mariadb_refuses(db)
    };
    // The message names the limit or the column; the engines' detail lines, which can quote
    // the data, are left out.
    refused.then(|| format!("{code}: {}", db.message()))
}

/// SQLSTATE classes that blame the data: 22 (data exception: a value too long, a character
/// the type cannot hold, invalid or too deeply nested JSON), 23 (integrity constraint: NOT
/// NULL, CHECK such as MariaDB's `JSON_VALID`), 54 (PostgreSQL's program limits: a value
/// nested beyond the parser's stack, too many arguments).
fn sql_state_refuses(state: &str) -> bool {
    ["22", "23", "54"]
        .iter()
        .any(|class| state.starts_with(class))
}

/// MariaDB reports JSON nested beyond its limit of 32 levels as ER_JSON_DEPTH (4040) under
/// the catch-all SQLSTATE HY000.
#[cfg(feature = "mysql")]
fn mariadb_refuses(db: &dyn sqlx::error::DatabaseError) -> bool {
    const ER_JSON_DEPTH: u16 = 4040;
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|e| e.number() == ER_JSON_DEPTH)
}

#[cfg(not(feature = "mysql"))]
fn mariadb_refuses(_: &dyn sqlx::error::DatabaseError) -> bool {
    false
}

#[cfg(feature = "sqlite")]
fn is_sqlite(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
}

#[cfg(not(feature = "sqlite"))]
fn is_sqlite(_: &dyn sqlx::error::DatabaseError) -> bool {
    false
}

/// SQLite has no SQLSTATE: its code is the (extended) result code, and its JSON functions and
/// statement limits all fail with the generic SQLITE_ERROR, told apart by message only.
fn sqlite_refuses(code: &str, message: &str) -> bool {
    const SQLITE_ERROR: i32 = 1;
    const SQLITE_TOOBIG: i32 = 18;
    const SQLITE_CONSTRAINT: i32 = 19;
    const SQLITE_MISMATCH: i32 = 20;
    const DATA_ERRORS: [&str; 6] = [
        "malformed JSON",
        "JSON cannot hold BLOB values",
        "bad JSON path",
        "too many arguments on function",
        "too many SQL variables",
        "Expression tree is too large",
    ];
    let Ok(code) = code.parse::<i32>() else {
        return false;
    };
    match code & 0xff {
        SQLITE_TOOBIG | SQLITE_CONSTRAINT | SQLITE_MISMATCH => true,
        SQLITE_ERROR => DATA_ERRORS.iter().any(|m| message.starts_with(m)),
        _ => false,
    }
}

/// A deadlock or serialization failure: the engine rolled back one statement so another
/// could proceed, and running it again is the documented remedy. InnoDB picks such a victim
/// when a `rekey` and a `delete_user` of the same user lock index entries in opposite orders.
pub(crate) fn is_conflict(err: &sqlx::Error) -> bool {
    match err {
        // 40001: serialization failure (also InnoDB's deadlock, 1213); 40P01: PostgreSQL's
        // deadlock.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code == "40001" || code == "40P01"),
        _ => false,
    }
}

/// How often a statement that lost a deadlock is run again before the error is reported.
pub(crate) const CONFLICT_RETRIES: usize = 3;

/// The URL schemes this build accepts, for error messages.
pub(crate) fn supported_schemes() -> String {
    let mut schemes = Vec::new();
    if cfg!(feature = "postgres") {
        schemes.push("postgres://");
    }
    if cfg!(feature = "mysql") {
        schemes.push("mysql://, mariadb://");
    }
    if cfg!(feature = "sqlite") {
        schemes.push("sqlite:");
    }
    schemes.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_data_errors_are_told_by_code_and_message() {
        assert!(sqlite_refuses("1", "malformed JSON"));
        assert!(sqlite_refuses(
            "1",
            "too many arguments on function json_set"
        ));
        assert!(sqlite_refuses("1299", "NOT NULL constraint failed: s.data"));
        assert!(sqlite_refuses("18", "string or blob too big"));
        assert!(!sqlite_refuses("1", "no such table: sessions"));
        assert!(!sqlite_refuses("5", "database is locked"));
        assert!(!sqlite_refuses("10", "disk I/O error"));
    }

    #[test]
    fn sql_state_classes() {
        for data in ["22P05", "22001", "22032", "23000", "23502", "54001"] {
            assert!(sql_state_refuses(data), "{data}");
        }
        for server in [
            "08006", "40001", "57P01", "53300", "42P01", "HY000", "XX000",
        ] {
            assert!(!sql_state_refuses(server), "{server}");
        }
    }
}
