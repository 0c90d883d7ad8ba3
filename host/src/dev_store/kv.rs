//! The dev store's in-memory KV v2 engine: versioned secrets and their metadata.
//!
//! Versions are immutable and numbered from 1; `latest` is the highest. Nothing is ever
//! deleted (the dev store has no delete API), so every version stays readable.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::seed::{Fields, Seed};

/// A KV path in the grammar the component accepts: segments of `[A-Za-z0-9._-]`, no empty,
/// `.` or `..` segments. The store enforces it too, so anything the dev store holds can be read.
pub(crate) fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

struct Version {
    fields: Fields,
    created_time: String,
}

/// Why a write was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// `options.cas` did not match the current version (Vault answers 400).
    CasMismatch,
}

/// Path → versions (index 0 is version 1).
#[derive(Default)]
pub(crate) struct Kv {
    secrets: BTreeMap<String, Vec<Version>>,
}

impl Kv {
    pub(crate) fn from_seed(seed: Seed) -> Kv {
        let now = rfc3339(SystemTime::now());
        let secrets = seed
            .into_entries()
            .into_iter()
            .map(|(path, versions)| {
                let versions = versions
                    .into_iter()
                    .map(|fields| Version {
                        fields,
                        created_time: now.clone(),
                    })
                    .collect();
                (path, versions)
            })
            .collect();
        Kv { secrets }
    }

    /// The fields and metadata of `version` (`None` = latest), or `None` if it does not exist.
    pub(crate) fn read(&self, path: &str, version: Option<u64>) -> Option<(&Fields, Value)> {
        let versions = self.secrets.get(path)?;
        let n = match version {
            None => versions.len() as u64,
            Some(n) => n,
        };
        let index = usize::try_from(n.checked_sub(1)?).ok()?;
        let v = versions.get(index)?;
        Some((&v.fields, metadata(n, &v.created_time)))
    }

    /// Stores a new version of `path` and returns its metadata. `cas` is Vault's
    /// check-and-set: the write succeeds only if the current version is `cas` (0 = absent).
    pub(crate) fn write(
        &mut self,
        path: &str,
        fields: Fields,
        cas: Option<u64>,
    ) -> Result<Value, WriteError> {
        let versions = self.secrets.entry(path.to_owned()).or_default();
        if cas.is_some_and(|cas| cas != versions.len() as u64) {
            return Err(WriteError::CasMismatch);
        }
        let created_time = rfc3339(SystemTime::now());
        let meta = metadata(versions.len() as u64 + 1, &created_time);
        versions.push(Version {
            fields,
            created_time,
        });
        Ok(meta)
    }
}

/// KV v2 version metadata, as Vault returns it beside the data and after a write.
fn metadata(version: u64, created_time: &str) -> Value {
    json!({
        "created_time": created_time,
        "custom_metadata": null,
        "deletion_time": "",
        "destroyed": false,
        "version": version,
    })
}

/// RFC 3339 UTC with nanoseconds, like Vault's `created_time` (`2024-05-01T12:00:00.123456789Z`).
/// Hand-rolled (civil-from-days) to keep a date crate out of the host for one timestamp.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (non-negative here).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:09}Z",
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn paths_follow_the_component_grammar() {
        for ok in ["app/db", "a", "A-b_c.d/e", "x/.hidden"] {
            assert!(valid_path(ok), "{ok}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "a/../b", "..", ".", "a b", "a%2Fb", "ä",
        ] {
            assert!(!valid_path(bad), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        // 2024-02-29T23:59:59.5Z: a leap day and the end of a day.
        let t = UNIX_EPOCH + Duration::new(1_709_251_199, 500_000_000);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.500000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn versions_and_check_and_set() {
        let mut kv = Kv::default();
        let f = |v: &str| Fields::from_iter([("value".to_owned(), Value::from(v))]);
        assert!(kv.read("a", None).is_none());
        assert_eq!(
            kv.write("a", f("one"), Some(1)),
            Err(WriteError::CasMismatch)
        );
        assert_eq!(kv.write("a", f("one"), Some(0)).unwrap()["version"], 1);
        assert_eq!(kv.write("a", f("two"), None).unwrap()["version"], 2);
        let (fields, meta) = kv.read("a", None).unwrap();
        assert_eq!(
            (fields["value"].as_str(), &meta["version"]),
            (Some("two"), &json!(2))
        );
        assert_eq!(kv.read("a", Some(1)).unwrap().0["value"], "one");
        assert!(kv.read("a", Some(3)).is_none());
        assert!(
            kv.read("a", Some(0)).is_none(),
            "callers map version=0 to latest"
        );
    }
}
