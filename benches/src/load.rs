//! The load generator: many keep-alive HTTP/1.1 connections over loopback, each sending its
//! next request as soon as the last one is answered.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Request, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::{SendRequest, handshake};
use hyper_util::rt::TokioIo;

/// What one measurement saw.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    pub(crate) latencies_us: Vec<u32>,
    /// On one shared session: the count `/read` answers once the load is over.
    pub(crate) count_after: Option<u64>,
}

impl Outcome {
    pub(crate) fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `q` (0..=1), in microseconds; `latencies_us` must be sorted.
    pub(crate) fn quantile_us(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies_us[i])
    }
}

struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    cookie: Option<String>,
}

async fn connect(addr: SocketAddr) -> Result<Conn, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(Conn {
        sender,
        cookie: None,
    })
}

/// Sends one request; returns whether it answered 200, keeping any cookie it set.
async fn send(conn: &mut Conn, path: &str) -> Result<bool, String> {
    let mut request = Request::get(path).header(header::HOST, "127.0.0.1");
    if let Some(cookie) = &conn.cookie {
        request = request.header(header::COOKIE, cookie.as_str());
    }
    let request = request.body(Empty::new()).map_err(|e| e.to_string())?;
    conn.sender.ready().await.map_err(|e| e.to_string())?;
    let response = conn
        .sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let ok = response.status().is_success();
    if let Some(set) = response.headers().get(header::SET_COOKIE)
        && let Ok(set) = set.to_str()
    {
        conn.cookie = set.split(';').next().map(str::to_owned);
    }
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(ok)
}

/// The count `/read` answers on `conn`'s session.
async fn count(conn: &mut Conn) -> Result<Option<u64>, String> {
    let request = Request::get("/read")
        .header(header::HOST, "127.0.0.1")
        .header(header::COOKIE, conn.cookie.as_deref().unwrap_or_default())
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    conn.sender.ready().await.map_err(|e| e.to_string())?;
    let response = conn
        .sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(std::str::from_utf8(&body)
        .ok()
        .and_then(|b| b.trim().parse().ok()))
}

/// Opens `connections` connections and gives each a session first (its own, or one shared by
/// all), then sends `path` on all of them for `duration`: as fast as answers come back, or,
/// with `rate`, paced to that many requests per second in all (so that systems can be compared
/// at the same load, where the kernel's share of each request is the same).
pub(crate) async fn run(
    addr: SocketAddr,
    path: &'static str,
    connections: usize,
    duration: Duration,
    shared_session: bool,
    rate: Option<f64>,
) -> Result<Outcome, String> {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(connect(addr).await?);
    }
    // The session is created outside the measurement, so `/read` measures reads.
    let mut shared_cookie = None;
    if shared_session {
        send(&mut conns[0], "/read").await?;
        let cookie = conns[0].cookie.clone();
        shared_cookie.clone_from(&cookie);
        for c in &mut conns {
            c.cookie.clone_from(&cookie);
        }
    } else {
        for c in &mut conns {
            send(c, "/read").await?;
        }
    }
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
    for (n, mut conn) in conns.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut out = Outcome::default();
            // Stagger the paced connections so they do not fire in step.
            let mut next = interval.map(|i| start + i.mul_f64(n as f64 / connections as f64));
            while Instant::now() < deadline {
                if let (Some(at), Some(step)) = (next.as_mut(), interval) {
                    tokio::time::sleep_until((*at).into()).await;
                    *at += step;
                }
                let sent = Instant::now();
                match send(&mut conn, path).await {
                    Ok(true) => out.requests += 1,
                    Ok(false) => out.errors += 1,
                    Err(_) => {
                        out.errors += 1;
                        break;
                    }
                }
                let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                out.latencies_us.push(us);
            }
            out
        });
    }
    let mut total = Outcome::default();
    while let Some(done) = tasks.join_next().await {
        let out = done.map_err(|e| e.to_string())?;
        total.requests += out.requests;
        total.errors += out.errors;
        total.latencies_us.extend(out.latencies_us);
    }
    total.elapsed = start.elapsed();
    total.latencies_us.sort_unstable();
    // Every answer is in: the count the shared session ended with (it started at 0).
    if let Some(cookie) = shared_cookie {
        let mut conn = connect(addr).await?;
        conn.cookie = Some(cookie);
        total.count_after = count(&mut conn).await?;
    }
    Ok(total)
}
