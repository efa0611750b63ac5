//! A long fuzz run of the statement splitter and the patch-name parser: the
//! properties `tests/properties.rs` checks on every test run (no panic,
//! statements are exact slices of the input with the right lines, the input
//! between statements holds no SQL, each statement splits back to itself),
//! on fresh random input until the time is up.
//!
//! ```sh
//! cargo run --release --example fuzz_split -- 600   # seconds; default 60
//! DOWNTIME_FUZZ_SECONDS=600 cargo run --release --example fuzz_split
//! ```
//!
//! Exits 0 when no case failed, 1 with the failing (shrunk) input when one
//! did, 2 when the duration is not a number of seconds.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Seconds when neither the argument nor DOWNTIME_FUZZ_SECONDS gives them.
const DEFAULT_SECONDS: u64 = 60;

/// Cases per property and round; each round has a fresh random seed.
const CASES: u32 = 10_000;

#[path = "../tests/common/sqlish.rs"]
mod sqlish;

use sqlish::{check_name, check_split, sqlish};

/// The run's length: the first argument, else DOWNTIME_FUZZ_SECONDS, else
/// the default.
fn seconds() -> Result<u64, String> {
    let (from, value) = match std::env::args().nth(1) {
        Some(arg) => ("the argument", arg),
        None => match std::env::var("DOWNTIME_FUZZ_SECONDS") {
            Ok(v) => ("DOWNTIME_FUZZ_SECONDS", v),
            Err(_) => return Ok(DEFAULT_SECONDS),
        },
    };
    value
        .trim()
        .parse()
        .map_err(|_| format!("{from} {value:?} is not a number of seconds"))
}

/// One round: each property on `CASES` fresh inputs; the failure, if any.
fn round(config: &Config) -> Result<(), String> {
    TestRunner::new(config.clone())
        .run(&sqlish(), |s| check_split(&s))
        .map_err(|e| format!("splitter on SQL-like input: {e}"))?;
    TestRunner::new(config.clone())
        .run(&any::<String>(), |s| check_split(&s))
        .map_err(|e| format!("splitter on any text: {e}"))?;
    TestRunner::new(config.clone())
        .run(&any::<String>(), |s| check_name(&s))
        .map_err(|e| format!("patch-name parser on any text: {e}"))
}

fn main() -> ExitCode {
    let seconds = match seconds() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fuzz_split: {e} (usage: fuzz_split [SECONDS])");
            return ExitCode::from(2);
        }
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    let mut cases = 0u64;
    while Instant::now() < deadline {
        if let Err(e) = round(&config) {
            eprintln!("fuzz_split: FAILED after {cases} cases: {e}");
            return ExitCode::FAILURE;
        }
        cases += 3 * u64::from(config.cases);
    }
    println!("fuzzed for {seconds} s: {cases} cases, no failure");
    ExitCode::SUCCESS
}
