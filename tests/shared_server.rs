//! The server backend on a server other people use too, on real
//! password-protected PostgreSQL servers reached over TCP: the statistics
//! of other databases survive a run (`pg_stat_statements`); what a patch
//! changes at cluster level is put back after a single run, and a patch
//! that changes roles or databases the run did not make fails at its line;
//! `cache clear --url` and `clean --url` drop only databases downtime
//! marked as its own; a session idling on `template1` does not stop a run,
//! and a template in use is named with the sessions that hold it.

mod common;
#[path = "common/tcp.rs"]
mod tcp;

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{patch, text, Scratch};
use tcp::TcpServer;

const PASSWORD: &str = "Pl4nted-shared s3cret";

/// `check --backend server` of the scratch's patches on `server`, JSON.
fn check(s: &Scratch, server: &TcpServer, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let url = server.url("postgres");
    let mut args = vec!["patches", "--backend", "server", "--url", url.as_str()];
    args.extend_from_slice(extra);
    s.check_json(&args)
}

/// What the server keeps at cluster level that a patch could change:
/// roles (passwords included), databases, per-role and per-database
/// settings, comments on databases.
fn cluster(server: &TcpServer) -> String {
    server.psql(
        "postgres",
        "select string_agg(x, E'\\n' order by x) from ( \
           select format('role %s %s %s %s %s', rolname, rolsuper, rolcanlogin, rolpassword, \
                         rolvaliduntil) x from pg_authid \
           union all select format('database %s %s %s', datname, datdba::regrole, datallowconn) \
             from pg_database \
           union all select format('setting %s %s %s', setdatabase, setrole, setconfig) \
             from pg_db_role_setting \
           union all select format('comment %s %s', objoid, description) from pg_shdescription \
         ) s",
    )
}

/// A psql session idling on `db` (its stdin kept open) as
/// `application_name`, once the server shows it.
fn idle_session(server: &TcpServer, db: &str, application_name: &str) -> Child {
    let mut cmd = server.client("psql", db);
    cmd.env("PGAPPNAME", application_name)
        .args(["-X", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = format!(
        "select count(*) from pg_stat_activity where datname = '{db}' \
         and application_name = '{application_name}'"
    );
    while server.psql("postgres", &seen).trim() != "1" {
        assert!(
            Instant::now() < deadline,
            "the session on {db} never showed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn end(mut session: Child) {
    if let Some(mut stdin) = session.stdin.take() {
        let _ = stdin.write_all(b"\\q\n");
    }
    let _ = session.wait();
}

#[test]
fn other_databases_keep_their_statement_statistics() {
    let server =
        TcpServer::with_settings(PASSWORD, &["shared_preload_libraries=pg_stat_statements"]);
    server.psql("postgres", "create extension pg_stat_statements");
    server.psql("postgres", "create database other");
    server.psql(
        "other",
        "create table kept (id int); insert into kept values (1); select count(*) from kept",
    );
    let theirs = "select count(*) from pg_stat_statements s join pg_database d on d.oid = s.dbid \
                  where d.datname = 'other'";
    let before: u64 = server.psql("postgres", theirs).trim().parse().unwrap();
    assert!(before >= 3, "{before}");
    let s = Scratch::new();
    s.baseline("create table t (id int primary key, v int);\ninsert into t select g, g from generate_series(1, 5000) g;\n");
    s.patch("0001-index.sql", "create index t_v on t (v);\n");
    s.patch("0002-column.sql", "alter table t add column w int;\n");
    let (code, report, stderr) = check(&s, &server, &["--runs", "2", "--no-cache"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    // The server's clock timed the patches…
    let st = &patch(&report, "0001-index")["statements"][0];
    assert!(st["server_seconds"].as_f64().is_some(), "{st}");
    assert!(!report["notes"].to_string().contains("timed by the client"));
    // …and the other database's entries are all still there.
    let after: u64 = server.psql("postgres", theirs).trim().parse().unwrap();
    assert!(
        after >= before,
        "{before} entries of database other before, {after} after"
    );
    let kept = server.psql(
        "postgres",
        "select count(*) from pg_stat_statements s join pg_database d on d.oid = s.dbid \
         where d.datname = 'other' and s.query like 'insert into kept%'",
    );
    assert_eq!(kept.trim(), "1");
    s.assert_clean();
}

#[test]
fn cluster_changes_are_undone_after_a_single_run_and_others_roles_are_not_the_patchs() {
    let server = TcpServer::with_password(PASSWORD);
    server.psql(
        "postgres",
        "create role other login password 'Pl4nted-other'",
    );
    server.psql("postgres", "create database other owner other");
    let before = cluster(&server);
    let databases = server.databases();
    let s = Scratch::new();
    s.baseline("create table t (id int primary key);\n");
    s.patch(
        "0001-takeover.sql",
        "create table note (id int);\n\
         alter role other password 'Pl4nted-taken';\n\
         create role evil superuser login password 'Pl4nted-evil';\n\
         alter database other set work_mem = '64MB';\n",
    );
    let (code, report, stderr) = check(&s, &server, &["--no-cache"]);
    assert_eq!(code, 1, "{stderr}\n{report}");
    let p = patch(&report, "0001-takeover");
    assert_eq!(p["status"], "failed", "{p}");
    let e = &p["error"];
    assert_eq!(e["line"], 2, "{e}");
    let message = e["message"].as_str().unwrap();
    for needle in [
        "does not own",
        "role other changed",
        "role evil created",
        "settings for database other",
    ] {
        assert!(message.contains(needle), "`{needle}` in {message}");
    }
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("0001-takeover changes the cluster outside its database")
            && notes.contains("role evil created")
            && notes.contains("undone after every run"),
        "{notes}"
    );
    assert_eq!(
        cluster(&server),
        before,
        "the server's roles or databases changed"
    );
    assert_eq!(server.databases(), databases);
    assert!(!stderr.contains("Pl4nted"), "{stderr}");

    // What the run makes itself is its own: a role that cannot log in
    // passes, and is gone after the one run.
    let t = Scratch::new();
    t.baseline("create table t (id int primary key);\n");
    t.patch(
        "0001-reader.sql",
        "create role app_reader nologin;\ngrant select on t to app_reader;\n",
    );
    let (code, report, stderr) = check(&t, &server, &["--no-cache"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("role app_reader created"), "{notes}");
    assert_eq!(cluster(&server), before, "app_reader was left behind");
    s.assert_clean();
    t.assert_clean();
}

#[test]
fn cache_clear_and_clean_drop_only_what_downtime_made() {
    let server = TcpServer::with_password(PASSWORD);
    // The user's own databases, named like downtime's.
    let key_like = "downtime_cache_0123456789abcdef01234567";
    let run_like = "downtime_0badcafe_copy_1";
    for db in ["downtime_cache_mine", key_like, run_like] {
        server.psql("postgres", &format!("create database {db}"));
    }
    server.psql("downtime_cache_mine", "create table precious (id int)");
    let before = server.databases();
    let s = Scratch::new();
    s.baseline("create table t (id int primary key);\n");
    s.patch("0001-col.sql", "alter table t add column v int;\n");
    let (code, report, stderr) = check(&s, &server, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["baseline"]["cache"], "miss");
    let kept: Vec<String> = server
        .databases()
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let url = server.url("postgres");
    let out = s.run(&["cache", "clear", "--url", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("removed 1 cached baseline"), "{shown}");
    for db in ["downtime_cache_mine", key_like] {
        assert!(shown.contains(&format!("kept database {db}")), "{shown}");
    }
    let out = s.run(&["clean", "--url", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!("kept database {run_like}")),
        "{shown}"
    );
    assert_eq!(
        server.databases(),
        before,
        "a database of the user's was dropped"
    );
    assert_eq!(
        server
            .psql("downtime_cache_mine", "select count(*) from precious")
            .trim(),
        "0"
    );
    s.assert_clean();
}

#[test]
fn a_session_on_template1_does_not_stop_a_run_and_a_template_in_use_is_named() {
    let server = TcpServer::with_password(PASSWORD);
    let before = server.databases();
    let s = Scratch::new();
    s.baseline(
        "create table t (id int primary key);\ninsert into t select generate_series(1, 1000);\n",
    );
    s.patch("0001-index.sql", "create unique index t_id on t (id);\n");
    let idle = idle_session(&server, "template1", "someones-psql");
    // Loaded, then loaded and kept, then from the kept baseline.
    for args in [&["--no-cache"][..], &[], &[]] {
        let (code, report, stderr) = check(&s, &server, args);
        assert_eq!(code, 0, "{args:?}: {stderr}\n{report}");
    }
    end(idle);
    let out = s.run(&["cache", "clear", "--url", &server.url("postgres")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(server.databases(), before);

    // A template that is in use after all (template0 opened to
    // connections, someone on it): the error names who holds it.
    server.psql(
        "postgres",
        "alter database template0 allow_connections true",
    );
    let idle = idle_session(&server, "template0", "held-template");
    let pid = server.psql(
        "postgres",
        "select pid from pg_stat_activity where application_name = 'held-template'",
    );
    let out = s.run(&[
        "check",
        "patches",
        "--backend",
        "server",
        "--url",
        &server.url("postgres"),
        "--no-cache",
    ]);
    end(idle);
    server.psql(
        "postgres",
        "alter database template0 allow_connections false",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "template0".to_string(),
        format!("pid {}", pid.trim()),
        "user postgres".to_string(),
        "application_name \"held-template\"".to_string(),
    ] {
        assert!(err.contains(&needle), "`{needle}` in {err}");
    }
    assert_eq!(server.databases(), before);
    s.assert_clean();
}
