//! [`RedisBackend`]: buckets in a Redis server, so that hosts on many machines share one cache
//! and one breaker state (the scaling model: many instances, one key-value store).
//!
//! Each bucket's keys are stored as `edge-secrets:<bucket>:<key>`. Compare-and-swap is a Lua
//! script, which Redis runs atomically. Connections are pooled (one per concurrent caller) and
//! bounded by timeouts, so a hung Redis fails calls (and the component degrades to memory)
//! instead of hanging them.

use std::sync::Mutex;
use std::time::Duration;

use redis::{Client, Connection, Script};

use super::{Bounded, KvBackend, KvError, ValueLimits};

const TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS[1]: the key. ARGV[1]: "1" if a value is expected, else "0". ARGV[2]: the expected value.
/// ARGV[3]: the new value. ARGV[4]: the length above which a value counts as absent (as reads
/// answer it; a value of another type too). Returns 1 when written.
const CAS_SCRIPT: &str = r"
local present = redis.call('TYPE', KEYS[1])['ok'] == 'string'
  and redis.call('STRLEN', KEYS[1]) <= tonumber(ARGV[4])
if ARGV[1] == '0' then
  if present then return 0 end
elseif not present or redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
";

/// KEYS: the keys. ARGV[1]: the most bytes per value, ARGV[2]: in all. One answer per key: the
/// value, nil (absent, or not a string), or the length of a value above the bounds, which is
/// never sent (`STRLEN` first): a planted 150 MB value costs a few bytes on the wire.
const READ_SCRIPT: &str = r"
local out, budget = {}, tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  if redis.call('TYPE', key)['ok'] ~= 'string' then
    out[i] = false
  else
    local n = redis.call('STRLEN', key)
    if n > tonumber(ARGV[1]) or n > budget then
      out[i] = n
    else
      budget = budget - n
      out[i] = redis.call('GET', key)
    end
  end
end
return out
";

pub struct RedisBackend {
    client: Client,
    idle: Mutex<Vec<Connection>>,
    cas: Script,
    read: Script,
}

fn error(e: redis::RedisError) -> KvError {
    // Redis errors name the command and the server's reason; they never carry values.
    KvError(format!("redis: {e}"))
}

impl RedisBackend {
    /// Connects to `url` (`redis://host:port[/db]`) and checks the server answers.
    pub fn connect(url: &str) -> Result<RedisBackend, KvError> {
        let client = Client::open(url).map_err(|e| KvError(format!("invalid Redis URL: {e}")))?;
        let backend = RedisBackend { client, idle: Mutex::new(Vec::new()), cas: Script::new(CAS_SCRIPT), read: Script::new(READ_SCRIPT) };
        backend.with(|c| redis::cmd("PING").query::<String>(c))?;
        Ok(backend)
    }

    /// Runs `op` on a pooled connection; a connection that failed is dropped, not reused.
    fn with<R>(&self, op: impl FnOnce(&mut Connection) -> redis::RedisResult<R>) -> Result<R, KvError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = self.client.get_connection_with_timeout(TIMEOUT).map_err(error)?;
                conn.set_read_timeout(Some(TIMEOUT)).map_err(error)?;
                conn.set_write_timeout(Some(TIMEOUT)).map_err(error)?;
                conn
            }
        };
        let result = op(&mut conn).map_err(error);
        if result.is_ok() {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        }
        result
    }
}

fn key_of(bucket: &str, key: &str) -> String {
    format!("edge-secrets:{bucket}:{key}")
}

impl KvBackend for RedisBackend {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.with(|c| redis::cmd("GET").arg(key_of(bucket, key)).query(c))
    }

    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.with(|c| redis::cmd("SET").arg(key_of(bucket, key)).arg(value).query(c))
    }

    fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.with(|c| redis::cmd("DEL").arg(key_of(bucket, key)).query(c))
    }

    fn keys(&self, bucket: &str) -> Result<Vec<String>, KvError> {
        let prefix = key_of(bucket, "");
        let full: Vec<String> = self.with(|c| {
            let iter = redis::cmd("SCAN").cursor_arg(0).arg("MATCH").arg(format!("{prefix}*")).clone().iter::<String>(c)?;
            Ok(iter.collect())
        })?;
        Ok(full.into_iter().filter_map(|k| k.strip_prefix(&prefix).map(str::to_string)).collect())
    }

    fn read_bounded(&self, bucket: &str, keys: &[String], limits: ValueLimits) -> Result<Vec<Bounded>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One round trip: a shared hit's epoch and entry, or every count shard and breaker for
        // `stats`, lengths checked on the server before any value is sent.
        let answers: Vec<redis::Value> = self.with(|c| {
            let mut invocation = self.read.prepare_invoke();
            for key in keys {
                invocation.key(key_of(bucket, key));
            }
            invocation.arg(limits.per_value).arg(limits.per_read).invoke(c)
        })?;
        answers
            .into_iter()
            .map(|answer| match answer {
                redis::Value::Nil => Ok(Bounded::Absent),
                redis::Value::BulkString(bytes) => Ok(Bounded::Value(bytes)),
                redis::Value::Int(len) => Ok(Bounded::TooLarge(len.max(0) as u64)),
                _ => Err(KvError("redis: the read script answered an unexpected type".into())),
            })
            .collect()
    }

    fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        self.with(|c| redis::cmd("INCRBY").arg(key_of(bucket, key)).arg(delta).query(c))
    }

    fn compare_and_swap(&self, bucket: &str, key: &str, expected: Option<&[u8]>, value: &[u8], absent_above: usize) -> Result<bool, KvError> {
        let written: i64 = self.with(|c| {
            self.cas
                .key(key_of(bucket, key))
                .arg(if expected.is_some() { "1" } else { "0" })
                .arg(expected.unwrap_or_default())
                .arg(value)
                .arg(absent_above)
                .invoke(c)
        })?;
        Ok(written == 1)
    }
}
