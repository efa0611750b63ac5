//! What the trace after each statement finds, on the embedded PostgreSQL:
//! builds decided from storage rather than from new oids, rewrites found
//! inside and outside transaction blocks, rollbacks that put storage back,
//! and a session whose prepared statements the patch deallocates.

mod common;

use common::{patch, rules, Scratch};
use serde_json::Value;

const BASELINE: &str = "\
    create table big (id int primary key, v int not null, s varchar(10), note text);\n\
    insert into big select g, g, 'x' || (g % 1000), 'n' from generate_series(1, 20000) g;\n\
    create index big_s on big (s);\n\
    create table ev (id int, at date not null) partition by range (at);\n\
    create table ev_2024 partition of ev for values from ('2024-01-01') to ('2025-01-01');\n\
    create table ev_2025 partition of ev for values from ('2025-01-01') to ('2026-01-01');\n\
    insert into ev select g, date '2024-01-01' + (g % 700) from generate_series(1, 20000) g;\n\
    analyze;\n";

/// The relations statement `n` (0-based) of patch `p` rewrote, sorted.
fn rewrites(p: &Value, n: usize) -> Vec<String> {
    let mut out: Vec<String> = p["statements"][n]["rewrites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["relation"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// The (relation, mode) pairs statement `n` of patch `p` took.
fn locks(p: &Value, n: usize) -> Vec<(String, String)> {
    p["statements"][n]["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["relation"].as_str().unwrap().to_string(),
                l["mode"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn index_builds_are_decided_from_storage() {
    let s = Scratch::new();
    s.baseline(BASELINE);
    // varchar(10) to varchar(20) needs no rebuild: big_s is re-created
    // under a new oid on its old file.
    s.patch(
        "0001-widen.sql",
        "set lock_timeout = '2s';\nalter table big alter column s type varchar(20);",
    );
    // No storage on the partitioned table: invalid until attached, not built.
    s.patch(
        "0002-on-only.sql",
        "set lock_timeout = '2s';\ncreate index ev_at on only ev (at);",
    );
    // On the partitioned table: the partitions' indexes are the builds.
    s.patch("0003-on-all.sql", "create index ev_id on ev (id);");
    // The same widening, now with a real build next to it.
    s.patch(
        "0004-widen-and-build.sql",
        "set lock_timeout = '2s';\nalter table big alter column s type text;\ncreate index big_note on big (note);",
    );
    let (code, report, stderr) = s.check_json(&["patches", "--keep-going"]);
    assert_ne!(code, 2, "{stderr}\n{report}");

    let widen = patch(&report, "0001-widen");
    assert_eq!(widen["status"], "ok", "{widen}");
    assert_eq!(widen["classification"], "live", "{widen}");
    assert!(rules(widen).is_empty(), "{widen}");
    assert!(rewrites(widen, 1).is_empty(), "{widen}");
    assert!(widen["statements"][1]["work"].is_null(), "{widen}");

    let on_only = patch(&report, "0002-on-only");
    assert_eq!(on_only["status"], "ok", "{on_only}");
    assert_eq!(on_only["classification"], "live", "{on_only}");
    assert!(rules(on_only).is_empty(), "{on_only}");

    let on_all = patch(&report, "0003-on-all");
    assert_eq!(on_all["classification"], "cold", "{on_all}");
    let mut built: Vec<&str> = on_all["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["rule"] == "blocking-index-build")
        .map(|r| r["relation"].as_str().unwrap())
        .collect();
    built.sort();
    assert_eq!(built, ["public.ev_2024", "public.ev_2025"], "{on_all}");

    let both = patch(&report, "0004-widen-and-build");
    let found: Vec<(&str, &str)> = both["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["rule"] == "blocking-index-build")
        .map(|r| {
            (
                r["relation"].as_str().unwrap(),
                r["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(found.len(), 1, "{both}");
    assert!(found[0].1.contains("big_note"), "{both}");
    assert_eq!(
        both["statements"][2]["work"]["kind"], "index-build",
        "{both}"
    );
    s.assert_clean();
}

#[test]
fn truncate_is_not_a_rewrite_wherever_it_reaches() {
    let s = Scratch::new();
    s.baseline(BASELINE);
    s.patch(
        "0001-truncate.sql",
        "set lock_timeout = '2s';\ntruncate ev;",
    );
    s.patch(
        "0002-rewrite.sql",
        "alter table big alter column v type bigint;",
    );
    let (code, report, stderr) = s.check_json(&["patches", "--keep-going"]);
    assert_ne!(code, 2, "{stderr}\n{report}");
    let truncate = patch(&report, "0001-truncate");
    // The partitions get new, empty storage: reported, and not a rewrite.
    assert_eq!(
        rewrites(truncate, 1),
        ["public.ev_2024", "public.ev_2025"],
        "{truncate}"
    );
    assert_eq!(truncate["classification"], "live", "{truncate}");
    let rewrite = patch(&report, "0002-rewrite");
    assert_eq!(rewrite["classification"], "cold", "{rewrite}");
    assert_eq!(
        rewrites(rewrite, 0),
        ["public.big", "public.big_pkey", "public.big_s"],
        "{rewrite}"
    );
    s.assert_clean();
}

#[test]
fn rollbacks_put_storage_back_without_a_rewrite() {
    let s = Scratch::new();
    s.baseline(BASELINE);
    s.patch(
        "0001-rolled-back.sql",
        "begin;\n\
         savepoint a;\n\
         alter table big alter column v type bigint;\n\
         rollback to savepoint a;\n\
         lock table big in access exclusive mode;\n\
         alter table big add column c1 int;\n\
         rollback;\n\
         begin;\n\
         lock table big in access exclusive mode;\n\
         alter table big add column c2 int;\n\
         commit;",
    );
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_ne!(code, 2, "{stderr}\n{report}");
    let p = patch(&report, "0001-rolled-back");
    assert_eq!(p["status"], "ok", "{stderr}\n{p}");
    // The rewrite is the third statement's, and only its.
    assert_eq!(
        rewrites(p, 2),
        ["public.big", "public.big_pkey", "public.big_s"],
        "{p}"
    );
    for n in [3, 4, 5, 6, 7, 8, 9, 10] {
        assert!(rewrites(p, n).is_empty(), "statement {n}: {p}");
    }
    s.assert_clean();
}

#[test]
fn statements_outside_a_transaction_are_traced_by_what_they_wrote() {
    let s = Scratch::new();
    s.baseline(BASELINE);
    s.patch(
        "0001-outside.sql",
        "create index concurrently big_note on big (note);\n\
         vacuum full ev_2024;\n\
         reindex index concurrently big_s;\n\
         insert into big values (30000, 1, 'a', 'b');",
    );
    let (_, report, stderr) = s.check_json(&["patches", "--keep-going"]);
    let p = patch(&report, "0001-outside");
    assert_eq!(p["status"], "ok", "{stderr}\n{p}");
    assert_eq!(
        locks(p, 0),
        [("public.big".to_string(), "ShareUpdateExclusive".to_string())],
        "{p}"
    );
    assert_eq!(p["statements"][0]["work"]["kind"], "index-build", "{p}");
    assert_eq!(rewrites(p, 1), ["public.ev_2024"], "{p}");
    assert!(locks(p, 1).contains(&("public.ev_2024".to_string(), "AccessExclusive".to_string())));
    // The concurrent rebuild makes a new index: big_s under a new oid.
    assert_eq!(p["statements"][2]["work"]["kind"], "index-build", "{p}");
    assert!(rewrites(p, 3).is_empty(), "{p}");
    assert!(rules(p).contains(&"table-rewrite".to_string()), "{p}");
    s.assert_clean();
}

#[test]
fn a_patch_that_deallocates_prepared_statements_is_still_traced() {
    let s = Scratch::new();
    s.baseline(BASELINE);
    s.patch(
        "0001-deallocate.sql",
        "prepare q as select 1;\n\
         deallocate all;\n\
         do $$ begin execute 'deallocate all'; end $$;\n\
         alter table big alter column v type bigint;",
    );
    s.patch(
        "0002-discard.sql",
        "discard all;\nalter table big alter column v type int;",
    );
    let (code, report, stderr) = s.check_json(&["patches", "--keep-going"]);
    assert_ne!(code, 2, "{stderr}\n{report}");
    for (id, n) in [("0001-deallocate", 3), ("0002-discard", 1)] {
        let p = patch(&report, id);
        assert_eq!(p["status"], "ok", "{p}");
        assert_eq!(
            rewrites(p, n),
            ["public.big", "public.big_pkey", "public.big_s"],
            "{p}"
        );
        assert!(rules(p).contains(&"table-rewrite".to_string()), "{p}");
    }
    s.assert_clean();
}

#[test]
fn a_data_patch_records_each_lock_once() {
    let s = Scratch::new();
    s.baseline(BASELINE);
    let mut sql = String::new();
    for i in 0..200 {
        sql.push_str(&format!(
            "insert into big values ({}, {i}, 'k', 'n');\n",
            100_000 + i
        ));
    }
    sql.push_str("update big set note = 'm' where id = 100000;\n");
    s.patch("0001-data.sql", &sql);
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}");
    let p = patch(&report, "0001-data");
    assert_eq!(p["classification"], "live", "{p}");
    let first = locks(p, 0);
    assert!(
        first.contains(&("public.big".to_string(), "RowExclusive".to_string())),
        "{p}"
    );
    // The later INSERTs take nothing new; the table's lock is not taken
    // again by the UPDATE either (its index locks are new).
    for n in 1..200 {
        assert!(locks(p, n).is_empty(), "statement {n}: {:?}", locks(p, n));
        assert!(rewrites(p, n).is_empty(), "statement {n}");
    }
    assert!(!locks(p, 200).contains(&("public.big".to_string(), "RowExclusive".to_string())));
    // The server's time covers every statement.
    let statements = p["statements"].as_array().unwrap();
    assert!(statements.iter().all(|st| st["server_seconds"].is_number()));
    let server: f64 = statements
        .iter()
        .map(|st| st["server_seconds"].as_f64().unwrap())
        .sum();
    let patch_server = p["server_seconds"].as_f64().unwrap();
    assert!(
        (server - patch_server).abs() < 1e-6,
        "{server} vs {patch_server}"
    );
    s.assert_clean();
}

#[test]
fn a_rewrite_by_another_session_through_dblink_is_found() {
    let s = Scratch::new();
    s.baseline(&format!("create extension dblink;\n{BASELINE}"));
    s.patch(
        "0001-dblink.sql",
        "select dblink_exec(format('host=%s port=%s user=%s dbname=%s', \
           split_part(current_setting('unix_socket_directories'), ',', 1), \
           current_setting('port'), current_user, current_database()), \
           'alter table big alter column v type bigint');",
    );
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 1, "{stderr}\n{report}");
    let p = patch(&report, "0001-dblink");
    assert_eq!(
        rewrites(p, 0),
        ["public.big", "public.big_pkey", "public.big_s"],
        "{p}"
    );
    // Found, and not passed as the patch's live work: the other session's
    // locks are not the patch's to judge, so the patch fails there.
    assert_eq!(p["status"], "failed", "{p}");
    assert_eq!(p["error"]["line"], 1, "{p}");
    let message = p["error"]["message"].as_str().unwrap();
    assert!(message.contains("through another connection"), "{message}");
    s.assert_clean();
}
