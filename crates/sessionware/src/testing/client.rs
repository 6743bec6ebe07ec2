//! A real server on a loopback port and a client that keeps one cookie, for HTTP-level tests
//! of an app behind [`SessionLayer`](crate::SessionLayer).
//!
//! ```no_run
//! # async fn t(app: axum::Router) {
//! use sessionware::testing::client::{Client, serve};
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

/// A browser-like client: holds the session cookie `name` it is given, sends it back.
pub struct Client {
    http: reqwest::Client,
    base: String,
    /// The session cookie's name.
    pub name: String,
    /// The session cookie's value, as the client holds it.
    pub jar: Option<String>,
}

impl Client {
    /// A client of the server at `addr`, for the cookie `session`.
    pub fn new(addr: SocketAddr) -> Self {
        Self::named(addr, "session")
    }

    /// A client of the server at `addr`, for the cookie `name`.
    pub fn named(addr: SocketAddr, name: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
            name: name.into(),
            jar: None,
        }
    }

    /// The same cookie, sent to another server.
    pub fn at(&self, addr: SocketAddr) -> Self {
        Self {
            http: self.http.clone(),
            base: format!("http://{addr}"),
            name: self.name.clone(),
            jar: self.jar.clone(),
        }
    }

    /// `GET path` with the cookie held; keeps (or drops) the cookie the response sets.
    pub async fn get(&mut self, path: &str) -> Reply {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(value) = &self.jar {
            request = request.header("cookie", format!("{}={value}", self.name));
        }
        let reply = send(request).await;
        if let Some(c) = reply.cookie(&self.name) {
            let removed = c.max_age().is_some_and(|a| a.is_zero()) || c.value().is_empty();
            self.jar = (!removed).then(|| c.value().to_owned());
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
