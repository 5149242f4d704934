//! S3 Bucket Keys: a bucket-level key from the KMS, cached for a bounded
//! time, wraps many objects' data keys, so sealing N objects costs one KMS
//! call instead of N. The KMS context is the bucket's ARN (merged with the
//! caller's context), as S3 does.
//!
//! The cache also keeps the keys it recovered by decrypting blobs, so
//! opening many objects under one bucket key costs one `Decrypt`. A key's
//! state change (disabled, pending deletion) takes effect on cached bucket
//! keys when their entry expires, as with S3.
//!
//! Concurrent first uses of one bucket key make one KMS request (the others
//! wait for it); no lock is held across a KMS request, so a slow or hung
//! request for one key delays only the callers of that key.
//!
//! Entries are per principal: a principal is handed only a bucket key the
//! KMS gave (or decrypted for) that principal, so each principal's first use
//! is a KMS request the KMS can refuse and its audit log records, even when
//! engines made with [`Engine::with_principal`](crate::Engine::with_principal)
//! share one cache.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::context::EncryptionContext;
use super::kms::Kms;
use super::secret::BucketKey;
use crate::error::{Error, KmsError};

/// Default time a bucket key is reused.
pub const DEFAULT_BUCKET_KEY_TTL: Duration = Duration::from_secs(300);
/// Most entries in each cache.
const MAX_ENTRIES: usize = 1024;

/// A bucket key ready to wrap objects.
pub(crate) struct SealEntry {
    pub(crate) key: Arc<BucketKey>,
    pub(crate) blob: Vec<u8>,
    pub(crate) key_arn: String,
    pub(crate) key_version: Option<u32>,
    fetched: Instant,
}

struct OpenEntry {
    key: Arc<BucketKey>,
    fetched: Instant,
}

/// A seal-side cache entry's id: principal, key reference and canonical
/// context.
type SealId = (String, String, Vec<u8>);
/// An open-side cache entry's id: principal, blob and canonical context.
type OpenId = (String, Vec<u8>, Vec<u8>);

/// A cache slot: a value, or a KMS request in flight for it that other
/// callers wait on instead of making their own.
enum Slot<V> {
    Ready(V),
    Fetching(Arc<Flight>),
}

/// One KMS request in flight; its outcome is set (and waiters woken) when
/// it ends.
#[derive(Default)]
struct Flight {
    outcome: Mutex<Outcome>,
    cv: Condvar,
}

/// How a flight ended.
#[derive(Default, Clone)]
enum Outcome {
    /// Still running.
    #[default]
    Running,
    /// Done: the value is in the map (or the fetch failed in a way its
    /// waiters should retry themselves).
    Done,
    /// The KMS refused: its waiters (same principal, key and context) get
    /// the same answer instead of asking again one after another.
    Refused(KmsError),
}

impl Flight {
    fn wait(&self) -> Outcome {
        let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        while matches!(*outcome, Outcome::Running) {
            outcome = self
                .cv
                .wait(outcome)
                .unwrap_or_else(PoisonError::into_inner);
        }
        outcome.clone()
    }

    fn finish(&self, outcome: Outcome) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = outcome;
        self.cv.notify_all();
    }
}

/// A map of slots with single-flight fetching: the map's mutex is held
/// only to look up or update a slot, never across a KMS request, so a slow
/// or hung KMS request for one id stalls only the callers of that id.
struct SingleFlight<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
}

/// Ends a flight on every path out of [`SingleFlight::get`], panics
/// included, so waiters never hang.
struct Landing<'a, K: Eq + std::hash::Hash, V> {
    map: &'a SingleFlight<K, V>,
    id: Option<K>,
    flight: Arc<Flight>,
    refused: Option<KmsError>,
}

impl<K: Eq + std::hash::Hash, V> Drop for Landing<'_, K, V> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let mut slots = self
                .map
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if matches!(slots.get(&id), Some(Slot::Fetching(f)) if Arc::ptr_eq(f, &self.flight)) {
                slots.remove(&id);
            }
        }
        self.flight.finish(match self.refused.take() {
            Some(e) => Outcome::Refused(e),
            None => Outcome::Done,
        });
    }
}

impl<K: Clone + Eq + std::hash::Hash, V: Clone> SingleFlight<K, V> {
    fn new() -> Self {
        SingleFlight {
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Slot<V>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fresh value for `id`, or the result of `fetch` (made by this
    /// caller only when no other caller is fetching `id`; otherwise this
    /// caller waits for that one and looks again). A refusal by the KMS is
    /// shared with the callers that waited for it (the same principal asked
    /// the same thing), so a failing or slow KMS costs each burst one
    /// request, not one per caller in turn; later callers ask again.
    fn get(
        &self,
        id: K,
        fresh: impl Fn(&V) -> bool,
        fetch: impl FnOnce() -> Result<V, Error>,
    ) -> Result<V, Error> {
        let flight = loop {
            let mut slots = self.lock();
            match slots.get(&id) {
                Some(Slot::Ready(v)) if fresh(v) => return Ok(v.clone()),
                Some(Slot::Fetching(f)) => {
                    let f = f.clone();
                    drop(slots);
                    if let Outcome::Refused(e) = f.wait() {
                        return Err(e.into());
                    }
                }
                _ => {
                    if slots.len() >= MAX_ENTRIES {
                        evict(&mut slots, &fresh);
                    }
                    let f = Arc::new(Flight::default());
                    slots.insert(id.clone(), Slot::Fetching(f.clone()));
                    break f;
                }
            }
        };
        let mut landing = Landing {
            map: self,
            id: Some(id),
            flight,
            refused: None,
        };
        let result = fetch();
        match &result {
            Ok(v) => {
                if let Some(id) = landing.id.take() {
                    self.lock().insert(id, Slot::Ready(v.clone()));
                }
            }
            Err(Error::Kms(e)) => landing.refused = Some(e.clone()),
            Err(_) => {}
        }
        drop(landing);
        result
    }

    /// Puts `value` in the slot for `id` unless a fetch for it is running.
    fn put(&self, id: K, value: V, fresh: impl Fn(&V) -> bool) {
        let mut slots = self.lock();
        if matches!(slots.get(&id), Some(Slot::Fetching(_))) {
            return;
        }
        if slots.len() >= MAX_ENTRIES {
            evict(&mut slots, &fresh);
        }
        slots.insert(id, Slot::Ready(value));
    }

    fn clear(&self) {
        self.lock().retain(|_, s| matches!(s, Slot::Fetching(_)));
    }

    /// Whether a value or a fetch is there for `id` (stale or not).
    fn contains(&self, id: &K) -> bool {
        self.lock().contains_key(id)
    }
}

/// The bucket-key caches of one engine.
pub(crate) struct BucketKeyCache {
    ttl: Duration,
    seal: SingleFlight<SealId, Arc<SealEntry>>,
    open: SingleFlight<OpenId, Arc<OpenEntry>>,
}

impl BucketKeyCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        BucketKeyCache {
            ttl,
            seal: SingleFlight::new(),
            open: SingleFlight::new(),
        }
    }

    /// The bucket key for `key_ref` and `context`, from the cache or from
    /// one `GenerateDataKey` call (shared by concurrent callers).
    pub(crate) fn for_seal(
        &self,
        kms: &dyn Kms,
        key_ref: &str,
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<Arc<SealEntry>, Error> {
        let id = (principal.to_owned(), key_ref.to_owned(), context.encode());
        let ttl = self.ttl;
        let fetched = std::cell::Cell::new(false);
        let entry = self.seal.get(
            id,
            |e| e.fetched.elapsed() < ttl,
            || {
                fetched.set(true);
                let g = kms.generate_data_key(key_ref, context, principal)?;
                Ok(Arc::new(SealEntry {
                    key: Arc::new(BucketKey::from(g.key)),
                    blob: g.blob,
                    key_arn: g.key_arn,
                    key_version: g.key_version,
                    fetched: Instant::now(),
                }))
            },
        )?;
        // Objects sealed under it open without a Decrypt while it is fresh.
        // Put by the caller that fetched it (with the same time, so as
        // fresh as the seal entry), and by a later seal only if the entry
        // was evicted: replacing it on every seal was a tenth of a
        // bucket-key object's cost.
        let open_id = (principal.to_owned(), entry.blob.clone(), context.encode());
        if !fetched.get() && self.open.contains(&open_id) {
            return Ok(entry);
        }
        self.open.put(
            open_id,
            Arc::new(OpenEntry {
                key: entry.key.clone(),
                fetched: entry.fetched,
            }),
            |e| e.fetched.elapsed() < ttl,
        );
        Ok(entry)
    }

    /// The bucket key in `blob` (made under master key `key_id`), from the
    /// cache or from one `Decrypt` call (shared by concurrent callers).
    pub(crate) fn for_open(
        &self,
        kms: &dyn Kms,
        key_id: &str,
        blob: &[u8],
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<Arc<BucketKey>, Error> {
        let id = (principal.to_owned(), blob.to_vec(), context.encode());
        let ttl = self.ttl;
        let entry = self.open.get(
            id,
            |e| e.fetched.elapsed() < ttl,
            || {
                let d = kms.decrypt(key_id, blob, context, principal)?;
                Ok(Arc::new(OpenEntry {
                    key: Arc::new(BucketKey::from(d.key)),
                    fetched: Instant::now(),
                }))
            },
        )?;
        Ok(entry.key.clone())
    }

    /// Forgets every cached key (requests in flight finish and are kept).
    pub(crate) fn clear(&self) {
        self.seal.clear();
        self.open.clear();
    }
}

/// Makes room for one entry: drops stale values; if none was stale, one
/// arbitrary value (requests in flight are never dropped).
fn evict<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, Slot<V>>,
    fresh: &impl Fn(&V) -> bool,
) {
    let before = map.len();
    map.retain(|_, s| match s {
        Slot::Ready(v) => fresh(v),
        Slot::Fetching(_) => true,
    });
    if map.len() == before
        && let Some(victim) = map
            .iter()
            .find(|(_, s)| matches!(s, Slot::Ready(_)))
            .map(|(k, _)| k.clone())
    {
        map.remove(&victim);
    }
}
