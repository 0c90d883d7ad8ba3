//! The figures of one run and the table they are printed as.

use std::fmt::Write;

use super::stats::Samples;
use super::Plan;

/// What a figure measured.
pub enum Value {
    /// Nanoseconds per operation, one sample per batch.
    Time(Samples),
    Bytes(u64),
    /// Operations per second, one sample per batch (higher is better; no target).
    Rate(Samples),
    /// A count per operation (e.g. store operations per read), exact rather than timed.
    Count(f64),
}

pub struct Figure {
    pub label: &'static str,
    pub value: Value,
    /// Upper bound (ns or bytes); `None` for figures shown for context only.
    pub target: Option<f64>,
}

pub struct Ratio {
    pub label: &'static str,
    /// Per-round ratios of interleaved batches.
    pub samples: Samples,
    pub target: Option<Bound>,
}

/// A ratio's target: most ratios are costs (lower is better), throughput ratios are not.
#[derive(Debug, Clone, Copy)]
pub enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

#[derive(Default)]
pub struct Report {
    pub figures: Vec<Figure>,
    pub ratios: Vec<Ratio>,
}

impl Report {
    pub fn time(&mut self, label: &'static str, samples: &Samples, target_ns: Option<f64>) {
        self.figures.push(Figure { label, value: Value::Time(samples.clone()), target: target_ns });
    }

    pub fn rate(&mut self, label: &'static str, samples: &Samples) {
        self.figures.push(Figure { label, value: Value::Rate(samples.clone()), target: None });
    }

    pub fn bytes(&mut self, label: &'static str, bytes: u64, target: Option<f64>) {
        self.figures.push(Figure { label, value: Value::Bytes(bytes), target });
    }

    pub fn count(&mut self, label: &'static str, per_op: f64, target: Option<f64>) {
        self.figures.push(Figure { label, value: Value::Count(per_op), target });
    }

    pub fn ratio(&mut self, label: &'static str, samples: Samples, target: Option<f64>) {
        self.ratios.push(Ratio { label, samples, target: target.map(Bound::AtMost) });
    }

    /// A ratio that should be at least `target` (e.g. requests/s of a route against a baseline).
    pub fn ratio_at_least(&mut self, label: &'static str, samples: Samples, target: f64) {
        self.ratios.push(Ratio { label, samples, target: Some(Bound::AtLeast(target)) });
    }

    /// The table: one row per figure (median, spread across batches, target, verdict), then
    /// one line per ratio.
    pub fn render(&self, plan: &Plan) -> String {
        let mut out = String::new();
        let build = if cfg!(debug_assertions) { "DEBUG build: figures are not representative; use --release" } else { "release build" };
        let _ = writeln!(
            out,
            "edge-secrets bench: {build}; median of {} batches per figure ({} for start-up and compile); ± = half the batch range / median",
            plan.batches,
            plan.compile_batches()
        );
        let _ = writeln!(
            out,
            "ops per batch: {} hits/calls, {} instances, {} misses, {} warm starts, {} artifact loads, 1 compile, {} HTTP requests on {} connections",
            plan.iterations,
            plan.instance_ops(),
            plan.miss_ops(),
            plan.runtime_ops(),
            plan.load_ops(),
            plan.serve_ops(),
            super::SERVE_CONNECTIONS
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "{:<54} {:>10} {:>6}  {:<12} result", "figure", "median", "±", "target");
        for f in &self.figures {
            let (median, spread, target) = match &f.value {
                Value::Time(s) => (nanos(s.median()), percent(s.spread()), f.target.map(|t| format!("≤ {}", nanos(t)))),
                Value::Bytes(b) => (kib(*b as f64), String::new(), f.target.map(|t| format!("≤ {}", kib(t)))),
                Value::Rate(s) => (format!("{:.0}/s", s.median()), percent(s.spread()), None),
                Value::Count(c) => (format!("{c:.2}"), String::new(), f.target.map(|t| format!("≤ {t}"))),
            };
            let value = match &f.value {
                Value::Time(s) | Value::Rate(s) => s.median(),
                Value::Bytes(b) => *b as f64,
                Value::Count(c) => *c,
            };
            let _ = writeln!(out, "{:<54} {:>10} {:>6}  {:<12} {}", f.label, median, spread, target.unwrap_or_default(), verdict(value, f.target));
        }
        let _ = writeln!(out);
        for r in &self.ratios {
            let median = r.samples.median();
            let (target, verdict) = match r.target {
                None => (String::new(), ""),
                Some(Bound::AtMost(t)) => (format!("≤ {t}×"), verdict(median, Some(t))),
                Some(Bound::AtLeast(t)) => (format!("≥ {t}×"), if median >= t { "PASS" } else { "MISS" }),
            };
            let _ = writeln!(out, "ratio  {:<47} {:>9.2}× {:>6}  {:<12} {}", r.label, median, percent(r.samples.spread()), target, verdict);
        }
        out
    }

    /// Every figure and ratio is a finite positive number (what the smoke test checks).
    pub fn all_finite_positive(&self) -> bool {
        let figures = self.figures.iter().all(|f| match &f.value {
            Value::Time(s) | Value::Rate(s) => s.all_finite_positive(),
            Value::Bytes(b) => *b > 0,
            // Zero is a real count (no writes on a hit).
            Value::Count(c) => c.is_finite() && *c >= 0.0,
        });
        figures && self.ratios.iter().all(|r| r.samples.all_finite_positive())
    }
}

fn verdict(value: f64, target: Option<f64>) -> &'static str {
    match target {
        None => "",
        Some(t) if value <= t => "PASS",
        Some(_) => "MISS",
    }
}

fn nanos(ns: f64) -> String {
    match ns {
        ns if ns < 1e3 => format!("{ns:.0} ns"),
        ns if ns < 1e6 => format!("{:.1} µs", ns / 1e3),
        ns if ns < 1e9 => format!("{:.1} ms", ns / 1e6),
        ns => format!("{:.2} s", ns / 1e9),
    }
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

fn percent(fraction: f64) -> String {
    format!("{:.0}%", fraction * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_verdicts() {
        assert_eq!((nanos(152.4), nanos(12_340.0), nanos(70_100_000.0)), ("152 ns".into(), "12.3 µs".into(), "70.1 ms".into()));
        assert_eq!(kib(138_240.0), "135.0 KiB");
        assert_eq!((verdict(2.4, Some(2.5)), verdict(2.6, Some(2.5)), verdict(1.0, None)), ("PASS", "MISS", ""));
    }
}
