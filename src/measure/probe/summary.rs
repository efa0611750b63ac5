//! What the application felt during one patch, from the probe's samples:
//! latency against the idle baseline, the queries a lock of the patch
//! blocked (by relation and by statement), and the lock queue behind a
//! long-running reader.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::workload::{Kind, ProbeQuery};
use super::{Recording, Sample, Wanted};
use crate::measure::StatementRun;
use crate::patch::Patch;
use crate::pg::locks::LockMode;

/// At most this many points of the latency timeline are kept per patch
/// (every blocked or failed query, then an even share of the others).
const TIMELINE_POINTS: usize = 800;

/// What the probe saw while one patch applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchProbe {
    /// Queries sent while the patch applied.
    pub queries: u64,
    /// Of those, the ones that waited on a lock of the patch longer than
    /// the threshold, or for a session while every session did.
    pub blocked_queries: u64,
    /// Of the blocked ones, those that waited for a free session.
    #[serde(default)]
    pub queued_queries: u64,
    /// Queries the server refused (a table gone or renamed, say).
    pub failed_queries: u64,
    /// The longest any query took, waiting included.
    pub max_wait_seconds: f64,
    pub p50_seconds: f64,
    pub p99_seconds: f64,
    /// The same workload just before the patch.
    pub idle_queries: u64,
    pub idle_p50_seconds: f64,
    pub idle_p99_seconds: f64,
    pub threshold_seconds: f64,
    /// Where queries were blocked, worst first.
    pub by_relation: Vec<RelationStall>,
    /// Per statement that ran while queries were sent.
    pub statements: Vec<StatementProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_query: Option<LongQueryWait>,
    /// The server's messages for failed queries, with counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<(String, u64)>,
    /// The probe could not run entirely as asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Seconds the patch's window lasted.
    pub window_seconds: f64,
    /// Latency over time, for charts.
    pub timeline: Vec<ProbePoint>,
}

impl PatchProbe {
    /// The probe could not record this patch.
    pub fn failed(problem: String) -> PatchProbe {
        PatchProbe {
            queries: 0,
            blocked_queries: 0,
            queued_queries: 0,
            failed_queries: 0,
            max_wait_seconds: 0.0,
            p50_seconds: 0.0,
            p99_seconds: 0.0,
            idle_queries: 0,
            idle_p50_seconds: 0.0,
            idle_p99_seconds: 0.0,
            threshold_seconds: 0.0,
            by_relation: Vec::new(),
            statements: Vec::new(),
            long_query: None,
            errors: Vec::new(),
            problem: Some(problem),
            window_seconds: 0.0,
            timeline: Vec::new(),
        }
    }
}

/// Queries blocked on one relation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationStall {
    pub relation: String,
    pub reads_blocked: u64,
    pub writes_blocked: u64,
    /// The longest a blocked read (write) waited.
    pub reads_blocked_seconds: f64,
    pub writes_blocked_seconds: f64,
    /// The patch's lock on the relation (None for a row it wrote).
    pub lock_mode: Option<LockMode>,
    /// The lock modes the blocked queries asked for (SQL names), or `row`.
    pub waited_for: Vec<String>,
    /// The statement of the patch that held or queued the lock.
    pub statement_line: Option<usize>,
}

/// The probe during one statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementProbe {
    pub statement_line: usize,
    /// When the statement started and how long it ran, on the probe's
    /// clock (seconds from the start of the patch).
    #[serde(default)]
    pub at_seconds: f64,
    #[serde(default)]
    pub seconds: f64,
    pub queries: u64,
    pub blocked_queries: u64,
    pub max_wait_seconds: f64,
}

/// A statement that waited for the long-running reader, and the queue of
/// application queries behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LongQueryWait {
    pub tables: Vec<String>,
    pub statement_line: usize,
    /// How long the statement ran (mostly waiting for the reader).
    pub waited_seconds: f64,
    /// Application queries that waited behind it.
    pub queued_queries: u64,
    pub max_queued_wait_seconds: f64,
    /// `lock_timeout` in effect for the statement (`0`: none).
    pub lock_timeout: String,
}

/// One query on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbePoint {
    /// Seconds from the start of the patch (negative: idle baseline).
    pub at: f64,
    pub latency: f64,
    pub kind: Kind,
    pub blocked: bool,
    #[serde(default)]
    pub failed: bool,
}

/// A statement's span on the monotonic clock.
struct Span {
    line: usize,
    index: usize,
    start: Instant,
    end: Instant,
}

/// Summarise `rec` for `patch`, whose statements ran as `statements`.
pub fn summarise(
    rec: &Recording,
    queries: &[ProbeQuery],
    patch: &Patch,
    statements: &[StatementRun],
    threshold: f64,
) -> PatchProbe {
    let spans: Vec<Span> = statements
        .iter()
        .filter_map(|s| {
            let start = s.started?;
            Some(Span {
                line: patch.statements.get(s.index).map_or(0, |st| st.line),
                index: s.index,
                start,
                end: start + std::time::Duration::from_secs_f64(s.seconds.max(0.0)),
            })
        })
        .collect();
    let (idle, during): (Vec<&Sample>, Vec<&Sample>) =
        rec.samples.iter().partition(|s| s.due < rec.patch_start);
    // Only waiting while a statement ran counts against the patch: between
    // statements its locks are held while downtime traces, which applying
    // it without downtime would not do.
    let patch_wait = |s: &Sample| -> f64 {
        spans
            .iter()
            .map(|sp| {
                let from = s.due.max(sp.start);
                let to = s.ended.min(sp.end);
                to.saturating_duration_since(from).as_secs_f64()
            })
            .sum()
    };
    let waited_on_lock = |s: &Sample| {
        s.error.is_none()
            && patch_wait(s) > threshold
            && s.lock.as_ref().is_some_and(|l| l.behind_patch)
    };
    // Queries that found every session blocked waited for one: behind the
    // patch too, as requests wait for a pooled connection.
    let held_up: Vec<(Instant, Instant)> = rec
        .samples
        .iter()
        .filter(|s| waited_on_lock(s))
        .map(|s| (s.started, s.ended))
        .collect();
    let queued = |s: &Sample| {
        s.error.is_none()
            && s.lock.is_none()
            && patch_wait(s) > threshold
            && s.started.saturating_duration_since(s.due).as_secs_f64() > threshold / 2.0
            && held_up.iter().any(|(a, b)| *a < s.started && *b > s.due)
    };
    let blocked = |s: &Sample| waited_on_lock(s) || queued(s);
    let ok_latencies = |v: &[&Sample]| -> Vec<f64> {
        let mut l: Vec<f64> = v
            .iter()
            .filter(|s| s.error.is_none())
            .map(|s| s.latency())
            .collect();
        l.sort_by(f64::total_cmp);
        l
    };
    let (idle_l, during_l) = (ok_latencies(&idle), ok_latencies(&during));
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for s in &during {
        if let Some(e) = &s.error {
            *errors.entry(e.clone()).or_default() += 1;
        }
    }
    let mut errors: Vec<(String, u64)> = errors.into_iter().collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.1));
    errors.truncate(5);
    let stalls: Vec<&Sample> = during.iter().copied().filter(|s| blocked(s)).collect();
    PatchProbe {
        queries: during.len() as u64,
        blocked_queries: stalls.len() as u64,
        queued_queries: stalls.iter().filter(|s| s.lock.is_none()).count() as u64,
        failed_queries: during.iter().filter(|s| s.error.is_some()).count() as u64,
        max_wait_seconds: during_l.last().copied().unwrap_or(0.0),
        p50_seconds: percentile(&during_l, 0.50),
        p99_seconds: percentile(&during_l, 0.99),
        idle_queries: idle_l.len() as u64,
        idle_p50_seconds: percentile(&idle_l, 0.50),
        idle_p99_seconds: percentile(&idle_l, 0.99),
        threshold_seconds: threshold,
        by_relation: by_relation(&stalls, queries, &spans, statements),
        statements: per_statement(&during, &spans, &blocked, rec.patch_start),
        long_query: long_query(rec, &stalls, &spans, statements),
        errors,
        problem: rec.problem.clone(),
        window_seconds: rec
            .patch_end
            .saturating_duration_since(rec.patch_start)
            .as_secs_f64(),
        timeline: timeline(rec, queries, &blocked),
    }
}

/// Nearest-rank percentile of sorted values (0 for none).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The statement running at `t`: the last one started by then (the first
/// when none had).
fn at_time(spans: &[Span], t: Instant) -> Option<&Span> {
    spans
        .iter()
        .rev()
        .find(|s| s.start <= t)
        .or_else(|| spans.first())
}

/// The statement that took the patch's lock on `relation`, by `t`: the
/// last one up to then whose trace shows it taking one, else the one
/// running then.
fn holder(
    spans: &[Span],
    statements: &[StatementRun],
    relation: &str,
    t: Instant,
) -> Option<usize> {
    spans
        .iter()
        .rev()
        .filter(|sp| sp.start <= t)
        .find(|sp| {
            statements
                .iter()
                .find(|s| s.index == sp.index)
                .is_some_and(|s| s.locks.iter().any(|l| l.relation == relation))
        })
        .or_else(|| at_time(spans, t))
        .map(|sp| sp.line)
}

fn by_relation(
    stalls: &[&Sample],
    queries: &[ProbeQuery],
    spans: &[Span],
    statements: &[StatementRun],
) -> Vec<RelationStall> {
    let mut out: Vec<RelationStall> = Vec::new();
    // Queries that only waited for a session are counted, not placed.
    for s in stalls.iter().filter(|s| s.lock.is_some()) {
        let lock = s.lock.as_ref();
        let relation = lock
            .and_then(|l| l.relation.clone())
            .or_else(|| queries.get(s.query).and_then(|q| q.relation.clone()))
            .unwrap_or_else(|| "(the application's own queries)".into());
        let i = match out.iter().position(|r| r.relation == relation) {
            Some(i) => i,
            None => {
                let statement_line =
                    lock.and_then(|l| holder(spans, statements, &relation, l.seen));
                out.push(RelationStall {
                    relation,
                    reads_blocked: 0,
                    writes_blocked: 0,
                    reads_blocked_seconds: 0.0,
                    writes_blocked_seconds: 0.0,
                    lock_mode: None,
                    waited_for: Vec::new(),
                    statement_line,
                });
                out.len() - 1
            }
        };
        let r = &mut out[i];
        let wait = s.latency();
        let reads = queries.get(s.query).is_some_and(|q| q.kind == Kind::Read);
        if reads {
            r.reads_blocked += 1;
            r.reads_blocked_seconds = r.reads_blocked_seconds.max(wait);
        } else {
            r.writes_blocked += 1;
            r.writes_blocked_seconds = r.writes_blocked_seconds.max(wait);
        }
        let waited = match lock.map(|l| l.wanted) {
            Some(Wanted::Table(m)) => m.sql_name(),
            _ => "row",
        };
        if !r.waited_for.iter().any(|w| w == waited) {
            r.waited_for.push(waited.to_string());
        }
        if let Some(l) = lock {
            if r.lock_mode < l.patch_mode {
                r.lock_mode = l.patch_mode;
            }
            if r.statement_line.is_none() {
                r.statement_line = holder(spans, statements, &r.relation, l.seen);
            }
        }
    }
    out.sort_by(|a, b| {
        let worst = |r: &RelationStall| r.reads_blocked_seconds.max(r.writes_blocked_seconds);
        worst(b).total_cmp(&worst(a))
    });
    out
}

fn per_statement(
    during: &[&Sample],
    spans: &[Span],
    blocked: &dyn Fn(&Sample) -> bool,
    patch_start: Instant,
) -> Vec<StatementProbe> {
    let mut out: Vec<StatementProbe> = spans
        .iter()
        .map(|sp| StatementProbe {
            statement_line: sp.line,
            at_seconds: sp
                .start
                .saturating_duration_since(patch_start)
                .as_secs_f64(),
            seconds: sp.end.saturating_duration_since(sp.start).as_secs_f64(),
            queries: 0,
            blocked_queries: 0,
            max_wait_seconds: 0.0,
        })
        .collect();
    for s in during {
        // A blocked query belongs to the statement seen holding it up;
        // others to the statement running when they were due.
        let t = s
            .lock
            .as_ref()
            .filter(|_| blocked(s))
            .map_or(s.due, |l| l.seen);
        let Some(pos) =
            at_time(spans, t).and_then(|sp| spans.iter().position(|x| x.index == sp.index))
        else {
            continue;
        };
        let o = &mut out[pos];
        o.queries += 1;
        if blocked(s) {
            o.blocked_queries += 1;
        }
        if s.error.is_none() {
            o.max_wait_seconds = o.max_wait_seconds.max(s.latency());
        }
    }
    out
}

/// The statement that waited for the long reader, and its queue.
fn long_query(
    rec: &Recording,
    stalls: &[&Sample],
    spans: &[Span],
    statements: &[StatementRun],
) -> Option<LongQueryWait> {
    if rec.long_tables.is_empty() {
        return None;
    }
    let waited = rec.patch_waits.iter().find(|w| w.behind_long_query)?;
    let span = at_time(spans, waited.seen)?;
    let end = span.end + std::time::Duration::from_millis(50);
    let queued: Vec<&&Sample> = stalls
        .iter()
        .filter(|s| {
            let t = s.lock.as_ref().map_or(s.due, |l| l.seen);
            t >= span.start && t <= end
        })
        .collect();
    // The statement was granted its lock when the reader's transaction
    // ended; a reader still running when the patch ended (it gave up at its
    // lock_timeout, say) was waited for the whole statement.
    let granted = rec
        .long_released
        .filter(|r| *r > span.start)
        .map_or(span.end, |r| r.min(span.end));
    Some(LongQueryWait {
        tables: rec.long_tables.clone(),
        statement_line: span.line,
        waited_seconds: granted.saturating_duration_since(span.start).as_secs_f64(),
        queued_queries: queued.len() as u64,
        max_queued_wait_seconds: queued.iter().map(|s| s.latency()).fold(0.0, f64::max),
        lock_timeout: statements
            .iter()
            .find(|s| s.index == span.index)
            .map_or_else(|| "0".into(), |s| s.lock_timeout.clone()),
    })
}

/// The statement that waited for the long reader did not hold the locks it
/// waited for while it waited: their hold starts when they were granted.
/// Locks it took on other tables before it queued stay as they are: they
/// were held, and blocked, all along.
pub fn lock_waits(run: &mut crate::measure::PatchRun, patch: &Patch) {
    let Some(lq) = run.probe.as_ref().and_then(|p| p.long_query.clone()) else {
        return;
    };
    for sr in &mut run.statements {
        if patch.statements.get(sr.index).map(|s| s.line) != Some(lq.statement_line) {
            continue;
        }
        for lock in &mut sr.locks {
            if lq.tables.contains(&lock.relation) {
                let waited = lq.waited_seconds.min(lock.held_seconds);
                lock.held_seconds -= waited;
                lock.waited_seconds = waited;
            }
        }
    }
}

fn timeline(
    rec: &Recording,
    queries: &[ProbeQuery],
    blocked: &dyn Fn(&Sample) -> bool,
) -> Vec<ProbePoint> {
    let notable = |s: &Sample| blocked(s) || s.error.is_some();
    let others = rec.samples.iter().filter(|s| !notable(s)).count();
    let room = TIMELINE_POINTS
        .saturating_sub(rec.samples.len() - others)
        .max(1);
    let step = others.div_ceil(room).max(1);
    let mut k = 0usize;
    let mut out = Vec::new();
    for s in &rec.samples {
        if !notable(s) {
            k += 1;
            if k % step != 0 {
                continue;
            }
        }
        let at = if s.due >= rec.patch_start {
            s.due.duration_since(rec.patch_start).as_secs_f64()
        } else {
            -rec.patch_start.duration_since(s.due).as_secs_f64()
        };
        out.push(ProbePoint {
            at,
            latency: s.latency(),
            kind: queries.get(s.query).map_or(Kind::Script, |q| q.kind),
            blocked: blocked(s),
            failed: s.error.is_some(),
        });
    }
    out.sort_by(|a, b| a.at.total_cmp(&b.at));
    out
}
