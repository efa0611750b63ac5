//! The acceptance test of judging work at production's size. Every patch
//! set (the labelled corpus, and each rule's fixtures as tests/rules.rs
//! runs them) is checked three ways:
//!
//! 1. on its full baseline, where staging holds production's rows;
//! 2. on a schema-only dump of that baseline with production's statistics
//!    (`--prod-stats`), both made here from the full baseline loaded into
//!    a database of its own (the rule fixtures share one baseline, so one
//!    database) on one real password-protected server, the statistics by
//!    `stats export` over TCP: every patch must get the status and
//!    the class it got on the full data, its size-judged cold reasons based
//!    on production's rows, and each rule's fixtures must still fire (bad)
//!    or not fire (good) that rule;
//! 3. on the schema-only dump alone: no patch cold on the full data may pass
//!    for live, and the rewrites, index builds and scans that made one cold
//!    must say the table's size in production is unknown. Live patches that
//!    become cold here are printed, not failed.
//!
//! Every mismatch of every set is collected, each with the reasons of both
//! runs, and the test fails at the end listing them all;
//! `cargo test --test production_size -- --nocapture` also prints the
//! notes and how long each set took (2.5 to 4 minutes in all on two shared
//! cores, most of it the `--prod-stats` runs, which also measure each patch
//! at the default scales).

mod common;
#[path = "common/tcp.rs"]
mod tcp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{text, Scratch};
use serde_json::Value;
use tcp::TcpServer;

/// The production server's superuser password (it goes through the URL).
const PASSWORD: &str = "Pl4nted-prod s3cret";

/// The corpus patch psql's meta-command gets refused before anything runs
/// (tests/corpus.rs checks that); the other sets run without it.
const REFUSED: &str = "patch-2209-10-0.sql";

/// Rules whose cold reasons are a rewrite, an index build or a scan (a
/// pass under a held lock included) of a table: on a table empty here,
/// without production's statistics, each must call its size unknown.
const WORK_RULES: &[&str] = &[
    "table-rewrite",
    "blocking-index-build",
    "validation-scan",
    "set-not-null-scan",
    "attach-partition-scan",
    "held-lock-work",
];

/// Rules whose evidence is data a schema-only copy lacks, with the rule
/// that stands in for each there: the probe measures only tables staging
/// holds rows of (an UPDATE's rows locked through a long transaction are
/// then long-lock's, judged at production's size), and a unique build
/// fails only on the duplicates staging holds (production's statistics
/// predict it).
const STAND_INS: &[(&str, &str)] = &[
    ("measured-blocking", "long-lock"),
    ("invalid-index", "predicted-failure"),
];

/// Statuses that fail the patch alike: failed on the full data, predicted
/// to fail from production's statistics.
fn same_status(a: &Value, b: &Value) -> bool {
    a == b || (a == "failed" && b == "predicted-failure")
}

/// What a reason judged on a table of unknown size says.
const UNKNOWN: &str = "size in production unknown";

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// A patch set: the folder `check` is given, its full baseline, the extra
/// flags it runs with, and the rule its fixtures are for.
struct Set {
    name: String,
    dir: PathBuf,
    baseline: PathBuf,
    args: Vec<String>,
    rule: Option<String>,
}

/// The corpus (copied without [`REFUSED`]) and every rule fixture folder.
fn sets(s: &Scratch) -> Vec<Set> {
    let corpus = tests_dir().join("corpus");
    let dir = s.path().join("corpus");
    std::fs::create_dir(&dir).unwrap();
    for e in std::fs::read_dir(corpus.join("patches")).unwrap().flatten() {
        if e.file_name() != REFUSED {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    let mut out = vec![Set {
        name: "corpus".into(),
        dir,
        baseline: corpus.join("baseline.sql"),
        args: Vec::new(),
        rule: None,
    }];
    let fixtures = tests_dir().join("fixtures/rules");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let rule = dir.file_name().unwrap().to_string_lossy().into_owned();
        let args = common::fixture_args(&dir);
        // A folder with a production of its own (a stats file) is not one
        // to make production's statistics for from the baseline.
        if args.iter().any(|a| a == "--prod-stats") {
            continue;
        }
        out.push(Set {
            name: format!("rules/{rule}"),
            dir,
            baseline: fixtures.join("baseline.sql"),
            args,
            rule: Some(rule),
        });
    }
    out
}

/// What production gives: its statistics and a schema-only dump.
struct Production {
    stats: PathBuf,
    schema: PathBuf,
}

/// `baseline` loaded into database `db` of `server` and analysed; its
/// statistics exported by `downtime stats export` over TCP, and its schema
/// dumped by the server's own `pg_dump`.
fn production(server: &TcpServer, s: &Scratch, db: &str, baseline: &Path) -> Production {
    server.psql("postgres", &format!("create database {db}"));
    server.psql_file(db, baseline);
    server.psql(db, "analyze");
    let stats = s.path().join(format!("{db}-stats.json"));
    let url = server.url(db);
    let out = s.run(&[
        "stats",
        "export",
        "--url",
        &url,
        "-o",
        stats.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "stats export: {}", text(&out));
    let schema = s.path().join(format!("{db}-schema.sql"));
    // Without owners and grants: the staging copies have other roles.
    let out = server
        .client("pg_dump", db)
        .args(["--schema-only", "--no-owner", "--no-privileges", "-f"])
        .arg(&schema)
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_dump: {}", text(&out));
    Production { stats, schema }
}

/// One `check` of a set: each patch's entry in the JSON report, by id, in
/// the report's order.
struct Run {
    label: &'static str,
    patches: Vec<(String, Value)>,
    seconds: f64,
}

impl Run {
    fn get(&self, id: &str) -> Option<&Value> {
        self.patches.iter().find(|(i, _)| i == id).map(|(_, p)| p)
    }
}

/// `check SET --baseline BASELINE --keep-going --format json EXTRA`, with
/// the set's own flags; Err with the output when it gives no report.
fn check(
    s: &Scratch,
    set: &Set,
    label: &'static str,
    baseline: &Path,
    extra: &[&str],
) -> Result<Run, String> {
    let mut args: Vec<&str> = vec![
        "check",
        "--format",
        "json",
        set.dir.to_str().unwrap(),
        "--baseline",
        baseline.to_str().unwrap(),
        "--keep-going",
    ];
    args.extend(extra);
    args.extend(set.args.iter().map(String::as_str));
    let started = Instant::now();
    let out = s.run(&args);
    let seconds = started.elapsed().as_secs_f64();
    let report: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{}: {label}: no JSON report ({e})\n{}",
            set.name,
            text(&out)
        )
    })?;
    let patches = report["patches"]
        .as_array()
        .ok_or_else(|| format!("{}: {label}: no patches in {report}", set.name))?
        .iter()
        .map(|p| (p["id"].as_str().unwrap_or_default().to_string(), p.clone()))
        .collect();
    Ok(Run {
        label,
        patches,
        seconds,
    })
}

/// Reasons that make the patch cold: cold, and not waived.
fn counting_cold(p: &Value) -> Vec<&Value> {
    p["reasons"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter(|r| r["severity"] == "cold" && r["waived"].is_null())
                .collect()
        })
        .unwrap_or_default()
}

/// Counting cold reasons judged on a table's size.
fn sized_cold(p: &Value) -> Vec<&Value> {
    counting_cold(p)
        .into_iter()
        .filter(|r| r["size"].is_object())
        .collect()
}

fn basis(r: &Value) -> &str {
    r["size"]["basis"].as_str().unwrap_or("none")
}

/// The counting cold reason of `p` of the same rule on the same relation
/// as `r`.
fn counterpart<'a>(p: &'a Value, r: &Value) -> Option<&'a Value> {
    counting_cold(p)
        .into_iter()
        .find(|q| q["rule"] == r["rule"] && q["relation"] == r["relation"])
}

/// "rule on relation".
fn named(r: &Value) -> String {
    format!(
        "{} on {}",
        r["rule"].as_str().unwrap_or("?"),
        r["relation"].as_str().unwrap_or("-")
    )
}

/// A mismatch of patch `id` of `set`, with both runs' verdicts and reasons.
fn mismatch(set: &Set, id: &str, what: &str, a: (&Run, &Value), b: (&Run, &Value)) -> String {
    let side = |(run, p): (&Run, &Value)| {
        format!(
            "  {} (status {}, {}): reasons {}",
            run.label,
            p["status"],
            p["classification"],
            serde_json::to_string(&p["reasons"]).unwrap()
        )
    };
    format!("{}/{id}: {what}\n{}\n{}", set.name, side(a), side(b))
}

/// The rule fixtures' own check (tests/rules.rs) on `run`: the set's rule
/// fires (any reason of its id, a note included) on every `bad` patch and
/// on no `good` one. On a schema-only copy a note on a good patch is
/// context (what cannot be measured there), and a stand-in rule may carry
/// a bad patch's verdict. A failure shows `run`'s reasons beside `other`'s.
fn fixture_rule(set: &Set, run: &Run, other: &Run, failures: &mut Vec<String>) {
    let Some(rule) = &set.rule else { return };
    let schema_only = run.label != "full data";
    let stand_in = STAND_INS
        .iter()
        .find(|(r, _)| r == rule)
        .map(|(_, s)| *s)
        .filter(|_| schema_only);
    for (id, p) in &run.patches {
        let bad = id.contains("bad");
        let fired = p["reasons"].as_array().into_iter().flatten().any(|r| {
            (r["rule"] == rule.as_str() || stand_in.is_some_and(|s| r["rule"] == s))
                && (bad || !schema_only || r["severity"] != "note")
        });
        if bad == fired {
            continue;
        }
        let what = format!(
            "{} {rule} ({})",
            if bad {
                "should fire"
            } else {
                "should not fire"
            },
            run.label
        );
        failures.push(match other.get(id) {
            Some(o) => mismatch(set, id, &what, (run, p), (other, o)),
            None => mismatch(set, id, &what, (run, p), (run, p)),
        });
    }
}

/// Step 2: with production's statistics, the verdicts of the full data.
fn compare_with_stats(set: &Set, full: &Run, prod: &Run, failures: &mut Vec<String>) {
    for (id, f) in &full.patches {
        let Some(p) = prod.get(id) else {
            failures.push(format!(
                "{}/{id}: missing from the {} report",
                set.name, prod.label
            ));
            continue;
        };
        let both = ((full, f), (prod, p));
        if !same_status(&f["status"], &p["status"]) {
            failures.push(mismatch(set, id, "status differs", both.0, both.1));
        }
        if f["classification"] != p["classification"] {
            failures.push(mismatch(set, id, "class differs", both.0, both.1));
        }
        // A size-judged cold reason on a table the baseline had: at
        // production's size here too.
        for r in sized_cold(f).into_iter().filter(|r| basis(r) == "staging") {
            match counterpart(p, r) {
                None => failures.push(mismatch(
                    set,
                    id,
                    &format!("{} is cold on the full data only", named(r)),
                    both.0,
                    both.1,
                )),
                Some(q) if basis(q) != "production" => failures.push(mismatch(
                    set,
                    id,
                    &format!(
                        "{} has size.basis {:?}, not \"production\"",
                        named(q),
                        basis(q)
                    ),
                    both.0,
                    both.1,
                )),
                Some(_) => {}
            }
        }
        // Nor may any other size-judged cold reason on a baseline table be
        // judged at another size than production's.
        for q in sized_cold(p) {
            if !matches!(basis(q), "production" | "new" | "declared") {
                failures.push(mismatch(
                    set,
                    id,
                    &format!(
                        "{} with --prod-stats has size.basis {:?}",
                        named(q),
                        basis(q)
                    ),
                    both.0,
                    both.1,
                ));
            }
        }
    }
}

/// Step 3: without statistics, never a silent live, and the size of a
/// table empty here unknown.
fn compare_without_stats(
    set: &Set,
    full: &Run,
    none: &Run,
    failures: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    for (id, f) in &full.patches {
        let Some(n) = none.get(id) else {
            failures.push(format!(
                "{}/{id}: missing from the {} report",
                set.name, none.label
            ));
            continue;
        };
        let both = ((full, f), (none, n));
        if f["status"] != n["status"] {
            notes.push(mismatch(set, id, "status differs", both.0, both.1));
        }
        match (f["classification"].as_str(), n["classification"].as_str()) {
            (Some("cold"), Some("live")) => {
                failures.push(mismatch(
                    set,
                    id,
                    "silent live: cold on the full data",
                    both.0,
                    both.1,
                ));
            }
            (Some("live"), Some("cold")) => {
                notes.push(mismatch(
                    set,
                    id,
                    "live on the full data, cold here",
                    both.0,
                    both.1,
                ));
            }
            _ => {}
        }
        for r in sized_cold(f)
            .into_iter()
            .filter(|r| basis(r) == "staging")
            .filter(|r| WORK_RULES.iter().any(|w| r["rule"] == *w))
        {
            match counterpart(n, r) {
                None => failures.push(mismatch(
                    set,
                    id,
                    &format!("{} is not cold without statistics", named(r)),
                    both.0,
                    both.1,
                )),
                Some(q)
                    if basis(q) != "unknown"
                        || !q["message"].as_str().unwrap_or("").contains(UNKNOWN) =>
                {
                    failures.push(mismatch(
                        set,
                        id,
                        &format!(
                            "{} does not name the size unknown (size.basis {:?})",
                            named(q),
                            basis(q)
                        ),
                        both.0,
                        both.1,
                    ))
                }
                Some(_) => {}
            }
        }
    }
}

#[test]
fn verdicts_at_production_size_match_the_full_data() {
    let started = Instant::now();
    let s = Scratch::new();
    let server = TcpServer::with_password(PASSWORD);
    let sets = sets(&s);
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    // One database per baseline: the rule fixtures share theirs.
    let mut made: BTreeMap<PathBuf, Production> = BTreeMap::new();
    let mut timings = Vec::new();
    for set in &sets {
        let set_started = Instant::now();
        if !made.contains_key(&set.baseline) {
            let db = format!("prod_{}", made.len());
            let p = production(&server, &s, &db, &set.baseline);
            made.insert(set.baseline.clone(), p);
        }
        let prod_files = &made[&set.baseline];
        let stats = prod_files.stats.to_str().unwrap();
        let runs = (
            check(&s, set, "full data", &set.baseline, &[]),
            check(
                &s,
                set,
                "schema with --prod-stats",
                &prod_files.schema,
                // One scale: the verdict is what is checked, not the fit.
                &["--prod-stats", stats, "--scales", "1"],
            ),
            check(&s, set, "schema alone", &prod_files.schema, &[]),
        );
        let (full, prod, none) = match runs {
            (Ok(f), Ok(p), Ok(n)) => (f, p, n),
            (f, p, n) => {
                failures.extend([f.err(), p.err(), n.err()].into_iter().flatten());
                continue;
            }
        };
        fixture_rule(set, &full, &prod, &mut failures);
        fixture_rule(set, &prod, &full, &mut failures);
        compare_with_stats(set, &full, &prod, &mut failures);
        compare_without_stats(set, &full, &none, &mut failures, &mut notes);
        timings.push(format!(
            "{}: {:.1} s (full {:.1} s, --prod-stats {:.1} s, alone {:.1} s)",
            set.name,
            set_started.elapsed().as_secs_f64(),
            full.seconds,
            prod.seconds,
            none.seconds
        ));
    }
    drop(server);
    s.assert_clean();
    println!("timings:\n{}", timings.join("\n"));
    println!(
        "{} sets in {:.1} s",
        sets.len(),
        started.elapsed().as_secs_f64()
    );
    println!("notes ({}):\n{}", notes.len(), notes.join("\n\n"));
    assert!(
        failures.is_empty(),
        "{} mismatches:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A patch production's statistics prove fails there: exit 1, its own
/// status in JSON, in the text report's table, in Markdown and in JUnit.
#[test]
fn a_predicted_failure_has_its_own_status_in_every_format() {
    let s = Scratch::new();
    let dir = tests_dir().join("fixtures/rules/predicted-failure");
    let baseline = tests_dir().join("fixtures/rules/baseline.sql");
    let mut args: Vec<String> = vec![
        dir.to_str().unwrap().into(),
        "--baseline".into(),
        baseline.to_str().unwrap().into(),
        "--keep-going".into(),
        "--scales".into(),
        "1".into(),
    ];
    args.extend(common::fixture_args(&dir));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, report, stderr) = s.check_json(&args);
    assert_eq!(code, 1, "{stderr}");
    let status = |id: &str| common::patch(&report, id)["status"].clone();
    assert_eq!(status("0001-bad"), "predicted-failure");
    assert_eq!(status("0002-good"), "ok");
    assert_eq!(status("0003-bad-set-not-null"), "predicted-failure");
    assert!(
        report["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains("[predicted-failure]")),
        "{}",
        report["failures"]
    );
    let saved = s.path().join("run.json");
    std::fs::write(&saved, report.to_string()).unwrap();
    let render = |format: &str| {
        let out = s.run(&["report", saved.to_str().unwrap(), "--format", format]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(render("text").contains("FAILS IN PRODUCTION"));
    assert!(render("markdown").contains("fails in production"));
    assert!(render("junit").contains("type=\"predicted-failure\""));
    s.assert_clean();
}
