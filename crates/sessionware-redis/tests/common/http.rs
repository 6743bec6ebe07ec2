//! An app on a loopback port and a client that keeps one cookie (copied from the layer's tests).

use std::net::SocketAddr;

use axum::Router;
use cookie::Cookie;

/// Serves `app` on 127.0.0.1 on a free port until the test's runtime ends.
pub(crate) async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One response, with the `Set-Cookie` headers parsed.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: String,
    pub(crate) set_cookies: Vec<Cookie<'static>>,
    pub(crate) cache_control: Option<String>,
}

impl Reply {
    pub(crate) fn cookie(&self, name: &str) -> Option<&Cookie<'static>> {
        self.set_cookies.iter().find(|c| c.name() == name)
    }
}

/// A browser-like client: holds the session cookie `name` it is given, sends it back.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    pub(crate) name: String,
    pub(crate) jar: Option<String>,
}

impl Client {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self::named(addr, "session")
    }

    pub(crate) fn named(addr: SocketAddr, name: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
            name: name.into(),
            jar: None,
        }
    }

    /// Same cookie, another server.
    pub(crate) fn at(&self, addr: SocketAddr) -> Self {
        Self {
            http: self.http.clone(),
            base: format!("http://{addr}"),
            name: self.name.clone(),
            jar: self.jar.clone(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Reply {
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
    pub(crate) async fn get_with_cookie_header(&self, path: &str, header: &str) -> Reply {
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
