//! Safety: the source is never written, production needs a flag, passwords
//! are never printed, every run can be aborted and leaves nothing behind,
//! caps hold, and bad input gets a clear error.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{patch, processes_mentioning, psql, Scratch};
use downtime::staging::embedded::{Embedded, EmbeddedOptions};
use downtime::staging::Backend;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A checksum of every table's contents and of the catalogue of `db`.
fn checksum(server: &Embedded, db: &str) -> String {
    let tables = psql(
        server,
        db,
        "select string_agg(format('%I.%I', schemaname, tablename), ' ' order by 1) from pg_tables where schemaname = 'public'",
    );
    let mut sum = psql(
        server,
        db,
        "select md5(string_agg(c.relname || ':' || c.relkind::text || ':' || c.relfilenode || ':' || c.relnatts, ',' order by c.relname)) \
         from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public'",
    );
    sum += &psql(server, db, "select md5(string_agg(conname || pg_get_constraintdef(oid), ',' order by conname)) from pg_constraint");
    for t in tables.split_whitespace() {
        sum += &psql(
            server,
            db,
            &format!(
                "select md5(coalesce(string_agg(t::text, ',' order by t::text), '')) from {t} t"
            ),
        );
    }
    sum
}

fn socket_url(server: &Embedded, db: &str, password: &str) -> String {
    let args = server.client_args(db);
    let host = &args[1];
    format!(
        "postgresql://downtime:{password}@/{db}?host={host}&port={}",
        args[3]
    )
}

#[test]
fn from_url_reads_the_source_and_never_writes_it_nor_prints_its_password() {
    let source = Embedded::start_blocking(&EmbeddedOptions::default()).unwrap();
    psql(&source, "postgres", "create database shop");
    psql(
        &source,
        "shop",
        "create table customer (id bigserial primary key, email text not null);\n\
         insert into customer (email) select 'c' || g || '@x' from generate_series(1, 20000) g;\n\
         create table orders (id bigserial primary key, customer_id bigint references customer (id), total int);\n\
         insert into orders (customer_id, total) select 1 + g % 20000, g from generate_series(1, 50000) g;",
    );
    let before = checksum(&source, "shop");
    let databases = psql(
        &source,
        "postgres",
        "select string_agg(datname, ',' order by datname) from pg_database",
    );

    let s = Scratch::new();
    s.patch(
        "0001-rewrite.sql",
        "alter table orders alter column total type bigint;",
    );
    s.patch(
        "0002-fk.sql",
        "alter table orders add constraint orders_total_pos check (total > 0);",
    );
    s.patch("0003-drop.sql", "drop table orders;\ndelete from customer;");
    let secret = "Pl4nted-Secr3t";
    let url = socket_url(&source, "shop", secret);
    let out = s.run(&[
        "check",
        "patches",
        "--from-url",
        &url,
        "--format",
        "text,json,markdown,html,junit,github",
        "--output-dir",
        "out",
        "--charts",
        "svg",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("out/report.json")).unwrap())
            .unwrap();
    // The copy had the source's data: the type change rewrote 50 000 rows.
    assert_eq!(patch(&report, "0001-rewrite")["classification"], "cold");
    assert!(report["baseline"]["source"]
        .as_str()
        .unwrap()
        .contains("***"));

    assert_eq!(checksum(&source, "shop"), before, "the source changed");
    assert_eq!(
        psql(
            &source,
            "postgres",
            "select string_agg(datname, ',' order by datname) from pg_database"
        ),
        databases,
        "a database was left on the source"
    );
    let mut outputs = vec![stdout, stderr];
    for e in std::fs::read_dir(s.path().join("out")).unwrap() {
        outputs.push(std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    for o in &outputs {
        assert!(!o.contains(secret), "the password was printed: {o}");
    }
    s.assert_clean();
}

#[test]
fn production_sources_need_the_flag() {
    let source = Embedded::start_blocking(&EmbeddedOptions::default()).unwrap();
    psql(&source, "postgres", "create database shop_prod");
    psql(
        &source,
        "shop_prod",
        "create table t (id int); insert into t values (1);",
    );
    let before = checksum(&source, "shop_prod");
    let s = Scratch::new();
    s.patch("0001-a.sql", "insert into t values (2);");
    let url = socket_url(&source, "shop_prod", "hunter2");
    let out = s.run(&["check", "patches", "--from-url", &url]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--i-know-this-is-production"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let out = s.run(&[
        "check",
        "patches",
        "--from-url",
        &url,
        "--i-know-this-is-production",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(checksum(&source, "shop_prod"), before);
    let help = String::from_utf8_lossy(&s.run(&["check", "--help"]).stdout).into_owned();
    assert!(help.contains("--i-know-this-is-production") && help.contains("--from-url"));
    s.assert_clean();
}

/// Start `check` on a small run that takes a few seconds in all.
fn slow_run(s: &Scratch) -> std::process::Child {
    s.baseline("create table t (id int, v int);\ninsert into t select g, g from generate_series(1, 30000) g;\n");
    s.patch(
        "0001-a.sql",
        "select pg_sleep(0.4);\ncreate index t_v on t (v);",
    );
    s.patch(
        "0002-b.sql",
        "alter table t alter column v type bigint;\nselect pg_sleep(0.4);",
    );
    s.patch(
        "0003-c.sql",
        "create index concurrently t_id on t (id);\nselect pg_sleep(0.4);",
    );
    s.command(&["check", "patches", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill_at_random_points(signal: Signal, runs: u64, seed: u64) {
    let mut x = seed;
    for i in 0..runs {
        // A small linear congruential generator: delays spread over the
        // server start, the baseline load, and each patch.
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(50 + (x >> 33) % 2600);
        let s = Scratch::new();
        let child = slow_run(&s);
        std::thread::sleep(delay);
        let _ = kill(Pid::from_raw(child.id() as i32), signal);
        let started = Instant::now();
        let out = child.wait_with_output().unwrap();
        let code = out.status.code();
        assert!(
            matches!(code, Some(130) | Some(143) | Some(0)),
            "run {i} ({signal:?} after {delay:?}): exit {code:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "run {i} took too long to stop"
        );
        if code != Some(0) {
            let report: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                    panic!("run {i} ({signal:?} after {delay:?}): no partial report: {e}")
                });
            assert_eq!(report["verdict"], "aborted", "run {i}");
            assert!(report["aborted"]["phase"].is_string());
        }
        s.assert_clean();
    }
}

#[test]
fn sigint_at_random_points_leaves_nothing_behind() {
    kill_at_random_points(Signal::SIGINT, 10, 7);
}

#[test]
fn sigterm_at_random_points_leaves_nothing_behind() {
    kill_at_random_points(Signal::SIGTERM, 10, 1234);
}

#[test]
fn a_second_sigint_stops_at_once_and_still_cleans_up() {
    let s = Scratch::new();
    s.patch("0001-long.sql", "select pg_sleep(60);");
    let child = s
        .command(&["check", "patches"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the server is up and the patch is running.
    s.wait_for_server(Duration::from_millis(1200));
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGINT).unwrap();
    kill(pid, Signal::SIGINT).unwrap();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(6));
    s.assert_clean();
}

#[test]
fn the_whole_run_cap_names_the_running_statement() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "select 1;");
    s.patch("0002-forever.sql", "select 2;\nselect pg_sleep(60);");
    let started = Instant::now();
    let (code, report, _) = s.check_json(&["patches", "--max-run-seconds", "6"]);
    assert_eq!(code, 1);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(report["verdict"], "fail");
    assert_eq!(report["aborted"]["reason"], "runcap");
    assert_eq!(report["aborted"]["patch"], "0002-forever");
    assert_eq!(report["aborted"]["line"], 2);
    let failures = report["failures"].to_string();
    assert!(
        failures.contains("cap") && failures.contains("pg_sleep(60)"),
        "{failures}"
    );
    s.assert_clean();
}

#[test]
fn bad_input_matrix() {
    // A file over 100 MB is refused by its size, not read.
    let s = Scratch::new();
    let big = s.patch("0001-big.sql", "");
    std::fs::File::options()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(101 * 1024 * 1024)
        .unwrap();
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0001-big.sql") && stderr.contains("100 MiB"),
        "{stderr}"
    );

    // Unreadable: a link to nothing (root can read any file, so permissions
    // are tried only as an ordinary user).
    let u = Scratch::new();
    std::os::unix::fs::symlink("/nonexistent/patch.sql", u.patches().join("0001-x.sql")).unwrap();
    let out = u.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0001-x.sql"));
    if !nix::unistd::geteuid().is_root() {
        let p = u.patch("0002-y.sql", "select 1;");
        std::fs::remove_file(u.patches().join("0001-x.sql")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
        let out = u.run(&["check", "patches"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("0002-y.sql"));
    }

    // Unterminated dollar quote, reported where it starts.
    let d = Scratch::new();
    d.patch(
        "0001-a.sql",
        "select 1;\n\ncreate function f() returns int language sql as $f$\nselect 1;\n",
    );
    let out = d.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0001-a.sql:3"));

    // An empty folder.
    let e = Scratch::new();
    let out = e.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no patches found"));

    // ALTER SYSTEM and DROP DATABASE are refused before anything runs.
    for (sql, word) in [
        ("alter system set work_mem = '1GB';", "ALTER SYSTEM"),
        ("drop database postgres;", "DROP DATABASE"),
    ] {
        let r = Scratch::new();
        r.patch("0001-a.sql", &format!("select 1;\n{sql}"));
        let (code, report, _) = r.check_json(&["patches"]);
        assert_eq!(code, 1);
        let p = patch(&report, "0001-a");
        assert_eq!(p["error"]["line"], 2);
        assert!(p["error"]["message"].as_str().unwrap().contains(word));
    }
    s.assert_clean();
    u.assert_clean();
}

#[test]
fn patch_failures_are_reported_where_they_happen() {
    let s = Scratch::new();
    s.baseline("create table t (id int, v int);\ninsert into t select g, g % 10 from generate_series(1, 1000) g;\n");
    // Fails at its 3rd statement: the first two are rolled back.
    s.patch(
        "0001-third.sql",
        "create table a (id int);\ninsert into a values (1);\ninsert into a values ('x');",
    );
    s.patch(
        "0002-check.sql",
        "do $$ begin if to_regclass('a') is not null then raise exception 'not rolled back'; end if; end $$;",
    );
    // A unique build that fails on duplicates leaves an INVALID index.
    s.patch(
        "0003-unique.sql",
        "create unique index concurrently t_v_uq on t (v);",
    );
    // A patch that ends its own session.
    s.patch(
        "0004-suicide.sql",
        "select 1;\nselect pg_terminate_backend(pg_backend_pid());",
    );
    s.patch("0005-after.sql", "select 1;");
    let (code, report, stderr) = s.check_json(&["patches", "--keep-going"]);
    assert_eq!(code, 1, "{stderr}");
    let third = patch(&report, "0001-third");
    assert_eq!(third["error"]["statement_line"], 3);
    assert_eq!(third["error"]["sqlstate"], "22P02");
    assert_eq!(third["statements"].as_array().unwrap().len(), 3);
    assert_eq!(patch(&report, "0002-check")["status"], "ok");
    let unique = patch(&report, "0003-unique");
    assert_eq!(unique["status"], "failed");
    assert!(
        common::rules(unique).contains(&"invalid-index".to_string()),
        "{unique}"
    );
    let suicide = patch(&report, "0004-suicide");
    assert_eq!(suicide["status"], "failed");
    assert_eq!(suicide["error"]["line"], 2);
    assert_eq!(patch(&report, "0005-after")["status"], "skipped");
    assert!(patch(&report, "0005-after")["skipped_because"]
        .as_str()
        .unwrap()
        .contains("ended its own session"));
    s.assert_clean();
}

/// Mount a small tmpfs (root only); `None` where mounting is not allowed.
fn small_tmpfs(dir: &Path, megabytes: u32) -> Option<PathBuf> {
    let target = dir.join("small");
    std::fs::create_dir_all(&target).ok()?;
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={megabytes}m,mode=1777"),
            "tmpfs",
        ])
        .arg(&target)
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(target)
}

#[test]
fn a_full_disk_is_an_error_not_a_hang() {
    let s = Scratch::new();
    let small = small_tmpfs(s.path(), 96).unwrap_or_else(|| {
        panic!(
            "cannot mount a 96 MB tmpfs under {}: this test needs root (mount -t tmpfs); \
             run it as root",
            s.path().display()
        )
    });
    s.patch("0001-a.sql", "select 1;");
    std::fs::write(
        s.path().join("big.sql"),
        "create table filler (id int, pad text);\ninsert into filler select g, repeat('x', 500) from generate_series(1, 400000) g;\n",
    )
    .unwrap();
    let started = Instant::now();
    let out = s
        .command(&["check", "patches", "--baseline", "big.sql"])
        .env("TMPDIR", &small)
        .output()
        .unwrap();
    let _ = Command::new("umount").arg(&small).status();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(
        stderr.contains("No space left") || stderr.contains("could not"),
        "{stderr}"
    );
    assert!(processes_mentioning(&small).is_empty());
}

/// Start `check` on the scratch's patches and wait until it applies the first.
fn applying(s: &Scratch) -> std::process::Child {
    s.spawn_until(
        &["check", "patches", "--no-history"],
        Stdio::null(),
        "applying 0001",
        Duration::from_secs(30),
    )
}

#[test]
fn clean_removes_the_directory_of_a_killed_run_and_keeps_a_live_one() {
    let killed = Scratch::new();
    killed.patch("0001-long.sql", "select pg_sleep(60);");
    let mut child = applying(&killed);
    // SIGKILL: downtime cannot clean up; its server follows it (parent-death
    // signal) but the directory stays.
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !common::processes_mentioning(&killed.tmp()).is_empty() {
        assert!(Instant::now() < deadline, "the server outlived downtime");
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<_> = std::fs::read_dir(killed.tmp())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");

    let dry = killed.run(&["clean", "--dry-run"]);
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        text.contains(&format!("would remove {}", left[0].display())),
        "{text}"
    );
    assert!(left[0].exists());
    let out = killed.run(&["clean"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("removed {}", left[0].display())),
        "{text}"
    );
    killed.assert_clean();

    // A run that is still going keeps its directory.
    let live = Scratch::new();
    live.patch("0001-long.sql", "select pg_sleep(60);");
    let child = applying(&live);
    let out = live.run(&["clean"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("kept "), "{text}");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(130));
    live.assert_clean();
}

#[test]
fn a_signal_while_scaling_copies_stops_the_scaling_and_cleans_up() {
    let s = Scratch::new();
    s.baseline(
        "create table t (id int primary key, v text);\n\
         insert into t select g, md5(g::text) from generate_series(1, 400000) g;\n\
         create index t_v on t (v);\nanalyze;\n",
    );
    s.patch("0001-a.sql", "alter table t add column w int;");
    let stats = s.path().join("prod-stats.json");
    std::fs::write(
        &stats,
        r#"{"schema_version": 1, "exported_at": "2026-11-22T00:00:00Z", "server_version": "15",
            "source": "test", "tables": [{"name": "public.t", "rows": 4e6, "pages": 0,
            "total_bytes": 0, "table_bytes": 0}]}"#,
    )
    .unwrap();
    let child = s.spawn_until(
        &[
            "estimate",
            "patches",
            "--prod-stats",
            stats.to_str().unwrap(),
            "--scales",
            "0.9,1",
            "--no-history",
            "--format",
            "json",
        ],
        Stdio::piped(),
        "scaling a copy to 90 %",
        Duration::from_secs(60),
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "aborted");
    assert_eq!(report["aborted"]["phase"], "scaling the staging copies");
    assert_eq!(report["patches"][0]["status"], "skipped");
    s.assert_clean();
}

#[test]
fn sigint_while_the_server_is_made_stops_at_once_and_cleans_up() {
    use std::io::Read;
    let s = Scratch::new();
    s.patch("0001-a.sql", "create table t (id int);");
    let mut child = s.spawn_until(
        &["check", "patches", "--no-history", "--format", "json"],
        Stdio::piped(),
        "no baseline",
        Duration::from_secs(30),
    );
    // initdb is making the cluster.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_mentioning(&s.tmp())
        .iter()
        .any(|p| p.contains("initdb"))
    {
        assert!(Instant::now() < deadline, "initdb never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let signalled = Instant::now();
    // Until downtime exits, no server may start on the half-made cluster.
    let mut servers = Vec::new();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        servers.extend(
            processes_mentioning(&s.tmp())
                .into_iter()
                .filter(|p| p.contains("listen_addresses")),
        );
        assert!(
            signalled.elapsed() < Duration::from_secs(20),
            "still running 20 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(130));
    assert!(took < Duration::from_secs(3), "took {took:?} to stop");
    assert!(
        servers.is_empty(),
        "a server started after the signal: {servers:?}"
    );
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["verdict"], "aborted");
    assert_eq!(
        report["aborted"]["phase"],
        "starting the server and loading the baseline"
    );
    let clusters: Vec<_> = std::fs::read_dir(s.tmp())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("downtime-"))
        .collect();
    assert!(
        clusters.is_empty(),
        "cluster directories left: {clusters:?}"
    );
    s.assert_clean();
}
