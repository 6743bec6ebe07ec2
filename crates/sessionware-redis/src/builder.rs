use std::time::Duration;

use sessionware_core::time::Duration as TimeDuration;

/// The tokio and fred form of a timeout; a negative one is none at all.
fn std_duration(d: TimeDuration) -> Duration {
    d.try_into().unwrap_or(Duration::ZERO)
}

use fred::clients::Pool;
use fred::interfaces::{ClientLike as _, LuaInterface as _};
use std::sync::Arc;

use fred::types::config::{Config, Options, ReconnectPolicy, UnresponsiveConfig};
use fred::types::{Builder, RespVersion};

use crate::near_cache::NearCache;

use crate::script::Scripts;
use crate::{ConnectError, RedisStore};

/// Settings for a [`RedisStore`]; from [`RedisStore::builder`], [`RedisStore::from_config`] or
/// [`RedisStore::from_pool`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `connect`"]
pub struct RedisStoreBuilder {
    source: Source,
    prefix: String,
    command_timeout: Duration,
    connect_timeout: Duration,
    pool_size: usize,
    near_cache: bool,
    near_cache_capacity: usize,
}

enum Source {
    Url(String),
    Config(Box<Config>),
    Pool(Pool),
}

/// Names the source only: a URL or a config may hold a password.
impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Url(_) => "Url(..)",
            Self::Config(_) => "Config(..)",
            Self::Pool(_) => "Pool(..)",
        })
    }
}

impl RedisStore {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = "session:";
    /// The default command timeout: one second, far above a healthy Redis's sub-millisecond
    /// answer and well below the layer's own five, so a stalled Redis yields a prompt `503`.
    pub const DEFAULT_COMMAND_TIMEOUT: TimeDuration = TimeDuration::seconds(1);
    /// The default time allowed for the first connection: five seconds.
    pub const DEFAULT_CONNECT_TIMEOUT: TimeDuration = TimeDuration::seconds(5);
    /// The default number of connections in the pool.
    pub const DEFAULT_POOL_SIZE: usize = 4;
    /// The default bound on the near cache's memory: 64 MiB, about 100,000 sessions of a few
    /// small keys each (see [`RedisStoreBuilder::near_cache_capacity`]).
    pub const DEFAULT_NEAR_CACHE_CAPACITY: usize = 64 << 20;

    /// Connects to the Redis at `url` with the default settings.
    ///
    /// `url` is any URL fred understands: `redis://[user:pass@]host[:port][/db]`,
    /// `rediss://...` (TLS), `redis-cluster://host:port[?node=host:port...]`,
    /// `redis-sentinel://host:port[/db]?sentinelServiceName=name[&node=host:port...]`.
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::builder(url).connect().await
    }

    /// Settings for a store on the Redis at `url` (see [`connect`](Self::connect)).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Source::Url(url.into()))
    }

    /// Settings for a store on a fred [`Config`] the application built (TLS, credentials,
    /// Sentinel or Cluster settings of its own). The store builds its pool from it, with its
    /// command timeout and a reconnect policy that never gives up.
    pub fn from_config(config: Config) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Source::Config(Box::new(config)))
    }

    /// Settings for a store on a fred [`Pool`] the application already has and has connected
    /// (`init`). Its reconnect policy is the application's to choose: give it one (see
    /// [`RedisStoreBuilder::connect`]) so the store recovers when Redis comes back. The
    /// store's command timeout applies to each of its commands.
    pub fn from_pool(pool: Pool) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Source::Pool(pool))
    }
}

impl RedisStoreBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            prefix: RedisStore::DEFAULT_PREFIX.to_owned(),
            command_timeout: std_duration(RedisStore::DEFAULT_COMMAND_TIMEOUT),
            connect_timeout: std_duration(RedisStore::DEFAULT_CONNECT_TIMEOUT),
            pool_size: RedisStore::DEFAULT_POOL_SIZE,
            near_cache: true,
            near_cache_capacity: RedisStore::DEFAULT_NEAR_CACHE_CAPACITY,
        }
    }

    /// Whether to keep a near cache of sessions in process (default `true`): a load it can
    /// answer sends no command, and a write to a cached session is one. Redis keeps it
    /// coherent across instances with client tracking; see the [crate docs](crate#the-near-cache).
    ///
    /// It needs RESP3 and `CLIENT TRACKING` (Redis 6.2 or later): on an older server, or on an
    /// application's pool that speaks RESP2, the store runs without it and logs why once.
    pub fn near_cache(mut self, enabled: bool) -> Self {
        self.near_cache = enabled;
        self
    }

    /// The most memory the near cache may take, in bytes (default
    /// [`DEFAULT_NEAR_CACHE_CAPACITY`](RedisStore::DEFAULT_NEAR_CACHE_CAPACITY)). A session
    /// costs its keys' and values' bytes plus about 100 bytes a key and 250 a session; the
    /// oldest cached sessions make room for new ones. Size it for the sessions active within
    /// a few minutes, not all of them: a miss costs one `HGETALL`, as without the cache.
    pub fn near_cache_capacity(mut self, bytes: usize) -> Self {
        self.near_cache_capacity = bytes;
        self
    }

    /// The prefix of every key the store writes (default `session:`), so that several
    /// applications can share one Redis.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest one command may take (default one second); a call that takes longer fails
    /// with [`sessionware_core::Error::Timeout`], which the layer answers with `503`.
    pub fn command_timeout(mut self, timeout: TimeDuration) -> Self {
        self.command_timeout = std_duration(timeout).max(Duration::from_millis(1));
        self
    }

    /// The longest [`connect`](Self::connect) waits for the first connection (default five
    /// seconds).
    pub fn connect_timeout(mut self, timeout: TimeDuration) -> Self {
        self.connect_timeout = std_duration(timeout).max(Duration::from_millis(1));
        self
    }

    /// Connections in the pool (default 4, at least 1). Each connection pipelines many
    /// concurrent commands; a few are enough for most applications.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Connects (unless given a pool) and loads the store's scripts into Redis, so that a
    /// store which connects is one that works.
    ///
    /// The pool the store builds reconnects by itself, forever, with a backoff from 100 ms to
    /// 2 s; commands sent while it is down fail after the command timeout, and the store
    /// works again as soon as Redis is back. A connection that stops answering is dropped
    /// and replaced.
    pub async fn connect(self) -> Result<RedisStore, ConnectError> {
        // The pool the store builds carries the command timeout as its default, which costs
        // nothing per command; an application's pool has its own defaults, so there every
        // command carries the timeout itself.
        let mut options = Options::default();
        let pool = match &self.source {
            Source::Pool(pool) => {
                options.timeout = Some(self.command_timeout);
                pool.clone()
            }
            Source::Url(url) => {
                check_scheme(url)?;
                // fred builds the TLS config of a `rediss://` URL with rustls's process-wide
                // default provider; when more than one crate enables rustls with different
                // providers there is no default, and building would panic. Name ring, the
                // workspace's, unless the application installed one already.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let config = Config::from_url(url).map_err(ConnectError::InvalidUrl)?;
                self.build_pool_for_cache(config).await?
            }
            Source::Config(config) => self.build_pool_for_cache((**config).clone()).await?,
        };
        let scripts = Scripts::new();
        let load = async {
            for script in scripts.all() {
                if let Some(body) = script.lua() {
                    pool.script_load_cluster::<(), _>(body.clone()).await?;
                }
            }
            Ok::<_, fred::error::Error>(())
        };
        match tokio::time::timeout(self.connect_timeout, load).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ConnectError::Connect(e)),
            Err(_) => return Err(ConnectError::Connect(timed_out())),
        }
        let cache = self.start_cache(&pool).await;
        Ok(RedisStore::new(
            pool,
            self.prefix,
            self.command_timeout,
            options,
            scripts,
            cache,
        ))
    }

    /// A pool that speaks RESP3 when the near cache wants it; a server that does not (before
    /// Redis 6: no `HELLO`) gets RESP2 and no cache.
    async fn build_pool_for_cache(&self, mut config: Config) -> Result<Pool, ConnectError> {
        if !self.near_cache {
            return self.build_pool(config).await;
        }
        let resp2 = config.clone();
        config.version = RespVersion::RESP3;
        match self.build_pool(config).await {
            Err(ConnectError::Connect(error)) if refuses_hello(&error) => {
                self.build_pool(resp2).await
            }
            built => built,
        }
    }

    /// The near cache over `pool`, with tracking on, or `None` with the reason logged.
    async fn start_cache(&self, pool: &Pool) -> Option<Arc<NearCache>> {
        if !self.near_cache {
            return None;
        }
        let first = pool.clients().first()?;
        if first.protocol_version() != RespVersion::RESP3 {
            tracing::warn!(
                "sessionware-redis: near cache off: the connection speaks RESP2 (a server \
                 before Redis 6, or a pool built without `RespVersion::RESP3`), and client \
                 tracking needs RESP3; every load reads Redis"
            );
            return None;
        }
        if let Some(version) = first.server_version() {
            if (version.major, version.minor) < (6, 2) {
                tracing::warn!(
                    %version,
                    "sessionware-redis: near cache off: it needs Redis 6.2 or later; every \
                     load reads Redis"
                );
                return None;
            }
        }
        let cache = NearCache::new(
            pool.clients(),
            &self.prefix,
            self.near_cache_capacity,
            self.command_timeout,
        );
        match tokio::time::timeout(self.connect_timeout, cache.start()).await {
            Ok(Ok(())) => Some(cache),
            Ok(Err(error)) => {
                tracing::warn!(
                    %error,
                    "sessionware-redis: near cache off: the server refused CLIENT TRACKING; \
                     every load reads Redis"
                );
                None
            }
            Err(_) => {
                tracing::warn!(
                    "sessionware-redis: near cache off: CLIENT TRACKING got no answer within \
                     the connect timeout; every load reads Redis"
                );
                None
            }
        }
    }

    async fn build_pool(&self, config: Config) -> Result<Pool, ConnectError> {
        let timeout = self.command_timeout;
        let pool = Builder::from_config(config)
            .with_performance_config(|perf| {
                perf.default_command_timeout = timeout;
                // Room for a burst of invalidations between two looks at the channel; one
                // that overflows costs the near cache its entries, not its correctness.
                perf.broadcast_channel_capacity = 1024;
            })
            .with_connection_config(|conn| {
                conn.connection_timeout = self.connect_timeout;
                conn.internal_command_timeout = self.connect_timeout;
                // A connection that stops answering (a stalled server, a failed-over master
                // that vanished without closing its sockets) is closed and reconnected.
                let unresponsive = (timeout * 2).max(Duration::from_secs(2));
                conn.unresponsive = UnresponsiveConfig {
                    max_timeout: Some(unresponsive),
                    interval: (unresponsive / 4).max(Duration::from_millis(100)),
                };
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build_pool(self.pool_size)
            .map_err(ConnectError::Config)?;
        match tokio::time::timeout(self.connect_timeout, pool.init()).await {
            Ok(Ok(_)) => Ok(pool),
            failed => {
                // Stop the background reconnection of a pool nobody will use.
                let _ = pool.quit().await;
                Err(ConnectError::Connect(match failed {
                    Ok(Err(e)) => e,
                    _ => timed_out(),
                }))
            }
        }
    }
}

/// fred reads any unknown scheme as a plain `redis://` one; a typo there should be an error,
/// not a connection to wherever the rest of the URL points. The URL itself stays out of the
/// message: it may hold a password.
fn check_scheme(url: &str) -> Result<(), ConnectError> {
    const SCHEMES: [&str; 12] = [
        "redis",
        "rediss",
        "redis-cluster",
        "rediss-cluster",
        "redis-sentinel",
        "rediss-sentinel",
        "valkey",
        "valkeys",
        "valkey-cluster",
        "valkeys-cluster",
        "valkey-sentinel",
        "valkeys-sentinel",
    ];
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some(scheme) if SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) => Ok(()),
        _ => Err(ConnectError::InvalidUrl(fred::error::Error::new(
            fred::error::ErrorKind::Url,
            format!(
                "the scheme must be one of {}",
                SCHEMES.map(|s| format!("{s}://")).join(", ")
            ),
        ))),
    }
}

/// Whether a connection failed because the server does not know `HELLO` (Redis before 6).
fn refuses_hello(error: &fred::error::Error) -> bool {
    let details = error.details().to_ascii_lowercase();
    details.contains("hello") || details.contains("unknown command")
}

fn timed_out() -> fred::error::Error {
    fred::error::Error::new(
        fred::error::ErrorKind::Timeout,
        "no connection within the connect timeout",
    )
}
