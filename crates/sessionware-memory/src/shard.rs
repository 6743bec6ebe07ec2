//! One shard of the memory store: a map from id to entry behind one lock.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Mutex, MutexGuard};

use sessionware_core::{Data, Error, Record, SessionId, from_unix_ms, to_unix_ms};

use crate::id_hash::IdHasher;
use crate::users::Users;

pub(crate) type Map = HashMap<u128, Entry, BuildHasherDefault<IdHasher>>;

/// The low 64 bits pick the bucket inside a shard, the high bits pick the shard.
pub(crate) fn key(id: &SessionId) -> u128 {
    u128::from_le_bytes(*id.as_bytes())
}

/// A stored session, kept compact: times as Unix milliseconds, and the user and the data (one
/// JSON object) packed into one allocation, so a map bucket is 48 bytes.
pub(crate) struct Entry {
    pub(crate) created_ms: i64,
    pub(crate) expires_ms: i64,
    /// `[0]` then the JSON for no user; `[1]`, the user's length (u32 LE), the user, then the
    /// JSON for a bound session.
    blob: Box<[u8]>,
}

impl Entry {
    pub(crate) fn encode(record: &Record) -> Result<Self, Error> {
        Ok(Self {
            created_ms: to_unix_ms(record.created_at),
            expires_ms: to_unix_ms(record.expires_at),
            blob: pack(record.user.as_deref(), &encode_data(&record.data)?),
        })
    }

    pub(crate) fn decode(&self, id: SessionId) -> Result<Record, Error> {
        let (user, data) = self.unpack()?;
        Ok(Record {
            id,
            data: decode_data(data)?,
            user: user.map(String::from),
            created_at: from_ms(self.created_ms)?,
            expires_at: from_ms(self.expires_ms)?,
        })
    }

    pub(crate) fn is_live(&self, now_ms: i64) -> bool {
        self.expires_ms > now_ms
    }

    /// The bound user, if the entry is readable and bound.
    pub(crate) fn user(&self) -> Option<&str> {
        self.unpack().ok().and_then(|(user, _)| user)
    }

    pub(crate) fn index(&self, users: &Users, key: u128) {
        if let Some(user) = self.user() {
            users.add(user, key);
        }
    }

    pub(crate) fn unindex(&self, users: &Users, key: u128) {
        if let Some(user) = self.user() {
            users.remove(user, key);
        }
    }

    pub(crate) fn unpack(&self) -> Result<(Option<&str>, &str), Error> {
        match self.blob.split_first() {
            Some((0, data)) => Ok((None, text(data)?)),
            Some((1, rest)) if rest.len() >= 4 => {
                let (len, rest) = rest.split_at(4);
                let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
                let (user, data) = rest
                    .split_at_checked(len)
                    .ok_or_else(|| Error::corrupt("user"))?;
                Ok((Some(text(user)?), text(data)?))
            }
            _ => Err(Error::corrupt("bad entry header")),
        }
    }

    /// Replaces the user, the data, or both.
    pub(crate) fn repack(
        &mut self,
        user: Option<Option<&str>>,
        data: Option<&str>,
    ) -> Result<(), Error> {
        let (old_user, old_data) = self.unpack()?;
        let blob = pack(user.unwrap_or(old_user), data.unwrap_or(old_data));
        self.blob = blob;
        Ok(())
    }
}

fn text(bytes: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(bytes).map_err(Error::corrupt)
}

fn pack(user: Option<&str>, data: &str) -> Box<[u8]> {
    let mut blob = Vec::with_capacity(1 + user.map_or(0, |u| 4 + u.len()) + data.len());
    match user {
        None => blob.push(0),
        Some(user) => {
            blob.push(1);
            // Users are application ids; one over 4 GiB is not a case worth a branch.
            blob.extend_from_slice(&(user.len() as u32).to_le_bytes());
            blob.extend_from_slice(user.as_bytes());
        }
    }
    blob.extend_from_slice(data.as_bytes());
    blob.into_boxed_slice()
}

pub(crate) fn encode_data(data: &Data) -> Result<String, Error> {
    serde_json::to_string(data).map_err(Error::Encode)
}

pub(crate) fn decode_data(text: &str) -> Result<Data, Error> {
    serde_json::from_str(text).map_err(Error::corrupt)
}

fn from_ms(ms: i64) -> Result<sessionware_core::time::OffsetDateTime, Error> {
    from_unix_ms(ms).ok_or_else(|| Error::corrupt("a time out of range"))
}

pub(crate) struct Shard(Mutex<Map>);

impl Shard {
    pub(crate) fn new() -> Self {
        Self(Mutex::new(Map::default()))
    }

    /// A panic while a shard was locked cannot leave an entry half-written (every change is a
    /// single map operation), so a poisoned lock is safe to keep using.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Map> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Drops the expired entries of one locked shard, and their index entries; returns how many.
pub(crate) fn drop_expired(map: &mut Map, users: &Users, now_ms: i64) -> usize {
    let before = map.len();
    map.retain(|k, e| {
        let live = e.is_live(now_ms);
        if !live {
            e.unindex(users, *k);
        }
        live
    });
    before - map.len()
}

/// Evicts the anonymous entry with the earliest deadline, or with `bound_too` the earliest of
/// all; returns whether one was evicted.
pub(crate) fn evict_earliest(map: &mut Map, users: &Users, bound_too: bool) -> bool {
    let victim = map
        .iter()
        .filter(|(_, e)| bound_too || e.user().is_none())
        .min_by_key(|(_, e)| e.expires_ms)
        .map(|(k, _)| *k);
    match victim.and_then(|k| map.remove(&k).map(|e| (k, e))) {
        Some((k, e)) => {
            e.unindex(users, k);
            true
        }
        None => false,
    }
}
