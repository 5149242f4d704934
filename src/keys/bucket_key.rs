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
//! Entries are per principal: a principal is handed only a bucket key the
//! KMS gave (or decrypted for) that principal, so each principal's first use
//! is a KMS request the KMS can refuse and its audit log records, even when
//! engines made with [`Engine::with_principal`](crate::Engine::with_principal)
//! share one cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::context::EncryptionContext;
use super::kms::Kms;
use super::secret::BucketKey;
use crate::error::Error;

/// Default time a bucket key is reused.
pub const DEFAULT_BUCKET_KEY_TTL: Duration = Duration::from_secs(300);
/// Most entries in each cache.
const MAX_ENTRIES: usize = 1024;

/// A bucket key ready to wrap objects.
pub(crate) struct SealEntry {
    pub(crate) key: Arc<BucketKey>,
    pub(crate) blob: Vec<u8>,
    pub(crate) key_arn: String,
    pub(crate) key_version: u32,
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

/// The bucket-key caches of one engine.
pub(crate) struct BucketKeyCache {
    ttl: Duration,
    seal: Mutex<HashMap<SealId, Arc<SealEntry>>>,
    open: Mutex<HashMap<OpenId, OpenEntry>>,
}

impl BucketKeyCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        BucketKeyCache {
            ttl,
            seal: Mutex::new(HashMap::new()),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The bucket key for `key_ref` and `context`, from the cache or from
    /// one `GenerateDataKey` call.
    pub(crate) fn for_seal(
        &self,
        kms: &dyn Kms,
        key_ref: &str,
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<Arc<SealEntry>, Error> {
        let id = (principal.to_owned(), key_ref.to_owned(), context.encode());
        let mut seal = self.seal.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = seal.get(&id)
            && e.fetched.elapsed() < self.ttl
        {
            return Ok(e.clone());
        }
        let g = kms.generate_data_key(key_ref, context, principal)?;
        let entry = Arc::new(SealEntry {
            key: Arc::new(BucketKey::from(g.key)),
            blob: g.blob,
            key_arn: g.key_arn,
            key_version: g.key_version,
            fetched: Instant::now(),
        });
        evict(&mut seal, self.ttl, |e| e.fetched);
        seal.insert(id, entry.clone());
        drop(seal);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        evict(&mut open, self.ttl, |e| e.fetched);
        open.insert(
            (principal.to_owned(), entry.blob.clone(), context.encode()),
            OpenEntry {
                key: entry.key.clone(),
                fetched: entry.fetched,
            },
        );
        Ok(entry)
    }

    /// The bucket key in `blob`, from the cache or from one `Decrypt` call.
    pub(crate) fn for_open(
        &self,
        kms: &dyn Kms,
        blob: &[u8],
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<Arc<BucketKey>, Error> {
        let id = (principal.to_owned(), blob.to_vec(), context.encode());
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = open.get(&id)
            && e.fetched.elapsed() < self.ttl
        {
            return Ok(e.key.clone());
        }
        let d = kms.decrypt(blob, context, principal)?;
        let key = Arc::new(BucketKey::from(d.key));
        evict(&mut open, self.ttl, |e| e.fetched);
        open.insert(
            id,
            OpenEntry {
                key: key.clone(),
                fetched: Instant::now(),
            },
        );
        Ok(key)
    }

    /// Forgets every cached key.
    pub(crate) fn clear(&self) {
        self.seal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Makes room for one entry: drops expired ones, then the oldest.
fn evict<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    ttl: Duration,
    fetched: impl Fn(&V) -> Instant,
) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    map.retain(|_, v| fetched(v).elapsed() < ttl);
    if map.len() >= MAX_ENTRIES
        && let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| fetched(v))
            .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
}
