//! One pass over the patches, in order, on one copy of the template.

use std::time::Instant;

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::ledger::{Plan, Step};
use crate::measure::PatchError;
use crate::measure::{self, ApplyOptions};
use crate::outcome::{excerpt, Aborted, PatchOutcome, Phase};
use crate::patch::Patch;
use crate::pg::catalog;
use crate::staging::Backend;
use crate::ui;

use super::RunPlan;

/// What one pass produced: a result per patch reached, and where it stopped
/// if it was aborted.
pub(super) struct Pass {
    pub results: Vec<PatchOutcome>,
    pub aborted: Option<Aborted>,
}

/// Where a pass runs: the copy, the tool's books, the server's major version.
pub(super) struct On<'a> {
    pub copy: &'a str,
    pub books: Option<&'a Plan>,
    pub major: i32,
}

/// Apply every patch once, on the copy `on.copy`: those the books record
/// are skipped, the others applied as their tool sends them.
pub(super) async fn run_patches(
    backend: &dyn Backend,
    admin: &tokio_postgres::Client,
    on: On<'_>,
    patches: &[Patch],
    plan: &RunPlan,
    cancel: &Cancel,
) -> Result<Pass> {
    let copy = on.copy;
    let cap = plan.statement_cap;
    let mut config = backend.config(copy);
    config.options(format!("-c statement_timeout={}", cap.as_millis().max(1)));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| Error::Server(format!("cannot connect to the staging copy: {e}")))?;
    let conn = tokio::spawn(async move {
        let _ = connection.await;
    });
    let apply_opts = ApplyOptions { statement_cap: cap };
    let dbid = if backend.has_statement_stats() {
        catalog::database_oid(admin, copy).await?
    } else {
        None
    };
    let clock = dbid.map(|dbid| measure::ServerClock { admin, dbid });
    let mut pass = Pass {
        results: Vec::new(),
        aborted: None,
    };
    let books = on.books.filter(|b| b.keeps_books());
    if let Some(b) = books {
        b.ensure(&client).await?;
    }
    let mut stop_after: Option<String> = None;
    for (i, p) in patches.iter().enumerate() {
        if let Some(a) = cancel.fired() {
            pass.aborted = Some(Aborted::in_phase(a, Phase::Applying));
            break;
        }
        if let Some(why) = &stop_after {
            pass.results.push(PatchOutcome::not_run(why.clone()));
            ui::progress_done();
            continue;
        }
        if let Some(Step::Skip(why)) = on.books.and_then(|b| b.steps.get(i)) {
            pass.results.push(PatchOutcome::not_run(why.clone()));
            ui::progress_done();
            continue;
        }
        ui::progress_patch(&p.file.id);
        client.batch_execute("/*downtime*/ reset all").await?;
        let wall = Instant::now();
        let mut run =
            measure::apply_with(&client, p, &apply_opts, cancel, clock.as_ref(), books).await?;
        if let Some(e) = run.error.as_mut() {
            let sql = p.statements.iter().find(|s| s.line == e.statement_line);
            newer_server_hint(e, sql.map_or("", |s| s.sql.as_str()), on.major);
        }
        let wall_seconds = wall.elapsed().as_secs_f64();
        if run.failed() && !plan.keep_going {
            stop_after = Some(format!(
                "not run: {} failed before it (--keep-going runs later patches anyway)",
                p.file.id
            ));
        }
        if run.connection_lost {
            stop_after = Some(format!(
                "not run: {} ended its own session, so the copy's state is unknown",
                p.file.id
            ));
        }
        let aborted = run.aborted.map(|reason| {
            let st = run.statements.last().map(|s| &p.statements[s.index]);
            Aborted {
                reason,
                phase: Phase::Applying,
                patch: Some(p.file.id.clone()),
                line: st.map(|s| s.line),
                statement: st.map(|s| excerpt(&s.sql)),
            }
        });
        pass.results.push(PatchOutcome::applied(run, wall_seconds));
        ui::progress_done();
        if aborted.is_some() {
            pass.aborted = aborted;
            break;
        }
    }
    drop(client);
    let _ = conn.await;
    Ok(pass)
}

/// A statement that needs a newer PostgreSQL than the staging server's:
/// say which, and how to run on it.
fn newer_server_hint(e: &mut PatchError, sql: &str, major: i32) {
    let Some((feature, needs)) = crate::pg::versions::needs_newer(&e.message, sql, major) else {
        return;
    };
    let hint = format!(
        "{feature} needs PostgreSQL {needs}; this staging server is {major}: run on production's \
         major version with `--backend docker --pg-version {needs}` (or `--image` for an image of your own)"
    );
    e.hint = Some(match e.hint.take() {
        Some(h) => format!("{h}; {hint}"),
        None => hint,
    });
}
