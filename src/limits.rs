//! Every number a user gives downtime, on the command line or in
//! `downtime.toml`, and the range it must lie in: one table, checked in one
//! place. Flags check through [`Quantity::parse`] (clap names the flag),
//! the config file through [`Quantity::check`] (the caller names file and
//! line). Seconds become a [`Duration`] only through [`duration`], which
//! cannot panic.

use std::time::Duration;

/// PostgreSQL's largest `statement_timeout` (and `lock_timeout`):
/// `INT_MAX` milliseconds, about 24.8 days.
pub const PG_TIMEOUT_MAX_SECONDS: f64 = 2_147_483.647;

/// The longest budget, threshold or run cap: 365 days.
pub const SECONDS_MAX: f64 = 31_536_000.0;

/// A kind of number and the values it may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity {
    /// What the number is, for messages: "seconds", "a fraction", ...
    pub what: &'static str,
    pub min: f64,
    /// Whether `min` itself is allowed (a fraction may not be 0).
    pub min_inclusive: bool,
    pub max: f64,
    /// Whole numbers only.
    pub integer: bool,
    /// How the range reads in a message.
    pub range: &'static str,
}

/// Budgets, thresholds, sign-off maxima, `--max-run-seconds`: a millisecond
/// (PostgreSQL's resolution) up to a year.
pub const SECONDS: Quantity = Quantity {
    what: "seconds",
    min: 0.001,
    min_inclusive: true,
    max: SECONDS_MAX,
    integer: false,
    range: "from 0.001 to 31536000 (365 days)",
};

/// `--timeout` / `timeout-seconds`: sent to the server as `statement_timeout`,
/// which takes at most `INT_MAX` milliseconds.
pub const STATEMENT_TIMEOUT: Quantity = Quantity {
    what: "seconds",
    min: 0.001,
    min_inclusive: true,
    max: PG_TIMEOUT_MAX_SECONDS,
    integer: false,
    range: "from 0.001 to 2147483.647 (PostgreSQL's largest statement_timeout, 2147483647 ms)",
};

/// `[staging.command] timeout-seconds`: how long a provisioner's `create`
/// or `destroy` may run, a second up to a day.
pub const COMMAND_SECONDS: Quantity = Quantity {
    what: "seconds",
    min: 1.0,
    min_inclusive: true,
    max: 86_400.0,
    integer: false,
    range: "from 1 to 86400 (a day)",
};

/// `--bulk-write-fraction`, `--scales`: a share of a table's rows.
pub const FRACTION: Quantity = Quantity {
    what: "a fraction",
    min: 0.0,
    min_inclusive: false,
    max: 1.0,
    integer: false,
    range: "greater than 0 and at most 1",
};

/// `--regression-threshold`: percent slower.
pub const PERCENT: Quantity = Quantity {
    what: "a percentage",
    min: 0.0,
    min_inclusive: true,
    max: 100_000.0,
    integer: false,
    range: "from 0 to 100000",
};

/// `--growth`, once turned into a monthly fraction: from shrinking by 99 %
/// to growing tenfold a month.
pub const MONTHLY_GROWTH: Quantity = Quantity {
    what: "a monthly growth",
    min: -0.99,
    min_inclusive: true,
    max: 10.0,
    integer: false,
    range: "from -99%/month to 1000%/month",
};

/// `--runs`.
pub const RUNS: Quantity = Quantity {
    what: "a number of runs",
    min: 1.0,
    min_inclusive: true,
    max: 1000.0,
    integer: true,
    range: "from 1 to 1000",
};

/// `--warmup`.
pub const WARMUP: Quantity = Quantity {
    what: "a number of runs",
    min: 0.0,
    min_inclusive: true,
    max: 100.0,
    integer: true,
    range: "from 0 to 100",
};

/// A time read back from a file downtime wrote (a report, the history):
/// never negative, and no run takes 30 years.
pub const MEASURED_SECONDS: Quantity = Quantity {
    what: "measured seconds",
    min: 0.0,
    min_inclusive: true,
    max: 1e9,
    integer: false,
    range: "from 0 to 1e9",
};

/// A table's rows in a stats file (PostgreSQL's estimate, a float).
pub const ROWS: Quantity = Quantity {
    what: "a row count",
    min: 0.0,
    min_inclusive: true,
    max: 1e15,
    integer: false,
    range: "from 0 to 1e15",
};

/// `--probe-rate`, `-- rate:` in a probe script: queries per second.
pub const PROBE_RATE: Quantity = Quantity {
    what: "queries per second",
    min: 0.01,
    min_inclusive: true,
    max: 10_000.0,
    integer: false,
    range: "from 0.01 to 10000",
};

/// `--probe-sessions`.
pub const PROBE_SESSIONS: Quantity = Quantity {
    what: "a number of sessions",
    min: 1.0,
    min_inclusive: true,
    max: 256.0,
    integer: true,
    range: "from 1 to 256",
};

/// `--probe-tables`.
pub const PROBE_TABLES: Quantity = Quantity {
    what: "a number of tables",
    min: 1.0,
    min_inclusive: true,
    max: 10_000.0,
    integer: true,
    range: "from 1 to 10000",
};

/// A number for a message: plain when short, else in exponent form (so
/// `1e308` is not printed with 309 digits).
pub fn show(v: f64) -> String {
    let a = v.abs();
    if v.is_finite() && a != 0.0 && !(1e-4..1e9).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

impl Quantity {
    /// Whether `v` is in range.
    pub fn contains(&self, v: f64) -> bool {
        v.is_finite()
            && (v > self.min || (self.min_inclusive && v == self.min))
            && v <= self.max
            && (!self.integer || v.fract() == 0.0)
    }

    /// `v` when in range, else a message saying what is allowed (without
    /// naming where the number came from: the caller adds that).
    pub fn check(&self, v: f64) -> Result<f64, String> {
        if self.contains(v) {
            return Ok(v);
        }
        let shown = show(v);
        Err(if !v.is_finite() {
            format!(
                "{shown} is not a finite number; {} must be {}",
                self.what, self.range
            )
        } else if self.integer && v.fract() != 0.0 {
            format!(
                "{shown} is not a whole number; {} must be {}",
                self.what, self.range
            )
        } else {
            format!(
                "{shown} is out of range; {} must be {}",
                self.what, self.range
            )
        })
    }

    /// Parse and check a number as written on the command line.
    pub fn parse(&self, s: &str) -> Result<f64, String> {
        let t = s.trim();
        let v: f64 = t.parse().map_err(|_| {
            format!(
                "`{s}` is not a number; {} must be {}",
                self.what, self.range
            )
        })?;
        if !v.is_finite() {
            return Err(format!(
                "`{s}` is not a finite number; {} must be {}",
                self.what, self.range
            ));
        }
        self.check(v)
    }

    /// Parse and check a whole number.
    pub fn parse_count(&self, s: &str) -> Result<u32, String> {
        let v = self.parse(s)?;
        // In range means a whole number no larger than `max`, which fits.
        Ok(v as u32)
    }
}

/// Seconds as a [`Duration`], for a number that may not have been checked:
/// negative, NaN, infinite or too large for a `Duration` is an error, never
/// a panic.
pub fn duration(seconds: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{} is not a duration in seconds", show(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold_their_ends_and_nothing_else() {
        assert_eq!(SECONDS.parse("15"), Ok(15.0));
        assert_eq!(SECONDS.parse("0.001"), Ok(0.001));
        assert!(SECONDS.parse("0").is_err());
        assert!(SECONDS.parse("31536000.5").is_err());
        for bad in ["1e308", "-1", "NaN", "inf", "-inf", "", "1s", "0x10"] {
            assert!(SECONDS.parse(bad).is_err(), "{bad}");
        }
        assert!(STATEMENT_TIMEOUT.parse("2147483.647").is_ok());
        assert!(STATEMENT_TIMEOUT.parse("2147483.648").is_err());
        assert!(FRACTION.parse("1").is_ok());
        assert!(FRACTION.parse("0").is_err());
        assert!(FRACTION.parse("7").is_err());
        assert_eq!(RUNS.parse_count("5"), Ok(5));
        assert!(RUNS.parse_count("0").is_err());
        assert!(RUNS.parse_count("2.5").is_err());
        assert!(WARMUP.parse_count("0").is_ok());
        let e = SECONDS.parse("1e308").unwrap_err();
        assert!(e.starts_with("1e308 is out of range"), "{e}");
    }

    #[test]
    fn durations_never_panic() {
        assert_eq!(duration(1.5), Ok(Duration::from_millis(1500)));
        for bad in [f64::NAN, f64::INFINITY, -1.0, 1e300] {
            assert!(duration(bad).is_err());
        }
    }
}
