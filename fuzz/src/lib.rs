//! What the fuzz targets share: a layer's keys and the only tokens they accept.

use std::sync::LazyLock;

use sessionware::__fuzz::Keys;
use sessionware::{Key, SessionId};

/// The cookie name, which tokens are bound to.
pub const NAME: &str = "session";

fn key(byte: u8) -> Key {
    Key::from_bytes(&std::array::from_fn::<u8, { Key::MIN_LEN }, _>(|i| {
        byte ^ i as u8
    }))
    .expect("a long enough key")
}

/// A layer mid-rotation: one key signs, an older one still verifies.
pub static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys::new(key(1), &[key(2)]));

static EACH: LazyLock<[Keys; 2]> = LazyLock::new(|| [key(1), key(2)].map(|k| Keys::new(k, &[])));

/// The cookie tokens [`KEYS`] may accept for `id` under `context`: what each key itself signs.
/// Anything else that verifies is a forgery.
pub fn tokens(context: &str, id: &SessionId) -> Vec<String> {
    EACH.iter()
        .filter_map(|keys| keys.sign(context, id))
        .collect()
}

/// The header tokens [`KEYS`] may accept for `id` under `context`, as [`tokens`] for cookies.
pub fn header_tokens(context: &str, id: &SessionId) -> Vec<String> {
    EACH.iter()
        .filter_map(|keys| keys.sign_header(context, id))
        .collect()
}
