//! Library error type and the exit-code contract.

use std::path::PathBuf;

/// Exit code for a run whose verdict passed.
pub const EXIT_PASS: i32 = 0;
/// Exit code for a verdict failure: a patch over budget, failed, or cold when declared live.
pub const EXIT_VERDICT: i32 = 1;
/// Exit code for usage, input and infrastructure errors.
pub const EXIT_ERROR: i32 = 2;

/// Errors that stop a run before a verdict can be given.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {message}", shown(.path))]
    Input { path: PathBuf, message: String },

    #[error("{}:{line}: {message}", shown(.path))]
    InputAt {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error("cannot read {}: {source}", shown(.path))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file downtime writes (a report, the history, sign-offs) cannot be
    /// written; found before a run starts where it can be.
    #[error("cannot write {what} {}: {reason}", shown(.path))]
    Write {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },

    #[error("{0}")]
    Usage(String),

    #[error("PostgreSQL server: {0}")]
    Server(String),

    #[error("baseline {}: {message}", shown(.path))]
    Baseline { path: PathBuf, message: String },

    #[error("Docker: {0}")]
    Docker(String),

    #[error("database: {message}")]
    Database {
        message: String,
        /// The server ended the connection with this error (a FATAL):
        /// its SQLSTATE and message.
        ended: Option<(String, String)>,
    },

    #[error("aborted by {0}")]
    Aborted(crate::cancel::Abort),
}

/// A path in an error: a file name's hidden characters (a line break, an
/// escape) shown by their code, so the name reads as one.
fn shown(path: &std::path::Path) -> String {
    crate::escape::visible(&path.display().to_string())
}

impl Error {
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// `what` (e.g. "history file") at `path` cannot be written.
    pub fn write(
        what: &'static str,
        path: impl Into<PathBuf>,
        reason: impl std::fmt::Display,
    ) -> Self {
        Error::Write {
            what,
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    /// A TOML parse error at the line its span starts on, naming the key
    /// written on that line (as `table.key`) when the message does not.
    pub fn toml(path: &std::path::Path, text: &str, e: &toml::de::Error) -> Self {
        let start = e.span().map(|s| s.start.min(text.len()));
        let line = start.map_or(1, |s| 1 + text[..s].matches('\n').count());
        let message = e.message().trim_end().to_string();
        let message = match start.and_then(|s| toml_key_at(text, s)) {
            Some(key) if !message.contains(&key) && !message.contains("unknown field") => {
                format!("{key}: {message}")
            }
            _ => message,
        };
        Error::InputAt {
            path: path.to_path_buf(),
            line,
            message,
        }
    }

    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Aborted(a) => a.exit_code().unwrap_or(EXIT_VERDICT),
            _ => EXIT_ERROR,
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        let ended = e
            .as_db_error()
            .filter(|d| matches!(d.severity(), "FATAL" | "PANIC"))
            .map(|d| (d.code().code().to_string(), d.message().to_string()));
        Error::Database {
            message: describe_pg_error(&e),
            ended,
        }
    }
}

impl Error {
    /// The SQLSTATE and message with which the server ended a connection,
    /// when this error is that.
    pub fn connection_ended(&self) -> Option<(&str, &str)> {
        match self {
            Error::Database {
                ended: Some((code, message)),
                ..
            } => Some((code, message)),
            _ => None,
        }
    }
}

/// Turn a driver error into one line with the server's SQLSTATE where there is one.
pub fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            // The driver's words name only the kind ("error performing TLS
            // handshake"); the causes say what happened.
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                text.push_str(": ");
                text.push_str(&c.to_string());
                cause = c.source();
            }
            text
        }
    }
}

/// The `table.key` assigned on the line holding byte `at`, if it is an
/// assignment.
fn toml_key_at(text: &str, at: usize) -> Option<String> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
