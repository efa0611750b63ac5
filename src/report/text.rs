//! The terminal table. Every line goes through [`put`].

use super::{PatchReport, Report, Status, VerdictKind};
use crate::verdict::signoff::SignoffState;

/// Append one line of the report. Foreign text in it (ids, paths, SQL, the
/// server's messages, sign-off names) is shown visibly, a line break too,
/// so no patch can clear the screen, print a line of its own above the
/// verdict or pass for a workflow command.
fn put(out: &mut String, line: std::fmt::Arguments) {
    out.push_str(&crate::escape::log_line(&line.to_string()));
    out.push('\n');
}

/// `put!(out, "format", args…)`: [`put`] with `format!`'s arguments.
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {
        put($out, format_args!($($arg)*))
    };
}

fn truncate(s: &str, width: usize) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= width {
        one_line
    } else {
        let cut: String = one_line.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Render the report as a table with the reasons under each patch.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let id_width = report
        .patches
        .iter()
        .map(|p| p.id.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    put!(
        &mut out,
        "{:<id_width$}  {:<5}  {:>8}  {:>7}  {:<11}  slowest statement",
        "patch",
        "class",
        "seconds",
        "budget",
        "verdict"
    );
    for p in &report.patches {
        patch_row(&mut out, p, id_width);
        patch_details(&mut out, p);
        reason_lines(&mut out, p);
    }
    summary(&mut out, report);
    out
}

/// The patch's verdict in the table.
fn verdict(p: &PatchReport) -> &'static str {
    let signed_off = p
        .signoff
        .as_ref()
        .is_some_and(|s| s.state == SignoffState::Valid);
    match p.status {
        Status::Failed => "FAILED",
        Status::PredictedFailure => "FAILS IN PRODUCTION",
        Status::Skipped => "skipped",
        Status::Ok if p.over_budget && signed_off => "signed off",
        Status::Ok if p.over_budget => "OVER BUDGET",
        Status::Ok => "ok",
    }
}

/// The patch's row: id, class, seconds, budget, verdict, slowest statement.
fn patch_row(out: &mut String, p: &PatchReport, id_width: usize) {
    let class = p.classification.map_or("-".to_string(), |c| c.to_string());
    let budget = p
        .budget_seconds
        .map_or_else(|| "-".to_string(), |b| format!("{b:.2}"));
    let slowest = p
        .slowest_statement()
        .map(|s| {
            format!(
                "line {}: {} ({:.3} s)",
                s.line,
                truncate(&s.sql, 48),
                s.seconds
            )
        })
        .unwrap_or_default();
    put!(
        out,
        "{:<id_width$}  {:<5}  {:>8.3}  {:>7}  {:<11}  {}",
        p.id,
        class,
        p.seconds,
        budget,
        verdict(p),
        slowest
    );
}

/// Under the row: the estimate, the sign-off, the error and why it was skipped.
fn patch_details(out: &mut String, p: &PatchReport) {
    if let Some(e) = p.estimate_text() {
        put!(out, "    estimate: {e}");
    }
    if let Some(s) = &p.signoff {
        put!(
            out,
            "    signed off by {} on {} for up to {:.2} s ({}): {}",
            s.by,
            s.at,
            s.max_seconds,
            s.state,
            s.reason
        );
    }
    if let Some(e) = &p.error {
        let state = e
            .sqlstate
            .as_deref()
            .map(|s| format!(" (SQLSTATE {s})"))
            .unwrap_or_default();
        put!(out, "    error {}:{}: {}{state}", p.path, e.line, e.message);
        // The server's DETAIL and HINT (and downtime's own hint) say why
        // and what to do: a missing extension, a newer server's feature.
        if let Some(detail) = &e.detail {
            put!(out, "      detail: {detail}");
        }
        if let Some(hint) = &e.hint {
            put!(out, "      hint: {hint}");
        }
        if e.partially_applied {
            put!(
                out,
                "    note: transactions before the failing statement were already committed"
            );
        }
    }
    for line in p.failed_run_lines() {
        put!(out, "    {line}");
    }
    for line in p.probe_lines() {
        put!(out, "    {line}");
    }
    if let Some(why) = &p.skipped_because {
        put!(out, "    {why}");
    }
}

/// Each reason with its fix, or the waiver that covers it.
fn reason_lines(out: &mut String, p: &PatchReport) {
    for r in &p.reasons {
        let level = r.severity.word();
        let at = r
            .statement_line
            .map(|l| format!("{}:{l}: ", p.path))
            .unwrap_or_default();
        let level = if r.waived.is_some() { "waived" } else { level };
        put!(out, "    {level:<7} [{}] {at}{}", r.rule, r.message);
        match &r.waived {
            Some(because) => {
                put!(out, "            because: {because}");
            }
            None => {
                put!(out, "            fix: {}", r.hint);
            }
        }
    }
}

/// The totals, the run's notes, warnings and failures, and the verdict.
fn summary(out: &mut String, report: &Report) {
    // A failed patch is rolled back: it is counted apart from the applied ones.
    let count = |status: Status| report.patches.iter().filter(|p| p.status == status).count();
    let failed = match count(Status::Failed) {
        0 => String::new(),
        n => format!(", {n} failed"),
    };
    let failed = match count(Status::PredictedFailure) {
        0 => failed,
        n => format!("{failed}, {n} predicted to fail in production"),
    };
    let total_budget = report
        .budget
        .total_seconds
        .map(|t| format!(" of {t:.2} s budget"))
        .unwrap_or_default();
    out.push('\n');
    put!(
        out,
        "{} patch(es) applied{failed} in {:.3} s{total_budget}; cold window {:.3} s; profile {}; PostgreSQL {} ({})",
        count(Status::Ok) + count(Status::PredictedFailure),
        report.total_seconds,
        report.cold_seconds,
        report.policy.profile,
        report.postgres.version,
        report.postgres.describe_backend()
    );
    if let Some(l) = report.layout {
        let books = l
            .table()
            .map(|t| format!(" (the tool's books: {t})"))
            .unwrap_or_default();
        put!(out, "layout: {}{books}", l.name());
    }
    for n in &report.notes {
        put!(out, "note: {n}");
    }
    verdict_lines(out, report);
}

/// The end of every text report (`check`, `bench`, `estimate`):
/// warnings, failures, and the verdict.
fn verdict_lines(out: &mut String, report: &Report) {
    for w in &report.warnings {
        put!(out, "warning: {w}");
    }
    for f in &report.failures {
        put!(out, "FAIL: {f}");
    }
    put!(
        out,
        "verdict: {}",
        match report.verdict {
            VerdictKind::Pass => "PASS",
            VerdictKind::Fail => "FAIL",
            VerdictKind::Aborted => "ABORTED",
        }
    );
}

/// Each failed patch's error, and why later ones did not run, for the
/// tables that leave them out (`bench`, `estimate`); then the verdict.
fn errors_and_verdict(out: &mut String, report: &Report) {
    let mut first = true;
    for p in &report.patches {
        let why = match (&p.error, &p.skipped_because) {
            (Some(e), _) => {
                let state = e
                    .sqlstate
                    .as_deref()
                    .map(|s| format!(" (SQLSTATE {s})"))
                    .unwrap_or_default();
                format!("error {}:{}: {}{state}", p.path, e.line, e.message)
            }
            (None, Some(why)) if p.status == Status::Skipped => why.clone(),
            _ => continue,
        };
        if first {
            out.push('\n');
            first = false;
        }
        put!(out, "{}: {why}", p.id);
    }
    if first {
        out.push('\n');
    }
    verdict_lines(out, report);
}

fn secs(x: f64) -> String {
    format!("{x:.4}")
}

/// The `bench` table: per patch and statement, statistics over the runs.
pub fn render_bench(report: &Report) -> String {
    let mut out = String::new();
    if let Some(t) = &report.timing {
        let caches: Vec<&str> = t
            .cache
            .iter()
            .map(|c| match c {
                super::CacheMode::Warm => "warm",
                super::CacheMode::Cold => "cold",
            })
            .collect();
        put!(
            &mut out,
            "{} timed run(s) after {} warm-up, cache {}, deciding by {}{}",
            t.runs,
            t.warmup,
            caches.join(" + "),
            t.statistic,
            match t.os_cache_dropped {
                Some(true) => format!(
                    "; server restarted {} time(s), OS page cache dropped",
                    t.server_restarts
                ),
                Some(false) => format!(
                    "; server restarted {} time(s), OS page cache NOT dropped (not permitted)",
                    t.server_restarts
                ),
                None => String::new(),
            }
        );
    }
    put!(
        &mut out,
        "{:<28} {:<5} {:>9} {:>9} {:>9} {:>9} {:>21}",
        "patch / statement",
        "cache",
        "min",
        "median",
        "max",
        "MAD",
        "95% CI of median"
    );
    for p in &report.patches {
        let rows: Vec<(&str, &crate::measure::stats::Stats)> = p
            .timing
            .iter()
            .flat_map(|t| [("warm", t.warm.as_ref()), ("cold", t.cold.as_ref())])
            .filter_map(|(m, s)| s.map(|s| (m, s)))
            .collect();
        if rows.is_empty() {
            put!(
                &mut out,
                "{:<28} {:<5} {:>9}",
                truncate(&p.id, 28),
                "-",
                secs(p.seconds)
            );
        }
        for (mode, st) in rows {
            put!(
                &mut out,
                "{:<28} {:<5} {:>9} {:>9} {:>9} {:>9} {:>21}",
                truncate(&p.id, 28),
                mode,
                secs(st.min),
                secs(st.median),
                secs(st.max),
                secs(st.mad),
                format!("[{}, {}]", secs(st.ci_low), secs(st.ci_high))
            );
        }
        for line in p.failed_run_lines() {
            put!(&mut out, "  {line}");
        }
        for s in &p.statements {
            if let Some(st) = &s.stats {
                put!(
                    &mut out,
                    "  {:<26} {:<5} {:>9} {:>9} {:>9} {:>9} {:>21}",
                    truncate(&format!("line {}: {}", s.line, s.sql), 26),
                    "",
                    secs(st.min),
                    secs(st.median),
                    secs(st.max),
                    secs(st.mad),
                    format!("[{}, {}]", secs(st.ci_low), secs(st.ci_high))
                );
            }
        }
    }
    errors_and_verdict(&mut out, report);
    out
}

/// The `estimate` table: per patch, staging time, the predicted production
/// time with its interval, and the forecast; per statement, the model.
pub fn render_estimate(report: &Report) -> String {
    let mut out = String::new();
    if let Some(e) = &report.estimate {
        let scales: Vec<String> = e
            .scales
            .iter()
            .map(|s| format!("{:.0} %", s * 100.0))
            .collect();
        put!(
            &mut out,
            "measured at {} of the staging rows; production statistics {} (exported {}){}",
            scales.join(", "),
            e.stats_file,
            e.stats_exported_at,
            e.growth_per_month
                .map(|g| format!("; growth {:.1} %/month", g * 100.0))
                .unwrap_or_default()
        );
    }
    put!(
        &mut out,
        "{:<24} {:<5} {:>9} {:>11} {:>25} {:>8}  fits until",
        "patch / statement",
        "class",
        "staging s",
        "estimate s",
        "95% prediction interval",
        "budget"
    );
    for p in &report.patches {
        let Some(e) = &p.estimate else {
            put!(
                &mut out,
                "{:<24} {:<5} {:>9.4}  (no estimate: {})",
                truncate(&p.id, 24),
                p.classification.map_or("-".into(), |c| c.to_string()),
                p.seconds,
                match p.status {
                    Status::Ok => "not measured at every scale",
                    _ => "the patch did not apply",
                }
            );
            continue;
        };
        put!(
            &mut out,
            "{:<24} {:<5} {:>9.4} {:>11.3} {:>25} {:>8}  {}",
            truncate(&p.id, 24),
            p.classification.map_or("-".into(), |c| c.to_string()),
            p.seconds,
            e.seconds,
            format!("[{:.3}, {:.3}]", e.low, e.high),
            p.budget_seconds.map_or("-".into(), |b| format!("{b:.1}")),
            e.fits_until.as_deref().unwrap_or("-")
        );
        for s in &e.statements {
            let what = match (&s.relation, s.production_rows, s.seconds) {
                (Some(r), Some(rows), Some(sec)) => format!(
                    "{} in rows of {r}: {:.0} rows in production -> {sec:.3} s",
                    match s.model {
                        crate::estimate::model::Model::Constant => "constant",
                        crate::estimate::model::Model::Linear => "linear",
                        crate::estimate::model::Model::NLogN => "n log n",
                    },
                    rows
                ),
                (None, _, Some(sec)) => format!("constant (catalogue only) -> {sec:.4} s"),
                _ => s.note.clone().unwrap_or_default(),
            };
            put!(&mut out, "  line {:<5} {what}", s.line);
        }
        if !e.missing_tables.is_empty() {
            put!(
                &mut out,
                "  incomplete: not in the stats file: {}",
                e.missing_tables.join(", ")
            );
        }
        if !e.unknown_rows.is_empty() {
            put!(
                &mut out,
                "  incomplete: no row estimate in the stats file: {}",
                e.unknown_rows.join(", ")
            );
        }
        if !e.unmeasured.is_empty() {
            put!(
                &mut out,
                "  incomplete: staging holds none of the rows of: {}",
                e.unmeasured.join(", ")
            );
        }
    }
    errors_and_verdict(&mut out, report);
    out
}
