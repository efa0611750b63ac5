//! `downtime stats export` on a real server: what production's verdict
//! needs (kinds, parents, rows where known, sizes, TOAST, indexes, column
//! statistics) and no data values unless asked; and the file it writes
//! read back by `check` and `estimate`.

mod common;

use common::{patch, psql, text, Scratch};
use downtime::staging::embedded::{Embedded, EmbeddedOptions};
use downtime::staging::Backend;
use serde_json::Value;

/// A partitioned table with two partitions, one of them sub-partitioned; a
/// table never analysed; an analysed one with a TOASTed text column and
/// unique, expression and partial indexes; an inheritance child; a
/// materialized view. Autovacuum is off where it could analyse what the
/// test needs unanalysed.
const PRODUCTION: &str = "\
create table m (id int, region text, v int) partition by list (region);
create table m_eu partition of m for values in ('eu') partition by range (id);
create table m_eu_low partition of m_eu for values from (0) to (1000);
create table m_eu_high partition of m_eu for values from (1000) to (100000);
create table m_us partition of m for values in ('us');
create index m_v on m (v);
insert into m select g, case when g % 2 = 0 then 'eu' else 'us' end, g from generate_series(1, 5000) g;
analyze m;
create table fresh (id int, v text) with (autovacuum_enabled = false);
insert into fresh select g, 'x' from generate_series(1, 300) g;
create table doc (id int primary key, code text not null, tag text, body text);
alter table doc alter column body set storage external;
create unique index doc_code on doc (code) include (tag);
create index doc_lower on doc (lower(code));
create index doc_recent on doc (id, tag) where id > 100;
insert into doc select g, 'c' || g, case when g % 3 = 0 then 'Pl4nted-A' else 'Pl4nted-B' end,
  repeat(md5(g::text), 100) from generate_series(1, 200) g;
analyze doc;
create table base (id int, v int);
create table kid (extra int) inherits (base);
insert into base select g, g from generate_series(1, 100) g;
insert into kid select g, g, g from generate_series(1, 50) g;
analyze base; analyze kid;
create materialized view mv with (autovacuum_enabled = false) as
  select region, count(*) from m group by region;";

/// A server holding [`PRODUCTION`] in database `shop`, and its URL.
fn production() -> (Embedded, String) {
    let server = Embedded::start_blocking(&EmbeddedOptions::default()).unwrap();
    psql(&server, "postgres", "create database shop");
    psql(&server, "shop", PRODUCTION);
    let args = server.client_args("shop");
    let url = format!(
        "postgresql://downtime@/shop?host={}&port={}",
        args[1], args[3]
    );
    (server, url)
}

/// `stats export` to `file`, with `extra` flags: its stdout and the file.
fn export(s: &Scratch, url: &str, file: &str, extra: &[&str]) -> (String, Value) {
    let mut args = vec!["stats", "export", "--url", url, "-o", file];
    args.extend_from_slice(extra);
    let out = s.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json = std::fs::read_to_string(s.path().join(file)).unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        serde_json::from_str(&json).unwrap(),
    )
}

fn table<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {stats}"))
}

fn column<'a>(t: &'a Value, name: &str) -> &'a Value {
    t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no column {name} in {t}"))
}

fn int(t: &Value, key: &str) -> i64 {
    t[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} of {t} is not an integer"))
}

#[test]
fn export_records_kinds_parents_sizes_indexes_and_column_statistics() {
    let (_server, url) = production();
    let s = Scratch::new();
    let (stdout, stats) = export(&s, &url, "prod.json", &[]);
    assert_eq!(stats["schema_version"], 2);
    assert_eq!(stats["with_values"], false);
    let names: Vec<&str> = stats["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "public.base",
            "public.doc",
            "public.fresh",
            "public.kid",
            "public.m",
            "public.m_eu",
            "public.m_eu_high",
            "public.m_eu_low",
            "public.m_us",
            "public.mv"
        ]
    );
    assert!(
        stdout.contains("wrote 10 tables of ") && stdout.contains("without data values"),
        "{stdout}"
    );

    // Kinds and parents: partitions, a sub-partition, an inheritance child.
    for (name, kind, parent) in [
        ("public.m", "partitioned", Value::Null),
        ("public.m_eu", "partitioned", "public.m".into()),
        ("public.m_us", "table", "public.m".into()),
        ("public.m_eu_low", "table", "public.m_eu".into()),
        ("public.m_eu_high", "table", "public.m_eu".into()),
        ("public.kid", "table", "public.base".into()),
        ("public.base", "table", Value::Null),
        ("public.mv", "matview", Value::Null),
    ] {
        let t = table(&stats, name);
        assert_eq!(t["kind"], kind, "{t}");
        assert_eq!(t["parent"], parent, "{t}");
    }

    // Never analysed: rows unknown, not 0; no statistics.
    let fresh = table(&stats, "public.fresh");
    assert_eq!(fresh["rows"], Value::Null, "{fresh}");
    assert_eq!(fresh["analysed_at"], Value::Null, "{fresh}");
    assert_eq!(fresh["columns"], serde_json::json!([]));
    assert!(int(fresh, "table_bytes") > 0);
    assert_eq!(table(&stats, "public.mv")["rows"], Value::Null);

    // A partitioned table: its leaves' rows and sizes, no pages of its own.
    let rows = |name: &str| table(&stats, name)["rows"].as_f64().unwrap();
    let sum = |names: &[&str], key: &str| -> i64 {
        names.iter().map(|n| int(table(&stats, n), key)).sum()
    };
    let leaves = ["public.m_us", "public.m_eu_low", "public.m_eu_high"];
    assert_eq!(rows("public.m_eu_low") + rows("public.m_eu_high"), 2500.0);
    assert_eq!(rows("public.m_us"), 2500.0);
    assert_eq!(rows("public.m"), 5000.0);
    assert_eq!(
        rows("public.m_eu"),
        rows("public.m_eu_low") + rows("public.m_eu_high")
    );
    let m = table(&stats, "public.m");
    assert_eq!(m["pages"], Value::Null, "{m}");
    assert_eq!(table(&stats, "public.m_eu")["pages"], Value::Null);
    assert!(int(table(&stats, "public.m_us"), "pages") > 0);
    for key in ["table_bytes", "total_bytes", "toast_bytes", "inserts"] {
        assert_eq!(int(m, key), sum(&leaves, key), "{key} of {m}");
    }
    assert!(int(m, "table_bytes") > 0);
    // The partitioned index's bytes are its partitions'.
    assert_eq!(m["indexes"][0]["name"], "public.m_v");
    assert_eq!(
        int(&m["indexes"][0], "bytes"),
        leaves
            .iter()
            .map(|n| int(&table(&stats, n)["indexes"][0], "bytes"))
            .sum::<i64>()
    );
    // Its statistics are over the whole hierarchy: both regions.
    assert_eq!(column(m, "region")["n_distinct"], 2.0);
    assert_eq!(
        column(table(&stats, "public.m_us"), "region")["n_distinct"],
        1.0
    );

    // TOAST holds doc's bodies; base has no TOAST table at all.
    let doc = table(&stats, "public.doc");
    assert_eq!(doc["rows"], 200.0);
    assert!(int(doc, "toast_bytes") > 500_000, "{doc}");
    assert!(
        int(doc, "toast_bytes") > 10 * int(doc, "table_bytes"),
        "{doc}"
    );
    assert!(int(doc, "total_bytes") >= int(doc, "toast_bytes") + int(doc, "table_bytes"));
    assert_eq!(int(table(&stats, "public.base"), "toast_bytes"), 0);
    assert!(doc["analysed_at"].as_str().unwrap().ends_with('Z'), "{doc}");

    // Indexes: uniqueness, key columns in order, none for an expression.
    let index = |name: &str| {
        doc["indexes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("no index {name} in {doc}"))
            .clone()
    };
    for (name, unique, columns, partial) in [
        ("public.doc_pkey", true, vec!["id"], false),
        ("public.doc_code", true, vec!["code"], false),
        ("public.doc_lower", false, vec![], false),
        ("public.doc_recent", false, vec!["id", "tag"], true),
    ] {
        let i = index(name);
        assert_eq!(i["unique"], unique, "{i}");
        assert_eq!(i["columns"], serde_json::json!(columns), "{i}");
        assert_eq!(i["partial"], partial, "{i}");
        assert!(int(&i, "bytes") > 0, "{i}");
    }

    // Column statistics without a data value.
    let id = column(doc, "id");
    assert_eq!(id["n_distinct"], -1.0);
    assert_eq!(id["null_frac"], 0.0);
    assert_eq!(id["avg_width"], 4);
    assert_eq!(id["correlation"], 1.0);
    let tag = column(doc, "tag");
    assert_eq!(tag["n_distinct"], 2.0);
    for c in doc["columns"].as_array().unwrap() {
        for key in ["most_common_vals", "most_common_freqs", "histogram_bounds"] {
            assert!(c.get(key).is_none(), "{key} in {c}");
        }
    }
    let file = std::fs::read_to_string(s.path().join("prod.json")).unwrap();
    assert!(!file.contains("Pl4nted"), "a data value in the file");

    // With --with-values: the values, and the file says so.
    let (stdout, stats) = export(&s, &url, "values.json", &["--with-values"]);
    assert!(stdout.contains("with data values"), "{stdout}");
    assert_eq!(stats["with_values"], true);
    let doc = table(&stats, "public.doc");
    let tag = column(doc, "tag");
    assert_eq!(
        tag["most_common_vals"],
        serde_json::json!(["Pl4nted-B", "Pl4nted-A"])
    );
    let freqs: Vec<f64> = tag["most_common_freqs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_f64().unwrap())
        .collect();
    assert!(
        (freqs[0] - 0.67).abs() < 0.01 && (freqs[1] - 0.33).abs() < 0.01,
        "{freqs:?}"
    );
    let bounds = column(doc, "id")["histogram_bounds"].as_array().unwrap();
    assert_eq!(
        (bounds.first(), bounds.last()),
        (Some(&"1".into()), Some(&"200".into()))
    );
    // Both files load as `check` and `estimate` read them.
    for file in ["prod.json", "values.json"] {
        downtime::estimate::ProdStats::load(&s.path().join(file)).unwrap();
    }
}

/// The staging side of [`PRODUCTION`]: the same tables, fewer rows.
const STAGING: &str = "\
create table m (id int, region text, v int) partition by list (region);
create table m_eu partition of m for values in ('eu') partition by range (id);
create table m_eu_low partition of m_eu for values from (0) to (1000);
create table m_eu_high partition of m_eu for values from (1000) to (100000);
create table m_us partition of m for values in ('us');
insert into m select g, case when g % 2 = 0 then 'eu' else 'us' end, g from generate_series(1, 2000) g;
create table fresh (id int, v text);
insert into fresh select g, 'x' from generate_series(1, 2000) g;
create table doc (id int primary key, code text not null, tag text, body text);
insert into doc select g, 'c' || g, 't', 'b' from generate_series(1, 2000) g;
analyze;
";

#[test]
fn exported_files_are_read_by_check_and_estimate() {
    let (_server, url) = production();
    let s = Scratch::new();
    export(&s, &url, "prod.json", &["--with-values"]);
    s.baseline(STAGING);
    s.patch("0001-doc.sql", "update doc set tag = 'u';");
    s.patch("0002-fresh.sql", "update fresh set v = 'y';");
    s.patch("0003-leaf.sql", "update m_us set v = v + 1;");
    let (code, report, stderr) = s.check_json(&[
        "patches",
        "--prod-stats",
        "prod.json",
        "--scales",
        "0.5,1",
        "--no-history",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let doc = &patch(&report, "0001-doc")["estimate"];
    assert_eq!(doc["complete"], true, "{doc}");
    assert_eq!(doc["statements"][0]["production_rows"], 200.0);
    assert!(doc["statements"][0]["seconds"].as_f64().is_some(), "{doc}");
    // In the stats, but never analysed there: said so, not predicted at 0 rows.
    let fresh = &patch(&report, "0002-fresh")["estimate"];
    assert_eq!(fresh["complete"], false, "{fresh}");
    assert_eq!(fresh["missing_tables"], serde_json::json!([]));
    assert_eq!(fresh["unknown_rows"], serde_json::json!(["public.fresh"]));
    let statement = &fresh["statements"][0];
    assert_eq!(statement["relation"], "public.fresh");
    assert_eq!(statement["production_rows"], Value::Null);
    assert_eq!(statement["seconds"], Value::Null);
    assert_eq!(
        statement["note"],
        "public.fresh has no row estimate in the stats file (never analysed or vacuumed)"
    );
    assert_eq!(fresh["seconds"], 0.0);
    let leaf = &patch(&report, "0003-leaf")["estimate"];
    assert_eq!(leaf["statements"][0]["production_rows"], 2500.0, "{leaf}");

    // Gating on the estimate, a patch without a prediction fails.
    let (code, report, _) = s.check_json(&[
        "patches",
        "--prod-stats",
        "prod.json",
        "--scales",
        "0.5,1",
        "--decide",
        "estimate",
        "--budget",
        "30",
        "--timeout",
        "60",
        "--no-history",
    ]);
    assert_eq!(code, 1, "{report}");
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0]
            .as_str()
            .unwrap()
            .starts_with("0002-fresh: no estimate for public.fresh"),
        "{failures:?}"
    );

    // `estimate` reads the same file; its text report names the unknown rows.
    let out = s.run(&[
        "estimate",
        "patches",
        "--prod-stats",
        "prod.json",
        "--scales",
        "0.5,1",
        "--no-history",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("incomplete: no row estimate in the stats file: public.fresh"),
        "{stdout}"
    );
    assert!(!stdout.contains("not in the stats file"), "{stdout}");

    // A version 1 file as the earlier export wrote it (rows a number, no
    // kinds, a partitioned table's pages -1) still loads.
    std::fs::write(
        s.path().join("v1.json"),
        r#"{"schema_version": 1, "exported_at": "2026-01-01T00:00:00Z", "server_version": "15.4",
            "source": "dbname=shop", "tables": [
            {"name": "public.m", "rows": 0, "pages": -1, "total_bytes": 0, "table_bytes": 0,
             "inserts": null, "updates": null, "deletes": null, "stats_since": null, "monthly_growth": null},
            {"name": "public.doc", "rows": 200, "pages": 3, "total_bytes": 950272, "table_bytes": 24576,
             "inserts": 200, "updates": 0, "deletes": 0, "stats_since": "2026-01-01 00:00:00+00",
             "monthly_growth": null}]}"#,
    )
    .unwrap();
    let out = s.run(&[
        "estimate",
        "patches",
        "--prod-stats",
        "v1.json",
        "--scales",
        "0.5,1",
        "--no-history",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    s.assert_clean();
}
