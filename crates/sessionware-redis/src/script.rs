//! The store's server-side scripts: each store call is one of them, so each is one round trip
//! and runs atomically on the node that holds the session's key (`rekey.lua`, which touches
//! two sessions and the users' sets, runs only where they all live on one node; see
//! `RedisStore::rekey`).

use fred::clients::{Client, WithOptions};
use fred::error::Error;
use fred::interfaces::LuaInterface as _;
use fred::types::scripts::Script;
use fred::types::{MultipleKeys, Value};

pub(crate) const CREATE: &str = include_str!("scripts/create.lua");
pub(crate) const APPLY: &str = concat!(
    include_str!("scripts/live.lua"),
    include_str!("scripts/apply.lua")
);
pub(crate) const TOUCH: &str = concat!(
    include_str!("scripts/live.lua"),
    include_str!("scripts/touch.lua")
);
pub(crate) const INDEX: &str = include_str!("scripts/index.lua");
pub(crate) const DELETE_BOUND: &str = include_str!("scripts/delete_bound.lua");
pub(crate) const REKEY: &str = include_str!("scripts/rekey.lua");
pub(crate) const RETIRE: &str = include_str!("scripts/retire.lua");

/// The scripts with their SHA-1 digests, computed once.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) create: Script,
    pub(crate) apply: Script,
    pub(crate) touch: Script,
    pub(crate) index: Script,
    pub(crate) delete_bound: Script,
    pub(crate) rekey: Script,
    pub(crate) retire: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            create: Script::from_lua(CREATE),
            apply: Script::from_lua(APPLY),
            touch: Script::from_lua(TOUCH),
            index: Script::from_lua(INDEX),
            delete_bound: Script::from_lua(DELETE_BOUND),
            rekey: Script::from_lua(REKEY),
            retire: Script::from_lua(RETIRE),
        }
    }

    pub(crate) fn all(&self) -> [&Script; 7] {
        [
            &self.create,
            &self.apply,
            &self.touch,
            &self.index,
            &self.delete_bound,
            &self.rekey,
            &self.retire,
        ]
    }
}

/// `EVALSHA`, and on `NOSCRIPT` (a restarted or failed-over server has an empty script cache)
/// one `EVAL` with the body, which also caches it: one round trip in the steady state, two
/// right after a server lost its cache. fred's own `evalsha_with_reload` would take three.
///
/// The keys and arguments are cheap to clone (reference-counted bytes), which the retry needs;
/// a single key is passed as a [`Key`](fred::types::Key), whose clone allocates nothing.
pub(crate) async fn call(
    client: &WithOptions<Client>,
    script: &Script,
    keys: impl Into<MultipleKeys> + Clone + Send,
    args: Vec<Value>,
) -> Result<Value, Error> {
    // Boxed: fred's future is large, and moving it up through every caller's state cost
    // more than one allocation.
    let first = Box::pin(client.evalsha::<Value, _, _, _>(
        script.sha1().clone(),
        keys.clone(),
        args.clone(),
    ));
    match first.await {
        Err(error) if error.details().starts_with("NOSCRIPT") => {
            let body = script.lua().cloned().unwrap_or_default();
            Box::pin(client.eval(body, keys, args)).await
        }
        result => result,
    }
}
