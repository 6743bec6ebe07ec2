use time::{Duration, OffsetDateTime};

/// When sessions end: an idle timeout that slides with use, and an absolute lifetime counted
/// from creation. Both are optional and both are enforced; a session's deadline is the earlier
/// of the two.
///
/// With neither set, a session still ends [`ExpiryPolicy::MAX_IDLE`] after its last use: no
/// store ever keeps a key forever, and browsers cap a cookie's lifetime at about that anyway.
///
/// Refreshing a deadline costs a write in some stores, so a read refreshes it only when that
/// would move it by at least the *refresh interval* (by default a tenth of the idle timeout).
///
/// ```
/// use sessionware_core::{ExpiryPolicy, time::{Duration, OffsetDateTime}};
///
/// let policy = ExpiryPolicy::new()
///     .with_idle_timeout(Some(Duration::minutes(30)))
///     .with_absolute_lifetime(Some(Duration::hours(8)));
/// let created = OffsetDateTime::UNIX_EPOCH;
///
/// // Early on, the idle timeout decides...
/// assert_eq!(policy.deadline(created, created), created + Duration::minutes(30));
/// // ...and near the end of the lifetime, the absolute one does.
/// let late = created + Duration::hours(7) + Duration::minutes(45);
/// assert_eq!(policy.deadline(created, late), created + Duration::hours(8));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct ExpiryPolicy {
    idle: Option<Duration>,
    absolute: Option<Duration>,
    refresh_interval: Option<Duration>,
}

impl ExpiryPolicy {
    /// The default idle timeout: 24 hours.
    pub const DEFAULT_IDLE: Duration = Duration::hours(24);
    /// The default absolute lifetime: 30 days.
    pub const DEFAULT_ABSOLUTE: Duration = Duration::days(30);
    /// The longest a session lives unused when no idle timeout is set: 400 days, the cap
    /// browsers put on a cookie's lifetime.
    pub const MAX_IDLE: Duration = Duration::days(400);

    /// The defaults: 24 hours idle, 30 days absolute, refresh interval a tenth of the idle
    /// timeout.
    pub const fn new() -> Self {
        Self {
            idle: Some(Self::DEFAULT_IDLE),
            absolute: Some(Self::DEFAULT_ABSOLUTE),
            refresh_interval: None,
        }
    }

    /// Sets the idle timeout; `None` turns it off. Values above [`Self::MAX_IDLE`] are capped.
    pub fn with_idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.idle = idle.map(|d| d.clamp(Duration::ZERO, Self::MAX_IDLE));
        self
    }

    /// Sets the absolute lifetime; `None` turns it off.
    pub fn with_absolute_lifetime(mut self, absolute: Option<Duration>) -> Self {
        self.absolute = absolute.map(|d| d.max(Duration::ZERO));
        self
    }

    /// Sets how far a deadline must move before a read refreshes it. `Duration::ZERO`
    /// refreshes on every read.
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = Some(interval.max(Duration::ZERO));
        self
    }

    /// The idle timeout, if any.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle
    }

    /// The absolute lifetime, if any.
    pub fn absolute_lifetime(&self) -> Option<Duration> {
        self.absolute
    }

    /// How far a deadline must move before a read refreshes it.
    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
            .unwrap_or_else(|| self.idle.unwrap_or(Self::MAX_IDLE) / 10)
    }

    /// The deadline of a session created at `created_at` and used at `now`.
    pub fn deadline(&self, created_at: OffsetDateTime, now: OffsetDateTime) -> OffsetDateTime {
        let idle = now.saturating_add(self.idle.unwrap_or(Self::MAX_IDLE));
        match self.absolute {
            Some(absolute) => idle.min(created_at.saturating_add(absolute)),
            None => idle,
        }
    }

    /// The deadline a read at `now` should move a session to, or `None` when the move would be
    /// shorter than the refresh interval (or backwards).
    pub fn refreshed_deadline(
        &self,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        // How far each clock would move the deadline, in durations: every read of every
        // session asks this, and date arithmetic costs several times duration arithmetic.
        let by_idle = (now - expires_at).saturating_add(self.idle.unwrap_or(Self::MAX_IDLE));
        let moved = match self.absolute {
            Some(absolute) => by_idle.min(absolute.saturating_sub(expires_at - created_at)),
            None => by_idle,
        };
        (moved > Duration::ZERO && moved >= self.refresh_interval())
            .then(|| self.deadline(created_at, now))
    }
}

impl Default for ExpiryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    #[test]
    fn neither_clock_still_expires() {
        let p = ExpiryPolicy::new()
            .with_idle_timeout(None)
            .with_absolute_lifetime(None);
        assert_eq!(p.deadline(T0, T0), T0 + ExpiryPolicy::MAX_IDLE);
    }

    #[test]
    fn absolute_only_never_refreshes() {
        let p = ExpiryPolicy::new()
            .with_idle_timeout(Some(Duration::days(1000)))
            .with_absolute_lifetime(Some(Duration::hours(1)));
        let d = p.deadline(T0, T0);
        assert_eq!(d, T0 + Duration::hours(1));
        assert_eq!(
            p.refreshed_deadline(T0, d, T0 + Duration::minutes(59)),
            None
        );
    }

    #[test]
    fn refresh_is_throttled() {
        let p = ExpiryPolicy::new()
            .with_idle_timeout(Some(Duration::minutes(10)))
            .with_absolute_lifetime(None);
        let d = p.deadline(T0, T0);
        assert_eq!(
            p.refreshed_deadline(T0, d, T0 + Duration::seconds(59)),
            None
        );
        assert_eq!(
            p.refreshed_deadline(T0, d, T0 + Duration::seconds(60)),
            Some(T0 + Duration::seconds(660))
        );
        let every = p.with_refresh_interval(Duration::ZERO);
        assert_eq!(
            every.refreshed_deadline(T0, d, T0 + Duration::milliseconds(1)),
            Some(d + Duration::milliseconds(1))
        );
        assert_eq!(every.refreshed_deadline(T0, d, T0), None);
    }

    /// The duration arithmetic of `refreshed_deadline` agrees with its definition: the new
    /// deadline, when it moves the old one forward by at least the refresh interval.
    #[test]
    fn refresh_agrees_with_the_deadline_on_a_grid() {
        let minutes = |m: i64| Duration::minutes(m);
        let optional = [None, Some(minutes(0)), Some(minutes(7)), Some(minutes(60))];
        for idle in optional {
            for absolute in optional {
                for interval in [None, Some(minutes(0)), Some(minutes(3))] {
                    let mut p = ExpiryPolicy::new()
                        .with_idle_timeout(idle)
                        .with_absolute_lifetime(absolute);
                    if let Some(interval) = interval {
                        p = p.with_refresh_interval(interval);
                    }
                    for expires in (-10..80).step_by(7).map(|m| T0 + minutes(m)) {
                        for now in (0..90).step_by(5).map(|m| T0 + minutes(m)) {
                            let next = p.deadline(T0, now);
                            let moved = next - expires;
                            let expected = (moved > Duration::ZERO
                                && moved >= p.refresh_interval())
                            .then_some(next);
                            assert_eq!(
                                p.refreshed_deadline(T0, expires, now),
                                expected,
                                "{p:?} expires {expires} now {now}"
                            );
                        }
                    }
                }
            }
        }
    }
}
