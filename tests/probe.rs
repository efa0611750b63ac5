//! The application probe (`--probe`) on the real embedded PostgreSQL: what
//! simulated application traffic waits for while patches apply, checked
//! against what the rules infer.

mod common;

use std::path::{Path, PathBuf};

use common::{patch, rules, Scratch};

/// The tests of this file run one at a time: each compares waits with
/// thresholds, which another test's server working beside it would
/// lengthen.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
use downtime::verdict::rules::Measured;
use downtime::verdict::RULES;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules")
}

/// The rule fixtures' baseline with more rows where the scan and build
/// rules work (account, payment, measurement's partition, measurement_2025): enough that each bad
/// fixture's blocking work outlasts the probe's threshold and its period.
fn scaled_baseline(s: &Scratch) -> PathBuf {
    let mut text = std::fs::read_to_string(fixtures().join("baseline.sql")).unwrap();
    for (from, to) in [
        ("from generate_series(1, 20000) g;", "from generate_series(1, 1000000) g;"),
        ("from generate_series(1, 50000) g;", "from generate_series(1, 500000) g;"),
        (
            "insert into measurement select g, date '2024-01-01' + (g % 300), g from generate_series(1, 10000) g;",
            "insert into measurement select g, date '2024-01-01' + (g % 300), g from generate_series(1, 4000000) g;",
        ),
        (
            "insert into measurement_2025 select g, date '2025-01-01' + (g % 300), g from generate_series(1, 10000) g;",
            "insert into measurement_2025 select g, date '2025-01-01' + (g % 300), g from generate_series(1, 2000000) g;",
        ),
    ] {
        assert_eq!(text.matches(from).count(), 1, "the fixtures' baseline changed: {from}");
        text = text.replace(from, to);
    }
    let path = s.path().join("scaled-baseline.sql");
    std::fs::write(&path, text).unwrap();
    path
}

fn probe(p: &Value) -> &Value {
    assert!(p["probe"].is_object(), "no probe in {}", p["id"]);
    &p["probe"]
}

/// Relations where the probe saw queries wait on the patch's locks.
fn stalled(p: &Value) -> Vec<String> {
    probe(p)["by_relation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["relation"].as_str().unwrap().to_string())
        .collect()
}

/// Every rule's fixtures with the probe, on one cached baseline: no patch
/// the rules found live is measured blocking (but measured-blocking's own
/// bad one); a rule whose work stalls the application shows the stall on
/// the relation it names for each bad fixture and none for the good ones;
/// a rule that does not block by itself shows none on a bad fixture that
/// no stalling rule also flags.
#[test]
fn every_rule_fixture_pair_agrees_with_the_probe() {
    let _serial = one_at_a_time();
    let s = Scratch::new();
    let baseline = scaled_baseline(&s);
    let stalling: Vec<&str> = RULES
        .iter()
        .filter(|r| r.measured == Measured::Stalls)
        .map(|r| r.id.as_str())
        .collect();
    for rule in RULES {
        let id = rule.id.as_str();
        let dir = fixtures().join(id);
        let mut args: Vec<String> = vec![
            dir.to_str().unwrap().into(),
            "--baseline".into(),
            baseline.to_str().unwrap().into(),
            "--keep-going".into(),
            "--probe-rate".into(),
            "25".into(),
        ];
        args.extend(common::fixture_args(&dir));
        if !args.iter().any(|a| a == "--probe") {
            args.push("--probe".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, report, stderr) = s.check_json(&args);
        for p in report["patches"].as_array().unwrap() {
            let name = p["id"].as_str().unwrap();
            let found = rules(p);
            let bad = name.contains("bad");
            let measured = found.iter().any(|r| r == "measured-blocking");
            assert_eq!(
                measured,
                id == "measured-blocking" && bad,
                "{id}/{name}: the rules and the probe disagree: {found:?}\n{}\n{stderr}",
                p["probe"]
            );
            match rule.measured {
                Measured::Stalls if bad => {
                    let named: Vec<&str> = p["reasons"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|r| r["rule"] == id)
                        .filter_map(|r| r["relation"].as_str())
                        .collect();
                    assert!(!named.is_empty(), "{id}/{name}: the rule names no relation");
                    let seen = stalled(p);
                    for rel in named {
                        assert!(
                            seen.iter().any(|s| s == rel),
                            "{id}/{name}: no stall measured on {rel}: {}",
                            p["probe"]
                        );
                    }
                }
                Measured::Stalls => assert_eq!(
                    probe(p)["blocked_queries"],
                    0,
                    "{id}/{name}: a good fixture stalled the application: {}",
                    p["probe"]
                ),
                Measured::NotByItself(_) if bad => {
                    let stalls_too = found.iter().any(|r| stalling.contains(&r.as_str()));
                    if !stalls_too {
                        assert_eq!(
                            probe(p)["blocked_queries"],
                            0,
                            "{id}/{name}: flagged as not blocking, yet it stalled: {}",
                            p["probe"]
                        );
                    }
                }
                Measured::NotByItself(_) => {}
            }
        }
    }
    s.assert_clean();
}

/// A table of 1.5 M rows.
const BIG: &str = "create table big (id bigint primary key, v int not null, t text not null);\n\
    insert into big select g, g % 1000, md5(g::text) from generate_series(1, 1500000) g;\n\
    analyze big;\n";

/// A rewrite blocks the application for as long as it runs; a concurrent
/// index build does not.
#[test]
fn a_rewrite_blocks_the_application_for_its_length_and_a_concurrent_build_does_not() {
    let _serial = one_at_a_time();
    let s = Scratch::new();
    s.baseline(BIG);
    s.patch(
        "0001-rewrite.sql",
        "alter table big alter column v type bigint;\n",
    );
    s.patch(
        "0002-concurrently.sql",
        "create index concurrently big_t_idx on big (t);\n",
    );
    let (code, report, stderr) = s.check_json(&["patches", "--probe", "--no-cache"]);
    assert_eq!(code, 0, "{stderr}");
    let rewrite = patch(&report, "0001-rewrite");
    let took = rewrite["statements"][0]["seconds"].as_f64().unwrap();
    let worst = probe(rewrite)["max_wait_seconds"].as_f64().unwrap();
    assert!(
        worst >= 0.8 * took,
        "the rewrite took {took} s, the worst wait was {worst} s: {}",
        rewrite["probe"]
    );
    assert_eq!(stalled(rewrite), ["public.big"]);
    assert_eq!(
        probe(rewrite)["by_relation"][0]["lock_mode"],
        "AccessExclusive"
    );
    assert_eq!(probe(rewrite)["by_relation"][0]["statement_line"], 1);
    let idx = patch(&report, "0002-concurrently");
    let worst = probe(idx)["max_wait_seconds"].as_f64().unwrap();
    assert!(
        worst < 0.25,
        "CREATE INDEX CONCURRENTLY kept a query waiting {worst} s: {}",
        idx["probe"]
    );
    assert!(
        probe(idx)["queries"].as_u64().unwrap() > 10,
        "{}",
        idx["probe"]
    );
    assert_eq!(idx["classification"], "live");
    // The workload and its settings are recorded once, at the top.
    let info = &report["probe"];
    assert_eq!(info["threshold_seconds"], 0.05);
    assert!(info["queries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["kind"] == "write" && q["relation"] == "public.big"));
    s.assert_clean();
}

/// A reader that was there first makes a catalogue-only ALTER TABLE wait,
/// and every application query queues behind the ALTER; lock_timeout
/// bounds the queue.
#[test]
fn a_long_reader_queues_the_application_behind_a_catalogue_only_alter() {
    let _serial = one_at_a_time();
    let s = Scratch::new();
    s.baseline(
        "create table account (id int primary key, email text);\n\
         insert into account select g, 'u' || g from generate_series(1, 1000) g;\n",
    );
    s.patch(
        "0001-add.sql",
        "alter table account add column nickname text;\n",
    );
    s.patch(
        "0002-add-bounded.sql",
        "set lock_timeout = '500ms';\nalter table account add column nickname2 text;\n",
    );
    let saved = s.path().join("report.json");
    let (code, report, stderr) = s.check_json(&[
        "patches",
        "--probe-long-query",
        "3",
        "--keep-going",
        "--no-cache",
        "--output",
        saved.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "the bounded patch gives up: {stderr}");
    let add = patch(&report, "0001-add");
    let p = probe(add);
    assert!(
        p["max_wait_seconds"].as_f64().unwrap() >= 2.0,
        "application queries should have queued behind the ALTER: {p}"
    );
    let q = &p["long_query"];
    assert_eq!(q["statement_line"], 1, "{p}");
    assert_eq!(q["lock_timeout"], "0");
    assert!(q["queued_queries"].as_u64().unwrap() >= 10, "{p}");
    assert!(q["waited_seconds"].as_f64().unwrap() >= 2.0, "{p}");
    assert_eq!(stalled(add), ["public.account"]);
    // The ALTER waited for its lock and then held it briefly: the wait is
    // not hold time, so it is not long-lock; what made it cold is the queue
    // the probe measured.
    let lock = &add["statements"][0]["locks"][0];
    assert_eq!(lock["relation"], "public.account", "{lock}");
    assert!(lock["waited_seconds"].as_f64().unwrap() >= 2.0, "{lock}");
    assert!(lock["held_seconds"].as_f64().unwrap() < 1.0, "{lock}");
    assert_eq!(rules(add), ["measured-blocking"]);
    assert_eq!(add["classification"], "cold");
    let bounded = patch(&report, "0002-add-bounded");
    assert_eq!(bounded["status"], "failed");
    let p = probe(bounded);
    let worst = p["max_wait_seconds"].as_f64().unwrap();
    assert!(worst < 1.5, "lock_timeout should bound the queue: {p}");
    assert_eq!(p["long_query"]["lock_timeout"], "500ms", "{p}");
    // The saved report renders what the application felt.
    let saved = saved.to_str().unwrap();
    let md = s.run(&["report", saved, "--format", "markdown"]);
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(md.contains("What the application felt"), "{md}");
    assert!(md.contains("queued behind line 1"), "{md}");
    let text = s.run(&["report", saved, "--format", "text"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("lock queue: the statement at line 1 waited"),
        "{text}"
    );
    assert!(text.contains("SET lock_timeout bounds this"), "{text}");
    let dir = s.path().join("html");
    let out = s.run(&[
        "report",
        saved,
        "--format",
        "html",
        "--output-dir",
        dir.to_str().unwrap(),
    ]);
    // `report` exits with the saved verdict (a failure here).
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("<h2>What the application felt</h2>"),
        "{html}"
    );
    assert!(
        html.contains("What the application felt: 0001-add"),
        "the timeline chart"
    );
    s.assert_clean();
}

/// The application's own queries: a pgbench-style script and a file of
/// one statement per line, from the flag and from downtime.toml; a bad
/// file is an input error naming its line.
#[test]
fn the_applications_own_queries_are_sent_and_bad_ones_refused() {
    let _serial = one_at_a_time();
    let s = Scratch::new();
    s.baseline(
        "create table item (id int primary key, qty int);\n\
         insert into item select g, g from generate_series(1, 300000) g;\n",
    );
    s.patch(
        "0001-rewrite.sql",
        "alter table item alter column qty type bigint;\n",
    );
    let bench = s.path().join("app.pgbench");
    std::fs::write(
        &bench,
        "-- rate: 20\n\\set id random(1, 300000)\nselect * from item where id = :id;\nupdate item set qty = qty + 1 where id = :id;\n",
    )
    .unwrap();
    let (code, report, stderr) = s.check_json(&[
        "patches",
        "--probe-sql",
        bench.to_str().unwrap(),
        "--probe-sql-only",
        "--no-cache",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let queries = report["probe"]["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 1, "{queries:?}");
    assert_eq!(queries[0]["kind"], "script");
    assert_eq!(queries[0]["rate"], 20.0);
    assert!(queries[0]["label"]
        .as_str()
        .unwrap()
        .ends_with("app.pgbench:2"));
    let p = probe(patch(&report, "0001-rewrite"));
    assert!(p["queries"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(p["failed_queries"], 0, "{p}");

    // From downtime.toml, paths relative to it.
    std::fs::write(
        s.path().join("lines.sql"),
        "select count(*) from item;\nselect * from item where id = 7\n",
    )
    .unwrap();
    std::fs::write(
        s.path().join("downtime.toml"),
        "[probe]\nenabled = true\nsql = [\"lines.sql\"]\nrate = 5\n",
    )
    .unwrap();
    let (code, report, stderr) = s.check_json(&["patches", "--no-cache"]);
    assert_eq!(code, 0, "{stderr}");
    let queries = report["probe"]["queries"].as_array().unwrap();
    assert_eq!(
        queries.iter().filter(|q| q["kind"] == "script").count(),
        2,
        "{queries:?}"
    );
    assert!(
        queries.iter().any(|q| q["kind"] == "read"),
        "derived ones too"
    );
    let (code, report, _) = s.check_json(&["patches", "--no-cache", "--no-probe"]);
    assert_eq!(code, 0);
    assert!(report["probe"].is_null());
    std::fs::remove_file(s.path().join("downtime.toml")).unwrap();

    for (text, line) in [
        ("select 1;\nbegin;\n", 2),
        ("select pg_read_file('/etc/passwd')\n", 1),
        ("select * from\n", 1),
    ] {
        let bad = s.path().join("bad.sql");
        std::fs::write(&bad, text).unwrap();
        let out = s.run(&["check", "patches", "--probe-sql", bad.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(
            stderr.contains(&format!("bad.sql:{line}:")),
            "{text}: {stderr}"
        );
    }
    for flag in [
        ["--probe-rate", "0"],
        ["--probe-sessions", "0"],
        ["--probe-long-query", "-1"],
    ] {
        let out = s.run(&["check", "patches", flag[0], flag[1]]);
        assert_eq!(out.status.code(), Some(2), "{flag:?}");
    }
    s.assert_clean();
}

/// Ctrl-C while a probed patch runs (and its long reader holds its lock):
/// the run stops with 130 and leaves no server, session or file behind.
#[test]
fn an_interrupted_probed_run_leaves_nothing_behind() {
    let _serial = one_at_a_time();
    let s = Scratch::new();
    s.baseline(
        "create table t (id int primary key, v int);\n\
         insert into t select g, g from generate_series(1, 20000) g;\n",
    );
    s.patch(
        "0001-slow.sql",
        "alter table t add column w int;\nselect pg_sleep(30);\n",
    );
    let child = s.spawn_until(
        &["check", "patches", "--probe-long-query", "20", "--no-cache"],
        std::process::Stdio::null(),
        "applying 0001-slow",
        std::time::Duration::from_secs(60),
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    s.assert_clean();
}
