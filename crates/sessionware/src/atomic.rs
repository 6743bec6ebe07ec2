//! What [`Session::increment`](crate::Session::increment) and
//! [`Session::update`](crate::Session::update) leave for write-back: per key, the value the
//! request loaded and the steps it took from there. Write-back turns a key whose steps are all
//! additions into one store-side increment, and any other into a compare-and-set against the
//! loaded value; after a conflict it replays the steps on what the store holds now.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::Error;

/// An `update` closure, boxed for replays: from the value the store holds (`None`: absent)
/// to the value to write.
pub(crate) type Closure = Box<dyn FnMut(Option<&Value>) -> Result<Value, Error> + Send>;

pub(crate) enum Step {
    Add(i64),
    Apply(Closure),
}

/// The pending atomic change of one key.
pub(crate) struct KeyOp {
    /// What the key held when the request loaded it.
    pub(crate) base: Option<Value>,
    pub(crate) steps: Vec<Step>,
}

impl KeyOp {
    pub(crate) fn new(base: Option<Value>) -> Self {
        Self {
            base,
            steps: Vec::new(),
        }
    }

    /// The total to add when every step is an addition (and the total fits an `i64`): then
    /// the store adds it natively and nothing can conflict.
    pub(crate) fn sum(&self) -> Option<i64> {
        self.steps.iter().try_fold(0i64, |sum, step| match step {
            Step::Add(by) => sum.checked_add(*by),
            Step::Apply(_) => None,
        })
    }

    /// The steps again, from what the store holds now.
    pub(crate) fn replay(&mut self, key: &str, current: Option<Value>) -> Result<Value, Error> {
        let mut value = current;
        for step in &mut self.steps {
            value = Some(match step {
                Step::Add(by) => Value::from(add(key, value.as_ref(), *by)?),
                Step::Apply(closure) => closure(value.as_ref())?,
            });
        }
        // At least one step exists: an op is made by one.
        Ok(value.unwrap_or(Value::Null))
    }
}

impl fmt::Debug for KeyOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyOp")
            .field("base", &self.base)
            .field("steps", &self.steps.len())
            .finish()
    }
}

/// How long to wait before retry `attempt` (from 0) of a refused compare-and-set: a random
/// time up to 1 ms, doubling with each attempt up to 16 ms. Requests that conflicted together
/// would otherwise retry together, and again only one of them would win each round; spread
/// out, most of a burst gets through within the bound. Paid only after a conflict.
pub(crate) fn backoff(attempt: u32) -> Duration {
    use ring::rand::{SecureRandom as _, SystemRandom};
    let ceiling_us = 1000u64 << attempt.min(4);
    let mut bytes = [0u8; 8];
    // A failing random source only makes every wait the longest.
    let draw = match SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => u64::MAX,
    };
    Duration::from_micros(draw % (ceiling_us + 1))
}

/// `current + by` by the rule every store applies ([`sessionware_core::increment`]), refused
/// with the layer's own variants.
pub(crate) fn add(key: &str, current: Option<&Value>, by: i64) -> Result<i64, Error> {
    sessionware_core::increment(key, current, by).map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn additions_sum_and_anything_else_replays() {
        let mut op = KeyOp::new(Some(json!(1)));
        op.steps.push(Step::Add(2));
        op.steps.push(Step::Add(-5));
        assert_eq!(op.sum(), Some(-3));
        op.steps.push(Step::Apply(Box::new(|v| {
            Ok(json!(v.and_then(Value::as_i64).unwrap_or(0) * 10))
        })));
        assert_eq!(op.sum(), None);
        assert_eq!(op.replay("k", Some(json!(4))).unwrap(), json!(10));
        assert_eq!(op.replay("k", None).unwrap(), json!(-30));
        assert!(matches!(
            op.replay("k", Some(json!("x"))),
            Err(Error::NotAnInteger { .. })
        ));
        let mut big = KeyOp::new(None);
        big.steps.extend([Step::Add(i64::MAX), Step::Add(1)]);
        assert_eq!(
            big.sum(),
            None,
            "a total that overflows is not one increment"
        );
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempt in 0..40 {
            let ceiling = Duration::from_micros(1000 << attempt.min(4));
            assert!(backoff(attempt) <= ceiling, "{attempt}");
        }
    }

    #[test]
    fn add_counts_from_zero_and_checks() {
        assert_eq!(add("k", None, 3).unwrap(), 3);
        assert!(matches!(
            add("k", Some(&json!(1.5)), 1),
            Err(Error::NotAnInteger { .. })
        ));
        assert!(matches!(
            add("k", Some(&json!(i64::MIN)), -1),
            Err(Error::Overflow { .. })
        ));
    }
}
