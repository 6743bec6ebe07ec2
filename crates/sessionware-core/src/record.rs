use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use time::OffsetDateTime;

use crate::SessionId;

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
/// let mut data = Data::from([("flash".into(), json!("hi")), ("theme".into(), json!("dark"))]);
/// changes.apply_to(&mut data);
/// assert_eq!(data, Data::from([("count".into(), json!(2)), ("theme".into(), json!("dark"))]));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeSet {
    clear: bool,
    keys: BTreeMap<String, Change>,
    loaded_user: Option<String>,
    expires_at: OffsetDateTime,
}

impl ChangeSet {
    /// An empty change set that moves the deadline to `expires_at`.
    pub fn new(expires_at: OffsetDateTime) -> Self {
        Self {
            clear: false,
            keys: BTreeMap::new(),
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

    /// Drops every key the stored session holds before the listed changes apply.
    pub fn clear(&mut self) -> &mut Self {
        self.clear = true;
        self.keys
            .retain(|_, change| matches!(change, Change::Set(_)));
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
            Change::Remove => None,
        })
    }

    /// The keys removed.
    pub fn removals(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|(k, c)| match c {
            Change::Remove => Some(k.as_str()),
            Change::Set(_) => None,
        })
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
    /// in place under a lock.
    pub fn apply_to(&self, data: &mut Data) {
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
            }
        }
    }
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
        c.apply_to(&mut data);
        assert_eq!(
            data,
            Data::from([("b".into(), json!(1)), ("c".into(), json!(2))])
        );
        assert!(c.is_clear());
        assert_eq!(c.removals().count(), 0);
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
