//! Metrics over HTTP through a real recorder installed as the process's global one: the counts
//! after known requests, the store-call histogram, the failures by status and cause.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use sessionware_core::time::{Duration, OffsetDateTime};
use sessionware_core::{
    ChangeSet, Error as StoreError, ExpiryPolicy, Loaded, ManualClock, Record, SessionId,
    SessionStore, SystemClock,
};

use super::{Client, serve};
use crate::{Clock, Error, Session, SessionLayer};

type Name = (String, Vec<(String, String)>);

/// A recorder that keeps every count, gauge and histogram sample in memory, for tests to read
/// back. [`TestRecorder::install`] makes it the process's global recorder.
#[derive(Default)]
pub struct TestRecorder {
    counters: Mutex<HashMap<Name, Arc<AtomicU64>>>,
    gauges: Mutex<HashMap<Name, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<Name, Arc<Samples>>>,
}

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl metrics::HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

fn name_of(key: &Key) -> Name {
    let mut labels: Vec<(String, String)> = key
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    labels.sort();
    (key.name().to_owned(), labels)
}

fn lookup(name: &str, labels: &[(&str, &str)]) -> Name {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    (name.to_owned(), labels)
}

impl TestRecorder {
    /// The process's global recorder, installed at the first call. Install it before
    /// building the layers whose metrics a test reads: a layer registers its handles when
    /// it is built. Panics if another global recorder was installed first.
    pub fn install() -> &'static TestRecorder {
        static RECORDER: OnceLock<&'static TestRecorder> = OnceLock::new();
        RECORDER.get_or_init(|| {
            let recorder: &'static TestRecorder = Box::leak(Box::default());
            metrics::set_global_recorder(recorder)
                .expect("no other global metrics recorder installed");
            recorder
        })
    }

    /// The counter `name` with exactly these labels; 0 if never registered.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let counters = self.counters.lock().unwrap();
        counters
            .get(&lookup(name, labels))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The gauge `name` with exactly these labels, if registered.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let gauges = self.gauges.lock().unwrap();
        gauges
            .get(&lookup(name, labels))
            .map(|g| f64::from_bits(g.load(Ordering::Relaxed)))
    }

    /// The samples of the histogram `name` with exactly these labels.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        let histograms = self.histograms.lock().unwrap();
        histograms
            .get(&lookup(name, labels))
            .map_or_else(Vec::new, |h| h.0.lock().unwrap().clone())
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap();
        Counter::from_arc(counters.entry(name_of(key)).or_default().clone())
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut gauges = self.gauges.lock().unwrap();
        Gauge::from_arc(gauges.entry(name_of(key)).or_default().clone())
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().unwrap();
        Histogram::from_arc(histograms.entry(name_of(key)).or_default().clone())
    }
}

/// The store under test with a name of its own (so other tests of the same process, on the
/// same kind of store, never add to the counts read here) and a switch that makes it fail.
#[derive(Clone)]
struct Probe<S> {
    inner: S,
    name: &'static str,
    down: Arc<AtomicBool>,
}

impl<S: SessionStore> Probe<S> {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(StoreError::backend("the test took the store down"));
        }
        Ok(())
    }
}

impl<S: SessionStore> SessionStore for Probe<S> {
    fn name(&self) -> &'static str {
        self.name
    }
    async fn create(&self, record: &Record) -> Result<SessionId, StoreError> {
        self.check()?;
        self.inner.create(record).await
    }
    async fn load(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<Record>, StoreError> {
        self.check()?;
        self.inner.load(id, now).await
    }
    async fn load_refreshed(
        &self,
        id: &SessionId,
        policy: &ExpiryPolicy,
        now: OffsetDateTime,
    ) -> Result<Option<Loaded>, StoreError> {
        self.check()?;
        self.inner.load_refreshed(id, policy, now).await
    }
    async fn apply(
        &self,
        id: &SessionId,
        changes: &ChangeSet,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.apply(id, changes, now).await
    }
    async fn touch(
        &self,
        id: &SessionId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.touch(id, expires_at, now).await
    }
    async fn rekey(
        &self,
        old: &SessionId,
        expected_user: Option<&str>,
        record: &Record,
        now: OffsetDateTime,
    ) -> Result<Option<SessionId>, StoreError> {
        self.check()?;
        self.inner.rekey(old, expected_user, record, now).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.check()?;
        self.inner.delete(id).await
    }
    async fn count(&self, now: OffsetDateTime) -> Result<Option<u64>, StoreError> {
        self.check()?;
        self.inner.count(now).await
    }
    async fn list_user(&self, user: &str, now: OffsetDateTime) -> Result<Vec<Record>, StoreError> {
        self.check()?;
        self.inner.list_user(user, now).await
    }
    async fn delete_user(
        &self,
        user: &str,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        self.check()?;
        self.inner.delete_user(user, keep, now).await
    }
}

/// The counts the layer reports over `store`, through [`TestRecorder`] installed as the
/// global recorder, after a known sequence of requests over real loopback HTTP: sessions
/// created, loaded, written, touched, destroyed, revoked (by an admin and by the per-user
/// cap), found ended, refused tokens and conflicting cookies; `409` and `503` answers by cause; one store-call
/// duration per call, by operation. Returns the recorder, for a store's own metrics (the Redis
/// near cache's). Panics, naming the step, on the first failure.
pub async fn metrics_over_http(store: impl SessionStore + Clone) -> &'static TestRecorder {
    let recorder = TestRecorder::install();
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let label: &'static str = Box::leak(
        format!(
            "{}-test-{}",
            store.name(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        )
        .into_boxed_str(),
    );
    let down = Arc::new(AtomicBool::new(false));
    let probe = Probe {
        inner: store,
        name: label,
        down: down.clone(),
    };
    let clock = ManualClock::at(SystemClock.now());
    let layer = SessionLayer::new(probe)
        .with_signing_key(
            crate::Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 13 ^ i as u8)).unwrap(),
        )
        .with_expiry(ExpiryPolicy::new().with_refresh_interval(Duration::ZERO))
        .with_max_sessions_per_user(1)
        .with_clock(clock.clone());
    let admin = layer.users();
    let raced = layer.users();
    let counter = layer.clone();
    let extra = Router::new()
        .route(
            "/raced/{user}",
            // A write the user's revocation overtakes: `409`, cause `session_gone`.
            get(move |s: Session, Path(user): Path<String>| {
                let raced = raced.clone();
                async move {
                    s.insert("late", 1)?;
                    raced.revoke_all(&user).await?;
                    Ok::<_, Error>(())
                }
            }),
        )
        .layer(layer.clone());
    let addr = serve(super::app(layer).merge(extra)).await;
    let user = format!("metrics-{}", SessionId::generate().unwrap());
    let count = |name: &str| recorder.counter(name, &[("store", label)]);
    let calls = |op: &str| {
        recorder
            .histogram(
                "sessionware_store_call_duration_seconds",
                &[("store", label), ("operation", op)],
            )
            .len()
    };

    let mut a = Client::new(addr, "a", false);
    a.get("/inc").await; // create
    a.get("/inc").await; // load, apply
    clock.advance(Duration::seconds(1));
    a.get("/whoami").await; // load that moves the deadline
    a.get(&format!("/login/{user}")).await; // load, rekey, cap's listing
    let a_token = a.token.clone().unwrap();
    let mut b = Client::new(addr, "b", false);
    b.get(&format!("/login/{user}")).await; // create, cap's listing, cap deletes a
    a.get("/whoami").await; // a was ended by the cap: expired
    let mut forged = Client::new(addr, "forged", false);
    forged.token = Some(format!("{}.{}", "A".repeat(22), "B".repeat(43)));
    forged.get("/whoami").await; // refused
    // Two validly signed cookies naming different sessions (a's ended one, b's): neither is
    // loaded.
    let mut tossed = Client::new(addr, "tossed", false);
    tossed.token = Some(format!(
        "{}; __Host-session={a_token}",
        b.token.clone().unwrap()
    ));
    tossed.get("/whoami").await;
    assert_eq!(b.get("/logout").await.status, 200); // load, delete

    let mut c = Client::new(addr, "c", false);
    c.get(&format!("/login/{user}")).await; // create, cap's listing
    assert_eq!(admin.revoke_all(&user).await.unwrap(), 1); // delete_user
    let mut d = Client::new(addr, "d", false);
    d.get(&format!("/login/{user}")).await; // create, cap's listing
    let held = d.token.clone();
    let r = d.get(&format!("/raced/{user}")).await; // load, delete_user, apply refused
    assert_eq!(r.status, 409, "raced write: {}", r.body);

    down.store(true, Ordering::Relaxed);
    let mut e = Client::new(addr, "e", false);
    e.token = held;
    let r = e.get("/whoami").await; // load fails
    assert_eq!(r.status, 503, "store down: {}", r.body);
    down.store(false, Ordering::Relaxed);

    let expected = [
        ("sessionware_sessions_created_total", 4), // a, b, c, d
        ("sessionware_sessions_loaded_total", 5),  // a ×3, b's logout, d's raced write
        ("sessionware_sessions_written_total", 2), // a's apply and sign-in
        ("sessionware_sessions_touched_total", 1),
        ("sessionware_sessions_destroyed_total", 1), // b's logout
        ("sessionware_sessions_expired_total", 1),   // a after the cap
    ];
    for (name, want) in expected {
        assert_eq!(count(name), want, "{name}");
    }
    let refused = |reason: &str| {
        recorder.counter(
            "sessionware_tokens_refused_total",
            &[("store", label), ("reason", reason)],
        )
    };
    assert_eq!(
        (refused("invalid"), refused("conflicting")),
        (1, 1),
        "tokens refused: the forged one; the conflicting pair"
    );
    let revoked = |by: &str| {
        recorder.counter(
            "sessionware_sessions_revoked_total",
            &[("store", label), ("by", by)],
        )
    };
    assert_eq!(
        (revoked("cap"), revoked("admin"), revoked("user")),
        (1, 2, 0),
        "revoked by cap (a), admin (c, and d in the raced write)"
    );
    let failures = |status: &str, cause: &str| {
        recorder.counter(
            "sessionware_failures_total",
            &[("store", label), ("status", status), ("cause", cause)],
        )
    };
    assert_eq!(failures("409", "session_gone"), 1, "409 by cause");
    assert_eq!(failures("503", "backend"), 1, "503 by cause");

    let ops = [
        ("create", 4),
        ("load_refreshed", 7), // the five loads, a's expired one, the failed one
        ("apply", 2),          // a's write, d's refused one
        ("rekey", 1),
        ("delete", 2), // the cap's, b's logout
        ("list_user", 4),
        ("delete_user", 2),
        ("touch", 0),
    ];
    for (op, want) in ops {
        assert_eq!(calls(op), want, "store calls timed: {op}");
    }
    // Session counts: every session above has ended; three new ones are counted, and the
    // gauge follows the admin call.
    assert_eq!(
        counter.count_sessions().await.unwrap(),
        Some(0),
        "count: none live"
    );
    for agent in ["f", "g", "h"] {
        Client::new(addr, agent, false).get("/inc").await;
    }
    assert_eq!(
        counter.count_sessions().await.unwrap(),
        Some(3),
        "count: three live"
    );
    assert_eq!(
        recorder.gauge("sessionware_sessions_live", &[("store", label)]),
        Some(3.0),
        "the gauge"
    );
    assert_eq!(calls("count"), 2, "store calls timed: count");
    let samples = recorder.histogram(
        "sessionware_store_call_duration_seconds",
        &[("store", label), ("operation", "create")],
    );
    assert!(
        samples.iter().all(|s| (0.0..5.0).contains(s)),
        "durations in seconds: {samples:?}"
    );
    recorder
}
