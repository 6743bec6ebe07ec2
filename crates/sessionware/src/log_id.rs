//! How log lines name a session: a short keyed hash, so the lines about one session can be
//! found together while a log that leaks holds nothing a client could present.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

use crate::Key;

/// Keeps the hashing key apart from the signing key it comes from: the signing key itself
/// never touches a log line, even hashed.
const LABEL: &[u8] = b"sessionware log id";
/// Enough to tell a server's live sessions apart in its logs; too short to be worth inverting.
const BYTES: usize = 8;
const ENCODED_LEN: usize = 11;

/// The name a session goes by in this crate's log lines (the `session` field), and in an
/// application's own with [`Session::log_id`](crate::Session::log_id): 8 bytes of
/// HMAC-SHA256 of the session id, base64url, under a key derived from the signing key.
///
/// It names one session alike on every instance that shares the signing key, and changes
/// when the signing key does. There is no way back from it to the id, so a log holding it
/// is not a credential. Only `Display` (and `Debug`) show it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogId([u8; ENCODED_LEN]);

impl LogId {
    /// The hash of `value`: a session id's text form, or the id part of a presented token.
    pub(crate) fn new(key: &hmac::Key, value: &[u8]) -> Self {
        let tag = hmac::sign(key, value);
        // Eight bytes always fill the eleven characters exactly.
        let mut text = [b'-'; ENCODED_LEN];
        let _ = URL_SAFE_NO_PAD.encode_slice(&tag.as_ref()[..BYTES], &mut text);
        Self(text)
    }

    /// The hashing key for the layer whose first key is `key`. Without any key (the OS random
    /// source failed and none was configured) the label alone keys it: still one-way.
    pub(crate) fn key(key: Option<&Key>) -> hmac::Key {
        let derived = key.map(|key| hmac::sign(key.hmac(), LABEL));
        let secret = derived.as_ref().map_or(LABEL, |tag| tag.as_ref());
        hmac::Key::new(hmac::HMAC_SHA256, secret)
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.0).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_short_and_stable() {
        let a = Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 1 ^ i as u8)).unwrap();
        let b = Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 2 ^ i as u8)).unwrap();
        let id = b"AAAAAAAAAAAAAAAAAAAAAA";
        let text = LogId::new(&LogId::key(Some(&a)), id).to_string();
        assert_eq!(text.len(), ENCODED_LEN);
        assert_eq!(
            text,
            LogId::new(
                &LogId::key(Some(
                    &Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| 1 ^ i as u8)).unwrap()
                )),
                id
            )
            .to_string(),
            "instances sharing a key name a session alike"
        );
        assert_ne!(text, LogId::new(&LogId::key(Some(&b)), id).to_string());
        assert_ne!(text, LogId::new(&LogId::key(None), id).to_string());
        assert_ne!(
            text,
            LogId::new(a.hmac(), id).to_string(),
            "not keyed by the signing key itself"
        );
        assert_eq!(
            format!("{:?}", LogId::new(a.hmac(), id)).len(),
            ENCODED_LEN + 7
        );
    }
}
