use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::Error;

/// A session id: [`SessionId::BYTES`] bytes from the operating system's CSPRNG, written as
/// base64url without padding.
///
/// Ids are only ever generated here; one presented by a client is parsed (and its signature
/// checked by the layer) but a store never adopts an id it does not already hold.
///
/// `Debug` shows only a short prefix, so an id that reaches a log cannot be replayed.
///
/// ```
/// use sessionware_core::SessionId;
///
/// let id = SessionId::generate()?;
/// let text = id.to_string();
/// assert_eq!(text.len(), SessionId::ENCODED_LEN);
/// assert_eq!(text.parse::<SessionId>()?, id);
/// assert!("not an id".parse::<SessionId>().is_err());
/// # Ok::<(), sessionware_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; SessionId::BYTES]);

impl SessionId {
    /// Random bytes in an id: 128 bits.
    pub const BYTES: usize = 16;
    /// Length of the base64url form.
    pub const ENCODED_LEN: usize = 22;

    /// A new random id from the system CSPRNG.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; Self::BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| Error::Random)?;
        Ok(Self(bytes))
    }

    /// The id's raw bytes.
    pub fn as_bytes(&self) -> &[u8; Self::BYTES] {
        &self.0
    }

    /// An id from raw bytes, as a store that keeps ids in binary reads them back.
    pub fn from_bytes(bytes: [u8; Self::BYTES]) -> Self {
        Self(bytes)
    }
}

impl FromStr for SessionId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        // Length first: it bounds the work done on hostile input, and with it the decoder's
        // canonical-trailing-bits check makes the text form unique for each id.
        if s.len() != Self::ENCODED_LEN {
            return Err(Error::InvalidId);
        }
        let mut bytes = [0u8; Self::BYTES];
        match URL_SAFE_NO_PAD.decode_slice(s, &mut bytes) {
            Ok(Self::BYTES) => Ok(Self(bytes)),
            _ => Err(Error::InvalidId),
        }
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; Self::ENCODED_LEN];
        let n = URL_SAFE_NO_PAD
            .encode_slice(self.0, &mut buf)
            .map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_string();
        write!(f, "SessionId({}…)", &text[..4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_round_trip() {
        let a = SessionId::generate().unwrap();
        let b = SessionId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.to_string().parse::<SessionId>().unwrap(), a);
        assert_eq!(SessionId::from_bytes(*a.as_bytes()), a);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        let good = SessionId::generate().unwrap().to_string();
        for bad in [
            String::new(),
            good[..21].to_string(),
            format!("{good}A"),
            format!("{}+", &good[..21]),
            format!("{}=", &good[..21]),
            "ÿÿÿÿÿÿÿÿÿÿÿ".to_string(),
        ] {
            assert!(
                matches!(bad.parse::<SessionId>(), Err(Error::InvalidId)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn non_canonical_last_character_is_rejected() {
        // 22 characters carry 132 bits; the 4 spare bits must be zero, so each id has one text.
        let id = SessionId::from_bytes([0; 16]).to_string();
        assert_eq!(id, "AAAAAAAAAAAAAAAAAAAAAA");
        assert!("AAAAAAAAAAAAAAAAAAAAAB".parse::<SessionId>().is_err());
    }

    #[test]
    fn debug_does_not_reveal_the_id() {
        let id = SessionId::generate().unwrap();
        let debug = format!("{id:?}");
        assert!(!debug.contains(&id.to_string()));
    }
}
