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

/// A sign-in beyond this many live sessions ends the user's oldest one.
const MAX_DEVICES_PER_USER: usize = 5;

/// Sessions live in a SQLite file in the working directory unless `SESSION_STORE` says
/// otherwise (`memory`, a Redis or another SQL URL), so they survive a restart with no
/// server to install.
const DEFAULT_STORE: &str = "sqlite://demo-sessions.db";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    example_support::init_tracing();
    let result = async {
        let sessions = example_support::session_layer(DEFAULT_STORE)
            .await?
            .with_client_address(true)
            .with_max_sessions_per_user(MAX_DEVICES_PER_USER);
        example_support::serve("demo", app::router(sessions)).await
    };
    example_support::exit_code("demo", result.await)
}
