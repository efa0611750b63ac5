//! The classifier on hand-built measurements, without a server: for every
//! rule, a case where it fires (rule id, severity, relation, lock mode and the
//! resulting class) and a close case where it does not.

use std::collections::HashMap;

use downtime::estimate::ProdStats;
use downtime::measure::probe::{PatchProbe, RelationStall};
use downtime::measure::{LockHeld, PatchRun, PreCheck, Relation, Rewrite, Snapshot, StatementRun};
use downtime::patch::discover::{Layout, Position};
use downtime::patch::{Class, Patch, PatchFile};
use downtime::pg::LockMode;
use downtime::pg::LockMode::*;
use downtime::verdict::size::{Basis, Sizes};
use downtime::verdict::{classify, Classification, ClassifyOptions, Profile, Reason, Severity};
use Severity::{Error, Note, Warning};

const BUG: u32 = 16_401;
const PERSON: u32 = 16_402;
const EVENTS: u32 = 16_403;
const EVENTS_2024: u32 = 16_404;
const BUG_HEAT_IDX: u32 = 16_405;

// Builders.

/// A patch read from a file holding `sql`.
fn patch(sql: &str) -> Patch {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0001-test.sql");
    std::fs::write(&path, sql).unwrap();
    downtime::patch::load(PatchFile {
        path,
        id: "0001-test".into(),
        layout: Layout::Numbered,
        position: Position(vec![1]),
    })
    .unwrap()
}

fn relation(oid: u32, name: &str, kind: char, rows: f64) -> Relation {
    Relation {
        oid,
        name: format!("public.{name}"),
        kind,
        filenode: oid,
        rows,
        bytes: (rows * 100.0) as i64,
        table: None,
        valid: true,
    }
}

/// The database before the patch: `bug` has `bug_rows` rows.
fn snapshot(bug_rows: f64) -> Snapshot {
    let index = Relation {
        table: Some(BUG),
        ..relation(BUG_HEAT_IDX, "bug_heat_idx", 'i', bug_rows)
    };
    let relations = [
        relation(BUG, "bug", 'r', bug_rows),
        relation(PERSON, "person", 'r', 50.0),
        relation(EVENTS, "events", 'p', 0.0),
        relation(EVENTS_2024, "events_2024", 'r', 2000.0),
        index,
    ];
    Snapshot {
        relations: relations.into_iter().map(|r| (r.oid, r)).collect(),
    }
}

fn name_of(oid: u32) -> String {
    snapshot(1.0)
        .get(oid)
        .map_or("?".into(), |r| r.name.clone())
}

/// One measured statement, built up step by step.
struct Stmt(StatementRun);

fn stmt(index: usize) -> Stmt {
    Stmt(StatementRun {
        index,
        seconds: 0.01,
        rows_affected: None,
        outside_transaction: false,
        held: Vec::new(),
        locks: Vec::new(),
        rewrites: Vec::new(),
        new_indexes: Vec::new(),
        lock_timeout: "0".into(),
        pre: PreCheck::default(),
        scanned_blocks: HashMap::new(),
        server_seconds: None,
        started: None,
    })
}

impl Stmt {
    /// Takes `mode` on `oid` and holds it for `seconds` (to the end of its transaction).
    fn takes(mut self, oid: u32, mode: LockMode, seconds: f64) -> Self {
        self.0.locks.push(LockHeld {
            oid,
            relation: name_of(oid),
            mode,
            held_seconds: seconds,
            waited_seconds: 0.0,
        });
        self.holds(oid, mode)
    }

    /// Holds `mode` on `oid` when it finishes (taken by it or earlier).
    fn holds(mut self, oid: u32, mode: LockMode) -> Self {
        self.0.held.push((oid, mode));
        self
    }

    fn resolves(mut self, name: &str, oid: Option<u32>) -> Self {
        self.0.pre.resolved.insert(name.into(), oid);
        self
    }

    fn rewrites(mut self, oid: u32, rows: i64) -> Self {
        self.0.rewrites.push(Rewrite {
            oid,
            relation: name_of(oid),
            kind: "table",
            rows,
            bytes: rows * 100,
        });
        self
    }

    fn builds_index(mut self, table: u32, name: &str) -> Self {
        self.0.new_indexes.push((table, name.into()));
        self
    }

    fn scanned(mut self, oid: u32, blocks: i64) -> Self {
        let reads = downtime::measure::Reads {
            blocks,
            scans: i64::from(blocks > 0),
            tuples: 0,
        };
        self.0.scanned_blocks.insert(oid, reads);
        self
    }

    fn rows(mut self, n: u64) -> Self {
        self.0.rows_affected = Some(n);
        self
    }

    fn lock_timeout(mut self, value: &str) -> Self {
        self.0.lock_timeout = value.into();
        self
    }

    fn outside_transaction(mut self) -> Self {
        self.0.outside_transaction = true;
        self
    }
}

/// The patch's first statement, on `bug`: takes `mode` for `seconds`.
fn on_bug(mode: LockMode, seconds: f64) -> Stmt {
    stmt(0).resolves("bug", Some(BUG)).takes(BUG, mode, seconds)
}

/// A run of one statement.
fn run1(bug_rows: f64, statement: Stmt) -> PatchRun {
    run(bug_rows, vec![statement])
}

fn run(bug_rows: f64, statements: Vec<Stmt>) -> PatchRun {
    PatchRun {
        statements: statements.into_iter().map(|s| s.0).collect(),
        snapshot: snapshot(bug_rows),
        ..PatchRun::default()
    }
}

fn classified(sql: &str, run: &PatchRun, profile: Profile) -> Classification {
    classify(&patch(sql), run, &ClassifyOptions::for_profile(profile))
}

fn standard(sql: &str, run: &PatchRun) -> Classification {
    classified(sql, run, Profile::Standard)
}

// Assertions.

fn find<'a>(c: &'a Classification, rule: &str) -> Option<&'a Reason> {
    c.reasons.iter().find(|r| r.rule.as_str() == rule)
}

/// What a reason is expected to say.
struct Want<'n> {
    severity: Severity,
    relation: Option<&'n str>,
    lock_mode: Option<LockMode>,
}

fn want<'n>(
    severity: Severity,
    relation: impl Into<Option<&'n str>>,
    lock_mode: impl Into<Option<LockMode>>,
) -> Want<'n> {
    Want {
        severity,
        relation: relation.into(),
        lock_mode: lock_mode.into(),
    }
}

fn cold<'n>(relation: &'n str, lock_mode: impl Into<Option<LockMode>>) -> Want<'n> {
    want(Severity::Cold, relation, lock_mode)
}

/// The rule gave a counting reason with the wanted severity, relation and
/// lock mode, and its message names the relation and the lock; a cold reason
/// makes the patch cold.
fn fires<'a>(c: &'a Classification, rule: &str, want: Want<'_>) -> &'a Reason {
    let r = find(c, rule).unwrap_or_else(|| panic!("{rule} did not fire: {:#?}", c.reasons));
    assert_eq!(r.severity, want.severity, "{r:#?}");
    assert_eq!(r.relation.as_deref(), want.relation, "{r:#?}");
    assert_eq!(r.lock_mode, want.lock_mode, "{r:#?}");
    assert!(r.counts(), "{r:#?}");
    if let Some(name) = want.relation {
        assert!(r.message.contains(name), "{r:#?}");
    }
    if let Some(mode) = want.lock_mode {
        assert!(r.message.contains(mode.sql_name()), "{r:#?}");
    }
    if want.severity == Severity::Cold {
        assert_eq!(c.class, Class::Cold, "{:#?}", c.reasons);
    }
    r
}

/// The rule gave no reason, and the patch has `class`.
fn quiet(c: &Classification, rule: &str, class: Class) {
    assert!(find(c, rule).is_none(), "{rule} fired: {:#?}", c.reasons);
    assert_eq!(c.class, class, "{:#?}", c.reasons);
}

// table-rewrite

const ALTER_TYPE: &str = "alter table bug alter column id type bigint;\n";

fn rewrite_run(bug_rows: f64) -> PatchRun {
    let s = on_bug(AccessExclusive, 0.3);
    run1(bug_rows, s.rewrites(BUG, bug_rows as i64))
}

#[test]
fn table_rewrite_of_a_populated_table_only() {
    let c = standard(ALTER_TYPE, &rewrite_run(1000.0));
    let r = fires(&c, "table-rewrite", cold("public.bug", AccessExclusive));
    assert_eq!(r.statement_line, Some(1));
    assert!(c.errors().next().is_none());
    // The same rewrite of a table the patch's run created: empty in
    // production too.
    let c = with_sizes(ALTER_TYPE, &rewrite_run(0.0), new_bug());
    quiet(&c, "table-rewrite", Class::Live);
}

// Sizes: production's, staging's, unknown.

/// Production's statistics: `bug` holds `rows`.
fn production(rows: f64) -> Sizes {
    let stats: ProdStats = serde_json::from_value(serde_json::json!({
        "schema_version": 2, "exported_at": "2026-12-01T00:00:00Z",
        "server_version": "15.8", "source": "test",
        "tables": [{"name": "public.bug", "rows": rows, "pages": (rows / 50.0) as i64,
                    "total_bytes": (rows * 160.0) as i64, "table_bytes": (rows * 100.0) as i64,
                    "inserts": null, "updates": null, "deletes": null,
                    "stats_since": null, "monthly_growth": null}]
    }))
    .unwrap();
    Sizes {
        production: Some(std::sync::Arc::new(stats)),
        ..Sizes::default()
    }
}

/// A baseline without `bug`: a patch of the run created it.
fn new_bug() -> Sizes {
    Sizes {
        baseline: Some(std::sync::Arc::new(
            ["public.person".to_string()].into_iter().collect(),
        )),
        ..Sizes::default()
    }
}

fn with_sizes(sql: &str, run: &PatchRun, sizes: Sizes) -> Classification {
    let options = ClassifyOptions {
        sizes,
        ..ClassifyOptions::default()
    };
    classify(&patch(sql), run, &options)
}

#[test]
fn a_rewrite_of_a_table_empty_on_staging_is_cold_with_its_size_unknown() {
    let c = standard(ALTER_TYPE, &rewrite_run(0.0));
    let r = fires(&c, "table-rewrite", cold("public.bug", AccessExclusive));
    assert!(r.message.contains("size in production unknown"), "{r:#?}");
    assert!(r.message.contains("--prod-stats"), "{r:#?}");
    assert_eq!(r.size.as_ref().map(|s| s.basis), Some(Basis::Unknown));
    // Declared small, in the patch or in downtime.toml: judged as measured.
    let sql = format!("-- downtime: small bug\n{ALTER_TYPE}");
    quiet(
        &standard(&sql, &rewrite_run(0.0)),
        "table-rewrite",
        Class::Live,
    );
    let small = Sizes {
        small: vec!["public.bug".into()],
        ..Sizes::default()
    };
    let c = with_sizes(ALTER_TYPE, &rewrite_run(0.0), small);
    quiet(&c, "table-rewrite", Class::Live);
}

#[test]
fn production_statistics_decide_the_size_work_is_judged_at() {
    let c = with_sizes(ALTER_TYPE, &rewrite_run(0.0), production(900_000.0));
    let r = fires(&c, "table-rewrite", cold("public.bug", AccessExclusive));
    assert!(
        r.message
            .contains("0 rows here, 900 000 rows in production (stats of 2026-12-01)"),
        "{r:#?}"
    );
    assert_eq!(r.size.as_ref().map(|s| s.basis), Some(Basis::Production));
    // Staging's rows give the cost per row: the time at production's size.
    let c = with_sizes(ALTER_TYPE, &rewrite_run(1000.0), production(900_000.0));
    let r = fires(&c, "table-rewrite", cold("public.bug", AccessExclusive));
    assert!(
        r.message.contains("about 9.00 s at production's size"),
        "{r:#?}"
    );
    // Empty in production: live, whatever staging holds.
    let c = with_sizes(ALTER_TYPE, &rewrite_run(1000.0), production(0.0));
    quiet(&c, "table-rewrite", Class::Live);
}

#[test]
fn truncate_is_not_a_rewrite() {
    let c = standard("truncate bug;\n", &rewrite_run(1000.0));
    quiet(&c, "table-rewrite", Class::Live);
}

#[test]
fn a_waiver_covers_the_statement_below_it_for_its_rule_only() {
    let sql = format!("-- downtime: allow table-rewrite because tiny in production\n{ALTER_TYPE}");
    let c = standard(&sql, &rewrite_run(1000.0));
    let r = find(&c, "table-rewrite").expect("the reason is kept, waived");
    assert_eq!(r.waived.as_deref(), Some("tiny in production"));
    assert!(!r.counts());
    assert_eq!(c.class, Class::Live);
    let sql = format!("-- downtime: allow bulk-write because batched elsewhere\n{ALTER_TYPE}");
    let c = standard(&sql, &rewrite_run(1000.0));
    fires(&c, "table-rewrite", cold("public.bug", AccessExclusive));
}

// blocking-index-build

#[test]
fn plain_create_index_on_a_populated_table_is_cold() {
    let s = on_bug(Share, 0.4).builds_index(BUG, "public.bug_heat");
    let r = run1(1000.0, s);
    let c = standard("create index bug_heat on bug (heat);\n", &r);
    let reason = fires(&c, "blocking-index-build", cold("public.bug", Share));
    assert!(reason.message.contains("public.bug_heat"), "{reason:#?}");
}

#[test]
fn create_index_concurrently_is_live() {
    let sql = "create index concurrently bug_heat on bug (heat);\n";
    let s = on_bug(ShareUpdateExclusive, 0.4).builds_index(BUG, "public.bug_heat");
    let c = standard(sql, &run1(1000.0, s.outside_transaction()));
    quiet(&c, "blocking-index-build", Class::Live);
}

// validation-scan

const ADD_FK: &str =
    "alter table bug add constraint bug_owner_fk foreign key (owner) references person (id)";

fn fk_run(blocks: i64, mode: LockMode) -> PatchRun {
    let s = on_bug(mode, 0.2).resolves("person", Some(PERSON));
    run1(1000.0, s.takes(PERSON, mode, 0.2).scanned(BUG, blocks))
}

#[test]
fn adding_a_validated_foreign_key_is_cold() {
    let c = standard(ADD_FK, &fk_run(12, ShareRowExclusive));
    let r = fires(&c, "validation-scan", cold("public.bug", ShareRowExclusive));
    assert!(r.message.contains("foreign key bug_owner_fk"), "{r:#?}");
}

#[test]
fn validating_under_a_lock_that_does_not_block_the_application_is_live() {
    let sql = "alter table bug validate constraint bug_owner_fk;\n";
    let mut r = fk_run(12, ShareUpdateExclusive);
    let constraints = &mut r.statements[0].pre.constraint;
    constraints.insert("bug_owner_fk".into(), (false, "f".into()));
    quiet(&standard(sql, &r), "validation-scan", Class::Live);
}

#[test]
fn a_foreign_key_not_valid_is_not_scanned() {
    let sql = format!("{ADD_FK} not valid;\n");
    let c = standard(&sql, &fk_run(0, ShareRowExclusive));
    quiet(&c, "validation-scan", Class::Live);
}

// set-not-null-scan

fn not_null_run(proven: bool) -> PatchRun {
    let mut s = on_bug(AccessExclusive, 0.2).scanned(BUG, if proven { 0 } else { 30 });
    s.0.pre.not_null_proven.insert("heat".into(), proven);
    run1(1000.0, s)
}

#[test]
fn set_not_null_scan_unless_a_check_constraint_proves_the_column() {
    let sql = "alter table bug alter column heat set not null;\n";
    let c = standard(sql, &not_null_run(false));
    let r = fires(&c, "set-not-null-scan", cold("public.bug", AccessExclusive));
    assert!(r.message.contains("public.bug.heat"), "{r:#?}");
    let c = standard(sql, &not_null_run(true));
    quiet(&c, "set-not-null-scan", Class::Live);
}

// attach-partition-scan

fn attach_run(scanned_blocks: i64) -> PatchRun {
    let s = stmt(0).resolves("events", Some(EVENTS));
    let s = s.resolves("events_2024", Some(EVENTS_2024));
    let s = s.takes(EVENTS, ShareUpdateExclusive, 0.2);
    let s = s.takes(EVENTS_2024, AccessExclusive, 0.2);
    run1(1000.0, s.scanned(EVENTS_2024, scanned_blocks))
}

#[test]
fn attach_partition_scan_unless_the_scan_is_skipped() {
    let sql = "alter table events attach partition events_2024\n  \
               for values from ('2024-01-01') to ('2025-01-01');\n";
    let c = standard(sql, &attach_run(40));
    let expected = cold("public.events_2024", AccessExclusive);
    let r = fires(&c, "attach-partition-scan", expected);
    assert_eq!(r.statement_line, Some(1));
    // A CHECK constraint that implies the bound: no page read.
    let c = standard(sql, &attach_run(0));
    quiet(&c, "attach-partition-scan", Class::Live);
}

// bulk-write

fn update_run(rows: u64) -> PatchRun {
    run1(1000.0, on_bug(RowExclusive, 0.5).rows(rows))
}

#[test]
fn updating_a_whole_table_is_cold() {
    let c = standard("update bug set heat = 0;\n", &update_run(1000));
    let r = fires(&c, "bulk-write", cold("public.bug", None));
    assert!(r.message.contains("no WHERE clause"), "{r:#?}");
}

#[test]
fn bulk_writes_are_judged_by_the_rows_they_touch_where_the_patch_runs() {
    // A third of a seed table is a handful of rows: no bulk write.
    let sql = "update bug set heat = 0 where id < 5;\n";
    let seed = run1(14.0, on_bug(RowExclusive, 0.01).rows(5));
    quiet(&standard(sql, &seed), "bulk-write", Class::Live);
    // The same fraction of production's 900 000 rows is.
    let c = with_sizes(sql, &seed, production(900_000.0));
    let r = fires(&c, "bulk-write", cold("public.bug", None));
    assert!(
        r.message.contains("about 321 429 rows in production"),
        "{r:#?}"
    );
    // Staging empty: the fraction cannot be measured, which is said.
    let empty = run1(0.0, on_bug(RowExclusive, 0.01).rows(0));
    let c = with_sizes(sql, &empty, production(900_000.0));
    let r = find(&c, "bulk-write").expect("a note");
    assert_eq!(r.severity, Note, "{r:#?}");
    assert_eq!(c.class, Class::Live);
    // Without a WHERE clause it touches every row production has.
    let c = with_sizes("update bug set heat = 0;\n", &empty, production(900_000.0));
    fires(&c, "bulk-write", cold("public.bug", None));
}

#[test]
fn updating_a_few_rows_is_live() {
    let c = standard("update bug set heat = 0 where id < 10;\n", &update_run(9));
    quiet(&c, "bulk-write", Class::Live);
}

#[test]
fn the_bulk_write_fraction_is_the_threshold() {
    let sql = "update bug set heat = 0 where id < 200;\n";
    let r = run1(10_000.0, on_bug(RowExclusive, 0.5).rows(2000));
    fires(&standard(sql, &r), "bulk-write", cold("public.bug", None));
    let options = ClassifyOptions {
        bulk_write_fraction: 0.5,
        ..ClassifyOptions::default()
    };
    let c = classify(&patch(sql), &r, &options);
    quiet(&c, "bulk-write", Class::Live);
}

// predicted-failure

/// Production's statistics: `bug` holds 900 000 rows and its `heat` column
/// has `null_frac` and `n_distinct` as given.
fn production_heat(null_frac: f64, n_distinct: f64) -> Sizes {
    let mut sizes = production(900_000.0);
    let mut stats = (**sizes.production.as_ref().unwrap()).clone();
    stats.tables[0].columns = vec![serde_json::from_value(serde_json::json!({
        "name": "heat", "null_frac": null_frac, "n_distinct": n_distinct, "avg_width": 4
    }))
    .unwrap()];
    sizes.production = Some(std::sync::Arc::new(stats));
    sizes
}

#[test]
fn production_statistics_predict_failures_staging_cannot_show() {
    let brief = || run1(0.0, on_bug(AccessExclusive, 0.01));
    let predicted = |sql: &str, sizes: Sizes| {
        let c = with_sizes(sql, &brief(), sizes);
        find(&c, "predicted-failure").cloned()
    };
    // A NOT NULL column without a default, on a table production fills.
    let sql = "alter table bug add column note text not null;\n";
    let r = predicted(sql, production(900_000.0)).expect("predicted");
    assert_eq!(r.severity, Error);
    assert!(r.message.contains("900 000 rows"), "{r:#?}");
    assert!(predicted(sql, production(0.0)).is_none());
    let with_default = "alter table bug add column note text not null default '';\n";
    assert!(predicted(with_default, production(900_000.0)).is_none());
    // SET NOT NULL over a column production has NULLs in.
    let sql = "alter table bug alter column heat set not null;\n";
    let r = predicted(sql, production_heat(0.1, -0.5)).expect("predicted");
    assert!(r.message.contains("null_frac 0.1000"), "{r:#?}");
    assert!(predicted(sql, production_heat(0.0, -0.5)).is_none());
    // A unique index over a column production's sample held duplicates of.
    let sql = "create unique index concurrently bug_heat_uq on bug (heat);\n";
    let r = predicted(sql, production_heat(0.0, -0.5)).expect("predicted");
    assert!(r.message.contains("duplicates"), "{r:#?}");
    assert!(predicted(sql, production_heat(0.2, -0.8)).is_none());
    // Without production's statistics nothing is predicted.
    assert!(find(&standard(sql, &brief()), "predicted-failure").is_none());
    // A type change over rows staging lacks: unknowable, and said so.
    let sql = "alter table bug alter column heat type bigint;\n";
    let r = predicted(sql, production(900_000.0)).expect("a note");
    assert_eq!(r.severity, Note, "{r:#?}");
    assert!(r.message.contains("cannot be told here"), "{r:#?}");
}

// held-lock-work

const ADD_THEN_BACKFILL: &str =
    "alter table bug add column note text;\nupdate bug set note = 'x' where id % 20 = 0;\n";

/// ALTER TABLE takes ACCESS EXCLUSIVE; the UPDATE after it, in the same
/// transaction, reads the table with `scans` sequential scans and writes
/// `rows` rows.
fn add_then_backfill(scans: i64, tuples: i64, rows: u64) -> PatchRun {
    let alter = on_bug(AccessExclusive, 0.4);
    let mut update = stmt(1)
        .resolves("bug", Some(BUG))
        .takes(BUG, RowExclusive, 0.38)
        .holds(BUG, AccessExclusive)
        .rows(rows);
    update.0.seconds = 0.38;
    update.0.scanned_blocks.insert(
        BUG,
        downtime::measure::Reads {
            blocks: 100,
            scans,
            tuples,
        },
    );
    run(1000.0, vec![alter, update])
}

#[test]
fn a_backfill_under_the_alters_lock_is_cold_naming_the_statement_that_took_it() {
    let c = standard(ADD_THEN_BACKFILL, &add_then_backfill(1, 1000, 50));
    let r = fires(&c, "held-lock-work", cold("public.bug", AccessExclusive));
    assert_eq!(r.statement_line, Some(2));
    assert!(r.message.contains("line 1's ACCESS EXCLUSIVE"), "{r:#?}");
    // At production's size the same backfill takes longer.
    let c = with_sizes(
        ADD_THEN_BACKFILL,
        &add_then_backfill(1, 1000, 50),
        production(1e6),
    );
    let r = fires(&c, "held-lock-work", cold("public.bug", AccessExclusive));
    assert!(
        r.message.contains("about 6 min at production's size"),
        "{r:#?}"
    );
}

#[test]
fn a_lookup_under_the_alters_lock_is_not_work_that_grows() {
    // One row by its key: no scan, one row read.
    let c = standard(ADD_THEN_BACKFILL, &add_then_backfill(0, 1, 1));
    quiet(&c, "held-lock-work", Class::Live);
    // A seed table's one-row fix scans it, but touches one row.
    let c = standard(ADD_THEN_BACKFILL, &add_then_backfill(1, 1000, 1));
    quiet(&c, "held-lock-work", Class::Live);
    // On an empty copy the planner scans even for a key; the key says one row.
    let sql = "alter table bug add column note text;\nupdate bug set note = 'x' where id = 7;\n";
    let mut r = add_then_backfill(1, 0, 0);
    r.snapshot = snapshot(0.0);
    let c = with_sizes(sql, &r, production(1e6));
    fires(&c, "held-lock-work", cold("public.bug", AccessExclusive));
    r.statements[1]
        .pre
        .unique_keys
        .insert(BUG, vec![vec!["id".to_string()]]);
    let c = with_sizes(sql, &r, production(1e6));
    quiet(&c, "held-lock-work", Class::Live);
}

// long-lock

fn lock_then_work(mode: LockMode, seconds: f64) -> Classification {
    let sql = format!("lock table bug in {mode} mode;\nselect pg_sleep(2);\n");
    let statements = vec![on_bug(mode, seconds), stmt(1).holds(BUG, mode)];
    standard(&sql, &run(1000.0, statements))
}

#[test]
fn a_blocking_lock_held_past_the_threshold_is_cold() {
    let c = lock_then_work(AccessExclusive, 2.5);
    let r = fires(&c, "long-lock", cold("public.bug", AccessExclusive));
    assert_eq!(r.statement_line, Some(1));
}

#[test]
fn a_blocking_lock_held_briefly_is_live() {
    let c = lock_then_work(AccessExclusive, 0.3);
    quiet(&c, "long-lock", Class::Live);
}

#[test]
fn a_long_lock_that_does_not_block_the_application_is_live() {
    let c = lock_then_work(ShareUpdateExclusive, 2.5);
    quiet(&c, "long-lock", Class::Live);
}

#[test]
fn rows_an_update_would_lock_in_production_held_past_the_threshold_are_a_long_lock() {
    let sql = "update bug set heat = 0 where id <= 100;\nselect pg_sleep(1.5);\n";
    let update = |rows: f64| {
        let write = on_bug(RowExclusive, 1.52).rows(if rows > 0.0 { 100 } else { 0 });
        run(rows, vec![write, stmt(1).holds(BUG, RowExclusive)])
    };
    // Staging holds none of its rows: those production has stay locked.
    let c = with_sizes(sql, &update(0.0), production(900_000.0));
    let r = fires(&c, "long-lock", cold("public.bug", None));
    assert!(r.message.contains("stay locked for 1.52 s"), "{r:#?}");
    // Where staging holds the rows, what they show (and the probe) stands.
    quiet(&standard(sql, &update(1000.0)), "long-lock", Class::Live);
}

// lock-timeout-missing

const ADD_COLUMN: &str = "alter table bug add column note text;\n";

fn add_column_run(lock_timeout: &str) -> PatchRun {
    let s = on_bug(AccessExclusive, 0.01);
    run1(1000.0, s.lock_timeout(lock_timeout))
}

#[test]
fn a_brief_blocking_lock_without_lock_timeout_warns() {
    let c = standard(ADD_COLUMN, &add_column_run("0"));
    let expected = want(Warning, "public.bug", AccessExclusive);
    let r = fires(&c, "lock-timeout-missing", expected);
    assert_eq!(r.statement_line, Some(1));
    assert_eq!(c.class, Class::Live);
    assert!(c.errors().next().is_none());
}

#[test]
fn lock_timeout_missing_fails_when_the_policy_requires_it() {
    let options = ClassifyOptions {
        require_lock_timeout: true,
        ..ClassifyOptions::default()
    };
    let c = classify(&patch(ADD_COLUMN), &add_column_run("0"), &options);
    let expected = want(Error, "public.bug", AccessExclusive);
    fires(&c, "lock-timeout-missing", expected);
    assert_eq!(c.errors().count(), 1);
}

#[test]
fn one_lock_timeout_warning_per_relation_for_the_strongest_lock() {
    // ALTER TABLE … ADD UNIQUE holds SHARE (the index build) beside ACCESS
    // EXCLUSIVE; a later CREATE INDEX asks for SHARE again while ACCESS
    // EXCLUSIVE is held: neither queues behind anything the first did not.
    let sql = "alter table bug add unique (id);\ncreate index on bug (heat);\n";
    let first = on_bug(AccessExclusive, 0.02)
        .takes(BUG, Share, 0.02)
        .lock_timeout("0");
    let second = Stmt(StatementRun {
        index: 1,
        ..on_bug(Share, 0.01).lock_timeout("0").0
    });
    let c = standard(sql, &run(1000.0, vec![first, second]));
    let warnings: Vec<_> = c
        .reasons
        .iter()
        .filter(|r| r.rule.as_str() == "lock-timeout-missing")
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].lock_mode, Some(AccessExclusive));
    assert_eq!(warnings[0].statement_line, Some(1));
    // SHARE first, ACCESS EXCLUSIVE later: each queues on its own, each warns.
    let first = on_bug(Share, 0.01).lock_timeout("0");
    let second = Stmt(StatementRun {
        index: 1,
        ..on_bug(AccessExclusive, 0.01).lock_timeout("0").0
    });
    let c = standard(sql, &run(1000.0, vec![first, second]));
    let modes: Vec<_> = c
        .reasons
        .iter()
        .filter(|r| r.rule.as_str() == "lock-timeout-missing")
        .map(|r| r.lock_mode)
        .collect();
    assert_eq!(modes, [Some(Share), Some(AccessExclusive)]);
}

#[test]
fn a_brief_blocking_lock_with_lock_timeout_is_quiet() {
    let sql = format!("set lock_timeout = '2s';\n{ADD_COLUMN}");
    let s = on_bug(AccessExclusive, 0.01).lock_timeout("2s");
    let second = Stmt(StatementRun { index: 1, ..s.0 });
    let r = run(1000.0, vec![stmt(0), second]);
    quiet(&standard(&sql, &r), "lock-timeout-missing", Class::Live);
}

// measured-blocking

/// The probe's record of a patch: `blocked` queries waited on `public.bug`
/// behind the patch's `mode` (a row lock when `None`).
fn probe_record(blocked: u64, mode: Option<LockMode>) -> PatchProbe {
    let mut p = PatchProbe::failed(String::new());
    p.problem = None;
    p.queries = 40;
    p.blocked_queries = blocked;
    p.threshold_seconds = 0.05;
    p.max_wait_seconds = if blocked > 0 { 1.2 } else { 0.004 };
    if blocked > 0 {
        p.by_relation.push(RelationStall {
            relation: "public.bug".into(),
            reads_blocked: blocked,
            writes_blocked: 0,
            reads_blocked_seconds: 1.2,
            writes_blocked_seconds: 0.0,
            lock_mode: mode,
            waited_for: vec![if mode.is_some() {
                "ACCESS SHARE"
            } else {
                "row"
            }
            .into()],
            statement_line: Some(1),
        });
    }
    p
}

#[test]
fn a_live_patch_the_probe_saw_blocking_is_cold() {
    let mut r = add_column_run("0");
    r.probe = Some(probe_record(12, Some(AccessExclusive)));
    let c = standard(ADD_COLUMN, &r);
    let got = fires(&c, "measured-blocking", cold("public.bug", AccessExclusive));
    assert!(got.message.contains("12 of 40"), "{got:#?}");
    assert_eq!(got.statement_line, Some(1));
    // Rows it kept locked: no table lock to name.
    r.probe = Some(probe_record(3, None));
    let c = standard(ADD_COLUMN, &r);
    let got = fires(&c, "measured-blocking", cold("public.bug", None));
    assert!(
        got.message.contains("rows it had written or locked"),
        "{got:#?}"
    );
}

#[test]
fn no_stall_or_an_already_cold_patch_gives_no_measured_reason() {
    let mut r = add_column_run("0");
    r.probe = Some(probe_record(0, None));
    quiet(&standard(ADD_COLUMN, &r), "measured-blocking", Class::Live);
    let mut r = rewrite_run(1000.0);
    r.probe = Some(probe_record(30, Some(AccessExclusive)));
    quiet(&standard(ALTER_TYPE, &r), "measured-blocking", Class::Cold);
}

// launchpad-alter-table, launchpad-trigger, launchpad-references

#[test]
fn launchpad_alter_table_of_an_existing_table_is_cold() {
    let c = classified(ADD_COLUMN, &add_column_run("2s"), Profile::Launchpad);
    fires(&c, "launchpad-alter-table", cold("public.bug", None));
    // Not a reason under the standard profile.
    let c = classified(ADD_COLUMN, &add_column_run("2s"), Profile::Standard);
    quiet(&c, "launchpad-alter-table", Class::Live);
}

#[test]
fn launchpad_alter_table_of_a_new_table_is_live() {
    let sql = "create table note (id int);\nalter table note add column body text;\n";
    let r = run(1000.0, vec![stmt(0), stmt(1).resolves("note", None)]);
    let c = classified(sql, &r, Profile::Launchpad);
    quiet(&c, "launchpad-alter-table", Class::Live);
}

const TRIGGER: &str = "create trigger t after update on TABLE for each row execute function f();";

#[test]
fn launchpad_trigger_on_an_existing_table_is_cold() {
    let r = run1(1000.0, on_bug(ShareRowExclusive, 0.01).lock_timeout("2s"));
    let c = classified(&TRIGGER.replace("TABLE", "bug"), &r, Profile::Launchpad);
    fires(&c, "launchpad-trigger", cold("public.bug", None));
}

#[test]
fn launchpad_trigger_on_a_new_table_is_live() {
    let trigger = TRIGGER.replace("TABLE", "note");
    let sql = format!("create table note (id int);\n{trigger}");
    let r = run(1000.0, vec![stmt(0), stmt(1).resolves("note", None)]);
    let c = classified(&sql, &r, Profile::Launchpad);
    quiet(&c, "launchpad-trigger", Class::Live);
}

#[test]
fn launchpad_new_table_referencing_an_existing_table_is_cold() {
    let sql = "create table note (id int, bug int references bug (id));\n";
    let s = on_bug(ShareRowExclusive, 0.01).resolves("note", None);
    let c = classified(sql, &run1(1000.0, s.lock_timeout("2s")), Profile::Launchpad);
    let reason = fires(&c, "launchpad-references", cold("public.bug", None));
    assert!(reason.message.contains("new table note"), "{reason:#?}");
}

#[test]
fn launchpad_new_table_referencing_a_new_table_is_live() {
    let sql = "create table tag (id int primary key);\n\
               create table note (id int, tag int references tag (id));\n";
    let second = stmt(1).resolves("note", None).resolves("tag", None);
    let r = run(1000.0, vec![stmt(0).resolves("tag", None), second]);
    let c = classified(sql, &r, Profile::Launchpad);
    quiet(&c, "launchpad-references", Class::Live);
}

// invalid-index

#[test]
fn an_invalid_index_left_behind_is_an_error() {
    let sql = "create index concurrently bug_heat on bug (heat);\n";
    let mut r = run1(1000.0, stmt(0).outside_transaction());
    let c = standard(sql, &r);
    quiet(&c, "invalid-index", Class::Live);
    assert!(c.errors().next().is_none());
    r.invalid_indexes.push("public.bug_heat".into());
    let c = standard(sql, &r);
    fires(&c, "invalid-index", want(Error, "public.bug_heat", None));
    assert_eq!(c.class, Class::Live);
    assert_eq!(c.errors().count(), 1);
}

// declared-live-but-cold, declared-cold-but-live

/// `bug_rows` 0: a table created by the run (empty in production too).
fn declared(class: &str, bug_rows: f64) -> Classification {
    let sql = format!("-- downtime: {class}\n{ALTER_TYPE}");
    let sizes = if bug_rows > 0.0 {
        Sizes::default()
    } else {
        new_bug()
    };
    with_sizes(&sql, &rewrite_run(bug_rows), sizes)
}

#[test]
fn declared_live_but_cold_is_an_error() {
    let c = declared("live", 1000.0);
    let r = fires(&c, "declared-live-but-cold", want(Error, None, None));
    assert_eq!(r.statement_line, None);
    assert_eq!(c.class, Class::Cold);
    assert_eq!(c.errors().count(), 1);
    let c = declared("live", 0.0);
    quiet(&c, "declared-live-but-cold", Class::Live);
}

#[test]
fn declared_cold_but_live_is_a_note() {
    let c = declared("cold", 0.0);
    fires(&c, "declared-cold-but-live", want(Note, None, None));
    assert_eq!(c.class, Class::Live);
    assert!(c.errors().next().is_none());
    let c = declared("cold", 1000.0);
    quiet(&c, "declared-cold-but-live", Class::Cold);
}

#[test]
fn every_rule_has_a_case_in_this_file() {
    let source = include_str!("classify.rs");
    for rule in downtime::verdict::RULES {
        let quoted = format!("\"{}\"", rule.id);
        let cases = source.matches(&quoted).count();
        assert!(cases >= 2, "{}: fires in one case, not in another", rule.id);
    }
}
