//! Flyway's `flyway_schema_history`: a row per migration run
//! (installed_rank, version, description, type, script, CRC-32 checksum,
//! installed_by, execution_time, success), inserted in the migration's
//! transaction. Before migrating, Flyway validates: a failed row, an applied
//! versioned migration without its file, a checksum or description that
//! differs from the file, and a pending version below the latest applied
//! one (out of order) each stop it. Versions up to a baseline row are not
//! applied; repeatables run when new or changed; on a database without
//! history the latest `B` baseline migration stands in for the versioned
//! ones up to it.

use tokio_postgres::Client;

use super::{flyway_crc32, Ctx, Plan, Step};
use crate::error::{Error, Result};
use crate::patch::discover::Position;
use crate::patch::{Kind, Patch};

const TABLE: &str = crate::patch::layout::FLYWAY_HISTORY;

/// One row of the history.
#[derive(Debug, Clone)]
pub struct Row {
    pub rank: i32,
    pub version: Option<String>,
    pub description: String,
    pub kind: String,
    pub checksum: Option<i32>,
    pub success: bool,
}

/// Flyway's own DDL for PostgreSQL (PostgreSQLDatabase.getRawCreateScript).
pub(super) async fn ensure(c: &Client) -> Result<()> {
    if super::exists(c, TABLE).await? {
        return Ok(());
    }
    c.batch_execute(
        "BEGIN;
CREATE TABLE \"flyway_schema_history\" (
    \"installed_rank\" INT NOT NULL,
    \"version\" VARCHAR(50),
    \"description\" VARCHAR(200) NOT NULL,
    \"type\" VARCHAR(20) NOT NULL,
    \"script\" VARCHAR(1000) NOT NULL,
    \"checksum\" INTEGER,
    \"installed_by\" VARCHAR(100) NOT NULL,
    \"installed_on\" TIMESTAMP NOT NULL DEFAULT now(),
    \"execution_time\" INTEGER NOT NULL,
    \"success\" BOOLEAN NOT NULL
);
ALTER TABLE \"flyway_schema_history\" ADD CONSTRAINT \"flyway_schema_history_pk\" PRIMARY KEY (\"installed_rank\");
CREATE INDEX \"flyway_schema_history_s_idx\" ON \"flyway_schema_history\" (\"success\");
COMMIT;",
    )
    .await?;
    Ok(())
}

pub(super) async fn read(c: &Client) -> Result<super::State> {
    let rows = c
        .query(
            "SELECT installed_rank, version::text, description::text, type::text, checksum, success \
             FROM \"flyway_schema_history\" ORDER BY installed_rank",
            &[],
        )
        .await?;
    Ok(super::State::Flyway(
        rows.iter()
            .map(|r| Row {
                rank: r.get(0),
                version: r.get(1),
                description: r.get(2),
                kind: r.get(3),
                checksum: r.get(4),
                success: r.get(5),
            })
            .collect(),
    ))
}

/// Flyway keeps at most 200 characters of a description.
fn abbreviated(d: &str) -> String {
    if d.chars().count() <= 200 {
        return d.to_string();
    }
    let head: String = d.chars().take(197).collect();
    format!("{head}...")
}

pub(super) async fn record(c: &Client, patch: &Patch, seconds: f64) -> Result<()> {
    let kind = if patch.tool.kind == Kind::Baseline {
        "SQL_BASELINE"
    } else {
        "SQL"
    };
    let millis = (seconds * 1000.0).round() as i32;
    c.execute(
        "INSERT INTO \"flyway_schema_history\" (\"installed_rank\", \"version\", \"description\", \"type\", \
         \"script\", \"checksum\", \"installed_by\", \"execution_time\", \"success\") \
         SELECT coalesce(max(\"installed_rank\"), 0) + 1, $1, $2, $3, $4, $5, current_user, $6, true \
         FROM \"flyway_schema_history\"",
        &[
            &patch.tool.version,
            &abbreviated(&patch.tool.description),
            &kind,
            &patch.tool.script,
            &flyway_crc32(&patch.text),
            &millis,
        ],
    )
    .await?;
    Ok(())
}

/// A version as Flyway compares it.
fn parts(v: &str) -> Position {
    Position(
        v.replace('_', ".")
            .split('.')
            .map(|p| p.parse().unwrap_or(0))
            .collect(),
    )
}

fn refuse(path: &std::path::Path, message: String) -> Error {
    Error::input(
        path,
        format!("Validate failed: Migrations have failed validation\n{message}"),
    )
}

/// Flyway's validation of the applied rows against the files.
fn validate(rows: &[Row], ctx: &Ctx<'_>, baseline: &Option<Position>) -> Result<()> {
    if let Some(r) = rows.iter().find(|r| !r.success) {
        let what = match &r.version {
            Some(v) => format!(
                "Detected failed migration to version {v} ({})",
                r.description
            ),
            None => format!("Detected failed repeatable migration: {}", r.description),
        };
        return Err(refuse(
            ctx.folder,
            format!("{what}.\nPlease remove any half-completed changes then run repair to fix the schema history."),
        ));
    }
    let versioned = |p: &&Patch| p.tool.version.is_some();
    for r in rows
        .iter()
        .filter(|r| r.kind == "SQL" || r.kind == "SQL_BASELINE")
    {
        let file = match &r.version {
            Some(v) => ctx
                .patches
                .iter()
                .filter(versioned)
                .find(|p| p.tool.version.as_deref().map(parts) == Some(parts(v))),
            None => ctx
                .patches
                .iter()
                .find(|p| p.tool.kind == Kind::Repeatable && p.tool.description == r.description),
        };
        let Some(p) = file else {
            let what = r.version.clone().unwrap_or_else(|| r.description.clone());
            return Err(refuse(
                ctx.folder,
                format!("Detected applied migration not resolved locally: {what}.\nIf you removed this migration intentionally, run repair to mark the migration as deleted."),
            ));
        };
        let Some(v) = &r.version else { continue };
        if baseline.as_ref().is_some_and(|b| parts(v) <= *b) {
            continue;
        }
        let local = flyway_crc32(&p.text);
        let mismatch = |what: &str, applied: String, resolved: String| {
            refuse(
                &p.file.path,
                format!("Migration {what} mismatch for migration version {v}\n-> Applied to database : {applied}\n-> Resolved locally    : {resolved}\nEither revert the changes to the migration, or run repair to update the schema history."),
            )
        };
        if r.checksum != Some(local) {
            let applied = r.checksum.map_or_else(|| "null".into(), |c| c.to_string());
            return Err(mismatch("checksum", applied, local.to_string()));
        }
        if abbreviated(&p.tool.description) != r.description {
            return Err(mismatch(
                "description",
                r.description.clone(),
                p.tool.description.clone(),
            ));
        }
    }
    Ok(())
}

pub(super) fn plan(state: &super::State, ctx: &Ctx<'_>, plan: &mut Plan) -> Result<()> {
    let no_rows = Vec::new();
    let rows = match state {
        super::State::Flyway(rows) if !ctx.all => rows,
        _ => &no_rows,
    };
    let baseline = rows
        .iter()
        .filter(|r| r.kind.contains("BASELINE") && r.success)
        .filter_map(|r| r.version.as_deref().map(parts))
        .max();
    validate(rows, ctx, &baseline)?;
    let applied: Vec<Position> = rows
        .iter()
        .filter(|r| r.success)
        .filter_map(|r| r.version.as_deref().map(parts))
        .collect();
    let last = applied.iter().max().cloned();
    // On a database without history, the latest baseline migration stands in.
    let chosen = if rows.is_empty() {
        ctx.patches
            .iter()
            .filter(|p| p.tool.kind == Kind::Baseline)
            .filter_map(|p| p.tool.version.as_deref().map(parts))
            .max()
    } else {
        None
    };
    for (p, step) in ctx.patches.iter().zip(plan.steps.iter_mut()) {
        *step = step_of(p, rows, &applied, &last, &baseline, &chosen)?;
    }
    Ok(())
}

fn step_of(
    p: &Patch,
    rows: &[Row],
    applied: &[Position],
    last: &Option<Position>,
    baseline: &Option<Position>,
    chosen: &Option<Position>,
) -> Result<Step> {
    let Some(v) = p.tool.version.as_deref() else {
        // Repeatable: again when its latest run had another checksum.
        let latest = rows
            .iter()
            .filter(|r| r.version.is_none() && r.description == p.tool.description)
            .max_by_key(|r| r.rank);
        return Ok(match latest {
            Some(r) if r.checksum == Some(flyway_crc32(&p.text)) => Step::Skip(format!(
                "repeatable migration unchanged since its run recorded in {TABLE} of the baseline (checksum {}): Flyway runs it again only when it changes",
                flyway_crc32(&p.text)
            )),
            _ => Step::Apply,
        });
    };
    let version = parts(v);
    if p.tool.kind == Kind::Baseline {
        return Ok(if chosen.as_ref() == Some(&version) {
            Step::Apply
        } else {
            Step::Skip(format!(
                "baseline migration: Flyway applies only the latest one, and only to a database without {TABLE}"
            ))
        });
    }
    if applied.contains(&version) {
        return Ok(super::recorded_in(TABLE, v));
    }
    if let Some(b) = baseline
        .as_ref()
        .or(chosen.as_ref())
        .filter(|b| version <= **b)
    {
        return Ok(Step::Skip(format!(
            "at or below the baseline version {b}{}: Flyway does not apply it",
            if baseline.is_some() {
                format!(" recorded in {TABLE} of the baseline")
            } else {
                " of the baseline migration".into()
            }
        )));
    }
    if let Some(l) = last.as_ref().filter(|l| version < **l) {
        return Err(refuse(
            &p.file.path,
            format!("Detected resolved migration not applied to database: {v} (below version {l}, the latest in {TABLE}).\nTo ignore this migration, set -ignoreMigrationPatterns='*:ignored'. To allow executing this migration, set -outOfOrder=true."),
        ));
    }
    Ok(Step::Apply)
}
