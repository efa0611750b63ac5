//! The staging server's settings, one list for both backends: written as
//! `postgresql.conf` lines for the local cluster and passed as `-c
//! name=value` arguments to the container's server. The `--pg-conf` file is
//! read here too, the same way for both.

use std::path::Path;

use crate::error::{Error, Result};

/// One server setting: name and value, unquoted.
pub type Setting = (String, String);

/// Settings that make the staging server behave like production for timing
/// (durable commits, full page writes) and keep its log quiet. They come
/// before the user's `--pg-conf`, which may override them.
pub const BASE: &[(&str, &str)] = &[
    ("fsync", "on"),
    ("full_page_writes", "on"),
    ("synchronous_commit", "on"),
    ("logging_collector", "off"),
    ("log_min_messages", "warning"),
    // The process id and SQLSTATE on each line: why a session ended can be
    // read back from the log (see `Backend::session_end`).
    ("log_line_prefix", "%m [%p] %e "),
];

/// The server's own per-statement clock, as production often has it; added
/// when the installation or image has `pg_stat_statements`.
pub const STATEMENT_STATS: &[(&str, &str)] = &[
    ("shared_preload_libraries", "pg_stat_statements"),
    ("pg_stat_statements.track_utility", "on"),
];

/// The settings a staging server starts with, in order: [`BASE`], then
/// [`STATEMENT_STATS`] when `statement_stats`, then `user` (`--pg-conf`).
pub fn staging(statement_stats: bool, user: &[Setting]) -> Vec<Setting> {
    let stats: &[(&str, &str)] = if statement_stats {
        STATEMENT_STATS
    } else {
        &[]
    };
    BASE.iter()
        .chain(stats)
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .chain(user.iter().cloned())
        .collect()
}

/// The `--pg-conf` file's settings (none without a file).
pub fn read_conf(path: Option<&Path>) -> Result<Vec<Setting>> {
    match path {
        None => Ok(Vec::new()),
        Some(p) => {
            let text = crate::fsutil::read_text(p, crate::fsutil::PG_CONF)?;
            parse_conf(&text, p)
        }
    }
}

/// Parse `postgresql.conf` lines (`name = value`, `name value`). Comments
/// and blank lines are skipped; quotes around values are removed. `include`
/// directives are refused: every setting must be in this one file.
pub fn parse_conf(text: &str, path: &Path) -> Result<Vec<Setting>> {
    let mut settings = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let at = |message: String| Error::InputAt {
            path: path.to_path_buf(),
            line: n + 1,
            message,
        };
        let (name, value) = split_setting(line);
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !valid_name || value.is_empty() {
            return Err(at(format!(
                "expected `name = value`, found `{}`",
                raw.trim()
            )));
        }
        if matches!(name, "include" | "include_if_exists" | "include_dir") {
            return Err(at(format!(
                "`{name}` is not supported here (the settings are also passed to containers); \
                 put the settings in this file"
            )));
        }
        settings.push((name.to_string(), unquote(value)));
    }
    Ok(settings)
}

/// `name = value` or `name value`; empty parts when neither.
fn split_setting(line: &str) -> (&str, &str) {
    let split = line
        .split_once('=')
        .or_else(|| line.split_once(char::is_whitespace));
    match split {
        Some((n, v)) => (n.trim(), v.trim()),
        None => ("", ""),
    }
}

/// A value without its single quotes (`''` inside stands for `'`).
fn unquote(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        value[1..value.len() - 1].replace("''", "'")
    } else {
        value.to_string()
    }
}

/// Drop a `#` comment that is not inside single quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// `postgresql.conf` lines, each value quoted (quotes and backslashes
/// escaped, so the server reads back exactly the value given).
pub fn conf_lines(settings: &[Setting]) -> String {
    settings
        .iter()
        .map(|(name, value)| {
            let quoted = value.replace('\\', "\\\\").replace('\'', "''");
            format!("{name} = '{quoted}'\n")
        })
        .collect()
}

/// Server command-line arguments: `-c name=value` for each setting.
pub fn server_arguments(settings: &[Setting]) -> Vec<String> {
    settings
        .iter()
        .flat_map(|(name, value)| ["-c".to_string(), format!("{name}={value}")])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(settings: &[Setting]) -> Vec<(&str, &str)> {
        settings
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn conf_lines_are_parsed_into_settings() {
        let p = Path::new("pg.conf");
        let settings = parse_conf(
            "# comment\n\nshared_buffers = 256MB  # note\nwork_mem=8MB\n\
             log_line_prefix = '%m # [%p] '\nsearch_path 'a, b'\napplication_name = 'it''s'\n",
            p,
        )
        .unwrap();
        assert_eq!(
            pairs(&settings),
            [
                ("shared_buffers", "256MB"),
                ("work_mem", "8MB"),
                ("log_line_prefix", "%m # [%p] "),
                ("search_path", "a, b"),
                ("application_name", "it's"),
            ]
        );
        let err = parse_conf("work_mem = 8MB\nnonsense\n", p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pg.conf:2: expected `name = value`, found `nonsense`"
        );
        let err = parse_conf("work_mem = 8MB\ninclude 'other.conf'\n", p).unwrap_err();
        assert!(err.to_string().starts_with("pg.conf:2: `include`"), "{err}");
        let err = parse_conf("include_dir = 'conf.d'\n", p).unwrap_err();
        assert!(
            err.to_string().starts_with("pg.conf:1: `include_dir`"),
            "{err}"
        );
    }

    #[test]
    fn one_list_renders_as_conf_lines_and_as_arguments() {
        let user = vec![("work_mem".to_string(), "it's a\\b".to_string())];
        let settings = staging(true, &user);
        let names: Vec<&str> = settings.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.first(), Some(&"fsync"));
        assert!(names.contains(&"shared_preload_libraries"));
        assert_eq!(names.last(), Some(&"work_mem"), "--pg-conf comes last");
        assert!(!staging(false, &[])
            .iter()
            .any(|(n, _)| n == "shared_preload_libraries"));

        let conf = conf_lines(&settings);
        assert!(conf.starts_with("fsync = 'on'\n"), "{conf}");
        assert!(conf.ends_with("work_mem = 'it''s a\\\\b'\n"), "{conf}");
        // Read back, the conf lines give the same values.
        assert_eq!(parse_conf(&conf, Path::new("x")).unwrap()[0], settings[0]);

        let args = server_arguments(&settings);
        assert_eq!(&args[..2], ["-c", "fsync=on"]);
        assert_eq!(args.last().map(String::as_str), Some("work_mem=it's a\\b"));
        assert_eq!(args.len(), settings.len() * 2);
    }
}
