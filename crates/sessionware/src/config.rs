//! The bottom of the request path: what every request of one layer shares (the settings the
//! builder made, the store behind its object-safe face) and the data keys the library keeps
//! for itself. It imports nothing of the modules above it, so each of them (the session, its
//! write-back, the service, the layer) can be read from the top down.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::response::Response;
use serde_json::{Value, json};
use sessionware_core::time::OffsetDateTime;
use sessionware_core::{Clock, ExpiryPolicy, SessionId};

use crate::Error;
use crate::cookie::CookieConfig;
use crate::dyn_store::DynSessionStore;
use crate::error::ErrorHandler;
use crate::header::HeaderConfig;
use crate::observe::{Metrics, Op};
use crate::token::Keys;

/// Keys under this prefix hold what the library itself keeps in a session (device facts,
/// flash messages). The data accessors neither list nor clear them.
pub(crate) const RESERVED_PREFIX: &str = "sessionware.";

pub(crate) fn is_reserved(key: &str) -> bool {
    key.starts_with(RESERVED_PREFIX)
}

/// The data key under which `login` records the device facts.
pub(crate) const DEVICE_KEY: &str = "sessionware.device";

/// The data key of the queued flash messages.
pub(crate) const FLASH_KEY: &str = "sessionware.flash";

/// The facts `login` stores in the session.
pub(crate) fn device_facts(
    user_agent: Option<&str>,
    address: Option<String>,
    now: OffsetDateTime,
) -> Value {
    // A header is attacker-controlled text; keep what is worth showing.
    let user_agent = user_agent.map(|ua| ua.chars().take(256).collect::<String>());
    json!({
        "user_agent": user_agent,
        "address": address,
        "signed_in_at": now.unix_timestamp(),
    })
}

/// What every request of one layer shares.
#[derive(Clone)]
pub(crate) struct Shared {
    /// The store every call goes to: `raw_store`, or it wrapped in encryption at rest.
    pub(crate) store: Arc<dyn DynSessionStore>,
    /// The store the application configured.
    pub(crate) raw_store: Arc<dyn DynSessionStore>,
    /// Data values are encrypted before they reach the store.
    pub(crate) at_rest: bool,
    /// The layer keeps sessions in the client's cookie: `store` is never called.
    pub(crate) cookie_store: Option<crate::CookieStore>,
    pub(crate) keys: Keys,
    pub(crate) cookie: CookieConfig,
    /// The cookie's name on the wire, computed once.
    pub(crate) cookie_name: String,
    /// The name of the CSRF nonce cookie: the session cookie's, then `-csrf`.
    pub(crate) csrf_cookie_name: String,
    pub(crate) policy: ExpiryPolicy,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timeout: Duration,
    pub(crate) on_error: Option<ErrorHandler>,
    /// The metric handles, registered when the layer was built.
    pub(crate) metrics: Metrics,
    /// The application's audit event handler.
    pub(crate) on_event: Option<crate::events::EventHandler>,
    /// The header transport, when API clients may send the token in a header.
    pub(crate) header: Option<HeaderConfig>,
    pub(crate) record_address: bool,
    pub(crate) max_per_user: Option<usize>,
    pub(crate) clear_site_data: bool,
    pub(crate) max_size: Option<usize>,
    /// How often write-back re-runs `update` closures after a conflict before answering `409`.
    pub(crate) update_retries: u32,
    /// No signing key was configured: a random one is in use.
    pub(crate) generated_key: bool,
    /// Warns of the generated key once per layer, however many routes axum applies it to.
    pub(crate) key_warning: Arc<std::sync::Once>,
}

impl Shared {
    /// Sets `store` after the keys or the encryption setting changed.
    pub(crate) fn rebuild_store(&mut self) {
        self.store = if self.at_rest && self.cookie_store.is_none() {
            Arc::new(crate::at_rest::AtRest::new(
                self.raw_store.clone(),
                self.keys.at_rest.clone(),
            ))
        } else {
            self.raw_store.clone()
        };
    }

    /// [`Error::NeedsServerStore`] when sessions live in the client's cookie.
    pub(crate) fn server_store(&self, operation: &'static str) -> Result<(), Error> {
        match self.cookie_store {
            Some(_) => Err(Error::NeedsServerStore { operation }),
            None => Ok(()),
        }
    }

    /// Runs the store call `call`, operation `op` on the session `id` (if it names one),
    /// under the layer's timeout; in a `session_store` span and timed for the metrics when
    /// anyone listens.
    pub(crate) async fn call<T>(
        &self,
        op: Op,
        id: Option<&SessionId>,
        call: impl Future<Output = Result<T, sessionware_core::Error>>,
    ) -> Result<T, Error> {
        // Nothing listens (no recorder, and no subscriber at debug level, or the usual info
        // one): the call as it would be without observation, at the price of one atomic load
        // and a branch. The observed path is boxed so its larger future (span, clock reading)
        // is not carried by every request's.
        let observed = self.metrics.recording()
            || tracing::level_filters::LevelFilter::current() >= tracing::Level::DEBUG;
        let result = if observed {
            Box::pin(self.observed(op, id, call)).await
        } else {
            self.timed(call).await
        };
        result.map_err(Error::from)
    }

    /// `call` under the layer's timeout.
    async fn timed<T>(
        &self,
        call: impl Future<Output = Result<T, sessionware_core::Error>>,
    ) -> Result<T, sessionware_core::Error> {
        // A call that is done at its first poll (the memory store's always are) needs no
        // timer: setting one up and tearing it down would cost more than the call.
        let mut call = std::pin::pin!(call);
        let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
        match first {
            Poll::Ready(result) => result,
            Poll::Pending => match tokio::time::timeout(self.timeout, call).await {
                Ok(result) => result,
                Err(_) => Err(sessionware_core::Error::Timeout),
            },
        }
    }

    /// `call` under the layer's timeout, in its span, timed.
    async fn observed<T>(
        &self,
        op: Op,
        id: Option<&SessionId>,
        call: impl Future<Output = Result<T, sessionware_core::Error>>,
    ) -> Result<T, sessionware_core::Error> {
        // Not `debug_span!` alone when only a recorder listens: with `tracing`'s `log`
        // feature (which other crates of an application turn on) and no subscriber, a
        // disabled span still evaluates its fields and reports entering and leaving to `log`.
        let span = if tracing::level_filters::LevelFilter::current() >= tracing::Level::DEBUG {
            tracing::debug_span!(
                "session_store",
                store = self.metrics.store(),
                operation = op.as_str(),
                session = tracing::field::Empty,
                outcome = tracing::field::Empty,
                duration_us = tracing::field::Empty,
            )
        } else {
            tracing::Span::none()
        };
        // The log id (an HMAC) is worked out only for a span someone listens to; the id
        // itself is never a field.
        if let Some(id) = id.filter(|_| !span.is_disabled()) {
            span.record("session", tracing::field::display(self.keys.log_id(id)));
        }
        let started = self.metrics.start(&span);
        let mut timed = std::pin::pin!(self.timed(call));
        let result = std::future::poll_fn(|cx| {
            let _entered = span.enter();
            timed.as_mut().poll(cx)
        })
        .await;
        self.metrics
            .finish(op, started, &span, crate::observe::outcome(&result));
        result
    }

    /// The response sent instead of the handler's when the session fails.
    pub(crate) fn error_response(&self, error: Error) -> Response {
        match &self.on_error {
            Some(handler) => handler(&error),
            None => axum::response::IntoResponse::into_response(error),
        }
    }
}
