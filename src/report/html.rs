//! One self-contained HTML file: inline CSS and SVG charts, no scripts, no
//! network access.

use std::fmt::Write;

use super::charts::{self, Kind};
use super::markdown::{blocking_locks, histogram, rewrites, verdict_word, BUCKETS};
use super::{PatchReport, Report, Status};
use crate::escape::xml as esc;
use crate::verdict::{Reason, Severity};

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem;color:#222;max-width:1100px}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
.pass{color:#1e8449}.fail{color:#c0392b}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f6f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.live{color:#2e86c1;font-weight:600}.cold{color:#e67e22;font-weight:600}
code{font-size:.85em;background:#f4f6f7;padding:0 .2em}
ul.reasons{margin:.2rem 0 1rem 1rem;font-size:.9rem}
.chart svg{max-width:100%;height:auto;border:1px solid #eee}
.muted{color:#777;font-size:.85rem}
";

pub fn render(report: &Report) -> String {
    let mut o = String::new();
    page_head(&mut o, report);
    let charts = Charts::of(report);
    let _ = writeln!(
        o,
        "<h2>Apply time per patch</h2>{}",
        charts.svg_of(&Kind::Patches)
    );
    let trend = charts.svg_of(&Kind::Trend);
    if !trend.is_empty() {
        let _ = writeln!(o, "<h2>Trend over recorded runs</h2>{trend}");
    }
    patch_table(&mut o, report);
    reasons(&mut o, report, &charts);
    probe_section(&mut o, report, &charts);
    chart_section(&mut o, &charts, "Scaling to production size", |k| {
        matches!(k, Kind::Scaling(_))
    });
    chart_section(&mut o, &charts, "Where the time went", |k| {
        matches!(k, Kind::Statements(_))
    });
    histogram_and_settings(&mut o, report);
    o
}

/// The report's charts, each drawn as inline SVG where the page shows it.
struct Charts<'a> {
    report: &'a Report,
    all: Vec<charts::Chart>,
}

impl<'a> Charts<'a> {
    fn of(report: &'a Report) -> Self {
        Charts {
            report,
            all: charts::charts(report),
        }
    }

    /// The chart of this kind as a `<div>` with its SVG (or the error that
    /// kept it from being drawn); empty when the report has no such chart.
    fn svg_of(&self, kind: &Kind) -> String {
        self.all
            .iter()
            .find(|c| &c.kind == kind)
            .map(|c| match charts::svg(self.report, c) {
                Ok(svg) => format!(
                    "<div class=\"chart\" id=\"chart-{}\">{}</div>",
                    esc(&c.name),
                    strip_xml_header(&svg)
                ),
                Err(e) => format!("<p class=\"fail\">{}</p>", esc(&e)),
            })
            .unwrap_or_default()
    }
}

/// The document head, the title with the verdict, the run's facts, and its
/// failures and warnings.
fn page_head(o: &mut String, report: &Report) {
    let passed = report.passed();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>downtime report: {}</title><style>{STYLE}</style></head><body>\n",
        if passed { "pass" } else { "fail" }
    );
    let _ = writeln!(
        o,
        "<h1>downtime: <span class=\"{0}\">{0}</span> — {1} patch(es), {2:.3} s in all, cold window {3:.3} s</h1>",
        if passed { "pass" } else { "fail" },
        report.patches.iter().filter(|p| p.status != Status::Skipped).count(),
        report.total_seconds,
        report.cold_seconds
    );
    let _ = writeln!(
        o,
        "<p class=\"muted\">Started {} · profile <code>{}</code> · PostgreSQL {} ({}) · baseline {} loaded in {:.1} s · downtime {}</p>",
        esc(&report.started_at),
        report.policy.profile,
        esc(&report.postgres.version),
        esc(&report.postgres.describe_backend()),
        esc(&report.baseline.source),
        report.baseline.load_seconds,
        esc(&report.tool_version)
    );
    for (title, items) in [
        ("Failures", &report.failures),
        ("Warnings", &report.warnings),
    ] {
        if !items.is_empty() {
            let _ = writeln!(o, "<h2>{title}</h2><ul>");
            for i in items.iter() {
                let _ = writeln!(o, "<li>{}</li>", esc(i));
            }
            let _ = writeln!(o, "</ul>");
        }
    }
}

/// The table of patches, with the production estimate when there is one.
fn patch_table(o: &mut String, report: &Report) {
    let _ = writeln!(
        o,
        "<h2>Patches</h2><table><tr><th>patch</th><th>class</th><th>seconds</th><th>budget</th><th>verdict</th>\
         <th>slowest statement</th><th>locks blocking the app</th><th>rewrites</th><th>sign-off</th>{}</tr>",
        if report.estimate.is_some() { "<th>production estimate</th>" } else { "" }
    );
    for p in &report.patches {
        patch_row(o, p, report.estimate.is_some());
    }
    let _ = writeln!(o, "</table>");
}

fn patch_row(o: &mut String, p: &PatchReport, with_estimate: bool) {
    let class = p.classification.map_or("–".into(), |c| c.to_string());
    let slowest = p
        .slowest_statement()
        .map(|s| {
            format!(
                "line {}: <code>{}</code> ({:.3} s)",
                s.line,
                esc(&super::excerpt(&s.sql).chars().take(60).collect::<String>()),
                s.seconds
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "<tr><td><code>{}</code></td><td class=\"{class}\">{class}</td><td class=\"num\">{:.3}</td><td class=\"num\">{}</td>\
         <td>{}</td><td>{slowest}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
        esc(&p.id),
        p.seconds,
        p.budget_seconds.map_or("–".into(), |b| format!("{b:.2}")),
        verdict_word(p),
        esc(&blocking_locks(p).join(", ")),
        esc(&rewrites(p).join(", ")),
        esc(&p.signoff.as_ref().map(|s| format!("{} ({})", s.by, s.state)).unwrap_or_default()),
        if with_estimate {
            format!("<td>{}</td>", esc(&p.estimate_text().unwrap_or_default()))
        } else {
            String::new()
        }
    );
}

/// Per patch with an error, failures or reasons: the error, each reason with
/// its fix, then the patch's lock timeline.
fn reasons(o: &mut String, report: &Report, charts: &Charts) {
    let _ = writeln!(o, "<h2>Reasons</h2>");
    for (i, p) in report.patches.iter().enumerate() {
        let reasons: Vec<_> = p
            .reasons
            .iter()
            .filter(|r| r.severity >= Severity::Note)
            .collect();
        if reasons.is_empty() && p.error.is_none() && p.failures.is_empty() {
            continue;
        }
        let _ = writeln!(
            o,
            "<h3><code>{}</code></h3><ul class=\"reasons\">",
            esc(&p.id)
        );
        if let Some(e) = &p.error {
            let _ = writeln!(
                o,
                "<li class=\"fail\">{}:{}: {}{}</li>",
                esc(&p.path),
                e.line,
                esc(&e.message),
                e.sqlstate
                    .as_deref()
                    .map(|s| format!(" (SQLSTATE {})", esc(s)))
                    .unwrap_or_default()
            );
        }
        for line in p.failed_run_lines() {
            let _ = writeln!(o, "<li class=\"fail\">{}</li>", esc(&line));
        }
        for r in reasons {
            reason_item(o, r);
        }
        let _ = writeln!(o, "</ul>");
        let _ = write!(o, "{}", charts.svg_of(&Kind::Locks(i)));
    }
}

fn reason_item(o: &mut String, r: &Reason) {
    let waived = r
        .waived
        .as_deref()
        .map(|w| format!(" — waived: {}", esc(w)))
        .unwrap_or_default();
    let _ =
        writeln!(
        o,
        "<li><b>{}</b> <code>{}</code> {}{}{waived}<br><span class=\"muted\">fix: {}</span></li>",
        r.severity.word(),
        esc(r.rule.as_str()),
        r.statement_line.map(|l| format!("line {l}: ")).unwrap_or_default(),
        esc(&r.message),
        esc(&r.hint)
    );
}

/// What the application probe saw: the workload, each probed patch's
/// lines, and the latency timelines.
fn probe_section(o: &mut String, report: &Report, charts: &Charts) {
    let Some(info) = &report.probe else {
        return;
    };
    let _ = writeln!(
        o,
        "<h2>What the application felt</h2><p class=\"muted\">{} queries, each {} / s, from {} sessions; a query is blocked when it waits on the patch past {:.3} s. Idle baseline: {:.1} s before each patch.</p>",
        info.queries.len(),
        info.rate_per_query,
        info.sessions,
        info.threshold_seconds,
        info.idle_seconds
    );
    for (i, p) in report.patches.iter().enumerate() {
        let lines = p.probe_lines();
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(
            o,
            "<h3><code>{}</code></h3><ul class=\"reasons\">",
            esc(&p.id)
        );
        for l in lines {
            let _ = writeln!(o, "<li>{}</li>", esc(l.trim_start()));
        }
        let _ = writeln!(o, "</ul>");
        let _ = write!(o, "{}", charts.svg_of(&Kind::Probe(i)));
    }
}

/// A heading and every chart of the kinds `wanted` picks, when there is one.
fn chart_section(o: &mut String, charts: &Charts, heading: &str, wanted: fn(&Kind) -> bool) {
    let chosen: Vec<_> = charts.all.iter().filter(|c| wanted(&c.kind)).collect();
    if !chosen.is_empty() {
        let _ = writeln!(o, "<h2>{heading}</h2>");
        for c in chosen {
            let _ = write!(o, "{}", charts.svg_of(&c.kind));
        }
    }
}

/// The runtime histogram and the server settings, then the end of the page.
fn histogram_and_settings(o: &mut String, report: &Report) {
    let _ = writeln!(
        o,
        "<h2>Runtime histogram</h2><table><tr><th>runtime</th><th>patches</th></tr>"
    );
    for ((label, _), n) in BUCKETS.iter().zip(histogram(report)) {
        let _ = writeln!(o, "<tr><td>{label}</td><td class=\"num\">{n}</td></tr>");
    }
    let _ = writeln!(
        o,
        "</table><h2>Server settings</h2><table><tr><th>setting</th><th>value</th></tr>"
    );
    for (k, v) in &report.postgres.settings {
        let _ = writeln!(
            o,
            "<tr><td><code>{}</code></td><td>{}</td></tr>",
            esc(k),
            esc(v)
        );
    }
    let _ = writeln!(o, "</table></body></html>");
}

fn strip_xml_header(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}
