//! The near cache: session records kept in process, next to the pool connection each session's
//! commands go through, and kept coherent by Redis's client tracking on that connection.
//!
//! How it stays right, in the order a reader needs it:
//!
//! - **Affinity.** Every command for one session goes through one pool connection (chosen from
//!   the id). That connection runs `CLIENT TRACKING ON NOLOOP`: Redis remembers the keys it
//!   reads and pushes an invalidation on it when anyone else changes one, while the store's own
//!   writes on it are not echoed back. The write scripts read their keys after their writes
//!   (once per call), so a key stays tracked after the store wrote it.
//! - **Ordering without a listener task.** fred hands invalidations and reconnections to
//!   broadcast channels, synchronously, before it delivers any later reply of that connection.
//!   Every lookup and every fill drains them first, so a reply is never acted on before the
//!   invalidations that came ahead of it on the wire.
//! - **Fills that raced a change.** A fill takes a [`Ticket`] before its command goes out; an
//!   invalidation of the same shard drained meanwhile, or a reconnection, voids it. The
//!   store's own writes are ordered by a version the scripts keep in the hash (`v`), so of two
//!   concurrent writes the later one's state is what stays cached. A write the cache cannot
//!   follow (it did not hold the version before it) leaves a floor: no record is served, and
//!   only a fill at that version or later replaces it.
//! - **A connection that may have missed something.** A reconnection (a new connection has no
//!   tracking), a Cluster topology change, or an invalidation channel that overflowed moves
//!   the connection to a new epoch: every entry of the old one is dropped, and until tracking
//!   is on again the connection's sessions bypass the cache. A connection fred does not see as
//!   connected serves nothing from the cache.
//! - **Deadlines.** An entry past its session's deadline is never served.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::{ClientLike as _, EventInterface as _, TrackingInterface as _};
use fred::types::client::Invalidation;
use fred::types::config::Server;
use fred::types::{ClientState, ClusterStateChange};
use sessionware_core::time::OffsetDateTime;
use sessionware_core::{ChangeSet, Record, SessionId};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::TryRecvError;

/// Shards of the map, each behind its own lock and with its own generation; a power of two.
/// Many, because a shard's generation is what an invalidation bumps: a fill or a write in
/// flight on any session of that shard is then dropped, so fewer sessions per shard means
/// fewer such false conflicts when other instances write a lot.
const SHARDS: usize = 256;

/// What an entry costs beyond its fields' bytes: the map slot, the record, its strings' and
/// values' headers. An estimate that errs high, so the bound holds.
const ENTRY_OVERHEAD: usize = 256;
/// What one data key costs beyond its name and encoded value.
pub(crate) const FIELD_OVERHEAD: usize = 96;

/// How often an otherwise idle connection is asked whether it is still there.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// The longest pause between two attempts to turn tracking back on.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

/// Counters of what the cache did since the store was built; see
/// [`RedisStore::near_cache_stats`](crate::RedisStore::near_cache_stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct NearCacheStats {
    /// Sessions held now.
    pub entries: usize,
    /// Estimated bytes they take (records, keys, values and bookkeeping).
    pub bytes: usize,
    /// The bound on `bytes`.
    pub capacity: usize,
    /// Loads answered from the cache, with no command sent.
    pub hits: u64,
    /// Loads that went to Redis.
    pub misses: u64,
    /// Session keys Redis said another client changed.
    pub invalidations: u64,
    /// Times a connection's entries were all dropped because it may have missed an
    /// invalidation (a reconnection, a topology change, an overflowing channel).
    pub resets: u64,
    /// Pool connections whose sessions are cached now (tracking on, connected).
    pub tracking_connections: usize,
}

/// A fill's claim, taken before its command goes out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    conn: usize,
    state: u64,
    generation: u64,
}

/// What a lookup found.
pub(crate) enum Lookup {
    Hit(Record),
    /// Not cached; the ticket is `None` when the connection's sessions bypass the cache.
    Miss(Option<Ticket>),
}

pub(crate) struct NearCache {
    prefix: Vec<u8>,
    shards: Box<[Mutex<Shard>]>,
    shard_budget: usize,
    capacity: usize,
    /// The store's command timeout, for the heartbeat.
    timeout: Duration,
    conns: Box<[Conn]>,
    hasher: std::collections::hash_map::RandomState,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    resets: AtomicU64,
    /// The same counts through the `metrics` facade (no-op handles without a recorder).
    counters: Counters,
    this: Weak<NearCache>,
}

struct Counters {
    hits: metrics::Counter,
    misses: metrics::Counter,
    invalidations: metrics::Counter,
}

impl Counters {
    fn new() -> Self {
        metrics::describe_counter!(
            "sessionware_near_cache_hits_total",
            "Session reads the Redis near cache answered without a round trip."
        );
        metrics::describe_counter!(
            "sessionware_near_cache_misses_total",
            "Session reads the Redis near cache passed on to Redis."
        );
        metrics::describe_counter!(
            "sessionware_near_cache_invalidations_total",
            "Cached sessions dropped because Redis reported a change by another client."
        );
        Self {
            hits: metrics::counter!("sessionware_near_cache_hits_total", "store" => "redis"),
            misses: metrics::counter!("sessionware_near_cache_misses_total", "store" => "redis"),
            invalidations: metrics::counter!(
                "sessionware_near_cache_invalidations_total",
                "store" => "redis"
            ),
        }
    }
}

struct Conn {
    client: Client,
    /// `epoch << 1 | tracking`: one word, so turning tracking on can be refused atomically by
    /// a reconnection seen in between.
    state: AtomicU64,
    reenabling: AtomicBool,
    events: Mutex<Events>,
}

struct Events {
    closed: bool,
    invalidations: Receiver<Invalidation>,
    reconnects: Receiver<Server>,
    topology: Receiver<Vec<ClusterStateChange>>,
}

#[derive(Default)]
struct Shard {
    map: HashMap<SessionId, Entry>,
    /// Insertion order for eviction; stale stamps are skipped and compacted away.
    order: VecDeque<(SessionId, u64)>,
    bytes: usize,
    /// Bumped by every invalidation and local delete that lands here: voids open tickets.
    generation: u64,
    next_stamp: u64,
}

struct Entry {
    /// `None`: a floor. The store wrote `version` but the cache could not follow the write,
    /// so nothing is served, and a fill of an older version (a reply taken in late) is refused.
    record: Option<Record>,
    version: u64,
    bytes: usize,
    state: u64,
    stamp: u64,
}

const TRACKING: u64 = 1;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing under these locks can leave the data half-changed; a panic elsewhere while one
    // was held does not make it wrong.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl NearCache {
    /// A cache over `clients` (the pool's, in order), subscribed to their events. Tracking is
    /// off until [`start`](Self::start) turns it on.
    pub(crate) fn new(
        clients: &[Client],
        prefix: &str,
        capacity: usize,
        timeout: Duration,
    ) -> Arc<Self> {
        let conns = clients
            .iter()
            .map(|client| Conn {
                events: Mutex::new(Events {
                    closed: false,
                    invalidations: client.invalidation_rx(),
                    reconnects: client.reconnect_rx(),
                    topology: client.cluster_change_rx(),
                }),
                client: client.clone(),
                state: AtomicU64::new(0),
                reenabling: AtomicBool::new(false),
            })
            .collect();
        Arc::new_cyclic(|this| Self {
            prefix: prefix.as_bytes().to_vec(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_budget: capacity / SHARDS,
            capacity,
            timeout,
            conns,
            hasher: std::collections::hash_map::RandomState::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            counters: Counters::new(),
            this: this.clone(),
        })
    }

    /// Turns tracking on, on every connection. An error means the server refused it (no
    /// RESP3, a Redis before 6): the caller drops the cache.
    pub(crate) async fn start(&self) -> Result<(), fred::error::Error> {
        for index in 0..self.conns.len() {
            self.watch(index);
        }
        for (index, conn) in self.conns.iter().enumerate() {
            self.sync(index);
            let state = conn.state.load(Ordering::Acquire);
            track(&conn.client).await?;
            self.sync(index);
            let _ = conn.state.compare_exchange(
                state,
                state | TRACKING,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        Ok(())
    }

    fn spread(&self, id: &SessionId) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        hasher.write(id.as_bytes());
        hasher.finish()
    }

    /// The pool connection all of `id`'s commands go through.
    pub(crate) fn conn_of(&self, id: &SessionId) -> usize {
        self.place(id).0
    }

    /// `id`'s connection and shard, from one hash of it.
    fn place(&self, id: &SessionId) -> (usize, &Mutex<Shard>) {
        let spread = self.spread(id);
        let conn = ((spread >> 8) % self.conns.len() as u64) as usize;
        (conn, &self.shards[(spread as usize) & (SHARDS - 1)])
    }

    /// The client of connection `conn`.
    pub(crate) fn client(&self, conn: usize) -> &Client {
        &self.conns[conn].client
    }

    /// The live cached record of `id`, or a ticket to fill it.
    pub(crate) fn lookup(&self, id: &SessionId, now: OffsetDateTime) -> Lookup {
        let (conn, shard) = self.place(id);
        let state = self.sync(conn);
        if state & TRACKING == 0 || self.conns[conn].client.state() != ClientState::Connected {
            self.misses.fetch_add(1, Ordering::Relaxed);
            self.counters.misses.increment(1);
            return Lookup::Miss(None);
        }
        let mut shard = lock(shard);
        if let Some(entry) = shard.map.get(id) {
            if entry.state != state {
                shard.remove(id);
            } else if let Some(record) = &entry.record {
                if record.expires_at > now {
                    let record = record.clone();
                    drop(shard);
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    self.counters.hits.increment(1);
                    return Lookup::Hit(record);
                }
                // Past its deadline; the version stays known.
                shard.lower_to_floor(id);
            }
        }
        let generation = shard.generation;
        drop(shard);
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.counters.misses.increment(1);
        Lookup::Miss(Some(Ticket {
            conn,
            state,
            generation,
        }))
    }

    /// A ticket for a write to `id`, and the version of its cached record (`None`: not
    /// cached); no ticket when its connection bypasses the cache.
    pub(crate) fn before_write(&self, id: &SessionId) -> Option<(Ticket, Option<u64>)> {
        let (conn, shard) = self.place(id);
        let state = self.sync(conn);
        if state & TRACKING == 0 {
            return None;
        }
        let shard = lock(shard);
        let version = shard
            .map
            .get(id)
            .filter(|entry| entry.state == state && entry.record.is_some())
            .map(|entry| entry.version);
        let ticket = Ticket {
            conn,
            state,
            generation: shard.generation,
        };
        Some((ticket, version))
    }

    /// Whether a ticket still holds, with the shard locked for the caller's change.
    fn redeem(&self, ticket: Ticket, id: &SessionId) -> Option<MutexGuard<'_, Shard>> {
        let state = self.sync(ticket.conn);
        if state != ticket.state || state & TRACKING == 0 {
            return None;
        }
        let shard = lock(self.place(id).1);
        (shard.generation == ticket.generation).then_some(shard)
    }

    /// Caches what a load read, unless something voided the ticket meanwhile.
    pub(crate) fn fill(&self, ticket: Ticket, record: &Record, version: u64, bytes: usize) {
        let id = record.id;
        let Some(mut shard) = self.redeem(ticket, &id) else {
            return;
        };
        if let Some(entry) = shard.map.get(&id) {
            if entry.state == ticket.state && entry.version > version {
                return;
            }
        }
        shard.insert(
            id,
            Some(record.clone()),
            version,
            ENTRY_OVERHEAD + bytes,
            ticket.state,
        );
        shard.evict_to(self.shard_budget);
    }

    /// Brings the cached record of `id` up to a write the store made, which left the hash at
    /// `version`; `added` is the estimated size of what the write set. When the cache did not
    /// hold the state just before that write, the entry becomes a floor at `version`: nothing
    /// is served until a load or a later write's whole hash fills it.
    ///
    /// The ticket's generation is not asked for: what voids it (another client's change, a
    /// delete) removed the entry, so a write that lands on a cached version `version - 1`
    /// was made on the state the entry holds. Voiding on the store's own writes instead made a
    /// session many requests write at once fall out of the cache for good, each write's
    /// reply voiding the tickets of the ones in flight beside it.
    pub(crate) fn after_write(
        &self,
        ticket: Option<Ticket>,
        id: &SessionId,
        version: u64,
        change: impl FnOnce(&mut Record) -> bool,
        added: usize,
    ) {
        let Some(ticket) = ticket else {
            return;
        };
        let state = self.sync(ticket.conn);
        if state != ticket.state || state & TRACKING == 0 {
            // A reset dropped the connection's entries and voided its tickets already.
            return;
        }
        let mut guard = lock(self.place(id).1);
        let shard = &mut *guard;
        let followed = match shard.map.get_mut(id).filter(|entry| entry.state == state) {
            // A later write's reply, or a fill that read past this write, came first.
            Some(entry) if entry.version >= version => return,
            Some(Entry {
                record: Some(record),
                version: held,
                bytes,
                ..
            }) if *held + 1 == version => {
                change(record) && {
                    *held = version;
                    *bytes += added;
                    true
                }
            }
            _ => false,
        };
        if followed {
            shard.bytes += added;
        } else {
            shard.floor(id, version, state);
        }
        shard.evict_to(self.shard_budget);
    }

    /// Drops `id` and voids every open ticket of its shard: the store deleted or moved it.
    pub(crate) fn forget(&self, id: &SessionId) {
        let mut shard = lock(self.place(id).1);
        shard.generation += 1;
        shard.remove(id);
    }

    pub(crate) fn stats(&self) -> NearCacheStats {
        let (mut entries, mut bytes) = (0, 0);
        for shard in self.shards.iter() {
            let shard = lock(shard);
            entries += shard.map.values().filter(|e| e.record.is_some()).count();
            bytes += shard.bytes;
        }
        let tracking_connections = (0..self.conns.len())
            .filter(|&conn| {
                self.sync(conn) & TRACKING != 0
                    && self.conns[conn].client.state() == ClientState::Connected
            })
            .count();
        NearCacheStats {
            entries,
            bytes,
            capacity: self.capacity,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            resets: self.resets.load(Ordering::Relaxed),
            tracking_connections,
        }
    }

    /// Takes in what fred delivered for connection `conn` so far; returns its state after.
    fn sync(&self, conn: usize) -> u64 {
        let slot = &self.conns[conn];
        let mut lost = false;
        let reconnected;
        {
            let mut events = lock(&slot.events);
            if events.closed {
                return slot.state.load(Ordering::Acquire);
            }
            let (r, r_closed) = drained(&mut events.reconnects);
            let (t, t_closed) = drained(&mut events.topology);
            reconnected = r || t;
            let mut closed = r_closed || t_closed;
            loop {
                match events.invalidations.try_recv() {
                    Ok(invalidation) => self.invalidate(&invalidation),
                    Err(TryRecvError::Lagged(_)) => lost = true,
                    Err(TryRecvError::Closed) => {
                        closed = true;
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            if closed {
                // The client quit (fred closes its receivers then): nothing it may have
                // missed will ever be known, so its sessions bypass the cache for good.
                events.closed = true;
                drop(events);
                self.reset(conn, Reset::Closed);
                return slot.state.load(Ordering::Acquire);
            }
        }
        if reconnected {
            self.reset(conn, Reset::Reconnected);
        } else if lost {
            self.reset(conn, Reset::Lagged);
        }
        slot.state.load(Ordering::Acquire)
    }

    fn invalidate(&self, invalidation: &Invalidation) {
        for key in &invalidation.keys {
            let Some(id) = key
                .as_bytes()
                .strip_prefix(self.prefix.as_slice())
                .and_then(|rest| std::str::from_utf8(rest).ok())
                .and_then(|rest| rest.parse::<SessionId>().ok())
            else {
                // A user's index, or a key of someone else's under a shared connection.
                continue;
            };
            self.invalidations.fetch_add(1, Ordering::Relaxed);
            self.counters.invalidations.increment(1);
            self.forget(&id);
        }
    }

    /// Moves `conn` to a new epoch (dropping its entries); after a reconnection, with
    /// tracking off until it is turned back on.
    fn reset(&self, conn: usize, why: Reset) {
        let slot = &self.conns[conn];
        let _ = slot
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                let tracking = match why {
                    Reset::Lagged => state & TRACKING,
                    Reset::Reconnected | Reset::Closed => 0,
                };
                Some((((state >> 1) + 1) << 1) | tracking)
            });
        self.resets.fetch_add(1, Ordering::Relaxed);
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            shard.generation += 1;
            let stale: Vec<SessionId> = shard
                .map
                .iter()
                .filter(|(id, _)| self.conn_of(id) == conn)
                .map(|(id, _)| *id)
                .collect();
            for id in stale {
                shard.remove(&id);
            }
        }
        if why == Reset::Reconnected {
            self.reenable(conn);
        }
    }

    /// Takes in connection `conn`'s events as they come, not only at the next lookup: so
    /// that tracking is turned back on right after a reconnection, and invalidations for an
    /// idle connection do not pile up until its channel overflows. Its own receivers only
    /// wake it; the ones that count are drained by [`sync`](Self::sync), under its lock.
    fn watch(&self, conn: usize) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let client = &self.conns[conn].client;
        let (mut invalidations, mut reconnects, mut topology) = (
            client.invalidation_rx(),
            client.reconnect_rx(),
            client.cluster_change_rx(),
        );
        let this = self.this.clone();
        let timeout = self.timeout;
        runtime.spawn(async move {
            let mut heartbeat = tokio::time::interval(HEARTBEAT);
            heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let woken = tokio::select! {
                    woken = invalidations.recv() => woken.map(|_| ()),
                    woken = reconnects.recv() => woken.map(|_| ()),
                    woken = topology.recv() => woken.map(|_| ()),
                    _ = heartbeat.tick() => {
                        let Some(client) = this.upgrade().map(|c| c.conns[conn].client.clone())
                        else {
                            return;
                        };
                        let ping = client.ping::<fred::types::Value>(None);
                        let alive = matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(_)));
                        if !alive {
                            // A connection that died without a close (a partition) is one
                            // fred notices only once a command waits on it, and cache hits
                            // send none: stop trusting it now, and until tracking is on again.
                            if let Some(cache) = this.upgrade() {
                                cache.reset(conn, Reset::Reconnected);
                            }
                        }
                        continue;
                    }
                };
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = woken {
                    return;
                }
                let Some(cache) = this.upgrade() else {
                    return;
                };
                cache.sync(conn);
            }
        });
    }

    /// Turns tracking back on for `conn` in the background, until it holds.
    fn reenable(&self, conn: usize) {
        if self.conns[conn].reenabling.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to do it on: the connection's sessions bypass the cache for good,
            // which is safe.
            return;
        };
        let this = self.this.clone();
        runtime.spawn(async move {
            let mut delay = Duration::from_millis(50);
            loop {
                let Some(cache) = this.upgrade() else {
                    return;
                };
                let slot = &cache.conns[conn];
                let state = cache.sync(conn);
                if state & TRACKING != 0 {
                    slot.reenabling.store(false, Ordering::Release);
                    // A reconnection seen after the check found the flag still set and left
                    // the work here.
                    if cache.sync(conn) & TRACKING != 0
                        || slot.reenabling.swap(true, Ordering::AcqRel)
                    {
                        return;
                    }
                    continue;
                }
                match track(&slot.client).await {
                    Ok(()) => {
                        cache.sync(conn);
                        let _ = slot.state.compare_exchange(
                            state,
                            state | TRACKING,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        );
                        delay = Duration::from_millis(50);
                    }
                    Err(error) => {
                        tracing::debug!(%error, "sessionware-redis: near cache: turning tracking back on failed; retrying");
                        drop(cache);
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(MAX_RETRY_DELAY);
                    }
                }
            }
        });
    }
}

/// `CLIENT TRACKING ON NOLOOP` on every connection of `client` (each node, on a Cluster).
async fn track(client: &Client) -> Result<(), fred::error::Error> {
    client
        .start_tracking(Vec::<String>::new(), false, false, false, true)
        .await
}

/// Whether anything (or a lag, which hides what) arrived on `rx`, and whether it is closed.
fn drained<T: Clone>(rx: &mut Receiver<T>) -> (bool, bool) {
    let mut any = false;
    loop {
        match rx.try_recv() {
            Ok(_) | Err(TryRecvError::Lagged(_)) => any = true,
            Err(TryRecvError::Empty) => return (any, false),
            Err(TryRecvError::Closed) => return (any, true),
        }
    }
}

/// Why a connection's entries are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reset {
    /// A new connection: tracking is off on it until turned on again.
    Reconnected,
    /// The invalidation channel overflowed: tracking is still on.
    Lagged,
    /// The client quit.
    Closed,
}

impl Shard {
    fn insert(
        &mut self,
        id: SessionId,
        record: Option<Record>,
        version: u64,
        bytes: usize,
        state: u64,
    ) {
        let stamp = match self.map.get(&id) {
            // Replacing keeps the place in line: a hot session must not queue a stamp per write.
            Some(entry) => {
                self.bytes -= entry.bytes;
                entry.stamp
            }
            None => {
                self.next_stamp += 1;
                self.order.push_back((id, self.next_stamp));
                self.next_stamp
            }
        };
        self.bytes += bytes;
        self.map.insert(
            id,
            Entry {
                record,
                version,
                bytes,
                state,
                stamp,
            },
        );
    }

    fn remove(&mut self, id: &SessionId) {
        if let Some(entry) = self.map.remove(id) {
            self.bytes -= entry.bytes;
        }
        // Stamps of removed entries stay queued; keep them from outgrowing the map.
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order
                .retain(|(id, stamp)| map.get(id).is_some_and(|e| e.stamp == *stamp));
        }
    }

    /// Marks `id` as written at `version` by the store, in a state the cache does not hold.
    fn floor(&mut self, id: &SessionId, version: u64, state: u64) {
        self.insert(*id, None, version, ENTRY_OVERHEAD, state);
    }

    /// Drops what `id`'s entry holds, keeping its version as a floor.
    fn lower_to_floor(&mut self, id: &SessionId) {
        if let Some(entry) = self.map.get_mut(id) {
            entry.record = None;
            self.bytes -= entry.bytes - ENTRY_OVERHEAD;
            entry.bytes = ENTRY_OVERHEAD;
        }
    }

    /// Drops the oldest entries until the shard fits `budget`. What an evicted entry knew
    /// of its version goes with it, so the shard's open tickets are voided: a reply to an
    /// older write must not fill it afterwards.
    fn evict_to(&mut self, budget: usize) {
        let mut evicted = false;
        while self.bytes > budget {
            let Some((id, stamp)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&id).is_some_and(|entry| entry.stamp == stamp) {
                if let Some(entry) = self.map.remove(&id) {
                    self.bytes -= entry.bytes;
                    evicted = true;
                }
            }
        }
        if evicted {
            self.generation += 1;
        }
    }
}

/// The change a write made, applied to a cached record; `false` when it does not apply (the
/// entry then goes). It always does when the entry was at the version the script wrote on:
/// the guards and increments Redis checked are checked on the same state here.
pub(crate) fn apply_change(record: &mut Record, changes: &ChangeSet) -> bool {
    record.expires_at = as_stored(changes.expires_at());
    changes.apply_to(&mut record.data).is_ok()
}

/// `time` as Redis keeps it, in whole milliseconds, so a record the cache updated in place
/// equals the one a load would read.
pub(crate) fn as_stored(time: OffsetDateTime) -> OffsetDateTime {
    sessionware_core::from_unix_ms(sessionware_core::to_unix_ms(time)).unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionware_core::time::Duration as TimeDuration;

    fn record(id: SessionId) -> Record {
        let now = OffsetDateTime::now_utc();
        Record {
            id,
            data: [("k".to_owned(), serde_json::json!("value"))].into(),
            user: None,
            created_at: now,
            expires_at: now + TimeDuration::minutes(5),
        }
    }

    #[test]
    fn a_shard_holds_its_budget_under_a_million_distinct_sessions() {
        let mut shard = Shard::default();
        let budget = 1 << 20;
        for n in 0u64..1_000_000 {
            let mut bytes = [0u8; SessionId::BYTES];
            bytes[..8].copy_from_slice(&n.to_le_bytes());
            let id = SessionId::from_bytes(bytes);
            shard.insert(id, Some(record(id)), 0, ENTRY_OVERHEAD + 40, 0);
            shard.evict_to(budget);
            assert!(shard.bytes <= budget);
        }
        assert_eq!(shard.map.len(), budget / (ENTRY_OVERHEAD + 40));
        assert!(shard.order.len() <= 2 * shard.map.len() + 64);
    }

    #[test]
    fn a_floor_keeps_the_version_and_costs_only_the_overhead() {
        let mut shard = Shard::default();
        let id = SessionId::generate().unwrap();
        shard.insert(id, Some(record(id)), 7, ENTRY_OVERHEAD + 500, 0);
        shard.lower_to_floor(&id);
        let entry = &shard.map[&id];
        assert!(entry.record.is_none());
        assert_eq!(entry.version, 7);
        assert_eq!(shard.bytes, ENTRY_OVERHEAD);
        shard.floor(&id, 9, 0);
        assert_eq!(shard.map[&id].version, 9);
        assert_eq!(shard.bytes, ENTRY_OVERHEAD);
        assert_eq!(
            shard.order.len(),
            1,
            "a floor keeps the entry's place in line"
        );
    }

    #[test]
    fn an_eviction_voids_open_tickets() {
        let mut shard = Shard::default();
        let (a, b) = (
            SessionId::generate().unwrap(),
            SessionId::generate().unwrap(),
        );
        shard.insert(a, Some(record(a)), 3, 300, 0);
        shard.evict_to(300);
        assert_eq!(shard.generation, 0, "nothing evicted, nothing voided");
        shard.insert(b, Some(record(b)), 1, 300, 0);
        shard.evict_to(300);
        assert!(!shard.map.contains_key(&a));
        assert_eq!(
            shard.generation, 1,
            "what `a` knew of its version is gone, so an older fill must not land"
        );
    }

    #[test]
    fn rewriting_one_session_queues_it_once() {
        let mut shard = Shard::default();
        let id = SessionId::generate().unwrap();
        for version in 0..10_000 {
            shard.insert(id, Some(record(id)), version, 300, 0);
        }
        assert_eq!(shard.order.len(), 1);
        assert_eq!(shard.bytes, 300);
        for _ in 0..10_000 {
            shard.insert(id, Some(record(id)), 0, 300, 0);
            shard.remove(&id);
        }
        assert!(shard.order.len() <= 64 + 1, "removed stamps are compacted");
        assert_eq!(shard.bytes, 0);
    }
}
