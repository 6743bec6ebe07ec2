//! Per-request cost of the session layer alone: the same routes called in-process, with no
//! socket and no HTTP parsing, so what is left is the layer, the store and the handler. Stable
//! enough to compare one build with the next, and the shape to run under `callgrind`.
//!
//! ```text
//! cargo run --release -p sessionware-bench --bin bench -- micro [iterations]
//! cargo run --release -p sessionware-bench --bin bench -- micro --recorder [iterations]
//! valgrind --tool=callgrind target/release/bench micro 20000 sessionware-memory read
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use http::{Request, header};
use tower::ServiceExt as _;

use crate::systems::{System, Urls};

const ROUNDS: u32 = 9;

/// By default the systems that need no server: the in-process floor, both memory stores, the
/// memory store encrypted at rest and the cookie store.
const SYSTEMS: &[System] = &[
    System::Bare,
    System::SessionwareMemory,
    System::SessionwareMemoryAtRest,
    System::SessionwareCookie,
    System::TowerSessionsMemory,
];

/// `micro [--recorder] [iterations] [system] [route]`: ns per request for each route, after one
/// request that starts the session and whose cookie every later request sends. With
/// `--recorder`, a metrics recorder is installed first, so the layer counts and times every
/// store call; without, the facade's no-op recorder is in place, which is what the layer's
/// metrics cost most applications.
pub(crate) async fn run(args: &[String]) -> Result<(), String> {
    let recorder = args.iter().any(|a| a == "--recorder");
    let args: Vec<String> = args
        .iter()
        .filter(|a| *a != "--recorder")
        .cloned()
        .collect();
    if recorder {
        metrics::set_global_recorder(Summing::default())
            .map_err(|_| "micro: a metrics recorder is already installed")?;
    }
    let iterations: u32 = match args.first() {
        Some(n) => n.parse().map_err(|_| "micro: iterations is a number")?,
        None => 200_000,
    };
    let only = args.get(1).map(|slug| System::from_slug(slug));
    let systems: Vec<System> = match only {
        Some(Some(system)) => vec![system],
        Some(None) => return Err("micro: unknown system".into()),
        None => SYSTEMS.to_vec(),
    };
    // Named on the command line, a system with a server works too: then the cost includes
    // the client's side of each round trip (not the server's, which runs elsewhere).
    let urls = Urls {
        redis: std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        postgres: std::env::var("DATABASE_URL_POSTGRES")
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into()),
        sqlite: "sqlite::memory:".into(),
        mariadb: std::env::var("DATABASE_URL_MYSQL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into()),
    };
    let routes: &[&str] = match args.get(2).map(String::as_str) {
        Some("read") => &["/read"],
        Some("write") => &["/write"],
        _ => &["/read", "/write"],
    };
    // Each case with its app and the cookie of the session it reads; the cases alternate in
    // rounds and the report gives medians, as the load benchmark does, since the machine is
    // shared.
    let mut cases = Vec::new();
    for &system in &systems {
        // As `axum::serve` does: handlers become routes once, not on every request.
        let app = system.app(&urls).await?.with_state(());
        for &path in routes {
            let cookie = first_cookie(&app, path).await?;
            // Warm caches and the allocator.
            time(&app, path, cookie.as_deref(), iterations / 10).await?;
            cases.push((system, path, app.clone(), cookie, Vec::new()));
        }
    }
    for _ in 0..ROUNDS {
        for (_, path, app, cookie, samples) in &mut cases {
            samples.push(time(app, path, cookie.as_deref(), iterations / ROUNDS).await?);
        }
    }
    println!(
        "metrics recorder: {}",
        if recorder { "installed" } else { "none" }
    );
    println!("| system | route | ns/request, median [range] of {ROUNDS} rounds | over bare |");
    println!("|---|---|---|---|");
    let median = |samples: &mut Vec<f64>| {
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    };
    let mut floors = Vec::new();
    for (system, path, _, _, samples) in &mut cases {
        let ns = median(samples);
        if *system == System::Bare {
            floors.push((*path, ns));
        }
        let over = floors
            .iter()
            .find(|(p, _)| p == path)
            .filter(|_| *system != System::Bare)
            .map(|(_, floor)| format!("+{:.0}", ns - floor))
            .unwrap_or_default();
        println!(
            "| {} | {path} | {ns:.0} [{:.0}-{:.0}] | {over} |",
            system.name(),
            samples[0],
            samples[samples.len() - 1]
        );
    }
    Ok(())
}

async fn first_cookie(app: &Router, path: &str) -> Result<Option<String>, String> {
    let response = app
        .clone()
        .oneshot(request(path, None))
        .await
        .map_err(|e| e.to_string())?;
    Ok(response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned))
}

async fn time(app: &Router, path: &str, cookie: Option<&str>, n: u32) -> Result<f64, String> {
    let started = Instant::now();
    for _ in 0..n {
        let response = app
            .clone()
            .oneshot(request(path, cookie))
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{path}: {}", response.status()));
        }
        // The body is produced and dropped, as a server would after writing it.
        drop(axum::body::to_bytes(response.into_body(), 64).await);
    }
    Ok(started.elapsed().as_nanos() as f64 / f64::from(n.max(1)))
}

fn request(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(path);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    builder.body(Body::empty()).unwrap_or_default()
}

/// A recorder that does what an exporter's hot path does: an atomic add per count, per sample
/// a count and a sum. Not zero-sized, like any recorder that keeps what it is given (the
/// layer takes a zero-sized recorder for the facade's no-op one).
#[derive(Default)]
struct Summing {
    registered: AtomicU64,
}

#[derive(Default)]
struct Sums {
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl metrics::HistogramFn for Sums {
    fn record(&self, value: f64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add((value * 1e9) as u64, Ordering::Relaxed);
    }
}

impl metrics::Recorder for Summing {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        self.registered.fetch_add(1, Ordering::Relaxed);
        metrics::Counter::from_arc(Arc::new(AtomicU64::new(0)))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(Arc::new(AtomicU64::new(0)))
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::from_arc(Arc::new(Sums::default()))
    }
}
