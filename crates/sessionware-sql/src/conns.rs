//! Connections the store keeps checked out of the sqlx pool between queries.
//!
//! sqlx's pool pings every connection as it comes back (a `Sync` in PostgreSQL, `COM_PING` in
//! MySQL), which would add a round trip to every query, and it offers no switch for that. So
//! a connection that finished its work cleanly stays here for the next query instead of going
//! back. One that failed, or whose query was cancelled (a layer timeout dropped the future),
//! does go back to the pool, whose ping then tests it and closes it if it is broken.
//!
//! On an application's pool (`from_pool`) the store keeps a connection between queries only
//! while another of its queries waits for one: under load connections pass from query to
//! query with no ping, and once the store is not busy every one is back in the application's
//! pool, which keeps its full size for the application's own queries.
//!
//! How many the store holds is counted by a semaphore, one permit a connection, which also
//! queues the queries waiting for one in arrival order. An earlier version raced a pool
//! `acquire` against a hand-back here and dropped the loser: when the pool was not yet full
//! that dropped connections half opened, again and again, and a PostgreSQL store of 16
//! connections ran at a third of the rate of one of 10 (issue 14).

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard, Semaphore, SemaphorePermit};

#[derive(Debug)]
pub(crate) struct Conns<DB: Database> {
    pool: Pool<DB>,
    idle: Mutex<Vec<PoolConnection<DB>>>,
    /// One permit per connection the store may hold, leased or in `idle`: every one of a pool
    /// the store opened; half of an application's pool, so the application keeps the other
    /// half. `None` for a pool too small to share (one connection): each query then borrows
    /// from the pool and hands back.
    slots: Option<Semaphore>,
    /// SQLite runs one writer at a time. Writers of this process queue here, in arrival
    /// order, for the one connection they write with, instead of in SQLite's busy handler,
    /// which sleeps and polls (up to 100 ms a sleep), and without waiting among readers for
    /// a connection while holding the turn. Other processes writing the same file still meet
    /// the busy timeout.
    writer: Option<AsyncMutex<Option<PoolConnection<DB>>>>,
    /// How many write transactions the store runs at a time (`sessionware_core::lanes`): half the
    /// connections it keeps, so readers always find some; one where writers queue for one
    /// connection.
    write_lanes: usize,
    /// The pool is the application's: a connection is kept between queries only while other
    /// queries of the store wait for one, and otherwise goes back, so between the store's
    /// bursts the application has its whole pool.
    lend: bool,
    /// Queries waiting for a slot, and writers for their turn.
    waiting: AtomicUsize,
    writers_waiting: AtomicUsize,
}

impl<DB: Database> Conns<DB> {
    /// `owned`: the store opened `pool` and is its only user, so it keeps every connection.
    pub(crate) fn new(pool: Pool<DB>, owned: bool) -> Self {
        let max = pool.options().get_max_connections() as usize;
        let keep = if owned { max } else { max / 2 };
        Self {
            pool,
            idle: Mutex::new(Vec::new()),
            slots: (keep > 0).then(|| Semaphore::new(keep)),
            writer: None,
            write_lanes: (keep / 2).max(1),
            lend: !owned,
            waiting: AtomicUsize::new(0),
            writers_waiting: AtomicUsize::new(0),
        }
    }

    /// How many write transactions the store runs at a time.
    pub(crate) fn write_lanes(&self) -> usize {
        self.write_lanes
    }

    /// For an engine that runs one writer at a time: [`Conns::writer`] queues writers.
    pub(crate) fn with_one_writer(pool: Pool<DB>, owned: bool) -> Self {
        let mut conns = Self::new(pool, owned);
        // The writers' connection is one of those kept. Too small a share to keep two has
        // none: the pool itself then queues writers with everyone else.
        if let Some(slots) = &conns.slots
            && slots.available_permits() >= 2
        {
            slots.forget_permits(1);
            conns.writer = Some(AsyncMutex::new(None));
            conns.write_lanes = 1;
        }
        conns
    }

    /// A connection for a statement that writes: where the engine takes one writer at a time,
    /// the writers' own connection, after the writers queued before this one.
    pub(crate) async fn writer(&self) -> Result<Lease<'_, DB>, sqlx::Error> {
        let Some(writer) = &self.writer else {
            return self.get().await;
        };
        let waiting = Count::up(&self.writers_waiting);
        let mut turn = writer.lock().await;
        drop(waiting);
        let conn = match turn.take() {
            Some(conn) => conn,
            // Its permit was set aside for it: readers never hold this one.
            None => self.pool.acquire().await?,
        };
        let mut lease = self.lease(conn, None);
        lease.turn = Some(turn);
        Ok(lease)
    }

    /// A connection: one kept from an earlier query (its statements are prepared), or one from
    /// the pool, after the queries that asked before this one.
    pub(crate) async fn get(&self) -> Result<Lease<'_, DB>, sqlx::Error> {
        let Some(slots) = &self.slots else {
            return Ok(self.lease(self.pool.acquire().await?, None));
        };
        // Never closed, so `acquire` cannot fail; without a permit the query would still run,
        // on a connection from the pool.
        let waiting = Count::up(&self.waiting);
        let permit = slots.acquire().await.ok();
        drop(waiting);
        let conn = match self.pop() {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        Ok(self.lease(conn, permit))
    }

    fn pop(&self) -> Option<PoolConnection<DB>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop()
    }

    fn lease<'a>(
        &'a self,
        conn: PoolConnection<DB>,
        permit: Option<SemaphorePermit<'a>>,
    ) -> Lease<'a, DB> {
        Lease {
            conns: self,
            conn: Some(conn),
            clean: false,
            permit,
            turn: None,
        }
    }
}

impl<DB: Database> Drop for Conns<DB> {
    fn drop(&mut self) {
        let mut idle = std::mem::take(
            self.idle
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        idle.extend(self.writer.as_mut().and_then(|w| w.get_mut().take()));
        // Handing a connection back to the pool spawns a task. Outside a runtime (the store
        // dropped after its runtime) give it a throwaway one: the tasks are dropped with it,
        // closing the connections.
        if tokio::runtime::Handle::try_current().is_err() {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() {
                let _enter = runtime.enter();
                drop(idle);
            } else {
                idle.into_iter().for_each(|conn| drop(conn.leak()));
            }
        }
    }
}

/// One more in a count, until dropped (also when the future counted is cancelled).
struct Count<'a>(&'a AtomicUsize);

impl<'a> Count<'a> {
    fn up(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Count<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection lent to one store operation. Call [`Lease::done`] once the operation has
/// finished without error to keep it for the next one; dropped otherwise, it returns to the
/// pool to be tested.
pub(crate) struct Lease<'a, DB: Database> {
    conns: &'a Conns<DB>,
    conn: Option<PoolConnection<DB>>,
    clean: bool,
    /// The slot the connection takes; released after the connection is put back.
    permit: Option<SemaphorePermit<'a>>,
    /// A writer's turn, where its connection goes back when the lease is done.
    turn: Option<AsyncMutexGuard<'a, Option<PoolConnection<DB>>>>,
}

impl<DB: Database> Lease<'_, DB> {
    pub(crate) fn done(mut self) {
        self.clean = true;
    }
}

impl<DB: Database> Deref for Lease<'_, DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        match &self.conn {
            Some(conn) => conn,
            None => unreachable!("a lease holds its connection until it is dropped"),
        }
    }
}

impl<DB: Database> DerefMut for Lease<'_, DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match &mut self.conn {
            Some(conn) => conn,
            None => unreachable!("a lease holds its connection until it is dropped"),
        }
    }
}

impl<DB: Database> Drop for Lease<'_, DB> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if !self.clean {
            return; // dropped: back to the pool, which tests it
        }
        let conns = self.conns;
        if let Some(turn) = &mut self.turn {
            // On the application's pool, kept only for a writer that waits for it.
            if !conns.lend || conns.writers_waiting.load(Ordering::Relaxed) > 0 {
                **turn = Some(conn);
            }
        } else if self.permit.is_some() {
            let mut idle = conns
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let waiting = conns.waiting.load(Ordering::Relaxed);
            if !conns.lend || idle.len() < waiting {
                idle.push(conn);
            } else if waiting == 0 {
                // On the application's pool with none of the store's queries waiting: what
                // was kept for waiters that have since been served goes back too, so the
                // last query out leaves the pool whole.
                let kept = std::mem::take(&mut *idle);
                drop(idle);
                drop(kept);
            }
        }
        // Otherwise (a pool too small to share, or the application's with enough kept for
        // the queries waiting) it goes back to the pool.
    }
}
