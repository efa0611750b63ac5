//! One pass over the patches, in order, on one copy of the template.

use std::time::Instant;

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::measure::{self, ApplyOptions};
use crate::outcome::{excerpt, Aborted, PatchOutcome, Phase};
use crate::patch::Patch;
use crate::pg::catalog;
use crate::staging::cluster::{Changed, Watch};
use crate::staging::{self, Backend};
use crate::ui;

use super::RunPlan;

/// What one pass produced: a result per patch reached, where it stopped if
/// it was aborted, and what the patches changed outside the copy.
pub(super) struct Pass {
    pub results: Vec<PatchOutcome>,
    pub aborted: Option<Aborted>,
    pub changed: Vec<Changed>,
}

/// Apply every patch once, on the copy `copy`, each in a session reset to
/// how it was opened, and note what each changed in the cluster-level state.
pub(super) async fn run_patches(
    backend: &dyn Backend,
    admin: &tokio_postgres::Client,
    copy: &str,
    patches: &[Patch],
    plan: &RunPlan,
    cancel: &Cancel,
    watch: &Watch,
) -> Result<Pass> {
    let cap = plan.statement_cap;
    let mut config = backend.config(copy);
    config.options(format!(
        "-c statement_timeout={}",
        cap.as_millis().clamp(1, i32::MAX as u128)
    ));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| Error::Server(format!("cannot connect to the staging copy: {e}")))?;
    let conn = tokio::spawn(async move {
        let _ = connection.await;
    });
    let apply_opts = ApplyOptions { statement_cap: cap };
    let copy_oid = catalog::database_oid(admin, copy)
        .await?
        .ok_or_else(|| Error::Server(format!("the staging copy {copy} is gone")))?;
    let clock = backend
        .has_statement_stats()
        .then_some(measure::ServerClock {
            admin,
            dbid: copy_oid,
        });
    let mut cluster = watch.recorded().clone();
    let mut pass = Pass {
        results: Vec::new(),
        aborted: None,
        changed: Vec::new(),
    };
    let mut stop_after: Option<String> = None;
    for p in patches {
        if let Some(a) = cancel.fired() {
            pass.aborted = Some(Aborted::in_phase(a, Phase::Applying));
            break;
        }
        if let Some(why) = &stop_after {
            pass.results.push(PatchOutcome::not_run(why.clone()));
            ui::progress_done();
            continue;
        }
        ui::progress_patch(&p.file.id);
        // Every patch starts in a session as it was opened: no role or
        // session authorization, settings, temporary tables, prepared
        // statements, cursors, advisory locks or LISTENs of the patch before.
        client.batch_execute("/*downtime*/ discard all").await?;
        client.clear_type_cache();
        let wall = Instant::now();
        let run = measure::apply(&client, p, &apply_opts, cancel, clock.as_ref()).await?;
        let wall_seconds = wall.elapsed().as_secs_f64();
        if run.aborted.is_none() {
            if let Some((now, changes)) =
                watch.check(admin, copy_oid, &cluster, &p.file.path).await?
            {
                if !changes.is_empty() {
                    pass.changed.push(Changed {
                        path: p.file.path.clone(),
                        id: p.file.id.clone(),
                        changes,
                    });
                }
                cluster = now;
            }
        }
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
    // A subscription a patch created would keep the copy from being
    // dropped; the session is the copy's own, reset to how it was opened.
    if pass.aborted.is_none() && !client.is_closed() {
        client.batch_execute("/*downtime*/ discard all").await?;
        staging::drop_subscriptions(&client).await?;
    }
    drop(client);
    let _ = conn.await;
    Ok(pass)
}
