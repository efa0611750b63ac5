//! golang-migrate's `schema_migrations (version bigint, dirty boolean)`: one
//! row, the current version. Before a migration it sets the version with
//! dirty = true (in a transaction of its own), runs the migration, and sets
//! it clean after. Versions up to the current one count as applied; a dirty
//! row or a current version without a file stops it.

use tokio_postgres::Client;

use super::{Ctx, Plan, Step};
use crate::error::{Error, Result};
use crate::patch::Patch;

/// golang-migrate's own DDL (database/postgres/postgres.go), made only when
/// the table is missing.
pub(super) async fn ensure(c: &Client) -> Result<()> {
    if super::exists(c, "schema_migrations").await? {
        return Ok(());
    }
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS \"schema_migrations\" (version bigint not null primary key, dirty boolean not null)",
    )
    .await?;
    Ok(())
}

pub(super) async fn read(c: &Client) -> Result<super::State> {
    let row = c
        .query_opt(
            "SELECT version::bigint, dirty FROM \"schema_migrations\" LIMIT 1",
            &[],
        )
        .await?;
    Ok(super::State::GolangMigrate(
        row.map(|r| (r.get(0), r.get(1))),
    ))
}

fn version(p: &Patch) -> i64 {
    p.tool
        .version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(i64::MAX)
}

/// golang-migrate's SetVersion: truncate and insert, in one transaction.
pub(super) async fn set_version(c: &Client, patch: &Patch, dirty: bool) -> Result<()> {
    c.batch_execute("BEGIN; TRUNCATE \"schema_migrations\"")
        .await?;
    let inserted = c
        .execute(
            "INSERT INTO \"schema_migrations\" (version, dirty) VALUES ($1, $2)",
            &[&version(patch), &dirty],
        )
        .await;
    match inserted {
        Ok(_) => c.batch_execute("COMMIT").await?,
        Err(e) => {
            c.batch_execute("ROLLBACK").await?;
            return Err(e.into());
        }
    }
    Ok(())
}

pub(super) fn plan(row: Option<(i64, bool)>, ctx: &Ctx<'_>, plan: &mut Plan) -> Result<()> {
    let Some((current, dirty)) = row else {
        return Ok(());
    };
    if dirty {
        return Err(Error::input(
            ctx.folder,
            format!("Dirty database version {current}. Fix and force version. (schema_migrations of the baseline; golang-migrate refuses to run)"),
        ));
    }
    if !ctx.patches.iter().any(|p| version(p) == current) {
        return Err(Error::input(
            ctx.folder,
            format!("no migration found for version {current}: file does not exist (the version schema_migrations records; golang-migrate refuses to run)"),
        ));
    }
    for (p, step) in ctx.patches.iter().zip(plan.steps.iter_mut()) {
        if version(p) <= current {
            *step = Step::Skip(format!(
                "recorded in schema_migrations of the baseline (version {current} there; this is version {}): already applied, as the tool would skip it",
                version(p)
            ));
        }
    }
    Ok(())
}
