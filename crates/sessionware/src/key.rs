use std::fmt;

use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::Error;

/// A secret key that signs and verifies session tokens (HMAC-SHA256).
///
/// At least [`Key::MIN_LEN`] bytes, from a secret store or `openssl rand -hex 32`. `Debug`
/// never shows the key.
///
/// ```
/// use sessionware::Key;
///
/// let key = Key::from_hex("2f4c9a1be0d37786e5b1c0a95d6f3e28a4c7b9d0e1f2a3b4c5d6e7f809a1b2c3")?;
/// assert!(Key::from_hex("too short").is_err());
/// # Ok::<(), sessionware::Error>(())
/// ```
#[derive(Clone)]
pub struct Key(hmac::Key);

impl Key {
    /// The shortest key accepted: 32 bytes, the size of the HMAC-SHA256 output.
    pub const MIN_LEN: usize = 32;

    /// A key from raw bytes; fails with [`Error::InvalidKey`] below [`Key::MIN_LEN`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < Self::MIN_LEN {
            return Err(Error::InvalidKey("a signing key needs at least 32 bytes"));
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }

    /// A key from hexadecimal text (64 hex digits or more).
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        if text.len() % 2 != 0 || !text.is_ascii() {
            return Err(Error::InvalidKey(
                "a hex key needs an even number of hex digits",
            ));
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| Error::InvalidKey("a hex key may hold only the digits 0-9 and a-f"))?;
        Self::from_bytes(&bytes)
    }

    /// A random key from the system CSPRNG. Tokens it signs stop verifying when the process
    /// ends, so use it only where sessions need not outlive the process.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; Self::MIN_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| Error::Store(sessionware_core::Error::Random))?;
        Self::from_bytes(&bytes)
    }

    pub(crate) fn hmac(&self) -> &hmac::Key {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys() {
        let hex = "00".repeat(32);
        assert!(Key::from_hex(&hex).is_ok());
        assert!(Key::from_hex(&"00".repeat(31)).is_err());
        assert!(Key::from_hex(&format!("{hex}0")).is_err());
        assert!(Key::from_hex(&"zz".repeat(32)).is_err());
        assert!(Key::from_hex(&"é".repeat(64)).is_err());
        assert_eq!(format!("{:?}", Key::generate().unwrap()), "Key(<secret>)");
    }
}
