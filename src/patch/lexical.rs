//! The facts of the statement shapes patches are mostly made of, read from
//! their words instead of a parse tree: INSERT, UPDATE, DELETE, ALTER TABLE
//! (the common subcommands), CREATE INDEX, CREATE TABLE without foreign
//! keys, CREATE FUNCTION, SET, COMMENT, GRANT and REVOKE on objects, and
//! DROP. A parse tree costs far more than reading the words, and these
//! shapes say what they do in a few keywords.
//!
//! Each reader gives up (`None`) on anything it does not know for certain,
//! and pg_query's parser decides then; where it answers, the answer is what
//! the parse tree gives (`tests/properties.rs` checks it on generated
//! statements). The syntax itself is not checked: a statement the server
//! will refuse is named by the server when it runs (the report gives it
//! the kind its words say, where the parser would say `Unparsed`).

use super::host;
use super::statement::{Analysis, Fact, RelRef, Validation};
use super::words::{tokens, Kind, Token};
use crate::pg::locks::LockMode;

/// The analysis of `sql`, when its shape is one read here.
pub fn analyse(sql: &str) -> Option<Analysis> {
    let toks = tokens(sql)?;
    let first = toks.first()?;
    let second = toks.get(1);
    let mut a = Analysis::default();
    let mut names_only = false;
    let mut own_host = None;
    if first.is("insert") {
        a.kind = "InsertStmt".into();
        a.values_into = insert(&toks[1..])?;
    } else if first.is("update") {
        a.kind = "UpdateStmt".into();
        a.facts.push(write(&toks[1..], "UPDATE")?);
    } else if first.is("delete") && second.is_some_and(|t| t.is("from")) {
        a.kind = "DeleteStmt".into();
        a.facts.push(write(&toks[2..], "DELETE")?);
    } else if first.is("alter") && second.is_some_and(|t| t.is("table")) {
        a.kind = "AlterTableStmt".into();
        alter_table(&toks[2..], &mut a.facts)?;
    } else if first.is("create") {
        own_host = create(&toks[1..], &mut a, sql)?;
    } else if first.is("set") {
        a.kind = "VariableSetStmt".into();
        a.sets_lock_timeout = setting(&toks[1..])? == "lock_timeout";
    } else if first.is("comment") && second.is_some_and(|t| t.is("on")) {
        a.kind = "CommentStmt".into();
        names_only = true;
    } else if (first.is("grant") || first.is("revoke")) && has_word(&toks, "on") {
        a.kind = "GrantStmt".into();
        names_only = true;
    } else if first.is("drop") {
        a.kind = "DropStmt".into();
        a.outside_transaction = drop(&toks[1..])?;
        names_only = true;
    } else {
        return None;
    }
    // What must run outside a transaction block is run so only when
    // PostgreSQL's grammar accepts it (its raw parser, without a tree for
    // downtime): one it refuses stays in the transaction, as the parser's
    // analysis has it.
    if a.outside_transaction && pg_query::split_with_parser(sql).is_err() {
        return None;
    }
    a.host_access = host::access_by_words(sql, &toks, own_host, names_only);
    Some(a)
}

/// A cursor over a statement's tokens.
struct Cursor<'t, 'a> {
    toks: &'t [Token<'a>],
    i: usize,
}

impl<'t, 'a> Cursor<'t, 'a> {
    fn new(toks: &'t [Token<'a>]) -> Self {
        Cursor { toks, i: 0 }
    }

    fn peek(&self) -> Option<&'t Token<'a>> {
        self.toks.get(self.i)
    }

    /// Take the word `w` if it is next.
    fn word(&mut self, w: &str) -> bool {
        let hit = self.peek().is_some_and(|t| t.is(w));
        self.i += usize::from(hit);
        hit
    }

    /// Take the words `ws` if they are next, all of them.
    fn words(&mut self, ws: &[&str]) -> bool {
        let hit = ws
            .iter()
            .enumerate()
            .all(|(k, w)| self.toks.get(self.i + k).is_some_and(|t| t.is(w)));
        if hit {
            self.i += ws.len();
        }
        hit
    }

    fn punct(&mut self, p: &str) -> bool {
        let hit = self.peek().is_some_and(|t| t.is_punct(p));
        self.i += usize::from(hit);
        hit
    }

    /// An identifier.
    fn name(&mut self) -> Option<String> {
        let n = self.peek()?.identifier()?;
        self.i += 1;
        Some(n)
    }

    /// A relation name, schema-qualified or not.
    fn relation(&mut self) -> Option<RelRef> {
        let first = self.name()?;
        if !self.punct(".") {
            return Some(RelRef {
                schema: None,
                name: first,
            });
        }
        let second = self.name()?;
        // catalog.schema.name: the parser keeps the catalog apart.
        if self.peek().is_some_and(|t| t.is_punct(".")) {
            return None;
        }
        Some(RelRef {
            schema: Some(first),
            name: second,
        })
    }

    /// `[ONLY] name [*]`, as a relation_expr.
    fn relation_expr(&mut self) -> Option<RelRef> {
        self.word("only");
        let rel = self.relation()?;
        self.punct("*");
        Some(rel)
    }

    fn rest(&self) -> &'t [Token<'a>] {
        &self.toks[self.i.min(self.toks.len())..]
    }
}

/// Whether `w` stands as an unquoted word outside any parentheses.
fn has_word(toks: &[Token<'_>], w: &str) -> bool {
    top_level(toks).any(|t| t.is(w))
}

/// The tokens outside parentheses and brackets.
fn top_level<'t, 'a>(toks: &'t [Token<'a>]) -> impl Iterator<Item = &'t Token<'a>> {
    let mut depth = 0usize;
    toks.iter().filter(move |t| {
        if t.is_punct("(") || t.is_punct("[") {
            depth += 1;
            return false;
        }
        if t.is_punct(")") || t.is_punct("]") {
            depth = depth.saturating_sub(1);
            return false;
        }
        depth == 0
    })
}

/// Whether any unquoted word of `toks`, at any depth, is one of `ws`.
fn mentions(toks: &[Token<'_>], ws: &[&str]) -> bool {
    toks.iter().any(|t| ws.iter().any(|w| t.is(w)))
}

/// INSERT INTO: the relation when every row is constants (see
/// [`Analysis::values_into`]); `Some(None)` for rows from a query or
/// DEFAULT VALUES; `None` (the parser decides) for anything else.
fn insert(toks: &[Token<'_>]) -> Option<Option<RelRef>> {
    let mut c = Cursor::new(toks);
    c.word("into").then_some(())?;
    let rel = c.relation()?;
    if c.punct("(") {
        loop {
            c.name()?;
            if c.punct(")") {
                break;
            }
            c.punct(",").then_some(())?;
        }
    }
    if c.peek().is_some_and(|t| t.is("select") || t.is("default")) {
        return Some(None);
    }
    c.word("values").then_some(())?;
    loop {
        c.punct("(").then_some(())?;
        loop {
            constant(&mut c)?;
            if c.punct(")") {
                break;
            }
            c.punct(",").then_some(())?;
        }
        if c.peek().is_none() {
            return Some(Some(rel));
        }
        c.punct(",").then_some(())?;
    }
}

/// A literal the parser keeps as a constant (a negative number included),
/// or DEFAULT.
fn constant(c: &mut Cursor<'_, '_>) -> Option<()> {
    let t = c.peek()?;
    let ok = match t.kind {
        Kind::Number | Kind::Str => true,
        Kind::Other => {
            let b = t.text.as_bytes();
            b.len() > 1 && matches!(b[0], b'b' | b'B' | b'x' | b'X') && b[1] == b'\''
        }
        Kind::Word => ["null", "true", "false", "default"].iter().any(|w| t.is(w)),
        Kind::Operator if t.text == "-" => {
            c.i += 1;
            c.peek()?.kind == Kind::Number
        }
        _ => false,
    };
    c.i += 1;
    ok.then_some(())
}

/// UPDATE or DELETE: `[ONLY] rel [*] …`, the whole table unless a WHERE
/// clause follows.
fn write(toks: &[Token<'_>], verb: &'static str) -> Option<Fact> {
    let mut c = Cursor::new(toks);
    let rel = c.relation_expr()?;
    let whole_table = !has_word(c.rest(), "where");
    let keyed = if whole_table {
        Vec::new()
    } else {
        keyed(where_clause(c.rest())?)?
    };
    Some(Fact::Writes {
        rel,
        verb,
        whole_table,
        keyed,
    })
}

/// The tokens after the top-level WHERE.
fn where_clause<'t, 'a>(toks: &'t [Token<'a>]) -> Option<&'t [Token<'a>]> {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate() {
        if t.is_punct("(") || t.is_punct("[") {
            depth += 1;
        } else if t.is_punct(")") || t.is_punct("]") {
            depth = depth.saturating_sub(1);
        } else if depth == 0 && t.is("where") {
            return Some(&toks[i + 1..]);
        }
    }
    None
}

/// A WHERE clause of the one shape read here, `col = literal [AND col =
/// literal …]`, to its columns (sorted, without repeats); any other shape
/// is the parser's.
fn keyed(toks: &[Token<'_>]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = toks;
    loop {
        let [col, eq, value, tail @ ..] = rest else {
            return None;
        };
        let literal = matches!(value.kind, Kind::Number | Kind::Str);
        if col.kind == Kind::Punct || !eq.is_punct("=") || !literal {
            return None;
        }
        out.push(col.identifier()?);
        match tail {
            [] => break,
            [and, more @ ..] if and.is("and") => rest = more,
            _ => return None,
        }
    }
    out.sort();
    out.dedup();
    Some(out)
}

/// The subcommands of ALTER TABLE read here; any other gives up.
fn alter_table(toks: &[Token<'_>], facts: &mut Vec<Fact>) -> Option<()> {
    let mut c = Cursor::new(toks);
    c.words(&["if", "exists"]);
    if c.peek().is_some_and(|t| t.is("all")) {
        return None;
    }
    let rel = c.relation_expr()?;
    facts.push(Fact::AltersTable { rel: rel.clone() });
    for cmd in split_commas(c.rest()) {
        alter_command(&rel, cmd, facts)?;
    }
    Some(())
}

/// `toks` split at the commas outside parentheses; `None` for an empty part.
fn split_commas<'t, 'a>(toks: &'t [Token<'a>]) -> Vec<&'t [Token<'a>]> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, t) in toks.iter().enumerate() {
        if t.is_punct("(") || t.is_punct("[") {
            depth += 1;
        } else if t.is_punct(")") || t.is_punct("]") {
            depth = depth.saturating_sub(1);
        } else if depth == 0 && t.is_punct(",") {
            parts.push(&toks[start..i]);
            start = i + 1;
        }
    }
    parts.push(&toks[start..]);
    parts
}

fn alter_command(rel: &RelRef, cmd: &[Token<'_>], facts: &mut Vec<Fact>) -> Option<()> {
    let mut c = Cursor::new(cmd);
    let first = c.peek()?;
    // PostgreSQL 18's NOT ENFORCED constraints change what is validated.
    if mentions(cmd, &["enforced"]) {
        return None;
    }
    if c.word("add") {
        return add(rel, &mut c, facts);
    }
    if c.words(&["validate", "constraint"]) {
        let name = c.name()?;
        facts.push(Fact::Validates {
            rel: rel.clone(),
            validation: Validation::Constraint,
            name: Some(name),
        });
        return c.rest().is_empty().then_some(());
    }
    if c.word("alter") {
        if c.peek().is_some_and(|t| t.is("constraint")) {
            return Some(());
        }
        c.word("column");
        c.name()?;
        let type_change = c.word("type") || c.words(&["set", "data", "type"]);
        if type_change || c.words(&["set", "not", "null"]) {
            // What the rows must satisfy is the parser's to say.
            return None;
        }
        return Some(());
    }
    if c.word("attach") {
        c.word("partition").then_some(())?;
        let part = c.relation()?;
        facts.push(Fact::Validates {
            rel: part,
            validation: Validation::PartitionBound,
            name: None,
        });
        return Some(());
    }
    let plain = ["drop", "owner", "enable", "disable"];
    plain.iter().any(|w| first.is(w)).then_some(())
}

/// `ADD …`: a column (its inline constraints given up on) or a table
/// constraint.
fn add(rel: &RelRef, c: &mut Cursor<'_, '_>, facts: &mut Vec<Fact>) -> Option<()> {
    let kinds = ["check", "foreign", "primary", "unique", "exclude"];
    let constraint = c.peek().is_some_and(|t| t.is("constraint"))
        || c.peek().is_some_and(|t| kinds.iter().any(|k| t.is(k)));
    if !constraint {
        // A column: only plain ones (no constraint that yields a fact, no
        // NOT NULL that existing rows must satisfy).
        let facts_words = [
            "check",
            "references",
            "primary",
            "unique",
            "constraint",
            "not",
        ];
        return (!mentions(c.rest(), &facts_words)).then_some(());
    }
    let name = if c.word("constraint") {
        Some(c.name()?)
    } else {
        None
    };
    let rest = c.rest();
    let not_valid = top_level(rest)
        .zip(top_level(rest).skip(1))
        .any(|(a, b)| a.is("not") && b.is("valid"));
    let kind = rest.first()?;
    let validation = if kind.is("check") {
        Some(Validation::Check)
    } else if kind.is("foreign") {
        Some(Validation::ForeignKey)
    } else {
        None
    };
    match validation {
        Some(validation) => {
            if !not_valid {
                facts.push(Fact::Validates {
                    rel: rel.clone(),
                    validation,
                    name,
                });
            }
        }
        // What the rows must satisfy is the parser's to say.
        None if kind.is("primary") || kind.is("unique") => return None,
        None if kind.is("exclude") => {
            if !uses_existing_index(rest) {
                facts.push(Fact::BuildsIndex {
                    rel: rel.clone(),
                    concurrently: false,
                });
            }
        }
        None => return None,
    }
    Some(())
}

/// `… USING INDEX name` (an existing index), not `USING INDEX TABLESPACE`.
fn uses_existing_index(toks: &[Token<'_>]) -> bool {
    let top: Vec<&Token<'_>> = top_level(toks).collect();
    top.windows(3)
        .any(|w| w[0].is("using") && w[1].is("index") && !w[2].is("tablespace"))
}

/// CREATE INDEX, TABLE or FUNCTION; the host-safety finding of a function.
fn create(toks: &[Token<'_>], a: &mut Analysis, sql: &str) -> Option<Option<String>> {
    let mut c = Cursor::new(toks);
    if c.peek().is_some_and(|t| t.is("unique")) {
        // What the rows must satisfy is the parser's to say.
        return None;
    }
    if c.peek().is_some_and(|t| t.is("index")) {
        c.word("index").then_some(())?;
        a.kind = "IndexStmt".into();
        index(&mut c, a)?;
        return Some(None);
    }
    if c.words(&["or", "replace"])
        || c.peek()
            .is_some_and(|t| t.is("function") || t.is("procedure"))
    {
        (c.word("function") || c.word("procedure")).then_some(())?;
        a.kind = "CreateFunctionStmt".into();
        return function(c.rest(), sql);
    }
    let _ = c.word("global") || c.word("local");
    let _ = c.word("temp") || c.word("temporary") || c.word("unlogged");
    c.word("table").then_some(())?;
    // Foreign keys are facts; AS makes it CREATE TABLE … AS.
    if mentions(c.rest(), &["references"]) || has_word(c.rest(), "as") {
        return None;
    }
    a.kind = "CreateStmt".into();
    Some(None)
}

/// `[CONCURRENTLY] [IF NOT EXISTS] [name] ON [ONLY] table …`
fn index(c: &mut Cursor<'_, '_>, a: &mut Analysis) -> Option<()> {
    let concurrently = c.word("concurrently");
    // A name, which IF NOT EXISTS requires.
    if c.words(&["if", "not", "exists"]) || !c.peek().is_some_and(|t| t.is("on")) {
        c.name()?;
    }
    c.word("on").then_some(())?;
    let rel = c.relation_expr()?;
    if concurrently {
        a.facts.push(Fact::HoldsWhileRunning {
            rel: rel.clone(),
            mode: LockMode::ShareUpdateExclusive,
        });
    }
    a.facts.push(Fact::BuildsIndex { rel, concurrently });
    a.outside_transaction = concurrently;
    Some(())
}

/// CREATE FUNCTION or PROCEDURE: the host-safety finding of its language,
/// where the words settle it (a body with COPY, or a SET of a library
/// path, are left to the parser).
fn function(toks: &[Token<'_>], sql: &str) -> Option<Option<String>> {
    // A body with COPY, a library path set, or a SQL-standard body (whose
    // statements are words here too): the parser decides.
    let lower = sql.to_ascii_lowercase();
    if lower.contains("copy") || lower.contains("librar") || mentions(toks, &["atomic"]) {
        return None;
    }
    let top: Vec<&Token<'_>> = top_level(toks).collect();
    let mut language = None;
    for w in top.windows(2) {
        if !w[0].is("language") {
            continue;
        }
        let name = match w[1].kind {
            Kind::Str if w[1].text.starts_with('\'') && !w[1].text.contains('\n') => {
                w[1].text[1..w[1].text.len() - 1].replace("''", "'")
            }
            Kind::Word | Kind::Quoted => w[1].identifier()?,
            Kind::Str => return None,
            _ => continue,
        };
        if language.replace(name).is_some() {
            return None;
        }
    }
    let language = language
        .unwrap_or_else(|| "sql".into())
        .to_ascii_lowercase();
    Some(host::routine_language(&language))
}

/// SET [SESSION | LOCAL] name {= | TO} …: the setting's name.
fn setting(toks: &[Token<'_>]) -> Option<String> {
    let mut c = Cursor::new(toks);
    let _ = c.word("session") || c.word("local");
    let special = [
        "session",
        "local",
        "time",
        "transaction",
        "constraints",
        "role",
        "schema",
        "names",
        "xml",
        "authorization",
        "characteristics",
    ];
    if c.peek().is_none_or(|t| special.iter().any(|w| t.is(w))) {
        return None;
    }
    let mut name = String::new();
    loop {
        let t = c.peek()?;
        if t.kind != Kind::Word || !t.text.is_ascii() {
            return None;
        }
        name.push_str(&t.text.to_ascii_lowercase());
        c.i += 1;
        if !c.punct(".") {
            break;
        }
        name.push('.');
    }
    (c.punct("=") || c.word("to")).then_some(())?;
    // A setting that names libraries is for the parser to judge.
    (!name.contains("librar")).then_some(name)
}

/// DROP of the common object kinds: whether it runs outside a transaction
/// block (DROP INDEX CONCURRENTLY).
fn drop(toks: &[Token<'_>]) -> Option<bool> {
    let mut c = Cursor::new(toks);
    let kinds = [
        "table",
        "index",
        "view",
        "sequence",
        "function",
        "procedure",
        "type",
        "domain",
        "trigger",
        "schema",
        "extension",
        "materialized",
        "policy",
        "rule",
        "aggregate",
        "statistics",
    ];
    let kind = c.peek()?;
    kinds.iter().any(|k| kind.is(k)).then_some(())?;
    Some(c.word("index") && c.word("concurrently"))
}
