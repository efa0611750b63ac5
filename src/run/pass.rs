//! One pass over the patches, in order, on one copy of the template.

use std::time::Instant;

use crate::cancel::Cancel;
use crate::error::Error;
use crate::measure::{self, ApplyOptions, Session, Watch};
use crate::outcome::{Aborted, PatchOutcome, Phase};
use crate::patch::Patch;
use crate::pg::catalog;
use crate::staging::{Admin, Backend};
use crate::ui;

use super::RunPlan;

/// What one pass produced: a result per patch reached, and where it stopped
/// if it was aborted or the staging server could not go on.
pub(super) struct Pass {
    pub results: Vec<PatchOutcome>,
    pub aborted: Option<Aborted>,
}

/// Where a pass runs: the server, downtime's admin connection to it, the
/// copy the patches are applied to, and the templates (by oid and name)
/// that must survive them.
pub(super) struct Copy<'a> {
    pub backend: &'a dyn Backend,
    pub admin: &'a Admin,
    pub name: &'a str,
    pub templates: &'a [(u32, String)],
}

/// Apply every patch once, on the copy `copy`. Never an `Err`: a failure
/// of the server or of a connection is where the pass stopped.
pub(super) async fn run_patches(
    copy: &Copy<'_>,
    patches: &[Patch],
    plan: &RunPlan,
    cancel: &Cancel,
) -> Pass {
    let mut pass = Pass {
        results: Vec::new(),
        aborted: None,
    };
    let failed = |e: &Error| {
        let a = Aborted::infrastructure(Phase::Applying, e);
        match patches.first() {
            Some(p) => a.at(p, None),
            None => a,
        }
    };
    let session = match Session::open(copy.backend, copy.name, plan.statement_cap).await {
        Ok(s) => s,
        Err(e) => {
            pass.aborted = Some(failed(&e));
            return pass;
        }
    };
    let clock_dbid = if copy.backend.has_statement_stats() {
        match catalog::database_oid(copy.admin, copy.name).await {
            Ok(dbid) => dbid,
            Err(e) => {
                pass.aborted = Some(failed(&e));
                session.close().await;
                return pass;
            }
        }
    } else {
        None
    };
    let watch = Watch {
        admin: copy.admin,
        backend: copy.backend,
        clock_dbid,
        templates: copy.templates.to_vec(),
    };
    apply_each(&session, &watch, patches, plan, cancel, &mut pass).await;
    session.close().await;
    pass
}

/// The patches in order on one session, until one stops the pass.
async fn apply_each(
    session: &Session,
    watch: &Watch<'_>,
    patches: &[Patch],
    plan: &RunPlan,
    cancel: &Cancel,
    pass: &mut Pass,
) {
    let apply_opts = ApplyOptions {
        statement_cap: plan.statement_cap,
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
        let wall = Instant::now();
        let run = measure::apply(session, watch, p, &apply_opts, cancel).await;
        let wall_seconds = wall.elapsed().as_secs_f64();
        if run.failed() && !plan.keep_going {
            stop_after = Some(format!(
                "not run: {} failed before it (--keep-going runs later patches anyway)",
                p.file.id
            ));
        }
        if run.connection_lost {
            let terminated = run
                .error
                .as_ref()
                .is_some_and(|e| e.ended_by == Some(crate::cancel::Ended::Terminate));
            stop_after = Some(if terminated {
                format!(
                    "not run: {} would not stop at its cap and its session was terminated",
                    p.file.id
                )
            } else {
                format!(
                    "not run: {} ended its own session, so the copy's state is unknown",
                    p.file.id
                )
            });
        }
        let halted = run.halt.as_ref().map(|h| Aborted {
            reason: h.reason,
            ended_by: h.ended_by,
            message: h.message.clone(),
            ..Aborted::in_phase(h.reason, Phase::Applying).at(p, p.statements.get(h.index))
        });
        pass.results.push(PatchOutcome::applied(run, wall_seconds));
        ui::progress_done();
        if halted.is_some() {
            pass.aborted = halted;
            break;
        }
    }
}
