//! The session's hash, field by field: `created_at` and `expires_at` (Unix milliseconds),
//! `user` when the session is bound, and one `d:<key>` field per data key holding its JSON.

use fred::types::Value;
use serde_json::Value as Json;
use sessionware_core::time::OffsetDateTime;
use sessionware_core::{Data, Error, Record, SessionId, from_unix_ms, to_unix_ms};

pub(crate) const DATA_PREFIX: &str = "d:";
const CREATED_AT: &str = "created_at";
pub(crate) const EXPIRES_AT: &str = "expires_at";
const USER: &str = "user";
/// The field the write scripts bump on every change, which orders the near cache's updates.
const VERSION: &str = "v";

pub(crate) fn data_field(key: &str) -> String {
    format!("{DATA_PREFIX}{key}")
}

pub(crate) fn encode_value(value: &Json) -> Result<String, Error> {
    serde_json::to_string(value).map_err(Error::Encode)
}

/// The script's arguments for a new record: meta fields, then data field/value pairs.
pub(crate) fn create_args(record: &Record) -> Result<Vec<Value>, Error> {
    let mut args = Vec::with_capacity(4 + 2 * record.data.len());
    args.push(Value::from(to_unix_ms(record.created_at)));
    args.push(Value::from(to_unix_ms(record.expires_at)));
    match &record.user {
        Some(user) => {
            args.push(Value::from("1"));
            args.push(Value::from(user.as_str()));
        }
        None => {
            args.push(Value::from("0"));
            args.push(Value::from(""));
        }
    }
    for (key, value) in &record.data {
        args.push(Value::from(data_field(key)));
        args.push(Value::from(encode_value(value)?));
    }
    Ok(args)
}

fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, Error> {
    std::str::from_utf8(bytes).map_err(|_| Error::corrupt(format!("{what} is not UTF-8")))
}

fn time(ms: i64, field: &str) -> Result<OffsetDateTime, Error> {
    from_unix_ms(ms).ok_or_else(|| Error::corrupt(format!("field `{field}` is out of range")))
}

fn millis(bytes: &[u8], field: &str) -> Result<i64, Error> {
    utf8(bytes, field)?
        .parse()
        .map_err(|_| Error::corrupt(format!("field `{field}` is not a whole number of ms")))
}

/// The hash's version (`v`, which every write bumps; 0 before the first) and the estimated
/// bytes of its fields in memory, `overhead` counted per field.
pub(crate) fn version_and_size(fields: &[(&[u8], &[u8])], overhead: usize) -> (u64, usize) {
    let mut version = 0;
    let mut bytes = 0;
    for (field, value) in fields {
        if *field == VERSION.as_bytes() {
            version = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
        bytes += field.len() + value.len() + overhead;
    }
    (version, bytes)
}

/// A record from the field, value pairs `HGETALL` answers, read straight from the reply's
/// bytes: no intermediate map, and each value checked once, by the parser that reads it.
/// Unknown fields are ignored, so a later version may add some.
pub(crate) fn decode<'a>(
    id: SessionId,
    fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<Record, Error> {
    let (mut created_at, mut expires_at, mut user) = (None, None, None);
    let mut data = Data::new();
    for (field, value) in fields {
        match field {
            b"created_at" => created_at = Some(millis(value, CREATED_AT)?),
            b"expires_at" => expires_at = Some(millis(value, EXPIRES_AT)?),
            b"user" => user = Some(utf8(value, USER)?.to_owned()),
            _ => {
                if let Some(key) = field.strip_prefix(DATA_PREFIX.as_bytes()) {
                    let key = utf8(key, "a field name")?;
                    let json: Json = serde_json::from_slice(value).map_err(|e| {
                        Error::corrupt(format!("the value of `{key}` is not JSON: {e}"))
                    })?;
                    data.insert(key.to_owned(), json);
                }
            }
        }
    }
    let missing = |field| Error::corrupt(format!("field `{field}` is missing"));
    Ok(Record {
        id,
        data,
        user,
        created_at: time(created_at.ok_or_else(|| missing(CREATED_AT))?, CREATED_AT)?,
        expires_at: time(expires_at.ok_or_else(|| missing(EXPIRES_AT))?, EXPIRES_AT)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id() -> SessionId {
        SessionId::from_bytes([7; SessionId::BYTES])
    }

    fn hash<'a>(pairs: &'a [(&str, &str)]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        pairs.iter().map(|(f, v)| (f.as_bytes(), v.as_bytes()))
    }

    #[test]
    fn decodes_fields_and_ignores_unknown_ones() {
        let record = decode(
            id(),
            hash(&[
                ("created_at", "1000"),
                ("expires_at", "2000"),
                ("user", "u-1"),
                ("d:count", "3"),
                ("d:d:nested", r#"{"a":[1]}"#),
                ("future_field", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(record.created_at, from_unix_ms(1000).unwrap());
        assert_eq!(record.expires_at, from_unix_ms(2000).unwrap());
        assert_eq!(record.user.as_deref(), Some("u-1"));
        assert_eq!(
            record.data,
            Data::from([
                ("count".into(), json!(3)),
                ("d:nested".into(), json!({"a": [1]}))
            ])
        );
    }

    #[test]
    fn bad_fields_are_corrupt_without_the_id() {
        let cases: [&[(&str, &str)]; 4] = [
            &[("expires_at", "2000")],
            &[("created_at", "x"), ("expires_at", "2000")],
            &[
                ("created_at", "1"),
                ("expires_at", "2"),
                ("d:k", "{not json"),
            ],
            // Past the representable years: a typed error, not an overflow panic.
            &[("created_at", "1"), ("expires_at", "9223372036854775807")],
        ];
        for case in cases {
            match decode(id(), hash(case)) {
                Err(Error::Corrupt { reason }) => assert!(!reason.contains(&id().to_string())),
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_corrupt() {
        let fields: [(&[u8], &[u8]); 3] = [
            (b"created_at", b"1"),
            (b"expires_at", b"2"),
            (b"user", b"\xff"),
        ];
        assert!(matches!(decode(id(), fields), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn create_args_put_data_under_the_prefix() {
        let t = from_unix_ms(5).unwrap();
        let record = Record {
            id: id(),
            data: Data::from([("k".into(), json!("v"))]),
            user: None,
            created_at: t,
            expires_at: t,
        };
        let args = create_args(&record).unwrap();
        assert_eq!(args[4], Value::from("d:k"));
        assert_eq!(args[5], Value::from("\"v\""));
        assert_eq!(args[2], Value::from("0"));
    }
}
