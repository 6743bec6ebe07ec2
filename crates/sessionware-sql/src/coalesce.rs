//! Writes that arrive while another write of their lane is running wait here, and then run
//! together in one transaction: one commit for all of them.
//!
//! Each write of a session goes to one lane (chosen by its id), and a store has a few lanes
//! (half its connections; one for SQLite, which writes one transaction at a time anyway). A
//! lane runs one write transaction at a time; what arrives meanwhile queues in it.
//!
//! Why: a commit waits for its flush to disk, and on one machine the flushes, not the
//! statements, bound the write rate; writers that each wait for their own commit also hold a
//! connection each while they do. Writes to one row also take turns in the database anyway,
//! and on PostgreSQL a row's lock queue gets slower the more wait in it (the store's `UPDATE`
//! on one row: 3.4k/s from one client, 3.0k/s from 16). Waiting here costs nothing, and a
//! queue then commits once (issue 14).
//!
//! A write that finds its lane idle leads: it runs alone, as it would without any of this, and
//! on its way out hands what queued meanwhile to a task that runs it. The task, not the
//! leader, so that a leader whose request is cancelled (a layer timeout) leaves no writes
//! behind it unrun.

use std::sync::Mutex;

use sessionware_core::time::OffsetDateTime;
use sessionware_core::{ChangeSet, Error, SessionId};
use tokio::sync::oneshot;

/// The store's lanes, each with the writes queued behind its running one (`None`: idle).
#[derive(Debug)]
pub(crate) struct Writes {
    lanes: Box<[Mutex<Option<Vec<Waiting>>>]>,
}

/// A write queued behind a running one.
#[derive(Debug)]
pub(crate) struct Waiting {
    pub(crate) id: SessionId,
    pub(crate) changes: ChangeSet,
    pub(crate) now: OffsetDateTime,
    pub(crate) answer: oneshot::Sender<Result<bool, Error>>,
}

/// What a write does: run now, leading its lane, or wait for its answer.
pub(crate) enum Turn {
    Lead(usize),
    Wait(oneshot::Receiver<Result<bool, Error>>),
}

impl Writes {
    /// `lanes` write transactions at most at a time (at least one).
    pub(crate) fn new(lanes: usize) -> Self {
        Self {
            lanes: (0..lanes.max(1)).map(|_| Mutex::new(None)).collect(),
        }
    }

    fn lane(&self, lane: usize) -> std::sync::MutexGuard<'_, Option<Vec<Waiting>>> {
        self.lanes[lane]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Leads when the lane of `id` is idle; otherwise queues this write in it.
    pub(crate) fn enter(&self, id: &SessionId, changes: &ChangeSet, now: OffsetDateTime) -> Turn {
        // Ids are random: their first two bytes spread sessions evenly over the lanes.
        let [a, b, ..] = *id.as_bytes();
        let lane = usize::from(u16::from_le_bytes([a, b])) % self.lanes.len();
        let mut queue = self.lane(lane);
        match queue.as_mut() {
            Some(queue) => {
                let (answer, receiver) = oneshot::channel();
                queue.push(Waiting {
                    id: *id,
                    changes: changes.clone(),
                    now,
                    answer,
                });
                Turn::Wait(receiver)
            }
            None => {
                *queue = Some(Vec::new());
                Turn::Lead(lane)
            }
        }
    }

    /// What queued in `lane` behind the writes that just finished, in arrival order, without
    /// those whose requests went away. Empty: the lane is idle again, and the next write
    /// leads.
    pub(crate) fn next(&self, lane: usize) -> Vec<Waiting> {
        let mut queue = self.lane(lane);
        let mut waiting = queue.take().unwrap_or_default();
        waiting.retain(|w| !w.answer.is_closed());
        if !waiting.is_empty() {
            *queue = Some(Vec::new());
        }
        waiting
    }

    /// Makes the lane idle, whatever queued: their requests get an error. For a runner that
    /// cannot go on (no runtime to run on, a panic).
    pub(crate) fn abandon(&self, lane: usize) {
        self.lane(lane).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes() -> ChangeSet {
        ChangeSet::new(OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn the_first_write_leads_and_the_others_queue_until_the_lane_is_idle() {
        let writes = Writes::new(2);
        let id = SessionId::from_bytes([0; SessionId::BYTES]);
        let same_lane = SessionId::from_bytes([2; SessionId::BYTES]);
        let other_lane = SessionId::from_bytes([1; SessionId::BYTES]);
        let now = OffsetDateTime::UNIX_EPOCH;
        let Turn::Lead(lane) = writes.enter(&id, &changes(), now) else {
            panic!("the first write leads");
        };
        assert!(matches!(
            writes.enter(&other_lane, &changes(), now),
            Turn::Lead(l) if l != lane
        ));
        let Turn::Wait(first) = writes.enter(&same_lane, &changes(), now) else {
            panic!("a second write of the lane waits");
        };
        let Turn::Wait(gone) = writes.enter(&id, &changes(), now) else {
            panic!("so does a third");
        };
        drop(gone);
        let queued = writes.next(lane);
        assert_eq!(queued.len(), 1, "a request that went away is not run");
        assert_eq!(queued[0].id, same_lane);
        let Turn::Wait(_later) = writes.enter(&id, &changes(), now) else {
            panic!("the queue is running: a new write still waits");
        };
        assert_eq!(writes.next(lane).len(), 1);
        assert!(
            writes.next(lane).is_empty(),
            "nothing more: the lane is idle"
        );
        assert!(matches!(writes.enter(&id, &changes(), now), Turn::Lead(_)));
        drop(queued);
        drop(first);
    }
}
