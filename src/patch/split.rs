//! Splitting a patch file into statements, each with the line it starts on.
//!
//! The splitter is a lexer that follows PostgreSQL's own lexical rules closely
//! enough to find statement boundaries in any input, valid or not: `--` and
//! nested `/* */` comments, `'…'` (with `''`), `E'…'` (with backslash escapes),
//! `"…"`, `$tag$…$tag$` bodies, and `BEGIN ATOMIC … END` function bodies, in
//! which semicolons do not end the statement. The parse tree of each statement
//! comes from pg_query afterwards; keeping the split lexical means a syntax
//! error in one statement still leaves every statement with its exact text
//! and line, so the server can report the error where it is.

/// One statement as it stands in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawStatement<'a> {
    /// The statement text, from its first token up to (not including) the `;`.
    pub text: &'a str,
    /// Byte offset of `text` in the file.
    pub offset: usize,
    /// 1-based line of the first token.
    pub line: usize,
}

/// A backslash command found outside any literal or comment (psql syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaCommand {
    pub line: usize,
    /// The command up to the end of its line.
    pub text: String,
}

/// What the splitter could not make sense of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SplitError {
    pub line: usize,
    pub message: String,
}

/// A `--` comment, where directives such as `-- downtime: live` live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineComment<'a> {
    pub line: usize,
    /// The comment's text after `--`.
    pub text: &'a str,
}

/// Statements, psql meta-commands and line comments found in one file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split<'a> {
    pub statements: Vec<RawStatement<'a>>,
    pub meta_commands: Vec<MetaCommand>,
    pub comments: Vec<LineComment<'a>>,
}

/// PostgreSQL's whitespace: space, tab, newline, carriage return, form feed.
/// Other Unicode spaces are identifier characters to its lexer.
pub fn is_pg_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

pub(super) fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

pub(super) fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// Tracks the words that decide whether a `BEGIN` opens a SQL-standard body.
#[derive(Default)]
struct BodyTracker {
    /// First letters of the leading CREATE / OR / REPLACE / FUNCTION / PROCEDURE words.
    lead: [u8; 4],
    words: usize,
    depth: usize,
}

impl BodyTracker {
    fn word(&mut self, word: &[u8], paren_depth: usize) {
        let lower = |w: &[u8], s: &str| w.eq_ignore_ascii_case(s.as_bytes());
        if self.words < self.lead.len()
            && ["create", "or", "replace", "function", "procedure"]
                .iter()
                .any(|k| lower(word, k))
        {
            self.lead[self.words] = word[0].to_ascii_lowercase();
        }
        self.words += 1;
        let routine = self.lead[0] == b'c'
            && (matches!(self.lead[1], b'f' | b'p')
                || (self.lead[1] == b'o'
                    && self.lead[2] == b'r'
                    && matches!(self.lead[3], b'f' | b'p')));
        if !routine || paren_depth > 0 {
            return;
        }
        if lower(word, "begin") {
            self.depth += 1;
        } else if lower(word, "case") {
            if self.depth > 0 {
                self.depth += 1;
            }
        } else if lower(word, "end") && self.depth > 0 {
            self.depth -= 1;
        }
    }
}

/// Split `src` into statements. Fails only on a literal or comment that is
/// never closed, naming the line where it starts.
pub fn split(src: &str) -> Result<Split<'_>, SplitError> {
    let mut s = Splitter::new(src);
    while s.i < s.bytes.len() {
        s.step()?;
    }
    Ok(s.finish())
}

/// The splitter's state while it walks the input.
struct Splitter<'a> {
    src: &'a str,
    bytes: &'a [u8],
    /// Index of the next byte to read.
    i: usize,
    /// 1-based line of byte `i`.
    line: usize,
    /// Start of the current statement's first token, and its line.
    start: Option<(usize, usize)>,
    paren: usize,
    body: BodyTracker,
    out: Split<'a>,
}

impl<'a> Splitter<'a> {
    fn new(src: &'a str) -> Self {
        Splitter {
            src,
            bytes: src.as_bytes(),
            // Skip a UTF-8 byte order mark.
            i: if src.starts_with('\u{feff}') { 3 } else { 0 },
            line: 1,
            start: None,
            paren: 0,
            body: BodyTracker::default(),
            out: Split::default(),
        }
    }

    /// Consume one token (or one byte of whitespace) at `i`.
    fn step(&mut self) -> Result<(), SplitError> {
        let b = self.bytes[self.i];
        let next = self.bytes.get(self.i + 1).copied();
        match b {
            b'\n' => {
                self.line += 1;
                self.i += 1;
            }
            b' ' | b'\t' | b'\r' | 0x0c => self.i += 1,
            b'-' if next == Some(b'-') => self.line_comment(),
            b'/' if next == Some(b'*') => self.block_comment()?,
            b';' => self.semicolon(),
            b'\\' => self.meta_command(),
            b'\'' | b'"' => {
                self.begin_token();
                self.i = quoted(self.bytes, self.i, &mut self.line, b, false)?;
            }
            b'$' => {
                self.begin_token();
                self.dollar()?;
            }
            b'(' | b')' => {
                self.begin_token();
                self.paren = match b {
                    b'(' => self.paren + 1,
                    _ => self.paren.saturating_sub(1),
                };
                self.i += 1;
            }
            _ if is_ident_start(b) => {
                self.begin_token();
                self.word()?;
            }
            _ if b.is_ascii_digit() => {
                self.begin_token();
                self.number();
            }
            _ => {
                self.begin_token();
                self.i += 1;
            }
        }
        Ok(())
    }

    /// The current statement starts at `i` unless it has started already.
    fn begin_token(&mut self) {
        if self.start.is_none() {
            self.start = Some((self.i, self.line));
        }
    }

    /// A `--` comment, up to (not including) the end of its line.
    fn line_comment(&mut self) {
        let text_start = self.i + 2;
        let end = self.bytes[self.i..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(self.bytes.len(), |p| self.i + p);
        self.out.comments.push(LineComment {
            line: self.line,
            text: &self.src[text_start..end],
        });
        self.i = end;
    }

    /// A `/* */` comment, which nests.
    fn block_comment(&mut self) -> Result<(), SplitError> {
        let open_line = self.line;
        let mut depth = 1;
        self.i += 2;
        while depth > 0 {
            if self.i >= self.bytes.len() {
                return Err(SplitError {
                    line: open_line,
                    message: "unterminated /* comment".into(),
                });
            }
            match (self.bytes[self.i], self.bytes.get(self.i + 1)) {
                (b'/', Some(b'*')) => {
                    depth += 1;
                    self.i += 2;
                }
                (b'*', Some(b'/')) => {
                    depth -= 1;
                    self.i += 2;
                }
                (b'\n', _) => {
                    self.line += 1;
                    self.i += 1;
                }
                _ => self.i += 1,
            }
        }
        Ok(())
    }

    /// A `;`: the end of the statement, unless inside a `BEGIN ATOMIC` body.
    fn semicolon(&mut self) {
        if self.body.depth == 0 {
            if let Some((s, l)) = self.start.take() {
                self.out.statements.push(RawStatement {
                    text: self.src[s..self.i].trim_end_matches(is_pg_space),
                    offset: s,
                    line: l,
                });
            }
            self.paren = 0;
            self.body = BodyTracker::default();
        } else {
            self.begin_token();
        }
        self.i += 1;
    }

    /// A psql backslash command, up to the end of its line.
    fn meta_command(&mut self) {
        let end = self.bytes[self.i..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(self.bytes.len(), |p| self.i + p);
        self.out.meta_commands.push(MetaCommand {
            line: self.line,
            text: self.src[self.i..end].trim_end().to_string(),
        });
        self.i = end;
    }

    /// A `$`: a dollar-quoted string if a tag opens one, otherwise one byte.
    fn dollar(&mut self) -> Result<(), SplitError> {
        let Some(tag_end) = dollar_tag(self.bytes, self.i) else {
            self.i += 1;
            return Ok(());
        };
        let tag = &self.bytes[self.i..tag_end];
        let open_line = self.line;
        let mut j = tag_end;
        loop {
            if j >= self.bytes.len() {
                return Err(SplitError {
                    line: open_line,
                    message: format!(
                        "unterminated dollar-quoted string {}",
                        String::from_utf8_lossy(tag)
                    ),
                });
            }
            if self.bytes[j] == b'\n' {
                self.line += 1;
            } else if self.bytes[j..].starts_with(tag) {
                self.i = j + tag.len();
                return Ok(());
            }
            j += 1;
        }
    }

    /// An identifier or keyword, or an `E'…'` escape string.
    fn word(&mut self) -> Result<(), SplitError> {
        let b = self.bytes[self.i];
        // E'…' (escape string), also after U& or N prefixes it is plain.
        if (b == b'e' || b == b'E') && self.bytes.get(self.i + 1) == Some(&b'\'') {
            self.i = quoted(self.bytes, self.i + 1, &mut self.line, b'\'', true)?;
            return Ok(());
        }
        let s = self.i;
        while self.i < self.bytes.len() && is_ident_cont(self.bytes[self.i]) {
            self.i += 1;
        }
        self.body.word(&self.bytes[s..self.i], self.paren);
        Ok(())
    }

    /// A number, with any letters, digits, `_` and `.` run into it.
    fn number(&mut self) {
        while self.i < self.bytes.len()
            && (self.bytes[self.i].is_ascii_alphanumeric()
                || self.bytes[self.i] == b'_'
                || self.bytes[self.i] == b'.')
        {
            self.i += 1;
        }
    }

    /// The statements found, with the last one if no `;` ended it.
    fn finish(mut self) -> Split<'a> {
        if let Some((s, l)) = self.start {
            let text = self.src[s..].trim_end_matches(is_pg_space);
            if !text.is_empty() {
                self.out.statements.push(RawStatement {
                    text,
                    offset: s,
                    line: l,
                });
            }
        }
        self.out
    }
}

/// Scan a quoted literal or identifier starting at `open` (the quote byte);
/// returns the index just past the closing quote.
pub(super) fn quoted(
    bytes: &[u8],
    open: usize,
    line: &mut usize,
    quote: u8,
    backslash_escapes: bool,
) -> Result<usize, SplitError> {
    let open_line = *line;
    let mut i = open + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            *line += 1;
        } else if backslash_escapes && b == b'\\' {
            if bytes.get(i + 1) == Some(&b'\n') {
                *line += 1;
            }
            i += 2;
            continue;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return Ok(i + 1);
        }
        i += 1;
    }
    Err(SplitError {
        line: open_line,
        message: match quote {
            b'"' => "unterminated quoted identifier (\")".into(),
            _ if backslash_escapes => "unterminated E'…' string".into(),
            _ => "unterminated quoted string (')".into(),
        },
    })
}

/// If a dollar-quote opener (`$$` or `$tag$`) starts at `i`, the index past it.
pub(super) fn dollar_tag(bytes: &[u8], i: usize) -> Option<usize> {
    // `$` inside an identifier (a$b) or a parameter ($1) is not a quote.
    if i > 0 && is_ident_cont(bytes[i - 1]) {
        return None;
    }
    let mut j = i + 1;
    if j < bytes.len() && bytes[j] == b'$' {
        return Some(j + 1);
    }
    if j >= bytes.len() || !is_ident_start(bytes[j]) {
        return None;
    }
    while j < bytes.len() && (is_ident_start(bytes[j]) || bytes[j].is_ascii_digit()) {
        j += 1;
    }
    (j < bytes.len() && bytes[j] == b'$').then_some(j + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str) -> Vec<(usize, &str)> {
        split(src)
            .unwrap()
            .statements
            .into_iter()
            .map(|s| (s.line, s.text))
            .collect()
    }

    #[test]
    fn plain_statements_keep_their_first_line() {
        let src = "-- header\ncreate table a (id int);\n\n\ninsert into a values (1);\nselect 1";
        assert_eq!(
            texts(src),
            vec![
                (2, "create table a (id int)"),
                (5, "insert into a values (1)"),
                (6, "select 1")
            ]
        );
    }

    #[test]
    fn dollar_quotes_hide_semicolons() {
        let src = "create function f() returns int language plpgsql as $body$\nbegin\n  return 1; -- ;\nend;\n$body$;\nselect $$a;b$$, $x$ $$ ; $x$;\nselect $1;";
        let got = texts(src);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].1.ends_with("$body$"));
        assert_eq!(got[1], (6, "select $$a;b$$, $x$ $$ ; $x$"));
        assert_eq!(got[2], (7, "select $1"));
    }

    #[test]
    fn nested_block_comments() {
        let src = "/* outer /* inner ; */ still ; comment */ select 1; /* a\n;\n*/ select 2;";
        assert_eq!(texts(src), vec![(1, "select 1"), (3, "select 2")]);
    }

    #[test]
    fn escape_strings_and_identifiers() {
        let src = "select E'it\\'s; fine';\nselect 'a''b;c';\nselect \"we;ird\"\"name\" from t;\nselect e'\\\\';";
        assert_eq!(
            texts(src),
            vec![
                (1, "select E'it\\'s; fine'"),
                (2, "select 'a''b;c'"),
                (3, "select \"we;ird\"\"name\" from t"),
                (4, "select e'\\\\'"),
            ]
        );
    }

    #[test]
    fn plain_string_backslash_is_literal() {
        // standard_conforming_strings: the backslash does not escape the quote.
        assert_eq!(
            texts("select 'C:\\';\nselect 2;"),
            vec![(1, "select 'C:\\'"), (2, "select 2")]
        );
    }

    #[test]
    fn begin_atomic_body_is_one_statement() {
        let src = "create or replace function add(a int, b int) returns int\nlanguage sql\nbegin atomic\n  select case when a > 0 then a else 0 end + b;\n  select 1;\nend;\nselect 2;";
        let got = texts(src);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].1.ends_with("end"));
        assert_eq!(got[1], (7, "select 2"));
        // A transaction BEGIN is not a body.
        assert_eq!(
            texts("begin;\nselect 1;\ncommit;"),
            vec![(1, "begin"), (2, "select 1"), (3, "commit")]
        );
        let proc = "create procedure p() begin atomic insert into t values (1); end; call p();";
        assert_eq!(texts(proc).len(), 2);
    }

    #[test]
    fn meta_commands_are_found_with_lines() {
        let s = split("\\set ON_ERROR_STOP on\nselect '\\x';\n  \\i other.sql\n").unwrap();
        assert_eq!(s.statements.len(), 1);
        assert_eq!(
            s.meta_commands,
            vec![
                MetaCommand {
                    line: 1,
                    text: "\\set ON_ERROR_STOP on".into()
                },
                MetaCommand {
                    line: 3,
                    text: "\\i other.sql".into()
                }
            ]
        );
    }

    #[test]
    fn unterminated_literals_name_their_first_line() {
        let e = split("select 1;\nselect 'abc\n;\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = split("select 1;\n\ncreate function f() as $$ select 1;").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("dollar"));
        let e = split("/* a /* b */\n select 1;").unwrap_err();
        assert_eq!(e.line, 1);
        let e = split("select \"x;").unwrap_err();
        assert!(e.message.contains("identifier"));
    }

    /// On valid SQL the lexical split agrees with PostgreSQL's own parser.
    #[test]
    fn agrees_with_the_postgres_parser() {
        let src = "create table a (id int, note text default 'x;y');\n\
                   create function f() returns int language sql begin atomic select 1; select case when true then 2 end; end;\n\
                   /* c ; /* nested ; */ */ insert into a values (1, E'q\\';');\n\
                   do $do$ begin perform 1; end $do$;\n\
                   select \"a;b\".x from (select 1 as x) \"a;b\";\n\
                   create procedure p() language plpgsql as $$ begin commit; end $$;\n\
                   select 1";
        let ours: Vec<&str> = split(src)
            .unwrap()
            .statements
            .iter()
            .map(|s| s.text)
            .collect();
        let theirs: Vec<String> = pg_query::split_with_parser(src)
            .unwrap()
            .into_iter()
            .map(|s| strip_leading_comments(s).trim().to_string())
            .collect();
        assert_eq!(ours, theirs);
    }

    /// pg_query's statement text starts after the previous `;`, comments included.
    fn strip_leading_comments(mut s: &str) -> &str {
        loop {
            s = s.trim_start();
            if let Some(rest) = s.strip_prefix("--") {
                s = rest.split_once('\n').map_or("", |(_, r)| r);
            } else if s.starts_with("/*") {
                let mut depth = 0;
                let mut end = 0;
                let b = s.as_bytes();
                let mut i = 0;
                while i + 1 < b.len() {
                    if &b[i..i + 2] == b"/*" {
                        depth += 1;
                        i += 2;
                    } else if &b[i..i + 2] == b"*/" {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                s = &s[end..];
            } else {
                return s;
            }
        }
    }

    #[test]
    fn identifiers_with_dollars_and_empty_statements() {
        assert_eq!(
            texts(";;select a$b$c from t$;;"),
            vec![(1, "select a$b$c from t$")]
        );
        assert!(texts("-- only a comment\n/* and this */\n").is_empty());
    }
}
