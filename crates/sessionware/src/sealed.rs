//! The cookie store's codec: a whole session (id, data, user, creation time, deadline)
//! sealed with AES-256-GCM into one base64url token.
//!
//! ```text
//! token     = base64url( version | nonce | AES-256-GCM(plaintext) | tag )
//! plaintext = id (16) | created_at ms (i64 BE) | expires_at ms (i64 BE)
//!           | user flag (0 or 1) [ | user length (u16 BE) | user (UTF-8) ] | data (JSON object)
//! AAD       = label | 0 | transport byte | cookie name
//! ```
//!
//! The key is derived from each configured [`Key`] with HKDF under its own label, so it never
//! signs or encrypts anything else; the first key seals, every key opens (rotation). The nonce
//! is 96 random bits per sealing: with random nonces AES-GCM stays within its bounds for 2^32
//! sealings per key, which is why the README asks for a key rotation well before that.
//! Binding the cookie name and the transport into the AAD keeps a sealed session issued under
//! one name, or as a cookie, from being accepted under another name, or as a bearer token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use sessionware_core::{Data, Record, SessionId, from_unix_ms, to_unix_ms};

use crate::Key;
use crate::token::Transport;

/// The HKDF label of the cookie store's encryption keys.
const LABEL: &[u8] = b"sessionware cookie store";
const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
/// id, two instants, the user flag.
const FIXED: usize = SessionId::BYTES + 8 + 8 + 1;
/// Version, nonce and tag around the plaintext.
const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
/// The longest text worth decoding: twice a browser's cookie limit. Bounds the work an
/// oversized header can cause.
pub(crate) const MAX_TOKEN_LEN: usize = 8192;

/// Why a session could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SealError {
    /// No key seals (none configured and none could be generated).
    NoKey,
    /// The random source failed.
    Random,
    /// The user id is longer than the format holds (64 KiB).
    UserTooLong,
    /// The data does not encode as JSON.
    Encode,
    /// The token would be longer than [`MAX_TOKEN_LEN`], so it would not open again.
    TooLong(usize),
}

/// The cookie store's keys: one AEAD key derived from each layer key, in the same order.
#[derive(Clone)]
pub(crate) struct SealKeys {
    keys: Vec<LessSafeKey>,
    /// Whether `keys[0]` seals; without it every key only opens.
    sealing: bool,
}

impl std::fmt::Debug for SealKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKeys")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// A session opened from a token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Opened {
    pub(crate) record: Record,
    /// Sealed with a key that no longer seals: re-seal it with the current one.
    pub(crate) old_key: bool,
}

impl SealKeys {
    pub(crate) fn new(keys: &[Key], sealing: bool) -> Self {
        let keys: Vec<LessSafeKey> = keys
            .iter()
            .filter_map(|key| {
                let secret = key.derive(LABEL)?;
                Some(LessSafeKey::new(
                    UnboundKey::new(&AES_256_GCM, &secret).ok()?,
                ))
            })
            .collect();
        Self {
            sealing: sealing && !keys.is_empty(),
            keys,
        }
    }

    /// The length of the token [`seal`](Self::seal) makes for a plaintext of `plain` bytes.
    pub(crate) fn token_len(plain: usize) -> usize {
        ((OVERHEAD + plain) * 4).div_ceil(3)
    }

    /// An upper bound of the plaintext length of a session whose data is at most
    /// `data_json` bytes of JSON, bound to a user of `user` bytes, if any.
    pub(crate) fn plaintext_len(data_json: usize, user: Option<usize>) -> usize {
        FIXED + user.map_or(0, |len| 2 + len) + data_json
    }

    pub(crate) fn seal(
        &self,
        transport: Transport,
        context: &str,
        record: &Record,
    ) -> Result<String, SealError> {
        let key = self
            .keys
            .first()
            .filter(|_| self.sealing)
            .ok_or(SealError::NoKey)?;
        let mut raw = Vec::with_capacity(OVERHEAD + FIXED + 256);
        raw.push(VERSION);
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        raw.extend_from_slice(&nonce);
        let start = raw.len();
        raw.extend_from_slice(record.id.as_bytes());
        raw.extend_from_slice(&to_unix_ms(record.created_at).to_be_bytes());
        raw.extend_from_slice(&to_unix_ms(record.expires_at).to_be_bytes());
        match &record.user {
            None => raw.push(0),
            Some(user) => {
                let len = u16::try_from(user.len()).map_err(|_| SealError::UserTooLong)?;
                raw.push(1);
                raw.extend_from_slice(&len.to_be_bytes());
                raw.extend_from_slice(user.as_bytes());
            }
        }
        serde_json::to_writer(&mut raw, &record.data).map_err(|_| SealError::Encode)?;
        let mut body = raw.split_off(start);
        let aad = aad(transport, context);
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut body,
        )
        .map_err(|_| SealError::Encode)?;
        raw.extend_from_slice(&body);
        let token = URL_SAFE_NO_PAD.encode(&raw);
        if token.len() > MAX_TOKEN_LEN {
            return Err(SealError::TooLong(token.len()));
        }
        Ok(token)
    }

    /// The session in `token` if one of the keys sealed it for `context` and `transport`.
    /// Anything else (wrong key, name or transport, any byte changed, not our format) is
    /// `None`, never a panic.
    pub(crate) fn open(&self, transport: Transport, context: &str, token: &str) -> Option<Opened> {
        if token.len() > MAX_TOKEN_LEN || token.len() < Self::token_len(FIXED) {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        let (&version, rest) = raw.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN + TAG_LEN + FIXED {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let aad = aad(transport, context);
        for (i, key) in self.keys.iter().enumerate() {
            let mut body = sealed.to_vec();
            let Ok(plain) = key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut body,
            ) else {
                continue;
            };
            return Some(Opened {
                record: parse(plain)?,
                old_key: i > 0 || !self.sealing,
            });
        }
        None
    }
}

fn aad(transport: Transport, context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(LABEL.len() + 2 + context.len());
    aad.extend_from_slice(LABEL);
    aad.push(0);
    aad.push(match transport {
        Transport::Cookie => b'c',
        Transport::Header => b'h',
    });
    aad.extend_from_slice(context.as_bytes());
    aad
}

/// The plaintext's fields. Only text one of our keys sealed gets here, so a failure means a
/// format this version does not know: `None`, like any token that does not open.
fn parse(plain: &[u8]) -> Option<Record> {
    let (id, rest) = plain.split_first_chunk::<{ SessionId::BYTES }>()?;
    let (created, rest) = rest.split_first_chunk::<8>()?;
    let (expires, rest) = rest.split_first_chunk::<8>()?;
    let (&flag, rest) = rest.split_first()?;
    let (user, data) = match flag {
        0 => (None, rest),
        1 => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            let len = usize::from(u16::from_be_bytes(*len));
            if rest.len() < len {
                return None;
            }
            let (user, data) = rest.split_at(len);
            (Some(std::str::from_utf8(user).ok()?.to_owned()), data)
        }
        _ => return None,
    };
    let data: Data = serde_json::from_slice(data).ok()?;
    Some(Record {
        id: SessionId::from_bytes(*id),
        data,
        user,
        created_at: from_unix_ms(i64::from_be_bytes(*created))?,
        expires_at: from_unix_ms(i64::from_be_bytes(*expires))?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sessionware_core::time::{Duration, OffsetDateTime};

    use super::*;

    const C: Transport = Transport::Cookie;

    pub(super) fn key(byte: u8) -> Key {
        Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| byte ^ i as u8)).unwrap()
    }

    pub(super) fn record(user: Option<&str>, data: Data) -> Record {
        let created = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        Record {
            id: SessionId::from_bytes([9; SessionId::BYTES]),
            data,
            user: user.map(String::from),
            created_at: created,
            expires_at: created + Duration::hours(1),
        }
    }

    #[test]
    fn what_seals_opens_again_and_what_would_not_is_refused() {
        let keys = SealKeys::new(&[key(1)], true);
        let sized = |n: usize| record(None, Data::from([("b".into(), json!("x".repeat(n)))]));
        // The longest data that still fits, found from the predicted length.
        let fits = (0..MAX_TOKEN_LEN)
            .rev()
            .find(|&n| {
                let json = serde_json::to_vec(&sized(n).data).unwrap().len();
                SealKeys::token_len(SealKeys::plaintext_len(json, None)) <= MAX_TOKEN_LEN
            })
            .unwrap();
        let token = keys.seal(C, "session", &sized(fits)).unwrap();
        assert!(token.len() <= MAX_TOKEN_LEN);
        assert_eq!(keys.open(C, "session", &token).unwrap().record, sized(fits));
        assert!(matches!(
            keys.seal(C, "session", &sized(fits + 3)),
            Err(SealError::TooLong(len)) if len > MAX_TOKEN_LEN
        ));
    }

    #[test]
    fn round_trip_with_the_predicted_length() {
        let keys = SealKeys::new(&[key(1)], true);
        for (user, data) in [
            (None, Data::new()),
            (
                Some("ana"),
                Data::from([("k".into(), json!([1, "two", null]))]),
            ),
            (Some("é"), Data::from([("a".into(), json!({"b": 1.5}))])),
        ] {
            let record = record(user, data);
            let token = keys.seal(C, "session", &record).unwrap();
            let json = serde_json::to_vec(&record.data).unwrap().len();
            let plain = SealKeys::plaintext_len(json, record.user.as_ref().map(String::len));
            assert_eq!(token.len(), SealKeys::token_len(plain), "{user:?}");
            let opened = keys.open(C, "session", &token).unwrap();
            assert_eq!(opened.record, record);
            assert!(!opened.old_key);
        }
    }

    #[test]
    fn bound_to_key_name_and_transport() {
        let keys = SealKeys::new(&[key(1)], true);
        let token = keys.seal(C, "session", &record(None, Data::new())).unwrap();
        assert!(keys.open(C, "other", &token).is_none());
        assert!(keys.open(Transport::Header, "session", &token).is_none());
        assert!(
            SealKeys::new(&[key(2)], true)
                .open(C, "session", &token)
                .is_none()
        );
        let again = keys.seal(C, "session", &record(None, Data::new())).unwrap();
        assert_ne!(token, again, "a fresh nonce each time");
    }

    #[test]
    fn rotation_first_seals_all_open() {
        let old = SealKeys::new(&[key(1)], true);
        let token = old.seal(C, "s", &record(Some("u"), Data::new())).unwrap();
        let rotated = SealKeys::new(&[key(2), key(1)], true);
        let opened = rotated.open(C, "s", &token).unwrap();
        assert!(opened.old_key, "read with a previous key");
        let resealed = rotated.seal(C, "s", &opened.record).unwrap();
        assert!(
            !SealKeys::new(&[key(2)], true)
                .open(C, "s", &resealed)
                .unwrap()
                .old_key
        );
        assert_eq!(
            SealKeys::new(&[key(1)], false).seal(C, "s", &opened.record),
            Err(SealError::NoKey)
        );
    }

    #[test]
    fn every_byte_changed_is_refused() {
        let keys = SealKeys::new(&[key(1)], true);
        let record = record(Some("ana"), Data::from([("k".into(), json!("v"))]));
        let token = keys.seal(C, "session", &record).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..raw.len() {
            for flip in [1u8, 0x80, 0xff] {
                let mut changed = raw.clone();
                changed[i] ^= flip;
                let text = URL_SAFE_NO_PAD.encode(&changed);
                assert!(keys.open(C, "session", &text).is_none(), "byte {i}");
            }
        }
        for cut in 0..token.len() {
            assert!(keys.open(C, "session", &token[..cut]).is_none());
        }
        assert!(keys.open(C, "session", &format!("{token}A")).is_none());
    }
}

/// Properties over generated inputs: nothing panics, nothing opens that our key did not seal
/// for that exact name and transport, and whatever is sealed opens as it was.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::tests::{key, record};
    use super::*;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map("[a-z]{0,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_opens(text in "\\PC{0,600}") {
            prop_assert!(SealKeys::new(&[key(1)], true).open(Transport::Cookie, "s", &text).is_none());
        }

        #[test]
        fn token_shaped_text_never_opens(text in "[A-Za-z0-9_-]{60,400}") {
            prop_assert!(SealKeys::new(&[key(1)], true).open(Transport::Cookie, "s", &text).is_none());
        }

        #[test]
        fn sealed_sessions_open_as_they_were(
            user in proptest::option::of("\\PC{0,40}"),
            data in proptest::collection::hash_map("\\PC{0,10}", value(), 0..6),
            at in any::<usize>(),
            byte in any::<u8>(),
        ) {
            let keys = SealKeys::new(&[key(1)], true);
            let record = record(user.as_deref(), data);
            let token = keys.seal(Transport::Cookie, "s", &record).unwrap();
            prop_assert_eq!(&keys.open(Transport::Cookie, "s", &token).unwrap().record, &record);
            let mut changed = token.clone().into_bytes();
            let at = at % changed.len();
            changed[at] = byte;
            if let Ok(changed) = String::from_utf8(changed) {
                if changed != token {
                    prop_assert!(keys.open(Transport::Cookie, "s", &changed).is_none());
                }
            }
        }
    }
}
