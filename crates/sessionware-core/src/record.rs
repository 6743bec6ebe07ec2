use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use time::OffsetDateTime;

use crate::{Error, SessionId};

/// A session's data: string keys to JSON values.
pub type Data = HashMap<String, Value>;

/// A whole session as a store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The session's id.
    pub id: SessionId,
    /// The application's data.
    pub data: Data,
    /// The user the session is bound to, if any.
    pub user: Option<String>,
    /// When the session was created; the absolute lifetime counts from here.
    pub created_at: OffsetDateTime,
    /// When the store forgets the session: the earlier of the idle and absolute deadlines.
    pub expires_at: OffsetDateTime,
}

impl Record {
    /// `true` once `now` has reached the record's deadline.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }
}

/// What happens to one key in a [`ChangeSet`].
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The key takes this value.
    Set(Value),
    /// The key is removed.
    Remove,
    /// The integer the store holds under the key grows by this much (shrinks, if negative), in
    /// the store's own atomic step, so concurrent increments never lose a count. A missing key
    /// counts from 0 (also after a [`clear`](ChangeSet::clear) in the same change set); a key
    /// holding anything but a JSON integer in the `i64` range is [`Error::NotAnInteger`], and a
    /// result outside that range [`Error::Overflow`]: either way nothing of the change set is
    /// written.
    Increment(i64),
}

/// The changes one request made to an existing session, applied by
/// [`SessionStore::apply`](crate::SessionStore::apply).
///
/// Changes are per key: a store applies exactly these keys and leaves every other key as it is
/// in the store at that moment, so two requests that change different keys of one session both
/// survive. `clear` drops every key first, then the listed changes apply.
///
/// ```
/// use sessionware_core::{ChangeSet, Data, time::OffsetDateTime};
/// use serde_json::json;
///
/// let mut changes = ChangeSet::new(OffsetDateTime::now_utc());
/// changes.set("count", json!(2));
/// changes.remove("flash");
///
/// changes.increment("visits", 1);
///
/// let mut data = Data::from([("flash".into(), json!("hi")), ("theme".into(), json!("dark"))]);
/// changes.apply_to(&mut data)?;
/// assert_eq!(data["count"], json!(2));
/// assert_eq!(data["visits"], json!(1), "a missing key counts from 0");
/// assert!(!data.contains_key("flash"));
///
/// // A compare-and-set: applies only while "theme" still holds "dark".
/// let mut cas = ChangeSet::new(OffsetDateTime::now_utc());
/// cas.expect("theme", Some(json!("light"))).set("theme", json!("blue"));
/// assert!(matches!(cas.apply_to(&mut data), Err(sessionware_core::Error::Conflict { .. })));
/// assert_eq!(data["theme"], json!("dark"), "nothing written");
/// # Ok::<(), sessionware_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeSet {
    clear: bool,
    keys: BTreeMap<String, Change>,
    guards: BTreeMap<String, Option<Value>>,
    loaded_user: Option<String>,
    expires_at: OffsetDateTime,
}

impl ChangeSet {
    /// An empty change set that moves the deadline to `expires_at`.
    pub fn new(expires_at: OffsetDateTime) -> Self {
        Self {
            clear: false,
            keys: BTreeMap::new(),
            guards: BTreeMap::new(),
            loaded_user: None,
            expires_at,
        }
    }

    /// Sets `key` to `value`.
    pub fn set(&mut self, key: impl Into<String>, value: Value) -> &mut Self {
        self.keys.insert(key.into(), Change::Set(value));
        self
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: impl Into<String>) -> &mut Self {
        self.keys.insert(key.into(), Change::Remove);
        self
    }

    /// Adds `by` to the integer under `key` in the store's own atomic step; see
    /// [`Change::Increment`].
    pub fn increment(&mut self, key: impl Into<String>, by: i64) -> &mut Self {
        self.keys.insert(key.into(), Change::Increment(by));
        self
    }

    /// Makes the whole change set conditional: it applies only if `key` still holds `value`
    /// in the store (`None`: the key is absent), compared as JSON values. Otherwise the store
    /// writes nothing and answers [`Error::Conflict`] with what the key holds now: a
    /// compare-and-set, checked in the same atomic step as the write.
    pub fn expect(&mut self, key: impl Into<String>, value: Option<Value>) -> &mut Self {
        self.guards.insert(key.into(), value);
        self
    }

    /// Drops every key the stored session holds before the listed changes apply.
    pub fn clear(&mut self) -> &mut Self {
        self.clear = true;
        self.keys
            .retain(|_, change| !matches!(change, Change::Remove));
        self
    }

    /// Notes the user the session was bound to when the writer loaded it. Not a change: a
    /// hint for stores that keep a per-user index apart from the record (Redis), so they can
    /// keep that index's expiry ahead of the session's without reading the record first.
    pub fn loaded_by(&mut self, user: Option<String>) -> &mut Self {
        self.loaded_user = user;
        self
    }

    /// The user noted by [`loaded_by`](Self::loaded_by).
    pub fn loaded_user(&self) -> Option<&str> {
        self.loaded_user.as_deref()
    }

    /// Whether every stored key is dropped first.
    pub fn is_clear(&self) -> bool {
        self.clear
    }

    /// The per-key changes, in key order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = (&str, &Change)> {
        self.keys.iter().map(|(k, c)| (k.as_str(), c))
    }

    /// The keys set, with their values.
    pub fn sets(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.keys.iter().filter_map(|(k, c)| match c {
            Change::Set(v) => Some((k.as_str(), v)),
            _ => None,
        })
    }

    /// The keys removed.
    pub fn removals(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|(k, c)| match c {
            Change::Remove => Some(k.as_str()),
            _ => None,
        })
    }

    /// The keys incremented, with how much.
    pub fn increments(&self) -> impl Iterator<Item = (&str, i64)> {
        self.keys.iter().filter_map(|(k, c)| match c {
            Change::Increment(by) => Some((k.as_str(), *by)),
            _ => None,
        })
    }

    /// The values the change set expects keys to hold ([`expect`](Self::expect)); `None`:
    /// absent.
    pub fn guards(&self) -> impl ExactSizeIterator<Item = (&str, Option<&Value>)> {
        self.guards.iter().map(|(k, v)| (k.as_str(), v.as_ref()))
    }

    /// The new deadline.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }

    /// `true` when applying would change nothing but the deadline.
    pub fn is_empty(&self) -> bool {
        !self.clear && self.keys.is_empty()
    }

    /// Applies the data changes to `data` in memory, for stores that hold data they can edit
    /// in place under a lock, and tells why a store refused a change set: the guards are
    /// checked against `data` as it is, the increments against `data` after the clear.
    /// On an error `data` is left as it was.
    pub fn apply_to(&self, data: &mut Data) -> Result<(), Error> {
        let conflicts: Vec<(String, Option<Value>)> = self
            .guards
            .iter()
            .filter(|(key, expected)| data.get(key.as_str()) != expected.as_ref())
            .map(|(key, _)| (key.clone(), data.get(key).cloned()))
            .collect();
        if !conflicts.is_empty() {
            return Err(Error::Conflict { current: conflicts });
        }
        let mut sums = Vec::new();
        for (key, by) in self.increments() {
            let base = if self.clear { None } else { data.get(key) };
            sums.push((key, increment(key, base, by)?));
        }
        if self.clear {
            data.clear();
        }
        for (key, change) in &self.keys {
            match change {
                Change::Set(value) => {
                    data.insert(key.clone(), value.clone());
                }
                Change::Remove => {
                    data.remove(key);
                }
                Change::Increment(_) => {}
            }
        }
        for (key, sum) in sums {
            data.insert(key.to_owned(), Value::from(sum));
        }
        Ok(())
    }
}

/// `base + by` for an increment of `key`, the rule every store and the layer apply: a missing
/// key counts from 0; anything but an integer in the `i64` range is
/// [`Error::NotAnInteger`], a sum outside it [`Error::Overflow`].
///
/// ```
/// use sessionware_core::{Error, increment};
/// use serde_json::json;
///
/// assert_eq!(increment("n", None, 3).unwrap(), 3);
/// assert_eq!(increment("n", Some(&json!(2)), 3).unwrap(), 5);
/// assert!(matches!(increment("n", Some(&json!("x")), 1), Err(Error::NotAnInteger { .. })));
/// assert!(matches!(increment("n", Some(&json!(i64::MAX)), 1), Err(Error::Overflow { .. })));
/// ```
pub fn increment(key: &str, base: Option<&Value>, by: i64) -> Result<i64, Error> {
    let base = match base {
        None => 0,
        Some(value) => value.as_i64().ok_or_else(|| Error::NotAnInteger {
            key: key.to_owned(),
        })?,
    };
    base.checked_add(by).ok_or_else(|| Error::Overflow {
        key: key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clear_then_set() {
        let mut c = ChangeSet::new(OffsetDateTime::UNIX_EPOCH);
        c.remove("a").set("b", json!(1)).clear().set("c", json!(2));
        let mut data = Data::from([("a".into(), json!(0)), ("z".into(), json!(0))]);
        c.apply_to(&mut data).unwrap();
        assert_eq!(
            data,
            Data::from([("b".into(), json!(1)), ("c".into(), json!(2))])
        );
        assert!(c.is_clear());
        assert_eq!(c.removals().count(), 0);
    }

    #[test]
    fn increments_count_from_zero_and_refuse_what_they_cannot_add() {
        let mut data = Data::from([
            ("n".into(), json!(5)),
            ("s".into(), json!("5")),
            ("f".into(), json!(1.5)),
            ("big".into(), json!(i64::MAX)),
            ("huge".into(), json!(u64::MAX)),
        ]);
        let mut c = ChangeSet::new(OffsetDateTime::UNIX_EPOCH);
        c.increment("n", -7).increment("new", 3);
        c.apply_to(&mut data).unwrap();
        assert_eq!((&data["n"], &data["new"]), (&json!(-2), &json!(3)));
        let before = data.clone();
        for (key, by) in [("s", 1), ("f", 1), ("huge", 1)] {
            let mut c = ChangeSet::new(OffsetDateTime::UNIX_EPOCH);
            c.increment("n", 1).increment(key, by);
            let err = c.apply_to(&mut data).unwrap_err();
            assert!(
                matches!(err, Error::NotAnInteger { key: k } if k == key),
                "{key}"
            );
        }
        let mut c = ChangeSet::new(OffsetDateTime::UNIX_EPOCH);
        c.increment("big", 1);
        assert!(matches!(c.apply_to(&mut data), Err(Error::Overflow { .. })));
        assert_eq!(data, before, "a refused change set changes nothing");
        let mut c = ChangeSet::new(OffsetDateTime::UNIX_EPOCH);
        c.increment("s", 2).clear();
        c.apply_to(&mut data).unwrap();
        assert_eq!(
            data,
            Data::from([("s".into(), json!(2))]),
            "after a clear from 0"
        );
    }

    #[test]
    fn guards_compare_and_set() {
        let mut data = Data::from([("k".into(), json!([1]))]);
        let mut c = ChangeSet::new(OffsetDateTime::UNIX_EPOCH);
        c.expect("k", Some(json!([1]))).expect("absent", None);
        c.set("k", json!([1, 2]));
        c.apply_to(&mut data).unwrap();
        let Err(Error::Conflict { current }) = c.apply_to(&mut data) else {
            panic!("the second apply finds the key changed");
        };
        assert_eq!(current, [("k".to_owned(), Some(json!([1, 2])))]);
    }

    #[test]
    fn empty() {
        let mut c = ChangeSet::new(OffsetDateTime::UNIX_EPOCH);
        assert!(c.is_empty());
        c.loaded_by(Some("u".into()));
        assert!(c.is_empty(), "the loaded user is a hint, not a change");
        c.remove("k");
        assert!(!c.is_empty());
    }
}
