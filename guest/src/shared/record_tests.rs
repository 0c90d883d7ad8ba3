//! Round trips and refusals of the record layouts.

use super::*;

#[test]
fn records_round_trip() {
    let cache = CacheRecord { epoch: Epoch([3; 16]), fetched_at_ms: 40, expires_at_ms: 42, tier: 1, negative: false, version: "7".into(), value: b"\x00bytes\xff".to_vec() };
    assert!(CacheRecord::decode(&cache.encode()) == Some(cache.clone()));
    let gone = CacheRecord { negative: true, value: b"not found".to_vec(), ..cache.clone() };
    assert!(CacheRecord::decode(&gone.encode()) == Some(gone));
    assert!(CacheRecord::decode(&cache.encode()) == Some(cache.clone()));
    for state in [
        State::Closed { consecutive_failures: 3, window: Window::EMPTY },
        State::Closed { consecutive_failures: 0, window: Window::from_parts(0b1011, 5).unwrap() },
        State::Closed { consecutive_failures: 1, window: Window::from_parts(u128::MAX, 128).unwrap() },
        State::Open { until_ms: u64::MAX },
        State::HalfOpen { in_flight: 1, successes: 2, probes_until_ms: 77 },
    ] {
        let record = BreakerRecord { state, generation: 9 };
        assert_eq!(BreakerRecord::decode(&record.encode()), Some(record));
    }
    let lease = LeaseRecord { expires_at_ms: 5, holder: 6 };
    assert_eq!(LeaseRecord::decode(&lease.encode()), Some(lease));
    let token = TokenRecord { issued_at_ms: 10, expires_at_ms: 20, renewable: true, token: b"hvs.x".to_vec() };
    assert!(TokenRecord::decode(&token.encode()) == Some(token.clone()));
    assert!(TokenRecord::decode(&CacheRecord::decode(&[]).map_or_else(Vec::new, |r| r.encode())).is_none());
    let backwards = TokenRecord { issued_at_ms: 21, ..token.clone() };
    assert!(TokenRecord::decode(&backwards.encode()).is_none(), "issued after it expires");
    let empty = TokenRecord { token: vec![], ..token.clone() };
    assert!(TokenRecord::decode(&empty.encode()).is_none(), "no token");
    let mut bad_flag = token.encode();
    bad_flag[17] = 2;
    assert!(TokenRecord::decode(&bad_flag).is_none());
    assert!(TokenRecord::decode(&lease.encode()).is_none());
    let refusal = RefusalRecord { refused_at_ms: 7, message: "Vault rejected the AppRole credentials".into() };
    assert_eq!(RefusalRecord::decode(&refusal.encode()), Some(refusal.clone()));
    assert!(RefusalRecord::decode(&token.encode()).is_none() && TokenRecord::decode(&refusal.encode()).is_none());
    let counts = CountsRecord { values: vec![0, 7, u64::MAX] };
    assert_eq!(CountsRecord::decode(&counts.encode()), Some(counts.clone()));
    let mut grown = counts.clone();
    grown.add(&[1, 1, 1, 5]);
    assert_eq!(grown.values, vec![1, 8, u64::MAX, 5], "saturating, and longer lists grow it");
    let bytes = counts.encode();
    assert!(CountsRecord::decode(&bytes[..bytes.len() - 1]).is_none(), "cut short");
    assert!(CountsRecord::decode(&[bytes.as_slice(), &[0]].concat()).is_none(), "trailing bytes");
    assert!(CountsRecord::decode(&lease.encode()).is_none());
    assert_eq!(Epoch::from_stored(None), Epoch::INITIAL);
    let garbage = Epoch::from_stored(Some(b"not sixteen"));
    assert!(garbage != Epoch::INITIAL && garbage == Epoch::from_stored(Some(b"not sixteen")), "garbage is an epoch of its own");
    assert_ne!(Epoch::from_stored(Some(b"")), Epoch::INITIAL);
    assert_eq!(Epoch::from_stored(Some(&[9; 16])), Epoch([9; 16]));
    assert_ne!(Epoch::fresh([0; 16]), Epoch::INITIAL);
    let mut not_text = refusal.encode();
    not_text.push(0xff);
    assert!(RefusalRecord::decode(&not_text).is_none());
}

#[test]
fn wrong_tags_and_lengths_decode_to_none() {
    let cache = CacheRecord { epoch: Epoch::INITIAL, fetched_at_ms: 0, expires_at_ms: 1, tier: 0, negative: false, version: "12".into(), value: vec![] }.encode();
    let lease = LeaseRecord { expires_at_ms: 5, holder: 6 }.encode();
    let breaker = BreakerRecord { state: State::Open { until_ms: 1 }, generation: 0 }.encode();
    assert!(CacheRecord::decode(&lease).is_none());
    assert!(LeaseRecord::decode(&cache).is_none());
    assert!(CacheRecord::decode(&cache[..cache.len() - 1]).is_none(), "version cut short");
    assert!(LeaseRecord::decode(&lease[..16]).is_none());
    let mut long = lease.clone();
    long.push(0);
    assert!(LeaseRecord::decode(&long).is_none());
    let mut bad_state = breaker.clone();
    bad_state[1] = 7;
    assert!(BreakerRecord::decode(&bad_state).is_none());
    assert!(BreakerRecord::decode(&[]).is_none());
    let mut bad_flag = cache.clone();
    bad_flag[16 + 18] = 2;
    assert!(CacheRecord::decode(&bad_flag).is_none(), "negative flag must be 0 or 1");
    let windowed = |failed: u128, calls: u8| {
        let window = Window::from_parts(0b1, 1).unwrap();
        let mut bytes = BreakerRecord { state: State::Closed { consecutive_failures: 0, window }, generation: 0 }.encode();
        let n = bytes.len();
        bytes[n - 17..n - 1].copy_from_slice(&failed.to_be_bytes());
        bytes[n - 1] = calls;
        bytes
    };
    assert!(BreakerRecord::decode(&windowed(0b1, 1)).is_some());
    assert!(BreakerRecord::decode(&windowed(0b100, 2)).is_none(), "a failure beyond the calls held");
    assert!(BreakerRecord::decode(&windowed(0, 129)).is_none(), "more calls than a window holds");
    assert!(BreakerRecord::decode(&windowed(0, 0)).is_none(), "an empty window is written as which = 0");
    let full = windowed(0b1, 1);
    assert!(BreakerRecord::decode(&full[..full.len() - 1]).is_none(), "window cut short");
    let mut closed_with_tail = breaker.clone();
    closed_with_tail[1] = 0;
    closed_with_tail.extend_from_slice(&[0; 17]);
    assert!(BreakerRecord::decode(&closed_with_tail).is_none(), "only which = 3 carries a window");
    assert_eq!(
        BreakerRecord { state: State::CLOSED, generation: 0 }.encode().len(),
        26,
        "without a window the record keeps the layout older instances read"
    );
    let mut bad_utf8 = cache;
    bad_utf8[16 + 21] = 0xff;
    assert!(CacheRecord::decode(&bad_utf8).is_none());
}
