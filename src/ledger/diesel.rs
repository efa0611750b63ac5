//! diesel's `__diesel_schema_migrations`: one row per applied version,
//! inserted in the migration's transaction (after it, without one).
//! diesel skips recorded versions and does not check records without a
//! migration folder.

use tokio_postgres::Client;

use super::{recorded_in, Ctx, Plan};
use crate::error::Result;
use crate::patch::Patch;

const TABLE: &str = "__diesel_schema_migrations";

/// diesel's own DDL (diesel/src/migration/setup_migration_table.sql).
pub(super) async fn ensure(c: &Client) -> Result<()> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
       version VARCHAR(50) PRIMARY KEY NOT NULL,
       run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
)",
    )
    .await?;
    Ok(())
}

pub(super) async fn read(c: &Client) -> Result<super::State> {
    let rows = c
        .query("SELECT version FROM __diesel_schema_migrations", &[])
        .await?;
    Ok(super::State::Diesel(
        rows.iter().map(|r| r.get(0)).collect(),
    ))
}

pub(super) async fn record(c: &Client, patch: &Patch) -> Result<()> {
    let version = patch.tool.version.clone().unwrap_or_default();
    c.execute(
        "INSERT INTO __diesel_schema_migrations (version) VALUES ($1)",
        &[&version],
    )
    .await?;
    Ok(())
}

pub(super) fn plan(recorded: &[String], ctx: &Ctx<'_>, plan: &mut Plan) {
    for (p, step) in ctx.patches.iter().zip(plan.steps.iter_mut()) {
        if let Some(v) = p.tool.version.as_ref().filter(|v| recorded.contains(v)) {
            *step = recorded_in(TABLE, v);
        }
    }
    for v in recorded {
        if !ctx
            .patches
            .iter()
            .any(|p| p.tool.version.as_ref() == Some(v))
        {
            plan.notes.push(format!(
                "{}: version {v} is recorded in {TABLE} but has no migration folder (diesel does not check)",
                ctx.folder.display()
            ));
        }
    }
}
