//! Flash messages: set by one request, shown once by the next.

use serde_json::Value;

use crate::Session;
use crate::config::FLASH_KEY;

impl Session {
    /// Queues `message` for the next page that calls [`take_flashes`](Self::take_flashes)
    /// ("Saved", "Signed out"). Survives `destroy` and `logout` when called after them: the
    /// message then lives in the new, anonymous session.
    ///
    /// ```
    /// # fn f(session: sessionware::Session) {
    /// session.flash("Password changed");
    /// # }
    /// ```
    pub fn flash(&self, message: impl Into<String>) {
        let mut messages: Vec<Value> = self
            .get_value(FLASH_KEY)
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        messages.push(Value::String(message.into()));
        // A Vec<Value> always serializes.
        let _ = self.insert(FLASH_KEY, messages);
    }

    /// The queued messages, oldest first, removing them: each is shown once.
    pub fn take_flashes(&self) -> Vec<String> {
        match self.remove_value(FLASH_KEY) {
            Some(Value::Array(messages)) => messages
                .into_iter()
                .filter_map(|m| m.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    }
}
