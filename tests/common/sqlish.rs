//! The splitter's and name parser's properties, and the SQL-like input they
//! are checked on: shared by `tests/properties.rs` and the long fuzz run in
//! `examples/fuzz_split.rs`.

#![allow(dead_code)]

use downtime::patch::discover::{classify_name, Named};
use downtime::patch::split::{is_pg_space, split};
use proptest::prelude::*;

pub const TOKENS: &[&str] = &[
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

pub fn sqlish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..80).prop_map(|t| t.concat())
}

/// The properties, for any input.
pub fn check_split(src: &str) -> Result<(), TestCaseError> {
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

pub fn split_statements(src: &str) -> Vec<String> {
    split(src)
        .map(|s| s.statements.iter().map(|s| s.text.to_string()).collect())
        .unwrap_or_else(|e| vec![format!("error: {e}")])
}

pub fn check_name(name: &str) -> Result<(), TestCaseError> {
    if let Named::Patch { position, id, .. } = classify_name(name) {
        prop_assert!(!position.0.is_empty());
        prop_assert!(!id.is_empty());
    }
    Ok(())
}
