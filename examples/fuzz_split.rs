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

use downtime::patch::discover::{classify_name, Named};
use downtime::patch::split::{is_pg_space, split};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Seconds when neither the argument nor DOWNTIME_FUZZ_SECONDS gives them.
const DEFAULT_SECONDS: u64 = 60;

/// Cases per property and round; each round has a fresh random seed.
const CASES: u32 = 10_000;

const TOKENS: &[&str] = &[
    "select",
    "insert",
    " ",
    "  ",
    "\n",
    "\r\n",
    "\t",
    ";",
    ";",
    "'",
    "''",
    "E'",
    "e'",
    "\\'",
    "\\",
    "\\\\",
    "\"",
    "\"\"",
    "$$",
    "$a$",
    "$ab$",
    "$1",
    "a$b",
    "--",
    "-",
    "/*",
    "*/",
    "/",
    "*",
    "begin",
    "BEGIN",
    "atomic",
    "end",
    "END",
    "case",
    "create",
    "function",
    "procedure",
    "or",
    "replace",
    "(",
    ")",
    "a",
    "x1",
    "42",
    "1.5e3",
    "é",
    "→",
    "\\set x",
    "copy",
    "stdin",
    ",",
];

/// SQL-like text: up to 80 tokens that exercise quoting, comments and
/// statement boundaries.
fn sqlish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..80).prop_map(|t| t.concat())
}

/// The splitter's properties, for any input.
fn check_split(src: &str) -> Result<(), TestCaseError> {
    let Ok(split) = split(src) else {
        // An unterminated literal or comment is an error, never a panic.
        return Ok(());
    };
    let mut last_end = 0;
    for st in &split.statements {
        prop_assert!(st.offset >= last_end, "statements overlap");
        prop_assert_eq!(&src[st.offset..st.offset + st.text.len()], st.text);
        prop_assert!(!st.text.is_empty());
        prop_assert_eq!(st.text.trim_end_matches(is_pg_space), st.text);
        prop_assert!(!st.text.starts_with(is_pg_space));
        prop_assert_eq!(st.line, 1 + src[..st.offset].matches('\n').count());
        last_end = st.offset + st.text.len();
        // Each statement alone splits back to itself.
        let again = split_statements(st.text);
        prop_assert_eq!(
            again,
            vec![st.text.to_string()],
            "statement {:?} of {:?}",
            st.text,
            src
        );
    }
    // Between the statements there is no SQL: blanked out, nothing is left.
    let mut blanked = src.as_bytes().to_vec();
    for st in &split.statements {
        for b in &mut blanked[st.offset..st.offset + st.text.len()] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    }
    let blanked = String::from_utf8_lossy(&blanked).into_owned();
    let rest = split_statements(&blanked);
    prop_assert!(
        rest.is_empty(),
        "SQL outside the statements of {:?}: {:?}",
        src,
        rest
    );
    Ok(())
}

fn split_statements(src: &str) -> Vec<String> {
    split(src)
        .map(|s| s.statements.iter().map(|s| s.text.to_string()).collect())
        .unwrap_or_else(|e| vec![format!("error: {e}")])
}

/// The name parser's property: a patch name has a position and an id.
fn check_name(name: &str) -> Result<(), TestCaseError> {
    if let Named::Patch { position, id, .. } = classify_name(name) {
        prop_assert!(!position.0.is_empty());
        prop_assert!(!id.is_empty());
    }
    Ok(())
}

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
