//! Load benchmark: sessionware next to bare axum and tower-sessions, measured in one run on
//! one machine, with the systems alternating in rounds because the machine is shared and noisy.
//!
//! ```text
//! cargo run --release -p sessionware-bench --bin bench              # the full run
//! cargo run --release -p sessionware-bench --bin bench -- --quick   # a short smoke run
//! cargo run --release -p sessionware-bench --bin bench -- --systems sessionware-redis \
//!     --routes write,increment --rounds 3 --footprint ""          # the counter: lost updates
//! cargo run --release -p sessionware-bench --bin bench -- micro     # in-process cost per request
//! cargo run --release -p sessionware-bench --bin bench -- near-cache-footprint 100000
//! ```
//!
//! Each system runs as its own server process (this binary, `serve <system>`), so its CPU
//! time can be read from `/proc`; the load comes from this process over loopback.

mod footprint;
mod load;
mod micro;
mod probe;
mod systems;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use systems::System;

struct Options {
    rounds: usize,
    seconds: f64,
    connections: usize,
    server_threads: usize,
    systems: Vec<System>,
    redis_url: String,
    postgres_url: String,
    sqlite_url: String,
    mariadb_url: String,
    routes: Vec<Route>,
    footprint: Vec<usize>,
    /// Requests per second of the paced phase that measures CPU per request.
    paced_rate: f64,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Options {
            rounds: 5,
            seconds: 2.0,
            connections: 64,
            server_threads: 1,
            systems: System::ALL.to_vec(),
            redis_url: std::env::var("REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            postgres_url: std::env::var("DATABASE_URL_POSTGRES")
                .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into()),
            sqlite_url: format!(
                "sqlite://{}",
                std::env::temp_dir().join("sessionware-bench.db").display()
            ),
            mariadb_url: std::env::var("DATABASE_URL_MYSQL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into()),
            routes: Route::ALL.to_vec(),
            footprint: vec![100_000, 1_000_000],
            paced_rate: 10_000.0,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().cloned().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--rounds" => o.rounds = value()?.parse().map_err(|_| "--rounds: a number")?,
                "--seconds" => o.seconds = value()?.parse().map_err(|_| "--seconds: a number")?,
                "--connections" => {
                    o.connections = value()?.parse().map_err(|_| "--connections: a number")?
                }
                "--server-threads" => {
                    o.server_threads = value()?.parse().map_err(|_| "--server-threads: a number")?
                }
                "--redis" => o.redis_url = value()?,
                "--postgres" => o.postgres_url = value()?,
                "--mariadb" => o.mariadb_url = value()?,
                "--routes" => {
                    o.routes = value()?
                        .split(',')
                        .map(|s| Route::from_slug(s).ok_or(format!("unknown route {s}")))
                        .collect::<Result<_, _>>()?
                }
                "--paced-rate" => {
                    o.paced_rate = value()?.parse().map_err(|_| "--paced-rate: a number")?
                }
                "--systems" => {
                    o.systems = value()?
                        .split(',')
                        .map(|s| System::from_slug(s).ok_or(format!("unknown system {s}")))
                        .collect::<Result<_, _>>()?
                }
                "--footprint" => {
                    o.footprint = value()?
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.parse().map_err(|_| format!("--footprint: {s}")))
                        .collect::<Result<_, _>>()?
                }
                "--quick" => {
                    o.rounds = 2;
                    o.seconds = 0.5;
                    o.connections = 16;
                    o.footprint = vec![10_000];
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(o)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]).await,
        Some("micro") => micro::run(&args[1..]).await,
        Some("footprint-one") => match args.get(1).and_then(|n| n.parse().ok()) {
            Some(n) => footprint::measure(n).await,
            None => Err("footprint-one N".into()),
        },
        Some("near-cache-footprint") => match args.get(1).and_then(|n| n.parse().ok()) {
            Some(n) => {
                let url =
                    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
                footprint::near_cache(n, &url).await
            }
            None => Err("near-cache-footprint N".into()),
        },
        _ => match Options::parse(&args) {
            Ok(options) => bench(options).await,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `serve <system> <threads> <redis-url> <postgres-url> <sqlite-url> <mariadb-url>`: one
/// server, on a free loopback port, until killed.
async fn serve(args: &[String]) -> Result<(), String> {
    let [slug, threads, redis, postgres, sqlite, mariadb] = args else {
        return Err("serve SYSTEM THREADS REDIS_URL POSTGRES_URL SQLITE_URL MARIADB_URL".into());
    };
    let system = System::from_slug(slug).ok_or(format!("unknown system {slug}"))?;
    let threads: usize = threads.parse().map_err(|_| "threads: a number")?;
    let urls = systems::Urls {
        redis: redis.clone(),
        postgres: postgres.clone(),
        sqlite: sqlite.clone(),
        mariadb: mariadb.clone(),
    };
    // The server gets its own runtime with a fixed number of workers, apart from the
    // current-thread runtime `main` started on.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let app = system.app(&urls).await?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "listening {}",
                listener.local_addr().map_err(|e| e.to_string())?
            );
            axum::serve(listener, app).await.map_err(|e| e.to_string())
        })
    })
    .join()
    .map_err(|_| "server thread panicked".to_owned())?
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

async fn start(system: System, options: &Options) -> Result<Server, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args([
            "serve",
            system.slug(),
            &options.server_threads.to_string(),
            &options.redis_url,
            &options.postgres_url,
            &options.sqlite_url,
            &options.mariadb_url,
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| format!("{} did not start", system.name()))?
        .map_err(|e| e.to_string())?
        .ok_or(format!("{} exited", system.name()))?;
    let addr = line
        .strip_prefix("listening ")
        .and_then(|a| a.parse().ok())
        .ok_or(format!("unexpected line {line:?}"))?;
    Ok(Server { child, addr })
}

/// A route every system answers (`/increment`: sessionware's only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Route {
    Read,
    Write,
    Increment,
}

impl Route {
    const ALL: &[Route] = &[Route::Read, Route::Write, Route::Increment];

    fn from_slug(slug: &str) -> Option<Route> {
        Route::ALL.iter().copied().find(|r| r.slug() == slug)
    }

    fn slug(self) -> &'static str {
        match self {
            Route::Read => "read",
            Route::Write => "write",
            Route::Increment => "increment",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Route::Read => "/read",
            Route::Write => "/write",
            Route::Increment => "/increment",
        }
    }

    /// Each answered request adds 1 to the count.
    fn counts(self) -> bool {
        self != Route::Read
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Case {
    system: usize,
    shared: bool,
    route: Route,
}

#[derive(Default)]
struct Samples {
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    cpu_us: Vec<f64>,
    redis_cpu_us: Vec<f64>,
    redis_cmds: Vec<f64>,
    redis_sent: Vec<f64>,
    errors: u64,
    /// On one shared session, over every run: requests answered `2xx`, and what the count
    /// grew by.
    acknowledged: u64,
    counted: u64,
}

fn redis_host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().unwrap_or(6379)),
        None => (authority.to_owned(), 6379),
    }
}

async fn bench(options: Options) -> Result<(), String> {
    let (redis_host, redis_port) = redis_host_port(&options.redis_url);
    let mut servers = Vec::new();
    for &system in &options.systems {
        servers.push(start(system, &options).await?);
    }
    let duration = Duration::from_secs_f64(options.seconds);
    eprintln!(
        "bench: {} systems, {} rounds of {:.1} s per case, {} connections, {} server thread(s)",
        options.systems.len(),
        options.rounds,
        options.seconds,
        options.connections,
        options.server_threads
    );
    // Warm-up: every system once, unmeasured.
    for (server, system) in servers.iter().zip(&options.systems) {
        let route = if system.has_increment() && options.routes.contains(&Route::Increment) {
            "/increment"
        } else {
            "/write"
        };
        load::run(
            server.addr,
            route,
            options.connections,
            duration / 2,
            false,
            None,
        )
        .await?;
    }
    let mut samples: BTreeMap<Case, Samples> = BTreeMap::new();
    for round in 0..options.rounds {
        eprintln!("bench: round {}/{}", round + 1, options.rounds);
        // Rotate the order every round, so no system always runs first or last.
        let n = servers.len();
        for k in 0..n {
            let i = (k + round) % n;
            let system = options.systems[i];
            let routes = options
                .routes
                .iter()
                .filter(|r| **r != Route::Increment || system.has_increment());
            let cases = routes.flat_map(|&r| [(false, r), (true, r)]);
            for (shared, route) in cases {
                let pid = servers[i].child.id().ok_or("server exited")?;
                let top_level = system.redis_top_level();
                let redis_before = system
                    .uses_redis()
                    .then(|| probe::redis_commands(&redis_host, redis_port, top_level))
                    .transpose()?;
                let path = route.path();
                let addr = servers[i].addr;
                let conns = options.connections;
                let out = load::run(addr, path, conns, duration, shared, None).await?;
                let s = samples
                    .entry(Case {
                        system: i,
                        shared,
                        route,
                    })
                    .or_default();
                let mut tally = |out: &load::Outcome| {
                    if let (true, true, Some(count)) = (shared, route.counts(), out.count_after) {
                        s.acknowledged += out.requests;
                        s.counted += count;
                    }
                };
                tally(&out);
                let measured = out.requests.max(1) as f64;
                s.rps.push(out.rps());
                s.p50.push(out.quantile_us(0.5));
                s.p99.push(out.quantile_us(0.99));
                s.errors += out.errors;
                if let Some((all, sent)) = redis_before {
                    let (all_after, sent_after) =
                        probe::redis_commands(&redis_host, redis_port, top_level)?;
                    // Setting up the sessions took one request per session.
                    let requests = measured + if shared { 1 } else { conns } as f64;
                    s.redis_cmds.push((all_after - all) as f64 / requests);
                    s.redis_sent.push((sent_after - sent) as f64 / requests);
                }
                // CPU per request at one fixed rate for every system. The set-up requests
                // are counted too: they are `connections` among many thousands.
                let cpu_before = probe::cpu_us(pid)?;
                let redis_cpu_before = system
                    .uses_redis()
                    .then(|| probe::redis_cpu_us(&redis_host, redis_port))
                    .transpose()?;
                let paced = load::run(
                    addr,
                    path,
                    conns,
                    duration,
                    shared,
                    Some(options.paced_rate),
                )
                .await?;
                tally(&paced);
                let cpu = probe::cpu_us(pid)? - cpu_before;
                s.cpu_us.push(cpu / paced.requests.max(1) as f64);
                if let Some(before) = redis_cpu_before {
                    let used = probe::redis_cpu_us(&redis_host, redis_port)? - before;
                    s.redis_cpu_us.push(used / paced.requests.max(1) as f64);
                }
                s.errors += paced.errors;
            }
        }
    }
    drop(servers);
    print_report(&options, &samples);
    footprint_report(&options).await
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

fn print_report(options: &Options, samples: &BTreeMap<Case, Samples>) {
    println!(
        "\n{} rounds x {:.1} s per case, {} connections, server on {} thread(s); medians, \
         request rate with its [min-max] over rounds. Rate and latency at full load; server CPU \
         per request at a paced {:.0} req/s.\n",
        options.rounds,
        options.seconds,
        options.connections,
        options.server_threads,
        options.paced_rate
    );
    println!(
        "| system | shape | route | req/s | p50 µs | p99 µs | server CPU µs/req | Redis CPU µs/req | Redis round trips/req (commands incl. in scripts) | vs peer | vs bare | increments lost |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let find = |system: System, shared: bool, route: Route| {
        let i = options.systems.iter().position(|s| *s == system)?;
        samples.get(&Case {
            system: i,
            shared,
            route,
        })
    };
    for (case, s) in samples {
        let system = options.systems[case.system];
        let rps = median(&s.rps);
        let (lo, hi) = range(&s.rps);
        let ratio = |other: Option<&Samples>| {
            other.map_or("".to_owned(), |o| format!("{:.2}x", rps / median(&o.rps)))
        };
        // The peers have no `/increment`: theirs is the same count by read-modify-write.
        let peer_route = if case.route == Route::Increment {
            Route::Write
        } else {
            case.route
        };
        let peer = system.peer().and_then(|p| find(p, case.shared, peer_route));
        let bare = system
            .has_sessions()
            .then(|| find(System::Bare, case.shared, peer_route))
            .flatten();
        let cmds = if s.redis_cmds.is_empty() {
            String::new()
        } else {
            format!(
                "{:.2} ({:.2})",
                median(&s.redis_sent),
                median(&s.redis_cmds)
            )
        };
        let redis_cpu = if s.redis_cpu_us.is_empty() {
            String::new()
        } else {
            format!("{:.1}", median(&s.redis_cpu_us))
        };
        let errors = if s.errors > 0 {
            format!(" ({} errors)", s.errors)
        } else {
            String::new()
        };
        // Lost: acknowledged increments the count does not show.
        let lost = if s.acknowledged > 0 {
            let missing = s.acknowledged.saturating_sub(s.counted);
            format!(
                "{:.1}% ({missing} of {})",
                100.0 * missing as f64 / s.acknowledged as f64,
                s.acknowledged
            )
        } else {
            String::new()
        };
        println!(
            "| {} | {} | {} | {:.0} [{:.0}-{:.0}]{} | {:.0} | {:.0} | {:.1} | {} | {} | {} | {} | {} |",
            system.name(),
            if case.shared {
                "one shared session"
            } else {
                "session per connection"
            },
            case.route.slug(),
            rps,
            lo,
            hi,
            errors,
            median(&s.p50),
            median(&s.p99),
            median(&s.cpu_us),
            redis_cpu,
            cmds,
            ratio(peer),
            ratio(bare),
            lost,
        );
    }
    // The overhead target is stated as CPU per read over bare axum.
    if let (Some(ours), Some(bare)) = (
        find(System::SessionwareMemory, false, Route::Read),
        find(System::Bare, false, Route::Read),
    ) {
        println!(
            "\nsessionware memory, read, session per connection: {:.2} µs server CPU per request \
             over bare axum",
            median(&ours.cpu_us) - median(&bare.cpu_us)
        );
    }
}

async fn footprint_report(options: &Options) -> Result<(), String> {
    if options.footprint.is_empty() {
        return Ok(());
    }
    println!(
        "\n| memory store sessions | bytes per session | beyond its 11-byte JSON | one sweep of all, ms |"
    );
    println!("|---|---|---|---|");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    for &n in &options.footprint {
        // A fresh process per size, so one measurement's allocations do not hide the next's.
        let output = Command::new(&exe)
            .args(["footprint-one", &n.to_string()])
            .output()
            .await
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let line = String::from_utf8_lossy(&output.stdout);
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [n, per, beyond, sweep] = f[..] {
            println!("| {n} | {per} | {beyond} | {sweep} |");
        }
    }
    Ok(())
}
