//! The store's server-side scripts: each store call is one of them, so each is one round trip
//! and runs atomically on the node that holds the session's key.

use fred::clients::Client;
use fred::error::Error;
use fred::interfaces::{ClientLike as _, LuaInterface as _};
use fred::types::Value;
use fred::types::config::Options;
use fred::types::scripts::Script;

pub(crate) const LOAD: &str = include_str!("scripts/load.lua");
pub(crate) const CREATE: &str = include_str!("scripts/create.lua");
pub(crate) const APPLY: &str = include_str!("scripts/apply.lua");
pub(crate) const TOUCH: &str = include_str!("scripts/touch.lua");
pub(crate) const INDEX: &str = include_str!("scripts/index.lua");
pub(crate) const DELETE_BOUND: &str = include_str!("scripts/delete_bound.lua");

/// The scripts with their SHA-1 digests, computed once.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) load: Script,
    pub(crate) create: Script,
    pub(crate) apply: Script,
    pub(crate) touch: Script,
    pub(crate) index: Script,
    pub(crate) delete_bound: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            load: Script::from_lua(LOAD),
            create: Script::from_lua(CREATE),
            apply: Script::from_lua(APPLY),
            touch: Script::from_lua(TOUCH),
            index: Script::from_lua(INDEX),
            delete_bound: Script::from_lua(DELETE_BOUND),
        }
    }

    pub(crate) fn all(&self) -> [&Script; 6] {
        [
            &self.load,
            &self.create,
            &self.apply,
            &self.touch,
            &self.index,
            &self.delete_bound,
        ]
    }
}

/// `EVALSHA`, and on `NOSCRIPT` (a restarted or failed-over server has an empty script cache)
/// one `EVAL` with the body, which also caches it: one round trip in the steady state, two
/// right after a server lost its cache. fred's own `evalsha_with_reload` would take three.
pub(crate) async fn call(
    client: &Client,
    options: &Options,
    script: &Script,
    key: String,
    args: Vec<Value>,
) -> Result<Value, Error> {
    let client = client.with_options(options);
    match client
        .evalsha::<Value, _, _, _>(script.sha1().clone(), key.clone(), args.clone())
        .await
    {
        Err(error) if error.details().starts_with("NOSCRIPT") => {
            let body = script.lua().cloned().unwrap_or_default();
            client.eval(body, key, args).await
        }
        result => result,
    }
}
