//! The schedule of a run on the command backend: every pass on a clone of
//! its own, made by the provisioner and destroyed right after the pass. No
//! baseline is loaded and no template made: the first clone's books say
//! which patches run, and every clone starts where the first did. A scale
//! below 1 is measured on a clone scaled down in place before its pass.

use std::time::Instant;

use futures_util::FutureExt;

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::ledger::Plan;
use crate::outcome::{Aborted, CacheMode, Outcome};
use crate::patch::Patch;
use crate::staging::cluster::ClusterWatch;
use crate::staging::command::{Clone, Provisioner};
use crate::staging::{self, Admin, Backend};
use crate::ui;

use super::books::{self, Layouts};
use super::pass::{run_patches, Copy};
use super::schedule::record_server;
use super::tally::{run_timing, PassNo, Tally};
use super::RunPlan;

/// What the first clone settled for every pass.
struct Settled {
    books: Option<Plan>,
    version_num: i32,
}

/// Every pass on a fresh clone: runs × scales, round robin as on the
/// other backends.
pub(super) async fn measure_all(
    plan: &RunPlan,
    (patches, layouts): (&mut [Patch], &Layouts),
    outcome: &mut Outcome,
    cancel: &Cancel,
    run_started: Instant,
) -> Result<()> {
    let opts = plan.command.as_ref().ok_or_else(|| {
        Error::Usage("--backend command needs [staging.command] in downtime.toml".into())
    })?;
    let mut provisioner = Provisioner::new(opts)?;
    let t = &plan.timing;
    let scales = plan.scales();
    let mut tally = Tally::new(plan);
    let mut settled: Option<Settled> = None;
    ui::progress_start(patches.len() * (t.warmup + t.runs) * scales.len());
    let mut n = 0;
    'passes: for r in 0..t.warmup + t.runs {
        for (k, &scale) in scales.iter().enumerate() {
            n += 1;
            let mut clone = provisioner.create(cancel).await?;
            if n == 1 {
                outcome.baseline.first_statement_seconds = run_started.elapsed().as_secs_f64();
            }
            let pass = on_clone(
                &clone,
                (patches, layouts),
                plan,
                outcome,
                cancel,
                scale,
                &mut settled,
            )
            .await;
            let destroyed = clone.shutdown().await;
            let (results, aborted) = pass?;
            tally.add(
                plan,
                PassNo {
                    mode: CacheMode::Warm,
                    r,
                    k,
                },
                patches,
                results,
            );
            destroyed?;
            if let Some(a) = aborted {
                outcome.aborted = Some(a);
                break 'passes;
            }
        }
    }
    tally.finish(plan, run_timing(plan), outcome);
    Ok(())
}

/// One pass on `clone`: on the first, its books, server and clock read;
/// scaled down first when `scale` is below 1.
#[allow(clippy::too_many_arguments)]
async fn on_clone(
    clone: &Clone,
    (patches, layouts): (&mut [Patch], &Layouts),
    plan: &RunPlan,
    outcome: &mut Outcome,
    cancel: &Cancel,
    scale: f64,
    settled: &mut Option<Settled>,
) -> Result<(Vec<crate::outcome::PatchOutcome>, Option<Aborted>)> {
    if settled.is_none() {
        let books = books::settle(clone, patches, layouts, plan.all, &mut outcome.notes).await?;
        outcome.layout = books.as_ref().map(|b| b.layout).or(outcome.layout);
        let admin = staging::connect_admin(clone).await?;
        let info = record_server(clone, &admin, outcome).await?;
        *settled = Some(Settled {
            books,
            version_num: info.version_num,
        });
    }
    let Some(s) = settled.as_ref() else {
        return Err(Error::Server("the first clone was not read".into()));
    };
    if scale < 1.0 {
        scale_down(clone, scale, cancel).await?;
    }
    let admin = staging::connect_admin(clone).await?;
    let cluster = watch_cluster(clone, &admin, s.version_num, outcome).await?;
    let place = Copy {
        backend: clone,
        admin: &admin,
        name: clone.admin_db(),
        templates: &[],
        cluster: &cluster,
        books: s.books.as_ref(),
        major: s.version_num / 10000,
    };
    let pass = run_patches(&place, patches, plan, cancel).await?;
    if outcome.probe.is_none() {
        outcome.probe = pass.probe.clone();
    }
    Ok((pass.results, pass.aborted))
}

/// Scale the clone down to `scale` of its rows; a signal cancels it.
async fn scale_down(clone: &Clone, scale: f64, cancel: &Cancel) -> Result<()> {
    ui::note(&format!(
        "scaling clone {} to {:.0} % of its rows",
        clone.id(),
        scale * 100.0
    ));
    let c = staging::connect(clone, clone.admin_db()).await?;
    let scaling = staging::scale::scale_copy(&c, scale).fuse();
    let aborted = cancel.wait().fuse();
    futures_util::pin_mut!(scaling, aborted);
    futures_util::select! {
        r = scaling => r,
        a = aborted => {
            if let Ok(tls) = clone.tls() {
                let _ = c.cancel_token().cancel_query(tls).await;
            }
            Err(Error::Aborted(a))
        }
    }
}

/// The cluster-level state around the clone's database, when the clone's
/// role can read it (the clone is thrown away with its server, so nothing
/// is put back); said once when it cannot.
async fn watch_cluster(
    clone: &Clone,
    admin: &Admin,
    version_num: i32,
    outcome: &mut Outcome,
) -> Result<ClusterWatch> {
    let readable: bool = admin
        .query_one(
            "/*downtime*/ select has_table_privilege('pg_catalog.pg_authid', 'select')",
            &[],
        )
        .await?
        .get(0);
    if readable {
        return ClusterWatch::start(admin, version_num, &[], &clone.foreign_databases()).await;
    }
    let note = "the clones' role cannot read pg_authid: what patches change outside their \
                database (roles, other databases) is not watched; each clone is destroyed \
                after its pass";
    if !outcome.notes.iter().any(|n| n == note) {
        ui::note(note);
        outcome.notes.push(note.to_string());
    }
    Ok(ClusterWatch::unwatched(version_num))
}
