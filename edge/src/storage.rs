//! pingora-cache storage on `moka`: an in-memory cache bounded in bytes.
//!
//! pingora's own `MemCache` is for tests (unbounded, no eviction). This one
//! keeps complete objects only, in a `moka` cache whose weigher is the
//! object's size, so the total stays under `--cache-size` and moka's
//! TinyLFU policy decides what to evict.
//!
//! An object enters the cache only when its miss handler is finished,
//! i.e. when the upstream body arrived whole: a truncated upstream response
//! drops the handler unfinished and nothing is stored. Readers waiting on the
//! same key are held by pingora's cache lock until then (collapsed
//! forwarding), so partial reads are not supported (and not needed: segments
//! are small and complete in one piece).

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora_cache::key::{CacheHashKey, CompactCacheKey, HashBinary};
use pingora_cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget, PurgeType,
};
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheKey, CacheMeta, Storage};
use pingora_error::{Error, ErrorType, Result};
use std::any::Any;
use std::sync::Arc;

struct Object {
    meta: (Vec<u8>, Vec<u8>),
    body: Bytes,
}

pub struct MokaStorage {
    objects: moka::sync::Cache<HashBinary, Arc<Object>>,
    /// Objects larger than this are not cached (they would evict too much).
    max_object: usize,
}

impl MokaStorage {
    /// A cache holding at most `capacity_bytes` of bodies and metadata.
    pub fn new(capacity_bytes: u64) -> MokaStorage {
        let objects = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_, o: &Arc<Object>| {
                let size = o.body.len() + o.meta.0.len() + o.meta.1.len() + 64;
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .build();
        MokaStorage {
            objects,
            max_object: (capacity_bytes / 8).min(u32::MAX as u64) as usize,
        }
    }

    /// Bytes currently held (approximate: moka settles pending work lazily).
    pub fn weighted_size(&self) -> u64 {
        self.objects.run_pending_tasks();
        self.objects.weighted_size()
    }
}

#[async_trait]
impl Storage for MokaStorage {
    async fn lookup(&'static self, key: &CacheKey, _trace: &SpanHandle) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(obj) = self.objects.get(&key.combined_bin()) else {
            return Ok(None);
        };
        let meta = CacheMeta::deserialize(&obj.meta.0, &obj.meta.1)?;
        Ok(Some((
            meta,
            Box::new(Hit {
                body: Some(obj.body.clone()),
            }),
        )))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        Ok(Box::new(Miss {
            storage: self,
            key: key.combined_bin(),
            meta: meta.serialize()?,
            body: BytesMut::new(),
            too_big: false,
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let key: &CompactCacheKey = target.key();
        Ok(match self.objects.remove(&key.combined_bin()) {
            Some(_) => PurgeOutcome::Purged(None),
            None => PurgeOutcome::NotFound,
        })
    }

    async fn update_meta(&'static self, key: &CacheKey, meta: &CacheMeta, _trace: &SpanHandle) -> Result<bool> {
        let k = key.combined_bin();
        let Some(old) = self.objects.get(&k) else {
            return Ok(false);
        };
        self.objects.insert(
            k,
            Arc::new(Object {
                meta: meta.serialize()?,
                body: old.body.clone(),
            }),
        );
        Ok(true)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

struct Hit {
    body: Option<Bytes>,
}

#[async_trait]
impl HandleHit for Hit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        Ok(self.body.take())
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

struct Miss {
    storage: &'static MokaStorage,
    key: HashBinary,
    meta: (Vec<u8>, Vec<u8>),
    body: BytesMut,
    too_big: bool,
}

#[async_trait]
impl HandleMiss for Miss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        if self.body.len() + data.len() > self.storage.max_object {
            self.too_big = true;
            self.body.clear();
        }
        if !self.too_big {
            self.body.extend_from_slice(&data);
        }
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        if self.too_big {
            return Error::e_explain(ErrorType::InternalError, "object larger than the cache's object limit");
        }
        let size = self.body.len();
        let obj = Object {
            meta: self.meta,
            body: self.body.freeze(),
        };
        self.storage.objects.insert(self.key, Arc::new(obj));
        Ok(MissFinishType::Created(size))
    }
}
