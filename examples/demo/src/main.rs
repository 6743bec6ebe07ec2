//! The sessionware demo: a small server-rendered site that shows what the library does.
//!
//! ```text
//! cargo run -p demo                    # http://127.0.0.1:3000, sessions in ./demo-sessions.db
//! PORT=8080 SESSION_KEY=<64 hex digits> SESSION_STORE=memory cargo run -p demo
//! ```
//!
//! Sign in with any user name and the password `demo`, count, open the same address in a second
//! browser (or a private window), sign in there too, and end that session from "your devices".
//! `app.rs` holds the routes, `html.rs` the pages.

mod app;
mod html;

use metrics_exporter_prometheus::PrometheusBuilder;

/// A sign-in beyond this many live sessions ends the user's oldest one.
const MAX_DEVICES_PER_USER: usize = 5;

/// Sessions live in a SQLite file in the working directory unless `SESSION_STORE` says
/// otherwise (`memory`, a Redis or another SQL URL), so they survive a restart with no
/// server to install.
const DEFAULT_STORE: &str = "sqlite://demo-sessions.db";

/// Histogram buckets for store call durations, in seconds: from an in-process call to the
/// store timeout.
const STORE_CALL_BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0, 5.0,
];

/// How recent a sign-in must be for the settings page: `DEMO_RECENT_SIGN_IN_SECS`, five
/// minutes by default (the browser test shortens it).
fn recent_sign_in() -> Result<time::Duration, String> {
    match std::env::var("DEMO_RECENT_SIGN_IN_SECS") {
        Err(_) => Ok(time::Duration::minutes(5)),
        Ok(text) => text
            .parse::<u32>()
            .map(|s| time::Duration::seconds(i64::from(s)))
            .map_err(|_| format!("DEMO_RECENT_SIGN_IN_SECS={text:?} is not a number of seconds")),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    example_support::init_tracing();
    let result = async {
        let recent = recent_sign_in()?;
        // Before the store and the layer, which register their metrics when they are built.
        let prometheus = PrometheusBuilder::new()
            .set_buckets(&STORE_CALL_BUCKETS)
            .and_then(PrometheusBuilder::install_recorder)
            .map_err(|e| format!("metrics: {e}"))?;
        let sessions = example_support::session_layer(DEFAULT_STORE)
            .await?
            .with_client_address(true)
            .with_max_sessions_per_user(MAX_DEVICES_PER_USER);
        let settings = app::Settings { recent };
        example_support::serve("demo", app::router(sessions, prometheus, settings)).await
    };
    example_support::exit_code("demo", result.await)
}
