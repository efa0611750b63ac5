//! The bookkeeping of migration tools, kept as each tool keeps it: its
//! table created with the tool's own DDL when absent, a record written when
//! a migration is applied (in the migration's transaction where the tool
//! does so), and, before anything runs, what the baseline already records:
//! those migrations are skipped (reported with the table that records them)
//! and a record that contradicts the files is refused as the tool refuses
//! it. The time spent on the books is kept apart from the patch's time.

mod checksum;
mod diesel;
mod flyway;
mod golang_migrate;
mod launchpad;
mod refinery;
mod sqlx;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::patch::{Layout, Patch};

pub use checksum::{flyway_crc32, refinery_checksum, sqlx_sha384};

/// What the baseline's bookkeeping table records.
#[derive(Debug, Clone, Default)]
pub enum State {
    /// No table (or a layout without bookkeeping).
    #[default]
    Absent,
    /// diesel: the versions.
    Diesel(Vec<String>),
    /// sqlx: (version, checksum, success).
    Sqlx(Vec<(i64, Vec<u8>, bool)>),
    /// golang-migrate: the one row, if any: (version, dirty).
    GolangMigrate(Option<(i64, bool)>),
    /// Flyway: every row.
    Flyway(Vec<flyway::Row>),
    /// refinery: (version, name, checksum).
    Refinery(Vec<(i32, String, String)>),
    /// Launchpad: (major, minor, patch).
    Launchpad(Vec<(i32, i32, i32)>),
}

/// Whether each patch is applied, and how the books are kept meanwhile.
#[derive(Debug, Clone)]
pub struct Plan {
    pub layout: Layout,
    pub steps: Vec<Step>,
    /// What the plan noticed (records without files, …).
    pub notes: Vec<String>,
    /// Versions the baseline records: never recorded twice (`--all`).
    recorded: BTreeSet<String>,
    /// The Launchpad table is there (its patches insert their own rows).
    table_present: bool,
}

/// One patch's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Apply,
    /// Not applied, and why (naming the table that records it).
    Skip(String),
}

impl Plan {
    /// Every patch applied, no books kept (downtime's own layout).
    pub fn apply_all(layout: Layout, n: usize) -> Plan {
        Plan {
            layout,
            steps: vec![Step::Apply; n],
            notes: Vec::new(),
            recorded: BTreeSet::new(),
            table_present: false,
        }
    }

    /// Whether the books are kept for this layout.
    pub fn keeps_books(&self) -> bool {
        self.layout != Layout::Numbered && (self.layout != Layout::Launchpad || self.table_present)
    }

    fn new_record(&self, patch: &Patch) -> bool {
        patch
            .tool
            .version
            .as_ref()
            .is_none_or(|v| !self.recorded.contains(v))
    }

    /// Create the tool's table as the tool does when a run starts
    /// (outside every patch, not timed).
    pub async fn ensure(&self, c: &Client) -> Result<()> {
        match self.layout {
            Layout::Diesel => diesel::ensure(c).await,
            Layout::Sqlx => sqlx::ensure(c).await,
            Layout::GolangMigrate => golang_migrate::ensure(c).await,
            Layout::Flyway => flyway::ensure(c).await,
            Layout::Refinery => refinery::ensure(c).await,
            Layout::Launchpad | Layout::Numbered => Ok(()),
        }
    }

    /// Before the patch, outside its transaction (golang-migrate's dirty flag).
    pub async fn before(&self, c: &Client, patch: &Patch) -> Result<()> {
        match self.layout {
            Layout::GolangMigrate => golang_migrate::set_version(c, patch, true).await,
            _ => Ok(()),
        }
    }

    /// The record written in the patch's own transaction, before it
    /// commits. `Some(message)` when the tool fails the patch here.
    pub async fn inside(&self, c: &Client, patch: &Patch, seconds: f64) -> Result<Option<String>> {
        let new = self.new_record(patch);
        let done = match self.layout {
            Layout::Diesel if new => diesel::record(c, patch).await,
            Layout::Sqlx if new => sqlx::record(c, patch).await,
            Layout::Flyway if new || patch.tool.version.is_none() => {
                flyway::record(c, patch, seconds).await
            }
            Layout::Refinery if new => refinery::record(c, patch).await,
            Layout::Launchpad if self.table_present => return launchpad::check(c, patch).await,
            _ => Ok(()),
        };
        failure(done, self.layout)
    }

    /// After the patch committed (or, without a transaction, after its
    /// statements): the record when it was not written inside, and what
    /// the tool does afterwards. `Some(message)` when the tool fails.
    pub async fn after(
        &self,
        c: &Client,
        patch: &Patch,
        seconds: f64,
        inside_done: bool,
    ) -> Result<Option<String>> {
        if !inside_done {
            if let Some(why) = self.inside(c, patch, seconds).await? {
                return Ok(Some(why));
            }
        }
        let done = match self.layout {
            Layout::Sqlx if self.new_record(patch) => sqlx::execution_time(c, patch, seconds).await,
            Layout::GolangMigrate => golang_migrate::set_version(c, patch, false).await,
            _ => Ok(()),
        };
        failure(done, self.layout)
    }
}

/// A failing bookkeeping statement fails the patch, as it fails the tool.
fn failure(done: Result<()>, layout: Layout) -> Result<Option<String>> {
    match done {
        Ok(()) => Ok(None),
        // The server refused it (a connection it ended is not the tool's refusal).
        Err(Error::Database {
            message,
            ended: None,
        }) => Ok(Some(format!(
            "recording the migration in {} failed, as it would for the tool: {message}",
            layout.table().unwrap_or("the tool's table")
        ))),
        Err(e) => Err(e),
    }
}

/// The layouts whose bookkeeping table the database holds.
pub async fn tables(c: &Client) -> Result<Vec<Layout>> {
    let mut out = Vec::new();
    for layout in [
        Layout::Diesel,
        Layout::Sqlx,
        Layout::GolangMigrate,
        Layout::Flyway,
        Layout::Refinery,
        Layout::Launchpad,
    ] {
        if let Some(t) = layout.table() {
            if exists(c, t).await? {
                out.push(layout);
            }
        }
    }
    Ok(out)
}

/// Whether a table of this name (unquoted names fold to lower case) is on
/// the search path.
pub(crate) async fn exists(c: &Client, table: &str) -> Result<bool> {
    let row = c
        .query_one(
            "select to_regclass(quote_ident(lower($1))) is not null",
            &[&table],
        )
        .await?;
    Ok(row.get(0))
}

/// Whether the current schema holds any table (Flyway's "non-empty schema").
pub async fn has_tables(c: &Client) -> Result<bool> {
    let row = c
        .query_one(
            "select exists (select 1 from pg_tables where schemaname = current_schema())",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// What the database's bookkeeping table for `layout` records.
pub async fn read(c: &Client, layout: Layout) -> Result<State> {
    let Some(table) = layout.table() else {
        return Ok(State::Absent);
    };
    if !exists(c, table).await? {
        return Ok(State::Absent);
    }
    let state = match layout {
        Layout::Diesel => diesel::read(c).await,
        Layout::Sqlx => sqlx::read(c).await,
        Layout::GolangMigrate => golang_migrate::read(c).await,
        Layout::Flyway => flyway::read(c).await,
        Layout::Refinery => refinery::read(c).await,
        Layout::Launchpad => launchpad::read(c).await,
        Layout::Numbered => return Ok(State::Absent),
    };
    state.map_err(|e| match e {
        Error::Database { message: m, .. } => Error::Baseline {
            path: PathBuf::from(table),
            message: format!(
                "the baseline's {table} is not {}'s bookkeeping table: {m}",
                layout.name()
            ),
        },
        e => e,
    })
}

/// Decide which patches run: those the baseline's books record are
/// skipped; a record that contradicts the files is refused as the tool
/// refuses it (an input error naming the file). `all` applies everything.
pub fn plan(layout: Layout, state: &State, patches: &[Patch], all: bool) -> Result<Plan> {
    let mut plan = Plan::apply_all(layout, patches.len());
    plan.table_present = !matches!(state, State::Absent);
    plan.recorded = recorded_versions(state);
    let folder = patches
        .first()
        .and_then(|p| p.file.path.parent())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let ctx = Ctx {
        patches,
        folder: &folder,
        all,
    };
    match state {
        _ if layout == Layout::Flyway => flyway::plan(state, &ctx, &mut plan)?,
        State::Absent => {}
        _ if all => {}
        State::Diesel(v) => diesel::plan(v, &ctx, &mut plan),
        State::Sqlx(rows) => sqlx::plan(rows, &ctx, &mut plan)?,
        State::GolangMigrate(row) => golang_migrate::plan(*row, &ctx, &mut plan)?,
        State::Refinery(rows) => refinery::plan(rows, &ctx, &mut plan)?,
        State::Launchpad(rows) => launchpad::plan(rows, &ctx, &mut plan),
        State::Flyway(_) => {}
    }
    Ok(plan)
}

/// What every tool's plan reads.
struct Ctx<'a> {
    patches: &'a [Patch],
    /// Where the migrations are: errors about records without a file name it.
    folder: &'a Path,
    all: bool,
}

fn recorded_versions(state: &State) -> BTreeSet<String> {
    match state {
        State::Absent | State::GolangMigrate(_) => BTreeSet::new(),
        State::Diesel(v) => v.iter().cloned().collect(),
        State::Sqlx(rows) => rows.iter().map(|r| r.0.to_string()).collect(),
        State::Flyway(rows) => rows.iter().filter_map(|r| r.version.clone()).collect(),
        State::Refinery(rows) => rows.iter().map(|r| r.0.to_string()).collect(),
        State::Launchpad(rows) => rows
            .iter()
            .map(|(a, b, c)| format!("{a}-{b:02}-{c}"))
            .collect(),
    }
}

/// The skip reason for a migration the baseline records.
fn recorded_in(table: &str, version: &str) -> Step {
    Step::Skip(format!(
        "recorded in {table} of the baseline (version {version}): already applied, as the tool would skip it"
    ))
}
