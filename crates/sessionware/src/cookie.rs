//! The cookie transport: which cookie holds the token, with which attributes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use http::{HeaderMap, HeaderValue, header};
use sessionware_core::SessionId;
use sessionware_core::time::Duration;

use crate::LogId;
use crate::token::Keys;

/// The most cookies bearing our name that a request gets verified: a browser sends one, two
/// when a parent domain set another. Beyond that someone is making every request cost an HMAC
/// per cookie.
const MAX_CANDIDATES: usize = 4;

/// Random bytes of the CSRF nonce cookie (see `csrf`).
pub(crate) const NONCE_BYTES: usize = 16;

/// Reads a nonce cookie's value; `None` for anything but the encoding of 16 bytes.
pub(crate) fn parse_nonce(value: &str) -> Option<[u8; NONCE_BYTES]> {
    let mut nonce = [0u8; NONCE_BYTES];
    (value.len() == 22 && URL_SAFE_NO_PAD.decode_slice(value, &mut nonce).ok()? == NONCE_BYTES)
        .then_some(nonce)
}

pub(crate) fn encode_nonce(nonce: &[u8; NONCE_BYTES]) -> String {
    URL_SAFE_NO_PAD.encode(nonce)
}

/// What the `Cookie` headers carry for the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Read<T = SessionId> {
    pub(crate) presented: Presented<T>,
    /// The CSRF nonce cookie, when it holds a well-formed nonce.
    pub(crate) csrf_nonce: Option<[u8; NONCE_BYTES]>,
}

/// What the client presented, by cookie or header: a signed id, or with the cookie store, a
/// whole sealed session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presented<T = SessionId> {
    /// No session token.
    Nothing,
    /// A token that does not verify, named as the log lines name it (by its id part, so a
    /// real id with a bad tag lines up with that session's other lines).
    Invalid(LogId),
    /// Two tokens that verify but name different sessions (one planted beside ours, say):
    /// neither is used.
    Conflicting(LogId, LogId),
    /// A verified id (the store may still not know it), or an opened session.
    Valid(T),
}

#[derive(Debug, Clone)]
pub(crate) struct CookieConfig {
    pub(crate) name: String,
    pub(crate) domain: Option<String>,
    pub(crate) path: String,
    pub(crate) same_site: SameSite,
    pub(crate) secure: bool,
    /// `None`: the `__Host-` prefix whenever the other attributes allow it.
    pub(crate) host_prefix: Option<bool>,
    pub(crate) browser_session: bool,
    /// `Partitioned` (CHIPS): the browser keys the cookie by the top-level site too.
    pub(crate) partitioned: bool,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: "session".into(),
            domain: None,
            path: "/".into(),
            same_site: SameSite::Lax,
            secure: true,
            host_prefix: None,
            browser_session: false,
            partitioned: false,
        }
    }
}

impl CookieConfig {
    /// Whether the cookie goes by `__Host-<name>`: by default whenever its attributes allow
    /// it (`Secure`, `Path=/`, no `Domain`), since browsers then refuse a cookie of that name
    /// from any other host, a sibling subdomain included.
    pub(crate) fn host_prefixed(&self) -> bool {
        let allowed = self.secure && self.path == "/" && self.domain.is_none();
        self.host_prefix.unwrap_or(allowed)
    }

    /// The name on the wire, which the token is also bound to.
    pub(crate) fn full_name(&self) -> String {
        let prefixed = self.name.starts_with("__Host-") || self.name.starts_with("__Secure-");
        if self.host_prefixed() && !prefixed {
            format!("__Host-{}", self.name)
        } else {
            self.name.clone()
        }
    }

    /// The id the cookies with our name present. One bad cookie does not hide a good one,
    /// nor does another cookie that is not even ASCII. Two that verify but name different
    /// sessions are read as conflicting, and neither is used: one of them was planted (a
    /// sibling subdomain can set a cookie for the parent domain), and whichever came first is
    /// not a reason to trust it. The CSRF nonce cookie, named `csrf_name`, is picked up on the
    /// same pass. The layer reads through [`read_with`](Self::read_with); this is its reading
    /// of signed ids, for the tests and fuzz targets.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn read(
        &self,
        name: &str,
        csrf_name: &str,
        keys: &Keys,
        headers: &HeaderMap,
    ) -> Read {
        let verify = |token: &str| keys.verify(crate::token::Transport::Cookie, name, token);
        self.read_with(name, csrf_name, keys, headers, verify, |id| *id)
    }

    /// [`read`](Self::read) with `open` judging each candidate cookie value (checking the
    /// signature of an id, or opening a sealed session); `id` names the session a value
    /// presents, to tell two cookies of one session from cookies of two.
    pub(crate) fn read_with<T>(
        &self,
        name: &str,
        csrf_name: &str,
        keys: &Keys,
        headers: &HeaderMap,
        open: impl Fn(&str) -> Option<T>,
        id: impl Fn(&T) -> SessionId,
    ) -> Read<T> {
        let mut csrf_nonce = None;
        let presented =
            Self::read_session(name, csrf_name, keys, headers, &mut csrf_nonce, open, id);
        Read {
            presented,
            csrf_nonce,
        }
    }

    fn read_session<T>(
        name: &str,
        csrf_name: &str,
        keys: &Keys,
        headers: &HeaderMap,
        csrf_nonce: &mut Option<[u8; NONCE_BYTES]>,
        open: impl Fn(&str) -> Option<T>,
        id: impl Fn(&T) -> SessionId,
    ) -> Presented<T> {
        let mut found = None;
        let mut refused = None;
        let mut candidates = 0;
        'headers: for value in headers.get_all(header::COOKIE) {
            // Browsers send what other cookies of the site hold, UTF-8 or bytes; only ours
            // must be ASCII, and it is judged by itself.
            let text = String::from_utf8_lossy(value.as_bytes());
            for cookie in Cookie::split_parse(text.as_ref()).flatten() {
                if cookie.name() != name {
                    if cookie.name() == csrf_name && csrf_nonce.is_none() {
                        *csrf_nonce = parse_nonce(cookie.value());
                    }
                    continue;
                }
                candidates += 1;
                if candidates > MAX_CANDIDATES {
                    break 'headers;
                }
                match (open(cookie.value()), &found) {
                    (Some(value), Some(seen)) if id(seen) != id(&value) => {
                        let (first, second) = (keys.log_id(&id(seen)), keys.log_id(&id(&value)));
                        tracing::warn!(
                            session = %first,
                            other = %second,
                            "two valid session cookies name different sessions; neither is used"
                        );
                        return Presented::Conflicting(first, second);
                    }
                    // The first of two copies of one session: a sealed one may be an older
                    // copy, and the browser sends the most specific cookie first.
                    (Some(value), None) => found = Some(value),
                    (Some(_), Some(_)) => {}
                    (None, _) if refused.is_none() => {
                        refused = Some(keys.log_id_presented(cookie.value()));
                    }
                    (None, _) => {}
                }
            }
        }
        if let Some(id) = found {
            return Presented::Valid(id);
        }
        let Some(refused) = refused else {
            return Presented::Nothing;
        };
        tracing::debug!(
            session = %refused,
            "session cookie failed verification; starting a fresh session"
        );
        Presented::Invalid(refused)
    }

    /// A `Set-Cookie` carrying `token`; `max_age` is ignored for browser-session cookies
    /// unless `persistent` (a remember-me session) says the cookie must outlive the browser.
    pub(crate) fn set(
        &self,
        name: &str,
        token: String,
        max_age: Duration,
        persistent: bool,
    ) -> Option<HeaderValue> {
        let mut cookie = self.base(name, token);
        if !self.browser_session || persistent {
            cookie.set_max_age(max_age.max(Duration::ZERO));
        }
        HeaderValue::try_from(cookie.to_string()).ok()
    }

    /// A `Set-Cookie` for the CSRF nonce cookie: like the session's, but never outliving the
    /// browser session.
    pub(crate) fn csrf(&self, name: &str, value: String) -> Option<HeaderValue> {
        HeaderValue::try_from(self.base(name, value).to_string()).ok()
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
        if self.partitioned {
            // The cookie crate renders `Secure` with it, as browsers require.
            cookie.set_partitioned(true);
        }
        // The `__Host-` prefix obliges Secure, Path=/ and no Domain; browsers drop it otherwise.
        if self.host_prefixed() {
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
    use crate::token::Transport;

    proptest! {
        /// Whatever a `Cookie` header holds, reading it does not panic, and only the exact
        /// token the keys signed is accepted, wherever it stands among other cookies.
        #[test]
        fn any_cookie_header_is_read_safely(
            noise in proptest::collection::vec(any::<u8>(), 0..300),
            with_token in any::<bool>(),
        ) {
            let keys = Keys::new(Some(Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 9 ^ i as u8)).unwrap()));
            let config = CookieConfig::default();
            let id = SessionId::from_bytes([3; SessionId::BYTES]);
            let token = keys.sign(Transport::Cookie, "session", &id).unwrap();
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(&noise) {
                headers.append(header::COOKIE, value);
            }
            if with_token {
                let value = HeaderValue::try_from(format!("x=1; session={token}")).unwrap();
                headers.append(header::COOKIE, value);
            }
            let read = config.read("session", "session-csrf", &keys, &headers).presented;
            if with_token {
                prop_assert_eq!(read, Presented::Valid(id));
            } else {
                prop_assert_ne!(read, Presented::Valid(id));
            }
        }
    }

    fn keys() -> Keys {
        Keys::new(Some(
            Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 9 ^ i as u8)).unwrap(),
        ))
    }

    fn read(keys: &Keys, values: &[&[u8]]) -> Presented {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::COOKIE, HeaderValue::from_bytes(value).unwrap());
        }
        CookieConfig::default()
            .read("session", "session-csrf", keys, &headers)
            .presented
    }

    #[test]
    fn a_non_ascii_cookie_does_not_hide_ours() {
        let keys = keys();
        let id = SessionId::from_bytes([4; SessionId::BYTES]);
        let token = keys.sign(Transport::Cookie, "session", &id).unwrap();
        for other in ["lang=żółć".as_bytes(), b"latin=caf\xe9", b"x=\"\x80\xff\""] {
            let mut value = other.to_vec();
            value.extend_from_slice(format!("; session={token}").as_bytes());
            assert_eq!(read(&keys, &[&value]), Presented::Valid(id), "{other:?}");
            let ahead = [format!("session={token}; ").as_bytes(), other].concat();
            assert_eq!(
                read(&keys, &[&ahead]),
                Presented::Valid(id),
                "{other:?} after"
            );
        }
    }

    #[test]
    fn two_valid_cookies_for_different_sessions_are_none() {
        let keys = keys();
        let ours = SessionId::from_bytes([4; SessionId::BYTES]);
        let planted = SessionId::from_bytes([5; SessionId::BYTES]);
        let t = |id| keys.sign(Transport::Cookie, "session", &id).unwrap();
        let both = format!("session={}; session={}", t(planted), t(ours));
        let named = Presented::Conflicting(keys.log_id(&planted), keys.log_id(&ours));
        assert_eq!(read(&keys, &[both.as_bytes()]), named);
        let split = [
            format!("session={}", t(ours)),
            format!("session={}", t(planted)),
        ];
        assert_eq!(
            read(&keys, &[split[0].as_bytes(), split[1].as_bytes()]),
            Presented::Conflicting(keys.log_id(&ours), keys.log_id(&planted))
        );
        // The same session twice (a stale copy) and a bad cookie beside a good one are fine.
        let twice = format!("session={}; session=bogus; session={}", t(ours), t(ours));
        assert_eq!(read(&keys, &[twice.as_bytes()]), Presented::Valid(ours));
    }

    #[test]
    fn only_the_first_few_same_name_cookies_are_verified() {
        let keys = keys();
        let id = SessionId::from_bytes([4; SessionId::BYTES]);
        let token = keys.sign(Transport::Cookie, "session", &id).unwrap();
        let junk = "session=AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; ";
        let late = format!("{}session={token}", junk.repeat(MAX_CANDIDATES));
        let junk_id = keys.log_id_presented(junk.trim_start_matches("session="));
        assert_eq!(read(&keys, &[late.as_bytes()]), Presented::Invalid(junk_id));
        let early = format!("{}session={token}", junk.repeat(MAX_CANDIDATES - 1));
        assert_eq!(read(&keys, &[early.as_bytes()]), Presented::Valid(id));
    }

    #[test]
    fn host_prefix_by_default_where_allowed() {
        let mut config = CookieConfig::default();
        assert_eq!(config.full_name(), "__Host-session");
        config.domain = Some("example.com".into());
        assert_eq!(
            config.full_name(),
            "session",
            "a Domain rules the prefix out"
        );
        config.domain = None;
        config.path = "/app".into();
        assert_eq!(config.full_name(), "session", "so does a Path other than /");
        config.path = "/".into();
        config.secure = false;
        assert_eq!(
            config.full_name(),
            "session",
            "and a cookie that is not Secure"
        );
        config.host_prefix = Some(false);
        config.secure = true;
        assert_eq!(config.full_name(), "session", "turned off");
        config.host_prefix = Some(true);
        config.path = "/app".into();
        assert_eq!(
            config.full_name(),
            "__Host-session",
            "forced: the attributes follow"
        );
        let set = config
            .set("__Host-session", "t".into(), Duration::minutes(1), false)
            .unwrap();
        let set = set.to_str().unwrap();
        assert!(set.contains("Path=/;") || set.ends_with("Path=/"), "{set}");
    }

    #[test]
    fn partitioned_goes_on_every_cookie_and_brings_secure() {
        let mut config = CookieConfig {
            partitioned: true,
            ..CookieConfig::default()
        };
        let set = config
            .set("__Host-session", "t".into(), Duration::minutes(1), false)
            .unwrap();
        let removal = config.removal("__Host-session").unwrap();
        let csrf = config.csrf("__Host-session-csrf", "n".into()).unwrap();
        for value in [&set, &removal, &csrf] {
            let text = value.to_str().unwrap();
            assert!(text.contains("Partitioned"), "{text}");
        }
        config.secure = false;
        config.host_prefix = Some(false);
        let set = config
            .set("session", "t".into(), Duration::minutes(1), false)
            .unwrap();
        let text = set.to_str().unwrap();
        assert!(
            text.contains("Partitioned") && text.contains("Secure"),
            "{text}"
        );
        config.partitioned = false;
        let set = config
            .set("session", "t".into(), Duration::minutes(1), false)
            .unwrap();
        assert!(!set.to_str().unwrap().contains("Partitioned"));
    }

    #[test]
    fn a_persistent_cookie_keeps_its_max_age_in_browser_session_mode() {
        let config = CookieConfig {
            browser_session: true,
            ..CookieConfig::default()
        };
        let plain = config
            .set("s", "t".into(), Duration::days(30), false)
            .unwrap();
        assert!(!plain.to_str().unwrap().contains("Max-Age"));
        let kept = config
            .set("s", "t".into(), Duration::days(30), true)
            .unwrap();
        assert!(
            kept.to_str().unwrap().contains("Max-Age=2592000"),
            "{kept:?}"
        );
    }
}
