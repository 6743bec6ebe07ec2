use std::fmt;

use ring::rand::{SecureRandom as _, SystemRandom};
use ring::{hkdf, hmac};

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
/// # Ok::<(), sessionware::KeyError>(())
/// ```
#[derive(Clone)]
pub struct Key {
    mac: hmac::Key,
    /// The HKDF pseudo-random key every secret of another purpose is expanded from
    /// ([`Key::derive`]), so no two purposes ever share a secret.
    prk: hkdf::Prk,
}

/// The HKDF salt: fixed, as the input is already a uniformly random secret (RFC 5869, 3.1);
/// it only sets this library's derivations apart from any other use of the same key.
const HKDF_SALT: &[u8] = b"sessionware key derivation v1";

/// Asks HKDF for exactly 32 bytes.
struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// Why a [`Key`] could not be made: a configuration error, reported at start-up, never by a
/// request. Its text says what is wrong and never holds the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(&'static str);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid signing key: {}", self.0)
    }
}

impl std::error::Error for KeyError {}

impl Key {
    /// The shortest key accepted: 32 bytes, the size of the HMAC-SHA256 output.
    pub const MIN_LEN: usize = 32;

    /// A key from raw bytes; fails with [`KeyError`] below [`Key::MIN_LEN`], and for
    /// a key that is one byte repeated (all zeros, say): the mark of a placeholder or of a
    /// buffer that was never filled, not of a secret.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < Self::MIN_LEN {
            return Err(KeyError("a signing key needs at least 32 bytes"));
        }
        if bytes.iter().all(|b| *b == bytes[0]) {
            return Err(KeyError("a signing key may not be one byte repeated"));
        }
        Ok(Self {
            mac: hmac::Key::new(hmac::HMAC_SHA256, bytes),
            prk: hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(bytes),
        })
    }

    /// A key from hexadecimal text (64 hex digits or more, upper or lower case; surrounding
    /// white space is ignored).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim().as_bytes();
        if text.len() % 2 != 0 {
            return Err(KeyError("a hex key needs an even number of hex digits"));
        }
        // Digit by digit: `from_str_radix` would also take a sign (`+f`).
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        let bytes = text
            .chunks_exact(2)
            .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
            .collect::<Option<Vec<u8>>>()
            .ok_or(KeyError("a hex key may hold only the digits 0-9 and a-f"))?;
        Self::from_bytes(&bytes)
    }

    /// A random key from the system CSPRNG. Tokens it signs stop verifying when the process
    /// ends, so use it only where sessions need not outlive the process.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; Self::MIN_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| KeyError("the system random number generator failed"))?;
        Self::from_bytes(&bytes)
    }

    pub(crate) fn hmac(&self) -> &hmac::Key {
        &self.mac
    }

    /// The 32-byte secret of one purpose (`label`: cookie-store encryption, encryption at
    /// rest), by HKDF-SHA256. `None` only if ring refused a 32-byte expansion, which it does
    /// for lengths above 8160 bytes.
    pub(crate) fn derive(&self, label: &'static [u8]) -> Option<[u8; 32]> {
        let info = [label];
        let okm = self.prk.expand(&info, Len32).ok()?;
        let mut secret = [0u8; 32];
        okm.fill(&mut secret).ok()?;
        Some(secret)
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
    fn weak_keys_are_refused() {
        for byte in [0x00, 0xab, 0xff] {
            assert!(Key::from_bytes(&[byte; 32]).is_err(), "{byte:#x} repeated");
            assert!(Key::from_hex(&format!("{byte:02x}").repeat(32)).is_err());
        }
        let signed = format!("+f{}", "0123456789abcdef".repeat(4).split_at(2).1);
        assert_eq!(signed.len(), 64);
        assert!(Key::from_hex(&signed).is_err(), "a sign is not a hex digit");
        assert!(Key::from_hex(&format!("-1{}", &signed[2..])).is_err());
        assert!(
            Key::from_hex(&format!(" {}1 ", &signed[1..])).is_ok(),
            "spaces trimmed"
        );
    }

    #[test]
    fn hex_keys() {
        let hex = "0123456789abcdef".repeat(4);
        assert!(Key::from_hex(&hex).is_ok());
        assert!(Key::from_hex(&hex.to_uppercase()).is_ok());
        assert!(Key::from_hex(&hex[..62]).is_err());
        assert!(Key::from_hex(&format!("{hex}0")).is_err());
        assert!(Key::from_hex(&"zz".repeat(32)).is_err());
        assert!(Key::from_hex(&"é".repeat(64)).is_err());
        assert_eq!(format!("{:?}", Key::generate().unwrap()), "Key(<secret>)");
    }

    #[test]
    fn derived_secrets_are_per_purpose_and_per_key() {
        let a = Key::from_hex(&"0123456789abcdef".repeat(4)).unwrap();
        let b = Key::from_hex(&"fedcba9876543210".repeat(4)).unwrap();
        let one = a.derive(b"one").unwrap();
        assert_eq!(one, a.clone().derive(b"one").unwrap(), "stable");
        assert_ne!(one, a.derive(b"two").unwrap());
        assert_ne!(one, b.derive(b"one").unwrap());
    }
}
