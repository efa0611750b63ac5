//! Host safety: a patch that would reach the staging machine itself (files,
//! shell commands, libraries, tablespace directories) is refused at its line
//! before anything runs, and nothing on the host is touched.

mod common;
#[path = "common/tcp.rs"]
mod tcp;

use common::{patch, Scratch};
use downtime::patch::analyse;

fn name(p: &std::path::Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn refused(sql: &str) -> Option<String> {
    analyse(sql).host_access
}

#[test]
fn statements_that_reach_the_host_are_recognised() {
    for sql in [
        // Files and programs through COPY.
        "copy t to '/tmp/x'",
        "COPY public.t (a, b) FROM '/etc/passwd'",
        "copy (select 1) to '/tmp/x' with (format csv)",
        "copy t to program 'curl http://example.com'",
        "copy t from program 'cat /etc/shadow'",
        // Server-side file functions, wherever they are called.
        "select pg_read_file('/etc/passwd')",
        "select pg_catalog.pg_read_binary_file('global/pg_control')",
        "select * from pg_ls_dir('.')",
        "insert into t select pg_stat_file('postmaster.pid')::text",
        "select lo_import('/etc/hosts')",
        "select lo_export(16400, '/tmp/out')",
        "update t set v = (select pg_read_file('x'))",
        "select \"pg_read_file\" ('x')",
        "alter table t add column c text default pg_read_file('x')",
        "create table t (a text default pg_catalog.pg_read_file('x'))",
        "create view v as select pg_ls_dir('.') as f",
        "create index on t (pg_stat_file(a))",
        "create trigger tr before insert on t for each row execute function lo_import('x')",
        "alter function f() set session_preload_libraries = '/srv/evil.so'",
        "create function f() returns int language sql set local_preload_libraries = '/tmp/x' as 'select 1'",
        // Directories, libraries, languages.
        "create tablespace fast location '/srv/fast'",
        "drop tablespace fast",
        "alter tablespace fast set (random_page_cost = 1)",
        "load '/tmp/evil.so'",
        "create language plpython3u",
        "create extension plpython3u",
        "create extension if not exists file_fdw",
        "create extension adminpack",
        "create function f() returns int language c as '/tmp/evil.so', 'f'",
        "create function f() returns text language plpython3u as $$ import os $$",
        "do language plperlu $$ system('id') $$",
        "set session_preload_libraries = '/tmp/evil'",
        "alter role app set local_preload_libraries = '/tmp/evil'",
        "set local_preload_libraries = '$libdir/../../../tmp/evil'",
        "alter database shop set dynamic_library_path = '/tmp'",
        // file_fdw foreign tables.
        "create foreign table f (a text) server files options (filename '/etc/passwd')",
        "create foreign table f (a text) server files options (program 'id')",
        "alter foreign table f options (set filename '/etc/shadow')",
        // Inside function and DO bodies, and dynamic SQL strings in them.
        "do $$ begin perform pg_read_file('/etc/passwd'); end $$",
        "do $$ begin copy t to '/tmp/x'; end $$",
        "do $$ begin copy t to program 'id'; end $$",
        "do $$ begin execute 'COPY t TO ''/tmp/x'''; end $$",
        "do $$ begin execute format('COPY %I TO %L', 't', '/tmp/x'); end $$",
        "do $$ begin execute 'copy t from ' || quote_literal('/etc/passwd'); end $$",
        "do $$ begin execute 'copy (select 1) to program ''id'''; end $$",
        "create function f() returns void language plpgsql as $f$ begin perform lo_import('/etc/hosts'); end $f$",
        "create function f() returns text language sql as 'select pg_read_file(''x'')'",
        "create function f() returns text language sql begin atomic select pg_read_file('x'); end",
        // SQL handed to another session or to EXECUTE, and static statements in bodies.
        "select dblink_exec('dbname=postgres', 'copy (select 1) to ''/tmp/x''')",
        "select dblink_exec('dbname=postgres', 'create tablespace t location ''/tmp/t''')",
        "select dblink_exec('dbname=postgres', E'load \\'/tmp/x.so\\'')",
        "select * from dblink('dbname=postgres', 'select pg_read_file(''/etc/passwd'')') as t(x text)",
        "do $$ begin execute 'load ''/tmp/x.so'''; end $$",
        "do $$ begin execute 'create extension file_fdw'; end $$",
        "do $$ begin execute 'create function f() returns int language c as ''/tmp/x.so'', ''f'''; end $$",
        "do $$ begin load '/tmp/x.so'; end $$",
        "do $$ declare q text := 'copy t to program ''id'''; begin execute q; end $$",
        "do $$ begin perform dblink_exec('dbname=postgres', $q$ do $i$ begin execute 'load ''/x'''; end $i$ $q$); end $$",
        // Subscriptions that connect to their publisher.
        "create subscription s connection 'host=prod' publication p",
        "alter subscription s enable",
        "alter subscription s refresh publication",
        "do $$ begin execute 'create subscription s connection ''host=prod'' publication p'; end $$",
    ] {
        assert!(refused(sql).is_some(), "not refused: {sql}");
    }
}

#[test]
fn ordinary_statements_are_not_refused() {
    for sql in [
        "create subscription s connection 'host=prod' publication p with (connect = false)",
        "alter subscription s disable",
        "alter subscription s set (slot_name = none)",
        "copy t from stdin",
        "copy t to stdout",
        "copy (select 1) to stdout with (format csv)",
        "create table t (id int, copy text)",
        "alter table t set tablespace pg_default",
        "create index on t (a) tablespace pg_default",
        "create extension if not exists pgcrypto",
        "create extension hstore",
        "create function f() returns int language plpgsql as $$ begin return 1; end $$",
        "create function f() returns int language sql immutable as 'select 1'",
        "create function f(x int) returns int language internal as 'int4abs'",
        "select read_file_name from t",
        "select pg_read_file_count from t",
        "select 1 -- pg_ls_dir('.')",
        "set search_path = app, public",
        "alter role authenticator set session_preload_libraries = 'safeupdate'",
        "alter function pg_catalog.lo_import(text) owner to admin",
        "grant execute on function pg_read_file(text) to app",
        "revoke execute on function pg_catalog.pg_ls_dir(text) from public",
        "comment on function lo_export(oid, text) is 'x'",
        "alter role app set statement_timeout = '5s'",
        // Prose and identifiers that only look like COPY.
        "do $$ begin -- copy values from 'the old column' to the new one\n update t set b = a; end $$",
        "do $$ /* copy t to '/tmp/x' */ begin update t set b = a; end $$",
        "do $$ begin raise notice 'copy done'; update t set copy = 1 where id in (select id from t); end $$",
        "do $$ declare copy_count int; begin select count(*) into copy_count from t; end $$",
        "do $$ begin execute 'copy t from stdin'; end $$",
        "create function copy_rows() returns void language sql as 'insert into b select * from a'",
        "insert into notes values ('copy that', 'load balancer', 'the language of tablespace planning')",
        "insert into docs values ('copy t to the new program')",
        "select dblink_exec('dbname=postgres', 'insert into audit values (1)')",
        "do $$ begin execute 'alter table t add column c int'; update t set c = 1; end $$",
    ] {
        assert_eq!(refused(sql), None, "refused: {sql}");
    }
}

#[test]
fn a_patch_reaching_the_host_is_refused_at_its_line_and_touches_nothing() {
    let marker_dir = tempfile::tempdir().unwrap();
    let written = marker_dir.path().join("copied.csv");
    let ran = marker_dir.path().join("program-ran");
    let tablespace = marker_dir.path().join("space");
    std::fs::create_dir(&tablespace).unwrap();
    // The tablespace directory must be the server user's for CREATE TABLESPACE
    // to succeed if it were ever sent.
    let _ = std::process::Command::new("chown")
        .args(["postgres:postgres"])
        .arg(&tablespace)
        .status();
    let cases = [
        format!(
            "create table t (id int);\ninsert into t values (1);\ncopy t to '{}';",
            written.display()
        ),
        format!(
            "create table t (id int);\n\ncopy t to program 'touch {}';",
            ran.display()
        ),
        format!(
            "select 1;\ncreate tablespace fast location '{}';",
            tablespace.display()
        ),
        format!(
            "create table t (id int);\ndo $$ begin execute format('copy t to %L', '{}'); end $$;",
            written.display()
        ),
    ];
    let lines = [3, 3, 2, 2];
    for (sql, line) in cases.iter().zip(lines) {
        let s = Scratch::new();
        s.patch("0001-ok.sql", "create table ok (id int);");
        let p = s.patch("0002-host.sql", sql);
        let (code, report, stderr) = s.check_json(&["patches"]);
        assert_eq!(code, 1, "{sql}\n{stderr}");
        let r = patch(&report, "0002-host");
        assert_eq!(r["error"]["line"], line, "{sql}: {r}");
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("host"), "{message}");
        let failures = report["failures"].to_string();
        assert!(
            failures.contains(&format!("patches/{}:{line}", name(&p))),
            "the verdict names file:line: {failures}"
        );
        // Refused before anything ran: even the harmless first patch did not run.
        assert_eq!(patch(&report, "0001-ok")["status"], "skipped", "{report}");
        s.assert_clean();
    }
    assert!(!written.exists(), "COPY TO a file must never run");
    assert!(!ran.exists(), "COPY TO PROGRAM must never run");
    assert_eq!(std::fs::read_dir(&tablespace).unwrap().count(), 0);
}

/// Replication slots on `server`.
fn slots(server: &tcp::TcpServer) -> String {
    server
        .psql("postgres", "select count(*) from pg_replication_slots")
        .trim()
        .to_string()
}

/// A subscription that would connect to its publisher (on a rehearsal,
/// production) is refused at its line, and so is dropping one that still
/// names a slot; the publisher never hears of either, and its own slot
/// named like the subscription survives. Made WITH (connect = false) and
/// cut from its slot before the drop, it applies. The same statements
/// sent by a subscriber of its own make and drop slots on the publisher:
/// what the refusals prevent.
#[test]
fn a_subscription_that_would_reach_its_publisher_is_refused() {
    let publisher = tcp::TcpServer::publisher("pub-secret");
    publisher.psql(
        "postgres",
        "create table feed (id int primary key); create publication p for table feed;",
    );
    publisher.psql(
        "postgres",
        "select from pg_create_logical_replication_slot('s', 'pgoutput')",
    );
    let conninfo = format!(
        "host=127.0.0.1 port={} user=postgres password=pub-secret dbname=postgres",
        publisher.port
    );
    let create = format!("create subscription s connection '{conninfo}' publication p");
    let unconnected = format!("{create} with (connect = false);\nalter subscription s disable;\n");
    let cases = [
        (
            format!("-- follow the feed\n{create};\n"),
            2,
            "connect = false",
        ),
        (
            format!("{unconnected}drop subscription s;\n"),
            3,
            "slot_name = NONE",
        ),
    ];
    for (sql, line, advice) in &cases {
        let s = Scratch::new();
        s.patch("0001-feed.sql", "create table feed (id int primary key);");
        s.patch("0002-subscribe.sql", sql);
        let (code, report, stderr) = s.check_json(&["patches"]);
        assert_eq!(code, 1, "{sql}\n{stderr}");
        let r = patch(&report, "0002-subscribe");
        assert_eq!(r["error"]["line"], *line, "{r}");
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("publisher"), "{message}");
        assert!(message.contains(advice), "{message}");
        assert_eq!(patch(&report, "0001-feed")["status"], "skipped");
        s.assert_clean();
        assert_eq!(slots(&publisher), "1", "the publisher was reached: {sql}");
    }

    // Rehearsed unconnected and cut from its slot before the drop, it
    // applies and the publisher stays untouched.
    let s = Scratch::new();
    s.patch("0001-feed.sql", "create table feed (id int primary key);");
    s.patch(
        "0002-subscribe.sql",
        &format!(
            "{unconnected}alter subscription s set (slot_name = none);\ndrop subscription s;\n"
        ),
    );
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(patch(&report, "0002-subscribe")["status"], "ok");
    s.assert_clean();
    assert_eq!(slots(&publisher), "1", "the publisher was reached");

    // Sent by a subscriber of its own: the unconnected subscription's drop
    // drops the publisher's slot of its name, and a connected one makes a
    // slot.
    let subscriber = tcp::TcpServer::with_password("sub-secret");
    subscriber.psql("postgres", "create table feed (id int primary key)");
    subscriber.psql("postgres", &format!("{create} with (connect = false)"));
    subscriber.psql("postgres", "drop subscription s");
    assert_eq!(slots(&publisher), "0");
    // On its own: a slot cannot be made inside a transaction block.
    subscriber.psql("postgres", &create);
    assert_eq!(slots(&publisher), "1");
    subscriber.psql("postgres", "drop subscription s");
    assert_eq!(slots(&publisher), "0");
}
