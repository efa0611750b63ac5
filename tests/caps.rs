//! Caps that hold and errors that name the patch: a statement that swallows
//! its cancel is still stopped (cancel, terminate, stop the server) at the
//! statement cap, the whole-run cap and the first signal; a lost connection
//! or server, a patch shadowing catalogue names, a renamed template each end
//! with the patch, the line and a report; `bench` and `estimate` print the
//! error and the verdict; a baseline cache entry that is incomplete is not
//! used. Every run here is against a real staging server.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{patch, Scratch};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// A statement that catches every cancel, statement_timeout's included.
const SWALLOWS_CANCELS: &str = "select 1;\n\
do $$\n\
begin\n\
  loop\n\
    begin\n\
      perform pg_sleep(0.1);\n\
    exception when query_canceled then null;\n\
    end;\n\
  end loop;\n\
end $$;\n";

/// The same, catching the cancel by its SQLSTATE. (`WHEN OTHERS` alone
/// does not catch a cancel.)
const SWALLOWS_BY_SQLSTATE: &str = "select 1;\n\
do $$\n\
begin\n\
  loop\n\
    begin\n\
      perform pg_sleep(0.1);\n\
    exception when sqlstate '57014' or others then null;\n\
    end;\n\
  end loop;\n\
end $$;\n";

/// Far more than any of these runs takes when it ends, far less than never.
const BOUND: Duration = Duration::from_secs(30);

/// The JSON report a run wrote with `--output report.json`.
fn written_report(s: &Scratch) -> Value {
    let path = s.path().join("report.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Run `check` with `--output report.json` (and `extra`), timed.
fn check(s: &Scratch, extra: &[&str]) -> (i32, Value, String, Duration) {
    let mut args = vec![
        "check",
        "patches",
        "--no-history",
        "--output",
        "report.json",
    ];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let out = s.run(&args);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.code().unwrap_or(-1),
        written_report(s),
        stderr,
        took,
    )
}

/// Process ids and command lines of the processes whose command line
/// mentions `needle`.
fn pids_mentioning(needle: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
            if text.contains(needle) {
                found.push((pid, text));
            }
        }
    }
    found
}

/// The parent of process `pid`.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces, so from the last ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// The postmaster of the run in `s` (its data directory is under the
/// scratch's TMPDIR), and its backend running `what` on a staging copy
/// (`what` appears in the process title, e.g. `SELECT`) for a while: seen
/// on every poll for 300 ms, so not one of downtime's own short queries
/// (its trace is a `SELECT` too). Only this test's own processes are ever
/// looked at.
fn server_and_backend(s: &Scratch, what: &str) -> (i32, i32) {
    let data = format!("-D {}/", s.tmp().display());
    let deadline = Instant::now() + BOUND;
    let mut seen: Option<(i32, Instant)> = None;
    loop {
        let postmaster = pids_mentioning(&data)
            .into_iter()
            .find(|(_, cmd)| cmd.contains("listen_addresses"))
            .map(|(pid, _)| pid);
        let running = postmaster.and_then(|pm| {
            pids_mentioning("downtime_copy_")
                .into_iter()
                .find(|(pid, cmd)| parent_of(*pid) == Some(pm) && cmd.contains(what))
                .map(|(b, _)| (pm, b))
        });
        seen = match (running, seen) {
            (Some((_, b)), Some((was, since))) if b == was => Some((b, since)),
            (Some((_, b)), _) => Some((b, Instant::now())),
            (None, _) => None,
        };
        if let (Some((pm, b)), Some((_, since))) = (running, seen) {
            if since.elapsed() >= Duration::from_millis(300) {
                return (pm, b);
            }
        }
        assert!(Instant::now() < deadline, "no backend running {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start `check` on the scratch's patches with `--output report.json`,
/// once it is applying patch 0001.
fn start_applying(s: &Scratch, extra: &[&str]) -> Child {
    let mut args = vec![
        "check",
        "patches",
        "--no-history",
        "--output",
        "report.json",
    ];
    args.extend_from_slice(extra);
    s.spawn_until(&args, Stdio::null(), "applying 0001", BOUND)
}

/// Wait for `child`, within [`BOUND`]; its exit code and how long it took.
fn wait_bounded(mut child: Child) -> (i32, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code().unwrap_or(-1), started.elapsed());
        }
        if started.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running {BOUND:?} after it should have stopped");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The report names the running statement of 0001-loop at line 2 as ended
/// by `step`.
fn assert_named(report: &Value, reason: &str, step: &str) {
    let a = &report["aborted"];
    assert_eq!(a["reason"], reason, "{report}");
    assert_eq!(a["patch"], "0001-loop", "{a}");
    assert_eq!(a["line"], 2, "{a}");
    assert!(
        a["statement"]
            .as_str()
            .unwrap()
            .contains("perform pg_sleep"),
        "{a}"
    );
    assert_eq!(a["ended_by"], step, "{a}");
    let error = &patch(report, "0001-loop")["error"];
    assert_eq!(error["line"], 2, "{error}");
    assert_eq!(error["ended_by"], step, "{error}");
}

#[test]
fn a_loop_that_swallows_cancels_is_cut_at_the_statement_cap() {
    let s = Scratch::new();
    s.patch("0001-loop.sql", SWALLOWS_CANCELS);
    s.patch("0002-after.sql", "select 2;");
    let (code, report, stderr, took) = check(&s, &["--timeout", "1"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(took < BOUND, "took {took:?}");
    assert_eq!(report["verdict"], "fail");
    let p = patch(&report, "0001-loop");
    assert_eq!(p["status"], "failed");
    let error = &p["error"];
    assert_eq!(error["line"], 2, "{error}");
    assert_eq!(error["sqlstate"], "57014");
    assert_eq!(error["ended_by"], "terminate", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("statement cap") && message.contains("pg_terminate_backend"),
        "{message}"
    );
    assert!(error["hint"].as_str().unwrap().contains("query_canceled"));
    let after = patch(&report, "0002-after");
    assert_eq!(after["status"], "skipped");
    assert!(
        after["skipped_because"]
            .as_str()
            .unwrap()
            .contains("session was terminated"),
        "{after}"
    );
    s.assert_clean();
}

#[test]
fn a_deferred_trigger_that_swallows_cancels_is_cut_at_the_commit() {
    let s = Scratch::new();
    s.patch(
        "0001-deferred.sql",
        "create table d (id int);\n\
         create function loop_forever() returns trigger language plpgsql as $$\n\
         begin loop begin perform pg_sleep(0.1); exception when query_canceled then null; end; end loop; end $$;\n\
         create constraint trigger d_loop after insert on d deferrable initially deferred\n\
           for each row execute function loop_forever();\n\
         insert into d values (1);\n",
    );
    let (code, report, stderr, took) = check(&s, &["--timeout", "1"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(took < BOUND, "took {took:?}");
    let error = &patch(&report, "0001-deferred")["error"];
    // The last statement before downtime's COMMIT, where the trigger ran.
    assert_eq!(error["line"], 6, "{error}");
    assert_eq!(error["ended_by"], "terminate", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("COMMIT"),
        "{error}"
    );
    s.assert_clean();
}

#[test]
fn a_loop_that_swallows_cancels_by_sqlstate_is_cut_at_the_whole_run_cap() {
    let s = Scratch::new();
    s.baseline("create table t (id int);\n");
    // A first run stores the baseline in the cache, so the capped run
    // reaches its patch within about a second (6 s leaves room for a
    // loaded machine).
    s.patch("0001-loop.sql", "select 1;");
    let (code, _, stderr, _) = check(&s, &[]);
    assert_eq!(code, 0, "{stderr}");
    s.patch("0001-loop.sql", SWALLOWS_BY_SQLSTATE);
    let (code, report, stderr, took) = check(&s, &["--max-run-seconds", "6"]);
    assert_eq!(report["baseline"]["cache"], "hit", "{stderr}");
    assert_eq!(code, 1, "{stderr}");
    assert!(took < BOUND, "took {took:?}");
    assert_eq!(report["verdict"], "fail");
    assert_named(&report, "runcap", "terminate");
    let failures = report["failures"].to_string();
    assert!(
        failures.contains("--max-run-seconds") && failures.contains("0001-loop line 2"),
        "{failures}"
    );
    s.assert_clean();
}

#[test]
fn the_first_sigint_ends_a_loop_that_swallows_cancels() {
    let s = Scratch::new();
    s.patch("0001-loop.sql", SWALLOWS_CANCELS);
    let child = start_applying(&s, &[]);
    server_and_backend(&s, "DO");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let (code, took) = wait_bounded(child);
    assert_eq!(code, 130);
    assert!(took < Duration::from_secs(15), "took {took:?} after SIGINT");
    let report = written_report(&s);
    assert_eq!(report["verdict"], "aborted");
    assert_named(&report, "sigint", "terminate");
    s.assert_clean();
}

#[test]
fn a_backend_that_does_not_go_on_terminate_goes_with_its_server() {
    let s = Scratch::new();
    s.patch("0001-loop.sql", "select 1;\nselect pg_sleep(600);");
    let child = start_applying(&s, &[]);
    // A stopped process acts on no signal: neither the cancel nor the
    // terminate reaches it, as with a backend stuck in the kernel.
    let (_, backend) = server_and_backend(&s, "SELECT");
    kill(Pid::from_raw(backend), Signal::SIGSTOP).unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let (code, took) = wait_bounded(child);
    assert_eq!(code, 130);
    assert!(took < BOUND, "took {took:?}");
    let report = written_report(&s);
    let a = &report["aborted"];
    assert_eq!(a["reason"], "sigint", "{report}");
    assert_eq!(a["line"], 2, "{a}");
    assert_eq!(a["statement"], "select pg_sleep(600)");
    assert_eq!(a["ended_by"], "server-stop", "{a}");
    assert!(report["failures"]
        .to_string()
        .contains("stopping the staging server"));
    // The stopped backend went with its server.
    assert!(std::fs::metadata(format!("/proc/{backend}")).is_err());
    s.assert_clean();
}

#[test]
fn a_patch_that_terminates_every_other_backend_fails_at_its_line() {
    let s = Scratch::new();
    s.patch(
        "0001-killer.sql",
        "select 1;\nselect pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid();\nselect 2;\n",
    );
    s.patch("0002-after.sql", "select 3;");
    let (code, report, stderr, _) = check(&s, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(report["verdict"], "fail");
    let p = patch(&report, "0001-killer");
    assert_eq!(p["status"], "failed");
    assert_eq!(p["error"]["line"], 2, "{p}");
    assert_eq!(p["error"]["sqlstate"], "57P01");
    assert!(
        p["error"]["message"]
            .as_str()
            .unwrap()
            .contains("downtime's own connection"),
        "{p}"
    );
    let a = &report["aborted"];
    assert_eq!(a["reason"], "broken", "{a}");
    assert_eq!(a["patch"], "0001-killer");
    assert_eq!(a["line"], 2);
    assert_eq!(patch(&report, "0002-after")["status"], "skipped");
    assert!(!stderr.contains("database:"), "{stderr}");
    s.assert_clean();
}

#[test]
fn a_session_timeout_the_patch_sets_is_named_where_it_is_set() {
    let s = Scratch::new();
    // downtime's own queries between statements leave the session idle in
    // its transaction for longer than 1 ms long before the 2000th statement.
    let mut sql = String::from("select 0;\nset idle_in_transaction_session_timeout = '1ms';\n");
    for i in 1..=2000 {
        sql.push_str(&format!("select {i};\n"));
    }
    s.patch("0001-idle.sql", &sql);
    s.patch("0002-after.sql", "select 1;");
    let (code, report, stderr, _) = check(&s, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(report["verdict"], "fail");
    let p = patch(&report, "0001-idle");
    let error = &p["error"];
    assert_eq!(error["line"], 2, "{error}");
    assert_eq!(error["sqlstate"], "25P03", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("idle-in-transaction timeout"),
        "{error}"
    );
    let after = patch(&report, "0002-after");
    assert_eq!(after["status"], "skipped");
    assert!(after["skipped_because"]
        .as_str()
        .unwrap()
        .contains("ended its own session"));
    // The server was fine: the run was not stopped.
    assert!(report["aborted"].is_null(), "{report}");
    s.assert_clean();
}

/// Kill a process of the run's own server (`which`: the backend running
/// the patch's `select pg_sleep`, or the postmaster) from outside, and
/// return the run's exit code, report and stderr.
fn killed_from_outside(which: &str) -> (i32, Value, String, Scratch) {
    let s = Scratch::new();
    s.patch("0001-sleep.sql", "select 1;\nselect pg_sleep(600);");
    s.patch("0002-after.sql", "select 2;");
    let log = s.path().join("stderr.log");
    let child = start_applying(&s, &[]);
    let (postmaster, backend) = server_and_backend(&s, "SELECT");
    let victim = if which == "backend" {
        backend
    } else {
        postmaster
    };
    kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    let (code, took) = wait_bounded(child);
    assert!(took < BOUND);
    let stderr = std::fs::read_to_string(log).unwrap();
    (code, written_report(&s), stderr, s)
}

fn assert_infrastructure_failure(code: i32, report: &Value, stderr: &str) {
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(report["verdict"], "aborted");
    let a = &report["aborted"];
    assert_eq!(a["reason"], "infrastructure", "{a}");
    assert_eq!(a["patch"], "0001-sleep");
    assert_eq!(a["line"], 2);
    assert_eq!(a["statement"], "select pg_sleep(600)");
    let p = patch(report, "0001-sleep");
    assert_eq!(p["error"]["line"], 2, "{p}");
    assert_eq!(patch(report, "0002-after")["status"], "skipped");
    // The error names the patch and line on stderr too, never a bare
    // driver message.
    let error_line = stderr
        .lines()
        .find(|l| l.starts_with("downtime: error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(error_line.contains("0001-sleep line 2"), "{error_line}");
}

#[test]
fn a_backend_killed_from_outside_is_an_infrastructure_failure() {
    let (code, report, stderr, s) = killed_from_outside("backend");
    assert_infrastructure_failure(code, &report, &stderr);
    let message = report["aborted"]["message"].as_str().unwrap();
    assert!(message.contains("terminated by signal 9"), "{message}");
    s.assert_clean();
}

#[test]
fn a_server_killed_from_outside_is_an_infrastructure_failure() {
    let (code, report, stderr, s) = killed_from_outside("postmaster");
    assert_infrastructure_failure(code, &report, &stderr);
    s.assert_clean();
}

/// Classification facts of every patch: id, class, rules, and per
/// statement its locks (relation, mode) and rewrites (relation).
fn classification(report: &Value) -> Vec<Value> {
    report["patches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"] != "0001-shadows")
        .map(|p| {
            let statements: Vec<Value> = p["statements"]
                .as_array()
                .unwrap()
                .iter()
                .map(|st| {
                    let locks: Vec<Value> = st["locks"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|l| serde_json::json!([l["relation"], l["mode"]]))
                        .collect();
                    let mut rewrites: Vec<String> = st["rewrites"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["relation"].as_str().unwrap().to_string())
                        .collect();
                    rewrites.sort();
                    serde_json::json!([st["line"], locks, rewrites])
                })
                .collect();
            serde_json::json!([p["id"], p["classification"], common::rules(p), statements])
        })
        .collect()
}

#[test]
fn shadowed_catalogue_names_classify_as_without_them() {
    let baseline = "create table t (id int primary key, v int not null);\n\
                    insert into t select g, g from generate_series(1, 20000) g;\n\
                    create index t_v on t (v);\n";
    let patches = [
        (
            "0002-rewrite.sql",
            "set search_path = public, pg_catalog;\nalter table t alter column v type bigint;",
        ),
        (
            "0003-index.sql",
            "set search_path = public, pg_catalog;\ncreate index t_v2 on t (v, id);",
        ),
        (
            "0004-validate.sql",
            "set search_path = public, pg_catalog;\nalter table t add constraint t_v_pos check (v > 0) not valid;\nalter table t validate constraint t_v_pos;",
        ),
        (
            "0005-concurrently.sql",
            "set search_path = public, pg_catalog;\ncreate index concurrently t_id_v on t (id, v);",
        ),
    ];
    // Objects named like the catalogue's, found first on the path the
    // later patches set; and a temporary one, found first on any path.
    let shadows = "create table public.pg_class (oid oid, relname name, relkind \"char\", relfilenode oid, reltuples real, relnamespace oid);\n\
        create table public.pg_index (indexrelid oid, indrelid oid, indisvalid boolean);\n\
        create view public.pg_locks as select * from pg_catalog.pg_locks where false;\n\
        create function public.pg_relation_size(regclass) returns bigint language sql as 'select 0::bigint';\n\
        create function public.pg_backend_pid() returns integer language sql as 'select 0';\n\
        create function public.current_setting(text) returns text language sql as 'select ''0''::text';\n\
        create function public.never_equal(oid, oid) returns boolean language sql as 'select false';\n\
        create operator public.= (leftarg = oid, rightarg = oid, function = public.never_equal);\n";
    let mut reports = Vec::new();
    for first in ["select 1;\n", shadows] {
        let s = Scratch::new();
        s.baseline(baseline);
        s.patch("0001-shadows.sql", first);
        for (name, sql) in patches {
            s.patch(name, sql);
        }
        let (code, report, stderr, _) = check(&s, &["--budget", "600"]);
        assert_eq!(code, 0, "{stderr}\n{report}");
        reports.push(classification(&report));
        s.assert_clean();
    }
    assert_eq!(reports[0], reports[1]);
    // And what they agree on is the real thing.
    let rewrite = &reports[0][0];
    assert_eq!(rewrite[1], "cold", "{rewrite}");
    assert!(rewrite.to_string().contains("AccessExclusive"), "{rewrite}");
    assert!(rewrite.to_string().contains("public.t_pkey"), "{rewrite}");
    assert_eq!(reports[0][3][1], "live", "{:?}", reports[0][3]);
}

#[test]
fn renaming_the_template_fails_the_patch_and_later_copies_are_made() {
    let s = Scratch::new();
    s.baseline("create table t (id int);\n");
    s.patch(
        "0001-rename.sql",
        "select 1;\nalter database downtime_baseline rename to elsewhere;\nselect 2;\n",
    );
    s.patch("0002-after.sql", "select 3;");
    let out = s.run(&[
        "bench",
        "patches",
        "--runs",
        "2",
        "--warmup",
        "0",
        "--no-history",
        "--output",
        "report.json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let report = written_report(&s);
    let p = patch(&report, "0001-rename");
    assert_eq!(p["status"], "failed");
    assert_eq!(p["error"]["line"], 2);
    assert!(
        p["error"]["message"]
            .as_str()
            .unwrap()
            .contains("renamed the database downtime_baseline"),
        "{p}"
    );
    // The rename was rolled back with the patch: the second run's copy was
    // made from the template, and bench went on past the failed patch.
    assert!(report["aborted"].is_null(), "{report}");
    assert_eq!(
        patch(&report, "0002-after")["timing"]["warm"]["runs"],
        2,
        "{report}"
    );
    assert!(stdout.contains("0001-rename: error patches/0001-rename.sql:2: this statement renamed"));
    assert!(stdout.contains("verdict: FAIL"), "{stdout}");
    s.assert_clean();
}

#[test]
fn bench_and_estimate_print_the_error_and_the_verdict() {
    let s = Scratch::new();
    s.baseline("create table t (id int);\ninsert into t select generate_series(1, 100);\n");
    s.patch("0001-ok.sql", "alter table t add column v int;");
    s.patch("0002-bad.sql", "select 1;\nselect * from nowhere;");
    let stats = s.path().join("prod-stats.json");
    std::fs::write(
        &stats,
        r#"{"schema_version": 1, "exported_at": "2026-11-22T00:00:00Z", "server_version": "15",
            "source": "test", "tables": [{"name": "public.t", "rows": 1000, "pages": 0,
            "total_bytes": 0, "table_bytes": 0}]}"#,
    )
    .unwrap();
    let runs: [&[&str]; 2] = [
        &[
            "bench",
            "patches",
            "--runs",
            "2",
            "--warmup",
            "0",
            "--no-history",
        ],
        &[
            "estimate",
            "patches",
            "--prod-stats",
            stats.to_str().unwrap(),
            "--scales",
            "0.5,1",
            "--no-history",
        ],
    ];
    for args in runs {
        let out = s.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}\n{stdout}\n{stderr}");
        assert!(
            stdout.contains(
                "0002-bad: error patches/0002-bad.sql:2: relation \"nowhere\" does not exist (SQLSTATE 42P01)"
            ),
            "{args:?}\n{stdout}"
        );
        assert!(
            stdout.contains("FAIL: patches/0002-bad.sql:2: 0002-bad failed"),
            "{args:?}\n{stdout}"
        );
        assert!(
            stdout.trim_end().ends_with("verdict: FAIL"),
            "{args:?}\n{stdout}"
        );
    }
    s.assert_clean();
}

/// The one baseline cache entry under `cache` (its `data` folder).
fn cache_entry(cache: &Path) -> PathBuf {
    let root = cache.join("downtime");
    let entries: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].join("data")
}

/// A scratch whose baseline is in the cache, and the entry's `data`.
fn cached_baseline() -> (Scratch, PathBuf) {
    let s = Scratch::new();
    s.baseline("create table t (id int);\ninsert into t select generate_series(1, 1000);\n");
    s.patch("0001-a.sql", "alter table t add column v int;");
    let (code, report, stderr, _) = check(&s, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["baseline"]["cache"], "miss");
    let data = cache_entry(&s.path().join("cache"));
    (s, data)
}

/// Regular files under `dir` (relative paths).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_cache_entry_that_is_gone_or_lacks_files_is_not_restored() {
    use downtime::cancel::Cancel;
    use downtime::staging::cache::{restore, Restored};
    let (s, data) = cached_baseline();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dest = s.path().join("restored");

    // Whole: every file comes over.
    let r = rt
        .block_on(restore(&data, &dest, &Cancel::never()))
        .unwrap();
    assert_eq!(r, Restored::Copied);
    assert_eq!(files(&dest), files(&data));
    std::fs::remove_dir_all(&dest).unwrap();

    // Files gone from the entry (as while `downtime cache clear` removes
    // it): not used, nothing left at the destination, and the entry goes.
    let relation_files: Vec<PathBuf> = files(&data)
        .into_iter()
        .filter(|p| p.starts_with("base"))
        .collect();
    assert!(relation_files.len() > 10, "{relation_files:?}");
    for f in relation_files.iter().step_by(3) {
        std::fs::remove_file(data.join(f)).unwrap();
    }
    let r = rt
        .block_on(restore(&data, &dest, &Cancel::never()))
        .unwrap();
    assert!(
        matches!(&r, Restored::Unusable(why) if why.contains("missing")),
        "{r:?}"
    );
    assert!(!dest.exists());
    assert!(!data.parent().unwrap().exists(), "the damaged entry stayed");

    // The entry gone altogether before the copy.
    let r = rt
        .block_on(restore(&data, &dest, &Cancel::never()))
        .unwrap();
    assert!(matches!(r, Restored::Unusable(_)), "{r:?}");
    assert!(!dest.exists());
}

#[test]
fn a_damaged_cache_entry_falls_back_to_loading_the_baseline() {
    let (s, data) = cached_baseline();
    // Truncate a relation file: listed at another size than the copy has.
    let victim = files(&data)
        .into_iter()
        .find(|p| p.starts_with("base") && std::fs::metadata(data.join(p)).unwrap().len() > 0)
        .unwrap();
    std::fs::write(data.join(&victim), b"").unwrap();
    let (code, report, stderr, _) = check(&s, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["baseline"]["cache"], "miss");
    assert_eq!(patch(&report, "0001-a")["status"], "ok");
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cached baseline could not be used"))
        .collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(!stderr.contains("cannot copy"), "{stderr}");
    // The run stored a whole entry again, and the next run uses it.
    let (code, report, stderr, _) = check(&s, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["baseline"]["cache"], "hit", "{stderr}");
    s.assert_clean();
}
