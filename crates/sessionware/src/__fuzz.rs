//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`). Not public API: hidden from
//! the docs, outside semver, and free to change in any release.

use http::{HeaderMap, HeaderName};
use sessionware_core::SessionId;

use crate::Key;
use crate::cookie::{self, CookieConfig};
use crate::header::HeaderConfig;
use crate::token::{self, Transport};

/// What a request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// No session token.
    Nothing,
    /// A token that does not verify, or two that name different sessions.
    Invalid,
    /// A verified id.
    Valid(SessionId),
}

impl From<cookie::Presented> for Presented {
    fn from(presented: cookie::Presented) -> Self {
        match presented {
            cookie::Presented::Nothing => Self::Nothing,
            cookie::Presented::Invalid(_) | cookie::Presented::Conflicting(..) => Self::Invalid,
            cookie::Presented::Valid(id) => Self::Valid(id),
        }
    }
}

/// A layer's keys: `signing` signs, it and every `verifying` key verify.
#[derive(Debug, Clone)]
pub struct Keys(token::Keys);

impl Keys {
    /// The keys of a layer configured with these.
    pub fn new(signing: Key, verifying: &[Key]) -> Self {
        let mut keys = token::Keys::new(Some(signing));
        for key in verifying {
            keys.add_verifying(key.clone());
        }
        Self(keys)
    }

    /// The cookie token the layer issues for `id` under the cookie name `context`.
    pub fn sign(&self, context: &str, id: &SessionId) -> Option<String> {
        self.0.sign(Transport::Cookie, context, id)
    }

    /// The header token the layer issues for `id` under the cookie name `context`.
    pub fn sign_header(&self, context: &str, id: &SessionId) -> Option<String> {
        self.0.sign(Transport::Header, context, id)
    }

    /// The id in the cookie token `token`, if it verifies for `context`.
    pub fn verify(&self, context: &str, token: &str) -> Option<SessionId> {
        self.0.verify(Transport::Cookie, context, token)
    }

    /// What the `Cookie` headers present for the cookie `name`.
    pub fn read_cookie(&self, name: &str, headers: &HeaderMap) -> Presented {
        let csrf = format!("{name}-csrf");
        CookieConfig::default()
            .read(name, &csrf, &self.0, headers)
            .presented
            .into()
    }

    /// What `Authorization: Bearer` presents; `None` when the request does not use it.
    pub fn read_bearer(&self, name: &str, headers: &HeaderMap) -> Option<Presented> {
        HeaderConfig::bearer()
            .read(name, &self.0, headers)
            .map(Into::into)
    }

    /// What the custom token header `header` presents; `None` when the request lacks it.
    pub fn read_token_header(
        &self,
        header: HeaderName,
        name: &str,
        headers: &HeaderMap,
    ) -> Option<Presented> {
        HeaderConfig::named(header)
            .read(name, &self.0, headers)
            .map(Into::into)
    }
}

/// The cookie store's keys: the first seals, every one opens.
#[derive(Debug, Clone)]
pub struct SealKeys(crate::sealed::SealKeys);

impl SealKeys {
    /// The cookie-store keys of a layer configured with `sealing` and then `opening` keys.
    pub fn new(sealing: Key, opening: &[Key]) -> Self {
        let mut keys = vec![sealing];
        keys.extend_from_slice(opening);
        Self(crate::sealed::SealKeys::new(&keys, true))
    }

    /// The cookie the layer issues for `record` under the cookie name `context`.
    pub fn seal(&self, context: &str, record: &sessionware_core::Record) -> Option<String> {
        self.0.seal(Transport::Cookie, context, record).ok()
    }

    /// The session sealed in the cookie value `text` for `context`, if it opens; and whether a
    /// key other than the first sealed it.
    pub fn open(&self, context: &str, text: &str) -> Option<(sessionware_core::Record, bool)> {
        self.0
            .open(Transport::Cookie, context, text)
            .map(|o| (o.record, o.old_key))
    }

    /// What the `Cookie` headers present for the cookie `name` to a cookie-store layer.
    pub fn read_cookie(&self, name: &str, headers: &HeaderMap) -> Option<sessionware_core::Record> {
        let keys = token::Keys::new(None);
        let read = CookieConfig::default().read_with(
            name,
            &format!("{name}-csrf"),
            &keys,
            headers,
            |t| self.0.open(Transport::Cookie, name, t),
            |o| o.record.id,
        );
        match read.presented {
            cookie::Presented::Valid(opened) => Some(opened.record),
            _ => None,
        }
    }
}
