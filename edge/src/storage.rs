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
use pingora_http::ResponseHeader;
use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

/// A stored object. Its metadata is kept as the fields `CacheMeta::new`
/// takes rather than serialized: pingora serializes headers with zstd, and
/// decompressing them on every hit costs more than serving a small playlist.
/// (Revalidation and variance, which would need the rest of `CacheMeta`,
/// are not used by the edge.)
struct Object {
    fresh_until: SystemTime,
    created: SystemTime,
    stale_while_revalidate: u32,
    stale_if_error: u32,
    header: ResponseHeader,
    body: Bytes,
    /// The response head as the hit-first path sends it, built on its first
    /// plain hit (see [`MokaStorage::fresh_wire`]).
    wire_head: OnceLock<Bytes>,
}

impl Object {
    fn new(meta: &CacheMeta, body: Bytes) -> Object {
        Object {
            fresh_until: meta.fresh_until(),
            created: meta.created(),
            stale_while_revalidate: meta.stale_while_revalidate_sec(),
            stale_if_error: meta.stale_if_error_sec(),
            header: meta.response_header().clone(),
            body,
            wire_head: OnceLock::new(),
        }
    }

    fn meta(&self) -> CacheMeta {
        CacheMeta::new(
            self.fresh_until,
            self.created,
            self.stale_while_revalidate,
            self.stale_if_error,
            self.header.clone(),
        )
    }

    /// Approximate bytes held.
    fn weight(&self) -> usize {
        let headers: usize = self
            .header
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum();
        self.body.len() + headers + 128
    }
}

/// A fresh stored object as bytes to send, as [`MokaStorage::fresh_wire`]
/// hands it out.
pub struct FreshWire {
    /// What `build` made of the stored header, once per object.
    pub head: Bytes,
    pub body: Bytes,
    pub created: SystemTime,
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
            .weigher(|_, o: &Arc<Object>| u32::try_from(o.weight()).unwrap_or(u32::MAX))
            .build();
        MokaStorage {
            objects,
            max_object: (capacity_bytes / 8).min(u32::MAX as u64) as usize,
        }
    }

    /// The object stored under `key` if it is still fresh at `now`, with its
    /// header as bytes that `build(header, body length, created)` makes on
    /// the object's first call and the object keeps: what the edge's
    /// hit-first path ([`crate::hits`]) sends, copying no header.
    pub fn fresh_wire(
        &self,
        key: &CacheKey,
        now: SystemTime,
        build: impl FnOnce(&ResponseHeader, usize, SystemTime) -> Bytes,
    ) -> Option<FreshWire> {
        let obj = self.objects.get(&key.combined_bin())?;
        (obj.fresh_until > now).then(|| FreshWire {
            head: obj
                .wire_head
                .get_or_init(|| build(&obj.header, obj.body.len(), obj.created))
                .clone(),
            body: obj.body.clone(),
            created: obj.created,
        })
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
        Ok(Some((obj.meta(), Box::new(Hit::new(obj.body.clone())))))
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
            meta: Object::new(meta, Bytes::new()),
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
        self.objects.insert(k, Arc::new(Object::new(meta, old.body.clone())));
        Ok(true)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// Reads one stored body, whole or (for `Range` requests) a slice of it.
struct Hit {
    body: Bytes,
    /// The part still to be read; `None` once read.
    next: Option<std::ops::Range<usize>>,
}

impl Hit {
    fn new(body: Bytes) -> Hit {
        let next = Some(0..body.len());
        Hit { body, next }
    }
}

#[async_trait]
impl HandleHit for Hit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        Ok(self.next.take().map(|r| self.body.slice(r)))
    }

    fn can_seek(&self) -> bool {
        true
    }

    /// `end` is exclusive and may run past the body; pingora calls this once
    /// per range, so it re-arms the read.
    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.body.len();
        if start >= len {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek to {start} past the body ({len})"),
            );
        }
        self.next = Some(start..end.map_or(len, |e| e.min(len)).max(start));
        Ok(())
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
    /// The object's metadata, with an empty body until `finish`.
    meta: Object,
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
            body: self.body.freeze(),
            ..self.meta
        };
        self.storage.objects.insert(self.key, Arc::new(obj));
        Ok(MissFinishType::Created(size))
    }
}
