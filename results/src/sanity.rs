//! The counts a results file may hold, checked when it is read.
//!
//! `report`, `compare` and `merge` add counts up (members over workers, errors over kinds,
//! seconds over the timeline, parts over files). A doctored or corrupt file with counts near
//! `u64::MAX` would overflow those sums: a panic in a debug build, silently wrapped figures in a
//! release one. No run reaches 2^53 of anything (a million deliveries a second for 285 years),
//! and JavaScript readers of results.json lose precision beyond it; so a file with a larger
//! integer, or with a list or map whose integers add up past 2^62, is refused with the JSON path
//! of the offending value. Every sum the tools compute then fits in a u64.

use std::fmt::Write as _;

use anyhow::bail;
use serde_json::Value;

/// The largest integer a results file may hold (JavaScript's `Number.MAX_SAFE_INTEGER`).
pub const MAX_COUNT: u64 = (1 << 53) - 1;

/// The largest sum of one list's or one map's integers.
const MAX_SUM: u64 = 1 << 62;

/// Refuses a document with an integer above [`MAX_COUNT`] or a list or map whose integers add
/// up past 2^62 (per field, for a list of objects).
pub fn check_counts(doc: &Value) -> anyhow::Result<()> {
    walk(doc, &mut String::new())
}

fn walk(value: &Value, path: &mut String) -> anyhow::Result<()> {
    match value {
        Value::Number(n) => check_number(n, path),
        Value::Object(map) => {
            let mut sum = 0u64;
            for (key, item) in map {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                walk(item, path)?;
                path.truncate(len);
                sum = add(sum, item, path, key)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            let mut sums = std::collections::BTreeMap::<&str, u64>::new();
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                walk(item, path)?;
                path.truncate(len);
                if let Value::Object(fields) = item {
                    for (key, field) in fields {
                        let sum = sums.entry(key).or_default();
                        *sum = add(*sum, field, path, key)?;
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_number(n: &serde_json::Number, path: &str) -> anyhow::Result<()> {
    if n.as_u64().is_some_and(|v| v > MAX_COUNT)
        || n.as_i64().is_some_and(|v| v < -(MAX_COUNT as i64))
    {
        bail!(
            "{} = {n}: beyond any count a run can reach (at most {MAX_COUNT})",
            at(path)
        );
    }
    Ok(())
}

fn add(sum: u64, item: &Value, path: &str, key: &str) -> anyhow::Result<u64> {
    let Some(n) = item.as_u64() else {
        return Ok(sum);
    };
    match sum.checked_add(n) {
        Some(total) if total <= MAX_SUM => Ok(total),
        _ => bail!(
            "{}: the values of `{key}` add up beyond any count a run can reach",
            at(path)
        ),
    }
}

fn at(path: &str) -> &str {
    if path.is_empty() {
        "the document"
    } else {
        path.trim_start_matches('.')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_a_run_can_reach_pass() {
        let doc = json!({"workers": [{"members": 3, "delivered": MAX_COUNT}], "errors": {"a": 1}});
        check_counts(&doc).expect("fine");
    }

    #[test]
    fn a_count_beyond_2_53_is_refused_with_its_path() {
        let doc = json!({"workers": [{"members": 3}, {"members": u64::MAX}]});
        let e = check_counts(&doc).expect_err("refused").to_string();
        assert!(
            e.starts_with("workers[1].members = 18446744073709551615"),
            "{e}"
        );
    }

    #[test]
    fn a_list_whose_counts_add_up_past_2_62_is_refused() {
        let many: Vec<_> = (0..1_000)
            .map(|_| json!({"delivered": MAX_COUNT}))
            .collect();
        let e = check_counts(&json!({"timeline": many}))
            .expect_err("refused")
            .to_string();
        assert!(e.contains("`delivered` add up"), "{e}");
        let e = check_counts(&json!({"errors": {"a": MAX_COUNT, "b": MAX_COUNT}}));
        assert!(e.is_ok(), "two large counts still add up: {e:?}");
    }
}
