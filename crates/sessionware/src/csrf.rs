//! CSRF tokens kept in the session (the synchronizer-token pattern): put
//! [`Session::csrf_token`] in every form, check it with [`Session::verify_csrf`] on every post.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::{Error, Session};

pub(crate) const CSRF_KEY: &str = "sessionware.csrf";

impl Session {
    /// The session's CSRF token, made (256 random bits) on first use. A new one is made at
    /// every [`login`](Self::login), so a token seen before sign-in is worthless after it.
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
        if let Some(token) = self.get::<String>(CSRF_KEY).ok().flatten() {
            return Ok(token);
        }
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| Error::Store(sessionware_core::Error::Random))?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        self.insert(CSRF_KEY, &token)?;
        Ok(token)
    }

    /// `Ok` when `presented` is this session's CSRF token; [`Error::CsrfMismatch`] (`403`)
    /// otherwise, also when the session has none.
    pub fn verify_csrf(&self, presented: &str) -> Result<(), Error> {
        let Some(expected) = self.get::<String>(CSRF_KEY).ok().flatten() else {
            return Err(Error::CsrfMismatch);
        };
        // Comparing digests keeps the comparison's timing independent of where the two
        // tokens first differ.
        let a = digest::digest(&digest::SHA256, expected.as_bytes());
        let b = digest::digest(&digest::SHA256, presented.as_bytes());
        if a.as_ref() == b.as_ref() {
            Ok(())
        } else {
            Err(Error::CsrfMismatch)
        }
    }
}
