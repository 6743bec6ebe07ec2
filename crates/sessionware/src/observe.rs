//! Metrics (through the `metrics` facade) and tracing spans around store calls.
//!
//! Every handle is registered once, when the layer is built, so a request pays a branch per
//! count when no recorder is installed (the facade's no-op handles), and a call through an
//! `Arc` when one is: no key lookup, no label allocation. Store calls are timed only when a
//! recorder or a span subscriber listens.

use std::time::Instant;

use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};

use crate::Error;
use crate::events::RevokedBy;

/// A store operation, as the `operation` label and span field name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Create,
    Load,
    LoadRefreshed,
    Apply,
    Touch,
    Rekey,
    Delete,
    ListUser,
    DeleteUser,
    Count,
}

impl Op {
    const ALL: [Op; 10] = [
        Op::Create,
        Op::Load,
        Op::LoadRefreshed,
        Op::Apply,
        Op::Touch,
        Op::Rekey,
        Op::Delete,
        Op::ListUser,
        Op::DeleteUser,
        Op::Count,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Load => "load",
            Op::LoadRefreshed => "load_refreshed",
            Op::Apply => "apply",
            Op::Touch => "touch",
            Op::Rekey => "rekey",
            Op::Delete => "delete",
            Op::ListUser => "list_user",
            Op::DeleteUser => "delete_user",
            Op::Count => "count",
        }
    }
}

/// The metric names, listed in the README.
pub(crate) mod names {
    pub(crate) const CREATED: &str = "sessionware_sessions_created_total";
    pub(crate) const LOADED: &str = "sessionware_sessions_loaded_total";
    pub(crate) const WRITTEN: &str = "sessionware_sessions_written_total";
    pub(crate) const TOUCHED: &str = "sessionware_sessions_touched_total";
    pub(crate) const DESTROYED: &str = "sessionware_sessions_destroyed_total";
    pub(crate) const REVOKED: &str = "sessionware_sessions_revoked_total";
    pub(crate) const EXPIRED: &str = "sessionware_sessions_expired_total";
    pub(crate) const REFUSED: &str = "sessionware_tokens_refused_total";
    pub(crate) const FAILURES: &str = "sessionware_failures_total";
    pub(crate) const STORE_CALLS: &str = "sessionware_store_call_duration_seconds";
    pub(crate) const LIVE: &str = "sessionware_sessions_live";
}

/// The layer's metric handles, all labelled with the store's name.
#[derive(Clone)]
pub(crate) struct Metrics {
    store: &'static str,
    /// A recorder was installed when the layer was built: store calls are timed.
    recording: bool,
    pub(crate) created: Counter,
    pub(crate) loaded: Counter,
    pub(crate) written: Counter,
    pub(crate) touched: Counter,
    pub(crate) destroyed: Counter,
    pub(crate) expired: Counter,
    /// Tokens that failed verification (`reason="invalid"`).
    pub(crate) refused: Counter,
    /// Pairs of valid cookies naming different sessions (`reason="conflicting"`).
    pub(crate) conflicting: Counter,
    /// Set by `SessionLayer::count_sessions`.
    pub(crate) live: Gauge,
    revoked: [Counter; 3],
    calls: [Histogram; Op::ALL.len()],
}

impl Metrics {
    pub(crate) fn new(store: &'static str) -> Self {
        // The facade's no-op recorder is its only zero-sized one; any recorder that keeps
        // what it is given holds state. There is no other way to ask whether one is installed.
        let recording = metrics::with_recorder(|r| std::mem::size_of_val(r) != 0);
        if recording {
            describe();
        }
        let count = |name: &'static str| counter!(name, "store" => store);
        Self {
            store,
            recording,
            created: count(names::CREATED),
            loaded: count(names::LOADED),
            written: count(names::WRITTEN),
            touched: count(names::TOUCHED),
            destroyed: count(names::DESTROYED),
            expired: count(names::EXPIRED),
            refused: counter!(names::REFUSED, "store" => store, "reason" => "invalid"),
            conflicting: counter!(names::REFUSED, "store" => store, "reason" => "conflicting"),
            live: gauge!(names::LIVE, "store" => store),
            revoked: [RevokedBy::User, RevokedBy::Admin, RevokedBy::Cap]
                .map(|by| counter!(names::REVOKED, "store" => store, "by" => by.as_str())),
            calls: Op::ALL.map(
                |op| histogram!(names::STORE_CALLS, "store" => store, "operation" => op.as_str()),
            ),
        }
    }

    pub(crate) fn store(&self) -> &'static str {
        self.store
    }

    /// A recorder was installed when the layer was built.
    pub(crate) fn recording(&self) -> bool {
        self.recording
    }

    pub(crate) fn revoked(&self, by: RevokedBy, sessions: usize) {
        let i = match by {
            RevokedBy::User => 0,
            RevokedBy::Admin => 1,
            RevokedBy::Cap => 2,
        };
        self.revoked[i].increment(sessions as u64);
    }

    /// The clock reading a timed call starts from, when anyone will see the duration.
    pub(crate) fn start(&self, span: &tracing::Span) -> Option<Instant> {
        (self.recording || !span.is_disabled()).then(Instant::now)
    }

    pub(crate) fn finish(
        &self,
        op: Op,
        started: Option<Instant>,
        span: &tracing::Span,
        outcome: &str,
    ) {
        if let Some(started) = started {
            let elapsed = started.elapsed();
            self.calls[op as usize].record(elapsed.as_secs_f64());
            span.record("duration_us", elapsed.as_micros() as u64);
        }
        if !span.is_disabled() {
            span.record("outcome", outcome);
        }
    }

    /// A request the layer answered with an error instead of the handler's response.
    pub(crate) fn failed(&self, error: &Error) {
        // Registered here rather than up front: failures are rare, and each is worth a lookup.
        if !self.recording {
            return;
        }
        let status = error.status();
        counter!(
            names::FAILURES,
            "store" => self.store,
            "status" => status.as_str().to_owned(),
            "cause" => cause(error),
        )
        .increment(1);
    }
}

/// The `cause` label of a failure.
fn cause(error: &Error) -> &'static str {
    use sessionware_core::Error as Store;
    match error {
        Error::Store(Store::Timeout) => "timeout",
        Error::Store(Store::Backend(_)) => "backend",
        Error::Store(Store::Rejected { .. }) => "rejected",
        Error::Store(Store::Random) => "random",
        Error::Store(_) => "store",
        Error::SessionGone => "session_gone",
        Error::UpdateConflict { .. } => "update_conflict",
        Error::NotAnInteger { .. } => "not_an_integer",
        Error::Overflow { .. } => "overflow",
        _ => "other",
    }
}

/// The outcome field of a store call's span.
pub(crate) fn outcome<T>(result: &Result<T, sessionware_core::Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(sessionware_core::Error::Timeout) => "timeout",
        Err(e) if e.is_unavailable() => "unavailable",
        Err(sessionware_core::Error::Conflict { .. }) => "conflict",
        Err(_) => "error",
    }
}

fn describe() {
    describe_counter!(
        names::CREATED,
        Unit::Count,
        "Sessions stored for the first time."
    );
    describe_counter!(
        names::LOADED,
        Unit::Count,
        "Live sessions read from the store by a request."
    );
    describe_counter!(
        names::WRITTEN,
        Unit::Count,
        "Changes written to stored sessions (apply, id renewal)."
    );
    describe_counter!(
        names::TOUCHED,
        Unit::Count,
        "Deadlines moved by a read (refresh), without a data write."
    );
    describe_counter!(
        names::DESTROYED,
        Unit::Count,
        "Sessions ended by sign-out or destroy."
    );
    describe_counter!(
        names::REVOKED,
        Unit::Count,
        "Sessions ended by a revocation, by whom (user, admin, cap)."
    );
    describe_counter!(
        names::EXPIRED,
        Unit::Count,
        "Validly signed tokens naming a session the store no longer holds."
    );
    describe_counter!(
        names::REFUSED,
        Unit::Count,
        "Session tokens not used, by reason: invalid (failed verification), conflicting (two valid cookies naming different sessions)."
    );
    describe_counter!(
        names::FAILURES,
        Unit::Count,
        "Requests answered with the layer's error instead of the handler's response, by status and cause."
    );
    describe_gauge!(
        names::LIVE,
        Unit::Count,
        "Live sessions in the store, as of the last SessionLayer::count_sessions."
    );
    describe_histogram!(
        names::STORE_CALLS,
        Unit::Seconds,
        "Duration of store calls, by store and operation."
    );
}
