//! A real server on a loopback port and a client that keeps one cookie, for HTTP-level tests
//! of an app behind [`SessionLayer`](sessionware::SessionLayer).
//!
//! ```no_run
//! # async fn t(app: axum::Router) {
//! use sessionware_test_support::client::{Client, serve};
//!
//! let addr = serve(app).await;
//! let mut browser = Client::new(addr);
//! let reply = browser.get("/").await; // keeps the `session` cookie it is given
//! assert_eq!(reply.status, 200);
//! # }
//! ```

use std::net::SocketAddr;

use axum::Router;
use cookie::Cookie;

/// Serves `app` on 127.0.0.1 on a free port until the test's runtime ends; returns the address.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One response, with the `Set-Cookie` headers parsed.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
    /// Every `Set-Cookie`, parsed.
    pub set_cookies: Vec<Cookie<'static>>,
    /// The `Cache-Control` header, if any.
    pub cache_control: Option<String>,
}

impl Reply {
    /// The `Set-Cookie` named `name`, if the response set one.
    pub fn cookie(&self, name: &str) -> Option<&Cookie<'static>> {
        self.set_cookies.iter().find(|c| c.name() == name)
    }
}

/// A browser-like client: holds the session cookie `name` it is given, and any other cookie
/// the server sets, and sends them back.
pub struct Client {
    http: reqwest::Client,
    base: String,
    /// The session cookie's name.
    pub name: String,
    /// The session cookie's value, as the client holds it.
    pub jar: Option<String>,
    /// The other cookies the server set (a CSRF nonce), by name.
    pub others: std::collections::BTreeMap<String, String>,
}

impl Client {
    /// A client of the server at `addr`, for the layer's default cookie `__Host-session`.
    pub fn new(addr: SocketAddr) -> Self {
        Self::named(addr, "__Host-session")
    }

    /// A client of the server at `addr`, for the cookie `name`.
    pub fn named(addr: SocketAddr, name: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
            name: name.into(),
            jar: None,
            others: Default::default(),
        }
    }

    /// The same cookie, sent to another server.
    pub fn at(&self, addr: SocketAddr) -> Self {
        Self {
            http: self.http.clone(),
            base: format!("http://{addr}"),
            name: self.name.clone(),
            jar: self.jar.clone(),
            others: self.others.clone(),
        }
    }

    /// `GET path` with the cookies held; keeps (or drops) the cookies the response sets.
    pub async fn get(&mut self, path: &str) -> Reply {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// `POST path` with a form body and the cookies held, as [`get`](Self::get).
    pub async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    async fn send(&mut self, mut request: reqwest::RequestBuilder) -> Reply {
        let mut pairs: Vec<String> = self
            .others
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if let Some(value) = &self.jar {
            pairs.push(format!("{}={value}", self.name));
        }
        if !pairs.is_empty() {
            request = request.header("cookie", pairs.join("; "));
        }
        let reply = send(request).await;
        for c in &reply.set_cookies {
            let removed = c.max_age().is_some_and(|a| a.is_zero()) || c.value().is_empty();
            let value = (!removed).then(|| c.value().to_owned());
            if c.name() == self.name {
                self.jar = value;
            } else if let Some(value) = value {
                self.others.insert(c.name().to_owned(), value);
            } else {
                self.others.remove(c.name());
            }
        }
        reply
    }

    /// A request with exactly this `Cookie` header, leaving the jar alone.
    pub async fn get_with_cookie_header(&self, path: &str, header: &str) -> Reply {
        send(
            self.http
                .get(format!("{}{path}", self.base))
                .header("cookie", header),
        )
        .await
    }
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let set_cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| Cookie::parse(v.to_str().unwrap().to_owned()).unwrap())
        .collect();
    let cache_control = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.text().await.unwrap();
    Reply {
        status,
        body,
        set_cookies,
        cache_control,
    }
}
