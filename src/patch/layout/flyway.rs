//! Flyway's SQL migrations as its resolver reads a filesystem location: the
//! folder and every folder below it; `V<version>__<description>.sql`
//! versioned (version parts separated by `.` or `_`, compared numerically,
//! `1` = `1.0`), `R__<description>.sql` repeatable (after all versioned
//! ones, by description, again whenever the file changes), `U…` undo (not
//! applied by `migrate`), `B…` baseline migrations (on a database without
//! history, the latest one stands in for the versioned ones up to it).
//! Names with a prefix but no valid version, callbacks (`beforeMigrate.sql`,
//! `afterMigrate.sql`, …) and other files are not migrations. A migration
//! runs in its own transaction with its history row, unless every
//! statement is one PostgreSQL forbids in a transaction (then each runs on
//! its own); mixing the two is an error Flyway raises before running it.

use std::path::{Path, PathBuf};

use super::{entries, file_name, own_file, Kind, Layout, Migration, Scan, SortKey, Transaction};
use crate::error::Result;
use crate::patch::file::{Named, Position};

pub use crate::patch::file::FLYWAY_HISTORY;

/// A name with Flyway's `.sql` suffix and a migration prefix with `__`.
pub(super) fn prefix_kind(name: &str) -> Option<Kind> {
    let stem = strip_sql(name)?;
    let kind = match stem.chars().next()? {
        'V' => Kind::Versioned,
        'R' => Kind::Repeatable,
        'B' => Kind::Baseline,
        'U' => Kind::Unversioned,
        _ => return None,
    };
    stem.contains("__").then_some(kind)
}

fn strip_sql(name: &str) -> Option<&str> {
    let cut = name.len().checked_sub(4)?;
    (name.is_char_boundary(cut) && name[cut..].eq_ignore_ascii_case(".sql")).then(|| &name[..cut])
}

/// A version as Flyway reads it: `_` is `.`; parts of digits.
fn version_parts(raw: &str) -> Option<Vec<u128>> {
    let normalized = raw.replace('_', ".");
    normalized.split('.').map(super::digits).collect()
}

/// One file name as Flyway's resolver reads it: (prefix, version parts and
/// text, description), or why it is not a migration.
#[allow(clippy::type_complexity)]
fn parse(name: &str) -> std::result::Result<(char, Option<(Vec<u128>, String)>, String), String> {
    let stem = strip_sql(name).ok_or("no .sql suffix")?;
    let prefix = stem.chars().next().ok_or("empty name")?;
    if !matches!(prefix, 'V' | 'U' | 'R' | 'B') {
        return Err("no Flyway prefix".into());
    }
    let rest = &stem[1..];
    let (version, description) = rest.split_once("__").unwrap_or((rest, ""));
    let description = description.replace('_', " ");
    if prefix == 'R' {
        if !version.is_empty() {
            return Err(
                "a repeatable migration cannot contain a version (R__description.sql)".into(),
            );
        }
        return Ok((prefix, None, description));
    }
    if version.is_empty() {
        return Err("a versioned migration must contain a version (V1.2__description.sql)".into());
    }
    let parts = version_parts(version)
        .ok_or_else(|| format!("could not recognise version number {version}"))?;
    Ok((
        prefix,
        Some((parts, version.replace('_', "."))),
        description,
    ))
}

/// A name by itself, as Flyway would read it.
pub(super) fn classify(name: &str, stem: String) -> Named {
    match parse(name) {
        Ok(('U', ..)) => Named::Skip(format!("{name}: Flyway undo migration, not applied")),
        Ok((_, None, description)) => Named::Repeatable {
            id: stem,
            description,
        },
        Ok((_, Some((parts, _)), _)) => Named::Patch {
            id: stem,
            layout: Layout::Flyway,
            position: Position(parts),
        },
        Err(_) => Named::Unknown,
    }
}

/// A Flyway callback script: run by Flyway at an event, not a migration.
fn callback(stem: &str) -> bool {
    let event = stem.split("__").next().unwrap_or(stem);
    (event.starts_with("before") || event.starts_with("after") || event == "createSchema")
        && event.chars().all(|c| c.is_ascii_alphabetic())
}

pub(super) fn scan(dir: &Path, exclude: &[PathBuf], out: &mut Scan) -> Result<()> {
    walk(dir, dir, exclude, out)
}

fn walk(dir: &Path, location: &Path, exclude: &[PathBuf], out: &mut Scan) -> Result<()> {
    for entry in entries(dir, exclude)? {
        if entry.is_dir() {
            walk(&entry, location, exclude, out)?;
        } else if !own_file(&file_name(&entry)) && strip_sql(&file_name(&entry)).is_some() {
            file(&entry, Some(location), out)?;
        }
    }
    Ok(())
}

pub(super) fn file(path: &Path, location: Option<&Path>, out: &mut Scan) -> Result<()> {
    let name = file_name(path);
    let stem = strip_sql(&name).unwrap_or(&name);
    if callback(stem) {
        out.note(
            path,
            "Flyway callback, run by Flyway at its event: not applied by downtime",
        );
        return Ok(());
    }
    let (prefix, version, description) = match parse(&name) {
        Ok(p) => p,
        Err(why) => {
            out.note(
                path,
                &format!("not a Flyway migration ({why}): Flyway passes it over"),
            );
            return Ok(());
        }
    };
    let script = location
        .and_then(|l| path.strip_prefix(l).ok())
        .map_or_else(|| name.clone(), |p| p.to_string_lossy().replace('\\', "/"));
    let transaction = if script_config_says_no_transaction(path)? {
        Transaction::Autocommit
    } else {
        Transaction::Single
    };
    let (kind, key, position, version) = match (prefix, version) {
        ('U', _) => {
            out.note(path, "Flyway undo migration, not applied by migrate");
            return Ok(());
        }
        (_, None) => {
            out.note(
                path,
                "Flyway repeatable migration: applied after the versioned ones, by description",
            );
            (
                Kind::Repeatable,
                SortKey::Repeatable(description.clone()),
                Vec::new(),
                None,
            )
        }
        (p, Some((parts, text))) => (
            if p == 'B' {
                Kind::Baseline
            } else {
                Kind::Versioned
            },
            SortKey::Flyway(super::trimmed(parts.clone()), u8::from(p != 'B')),
            parts,
            Some(text),
        ),
    };
    out.push(
        path.to_path_buf(),
        stem.to_string(),
        Layout::Flyway,
        position,
        key,
        Migration {
            version,
            description,
            kind,
            transaction,
            script,
        },
    );
    Ok(())
}

/// A script configuration file beside the migration (`V1__x.sql.conf`) with
/// `executeInTransaction=false`.
/// Read as every user file is (regular, within its cap, UTF-8).
fn script_config_says_no_transaction(path: &Path) -> Result<bool> {
    let mut conf = path.as_os_str().to_os_string();
    conf.push(".conf");
    let conf = std::path::PathBuf::from(conf);
    let text = crate::fsutil::read_text_if_exists(&conf, crate::fsutil::MIGRATION_SETTINGS)?;
    Ok(text.is_some_and(|text| {
        text.lines().any(|l| {
            let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            l.eq_ignore_ascii_case("executeInTransaction=false")
        })
    }))
}

/// Whether Flyway's PostgreSQL parser marks a statement non-transactional.
pub fn flyway_non_transactional(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .take(5)
        .map(str::to_ascii_uppercase)
        .collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    matches!(
        w.as_slice(),
        [
            "CREATE" | "DROP",
            "DATABASE" | "TABLESPACE" | "SUBSCRIPTION",
            ..
        ] | ["ALTER", "SYSTEM", ..]
            | ["VACUUM", ..]
            | ["DISCARD", "ALL", ..]
            | ["CREATE" | "DROP", "INDEX", "CONCURRENTLY", ..]
            | ["CREATE" | "DROP", "UNIQUE", "INDEX", "CONCURRENTLY", ..]
            | ["REINDEX", "SCHEMA" | "DATABASE" | "SYSTEM", ..]
            | ["REINDEX", "VERBOSE", "SCHEMA" | "DATABASE" | "SYSTEM", ..]
    )
}

/// How Flyway runs a migration with these statements (line, text).
pub(super) fn transaction(statements: &[(usize, &str)]) -> Transaction {
    let (mut inside, mut outside) = (false, false);
    for (line, sql) in statements {
        if flyway_non_transactional(sql) {
            outside = true;
        } else {
            inside = true;
        }
        if inside && outside {
            return Transaction::Mixed(*line);
        }
    }
    if outside {
        Transaction::Autocommit
    } else {
        Transaction::Single
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_flyway_reads() {
        let v = |n: &str| parse(n).unwrap();
        assert_eq!(v("V1__init.sql").1.unwrap().0, vec![1]);
        assert_eq!(v("V2_1__x.sql").1.unwrap().1, "2.1");
        assert_eq!(v("V1.2.3__a_b.SQL").2, "a b");
        assert_eq!(v("R__views.sql").1, None);
        assert_eq!(v("B5__base.sql").0, 'B');
        assert!(parse("R1__x.sql").is_err());
        assert!(parse("V__x.sql").is_err());
        assert!(parse("Vx__y.sql").is_err());
        assert!(callback("afterMigrate") && callback("beforeEachMigrate__log"));
        assert!(!callback("V1__x"));
    }

    #[test]
    fn flyway_transactions() {
        assert!(flyway_non_transactional(
            "create index concurrently i on t (a)"
        ));
        assert!(flyway_non_transactional(
            "CREATE UNIQUE INDEX CONCURRENTLY i ON t (a)"
        ));
        assert!(!flyway_non_transactional("reindex table concurrently t"));
        assert_eq!(
            transaction(&[
                (1, "set lock_timeout = '1s'"),
                (2, "create index concurrently i on t (a)")
            ]),
            Transaction::Mixed(2)
        );
        assert_eq!(
            transaction(&[(1, "create index concurrently i on t (a)")]),
            Transaction::Autocommit
        );
        assert_eq!(
            transaction(&[(1, "create table t (a int)")]),
            Transaction::Single
        );
    }
}
