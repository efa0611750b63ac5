use super::*;

fn column(n_distinct: f64, null_frac: f64) -> ColumnStats {
    ColumnStats {
        name: "c".into(),
        null_frac,
        n_distinct,
        avg_width: 4,
        correlation: None,
        most_common_vals: None,
        most_common_freqs: None,
        histogram_bounds: None,
    }
}

#[test]
fn distinct_values_are_a_count_or_a_fraction_of_the_rows() {
    // Positive: a count, whatever the rows.
    assert_eq!(column(42.0, 0.0).distinct_values(1e6), 42.0);
    // Negative: minus a fraction of the rows (-1: every row distinct).
    assert_eq!(column(-1.0, 0.0).distinct_values(1e6), 1e6);
    assert_eq!(column(-0.25, 0.0).distinct_values(1000.0), 250.0);
    // 0: unknown, as pg_stats has it.
    assert_eq!(column(0.0, 0.0).distinct_values(1000.0), 0.0);
    assert_eq!(column(-1.0, 0.25).non_null_rows(1000.0), 750.0);
}

/// A stats file with `tables` (JSON objects) as version `version`, loaded.
fn load(version: u32, tables: &str) -> (std::path::PathBuf, Result<ProdStats>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prod-stats.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"schema_version": {version}, "exported_at": "2026-01-01T00:00:00Z",
                "server_version": "15.4", "source": "dbname=shop", "tables": [{tables}]}}"#
        ),
    )
    .unwrap();
    let loaded = ProdStats::load(&path);
    (path, loaded)
}

const NULLS: &str = r#"{"name": "public.fresh", "kind": "table", "rows": null, "pages": null,
    "total_bytes": 8192, "table_bytes": 8192, "toast_bytes": 0, "indexes": [],
    "inserts": null, "updates": null, "deletes": null, "stats_since": null,
    "monthly_growth": null, "columns": []}"#;

#[test]
fn unknown_rows_and_pages_load_as_unknown() {
    let (_, s) = load(2, NULLS);
    let s = s.unwrap();
    let t = s.table("public.fresh").unwrap();
    assert_eq!((t.rows, t.pages), (None, None));
    assert!(!s.with_values);
    // A partitioned table and its partition, as `stats export` writes them.
    let (_, s) = load(
        2,
        r#"{"name": "public.m", "kind": "partitioned", "rows": 300, "pages": null,
            "total_bytes": 0, "table_bytes": 0, "toast_bytes": 0,
            "indexes": [{"name": "public.m_pkey", "bytes": 0, "unique": true, "columns": ["id"]}],
            "inserts": 300, "updates": 0, "deletes": 0, "stats_since": "2026-01-01",
            "monthly_growth": null, "analysed_at": "2026-01-02T00:00:00Z",
            "columns": [{"name": "id", "null_frac": 0, "n_distinct": -1, "avg_width": 4, "correlation": null}]},
           {"name": "public.m_1", "kind": "table", "parent": "public.m", "rows": 300, "pages": 2,
            "total_bytes": 16384, "table_bytes": 16384, "inserts": 300, "updates": 0, "deletes": 0,
            "stats_since": null, "monthly_growth": null}"#,
    );
    let s = s.unwrap();
    let m = s.table("public.m").unwrap();
    assert_eq!(m.kind, TableKind::Partitioned);
    assert_eq!(m.indexes[0].columns, ["id"]);
    assert!(m.indexes[0].unique && !m.indexes[0].partial);
    assert_eq!(m.column("id").unwrap().distinct_values(300.0), 300.0);
    let part = s.table("m_1").unwrap();
    assert_eq!(part.parent.as_deref(), Some("public.m"));
    assert_eq!(part.toast_bytes, 0);
    assert!(part.indexes.is_empty() && part.columns.is_empty());
}

#[test]
fn version_1_files_load_and_their_partitioned_tables_too() {
    let v1 = r#"{"name": "public.orders", "rows": 5000, "pages": 40, "total_bytes": 327680,
        "table_bytes": 327680, "inserts": 5000, "updates": 0, "deletes": 0,
        "stats_since": "2026-01-01 00:00:00+00", "monthly_growth": 0.04},
       {"name": "public.events", "rows": 0, "pages": -1, "total_bytes": 0, "table_bytes": 0,
        "inserts": null, "updates": null, "deletes": null, "stats_since": null,
        "monthly_growth": null}"#;
    let (_, s) = load(1, v1);
    let s = s.unwrap();
    let orders = s.table("public.orders").unwrap();
    assert_eq!(orders.kind, TableKind::Table);
    assert_eq!((orders.rows, orders.pages), (Some(5000.0), Some(40)));
    assert!(orders.columns.is_empty() && orders.indexes.is_empty());
    // The old export's partitioned table: -1 pages, 0 rows, both unknown.
    let events = s.table("public.events").unwrap();
    assert_eq!(events.kind, TableKind::Partitioned);
    assert_eq!((events.rows, events.pages), (None, None));
}

#[test]
fn impossible_numbers_are_refused_naming_the_file_and_table() {
    let with = |field: &str| NULLS.replace(r#""toast_bytes": 0"#, field);
    let column = |c: &str| {
        NULLS.replace(
            r#""columns": []"#,
            &format!(r#""columns": [{{"name": "c", "null_frac": 0, "n_distinct": 1, "avg_width": 4, {c}}}]"#),
        )
    };
    let cases = [
        (with(r#""toast_bytes": -8192"#), "toast_bytes is -8192"),
        (
            with(r#""toast_bytes": 0, "pages": -1"#).replace(r#""pages": null,"#, ""),
            "pages is -1",
        ),
        (
            NULLS.replace(
                r#""indexes": []"#,
                r#""indexes": [{"name": "public.i", "bytes": -1}]"#,
            ),
            "index public.i: bytes is -1",
        ),
        (
            column(r#""correlation": 1"#).replace(r#""null_frac": 0"#, r#""null_frac": 1.5"#),
            "column c: null_frac is 1.5",
        ),
        (
            column(r#""correlation": 1"#).replace(r#""n_distinct": 1"#, r#""n_distinct": -2"#),
            "column c: n_distinct is -2",
        ),
        (
            column(r#""most_common_freqs": [0.5, 7]"#),
            "most_common_freqs holds 7",
        ),
        (
            NULLS.replace(r#""monthly_growth": null"#, r#""monthly_growth": -1"#),
            "monthly_growth is -1",
        ),
    ];
    for (table, message) in cases {
        let (path, s) = load(2, &table);
        let e = s.expect_err(message).to_string();
        assert!(
            e.starts_with(&format!("{}: table public.fresh: ", path.display()))
                && e.contains(message),
            "{e}"
        );
    }
    let (path, s) = load(3, NULLS);
    let e = s.unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: stats schema version 3 is not supported (this downtime reads 1 and 2)",
            path.display()
        )
    );
    // A negative row count is out of range, not unknown.
    let (_, s) = load(2, &NULLS.replace(r#""rows": null"#, r#""rows": -1"#));
    assert!(s.unwrap_err().to_string().contains("rows: -1"));
}
