//! Statements that would reach the machine the staging server runs on.
//!
//! A staging run touches nothing on the host outside its own directory. The
//! server runs as a real operating-system user, and a superuser session can
//! read and write files, run shell commands and load libraries; a patch that
//! asks for any of that is refused before anything runs, at its line. The
//! check is static: it reads the parse tree, the bodies of functions and `DO`
//! blocks, and the SQL strings inside them (`EXECUTE '…'`). SQL assembled at
//! run time from fragments cannot be seen this way.

use pg_query::protobuf::{self, ObjectType};
use pg_query::NodeEnum;

use super::words::{block_comment, tokens, Kind, Token};

/// Functions that read, list or write files on the server's machine.
const FILE_FUNCTIONS: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "pg_stat_file",
    "pg_ls_dir",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_ls_logicalsnapdir",
    "pg_ls_logicalmapdir",
    "pg_ls_replslotdir",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "pg_logdir_ls",
    "lo_import",
    "lo_export",
];

/// Procedural languages that run unconfined code on the host (`u` for
/// untrusted), and `c`, which loads a shared library from a path.
const HOST_LANGUAGES: &[&str] = &[
    "c",
    "plpythonu",
    "plpython2u",
    "plpython3u",
    "plperlu",
    "pltclu",
    "plsh",
    "plr",
    "plluau",
    "pljavau",
];

/// Extensions whose purpose is reaching the host's files (besides the
/// untrusted languages of [`HOST_LANGUAGES`], packaged as extensions too).
const HOST_EXTENSIONS: &[&str] = &["adminpack", "file_fdw"];

/// Settings that make the server load a library from a path.
const LIBRARY_SETTINGS: &[&str] = &[
    "dynamic_library_path",
    "session_preload_libraries",
    "local_preload_libraries",
    "shared_preload_libraries",
];

/// How deep SQL inside strings inside SQL is followed.
const MAX_DEPTH: usize = 4;

/// Words one of which a text must hold for the SQL in its strings to matter.
const TRIGGERS: &[&str] = &[
    "copy",
    "load",
    "extension",
    "tablespace",
    "language",
    "librar",
    "pg_",
    "lo_",
    "program",
    "foreign",
    "subscription",
];

/// Why the statement `sql` (parsed as `top`) reaches the host, or `None`
/// when it stays inside the database.
///
/// File functions are found by name in the text, followed by `(`, so a call
/// is seen wherever it sits: a default, a view, an index expression, a
/// function body or an `EXECUTE` string. Statements that only name a function
/// (`ALTER FUNCTION lo_import(text) OWNER TO …`, `GRANT`, `COMMENT`) call
/// nothing. SQL inside strings (a `DO` or function body, an `EXECUTE` or
/// `dblink_exec` argument) is checked as the patch's own statements are.
pub fn access(sql: &str, top: &NodeEnum) -> Option<String> {
    judge(sql, top, 0)
}

fn judge(sql: &str, node: &NodeEnum, depth: usize) -> Option<String> {
    statement(node)
        .or_else(|| (!names_only(node)).then(|| called_in(sql)).flatten())
        .or_else(|| inside_strings(sql, depth))
}

/// A call of a file function anywhere in `text`.
fn called_in(text: &str) -> Option<String> {
    called_in_lower(&text.to_ascii_lowercase())
}

/// [`called_in`] on text already in lower case.
fn called_in_lower(lower: &str) -> Option<String> {
    if !lower.contains("pg_") && !lower.contains("lo_") {
        return None;
    }
    let code = without_comments(lower);
    let found = words(&code).find_map(|(start, word)| {
        let after = code[start + word.len()..].trim_start_matches('"');
        after
            .trim_start()
            .starts_with('(')
            .then(|| file_function(word))
            .flatten()
    });
    found
}

/// Why a statement read by its words ([`super::lexical`]) reaches the host:
/// `own`, what its kind does (a function's language); else a file function
/// called in its text, unless it only names objects; else the SQL in its
/// string constants `toks`.
pub(super) fn access_by_words(
    sql: &str,
    toks: &[Token<'_>],
    own: Option<String>,
    names_only: bool,
) -> Option<String> {
    if own.is_some() {
        return own;
    }
    let lower = sql.to_ascii_lowercase();
    if !triggered(&lower) {
        return None;
    }
    (!names_only)
        .then(|| called_in_lower(&lower))
        .flatten()
        .or_else(|| strings_in(toks, 0))
}

/// Whether lower-case `text` holds a word one of which any SQL that reaches
/// the host must hold: without one, neither the text nor the strings in it
/// can (unquoting a string never makes one).
fn triggered(lower: &str) -> bool {
    TRIGGERS.iter().any(|w| lower.contains(w))
}

/// The SQL inside the string constants of `text`, followed a few levels deep.
fn inside_strings(text: &str, depth: usize) -> Option<String> {
    if depth >= MAX_DEPTH || !triggered(&text.to_ascii_lowercase()) {
        return None;
    }
    strings_in(&tokens(text)?, depth)
}

/// The SQL inside the string constants among `toks`.
fn strings_in(toks: &[Token<'_>], depth: usize) -> Option<String> {
    if depth >= MAX_DEPTH {
        return None;
    }
    toks.iter()
        .filter(|t| t.kind == Kind::Str)
        .find_map(|t| nested(&unquote(t.text), depth + 1))
}

/// A string's content: as SQL, each statement judged as a patch's own; else
/// as a PL/pgSQL body, its COPYs, its statements and its strings. Text
/// without a trigger word reaches nothing.
fn nested(text: &str, depth: usize) -> Option<String> {
    if !triggered(&text.to_ascii_lowercase()) {
        return None;
    }
    match pg_query::parse(text, 0) {
        Ok(parsed) => parsed.protobuf.stmts.iter().find_map(|s| {
            let node = s.stmt.as_ref()?.node.as_ref()?;
            let start = usize::try_from(s.stmt_location).ok()?;
            let len = usize::try_from(s.stmt_len).ok()?;
            let sql = if len == 0 {
                text.get(start..)?
            } else {
                text.get(start..start + len)?
            };
            judge(sql, node, depth)
        }),
        Err(_) => body(text)
            .or_else(|| called_in(text))
            .or_else(|| plpgsql_statements(text, depth))
            .or_else(|| inside_strings(text, depth)),
    }
}

/// The statements and expressions of a PL/pgSQL body, each judged.
fn plpgsql_statements(text: &str, depth: usize) -> Option<String> {
    if depth >= MAX_DEPTH || text.contains("$downtime_body$") {
        return None;
    }
    let function = format!(
        "create function downtime_body() returns void language plpgsql as \
         $downtime_body${text}$downtime_body$"
    );
    let tree = pg_query::parse_plpgsql(&function).ok()?;
    let mut queries = Vec::new();
    collect_queries(&tree, &mut queries);
    queries.into_iter().find_map(|q| nested(&q, depth + 1))
}

fn collect_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("query", serde_json::Value::String(q)) => out.push(q.clone()),
                    _ => collect_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_queries(v, out)),
        _ => {}
    }
}

/// A string constant's content: `'…'`, `E'…'`, `U&'…'` or `$tag$…$tag$`.
fn unquote(raw: &str) -> String {
    if let Some(after_dollar) = raw.strip_prefix('$') {
        if let Some(end) = after_dollar.find('$') {
            let tag = &raw[..end + 2];
            if raw.len() >= 2 * tag.len() {
                return raw[tag.len()..raw.len() - tag.len()].to_string();
            }
        }
        return raw.to_string();
    }
    let (escapes, quoted) = match raw.as_bytes().first() {
        Some(b'e' | b'E') => (true, &raw[1..]),
        Some(b'u' | b'U') => (false, raw.get(2..).unwrap_or("")),
        _ => (false, raw),
    };
    let inner = quoted
        .strip_prefix('\'')
        .and_then(|q| q.strip_suffix('\''))
        .unwrap_or(quoted);
    let text = inner.replace("''", "'");
    if escapes {
        text.replace("\\'", "'").replace("\\\\", "\\")
    } else {
        text
    }
}

/// Statements that name objects without evaluating any expression.
fn names_only(node: &NodeEnum) -> bool {
    matches!(
        node,
        NodeEnum::AlterOwnerStmt(_)
            | NodeEnum::AlterFunctionStmt(_)
            | NodeEnum::GrantStmt(_)
            | NodeEnum::DropStmt(_)
            | NodeEnum::CommentStmt(_)
            | NodeEnum::RenameStmt(_)
            | NodeEnum::AlterObjectSchemaStmt(_)
            | NodeEnum::AlterObjectDependsStmt(_)
            | NodeEnum::AlterExtensionContentsStmt(_)
            | NodeEnum::SecLabelStmt(_)
    )
}

/// The statement kinds that reach the host by what they are.
fn statement(node: &NodeEnum) -> Option<String> {
    match node {
        NodeEnum::CopyStmt(c) => copy(c),
        NodeEnum::CreateTableSpaceStmt(_) => Some(
            "CREATE TABLESPACE makes the server create and own a directory on the host; \
             a patch may not (tablespaces are set up on the server, outside migrations)"
                .into(),
        ),
        NodeEnum::DropTableSpaceStmt(_) | NodeEnum::AlterTableSpaceOptionsStmt(_) => Some(
            "a tablespace is a directory on the host shared by every database; a patch may not \
             drop or change one"
                .into(),
        ),
        NodeEnum::LoadStmt(l) => Some(format!(
            "LOAD '{}' loads a shared library from the host into the server",
            l.filename
        )),
        NodeEnum::CreatePlangStmt(p) => Some(format!(
            "CREATE LANGUAGE {} installs a procedural language handler from the host",
            p.plname
        )),
        NodeEnum::CreateExtensionStmt(e) => {
            let name = e.extname.to_ascii_lowercase();
            let host = HOST_EXTENSIONS.contains(&name.as_str())
                || (name != "c" && HOST_LANGUAGES.contains(&name.as_str()));
            host.then(|| {
                format!(
                    "CREATE EXTENSION {name} gives SQL access to the host's files or runs \
                     unconfined code on it"
                )
            })
        }
        NodeEnum::CreateFunctionStmt(f) => {
            settings_in(&f.options).or_else(|| routine(&f.options, "sql"))
        }
        NodeEnum::AlterFunctionStmt(f) => settings_in(&f.actions),
        NodeEnum::VariableSetStmt(v) => library_setting(v),
        NodeEnum::AlterRoleSetStmt(r) => r.setstmt.as_ref().and_then(library_setting),
        NodeEnum::AlterDatabaseSetStmt(d) => d.setstmt.as_ref().and_then(library_setting),
        NodeEnum::DoStmt(d) => routine(&d.args, "plpgsql"),
        NodeEnum::CreateForeignTableStmt(t) => fdw_options(&t.options),
        NodeEnum::AlterForeignServerStmt(s) => fdw_options(&s.options),
        NodeEnum::CreateForeignServerStmt(s) => fdw_options(&s.options),
        NodeEnum::AlterTableStmt(t) => alter_table(t),
        NodeEnum::CreateSubscriptionStmt(_) | NodeEnum::AlterSubscriptionStmt(_) => {
            super::publisher::reaches(node)
        }
        _ => None,
    }
}

/// A function or `DO` block: its language, then its body.
fn routine(options: &[protobuf::Node], default_language: &str) -> Option<String> {
    let mut language = default_language.to_string();
    let mut bodies = Vec::new();
    for (name, arg) in def_elems(options) {
        match name {
            "language" => {
                if let Some(NodeEnum::String(s)) = arg {
                    language = s.sval.to_ascii_lowercase();
                }
            }
            "as" => match arg {
                Some(NodeEnum::String(s)) => bodies.push(s.sval.as_str()),
                Some(NodeEnum::List(l)) => {
                    bodies.extend(l.items.iter().filter_map(|i| match &i.node {
                        Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                        _ => None,
                    }))
                }
                _ => {}
            },
            _ => {}
        }
    }
    routine_language(&language).or_else(|| bodies.into_iter().find_map(body))
}

/// Why a function or `DO` block in `language` (lower case) runs code on
/// the host, when it does.
pub(super) fn routine_language(language: &str) -> Option<String> {
    HOST_LANGUAGES.contains(&language).then(|| {
        format!(
            "LANGUAGE {language} runs unconfined code on the host (a C library or an untrusted \
             language); a staging run may not"
        )
    })
}

/// `SET name = …` among a function's options.
fn settings_in(options: &[protobuf::Node]) -> Option<String> {
    def_elems(options).find_map(|(_, arg)| match arg {
        Some(NodeEnum::VariableSetStmt(v)) => library_setting(v),
        _ => None,
    })
}

/// The `name value` options of a statement.
fn def_elems(options: &[protobuf::Node]) -> impl Iterator<Item = (&str, Option<&NodeEnum>)> {
    options.iter().filter_map(|o| match &o.node {
        Some(NodeEnum::DefElem(d)) => Some((
            d.defname.as_str(),
            d.arg.as_deref().and_then(|a| a.node.as_ref()),
        )),
        _ => None,
    })
}

/// file_fdw and its relatives: a foreign table over a host file or program.
fn fdw_options(options: &[protobuf::Node]) -> Option<String> {
    def_elems(options).find_map(|(name, _)| {
        let name = name.to_ascii_lowercase();
        matches!(name.as_str(), "filename" | "program").then(|| {
            format!("a foreign table option `{name}` reads a file or runs a program on the host")
        })
    })
}

/// `ALTER FOREIGN TABLE … OPTIONS (filename …)` arrives as an ALTER TABLE.
fn alter_table(t: &protobuf::AlterTableStmt) -> Option<String> {
    if t.objtype() != ObjectType::ObjectForeignTable {
        return None;
    }
    t.cmds.iter().find_map(|c| match &c.node {
        Some(NodeEnum::AlterTableCmd(cmd)) => {
            match cmd.def.as_deref().and_then(|d| d.node.as_ref()) {
                Some(NodeEnum::List(l)) => fdw_options(&l.items),
                _ => None,
            }
        }
        _ => None,
    })
}

fn copy(c: &protobuf::CopyStmt) -> Option<String> {
    if c.is_program {
        Some(format!(
            "COPY … {} PROGRAM runs a shell command on the host as the server's user",
            if c.is_from { "FROM" } else { "TO" }
        ))
    } else if !c.filename.is_empty() {
        Some(format!(
            "COPY … {} '{}' {} a file on the host; use COPY … {} from a client, \
             or load data in the baseline",
            if c.is_from { "FROM" } else { "TO" },
            c.filename,
            if c.is_from { "reads" } else { "writes" },
            if c.is_from { "FROM STDIN" } else { "TO STDOUT" },
        ))
    } else {
        None
    }
}

fn file_function(name: &str) -> Option<String> {
    FILE_FUNCTIONS.contains(&name).then(|| {
        format!("{name}() reads, lists or writes files on the host (server-side file access)")
    })
}

/// A library setting whose value is a path (a bare library name loads from
/// the server's own library directory, as installed extensions do), or the
/// search path for libraries itself.
fn library_setting(v: &protobuf::VariableSetStmt) -> Option<String> {
    let name = v.name.to_ascii_lowercase();
    if !LIBRARY_SETTINGS.contains(&name.as_str()) {
        return None;
    }
    let path_value = v.args.iter().any(|a| match &a.node {
        Some(NodeEnum::AConst(c)) => matches!(
            &c.val,
            Some(protobuf::a_const::Val::Sval(s)) if s.sval.contains('/')
        ),
        _ => false,
    });
    (name == "dynamic_library_path" || path_value)
        .then(|| format!("setting {name} makes the server load libraries from paths on the host"))
}

/// COPY to or from a file or program inside the body of a function or `DO`
/// block, or in an SQL string there (`EXECUTE '…'`). Comments are left out so
/// prose cannot trip it.
fn body(text: &str) -> Option<String> {
    let code = without_comments(&text.to_ascii_lowercase());
    let found = words(&code)
        .filter(|&(_, word)| word == "copy")
        .find_map(|(start, word)| copy_in_body(&code[start + word.len()..]));
    found
}

/// `-- …` and `/* … */` removed (nested block comments as PostgreSQL nests them).
pub(super) fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if rest.starts_with("/*") {
            let end = block_comment(rest.as_bytes(), 0).unwrap_or(rest.len());
            out.push(' ');
            rest = &rest[end..];
        } else {
            let next = rest
                .char_indices()
                .skip(1)
                .find(|&(i, _)| rest[i..].starts_with("--") || rest[i..].starts_with("/*"))
                .map_or(rest.len(), |(i, _)| i);
            out.push_str(&rest[..next]);
            rest = &rest[next..];
        }
    }
    out
}

/// Identifier-like words with their byte offsets.
pub(super) fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    text.char_indices()
        .filter(move |&(i, c)| is_word(c) && !text[..i].ends_with(is_word))
        .map(move |(i, _)| {
            let len = text[i..]
                .find(|c: char| !is_word(c))
                .unwrap_or(text.len() - i);
            (i, &text[i..i + len])
        })
}

/// What follows a `copy` word, read as COPY's grammar: a table name (maybe
/// qualified, quoted or a `format()` placeholder) with an optional column
/// list, or a parenthesised query; then `to`/`from` and a target. The target
/// is a file when it is a literal or placeholder (`'…'`, `$…`, `%L`), a
/// program when the word `program` follows.
fn copy_in_body(after: &str) -> Option<String> {
    let mut rest = after.trim_start();
    if let Some(inner) = rest.strip_prefix('(') {
        rest = &inner[closing_paren(inner)? + 1..];
    } else {
        let name_len = rest
            .find(|c: char| {
                !(c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.' | '"' | '%'))
            })
            .unwrap_or(rest.len());
        if name_len == 0 {
            return None;
        }
        rest = rest[name_len..].trim_start();
        if let Some(inner) = rest.strip_prefix('(') {
            rest = &inner[closing_paren(inner)? + 1..];
        }
    }
    let rest = rest.trim_start();
    let (direction, target) = if let Some(t) = rest.strip_prefix("to") {
        ("TO", t)
    } else if let Some(t) = rest.strip_prefix("from") {
        ("FROM", t)
    } else {
        return None;
    };
    if !target.starts_with(char::is_whitespace) {
        return None;
    }
    let target = target.trim_start();
    let word_end = target
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(target.len());
    match &target[..word_end] {
        "program" => Some(format!(
            "COPY … {direction} PROGRAM in a function or DO body runs a shell command on the host"
        )),
        "stdin" | "stdout" => None,
        "e" if target[1..].starts_with('\'') => Some(copy_file(direction)),
        "" if target.starts_with(['\'', '$', '%']) => Some(copy_file(direction)),
        _ => None,
    }
}

fn copy_file(direction: &str) -> String {
    format!("COPY … {direction} a file in a function or DO body reaches the host's files")
}

/// The offset of the `)` closing an already opened parenthesis.
fn closing_paren(text: &str) -> Option<usize> {
    let mut depth = 1usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}
