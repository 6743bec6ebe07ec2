use std::time::Duration;

use sessionware_core::time::Duration as TimeDuration;

/// The tokio and fred form of a timeout; a negative one is none at all.
fn std_duration(d: TimeDuration) -> Duration {
    d.try_into().unwrap_or(Duration::ZERO)
}

use fred::clients::Pool;
use fred::interfaces::{ClientLike as _, LuaInterface as _};
use fred::types::Builder;
use fred::types::config::{Config, Options, ReconnectPolicy, UnresponsiveConfig};

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
        }
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
        let pool = match self.source {
            Source::Pool(pool) => {
                options.timeout = Some(self.command_timeout);
                pool
            }
            Source::Url(ref url) => {
                check_scheme(url)?;
                // fred builds the TLS config of a `rediss://` URL with rustls's process-wide
                // default provider; when more than one crate enables rustls with different
                // providers there is no default, and building would panic. Name ring, the
                // workspace's, unless the application installed one already.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let config = Config::from_url(url).map_err(ConnectError::InvalidUrl)?;
                self.build_pool(config).await?
            }
            Source::Config(ref config) => self.build_pool((**config).clone()).await?,
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
        Ok(RedisStore::new(
            pool,
            self.prefix,
            self.command_timeout,
            options,
            scripts,
        ))
    }

    async fn build_pool(&self, config: Config) -> Result<Pool, ConnectError> {
        let timeout = self.command_timeout;
        let pool = Builder::from_config(config)
            .with_performance_config(|perf| perf.default_command_timeout = timeout)
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

fn timed_out() -> fred::error::Error {
    fred::error::Error::new(
        fred::error::ErrorKind::Timeout,
        "no connection within the connect timeout",
    )
}
