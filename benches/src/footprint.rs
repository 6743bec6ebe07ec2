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
