//! Markdown for a merge-request comment: fits under the comment limit.

use std::fmt::Write;

use super::{PatchReport, Report, Status};
use crate::verdict::signoff::SignoffState;
use crate::verdict::Severity;

/// GitHub and GitLab refuse comments longer than 65 536 characters; stay under.
pub const COMMENT_LIMIT: usize = 65_000;

/// GitLab's runtime buckets, upper bounds in seconds.
pub const BUCKETS: [(&str, f64); 5] = [
    ("< 0.01 s", 0.01),
    ("0.01 – 0.1 s", 0.1),
    ("0.1 – 1 s", 1.0),
    ("1 s – 5 min", 300.0),
    ("> 5 min", f64::INFINITY),
];

/// Count of run patches per bucket.
pub fn histogram(report: &Report) -> [usize; 5] {
    let mut counts = [0; 5];
    for p in report
        .patches
        .iter()
        .filter(|p| p.status != Status::Skipped)
    {
        let i = BUCKETS
            .iter()
            .position(|(_, upper)| p.seconds < *upper)
            .unwrap_or(4);
        counts[i] += 1;
    }
    counts
}

/// Escape text for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn one_line(s: &str, max: usize) -> String {
    let joined: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() > max {
        format!("{}…", joined.chars().take(max).collect::<String>())
    } else {
        joined
    }
}

/// The patch's verdict in words.
pub(crate) fn verdict_word(p: &PatchReport) -> &'static str {
    let signed = p
        .signoff
        .as_ref()
        .is_some_and(|s| s.state == SignoffState::Valid);
    match p.status {
        Status::Failed => "failed",
        Status::Skipped => "skipped",
        Status::PredictedFailure => "fails in production",
        _ if !p.failures.is_empty() => "fails",
        _ if p.over_budget && signed => "signed off",
        _ => "ok",
    }
}

fn verdict_cell(p: &PatchReport) -> String {
    let mark = match verdict_word(p) {
        "failed" | "fails" | "fails in production" => "❌",
        "skipped" => "⏭",
        _ => "✅",
    };
    format!("{mark} {}", verdict_word(p))
}

/// Locks that block the application, as `MODE on relation`.
pub(crate) fn blocking_locks(p: &PatchReport) -> Vec<String> {
    let mut out: Vec<String> = p
        .statements
        .iter()
        .flat_map(|s| &s.locks)
        .filter(|l| l.mode.blocks_application())
        .map(|l| {
            if l.waited_seconds > 0.0 {
                format!(
                    "{} on {} ({:.2} s, after waiting {:.2} s for it)",
                    l.mode, l.relation, l.held_seconds, l.waited_seconds
                )
            } else {
                format!("{} on {} ({:.2} s)", l.mode, l.relation, l.held_seconds)
            }
        })
        .collect();
    out.dedup();
    out
}

pub(crate) fn rewrites(p: &PatchReport) -> Vec<String> {
    p.statements
        .iter()
        .flat_map(|s| &s.rewrites)
        .map(|r| format!("{} ({} rows)", r.relation, r.rows))
        .collect()
}

fn patch_row(p: &PatchReport) -> String {
    let budget = p
        .budget_seconds
        .map_or_else(|| "–".to_string(), |b| format!("{b:.2}"));
    let slowest = p
        .slowest_statement()
        .map(|s| {
            format!(
                "L{} `{}` {:.3} s",
                s.line,
                one_line(&s.sql, 40).replace('`', "'"),
                s.seconds
            )
        })
        .unwrap_or_default();
    let signoff = p
        .signoff
        .as_ref()
        .map(|s| format!("{} ({})", s.by, s.state))
        .unwrap_or_default();
    let estimate = p
        .estimate_text()
        .map(|e| format!(" | {}", cell(&e)))
        .unwrap_or_default();
    format!(
        "| `{}` | {} | {:.3} / {} | {} | {} | {} | {} | {}{estimate} |\n",
        p.id,
        p.classification.map_or("–".into(), |c| c.to_string()),
        p.seconds,
        budget,
        verdict_cell(p),
        cell(&slowest),
        cell(&blocking_locks(p).join(", ")),
        cell(&rewrites(p).join(", ")),
        cell(&signoff)
    )
}

fn reasons_block(p: &PatchReport) -> String {
    let mut out = String::new();
    for line in p.failed_run_lines() {
        let _ = writeln!(out, "  - **error** {}", cell(&line));
    }
    for r in p.reasons.iter().filter(|r| r.severity >= Severity::Warning) {
        let at = r
            .statement_line
            .map(|l| format!("line {l}: "))
            .unwrap_or_default();
        let waived = r
            .waived
            .as_deref()
            .map(|w| format!(" — waived: {w}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  - **{}** `{}` {at}{}{waived}<br>fix: {}",
            r.severity.word(),
            r.rule,
            cell(&r.message),
            cell(&r.hint)
        );
    }
    out
}

/// Render the comment.
pub fn render(report: &Report) -> String {
    let head = head(report);
    let tail = tail(report);
    // Patches that fail or are cold first in the details, all in the table.
    let room = COMMENT_LIMIT.saturating_sub(head.len() + tail.len() + 400);
    let (table, details, shown) = patch_table(report, room);
    let mut out = head;
    out.push_str(&table);
    if shown < report.patches.len() {
        let _ = writeln!(
            out,
            "\n_{} more patch(es) not shown to fit the comment limit; the JSON and HTML reports have them all._",
            report.patches.len() - shown
        );
    }
    if !details.is_empty() {
        let _ = writeln!(out, "\n**Reasons**\n\n{details}");
    }
    out.push_str(&tail);
    out
}

/// The title line with the verdict, then the run's failures and warnings.
fn head(report: &Report) -> String {
    let mut head = String::new();
    let ran = report
        .patches
        .iter()
        .filter(|p| p.status != Status::Skipped)
        .count();
    let cold = report
        .patches
        .iter()
        .filter(|p| p.classification == Some(crate::patch::Class::Cold))
        .count();
    let _ = writeln!(
        head,
        "## downtime: {} — {} patch(es), {} cold, {:.3} s in all\n",
        if report.passed() {
            "✅ pass"
        } else {
            "❌ fail"
        },
        ran,
        cold,
        report.total_seconds
    );
    for (title, items) in [
        ("Failures", &report.failures),
        ("Warnings", &report.warnings),
    ] {
        if !items.is_empty() {
            let _ = writeln!(head, "**{title}**\n");
            for i in items {
                let _ = writeln!(head, "- {}", cell(i));
            }
            head.push('\n');
        }
    }
    head
}

/// The totals, the runtime histogram and the server settings.
fn tail(report: &Report) -> String {
    let mut tail = String::new();
    let window = report
        .policy
        .budget
        .cold_window_seconds
        .map(|w| format!(" of {w:.2} s"))
        .unwrap_or_default();
    let total = report
        .budget
        .total_seconds
        .map(|t| format!(" of {t:.2} s"))
        .unwrap_or_default();
    let layout = report
        .layout
        .map(|l| format!("; layout `{}`", l.name()))
        .unwrap_or_default();
    let _ = writeln!(
        tail,
        "\n**Totals:** all patches {:.3} s{total}; cold window {:.3} s{window}; profile `{}`{layout}.\n",
        report.total_seconds, report.cold_seconds, report.policy.profile
    );
    tail.push_str(&probe_table(report));
    let _ = writeln!(
        tail,
        "**Runtime histogram**\n\n| runtime | patches |\n|---|---:|"
    );
    for ((label, _), n) in BUCKETS.iter().zip(histogram(report)) {
        let _ = writeln!(tail, "| {label} | {n} |");
    }
    let _ = writeln!(
        tail,
        "\n<details><summary>PostgreSQL {} ({}), baseline {} loaded in {:.1} s</summary>\n\n| setting | value |\n|---|---|",
        report.postgres.version,
        report.postgres.describe_backend(),
        cell(&report.baseline.source),
        report.baseline.load_seconds
    );
    for (k, v) in &report.postgres.settings {
        let _ = writeln!(tail, "| `{k}` | {} |", cell(v));
    }
    let _ = writeln!(tail, "\n</details>");
    tail
}

/// What the application probe saw, per patch (at most 20 rows: those that
/// blocked the application first).
fn probe_table(report: &Report) -> String {
    let Some(info) = &report.probe else {
        return String::new();
    };
    let mut out = format!(
        "**What the application felt** ({} queries at {} / s each from {} sessions; blocked = waited on the patch past {:.3} s)\n\n\
         | patch | queries | blocked | worst wait | p99 (idle) | where |\n|---|---:|---:|---:|---:|---|\n",
        info.queries.len(),
        info.rate_per_query,
        info.sessions,
        info.threshold_seconds
    );
    let mut rows: Vec<&PatchReport> = report
        .patches
        .iter()
        .filter(|p| p.probe.is_some())
        .collect();
    rows.sort_by_key(|p| std::cmp::Reverse(p.probe.as_ref().map_or(0, |pr| pr.blocked_queries)));
    for p in rows.iter().take(20) {
        let Some(pr) = &p.probe else { continue };
        let mut place: Vec<String> = pr
            .by_relation
            .iter()
            .take(2)
            .map(|r| {
                let mode = r
                    .lock_mode
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "row locks".into());
                let line = r
                    .statement_line
                    .map(|l| format!(", line {l}"))
                    .unwrap_or_default();
                format!("`{}` ({mode}{line})", r.relation)
            })
            .collect();
        if let Some(q) = &pr.long_query {
            place.push(format!(
                "queued behind line {} for {:.1} s ({} queries)",
                q.statement_line, q.waited_seconds, q.queued_queries
            ));
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.3} s | {:.4} s ({:.4} s) | {} |",
            cell(&p.id),
            pr.queries,
            pr.blocked_queries,
            pr.max_wait_seconds,
            pr.p99_seconds,
            pr.idle_p99_seconds,
            cell(&place.join("; "))
        );
    }
    out.push('\n');
    out
}

/// The patch table and the reasons under it, as many patches as fit in
/// `room` characters, and how many that is.
fn patch_table(report: &Report, room: usize) -> (String, String, usize) {
    let mut table = if report.estimate.is_some() {
        String::from(
            "| patch | class | seconds / budget | verdict | slowest statement | locks blocking the app | rewrites | sign-off | production estimate |\n|---|---|---:|---|---|---|---|---|---|\n",
        )
    } else {
        String::from(
            "| patch | class | seconds / budget | verdict | slowest statement | locks blocking the app | rewrites | sign-off |\n|---|---|---:|---|---|---|---|---|\n",
        )
    };
    let mut shown = 0;
    let mut details = String::new();
    for p in &report.patches {
        let row = patch_row(p);
        let more = reasons_block(p);
        let extra = if more.is_empty() {
            String::new()
        } else {
            format!("- `{}`\n{more}", p.id)
        };
        if table.len() + details.len() + row.len() + extra.len() > room {
            break;
        }
        table.push_str(&row);
        details.push_str(&extra);
        shown += 1;
    }
    (table, details, shown)
}
