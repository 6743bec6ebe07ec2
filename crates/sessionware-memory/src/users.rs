//! The memory store's per-user index: user → ids of the sessions bound to them.
//!
//! Kept in step with the entries under the entry's shard lock (always taken first, so the two
//! locks never wait on each other in a cycle): sessions join it when created or bound, and leave
//! it when unbound, deleted, evicted or swept, so it never outgrows the live sessions.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, RandomState};
use std::sync::{Mutex, MutexGuard};

use crate::id_hash::IdHasher;

const SHARDS: usize = 16;

type Ids = HashSet<u128, BuildHasherDefault<IdHasher>>;
type Index = HashMap<Box<str>, Ids>;

pub(crate) struct Users {
    /// User ids come from the application, perhaps from a client: hash them with a key.
    hasher: RandomState,
    shards: Box<[Mutex<Index>]>,
}

impl Users {
    pub(crate) fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, user: &str) -> MutexGuard<'_, Index> {
        let i = self.hasher.hash_one(user) as usize % SHARDS;
        // Every change here is one map operation: a poisoned lock holds consistent data.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn add(&self, user: &str, key: u128) {
        self.shard(user).entry(user.into()).or_default().insert(key);
    }

    pub(crate) fn remove(&self, user: &str, key: u128) {
        let mut shard = self.shard(user);
        if let Some(ids) = shard.get_mut(user) {
            ids.remove(&key);
            if ids.is_empty() {
                shard.remove(user);
            }
        }
    }

    /// The ids indexed under `user`, copied so no lock is held while entries are read.
    pub(crate) fn ids(&self, user: &str) -> Vec<u128> {
        self.shard(user)
            .get(user)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Users with at least one indexed session, for tests of the index's bound.
    #[cfg(test)]
    pub(crate) fn indexed(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .values()
                    .map(HashSet::len)
                    .sum::<usize>()
            })
            .sum()
    }
}
