//! Memory store footprint: process memory per live session, and the time one sweep takes.

use std::time::Instant;

use sessionware_core::time::Duration;
use sessionware_core::{Clock, Data, ManualClock, Record, SessionId, SessionStore};
use sessionware_memory::MemoryStore;

use crate::probe::rss_bytes;

/// The payload every session carries: `{"count":1}`.
const PAYLOAD_JSON_LEN: usize = 11;

/// Fills a fresh store with `n` sessions in this (fresh) process and prints one line:
/// `n bytes_per_session beyond_json sweep_ms`.
pub(crate) async fn measure(n: usize) -> Result<(), String> {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .capacity(n)
        .sweep_interval(None)
        .clock(clock.clone())
        .build();
    let now = clock.now();
    let data = Data::from([("count".to_owned(), serde_json::json!(1))]);
    // Warm the allocator and the code paths before the baseline.
    let before = rss_bytes()?;
    for _ in 0..n {
        let record = Record {
            id: SessionId::generate().map_err(|e| e.to_string())?,
            data: data.clone(),
            user: None,
            created_at: now,
            expires_at: now + Duration::minutes(30),
        };
        store.create(&record).await.map_err(|e| e.to_string())?;
    }
    let after = rss_bytes()?;
    let per_session = (after.saturating_sub(before)) as f64 / n as f64;
    clock.advance(Duration::hours(1));
    let started = Instant::now();
    let removed = store.sweep();
    let sweep = started.elapsed();
    if removed != n {
        return Err(format!("sweep removed {removed} of {n}"));
    }
    println!(
        "{n} {per_session:.1} {:.1} {:.1}",
        per_session - PAYLOAD_JSON_LEN as f64,
        sweep.as_secs_f64() * 1e3
    );
    Ok(())
}

/// Redis near cache footprint: creates `n` sessions in the Redis at `url` (under a prefix of
/// their own), loads each once through a fresh store (so each goes into its near cache, up to
/// the default bound), and prints one line: `n entries estimated_bytes_per_entry
/// resident_bytes_per_entry bytes capacity`. The sessions are deleted afterwards.
pub(crate) async fn near_cache(n: usize, url: &str) -> Result<(), String> {
    use sessionware_redis::RedisStore;

    let prefix = format!(
        "bench-near-cache-{}:",
        &SessionId::generate()
            .map_err(|e| e.to_string())?
            .to_string()[..8]
    );
    let store = RedisStore::builder(url)
        .prefix(&prefix)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let now = sessionware_core::time::OffsetDateTime::now_utc();
    let ids = in_parallel(
        &store,
        (0..n).map(|_| ()).collect(),
        move |store, ()| async move {
            let record = Record {
                id: SessionId::generate()?,
                data: Data::from([("count".to_owned(), serde_json::json!(1))]),
                user: None,
                created_at: now,
                expires_at: now + Duration::minutes(10),
            };
            store.create(&record).await
        },
    )
    .await?;
    let before = rss_bytes()?;
    in_parallel(&store, ids.clone(), move |store, id| async move {
        store.load(&id, now).await.map(|_| ())
    })
    .await?;
    let after = rss_bytes()?;
    let stats = store.near_cache_stats().ok_or("the near cache is off")?;
    in_parallel(
        &store,
        ids,
        |store, id| async move { store.delete(&id).await },
    )
    .await?;
    let entries = stats.entries.max(1) as f64;
    println!(
        "{n} {} {:.1} {:.1} {} {}",
        stats.entries,
        stats.bytes as f64 / entries,
        after.saturating_sub(before) as f64 / entries,
        stats.bytes,
        stats.capacity
    );
    Ok(())
}

/// Runs `op` on every item, 64 at a time.
async fn in_parallel<S, I, T, F, Fut>(store: &S, items: Vec<I>, op: F) -> Result<Vec<T>, String>
where
    S: Clone + Send + 'static,
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(S, I) -> Fut,
    Fut: std::future::Future<Output = Result<T, sessionware_core::Error>> + Send + 'static,
{
    let mut out = Vec::with_capacity(items.len());
    let mut tasks: tokio::task::JoinSet<Result<T, sessionware_core::Error>> =
        tokio::task::JoinSet::new();
    for item in items {
        while tasks.len() >= 64 {
            let Some(done) = tasks.join_next().await else {
                break;
            };
            out.push(
                done.map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?,
            );
        }
        tasks.spawn(op(store.clone(), item));
    }
    while let Some(done) = tasks.join_next().await {
        out.push(
            done.map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(out)
}
