//! One pass over the patches, in order, on one copy of the template.

use std::time::Instant;

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::ledger::{Plan, Step};
use crate::measure::probe::{self, Probe, ProbeInfo};
use crate::measure::{self, ApplyOptions, CopyWatch, OwnSessions, PatchError, Session, Watch};
use crate::outcome::{Aborted, PatchOutcome, Phase};
use crate::patch::Patch;
use crate::pg::catalog;
use crate::staging::cluster::{Changed, ClusterWatch, NotOwned};
use crate::staging::{self, Admin, Backend};
use crate::ui;

use super::RunPlan;

/// What one pass produced: a result per patch reached, where it stopped if
/// it was aborted or the staging server could not go on, and what the
/// patches changed outside the copy.
pub(super) struct Pass {
    pub results: Vec<PatchOutcome>,
    pub aborted: Option<Aborted>,
    pub changed: Vec<Changed>,
    /// The probe's workload, when it ran.
    pub probe: Option<ProbeInfo>,
}

/// Where a pass runs: the server, downtime's admin connection to it, the
/// copy the patches are applied to, the templates (by oid and name) that
/// must survive them, the cluster-level state every run starts from, the
/// tool's books and the server's major version.
pub(super) struct Copy<'a> {
    pub backend: &'a dyn Backend,
    pub admin: &'a Admin,
    pub name: &'a str,
    pub templates: &'a [(u32, String)],
    pub cluster: &'a ClusterWatch,
    pub books: Option<&'a Plan>,
    pub major: i32,
}

/// Apply every patch once, on the copy `copy`, each in a session reset to
/// how it was opened, and note what each changed in the cluster-level
/// state. Those the tool's books record are skipped, the others applied as
/// their tool sends them (its table created first, as the tool does). A
/// failure of the server or of a connection is where the pass stopped, not
/// an `Err`; an `Err` is a patch that changed a template or made the
/// cluster unreadable (it names the patch), or probe SQL refused once the
/// copy's functions could be read (it names the probe's file and line).
pub(super) async fn run_patches(
    copy: &Copy<'_>,
    patches: &[Patch],
    plan: &RunPlan,
    cancel: &Cancel,
) -> Result<Pass> {
    let mut pass = Pass {
        results: Vec::new(),
        aborted: None,
        changed: Vec::new(),
        probe: None,
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
            return Ok(pass);
        }
    };
    let copy_oid = match catalog::database_oid(copy.admin, copy.name).await {
        Ok(Some(oid)) => oid,
        Ok(None) => {
            let e = Error::Server(format!("the staging copy {} is gone", copy.name));
            pass.aborted = Some(failed(&e));
            session.close().await;
            return Ok(pass);
        }
        Err(e) => {
            pass.aborted = Some(failed(&e));
            session.close().await;
            return Ok(pass);
        }
    };
    let own = OwnSessions::default();
    let watch = Watch {
        admin: copy.admin,
        backend: copy.backend,
        clock_dbid: copy.backend.has_statement_stats().then_some(copy_oid),
        templates: copy.templates.to_vec(),
        copy: Some(CopyWatch {
            oid: copy_oid,
            own: own.clone(),
            private: copy.backend.private_copies(),
        }),
    };
    if let Some(b) = copy.books.filter(|b| b.keeps_books()) {
        let ensured = measure::own_work(
            &session,
            &watch,
            b.ensure(&session.client),
            plan.statement_cap,
            cancel,
        )
        .await;
        if let Err(e) = ensured {
            pass.aborted = Some(match e {
                Error::Aborted(a) => Aborted::in_phase(a, Phase::Applying),
                e => {
                    let mut a = failed(&e);
                    a.message = Some(format!(
                        "creating {}, the tool's bookkeeping table, before the first patch: {e}",
                        b.layout.table().unwrap_or("the tool's table")
                    ));
                    a
                }
            });
            session.close().await;
            return Ok(pass);
        }
    }
    let probe = match start_probe(copy, &session, patches, plan, own).await {
        Ok(p) => p,
        // Refused probe SQL (a function it calls ends sessions, say): the
        // probe's error, at its file and line, not any patch's.
        Err(e @ (Error::Input { .. } | Error::InputAt { .. })) => {
            session.close().await;
            return Err(e);
        }
        Err(e) => {
            let mut a = failed(&e);
            a.message = Some(format!("starting the application probe: {e}"));
            pass.aborted = Some(a);
            session.close().await;
            return Ok(pass);
        }
    };
    let applied = apply_each(
        &session,
        &watch,
        copy,
        copy_oid,
        (patches, probe.as_ref()),
        plan,
        cancel,
        &mut pass,
    )
    .await;
    if let Some(p) = probe {
        pass.probe = Some(p.info.clone());
        p.stop();
    }
    let lost = pass
        .results
        .iter()
        .any(|r| r.run().is_some_and(|run| run.connection_lost));
    if applied.is_ok() && pass.aborted.is_none() && !lost && !session.client.is_closed() {
        drop_subscriptions(&session, patches, &mut pass).await;
    }
    session.close().await;
    applied.map(|()| pass)
}

/// Start the application probe on the copy, when the plan asks for it.
async fn start_probe(
    copy: &Copy<'_>,
    session: &Session,
    patches: &[Patch],
    plan: &RunPlan,
    own: OwnSessions,
) -> Result<Option<Probe>> {
    let Some(opts) = &plan.probe else {
        return Ok(None);
    };
    let named = patches.iter().flat_map(probe::tables_named).collect();
    let config = copy.backend.config(copy.name);
    Probe::start(
        config,
        session.tls.clone(),
        session.pid,
        named,
        opts.clone(),
        own,
    )
    .await
    .map(Some)
}

/// Drop the subscriptions the patches created (they would keep the copy
/// from being dropped); a failure is where the pass stopped.
async fn drop_subscriptions(session: &Session, patches: &[Patch], pass: &mut Pass) {
    // The session was reset after the last patch. (A patch that ended
    // the session left the copy to the server: nothing more is asked on
    // it, and this is not called.)
    if let Err(e) = staging::drop_subscriptions(&session.client).await {
        let mut a = Aborted::infrastructure(Phase::Applying, &e);
        a.message = Some(format!(
            "dropping the subscriptions the patches created, before dropping the copy: {e}"
        ));
        let last = patches
            .iter()
            .zip(&pass.results)
            .rfind(|(_, r)| r.run().is_some());
        pass.aborted = Some(match last {
            Some((p, _)) => a.at(p, None),
            None => a,
        });
    }
}

/// The patches in order on one session, until one stops the pass; after
/// each, what it changed in the cluster-level state.
#[allow(clippy::too_many_arguments)]
async fn apply_each(
    session: &Session,
    watch: &Watch<'_>,
    copy: &Copy<'_>,
    copy_oid: u32,
    (patches, probe): (&[Patch], Option<&Probe>),
    plan: &RunPlan,
    cancel: &Cancel,
    pass: &mut Pass,
) -> Result<()> {
    let apply_opts = ApplyOptions {
        statement_cap: plan.statement_cap,
    };
    let mut cluster = copy.cluster.recorded().clone();
    let mut stop_after: Option<String> = None;
    let books = copy.books.filter(|b| b.keeps_books());
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
        if let Some(Step::Skip(why)) = copy.books.and_then(|b| b.steps.get(i)) {
            pass.results.push(PatchOutcome::not_run(why.clone()));
            ui::progress_done();
            continue;
        }
        ui::progress_patch(&p.file.id);
        // The session is as it was opened (measure::apply resets it after
        // every patch).
        if let Some(probe) = probe {
            if let Err(e) = probe.begin(probe::tables_named(p)).await {
                let mut a = Aborted::infrastructure(Phase::Applying, &e).at(p, None);
                a.message = Some(format!("the application probe: {e}"));
                pass.aborted = Some(a);
                break;
            }
        }
        let wall = Instant::now();
        let mut run = measure::apply_with(session, watch, p, &apply_opts, cancel, books).await;
        let wall_seconds = wall.elapsed().as_secs_f64();
        if let Some(probe) = probe {
            run.probe = Some(match probe.end().await {
                Ok(rec) => probe::summarise(
                    &rec,
                    &probe.queries,
                    p,
                    &run.statements,
                    probe.options.threshold.as_secs_f64(),
                ),
                Err(e) => probe::PatchProbe::failed(e.to_string()),
            });
            probe::lock_waits(&mut run, p);
        }
        if let Some(e) = run.error.as_mut() {
            let sql = p.statements.iter().find(|s| s.line == e.statement_line);
            newer_server_hint(e, sql.map_or("", |s| s.sql.as_str()), copy.major);
        }
        if run.halt.is_none() {
            if let Some((now, changes)) = copy
                .cluster
                .check(copy.admin, copy_oid, &cluster, &p.file.path)
                .await?
            {
                if copy.backend.shared() && run.error.is_none() {
                    let theirs = copy.cluster.not_owned(&cluster, &now, &changes);
                    run.error = not_owned_error(p, &theirs);
                }
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
    Ok(())
}

/// The error of a patch that changed what its run does not own on a shared
/// server (`theirs`), at the statement that names it when one does.
fn not_owned_error(p: &Patch, theirs: &[NotOwned]) -> Option<PatchError> {
    if theirs.is_empty() {
        return None;
    }
    let names: Vec<&String> = theirs.iter().flat_map(|t| &t.names).collect();
    let at = statement_naming(p, &names);
    let labels: Vec<&str> = theirs.iter().map(|t| t.label.as_str()).collect();
    let line = at.or(p.statements.first()).map_or(1, |s| s.line);
    let which = if at.is_some() {
        "this statement"
    } else {
        "this patch (the statement is not known)"
    };
    Some(PatchError {
        message: format!(
            "{which} changed what the staging run does not own on a server it shares: {}. \
             downtime puts it back after the run, but meanwhile it is so for everyone on the \
             server; a patch may change only its own database and the roles and databases it \
             makes",
            labels.join("; ")
        ),
        sqlstate: None,
        line,
        statement_line: line,
        detail: None,
        hint: None,
        partially_applied: false,
        ended_by: None,
    })
}

/// The first statement of `p` that names one of `names` as an identifier,
/// one about roles or databases first (or, failing that, inside a string
/// constant: SQL run by `EXECUTE`).
fn statement_naming<'p>(p: &'p Patch, names: &[&String]) -> Option<&'p crate::patch::Statement> {
    use crate::patch::words::{tokens, Kind};
    const ABOUT: &[&str] = &[
        "role", "user", "group", "database", "grant", "revoke", "owner", "comment",
    ];
    // 0: a name and a word about roles; 1: a name; 2: a name in a string.
    let rank = |st: &crate::patch::Statement| -> Option<u8> {
        let toks = tokens(&st.sql)?;
        let named = |t: &crate::patch::words::Token<'_>| {
            t.identifier()
                .is_some_and(|id| names.iter().any(|n| **n == id))
        };
        if toks.iter().any(named) {
            let about = toks.iter().any(|t| ABOUT.iter().any(|w| t.is(w)));
            return Some(if about { 0 } else { 1 });
        }
        toks.iter()
            .any(|t| t.kind == Kind::Str && names.iter().any(|n| t.text.contains(n.as_str())))
            .then_some(2)
    };
    let ranked: Vec<(u8, &crate::patch::Statement)> = p
        .statements
        .iter()
        .filter_map(|st| rank(st).map(|r| (r, st)))
        .collect();
    (0..3).find_map(|r| ranked.iter().find(|(k, _)| *k == r).map(|(_, st)| *st))
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
