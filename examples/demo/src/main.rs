//! The sessionware demo: a small server-rendered site that shows what the library does.
//!
//! ```text
//! cargo run -p demo                    # http://127.0.0.1:3000
//! PORT=8080 SESSION_KEY=<64 hex digits> SESSION_STORE=memory cargo run -p demo
//! ```
//!
//! Sign in with any user name and the password `demo`, count, open the same address in a second
//! browser (or a private window), sign in there too, and end that session from "your devices".
//! `app.rs` holds the routes, `html.rs` the pages.

mod app;
mod html;

use std::net::{Ipv4Addr, SocketAddr};

use sessionware::{Key, SessionLayer};
use sessionware_memory::MemoryStore;
use tracing_subscriber::EnvFilter;

/// A sign-in beyond this many live sessions ends the user's oldest one.
const MAX_DEVICES_PER_USER: usize = 5;

/// The signing key from `SESSION_KEY` (hex), or a random one.
fn key() -> Result<Key, String> {
    match std::env::var("SESSION_KEY") {
        Ok(hex) => Key::from_hex(&hex).map_err(|e| format!("SESSION_KEY: {e}")),
        Err(_) => {
            tracing::warn!(
                "SESSION_KEY is not set: using a random key, so sessions end with this process \
                 (set 64 hex digits, e.g. from `openssl rand -hex 32`)"
            );
            Key::generate().map_err(|e| e.to_string())
        }
    }
}

/// The session layer on the store named by `SESSION_STORE`: the one place that knows stores.
async fn sessions() -> Result<SessionLayer, String> {
    // SQLite default arrives with sessionware-sql: a local file, so sessions survive a restart.
    let spec = std::env::var("SESSION_STORE").unwrap_or_else(|_| "memory".into());
    let layer = match spec.as_str() {
        "memory" => SessionLayer::new(MemoryStore::new()),
        other => {
            return Err(format!(
                "SESSION_STORE={other:?} is not supported; use `memory`"
            ));
        }
    };
    tracing::info!(store = %spec, "session store ready");
    Ok(layer
        .with_signing_key(key()?)
        .with_client_address(true)
        .with_max_sessions_per_user(MAX_DEVICES_PER_USER))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), String> {
    let port = match std::env::var("PORT") {
        Ok(p) => p
            .parse::<u16>()
            .map_err(|_| format!("PORT={p:?} is not a port number"))?,
        Err(_) => 3000,
    };
    let app = app::router(sessions().await?);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests read this line to find the port.
    println!("demo listening on http://{addr}");
    // The connect info gives `with_client_address` the address it records at sign-in.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| e.to_string())
}
