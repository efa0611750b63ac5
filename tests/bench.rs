//! Repeated timing, cold cache, history and regressions, the server's own
//! clock, and the baseline cache.

mod common;

use common::{patch, Scratch};

#[test]
fn five_runs_of_a_known_sleep() {
    let s = Scratch::new();
    s.patch("0001-sleep.sql", "select pg_sleep(0.5);");
    let (code, report, stderr) =
        s.check_json(&["patches", "--runs", "5", "--warmup", "1", "--no-history"]);
    assert_eq!(code, 0, "{stderr}");
    let t = &report["timing"];
    assert_eq!(t["runs"], 5);
    assert_eq!(t["warmup"], 1);
    assert_eq!(t["statistic"], "median");
    let p = patch(&report, "0001-sleep");
    let st = &p["timing"]["warm"];
    assert_eq!(st["runs"], 5);
    let median = st["median"].as_f64().unwrap();
    assert!(
        (0.5 * 0.95..=0.5 * 1.05).contains(&median),
        "median {median}"
    );
    let (lo, hi) = (
        st["ci_low"].as_f64().unwrap(),
        st["ci_high"].as_f64().unwrap(),
    );
    assert!(
        lo <= median && median <= hi,
        "[{lo}, {hi}] does not contain {median}"
    );
    assert!(st["min"].as_f64().unwrap() <= lo && hi <= st["max"].as_f64().unwrap());
    assert_eq!(p["seconds"].as_f64().unwrap(), median, "the median decides");
    let stmt = &p["statements"][0]["stats"];
    assert_eq!(stmt["runs"], 5);
    // The server's own clock agrees, and is not slower than the client's.
    let server = p["statements"][0]["server_seconds"].as_f64().unwrap();
    let client = p["statements"][0]["seconds"].as_f64().unwrap();
    assert!(
        server > 0.45 && server <= client + 0.001,
        "server {server}, client {client}"
    );

    let (_, report, _) =
        s.check_json(&["patches", "--runs", "3", "--decide", "max", "--no-history"]);
    let p = patch(&report, "0001-sleep");
    assert_eq!(report["timing"]["statistic"], "max");
    assert_eq!(p["seconds"], p["timing"]["warm"]["max"]);
    s.assert_clean();
}

#[test]
fn bench_prints_statistics_per_patch_and_statement() {
    let s = Scratch::new();
    s.patch(
        "0001-a.sql",
        "create table t (id int);\ninsert into t select generate_series(1, 1000);",
    );
    let out = s.run(&["bench", "patches", "--runs", "3", "--warmup", "0"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("3 timed run(s)") && text.contains("95% CI of median"),
        "{text}"
    );
    assert!(
        text.contains("0001-a") && text.contains("line 2: insert into t"),
        "{text}"
    );
    s.assert_clean();
}

#[test]
fn cold_cache_restarts_the_server_before_each_timed_run() {
    let s = Scratch::new();
    s.baseline("create table t (id int, v int);\ninsert into t select g, g from generate_series(1, 20000) g;\n");
    s.patch("0001-scan.sql", "select count(*) from t;");
    let (code, report, stderr) =
        s.check_json(&["patches", "--runs", "2", "--cache", "both", "--no-history"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("cold cache: server restarted"), "{stderr}");
    let t = &report["timing"];
    assert_eq!(t["cache"], serde_json::json!(["warm", "cold"]));
    assert_eq!(t["server_restarts"], 2);
    assert!(t["os_cache_dropped"].is_boolean());
    let p = patch(&report, "0001-scan");
    assert_eq!(p["timing"]["warm"]["runs"], 2);
    assert_eq!(p["timing"]["cold"]["runs"], 2);
    // The cold figures decide.
    assert_eq!(p["seconds"], p["timing"]["cold"]["median"]);
    s.assert_clean();
}

#[test]
fn a_patch_three_times_slower_is_flagged_as_regressed() {
    let s = Scratch::new();
    s.patch("0001-work.sql", "select pg_sleep(0.1);");
    let (code, _, stderr) = s.check_json(&["patches", "--runs", "3"]);
    assert_eq!(code, 0, "{stderr}");
    // Unchanged: compared, not regressed.
    let (code, report, _) = s.check_json(&["patches", "--runs", "3", "--compare-history"]);
    assert_eq!(code, 0);
    let r = &patch(&report, "0001-work")["regression"];
    assert_eq!(r["regressed"], false, "{r}");
    assert_eq!(
        patch(&report, "0001-work")["history"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Three times slower.
    s.patch("0001-work.sql", "select pg_sleep(0.3);");
    let (code, report, _) = s.check_json(&["patches", "--runs", "3", "--compare-history"]);
    assert_eq!(code, 1);
    let r = &patch(&report, "0001-work")["regression"];
    assert_eq!(r["regressed"], true, "{r}");
    assert!(r["change_percent"].as_f64().unwrap() > 150.0);
    assert!(report["failures"].to_string().contains("regressed"));
    let history = std::fs::read_to_string(s.path().join("reports/history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 3);
    let out = s.run(&["history", "0001-work"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("0001-work")).count(),
        3,
        "{text}"
    );
    // The trend chart appears in the HTML report.
    let out = s.run(&["check", "patches", "--format", "html", "--no-history"]);
    assert_eq!(out.status.code(), Some(0));
    let html = std::fs::read_to_string(s.path().join("reports/report.html")).unwrap();
    assert!(html.contains("chart-trend"));
    s.assert_clean();
}

#[test]
fn the_baseline_cache_is_used_and_can_be_bypassed_and_cleared() {
    let s = Scratch::new();
    s.baseline("create table t (id int, v int);\ninsert into t select g, g from generate_series(1, 20000) g;\n");
    s.patch("0001-index.sql", "create index t_v on t (v);");
    let (_, first, _) = s.check_json(&["patches", "--no-history"]);
    assert_eq!(first["baseline"]["cache"], "miss");
    assert!(first["baseline"]["load_seconds"].as_f64().unwrap() > 0.0);
    let (code, second, stderr) = s.check_json(&["patches", "--no-history"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(second["baseline"]["cache"], "hit");
    assert_eq!(second["baseline"]["load_seconds"], 0.0);
    assert!(
        second["baseline"]["first_statement_seconds"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(patch(&second, "0001-index")["classification"], "cold");
    assert_eq!(
        patch(&second, "0001-index")["reasons"][0]["message"],
        patch(&first, "0001-index")["reasons"][0]["message"],
        "the cached cluster holds the same data"
    );
    // A changed baseline is a different key.
    s.baseline("create table t (id int, v int);\ninsert into t select g, g from generate_series(1, 10) g;\n");
    let (_, third, _) = s.check_json(&["patches", "--no-history"]);
    assert_eq!(third["baseline"]["cache"], "miss");
    let (_, off, _) = s.check_json(&["patches", "--no-history", "--no-cache"]);
    assert_eq!(off["baseline"]["cache"], "off");
    let out = s.run(&["cache", "clear"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 2"));
    s.assert_clean();
}
