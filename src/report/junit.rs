//! JUnit XML: one test suite per run, one test case per patch, in the shape
//! Jenkins and GitLab read (validated against `tests/fixtures/junit.xsd`).
//! Foreign text is escaped by [`crate::escape::xml`]: no character XML 1.0
//! forbids is written.

use std::fmt::Write;

use super::{PatchReport, Report, Status};
use crate::escape::xml as xml_escape;
use crate::verdict::Severity;

pub fn render(report: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    suite_open(&mut out, report);
    properties(&mut out, report);
    for p in &report.patches {
        testcase(&mut out, p);
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// The `<testsuites>` and `<testsuite>` start tags with their counts.
fn suite_open(out: &mut String, report: &Report) {
    let tests = report.patches.len();
    let failures = report
        .patches
        .iter()
        .filter(|p| !p.failures.is_empty())
        .count();
    let skipped = report
        .patches
        .iter()
        .filter(|p| p.status == Status::Skipped)
        .count();
    let _ = writeln!(
        out,
        "<testsuites name=\"downtime\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.6}\">",
        report.total_seconds
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"downtime check\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.6}\" timestamp=\"{}\">",
        report.total_seconds,
        xml_escape(report.started_at.trim_end_matches('Z'))
    );
}

/// The server, the profile, the verdict and the server settings as
/// `<properties>`.
fn properties(out: &mut String, report: &Report) {
    let _ = writeln!(out, "    <properties>");
    let mut props = vec![
        (
            "postgres.version".to_string(),
            report.postgres.version.clone(),
        ),
        (
            "postgres.backend".to_string(),
            report.postgres.backend.clone(),
        ),
        (
            "policy.profile".to_string(),
            report.policy.profile.to_string(),
        ),
        ("verdict".to_string(), report.verdict.to_string()),
    ];
    if let Some(i) = &report.postgres.image {
        props.push((
            "postgres.image".to_string(),
            format!("{} {}", i.reference, i.id),
        ));
    }
    props.extend(
        report
            .postgres
            .settings
            .iter()
            .map(|(k, v)| (format!("postgres.{k}"), v.clone())),
    );
    for (k, v) in props {
        let _ = writeln!(
            out,
            "      <property name=\"{}\" value=\"{}\"/>",
            xml_escape(&k),
            xml_escape(&v)
        );
    }
    let _ = writeln!(out, "    </properties>");
}

/// One `<testcase>`: skipped or failed with its reasons, and its class,
/// estimate and reasons as `<system-out>`.
fn testcase(out: &mut String, p: &PatchReport) {
    let class = p.classification.map_or("not run".into(), |c| c.to_string());
    let _ = write!(
        out,
        "    <testcase name=\"{}\" classname=\"downtime.{}\" time=\"{:.6}\" file=\"{}\">",
        xml_escape(&p.id),
        xml_escape(&class.replace(' ', "_")),
        p.seconds,
        xml_escape(&p.path)
    );
    if p.status == Status::Skipped {
        let _ = write!(
            out,
            "\n      <skipped message=\"{}\"/>",
            xml_escape(p.skipped_because.as_deref().unwrap_or("skipped"))
        );
    } else if !p.failures.is_empty() {
        failure(out, p);
    }
    let _ = write!(
        out,
        "\n      <system-out>{}</system-out>",
        xml_escape(&system_out(p, &class))
    );
    out.push_str("\n    </testcase>\n");
}

/// The `<failure>` of a failing patch: its kind, its failures and the
/// reasons that count.
fn failure(out: &mut String, p: &PatchReport) {
    let kind = if p.error.is_some() {
        "failed"
    } else if p.status == Status::PredictedFailure {
        "predicted-failure"
    } else if p.over_budget {
        "over-budget"
    } else {
        "policy"
    };
    let mut text = p.failures.join("\n");
    for line in p.failed_run_lines() {
        let _ = write!(text, "\n{line}");
    }
    for r in p
        .reasons
        .iter()
        .filter(|r| r.severity >= Severity::Cold && r.counts())
    {
        let _ = write!(
            text,
            "\n[{}] line {}: {}",
            r.rule,
            r.statement_line.unwrap_or(0),
            r.message
        );
    }
    let _ = write!(
        out,
        "\n      <failure message=\"{}\" type=\"{kind}\">{}</failure>",
        xml_escape(&p.failures[0]),
        xml_escape(&text)
    );
}

/// The patch's class, seconds, estimate, every reason and what the
/// application probe saw, one per line.
fn system_out(p: &PatchReport, class: &str) -> String {
    let mut system_out = format!("class: {class}; seconds: {:.6}", p.seconds);
    if let Some(e) = p.estimate_text() {
        let _ = write!(system_out, "\nestimate: {e}");
    }
    for r in &p.reasons {
        let _ = write!(
            system_out,
            "\n{} [{}] line {}: {}",
            r.severity.word(),
            r.rule,
            r.statement_line.unwrap_or(0),
            r.message
        );
    }
    for line in p.probe_lines() {
        let _ = write!(system_out, "\n{}", line.trim_start());
    }
    system_out
}
