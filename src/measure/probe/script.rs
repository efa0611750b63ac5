//! The application's own queries for the probe (`--probe-sql FILE`).
//!
//! A file is either one statement per line, each a query of its own, or a
//! pgbench-style script (any line starting with a backslash makes it one):
//! its statements run in order as one query, `\set NAME random(LO, HI)` (or
//! an integer) draws a value and `:NAME` uses it. A `-- rate: N` comment sets
//! the queries per second of the query that follows it (of the whole
//! script in a pgbench-style file). Every query is sent inside a
//! transaction that is rolled back; statements that control transactions,
//! cannot run in one, or would reach the staging machine are refused.

use std::path::Path;

use crate::error::{Error, Result};

/// One step of a probe query.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A statement, taking the next of its variants each time it is sent.
    Rotate(Vec<String>),
    /// A statement with `:NAME` variables.
    Template(Vec<Part>),
    /// `\set NAME` to a value drawn from `lo..=hi`.
    Set { name: String, lo: i64, hi: i64 },
}

/// Text or a variable of a [`Step::Template`].
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Var(String),
}

impl Step {
    pub(super) fn fixed(sql: String) -> Step {
        Step::Rotate(vec![sql])
    }

    pub(super) fn rotating(variants: Vec<Step>) -> Step {
        Step::Rotate(
            variants
                .into_iter()
                .filter_map(|s| match s {
                    Step::Rotate(v) => v.into_iter().next(),
                    _ => None,
                })
                .collect(),
        )
    }

    /// The step as shown in a report.
    pub fn text(&self) -> String {
        match self {
            Step::Rotate(v) => v.first().cloned().unwrap_or_default(),
            Step::Template(parts) => parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => t.clone(),
                    Part::Var(v) => format!(":{v}"),
                })
                .collect(),
            Step::Set { name, lo, hi } => format!("\\set {name} random({lo}, {hi})"),
        }
    }
}

/// One query of the application's own, with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// `file:line`.
    pub label: String,
    pub steps: Vec<Step>,
    pub rate: Option<f64>,
}

/// Read `path` as described in the module documentation.
pub fn parse_script_file(path: &Path) -> Result<Vec<Script>> {
    let text = crate::fsutil::read_text(path, crate::fsutil::PROBE_SCRIPTS)?;
    let scripts = parse(path, &text)?;
    if scripts.is_empty() {
        return Err(Error::input(path, "no queries in the probe script"));
    }
    Ok(scripts)
}

fn parse(path: &Path, text: &str) -> Result<Vec<Script>> {
    let at = |line: usize, message: String| Error::InputAt {
        path: path.to_path_buf(),
        line,
        message,
    };
    let pgbench = text.lines().any(|l| l.trim_start().starts_with('\\'));
    let mut out = Vec::new();
    let mut rate = None;
    let mut steps = Vec::new();
    let mut pending = String::new();
    let mut pending_line = 0;
    let mut first_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if let Some(r) = l.strip_prefix("-- rate:") {
            let v = crate::limits::PROBE_RATE
                .parse(r.trim())
                .map_err(|e| at(line, format!("rate: {e}")))?;
            rate = Some(v);
            continue;
        }
        if l.is_empty() || l.starts_with("--") || l.starts_with('#') {
            continue;
        }
        if first_line == 0 {
            first_line = line;
        }
        if let Some(meta) = l.strip_prefix('\\') {
            steps.push(meta_command(meta).map_err(|m| at(line, m))?);
            continue;
        }
        if pending.is_empty() {
            pending_line = line;
        } else {
            pending.push('\n');
        }
        pending.push_str(raw);
        if !pgbench || l.ends_with(';') {
            let sql = std::mem::take(&mut pending);
            let step = statement(&sql).map_err(|m| at(pending_line, m))?;
            if pgbench {
                steps.push(step);
            } else {
                out.push(Script {
                    label: format!("{}:{line}", path.display()),
                    steps: vec![step],
                    rate: rate.take(),
                });
            }
        }
    }
    if !pending.trim().is_empty() {
        steps.push(statement(&pending).map_err(|m| at(pending_line, m))?);
    }
    if pgbench && !steps.is_empty() {
        out.push(Script {
            label: format!("{}:{first_line}", path.display()),
            steps,
            rate,
        });
    }
    Ok(out)
}

/// `\set NAME random(LO, HI)` or `\set NAME INT`.
fn meta_command(meta: &str) -> std::result::Result<Step, String> {
    let mut words = meta.splitn(3, char::is_whitespace);
    let (cmd, name, expr) = (
        words.next().unwrap_or(""),
        words.next().unwrap_or(""),
        words.next().unwrap_or("").trim(),
    );
    if cmd != "set" {
        return Err(format!(
            "\\{cmd}: only \\set NAME random(LO, HI) (or an integer) is understood in a probe script"
        ));
    }
    let valid_name =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(format!("\\set needs a variable name, not {name:?}"));
    }
    let int = |s: &str| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("\\set {name}: {:?} is not an integer", s.trim()))
    };
    let (lo, hi) = match expr
        .strip_prefix("random(")
        .and_then(|r| r.strip_suffix(')'))
    {
        Some(args) => {
            let (a, b) = args
                .split_once(',')
                .ok_or_else(|| format!("\\set {name}: random needs two bounds"))?;
            (int(a)?, int(b)?)
        }
        None => {
            let v = int(expr)?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(format!("\\set {name}: random({lo}, {hi}) is empty"));
    }
    Ok(Step::Set {
        name: name.to_string(),
        lo,
        hi,
    })
}

/// One SQL statement, checked by the real parser with its variables set to
/// 0, and made a template.
fn statement(sql: &str) -> std::result::Result<Step, String> {
    let sql = sql.trim().trim_end_matches(';').trim();
    let parts = template(sql);
    let probe: String = parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => t.as_str(),
            Part::Var(_) => "0",
        })
        .collect();
    let found = pg_query::split_with_parser(&probe)
        .map_err(|e| format!("not valid SQL: {e}"))?
        .len();
    if found != 1 {
        return Err(format!("one statement per query, found {found}"));
    }
    let a = crate::patch::analyse(&probe);
    if let Some(e) = a.parse_error {
        return Err(format!("not valid SQL: {e}"));
    }
    if a.tx_control.is_some() || a.outside_transaction {
        return Err("probe queries run in a transaction that is rolled back: transaction control and statements that cannot run in a transaction are refused".into());
    }
    if let Some(why) = a.host_access {
        return Err(format!("refused: {why}"));
    }
    if let Some((name, what)) = crate::patch::calls::outside_the_query(&probe) {
        // Its effect outlives the probe's rolled-back transaction and
        // reaches the patch's session: a failure it caused would be taken
        // for the patch's.
        return Err(format!(
            "refused: {name}() {what}; probe queries act only inside their own transaction, \
             which is rolled back, so that what the patch suffers is the patch's (a statement \
             failing because the probe ended or cancelled it would be blamed on the patch)"
        ));
    }
    let mut parts = parts;
    if let Some(Part::Text(t)) = parts.first_mut() {
        *t = format!("/*downtime*/ {t}");
    } else {
        parts.insert(0, Part::Text("/*downtime*/ ".into()));
    }
    Ok(Step::Template(parts))
}

/// How deep calls of the copy's own functions are followed.
const FUNCTION_DEPTH: usize = 4;

/// Before the probe sends anything: the functions of the copy that the
/// application's queries call (and those they call, a few levels down),
/// read from the copy and checked as the queries themselves are, so that
/// `select app.purge_sessions()` cannot end the patch's session from inside
/// a body the query text does not show. An error names the script's line.
pub(super) async fn check_functions(
    client: &tokio_postgres::Client,
    scripts: &[Script],
) -> Result<()> {
    for script in scripts {
        let text: String = script
            .steps
            .iter()
            .map(Step::text)
            .collect::<Vec<_>>()
            .join("\n");
        let mut seen: Vec<String> = Vec::new();
        let mut names = crate::patch::calls::called_functions(&text);
        for _ in 0..FUNCTION_DEPTH {
            names.retain(|n| !seen.contains(n));
            if names.is_empty() {
                break;
            }
            seen.extend(names.iter().cloned());
            let rows = client
                .query(
                    "/*downtime*/ select p.oid::regprocedure::text, p.prosrc \
                     from pg_catalog.pg_proc p \
                     join pg_catalog.pg_language l on l.oid operator(pg_catalog.=) p.prolang \
                     join pg_catalog.pg_namespace n on n.oid operator(pg_catalog.=) p.pronamespace \
                     where p.proname operator(pg_catalog.=) any($1::pg_catalog.text[]) \
                       and n.nspname operator(pg_catalog.<>) 'pg_catalog' \
                       and l.lanname operator(pg_catalog.<>) 'internal'",
                    &[&names],
                )
                .await?;
            names = Vec::new();
            for row in rows {
                let (function, body): (String, String) = (row.get(0), row.get(1));
                if let Some((name, what)) = crate::patch::calls::outside_the_query(&body) {
                    return Err(Error::input(
                        &script.label,
                        format!(
                            "refused: the probe query calls {function}, which calls {name}() \
                             (it {what}); probe queries act only inside their own transaction, \
                             which is rolled back, so that what the patch suffers is the patch's"
                        ),
                    ));
                }
                names.extend(crate::patch::calls::called_functions(&body));
            }
        }
    }
    Ok(())
}

/// Split `sql` at `:NAME` variables (not `::` casts).
fn template(sql: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts_var = c == ':'
            && chars
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_')
            && (i == 0 || chars[i - 1] != ':');
        if starts_var {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            parts.push(Part::Text(std::mem::take(&mut text)));
            parts.push(Part::Var(chars[i + 1..j].iter().collect()));
            i = j;
            continue;
        }
        text.push(c);
        i += 1;
    }
    parts.push(Part::Text(text));
    parts.retain(|p| !matches!(p, Part::Text(t) if t.is_empty()));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_per_line_each_with_its_rate() {
        let s = parse(
            Path::new("app.sql"),
            "-- rate: 5\nselect * from account where id = 1;\nselect 1::int\n",
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].rate, Some(5.0));
        assert_eq!(s[1].rate, None);
        assert_eq!(s[1].label, "app.sql:3");
        assert_eq!(
            s[1].steps[0].text(),
            "/*downtime*/ select 1::int",
            "a cast is not a variable"
        );
    }

    #[test]
    fn a_pgbench_script_is_one_query() {
        let s = parse(Path::new("b.sql"), "\\set aid random(1, 100)\nbegin_x;\n");
        assert!(s.is_err(), "bad SQL names its line");
        let s = parse(
            Path::new("b.sql"),
            "\\set aid random(1, 100)\nselect * from account\n where id = :aid;\nupdate account set plan = plan where id = :aid;\n",
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].steps.len(), 3);
        assert_eq!(
            s[0].steps[0],
            Step::Set {
                name: "aid".into(),
                lo: 1,
                hi: 100
            }
        );
    }

    #[test]
    fn refusals_name_the_line() {
        for (text, line) in [
            ("select 1\ncommit\n", 2),
            ("vacuum account\n", 1),
            ("select pg_read_file('/etc/passwd')\n", 1),
            (
                "select 1\nselect pg_terminate_backend(pid) from pg_stat_activity\n",
                2,
            ),
            ("\\sleep 10\n", 1),
            ("\\set x random(5, 1)\n", 1),
            ("-- rate: -1\nselect 1\n", 1),
        ] {
            match parse(Path::new("p.sql"), text) {
                Err(Error::InputAt { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
