//! The soak: thousands of sessions from many concurrent clients over loopback HTTP, against a
//! Redis of the test's own that is killed and started again half-way. At the end every
//! acknowledged write is in Redis, no key lacks a TTL, and the process's memory is back to its
//! level before the load.
//!
//! `SESSIONWARE_SOAK_SECS` sets how long the load runs (default 20; it also runs until at
//! least `MIN_SESSIONS` sessions were started, and stops by itself). A longer soak:
//!
//! ```sh
//! SESSIONWARE_SOAK_SECS=300 cargo test -p sessionware-redis --test soak -- --nocapture
//! ```
//!
//! This file holds one test: the memory check reads the whole process's resident size, so no
//! other test may run beside it. It runs in a child process with one malloc arena (see
//! `in_one_arena`).

mod common;

use std::time::{Duration, Instant};

use common::servers::{self, DURABLE};
use common::{MARGIN, REQUEST_TIMEOUT, TIMEOUT};
use sessionware_test_support::load::{self, Load, Outcome};

const CLIENTS: usize = 64;
/// At least this many sessions, however short the run: enough that a leak of 1 KiB per
/// session (4.9 MiB) is well over `MEMORY_TOLERANCE`.
const MIN_SESSIONS: u64 = 5_000;
/// How much more memory the process may hold after the load than before it. The allocator
/// keeps some of what it freed, and the runtime's and clients' buffers reach a high-water
/// mark: 0.6 to 1 MiB here, the same after 5,000 sessions as after 43,000. Three times the
/// worst seen still fails a leak of 630 bytes per session in the shortest run.
const MEMORY_TOLERANCE: u64 = 3 << 20;

/// Sessions of three writes; every fourth starts with a sign-in (so user index sets exist),
/// every tenth ends with a sign-out, every fifth request is `/health`.
fn shape(max_sessions: u64) -> Load {
    Load {
        max_sessions,
        writes_per_session: 3,
        login_every: 4,
        users: 100,
        logout_every: 10,
        health_every: 5,
        request_timeout: REQUEST_TIMEOUT,
        ..Load::new(CLIENTS)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    // Checked before the re-run: the child's stderr comes back through this test's captured
    // output, where a skip would not be seen.
    if !servers::available("soak") {
        return;
    }
    if std::env::var("MALLOC_ARENA_MAX").as_deref() != Ok("1") {
        return tokio::task::block_in_place(in_one_arena);
    }
    let secs: u64 = std::env::var("SESSIONWARE_SOAK_SECS")
        .map(|s| {
            s.parse()
                .expect("SESSIONWARE_SOAK_SECS is a number of seconds")
        })
        .unwrap_or(20);
    let (mut redis, store, addr) = common::durable_app().await;

    // A smaller soak first, restart included, brings connection pools, scripts and the
    // allocator to their working size: what stays allocated after it is the level to return
    // to.
    let warm_up = MIN_SESSIONS / 2;
    round(&mut redis, addr, warm_up, warm_up, Duration::ZERO)
        .await
        .verify(&store)
        .await;
    let before = settled_rss().await;

    let start = Instant::now();
    let run_for = Duration::from_secs(secs);
    // Bounded by count as well as time: far more sessions than the run can start.
    let report = round(&mut redis, addr, MIN_SESSIONS, secs.max(1) * 5_000, run_for).await;
    println!(
        "soak: {:?} in {:?}; slowest 503 {:?}, slowest answer {:?}",
        report.totals,
        start.elapsed(),
        report.slowest_unavailable,
        report.slowest
    );
    assert!(
        report.slowest_unavailable <= TIMEOUT + MARGIN,
        "a 503 within the command timeout: {:?}",
        report.slowest_unavailable
    );
    let checked = report.verify(&store).await;
    assert!(checked as u64 >= MIN_SESSIONS);
    drop(report);

    let (keys, user_keys, without_ttl) = ttls(&redis, &store.user_key(""));
    println!("soak: {keys} keys, {user_keys} user index sets");
    assert!(user_keys > 0, "the soak signed users in");
    assert!(
        without_ttl.is_empty(),
        "keys without a TTL: {without_ttl:?}"
    );

    // Every session ended on the client side and every connection closed: the process must
    // hold no more than it did before the load.
    let limit = before + MEMORY_TOLERANCE;
    let start = Instant::now();
    let after = loop {
        let now = rss();
        if now <= limit || start.elapsed() > Duration::from_secs(10) {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "soak: resident {} KiB before the load, {} KiB after",
        before >> 10,
        after >> 10
    );
    assert!(
        after <= limit,
        "memory grew by {} KiB over the load (tolerance {} KiB)",
        (after - before) >> 10,
        MEMORY_TOLERANCE >> 10
    );
}

/// Runs this test again in a child process with `MALLOC_ARENA_MAX=1`, which glibc reads only
/// at start-up. With an arena per thread, what each arena keeps of the memory it freed adds up
/// differently from run to run: the resident size crept by up to 1 MiB per 2,500 sessions
/// here with no byte of the heap leaked (heaptrack: the same live heap after every round),
/// noise a leak check cannot tell from a leak. With one arena it is flat within a few hundred
/// KiB once warm.
fn in_one_arena() {
    let out = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["soak", "--exact", "--nocapture", "--test-threads=1"])
        .env("MALLOC_ARENA_MAX", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the soak failed in its child process");
    assert!(stdout.contains("1 passed"), "the child ran the soak");
}

/// One soak: at least `min_sessions` sessions and `run_for`, at most `max_sessions`; Redis
/// killed and started again half-way.
async fn round(
    redis: &mut servers::Process,
    addr: std::net::SocketAddr,
    min_sessions: u64,
    max_sessions: u64,
    run_for: Duration,
) -> load::Report {
    let start = Instant::now();
    let bound = run_for + Duration::from_secs(180);
    let mut running = shape(max_sessions).start(addr);
    running
        .until("half of the soak", bound, |t| {
            start.elapsed() >= run_for / 2 && t.sessions >= min_sessions / 2
        })
        .await;
    // Not in `block_in_place`: a thread it would start stays resident for a while after, and
    // the restart takes a fraction of a second.
    redis.kill();
    running.next_epoch();
    running
        .until_every_client(Outcome::Unavailable, Duration::from_secs(60))
        .await;
    redis.restart(DURABLE);
    running.next_epoch();
    running
        .until_every_client(Outcome::Acked, Duration::from_secs(60))
        .await;
    running
        .until("the end of the soak", bound, |t| {
            (start.elapsed() >= run_for && t.sessions >= min_sessions) || t.sessions >= max_sessions
        })
        .await;
    let report = running.finish().await;
    assert!(report.totals.sessions >= min_sessions);
    report
}

/// (keys, user index sets, keys without a TTL) in the server, read in one script so that
/// nothing expires or changes between the scan and the checks.
fn ttls(redis: &servers::Process, user_prefix: &str) -> (u64, u64, Vec<String>) {
    const SCRIPT: &str = "local cursor, keys, users, bad = '0', 0, 0, {} \
        repeat \
          local page = redis.call('SCAN', cursor, 'COUNT', 1000) \
          cursor = page[1] \
          for _, key in ipairs(page[2]) do \
            keys = keys + 1 \
            if string.sub(key, 1, #ARGV[1]) == ARGV[1] then users = users + 1 end \
            if redis.call('PTTL', key) < 0 then table.insert(bad, key) end \
          end \
        until cursor == '0' \
        return keys .. ' ' .. users .. ' ' .. table.concat(bad, ' ')";
    let out = redis.cli(&["eval", SCRIPT, "0", user_prefix]);
    let mut words = out.split_whitespace();
    let mut number = || -> u64 {
        words
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("the TTL script answered {out:?}"))
    };
    let (keys, users) = (number(), number());
    (keys, users, words.map(str::to_owned).collect())
}

/// The process's resident set size, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib << 10
}

/// The resident size once it has stopped moving (the same for 5 readings 50 ms apart, or the
/// last after 5 s), so connections still closing do not count.
async fn settled_rss() -> u64 {
    let start = Instant::now();
    let (mut last, mut same) = (rss(), 0);
    while same < 5 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = rss();
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    last
}
