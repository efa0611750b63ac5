//! A statement's tokens, read by the same lexical rules as the splitter
//! (PostgreSQL's, closely enough): words, quoted identifiers, string
//! constants with their exact span, numbers, operators and punctuation;
//! comments and whitespace dropped. Two readers use them: host safety,
//! which follows the SQL inside string constants, and the statements whose
//! facts are read from their words ([`super::lexical`]).

use super::split::{dollar_tag, is_ident_cont, is_ident_start, quoted};

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A keyword or an identifier as written, not quoted.
    Word,
    /// A `"quoted identifier"`.
    Quoted,
    /// A string constant: `'…'`, `E'…'` or `$tag$…$tag$` (adjacent `'…'`
    /// parts separated by a newline are one constant, as PostgreSQL reads
    /// them).
    Str,
    Number,
    /// `(`, `)`, `,`, `;`, `.`, `[`, `]`, `:` or `::`.
    Punct,
    /// A run of operator characters (`=`, `*`, `<>`, …).
    Operator,
    /// Anything else: a bit-string constant, a `$1` parameter, a stray byte.
    Other,
}

/// One token and where it stands in the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: Kind,
    /// The token as written (a string constant with its quotes and prefix).
    pub text: &'a str,
    pub start: usize,
}

impl Token<'_> {
    /// An unquoted word equal to `w` (ASCII, case-insensitive).
    pub fn is(&self, w: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(w)
    }

    /// Punctuation or an operator written exactly `p`.
    pub fn is_punct(&self, p: &str) -> bool {
        matches!(self.kind, Kind::Punct | Kind::Operator) && self.text == p
    }

    /// The identifier this names, as PostgreSQL folds it: an unquoted word
    /// in lower case, a quoted one as written. `None` where folding is not
    /// plain ASCII lower-casing or the name is longer than PostgreSQL keeps
    /// (63 bytes): then the parser decides.
    pub fn identifier(&self) -> Option<String> {
        match self.kind {
            Kind::Word if self.text.is_ascii() && self.text.len() <= 63 => {
                Some(self.text.to_ascii_lowercase())
            }
            Kind::Quoted => {
                let inner = self.text.get(1..self.text.len() - 1)?.replace("\"\"", "\"");
                (!inner.is_empty() && inner.len() <= 63).then_some(inner)
            }
            _ => None,
        }
    }
}

fn is_operator(b: u8) -> bool {
    b"+-*/<>=~!@#%^&|`?".contains(&b)
}

/// The tokens of `sql`; `None` when a literal or comment is never closed.
pub fn tokens(sql: &str) -> Option<Vec<Token<'_>>> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 0;
    let token = |kind, start: usize, end: usize| Token {
        kind,
        text: &sql[start..end],
        start,
    };
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => i += 1,
            b'-' if next == Some(b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(bytes.len(), |p| i + p);
            }
            b'/' if next == Some(b'*') => i = block_comment(bytes, i)?,
            b'\'' => {
                let end = string_end(bytes, i, false)?;
                out.push(token(Kind::Str, i, end));
                i = end;
            }
            b'"' => {
                let end = quoted(bytes, i, &mut line, b'"', false).ok()?;
                out.push(token(Kind::Quoted, i, end));
                i = end;
            }
            b'$' => match dollar_tag(bytes, i) {
                Some(tag_end) => {
                    let tag = &bytes[i..tag_end];
                    let close = bytes[tag_end..].windows(tag.len()).position(|w| w == tag)?;
                    let end = tag_end + close + tag.len();
                    out.push(token(Kind::Str, i, end));
                    i = end;
                }
                None => {
                    let end = i
                        + 1
                        + bytes[i + 1..]
                            .iter()
                            .take_while(|c| c.is_ascii_digit())
                            .count();
                    out.push(token(Kind::Other, i, end));
                    i = end;
                }
            },
            _ if is_ident_start(b) => {
                let prefixed = next == Some(b'\'');
                match b {
                    b'u' | b'U'
                        if next == Some(b'&') && matches!(bytes.get(i + 2), Some(b'\'' | b'"')) =>
                    {
                        // A Unicode-escaped string or identifier: neither
                        // a plain string constant nor a plain name.
                        let q = bytes[i + 2];
                        let end = quoted(bytes, i + 2, &mut line, q, false).ok()?;
                        out.push(token(Kind::Other, i, end));
                        i = end;
                    }
                    b'e' | b'E' if prefixed => {
                        let end = string_end(bytes, i + 1, true)?;
                        out.push(token(Kind::Str, i, end));
                        i = end;
                    }
                    b'b' | b'B' | b'x' | b'X' if prefixed => {
                        let end = quoted(bytes, i + 1, &mut line, b'\'', false).ok()?;
                        out.push(token(Kind::Other, i, end));
                        i = end;
                    }
                    _ => {
                        let end = i + bytes[i..].iter().take_while(|&&c| is_ident_cont(c)).count();
                        out.push(token(Kind::Word, i, end));
                        i = end;
                    }
                }
            }
            _ if b.is_ascii_digit() || (b == b'.' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let end = i
                    + 1
                    + bytes[i + 1..]
                        .iter()
                        .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
                        .count();
                out.push(token(Kind::Number, i, end));
                i = end;
            }
            b':' if next == Some(b':') => {
                out.push(token(Kind::Punct, i, i + 2));
                i += 2;
            }
            b'(' | b')' | b',' | b';' | b'.' | b'[' | b']' | b':' => {
                out.push(token(Kind::Punct, i, i + 1));
                i += 1;
            }
            _ if is_operator(b) => {
                let end = i + bytes[i..].iter().take_while(|&&c| is_operator(c)).count();
                out.push(token(Kind::Operator, i, end));
                i = end;
            }
            _ => {
                let len = sql[i..].chars().next().map_or(1, char::len_utf8);
                out.push(token(Kind::Other, i, i + len));
                i += len;
            }
        }
    }
    Some(out)
}

/// The end of a `/* */` comment (nested) opened at `i`; `None` when it is
/// never closed.
pub(super) fn block_comment(bytes: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    while i + 1 < bytes.len() {
        match &bytes[i..i + 2] {
            b"/*" => {
                depth += 1;
                i += 2;
            }
            b"*/" => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The end of the string constant whose first quote is at `open`, with the
/// parts PostgreSQL joins to it: another `'…'` after whitespace that holds
/// a newline (comments allowed there).
fn string_end(bytes: &[u8], open: usize, escapes: bool) -> Option<usize> {
    let mut line = 0;
    let mut end = quoted(bytes, open, &mut line, b'\'', escapes).ok()?;
    loop {
        let mut j = end;
        let mut newline = false;
        while j < bytes.len() {
            match bytes[j] {
                b'\n' => {
                    newline = true;
                    j += 1;
                }
                b' ' | b'\t' | b'\r' | 0x0b | 0x0c => j += 1,
                b'-' if newline && bytes.get(j + 1) == Some(&b'-') => {
                    j = bytes[j..]
                        .iter()
                        .position(|&c| c == b'\n')
                        .map_or(bytes.len(), |p| j + p);
                }
                _ => break,
            }
        }
        if !newline || bytes.get(j) != Some(&b'\'') {
            return Some(end);
        }
        end = quoted(bytes, j, &mut line, b'\'', escapes).ok()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(Kind, &str)> {
        tokens(sql)
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, t.text))
            .collect()
    }

    #[test]
    fn tokens_as_postgresql_reads_them() {
        use Kind::*;
        assert_eq!(
            kinds("UPDATE \"My\"\"T\" set a=b::int -- x\n where /* a /* b */ */ c <> E'it\\'s' and d = $q$ ; $q$ and $1"),
            vec![
                (Word, "UPDATE"),
                (Quoted, "\"My\"\"T\""),
                (Word, "set"),
                (Word, "a"),
                (Operator, "="),
                (Word, "b"),
                (Punct, "::"),
                (Word, "int"),
                (Word, "where"),
                (Word, "c"),
                (Operator, "<>"),
                (Str, "E'it\\'s'"),
                (Word, "and"),
                (Word, "d"),
                (Operator, "="),
                (Str, "$q$ ; $q$"),
                (Word, "and"),
                (Other, "$1"),
            ]
        );
        assert_eq!(
            kinds("select 'a'\n  'b', 'c' 'd', B'01', n'x', 1.5e3"),
            vec![
                (Word, "select"),
                (Str, "'a'\n  'b'"),
                (Punct, ","),
                (Str, "'c'"),
                (Str, "'d'"),
                (Punct, ","),
                (Other, "B'01'"),
                (Punct, ","),
                (Word, "n"),
                (Str, "'x'"),
                (Punct, ","),
                (Number, "1.5e3"),
            ]
        );
        assert_eq!(
            kinds("select U&'\\0041', U&\"x\""),
            vec![
                (Word, "select"),
                (Other, "U&'\\0041'"),
                (Punct, ","),
                (Other, "U&\"x\""),
            ]
        );
        assert!(tokens("select 'open").is_none());
    }

    #[test]
    fn identifiers_fold_as_postgresql_folds_them() {
        let t = tokens("Account \"Account\" \"a\"\"b\" été").unwrap();
        assert_eq!(t[0].identifier().as_deref(), Some("account"));
        assert_eq!(t[1].identifier().as_deref(), Some("Account"));
        assert_eq!(t[2].identifier().as_deref(), Some("a\"b"));
        assert_eq!(t[3].identifier(), None);
        let long = "x".repeat(64);
        assert_eq!(tokens(&long).unwrap()[0].identifier(), None);
    }
}
