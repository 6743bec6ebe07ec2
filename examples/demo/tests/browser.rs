//! The demo in a real browser: Debian's headless Chromium, driven over WebDriver by the system
//! `chromedriver`, against the demo binary on loopback. Two browser profiles play two devices
//! of one user.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (apt packages `chromium` and
//! `chromium-driver`; override with `CHROMIUM` and `CHROMEDRIVER`). Without them the test skips
//! loudly, or fails under `SESSIONWARE_REQUIRE_SERVICES=1`. `DEMO_SCREENSHOT=<file.png>` saves
//! the devices page as the README shows it.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{start_demo, start_demo_with};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use sessionware::SameSite;
use time::OffsetDateTime;
use tokio::process::{Child, Command};

/// Upper bound for anything the test waits on: a process to listen, a page to show a text.
const PATIENCE: Duration = Duration::from_secs(20);

/// The demo's cookie lives as long as its idle timeout: the library default of 24 hours.
const COOKIE_LIFETIME: time::Duration = time::Duration::hours(24);

struct Binaries {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

/// The browser and its driver, or `None` (after saying so loudly) when they are not installed.
fn binaries() -> Option<Binaries> {
    let find = |var: &str, default: &str| {
        let path = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_owned()));
        path.is_file().then_some(path)
    };
    match (
        find("CHROMIUM", "/usr/bin/chromium"),
        find("CHROMEDRIVER", "/usr/bin/chromedriver"),
    ) {
        (Some(chromium), Some(chromedriver)) => Some(Binaries {
            chromium,
            chromedriver,
        }),
        _ => {
            sessionware_test_support::skip(
                "chromium and chromedriver",
                "chromium or chromedriver is not installed",
                "apt-get install chromium chromium-driver, or set CHROMIUM and CHROMEDRIVER",
            );
            None
        }
    }
}

/// `chromedriver` on a free loopback port, in its own process group so that dropping it also
/// ends every Chromium it started, even when the test fails half-way.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.start_kill();
    }
}

async fn start_chromedriver(path: &PathBuf) -> Chromedriver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let driver = Chromedriver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "chromedriver listens within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver
}

/// One browser profile: a WebDriver session with its own, fresh user data directory.
struct Browser {
    client: Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(driver: &Chromedriver, chromium: &PathBuf, base: &str) -> Self {
        let profile = tempfile::tempdir().expect("a temporary profile directory");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--no-proxy-server",
            "--window-size=1000,760",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("chromedriver opens a Chromium session");
        Self {
            client,
            base: base.to_owned(),
            _profile: profile,
        }
    }

    async fn open_page(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn texts(&self, css: &str) -> Vec<String> {
        self.try_texts(css).await.unwrap()
    }

    async fn try_texts(&self, css: &str) -> Result<Vec<String>, fantoccini::error::CmdError> {
        let mut texts = Vec::new();
        for element in self.client.find_all(Locator::Css(css)).await? {
            texts.push(element.text().await?);
        }
        Ok(texts)
    }

    /// Waits, with a bound, until an element matching `css` reads `expected`: the page the
    /// last click led to has loaded.
    async fn expect_text(&self, css: &str, expected: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            // While the next page loads, elements found on the last one go stale.
            let texts = self.try_texts(css).await.unwrap_or_default();
            if texts.iter().any(|t| t == expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never read {expected:?}; it reads {texts:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn sign_in(&self, user: &str, password: &str) {
        self.sign_in_remembered(user, password, false).await;
    }

    /// Signs in, ticking "remember me" if `remember`.
    async fn sign_in_remembered(&self, user: &str, password: &str, remember: bool) {
        self.open_page("/").await;
        let form = self
            .client
            .form(Locator::Css("form[action='/login']"))
            .await;
        let form = form.expect("the sign-in form");
        form.set_by_name("user", user).await.unwrap();
        form.set_by_name("password", password).await.unwrap();
        if remember {
            self.click("input[name='remember']").await;
        }
        self.click("form[action='/login'] button").await;
    }

    /// When the session cookie expires.
    async fn cookie_expiry(&self) -> OffsetDateTime {
        let cookie = self
            .client
            .get_named_cookie("__Host-session")
            .await
            .unwrap();
        cookie
            .expires_datetime()
            .unwrap_or_else(|| panic!("a persistent cookie: {cookie:?}"))
    }

    /// Who the page says is signed in.
    async fn user(&self) -> Option<String> {
        self.texts("#user").await.into_iter().next()
    }

    async fn close(self) {
        self.client.close().await.expect("the browser closes");
    }
}

#[tokio::test]
async fn two_devices_sign_in_see_each_other_and_sign_each_other_out() {
    let Some(bin) = binaries() else { return };
    let demo = start_demo().await;
    let driver = start_chromedriver(&bin.chromedriver).await;
    let laptop = Browser::open(&driver, &bin.chromium, &demo.base).await;

    // The sign-in page states the demo password; a wrong one is refused with a message.
    laptop.open_page("/").await;
    laptop.expect_text("#demo-password", "demo").await;
    laptop.sign_in("ana", "guess").await;
    laptop
        .expect_text(".flash", "Wrong password: the demo password is \"demo\".")
        .await;
    assert_eq!(laptop.user().await, None);

    laptop.sign_in("ana", "demo").await;
    laptop.expect_text(".flash", "Signed in as ana.").await;
    assert_eq!(laptop.user().await.as_deref(), Some("ana"));
    laptop.expect_text("#count", "0").await;
    for n in 1..=3 {
        laptop.click("form[action='/count'] button").await;
        laptop
            .expect_text(".flash", &format!("Counted to {n}."))
            .await;
        laptop.expect_text("#count", &n.to_string()).await;
    }
    // Flash messages are shown once.
    laptop.open_page("/").await;
    laptop.expect_text("#count", "3").await;
    assert!(
        laptop.texts(".flash").await.is_empty(),
        "a flash shows once"
    );

    // What the browser holds: a cookie page script cannot read, sent only over secure
    // transport (loopback counts as secure) and not on cross-site subrequests.
    let cookie = laptop
        .client
        .get_named_cookie("__Host-session")
        .await
        .unwrap();
    assert_eq!(cookie.http_only(), Some(true), "HttpOnly: {cookie:?}");
    assert_eq!(cookie.secure(), Some(true), "Secure: {cookie:?}");
    assert_eq!(
        cookie.same_site(),
        Some(SameSite::Lax),
        "SameSite: {cookie:?}"
    );
    assert_eq!(cookie.path(), Some("/"), "{cookie:?}");
    let expires = cookie
        .expires_datetime()
        .expect("a persistent cookie with an expiry");
    let expected = OffsetDateTime::now_utc() + COOKIE_LIFETIME;
    assert!(
        (expires - expected).abs() < time::Duration::minutes(2),
        "the cookie expires with the idle timeout: {expires} vs {expected}"
    );
    let visible = laptop
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    let visible = visible.as_str().unwrap_or_default();
    assert!(
        !visible.contains("__Host-session=") && !visible.contains(cookie.value()),
        "page script cannot read the session cookie: {visible:?}"
    );

    // A second, separate profile signs in as the same user: two devices.
    let phone = Browser::open(&driver, &bin.chromium, &demo.base).await;
    phone.sign_in("ana", "demo").await;
    phone.expect_text(".flash", "Signed in as ana.").await;
    assert_ne!(
        phone
            .client
            .get_named_cookie("__Host-session")
            .await
            .unwrap()
            .value(),
        cookie.value(),
        "each profile has its own session"
    );

    laptop.open_page("/devices").await;
    laptop.expect_text("h1", "Your devices").await;
    let devices = laptop
        .client
        .find_all(Locator::Css("li.device"))
        .await
        .unwrap();
    assert_eq!(devices.len(), 2, "both browsers are listed");
    assert_eq!(
        laptop.texts("li.device .this-device").await,
        ["this device"],
        "exactly one is this device"
    );
    assert_eq!(
        laptop.texts("li.device:first-child .this-device").await,
        ["this device"],
        "this device comes first"
    );
    for device in laptop.texts("li.device").await {
        assert!(
            device.starts_with("Headless Chrome on Linux\n"),
            "name: {device}"
        );
        assert!(device.contains("HeadlessChrome/"), "user agent: {device}");
        assert!(device.contains("from 127.0.0.1"), "address: {device}");
        assert!(device.contains("created just now"), "created: {device}");
        assert!(device.contains("last seen just now"), "last seen: {device}");
    }
    let screenshot = laptop.client.screenshot().await.unwrap();
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG screenshot");
    if let Ok(path) = std::env::var("DEMO_SCREENSHOT") {
        std::fs::write(&path, &screenshot).unwrap_or_else(|e| panic!("{path}: {e}"));
    }

    // The laptop revokes the phone; the phone is signed out on its next page load.
    laptop
        .click("li.device:not(:has(.this-device)) form[action='/devices/revoke'] button")
        .await;
    laptop
        .expect_text(".flash", "Signed out that device.")
        .await;
    assert_eq!(laptop.texts("li.device .this-device").await.len(), 1);
    assert_eq!(
        laptop
            .client
            .find_all(Locator::Css("li.device"))
            .await
            .unwrap()
            .len(),
        1,
        "only the laptop is left"
    );
    phone.open_page("/").await;
    phone.expect_text("h1", "Sign in").await;
    assert_eq!(phone.user().await, None, "the phone is signed out");
    phone.open_page("/devices").await;
    phone
        .expect_text(".flash", "Sign in to see your devices.")
        .await;

    // Log out everywhere, from the laptop, with the phone signed in again.
    phone.sign_in("ana", "demo").await;
    phone.expect_text(".flash", "Signed in as ana.").await;
    laptop.open_page("/devices").await;
    laptop
        .click("form[action='/logout-everywhere'] button")
        .await;
    laptop
        .expect_text(".flash", "Signed out everywhere: 2 sessions ended.")
        .await;
    assert_eq!(laptop.user().await, None, "the laptop is signed out");
    phone.open_page("/").await;
    phone.expect_text("h1", "Sign in").await;
    assert_eq!(phone.user().await, None, "the phone is signed out");

    // Sign out ends just this session; the counter went with the signed-in session.
    phone.sign_in("ana", "demo").await;
    phone.expect_text(".flash", "Signed in as ana.").await;
    phone.click("form[action='/logout'] button").await;
    phone.expect_text(".flash", "Signed out.").await;
    assert_eq!(phone.user().await, None);

    laptop.close().await;
    phone.close().await;
}

/// The sign-in's age gates the settings page in this test: a short window, so the test sees
/// it pass by polling rather than waiting five minutes.
const RECENT_SIGN_IN_SECS: i64 = 5;

#[tokio::test]
async fn remember_me_recent_sign_in_and_metrics() {
    let Some(bin) = binaries() else { return };
    let window = RECENT_SIGN_IN_SECS.to_string();
    let demo = start_demo_with(&[("DEMO_RECENT_SIGN_IN_SECS", &window)]).await;
    let driver = start_chromedriver(&bin.chromedriver).await;
    let laptop = Browser::open(&driver, &bin.chromium, &demo.base).await;
    let kiosk = Browser::open(&driver, &bin.chromium, &demo.base).await;

    // "Remember me" makes the cookie last 30 days; without it, the idle timeout's 24 hours.
    laptop.sign_in_remembered("bo", "demo", true).await;
    laptop.expect_text(".flash", "Signed in as bo.").await;
    // Settings are open right after signing in.
    laptop.open_page("/settings").await;
    laptop.expect_text("h1", "Sensitive settings").await;
    let close = |at: OffsetDateTime, lifetime: time::Duration| {
        (at - (OffsetDateTime::now_utc() + lifetime)).abs() < time::Duration::minutes(2)
    };
    let remembered = laptop.cookie_expiry().await;
    assert!(
        close(remembered, time::Duration::days(30)),
        "remember me: 30 days, not {remembered}"
    );
    kiosk.sign_in("bo", "demo").await;
    kiosk.expect_text(".flash", "Signed in as bo.").await;
    let default = kiosk.cookie_expiry().await;
    assert!(
        close(default, COOKIE_LIFETIME),
        "default: 24 hours, not {default}"
    );
    // Still remembered after another request that writes.
    laptop.open_page("/").await;
    laptop.click("form[action='/count'] button").await;
    laptop.expect_text(".flash", "Counted to 1.").await;
    assert!(close(
        laptop.cookie_expiry().await,
        time::Duration::days(30)
    ));

    // Settings ask for the password once the sign-in is older than the window, and open
    // again once it is confirmed.
    let deadline = Instant::now() + PATIENCE;
    loop {
        laptop.open_page("/settings").await;
        let headings = laptop.try_texts("h1").await.unwrap_or_default();
        if headings.iter().any(|h| h == "Confirm it's you") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "settings never asked again: {headings:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let confirm = |password: &'static str| {
        let laptop = &laptop;
        async move {
            let form = laptop
                .client
                .form(Locator::Css("form[action='/confirm']"))
                .await
                .expect("the confirm form");
            form.set_by_name("password", password).await.unwrap();
            laptop.click("form[action='/confirm'] button").await;
        }
    };
    let before = laptop
        .client
        .get_named_cookie("__Host-session")
        .await
        .unwrap();
    confirm("guess").await;
    laptop
        .expect_text(".flash", "Wrong password: the demo password is \"demo\".")
        .await;
    laptop.expect_text("h1", "Confirm it's you").await;
    confirm("demo").await;
    laptop.expect_text(".flash", "Sign-in confirmed.").await;
    laptop.expect_text("h1", "Sensitive settings").await;
    let after = laptop
        .client
        .get_named_cookie("__Host-session")
        .await
        .unwrap();
    assert_ne!(before.value(), after.value(), "confirming renews the id");
    assert!(
        close(laptop.cookie_expiry().await, time::Duration::days(30)),
        "and keeps remember-me"
    );

    // The Prometheus page: what the requests above did, and the live sessions.
    laptop.open_page("/metrics").await;
    let text = laptop
        .client
        .execute("return document.body.innerText", vec![])
        .await
        .unwrap();
    let text = text.as_str().unwrap_or_default().to_owned();
    // The label the store gives its metrics: the memory store unless the run named another.
    let store = match std::env::var("SESSION_STORE").unwrap_or_default() {
        s if s.starts_with("redis") => "redis",
        s if s.starts_with("postgres") => "postgres",
        s if s.starts_with("mysql") || s.starts_with("mariadb") => "mysql",
        s if s.starts_with("sqlite") => "sqlite",
        _ => "memory",
    };
    let value = |series: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"));
        line[series.len()..].trim().parse().unwrap()
    };
    let live = value(&format!(r#"sessionware_sessions_live{{store="{store}"}}"#));
    if store == "memory" {
        assert_eq!(live, 2.0, "two live sessions");
    } else {
        assert!(live >= 2.0, "at least these two live sessions: {live}");
    }
    let created = value(&format!(
        r#"sessionware_sessions_created_total{{store="{store}"}}"#
    ));
    assert!(created >= 2.0, "created: {created}");
    let written = value(&format!(
        r#"sessionware_sessions_written_total{{store="{store}"}}"#
    ));
    assert!(written >= 3.0, "written: {written}");
    let rekeys = format!(
        r#"sessionware_store_call_duration_seconds_count{{store="{store}",operation="rekey"}}"#
    );
    assert!(value(&rekeys) >= 1.0, "store calls are timed");

    laptop.close().await;
    kiosk.close().await;
}
