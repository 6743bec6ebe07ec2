//! Between the model and the columns: times as whole milliseconds since the Unix epoch, data
//! as JSON text.

use sessionware_core::time::OffsetDateTime;
use sessionware_core::{Data, Error, Record, SessionId, from_unix_ms, to_unix_ms};

/// A time as whole milliseconds since the Unix epoch (deadlines are whole milliseconds).
pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    clamp(i128::from(to_unix_ms(t)))
}

fn clamp(v: i128) -> i64 {
    // Real times are ~1.7e12 ms; capping far below i64::MAX keeps `now + lifetime` in SQL from
    // overflowing BIGINT whatever the policy says (about 290,000 years).
    const CAP: i128 = 1 << 53;
    v.clamp(-CAP, CAP) as i64
}

fn time(ms: i64, what: &str) -> Result<OffsetDateTime, Error> {
    from_unix_ms(ms).ok_or_else(|| Error::corrupt(format!("{what} {ms} ms is out of range")))
}

/// The columns of one row, as every engine selects them.
pub(crate) struct Row {
    pub(crate) data: String,
    pub(crate) user: Option<String>,
    pub(crate) created_ms: i64,
    pub(crate) expires_ms: i64,
}

/// The four columns every engine selects (data, user, created, expires), starting at `at`.
pub(crate) fn columns<R: sqlx::Row>(row: &R, at: usize) -> Result<Row, Error>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let backend = crate::error::backend;
    Ok(Row {
        data: row.try_get(at).map_err(backend)?,
        user: row.try_get(at + 1).map_err(backend)?,
        created_ms: row.try_get(at + 2).map_err(backend)?,
        expires_ms: row.try_get(at + 3).map_err(backend)?,
    })
}

impl Row {
    pub(crate) fn into_record(self, id: SessionId) -> Result<Record, Error> {
        Ok(Record {
            id,
            data: decode(&self.data)?,
            user: self.user,
            created_at: time(self.created_ms, "creation time")?,
            expires_at: time(self.expires_ms, "deadline")?,
        })
    }
}

/// Session data from its JSON text: an object, or the record is corrupt.
pub(crate) fn decode(text: &str) -> Result<Data, Error> {
    // serde_json's message names the position and what it expected, never the session id.
    serde_json::from_str(text).map_err(|e| Error::corrupt(format!("data column: {e}")))
}

pub(crate) fn encode(data: &Data) -> Result<String, Error> {
    data.values().try_for_each(readable)?;
    serde_json::to_string(data).map_err(Error::Encode)
}

pub(crate) fn value(v: &serde_json::Value) -> Result<String, Error> {
    readable(v)?;
    serde_json::to_string(v).map_err(Error::Encode)
}

/// How deeply a value in the session data may nest arrays and objects. [`decode`] stops at
/// serde_json's recursion limit (128 levels, the data object included), and PostgreSQL and
/// SQLite store far deeper JSON: without this check a session could be written that no load
/// ever reads again. MariaDB refuses sooner (32 levels), which `error.rs` reports as
/// [`Error::Rejected`] too.
pub(crate) const MAX_DEPTH: usize = 126;

/// `Ok` when `v` nests at most [`MAX_DEPTH`] levels, so the record it goes into loads again.
pub(crate) fn readable(v: &serde_json::Value) -> Result<(), Error> {
    // Recursion bounded by the budget, whatever the depth of `v`.
    fn deeper(v: &serde_json::Value, budget: usize) -> bool {
        match v {
            serde_json::Value::Array(a) => budget == 0 || a.iter().any(|v| deeper(v, budget - 1)),
            serde_json::Value::Object(o) => {
                budget == 0 || o.values().any(|v| deeper(v, budget - 1))
            }
            _ => false,
        }
    }
    if deeper(v, MAX_DEPTH) {
        return Err(Error::rejected(format!(
            "a value nests arrays and objects deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(())
}

/// Whether `key` can be named in a JSON path (`$."key"`) by both MariaDB/MySQL and SQLite.
///
/// Neither engine unescapes a quoted path key the way JSON does, so keys with quotes,
/// backslashes or control characters are applied by a read-modify-write in a transaction
/// instead (see the SQL store in `docs/design.md`).
pub(crate) fn path_safe(key: &str) -> bool {
    !key.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

/// Keys one JSON function call of `apply` sets or removes: a set takes two arguments per key
/// plus the document, which stays under SQLite's limit of 127 arguments a function
/// (`SQLITE_MAX_FUNCTION_ARG`). MariaDB has no such limit; the same shape serves it.
pub(crate) const KEYS_PER_CALL: usize = 60;

/// Whether a change set's `UPDATE` carries conditions beyond liveness (guards, increments that
/// must find an integer), so that matching no row does not by itself mean the session ended.
pub(crate) fn is_conditional(changes: &sessionware_core::ChangeSet) -> bool {
    changes.guards().len() > 0 || changes.increments().next().is_some()
}

/// Why a conditional `apply` matched no row, judged on the session as a load found it right
/// after: `Ok(Some(false))` no live session; `Err` the typed refusal (`Conflict`,
/// `NotAnInteger`, `Overflow`); `Ok(None)` everything holds now (the row changed in between),
/// so the update is worth running again. Costs the load only when a write was refused.
pub(crate) fn why_refused(
    current: Option<Record>,
    changes: &sessionware_core::ChangeSet,
) -> Result<Option<bool>, Error> {
    match current {
        None => Ok(Some(false)),
        Some(mut record) => changes.apply_to(&mut record.data).map(|()| None),
    }
}

/// How often a conditional `apply` runs before giving up on a row that keeps changing between
/// the refused update and the load that explains it.
pub(crate) const CONDITIONAL_TRIES: usize = 4;

/// A parameter of a statement built per shape.
#[derive(Clone)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

impl Param {
    pub(crate) fn bind<'q, DB>(
        self,
        query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
    where
        DB: sqlx::Database,
        String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        match self {
            Self::Text(text) => query.bind(text),
            Self::Int(n) => query.bind(n),
        }
    }
}

/// The bounds an integer must lie in for `+ by` to stay an `i64`.
pub(crate) fn addable(by: i64) -> (i64, i64) {
    if by < 0 {
        (i64::MIN - by, i64::MAX)
    } else {
        (i64::MIN, i64::MAX - by)
    }
}

/// The JSON path of a top-level key that is [`path_safe`].
pub(crate) fn path(key: &str) -> String {
    format!("$.\"{key}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_in_ms() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_000_000).unwrap();
        assert_eq!(ms(t), 1_700_000_000_123);
        assert_eq!(time(ms(t), "t").unwrap(), t);
        assert!(matches!(time(i64::MAX, "t"), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn corrupt_data_is_typed() {
        for bad in ["", "not json", "[1,2]", "\"s\"", "{\"a\":"] {
            assert!(matches!(decode(bad), Err(Error::Corrupt { .. })), "{bad}");
        }
        assert_eq!(decode("{}").unwrap(), Data::new());
    }

    fn nested(levels: usize) -> serde_json::Value {
        (0..levels).fold(serde_json::json!(1), |v, _| serde_json::json!([v]))
    }

    #[test]
    fn every_value_the_store_writes_reads_back() {
        for levels in [0, 1, MAX_DEPTH] {
            let data = Data::from([("k".to_owned(), nested(levels))]);
            let text = encode(&data).unwrap();
            assert_eq!(decode(&text).unwrap(), data, "{levels}");
        }
        let data = Data::from([("k".to_owned(), nested(MAX_DEPTH + 1))]);
        assert!(matches!(encode(&data), Err(Error::Rejected { .. })));
        assert!(matches!(
            value(&nested(MAX_DEPTH + 1)),
            Err(Error::Rejected { .. })
        ));
        // The limit is serde_json's: one level more would not load.
        let text = serde_json::to_string(&data).unwrap();
        assert!(matches!(decode(&text), Err(Error::Corrupt { .. })));
        // Far deeper values are refused without walking (or overflowing) them.
        assert!(readable(&nested(1000)).is_err());
    }

    #[test]
    fn path_safety() {
        assert!(path_safe("a.b c-ü✓*[0]"));
        assert!(path_safe(""));
        for k in ["a\"b", "a\\b", "a\nb", "\u{7f}"] {
            assert!(!path_safe(k), "{k:?}");
        }
    }
}
