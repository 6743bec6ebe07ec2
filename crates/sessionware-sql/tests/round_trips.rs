//! Round trips per request, counted on the wire: the store talks to PostgreSQL and MariaDB
//! through a loopback proxy that counts exchanges (each time the client speaks after the
//! server has), while real HTTP requests go through the session layer. A ping that sqlx's pool
//! sends when a connection comes back would count as one more exchange, so these tests also
//! show that no request pays for one.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use common::*;
use sessionware::time::Duration;
use sessionware::{Error, ExpiryPolicy, Key, ManualClock, Session, SessionLayer};
use sessionware_sql::SqlStore;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards loopback connections to `upstream`, counting request/response exchanges.
struct Proxy {
    addr: SocketAddr,
    exchanges: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const CLIENT: u8 = 1;
const SERVER: u8 = 2;

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    side: u8,
    last: Arc<AtomicU8>,
    exchanges: Arc<AtomicUsize>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Counted before forwarding, so the other side cannot answer first.
        if last.swap(side, Ordering::SeqCst) != side && side == CLIENT {
            exchanges.fetch_add(1, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let exchanges = Arc::new(AtomicUsize::new(0));
        let counter = exchanges.clone();
        let task = tokio::spawn(async move {
            let mut pumps = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(upstream).await.unwrap();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let last = Arc::new(AtomicU8::new(SERVER));
                pumps.spawn(pump(cr, sw, CLIENT, last.clone(), counter.clone()));
                pumps.spawn(pump(sr, cw, SERVER, last, counter.clone()));
            }
        });
        Self {
            addr,
            exchanges,
            task,
        }
    }

    fn take(&self) -> usize {
        self.exchanges.swap(0, Ordering::SeqCst)
    }
}

async fn inc(session: Session) -> Result<String, Error> {
    let n: u64 = session.get("count")?.unwrap_or(0);
    session.insert("count", n + 1)?;
    Ok((n + 1).to_string())
}

async fn increment(session: Session) -> Result<String, Error> {
    Ok(session.increment("count", 1)?.to_string())
}

async fn update(session: Session) -> Result<String, Error> {
    Ok(session.update("count", |n: &mut u64| *n += 1)?.to_string())
}

async fn peek(session: Session) -> Result<String, Error> {
    Ok(session.get::<u64>("count")?.unwrap_or(0).to_string())
}

async fn serve(layer: SessionLayer) -> SocketAddr {
    let app = Router::new()
        .route("/write", get(inc))
        .route("/read", get(peek))
        .route("/increment", get(increment))
        .route("/update", get(update))
        .route("/health", get(|| async { "ok" }))
        .layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A client that keeps the session cookie.
struct Client {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
            cookie: None,
        }
    }

    async fn get(&mut self, path: &str) -> String {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            request = request.header("cookie", c);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        if let Some(set) = response.headers().get("set-cookie") {
            let set = cookie::Cookie::parse(set.to_str().unwrap().to_owned()).unwrap();
            self.cookie = Some(format!("{}={}", set.name(), set.value()));
        }
        response.text().await.unwrap()
    }
}

/// Runs the request mix against a store reached through `proxy`; `refresh_costs` is the
/// number of round trips a read that also moves the deadline takes on this engine.
async fn check(name: &str, url: &str, proxy: &Proxy, refresh_costs: usize) {
    let table = unique_table("rt");
    let store = SqlStore::connect(url)
        .await
        .unwrap()
        .with_table(&table)
        .unwrap();
    store.migrate().await.unwrap();
    let clock = ManualClock::new();
    let layer = SessionLayer::new(store.clone())
        .with_signing_key(Key::generate().unwrap())
        .with_clock(clock.clone())
        .with_expiry(
            ExpiryPolicy::new()
                .with_idle_timeout(Some(Duration::minutes(30)))
                .with_refresh_interval(Duration::minutes(3)),
        );
    let addr = serve(layer).await;

    // Warm up: the pool's connection, and each statement prepared once on it.
    let mut warm = Client::new(addr);
    assert_eq!(warm.get("/write").await, "1");
    assert_eq!(warm.get("/write").await, "2");
    assert_eq!(warm.get("/read").await, "2");
    assert_eq!(warm.get("/increment").await, "3");
    assert_eq!(warm.get("/update").await, "4");
    clock.advance(Duration::minutes(5));
    assert_eq!(warm.get("/read").await, "4");
    proxy.take();

    let mut client = Client::new(addr);
    assert_eq!(client.get("/health").await, "ok");
    assert_eq!(proxy.take(), 0, "{name}: a route without the session");
    assert_eq!(client.get("/write").await, "1");
    assert_eq!(proxy.take(), 1, "{name}: creating a session");
    for round in 2..5 {
        assert_eq!(client.get("/read").await, (round - 1).to_string());
        assert_eq!(proxy.take(), 1, "{name}: a read-only request");
        assert_eq!(client.get("/write").await, round.to_string());
        assert_eq!(proxy.take(), 2, "{name}: a request that writes");
        assert_eq!(client.get("/health").await, "ok");
        assert_eq!(proxy.take(), 0, "{name}: a route without the session");
    }
    // Past the refresh interval: the read also moves the deadline.
    clock.advance(Duration::minutes(5));
    assert_eq!(client.get("/read").await, "4");
    assert_eq!(
        proxy.take(),
        refresh_costs,
        "{name}: a read-only request that refreshes"
    );
    // Without contention an increment or a compare-and-set is the write's one statement.
    assert_eq!(client.get("/increment").await, "5");
    assert_eq!(proxy.take(), 2, "{name}: a request that increments");
    assert_eq!(client.get("/update").await, "6");
    assert_eq!(proxy.take(), 2, "{name}: a request that updates");

    drop(store);
    drop_table(url, &table).await;
}

/// A rekey (a sign-in's id renewal), called on the store as the layer calls it: one statement
/// on every engine, one more for each id found taken.
async fn check_rekey(name: &str, url: &str, proxy: &Proxy) {
    use sessionware_core::{Clock as _, SessionStore as _, SystemClock};
    let table = unique_table("rtk");
    let store = SqlStore::connect(url)
        .await
        .unwrap()
        .with_table(&table)
        .unwrap();
    store.migrate().await.unwrap();
    let t0 = SystemClock.now();
    let fresh = || record(t0, Duration::minutes(5), serde_json::json!({"k": 1}));

    // Warm up: each statement prepared once on the connection.
    let id = store.create(&fresh()).await.unwrap();
    let mut id = store.rekey(&id, None, &fresh(), t0).await.unwrap().unwrap();
    proxy.take();

    let mut next = fresh();
    next.user = Some("ada".into());
    id = store.rekey(&id, None, &next, t0).await.unwrap().unwrap();
    assert_eq!(proxy.take(), 1, "{name}: a rekey");
    let taken = store.create(&fresh()).await.unwrap();
    proxy.take();
    let mut onto_taken = fresh();
    onto_taken.id = taken;
    onto_taken.user = Some("ada".into());
    id = store
        .rekey(&id, Some("ada"), &onto_taken, t0)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(id, taken);
    assert_eq!(proxy.take(), 2, "{name}: a rekey onto a taken id");
    assert_eq!(store.rekey(&id, None, &fresh(), t0).await.unwrap(), None);
    assert_eq!(proxy.take(), 1, "{name}: a refused rekey");

    drop(store);
    drop_table(url, &table).await;
}

async fn drop_table(url: &str, table: &str) {
    if url.starts_with("postgres") {
        drop_pg(&sqlx::PgPool::connect(url).await.unwrap(), table).await;
    } else {
        drop_mysql(&sqlx::MySqlPool::connect(url).await.unwrap(), table).await;
    }
}

#[tokio::test]
async fn postgres_round_trips() {
    let Some(url) = pg_url().await else { return };
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let via = url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    assert_ne!(via, url, "the test expects the default server address");
    check("postgres", &via, &proxy, 2).await;
    check_rekey("postgres", &via, &proxy).await;
}

#[tokio::test]
async fn mariadb_round_trips() {
    let Some(url) = mysql_url().await else { return };
    let proxy = Proxy::start("127.0.0.1:3306".parse().unwrap()).await;
    let via = url.replace("127.0.0.1:3306", &proxy.addr.to_string());
    assert_ne!(via, url, "the test expects the default server address");
    check("mariadb", &via, &proxy, 2).await;
    check_rekey("mariadb", &via, &proxy).await;
}
