//! GitHub Actions workflow commands: `::error`, `::warning` and `::notice`
//! annotations at the offending statement's line.

use std::fmt::Write;

use super::{PatchReport, Report};
use crate::verdict::Severity;

/// Escape a command's message.
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a command's property value.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(data("50% a\nb"), "50%25 a%0Ab");
        assert_eq!(property("a:b,c"), "a%3Ab%2Cc");
    }
}
