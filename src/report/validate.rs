//! The numbers of a saved report, checked when it is read back: a report
//! someone edited or another program wrote may hold values no run can
//! produce (a time of 1.7e308 s, a negative duration, a fraction of 7).
//! Every number is checked by its key, so fields added later are checked
//! too.

use serde_json::Value;

use crate::limits::{self, Quantity};

/// Any other number: a count, a line, a row estimate, a model parameter.
const ANY: Quantity = Quantity {
    what: "a number in a report",
    min: -1e15,
    min_inclusive: true,
    max: 1e15,
    integer: false,
    range: "from -1e15 to 1e15",
};

/// Change in percent: negative is faster.
const CHANGE: Quantity = Quantity {
    what: "a change in percent",
    min: -100.0,
    min_inclusive: true,
    max: 1e12,
    integer: false,
    range: "from -100 to 1e12",
};

/// Growth as a fraction per month: above -1 (all rows gone).
const GROWTH: Quantity = Quantity {
    what: "a monthly growth",
    min: -1.0,
    min_inclusive: false,
    max: 1e6,
    integer: false,
    range: "greater than -1 and at most 1e6",
};

/// What a number under `key` may be.
fn quantity(key: &str) -> Quantity {
    match key {
        k if k.ends_with("seconds") => limits::MEASURED_SECONDS,
        "min" | "median" | "max" | "mad" | "ci_low" | "ci_high" | "low" | "high" | "samples"
        | "residual" | "loo_rmse" => limits::MEASURED_SECONDS,
        "bulk_write_fraction" | "scales" => limits::FRACTION,
        "threshold_percent" => limits::PERCENT,
        "change_percent" => CHANGE,
        "monthly_growth" | "growth_per_month" => GROWTH,
        _ => ANY,
    }
}

/// The first impossible number in `v`: "patches[3].seconds is 1.7e308: …".
pub(super) fn check(v: &Value) -> Result<(), String> {
    walk(v, "", "")
}

fn walk(v: &Value, path: &str, key: &str) -> Result<(), String> {
    match v {
        Value::Number(n) => {
            // serde_json reads every JSON number as an f64 at worst.
            let x = n.as_f64().unwrap_or(f64::INFINITY);
            quantity(key)
                .check(x)
                .map(drop)
                .map_err(|why| format!("{path} = {why}"))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| walk(item, &format!("{path}[{i}]"), key)),
        Value::Object(fields) => fields.iter().try_for_each(|(k, item)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            walk(item, &p, k)
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_numbers_are_named_by_their_path() {
        let ok = serde_json::json!({"patches": [{"seconds": 1.5, "rows": -1,
            "statements": [{"stats": {"samples": [0.1, 0.2]}}]}]});
        assert_eq!(check(&ok), Ok(()));
        for (bad, at) in [
            (
                serde_json::json!({"patches": [{"seconds": 1.7e308}]}),
                "patches[0].seconds = 1.7e308",
            ),
            (
                serde_json::json!({"total_seconds": -1.0}),
                "total_seconds = -1",
            ),
            (
                serde_json::json!({"patches": [{"timing": {"warm": {"samples": [1.0, -2.0]}}}]}),
                "patches[0].timing.warm.samples[1] = -2",
            ),
            (
                serde_json::json!({"policy": {"classify": {"bulk_write_fraction": 7}}}),
                "bulk_write_fraction = 7",
            ),
            (
                serde_json::json!({"rows_affected": 18446744073709551615u64}),
                "rows_affected = 1.8",
            ),
        ] {
            let e = check(&bad).unwrap_err();
            assert!(e.contains(at), "{e}");
        }
    }
}
