//! The cookie transport: which cookie holds the token, with which attributes.

use cookie::{Cookie, SameSite};
use http::{HeaderMap, HeaderValue, header};
use sessionware_core::SessionId;
use sessionware_core::time::Duration;

use crate::token::Keys;

/// What the client presented, by cookie or header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presented {
    /// No session token.
    Nothing,
    /// A token that does not verify.
    Invalid,
    /// A verified id (the store may still not know it).
    Valid(SessionId),
}

#[derive(Debug, Clone)]
pub(crate) struct CookieConfig {
    pub(crate) name: String,
    pub(crate) domain: Option<String>,
    pub(crate) path: String,
    pub(crate) same_site: SameSite,
    pub(crate) secure: bool,
    pub(crate) host_prefix: bool,
    pub(crate) browser_session: bool,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: "session".into(),
            domain: None,
            path: "/".into(),
            same_site: SameSite::Lax,
            secure: true,
            host_prefix: false,
            browser_session: false,
        }
    }
}

impl CookieConfig {
    /// The name on the wire, which the token is also bound to.
    pub(crate) fn full_name(&self) -> String {
        if self.host_prefix {
            format!("__Host-{}", self.name)
        } else {
            self.name.clone()
        }
    }

    /// The id of the first cookie with our name that verifies. Several cookies may share a
    /// name (a parent domain's, or one planted by a sibling subdomain), so one bad cookie
    /// does not hide a good one.
    pub(crate) fn read(&self, name: &str, keys: &Keys, headers: &HeaderMap) -> Presented {
        let mut refused = None;
        for value in headers.get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for cookie in Cookie::split_parse(value).flatten() {
                if cookie.name() != name {
                    continue;
                }
                match keys.verify(name, cookie.value()) {
                    Some(id) => return Presented::Valid(id),
                    None => refused = refused.or(Some(cookie)),
                }
            }
        }
        let Some(refused) = refused else {
            return Presented::Nothing;
        };
        tracing::debug!(
            session = %keys.log_id_presented(refused.value()),
            "session cookie failed verification; starting a fresh session"
        );
        Presented::Invalid
    }

    /// A `Set-Cookie` carrying `token`; `max_age` is ignored for browser-session cookies.
    pub(crate) fn set(&self, name: &str, token: String, max_age: Duration) -> Option<HeaderValue> {
        let mut cookie = self.base(name, token);
        if !self.browser_session {
            cookie.set_max_age(max_age.max(Duration::ZERO));
        }
        HeaderValue::try_from(cookie.to_string()).ok()
    }

    /// A `Set-Cookie` that removes the cookie: same name, path and domain, so it replaces it.
    pub(crate) fn removal(&self, name: &str) -> Option<HeaderValue> {
        let mut cookie = self.base(name, String::new());
        cookie.make_removal();
        HeaderValue::try_from(cookie.to_string()).ok()
    }

    fn base(&self, name: &str, value: String) -> Cookie<'static> {
        let mut cookie = Cookie::new(name.to_owned(), value);
        cookie.set_http_only(true);
        cookie.set_same_site(self.same_site);
        // The `__Host-` prefix obliges Secure, Path=/ and no Domain; browsers drop it otherwise.
        if self.host_prefix {
            cookie.set_secure(true);
            cookie.set_path("/");
        } else {
            cookie.set_secure(self.secure);
            cookie.set_path(self.path.clone());
            if let Some(domain) = &self.domain {
                cookie.set_domain(domain.clone());
            }
        }
        cookie
    }
}

#[cfg(test)]
mod properties {
    use http::HeaderValue;
    use proptest::prelude::*;

    use super::*;
    use crate::Key;

    proptest! {
        /// Whatever a `Cookie` header holds, reading it does not panic, and only the exact
        /// token the keys signed is accepted, wherever it stands among other cookies.
        #[test]
        fn any_cookie_header_is_read_safely(
            noise in proptest::collection::vec(any::<u8>(), 0..300),
            with_token in any::<bool>(),
        ) {
            let keys = Keys::new(Some(Key::from_bytes(&[9; 32]).unwrap()));
            let config = CookieConfig::default();
            let id = SessionId::from_bytes([3; SessionId::BYTES]);
            let token = keys.sign("session", &id).unwrap();
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(&noise) {
                headers.append(header::COOKIE, value);
            }
            if with_token {
                let value = HeaderValue::try_from(format!("x=1; session={token}")).unwrap();
                headers.append(header::COOKIE, value);
            }
            let read = config.read("session", &keys, &headers);
            if with_token {
                prop_assert_eq!(read, Presented::Valid(id));
            } else {
                prop_assert_ne!(read, Presented::Valid(id));
            }
        }
    }
}
