//! What the layer logs: a session is named by a short keyed hash, never its id or token. In a
//! test binary of its own, because `tracing` decides per call site, across the process, whether
//! anyone listens: tests running beside this one could make it miss its lines.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use sessionware::{Error, Key, Session, SessionLayer, SessionStore};
use sessionware_memory::MemoryStore;
use sessionware_test_support::DownStore as Down;
use sessionware_test_support::client::{Client, serve};

async fn inc(session: Session) -> Result<String, Error> {
    let n: u64 = session.get("count")?.unwrap_or(0);
    session.insert("count", n + 1)?;
    Ok((n + 1).to_string())
}

fn layer(store: impl SessionStore) -> SessionLayer {
    SessionLayer::new(store).with_signing_key(
        Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 1 ^ i as u8)).unwrap(),
    )
}

/// Everything logged on this test's thread, which with the default current-thread test runtime
/// is also where the server's tasks run.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The first line holding `message`.
    fn line(&self, message: &str) -> String {
        let text = self.text();
        let line = text.lines().find(|l| l.contains(message));
        line.unwrap_or_else(|| panic!("no {message:?} in the logs:\n{text}"))
            .to_owned()
    }
}

#[tokio::test]
async fn logs_name_a_session_by_its_keyed_hash_never_its_id_or_token() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = MemoryStore::new();
    let router = Router::new()
        .route("/inc", get(inc))
        .route(
            "/log-id",
            get(|s: Session| async move { s.log_id().map(|l| l.to_string()).unwrap_or_default() }),
        )
        .route("/destroy", get(|s: Session| async move { s.destroy() }))
        .route(
            // Ends the session behind the request's back, then writes to it.
            "/gone",
            get(|s: Session, State(store): State<MemoryStore>| async move {
                store.delete(&s.id().unwrap()).await.unwrap();
                s.insert("late", 1)
            }),
        )
        .with_state(store.clone())
        .layer(layer(store.clone()).with_bearer_tokens(true));
    let addr = serve(router).await;
    let mut c = Client::new(addr);

    c.get("/inc").await;
    let token = c.jar.clone().unwrap();
    let log_id = c.get("/log-id").await.body;
    assert_eq!(log_id.len(), 11);
    let field = format!("session={log_id}");
    assert!(c.get("/inc").await.status == 200);
    assert!(logs.line("session created").contains(&field));

    let (id_text, tag) = token.split_once('.').unwrap();
    let flipped = if tag.starts_with('A') { "B" } else { "A" };
    let forged = format!("{id_text}.{flipped}{}", &tag[1..]);
    c.get_with_cookie_header("/inc", &format!("__Host-session={forged}"))
        .await;
    assert!(
        logs.line("cookie failed verification").contains(&field),
        "a forged tag is logged under the session its id part names"
    );
    reqwest::Client::new()
        .get(format!("http://{addr}/inc"))
        .header("authorization", format!("Bearer {forged}"))
        .send()
        .await
        .unwrap();
    assert!(logs.line("token failed verification").contains(&field));

    // Another instance sharing the key names the session alike.
    let down_app = Router::new().route("/inc", get(inc)).layer(layer(Down));
    let down = Client::at(&c, serve(down_app).await).get("/inc").await;
    assert_eq!(down.status, 503);
    assert!(logs.line("could not be loaded").contains(&field));

    assert_eq!(c.get("/gone").await.status, 409);
    assert!(logs.line("write-back failed").contains(&field));

    c.get("/inc").await;
    let second = c.jar.clone().unwrap();
    let second_log_id = c.get("/log-id").await.body;
    c.get("/destroy").await;
    assert!(
        logs.line("session destroyed")
            .contains(&format!("session={second_log_id}"))
    );

    let text = logs.text();
    for secret in [
        &token,
        &second,
        id_text,
        tag,
        second.split_once('.').unwrap().0,
    ] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the logs:\n{text}"
        );
    }
}

#[tokio::test]
async fn the_missing_key_warning_comes_once_per_layer_not_per_route() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let routes = ["/a", "/b", "/c", "/d", "/e"];
    let router = routes.iter().fold(Router::<()>::new(), |r, path| {
        r.route(path, axum::routing::get(inc).post(inc))
    });
    let unkeyed = SessionLayer::new(MemoryStore::new());
    let _app = router.layer(unkeyed.clone()).layer(unkeyed);
    let warnings = logs.text().matches("no signing key").count();
    assert_eq!(warnings, 1, "{}", logs.text());
}

#[tokio::test]
async fn each_store_call_has_a_span_naming_the_session_by_its_log_id() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let router = Router::new()
        .route("/inc", get(inc))
        .route(
            "/log-id",
            get(|s: Session| async move { s.log_id().map(|l| l.to_string()).unwrap_or_default() }),
        )
        .layer(layer(MemoryStore::new()));
    let addr = serve(router).await;
    let mut c = Client::new(addr);
    c.get("/inc").await;
    c.get("/inc").await;
    let token = c.jar.clone().unwrap();
    let log_id = c.get("/log-id").await.body;

    let text = logs.text();
    let spans: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("session_store{"))
        .collect();
    let has = |op: &str, outcome: &str| {
        spans.iter().any(|l| {
            l.contains(&format!("operation=\"{op}\""))
                && l.contains("store=\"memory\"")
                && l.contains(&format!("outcome=\"{outcome}\""))
                && l.contains("duration_us=")
        })
    };
    assert!(has("create", "ok"), "a create span:\n{text}");
    assert!(has("load_refreshed", "ok") && has("apply", "ok"), "{text}");
    assert!(
        spans
            .iter()
            .any(|l| l.contains("load_refreshed") && l.contains(&format!("session={log_id}"))),
        "the span names the session by its log id:\n{text}"
    );
    let (id_text, tag) = token.split_once('.').unwrap();
    assert!(
        !text.contains(id_text) && !text.contains(tag),
        "id or token leaked:\n{text}"
    );

    // A store that is down: the span says so.
    let down_app = Router::new().route("/inc", get(inc)).layer(layer(Down));
    let down = Client::at(&c, serve(down_app).await).get("/inc").await;
    assert_eq!(down.status, 503);
    assert!(
        logs.text()
            .lines()
            .any(|l| l.contains("session_store{") && l.contains("outcome=\"unavailable\"")),
        "{}",
        logs.text()
    );
}
