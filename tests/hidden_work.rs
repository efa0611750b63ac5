//! Work kept out of the patch's session, on a real PostgreSQL with dblink:
//! a 1.5 M-row rewrite sent to the copy through `dblink_send_query` (which
//! returns at once) or `dblink_exec` (whose locks are another session's)
//! fails the patch at its line instead of passing as live, while dblink to
//! another database is left alone; and probe SQL whose effects reach the
//! patch's session (`pg_terminate_backend`, spelled out or inside a
//! function of the schema) is refused as the probe's, at the probe file's
//! line, before any patch is blamed.

mod common;

use common::{patch, Scratch};

/// 1.5 M rows, and dblink.
const BIG: &str = "create extension dblink;\n\
    create table big (id bigint primary key, v int not null);\n\
    insert into big select g, g % 1000 from generate_series(1, 1500000) g;\n\
    analyze big;\n";

/// SQL for a dblink connection string to database `db` (SQL) over the
/// server's own socket.
fn to(db: &str) -> String {
    format!(
        "format('host=%s port=%s user=%s dbname=%s', \
           split_part(current_setting('unix_socket_directories'), ',', 1), \
           current_setting('port'), current_user, {db})"
    )
}

#[test]
fn a_rewrite_sent_through_dblink_to_the_copy_fails_the_patch_at_its_line() {
    let s = Scratch::new();
    s.baseline(BIG);
    let copy = to("current_database()");
    s.patch(
        "0001-send.sql",
        &format!(
            "select dblink_send_query('w', 'alter table big alter column v type bigint') \
             from (select dblink_connect('w', {copy})) c;\n"
        ),
    );
    s.patch(
        "0002-exec.sql",
        &format!(
            "create table marker (id int);\n\
             select dblink_exec({copy}, 'alter table big alter column v type bigint');\n"
        ),
    );
    // dblink to another database is not the copy's work.
    s.patch(
        "0003-elsewhere.sql",
        &format!(
            "select dblink_exec({}, 'create table if not exists elsewhere (id int)');\n\
             create index big_v on big (v);\n",
            to("'postgres'")
        ),
    );
    let (code, report, stderr) = s.check_json(&["patches", "--keep-going", "--no-cache"]);
    assert_eq!(code, 1, "{stderr}\n{report}");

    let send = patch(&report, "0001-send");
    assert_eq!(send["status"], "failed", "{send}");
    let e = &send["error"];
    assert_eq!(e["line"], 1, "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("through another connection")
            && message.contains("another session is working on the staging copy")
            && message.contains("alter table big"),
        "{message}"
    );
    // Not a 10 ms patch that passes.
    assert_eq!(report["verdict"], "fail", "{report}");

    let exec = patch(&report, "0002-exec");
    assert_eq!(exec["status"], "failed", "{exec}");
    let e = &exec["error"];
    assert_eq!(e["line"], 2, "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("through another connection") && message.contains("opened and closed"),
        "{message}"
    );
    // The rewrite was seen, and failed the patch instead of passing as live.
    let rewrites: Vec<&str> = exec["statements"][1]["rewrites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["relation"].as_str().unwrap())
        .collect();
    assert!(rewrites.contains(&"public.big"), "{exec}");

    let elsewhere = patch(&report, "0003-elsewhere");
    assert_eq!(elsewhere["status"], "ok", "{elsewhere}");
    s.assert_clean();
}

#[test]
fn probe_sql_that_ends_sessions_is_refused_as_the_probes() {
    let s = Scratch::new();
    s.baseline(
        "create table t (id int primary key, v int);\n\
         insert into t select g, g from generate_series(1, 1000) g;\n\
         create function app_cleanup() returns int language sql as $$\n\
           select count(*)::int from pg_stat_activity where pid <> pg_backend_pid()\n\
         $$;\n\
         create function app_purge() returns int language plpgsql as $$\n\
         begin\n\
           perform pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid();\n\
           return app_cleanup();\n\
         end $$;\n\
         create function app_report() returns int language sql as $$ select app_purge() $$;\n",
    );
    s.patch("0001-col.sql", "alter table t add column w int;\n");
    let cases = [
        (
            "select * from t where id = 1\n\
             select pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid()\n",
            "app.sql:2:",
            "pg_terminate_backend",
        ),
        (
            "do $$ begin perform pg_cancel_backend(pid) from pg_stat_activity; end $$\n",
            "app.sql:1:",
            "pg_cancel_backend",
        ),
        // Two functions down, in the schema the baseline made.
        ("select app_report()\n", "app.sql:1:", "app_purge()"),
    ];
    for (sql, at, needle) in cases {
        let app = s.path().join("app.sql");
        std::fs::write(&app, sql).unwrap();
        let out = s.run(&[
            "check",
            "patches",
            "--probe-sql",
            app.to_str().unwrap(),
            "--no-cache",
            "--format",
            "json",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sql}: {stderr}");
        assert!(stderr.contains(at), "{sql}: `{at}` in {stderr}");
        assert!(stderr.contains(needle), "{sql}: `{needle}` in {stderr}");
        assert!(stderr.contains("refused"), "{sql}: {stderr}");
        // Not the patch's failure.
        assert!(!stderr.contains("0001-col"), "{sql}: {stderr}");
        assert!(!stderr.contains("failed at line"), "{sql}: {stderr}");
    }
    // The same schema with the application's harmless queries: the patch
    // passes under them.
    let app = s.path().join("app.sql");
    std::fs::write(&app, "select * from t where id = 1\nselect app_cleanup()\n").unwrap();
    let (code, report, stderr) = s.check_json(&[
        "patches",
        "--probe-sql",
        app.to_str().unwrap(),
        "--no-cache",
    ]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(patch(&report, "0001-col")["status"], "ok");
    s.assert_clean();
}
