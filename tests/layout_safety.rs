//! The rules every patch is held to hold for migrations read as their
//! tool lays them out: the caps stop a statement however the tool sends it
//! (one transaction with its record, one query, statement by statement) and
//! stop the tool's own bookkeeping too; a folder named like a patch, and a
//! tool's settings file that is not a regular file, are input errors
//! naming the path; a migration that would reach the staging machine is
//! refused at its line.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{patch, Scratch};
use serde_json::Value;

/// A statement that catches every cancel: only terminating its backend
/// ends it.
const SWALLOWS_CANCELS: &str = "do $$\n\
begin\n\
  loop\n\
    begin\n\
      perform pg_sleep(0.1);\n\
    exception when query_canceled then null;\n\
    end;\n\
  end loop;\n\
end $$;\n";

/// Well within what the statement cap (1 s) and the escalation (2 s per
/// step) need, well short of a hang.
const BOUND: Duration = Duration::from_secs(40);

/// `check patches --format json` (and `extra`), bounded: the JSON report,
/// exit code, stderr and time taken.
fn check(s: &Scratch, extra: &[&str]) -> (i32, Value, String, Duration) {
    let mut args = vec!["check", "patches", "--no-history", "--format", "json"];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let (code, stdout, stderr) = run_bounded(s, &args, BOUND);
    let took = started.elapsed();
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr: {stderr}"));
    (code, report, stderr, took)
}

/// Run `downtime args`; fail the test if it has not ended within `within`
/// (a statement nothing stops, a read that blocks on a FIFO). Exit code,
/// stdout and stderr.
fn run_bounded(s: &Scratch, args: &[&str], within: Duration) -> (i32, String, String) {
    let out_path = s.path().join("stdout.log");
    let err_path = s.path().join("stderr.log");
    let mut child = s
        .command(args)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start downtime");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > within {
            // SIGINT: downtime then stops its server and cleans up; if
            // even that does not end it, it is killed.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let asked = Instant::now();
            while child.try_wait().unwrap().is_none() && asked.elapsed() < Duration::from_secs(15) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("downtime {args:?} still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (
        status.code().unwrap_or(-1),
        read(&out_path),
        read(&err_path),
    )
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A layout, its files (name, text), the migration that loops, and whether
/// its statements run outside a transaction.
type Case = (
    &'static str,
    Vec<(&'static str, String)>,
    &'static str,
    bool,
);

#[test]
fn a_loop_is_cut_at_the_cap_however_the_tool_sends_it() {
    let cases: [Case; 3] = [
        // diesel: one transaction with its record.
        (
            "diesel",
            vec![
                (
                    "2020-01-01-000000_first/up.sql",
                    "create table a (id int);\n".into(),
                ),
                (
                    "2020-01-02-000000_loop/up.sql",
                    format!("select 1;\n{SWALLOWS_CANCELS}"),
                ),
                (
                    "2020-01-03-000000_after/up.sql",
                    "create table c (id int);\n".into(),
                ),
            ],
            "2020-01-02-000000_loop",
            false,
        ),
        // golang-migrate: the file as one query.
        (
            "golang-migrate",
            vec![
                ("000001_first.up.sql", "create table a (id int);\n".into()),
                (
                    "000002_loop.up.sql",
                    format!("select 1;\n{SWALLOWS_CANCELS}"),
                ),
                ("000003_after.up.sql", "create table c (id int);\n".into()),
            ],
            "000002_loop",
            false,
        ),
        // Flyway with executeInTransaction=false: statement by statement.
        (
            "flyway",
            vec![
                ("V1__first.sql", "create table a (id int);\n".into()),
                ("V2__loop.sql", format!("select 1;\n{SWALLOWS_CANCELS}")),
                ("V2__loop.sql.conf", "executeInTransaction=false\n".into()),
                ("V3__after.sql", "create table c (id int);\n".into()),
            ],
            "V2__loop",
            true,
        ),
    ];
    for (layout, files, looping, outside) in cases {
        let s = Scratch::new();
        for (name, text) in &files {
            s.patch(name, text);
        }
        let (code, report, stderr, took) = check(&s, &["--timeout", "1"]);
        assert_eq!(code, 1, "{layout}: {stderr}");
        assert!(took < BOUND, "{layout}: took {took:?}");
        assert_eq!(report["layout"], layout, "{report}");
        let p = patch(&report, looping);
        assert_eq!(p["status"], "failed", "{layout}: {p}");
        // The statement before the loop ran as the tool sends it.
        assert_eq!(
            p["statements"][0]["outside_transaction"], outside,
            "{layout}: {p}"
        );
        let error = &p["error"];
        assert_eq!(error["line"], 2, "{layout}: {error}");
        assert_eq!(error["ended_by"], "terminate", "{layout}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("statement cap") && message.contains("pg_terminate_backend"),
            "{layout}: {message}"
        );
        s.assert_clean();
    }
}

#[test]
fn a_trigger_on_the_tools_table_is_cut_at_the_cap_while_the_books_are_kept() {
    let s = Scratch::new();
    s.patch(
        "2020-01-01-000000_trap/up.sql",
        "create function loop_forever() returns trigger language plpgsql as $$\n\
         begin loop begin perform pg_sleep(0.1); exception when query_canceled then null; end; end loop; end $$;\n\
         create trigger books_loop before insert on __diesel_schema_migrations\n\
           for each row execute function loop_forever();\n",
    );
    s.patch(
        "2020-01-02-000000_after/up.sql",
        "create table c (id int);\n",
    );
    let (code, report, stderr, took) = check(&s, &["--timeout", "1"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(took < BOUND, "took {took:?}");
    let p = patch(&report, "2020-01-01-000000_trap");
    assert_eq!(p["status"], "failed", "{p}");
    let error = &p["error"];
    // At the last statement: diesel's record is written after it, in the
    // migration's transaction, where the trigger runs.
    assert_eq!(error["line"], 3, "{error}");
    assert_eq!(error["ended_by"], "terminate", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("__diesel_schema_migrations")
            && message.contains("bookkeeping")
            && message.contains("statement cap"),
        "{message}"
    );
    assert_eq!(
        patch(&report, "2020-01-02-000000_after")["status"],
        "skipped",
        "{report}"
    );
    s.assert_clean();
}

#[test]
fn a_folder_named_like_a_patch_is_refused_in_every_layout() {
    let cases: [(&str, &[&str], &str); 5] = [
        ("flyway", &["V1__a.sql"], "V2__b.sql"),
        ("golang-migrate", &["000001_a.up.sql"], "000002_b.up.sql"),
        ("sqlx", &["20210101000000_a.sql"], "20210102000000_b.sql"),
        ("numbered", &["0001-a.sql"], "0002-b.sql"),
        // Inside a diesel migration folder, its up.sql.
        (
            "diesel",
            &["2020-01-01-000000_a/up.sql"],
            "2020-01-02-000000_b/up.sql",
        ),
    ];
    for (layout, files, folder) in cases {
        let s = Scratch::new();
        for f in files {
            s.patch(f, "create table t (id int);\n");
        }
        let dir = s.patches().join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("inner.sql"), "select 1;\n").unwrap();
        for args in [
            vec!["check", "patches", "--no-history"],
            vec!["check", "patches", "--no-history", "--layout", layout],
        ] {
            let (code, _, stderr) = run_bounded(&s, &args, BOUND);
            assert_eq!(code, 2, "{layout} {args:?}: {stderr}");
            assert!(
                stderr.contains(folder) && stderr.contains("is a directory"),
                "{layout} {args:?}: {stderr}"
            );
        }
    }
    // Named as a root.
    let s = Scratch::new();
    std::fs::create_dir_all(s.path().join("more.sql")).unwrap();
    let (code, _, stderr) = run_bounded(&s, &["check", "more.sql", "--no-history"], BOUND);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("more.sql") && stderr.contains("is a directory"),
        "{stderr}"
    );
}

#[test]
fn a_tools_settings_file_is_read_only_when_it_is_a_regular_file() {
    // (files, the odd path, what it is made as, what the error says)
    let fifo = |p: &Path| mkfifo(p);
    let folder = |p: &Path| std::fs::create_dir_all(p).unwrap();
    let huge = |p: &Path| {
        std::fs::write(p, "#".repeat(2 * 1024 * 1024)).unwrap();
    };
    type Make<'a> = &'a dyn Fn(&Path);
    let cases: [(&[&str], &str, Make, &str); 5] = [
        (
            &["2020-01-01-000000_a/up.sql"],
            "2020-01-01-000000_a/metadata.toml",
            &fifo,
            "named pipe",
        ),
        (
            &["2020-01-01-000000_a/up.sql"],
            "2020-01-01-000000_a/metadata.toml",
            &huge,
            "migration settings files over",
        ),
        (&["V1__a.sql"], "V1__a.sql.conf", &fifo, "named pipe"),
        (&["V1__a.sql"], "V1__a.sql.conf", &folder, "a directory"),
        // sqlx's `-- no-transaction` marker is looked for in a regular file only.
        (&["0001_a.sql"], "0002_b.sql", &fifo, "named pipe"),
    ];
    for (files, odd, make, says) in cases {
        let s = Scratch::new();
        for f in files {
            s.patch(f, "create table t (id int);\n");
        }
        make(&s.patches().join(odd));
        let (code, _, stderr) = run_bounded(&s, &["check", "patches", "--no-history"], BOUND);
        assert_eq!(code, 2, "{odd}: {stderr}");
        assert!(
            stderr.contains(odd) && stderr.contains(says),
            "{odd}: {stderr}"
        );
    }
}

#[test]
fn a_migration_reaching_the_host_is_refused_in_every_layout() {
    let marker_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(marker_dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let written = marker_dir.path().join("copied.csv");
    let copy = format!(
        "create table t (id int);\ninsert into t values (1);\ncopy t to '{}';\n",
        written.display()
    );
    let cases: [(&str, &str, &str); 4] = [
        (
            "diesel",
            "2020-01-02-000000_host/up.sql",
            "2020-01-02-000000_host",
        ),
        ("golang-migrate", "000002_host.up.sql", "000002_host"),
        ("flyway", "V2__host.sql", "V2__host"),
        ("sqlx", "20210102000000_host.sql", "20210102000000_host"),
    ];
    let first = |layout: &str| match layout {
        "diesel" => "2020-01-01-000000_ok/up.sql",
        "golang-migrate" => "000001_ok.up.sql",
        "flyway" => "V1__ok.sql",
        _ => "20210101000000_ok.sql",
    };
    for (layout, file, id) in cases {
        let s = Scratch::new();
        s.patch(first(layout), "create table ok (id int);\n");
        s.patch(file, &copy);
        let (code, report, stderr, _) = check(&s, &["--layout", layout]);
        assert_eq!(code, 1, "{layout}: {stderr}");
        let r = patch(&report, id);
        assert_eq!(r["error"]["line"], 3, "{layout}: {r}");
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("host"), "{layout}: {message}");
        s.assert_clean();
    }
    assert!(!written.exists(), "COPY TO a file must never run");
}
