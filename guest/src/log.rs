//! Structured log events, secret-free by construction: an [`Event`] has no
//! field that could hold a secret's bytes or a credential, only names, kinds,
//! numbers and a free-text `message` that callers fill from already
//! secret-free text (core [`crate::Error`] messages). The core buffers events
//! in a [`Log`]; the WASI layer drains it after every call and writes each
//! event as one JSON line ([`render`]) to stderr.

use crate::prelude::*;
use core::fmt::Write;

/// How much an event matters; a [`Log`] keeps events at or above its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// `debug`, `info`, `warn` or `error` (the policy's `log.level`).
    pub fn parse(text: &str) -> Option<Level> {
        [Level::Debug, Level::Info, Level::Warn, Level::Error].into_iter().find(|level| level.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// The longest string field kept, in bytes. Names can be arbitrary caller
/// input (an unknown environment's name, say): one request must not be able
/// to make a multi-megabyte log line.
pub const MAX_FIELD_BYTES: usize = 256;

/// One event. `event` is a fixed snake_case name (`breaker_opened`); the
/// rest is optional context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub level: Level,
    pub event: &'static str,
    pub environment: Option<String>,
    /// The secret's *name*, never its value.
    pub secret: Option<String>,
    pub backend: Option<&'static str>,
    /// Which cache tier answered or failed (1: memory, 2: shared).
    pub tier: Option<u32>,
    pub duration_ms: Option<u64>,
    pub error_kind: Option<&'static str>,
    pub trace_id: Option<String>,
    pub message: Option<String>,
}

impl Event {
    pub fn new(level: Level, event: &'static str) -> Event {
        Event {
            level,
            event,
            environment: None,
            secret: None,
            backend: None,
            tier: None,
            duration_ms: None,
            error_kind: None,
            trace_id: None,
            message: None,
        }
    }

    // Names are capped here as well as in `render`, so the buffer's memory
    // stays bounded however long the caller's names are.

    pub fn env(mut self, environment: &str) -> Self {
        self.environment = Some(capped(environment).to_string());
        self
    }

    /// The secret's name.
    pub fn secret(mut self, name: &str) -> Self {
        self.secret = Some(capped(name).to_string());
        self
    }

    pub fn backend(mut self, backend: &'static str) -> Self {
        self.backend = Some(backend);
        self
    }

    pub fn tier(mut self, tier: u32) -> Self {
        self.tier = Some(tier);
        self
    }

    pub fn duration_ms(mut self, ms: u64) -> Self {
        self.duration_ms = Some(ms);
        self
    }

    pub fn error_kind(mut self, kind: &'static str) -> Self {
        self.error_kind = Some(kind);
        self
    }

    pub fn trace(mut self, trace_id: &str) -> Self {
        self.trace_id = Some(capped(trace_id).to_string());
        self
    }

    /// Free text from the core's own (secret-free, already bounded) messages;
    /// capped only when rendered.
    pub fn message(mut self, message: String) -> Self {
        self.message = Some(message);
        self
    }
}

/// Events between two drains at most; more are dropped (and counted) so a
/// storm of failures inside one call cannot grow memory without bound.
pub const CAPACITY: usize = 256;

/// A level filter and a bounded buffer of events.
#[derive(Debug)]
pub struct Log {
    level: Level,
    events: Vec<Event>,
    dropped: u64,
}

impl Log {
    pub fn new(level: Level) -> Log {
        Log { level, events: Vec::new(), dropped: 0 }
    }

    pub fn set_level(&mut self, level: Level) {
        self.level = level;
    }

    /// Whether an event at `level` would be kept: callers check this before
    /// building an expensive event.
    pub fn enabled(&self, level: Level) -> bool {
        level >= self.level
    }

    pub fn push(&mut self, event: Event) {
        if !self.enabled(event.level) {
            return;
        }
        if self.events.len() >= CAPACITY {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.events.push(event);
    }

    /// The buffered events, oldest first; the buffer is empty afterwards.
    pub fn drain(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.events)
    }

    /// Events dropped because the buffer was full, since the log was made.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl Default for Log {
    fn default() -> Log {
        Log::new(Level::Info)
    }
}

/// One JSON object and a newline. `wall_ms` is Unix time in milliseconds.
/// Fields that are `None` are left out.
pub fn render(event: &Event, wall_ms: u64) -> String {
    let mut out = String::with_capacity(128);
    let _ = write!(out, "{{\"ts_ms\":{wall_ms}");
    string_field(&mut out, "level", Some(event.level.as_str()));
    string_field(&mut out, "event", Some(event.event));
    string_field(&mut out, "env", event.environment.as_deref());
    string_field(&mut out, "secret", event.secret.as_deref());
    string_field(&mut out, "backend", event.backend);
    number_field(&mut out, "tier", event.tier.map(u64::from));
    number_field(&mut out, "duration_ms", event.duration_ms);
    string_field(&mut out, "error_kind", event.error_kind);
    string_field(&mut out, "trace_id", event.trace_id.as_deref());
    string_field(&mut out, "message", event.message.as_deref());
    out.push_str("}\n");
    out
}

fn number_field(out: &mut String, key: &str, value: Option<u64>) {
    if let Some(value) = value {
        let _ = write!(out, ",\"{key}\":{value}");
    }
}

fn string_field(out: &mut String, key: &str, value: Option<&str>) {
    let Some(value) = value else { return };
    let _ = write!(out, ",\"{key}\":\"");
    // Byte-wise (smaller code than decoding chars): runs of plain text are
    // copied as they are; quotes, backslashes and control characters (C0,
    // DEL, and C1, which UTF-8 writes as 0xC2 0x80..=0x9F) are escaped, so
    // none reaches a terminal or a line-based collector raw. Every cut is at
    // an ASCII byte or a 0xC2 lead byte: always a char boundary.
    let text = capped(value);
    let bytes = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        let c1 = b == 0xc2 && bytes.get(i + 1).is_some_and(|next| (0x80..0xa0).contains(next));
        if !(b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f || c1) {
            i += 1;
            continue;
        }
        out.push_str(text.get(start..i).unwrap_or_default());
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            _ => {
                let _ = write!(out, "\\u{:04x}", if c1 { bytes[i + 1] } else { b });
            }
        }
        i += if c1 { 2 } else { 1 };
        start = i;
    }
    out.push_str(text.get(start..).unwrap_or_default());
    out.push('"');
}

/// `text` cut to at most [`MAX_FIELD_BYTES`], on a char boundary.
fn capped(text: &str) -> &str {
    if text.len() <= MAX_FIELD_BYTES {
        return text;
    }
    let mut end = MAX_FIELD_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(line: &str) -> Value {
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'), "not one line: {line:?}");
        serde_json::from_str(line).unwrap_or_else(|e| panic!("invalid JSON {line:?}: {e}"))
    }

    #[test]
    fn levels_parse_and_order() {
        for level in [Level::Debug, Level::Info, Level::Warn, Level::Error] {
            assert_eq!(Level::parse(level.as_str()), Some(level));
        }
        assert_eq!(Level::parse("INFO"), None);
        assert_eq!(Level::parse("trace"), None);
        assert!(Level::Debug < Level::Info && Level::Info < Level::Warn && Level::Warn < Level::Error);
    }

    #[test]
    fn renders_every_field_in_order_and_omits_none() {
        let event = Event::new(Level::Warn, "breaker_opened")
            .env("prod")
            .secret("app/db")
            .backend("vault")
            .tier(2)
            .duration_ms(17)
            .error_kind("timeout")
            .trace("4bf92f3577b34da6a3ce929d0e0e4736")
            .message("3 failures".into());
        assert_eq!(
            render(&event, 1_700_000_000_123),
            concat!(
                r#"{"ts_ms":1700000000123,"level":"warn","event":"breaker_opened","env":"prod","secret":"app/db","#,
                r#""backend":"vault","tier":2,"duration_ms":17,"error_kind":"timeout","#,
                r#""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","message":"3 failures"}"#,
                "\n"
            )
        );
        assert_eq!(render(&Event::new(Level::Info, "ready"), 0), "{\"ts_ms\":0,\"level\":\"info\",\"event\":\"ready\"}\n");
        let max = parse(&render(&Event::new(Level::Debug, "x").duration_ms(u64::MAX).tier(10), u64::MAX));
        assert_eq!((max["ts_ms"].as_u64(), max["duration_ms"].as_u64(), max["tier"].as_u64()), (Some(u64::MAX), Some(u64::MAX), Some(10)));
    }

    #[test]
    fn hostile_names_render_as_valid_single_line_json() {
        let name = "a\"b\\c\nd\re\tf\u{0}g\u{1b}[31mh\u{7f}i\u{85}j\u{2028}é";
        let line = render(&Event::new(Level::Error, "x").env(name).secret(name).message(name.into()), 0);
        let doc = parse(&line);
        assert_eq!(doc["env"], name);
        assert_eq!(doc["secret"], name);
        assert_eq!(doc["message"], name);
        assert!(!line.trim_end_matches('\n').contains(char::is_control), "raw control character in {line:?}");
    }

    #[test]
    fn long_strings_are_capped_on_a_char_boundary() {
        // 'é' is two bytes: 255 'x' then 'é' straddles the cap.
        let long = format!("{}{}", "x".repeat(255), "é".repeat(1000));
        let event = Event::new(Level::Info, "x").env(&long).secret(&long).trace(&long).message(long.clone());
        for kept in [&event.environment, &event.secret, &event.trace_id] {
            assert_eq!(kept.as_deref(), Some("x".repeat(255).as_str()));
        }
        assert_eq!(parse(&render(&event, 0))["message"].as_str().unwrap(), "x".repeat(255));
        // Fields set directly (they are public) are capped when rendered.
        let mut raw = Event::new(Level::Info, "x");
        raw.environment = Some("é".repeat(1000));
        let doc = parse(&render(&raw, 0));
        assert_eq!(doc["env"].as_str().unwrap(), "é".repeat(128));
    }

    #[test]
    fn the_level_filters_events() {
        let mut log = Log::default();
        assert!(!log.enabled(Level::Debug) && log.enabled(Level::Info));
        log.push(Event::new(Level::Debug, "hidden"));
        log.push(Event::new(Level::Info, "shown"));
        log.set_level(Level::Error);
        log.push(Event::new(Level::Warn, "hidden"));
        log.push(Event::new(Level::Error, "shown"));
        let names: Vec<&str> = log.drain().iter().map(|e| e.event).collect();
        assert_eq!(names, ["shown", "shown"]);
        assert_eq!(log.dropped(), 0, "filtered events are not drops");
    }

    #[test]
    fn the_buffer_is_bounded_between_drains() {
        let mut log = Log::new(Level::Debug);
        for _ in 0..CAPACITY + 10 {
            log.push(Event::new(Level::Info, "e"));
        }
        assert_eq!(log.drain().len(), CAPACITY);
        assert_eq!(log.dropped(), 10);
        assert!(log.drain().is_empty());
        log.push(Event::new(Level::Info, "after"));
        assert_eq!(log.drain().len(), 1, "a drain makes room again");
        assert_eq!(log.dropped(), 10);
    }
}
