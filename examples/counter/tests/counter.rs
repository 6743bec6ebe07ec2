//! The README's first command, run as a real process and driven over loopback HTTP.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start(envs: &[(&str, &str)]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_counter"));
    command
        .env("PORT", "0")
        .env_remove("SESSION_STORE")
        .env_remove("SESSION_KEY")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the counter starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("the counter says where it listens within 30 s")
        .unwrap()
        .expect("a line on stdout");
    let base = line
        .strip_prefix("counter listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server { child, base }
}

async fn get(
    client: &reqwest::Client,
    url: String,
    cookie: Option<&str>,
) -> (u16, String, Option<String>) {
    let mut request = client.get(url);
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    (status, response.text().await.unwrap(), set_cookie)
}

#[tokio::test]
async fn counts_per_visitor_on_the_memory_store() {
    let server = start(&[]).await;
    let client = reqwest::Client::new();
    let base = &server.base;

    let (status, body, cookie) = get(&client, format!("{base}/"), None).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "1"),
        "the first visit answers 1"
    );
    let cookie = cookie.expect("the first visit sets the session cookie");
    assert_eq!(get(&client, format!("{base}/"), Some(&cookie)).await.1, "2");
    assert_eq!(
        get(&client, format!("{base}/peek"), Some(&cookie)).await.1,
        "2"
    );
    assert_eq!(get(&client, format!("{base}/"), Some(&cookie)).await.1, "3");

    let (status, body, set) = get(&client, format!("{base}/peek"), None).await;
    assert_eq!(
        (status, body.as_str(), set),
        (200, "0", None),
        "peek stores nothing for a new visitor"
    );
    let (_, body, _) = get(&client, format!("{base}/"), None).await;
    assert_eq!(body, "1", "another visitor has its own count");

    let (status, body, set) = get(&client, format!("{base}/health"), Some(&cookie)).await;
    assert_eq!((status, body.as_str(), set), (200, "ok", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_visits_of_one_visitor_all_count() {
    let server = start(&[]).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let (_, _, cookie) = get(&client, format!("{base}/"), None).await;
    let cookie = cookie.expect("the first visit sets the session cookie");
    let mut visits = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (client, url, cookie) = (client.clone(), format!("{base}/"), cookie.clone());
        visits.spawn(async move { get(&client, url, Some(&cookie)).await.0 });
    }
    while let Some(status) = visits.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(
        get(&client, format!("{base}/peek"), Some(&cookie)).await.1,
        "101",
        "100 visits at once all count"
    );
}

#[tokio::test]
async fn a_fixed_key_keeps_sessions_valid_across_restarts_of_the_signer() {
    // Two processes with the same SESSION_KEY accept each other's cookies; with the memory
    // store the session itself does not carry over, so the second starts a fresh count
    // instead of erroring out.
    let key = "0f1e".repeat(16);
    let first = start(&[("SESSION_KEY", &key)]).await;
    let client = reqwest::Client::new();
    let (_, _, cookie) = get(&client, format!("{}/", first.base), None).await;
    let second = start(&[("SESSION_KEY", &key)]).await;
    let (status, body, _) = get(&client, format!("{}/", second.base), cookie.as_deref()).await;
    assert_eq!((status, body.as_str()), (200, "1"));
}

#[tokio::test]
async fn bad_configuration_is_a_clear_error() {
    for (var, value, says) in [
        ("SESSION_KEY", "abc", "SESSION_KEY"),
        ("SESSION_STORE", "carrier-pigeon://", "SESSION_STORE"),
        ("PORT", "http", "PORT"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_counter"))
            .env(var, value)
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{var}={value} exits with 2");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{var}={value}: {stderr}");
    }
}

#[tokio::test]
async fn two_processes_share_sessions_on_redis() {
    let Some(url) =
        sessionware_test_support::service("Redis", "REDIS_URL", "redis://127.0.0.1:6379").await
    else {
        return;
    };
    let key = "a7b8".repeat(16);
    let env = [
        ("SESSION_KEY", key.as_str()),
        ("SESSION_STORE", url.as_str()),
    ];
    let (first, second) = (start(&env).await, start(&env).await);
    assert_ne!(first.base, second.base, "two instances, two ports");
    let client = reqwest::Client::new();

    let (status, body, cookie) = get(&client, format!("{}/", first.base), None).await;
    assert_eq!((status, body.as_str()), (200, "1"));
    let cookie = cookie.expect("a session cookie");
    let on_second = get(&client, format!("{}/", second.base), Some(&cookie)).await;
    assert_eq!(
        on_second.1, "2",
        "the second instance continues the first's count"
    );
    let peek = get(&client, format!("{}/peek", first.base), Some(&cookie)).await;
    assert_eq!(peek.1, "2", "and the first sees the second's write");
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_counter"))
        .env("SESSION_STORE", "redis://127.0.0.1:1")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SESSION_STORE: cannot connect to Redis"),
        "{stderr}"
    );
}

/// Counts, restarts the counter on the same store and key, and counts on: the session outlived
/// the process.
async fn survives_a_restart(store: &str) {
    let key = "1e2d".repeat(16);
    let envs = [("SESSION_KEY", key.as_str()), ("SESSION_STORE", store)];
    let client = reqwest::Client::new();
    let first = start(&envs).await;
    let (status, body, cookie) = get(&client, format!("{}/", first.base), None).await;
    assert_eq!((status, body.as_str()), (200, "1"), "{store}");
    let cookie = cookie.expect("a session cookie");
    assert_eq!(
        get(&client, format!("{}/", first.base), Some(&cookie))
            .await
            .1,
        "2"
    );
    drop(first);
    let second = start(&envs).await;
    assert_eq!(
        get(&client, format!("{}/peek", second.base), Some(&cookie))
            .await
            .1,
        "2",
        "{store}: the count survived the restart"
    );
    assert_eq!(
        get(&client, format!("{}/", second.base), Some(&cookie))
            .await
            .1,
        "3"
    );
}

#[tokio::test]
async fn sqlite_sessions_survive_a_restart() {
    let path = std::env::temp_dir().join(format!("counter-{}.db", std::process::id()));
    survives_a_restart(&format!("sqlite://{}", path.display())).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test]
async fn postgres_sessions_survive_a_restart() {
    let Some(url) = sessionware_test_support::service(
        "PostgreSQL",
        "DATABASE_URL_POSTGRES",
        "postgres://root@127.0.0.1:5432/test",
    )
    .await
    else {
        return;
    };
    survives_a_restart(&url).await;
}

#[tokio::test]
async fn mariadb_sessions_survive_a_restart() {
    let Some(url) = sessionware_test_support::service(
        "MariaDB",
        "DATABASE_URL_MYSQL",
        "mysql://root@127.0.0.1:3306/test",
    )
    .await
    else {
        return;
    };
    survives_a_restart(&url).await;
}
