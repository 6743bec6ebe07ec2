//! Runs the demo binary as a real process on a free loopback port.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The running demo; killed on drop.
pub(crate) struct Demo {
    child: Child,
    pub(crate) base: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

pub(crate) async fn start_demo() -> Demo {
    start_demo_with(&[]).await
}

/// The demo with these environment variables set as well.
pub(crate) async fn start_demo_with(envs: &[(&str, &str)]) -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
        .envs(envs.iter().copied())
        .env("PORT", "0")
        // The memory store unless the run names another: `SESSION_STORE=... cargo test -p demo`
        // drives the same flows against that store.
        .env(
            "SESSION_STORE",
            std::env::var("SESSION_STORE").unwrap_or_else(|_| "memory".into()),
        )
        .env_remove("SESSION_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the demo starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the demo says where it listens within 30 s")
        .expect("stdout is readable")
        .expect("a line on stdout");
    let base = line
        .strip_prefix("demo listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Demo { child, base }
}
