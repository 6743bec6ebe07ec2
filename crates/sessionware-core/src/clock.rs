use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

use crate::{from_unix_ms, to_unix_ms};

/// Where the layer and the stores get the time, so tests can move it instead of sleeping.
///
/// Times are truncated to whole milliseconds, the finest resolution every store keeps, so a
/// deadline reads back exactly as it was written.
pub trait Clock: Debug + Send + Sync + 'static {
    /// The current time, truncated to the millisecond.
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        truncate_ms(OffsetDateTime::now_utc())
    }
}

/// A clock that stands still until it is moved; clones share one time.
///
/// ```
/// use sessionware_core::{Clock, ManualClock, time::Duration};
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::minutes(30));
/// assert_eq!(clock.now() - start, Duration::minutes(30));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    unix_ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock set to the current system time.
    pub fn new() -> Self {
        Self::at(OffsetDateTime::now_utc())
    }

    /// A clock set to `time`.
    pub fn at(time: OffsetDateTime) -> Self {
        Self {
            unix_ms: Arc::new(AtomicI64::new(to_unix_ms(time))),
        }
    }

    /// Moves the clock by `by` (which may be negative).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.whole_milliseconds()).unwrap_or(i64::MAX);
        self.unix_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `time`.
    pub fn set(&self, time: OffsetDateTime) {
        self.unix_ms.store(to_unix_ms(time), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let ms = self.unix_ms.load(Ordering::SeqCst);
        // A clock moved past the representable years stays at the edge.
        from_unix_ms(ms).unwrap_or(if ms < 0 {
            time::PrimitiveDateTime::MIN.assume_utc()
        } else {
            time::PrimitiveDateTime::MAX.assume_utc()
        })
    }
}

pub(crate) fn truncate_ms(time: OffsetDateTime) -> OffsetDateTime {
    let ns = time.nanosecond();
    time.replace_nanosecond(ns - ns % 1_000_000).unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_whole_milliseconds() {
        assert_eq!(SystemClock.now().nanosecond() % 1_000_000, 0);
    }

    #[test]
    fn manual_clock_clones_share_time() {
        let a = ManualClock::new();
        let b = a.clone();
        let t = a.now();
        b.advance(Duration::seconds(5));
        assert_eq!(a.now() - t, Duration::seconds(5));
        a.set(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(b.now(), OffsetDateTime::UNIX_EPOCH);
    }
}
