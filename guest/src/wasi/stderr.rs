//! The log sink: events as JSON lines on `wasi:cli/stderr`.

use crate::prelude::*;
use super::platform::WasiClock;
use super::wasi::cli::stderr;
use crate::engine::Clock;
use crate::log::{render, Event};

/// `blocking-write-and-flush` accepts at most 4096 bytes per call.
const CHUNK: usize = 4096;

/// Writes `events`, ignoring write errors: a log sink that fails (closed,
/// full, refused by the host) must never fail the read that logged.
pub fn write(events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    let now = WasiClock.wall_ms();
    let mut text = String::new();
    for event in &events {
        text.push_str(&render(event, now));
    }
    let stream = stderr::get_stderr();
    for chunk in text.as_bytes().chunks(CHUNK) {
        if stream.blocking_write_and_flush(chunk).is_err() {
            return;
        }
    }
}
