//! Patches: discovery and ordering, splitting into statements, and what each
//! statement does.

pub mod calls;
pub mod directives;
pub mod discover;
pub mod file;
pub mod host;
pub mod layout;
mod lexical;
mod nodes;
pub mod publisher;
pub mod requirement;
pub mod split;
pub mod statement;
pub mod transaction;
pub mod words;

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
pub use directives::Waiver;
pub use discover::{discover, discover_with, Layout, PatchFile};
pub use layout::{Kind, Migration, Transaction};
pub use statement::{Analysis, Fact, RelRef};
pub use transaction::TxControl;

/// Patch files larger than this are refused before they are read into memory
/// (by the size of the opened file; no more than this is ever read).
pub const MAX_PATCH_BYTES: u64 = crate::fsutil::PATCHES.max_bytes;

/// Analyse one statement's text: from its words where its shape allows
/// (see [`lexical`]), else from pg_query's parse tree.
pub fn analyse(sql: &str) -> Analysis {
    lexical::analyse(sql).unwrap_or_else(|| statement::analyse_tree(sql))
}

/// Live (applies while the application runs) or cold (needs a downtime window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Live,
    Cold,
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Class::Live => "live",
            Class::Cold => "cold",
        })
    }
}

/// One statement of a patch.
#[derive(Debug, Clone)]
pub struct Statement {
    /// 1-based line of the statement's first token.
    pub line: usize,
    /// The statement as sent to the server (no trailing semicolon).
    pub sql: String,
    pub analysis: Analysis,
}

impl Statement {
    /// Map a 1-based character position in `sql` (as the server reports it)
    /// to a line in the patch file.
    pub fn line_of_position(&self, position: usize) -> usize {
        let newlines = self
            .sql
            .chars()
            .take(position.saturating_sub(1))
            .filter(|&c| c == '\n')
            .count();
        self.line + newlines
    }
}

/// Why a patch is refused before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub line: usize,
    pub reason: String,
}

/// A patch read from disk, split and analysed.
#[derive(Debug, Clone)]
pub struct Patch {
    pub file: PatchFile,
    pub sha256: String,
    pub statements: Vec<Statement>,
    /// The class the patch declares for itself (`-- downtime: live|cold`).
    pub declared: Option<Class>,
    /// A post-deployment patch: in a `post_migrate`/`post-deploy` folder or
    /// declaring `-- downtime: post-deploy`.
    pub post_deploy: bool,
    /// `-- downtime: allow RULE because …` comments.
    pub waivers: Vec<Waiver>,
    /// `-- downtime: small TABLE, …`: tables that stay small in production.
    pub small_tables: Vec<String>,
    /// Set when the patch cannot be applied by downtime at all.
    pub refusal: Option<Refusal>,
    /// What the layout's tool knows of it: version, description, how it
    /// runs it (transaction or not).
    pub tool: Migration,
    /// The file's text, as read (checksums of the tools are taken over it).
    pub text: String,
}

/// Read, split and analyse one patch file of downtime's own layouts.
pub fn load(file: PatchFile) -> Result<Patch> {
    let tool = Migration {
        version: Some(file.position.to_string()),
        ..Migration::default()
    };
    load_with(file, tool)
}

/// Read, split and analyse one migration, with what its tool knows of it.
pub fn load_with(file: PatchFile, tool: Migration) -> Result<Patch> {
    let bytes = crate::fsutil::read_regular(&file.path, crate::fsutil::PATCHES)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let text = crate::fsutil::text(&file.path, bytes)?;
    let split = split::split(&text).map_err(|e| Error::InputAt {
        path: file.path.clone(),
        line: e.line,
        message: e.message,
    })?;
    let comments_only = split.statements.is_empty() && split.meta_commands.is_empty();
    // A tool runs a file of comments as a no-op; downtime's own layouts call it a mistake.
    let own_layout = matches!(file.layout, Layout::Numbered | Layout::Launchpad);
    if comments_only && (own_layout || text.trim().is_empty()) {
        return Err(Error::input(
            &file.path,
            "the patch has no SQL statements (empty, or only comments)",
        ));
    }
    let first_line = split.statements.first().map_or(usize::MAX, |s| s.line);
    let directives =
        directives::parse(&split.comments, first_line).map_err(|(line, message)| {
            Error::InputAt {
                path: file.path.clone(),
                line,
                message,
            }
        })?;
    let post_deploy = directives.post_deploy || in_post_deploy_folder(&file.path);

    let statements: Vec<Statement> = split
        .statements
        .iter()
        .map(|s| Statement {
            line: s.line,
            sql: s.text.to_string(),
            analysis: analyse(s.text),
        })
        .collect();

    let mut refusals: Vec<Refusal> = split
        .meta_commands
        .iter()
        .map(|m| Refusal {
            line: m.line,
            reason: format!(
                "psql meta-command `{}` is not SQL: downtime sends each statement to the server itself; \
                 remove it (use SET for settings, --pg-conf for server settings)",
                m.text.split_whitespace().next().unwrap_or("\\")
            ),
        })
        .collect();
    refusals.extend(
        publisher::uncut_drops(
            statements
                .iter()
                .map(|s| (s.line, s.analysis.slot_step.as_ref())),
        )
        .into_iter()
        .map(|(line, reason)| Refusal { line, reason }),
    );
    for s in &statements {
        if s.analysis.copy_from_stdin {
            refusals.push(Refusal {
                line: s.line,
                reason: "COPY ... FROM STDIN needs psql to stream the rows that follow it; \
                         use INSERT, or load the data in the baseline"
                    .into(),
            });
        }
        match s.analysis.kind.as_str() {
            "AlterSystemStmt" => refusals.push(Refusal {
                line: s.line,
                reason: "ALTER SYSTEM changes the server's configuration, not the database: a patch may not \
                         carry it (put server settings in --pg-conf)"
                    .into(),
            }),
            "DropdbStmt" => refusals.push(Refusal {
                line: s.line,
                reason: "DROP DATABASE in a patch: a patch changes the database it is applied to, never drops one"
                    .into(),
            }),
            _ => {}
        }
        if let Some(why) = &s.analysis.host_access {
            refusals.push(Refusal {
                line: s.line,
                reason: format!(
                    "{why}: a staging run must not touch the machine it runs on, nor any server \
                     but its own"
                ),
            });
        }
        if s.analysis.tx_control == Some(TxControl::TwoPhase) {
            refusals.push(Refusal {
                line: s.line,
                reason: "two-phase commit statements cannot be applied to a staging copy".into(),
            });
        }
    }
    let refusal = refusals.into_iter().min_by_key(|r| r.line);
    let mut tool = tool;
    let lines: Vec<(usize, &str)> = statements
        .iter()
        .map(|s| (s.line, s.sql.as_str()))
        .collect();
    layout::settle(file.layout, &mut tool, &text, &lines);

    Ok(Patch {
        file,
        sha256,
        statements,
        declared: directives.declared,
        post_deploy,
        waivers: directives.waivers,
        small_tables: directives.small_tables,
        refusal,
        tool,
        text,
    })
}

/// Folder names that mark post-deployment patches (GitLab's `post_migrate`).
pub const POST_DEPLOY_FOLDERS: &[&str] =
    &["post_migrate", "post-migrate", "post_deploy", "post-deploy"];

fn in_post_deploy_folder(path: &Path) -> bool {
    path.parent().is_some_and(|dir| {
        dir.components().any(|c| {
            POST_DEPLOY_FOLDERS
                .iter()
                .any(|name| c.as_os_str() == std::ffi::OsStr::new(name))
        })
    })
}

impl Patch {
    /// Read the same file as another layout's tool reads it.
    pub fn relayout(&mut self, layout: Layout, mut tool: Migration) {
        let lines: Vec<(usize, &str)> = self
            .statements
            .iter()
            .map(|s| (s.line, s.sql.as_str()))
            .collect();
        layout::settle(layout, &mut tool, &self.text, &lines);
        self.file.layout = layout;
        self.tool = tool;
    }
}
