//! Load through the layer while the store fails: many concurrent clients over real loopback
//! HTTP, each sending its next request when the last is answered, and a ledger of what was
//! acknowledged. A test stops and starts the store's server in the middle, then checks that
//! every write that answered `2xx` is in the store.
//!
//! ```no_run
//! # async fn t(store: sessionware_memory::MemoryStore) {
//! use std::time::Duration;
//! use sessionware::SessionLayer;
//! use sessionware_test_support::load::{self, Load, Outcome};
//!
//! let addr = load::serve(SessionLayer::new(store.clone())).await;
//! let mut running = Load::new(8).start(addr);
//! running.until("some writes", Duration::from_secs(30), |t| t.acked >= 100).await;
//! running.next_epoch(); // ... stop the store's server here ...
//! running.until_every_client(Outcome::Unavailable, Duration::from_secs(30)).await;
//! running.next_epoch(); // ... start it again ...
//! running.until_every_client(Outcome::Acked, Duration::from_secs(30)).await;
//! running.finish().await.verify(&store).await;
//! # }
//! ```
//!
//! Every request is bounded by [`Load::request_timeout`] (past it the test fails: a hang), and
//! a client fails the test on any answer but `200` or `503` from a session route, or anything
//! but `200` from `/health`. A write's answer must show that every earlier acknowledged write
//! of its session is there.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use sessionware::{Error, Key, Session, SessionId, SessionLayer, SessionStore};
use sessionware_core::time::OffsetDateTime;
use tokio::task::JoinHandle;

use crate::client::{Client, Reply};

/// Serves the app the clients drive (`/inc`, `/login/{user}`, `/logout`, `/health`) behind
/// `layer`, with a fixed signing key, on a free loopback port.
pub async fn serve(layer: SessionLayer) -> SocketAddr {
    let key = Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 7 ^ i as u8)).unwrap();
    crate::client::serve(app(layer.with_signing_key(key))).await
}

fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route(
            "/inc",
            get(|s: Session| async move {
                let n: u64 = s.get("count")?.unwrap_or(0);
                s.insert("count", n + 1)?;
                Ok::<_, Error>((n + 1).to_string())
            }),
        )
        .route(
            "/login/{user}",
            get(|s: Session, Path(user): Path<String>| async move { s.login(user) }),
        )
        .route("/logout", get(|s: Session| async move { s.logout() }))
        .route("/health", get(|| async { "ok" }))
        .layer(layer)
}

/// The outage every store's server is put through: `load` (one session per client, see
/// [`Load::new`]) runs against the app at `addr`; once every client has written ten times,
/// `stop` stops the server; once every client has seen a `503` and a `200` from `/health`,
/// `start` starts it again; once every client's session has answered `2xx` again, the load
/// stops. Then it checks that no `503` took longer than `unavailable_within`, that every
/// session was created before the stop and works again after the start (same cookie, same
/// count: the application was not restarted), and, reading `store` directly, that every
/// acknowledged write is there.
///
/// `stop` and `start` may block (they run in `block_in_place`): call this from a
/// multi-threaded runtime.
pub async fn outage(
    store: &impl SessionStore,
    addr: SocketAddr,
    load: Load,
    unavailable_within: Duration,
    stop: impl FnOnce(),
    start: impl FnOnce(),
) -> Report {
    const BOUND: Duration = Duration::from_secs(60);
    let clients = load.clients as u64;
    let mut running = load.start(addr);
    running
        .until("ten writes per client", BOUND, |t| t.acked >= 10 * clients)
        .await;
    tokio::task::block_in_place(stop);
    running.next_epoch();
    running
        .until_every_client(Outcome::Unavailable, BOUND)
        .await;
    running.until_every_client(Outcome::Health, BOUND).await;
    tokio::task::block_in_place(start);
    running.next_epoch();
    running.until_every_client(Outcome::Acked, BOUND).await;
    let report = running.finish().await;

    println!(
        "outage: {:?}; slowest 503 {:?}, slowest answer {:?}",
        report.totals, report.slowest_unavailable, report.slowest
    );
    assert!(
        report.slowest_unavailable <= unavailable_within,
        "outage: a 503 took {:?}, more than {unavailable_within:?}",
        report.slowest_unavailable
    );
    assert_eq!(
        report.sessions.len() as u64,
        clients,
        "one session per client"
    );
    for session in &report.sessions {
        assert_eq!(session.created_epoch, 0, "outage: created before the stop");
        assert_eq!(
            session.last_acked_epoch, 2,
            "outage: the same cookie works after the start, without restarting the app: \
             {session:?}"
        );
    }
    assert_eq!(report.verify(store).await as u64, clients);
    report
}

/// The shape of the load. Each client works through sessions one at a time: it starts one
/// (signing in first, for every `login_every`-th session), counts `writes_per_session` times,
/// signs out (every `logout_every`-th session) and starts the next, until `max_sessions`
/// have been started in all or [`Running::finish`] is called.
#[derive(Debug, Clone)]
pub struct Load {
    /// Concurrent clients, each with its own connection.
    pub clients: usize,
    /// Sessions started in all, across clients.
    pub max_sessions: u64,
    /// Acknowledged writes per session before its client moves on; `u64::MAX` keeps one
    /// session per client for the whole run.
    pub writes_per_session: u64,
    /// Every n-th session starts with a sign-in (0: never).
    pub login_every: u64,
    /// Sign-ins are spread over this many users, so each user has several sessions.
    pub users: u64,
    /// Every n-th session ends with a sign-out (0: never).
    pub logout_every: u64,
    /// Every n-th request goes to `/health`, which does not use the session.
    pub health_every: u64,
    /// An answer that takes longer than this fails the test.
    pub request_timeout: Duration,
}

impl Load {
    /// `clients` clients, one session each for the whole run, no sign-ins, every third
    /// request to `/health`, 10 s per request at most.
    pub fn new(clients: usize) -> Self {
        Self {
            clients,
            max_sessions: clients as u64,
            writes_per_session: u64::MAX,
            login_every: 0,
            users: 1,
            logout_every: 0,
            health_every: 3,
            request_timeout: Duration::from_secs(10),
        }
    }

    /// Starts the clients against the app at `addr` (see [`serve`]).
    pub fn start(self, addr: SocketAddr) -> Running {
        let clients = self.clients;
        // Reserved whole at the start: one allocation, given back whole to the system when
        // the report is dropped, where a ledger grown piece by piece leaves freed pieces in
        // the heap that a memory check of a long run would count as growth.
        let ledger_capacity = self.max_sessions.min(1 << 20) as usize;
        let shared = Arc::new(Shared {
            load: self,
            // A run's users are its own, so runs on a shared store never see each other's.
            users: SessionId::generate().unwrap().to_string()[..8].to_owned(),
            stop: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            reserved: AtomicU64::new(0),
            totals: Default::default(),
            slowest_unavailable_us: AtomicU64::new(0),
            slowest_us: AtomicU64::new(0),
            seen: (0..clients).map(|_| Default::default()).collect(),
            ledger: Mutex::new(Vec::with_capacity(ledger_capacity)),
        });
        let tasks = (0..clients)
            .map(|n| tokio::spawn(client(n, addr, shared.clone())))
            .collect();
        Running {
            shared,
            tasks,
            started: Instant::now(),
        }
    }
}

/// What a client can see from a request, for [`Running::until_every_client`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A session route answered `2xx`: the write (or the new session) is stored.
    Acked = 0,
    /// A session route answered `503`.
    Unavailable = 1,
    /// `/health` answered `200`.
    Health = 2,
}

/// Counts so far, across clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Sessions stored (their first request answered `2xx`).
    pub sessions: u64,
    /// Requests to session routes that answered `2xx`.
    pub acked: u64,
    /// Requests to session routes that answered `503`.
    pub unavailable: u64,
    /// `/health` requests (all answered `200`).
    pub health: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sessions: AtomicU64,
    acked: AtomicU64,
    unavailable: AtomicU64,
    health: AtomicU64,
}

impl Counters {
    fn get(&self) -> Totals {
        Totals {
            sessions: self.sessions.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
            health: self.health.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
struct Shared {
    load: Load,
    users: String,
    stop: AtomicBool,
    epoch: AtomicU64,
    /// Sessions handed out to clients (a session is reserved before its first request).
    reserved: AtomicU64,
    totals: Counters,
    slowest_unavailable_us: AtomicU64,
    slowest_us: AtomicU64,
    seen: Vec<Seen>,
    /// Every session the clients started, added when its client is done with it.
    ledger: Mutex<Vec<Tracked>>,
}

/// What one client has seen.
#[derive(Debug, Default)]
struct Seen {
    /// Per [`Outcome`]: 1 + the latest epoch in which the client saw it (0: never).
    outcomes: [AtomicU64; 3],
    /// It ran out of sessions to start.
    finished: AtomicBool,
}

impl Shared {
    fn ledger(&self) -> MutexGuard<'_, Vec<Tracked>> {
        self.ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn saw(&self, client: usize, outcome: Outcome) {
        let epoch = self.epoch.load(Ordering::SeqCst);
        self.seen[client].outcomes[outcome as usize].fetch_max(epoch + 1, Ordering::SeqCst);
    }
}

/// The load while it runs.
pub struct Running {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Running {
    /// The load's shape.
    pub fn load(&self) -> &Load {
        &self.shared.load
    }

    /// Counts so far.
    pub fn totals(&self) -> Totals {
        self.shared.totals.get()
    }

    /// How long the load has run.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Starts a new epoch (the first is 0) and returns it: call it as the store's server
    /// stops or starts, so [`until_every_client`](Self::until_every_client) and
    /// [`Tracked::last_acked_epoch`] speak of what happened after that.
    pub fn next_epoch(&self) -> u64 {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Polls until `done(totals)`, failing the test after `within`, or as soon as a client
    /// failed.
    pub async fn until(&mut self, what: &str, within: Duration, done: impl Fn(Totals) -> bool) {
        let start = Instant::now();
        loop {
            self.reap().await;
            if done(self.totals()) {
                return;
            }
            assert!(
                start.elapsed() < within,
                "load: timed out after {within:?} waiting for {what} ({:?})",
                self.totals()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until every client still running has seen `outcome` in the current epoch,
    /// failing the test after `within`.
    pub async fn until_every_client(&mut self, outcome: Outcome, within: Duration) {
        let epoch = self.shared.epoch.load(Ordering::SeqCst);
        let shared = self.shared.clone();
        self.until(
            &format!("every client to see {outcome:?} in epoch {epoch}"),
            within,
            |_| {
                shared.seen.iter().all(|seen| {
                    seen.finished.load(Ordering::SeqCst)
                        || seen.outcomes[outcome as usize].load(Ordering::SeqCst) > epoch
                })
            },
        )
        .await;
    }

    /// Stops the clients (each finishes its request in flight) and returns what they saw.
    pub async fn finish(mut self) -> Report {
        self.shared.stop.store(true, Ordering::SeqCst);
        for task in self.tasks.drain(..) {
            joined(task).await;
        }
        let micros = |a: &AtomicU64| Duration::from_micros(a.load(Ordering::Relaxed));
        Report {
            sessions: std::mem::take(&mut self.shared.ledger()),
            users: self.shared.users.clone(),
            totals: self.totals(),
            slowest_unavailable: micros(&self.shared.slowest_unavailable_us),
            slowest: micros(&self.shared.slowest_us),
        }
    }

    /// Collects the clients that have ended; re-raises a client's panic here, so the test
    /// fails with the client's message rather than by a timeout.
    async fn reap(&mut self) {
        let mut i = 0;
        while i < self.tasks.len() {
            if self.tasks[i].is_finished() {
                joined(self.tasks.swap_remove(i)).await;
            } else {
                i += 1;
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that fails half-way leaves no clients running against the next test.
        self.shared.stop.store(true, Ordering::SeqCst);
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn joined(task: JoinHandle<()>) {
    match task.await {
        Ok(()) => {}
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("load: a client was cancelled: {e}"),
    }
}

/// One session a client started, as the client saw it. Nothing in it is on the heap (the id
/// is kept rather than the cookie, the user's number rather than the name), for the same
/// reason the ledger is reserved whole.
#[derive(Debug, Clone, Copy)]
pub struct Tracked {
    /// The session's id.
    pub id: SessionId,
    /// The number of the user the session signed in as, if it did (see [`Report::user`]).
    pub user: Option<u64>,
    /// The count of the last write that answered `2xx` (0 when none did).
    pub acked: u64,
    /// Writes after that one that answered `503`: each may or may not have been stored.
    pub unacked: u64,
    /// The epoch in which the session was stored.
    pub created_epoch: u64,
    /// The epoch of the last request that answered `2xx`.
    pub last_acked_epoch: u64,
    /// Its sign-out answered `2xx`: the store must not hold it.
    pub ended: bool,
    /// Its sign-out answered `503` and the load stopped: the store may or may not hold it.
    pub maybe_ended: bool,
}

/// What the clients saw, when the load has stopped.
#[derive(Debug)]
pub struct Report {
    /// Every session a client stored.
    pub sessions: Vec<Tracked>,
    users: String,
    /// The final counts.
    pub totals: Totals,
    /// The slowest `503`.
    pub slowest_unavailable: Duration,
    /// The slowest answer of any kind.
    pub slowest: Duration,
}

impl Report {
    /// The name of user number `n`.
    pub fn user(&self, n: u64) -> String {
        user_name(&self.users, n)
    }

    /// Checks against `store` that every acknowledged write is there: each session's count is
    /// the last one that answered `2xx`, or above it by at most the writes that answered `503`
    /// since (a write can be stored and still time out); a session whose sign-out answered
    /// `2xx` is gone. Returns how many sessions it checked.
    pub async fn verify(&self, store: &impl SessionStore) -> usize {
        let now = OffsetDateTime::now_utc();
        for session in &self.sessions {
            let loaded = store
                .load(&session.id, now)
                .await
                .unwrap_or_else(|e| panic!("verify: the store fails: {e}"));
            match loaded {
                None if session.ended || session.maybe_ended => {}
                None => panic!("verify: a session that answered 2xx is gone: {session:?}"),
                Some(_) if session.ended => {
                    panic!(
                        "verify: a sign-out answered 2xx, but the session is stored: {session:?}"
                    )
                }
                Some(record) => {
                    let count = record
                        .data
                        .get("count")
                        .and_then(|v| v.as_u64())
                        .unwrap_or(0);
                    assert!(
                        (session.acked..=session.acked + session.unacked).contains(&count),
                        "verify: the store holds count {count} for {session:?}"
                    );
                    assert_eq!(
                        record.user,
                        session.user.map(|n| self.user(n)),
                        "verify: the user binding is stored"
                    );
                }
            }
        }
        self.sessions.len()
    }
}

fn user_name(users: &str, n: u64) -> String {
    format!("user-{users}-{n}")
}

/// One client: its own connection, one request at a time, until told to stop or out of
/// sessions to start.
async fn client(n: usize, addr: SocketAddr, shared: Arc<Shared>) {
    let load = &shared.load;
    let mut http = Client::new(addr);
    // The session being driven, and its number among all the load's sessions.
    let mut current: Option<Tracked> = None;
    let mut reserved: Option<u64> = None;
    let mut requests = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        requests += 1;
        if load.health_every > 0 && requests % load.health_every == 0 {
            let reply = request(&shared, &mut http, "/health").await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (200, "ok"),
                "load: /health must not depend on the store"
            );
            shared.totals.health.fetch_add(1, Ordering::Relaxed);
            shared.saw(n, Outcome::Health);
            continue;
        }
        let k = match reserved {
            Some(k) => k,
            None => {
                let k = shared.reserved.fetch_add(1, Ordering::SeqCst);
                if k >= load.max_sessions {
                    shared.seen[n].finished.store(true, Ordering::SeqCst);
                    break;
                }
                *reserved.insert(k)
            }
        };
        let Some(session) = current.as_mut() else {
            // Start session `k`: its first request, again until it is stored.
            http.jar = None;
            let login = load.login_every > 0 && k % load.login_every == 0;
            let user = login.then(|| k / load.login_every % load.users);
            let path = match user {
                Some(user) => format!("/login/{}", user_name(&shared.users, user)),
                None => "/inc".to_owned(),
            };
            let reply = request(&shared, &mut http, &path).await;
            if !answered(&shared, n, &reply) {
                continue;
            }
            let id = id_of(&http)
                .unwrap_or_else(|| panic!("load: a new session answered 2xx without a cookie"));
            let acked = if login { 0 } else { count(&reply) };
            assert_eq!(
                acked,
                u64::from(!login),
                "load: a new session counts from 1"
            );
            let epoch = shared.epoch.load(Ordering::SeqCst);
            current = Some(Tracked {
                id,
                user,
                acked,
                unacked: 0,
                created_epoch: epoch,
                last_acked_epoch: epoch,
                ended: false,
                maybe_ended: false,
            });
            shared.totals.sessions.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if session.acked < load.writes_per_session {
            let reply = request(&shared, &mut http, "/inc").await;
            if answered(&shared, n, &reply) {
                let got = count(&reply);
                assert!(
                    got > session.acked && got <= session.acked + 1 + session.unacked,
                    "load: a write answered {got} after {} acknowledged and {} unacknowledged \
                     writes: an acknowledged write was lost or a failed one counted",
                    session.acked,
                    session.unacked
                );
                assert_eq!(
                    id_of(&http),
                    Some(session.id),
                    "load: the session kept its id"
                );
                session.acked = got;
                session.unacked = 0;
                session.last_acked_epoch = shared.epoch.load(Ordering::SeqCst);
            } else {
                session.unacked += 1;
            }
            continue;
        }
        if load.logout_every > 0 && k % load.logout_every == 0 {
            let reply = request(&shared, &mut http, "/logout").await;
            if !answered(&shared, n, &reply) {
                session.maybe_ended = true;
                continue;
            }
            assert!(http.jar.is_none(), "load: a sign-out removes the cookie");
            session.ended = true;
            session.maybe_ended = false;
        }
        shared.ledger().extend(current.take());
        reserved = None;
    }
    shared.ledger().extend(current);
}

/// `GET path`, bounded by the request timeout; records its latency.
async fn request(shared: &Shared, http: &mut Client, path: &str) -> Reply {
    let start = Instant::now();
    let reply = tokio::time::timeout(shared.load.request_timeout, http.get(path))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "load: GET {path} did not answer within {:?}: a hang",
                shared.load.request_timeout
            )
        });
    let micros = start.elapsed().as_micros() as u64;
    shared.slowest_us.fetch_max(micros, Ordering::Relaxed);
    if reply.status == 503 {
        shared
            .slowest_unavailable_us
            .fetch_max(micros, Ordering::Relaxed);
    }
    reply
}

/// `true` for `2xx`, `false` for `503`; anything else fails the test.
fn answered(shared: &Shared, client: usize, reply: &Reply) -> bool {
    match reply.status {
        200..=299 => {
            shared.totals.acked.fetch_add(1, Ordering::Relaxed);
            shared.saw(client, Outcome::Acked);
            true
        }
        503 => {
            shared.totals.unavailable.fetch_add(1, Ordering::Relaxed);
            shared.saw(client, Outcome::Unavailable);
            false
        }
        status => panic!(
            "load: a session route answered {status} ({:?}); only 2xx or 503 are allowed",
            reply.body
        ),
    }
}

/// The id in the cookie `http` holds.
fn id_of(http: &Client) -> Option<SessionId> {
    let token = http.jar.as_deref()?;
    let id = token.split('.').next().unwrap_or_default();
    Some(id.parse().expect("the cookie holds an id"))
}

fn count(reply: &Reply) -> u64 {
    reply
        .body
        .parse()
        .unwrap_or_else(|_| panic!("load: /inc answered {:?}", reply.body))
}
