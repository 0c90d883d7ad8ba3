//! The `[policy]` table, re-encoded as the JSON document the component reads from
//! `secrets_policy`. Keys keep their order in the file (the component reports environments in
//! configuration order), and TOML-only values with no JSON equivalent are rejected by key.

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A value that cannot be expressed in JSON: the dotted key path, the byte span, and why.
pub(super) struct JsonError {
    pub path: String,
    pub span: std::ops::Range<usize>,
    pub message: String,
}

pub(super) fn table_to_json(table: &DeTable<'_>, path: &str) -> Result<String, JsonError> {
    let mut out = String::new();
    write_table(table, path, &mut out)?;
    Ok(out)
}

fn write_table(table: &DeTable<'_>, path: &str, out: &mut String) -> Result<(), JsonError> {
    out.push('{');
    for (i, (key, value)) in table.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let key_path = format!("{path}.{}", key.get_ref());
        push_json_string(key.get_ref(), out);
        out.push(':');
        write_value(value, &key_path, out)?;
    }
    out.push('}');
    Ok(())
}

fn write_value(value: &Spanned<DeValue<'_>>, path: &str, out: &mut String) -> Result<(), JsonError> {
    let fail = |message: &str| JsonError { path: path.to_string(), span: value.span(), message: message.to_string() };
    match value.get_ref() {
        DeValue::String(s) => push_json_string(s, out),
        DeValue::Integer(i) => {
            let n = i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| fail("integer out of range"))?;
            out.push_str(&n.to_string());
        }
        DeValue::Float(f) => {
            let n: f64 = f.as_str().parse().map_err(|_| fail("invalid float"))?;
            if !n.is_finite() {
                return Err(fail("inf and nan have no JSON equivalent"));
            }
            out.push_str(&serde_json::to_string(&n).map_err(|_| fail("invalid float"))?);
        }
        DeValue::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        DeValue::Datetime(_) => return Err(fail("dates and times are not policy values (write a number or a string)")),
        DeValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, &format!("{path}[{i}]"), out)?;
            }
            out.push(']');
        }
        DeValue::Table(t) => write_table(t, path, out)?,
    }
    Ok(())
}

fn push_json_string(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).expect("a string always serializes"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_json(src: &str) -> Result<String, JsonError> {
        let doc = DeTable::parse(src).unwrap_or_else(|e| panic!("{}", e.message()));
        let policy = doc.get_ref().get("policy").unwrap();
        match policy.get_ref() {
            DeValue::Table(t) => table_to_json(t, "policy"),
            _ => panic!("policy is not a table"),
        }
    }

    #[test]
    fn keeps_file_order_and_types() {
        let json = policy_json(
            "[policy.environments.zeta]\nbackend = \"vault\"\nretry = { attempts = 0x10 }\n\
             [policy.environments.alpha]\nurl = \"http://x\"\nratio = 0.5\non = true\nlist = [1, \"a\\\"b\"]\n",
        )
        .unwrap_or_else(|e| panic!("{}: {}", e.path, e.message));
        assert_eq!(
            json,
            r#"{"environments":{"zeta":{"backend":"vault","retry":{"attempts":16}},"alpha":{"url":"http://x","ratio":0.5,"on":true,"list":[1,"a\"b"]}}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["environments"]["zeta"]["retry"]["attempts"], 16);
    }

    #[test]
    fn rejects_datetimes_and_nan_by_path() {
        let src = "[policy.defaults]\nwhen = 1979-05-27\n";
        let err = policy_json(src).expect_err("datetime must be rejected");
        assert_eq!(err.path, "policy.defaults.when");
        assert!(src[err.span.clone()].starts_with("1979"));
        let err = policy_json("[policy]\nx = [1, nan]\n").expect_err("nan must be rejected");
        assert_eq!(err.path, "policy.x[1]");
    }
}
