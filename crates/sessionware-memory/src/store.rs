use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sessionware_core::time::Duration as TimeDuration;

use sessionware_core::time::OffsetDateTime;
use sessionware_core::{
    ChangeSet, Clock, Error, ExpiryPolicy, Loaded, Record, SessionId, SessionStore, SystemClock,
    to_unix_ms,
};
use tokio::sync::oneshot;

use crate::shard::{self, Entry, Shard};
use crate::users::Users;

const SHARDS: usize = 64;

/// The in-process store. Cheap to clone: clones share the same sessions.
///
/// See the [crate docs](crate) for sharding, the capacity bound and the sweeper.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Shard]>,
    users: Users,
    /// Entries held, live or not yet swept.
    held: AtomicUsize,
    capacity: usize,
    clock: Arc<dyn Clock>,
    /// Dropped with the store, which tells the sweeper to stop.
    _stop: Option<oneshot::Sender<()>>,
}

/// Settings for a [`MemoryStore`]; from [`MemoryStore::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build`"]
pub struct MemoryStoreBuilder {
    capacity: usize,
    sweep_interval: Option<Duration>,
    clock: Arc<dyn Clock>,
}

impl MemoryStoreBuilder {
    /// The most sessions held at once (default [`MemoryStore::DEFAULT_CAPACITY`]). At least 1.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// How often the background task removes expired sessions (default one minute); `None`
    /// starts no task, and expired sessions are removed only when their shard is full.
    pub fn sweep_interval(mut self, interval: impl Into<Option<TimeDuration>>) -> Self {
        self.sweep_interval = interval
            .into()
            .and_then(|d| Duration::try_from(d).ok())
            .filter(|d| !d.is_zero());
        self
    }

    /// The clock the sweeper and [`MemoryStore::len`] read (default the system clock). Request
    /// paths use the time the layer passes in.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the store, starting the sweeper if there is a sweep interval and a Tokio runtime.
    pub fn build(self) -> MemoryStore {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let (stop, stopped) = match (self.sweep_interval, &runtime) {
            (Some(_), Some(_)) => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        let store = MemoryStore {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Shard::new()).collect(),
                users: Users::new(),
                held: AtomicUsize::new(0),
                capacity: self.capacity,
                clock: self.clock,
                _stop: stop,
            }),
        };
        if let (Some(period), Some(runtime), Some(stopped)) =
            (self.sweep_interval, runtime, stopped)
        {
            runtime.spawn(sweeper(Arc::downgrade(&store.inner), period, stopped));
        }
        store
    }
}

/// Holds only a weak reference, so the store is freed as soon as the application drops it;
/// the dropped stop sender ends the task at once rather than at its next tick.
async fn sweeper(store: Weak<Inner>, period: Duration, mut stopped: oneshot::Receiver<()>) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = ticks.tick() => {}
        }
        let Some(inner) = store.upgrade() else { return };
        inner.sweep();
    }
}

impl MemoryStore {
    /// Default capacity: one million sessions.
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    /// A store with the default settings. Inside a Tokio runtime this starts the sweeper.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Settings for a store.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            capacity: Self::DEFAULT_CAPACITY,
            sweep_interval: Some(Duration::from_secs(60)),
            clock: Arc::new(SystemClock),
        }
    }

    /// Live sessions: those whose deadline has not passed by the store's clock. Counts every
    /// shard, so it costs time in proportion to the number of sessions.
    pub fn len(&self) -> usize {
        let now = to_unix_ms(self.inner.clock.now());
        self.inner
            .shards
            .iter()
            .map(|s| s.lock().values().filter(|e| e.is_live(now)).count())
            .sum()
    }

    /// `true` when no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most sessions the store holds.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Removes expired sessions now, as the sweeper does; returns how many.
    pub fn sweep(&self) -> usize {
        self.inner.sweep()
    }

    fn shard_index(&self, id: &SessionId) -> usize {
        (shard::key(id) >> 64) as usize % SHARDS
    }

    fn shard(&self, id: &SessionId) -> &Shard {
        &self.inner.shards[self.shard_index(id)]
    }

    /// Removes the entry `id` if `pred` holds for it, index entry included.
    fn remove_if(&self, id: &SessionId, pred: impl FnOnce(&Entry) -> bool) -> Option<Entry> {
        let k = shard::key(id);
        let mut map = self.shard(id).lock();
        if !map.get(&k).is_some_and(pred) {
            return None;
        }
        let entry = map.remove(&k)?;
        entry.unindex(&self.inner.users, k);
        self.inner.held.fetch_sub(1, Ordering::Relaxed);
        Some(entry)
    }

    /// Frees one place at least: the expired sessions of the first shard (from `start` on) that
    /// has any, or else the anonymous session with the earliest deadline of the first shard
    /// holding one; only when every session is bound to a user does a signed-in user lose one
    /// (the earliest deadline of the first shard holding any). Finding that out costs a look at
    /// every entry, paid only by a store that is full of signed-in users. So a flood of anonymous sessions (crawlers,
    /// form pages) never signs users out. One lock at a time, so two creates never wait on
    /// each other in a cycle.
    fn make_room(&self, start: usize, now_ms: i64) {
        let users = &self.inner.users;
        for bound_too in [false, true] {
            for i in 0..SHARDS {
                let mut map = self.inner.shards[(start + i) % SHARDS].lock();
                let mut freed = shard::drop_expired(&mut map, users, now_ms);
                if freed == 0 && shard::evict_earliest(&mut map, users, bound_too) {
                    freed = 1;
                }
                if freed > 0 {
                    self.inner.held.fetch_sub(freed, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    /// Sessions in the per-user index.
    #[cfg(test)]
    pub(crate) fn indexed(&self) -> usize {
        self.inner.users.indexed()
    }

    /// Entries held, live or not yet swept.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.inner.held.load(Ordering::Relaxed)
    }

    /// Replaces the stored data of `id` with text that is not JSON, for the conformance suites
    /// (feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn corrupt(&self, id: &SessionId) {
        if let Some(e) = self.shard(id).lock().get_mut(&shard::key(id)) {
            // An entry the store wrote always unpacks.
            let _ = e.repack(None, Some("{not json"));
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("held", &self.inner.held.load(Ordering::Relaxed))
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

impl Inner {
    fn sweep(&self) -> usize {
        let now = to_unix_ms(self.clock.now());
        let mut removed = 0;
        for shard in self.shards.iter() {
            let n = shard::drop_expired(&mut shard.lock(), &self.users, now);
            self.held.fetch_sub(n, Ordering::Relaxed);
            removed += n;
        }
        removed
    }
}

impl SessionStore for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    /// Exact: every shard is counted under its lock, so it costs time in proportion to the
    /// sessions held (about 0.1 s per million).
    async fn count(&self, now: OffsetDateTime) -> Result<Option<u64>, Error> {
        let now = to_unix_ms(now);
        let live: usize = self
            .inner
            .shards
            .iter()
            .map(|s| s.lock().values().filter(|e| e.is_live(now)).count())
            .sum();
        Ok(Some(live as u64))
    }

    async fn create(&self, record: &Record) -> Result<SessionId, Error> {
        let entry = Entry::encode(record)?;
        let mut id = record.id;
        if self.inner.held.load(Ordering::Relaxed) >= self.inner.capacity {
            let now = to_unix_ms(self.inner.clock.now()).min(to_unix_ms(record.created_at));
            self.make_room(self.shard_index(&id), now);
        }
        loop {
            let mut map = self.shard(&id).lock();
            let k = shard::key(&id);
            if map.contains_key(&k) {
                drop(map);
                id = SessionId::generate()?;
                continue;
            }
            entry.index(&self.inner.users, k);
            map.insert(k, entry);
            self.inner.held.fetch_add(1, Ordering::Relaxed);
            return Ok(id);
        }
    }

    async fn load(&self, id: &SessionId, now: OffsetDateTime) -> Result<Option<Record>, Error> {
        let map = self.shard(id).lock();
        match map.get(&shard::key(id)) {
            Some(e) if e.is_live(to_unix_ms(now)) => e.decode(*id).map(Some),
            _ => Ok(None),
        }
    }

    /// Reads and refreshes under one lock: in memory a refresh costs nothing worth throttling,
    /// but the policy's interval still decides, so the cookie is not re-sent on every read.
    async fn load_refreshed(
        &self,
        id: &SessionId,
        policy: &ExpiryPolicy,
        now: OffsetDateTime,
    ) -> Result<Option<Loaded>, Error> {
        let mut map = self.shard(id).lock();
        let Some(e) = map
            .get_mut(&shard::key(id))
            .filter(|e| e.is_live(to_unix_ms(now)))
        else {
            return Ok(None);
        };
        let mut record = e.decode(*id)?;
        let next = policy.refreshed_deadline(record.created_at, record.expires_at, now);
        if let Some(deadline) = next {
            e.expires_ms = to_unix_ms(deadline);
            record.expires_at = deadline;
        }
        Ok(Some(Loaded {
            record,
            refreshed: next.is_some(),
        }))
    }

    async fn apply(
        &self,
        id: &SessionId,
        changes: &ChangeSet,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        let mut map = self.shard(id).lock();
        let Some(e) = map
            .get_mut(&shard::key(id))
            .filter(|e| e.is_live(to_unix_ms(now)))
        else {
            return Ok(false);
        };
        if changes.is_clear() || changes.keys().len() > 0 {
            // A clear needs the stored data only to check what the change set expects.
            let mut data = if changes.is_clear() && changes.guards().len() == 0 {
                Default::default()
            } else {
                shard::decode_data(e.unpack()?.1)?
            };
            // Checked and applied under the shard's lock: increments and compare-and-set are
            // atomic here because nothing else touches the entry meanwhile.
            changes.apply_to(&mut data)?;
            e.repack(None, Some(&shard::encode_data(&data)?))?;
        }
        e.expires_ms = to_unix_ms(changes.expires_at());
        Ok(true)
    }

    async fn touch(
        &self,
        id: &SessionId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        let mut map = self.shard(id).lock();
        match map
            .get_mut(&shard::key(id))
            .filter(|e| e.is_live(to_unix_ms(now)))
        {
            Some(e) => {
                e.expires_ms = to_unix_ms(expires_at);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Under the locks of both shards (taken in shard order), so that no other call ever sees
    /// both ids, or neither while the session is live.
    async fn rekey(
        &self,
        old: &SessionId,
        expected_user: Option<&str>,
        record: &Record,
        now: OffsetDateTime,
    ) -> Result<Option<SessionId>, Error> {
        let entry = Entry::encode(record)?;
        let old_k = shard::key(old);
        let now = to_unix_ms(now);
        let mut id = record.id;
        loop {
            let k = shard::key(&id);
            let (i, j) = (self.shard_index(old), self.shard_index(&id));
            let mut first = self.inner.shards[i.min(j)].lock();
            let mut second = (i != j).then(|| self.inner.shards[i.max(j)].lock());
            let (old_map, new_map) = match second.as_deref_mut() {
                None => (&mut *first, None),
                Some(other) if i < j => (&mut *first, Some(other)),
                Some(other) => (other, Some(&mut *first)),
            };
            let live = old_map
                .get(&old_k)
                .is_some_and(|e| e.is_live(now) && e.user() == expected_user);
            if !live {
                return Ok(None);
            }
            let taken = match &new_map {
                Some(map) => map.contains_key(&k),
                None => old_map.contains_key(&k),
            };
            if taken {
                drop((first, second));
                id = SessionId::generate()?;
                continue;
            }
            if let Some(e) = old_map.remove(&old_k) {
                e.unindex(&self.inner.users, old_k);
            }
            entry.index(&self.inner.users, k);
            new_map.unwrap_or(old_map).insert(k, entry);
            return Ok(Some(id));
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<(), Error> {
        self.remove_if(id, |_| true);
        Ok(())
    }

    async fn list_user(&self, user: &str, now: OffsetDateTime) -> Result<Vec<Record>, Error> {
        let now = to_unix_ms(now);
        let mut records = Vec::new();
        for k in self.inner.users.ids(user) {
            let id = SessionId::from_bytes(k.to_le_bytes());
            let map = self.shard(&id).lock();
            if let Some(e) = map
                .get(&k)
                .filter(|e| e.is_live(now) && e.user() == Some(user))
            {
                records.push(e.decode(id)?);
            }
        }
        Ok(records)
    }

    async fn delete_user(
        &self,
        user: &str,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
    ) -> Result<usize, Error> {
        let now = to_unix_ms(now);
        let keep = keep.map(shard::key);
        let mut seen = std::collections::HashSet::new();
        let mut ended = 0;
        // A `rekey` that ran between a listing and the removal of its old id has put the new
        // id in the index: list again until a listing holds nothing new.
        loop {
            let fresh: Vec<u128> = self
                .inner
                .users
                .ids(user)
                .into_iter()
                .filter(|k| Some(*k) != keep && seen.insert(*k))
                .collect();
            if fresh.is_empty() {
                return Ok(ended);
            }
            for k in fresh {
                let id = SessionId::from_bytes(k.to_le_bytes());
                if let Some(e) = self.remove_if(&id, |e| e.user() == Some(user)) {
                    ended += usize::from(e.is_live(now));
                }
            }
        }
    }
}
