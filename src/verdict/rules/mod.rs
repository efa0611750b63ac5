//! Classification rules, one per file. Each has a stable id, a one-line
//! description and the safer recipe shown as its hint; `docs/rules.md`
//! documents the same, and `tests/fixtures/rules/<id>/` holds a bad and a good
//! patch for it.

mod attach_partition_scan;
mod blocking_index_build;
mod bulk_write;
mod declared_class;
mod held_lock_work;
mod invalid_index;
mod launchpad;
mod lock_timeout_missing;
mod long_lock;
pub mod measured_blocking;
mod predicted_failure;
mod set_not_null_scan;
mod table_rewrite;
mod validation_scan;

use serde::{Deserialize, Serialize};

use super::size::{Basis, Predicted, PredictedFrom, Size};
use super::ClassifyOptions;
use crate::measure::{PatchRun, StatementRun};
use crate::patch::{Patch, Statement};
use crate::pg::locks::LockMode;
use crate::pg::Relation;
pub use crate::rule_id::RuleId;

/// What a reason does to the patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Context only.
    Note,
    /// Live, but risky as written.
    Warning,
    /// Makes the patch cold.
    Cold,
    /// Fails the patch.
    Error,
}

impl Severity {
    /// The severity as reports spell it.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Cold => "cold",
            Severity::Error => "error",
        }
    }
}

/// Why a patch is classified as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub rule: RuleId,
    pub severity: Severity,
    pub statement_line: Option<usize>,
    pub relation: Option<String>,
    pub lock_mode: Option<LockMode>,
    pub message: String,
    pub hint: String,
    /// Set when a `-- downtime: allow RULE because …` waiver covers it: the
    /// waiver's reason. A waived reason does not count.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub waived: Option<String>,
    /// The size of the table that decided it, and where that size comes
    /// from (staging, production statistics, unknown).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub size: Option<Size>,
}

impl Reason {
    /// With the size that decided it; a size that is unknown says so, and
    /// how to make it known, at the end of the message.
    pub fn sized(mut self, size: &Size) -> Reason {
        if size.basis == Basis::Unknown {
            self.message
                .push_str(&format!("; {}", super::size::UNKNOWN_ADVICE));
        }
        self.size = Some(size.clone());
        self
    }

    /// With the size that decided it, and the time the work that took
    /// `seconds` here takes at production's size, when that can be told.
    pub fn sized_work(mut self, size: &Size, predicted: Option<Predicted>, seconds: f64) -> Reason {
        if let Some(p) = predicted {
            let from = match p.from {
                PredictedFrom::StagingRows => "",
                PredictedFrom::ServerCosts => ", from this server's cost of such work",
            };
            self.message.push_str(&format!(
                "; about {} at production's size ({:.3} s here{from})",
                seconds_text(p.seconds),
                seconds
            ));
        }
        let mut size = size.clone();
        size.production_seconds = predicted.map(|p| p.seconds);
        self.sized(&size)
    }

    /// Counts towards the class and the verdict.
    pub fn counts(&self) -> bool {
        self.waived.is_none()
    }
}

/// A rule's documentation.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RuleInfo {
    pub id: RuleId,
    pub severity: Severity,
    /// What the rule detects, in one line.
    pub summary: &'static str,
    /// The PostgreSQL behaviour behind it.
    pub why: &'static str,
    /// The safer way to do it, in one line.
    pub recipe: &'static str,
    /// What the probe (`--probe`) measures of its bad fixture.
    pub measured: Measured,
}

/// What simulated application traffic shows of a rule's bad fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measured {
    /// Its work blocks application queries on the relation the rule names
    /// for as long as it lasts; the good fixtures' does not.
    Stalls,
    /// It does not block the application by itself: why.
    NotByItself(&'static str),
}

impl Measured {
    /// The sentence the rule's page gives it.
    pub fn text(self) -> String {
        match self {
            Measured::Stalls => "With --probe, the bad fixtures keep application queries on the relation the rule names waiting past the threshold, and the good ones do not (tests/probe.rs checks both on a larger copy of the fixtures' baseline).".into(),
            Measured::NotByItself(why) => format!("Not by itself: {why}. With --probe its bad fixtures keep no application query waiting past the threshold unless a rule that measures a stall fires on them too (tests/probe.rs checks this)."),
        }
    }
}

impl RuleInfo {
    pub fn reason(
        &self,
        statement_line: Option<usize>,
        relation: Option<&str>,
        lock_mode: Option<LockMode>,
        message: String,
    ) -> Reason {
        Reason {
            rule: self.id,
            severity: self.severity,
            statement_line,
            relation: relation.map(str::to_string),
            lock_mode,
            message,
            hint: self.recipe.to_string(),
            waived: None,
            size: None,
        }
    }
}

/// Every rule, in the order reasons are reported.
pub const RULES: &[RuleInfo] = &[
    table_rewrite::INFO,
    blocking_index_build::INFO,
    validation_scan::INFO,
    set_not_null_scan::INFO,
    attach_partition_scan::INFO,
    bulk_write::INFO,
    held_lock_work::INFO,
    long_lock::INFO,
    lock_timeout_missing::INFO,
    measured_blocking::INFO,
    launchpad::ALTER_TABLE,
    launchpad::TRIGGER,
    launchpad::REFERENCES,
    invalid_index::INFO,
    predicted_failure::INFO,
    declared_class::LIVE_BUT_COLD,
    declared_class::COLD_BUT_LIVE,
];

/// Look a rule up by id.
pub fn rule(id: &str) -> Option<&'static RuleInfo> {
    let id: RuleId = id.parse().ok()?;
    info(id)
}

/// The documentation of a rule.
pub fn info(id: RuleId) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.id == id)
}

/// A lock held while a statement ran.
#[derive(Debug, Clone, Copy)]
pub struct Held<'a> {
    pub relation: &'a Relation,
    pub mode: LockMode,
    /// Line of the statement that took it.
    pub taken_at: usize,
}

/// The tables a validation scanned under a lock that blocks the
/// application.
pub struct Scanned<'a> {
    /// The table the statement names (a partitioned table's leaves are
    /// what is scanned).
    pub named: &'a Relation,
    /// The strongest such lock on them.
    pub lock: Held<'a>,
    /// Each scanned table with its judged size.
    pub tables: Vec<(&'a Relation, Size)>,
}

impl Scanned<'_> {
    /// "public.payment (50 000 rows)", "3 partitions of public.m (…)".
    pub fn describe(&self) -> String {
        match &self.tables[..] {
            [(t, size)] if t.oid == self.named.oid => format!("{} ({})", t.name, size.describe()),
            [(t, size)] => format!(
                "{}, partition of {} ({})",
                t.name,
                self.named.name,
                size.describe()
            ),
            many => {
                let parts: Vec<String> = many
                    .iter()
                    .map(|(t, size)| format!("{}: {}", t.name, size.describe()))
                    .collect();
                format!(
                    "{} partitions of {} ({})",
                    many.len(),
                    self.named.name,
                    parts.join("; ")
                )
            }
        }
    }

    /// `info`'s reason for this scan at the statement's line: the named
    /// table, the lock, `message`, the size that decided and the time at
    /// production's size.
    pub fn reason(&self, cx: &StatementContext<'_>, info: &RuleInfo, message: String) -> Reason {
        info.reason(
            Some(cx.statement.line),
            Some(&self.named.name),
            Some(self.lock.mode),
            message,
        )
        .sized_work(self.deciding(), self.predict(cx), cx.measured.seconds)
    }

    /// The scan's time at production's size, over every table it read.
    pub fn predict(&self, cx: &StatementContext<'_>) -> Option<Predicted> {
        let sizes: Vec<&Size> = self.tables.iter().map(|(_, s)| s).collect();
        cx.options
            .sizes
            .predict_many(&sizes, crate::estimate::WorkKind::Scan, cx.measured.seconds)
    }

    /// The size that decided: the largest scanned table's, an unknown one
    /// first.
    pub fn deciding(&self) -> &Size {
        let unknown = self.tables.iter().find(|(_, s)| s.basis == Basis::Unknown);
        let largest = self
            .tables
            .iter()
            .max_by(|a, b| a.1.rows().total_cmp(&b.1.rows()));
        &unknown
            .or(largest)
            .expect("a scan names at least one table")
            .1
    }
}

/// What a statement-level rule sees.
pub struct StatementContext<'a> {
    pub patch: &'a Patch,
    pub run: &'a PatchRun,
    pub statement: &'a Statement,
    pub measured: &'a StatementRun,
    pub options: &'a ClassifyOptions,
}

impl<'a> StatementContext<'a> {
    /// The pre-existing relation a name in the statement resolved to.
    pub fn resolved(&self, name: &crate::patch::RelRef) -> Option<&'a Relation> {
        let oid = (*self.measured.pre.resolved.get(&name.to_string())?)?;
        self.run.snapshot.get(oid)
    }

    /// The size `rel` is judged at.
    pub fn size(&self, rel: &Relation) -> Size {
        self.options.sizes.of(rel, &self.patch.small_tables)
    }

    /// The statement's time at production's size, for work of `kind` over
    /// a table of `size`.
    pub fn predict(&self, size: &Size, kind: crate::estimate::WorkKind) -> Option<Predicted> {
        self.options
            .sizes
            .predict(size, kind, self.measured.seconds)
    }

    /// A pre-existing table (not an index) that holds rows where the patch
    /// will run (or may: its size unknown), with its judged size.
    pub fn populated_table(&self, oid: u32) -> Option<(&'a Relation, Size)> {
        let rel = self.run.snapshot.get(oid).filter(|r| r.is_table())?;
        let size = self.size(rel);
        size.has_rows().then_some((rel, size))
    }

    /// Whether the statement read `oid` (a validation scan ran): pages
    /// read, or a sequential scan started (which counts on an empty table
    /// too). Where the counters could not be read (outside a transaction),
    /// PostgreSQL's documented behaviour stands: the scan is assumed.
    pub fn scanned(&self, oid: u32) -> bool {
        self.measured
            .scanned_blocks
            .get(&oid)
            .is_none_or(|r| r.scanned())
    }

    /// For a statement that validates `rel`: the tables it scanned that
    /// existed before the patch and hold rows where it will run — `rel`
    /// itself, or the leaf partitions of a partitioned `rel` — while a lock
    /// that blocks the application was held on them, with that lock.
    pub fn scanned_under_blocking_lock(&self, rel: &crate::patch::RelRef) -> Option<Scanned<'a>> {
        let named = self.resolved(rel).filter(|r| r.is_table())?;
        let leaves: Vec<u32> = match self.measured.pre.partitions.get(&named.oid) {
            Some(parts) if named.kind == 'p' => parts.clone(),
            _ => vec![named.oid],
        };
        let mut tables = Vec::new();
        let mut lock: Option<Held<'a>> = None;
        for oid in leaves {
            let Some((table, size)) = self.populated_table(oid) else {
                continue;
            };
            if !self.scanned(oid) {
                continue;
            }
            let Some(held) = self.blocking_lock_for(oid) else {
                continue;
            };
            if lock.is_none_or(|l| held.mode > l.mode) {
                lock = Some(held);
            }
            tables.push((table, size));
        }
        Some(Scanned {
            named,
            lock: lock?,
            tables,
        })
    }

    /// Line of the statement that first took `mode` on `oid` in this patch.
    fn taken_at(&self, oid: u32, mode: LockMode) -> usize {
        self.run.statements[..=self.position()]
            .iter()
            .rev()
            .find(|s| s.locks.iter().any(|l| l.oid == oid && l.mode == mode))
            .map_or(self.statement.line, |s| self.patch.statements[s.index].line)
    }

    fn position(&self) -> usize {
        self.run
            .statements
            .iter()
            .position(|s| s.index == self.measured.index)
            .unwrap_or(0)
    }

    /// Locks held while the statement ran that block the application, on
    /// pre-existing tables that have rows. Strongest first.
    pub fn blocking_locks(&self) -> Vec<Held<'a>> {
        let mut pairs: Vec<(u32, LockMode)> = self.measured.held.clone();
        if self.measured.outside_transaction {
            pairs.extend(self.measured.locks.iter().map(|l| (l.oid, l.mode)));
        }
        let mut held: Vec<Held<'a>> = pairs
            .into_iter()
            .filter(|(_, mode)| mode.blocks_application())
            .filter_map(|(oid, mode)| {
                let (relation, _) = self.populated_table(oid)?;
                Some(Held {
                    relation,
                    mode,
                    taken_at: self.taken_at(oid, mode),
                })
            })
            .collect();
        held.sort_by(|a, b| {
            b.mode
                .cmp(&a.mode)
                .then(a.relation.name.cmp(&b.relation.name))
        });
        held
    }

    /// The blocking lock to cite for work on `oid`: one on that relation if
    /// any, otherwise the strongest.
    pub fn blocking_lock_for(&self, oid: u32) -> Option<Held<'a>> {
        let held = self.blocking_locks();
        held.iter()
            .find(|h| h.relation.oid == oid)
            .or(held.first())
            .copied()
    }

    /// "ACCESS EXCLUSIVE on bug (taken at line 3)" for a message.
    pub fn describe_lock(&self, h: &Held<'_>) -> String {
        let origin = if h.taken_at == self.statement.line {
            String::new()
        } else {
            format!(", taken at line {} and still held", h.taken_at)
        };
        format!(
            "{} on {}{origin}, which {}",
            h.mode,
            h.relation.name,
            h.mode.effect()
        )
    }
}

/// "4.4 s", "12 min", "3.1 h".
pub fn seconds_text(s: f64) -> String {
    if s >= 7200.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 120.0 {
        format!("{:.0} min", s / 60.0)
    } else if s >= 10.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.2} s")
    }
}

/// Human-readable size.
pub fn bytes(n: i64) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GiB", n / (1024.0 * 1024.0 * 1024.0))
    } else if n >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else if n >= 1024.0 {
        format!("{:.0} KiB", n / 1024.0)
    } else {
        format!("{n:.0} B")
    }
}

/// Run every statement-level rule on one statement.
pub fn check_statement(cx: &StatementContext<'_>) -> Vec<Reason> {
    let mut out = Vec::new();
    out.extend(table_rewrite::check(cx));
    out.extend(blocking_index_build::check(cx));
    out.extend(validation_scan::check(cx));
    out.extend(set_not_null_scan::check(cx));
    out.extend(attach_partition_scan::check(cx));
    out.extend(bulk_write::check(cx));
    out.extend(predicted_failure::check(cx));
    // Work another rule of this statement already calls cold (a
    // validation of every partition under the ADD's lock) is not news.
    if !out.iter().any(|r| r.severity == Severity::Cold) {
        out.extend(held_lock_work::check(cx));
    }
    if cx.options.launchpad_rules() {
        out.extend(launchpad::check(cx));
    }
    out
}

/// Rules over the whole patch.
pub fn check_patch(
    patch: &Patch,
    run: &PatchRun,
    options: &ClassifyOptions,
    statement_reasons: &[Reason],
) -> Vec<Reason> {
    let explained: Vec<String> = statement_reasons
        .iter()
        .filter(|r| r.severity == Severity::Cold && r.counts())
        .filter_map(|r| r.relation.clone())
        .collect();
    let mut out = long_lock::check(patch, run, options, &explained);
    out.extend(invalid_index::check(run));
    out
}

pub(crate) use declared_class::check as check_declared;
pub(crate) use lock_timeout_missing::check as check_lock_timeout;
