//! Smoke test: the whole bench path with minimal iterations, so it cannot rot. No timing
//! assertions (CI machines are noisy); only that every figure is a finite positive number.

use super::*;

#[test]
fn bench_runs_end_to_end_with_minimal_iterations() {
    let plan = Plan::from_args(&BenchArgs { iterations: Some(10), batches: Some(1), quick: true, only: None, component: None });
    let report = measure(plan, GUEST_WASM).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(report.all_finite_positive(), "{}", report.render(&plan));
    let table = report.render(&plan);
    for row in ["cache-hit get, component", "fresh instance", "artifact load", "cache-miss get", "guest .wasm size", "ratio  hit get / empty call", "edge: fresh instance, cached secret", "ratio  fresh: secret / no-op route", "store ops per unsampled shared hit (fresh): writes", "fresh instance + shared-hit get"] {
        assert!(table.contains(row), "missing {row:?} in\n{table}");
    }
    assert!(!table.contains(figures::VALUE), "the table must never show the secret value");
}
