//! refinery's `refinery_schema_history (version, name, applied_on,
//! checksum)`: a row per applied migration, inserted in the migration's
//! transaction. Before running, refinery refuses a record whose name or
//! checksum differs from the file of that version (abort_divergent); a
//! record without a file, and a versioned file below the current version
//! that was never applied, it only logs (abort_missing is off) and does not
//! apply; unversioned (`U`) files are applied whenever missing.

use tokio_postgres::Client;

use super::{recorded_in, refinery_checksum, Ctx, Plan, Step};
use crate::error::{Error, Result};
use crate::patch::{Kind, Patch};

const TABLE: &str = "refinery_schema_history";

/// refinery's own DDL (refinery_core/src/traits/mod.rs, int4 versions).
pub(super) async fn ensure(c: &Client) -> Result<()> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS refinery_schema_history(
             version int4 PRIMARY KEY,
             name VARCHAR(255),
             applied_on VARCHAR(255),
             checksum VARCHAR(255))",
    )
    .await?;
    Ok(())
}

pub(super) async fn read(c: &Client) -> Result<super::State> {
    let rows = c
        .query(
            "SELECT version::int4, coalesce(name, ''), coalesce(checksum, '') FROM refinery_schema_history ORDER BY version ASC",
            &[],
        )
        .await?;
    Ok(super::State::Refinery(
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect(),
    ))
}

fn version(p: &Patch) -> i32 {
    p.tool
        .version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

fn checksum(p: &Patch) -> String {
    refinery_checksum(&p.tool.description, version(p), &p.text).to_string()
}

pub(super) async fn record(c: &Client, patch: &Patch) -> Result<()> {
    c.execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
         VALUES ($1, $2, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), $3)",
        &[&version(patch), &patch.tool.description, &checksum(patch)],
    )
    .await?;
    Ok(())
}

pub(super) fn plan(rows: &[(i32, String, String)], ctx: &Ctx<'_>, plan: &mut Plan) -> Result<()> {
    for (v, name, sum) in rows {
        match ctx.patches.iter().find(|p| version(p) == *v) {
            None => plan.notes.push(format!(
                "{}: migration V{v}__{name} is missing from the filesystem (recorded in {TABLE}; refinery logs it and goes on)",
                ctx.folder.display()
            )),
            Some(p) if p.tool.description != *name || checksum(p) != *sum => {
                return Err(Error::input(
                    &p.file.path,
                    format!(
                        "applied migration V{v}__{name} is different than filesystem one {} (its name or checksum differs from {TABLE}; refinery refuses to run)",
                        p.file.id
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    let current = rows.iter().map(|r| r.0).max();
    for (p, step) in ctx.patches.iter().zip(plan.steps.iter_mut()) {
        let v = version(p);
        if rows.iter().any(|r| r.0 == v) {
            *step = recorded_in(TABLE, &v.to_string());
        } else if let Some(cur) = current.filter(|c| p.tool.kind == Kind::Versioned && *c >= v) {
            *step = Step::Skip(format!(
                "below the current version {cur} in {TABLE} but never applied: refinery does not apply it (it logs \"found migration on file system {} not applied\")",
                p.file.id
            ));
        }
    }
    Ok(())
}
