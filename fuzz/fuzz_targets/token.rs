//! The token parser and verifier: malformed, truncated, oversized, re-encoded and re-signed
//! tokens never panic, and nothing verifies but the exact text one of the keys signs for that
//! id and cookie name.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sessionware::__fuzz::Keys;
use sessionware::{Key, SessionId};
use sessionware_fuzz::{KEYS, NAME, tokens};

/// Far beyond any header a server accepts; bounds the work per input.
const MAX_LEN: usize = 1 << 16;

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    /// Any bytes, as text.
    Raw(&'a [u8]),
    /// A token the layer issued, then edited.
    Edited { id: [u8; 16], edits: Vec<Edit<'a>> },
    /// A token signed with any key for any cookie name.
    Foreign {
        id: [u8; 16],
        key: [u8; 32],
        context: &'a str,
    },
}

#[derive(Arbitrary, Debug)]
enum Edit<'a> {
    Set {
        at: u16,
        byte: u8,
    },
    Insert {
        at: u16,
        bytes: &'a [u8],
    },
    Remove {
        at: u16,
        len: u8,
    },
    Truncate {
        at: u16,
    },
    Repeat {
        times: u8,
    },
    /// Standard base64's alphabet, with padding.
    Standard,
    Uppercase,
    /// The tag first, then the id.
    Swap,
}

fn apply(token: &mut Vec<u8>, edit: &Edit<'_>) {
    let len = token.len();
    let pos = |at: u16| usize::from(at) % (len + 1);
    match *edit {
        Edit::Set { at, byte } => {
            if len > 0 {
                token[usize::from(at) % len] = byte;
            }
        }
        Edit::Insert { at, bytes } => {
            let at = pos(at);
            token.splice(at..at, bytes.iter().copied());
        }
        Edit::Remove { at, len: n } => {
            let at = pos(at);
            token.drain(at..(at + usize::from(n)).min(len));
        }
        Edit::Truncate { at } => token.truncate(pos(at)),
        Edit::Repeat { times } => {
            if len * (usize::from(times) + 1) <= MAX_LEN {
                *token = token.repeat(usize::from(times) + 1);
            }
        }
        Edit::Standard => {
            for b in token.iter_mut() {
                *b = match *b {
                    b'-' => b'+',
                    b'_' => b'/',
                    b => b,
                };
            }
            token.push(b'=');
        }
        Edit::Uppercase => token.make_ascii_uppercase(),
        Edit::Swap => {
            if let Some(dot) = token.iter().position(|&b| b == b'.') {
                *token = [&token[dot + 1..], b".", &token[..dot]].concat();
            }
        }
    }
}

/// Verifies `text` under `context`; panics if it verifies without being a token one of the
/// keys signs for that id and context.
fn check(context: &str, text: &[u8]) -> Option<SessionId> {
    let text = String::from_utf8_lossy(text);
    let id = KEYS.verify(context, &text)?;
    assert!(
        tokens(context, &id).iter().any(|t| *t == text),
        "{text:?} verified for {context:?} though no key signs it"
    );
    Some(id)
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Raw(bytes) => {
        check(NAME, bytes);
        check("other", bytes);
    }
    Input::Edited { id, edits } => {
        let id = SessionId::from_bytes(id);
        let token = KEYS.sign(NAME, &id).expect("the layer signs");
        let mut edited = token.clone().into_bytes();
        for edit in &edits {
            apply(&mut edited, edit);
        }
        let verified = check(NAME, &edited);
        if edited == token.as_bytes() {
            assert_eq!(verified, Some(id), "the token as issued verifies");
        }
        check("other", &edited);
    }
    Input::Foreign { id, key, context } => {
        let id = SessionId::from_bytes(id);
        // A key of one repeated byte is refused, as a layer would refuse it.
        let Ok(key) = Key::from_bytes(&key) else {
            return;
        };
        let token = Keys::new(key, &[])
            .sign(context, &id)
            .expect("a signing key");
        check(NAME, token.as_bytes());
        check(context, token.as_bytes());
    }
});
