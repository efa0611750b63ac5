//! sqlx's `_sqlx_migrations`: a row per applied migration (version,
//! description, SHA-384 checksum, success), inserted in the migration's
//! transaction with `execution_time` -1 and set to the nanoseconds after it
//! committed. Before running, sqlx refuses a failed (dirty) record, a record
//! without its file and a file changed since it was recorded.

use tokio_postgres::Client;

use super::{recorded_in, sqlx_sha384, Ctx, Plan};
use crate::error::{Error, Result};
use crate::patch::Patch;

const TABLE: &str = "_sqlx_migrations";

/// sqlx's own DDL (sqlx-postgres/src/migrate.rs).
pub(super) async fn ensure(c: &Client) -> Result<()> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
)",
    )
    .await?;
    Ok(())
}

pub(super) async fn read(c: &Client) -> Result<super::State> {
    let rows = c
        .query(
            "SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version",
            &[],
        )
        .await?;
    Ok(super::State::Sqlx(
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect(),
    ))
}

fn version(patch: &Patch) -> i64 {
    patch
        .tool
        .version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

pub(super) async fn record(c: &Client, patch: &Patch) -> Result<()> {
    c.execute(
        "INSERT INTO _sqlx_migrations ( version, description, success, checksum, execution_time ) \
         VALUES ( $1, $2, TRUE, $3, -1 )",
        &[
            &version(patch),
            &patch.tool.description,
            &sqlx_sha384(&patch.text),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn execution_time(c: &Client, patch: &Patch, seconds: f64) -> Result<()> {
    let nanos = (seconds * 1e9).round() as i64;
    c.execute(
        "UPDATE _sqlx_migrations SET execution_time = $1 WHERE version = $2",
        &[&nanos, &version(patch)],
    )
    .await?;
    Ok(())
}

pub(super) fn plan(rows: &[(i64, Vec<u8>, bool)], ctx: &Ctx<'_>, plan: &mut Plan) -> Result<()> {
    if let Some((v, ..)) = rows.iter().find(|r| !r.2) {
        return Err(Error::input(
            ctx.folder,
            format!("migration {v} is partially applied; fix and remove row from `{TABLE}` table (sqlx refuses to run)"),
        ));
    }
    for (v, ..) in rows {
        if !ctx.patches.iter().any(|p| version(p) == *v) {
            return Err(Error::input(
                ctx.folder,
                format!("migration {v} was previously applied but is missing in the resolved migrations (recorded in {TABLE}; sqlx refuses to run)"),
            ));
        }
    }
    for (p, step) in ctx.patches.iter().zip(plan.steps.iter_mut()) {
        let Some((v, checksum, _)) = rows.iter().find(|r| r.0 == version(p)) else {
            continue;
        };
        if *checksum != sqlx_sha384(&p.text) {
            return Err(Error::input(
                &p.file.path,
                format!("migration {v} was previously applied but has been modified (its SHA-384 differs from the checksum in {TABLE}; sqlx refuses to run)"),
            ));
        }
        *step = recorded_in(TABLE, &v.to_string());
    }
    Ok(())
}
