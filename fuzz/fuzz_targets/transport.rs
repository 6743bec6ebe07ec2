//! Reading the token from a request: any `Cookie`, `Authorization` and custom token header
//! bytes are read without a panic, only a token the keys signed yields a session, and a real
//! token sent the usual way is found.

#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, header};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sessionware::__fuzz::Presented;
use sessionware::SessionId;
use sessionware_fuzz::{KEYS, NAME, header_tokens, tokens};

const CUSTOM: HeaderName = HeaderName::from_static("x-session-token");

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    cookies: Vec<&'a [u8]>,
    authorization: Option<&'a [u8]>,
    custom: Option<&'a [u8]>,
    /// A real token for `id`, placed among them.
    plant: Option<Plant<'a>>,
    id: [u8; 16],
}

#[derive(Arbitrary, Debug)]
enum Plant<'a> {
    /// `session=<token>` as a `Cookie` header of its own, after the others.
    Cookie,
    /// `; session=<token>` after one of the arbitrary cookie headers.
    InCookie { index: u8, before: &'a [u8] },
    /// `Authorization: Bearer <token>`, the scheme in any case, padded with spaces.
    Bearer { upper: bool, spaces: u8 },
    /// The bare token in the custom header.
    Header,
}

/// An upper bound on the cookies named [`NAME`] the headers hold: the name, then `=` after
/// any spaces or tabs (the cookie parser trims them off a name).
fn same_name_cookies(headers: &HeaderMap) -> usize {
    let name = NAME.as_bytes();
    headers
        .get_all(header::COOKIE)
        .iter()
        .map(|v| {
            let v = v.as_bytes();
            (0..v.len())
                .filter(|&at| v[at..].starts_with(name))
                .filter(|&at| {
                    let rest = &v[at + name.len()..];
                    let pad = rest
                        .iter()
                        .take_while(|b| matches!(b, b' ' | b'\t'))
                        .count();
                    rest.get(pad) == Some(&b'=')
                })
                .count()
        })
        .sum()
}

fn value(bytes: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(bytes).ok()
}

/// A session read from `values` must come from a token the keys signed for that transport,
/// sent in one of them.
fn assert_sound<'v>(
    read: Option<Presented>,
    signed: fn(&str, &SessionId) -> Vec<String>,
    mut values: impl Iterator<Item = &'v HeaderValue>,
) {
    if let Some(Presented::Valid(id)) = read {
        let tokens = signed(NAME, &id);
        let sent = values.any(|v| {
            tokens
                .iter()
                .any(|t| v.as_bytes().windows(t.len()).any(|w| w == t.as_bytes()))
        });
        assert!(sent, "{id:?} was read, yet no header holds its token");
    }
}

fuzz_target!(|input: Input<'_>| {
    let id = SessionId::from_bytes(input.id);
    let token = KEYS.sign(NAME, &id).expect("the layer signs");
    let header_token = KEYS.sign_header(NAME, &id).expect("the layer signs");
    let mut headers = HeaderMap::new();
    let mut cookies: Vec<Vec<u8>> = input.cookies.iter().map(|c| c.to_vec()).collect();
    if let Some(Plant::InCookie { index, before }) = &input.plant {
        let at = usize::from(*index) % (cookies.len() + 1);
        cookies.insert(at, [*before, b"; session=", token.as_bytes()].concat());
    }
    for cookie in cookies.iter().filter_map(|c| value(c)) {
        headers.append(header::COOKIE, cookie);
    }
    if let Some(v) = input.authorization.and_then(value) {
        headers.insert(header::AUTHORIZATION, v);
    }
    if let Some(v) = input.custom.and_then(value) {
        headers.insert(CUSTOM, v);
    }
    match input.plant {
        Some(Plant::Cookie) => {
            let cookie = HeaderValue::try_from(format!("{NAME}={token}")).expect("ASCII");
            headers.append(header::COOKIE, cookie);
        }
        Some(Plant::Bearer { upper, spaces }) => {
            let scheme = if upper { "BEARER" } else { "Bearer" };
            let pad = " ".repeat(usize::from(spaces % 4) + 1);
            let text = format!("{pad}{scheme}{pad}{header_token}{pad}");
            let bearer = HeaderValue::try_from(text).expect("ASCII");
            headers.insert(header::AUTHORIZATION, bearer);
        }
        Some(Plant::Header) => {
            headers.insert(CUSTOM, HeaderValue::try_from(&header_token).expect("ASCII"));
        }
        Some(Plant::InCookie { .. }) | None => {}
    }

    let cookie = KEYS.read_cookie(NAME, &headers);
    assert_sound(Some(cookie), tokens, headers.get_all(header::COOKIE).iter());
    let bearer = KEYS.read_bearer(NAME, &headers);
    assert_sound(
        bearer,
        header_tokens,
        headers.get(header::AUTHORIZATION).into_iter(),
    );
    let custom = KEYS.read_token_header(CUSTOM, NAME, &headers);
    assert_sound(custom, header_tokens, headers.get(&CUSTOM).into_iter());

    if cookie != Presented::Nothing {
        let named = headers.get_all(header::COOKIE).iter();
        // Bytes: a header that is not ASCII is read too.
        let named = named
            .map(|v| v.as_bytes())
            .any(|v| v.windows(NAME.len()).any(|w| w == NAME.as_bytes()));
        assert!(named, "a session cookie is not made up");
    }
    assert_eq!(custom.is_none(), !headers.contains_key(&CUSTOM));
    if !headers.contains_key(header::AUTHORIZATION) {
        assert_eq!(bearer, None);
    }
    match input.plant {
        // Only the first few cookies of our name are looked at: more is an attack.
        Some(Plant::Cookie) => assert!(
            matches!(cookie, Presented::Valid(_)) || same_name_cookies(&headers) > 4,
            "a planted cookie is found"
        ),
        Some(Plant::Bearer { .. }) => assert_eq!(bearer, Some(Presented::Valid(id))),
        Some(Plant::Header) => assert_eq!(custom, Some(Presented::Valid(id))),
        Some(Plant::InCookie { .. }) | None => {}
    }
});
