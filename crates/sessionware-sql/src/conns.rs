//! Connections the store keeps checked out of the sqlx pool between queries.
//!
//! sqlx's pool pings every connection as it comes back (a `Sync` in PostgreSQL, `COM_PING` in
//! MySQL), which would add a round trip to every query, and it offers no switch for that. So
//! a connection that finished its work cleanly stays here for the next query instead of going
//! back. One that failed, or whose query was cancelled (a layer timeout dropped the future),
//! does go back to the pool, whose ping then tests it and closes it if it is broken. The pool
//! still opens connections and bounds their number; a task waiting for a connection takes
//! whichever comes first, one the pool opens or one another query hands back here.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard, Notify};

#[derive(Debug)]
pub(crate) struct Conns<DB: Database> {
    pool: Pool<DB>,
    idle: Mutex<Vec<PoolConnection<DB>>>,
    /// How many connections `idle` may hold: all of a pool the store opened; half of an
    /// application's pool, so the application keeps the other half (and a one-connection
    /// pool is never held here at all).
    keep: usize,
    /// Signalled when a connection is handed back to `idle`.
    returned: Notify,
    /// SQLite runs one writer at a time. Writers of this process queue here, in arrival
    /// order, for the one connection they write with, instead of in SQLite's busy handler,
    /// which sleeps and polls (up to 100 ms a sleep), and without waiting among readers for
    /// a connection while holding the turn. Other processes writing the same file still meet
    /// the busy timeout.
    writer: Option<AsyncMutex<Option<PoolConnection<DB>>>>,
}

impl<DB: Database> Conns<DB> {
    /// `owned`: the store opened `pool` and is its only user, so it keeps every connection.
    pub(crate) fn new(pool: Pool<DB>, owned: bool) -> Self {
        let max = pool.options().get_max_connections() as usize;
        Self {
            keep: if owned { max } else { max / 2 },
            pool,
            idle: Mutex::new(Vec::new()),
            returned: Notify::new(),
            writer: None,
        }
    }

    /// For an engine that runs one writer at a time: [`Conns::writer`] queues writers.
    pub(crate) fn with_one_writer(pool: Pool<DB>, owned: bool) -> Self {
        let mut conns = Self::new(pool, owned);
        // The writers' connection is one of those kept. Too small a pool to keep two has
        // none: the pool itself then queues writers with everyone else.
        if conns.keep >= 2 {
            conns.keep -= 1;
            conns.writer = Some(AsyncMutex::new(None));
        }
        conns
    }

    /// A connection for a statement that writes: where the engine takes one writer at a time,
    /// the writers' own connection, after the writers queued before this one.
    pub(crate) async fn writer(&self) -> Result<Lease<'_, DB>, sqlx::Error> {
        let Some(writer) = &self.writer else {
            return self.get().await;
        };
        let mut turn = writer.lock().await;
        let conn = match turn.take() {
            Some(conn) => conn,
            None => self.get().await?.take(),
        };
        let mut lease = self.lease(conn);
        lease.turn = Some(turn);
        Ok(lease)
    }

    /// A connection: the one used last (its statements are prepared), or one from the pool.
    pub(crate) async fn get(&self) -> Result<Lease<'_, DB>, sqlx::Error> {
        loop {
            // Registered before looking, so a hand-back between the look and the wait is not
            // missed.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(conn) = self.pop() {
                return Ok(self.lease(conn));
            }
            // When every connection the pool may open sits here or in use, only a hand-back
            // can serve this task: the pool's own queue would wait until its timeout.
            tokio::select! {
                conn = self.pool.acquire() => return Ok(self.lease(conn?)),
                () = &mut returned => {}
            }
        }
    }

    fn pop(&self) -> Option<PoolConnection<DB>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop()
    }

    fn lease(&self, conn: PoolConnection<DB>) -> Lease<'_, DB> {
        Lease {
            conns: self,
            conn: Some(conn),
            clean: false,
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

/// A connection lent to one store operation. Call [`Lease::done`] once the operation has
/// finished without error to keep it for the next one; dropped otherwise, it returns to the
/// pool to be tested.
pub(crate) struct Lease<'a, DB: Database> {
    conns: &'a Conns<DB>,
    conn: Option<PoolConnection<DB>>,
    clean: bool,
    /// A writer's turn, where its connection goes back when the lease is done.
    turn: Option<AsyncMutexGuard<'a, Option<PoolConnection<DB>>>>,
}

impl<DB: Database> Lease<'_, DB> {
    pub(crate) fn done(mut self) {
        self.clean = true;
    }

    /// The connection, out of the lease, which then has nothing to hand back.
    fn take(mut self) -> PoolConnection<DB> {
        match self.conn.take() {
            Some(conn) => conn,
            None => unreachable!("a lease holds its connection until it is dropped"),
        }
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
        if let Some(turn) = &mut self.turn {
            **turn = Some(conn);
            return;
        }
        let mut idle = self
            .conns
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < self.conns.keep {
            idle.push(conn);
            drop(idle);
            self.conns.returned.notify_one();
        }
    }
}
