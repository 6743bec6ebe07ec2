use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fred::clients::{Client, Pool, WithOptions};
use fred::interfaces::{ClientLike as _, KeysInterface as _, SetsInterface as _};
use fred::types::config::Options;
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand, Resp3Frame as Frame, Value};
use sessionware_core::time::OffsetDateTime;
use sessionware_core::{
    ChangeSet, Error, ExpiryPolicy, Loaded, Record, SessionId, SessionStore, load_then_touch,
    to_unix_ms,
};

use crate::codec::{self, data_field, encode_value};
use crate::error::from_fred;
use crate::script::{self, Scripts};

/// Draws of a fresh id before `create` gives up. With 128 random bits a second draw is already
/// astronomically rare; a run of collisions means something else is wrong.
const MAX_CREATE_ATTEMPTS: usize = 8;

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
}

impl RedisStore {
    pub(crate) fn new(
        pool: Pool,
        prefix: String,
        timeout: Duration,
        options: Options,
        scripts: Scripts,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                prefix,
                timeout,
                options,
                scripts,
            }),
        }
    }

    /// The fred pool the store talks through, for an application that wants to reuse it.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The prefix of every key the store writes.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The longest one Redis command may take before a call fails with
    /// [`Error::Timeout`].
    pub fn command_timeout(&self) -> Duration {
        self.inner.timeout
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

    /// The Redis key of `user`'s index set. `:` never occurs in an id, so it cannot clash
    /// with a session key.
    pub fn user_key(&self, user: &str) -> String {
        format!("{}user:{user}", self.inner.prefix)
    }

    async fn run(&self, script: &Script, id: &SessionId, args: Vec<Value>) -> Result<Value, Error> {
        self.run_on(script, self.key(id), args).await
    }

    async fn run_on(&self, script: &Script, key: String, args: Vec<Value>) -> Result<Value, Error> {
        script::call(&self.client(), script, key, args)
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

/// The 1 / 0 / -1 answer of the write scripts.
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
        Err(Error::backend(
            "every session id drawn was already taken; is the random source broken?",
        ))
    }

    /// One `HGETALL`: the live session, or `None`. Reads move no deadline here; the trait's
    /// refresh ([`load_then_touch`]) does, with a `touch` only when the policy asks, which is
    /// at most once per refresh interval, so the common read stays one plain command.
    async fn load(&self, id: &SessionId, now: OffsetDateTime) -> Result<Option<Record>, Error> {
        // The raw reply: fred's own conversion would build a map of checked strings that
        // the codec then walks again. Boxed: fred's future is large, and moving it up through
        // every caller's state cost more than one allocation.
        let command = CustomCommand::new_static("HGETALL", ClusterHash::FirstKey, false);
        let reply = Box::pin(
            self.client()
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
        let record = codec::decode(*id, fields)?;
        Ok((!record.is_expired(now)).then_some(record))
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
        let mut args = Vec::with_capacity(6 + 2 * sets.len() + changes.keys().len());
        args.push(Value::from(to_unix_ms(now)));
        args.push(Value::from(to_unix_ms(changes.expires_at())));
        args.push(Value::from(if changes.is_clear() { "1" } else { "0" }));
        match changes.user() {
            None => args.extend(["k", ""].map(Value::from)),
            Some(Some(user)) => args.extend([Value::from("s"), Value::from(user)]),
            Some(None) => args.extend(["u", ""].map(Value::from)),
        }
        args.push(Value::from(
            i64::try_from(sets.len() + 1).unwrap_or(i64::MAX),
        ));
        for (key, value) in sets {
            args.push(Value::from(data_field(key)));
            args.push(Value::from(encode_value(value)?));
        }
        args.push(Value::from(codec::EXPIRES_AT));
        args.push(Value::from(to_unix_ms(changes.expires_at())));
        args.extend(changes.removals().map(|key| Value::from(data_field(key))));
        let deadline = changes.expires_at();
        let write = self.run(&self.inner.scripts.apply, id, args);
        // The index's expiry is kept ahead of the session's alongside the write, so a bound
        // session's write still costs one round trip of latency.
        let reply = match (changes.user(), changes.loaded_user()) {
            (None, Some(user)) => {
                let (reply, index) = tokio::join!(write, self.index_add(user, id, deadline, now));
                index?;
                reply?
            }
            _ => write.await?,
        };
        match reply {
            Value::Array(parts) => {
                let previous = parts.into_iter().nth(1).and_then(|v| v.into_string());
                if let Some(previous) = previous {
                    self.index_remove(&previous, vec![id.to_string()]).await?;
                }
                if let Some(Some(user)) = changes.user() {
                    self.index_add(user, id, deadline, now).await?;
                }
                Ok(true)
            }
            other => written(other),
        }
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
        written(self.run(&self.inner.scripts.touch, id, args).await?)
    }

    /// One `DEL`. A bound session's id stays in its user's index until the next listing
    /// prunes it or the index expires: reading the user first would cost every sign-out a
    /// round trip.
    async fn rekey(
        &self,
        _old: &SessionId,
        _expected_user: Option<&str>,
        _record: &Record,
        _now: OffsetDateTime,
    ) -> Result<Option<SessionId>, Error> {
        // TODO(rekey): replaced by the store's atomic implementation.
        Err(Error::backend("rekey is not implemented yet"))
    }

    async fn delete(&self, id: &SessionId) -> Result<(), Error> {
        self.client()
            .del::<i64, _>(self.key(id))
            .await
            .map(|_| ())
            .map_err(from_fred)
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
        let (mut ids, mut dead) = self.index_members(user).await?;
        ids.retain(|id| Some(id) != keep);
        let owner = user.to_owned();
        let deletes = self
            .for_each(&ids, move |store, id| {
                let args = vec![Value::from(owner.as_str()), Value::from(to_unix_ms(now))];
                async move {
                    store
                        .run(&store.inner.scripts.delete_bound, &id, args)
                        .await
                }
            })
            .await?;
        let mut ended = 0;
        for (id, reply) in deletes {
            if reply.as_i64() == Some(1) {
                ended += 1;
            }
            dead.push(id.to_string());
        }
        self.index_remove(user, dead).await?;
        Ok(ended)
    }
}
