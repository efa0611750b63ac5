//! Property tests of the statement splitter and the patch-name parser, on
//! generated SQL-like input and on arbitrary text: no panic, statements are
//! exact slices of the input with the right lines, the input between
//! statements holds no SQL, and each statement splits back to itself.
//!
//! A long run of the same checks is a program, not a test:
//! `cargo run --release --example fuzz_split -- 600` (seconds).

use downtime::patch::split::split;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[path = "common/sqlish.rs"]
mod sqlish;

use sqlish::{check_name, check_split, sqlish};

proptest! {
    #![proptest_config(Config { cases: 3000, ..Config::default() })]

    #[test]
    fn splitter_on_sql_like_input(src in sqlish()) {
        check_split(&src)?;
    }

    #[test]
    fn splitter_on_any_text(src in any::<String>()) {
        check_split(&src)?;
    }

    #[test]
    fn names_never_panic(name in "(patch-|V|U|R|[0-9]{0,14})[0-9._-]{0,8}(__|_|-)?[a-z._]{0,10}(\\.up|\\.down)?(\\.sql)?") {
        check_name(&name)?;
    }

    #[test]
    fn any_name_never_panics(name in any::<String>()) {
        check_name(&name)?;
    }
}

// Oracle tests: on valid multi-statement SQL, the splitter finds the same
// statements as libpg_query. `split_with_parser` is PostgreSQL's grammar (it
// knows `BEGIN ATOMIC … END` bodies); `split_with_scanner` cuts at every
// top-level `;` token, so it is compared only on input without such bodies.
//
// What is generated, and why only that: the parser oracle needs SQL its
// grammar accepts, so every statement is well-formed; strings are read with
// standard_conforming_strings on (a backslash in '…' is a plain character);
// there are no psql meta-commands (not SQL), no `U&'…'` strings, and no
// dollar-quote body contains its own closing tag. Both oracles report a
// statement with the comments and whitespace around it that the splitter
// leaves out; the comparison is on each statement's span from its first to its
// last token as PostgreSQL's scanner finds them.

/// Whitespace and comments that may stand between any two tokens.
const GAPS: &[&str] = &[
    " ",
    " ",
    "  ",
    "\n",
    "\r\n",
    "\t",
    "\x0c",
    " -- a ; comment 'x\n",
    "--;\n",
    " /* ; */ ",
    "/* a ; /* nested ; */ still ' */",
    "\n/*\n;\n*/\n",
];

/// Pieces of a '…' string (doubled quote included).
const STRING_PIECES: &[&str] = &[
    "a", ";", "''", "--", "/*", "*/", "$$", "$a$", "\\", " ", "\n", "é", "\"", "begin", "end",
];

/// Pieces of an E'…' string (escapes included).
const ESCAPE_PIECES: &[&str] = &["a", ";", "\\'", "\\\\", "''", "\\n", "--", "\n", "$$"];

/// Pieces of a "…" identifier.
const IDENT_PIECES: &[&str] = &["a", ";", "\"\"", " ", "'", "--", "$", "end"];

/// Pieces of a dollar-quoted body; `$$` only inside a tagged quote.
const DOLLAR_PIECES: &[&str] = &[
    "begin",
    " ",
    "\n",
    ";",
    "perform 1",
    "'",
    "\"",
    "--",
    "/*",
    "end",
    "$1",
    "$$",
];

fn pieces(from: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(from), 0..max).prop_map(|p| p.concat())
}

fn string_literal() -> impl Strategy<Value = String> {
    pieces(STRING_PIECES, 8).prop_map(|s| format!("'{s}'"))
}

fn escape_string() -> impl Strategy<Value = String> {
    (prop::bool::ANY, pieces(ESCAPE_PIECES, 8))
        .prop_map(|(upper, s)| format!("{}'{s}'", if upper { "E" } else { "e" }))
}

fn quoted_ident() -> impl Strategy<Value = String> {
    pieces(IDENT_PIECES, 6).prop_map(|s| format!("\"x{s}\""))
}

fn dollar_quoted() -> impl Strategy<Value = String> {
    (
        prop::sample::select(&["", "a", "body", "x_1"][..]),
        pieces(DOLLAR_PIECES, 10),
    )
        .prop_map(|(tag, body)| {
            let close = format!("${tag}$");
            // `$$` may not close a tagged quote, but it closes `$$…$$`.
            let body = if tag.is_empty() || body.contains(&close) {
                body.replace('$', "")
            } else {
                body
            };
            format!("{close}{body}{close}")
        })
}

fn words(sql: &str) -> Vec<String> {
    sql.split(' ').map(str::to_string).collect()
}

/// One statement of a `BEGIN ATOMIC` body (no top-level `;`).
fn atomic_body_statement() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        Just(words("select 1")),
        Just(words("select case when a > 0 then a else 0 end + b")),
        Just(words("select ( case a when 1 then 2 end )")),
        string_literal().prop_map(|s| [
            words("insert into t ( note ) values ("),
            vec![s, ")".into()]
        ]
        .concat()),
    ]
}

/// A function or procedure with a SQL-standard body: semicolons inside.
fn begin_atomic() -> impl Strategy<Value = Vec<String>> {
    (
        prop::sample::select(
            &[
                "create function f ( a int , b int ) returns int language sql",
                "create or replace function f ( a int , b int ) returns int",
                "CREATE OR REPLACE PROCEDURE p ( a int , b int ) LANGUAGE sql",
                "create procedure p ( a int , b int )",
            ][..],
        ),
        prop::collection::vec(atomic_body_statement(), 1..4),
    )
        .prop_map(|(head, body)| {
            let mut t = words(head);
            t.extend(words("begin atomic"));
            for st in body {
                t.extend(st);
                t.push(";".into());
            }
            t.push("end".into());
            t
        })
}

/// A statement without a `BEGIN ATOMIC` body, as tokens.
fn plain_statement() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        (string_literal(), quoted_ident()).prop_map(|(s, i)| [
            words("select"),
            vec![s, "as".into(), i]
        ]
        .concat()),
        (quoted_ident(), string_literal()).prop_map(|(i, s)| {
            [
                words("create table"),
                vec![i],
                words("( id int , note text default"),
                vec![s, ")".into()],
            ]
            .concat()
        }),
        (string_literal(), escape_string()).prop_map(|(s, e)| {
            [
                words("insert into t values ( 1 ,"),
                vec![s, "), ( 2 ,".into(), e, ")".into()],
            ]
            .concat()
        }),
        string_literal().prop_map(|s| {
            [
                words("update t set note ="),
                vec![s],
                words("where id = $1"),
            ]
            .concat()
        }),
        dollar_quoted().prop_map(|d| {
            [
                words("create function g ( ) returns int language plpgsql as"),
                vec![d],
            ]
            .concat()
        }),
        dollar_quoted().prop_map(|d| vec!["do".into(), d]),
        Just(words(
            "alter table t add column c int default ( 1 + 2 ) * 3"
        )),
        Just(words("create index concurrently i on t ( a$b )")),
        Just(words("begin")),
        Just(words("commit")),
        Just(words("select a$b , 1.5e3 , x1 from t$")),
    ]
}

/// Tokens joined by whitespace or comments; `;` between statements, with
/// empty statements now and then and no `;` after the last one at times.
fn join_statements(
    statements: Vec<Vec<String>>,
    gaps: Vec<&'static str>,
    empty_after: Vec<bool>,
    final_semicolon: bool,
) -> String {
    let mut gaps = gaps.into_iter().cycle();
    let mut src = String::new();
    src.push_str(gaps.next().unwrap_or(""));
    let count = statements.len();
    for (n, tokens) in statements.into_iter().enumerate() {
        for token in tokens {
            src.push_str(&token);
            src.push_str(gaps.next().unwrap_or(" "));
        }
        if n + 1 < count || final_semicolon {
            src.push(';');
            src.push_str(gaps.next().unwrap_or(" "));
        }
        if empty_after.get(n) == Some(&true) {
            src.push(';');
            src.push_str(gaps.next().unwrap_or(" "));
        }
    }
    src
}

fn valid_sql(with_atomic_bodies: bool) -> BoxedStrategy<String> {
    let statement = if with_atomic_bodies {
        prop_oneof![3 => plain_statement(), 1 => begin_atomic()].boxed()
    } else {
        plain_statement().boxed()
    };
    (
        prop::collection::vec(statement, 1..6),
        prop::collection::vec(prop::sample::select(GAPS), 1..24),
        prop::collection::vec(prop::bool::weighted(0.15), 6),
        prop::bool::ANY,
    )
        .prop_map(|(st, gaps, empty, last)| join_statements(st, gaps, empty, last))
        .boxed()
}

/// The span of `text` (at byte `offset` of its source) from its first to its
/// last token, leaving out comments, as PostgreSQL's scanner finds them.
fn token_span(offset: usize, text: &str) -> Option<(usize, usize)> {
    use pg_query::protobuf::Token;
    let tokens = pg_query::scan(text).ok()?.tokens;
    let mut code = tokens
        .iter()
        .filter(|t| t.token != Token::SqlComment as i32 && t.token != Token::CComment as i32);
    let first = code.next()?;
    let last = code.next_back().unwrap_or(first);
    Some((offset + first.start as usize, offset + last.end as usize))
}

/// Where a slice returned by an oracle starts in `src`.
fn offset_in(src: &str, part: &str) -> usize {
    part.as_ptr() as usize - src.as_ptr() as usize
}

/// (line, text) of each statement span.
fn spans(src: &str, spans: impl Iterator<Item = (usize, usize)>) -> Vec<(usize, String)> {
    spans
        .map(|(s, e)| (1 + src[..s].matches('\n').count(), src[s..e].to_string()))
        .collect()
}

/// The splitter's statements (line and text) against an oracle's, both cut
/// down to their token spans.
fn agree_with_oracle(
    src: &str,
    ours: &[downtime::patch::split::RawStatement<'_>],
    oracle: &[&str],
) -> Result<(), TestCaseError> {
    for st in ours {
        // The splitter's statement starts at its first token.
        let span = token_span(st.offset, st.text);
        prop_assert_eq!(span.map(|(s, _)| s), Some(st.offset), "{:?}", st.text);
    }
    let ours_spans = spans(
        src,
        ours.iter().filter_map(|st| token_span(st.offset, st.text)),
    );
    let lines: Vec<usize> = ours.iter().map(|st| st.line).collect();
    let oracle_spans = spans(
        src,
        oracle
            .iter()
            .filter_map(|part| token_span(offset_in(src, part), part)),
    );
    prop_assert_eq!(
        &ours_spans,
        &oracle_spans,
        "statements of {:?} differ from the oracle",
        src
    );
    let oracle_lines: Vec<usize> = oracle_spans.iter().map(|(l, _)| *l).collect();
    prop_assert_eq!(lines, oracle_lines);
    Ok(())
}

fn check_against_parser(src: &str) -> Result<(), TestCaseError> {
    // The generator makes valid SQL only; a rejection here is a generator bug.
    let oracle = pg_query::split_with_parser(src)
        .map_err(|e| TestCaseError::fail(format!("not valid SQL: {e} in {src:?}")))?;
    prop_assert!(!oracle.is_empty(), "no statement in {:?}", src);
    let ours = split(src).map_err(|e| TestCaseError::fail(format!("{e} in {src:?}")))?;
    agree_with_oracle(src, &ours.statements, &oracle)
}

fn check_against_scanner(src: &str) -> Result<(), TestCaseError> {
    let oracle = pg_query::split_with_scanner(src)
        .map_err(|e| TestCaseError::fail(format!("scanner failed: {e} on {src:?}")))?;
    let ours = split(src).map_err(|e| TestCaseError::fail(format!("{e} in {src:?}")))?;
    agree_with_oracle(src, &ours.statements, &oracle)
}

proptest! {
    #![proptest_config(Config { cases: 1500, ..Config::default() })]

    #[test]
    fn splitter_agrees_with_the_postgres_parser(src in valid_sql(true)) {
        check_against_parser(&src)?;
    }

    #[test]
    fn splitter_agrees_with_the_postgres_scanner(src in valid_sql(false)) {
        check_against_scanner(&src)?;
    }
}

/// The generated SQL is accepted by PostgreSQL's parser, so the parser
/// property never passes by rejecting its input.
#[test]
fn generated_sql_is_valid() {
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&valid_sql(true), |src| {
            let parsed = pg_query::split_with_parser(&src);
            prop_assert!(parsed.is_ok(), "{:?}: {:?}", src, parsed);
            Ok(())
        })
        .unwrap();
}

/// The comparison catches a splitter that does not split at `;`, or merges
/// two statements.
#[test]
fn oracle_comparison_catches_under_splitting() {
    use downtime::patch::split::RawStatement;
    let src = "select 'a;b';\n/* c */ create table t (id int);\nselect 2";
    let oracle = pg_query::split_with_parser(src).unwrap();
    let good = split(src).unwrap().statements;
    assert!(agree_with_oracle(src, &good, &oracle).is_ok());
    let whole = vec![RawStatement {
        text: src,
        offset: 0,
        line: 1,
    }];
    assert!(agree_with_oracle(src, &whole, &oracle).is_err());
    let merged_end = src.find("int)").unwrap() + 4;
    let merged = vec![
        RawStatement {
            text: &src[..merged_end],
            offset: 0,
            line: 1,
        },
        good[2].clone(),
    ];
    assert!(agree_with_oracle(src, &merged, &oracle).is_err());
}
