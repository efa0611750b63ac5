//! `downtime check` end to end on the embedded PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{patch, rules, Scratch};

#[test]
fn patches_apply_in_layout_order_on_top_of_each_other() {
    let s = Scratch::new();
    // Lexical order would run 10 before 9; numeric order must not.
    s.patch("V9__create.sql", "create table t (id int);");
    s.patch(
        "V10__fill.sql",
        "insert into t select generate_series(1, 10);",
    );
    s.patch("V10_1__index.sql", "create index t_id on t (id);");
    s.patch("U10__undo.sql", "drop table t;");
    s.patch("R__view.sql", "create view v as select 1;");
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}");
    let ids: Vec<&str> = report["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    // Flyway's repeatables run after every versioned migration.
    assert_eq!(ids, ["V9__create", "V10__fill", "V10_1__index", "R__view"]);
    assert_eq!(report["layout"], "flyway");
    assert!(report["patches"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["status"] == "ok"));
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("undo") && notes.contains("repeatable"),
        "{notes}"
    );
    s.assert_clean();
}

#[test]
fn diesel_and_migrate_layouts_run_in_order() {
    let s = Scratch::new();
    s.patch(
        "2019-02-26-002946_create/up.sql",
        "create table a (id int);",
    );
    s.patch("2019-02-26-002946_create/down.sql", "drop table a;");
    s.patch("2019-03-01-000000_fill/up.sql", "insert into a values (1);");
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["patches"][0]["id"], "2019-02-26-002946_create");
    assert_eq!(report["patches"][1]["id"], "2019-03-01-000000_fill");

    let m = Scratch::new();
    m.patch("000001_create.up.sql", "create table a (id int);");
    m.patch("000001_create.down.sql", "drop table a;");
    m.patch("000002_fill.up.sql", "insert into a values (1);");
    let (code, report, stderr) = m.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["patches"].as_array().unwrap().len(), 2);
    assert_eq!(report["patches"][1]["id"], "000002_fill");
}

#[test]
fn the_text_report_gives_the_servers_detail_and_hint_and_counts_failed_patches_apart() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "create table a (id int);");
    s.patch(
        "0002-b.sql",
        "create table b (id int);\ncreate extension downtime_absent_extension;",
    );
    s.patch("0003-c.sql", "create table c (id int);");
    let out = s.run(&["check", "patches", "--keep-going"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| {
            l.contains("0002-b.sql:2: extension \"downtime_absent_extension\" is not available")
        })
        .unwrap_or_else(|| panic!("{text}"));
    // PostgreSQL's DETAIL and HINT, right under the error.
    assert!(
        lines[at + 1]
            .trim_start()
            .starts_with("detail: Could not open extension control file"),
        "{text}"
    );
    assert_eq!(
        lines[at + 2].trim(),
        "hint: The extension must first be installed on the system where PostgreSQL is running.",
        "{text}"
    );
    // The failed patch was rolled back: not among the applied ones.
    assert!(
        text.contains("\n2 patch(es) applied, 1 failed in "),
        "{text}"
    );
    s.assert_clean();
}

#[test]
fn over_budget_exits_1() {
    let s = Scratch::new();
    s.patch("0001-slow.sql", "select pg_sleep(0.3);");
    let (code, report, _) = s.check_json(&["patches", "--budget", "0.1"]);
    assert_eq!(code, 1);
    assert_eq!(report["verdict"], "fail");
    let p = patch(&report, "0001-slow");
    assert_eq!(p["over_budget"], true);
    assert_eq!(p["status"], "ok");
    assert_eq!(report["budget"]["per_patch_seconds"], 0.1);
    s.assert_clean();
}

#[test]
fn total_budget_is_enforced() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "select pg_sleep(0.2);");
    s.patch("0002-b.sql", "select pg_sleep(0.2);");
    let (code, report, _) = s.check_json(&["patches", "--total-budget", "0.3"]);
    assert_eq!(code, 1);
    assert!(report["failures"].to_string().contains("total budget"));
    assert_eq!(patch(&report, "0001-a")["over_budget"], false);
}

#[test]
fn syntax_error_is_reported_at_its_line() {
    let s = Scratch::new();
    s.patch("0001-create.sql", "create table bug (id int);");
    s.patch(
        "0002-typo.sql",
        "-- A typo on line 3.\nalter table bug\n  add colum severity integer;\n",
    );
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("patches/0002-typo.sql:3: syntax error"),
        "{stdout}"
    );
    assert!(stdout.contains("42601"), "{stdout}");

    let (code, report, _) = s.check_json(&["patches"]);
    assert_eq!(code, 1);
    let p = patch(&report, "0002-typo");
    assert_eq!(p["status"], "failed");
    assert_eq!(p["error"]["sqlstate"], "42601");
    assert_eq!(p["error"]["line"], 3);
    assert_eq!(p["error"]["statement_line"], 2);
    s.assert_clean();
}

#[test]
fn failed_patch_is_rolled_back_and_later_patches_skipped() {
    let s = Scratch::new();
    s.patch("0001-ok.sql", "create table a (id int primary key);");
    s.patch(
        "0002-fails.sql",
        "insert into a values (1);\ninsert into a values (1);",
    );
    s.patch("0003-later.sql", "select count(*) from a;");
    s.patch("0004-check.sql", "do $$ begin if (select count(*) from a) <> 0 then raise exception 'not rolled back'; end if; end $$;");
    let (code, report, _) = s.check_json(&["patches"]);
    assert_eq!(code, 1);
    assert_eq!(patch(&report, "0002-fails")["error"]["sqlstate"], "23505");
    assert_eq!(patch(&report, "0002-fails")["error"]["line"], 2);
    assert_eq!(patch(&report, "0003-later")["status"], "skipped");

    let (code, report, _) = s.check_json(&["patches", "--keep-going"]);
    assert_eq!(code, 1);
    assert_eq!(patch(&report, "0003-later")["status"], "ok");
    // The failed patch's first insert was rolled back with it.
    assert_eq!(patch(&report, "0004-check")["status"], "ok", "{report}");
    s.assert_clean();
}

#[test]
fn meta_command_is_refused_before_anything_runs() {
    let s = Scratch::new();
    s.patch("0001-first.sql", "select pg_sleep(5);");
    s.patch(
        "0002-psql.sql",
        "alter table person add column bio text;\n\\set ON_ERROR_STOP on\n",
    );
    let started = Instant::now();
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 1);
    // Nothing ran: the 5 s sleep in the first patch was never sent.
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(!stderr.contains("applying"), "{stderr}");
    let refused = patch(&report, "0002-psql");
    assert_eq!(refused["status"], "failed");
    assert_eq!(refused["error"]["line"], 2);
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("\\set"));
    assert_eq!(patch(&report, "0001-first")["status"], "skipped");
    s.assert_clean();
}

#[test]
fn copy_from_stdin_is_refused() {
    let s = Scratch::new();
    s.patch(
        "0001-copy.sql",
        "create table t (a int);\ncopy t from stdin;\n",
    );
    let (code, report, _) = s.check_json(&["patches"]);
    assert_eq!(code, 1);
    let p = patch(&report, "0001-copy");
    assert_eq!(p["error"]["line"], 2);
    assert!(p["error"]["message"].as_str().unwrap().contains("COPY"));
}

#[test]
fn create_index_concurrently_runs_outside_the_transaction() {
    let s = Scratch::new();
    s.patch(
        "0001-table.sql",
        "create table t (id int, v int);\ninsert into t select g, g % 10 from generate_series(1, 20000) g;",
    );
    s.patch(
        "0002-index.sql",
        "set lock_timeout = '2s';\ncreate index concurrently t_v on t (v);\nanalyze t;",
    );
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr} {report}");
    let p = patch(&report, "0002-index");
    assert_eq!(p["status"], "ok");
    assert_eq!(p["classification"], "live");
    let st = &p["statements"];
    assert_eq!(st[1]["outside_transaction"], true);
    assert_eq!(st[1]["kind"], "IndexStmt");
    assert_eq!(st[1]["locks"][0]["mode"], "ShareUpdateExclusive");
    assert_eq!(st[0]["outside_transaction"], false);
    s.assert_clean();
}

#[test]
fn explicit_transactions_are_honoured_not_nested() {
    let s = Scratch::new();
    s.patch(
        "0001-own.sql",
        "begin;\ncreate table a (id int);\ncommit;\nbegin;\ncreate table b (id int);\ncommit;",
    );
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}");
    // A nested BEGIN would have drawn a warning; a tool BEGIN around the
    // patch's own would have made COMMIT end the wrong transaction.
    assert!(!stderr.contains("already a transaction"), "{stderr}");
    assert_eq!(patch(&report, "0001-own")["status"], "ok");

    s.patch("0002-open.sql", "begin;\ncreate table c (id int);");
    let (code, report, _) = s.check_json(&["patches"]);
    assert_eq!(code, 1);
    assert!(patch(&report, "0002-open")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("never committed"));
}

#[test]
fn statement_timing_matches_a_known_sleep() {
    let s = Scratch::new();
    s.patch("0001-sleep.sql", "select pg_sleep(1.5);");
    let (code, report, _) = s.check_json(&["patches"]);
    assert_eq!(code, 0);
    let secs = patch(&report, "0001-sleep")["statements"][0]["seconds"]
        .as_f64()
        .unwrap();
    assert!(
        (1.5 * 0.95..=1.5 * 1.05).contains(&secs),
        "pg_sleep(1.5) measured {secs} s"
    );
}

#[test]
fn runaway_statement_is_cancelled_at_the_cap() {
    let s = Scratch::new();
    s.patch("0001-runaway.sql", "select pg_sleep(30);");
    let started = Instant::now();
    let (code, report, _) = s.check_json(&["patches", "--timeout", "0.5"]);
    assert_eq!(code, 1);
    assert!(started.elapsed() < Duration::from_secs(15));
    let p = patch(&report, "0001-runaway");
    assert_eq!(p["error"]["sqlstate"], "57014");
    s.assert_clean();
}

#[test]
fn report_records_server_and_timing_settings() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "create table a (id int);");
    std::fs::write(
        s.path().join("prod.conf"),
        "maintenance_work_mem = '256MB'\n",
    )
    .unwrap();
    let (code, report, _) = s.check_json(&["patches", "--pg-conf", "prod.conf"]);
    assert_eq!(code, 0);
    assert_eq!(report["schema_version"], 1);
    assert!(report["tool_version"].is_string());
    assert_eq!(report["postgres"]["backend"], "embedded");
    assert!(report["postgres"]["version"]
        .as_str()
        .unwrap()
        .starts_with(char::is_numeric));
    let settings = &report["postgres"]["settings"];
    assert_eq!(settings["fsync"], "on");
    assert_eq!(settings["full_page_writes"], "on");
    assert_eq!(settings["maintenance_work_mem"], "256MB");
    let p = patch(&report, "0001-a");
    assert_eq!(p["sha256"].as_str().unwrap().len(), 64);
    for key in [
        "path",
        "id",
        "status",
        "seconds",
        "over_budget",
        "error",
        "statements",
    ] {
        assert!(p.get(key).is_some(), "missing {key}");
    }
    assert!(p["statements"][0]["sql"]
        .as_str()
        .unwrap()
        .starts_with("create table a"));
}

#[test]
fn baseline_is_loaded_once_and_never_patched() {
    let s = Scratch::new();
    std::fs::write(
        s.patches().join("baseline.sql"),
        "create table t (id int);\ninsert into t select generate_series(1, 1000);\n",
    )
    .unwrap();
    s.patch(
        "0001-grow.sql",
        "insert into t select generate_series(1, 1000);",
    );
    s.patch(
        "0002-count.sql",
        "do $$ begin if (select count(*) from t) <> 2000 then raise exception 'wrong count'; end if; end $$;",
    );
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr} {report}");
    assert!(report["baseline"]["source"]
        .as_str()
        .unwrap()
        .contains("baseline.sql"));
    // The second run starts from the same baseline: the template was not patched.
    let (code, _, _) = s.check_json(&["patches"]);
    assert_eq!(code, 0);
}

#[test]
fn broken_baseline_is_an_infrastructure_error() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "select 1;");
    std::fs::write(s.path().join("base.sql"), "create table t (;\n").unwrap();
    let out = s.run(&["check", "patches", "--baseline", "base.sql"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("base.sql"), "{stderr}");
    assert!(stderr.contains("syntax error"), "{stderr}");
    s.assert_clean();
}

#[test]
fn a_baseline_naming_a_role_the_staging_server_lacks_says_how_to_dump_it() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "select 1;");
    // What a plain pg_dump of a database owned by an application role holds.
    std::fs::write(
        s.path().join("base.sql"),
        "create table t (id int);\nalter table public.t owner to app_owner;\n",
    )
    .unwrap();
    let out = s.run(&["check", "patches", "--baseline", "base.sql"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("base.sql:2: ERROR:  role \"app_owner\" does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: the staging server does not have the source's role \"app_owner\"")
            && stderr.contains("--no-owner --no-privileges")
            && stderr.contains("CREATE ROLE \"app_owner\" NOLOGIN;"),
        "{stderr}"
    );
    // Created at the top, as the hint says, the same baseline loads.
    std::fs::write(
        s.path().join("base.sql"),
        "create role app_owner nologin;\ncreate table t (id int);\nalter table public.t owner to app_owner;\n",
    )
    .unwrap();
    let out = s.run(&["check", "patches", "--baseline", "base.sql"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.assert_clean();
}

#[test]
fn sigint_stops_the_server_and_removes_everything() {
    let s = Scratch::new();
    s.patch("0001-long.sql", "select pg_sleep(60);");
    let mut child = s
        .command(&["check", "patches"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the server is up and the patch is running.
    s.wait_for_server(Duration::from_millis(1500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    s.assert_clean();
}

#[test]
fn bad_arguments_exit_2() {
    let s = Scratch::new();
    let out = s.run(&["check", "--budget", "-1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = s.run(&["check", "no-such-dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-dir"));
    s.patch("notes.sql", "select 1;");
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("notes.sql") && stderr.contains("accepted"),
        "{stderr}"
    );
    let out = s.run(&["check", "patches", "--pg-bin", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(2));
    s.assert_clean();
}

#[test]
fn duplicate_positions_and_bad_text_are_input_errors() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "select 1;");
    s.patch("001-b.sql", "select 2;");
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("position 1"));

    let t = Scratch::new();
    t.patch("0001-a.sql", "select 1;\nselect 'unterminated;\n");
    let out = t.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0001-a.sql:2"), "{stderr}");

    let u = Scratch::new();
    std::fs::write(u.patches().join("0001-a.sql"), b"select '\xff';").unwrap();
    let out = u.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UTF-8"));

    let e = Scratch::new();
    e.patch("0001-empty.sql", "-- nothing here\n");
    let out = e.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no SQL statements"));
}

#[test]
fn declared_live_but_cold_fails_and_is_explained() {
    let s = Scratch::new();
    std::fs::write(
        s.path().join("base.sql"),
        "create table t (id int, v int);\ninsert into t select g, g from generate_series(1, 5000) g;\n",
    )
    .unwrap();
    s.patch(
        "0001-index.sql",
        "-- downtime: live\ncreate index t_v on t (v);\n",
    );
    let (code, report, _) = s.check_json(&["patches", "--baseline", "base.sql"]);
    assert_eq!(code, 1);
    let p = patch(&report, "0001-index");
    assert_eq!(p["declared"], "live");
    assert_eq!(p["classification"], "cold");
    let r = rules(p);
    assert!(r.contains(&"declared-live-but-cold".to_string()), "{r:?}");
    assert!(r.contains(&"blocking-index-build".to_string()), "{r:?}");
}

#[test]
fn pg_dump_archive_baseline_is_restored() {
    let s = Scratch::new();
    let archive = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/archive/items.dump"
    );
    s.patch(
        "0001-count.sql",
        "do $$ begin if (select count(*) from item) <> 5000 then raise exception 'wrong count'; end if; end $$;",
    );
    s.patch("0002-index.sql", "create index item_name on item (name);");
    let (code, report, stderr) = s.check_json(&["patches", "--baseline", archive]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert!(report["baseline"]["source"]
        .as_str()
        .unwrap()
        .contains("pg_dump archive"));
    assert_eq!(patch(&report, "0002-index")["classification"], "cold");
    s.assert_clean();
}
