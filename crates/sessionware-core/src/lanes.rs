//! Write lanes: writes that arrive while another write of their lane runs wait in the process,
//! and then run together as one batch (one transaction, one script call). For store crates.
//!
//! A store has a few lanes and sends each session's writes to one of them ([`lane_of`]). A
//! lane runs one write at a time, or a few ([`Lanes::with_depth`]). A write that finds its
//! lane with room leads: it runs alone, exactly as it would without lanes, and
//! when it is done (or its request is cancelled) what queued behind it goes to a spawned task
//! that runs it in batches until the lane is empty. The task, not the leader, so that a leader
//! whose request a timeout cancels leaves nothing behind it unrun. A queued write whose
//! request went away is not run.
//!
//! Why: a store's fixed cost per call (a commit's flush, a script call's set-up and its
//! syscalls) is paid once per batch; under load the batches grow by themselves, and under no
//! load nothing waits.
//!
//! ```
//! use std::future::Future;
//! use std::sync::Arc;
//! use sessionware_core::lanes::{self, Batches, Lanes, Queued, Turn};
//!
//! struct Doubler {
//!     lanes: Lanes<u32, u32>,
//! }
//!
//! impl Batches for Doubler {
//!     type Item = u32;
//!     type Answer = u32;
//!     fn lanes(&self) -> &Lanes<u32, u32> {
//!         &self.lanes
//!     }
//!     fn run(&self, _lane: usize, batch: Vec<Queued<u32, u32>>) -> impl Future<Output = ()> + Send {
//!         async move {
//!             for queued in batch {
//!                 let doubled = queued.item * 2;
//!                 queued.answer(doubled);
//!             }
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = Arc::new(Doubler { lanes: Lanes::new(2) });
//! let answer = match lanes::enter(&store, 0, || 21) {
//!     // Idle lane: this write runs alone while holding `leader`.
//!     Turn::Lead(leader) => {
//!         let answer = 42;
//!         drop(leader); // hands what queued meanwhile to a task
//!         Some(answer)
//!     }
//!     Turn::Wait(pending) => pending.await,
//! };
//! assert_eq!(answer, Some(42));
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::SessionId;

/// A store's lanes, each running at most `depth` writes (or batches) at a time, with the
/// writes queued behind them.
#[derive(Debug)]
pub struct Lanes<T, A> {
    lanes: Box<[Mutex<Lane<T, A>>]>,
    depth: usize,
}

#[derive(Debug)]
struct Lane<T, A> {
    /// Leaders and tasks running a write or batch of the lane.
    running: usize,
    queue: Vec<Queued<T, A>>,
}

/// A write queued behind a running one: what it asks, and where its answer goes.
#[derive(Debug)]
pub struct Queued<T, A> {
    /// What the store needs to run the write.
    pub item: T,
    answer: oneshot::Sender<A>,
}

impl<T, A> Queued<T, A> {
    /// Sends the write's answer to the request waiting for it (if it still waits).
    pub fn answer(self, answer: A) {
        let _ = self.answer.send(answer);
    }

    /// The item and the answer's way back, apart.
    pub fn into_parts(self) -> (T, Answer<A>) {
        (self.item, Answer(self.answer))
    }
}

/// Where a queued write's answer goes, once its item is taken ([`Queued::into_parts`]).
#[derive(Debug)]
pub struct Answer<A>(oneshot::Sender<A>);

impl<A> Answer<A> {
    /// Sends the answer to the request waiting for it (if it still waits).
    pub fn send(self, answer: A) {
        let _ = self.0.send(answer);
    }
}

/// What a write does on [`enter`]: run now, leading its lane, or wait for its answer.
#[derive(Debug)]
pub enum Turn<B: Batches> {
    /// The lane had room: run the write alone, holding this until done.
    Lead(Leader<B>),
    /// The lane is busy: the write is queued; this resolves to its answer, or to `None` when
    /// the lane's task could not run it (no runtime, a panic).
    Wait(Pending<B::Answer>),
}

/// A store that runs queued writes in batches.
pub trait Batches: Send + Sync + 'static {
    /// What a queued write carries.
    type Item: Send + 'static;
    /// What it is answered.
    type Answer: Send + 'static;

    /// The store's lanes.
    fn lanes(&self) -> &Lanes<Self::Item, Self::Answer>;

    /// Runs one batch of `lane` and answers each of its writes (one not answered gets
    /// `None`).
    fn run(
        &self,
        lane: usize,
        batch: Vec<Queued<Self::Item, Self::Answer>>,
    ) -> impl Future<Output = ()> + Send;

    /// The most writes one batch takes; the rest wait for the next.
    fn max_batch(&self) -> usize {
        usize::MAX
    }
}

impl<T, A> Lanes<T, A> {
    /// `lanes` lanes (at least one), each running one write or batch at a time.
    pub fn new(lanes: usize) -> Self {
        Self::with_depth(lanes, 1)
    }

    /// `lanes` lanes (at least one), each running up to `depth` (at least one) writes or
    /// batches at a time: a store whose backend pipelines keeps it busy while a batch's
    /// answer travels back.
    pub fn with_depth(lanes: usize, depth: usize) -> Self {
        Self {
            lanes: (0..lanes.max(1))
                .map(|_| {
                    Mutex::new(Lane {
                        running: 0,
                        queue: Vec::new(),
                    })
                })
                .collect(),
            depth: depth.max(1),
        }
    }

    /// How many lanes there are.
    pub fn len(&self) -> usize {
        self.lanes.len()
    }

    /// Never: there is at least one lane.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn lane(&self, lane: usize) -> MutexGuard<'_, Lane<T, A>> {
        self.lanes[lane % self.lanes.len()]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// For one that just ran a write or batch of `lane`: what queued, in arrival order, at
    /// most `max`, without those whose requests went away. Empty: it no longer runs there.
    fn next(&self, lane: usize, max: usize) -> Vec<Queued<T, A>> {
        let mut lane = self.lane(lane);
        lane.queue.retain(|w| !w.answer.is_closed());
        let batch = if lane.queue.len() > max {
            let rest = lane.queue.split_off(max);
            std::mem::replace(&mut lane.queue, rest)
        } else {
            std::mem::take(&mut lane.queue)
        };
        if batch.is_empty() {
            lane.running = lane.running.saturating_sub(1);
        }
        batch
    }

    /// For one that cannot go on (no runtime, a panic): it no longer runs in `lane`, and when
    /// nothing else does, what queued is dropped (those requests get `None`).
    fn abandon(&self, lane: usize) {
        let mut lane = self.lane(lane);
        lane.running = lane.running.saturating_sub(1);
        if lane.running == 0 {
            lane.queue.clear();
        }
    }
}

/// The lane of a session: ids are random, so their first two bytes spread sessions evenly.
pub fn lane_of(id: &SessionId, lanes: usize) -> usize {
    let [a, b, ..] = *id.as_bytes();
    usize::from(u16::from_le_bytes([a, b])) % lanes.max(1)
}

/// Leads `lane` of `store` when it runs fewer than its depth; otherwise queues the write
/// `item()` makes in it.
pub fn enter<B: Batches>(store: &Arc<B>, lane: usize, item: impl FnOnce() -> B::Item) -> Turn<B> {
    let lanes = store.lanes();
    let mut state = lanes.lane(lane);
    if state.running < lanes.depth {
        state.running += 1;
        return Turn::Lead(Leader {
            store: store.clone(),
            lane,
        });
    }
    let (answer, receiver) = oneshot::channel();
    state.queue.push(Queued {
        item: item(),
        answer,
    });
    Turn::Wait(Pending(receiver))
}

/// A queued write's answer: `None` when the lane's task could not run it.
#[derive(Debug)]
pub struct Pending<A>(oneshot::Receiver<A>);

impl<A> Future for Pending<A> {
    type Output = Option<A>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<A>> {
        Pin::new(&mut self.0).poll(cx).map(Result::ok)
    }
}

/// Held by the write that leads its lane; dropped when it is done or cancelled, it hands
/// what queued meanwhile to a task.
#[derive(Debug)]
pub struct Leader<B: Batches> {
    store: Arc<B>,
    lane: usize,
}

impl<B: Batches> Drop for Leader<B> {
    fn drop(&mut self) {
        let batch = self.store.lanes().next(self.lane, self.store.max_batch());
        if batch.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.store.lanes().abandon(self.lane);
            return;
        };
        let runner = Runner {
            store: self.store.clone(),
            lane: self.lane,
            finished: false,
        };
        runtime.spawn(runner.run(batch));
    }
}

/// Runs a lane's queued writes until none are left. Dropped before that (a panic, the runtime
/// shutting down), it gives up its place in the lane, so later writes are not left queued
/// behind a task that is gone.
struct Runner<B: Batches> {
    store: Arc<B>,
    lane: usize,
    /// It left the lane by itself: the next write may already have taken its place.
    finished: bool,
}

impl<B: Batches> Runner<B> {
    async fn run(mut self, mut batch: Vec<Queued<B::Item, B::Answer>>) {
        loop {
            self.store.run(self.lane, batch).await;
            batch = self.store.lanes().next(self.lane, self.store.max_batch());
            if batch.is_empty() {
                self.finished = true;
                return;
            }
        }
    }
}

impl<B: Batches> Drop for Runner<B> {
    fn drop(&mut self) {
        if !self.finished {
            self.store.lanes().abandon(self.lane);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder {
        lanes: Lanes<u32, u32>,
        batches: Mutex<Vec<Vec<u32>>>,
    }

    impl Batches for Recorder {
        type Item = u32;
        type Answer = u32;
        fn lanes(&self) -> &Lanes<u32, u32> {
            &self.lanes
        }
        fn run(&self, _: usize, batch: Vec<Queued<u32, u32>>) -> impl Future<Output = ()> + Send {
            self.batches
                .lock()
                .unwrap()
                .push(batch.iter().map(|q| q.item).collect());
            async move {
                for queued in batch {
                    let item = queued.item;
                    queued.answer(item + 100);
                }
            }
        }
        fn max_batch(&self) -> usize {
            2
        }
    }

    fn recorder(lanes: usize) -> Arc<Recorder> {
        Arc::new(Recorder {
            lanes: Lanes::new(lanes),
            batches: Mutex::new(Vec::new()),
        })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_first_write_leads_and_the_rest_run_in_batches_once_it_is_done() {
        let store = recorder(2);
        let Turn::Lead(leader) = enter(&store, 0, || 1) else {
            panic!("the first write leads");
        };
        assert!(
            matches!(enter(&store, 1, || 9), Turn::Lead(_)),
            "another lane is idle"
        );
        let mut pending = Vec::new();
        for item in 2..=6 {
            let Turn::Wait(answer) = enter(&store, 0, || item) else {
                panic!("a write of a busy lane waits");
            };
            pending.push(answer);
        }
        // A request that went away is not run.
        drop(pending.remove(1));
        drop(leader);
        let mut answers = Vec::new();
        for answer in pending {
            answers.push(answer.await);
        }
        assert_eq!(answers, [Some(102), Some(104), Some(105), Some(106)]);
        assert_eq!(
            *store.batches.lock().unwrap(),
            [vec![2, 4], vec![5, 6]],
            "in arrival order, at most `max_batch` a batch"
        );
        assert!(
            matches!(enter(&store, 0, || 7), Turn::Lead(_)),
            "the lane is idle again"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_deeper_lane_runs_that_many_at_once_and_queues_the_rest() {
        let store = Arc::new(Recorder {
            lanes: Lanes::with_depth(1, 2),
            batches: Mutex::new(Vec::new()),
        });
        let Turn::Lead(first) = enter(&store, 0, || 1) else {
            panic!("the first write leads");
        };
        let Turn::Lead(second) = enter(&store, 0, || 2) else {
            panic!("so does the second, with a depth of 2");
        };
        let Turn::Wait(third) = enter(&store, 0, || 3) else {
            panic!("the third waits");
        };
        drop(first);
        assert_eq!(third.await, Some(103));
        assert!(
            matches!(enter(&store, 0, || 4), Turn::Lead(_)),
            "the first's place is free again"
        );
        drop(second);
    }

    #[test]
    fn without_a_runtime_the_queued_writes_are_abandoned_and_the_lane_idles() {
        let store = recorder(1);
        let Turn::Lead(leader) = enter(&store, 0, || 1) else {
            panic!("the first write leads");
        };
        let Turn::Wait(mut answer) = enter(&store, 0, || 2) else {
            panic!("the second waits");
        };
        drop(leader);
        let waker = std::task::Waker::noop();
        let poll = Pin::new(&mut answer).poll(&mut Context::from_waker(waker));
        assert_eq!(poll, Poll::Ready(None));
        assert!(matches!(enter(&store, 0, || 3), Turn::Lead(_)));
    }

    #[test]
    fn lanes_spread_by_the_ids_first_bytes() {
        let id = |a: u8, b: u8| {
            let mut bytes = [0; SessionId::BYTES];
            bytes[0] = a;
            bytes[1] = b;
            SessionId::from_bytes(bytes)
        };
        assert_eq!(lane_of(&id(5, 0), 4), 1);
        assert_eq!(lane_of(&id(0, 1), 4), 0);
        assert_eq!(lane_of(&id(7, 0), 1), 0);
    }
}
