//! Table and schema names, which end up inside SQL text and so are checked, then quoted.

use crate::SqlError;

/// Longest accepted name: leaves room for the index suffixes under PostgreSQL's 63-byte and
/// MySQL's 64-character identifier limits.
const MAX_LEN: usize = 48;

/// A checked identifier: `[A-Za-z_][A-Za-z0-9_]*`, so quoting it can never break out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ident(pub(crate) String);

impl Ident {
    pub(crate) fn new(name: &str) -> Result<Self, SqlError> {
        let mut chars = name.chars();
        let ok = name.len() <= MAX_LEN
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(SqlError::InvalidName {
                name: name.to_owned(),
            })
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where the session table lives, and the SQL text that names it and its indexes.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) schema: Option<Ident>,
    pub(crate) name: Ident,
}

impl Table {
    /// The table, quoted with `quote` (`"` in PostgreSQL and SQLite, `` ` `` in MySQL).
    pub(crate) fn qualified(&self, quote: char) -> String {
        match &self.schema {
            Some(schema) => format!(
                "{quote}{}{quote}.{quote}{}{quote}",
                schema.as_str(),
                self.name.as_str()
            ),
            None => format!("{quote}{}{quote}", self.name.as_str()),
        }
    }

    /// An index of the table, named after it.
    pub(crate) fn index(&self, quote: char, suffix: &str) -> String {
        format!("{quote}{}_{suffix}{quote}", self.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for good in ["sessions", "_s", "Sessions_2", &"a".repeat(MAX_LEN)] {
            assert!(Ident::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "2s",
            "a-b",
            "a b",
            "s\"; drop table x; --",
            "ß",
            &"a".repeat(MAX_LEN + 1),
        ] {
            assert!(
                matches!(Ident::new(bad), Err(SqlError::InvalidName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn quoting() {
        let t = Table {
            schema: Some(Ident::new("auth").unwrap()),
            name: Ident::new("sessions").unwrap(),
        };
        assert_eq!(t.qualified('"'), "\"auth\".\"sessions\"");
        assert_eq!(t.index('`', "expires"), "`sessions_expires`");
    }
}
