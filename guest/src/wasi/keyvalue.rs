//! [`SharedStore`] over `wasi:keyvalue/store`, `atomics` and `batch` (draft2,
//! the version Spin implements). The bucket is opened on first use and kept; a
//! failed open is retried on the next call, never remembered.

use crate::prelude::*;
use super::wasi::keyvalue::atomics::{self, Cas, CasError};
use super::wasi::keyvalue::batch;
use super::wasi::keyvalue::store::{self, Bucket};
use crate::shared::{CasToken, SharedStore, StoreError};

/// The instance's bucket handle, opened lazily.
#[derive(Default)]
pub struct BucketSlot(Option<Bucket>);

/// One call's view of the bucket.
pub struct WasiStore<'a> {
    name: &'a str,
    slot: &'a mut BucketSlot,
    /// At most one compare-and-swap is open at a time (the core watches a key
    /// and swaps it right after); a new watch drops the previous one.
    pending: Option<(u64, Cas)>,
    next_token: u64,
}

impl<'a> WasiStore<'a> {
    pub fn new(name: &'a str, slot: &'a mut BucketSlot) -> WasiStore<'a> {
        WasiStore { name, slot, pending: None, next_token: 0 }
    }

    fn bucket(&mut self) -> Result<&Bucket, StoreError> {
        if self.slot.0.is_none() {
            let bucket = store::open(self.name).map_err(|e| error(&format!("open `{}`", self.name), e))?;
            self.slot.0 = Some(bucket);
        }
        self.slot.0.as_ref().ok_or_else(|| StoreError("bucket not open".into()))
    }
}

fn error(what: &str, e: store::Error) -> StoreError {
    StoreError(match e {
        store::Error::NoSuchStore => format!("key-value {what}: no such store"),
        store::Error::AccessDenied => format!("key-value {what}: access denied"),
        store::Error::Other(message) => format!("key-value {what}: {message}"),
    })
}

impl SharedStore for WasiStore<'_> {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.bucket()?.get(key).map_err(|e| error("get", e))
    }

    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.bucket()?.set(key, value).map_err(|e| error("set", e))
    }

    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.bucket()?.delete(key).map_err(|e| error("delete", e))
    }

    fn increment(&mut self, key: &str, delta: i64) -> Result<i64, StoreError> {
        atomics::increment(self.bucket()?, key, delta).map_err(|e| error("increment", e))
    }

    fn watch(&mut self, key: &str) -> Result<(Option<Vec<u8>>, CasToken), StoreError> {
        self.pending = None;
        let cas = Cas::new(self.bucket()?, key).map_err(|e| error("compare-and-swap", e))?;
        let current = cas.current().map_err(|e| error("compare-and-swap read", e))?;
        self.next_token += 1;
        self.pending = Some((self.next_token, cas));
        Ok((current, CasToken(self.next_token)))
    }

    fn swap(&mut self, token: CasToken, value: &[u8]) -> Result<bool, StoreError> {
        match self.pending.take() {
            Some((id, cas)) if id == token.0 => match atomics::swap(cas, value) {
                Ok(()) => Ok(true),
                Err(CasError::CasFailed(_)) => Ok(false),
                Err(CasError::StoreError(e)) => Err(error("swap", e)),
            },
            _ => Err(StoreError("compare-and-swap token is not the open one".into())),
        }
    }

    fn get_many(&mut self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let owned: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let pairs = batch::get_many(self.bucket()?, &owned).map_err(|e| error("get-many", e))?;
        // Matched by key, not position: the interface promises no order, and Spin's SQLite
        // store returns only the keys it holds (a key left out is absent).
        Ok(keys.iter().map(|key| pairs.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.clone())).collect())
    }

    fn set_many(&mut self, entries: &[(&str, &[u8])]) -> Result<(), StoreError> {
        let owned: Vec<(String, Vec<u8>)> = entries.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
        batch::set_many(self.bucket()?, &owned).map_err(|e| error("set-many", e))
    }
}
