//! A test whose server or tool is missing passes without running, and says so where the user
//! sees it.
//!
//! libtest captures what a passing test prints with `print!` and `eprint!`, and shows it only
//! when the test fails: a skip reported that way reads as a plain "ok". The notice is written to
//! the process's stderr handle instead, which the capture does not reach.
//!
//! Cargo runs each test binary as its own process, one after another, and nothing of ours runs
//! after the last one, nor after the last test of a binary: so the notices are per binary. The
//! first skip for a missing thing prints one line naming it and how to provide it (and, from the
//! second missing thing on, all of them); later skips for the same thing stay quiet, so a binary
//! with twenty Redis tests prints one line, not twenty.

use std::io::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The variable that turns a skip into a failure when set to `1`, as CI sets it.
pub const REQUIRE_SERVICES: &str = "SESSIONWARE_REQUIRE_SERVICES";

/// What this process has found missing, in the order first seen.
static MISSING: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The address of the server `name` a test needs, read from `env_var` (default `default`), if
/// something listens there; `None` after a [`skip`] when nothing answers.
///
/// ```no_run
/// # async fn t() {
/// let Some(url) =
///     sessionware_test_support::service("Redis", "REDIS_URL", "redis://127.0.0.1:6379").await
/// else {
///     return;
/// };
/// # let _ = url; }
/// ```
pub async fn service(name: &str, env_var: &str, default: &str) -> Option<String> {
    let url = std::env::var(env_var).unwrap_or_else(|_| default.to_owned());
    let reachable = match host_port(&url) {
        Some(addr) => matches!(
            tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect(addr.as_str())
            )
            .await,
            Ok(Ok(_))
        ),
        // Not a network address (a file path, `sqlite::memory:`): nothing to probe.
        None => true,
    };
    if reachable {
        return Some(url);
    }
    skip(
        name,
        &format!("{name} is not reachable at {url}"),
        &format!("set {env_var} to point elsewhere, or start it with `docker compose up -d`"),
    );
    None
}

/// Reports that the calling test cannot run because `needs` (a server, a tool) is missing;
/// `why` says what was looked for and `hint` how to get it. The test should return after it.
///
/// Under `SESSIONWARE_REQUIRE_SERVICES=1` it panics instead, so that a missing server fails
/// the run rather than passing it. Otherwise the first report of `needs` in this process
/// prints a `SKIPPED` line on stderr, past libtest's capture; later ones print nothing.
pub fn skip(needs: &str, why: &str, hint: &str) {
    if std::env::var(REQUIRE_SERVICES).as_deref() == Ok("1") {
        panic!("{why} ({hint}); {REQUIRE_SERVICES}=1 makes this a failure");
    }
    let mut missing = MISSING.lock().unwrap_or_else(PoisonError::into_inner);
    if missing.iter().any(|m| m == needs) {
        return;
    }
    missing.push(needs.to_owned());
    let line = notice(&binary_name(), needs, why, hint, &missing);
    // Written whole while the list is held, so two tests' notices never interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn notice(binary: &str, needs: &str, why: &str, hint: &str, missing: &[String]) -> String {
    // The leading newline: with one test thread, libtest has already written "test name ... "
    // and waits for the result on the same line.
    let mut line = format!(
        "\nSKIPPED in {binary}: the tests that need {needs} pass without running. \
         {why} ({hint})."
    );
    if missing.len() > 1 {
        line.push_str(&format!(
            " Missing in {binary} so far: {}.",
            missing.join(", ")
        ));
    }
    line.push_str(&format!(" {REQUIRE_SERVICES}=1 makes this a failure.\n"));
    line
}

/// The test binary as `package/name`: several packages have a `tests/users.rs`.
fn binary_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(|p| p.file_stem())
        .and_then(|s| s.to_str())
        .unwrap_or("this test binary");
    // Without the hash cargo appends to the file name.
    let name = match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name
        }
        _ => stem,
    };
    // Cargo sets it for the test binaries it runs; a binary run by hand has only its name.
    match std::env::var("CARGO_PKG_NAME") {
        Ok(package) => format!("{package}/{name}"),
        Err(_) => name.to_owned(),
    }
}

/// `host:port` of a server URL such as `redis://:pw@127.0.0.1:6379/0` or
/// `postgres://user@localhost/test`, with the scheme's default port.
fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.split('+').next()? {
        "redis" | "rediss" | "redis-cluster" | "redis-sentinel" => 6379,
        "postgres" | "postgresql" => 5432,
        "mysql" | "mariadb" => 3306,
        _ => return None,
    };
    let authority = rest.split(['/', '?', ',']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return None;
    }
    Some(
        if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_owned()
        } else {
            format!("{host}:{default_port}")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::{host_port, notice};

    #[test]
    fn host_port_of_server_urls() {
        assert_eq!(
            host_port("redis://127.0.0.1:6379").as_deref(),
            Some("127.0.0.1:6379")
        );
        assert_eq!(host_port("redis://:pw@h:7000/0").as_deref(), Some("h:7000"));
        assert_eq!(
            host_port("postgres://u@localhost/test").as_deref(),
            Some("localhost:5432")
        );
        assert_eq!(
            host_port("mysql://root@127.0.0.1:3306/test").as_deref(),
            Some("127.0.0.1:3306")
        );
        assert_eq!(host_port("sqlite::memory:"), None);
        assert_eq!(host_port("sqlite://file.db"), None);
    }

    #[test]
    fn a_notice_is_one_line_and_lists_what_is_missing() {
        let one = notice(
            "users",
            "Redis",
            "Redis is down",
            "start it",
            &["Redis".into()],
        );
        assert!(one.starts_with("\nSKIPPED in users: "), "{one:?}");
        assert_eq!(one.trim().lines().count(), 1, "{one:?}");
        assert!(!one.contains("so far"), "{one:?}");
        let two = notice(
            "users",
            "MariaDB",
            "MariaDB is down",
            "start it",
            &["PostgreSQL".into(), "MariaDB".into()],
        );
        assert!(
            two.contains("Missing in users so far: PostgreSQL, MariaDB."),
            "{two:?}"
        );
    }
}
