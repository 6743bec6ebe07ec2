//! The cookie store's decoder: any text, and any edit of a cookie the layer sealed, never
//! panics, and nothing opens but the exact text one of the keys sealed for that cookie name.

#![no_main]

use std::collections::HashMap;

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sessionware::__fuzz::SealKeys;
use sessionware::time::OffsetDateTime;
use sessionware::{Key, Record, SessionId};
use sessionware_fuzz::NAME;

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    /// Any bytes, as a cookie value and as a whole `Cookie` header.
    Raw(&'a [u8]),
    /// A cookie the layer sealed, then bytes of its decoded form or of its text changed.
    Edited {
        session: Session<'a>,
        edits: Vec<(u16, u8)>,
        in_text: bool,
    },
    /// A cookie sealed with any key for any cookie name.
    Foreign {
        session: Session<'a>,
        key: [u8; 32],
        context: &'a str,
    },
}

#[derive(Arbitrary, Debug)]
struct Session<'a> {
    id: [u8; 16],
    user: Option<&'a str>,
    data: Vec<(&'a str, &'a str)>,
    created_s: u32,
    ttl_s: u32,
}

fn key(byte: u8) -> Key {
    Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| byte ^ i as u8)).expect("a key")
}

fn keys() -> SealKeys {
    SealKeys::new(key(1), &[key(2)])
}

fn record(s: &Session<'_>) -> Record {
    let created = OffsetDateTime::UNIX_EPOCH + std::time::Duration::from_secs(s.created_s.into());
    Record {
        id: SessionId::from_bytes(s.id),
        data: s
            .data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect::<HashMap<_, _>>(),
        user: s.user.map(String::from),
        created_at: created,
        expires_at: created + std::time::Duration::from_secs(s.ttl_s.into()),
    }
}

/// Opens `text` under `context`; panics if something opens that no key sealed as it is.
fn check(context: &str, text: &[u8], sealed: Option<&str>) {
    let text = String::from_utf8_lossy(text);
    if let Some((_, _)) = keys().open(context, &text) {
        assert_eq!(
            Some(text.as_ref()),
            sealed,
            "{text:?} opened though no key sealed it"
        );
    }
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&format!("a=1; {context}={text}")) {
        headers.append(header::COOKIE, value);
        if keys().read_cookie(context, &headers).is_some() {
            assert_eq!(
                Some(text.as_ref()),
                sealed,
                "{text:?} read though no key sealed it"
            );
        }
    }
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Raw(bytes) => {
        check(NAME, bytes, None);
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(bytes) {
            headers.append(header::COOKIE, value);
            assert!(keys().read_cookie(NAME, &headers).is_none());
        }
    }
    Input::Edited {
        session,
        edits,
        in_text,
    } => {
        let record = record(&session);
        let Some(token) = keys().seal(NAME, &record) else {
            return;
        };
        let (opened, _) = keys().open(NAME, &token).expect("a sealed cookie opens");
        assert_eq!(opened, record);
        let edited = if in_text {
            let mut text = token.clone().into_bytes();
            for (at, byte) in &edits {
                let len = text.len();
                text[usize::from(*at) % len] = *byte;
            }
            text
        } else {
            use base64::Engine as _;
            let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let mut raw = engine.decode(&token).expect("our own encoding");
            for (at, byte) in &edits {
                let len = raw.len();
                raw[usize::from(*at) % len] ^= byte;
            }
            engine.encode(raw).into_bytes()
        };
        let unchanged = edited == token.as_bytes();
        check(NAME, &edited, unchanged.then_some(token.as_str()));
        check("other", &edited, None);
    }
    Input::Foreign {
        session,
        key: bytes,
        context,
    } => {
        let Ok(key) = Key::from_bytes(&bytes) else {
            return;
        };
        let Some(token) = SealKeys::new(key, &[]).seal(context, &record(&session)) else {
            return;
        };
        // Only our own keys (1 and 2) sealing for our own cookie name make a cookie we open.
        let ours = [1u8, 2]
            .iter()
            .any(|b| bytes == std::array::from_fn(|i| b ^ i as u8));
        let legit = ours && context == NAME;
        check(NAME, token.as_bytes(), legit.then_some(token.as_str()));
    }
});
