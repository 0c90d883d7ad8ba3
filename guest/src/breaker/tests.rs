//! Breaker state machine tests; every clock reading is a parameter.

use super::*;

fn breaker(threshold: u32, probes: u32, successes: u32) -> Breaker {
    Breaker::new(BreakerSettings::new(threshold, 1_000, probes, successes).unwrap())
}

#[test]
fn opens_after_n_consecutive_failures() {
    let mut b = breaker(3, 1, 1);
    for _ in 0..2 {
        let p = b.permit(0).unwrap();
        b.on_failure(p, 0);
    }
    assert_eq!(b.phase(0).0, Phase::Closed);
    let p = b.permit(0).unwrap();
    b.on_failure(p, 10);
    assert_eq!(b.state(), State::Open { until_ms: 1_010 });
    assert_eq!(b.permit(500), Err(510));
}

#[test]
fn a_success_resets_the_count() {
    let mut b = breaker(2, 1, 1);
    let p = b.permit(0).unwrap();
    b.on_failure(p, 0);
    b.on_success(p, 0, 0);
    b.on_failure(p, 0);
    assert_eq!(b.phase(0).0, Phase::Closed);
}

#[test]
fn half_open_limits_probes_and_closes_after_m_successes() {
    let mut b = breaker(1, 2, 2);
    let p = b.permit(0).unwrap();
    b.on_failure(p, 0);
    assert!(b.permit(999).is_err());
    let p1 = b.permit(1_000).unwrap();
    let p2 = b.permit(1_000).unwrap();
    assert!(b.permit(1_000).is_err(), "only two probes in flight");
    b.on_success(p1, 0, 0);
    assert!(matches!(b.state(), State::HalfOpen { successes: 1, .. }));
    b.on_success(p2, 0, 0);
    assert_eq!(b.state(), State::CLOSED);
}

#[test]
fn a_failed_probe_reopens() {
    let mut b = breaker(1, 1, 1);
    let p = b.permit(0).unwrap();
    b.on_failure(p, 0);
    let probe = b.permit(1_000).unwrap();
    b.on_failure(probe, 1_200);
    assert_eq!(b.state(), State::Open { until_ms: 2_200 });
}

#[test]
fn late_answers_from_before_the_breaker_opened_are_not_probes() {
    let mut b = breaker(1, 1, 1);
    let old_a = b.permit(0).unwrap();
    let old_b = b.permit(0).unwrap();
    b.on_failure(old_a, 0);
    let probe = b.permit(1_000).unwrap();
    // old_b's answer arrives while the probe is out: it neither closes nor re-opens.
    b.on_success(old_b, 0, 0);
    assert!(matches!(b.state(), State::HalfOpen { in_flight: 1, successes: 0, .. }));
    b.on_failure(old_b, 1_100);
    assert!(matches!(b.state(), State::HalfOpen { in_flight: 1, successes: 0, .. }));
    assert!(b.permit(1_100).is_err(), "still only one probe");
    b.on_success(probe, 0, 0);
    assert_eq!(b.state(), State::CLOSED);
}

#[test]
fn probes_that_never_report_back_are_replaced_after_the_probe_timeout() {
    let settings = BreakerSettings::new(1, 1_000, 1, 1).unwrap().with_probe_timeout(500);
    let mut b = Breaker::new(settings);
    let p = b.permit(0).unwrap();
    b.on_failure(p, 0);
    let lost = b.permit(1_000).unwrap();
    assert_eq!(b.permit(1_499), Err(1), "the probe is still out");
    let replacement = b.permit(1_500).unwrap();
    assert_ne!(lost, replacement, "a new episode: the lost probe's late answer is not a probe of it");
    b.on_success(lost, 0, 0);
    assert!(matches!(b.state(), State::HalfOpen { .. }));
    b.on_success(replacement, 0, 0);
    assert_eq!(b.state(), State::CLOSED);
}

fn windowed(size: u32, rate: u32, min_calls: u32) -> Breaker {
    // A consecutive-failure threshold out of reach, so only the window can open it.
    let settings = BreakerSettings::new(1_000, 1_000, 1, 1).unwrap();
    Breaker::new(settings.with_window(Some(WindowSettings::new(size, rate, min_calls).unwrap())))
}

/// Feeds outcomes (true = transient failure) at time 0.
fn feed(b: &mut Breaker, outcomes: &[bool]) {
    for failed in outcomes {
        let p = b.permit(0).unwrap();
        if *failed {
            b.on_failure(p, 0);
        } else {
            b.on_success(p, 0, 0);
        }
    }
}

#[test]
fn the_failure_rate_opens_exactly_at_the_threshold_and_not_before_min_calls() {
    let mut b = windowed(10, 50, 4);
    feed(&mut b, &[true, true, true]);
    assert_eq!(b.phase(0).0, Phase::Closed, "100 % of 3 calls, but min_calls is 4");
    feed(&mut b, &[false]);
    assert_eq!(b.state(), State::Open { until_ms: 1_000 }, "the 4th call (a success) completes min_calls: 3 of 4 failed");

    let mut b = windowed(10, 50, 4);
    feed(&mut b, &[false, false, true, false, true, false]);
    assert_eq!(b.phase(0).0, Phase::Closed, "2 of 6 = 33 %");
    feed(&mut b, &[true]);
    assert_eq!(b.phase(0).0, Phase::Closed, "3 of 7 = 42 %");
    feed(&mut b, &[true]);
    assert_eq!(b.phase(0).0, Phase::Open, "4 of 8 = exactly 50 %");
}

#[test]
fn interleaved_failures_open_it_although_none_are_consecutive() {
    let mut b = windowed(6, 50, 6);
    feed(&mut b, &[true, false, true, false, true]);
    assert_eq!(b.phase(0).0, Phase::Closed);
    feed(&mut b, &[false]);
    assert_eq!(b.phase(0).0, Phase::Open, "3 of 6, every other call");
}

#[test]
fn old_outcomes_slide_out_of_the_window() {
    let mut b = windowed(4, 75, 4);
    // Two failures, then successes push them out one by one.
    feed(&mut b, &[true, true, false, false, false, false]);
    assert!(matches!(b.state(), State::Closed { window, .. } if (window.calls(), window.failures()) == (4, 0)));
    // Three failures in the last four calls (75 %) open it; the first two are long gone.
    feed(&mut b, &[true, true]);
    assert_eq!(b.phase(0).0, Phase::Closed, "2 of 4");
    feed(&mut b, &[true]);
    assert_eq!(b.phase(0).0, Phase::Open, "3 of 4");
}

#[test]
fn the_consecutive_rule_still_applies_with_a_window() {
    let settings = BreakerSettings::new(2, 1_000, 1, 1).unwrap().with_window(Some(WindowSettings::new(100, 90, 100).unwrap()));
    let mut b = Breaker::new(settings);
    feed(&mut b, &[true, true]);
    assert_eq!(b.phase(0).0, Phase::Open, "two in a row, long before the window's min_calls");
}

#[test]
fn closing_after_probes_starts_with_an_empty_window() {
    let mut b = windowed(4, 50, 2);
    feed(&mut b, &[true, true]);
    let probe = b.permit(1_000).unwrap();
    b.on_success(probe, 1_000, 0);
    assert_eq!(b.state(), State::CLOSED);
    feed(&mut b, &[true]);
    assert_eq!(b.phase(0).0, Phase::Closed, "one failure of one call: min_calls is 2");
}

fn slow(threshold: u32, slow_ms: u64) -> Breaker {
    Breaker::new(BreakerSettings::new(threshold, 1_000, 1, 1).unwrap().with_slow_call_ms(Some(slow_ms)).unwrap())
}

#[test]
fn slow_successes_count_as_failures() {
    let mut b = slow(2, 300);
    let p = b.permit(0).unwrap();
    b.on_success(p, 0, 299);
    assert_eq!(b.state(), State::CLOSED, "299 ms is not slow");
    let p = b.permit(0).unwrap();
    b.on_success(p, 0, 300);
    assert!(matches!(b.state(), State::Closed { consecutive_failures: 1, .. }), "300 ms is");
    let p = b.permit(0).unwrap();
    b.on_success(p, 50, 5_000);
    assert_eq!(b.state(), State::Open { until_ms: 1_050 });
}

#[test]
fn slow_successes_fill_the_window_as_failures() {
    let settings = BreakerSettings::new(1_000, 1_000, 1, 1).unwrap();
    let settings = settings.with_window(Some(WindowSettings::new(4, 50, 4).unwrap())).with_slow_call_ms(Some(100)).unwrap();
    let mut b = Breaker::new(settings);
    for elapsed in [500, 10, 500, 10] {
        let p = b.permit(0).unwrap();
        b.on_success(p, 0, elapsed);
    }
    assert_eq!(b.phase(0).0, Phase::Open, "two slow calls of four");
}

#[test]
fn a_slow_probe_reopens() {
    let mut b = slow(1, 300);
    let p = b.permit(0).unwrap();
    b.on_failure(p, 0);
    let probe = b.permit(1_000).unwrap();
    b.on_success(probe, 1_400, 400);
    assert_eq!(b.state(), State::Open { until_ms: 2_400 });
}

#[test]
fn a_restored_window_is_cut_to_this_instances_size() {
    let mut wide = windowed(100, 50, 100);
    feed(&mut wide, &[true, true, true, false, false]);
    let narrow = Breaker::restore(windowed(2, 50, 2).settings(), wide.state(), wide.generation());
    assert!(matches!(narrow.state(), State::Closed { window, .. } if (window.calls(), window.failures()) == (2, 0)));
    let plain = Breaker::restore(BreakerSettings::new(5, 1, 1, 1).unwrap(), wide.state(), 0);
    assert!(matches!(plain.state(), State::Closed { consecutive_failures: 0, window: Window::EMPTY }));
}
