//! GitHub Actions workflow commands: `::error`, `::warning` and `::notice`
//! annotations at the offending statement's line. The only workflow
//! commands downtime prints; foreign text in them is command data or a
//! property value, escaped as GitHub escapes them.

use std::fmt::Write;

use super::{PatchReport, Report};
use crate::escape::{command_data as data, command_property as property};
use crate::verdict::Severity;

fn line_of(p: &PatchReport) -> usize {
    p.error
        .as_ref()
        .map(|e| e.line)
        .or_else(|| {
            p.reasons
                .iter()
                .filter(|r| r.counts() && r.severity >= Severity::Cold)
                .find_map(|r| r.statement_line)
        })
        .unwrap_or(1)
}

fn command(out: &mut String, level: &str, p: &PatchReport, line: usize, title: &str, msg: &str) {
    let _ = writeln!(
        out,
        "::{level} file={},line={line},title={}::{}",
        property(&p.path),
        property(title),
        data(msg)
    );
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for p in &report.patches {
        for f in &p.failures {
            command(
                &mut out,
                "error",
                p,
                line_of(p),
                &format!("downtime: {}", p.id),
                f,
            );
        }
        for r in p.reasons.iter().filter(|r| r.counts()) {
            let level = match r.severity {
                Severity::Error => continue, // already among the failures
                Severity::Cold => "notice",
                Severity::Warning => "warning",
                Severity::Note => continue,
            };
            let msg = format!("{} — fix: {}", r.message, r.hint);
            command(
                &mut out,
                level,
                p,
                r.statement_line.unwrap_or(1),
                &format!("downtime {}: {}", r.severity.word(), r.rule),
                &msg,
            );
        }
        for w in &p.warnings {
            command(&mut out, "warning", p, 1, &format!("downtime: {}", p.id), w);
        }
    }
    out
}
