use super::*;
use atomics::{Host as _, HostCas as _};
use batch::Host as _;
use store::{Host as _, HostBucket as _};

fn open(view: &mut WasiKeyValue<'_>) -> Resource<BucketHandle> {
    view.open(DEFAULT_BUCKET.into()).unwrap().unwrap()
}

#[test]
fn only_configured_buckets_open() {
    let kv = KeyValue::memory();
    let mut table = ResourceTable::new();
    let mut view = WasiKeyValue::new(&kv, &mut table);
    assert!(matches!(view.open("other".into()).unwrap(), Err(store::Error::NoSuchStore)));
    open(&mut view);
}

#[test]
fn two_views_of_one_store_see_each_others_writes() {
    let kv = KeyValue::memory();
    let (mut t1, mut t2) = (ResourceTable::new(), ResourceTable::new());
    let mut a = WasiKeyValue::new(&kv, &mut t1);
    let bucket = open(&mut a);
    a.set(Resource::new_borrow(bucket.rep()), "k".into(), b"v".to_vec()).unwrap().unwrap();
    let mut b = WasiKeyValue::new(&kv, &mut t2);
    let other = open(&mut b);
    assert_eq!(b.get(Resource::new_borrow(other.rep()), "k".into()).unwrap().unwrap(), Some(b"v".to_vec()));
    assert!(b.exists(Resource::new_borrow(other.rep()), "k".into()).unwrap().unwrap());
    b.delete(Resource::new_borrow(other.rep()), "k".into()).unwrap().unwrap();
    assert_eq!(kv.backend().get(DEFAULT_BUCKET, "k").unwrap(), None);
}

#[test]
fn compare_and_swap_fails_after_a_concurrent_write_and_hands_back_a_fresh_handle() {
    let kv = KeyValue::memory();
    let mut table = ResourceTable::new();
    let mut view = WasiKeyValue::new(&kv, &mut table);
    let bucket = open(&mut view);
    let cas = view.new(Resource::new_borrow(bucket.rep()), "k".into()).unwrap().unwrap();
    assert_eq!(view.current(Resource::new_borrow(cas.rep())).unwrap().unwrap(), None);
    kv.backend().set(DEFAULT_BUCKET, "k", b"theirs").unwrap();
    let retry = match view.swap(cas, b"mine".to_vec()).unwrap() {
        Err(atomics::CasError::CasFailed(retry)) => retry,
        other => panic!("expected cas-failed, got {:?}", other.map_err(|_| "error")),
    };
    assert_eq!(view.current(Resource::new_borrow(retry.rep())).unwrap().unwrap(), Some(b"theirs".to_vec()));
    view.swap(retry, b"mine".to_vec()).unwrap().unwrap();
    assert_eq!(kv.backend().get(DEFAULT_BUCKET, "k").unwrap(), Some(b"mine".to_vec()));
    assert_eq!(view.increment(Resource::new_borrow(bucket.rep()), "n".into(), 5).unwrap().unwrap(), 5);
    assert_eq!(view.increment(Resource::new_borrow(bucket.rep()), "n".into(), -2).unwrap().unwrap(), 3);
    assert!(view.increment(Resource::new_borrow(bucket.rep()), "k".into(), 1).unwrap().is_err(), "not an integer");
}

#[test]
fn buckets_do_not_share_keys() {
    let backend = MemoryBackend::default();
    backend.set("a", "k", b"1").unwrap();
    assert_eq!(backend.get("b", "k").unwrap(), None);
    assert_eq!(backend.keys("a").unwrap(), vec!["k".to_string()]);
    assert!(backend.compare_and_swap("a", "k", None, b"2", 1 << 20).map(|w| !w).unwrap(), "k exists: expecting absent fails");
    assert!(backend.compare_and_swap("a", "k", Some(b"1"), b"2", 1 << 20).unwrap());
}

#[test]
fn get_many_answers_each_key_in_order_absent_ones_included() {
    let kv = KeyValue::memory();
    let mut table = ResourceTable::new();
    let mut view = WasiKeyValue::new(&kv, &mut table);
    let bucket = open(&mut view);
    kv.backend().set(DEFAULT_BUCKET, "x", b"1").unwrap();
    let keys = vec!["absent".to_string(), "x".to_string()];
    let pairs = view.get_many(Resource::new_borrow(bucket.rep()), keys).unwrap().unwrap();
    assert_eq!(pairs, vec![("absent".to_string(), None), ("x".to_string(), Some(b"1".to_vec()))]);
}

#[test]
fn the_binding_counts_reads_and_writes_per_call_whatever_the_key_count() {
    let kv = KeyValue::memory();
    let mut table = ResourceTable::new();
    let mut view = WasiKeyValue::new(&kv, &mut table);
    let bucket = open(&mut view);
    let b = || Resource::new_borrow(bucket.rep());
    assert_eq!(kv.operations(), KvOperations::default(), "opening a bucket is no store operation");
    view.set(b(), "k".into(), b"v".to_vec()).unwrap().unwrap();
    view.get(b(), "k".into()).unwrap().unwrap();
    view.get_many(b(), vec!["k".into(), "x".into(), "y".into()]).unwrap().unwrap();
    assert_eq!(kv.operations(), KvOperations { reads: 2, writes: 1 }, "one get-many is one read");
    // Adding zero is still a write for Redis (INCRBY); a compare-and-swap is a read, then a write.
    view.increment(b(), "n".into(), 0).unwrap().unwrap();
    let cas = view.new(b(), "k".into()).unwrap().unwrap();
    view.swap(cas, b"w".to_vec()).unwrap().unwrap();
    view.set_many(b(), vec![("a".into(), b"1".to_vec()), ("c".into(), b"2".to_vec())]).unwrap().unwrap();
    view.delete(b(), "a".into()).unwrap().unwrap();
    let before = KvOperations { reads: 2, writes: 1 };
    assert_eq!(kv.operations() - before, KvOperations { reads: 1, writes: 4 });
    assert_eq!(kv.clone().operations().total(), 8, "clones share the counts");
}

#[test]
fn values_above_the_limit_read_as_absent_can_be_replaced_and_are_never_written() {
    let kv = KeyValue::memory().with_limits(ValueLimits::new(4096, 8192).unwrap());
    let mut table = ResourceTable::new();
    let mut view = WasiKeyValue::new(&kv, &mut table);
    let bucket = open(&mut view);
    let b = || Resource::new_borrow(bucket.rep());
    // Planted behind the binding's back, as a store writer would.
    kv.backend().set(DEFAULT_BUCKET, "big", &vec![7u8; 4097]).unwrap();
    kv.backend().set(DEFAULT_BUCKET, "ok", b"v").unwrap();
    assert_eq!(view.get(b(), "big".into()).unwrap().unwrap(), None);
    assert!(!view.exists(b(), "big".into()).unwrap().unwrap());
    let pairs = view.get_many(b(), vec!["big".into(), "ok".into()]).unwrap().unwrap();
    assert_eq!(pairs, vec![("big".to_string(), None), ("ok".to_string(), Some(b"v".to_vec()))]);
    // A compare-and-swap that saw it as absent replaces it.
    let cas = view.new(b(), "big".into()).unwrap().unwrap();
    assert_eq!(view.current(Resource::new_borrow(cas.rep())).unwrap().unwrap(), None);
    view.swap(cas, b"fresh".to_vec()).unwrap().unwrap();
    assert_eq!(kv.backend().get(DEFAULT_BUCKET, "big").unwrap(), Some(b"fresh".to_vec()));
    // A guest cannot write what no guest could read.
    assert!(view.set(b(), "k".into(), vec![0u8; 4097]).unwrap().is_err());
    assert!(view.set_many(b(), vec![("a".into(), b"1".to_vec()), ("k".into(), vec![0u8; 4097])]).unwrap().is_err());
    assert_eq!(kv.backend().get(DEFAULT_BUCKET, "a").unwrap(), None, "a refused batch writes nothing");
    view.set(b(), "k".into(), vec![0u8; 4096]).unwrap().unwrap();
}
