//! Host side of `wasi:keyvalue@0.2.0-draft2` (`store`, `atomics`, `batch`): the version Spin
//! implements and the component imports. wasmtime's `wasmtime-wasi-keyvalue` implements the
//! older `0.2.0-draft`, and its in-memory store gives every `open` its own copy, so it could
//! neither link this import nor share anything between instances.
//!
//! Shaped like wasmtime's wasi crates: a [`KeyValue`] handle shared by every store of a runtime,
//! a borrowed per-call view ([`WasiKeyValue`]) and linker functions taking a projection:
//! [`add_to_linker`] (synchronous calls: the sync `Runtime`, which has no tokio) and
//! [`add_to_linker_async`] (`serve`: backend calls on tokio's blocking pool). The data lives behind [`KvBackend`]: [`MemoryBackend`] (one process) or [`RedisBackend`] (many
//! hosts share one bucket — how edge-secrets scales past one machine).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime::Result;

mod calls;
mod limits;
mod memory;
mod offload;
mod operations;
mod redis;

pub use limits::{Bounded, ValueLimits};
pub use memory::MemoryBackend;
pub use offload::add_to_linker_async;
pub use operations::KvOperations;
use operations::Counts;
pub use redis::RedisBackend;

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/deps/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::BucketHandle,
            "wasi:keyvalue/atomics.cas": super::CasHandle,
        },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};

/// The generated `wasi:keyvalue` interfaces (for other bindgen! invocations' `with`).
pub use generated::wasi::keyvalue as wasi_keyvalue;

/// A key-value store's failure, as the backend reports it (no values: they are the guest's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvError(pub String);

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where buckets live. Keys are scoped by bucket; every operation is atomic on its own.
pub trait KvBackend: Send + Sync {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError>;
    fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError>;
    /// Whether a call can wait (on a network, a lock held elsewhere): `serve` then runs it on
    /// tokio's blocking pool rather than on a worker that serves requests. Only a store that
    /// answers from this process's memory says no.
    fn blocks(&self) -> bool {
        true
    }
    /// Every key of the bucket (for `list-keys`; buckets here are small).
    fn keys(&self, bucket: &str) -> Result<Vec<String>, KvError>;
    fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError>;
    /// Writes `value` if the key still holds `expected`. `None` expects what a bounded read
    /// answers as absent: no value, a value above `absent_above` bytes, or one that is not a
    /// byte string (so a planted oversized record can be replaced). `Ok(false)` if not.
    fn compare_and_swap(&self, bucket: &str, key: &str, expected: Option<&[u8]>, value: &[u8], absent_above: usize) -> Result<bool, KvError>;
    /// Reads one or more keys for a guest (`get`, `get-many`, a compare-and-swap's read), one
    /// answer per key in order, within `limits` (see [`ValueLimits`]). The default reads whole
    /// values and then applies the limits; Redis and the memory store check lengths first and
    /// read all keys in one round trip.
    fn read_bounded(&self, bucket: &str, keys: &[String], limits: ValueLimits) -> Result<Vec<Bounded>, KvError> {
        let values = keys.iter().map(|key| self.get(bucket, key)).collect::<Result<Vec<_>, _>>()?;
        Ok(limits.apply(values))
    }
}

/// The store every instance of a runtime sees: a backend plus the bucket names `open` accepts.
/// Cheap to clone; clones share the data.
#[derive(Clone)]
pub struct KeyValue {
    backend: Arc<dyn KvBackend>,
    buckets: Arc<BTreeSet<String>>,
    counts: Arc<Counts>,
    limits: ValueLimits,
    oversize: Arc<limits::OversizeLog>,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue").field("buckets", &self.buckets).finish_non_exhaustive()
    }
}

/// The bucket Spin gives an app that lists `key_value_stores = ["default"]`.
pub const DEFAULT_BUCKET: &str = "default";

impl KeyValue {
    /// An in-memory store with the `default` bucket.
    pub fn memory() -> KeyValue {
        KeyValue::new(Arc::new(MemoryBackend::default()), [DEFAULT_BUCKET])
    }

    /// `memory` or a `redis://` / `rediss://` URL, with the `default` bucket.
    pub fn from_url(url: &str) -> Result<KeyValue, KvError> {
        if url == "memory" {
            return Ok(KeyValue::memory());
        }
        Ok(KeyValue::new(Arc::new(RedisBackend::connect(url)?), [DEFAULT_BUCKET]))
    }

    /// A store over `backend` that opens only the named buckets (others: `no-such-store`).
    pub fn new<'a>(backend: Arc<dyn KvBackend>, buckets: impl IntoIterator<Item = &'a str>) -> KeyValue {
        KeyValue {
            backend,
            buckets: Arc::new(buckets.into_iter().map(str::to_string).collect()),
            counts: Arc::default(),
            limits: ValueLimits::default(),
            oversize: Arc::default(),
        }
    }

    /// The same store with other bounds on what a guest reads and writes (default:
    /// [`ValueLimits::default`]). Keep `per_value` at or above the largest record the policy
    /// can publish (its `max_body_bytes` plus ~1 KiB): larger publications are refused.
    pub fn with_limits(mut self, limits: ValueLimits) -> KeyValue {
        self.limits = limits;
        self
    }

    /// Reads `keys` for a guest: values within the limits, the rest absent (and logged).
    fn read_for_guest(&self, bucket: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let answers = self.backend.read_bounded(bucket, keys, self.limits)?;
        if answers.len() != keys.len() {
            return Err(KvError("the store answered for other keys".into()));
        }
        Ok(keys
            .iter()
            .zip(answers)
            .map(|(key, answer)| match answer {
                Bounded::Value(v) => Some(v),
                Bounded::Absent => None,
                Bounded::TooLarge(len) => {
                    self.oversize.note(key, len, self.limits);
                    None
                }
            })
            .collect())
    }

    fn read_one(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.read_for_guest(bucket, &[key.to_string()])?.pop().flatten())
    }

    /// Refuses a write the limits would then hide from every reader.
    fn check_write(&self, value: &[u8]) -> Result<(), KvError> {
        if value.len() > self.limits.per_value {
            return Err(KvError(format!("a value of {} bytes is above the {}-byte limit", value.len(), self.limits.per_value)));
        }
        Ok(())
    }

    /// The operations every guest made through this store (and its clones) so far.
    pub fn operations(&self) -> KvOperations {
        KvOperations { reads: self.counts.reads.load(Ordering::Relaxed), writes: self.counts.writes.load(Ordering::Relaxed) }
    }

    /// Whether its calls can wait (see [`KvBackend::blocks`]).
    pub fn blocks(&self) -> bool {
        self.backend.blocks()
    }

    /// The backend (tests and operators inspect the shared state through it).
    pub fn backend(&self) -> &dyn KvBackend {
        &*self.backend
    }
}

/// An open bucket (the `bucket` resource).
pub struct BucketHandle {
    name: String,
}

/// A compare-and-swap in progress (the `cas` resource): the value seen when it began.
pub struct CasHandle {
    bucket: String,
    key: String,
    seen: Option<Vec<u8>>,
}

/// A borrowed view of the store for one host call.
pub struct WasiKeyValue<'a> {
    kv: &'a KeyValue,
    table: &'a mut ResourceTable,
}

impl<'a> WasiKeyValue<'a> {
    pub fn new(kv: &'a KeyValue, table: &'a mut ResourceTable) -> Self {
        WasiKeyValue { kv, table }
    }

    fn bucket(&self, bucket: &Resource<BucketHandle>) -> Result<String> {
        Ok(self.table.get(bucket)?.name.clone())
    }

    /// `open`: a handle, or `None` for a bucket this store does not serve.
    fn open_bucket(&mut self, identifier: String) -> Result<Option<Resource<BucketHandle>>> {
        if !self.kv.buckets.contains(&identifier) {
            return Ok(None);
        }
        Ok(Some(self.table.push(BucketHandle { name: identifier })?))
    }

    /// `cas.current`: what the key held when the compare-and-swap began.
    fn seen(&self, cas: &Resource<CasHandle>) -> Result<Option<Vec<u8>>> {
        Ok(self.table.get(cas)?.seen.clone())
    }
}

fn other(e: KvError) -> store::Error {
    store::Error::Other(e.0)
}

/// A compare-and-swap's answer: a handle that failed goes back into the table, for the retry.
fn swap_answer(table: &mut ResourceTable, outcome: Result<Result<(), CasHandle>, KvError>) -> Result<Result<(), atomics::CasError>> {
    match outcome {
        Ok(Ok(())) => Ok(Ok(())),
        Ok(Err(retry)) => Ok(Err(atomics::CasError::CasFailed(table.push(retry)?))),
        Err(e) => Ok(Err(atomics::CasError::StoreError(other(e)))),
    }
}

// The calls themselves are `KeyValue`'s (keyvalue/calls.rs), shared with the offloaded binding.

impl store::Host for WasiKeyValue<'_> {
    fn open(&mut self, identifier: String) -> Result<Result<Resource<BucketHandle>, store::Error>> {
        Ok(self.open_bucket(identifier)?.ok_or(store::Error::NoSuchStore))
    }
}

impl store::HostBucket for WasiKeyValue<'_> {
    fn get(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<Result<Option<Vec<u8>>, store::Error>> {
        Ok(self.kv.get(&self.bucket(&bucket)?, &key).map_err(other))
    }

    fn set(&mut self, bucket: Resource<BucketHandle>, key: String, value: Vec<u8>) -> Result<Result<(), store::Error>> {
        Ok(self.kv.set(&self.bucket(&bucket)?, &key, &value).map_err(other))
    }

    fn delete(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<Result<(), store::Error>> {
        Ok(self.kv.delete(&self.bucket(&bucket)?, &key).map_err(other))
    }

    fn exists(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<Result<bool, store::Error>> {
        Ok(self.kv.exists(&self.bucket(&bucket)?, &key).map_err(other))
    }

    fn list_keys(&mut self, bucket: Resource<BucketHandle>, cursor: Option<String>) -> Result<Result<store::KeyResponse, store::Error>> {
        let keys = self.kv.list_keys(&self.bucket(&bucket)?, cursor);
        Ok(keys.map(|keys| store::KeyResponse { keys, cursor: None }).map_err(other))
    }

    fn drop(&mut self, bucket: Resource<BucketHandle>) -> Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for WasiKeyValue<'_> {
    fn increment(&mut self, bucket: Resource<BucketHandle>, key: String, delta: i64) -> Result<Result<i64, store::Error>> {
        Ok(self.kv.increment(&self.bucket(&bucket)?, &key, delta).map_err(other))
    }

    fn swap(&mut self, cas: Resource<CasHandle>, value: Vec<u8>) -> Result<Result<(), atomics::CasError>> {
        let handle = self.table.delete(cas)?;
        let outcome = self.kv.swap(handle, &value);
        swap_answer(self.table, outcome)
    }
}

impl atomics::HostCas for WasiKeyValue<'_> {
    fn new(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<Result<Resource<CasHandle>, store::Error>> {
        match self.kv.begin_swap(self.bucket(&bucket)?, key) {
            Ok(handle) => Ok(Ok(self.table.push(handle)?)),
            Err(e) => Ok(Err(other(e))),
        }
    }

    fn current(&mut self, cas: Resource<CasHandle>) -> Result<Result<Option<Vec<u8>>, store::Error>> {
        Ok(Ok(self.seen(&cas)?))
    }

    fn drop(&mut self, cas: Resource<CasHandle>) -> Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for WasiKeyValue<'_> {
    fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<Result<Vec<(String, Option<Vec<u8>>)>, store::Error>> {
        Ok(self.kv.get_many(&self.bucket(&bucket)?, keys).map_err(other))
    }

    fn set_many(&mut self, bucket: Resource<BucketHandle>, key_values: Vec<(String, Vec<u8>)>) -> Result<Result<(), store::Error>> {
        Ok(self.kv.set_many(&self.bucket(&bucket)?, &key_values).map_err(other))
    }

    fn delete_many(&mut self, bucket: Resource<BucketHandle>, keys: Vec<String>) -> Result<Result<(), store::Error>> {
        Ok(self.kv.delete_many(&self.bucket(&bucket)?, &keys).map_err(other))
    }
}

struct HasWasiKeyValue;

impl HasData for HasWasiKeyValue {
    type Data<'a> = WasiKeyValue<'a>;
}

/// Adds `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2` to `linker`; `f` projects the store
/// data to a [`WasiKeyValue`].
pub fn add_to_linker<T: 'static>(linker: &mut Linker<T>, f: fn(&mut T) -> WasiKeyValue<'_>) -> Result<()> {
    store::add_to_linker::<T, HasWasiKeyValue>(linker, f)?;
    atomics::add_to_linker::<T, HasWasiKeyValue>(linker, f)?;
    batch::add_to_linker::<T, HasWasiKeyValue>(linker, f)?;
    Ok(())
}

#[cfg(test)]
mod tests;
