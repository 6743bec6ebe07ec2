//! The header transport, for API and mobile clients: the same signed token as the cookie, in
//! `Authorization: Bearer <token>` (or a configured header) on the way in, and in a response
//! header whenever it is issued or renewed.

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::cookie::Presented;
use crate::token::Keys;

#[derive(Debug, Clone)]
pub(crate) struct HeaderConfig {
    /// Where the client sends the token.
    pub(crate) request: HeaderName,
    /// Whether `request` carries `Bearer <token>` (as `Authorization` does) or the bare token.
    pub(crate) bearer: bool,
    /// Where the layer returns a new token.
    pub(crate) response: HeaderName,
}

impl HeaderConfig {
    pub(crate) fn bearer() -> Self {
        Self {
            request: header::AUTHORIZATION,
            bearer: true,
            response: HeaderName::from_static("session-token"),
        }
    }

    pub(crate) fn named(name: HeaderName) -> Self {
        Self {
            request: name.clone(),
            bearer: false,
            response: name,
        }
    }

    /// `None` when the request does not use the header at all (then the cookie decides);
    /// otherwise what it carries. A request that sends the header with anything that does not
    /// verify (`Bearer new` on first contact, say) is a header client with no session yet.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn read(&self, name: &str, keys: &Keys, headers: &HeaderMap) -> Option<Presented> {
        self.read_with(keys, headers, |token| {
            keys.verify(crate::token::Transport::Header, name, token)
        })
    }

    /// [`read`](Self::read) with `open` judging the token (checking an id's signature, or
    /// opening a sealed session).
    pub(crate) fn read_with<T>(
        &self,
        keys: &Keys,
        headers: &HeaderMap,
        open: impl FnOnce(&str) -> Option<T>,
    ) -> Option<Presented<T>> {
        let value = headers.get(&self.request)?;
        let text = value.to_str().ok().map(str::trim);
        let token = match (self.bearer, text) {
            (true, Some(t)) => t
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim()),
            (false, t) => t,
            (true, None) => None,
        };
        if self.bearer && token.is_none() {
            // Another scheme (Basic, ...): not ours to judge.
            return None;
        }
        let token = token.unwrap_or_default();
        Some(match open(token) {
            Some(value) => Presented::Valid(value),
            None => {
                let refused = keys.log_id_presented(token);
                tracing::debug!(
                    session = %refused,
                    "session token failed verification; starting a fresh session"
                );
                Presented::Invalid(refused)
            }
        })
    }

    /// The response header carrying `token` (empty when the session ended).
    pub(crate) fn issue(&self, token: &str) -> Option<(HeaderName, HeaderValue)> {
        Some((self.response.clone(), HeaderValue::from_str(token).ok()?))
    }
}
