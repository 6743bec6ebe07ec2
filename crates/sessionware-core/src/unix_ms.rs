//! Unix milliseconds: the unit every store keeps times in, and the one place that converts.

use time::OffsetDateTime;

/// `time` as whole milliseconds since the Unix epoch, rounded down. Deadlines are whole
/// milliseconds throughout sessionware (see [`Clock`](crate::Clock)), so nothing is lost.
///
/// ```
/// use sessionware_core::{from_unix_ms, to_unix_ms};
///
/// let t = from_unix_ms(1_763_784_717_123).unwrap();
/// assert_eq!(to_unix_ms(t), 1_763_784_717_123);
/// ```
pub fn to_unix_ms(time: OffsetDateTime) -> i64 {
    // Through the calendar fields: subtracting the epoch costs several times as much, and
    // stores convert on every read.
    time.unix_timestamp() * 1000 + i64::from(time.millisecond())
}

/// The time `ms` milliseconds after the Unix epoch, or `None` outside the years `time` can
/// represent, which only a corrupt or hand-edited record holds.
pub fn from_unix_ms(ms: i64) -> Option<OffsetDateTime> {
    let millisecond = u16::try_from(ms.rem_euclid(1000)).ok()?;
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()?
        .replace_millisecond(millisecond)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn agrees_with_epoch_arithmetic() {
        for ms in [0, 1, 999, 1000, -1, -999, -1000, -1001, 1_763_784_717_123] {
            let t = OffsetDateTime::UNIX_EPOCH + Duration::milliseconds(ms);
            assert_eq!(from_unix_ms(ms), Some(t), "{ms}");
            assert_eq!(to_unix_ms(t), ms, "{ms}");
        }
    }

    #[test]
    fn out_of_range_is_none_not_a_panic() {
        assert_eq!(from_unix_ms(i64::MAX), None);
        assert_eq!(from_unix_ms(i64::MIN), None);
    }
}
