//! Foreign text made safe where it is shown. File names, ids and SQL come
//! from patches, messages and identifiers from the server, names and
//! reasons from sign-off files: none of it may act as markup, as a terminal
//! control or as a GitHub workflow command. Each output escapes it once,
//! where that output is written, with the escaper for its place: terminals
//! and CI logs ([`visible`], [`log_line`], [`log_lines`]), GitHub workflow
//! commands ([`command_data`], [`command_property`]), Markdown ([`md_text`],
//! [`md_code`], [`md_html`]), HTML and XML ([`xml`]) and JSON ([`json`]).

use std::fmt::Write;

/// Whether `c` is shown by its code rather than as itself: the C0 and C1
/// controls and DEL (they move the cursor, clear the screen, end a line),
/// the line and paragraph separators, the bidirectional controls (they
/// reorder what follows on the screen) and the noncharacters U+FFFE and
/// U+FFFF (XML forbids them).
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{fffe}'
                | '\u{ffff}'
        )
}

/// The first hidden character of `s`, if any.
pub fn first_hidden(s: &str) -> Option<char> {
    s.chars().find(|c| hidden(*c))
}

/// How a hidden character is shown: `\n`, `\r`, `\t`, `\x1b`, `\u{202e}`.
pub fn code(c: char) -> String {
    match c {
        '\n' => "\\n".into(),
        '\r' => "\\r".into(),
        '\t' => "\\t".into(),
        c if (c as u32) < 0x80 => format!("\\x{:02x}", c as u32),
        c => format!("\\u{{{:x}}}", c as u32),
    }
}

/// `s` with every hidden character shown by its code.
pub fn visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if hidden(c) {
            out.push_str(&code(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// One line of output on stdout or stderr, as GitHub's runner reads it
/// (the line holds no line break): a line that starts with `::` after
/// white space would be a workflow command, so a backslash goes before
/// it; `##[`, the runner's older command form that it finds anywhere in a
/// line, becomes `##\[`.
pub fn not_a_command(line: &str) -> String {
    let mut out = line.replace("##[", "##\\[");
    let lead = out.len() - out.trim_start().len();
    if out[lead..].starts_with("::") {
        out.insert(lead, '\\');
    }
    out
}

/// A line of a report for a terminal or a CI log, foreign text in it:
/// every hidden character shown (a line break too), and not a command.
pub fn log_line(line: &str) -> String {
    not_a_command(&visible(line))
}

/// A message for stderr as downtime writes it, its own line breaks kept:
/// every other hidden character shown, the lines after the first indented
/// by two spaces (so none stands as a line of downtime's own), and no
/// line a command.
pub fn log_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\n  ");
        }
        out.push_str(&log_line(line));
    }
    out
}

/// A workflow command's message: `%` and line breaks as GitHub's own
/// escapes (`%25`, `%0D`, `%0A`), every other hidden character shown.
pub fn command_data(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c if hidden(c) => out.push_str(&code(c)),
            c => out.push(c),
        }
    }
    out
}

/// A workflow command's property value: as [`command_data`], and `:` and
/// `,` (which end a property) as `%3A` and `%2C`.
pub fn command_property(s: &str) -> String {
    command_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Markdown's inline punctuation: a backslash goes before each.
const MD_PUNCTUATION: &str = "\\`*_[]()#!|<>&~$^{}";

/// The zero-width joiner that keeps GitHub from reading a mention, a
/// reference or a link.
const JOINER: char = '\u{200d}';

/// Foreign text in Markdown (a list item, a table cell): shown as written,
/// never as markup. Markdown's punctuation is backslash-escaped, so no
/// emphasis, link, image, raw HTML, heading or table column comes from it;
/// line breaks and tabs become spaces, other hidden characters are shown;
/// and what GitHub turns into a mention, an issue reference or a link
/// (`@name`, `#12`, `http://…`, `www.…`) gets a zero-width joiner after
/// the `@`, the `#`, the `:` or the `www`.
pub fn md_text(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if hidden(c) => out.push_str(&code(c)),
            c if MD_PUNCTUATION.contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
        if needs_joiner(&chars, i) {
            out.push(JOINER);
        }
    }
    out
}

/// Whether GitHub would read the text at `chars[i]` as the start of a
/// mention, an issue reference or a link: a joiner goes after it.
fn needs_joiner(chars: &[char], i: usize) -> bool {
    let next = chars.get(i + 1).copied();
    match chars[i] {
        '@' => true,
        '#' => next.is_some_and(|n| n.is_ascii_digit()),
        ':' => next == Some('/') && chars.get(i + 2) == Some(&'/'),
        'w' | 'W' => {
            next == Some('.')
                && i >= 2
                && chars[i - 2..i].iter().all(|c| c.eq_ignore_ascii_case(&'w'))
        }
        _ => false,
    }
}

/// Foreign text as a Markdown code span in a table cell: one backtick
/// more than its longest run of backticks around it, `|` escaped (a cell
/// ends at one even inside a code span), hidden characters shown, and
/// `##[` broken by a zero-width joiner (GitHub's runner reads it anywhere
/// in a line when the comment is printed).
pub fn md_code(s: &str) -> String {
    let body = visible(s)
        .replace('|', "\\|")
        .replace("##[", &format!("#{JOINER}#["));
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = body.starts_with(['`', ' ']) || body.ends_with(['`', ' ']);
    let space = if pad { " " } else { "" };
    format!("{fence}{space}{body}{space}{fence}")
}

/// Foreign text inside the comment's own HTML (its `<summary>` lines,
/// which Markdown does not read): HTML-escaped, on one line, with a
/// zero-width joiner where GitHub would read a mention or reference.
pub fn md_html(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c => match entity(c) {
                Some(e) => out.push_str(e),
                None if hidden(c) => out.push_str(&code(c)),
                None => out.push(c),
            },
        }
        if needs_joiner(&chars, i) || (c == '#' && chars.get(i + 1) == Some(&'#')) {
            out.push(JOINER);
        }
    }
    out
}

/// The entity of a character that is markup in XML and HTML.
fn entity(c: char) -> Option<&'static str> {
    Some(match c {
        '&' => "&amp;",
        '<' => "&lt;",
        '>' => "&gt;",
        '"' => "&quot;",
        '\'' => "&apos;",
        _ => return None,
    })
}

/// Foreign text in XML or HTML, content or attribute value: `& < > " '`
/// as entities; line breaks as `&#10;` and `&#13;` (kept in attributes,
/// and no line of the file starts with foreign text); every other hidden
/// character shown by its code, so nothing XML 1.0 forbids is written and
/// no bidirectional control reorders the page; `##[` as `##&#91;`.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push('\t'),
            c => match entity(c) {
                Some(e) => out.push_str(e),
                None if hidden(c) => out.push_str(&code(c)),
                None => out.push(c),
            },
        }
    }
    out.replace("##[", "##&#91;")
}

/// A JSON text as serde writes it (C0 controls, `"` and `\` escaped in
/// strings): DEL, the C1 controls, the separators, the bidirectional
/// controls and the noncharacters as `\u` escapes too, and the `[` of
/// `##[` as `\u005b`. The same values read back; only strings can hold
/// these characters.
pub fn json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if hidden(c) && c as u32 >= 0x7f {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out.replace("##[", "##\\u005b")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_are_shown() {
        assert_eq!(
            visible("a\nb\r\u{1b}[2J\u{202e}\u{85}\u{fffe}é"),
            "a\\nb\\r\\x1b[2J\\u{202e}\\u{85}\\u{fffe}é"
        );
        assert_eq!(first_hidden("0001-ok.sql"), None);
        assert_eq!(first_hidden("a\u{2028}b"), Some('\u{2028}'));
    }

    #[test]
    fn no_line_is_a_command() {
        assert_eq!(not_a_command("::error::x"), "\\::error::x");
        assert_eq!(
            not_a_command(" \u{a0}::warning::x"),
            " \u{a0}\\::warning::x"
        );
        assert_eq!(not_a_command("a ##[error]b"), "a ##\\[error]b");
        assert_eq!(not_a_command("a :: b"), "a :: b");
        assert_eq!(
            log_lines("one\n::add-mask::x\r::stop-commands::t"),
            "one\n  \\::add-mask::x\\r::stop-commands::t"
        );
    }

    #[test]
    fn workflow_command_escapes() {
        assert_eq!(command_data("50% a\nb\r\u{1b}"), "50%25 a%0Ab%0D\\x1b");
        assert_eq!(command_property("a:b,c"), "a%3Ab%2Cc");
    }

    #[test]
    fn markdown_text_is_not_markup() {
        assert_eq!(md_text("*a* <b>\n|c|"), "\\*a\\* \\<b\\> \\|c\\|");
        assert_eq!(
            md_text("@octocat #12 #x"),
            "@\u{200d}octocat \\#\u{200d}12 \\#x"
        );
        assert_eq!(md_text("http://x www.y"), "http:\u{200d}//x www\u{200d}.y");
        assert_eq!(md_text("![i](u)"), "\\!\\[i\\]\\(u\\)");
    }

    #[test]
    fn code_spans_outlast_their_backticks() {
        assert_eq!(md_code("a"), "`a`");
        assert_eq!(md_code("a `b` c"), "``a `b` c``");
        assert_eq!(md_code("`x"), "`` `x ``");
        assert_eq!(md_code("a|b"), "`a\\|b`");
        assert_eq!(md_code("##[e]"), "`#\u{200d}#[e]`");
    }

    #[test]
    fn markup_escapes() {
        assert_eq!(
            xml("<a href='x'>&\n\u{1}\u{ffff}</a>"),
            "&lt;a href=&apos;x&apos;&gt;&amp;&#10;\\x01\\u{ffff}&lt;/a&gt;"
        );
        assert_eq!(md_html("<b>@me\n##[x"), "&lt;b&gt;@\u{200d}me #\u{200d}#[x");
        assert_eq!(json("\"a\u{202e}##[b\""), "\"a\\u202e##\\u005bb\"");
    }
}
