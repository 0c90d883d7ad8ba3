//! The same `wasi:keyvalue@0.2.0-draft2` binding for `serve`, with every call that reaches the
//! backend run on tokio's blocking pool.
//!
//! `serve` runs the app on a small multi-threaded tokio runtime (two workers). The backends are
//! blocking (Redis: a synchronous client, up to 2 s a round trip), so with the synchronous
//! binding each store call held a worker for its round trip, and a stalled store held all of
//! them: requests that never touch the store (the app's 404, a bare `/healthz`) went unanswered
//! too. Here the host function is async and the backend call moves to `spawn_blocking`, so the
//! worker goes back to serving while the call waits.
//!
//! What the calls do is `KeyValue`'s (see `calls`), shared with the synchronous binding; this
//! file only moves handles in and out of the resource table (which stays on the caller's
//! thread) and the rest onto the blocking pool. It needs a tokio runtime: the sync `Runtime`
//! keeps the synchronous binding.

use wasmtime::component::{Linker, Resource};
use wasmtime::{format_err, Result};

use super::{BucketHandle, CasHandle, HasWasiKeyValue, KeyValue, KvError, WasiKeyValue};

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/deps/keyvalue",
        world: "wasi:keyvalue/imports",
        // All of them, even the ones that only touch the table (`open`, `drop`, `current`):
        // one rule for the whole interface, and such a call never waits.
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::keyvalue::BucketHandle,
            "wasi:keyvalue/atomics.cas": crate::keyvalue::CasHandle,
        },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};

/// Runs one backend call on tokio's blocking pool and waits for it without holding a worker, or
/// (`blocks` false: the in-memory store, which never waits) right here: a hop to the blocking
/// pool costs more than such a call, ~20 % of a fresh instance's cached read in `serve`.
async fn offload<R: Send + 'static>(blocks: bool, call: impl FnOnce() -> R + Send + 'static) -> Result<R> {
    if !blocks {
        return Ok(call());
    }
    match tokio::task::spawn_blocking(call).await {
        Ok(answer) => Ok(answer),
        // A backend that panics fails the call as it would have in the synchronous binding.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(format_err!("a key-value call was cancelled: the server is shutting down")),
    }
}

fn other(e: KvError) -> store::Error {
    store::Error::Other(e.0)
}

impl WasiKeyValue<'_> {
    /// What a call moves to the blocking pool: the store (a cheap clone) and the bucket's name.
    fn detach(&self, bucket: &Resource<BucketHandle>) -> Result<(KeyValue, String)> {
        Ok((self.kv.clone(), self.bucket(bucket)?))
    }
}

impl store::Host for WasiKeyValue<'_> {
    async fn open(&mut self, identifier: String) -> Result<Result<Resource<BucketHandle>, store::Error>> {
        Ok(self.open_bucket(identifier)?.ok_or(store::Error::NoSuchStore))
    }
}

impl store::HostBucket for WasiKeyValue<'_> {
    async fn get(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<Result<Option<Vec<u8>>, store::Error>> {
        let (kv, name) = self.detach(&bucket)?;
        Ok(offload(kv.blocks(), move || kv.get(&name, &key)).await?.map_err(other))
    }

    async fn set(&mut self, bucket: Resource<BucketHandle>, key: String, value: Vec<u8>) -> Result<Result<(), store::Error>> {
        let (kv, name) = self.detach(&bucket)?;
        Ok(offload(kv.blocks(), move || kv.set(&name, &key, &value)).await?.map_err(other))
    }

    async fn delete(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<Result<(), store::Error>> {
        let (kv, name) = self.detach(&bucket)?;
        Ok(offload(kv.blocks(), move || kv.delete(&name, &key)).await?.map_err(other))
    }

    async fn exists(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<Result<bool, store::Error>> {
        let (kv, name) = self.detach(&bucket)?;
        Ok(offload(kv.blocks(), move || kv.exists(&name, &key)).await?.map_err(other))
    }

    async fn list_keys(&mut self, bucket: Resource<BucketHandle>, cursor: Option<String>) -> Result<Result<store::KeyResponse, store::Error>> {
        let (kv, name) = self.detach(&bucket)?;
        let keys = offload(kv.blocks(), move || kv.list_keys(&name, cursor)).await?;
        Ok(keys.map(|keys| store::KeyResponse { keys, cursor: None }).map_err(other))
    }

    async fn drop(&mut self, bucket: Resource<BucketHandle>) -> Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for WasiKeyValue<'_> {
    async fn increment(&mut self, bucket: Resource<BucketHandle>, key: String, delta: i64) -> Result<Result<i64, store::Error>> {
        let (kv, name) = self.detach(&bucket)?;
        Ok(offload(kv.blocks(), move || kv.increment(&name, &key, delta)).await?.map_err(other))
    }

    async fn swap(&mut self, cas: Resource<CasHandle>, value: Vec<u8>) -> Result<Result<(), atomics::CasError>> {
        let handle = self.table.delete(cas)?;
        let kv = self.kv.clone();
        match offload(kv.blocks(), move || kv.swap(handle, &value)).await? {
            Ok(Ok(())) => Ok(Ok(())),
            Ok(Err(retry)) => Ok(Err(atomics::CasError::CasFailed(self.table.push(retry)?))),
            Err(e) => Ok(Err(atomics::CasError::StoreError(other(e)))),
        }
    }
}

impl atomics::HostCas for WasiKeyValue<'_> {
    async fn new(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<Result<Resource<CasHandle>, store::Error>> {
        let (kv, name) = self.detach(&bucket)?;
        match offload(kv.blocks(), move || kv.begin_swap(name, key)).await? {
            Ok(handle) => Ok(Ok(self.table.push(handle)?)),
            Err(e) => Ok(Err(other(e))),
        }
    }

    async fn current(&mut self, cas: Resource<CasHandle>) -> Result<Result<Option<Vec<u8>>, store::Error>> {
        Ok(Ok(self.seen(&cas)?))
    }

    async fn drop(&mut self, cas: Resource<CasHandle>) -> Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for WasiKeyValue<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<Result<Vec<(String, Option<Vec<u8>>)>, store::Error>> {
        let (kv, name) = self.detach(&bucket)?;
        Ok(offload(kv.blocks(), move || kv.get_many(&name, keys)).await?.map_err(other))
    }

    async fn set_many(&mut self, bucket: Resource<BucketHandle>, key_values: Vec<(String, Vec<u8>)>) -> Result<Result<(), store::Error>> {
        let (kv, name) = self.detach(&bucket)?;
        Ok(offload(kv.blocks(), move || kv.set_many(&name, &key_values)).await?.map_err(other))
    }

    async fn delete_many(&mut self, bucket: Resource<BucketHandle>, keys: Vec<String>) -> Result<Result<(), store::Error>> {
        let (kv, name) = self.detach(&bucket)?;
        Ok(offload(kv.blocks(), move || kv.delete_many(&name, &keys)).await?.map_err(other))
    }
}

/// Like [`super::add_to_linker`], for a store run on a tokio runtime (async host calls; the
/// linker then needs `instantiate_async` and async or concurrent calls).
pub fn add_to_linker_async<T: Send + 'static>(linker: &mut Linker<T>, f: fn(&mut T) -> WasiKeyValue<'_>) -> Result<()> {
    store::add_to_linker::<T, HasWasiKeyValue>(linker, f)?;
    atomics::add_to_linker::<T, HasWasiKeyValue>(linker, f)?;
    batch::add_to_linker::<T, HasWasiKeyValue>(linker, f)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyvalue::{KvOperations, DEFAULT_BUCKET};
    use atomics::{Host as _, HostCas as _};
    use store::{Host as _, HostBucket as _};
    use wasmtime::component::ResourceTable;

    // The calls are `KeyValue`'s and tested with the synchronous binding (keyvalue/tests.rs);
    // this checks the handles this binding moves around the blocking pool.
    #[tokio::test]
    async fn a_swap_after_a_concurrent_write_fails_with_a_fresh_handle_in_the_table() {
        let kv = KeyValue::memory();
        let mut table = ResourceTable::new();
        let mut view = WasiKeyValue::new(&kv, &mut table);
        assert!(matches!(view.open("other".into()).await.unwrap(), Err(store::Error::NoSuchStore)));
        let bucket = view.open(DEFAULT_BUCKET.into()).await.unwrap().unwrap();
        let borrow = || Resource::<BucketHandle>::new_borrow(bucket.rep());
        view.set(borrow(), "k".into(), b"a".to_vec()).await.unwrap().unwrap();
        let cas = view.new(borrow(), "k".into()).await.unwrap().unwrap();
        kv.backend().set(DEFAULT_BUCKET, "k", b"b").unwrap();

        let Err(atomics::CasError::CasFailed(retry)) = view.swap(cas, b"c".to_vec()).await.unwrap() else {
            panic!("a swap over a changed value succeeded");
        };
        assert_eq!(view.current(Resource::new_borrow(retry.rep())).await.unwrap().unwrap(), Some(b"b".to_vec()));
        view.swap(retry, b"c".to_vec()).await.unwrap().unwrap();
        assert_eq!(view.get(borrow(), "k".into()).await.unwrap().unwrap(), Some(b"c".to_vec()));
        // set, the two swaps; the compare-and-swap's read, get.
        assert_eq!(kv.operations(), KvOperations { reads: 2, writes: 3 });
    }
}
