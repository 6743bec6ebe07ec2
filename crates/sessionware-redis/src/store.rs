use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fred::clients::{Client, Pool, WithOptions};
use fred::interfaces::{
    ClientLike as _, ClusterInterface as _, KeysInterface as _, SetsInterface as _,
};
use fred::types::config::{Options, Server};
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand, Key, Resp3Frame as Frame, Value};
use sessionware_core::lanes::{self, Batches, Lanes, Queued, Turn};
use sessionware_core::time::OffsetDateTime;
use sessionware_core::{
    ChangeSet, Error, ExpiryPolicy, Loaded, Record, SessionId, SessionStore, load_then_touch,
    to_unix_ms,
};

use crate::codec::{self, data_field, encode_value};
use crate::error::from_fred;
use crate::near_cache::{self, FIELD_OVERHEAD, Lookup, NearCache, NearCacheStats};
use crate::script::{self, Scripts};

/// Draws of a fresh id before `create` gives up. With 128 random bits a second draw is already
/// astronomically rare; a run of collisions means something else is wrong.
const MAX_CREATE_ATTEMPTS: usize = 8;

/// Listings of a user's index `delete_user` makes at most. Each listing after the first only
/// finds ids that a concurrent `rekey` moved a session to while the previous pass deleted, so
/// the second one is nearly always empty; the bound stops a stream of concurrent sign-ins,
/// which come after the revocation anyway, from holding the call forever.
const MAX_DELETE_USER_PASSES: usize = 8;

/// The Redis session store: one hash per session under `<prefix><id>`, each with a TTL at the
/// session's deadline. Cheap to clone: clones share the pool.
///
/// Built with [`RedisStore::connect`] or [`RedisStore::builder`]; see the [crate docs](crate)
/// for the layout and the round trips.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    prefix: String,
    timeout: Duration,
    /// What every command carries (the timeout, on a pool the application built).
    options: Options,
    scripts: Scripts,
    /// A Cluster spreads a session's keys over slots, which `rekey` has to work around.
    clustered: bool,
    /// The near cache, unless it is off or the server cannot keep it coherent.
    cache: Option<Arc<NearCache>>,
    /// `apply` calls queued behind a running one of their connection (not on a Cluster).
    writes: Lanes<(Key, Vec<Value>), Result<Value, Error>>,
}

impl RedisStore {
    /// The most keys [`count`](SessionStore::count) scans before it estimates from them.
    pub const COUNT_BUDGET: u64 = 50_000;
    pub(crate) fn new(
        pool: Pool,
        prefix: String,
        timeout: Duration,
        options: Options,
        scripts: Scripts,
        cache: Option<Arc<NearCache>>,
    ) -> Self {
        let clustered = pool.is_clustered();
        Self {
            inner: Arc::new(Inner {
                writes: Lanes::with_depth(pool.size(), WRITE_DEPTH),
                clustered,
                cache,
                pool,
                prefix,
                timeout,
                options,
                scripts,
            }),
        }
    }

    /// The fred pool the store talks through, for an application that wants to reuse it.
    ///
    /// With the near cache on, its connections track the session keys they read with
    /// `NOLOOP`: a change to a session key sent through this pool is not reported to the
    /// cache. Change sessions through the store, or through a client of your own.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The prefix of every key the store writes.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The longest one Redis command may take before a call fails with
    /// [`Error::Timeout`].
    pub fn command_timeout(&self) -> sessionware_core::time::Duration {
        self.inner
            .timeout
            .try_into()
            .unwrap_or(sessionware_core::time::Duration::MAX)
    }

    /// The Redis key of session `id`: the prefix, then the id as the cookie carries it.
    pub fn key(&self, id: &SessionId) -> String {
        format!("{}{id}", self.inner.prefix)
    }

    /// The next client of the pool, with the store's command options. fred's timeout (the
    /// pool's default, or the options') is the only timer the store sets per command.
    fn client(&self) -> WithOptions<Client> {
        self.inner.pool.next().with_options(&self.inner.options)
    }

    /// Session keys on `node` (the one server when `None`), by `SCAN` of at most `budget`
    /// keys, then estimated from `DBSIZE`.
    async fn count_on(&self, node: Option<Server>, budget: u64) -> Result<u64, Error> {
        let mut options = self.inner.options.clone();
        options.cluster_node = node;
        let client = self.inner.pool.next().with_options(&options);
        let index = format!("{}user:", self.inner.prefix);
        let scan = CustomCommand::new_static("SCAN", ClusterHash::Random, false);
        let (mut cursor, mut examined, mut sessions) = (String::from("0"), 0u64, 0u64);
        loop {
            let args = vec![Value::from(cursor.as_str()), "COUNT".into(), 1000.into()];
            let (next, keys): (String, Vec<String>) =
                client.custom(scan.clone(), args).await.map_err(from_fred)?;
            examined += keys.len() as u64;
            sessions += keys
                .iter()
                .filter(|k| k.starts_with(&self.inner.prefix) && !k.starts_with(&index))
                .count() as u64;
            if next == "0" {
                return Ok(sessions);
            }
            if examined >= budget {
                let dbsize = CustomCommand::new_static("DBSIZE", ClusterHash::Random, false);
                let total: u64 = client
                    .custom(dbsize, Vec::<Value>::new())
                    .await
                    .map_err(from_fred)?;
                let share = sessions as f64 / examined as f64;
                return Ok((share * total as f64).round() as u64);
            }
            cursor = next;
        }
    }

    /// The client for commands on session `id`: always the same one, so that with the near
    /// cache the connection which tracks the key is the one that writes it.
    fn client_for(&self, id: &SessionId) -> WithOptions<Client> {
        self.inner.lane_client(self.inner.lane_of(id))
    }

    /// What the near cache holds and did, or `None` when the store runs without one (turned
    /// off, or a server or pool that cannot keep it coherent; the log said why at start-up).
    pub fn near_cache_stats(&self) -> Option<NearCacheStats> {
        self.inner.cache.as_ref().map(|cache| cache.stats())
    }

    /// Drops `id` from the near cache: the store ended or moved it.
    fn forget(&self, id: &SessionId) {
        if let Some(cache) = &self.inner.cache {
            cache.forget(id);
        }
    }

    /// The Redis key of `user`'s index set. `:` never occurs in an id, so it cannot clash
    /// with a session key.
    pub fn user_key(&self, user: &str) -> String {
        format!("{}user:{user}", self.inner.prefix)
    }

    /// `apply.lua` for one change set, answering what the script answered for it. On one node
    /// and behind Sentinel, a change set whose connection has a call of it running
    /// ([`WRITE_DEPTH`]) waits for it, and then goes in one call with whatever else queued
    /// meanwhile (at most [`MAX_BATCH`]):
    /// Redis parses one command and sets up one script run for all of them, and the app sends
    /// and reads one frame. A Cluster refuses keys of different slots in one script, so there
    /// each goes alone.
    async fn apply_script(&self, id: &SessionId, args: Vec<Value>) -> Result<Value, Error> {
        let key = Key::from(self.key(id));
        let lane = self.inner.lane_of(id);
        if self.inner.clustered {
            return self.inner.apply_alone(lane, key, args).await;
        }
        match lanes::enter(&self.inner, lane, || (key.clone(), args.clone())) {
            Turn::Wait(answer) => answer.await.unwrap_or_else(|| {
                Err(Error::backend(
                    "the write queued behind another was not run",
                ))
            }),
            Turn::Lead(_leader) => self.inner.apply_alone(lane, key, args).await,
        }
    }

    async fn run(&self, script: &Script, id: &SessionId, args: Vec<Value>) -> Result<Value, Error> {
        script::call(&self.client_for(id), script, Key::from(self.key(id)), args)
            .await
            .map_err(from_fred)
    }

    async fn run_on(&self, script: &Script, key: String, args: Vec<Value>) -> Result<Value, Error> {
        script::call(&self.client(), script, Key::from(key), args)
            .await
            .map_err(from_fred)
    }

    /// Adds `id` to `user`'s index and keeps the index alive at least until `deadline`.
    async fn index_add(
        &self,
        user: &str,
        id: &SessionId,
        deadline: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let args = vec![
            Value::from("add"),
            Value::from(id.to_string()),
            Value::from(to_unix_ms(deadline)),
            Value::from(to_unix_ms(now)),
        ];
        self.run_on(&self.inner.scripts.index, self.user_key(user), args)
            .await
            .map(|_| ())
    }

    /// Drops ids from `user`'s index.
    async fn index_remove(&self, user: &str, ids: Vec<String>) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        self.client()
            .srem::<i64, _, _>(self.user_key(user), ids)
            .await
            .map(|_| ())
            .map_err(from_fred)
    }

    /// The ids in `user`'s index, as text (members that are not ids are returned apart).
    async fn index_members(&self, user: &str) -> Result<(Vec<SessionId>, Vec<String>), Error> {
        let members: Vec<String> = self
            .client()
            .smembers(self.user_key(user))
            .await
            .map_err(from_fred)?;
        let mut ids = Vec::with_capacity(members.len());
        let mut junk = Vec::new();
        for member in members {
            match member.parse::<SessionId>() {
                Ok(id) => ids.push(id),
                Err(_) => junk.push(member),
            }
        }
        Ok((ids, junk))
    }

    /// [`SessionStore::rekey`] on a Cluster: the copy first, then the end of the old session
    /// only if it is still live and bound as the caller saw it, else the copy is dropped.
    ///
    /// 1. `create`: the new hash, then its id in the new user's index. In that order, so a
    ///    listing never finds the id before its session exists and prunes it as dead.
    /// 2. `retire.lua` on the old key: deletes it only if it is live and bound to
    ///    `expected_user`. This is the step the outcome hangs on, atomic on the old key's node.
    /// 3. On refusal, the copy and its index entry are deleted and the answer is `None`.
    ///
    /// Why nothing ended can come back: the client learns the new id only from the answer,
    /// after step 2, so until then nobody can load the copy. A revocation (`delete_user`) that
    /// deletes the old key before step 2 makes step 2 refuse, and the copy goes. Otherwise its
    /// delete of the old key came after step 2 and found nothing; the listing it makes after
    /// its deletes (it lists until nothing is new) then comes after step 1 put the new id in
    /// the index, so it ends the copy too. What a Cluster gives up: between steps 1 and 2 both
    /// ids exist, so `list_user` may show the session twice for that moment.
    ///
    /// The old id is left in the old user's index, as a `delete` leaves it, for the next
    /// listing to prune: removing it would cost one more round trip.
    async fn rekey_across_slots(
        &self,
        old: &SessionId,
        expected_user: Option<&str>,
        record: &Record,
        now: OffsetDateTime,
    ) -> Result<Option<SessionId>, Error> {
        let id = self.create(record).await?;
        let mut args = Vec::with_capacity(3);
        args.push(Value::from(to_unix_ms(now)));
        args.extend(bound_as(expected_user));
        let refused = match self.run(&self.inner.scripts.retire, old, args).await {
            Ok(reply) => match reply.as_i64() {
                Some(1) => return Ok(Some(id)),
                Some(0) => None,
                Some(-1) => Some(not_a_session()),
                _ => Some(unexpected(&reply)),
            },
            // Whether the old session ended is unknown; either way the caller will not use
            // the copy, so it goes too rather than live on unseen.
            Err(error) => Some(error),
        };
        let key = self.key(&id);
        let client = self.client();
        let delete = client.del::<i64, _>(key);
        let (deleted, unindexed) = match &record.user {
            Some(user) => tokio::join!(delete, self.index_remove(user, vec![id.to_string()])),
            None => (delete.await, Ok(())),
        };
        match refused {
            Some(error) => Err(error),
            None => {
                deleted.map_err(from_fred)?;
                unindexed?;
                Ok(None)
            }
        }
    }

    /// [`SessionStore::rekey`] on one node or behind Sentinel: one `EVALSHA` of `rekey.lua`.
    async fn rekey_in_one_script(
        &self,
        old: &SessionId,
        expected_user: Option<&str>,
        record: &Record,
        now: OffsetDateTime,
    ) -> Result<Option<SessionId>, Error> {
        // The layout `rekey.lua` reads; the new id sits at `keys[1]` and `args[4]`, which a
        // taken id rewrites before the next call.
        let mut keys: Vec<Key> = Vec::with_capacity(4);
        keys.push(self.key(old).into());
        keys.push(self.key(&record.id).into());
        keys.extend(expected_user.map(|user| Key::from(self.user_key(user))));
        keys.extend(
            record
                .user
                .as_deref()
                .map(|user| Key::from(self.user_key(user))),
        );
        let create = codec::create_args(record)?;
        let mut args = Vec::with_capacity(5 + create.len());
        args.push(Value::from(to_unix_ms(now)));
        args.extend(bound_as(expected_user));
        args.push(Value::from(old.to_string()));
        args.push(Value::from(record.id.to_string()));
        args.extend(create);
        let mut id = record.id;
        for _ in 0..MAX_CREATE_ATTEMPTS {
            let reply = script::call(
                &self.client(),
                &self.inner.scripts.rekey,
                keys.clone(),
                args.clone(),
            )
            .await
            .map_err(from_fred)?;
            match reply.as_i64() {
                Some(1) => return Ok(Some(id)),
                Some(0) => return Ok(None),
                Some(2) => {
                    id = SessionId::generate()?;
                    keys[1] = self.key(&id).into();
                    args[4] = Value::from(id.to_string());
                }
                Some(-1) => return Err(not_a_session()),
                _ => return Err(unexpected(&reply)),
            }
        }
        Err(ids_exhausted())
    }

    /// Brings the near cache up to a write that left the session at `version` (`None`: there
    /// was no live session to write).
    fn after_write(
        &self,
        ticket: Option<near_cache::Ticket>,
        id: &SessionId,
        version: Option<u64>,
        added: usize,
        change: impl FnOnce(&mut Record) -> bool,
    ) -> Result<bool, Error> {
        match (version, &self.inner.cache) {
            (Some(version), Some(cache)) => cache.after_write(ticket, id, version, change, added),
            (None, Some(cache)) => cache.forget(id),
            (_, None) => {}
        }
        Ok(version.is_some())
    }

    /// The near cache after a write that `apply.lua` answered with `{version, whole hash}`
    /// (the cache could not follow it on versions: it held another one, or the call wrote the
    /// session more than once): the entry becomes the state the script read, unless a later
    /// write's reply already put a newer one there.
    /// Returns the state the script read, decoded.
    fn replace_cached(
        &self,
        ticket: Option<near_cache::Ticket>,
        id: &SessionId,
        parts: &[Value],
    ) -> Result<Record, Error> {
        let malformed = || Error::backend("unexpected reply from Redis to the apply script");
        let [Value::Integer(version), Value::Array(hash)] = parts else {
            return Err(malformed());
        };
        let fields: Option<Vec<(&[u8], &[u8])>> = hash
            .chunks_exact(2)
            .map(|pair| Some((pair[0].as_bytes()?, pair[1].as_bytes()?)))
            .collect();
        let fields = fields.ok_or_else(malformed)?;
        let (_, bytes) = codec::version_and_size(&fields, FIELD_OVERHEAD);
        let decoded = codec::decode(*id, fields);
        if let Some(cache) = self.inner.cache.as_deref() {
            match (&decoded, ticket) {
                (Ok(record), Some(ticket)) => {
                    cache.fill(ticket, record, version.unsigned_abs(), bytes);
                }
                // What the script read does not decode: the next load reports it.
                (Err(_), _) => cache.forget(id),
                (Ok(_), None) => {}
            }
        }
        decoded
    }

    /// The array answers of `apply.lua`: the whole hash after a write behind an unseen version,
    /// or a refusal that wrote nothing (an increment it cannot add, a guard that does not
    /// hold; the latter with the whole hash, which also brings the cache up to date).
    fn refused_or_replaced(
        &self,
        ticket: Option<near_cache::Ticket>,
        id: &SessionId,
        changes: &ChangeSet,
        parts: &[Value],
    ) -> Result<bool, Error> {
        let field = || {
            parts
                .get(1)
                .and_then(Value::as_str)
                .and_then(|f| f.strip_prefix(codec::DATA_PREFIX).map(str::to_owned))
                .ok_or_else(|| Error::backend("unexpected reply from Redis to the apply script"))
        };
        match parts.first().and_then(Value::as_i64) {
            Some(-2) => Err(Error::NotAnInteger { key: field()? }),
            Some(-3) => Err(Error::Overflow { key: field()? }),
            Some(-4) => {
                let record = self.replace_cached(ticket, id, &parts[1..])?;
                let mut data = record.data;
                match changes.apply_to(&mut data) {
                    Err(conflict @ Error::Conflict { .. }) => Err(conflict),
                    _ => Err(Error::backend(
                        "Redis refused a guard that the hash it returned satisfies",
                    )),
                }
            }
            _ => {
                self.replace_cached(ticket, id, parts)?;
                Ok(true)
            }
        }
    }

    /// Runs `op` for every id at once: one round trip of latency for the lot.
    async fn for_each<T, F, Fut>(
        &self,
        ids: &[SessionId],
        op: F,
    ) -> Result<Vec<(SessionId, T)>, Error>
    where
        T: Send + 'static,
        F: Fn(RedisStore, SessionId) -> Fut,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let mut tasks = tokio::task::JoinSet::new();
        for &id in ids {
            let call = op(self.clone(), id);
            tasks.spawn(async move { call.await.map(|t| (id, t)) });
        }
        let mut out = Vec::with_capacity(ids.len());
        while let Some(done) = tasks.join_next().await {
            out.push(done.map_err(Error::backend)??);
        }
        Ok(out)
    }
}

/// The bytes of a string reply.
fn bytes(frame: &Frame) -> Option<&[u8]> {
    match frame {
        Frame::BlobString { data, .. } | Frame::SimpleString { data, .. } => Some(data),
        _ => None,
    }
}

fn unexpected(reply: &Value) -> Error {
    Error::backend(format!("unexpected reply from Redis: a {:?}", reply.kind()))
}

/// A key under the store's prefix that is not a session hash: written by something else.
fn not_a_session() -> Error {
    Error::corrupt("the key is not a session hash (wrong type or no `expires_at`)")
}

/// The arguments that say how the old session of a `rekey` must be bound.
fn bound_as(user: Option<&str>) -> [Value; 2] {
    match user {
        Some(user) => [Value::from("1"), Value::from(user)],
        None => [Value::from("0"), Value::from("")],
    }
}

fn ids_exhausted() -> Error {
    Error::backend("every session id drawn was already taken; is the random source broken?")
}

/// The most change sets one `apply.lua` call carries, and the calls a connection has in
/// flight at once. Chosen on the benchmark, against the peer in the same run: the app's cost
/// per call is mostly the kernel's (a `writev` to Redis and waking it), so fewer, larger calls
/// leave its one busy thread more for HTTP. One call of up to 32 at a time sends 0.18 calls a
/// write with a session per connection and 0.05 on one shared session, and ran 1.25-1.39x and
/// 1.34-1.57x the peer's writes/s, where 4 calls of up to 16 sent 0.43 and 0.15 and ran
/// 1.13-1.16x and 1.39-1.41x.
/// Before `apply.lua` was made cheaper for Redis, one call at a time left Redis and the app
/// waiting on each other on a hot session; that is gone. 32, not more, bounds how long one
/// call holds Redis (about 0.3 ms).
const MAX_BATCH: usize = 32;
const WRITE_DEPTH: usize = 1;

impl Inner {
    /// The connection of `id`'s commands: with the near cache, the one that tracks its key.
    fn lane_of(&self, id: &SessionId) -> usize {
        match &self.cache {
            Some(cache) => cache.conn_of(id),
            None => lanes::lane_of(id, self.writes.len()),
        }
    }

    fn lane_client(&self, lane: usize) -> WithOptions<Client> {
        let client = match &self.cache {
            Some(cache) => cache.client(lane),
            None => &self.pool.clients()[lane % self.pool.clients().len()],
        };
        client.with_options(&self.options)
    }

    /// One change set, one call.
    async fn apply_alone(&self, lane: usize, key: Key, args: Vec<Value>) -> Result<Value, Error> {
        let mut answers = self
            .apply_all(lane, vec![key], args)
            .await
            .map_err(from_fred)?;
        Ok(answers.remove(0))
    }

    /// One `apply.lua` call: an answer per key, in their order. The error stays fred's, which
    /// a batch hands to each of its requests (the store's own error is not `Clone`).
    async fn apply_all(
        &self,
        lane: usize,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<Vec<Value>, fred::error::Error> {
        let count = keys.len();
        match script::call(&self.lane_client(lane), &self.scripts.apply, keys, args).await? {
            Value::Array(answers) if answers.len() == count => Ok(answers),
            other => Err(fred::error::Error::new(
                fred::error::ErrorKind::Protocol,
                unexpected(&other).to_string(),
            )),
        }
    }
}

impl Batches for Inner {
    type Item = (Key, Vec<Value>);
    type Answer = Result<Value, Error>;

    fn lanes(&self) -> &Lanes<Self::Item, Self::Answer> {
        &self.writes
    }

    /// One `apply.lua` call for the batch: the change sets apply in arrival order, each
    /// atomically, and each request gets its own answer. An error of the call is every
    /// request's: a script error part-way (none is expected: every check runs before a
    /// change set writes) would leave the change sets before it written, as a timeout leaves
    /// a write's outcome unknown.
    async fn run(&self, lane: usize, batch: Vec<Queued<Self::Item, Self::Answer>>) {
        let mut keys = Vec::with_capacity(batch.len());
        let mut changes = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for queued in batch {
            let ((key, change), answer) = queued.into_parts();
            keys.push(key);
            changes.push(change);
            waiting.push(answer);
        }
        answers_for_batch(&keys, &mut changes);
        let args = changes.into_iter().flatten().collect();
        match self.apply_all(lane, keys, args).await {
            Ok(answers) => {
                for (answer, waiting) in answers.into_iter().zip(waiting) {
                    waiting.send(Ok(answer));
                }
            }
            Err(error) => {
                for waiting in waiting {
                    waiting.send(Err(from_fred(error.clone())));
                }
            }
        }
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }
}

/// The answer a change set asks `apply.lua` for (its header's third value): the bare version,
/// or the whole hash; a cached version in its place asks for the bare version only when the
/// write follows that one.
const BARE: &str = "-";
const WHOLE: &str = "*";
const WANTED: usize = 2;

/// The answers the change sets of one call ask for. Their requests take the answers in in any
/// order, and the near cache must end at the last write's state whichever comes first: a
/// change set that another of its key follows answers its bare version (the later one reads
/// the key again, so no tracking read is needed here), and the key's last one answers the
/// whole hash when one came before it (the version its cache held is then behind). A session
/// many requests write at once so costs one whole hash a call, not one a write. Without a
/// cache every answer is bare already.
fn answers_for_batch(keys: &[Key], changes: &mut [Vec<Value>]) {
    for (k, key) in keys.iter().enumerate() {
        if changes[k][WANTED].as_bytes() == Some(BARE.as_bytes()) {
            continue;
        }
        if keys[k + 1..].contains(key) {
            changes[k][WANTED] = Value::from(BARE);
        } else if keys[..k].contains(key) {
            changes[k][WANTED] = Value::from(WHOLE);
        }
    }
}

/// The version / 0 / -1 answer of `apply.lua` and `touch.lua`: the version the write left.
fn version(reply: Value) -> Result<Option<u64>, Error> {
    match reply.as_i64() {
        Some(0) => Ok(None),
        Some(-1) => Err(not_a_session()),
        Some(v) if v > 0 => Ok(Some(v.unsigned_abs())),
        _ => Err(unexpected(&reply)),
    }
}

/// The 1 / 0 / -1 answer of the other write scripts.
fn written(reply: Value) -> Result<bool, Error> {
    match reply.as_i64() {
        Some(1) => Ok(true),
        Some(0) => Ok(false),
        Some(-1) => Err(not_a_session()),
        _ => Err(unexpected(&reply)),
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("pool_size", &self.inner.pool.size())
            .finish_non_exhaustive()
    }
}

impl SessionStore for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    /// Session keys under the prefix, by `SCAN` of at most [`RedisStore::COUNT_BUDGET`] keys
    /// (on a Cluster, on each primary in turn, the budget shared among them): exact when the
    /// whole keyspace fits in the budget, otherwise an estimate (the share of session keys
    /// among the keys scanned, times `DBSIZE`, per node). Redis expires keys at their deadline
    /// itself, so a key it still holds is a live session.
    async fn count(&self, _now: OffsetDateTime) -> Result<Option<u64>, Error> {
        let nodes = if self.inner.clustered {
            let routing = self.inner.pool.next().cached_cluster_state();
            let primaries = routing
                .map(|r| r.unique_primary_nodes())
                .unwrap_or_default();
            if primaries.is_empty() {
                return Err(Error::backend("the cluster's primaries are not known yet"));
            }
            primaries.into_iter().map(Some).collect()
        } else {
            vec![None]
        };
        let budget = (Self::COUNT_BUDGET / nodes.len() as u64).max(1);
        let mut sessions = 0;
        for node in nodes {
            sessions += self.count_on(node, budget).await?;
        }
        Ok(Some(sessions))
    }

    async fn create(&self, record: &Record) -> Result<SessionId, Error> {
        let args = codec::create_args(record)?;
        let mut id = record.id;
        for _ in 0..MAX_CREATE_ATTEMPTS {
            let reply = self
                .run(&self.inner.scripts.create, &id, args.clone())
                .await?;
            if written(reply)? {
                if let Some(user) = &record.user {
                    self.index_add(user, &id, record.expires_at, record.created_at)
                        .await?;
                }
                return Ok(id);
            }
            id = SessionId::generate()?;
        }
        Err(ids_exhausted())
    }

    /// The near cache's record when it holds a live one (no command at all); else one
    /// `HGETALL`: the live session, or `None`. Reads move no deadline here; the trait's
    /// refresh ([`load_then_touch`]) does, with a `touch` only when the policy asks, which is
    /// at most once per refresh interval, so the common read stays one plain command.
    async fn load(&self, id: &SessionId, now: OffsetDateTime) -> Result<Option<Record>, Error> {
        let ticket = match self
            .inner
            .cache
            .as_deref()
            .map(|cache| cache.lookup(id, now))
        {
            Some(Lookup::Hit(record)) => return Ok(Some(record)),
            Some(Lookup::Miss(ticket)) => ticket,
            None => None,
        };
        // The raw reply: fred's own conversion would build a map of checked strings that
        // the codec then walks again. Boxed: fred's future is large, and moving it up through
        // every caller's state cost more than one allocation.
        let command = CustomCommand::new_static("HGETALL", ClusterHash::FirstKey, false);
        let reply = Box::pin(
            self.client_for(id)
                .custom_raw(command, vec![Value::from(self.key(id))]),
        )
        .await
        .map_err(from_fred)?;
        // Raw means unchecked too: the server's errors (`WRONGTYPE` for a key that is not a
        // hash) come back as frames, not as fred errors.
        let pairs: Option<Vec<(&[u8], &[u8])>> = match &reply {
            Frame::Array { data, .. } => data
                .chunks_exact(2)
                .map(|pair| Some((bytes(&pair[0])?, bytes(&pair[1])?)))
                .collect(),
            Frame::Map { data, .. } => data
                .iter()
                .map(|(field, value)| Some((bytes(field)?, bytes(value)?)))
                .collect(),
            Frame::SimpleError { data, .. } if data.starts_with("WRONGTYPE") => {
                return Err(not_a_session());
            }
            Frame::SimpleError { data, .. } => return Err(Error::backend(data.to_string())),
            _ => None,
        };
        let fields =
            pairs.ok_or_else(|| Error::backend("unexpected reply from Redis to HGETALL"))?;
        if fields.is_empty() {
            return Ok(None);
        }
        let (version, bytes) = codec::version_and_size(&fields, FIELD_OVERHEAD);
        let record = codec::decode(*id, fields)?;
        if record.is_expired(now) {
            return Ok(None);
        }
        if let (Some(cache), Some(ticket)) = (&self.inner.cache, ticket) {
            cache.fill(ticket, &record, version, bytes);
        }
        Ok(Some(record))
    }

    async fn load_refreshed(
        &self,
        id: &SessionId,
        policy: &ExpiryPolicy,
        now: OffsetDateTime,
    ) -> Result<Option<Loaded>, Error> {
        let loaded = load_then_touch(self, id, policy, now).await?;
        // A bound session that lives longer must not outlive its user's index. Only when the
        // deadline moved, which the refresh interval makes rare.
        if let Some(Loaded {
            record:
                Record {
                    user: Some(user),
                    expires_at,
                    ..
                },
            refreshed: true,
        }) = &loaded
        {
            self.index_add(user, id, *expires_at, now).await?;
        }
        Ok(loaded)
    }

    async fn apply(
        &self,
        id: &SessionId,
        changes: &ChangeSet,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        let sets: Vec<_> = changes.sets().collect();
        let removals: Vec<_> = changes.removals().collect();
        let mut args = Vec::with_capacity(4 + 2 * sets.len() + changes.keys().len());
        let mut added = 0;
        let cached = self
            .inner
            .cache
            .as_deref()
            .and_then(|cache| cache.before_write(id));
        args.push(Value::from(to_unix_ms(now)));
        args.push(Value::from(to_unix_ms(changes.expires_at())));
        args.push(match cached {
            None => Value::from(BARE),
            Some((_, None)) => Value::from(WHOLE),
            Some((_, Some(version))) => Value::from(i64::try_from(version).unwrap_or(i64::MAX)),
        });
        let guards = changes.guards().len();
        let increments = changes.increments().count();
        // The shape: the pair count alone for the common write, so the script parses one
        // number.
        args.push(
            if removals.is_empty() && guards == 0 && increments == 0 && !changes.is_clear() {
                Value::from(i64::try_from(sets.len()).unwrap_or(i64::MAX))
            } else {
                Value::from(format!(
                    "{},{},{guards},{increments},{}",
                    sets.len(),
                    removals.len(),
                    u8::from(changes.is_clear())
                ))
            },
        );
        for (key, value) in sets {
            let encoded = encode_value(value)?;
            added += key.len() + encoded.len() + FIELD_OVERHEAD;
            args.push(Value::from(data_field(key)));
            args.push(Value::from(encoded));
        }
        args.extend(removals.into_iter().map(|key| Value::from(data_field(key))));
        for (key, expected) in changes.guards() {
            args.push(Value::from(data_field(key)));
            match expected {
                Some(value) => {
                    args.push(Value::from("1"));
                    args.push(Value::from(encode_value(value)?));
                }
                None => args.extend([Value::from("0"), Value::from("")]),
            }
        }
        for (key, by) in changes.increments() {
            // The bound the stored integer must stay within for the sum to fit an i64.
            let bound = if by < 0 { i64::MIN - by } else { i64::MAX - by };
            added += key.len() + 20 + FIELD_OVERHEAD;
            args.push(Value::from(data_field(key)));
            args.push(Value::from(by.to_string()));
            args.push(Value::from(bound.to_string()));
        }
        let deadline = changes.expires_at();
        let write = self.apply_script(id, args);
        // The index's expiry is kept ahead of the session's alongside the write, so a bound
        // session's write still costs one round trip of latency.
        let reply = match changes.loaded_user() {
            Some(user) => {
                let (reply, index) = tokio::join!(write, self.index_add(user, id, deadline, now));
                index?;
                reply?
            }
            None => write.await?,
        };
        let ticket = cached.map(|(ticket, _)| ticket);
        if let Value::Array(parts) = &reply {
            return self.refused_or_replaced(ticket, id, changes, parts);
        }
        // A bare version: the cache applies the change (increments included) only to an
        // entry at the version just before it, which is then exactly what Redis holds.
        self.after_write(ticket, id, version(reply)?, added, |record| {
            near_cache::apply_change(record, changes)
        })
    }

    async fn touch(
        &self,
        id: &SessionId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        let args = vec![
            Value::from(to_unix_ms(now)),
            Value::from(to_unix_ms(expires_at)),
        ];
        let ticket = self
            .inner
            .cache
            .as_deref()
            .and_then(|cache| cache.before_write(id))
            .map(|(ticket, _)| ticket);
        let reply = self.run(&self.inner.scripts.touch, id, args).await?;
        self.after_write(ticket, id, version(reply)?, 0, |record| {
            record.expires_at = near_cache::as_stored(expires_at);
            true
        })
    }

    /// Single node and Sentinel: one `EVALSHA` of `rekey.lua`, which checks the old session,
    /// writes the new hash, deletes the old key and moves the id between the users' sets, all
    /// in one atomic step; a taken id costs one more call with a fresh id, as in `create`.
    ///
    /// Cluster: the two session keys and the sets hash to different slots, and a script may
    /// only touch keys of one slot, so the move is a sequence; see `rekey_across_slots`.
    async fn rekey(
        &self,
        old: &SessionId,
        expected_user: Option<&str>,
        record: &Record,
        now: OffsetDateTime,
    ) -> Result<Option<SessionId>, Error> {
        let moved = if self.inner.clustered {
            self.rekey_across_slots(old, expected_user, record, now)
                .await
        } else {
            self.rekey_in_one_script(old, expected_user, record, now)
                .await
        };
        // Moved, refused because it ended or was rebound, or unknown: the old state is gone or
        // in doubt either way.
        self.forget(old);
        moved
    }

    /// One `DEL`. A bound session's id stays in its user's index until the next listing
    /// prunes it or the index expires: reading the user first would cost every sign-out a
    /// round trip.
    async fn delete(&self, id: &SessionId) -> Result<(), Error> {
        let deleted = self.client_for(id).del::<i64, _>(self.key(id)).await;
        self.forget(id);
        deleted.map(|_| ()).map_err(from_fred)
    }

    async fn list_user(&self, user: &str, now: OffsetDateTime) -> Result<Vec<Record>, Error> {
        let (ids, mut dead) = self.index_members(user).await?;
        let loads = self
            .for_each(
                &ids,
                move |store, id| async move { store.load(&id, now).await },
            )
            .await?;
        let mut records = Vec::with_capacity(loads.len());
        for (id, loaded) in loads {
            match loaded {
                Some(record) if record.user.as_deref() == Some(user) => records.push(record),
                // Expired, deleted, or rebound: no longer this user's.
                _ => dead.push(id.to_string()),
            }
        }
        self.index_remove(user, dead).await?;
        Ok(records)
    }

    async fn delete_user(
        &self,
        user: &str,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
    ) -> Result<usize, Error> {
        let mut seen = HashSet::new();
        let mut seen_junk = HashSet::new();
        let mut ended = 0;
        let mut listing = self.index_members(user).await?;
        // A `rekey` that moved a session after a listing and before the delete of its old id
        // put the new id in the index: list again until a listing holds nothing new.
        for _ in 0..MAX_DELETE_USER_PASSES {
            let (ids, mut junk) = listing;
            let fresh: Vec<SessionId> = ids
                .into_iter()
                .filter(|id| Some(id) != keep && seen.insert(*id))
                .collect();
            junk.retain(|member| seen_junk.insert(member.clone()));
            if fresh.is_empty() {
                self.index_remove(user, junk).await?;
                return Ok(ended);
            }
            let owner = user.to_owned();
            let deletes = self
                .for_each(&fresh, move |store, id| {
                    let args = vec![Value::from(owner.as_str()), Value::from(to_unix_ms(now))];
                    async move {
                        store
                            .run(&store.inner.scripts.delete_bound, &id, args)
                            .await
                    }
                })
                .await?;
            for id in &fresh {
                self.forget(id);
            }
            ended += deletes
                .iter()
                .filter(|(_, reply)| reply.as_i64() == Some(1))
                .count();
            let mut dead: Vec<String> = fresh.iter().map(ToString::to_string).collect();
            dead.append(&mut junk);
            // The next listing alongside the pruning: it only has to come after the deletes, so
            // a revocation that finds nothing new keeps the latency of three round trips.
            let (removed, next) =
                tokio::join!(self.index_remove(user, dead), self.index_members(user));
            removed?;
            listing = next?;
        }
        Ok(ended)
    }
}
