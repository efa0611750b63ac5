//! Markdown for a merge-request comment: fits under the comment limit.
//! Foreign text (ids, SQL, the server's messages and settings, sign-off
//! names) is escaped for its place, once, by [`Writer`]: no markup, HTML,
//! image, link or mention comes from it, and none of it starts a line.

use std::cell::Cell;
use std::fmt::Write;

use super::{PatchReport, Report, Status};
use crate::escape::{md_code, md_html, md_text};
use crate::verdict::signoff::SignoffState;
use crate::verdict::Severity;

/// GitHub and GitLab refuse comments longer than 65 536 characters; stay
/// under. Counted in bytes, never fewer than characters or UTF-16 units.
pub const COMMENT_LIMIT: usize = 65_000;

/// The most characters of one foreign text the comment shows.
const TEXT_CHARS: usize = 600;

/// Room for the run's failures and warnings at the top.
const HEAD_ROOM: usize = 16_000;

/// Room kept for the notes on what was left out.
const NOTE_ROOM: usize = 800;

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

/// Whitespace collapsed to single spaces, cut at `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let joined: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() > max {
        format!("{}…", joined.chars().take(max).collect::<String>())
    } else {
        joined
    }
}

/// Foreign text as the comment shows it: escaped for its place by
/// [`crate::escape`], each text at most [`TEXT_CHARS`] characters, and a
/// count of what was left out for the note at the end.
#[derive(Default)]
struct Writer {
    /// Texts shortened to [`TEXT_CHARS`].
    shortened: Cell<usize>,
}

impl Writer {
    /// `s` cut to `max` characters, and how many were left out.
    fn short<'a>(&self, s: &'a str, max: usize) -> (std::borrow::Cow<'a, str>, usize) {
        let n = s.chars().count();
        if n <= max {
            return (s.into(), 0);
        }
        self.shortened.set(self.shortened.get() + 1);
        (s.chars().take(max).collect::<String>().into(), n - max)
    }

    /// Foreign text in a list item or a table cell.
    fn text(&self, s: &str) -> String {
        match self.short(s, TEXT_CHARS) {
            (t, 0) => md_text(&t),
            (t, more) => format!("{}… _({more} more characters)_", md_text(&t)),
        }
    }

    /// Foreign text as a code span in a table cell.
    fn code(&self, s: &str) -> String {
        md_code(&self.short(s, TEXT_CHARS).0)
    }

    /// Foreign text in the comment's own HTML.
    fn html(&self, s: &str) -> String {
        md_html(&self.short(s, TEXT_CHARS).0)
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

fn patch_row(w: &Writer, p: &PatchReport) -> String {
    let budget = p
        .budget_seconds
        .map_or_else(|| "–".to_string(), |b| format!("{b:.2}"));
    let slowest = p
        .slowest_statement()
        .map(|s| {
            format!(
                "L{} {} {:.3} s",
                s.line,
                md_code(&one_line(&s.sql, 40)),
                s.seconds
            )
        })
        .unwrap_or_default();
    let signoff = p
        .signoff
        .as_ref()
        .map(|s| format!("{} ({})", w.text(&s.by), s.state))
        .unwrap_or_default();
    let estimate = p
        .estimate_text()
        .map(|e| format!(" | {}", w.text(&e)))
        .unwrap_or_default();
    format!(
        "| {} | {} | {:.3} / {} | {} | {} | {} | {} | {}{estimate} |\n",
        w.code(&p.id),
        p.classification.map_or("–".into(), |c| c.to_string()),
        p.seconds,
        budget,
        verdict_cell(p),
        slowest,
        w.text(&blocking_locks(p).join(", ")),
        w.text(&rewrites(p).join(", ")),
        signoff
    )
}

fn reasons_block(w: &Writer, p: &PatchReport) -> String {
    let mut out = String::new();
    for line in p.failed_run_lines() {
        let _ = writeln!(out, "  - **error** {}", w.text(&line));
    }
    for r in p.reasons.iter().filter(|r| r.severity >= Severity::Warning) {
        let at = r
            .statement_line
            .map(|l| format!("line {l}: "))
            .unwrap_or_default();
        let waived = r
            .waived
            .as_deref()
            .map(|why| format!(" — waived: {}", w.text(why)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  - **{}** `{}` {at}{}{waived}<br>fix: {}",
            r.severity.word(),
            r.rule,
            w.text(&r.message),
            w.text(&r.hint)
        );
    }
    out
}

/// Render the comment.
pub fn render(report: &Report) -> String {
    let w = Writer::default();
    let (head, items_left) = head(&w, report);
    let tail = tail(&w, report);
    // Patches that fail or are cold first in the details, all in the table.
    let room = COMMENT_LIMIT.saturating_sub(head.len() + tail.len() + 2 * NOTE_ROOM);
    let (table, details, shown) = patch_table(&w, report, room);
    let mut out = head;
    out.push_str(&table);
    let patches_left = report.patches.len() - shown;
    if patches_left > 0 {
        let _ = writeln!(
            out,
            "\n_{patches_left} more patch(es) not shown to fit the comment limit; the JSON and HTML reports have them all._"
        );
    }
    if !details.is_empty() {
        let _ = writeln!(out, "\n**Reasons**\n\n{details}");
    }
    out.push_str(&tail);
    let left_out = [
        (patches_left, "patch(es) not in the table"),
        (items_left, "failure(s) or warning(s) not listed"),
        (w.shortened.get(), "text(s) shortened"),
    ];
    cut_note(&mut out, &left_out);
    out
}

/// Say what was left out, and where the rest is; past the limit still
/// (it cannot be, by the rooms above), cut the comment at a line.
fn cut_note(out: &mut String, left_out: &[(usize, &str)]) {
    let what: Vec<String> = left_out
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if out.len() + NOTE_ROOM > COMMENT_LIMIT {
        let mut at = COMMENT_LIMIT - NOTE_ROOM;
        while !out.is_char_boundary(at) {
            at -= 1;
        }
        out.truncate(out[..at].rfind('\n').unwrap_or(0));
        out.push_str("\n\n_The rest of the comment is cut here._\n");
    } else if what.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n_Left out to fit the comment limit: {}. The full report is `report.html` (and `report.json`) in the job's artifact or `--output-dir`._",
        if what.is_empty() { "the end".to_string() } else { what.join(", ") }
    );
}

/// The title line with the verdict, then the run's failures and warnings
/// (as many as fit in [`HEAD_ROOM`]), and how many did not fit.
fn head(w: &Writer, report: &Report) -> (String, usize) {
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
    let mut left = 0;
    for (title, items) in [
        ("Failures", &report.failures),
        ("Warnings", &report.warnings),
    ] {
        if !items.is_empty() {
            let _ = writeln!(head, "**{title}**\n");
            for i in items {
                let before = w.shortened.get();
                let item = format!("- {}\n", w.text(i));
                if head.len() + item.len() > HEAD_ROOM {
                    w.shortened.set(before);
                    left += 1;
                } else {
                    head.push_str(&item);
                }
            }
            head.push('\n');
        }
    }
    (head, left)
}

/// The totals, the runtime histogram and the server settings.
fn tail(w: &Writer, report: &Report) -> String {
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
    tail.push_str(&probe_table(w, report));
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
        w.html(&report.postgres.version),
        w.html(&report.postgres.describe_backend()),
        w.html(&report.baseline.source),
        report.baseline.load_seconds
    );
    for (k, v) in &report.postgres.settings {
        let _ = writeln!(tail, "| {} | {} |", w.code(k), w.text(v));
    }
    let _ = writeln!(tail, "\n</details>");
    tail
}

/// What the application probe saw, per patch (at most 20 rows: those that
/// blocked the application first).
fn probe_table(w: &Writer, report: &Report) -> String {
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
                format!("{} ({mode}{line})", w.code(&r.relation))
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
            w.text(&p.id),
            pr.queries,
            pr.blocked_queries,
            pr.max_wait_seconds,
            pr.p99_seconds,
            pr.idle_p99_seconds,
            place.join("; ")
        );
    }
    out.push('\n');
    out
}

/// The patch table and the reasons under it, as many patches as fit in
/// `room` characters, and how many that is.
fn patch_table(w: &Writer, report: &Report, room: usize) -> (String, String, usize) {
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
        let before = w.shortened.get();
        let row = patch_row(w, p);
        let more = reasons_block(w, p);
        let extra = if more.is_empty() {
            String::new()
        } else {
            format!("- **{}**\n{more}", w.text(&p.id))
        };
        if table.len() + details.len() + row.len() + extra.len() > room {
            // Left out whole: counted as a patch, not as shortened texts.
            w.shortened.set(before);
            break;
        }
        table.push_str(&row);
        details.push_str(&extra);
        shown += 1;
    }
    (table, details, shown)
}
