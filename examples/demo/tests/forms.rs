//! The demo over plain HTTP: what a browser test cannot easily show, such as posts without or
//! with a wrong CSRF token, and hostile user names.

mod common;

use common::start_demo;
use reqwest::redirect::Policy;

struct Visitor {
    client: reqwest::Client,
    base: String,
    /// The cookies the demo set (the session's and the CSRF nonce's), by name.
    cookies: std::collections::BTreeMap<String, String>,
}

impl Visitor {
    fn new(base: &str) -> Self {
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap();
        Self {
            client,
            base: base.to_owned(),
            cookies: Default::default(),
        }
    }

    fn remember(&mut self, response: &reqwest::Response) {
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            // An expired removal cookie has an empty value.
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn with_cookies(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.cookies.is_empty() {
            return request;
        }
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        request.header("cookie", pairs.join("; "))
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        let request = self.with_cookies(self.client.get(format!("{}{path}", self.base)));
        let response = request.send().await.unwrap();
        self.remember(&response);
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, Option<String>) {
        let request = self.client.post(format!("{}{path}", self.base)).form(form);
        let request = self.with_cookies(request);
        let response = request.send().await.unwrap();
        self.remember(&response);
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        (response.status().as_u16(), location)
    }

    /// The CSRF token in the page at `path`.
    async fn token(&mut self, path: &str) -> String {
        let (_, page) = self.get(path).await;
        let start = page
            .find(r#"name="csrf" value=""#)
            .expect("the page has a CSRF field")
            + r#"name="csrf" value=""#.len();
        page[start..].split('"').next().unwrap().to_owned()
    }
}

#[tokio::test]
async fn every_post_without_the_sessions_csrf_token_is_refused() {
    let demo = start_demo().await;
    let mut ana = Visitor::new(&demo.base);
    let token = ana.token("/").await;
    // The sign-in form's token needs no stored session: only its nonce cookie is set.
    let names: Vec<&str> = ana.cookies.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["__Host-session-csrf"],
        "a form view stores no session"
    );
    let (status, _) = ana
        .post("/login", &[("user", "ana"), ("password", "demo")])
        .await;
    assert_eq!(status, 403, "sign-in without a token");
    let (status, _) = ana
        .post(
            "/login",
            &[("csrf", "forged"), ("user", "ana"), ("password", "demo")],
        )
        .await;
    assert_eq!(status, 403, "sign-in with a wrong token");
    let (status, location) = ana
        .post(
            "/login",
            &[("csrf", &token), ("user", "ana"), ("password", "demo")],
        )
        .await;
    assert_eq!((status, location.as_deref()), (303, Some("/")));

    // Sign-in makes a new token: the one from before no longer works.
    let (status, _) = ana.post("/count", &[("csrf", &token)]).await;
    assert_eq!(status, 403, "a token from before sign-in");
    let token = ana.token("/").await;
    for path in [
        "/count",
        "/confirm",
        "/logout",
        "/logout-everywhere",
        "/devices/revoke",
    ] {
        let (status, _) = ana.post(path, &[("csrf", "forged")]).await;
        assert_eq!(status, 403, "{path} with a wrong token");
        let (status, _) = ana.post(path, &[]).await;
        assert_eq!(status, 403, "{path} without a token");
    }
    let (status, _) = ana.post("/count", &[("csrf", &token)]).await;
    assert_eq!(status, 303);
    let (_, page) = ana.get("/").await;
    assert!(
        page.contains(r#"<span id="count">1</span>"#),
        "refused posts changed nothing: {page}"
    );

    // Another visitor's token is not this session's.
    let mut eve = Visitor::new(&demo.base);
    let eve_token = eve.token("/").await;
    let (status, _) = ana.post("/count", &[("csrf", &eve_token)]).await;
    assert_eq!(status, 403, "another session's token");
}

#[tokio::test]
async fn user_names_and_wrong_passwords_are_handled_as_text() {
    let demo = start_demo().await;
    let mut mallory = Visitor::new(&demo.base);
    let token = mallory.token("/").await;
    let (status, _) = mallory
        .post(
            "/login",
            &[("csrf", &token), ("user", "mallory"), ("password", "guess")],
        )
        .await;
    assert_eq!(status, 303);
    let (_, page) = mallory.get("/").await;
    assert!(page.contains("Wrong password"), "{page}");
    assert!(!page.contains(r#"id="user""#), "not signed in: {page}");

    let name = r#"<script>alert("x")</script> & 'co'"#;
    let (status, _) = mallory
        .post(
            "/login",
            &[("csrf", &token), ("user", name), ("password", "demo")],
        )
        .await;
    assert_eq!(status, 303);
    let (_, page) = mallory.get("/devices").await;
    assert!(!page.contains("<script>"), "the name is escaped: {page}");
    assert!(
        page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;co&#39;"),
        "{page}"
    );

    let token = mallory.token("/").await;
    let (status, _) = mallory
        .post(
            "/devices/revoke",
            &[("csrf", &token), ("device", "../../etc")],
        )
        .await;
    assert_eq!(status, 400, "a malformed device id is a bad request");
}

#[tokio::test]
async fn bad_configuration_is_a_clear_error() {
    // A key of one repeated byte, and hex with a sign, are refused like a short one.
    let zeros = "00".repeat(32);
    let signed = format!("+f{}", &"0123456789abcdef".repeat(4)[2..]);
    for (var, value) in [
        ("SESSION_KEY", "abc"),
        ("SESSION_KEY", zeros.as_str()),
        ("SESSION_KEY", signed.as_str()),
        ("SESSION_STORE", "carrier-pigeon://"),
        ("PORT", "http"),
        ("DEMO_RECENT_SIGN_IN_SECS", "soon"),
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"))
            .env(var, value)
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{var}={value} exits with 2");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
}
