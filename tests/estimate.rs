//! Production-size estimates: statistics export, scaled copies that keep
//! foreign keys consistent, the models' accuracy, growth forecasts, and
//! gating on the estimate.

mod common;

use common::{patch, psql, Scratch};
use downtime::staging::embedded::{Embedded, EmbeddedOptions};
use downtime::staging::Backend;

fn stats_file(s: &Scratch, tables: &[(&str, f64, Option<f64>)]) -> String {
    let tables: Vec<serde_json::Value> = tables
        .iter()
        .map(|(name, rows, growth)| {
            serde_json::json!({"name": name, "rows": rows, "pages": 0, "total_bytes": 0, "table_bytes": 0,
                "inserts": null, "updates": null, "deletes": null, "stats_since": null, "monthly_growth": growth})
        })
        .collect();
    let doc = serde_json::json!({"schema_version": 1, "exported_at": "2026-11-22T00:00:00Z",
        "server_version": "15", "source": "test", "tables": tables});
    let path = s.path().join("prod-stats.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

fn seconds(report: &serde_json::Value, id: &str) -> f64 {
    patch(report, id)["seconds"].as_f64().unwrap()
}

/// The tests of this file run one at a time: the accuracy test compares
/// timings, which another test's server running beside it would distort.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One comparison of the estimate from small scales with the measured full
/// size: per patch, (id, predicted, measured, error), after checking the
/// estimate's shape.
fn compare_once(s: &Scratch, stats: &str, attempt: usize) -> Vec<(String, f64, f64, f64)> {
    let estimate = [
        "patches",
        "--prod-stats",
        stats,
        "--scales",
        "0.05,0.1,0.15,0.2,0.25",
        "--runs",
        "5",
        "--no-history",
        "--pg-conf",
        "serial.conf",
    ];
    let full = [
        "patches",
        "--runs",
        "5",
        "--no-history",
        "--pg-conf",
        "serial.conf",
    ];
    // Later attempts measure the full size first, so a disturbance that
    // lasts a while falls on the other side of the comparison.
    let ((code_e, est, stderr_e), (code_f, full, stderr_f)) = if attempt % 2 == 0 {
        (s.check_json(&estimate), s.check_json(&full))
    } else {
        let f = s.check_json(&full);
        (s.check_json(&estimate), f)
    };
    assert_eq!(code_e, 0, "{stderr_e}");
    assert_eq!(code_f, 0, "{stderr_f}");
    assert_eq!(
        est["estimate"]["scales"],
        serde_json::json!([0.05, 0.1, 0.15, 0.2, 0.25])
    );
    let mut out = Vec::new();
    for id in ["0001-rewrite", "0002-index", "0003-update"] {
        let e = &patch(&est, id)["estimate"];
        let predicted = e["seconds"].as_f64().unwrap();
        let measured = seconds(&full, id);
        let error = (predicted - measured) / measured;
        println!(
            "attempt {attempt}, {id}: full-size runs {}; points {}",
            patch(&full, id)["timing"],
            e["statements"][0]["points"]
        );
        println!(
            "attempt {attempt}, {id}: predicted {predicted:.3} s ({}), measured {measured:.3} s ({:+.0} %)",
            e["statements"][0]["model"],
            error * 100.0
        );
        assert_eq!(e["complete"], true);
        assert_eq!(e["statements"][0]["relation"], "public.item");
        assert_eq!(e["statements"][0]["points"].as_array().unwrap().len(), 5);
        assert!(
            e["low"].as_f64().unwrap() <= predicted && predicted <= e["high"].as_f64().unwrap()
        );
        out.push((id.to_string(), predicted, measured, error));
    }
    out
}

/// The acceptance measurement (about two minutes per attempt): predictions
/// from 5–25 % scales against the measured full size, each within ±25 %.
/// `--nocapture` prints the points, the full-size runs and each error.
///
/// A shared machine can slow one side of the comparison (another process's
/// disk flushes during the full-size runs made them 0.97–1.39 s against a
/// steady 0.87 µs per row at the small scales): a comparison outside ±25 %
/// is taken again, up to three attempts in all, alternating which side is
/// measured first. A model that is wrong misses on every attempt and fails.
#[test]
fn predictions_from_small_scales_match_the_full_size_within_25_percent() {
    const ATTEMPTS: usize = 3;
    let _serial = one_at_a_time();
    let s = Scratch::new();
    s.baseline(
        "create table item (id bigint primary key, owner int not null, price int not null, note text not null);\n\
         insert into item select g, g % 1000, g % 997, md5(g::text) from generate_series(1, 1000000) g;\nanalyze;\n",
    );
    s.patch(
        "0001-rewrite.sql",
        "alter table item alter column price type bigint;",
    );
    s.patch(
        "0002-index.sql",
        "create index item_owner_idx on item (owner, price);",
    );
    s.patch("0003-update.sql", "update item set price = price + 1;");
    // Production is the staging data at full size.
    let stats = stats_file(&s, &[("public.item", 1_000_000.0, None)]);
    // PostgreSQL builds an index in parallel only once the table is large
    // enough, so small-scale runs build serially and overestimate a large
    // build (by about 45 % here); the comparison holds the method constant.
    std::fs::write(
        s.path().join("serial.conf"),
        "max_parallel_maintenance_workers = 0\nshared_buffers = '1GB'\nmin_wal_size = '2GB'\nmax_wal_size = '4GB'\n",
    )
    .unwrap();
    let mut misses = Vec::new();
    for attempt in 0..ATTEMPTS {
        let results = compare_once(&s, &stats, attempt);
        let missed: Vec<String> = results
            .iter()
            .filter(|(_, _, _, error)| error.abs() > 0.25)
            .map(|(id, predicted, measured, error)| {
                format!(
                    "{id}: predicted {predicted:.3} s, measured {measured:.3} s ({:+.0} %)",
                    error * 100.0
                )
            })
            .collect();
        if missed.is_empty() {
            s.assert_clean();
            return;
        }
        misses.push(format!("attempt {attempt}: {}", missed.join("; ")));
    }
    panic!(
        "predictions outside ±25 % on all {ATTEMPTS} attempts:\n{}",
        misses.join("\n")
    );
}

#[test]
fn forecast_missing_tables_and_gating_on_the_estimate() {
    let _serial = one_at_a_time();
    let s = Scratch::new();
    s.baseline(
        "create table parent (id int primary key, v int);\n\
         insert into parent select g, g from generate_series(1, 20000) g;\n\
         create table child (id int primary key, parent_id int references parent (id), v int);\n\
         insert into child select g, 1 + g % 20000, g from generate_series(1, 40000) g;\n\
         create table other (id int);\ninsert into other select generate_series(1, 1000);\nanalyze;\n",
    );
    s.patch("0001-child.sql", "update child set v = v + 1;");
    s.patch("0002-other.sql", "update other set id = id + 1;");
    // Production has 100 times the rows of child; `other` is unknown there.
    let stats = stats_file(
        &s,
        &[
            ("public.parent", 2e6, None),
            ("public.child", 4e6, Some(0.05)),
        ],
    );
    let (code, report, stderr) = s.check_json(&[
        "patches",
        "--prod-stats",
        &stats,
        "--scales",
        "0.25,0.5,1",
        "--no-history",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let child = &patch(&report, "0001-child")["estimate"];
    assert!(child["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(child["statements"][0]["relation"], "public.child");
    assert_eq!(child["statements"][0]["production_rows"], 4e6);
    assert_eq!(child["complete"], true);
    assert_eq!(
        child["monthly_growth"], 0.05,
        "the stats file's rate is used"
    );
    assert!(child["fits_until"].is_string());
    // child has a primary key, so each new row version goes into an index;
    // other has no index: a pass over the rows.
    let work = |id: &str| patch(&report, id)["statements"][0]["work"]["kind"].clone();
    assert_eq!(work("0001-child"), "update");
    assert_eq!(work("0002-other"), "write");
    // One point per scale, the fit over every run of each.
    assert_eq!(
        child["statements"][0]["points"].as_array().unwrap().len(),
        3
    );
    let other = &patch(&report, "0002-other")["estimate"];
    assert_eq!(other["complete"], false);
    assert_eq!(other["missing_tables"], serde_json::json!(["public.other"]));
    assert!(other["statements"][0]["note"]
        .as_str()
        .unwrap()
        .contains("not in the stats file"));
    // The scaled copies kept the foreign key: every child row at 25 % has its parent.
    let rows = |scale_index: usize| {
        patch(&report, "0001-child")["estimate"]["statements"][0]["points"][scale_index][0]
            .as_f64()
            .unwrap()
    };
    assert!(
        rows(0) > 0.15 * 40000.0 && rows(0) < 0.35 * 40000.0,
        "child rows at 25 %: {}",
        rows(0)
    );

    // Every format shows the estimate; the HTML and chart files draw the scaling.
    let out = s.run(&[
        "check",
        "patches",
        "--prod-stats",
        &stats,
        "--scales",
        "0.5,1",
        "--no-history",
        "--format",
        "text,json,markdown,html,junit",
        "--output-dir",
        "out",
        "--charts",
        "svg",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("estimate: "));
    let md = std::fs::read_to_string(s.path().join("out/report.md")).unwrap();
    assert!(
        md.contains("production estimate") && md.contains("in production"),
        "{md}"
    );
    let html = std::fs::read_to_string(s.path().join("out/report.html")).unwrap();
    assert!(html.contains("chart-scaling-0001-child"));
    assert!(std::fs::read_to_string(s.path().join("out/junit.xml"))
        .unwrap()
        .contains("estimate: "));
    assert!(s.path().join("out/scaling-0001-child.svg").is_file());
    let again = s.run(&[
        "report",
        "out/report.json",
        "--format",
        "html",
        "--output-dir",
        "again",
    ]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(std::fs::read_to_string(s.path().join("again/report.html"))
        .unwrap()
        .contains("fitted model"));

    // Gating on the estimate: 100× the rows does not fit a small budget.
    let (code, report, _) = s.check_json(&[
        "patches",
        "--prod-stats",
        &stats,
        "--scales",
        "0.5,1",
        "--decide",
        "estimate",
        "--budget",
        "0.001",
        "--timeout",
        "60",
        "--no-history",
    ]);
    assert_eq!(code, 1);
    let failures = report["failures"].to_string();
    assert!(
        failures.contains("0001-child is estimated at"),
        "{failures}"
    );
    assert!(
        failures.contains("no estimate for public.other"),
        "{failures}"
    );
    let out = s.run(&["check", "patches", "--decide", "estimate"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--decide estimate needs --prod-stats"
    );
    s.assert_clean();
}

#[test]
fn stats_export_reads_a_database_read_only() {
    let _serial = one_at_a_time();
    let source = Embedded::start_blocking(&EmbeddedOptions::default()).unwrap();
    psql(&source, "postgres", "create database shop");
    psql(&source, "shop", "create table orders (id int, v text); insert into orders select g, md5(g::text) from generate_series(1, 5000) g; analyze orders;");
    let s = Scratch::new();
    let args = source.client_args("shop");
    let url = format!(
        "postgresql://downtime:s3cr3t@/shop?host={}&port={}",
        args[1], args[3]
    );
    let out = s.run(&["stats", "export", "--url", &url, "-o", "prod.json"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("s3cr3t"));
    let file = std::fs::read_to_string(s.path().join("prod.json")).unwrap();
    assert!(!file.contains("s3cr3t"));
    let stats: serde_json::Value = serde_json::from_str(&file).unwrap();
    let orders = stats["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "public.orders")
        .unwrap();
    assert_eq!(orders["rows"], 5000.0);
    assert!(orders["total_bytes"].as_i64().unwrap() > 0);
    assert!(orders["inserts"].as_i64().unwrap() >= 5000);
    let help = String::from_utf8_lossy(&s.run(&["stats", "export", "--help"]).stdout).into_owned();
    assert!(
        help.contains("read-only") && help.contains("production"),
        "{help}"
    );
}
