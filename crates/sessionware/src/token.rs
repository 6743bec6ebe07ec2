//! The signed token a client holds: `<id>.<tag>`, where the tag is HMAC-SHA256 over the token's
//! context (the cookie name), its transport and the id, in base64url. Binding the tag to the
//! context keeps a token issued under one cookie name from being replayed under another, and
//! binding it to the transport keeps a cookie (which page scripts cannot read) from being
//! usable as a bearer token (which they can), and the reverse.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use sessionware_core::SessionId;

use crate::Key;
use crate::at_rest::AtRestKeys;
use crate::log_id::LogId;
use crate::sealed::SealKeys;

const TAG_BYTES: usize = 32;
const TAG_LEN: usize = 43;
/// `id.tag`: the longest text worth looking at.
pub(crate) const TOKEN_LEN: usize = SessionId::ENCODED_LEN + 1 + TAG_LEN;

/// How a client carries its token; part of what the tag covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Cookie,
    Header,
}

impl Transport {
    /// The byte that stands for the transport in the signed message.
    fn tag(self) -> u8 {
        match self {
            Transport::Cookie => b'c',
            Transport::Header => b'h',
        }
    }
}

/// Signing and verifying keys: the first signs, every one verifies.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    keys: Vec<Key>,
    /// Whether `keys[0]` signs; without it every key only verifies.
    signing: bool,
    /// Derived from `keys[0]` once, not per log line.
    log: ring::hmac::Key,
    /// One CSRF key derived from each key, in the same order: the first signs, all verify.
    csrf: Vec<hmac::Key>,
    /// The cookie store's encryption keys, derived the same way.
    pub(crate) sealed: SealKeys,
    /// The encryption-at-rest keys, derived the same way.
    pub(crate) at_rest: AtRestKeys,
}

/// Keeps the CSRF keys apart from the signing keys they come from.
const CSRF_LABEL: &[u8] = b"sessionware csrf";

fn csrf_keys(keys: &[Key]) -> Vec<hmac::Key> {
    keys.iter()
        .map(|key| {
            hmac::Key::new(
                hmac::HMAC_SHA256,
                hmac::sign(key.hmac(), CSRF_LABEL).as_ref(),
            )
        })
        .collect()
}

impl Keys {
    /// `None` leaves the set without a signing key until one is set.
    pub(crate) fn new(signing: Option<Key>) -> Self {
        let keys: Vec<Key> = signing.into_iter().collect();
        let mut this = Self {
            signing: !keys.is_empty(),
            log: LogId::key(keys.first()),
            csrf: Vec::new(),
            sealed: SealKeys::new(&[], false),
            at_rest: AtRestKeys::new(&[], false),
            keys,
        };
        this.derive();
        this
    }

    /// Derives every purpose's keys again after the set changed.
    fn derive(&mut self) {
        self.log = LogId::key(self.keys.first());
        self.csrf = csrf_keys(&self.keys);
        self.sealed = SealKeys::new(&self.keys, self.signing);
        self.at_rest = AtRestKeys::new(&self.keys, self.signing);
    }

    pub(crate) fn set_signing(&mut self, key: Key) {
        if self.signing {
            self.keys[0] = key;
        } else {
            self.keys.insert(0, key);
            self.signing = true;
        }
        self.derive();
    }

    pub(crate) fn add_verifying(&mut self, key: Key) {
        self.keys.push(key);
        self.derive();
    }

    /// The CSRF tag of `message`; `None` when there is no signing key.
    pub(crate) fn csrf_tag(&self, message: &[u8]) -> Option<hmac::Tag> {
        let key = self.csrf.first().filter(|_| self.signing)?;
        Some(hmac::sign(key, message))
    }

    /// Whether one of the keys made `tag` for `message` (constant-time, ring).
    pub(crate) fn csrf_verify(&self, message: &[u8], tag: &[u8]) -> bool {
        self.csrf
            .iter()
            .any(|key| hmac::verify(key, message, tag).is_ok())
    }

    /// How log lines name the session `id`.
    pub(crate) fn log_id(&self, id: &SessionId) -> LogId {
        let mut text = [0u8; SessionId::ENCODED_LEN];
        let n = URL_SAFE_NO_PAD
            .encode_slice(id.as_bytes(), &mut text)
            .unwrap_or(0);
        LogId::new(&self.log, &text[..n])
    }

    /// How log lines name a presented token that failed verification: by its id part, so a
    /// forged tag on a real id lines up with that session's other lines.
    pub(crate) fn log_id_presented(&self, token: &str) -> LogId {
        let id_part = token.split_once('.').map_or(token, |(id, _)| id);
        LogId::new(&self.log, id_part.as_bytes())
    }

    /// `None` when there is no signing key.
    pub(crate) fn sign(
        &self,
        transport: Transport,
        context: &str,
        id: &SessionId,
    ) -> Option<String> {
        let key = self.keys.first().filter(|_| self.signing)?;
        let id = id.to_string();
        let tag = with_message(transport, context, &id, |msg| hmac::sign(key.hmac(), msg));
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(&id);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
        Some(token)
    }

    /// The id in `token` if one of the keys signed it for `context` and `transport`. Every
    /// check that fails returns `None` the same way; the tag comparison is constant-time (ring).
    pub(crate) fn verify(
        &self,
        transport: Transport,
        context: &str,
        token: &str,
    ) -> Option<SessionId> {
        if token.len() != TOKEN_LEN {
            return None;
        }
        let (id_text, tag_text) = token.split_once('.')?;
        let id: SessionId = id_text.parse().ok()?;
        let mut tag = [0u8; TAG_BYTES];
        if URL_SAFE_NO_PAD.decode_slice(tag_text, &mut tag).ok()? != TAG_BYTES {
            return None;
        }
        with_message(transport, context, id_text, |msg| {
            self.keys
                .iter()
                .any(|key| hmac::verify(key.hmac(), msg, &tag).is_ok())
        })
        .then_some(id)
    }
}

/// Runs `f` on the signed message: `context`, a zero byte, the transport's byte, then `id`
/// (a header value holds no zero byte, so the parts cannot run into each other). On the stack
/// for any usual cookie name, since this runs on every request that carries a token.
fn with_message<R>(transport: Transport, context: &str, id: &str, f: impl FnOnce(&[u8]) -> R) -> R {
    const ON_STACK: usize = 128;
    let len = context.len() + 2 + id.len();
    let fill = |buf: &mut [u8]| {
        buf[..context.len()].copy_from_slice(context.as_bytes());
        buf[context.len()] = 0;
        buf[context.len() + 1] = transport.tag();
        buf[context.len() + 2..].copy_from_slice(id.as_bytes());
    };
    if len <= ON_STACK {
        let mut buf = [0u8; ON_STACK];
        fill(&mut buf[..len]);
        f(&buf[..len])
    } else {
        let mut buf = vec![0u8; len];
        fill(&mut buf);
        f(&buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Transport = Transport::Cookie;

    #[test]
    fn bound_to_transport() {
        let keys = keys();
        let id = SessionId::generate().unwrap();
        let cookie = keys.sign(Transport::Cookie, "session", &id).unwrap();
        let header = keys.sign(Transport::Header, "session", &id).unwrap();
        assert_ne!(cookie, header);
        assert_eq!(keys.verify(Transport::Header, "session", &cookie), None);
        assert_eq!(keys.verify(Transport::Cookie, "session", &header), None);
        assert_eq!(keys.verify(Transport::Header, "session", &header), Some(id));
    }

    fn keys() -> Keys {
        Keys::new(Some(Key::generate().unwrap()))
    }

    #[test]
    fn sign_then_verify() {
        let keys = keys();
        let id = SessionId::generate().unwrap();
        let token = keys.sign(C, "session", &id).unwrap();
        assert_eq!(token.len(), TOKEN_LEN);
        assert_eq!(keys.verify(C, "session", &token), Some(id));
    }

    #[test]
    fn bound_to_context_and_key() {
        let keys = keys();
        let id = SessionId::generate().unwrap();
        let token = keys.sign(C, "session", &id).unwrap();
        assert_eq!(keys.verify(C, "other", &token), None);
        assert_eq!(self::keys().verify(C, "session", &token), None);
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let keys = keys();
        let token = keys
            .sign(C, "session", &SessionId::generate().unwrap())
            .unwrap();
        for i in 0..token.len() {
            for c in ['A', 'z', '0', '-', '_', '.'] {
                let mut bytes = token.clone().into_bytes();
                if bytes[i] == c as u8 {
                    continue;
                }
                bytes[i] = c as u8;
                let tampered = String::from_utf8(bytes).unwrap();
                assert_eq!(keys.verify(C, "session", &tampered), None, "{tampered}");
            }
        }
        assert_eq!(keys.verify(C, "session", &token[..TOKEN_LEN - 1]), None);
        assert_eq!(keys.verify(C, "session", &format!("{token}A")), None);
        assert_eq!(keys.verify(C, "session", ""), None);
    }

    #[test]
    fn rotation_first_signs_all_verify() {
        let old = Key::generate().unwrap();
        let new = Key::generate().unwrap();
        let id = SessionId::generate().unwrap();
        let old_token = Keys::new(Some(old.clone())).sign(C, "s", &id).unwrap();
        let mut rotated = Keys::new(Some(new.clone()));
        rotated.add_verifying(old);
        assert_eq!(rotated.verify(C, "s", &old_token), Some(id));
        let new_token = rotated.sign(C, "s", &id).unwrap();
        assert_eq!(Keys::new(Some(new)).verify(C, "s", &new_token), Some(id));
    }
}

/// Properties over many generated inputs: nothing panics, and nothing verifies without a tag
/// made with one of the keys for that exact context and id.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const C: Transport = Transport::Cookie;

    fn keys(byte: u8) -> Keys {
        Keys::new(Some(
            Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| byte ^ i as u8)).unwrap(),
        ))
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_verifies(text in "\\PC{0,200}") {
            prop_assert_eq!(keys(1).verify(C, "session", &text), None);
        }

        #[test]
        fn token_shaped_text_never_verifies(text in "[A-Za-z0-9_-]{22}\\.[A-Za-z0-9_-]{43}") {
            prop_assert_eq!(keys(1).verify(C, "session", &text), None);
        }

        #[test]
        fn any_change_to_a_real_token_fails(
            at in 0..TOKEN_LEN,
            byte in any::<u8>(),
            cut in 0..TOKEN_LEN,
        ) {
            let keys = keys(1);
            let id = SessionId::from_bytes([7; SessionId::BYTES]);
            let token = keys.sign(C, "session", &id).unwrap();
            let mut changed = token.clone().into_bytes();
            changed[at] = byte;
            if let Ok(changed) = String::from_utf8(changed) {
                if changed != token {
                    prop_assert_eq!(keys.verify(C, "session", &changed), None);
                }
            }
            prop_assert_eq!(keys.verify(C, "session", &token[..cut]), None);
            prop_assert_eq!(keys.verify(C, "session", &format!("{token}{}", &token[..cut.max(1)])), None);
        }

        #[test]
        fn re_signed_or_re_encoded_tokens_fail(id in any::<[u8; 16]>(), other in 2u8..255) {
            let id = SessionId::from_bytes(id);
            let ours = keys(1);
            let token = keys(other).sign(C, "session", &id).unwrap();
            prop_assert_eq!(ours.verify(C, "session", &token), None, "signed with another key");
            let real = ours.sign(C, "session", &id).unwrap();
            prop_assert_eq!(ours.verify(C, "session", &real), Some(id));
            prop_assert_eq!(ours.verify(C, "other", &real), None, "another context");
            // Standard base64 with padding, or upper-cased: not the canonical form, refused.
            let std = real.replace('-', "+").replace('_', "/") + "=";
            prop_assert_eq!(ours.verify(C, "session", &std), None);
            if real.to_uppercase() != real {
                prop_assert_eq!(ours.verify(C, "session", &real.to_uppercase()), None);
            }
        }
    }
}
