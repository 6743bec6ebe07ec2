//! CSRF tokens that need nothing stored: put [`Session::csrf_token`] in every form, check it
//! with [`Session::verify_csrf`] on every post.
//!
//! A token is an HMAC, under a key derived from the signing key, of what the request's
//! session is: its id once it is stored, and otherwise a random nonce kept in a cookie of its
//! own (a signed double-submit cookie). So a visitor who only looks at a sign-in form costs no
//! store write, and a token cannot be made without the key. Every call hands out the tag
//! masked with fresh random bytes, so no two responses carry the same token text (which would
//! let compression side channels such as BREACH recover it byte by byte).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::cookie::NONCE_BYTES;
use crate::{Error, Session};

/// Bytes of the HMAC tag a token carries (masked).
const TAG_BYTES: usize = 32;

/// What a token is bound to, as the message the HMAC covers: a kind byte, then 16 bytes.
pub(crate) fn message(kind: Binding, bytes: &[u8; 16]) -> [u8; 17] {
    let mut message = [0u8; 17];
    message[0] = match kind {
        Binding::Session => b's',
        Binding::Nonce => b'n',
    };
    message[1..].copy_from_slice(bytes);
    message
}

#[derive(Clone, Copy)]
pub(crate) enum Binding {
    /// The stored session's id.
    Session,
    /// The nonce cookie of a visitor without a stored session.
    Nonce,
}

fn random<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Store(sessionware_core::Error::Random))?;
    Ok(bytes)
}

impl Session {
    /// A CSRF token for a form of this session, different text at every call (all of them
    /// valid). A visitor without a stored session gets one bound to a nonce cookie that this
    /// response sets (`<cookie name>-csrf`), so showing a form stores nothing. Once a user signs
    /// in, tokens handed out before stop working.
    ///
    /// ```
    /// # fn f(session: sessionware::Session) -> Result<(), sessionware::Error> {
    /// let form = format!(
    ///     r#"<form method="post"><input type="hidden" name="csrf" value="{}"></form>"#,
    ///     session.csrf_token()?
    /// );
    /// # Ok(()) }
    /// ```
    pub fn csrf_token(&self) -> Result<String, Error> {
        let message = {
            let mut state = self.state();
            // Bound to the id the session has when the response is written: after `login` or
            // `cycle_id` (on a stored session or a new one) that is a new id, drawn now, since
            // a signed-in session accepts no nonce-bound token.
            if state.cycle && state.next_id.is_none() {
                state.next_id = Some(sessionware_core::SessionId::generate()?);
            }
            match state.next_id.or(if state.cycle { None } else { state.id }) {
                Some(id) => message(Binding::Session, id.as_bytes()),
                None => {
                    let nonce = match state.csrf_nonce {
                        Some(nonce) => nonce,
                        None => {
                            let nonce = random::<NONCE_BYTES>()?;
                            state.csrf_nonce = Some(nonce);
                            state.new_csrf_nonce = true;
                            nonce
                        }
                    };
                    message(Binding::Nonce, &nonce)
                }
            }
        };
        let shared = self.shared();
        // No signing key only when the OS random source failed as the layer was built.
        let tag = shared
            .keys
            .csrf_tag(&message)
            .ok_or(Error::Store(sessionware_core::Error::Random))?;
        let pad = random::<TAG_BYTES>()?;
        let mut token = [0u8; 2 * TAG_BYTES];
        token[..TAG_BYTES].copy_from_slice(&pad);
        for (i, byte) in tag.as_ref().iter().enumerate() {
            token[TAG_BYTES + i] = byte ^ pad[i];
        }
        Ok(URL_SAFE_NO_PAD.encode(token))
    }

    /// `Ok` when `presented` is a CSRF token of this session; [`Error::CsrfMismatch`] (`403`)
    /// otherwise. A token bound to the nonce cookie counts only while no user is signed in.
    pub fn verify_csrf(&self, presented: &str) -> Result<(), Error> {
        let mut token = [0u8; 2 * TAG_BYTES];
        let decoded = URL_SAFE_NO_PAD.decode_slice(presented.as_bytes(), &mut token);
        if presented.len() != 86 || decoded.ok() != Some(token.len()) {
            return Err(Error::CsrfMismatch);
        }
        let (pad, masked) = token.split_at(TAG_BYTES);
        let mut tag = [0u8; TAG_BYTES];
        for i in 0..TAG_BYTES {
            tag[i] = masked[i] ^ pad[i];
        }
        let (id, nonce) = {
            let state = self.state();
            let nonce = state.csrf_nonce.filter(|_| state.user.is_none());
            (state.id, nonce)
        };
        let keys = &self.shared().keys;
        let bound_to_session =
            id.is_some_and(|id| keys.csrf_verify(&message(Binding::Session, id.as_bytes()), &tag));
        let bound_to_nonce =
            nonce.is_some_and(|n| keys.csrf_verify(&message(Binding::Nonce, &n), &tag));
        if bound_to_session || bound_to_nonce {
            Ok(())
        } else {
            Err(Error::CsrfMismatch)
        }
    }
}
