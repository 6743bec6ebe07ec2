//! Encryption at rest: every data value is sealed before it reaches the store, and opened
//! after it comes back, by a store of its own wrapped around the layer's
//! ([`SessionLayer::with_encryption_at_rest`](crate::SessionLayer::with_encryption_at_rest)).
//!
//! A value is stored as the JSON string `swe1.` + base64url(nonce | AES-256-GCM ciphertext |
//! tag), the plaintext being the value's JSON. The associated data is the session id and the
//! key name, so a value copied to another session or key does not open. What the store keeps
//! in clear: session ids, key names, creation times, deadlines and the user binding (its index
//! needs it).
//!
//! The nonce is synthetic: HMAC-SHA256 of the associated data and the plaintext under a second
//! derived key, cut to 96 bits (the SIV construction). The same value of the same key of the
//! same session always seals to the same text under one key, which is what lets a
//! compare-and-set ([`Session::update`](crate::Session::update)) compare ciphertexts in the
//! store; the price is that the store can tell when a key takes back a value it held before.
//! A nonce repeats only with its plaintext and associated data, so the AES-GCM nonce rule is
//! kept without a counter.
//!
//! Increments cannot run on ciphertext. The wrapper turns each into a read of the current value
//! and a compare-and-set of the sum, retried on contention: no count is lost, at the cost of one
//! more round trip per write that increments. After [`INCREMENT_ROUNDS`] it reports the
//! conflict, which the layer answers `409`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use serde_json::Value;
use sessionware_core::time::OffsetDateTime;
use sessionware_core::{
    Change, ChangeSet, Data, Error, ExpiryPolicy, Loaded, Record, SessionId, increment,
};

use crate::Key;
use crate::dyn_store::DynSessionStore;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

const ENC_LABEL: &[u8] = b"sessionware at rest";
const IV_LABEL: &[u8] = b"sessionware at rest nonce";
/// Marks a sealed value; the version lets a later format live beside this one.
pub(crate) const PREFIX: &str = "swe1.";
const TAG_LEN: usize = 16;
/// Rounds of read-then-compare-and-set an increment gets before the write gives up.
const INCREMENT_ROUNDS: u32 = 64;

/// One derived key pair per layer key, in the layer's order: the first seals, all open.
#[derive(Clone)]
pub(crate) struct AtRestKeys {
    keys: Vec<(LessSafeKey, hmac::Key)>,
    sealing: bool,
}

impl std::fmt::Debug for AtRestKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtRestKeys")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl AtRestKeys {
    pub(crate) fn new(keys: &[Key], sealing: bool) -> Self {
        let keys: Vec<_> = keys
            .iter()
            .filter_map(|key| {
                let enc = key.derive(ENC_LABEL)?;
                let iv = key.derive(IV_LABEL)?;
                Some((
                    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &enc).ok()?),
                    hmac::Key::new(hmac::HMAC_SHA256, &iv),
                ))
            })
            .collect();
        Self {
            sealing: sealing && !keys.is_empty(),
            keys,
        }
    }

    /// `value` sealed for `key` of session `id`.
    pub(crate) fn seal(&self, id: &SessionId, key: &str, value: &Value) -> Result<Value, Error> {
        let (aead, mac) = self
            .keys
            .first()
            .filter(|_| self.sealing)
            .ok_or_else(|| Error::backend("encryption at rest has no key to seal with"))?;
        let plain = serde_json::to_vec(value).map_err(Error::Encode)?;
        let aad = aad(id, key);
        let mut ctx = hmac::Context::with_key(mac);
        ctx.update(&(aad.len() as u64).to_be_bytes());
        ctx.update(&aad);
        ctx.update(&plain);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&ctx.sign().as_ref()[..NONCE_LEN]);
        let mut body = plain;
        aead.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut body,
        )
        .map_err(|_| Error::backend("AES-GCM refused to seal"))?;
        let mut raw = Vec::with_capacity(NONCE_LEN + body.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&body);
        let mut text = String::with_capacity(PREFIX.len() + (raw.len() * 4).div_ceil(3));
        text.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(&raw, &mut text);
        Ok(Value::String(text))
    }

    /// The value sealed in `stored` for `key` of session `id`; [`Error::Corrupt`] for anything
    /// none of the keys sealed for exactly that session and key (tampered, moved, written in
    /// clear before encryption was turned on).
    pub(crate) fn open(&self, id: &SessionId, key: &str, stored: &Value) -> Result<Value, Error> {
        let refused = || Error::corrupt(format!("value {key:?} does not decrypt"));
        let text = stored
            .as_str()
            .and_then(|t| t.strip_prefix(PREFIX))
            .ok_or_else(refused)?;
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| refused())?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(refused());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| refused())?;
        let aad = aad(id, key);
        for (aead, _) in &self.keys {
            let mut body = sealed.to_vec();
            if let Ok(plain) = aead.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut body,
            ) {
                return serde_json::from_slice(plain).map_err(|_| refused());
            }
        }
        Err(refused())
    }

    fn seal_data(&self, id: &SessionId, data: &Data) -> Result<Data, Error> {
        data.iter()
            .map(|(k, v)| Ok((k.clone(), self.seal(id, k, v)?)))
            .collect()
    }

    fn open_record(&self, mut record: Record) -> Result<Record, Error> {
        let id = record.id;
        record.data = std::mem::take(&mut record.data)
            .into_iter()
            .map(|(k, v)| {
                let v = self.open(&id, &k, &v)?;
                Ok((k, v))
            })
            .collect::<Result<Data, Error>>()?;
        Ok(record)
    }
}

fn aad(id: &SessionId, key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(ENC_LABEL.len() + 1 + SessionId::BYTES + key.len());
    aad.extend_from_slice(ENC_LABEL);
    aad.push(0);
    aad.extend_from_slice(id.as_bytes());
    aad.extend_from_slice(key.as_bytes());
    aad
}

/// Locks that queue one instance's increments of one session (by a byte of its id).
const STRIPES: usize = 256;

/// The layer's store with every value sealed on the way in and opened on the way out.
pub(crate) struct AtRest {
    inner: Arc<dyn DynSessionStore>,
    keys: AtRestKeys,
    /// Increments of one session from this instance wait their turn here instead of racing
    /// each other's compare-and-set in the store, where all but one would lose each round
    /// (64 connections on one session lost 4% of their increments to exhausted rounds).
    /// Only other instances' writes are left to conflict.
    stripes: Arc<[tokio::sync::Mutex<()>]>,
}

impl AtRest {
    pub(crate) fn new(inner: Arc<dyn DynSessionStore>, keys: AtRestKeys) -> Self {
        Self {
            inner,
            keys,
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }
}

/// A guard the wrapper put on a key of the change set it sends.
enum Guard {
    /// The caller's compare-and-set: the key must hold this (plain) value.
    Caller(Option<Value>),
    /// An increment turned into a compare-and-set of the sum: `by` added to the current value.
    Increment(i64),
}

impl AtRest {
    /// Re-seals a record the inner store put under another id than the one it was sealed for
    /// (the id was taken: `create` and `rekey` then draw a fresh one).
    async fn reseal_under(
        &self,
        record: &Record,
        id: SessionId,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let mut changes = ChangeSet::new(record.expires_at);
        changes.loaded_by(record.user.clone());
        for (k, v) in &record.data {
            changes.set(k.clone(), self.keys.seal(&id, k, v)?);
        }
        if changes.is_empty() || self.inner.apply(&id, &changes, now).await? {
            Ok(())
        } else {
            Err(Error::backend(
                "the session ended while its values were re-sealed",
            ))
        }
    }

    async fn apply_sealed(
        &self,
        id: &SessionId,
        changes: &ChangeSet,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        let mut out = ChangeSet::new(changes.expires_at());
        out.loaded_by(changes.loaded_user().map(String::from));
        if changes.is_clear() {
            out.clear();
        }
        let mut guards: Vec<(String, Guard)> = Vec::new();
        for (key, change) in changes.keys() {
            match change {
                Change::Set(value) => {
                    out.set(key, self.keys.seal(id, key, value)?);
                }
                Change::Remove => {
                    out.remove(key);
                }
                Change::Increment(by) => guards.push((key.to_owned(), Guard::Increment(*by))),
            }
        }
        for (key, expected) in changes.guards() {
            let sealed = expected.map(|v| self.keys.seal(id, key, v)).transpose()?;
            out.expect(key, sealed);
            guards.push((key.to_owned(), Guard::Caller(expected.cloned())));
        }
        let increments = guards.iter().any(|(_, g)| matches!(g, Guard::Increment(_)));
        let stripe = &self.stripes[usize::from(id.as_bytes()[0]) % STRIPES];
        let _turn = if increments {
            Some(stripe.lock().await)
        } else {
            None
        };
        if increments {
            let Some(record) = self.inner.load(id, now).await? else {
                return Ok(false);
            };
            for (key, guard) in &guards {
                if let Guard::Increment(by) = guard {
                    let stored = record.data.get(key);
                    self.plan_increment(id, &mut out, key, *by, stored, changes.is_clear())?;
                }
            }
        }
        let mut contended = Vec::new();
        for round in 0..INCREMENT_ROUNDS {
            let current = match self.inner.apply(id, &out, now).await {
                Err(Error::Conflict { current }) => current,
                other => return other,
            };
            contended.clear();
            let mut refused = Vec::new();
            for (key, stored) in current {
                let plain = stored
                    .as_ref()
                    .map(|v| self.keys.open(id, &key, v))
                    .transpose()?;
                match guards.iter().find(|(k, _)| *k == key).map(|(_, g)| g) {
                    Some(Guard::Increment(by)) => {
                        self.plan_increment(id, &mut out, &key, *by, stored.as_ref(), false)?;
                        contended.push((key, plain));
                    }
                    // The same value sealed by a previous key: compare against what is there.
                    Some(Guard::Caller(expected)) if *expected == plain => {
                        out.expect(key, stored);
                    }
                    _ => refused.push((key, plain)),
                }
            }
            if !refused.is_empty() {
                return Err(Error::Conflict { current: refused });
            }
            if round > 0 {
                tokio::time::sleep(crate::atomic::backoff(round - 1)).await;
            }
        }
        // Contention, not an outage: the layer answers a conflict on a key it did not guard
        // with `409` (`UpdateConflict`), as for an `update` out of retries.
        Err(Error::Conflict { current: contended })
    }

    /// Sets `key` to its stored value (sealed, `stored`) plus `by`, guarded by that value.
    fn plan_increment(
        &self,
        id: &SessionId,
        out: &mut ChangeSet,
        key: &str,
        by: i64,
        stored: Option<&Value>,
        cleared: bool,
    ) -> Result<(), Error> {
        let base = match stored.filter(|_| !cleared) {
            Some(v) => Some(self.keys.open(id, key, v)?),
            None => None,
        };
        let sum = increment(key, base.as_ref(), by)?;
        out.set(key, self.keys.seal(id, key, &Value::from(sum))?);
        if !cleared {
            out.expect(key, stored.cloned());
        }
        Ok(())
    }
}

impl DynSessionStore for AtRest {
    fn create<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<SessionId, Error>> {
        Box::pin(async move {
            let mut sealed = record.clone();
            sealed.data = self.keys.seal_data(&record.id, &record.data)?;
            let id = self.inner.create(&sealed).await?;
            if id != record.id {
                self.reseal_under(record, id, record.created_at).await?;
            }
            Ok(id)
        })
    }

    fn load<'a>(
        &'a self,
        id: &'a SessionId,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        Box::pin(async move {
            match self.inner.load(id, now).await? {
                Some(record) => Ok(Some(self.keys.open_record(record)?)),
                None => Ok(None),
            }
        })
    }

    fn load_refreshed<'a>(
        &'a self,
        id: &'a SessionId,
        policy: &'a ExpiryPolicy,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<Loaded>, Error>> {
        Box::pin(async move {
            match self.inner.load_refreshed(id, policy, now).await? {
                Some(Loaded { record, refreshed }) => Ok(Some(Loaded {
                    record: self.keys.open_record(record)?,
                    refreshed,
                })),
                None => Ok(None),
            }
        })
    }

    fn apply<'a>(
        &'a self,
        id: &'a SessionId,
        changes: &'a ChangeSet,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(self.apply_sealed(id, changes, now))
    }

    fn touch<'a>(
        &'a self,
        id: &'a SessionId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.inner.touch(id, expires_at, now)
    }

    fn rekey<'a>(
        &'a self,
        old: &'a SessionId,
        expected_user: Option<&'a str>,
        record: &'a Record,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<SessionId>, Error>> {
        Box::pin(async move {
            let mut sealed = record.clone();
            sealed.data = self.keys.seal_data(&record.id, &record.data)?;
            let id = self.inner.rekey(old, expected_user, &sealed, now).await?;
            if let Some(id) = id.filter(|id| *id != record.id) {
                self.reseal_under(record, id, now).await?;
            }
            Ok(id)
        })
    }

    fn delete<'a>(&'a self, id: &'a SessionId) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.delete(id)
    }

    fn count(&self, now: OffsetDateTime) -> BoxFuture<'_, Result<Option<u64>, Error>> {
        self.inner.count(now)
    }

    fn list_user<'a>(
        &'a self,
        user: &'a str,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Vec<Record>, Error>> {
        Box::pin(async move {
            let records = self.inner.list_user(user, now).await?;
            // One unreadable session must not hide the user's others from a devices page:
            // it is listed without the values that do not open.
            Ok(records
                .into_iter()
                .map(|mut record| {
                    let id = record.id;
                    record.data = std::mem::take(&mut record.data)
                        .into_iter()
                        .filter_map(|(k, v)| Some((k.clone(), self.keys.open(&id, &k, &v).ok()?)))
                        .collect();
                    record
                })
                .collect())
        })
    }

    fn delete_user<'a>(
        &'a self,
        user: &'a str,
        keep: Option<&'a SessionId>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<usize, Error>> {
        self.inner.delete_user(user, keep, now)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(byte: u8) -> Key {
        Key::from_bytes(&std::array::from_fn::<u8, 32, _>(|i| byte ^ i as u8)).unwrap()
    }

    #[test]
    fn sealed_values_open_only_where_they_were_sealed() {
        let keys = AtRestKeys::new(&[key(1)], true);
        let a = SessionId::from_bytes([1; SessionId::BYTES]);
        let b = SessionId::from_bytes([2; SessionId::BYTES]);
        let secret = json!({"password": "hunter2"});
        let sealed = keys.seal(&a, "db", &secret).unwrap();
        assert!(!sealed.to_string().contains("hunter2"));
        assert_eq!(keys.open(&a, "db", &sealed).unwrap(), secret);
        assert!(
            matches!(keys.open(&b, "db", &sealed), Err(Error::Corrupt { .. })),
            "another session"
        );
        assert!(
            matches!(keys.open(&a, "other", &sealed), Err(Error::Corrupt { .. })),
            "another key"
        );
        assert!(
            keys.open(&a, "db", &secret).is_err(),
            "plain values are refused"
        );
        assert_eq!(
            sealed,
            keys.seal(&a, "db", &secret).unwrap(),
            "deterministic"
        );
        assert_ne!(sealed, keys.seal(&b, "db", &secret).unwrap());
    }

    /// The wrapper as a [`SessionStore`], for the conformance suite.
    struct Conformant(AtRest);

    impl sessionware_core::SessionStore for Conformant {
        async fn create(&self, record: &Record) -> Result<SessionId, Error> {
            self.0.create(record).await
        }
        async fn load(&self, id: &SessionId, now: OffsetDateTime) -> Result<Option<Record>, Error> {
            DynSessionStore::load(&self.0, id, now).await
        }
        async fn load_refreshed(
            &self,
            id: &SessionId,
            policy: &ExpiryPolicy,
            now: OffsetDateTime,
        ) -> Result<Option<Loaded>, Error> {
            self.0.load_refreshed(id, policy, now).await
        }
        async fn apply(
            &self,
            id: &SessionId,
            changes: &ChangeSet,
            now: OffsetDateTime,
        ) -> Result<bool, Error> {
            self.0.apply(id, changes, now).await
        }
        async fn touch(
            &self,
            id: &SessionId,
            expires_at: OffsetDateTime,
            now: OffsetDateTime,
        ) -> Result<bool, Error> {
            self.0.touch(id, expires_at, now).await
        }
        async fn rekey(
            &self,
            old: &SessionId,
            user: Option<&str>,
            record: &Record,
            now: OffsetDateTime,
        ) -> Result<Option<SessionId>, Error> {
            self.0.rekey(old, user, record, now).await
        }
        async fn delete(&self, id: &SessionId) -> Result<(), Error> {
            self.0.delete(id).await
        }
        async fn list_user(&self, user: &str, now: OffsetDateTime) -> Result<Vec<Record>, Error> {
            self.0.list_user(user, now).await
        }
        async fn delete_user(
            &self,
            user: &str,
            keep: Option<&SessionId>,
            now: OffsetDateTime,
        ) -> Result<usize, Error> {
            self.0.delete_user(user, keep, now).await
        }
    }

    /// Every store's contract holds through the encryption: per-key changes, increments,
    /// compare-and-set, rekeying, the user index, corrupt records.
    #[tokio::test]
    async fn the_wrapped_store_passes_the_conformance_suite() {
        let inner = sessionware_memory::MemoryStore::new();
        let store = Conformant(AtRest::new(
            Arc::new(inner.clone()),
            AtRestKeys::new(&[key(1)], true),
        ));
        sessionware_core::testing::run(&store, |id| {
            inner.corrupt(&id);
            async {}
        })
        .await;
        assert_eq!(inner.len(), 0, "the suite deletes what it creates");
    }

    #[test]
    fn rotation_opens_old_values() {
        let id = SessionId::from_bytes([1; SessionId::BYTES]);
        let old = AtRestKeys::new(&[key(1)], true)
            .seal(&id, "k", &json!(5))
            .unwrap();
        let rotated = AtRestKeys::new(&[key(2), key(1)], true);
        assert_eq!(rotated.open(&id, "k", &old).unwrap(), json!(5));
        assert_ne!(rotated.seal(&id, "k", &json!(5)).unwrap(), old);
        assert!(
            AtRestKeys::new(&[key(2)], true)
                .open(&id, "k", &old)
                .is_err()
        );
    }
}
