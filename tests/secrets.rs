//! Secrets and the source, on a real password-protected server (SCRAM over
//! TCP on 127.0.0.1): no password reaches an output, a report or a child's
//! command line; the production guard judges what libpq would connect to
//! (PGDATABASE, services) and the child connects to exactly that; no
//! `options` can undo the read-only session; a run killed outright during
//! the restore leaves its dump only in its private directory, which
//! `downtime clean` removes.

mod common;
#[path = "common/tcp.rs"]
mod tcp;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{files_under, processes_mentioning, Scratch};
use downtime::staging::embedded::find_bin_dir;
use downtime::staging::source::resolve::Environment;
use downtime::staging::source::Source;
use tcp::TcpServer;

/// Environment variables for one case.
type Vars<'a> = Vec<(&'a str, &'a str)>;

/// Every password planted here contains this; no output may.
const MARK: &str = "Pl4nted";

/// The tables of `db` and a checksum of their rows.
fn contents(server: &TcpServer, db: &str) -> String {
    server.psql(
        db,
        "select string_agg(c.relname, ',' order by c.relname) || ' ' || \
         (select md5(string_agg(t::text, ',' order by t::text)) from customer t) \
         from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = 'public'",
    )
}

/// A source with databases `shop` and `prod_shop`, 500 customers each.
fn source_server() -> TcpServer {
    let server = TcpServer::start();
    for db in ["shop", "prod_shop"] {
        server.psql("postgres", &format!("create database {db}"));
        server.psql(
            db,
            "create table customer (id bigserial primary key, email text not null);\n\
             insert into customer (email) select 'c' || g || '@x' from generate_series(1, 500) g;",
        );
    }
    server
}

/// `--pg-bin` for downtime: the real programs, except a `pg_dump` that
/// records its arguments, its environment, and what a session opened with
/// its connection string sees (`default_transaction_read_only`, and
/// whether a write goes through), then runs the real `pg_dump`. With
/// `gate_restore`, `pg_restore` records its arguments and waits instead.
fn shim_bin(root: &Path, gate_restore: bool) -> PathBuf {
    let real = find_bin_dir(None).unwrap();
    let dir = root.join("bin");
    std::fs::create_dir_all(dir.join("calls")).unwrap();
    for p in ["postgres", "initdb", "psql", "pg_restore", "pg_config"] {
        if !(gate_restore && p == "pg_restore") {
            std::os::unix::fs::symlink(real.join(p), dir.join(p)).unwrap();
        }
    }
    let real = real.display();
    let script = format!(
        r#"#!/bin/bash
out="$(dirname "$0")/calls/$$"
mkdir -p "$out"
printf '%s\0' "$@" > "$out/argv"
env -0 > "$out/env"
conn=""; prev=""
for a in "$@"; do [ "$prev" = "--dbname" ] && conn="$a"; prev="$a"; done
"{real}/psql" -X -At -d "$conn" -c "show default_transaction_read_only" > "$out/read_only" 2>&1
"{real}/psql" -X -At -d "$conn" -c "create table written_by_the_dump (x int)" > "$out/write" 2>&1
exec "{real}/pg_dump" "$@"
"#
    );
    let write_exec = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).unwrap();
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write_exec("pg_dump", &script);
    if gate_restore {
        write_exec(
            "pg_restore",
            "#!/bin/bash\nd=\"$(dirname \"$0\")\"\nprintf '%s\\n' \"$@\" > \"$d/restore.tmp\"\n\
             mv \"$d/restore.tmp\" \"$d/restore-args\"\nexec -a downtime-test-restore-gate sleep 60\n",
        );
    }
    dir
}

/// What the `pg_dump` shim recorded, for its only call.
struct DumpCall {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    read_only: String,
    write: String,
}

fn dump_call(bin: &Path) -> DumpCall {
    let calls: Vec<PathBuf> = std::fs::read_dir(bin.join("calls"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(calls.len(), 1, "pg_dump ran {} times", calls.len());
    let c = &calls[0];
    let split0 = |p: &Path| -> Vec<String> {
        String::from_utf8_lossy(&std::fs::read(p).unwrap())
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let call = DumpCall {
        argv: split0(&c.join("argv")),
        env: split0(&c.join("env"))
            .into_iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.into(), v.into())))
            .collect(),
        read_only: std::fs::read_to_string(c.join("read_only")).unwrap(),
        write: std::fs::read_to_string(c.join("write")).unwrap(),
    };
    std::fs::remove_dir_all(c).unwrap();
    call
}

impl DumpCall {
    fn conninfo(&self) -> &str {
        let i = self.argv.iter().position(|a| a == "--dbname").unwrap();
        &self.argv[i + 1]
    }

    /// Nothing of the password on the command line (what `ps` shows) or
    /// in the environment, and no libpq variable that could redirect it.
    fn assert_clean(&self, what: &str) {
        for a in &self.argv {
            assert!(
                !a.contains(MARK),
                "{what}: password on pg_dump's command line: {a}"
            );
        }
        for (k, v) in &self.env {
            assert!(
                !v.contains(MARK),
                "{what}: password in pg_dump's environment ({k})"
            );
            assert!(
                !downtime::staging::source::resolve::libpq_variables().any(|v| v == k),
                "{what}: libpq variable {k} in pg_dump's environment"
            );
        }
    }

    /// The session pg_dump opens is read-only, and a write in it fails.
    fn assert_read_only(&self, what: &str) {
        assert_eq!(self.read_only.trim(), "on", "{what}");
        assert!(
            self.write.contains("read-only transaction"),
            "{what}: a write went through: {}",
            self.write
        );
    }
}

fn assert_no_password(what: &str, texts: &[(PathBuf, String)], password: &str) {
    let encoded = downtime::staging::source::conninfo::encodings(password);
    for (p, t) in texts {
        for needle in [MARK, password, &encoded[0], &encoded[1]] {
            assert!(
                !t.contains(needle),
                "{what}: `{needle}` in {}:\n{t}",
                p.display()
            );
        }
    }
}

fn check(
    s: &Scratch,
    bin: &Path,
    from: &str,
    env: &[(&str, &str)],
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "check",
        "patches",
        "--from-url",
        from,
        "--pg-bin",
        bin.to_str().unwrap(),
        "--format",
        "text,json,markdown,html,junit,github",
        "--output-dir",
        "out",
    ];
    args.extend_from_slice(extra);
    let mut cmd = s.command(&args);
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn outputs(s: &Scratch, out: &std::process::Output, bin: &Path) -> Vec<(PathBuf, String)> {
    let mut texts = vec![
        (
            PathBuf::from("stdout"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ),
        (
            PathBuf::from("stderr"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
    ];
    texts.extend(files_under(s.path(), bin));
    texts
}

#[test]
fn no_password_form_reaches_an_output_a_report_or_a_command_line() {
    let server = source_server();
    let p = server.port;
    let forms: Vec<(&str, &str, String)> = vec![
        (
            "app_url",
            "Pl4nted-Url",
            format!("postgresql://app_url:Pl4nted-Url@127.0.0.1:{p}/shop"),
        ),
        (
            "app_q",
            "Pl4nted-Query",
            format!("postgresql://app_q@127.0.0.1:{p}/shop?password=Pl4nted-Query"),
        ),
        (
            "app_kv",
            "Pl4nted-Kv",
            format!("host=127.0.0.1 port = {p} user=app_kv password = Pl4nted-Kv dbname = shop"),
        ),
        (
            "app_sp",
            "Pl4nted with 'spaces'",
            format!(
                r"host=127.0.0.1 port={p} user=app_sp password='Pl4nted with \'spaces\'' dbname=shop"
            ),
        ),
        (
            "app_enc",
            "Pl4nted@/:%&?#é+x",
            format!(
                "postgresql://app_enc:Pl4nted%40%2F%3A%25%26%3F%23%C3%A9%2Bx@127.0.0.1:{p}/shop"
            ),
        ),
    ];
    for (role, password, _) in &forms {
        server.role(role, password);
    }
    let before = contents(&server, "shop");
    for (role, password, from) in &forms {
        let s = Scratch::new();
        s.patch(
            "0001-rewrite.sql",
            "alter table customer alter column email type varchar(200);",
        );
        let bin = shim_bin(s.path(), false);
        let out = check(&s, &bin, from, &[], &[]);
        let texts = outputs(&s, &out, &bin);
        assert_eq!(out.status.code(), Some(0), "{role}: {texts:?}");
        assert_no_password(role, &texts, password);
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(s.path().join("out/report.json")).unwrap(),
        )
        .unwrap();
        let shown = report["baseline"]["source"].as_str().unwrap();
        assert!(
            shown.contains("password=***") && shown.contains("dbname=shop") && shown.contains(role),
            "{role}: {shown}"
        );
        let call = dump_call(&bin);
        call.assert_clean(role);
        call.assert_read_only(role);
        s.assert_clean();

        // The error path: a database that does not exist.
        let s = Scratch::new();
        s.patch("0001-a.sql", "select 1;");
        let bin = shim_bin(s.path(), false);
        let wrong = from
            .replace("/shop", "/nope_db")
            .replace("dbname = shop", "dbname=nope_db")
            .replace("dbname=shop", "dbname=nope_db");
        let out = check(&s, &bin, &wrong, &[], &[]);
        let texts = outputs(&s, &out, &bin);
        let stderr = &texts[1].1;
        assert_eq!(out.status.code(), Some(2), "{role}: {stderr}");
        assert!(
            stderr.contains("nope_db") && stderr.contains("does not exist"),
            "{role}: {stderr}"
        );
        assert_no_password(&format!("{role}, failing"), &texts, password);
        dump_call(&bin).assert_clean(role);
        s.assert_clean();
    }
    assert_eq!(contents(&server, "shop"), before, "the source changed");
}

/// The settings of the connection string pg_dump was given.
fn dumped(call: &DumpCall, keyword: &str) -> Option<String> {
    downtime::staging::source::conninfo::parse(call.conninfo())
        .unwrap()
        .settings
        .get(keyword)
        .map(str::to_string)
}

#[test]
fn the_guard_judges_what_libpq_would_connect_to_and_the_dump_connects_there() {
    let server = source_server();
    server.role("app", "Pl4nted-Guard");
    let p = server.port;
    // Outside the scratch: it holds a password, and the scratch is searched for one.
    let services = tempfile::tempdir().unwrap();
    let service_file = services.path().join("pg_service.conf");
    std::fs::write(
        &service_file,
        format!("[shop]\nhost=127.0.0.1\nport={p}\nuser=app\npassword=Pl4nted-Guard\ndbname=prod_shop\n"),
    )
    .unwrap();
    let svc = service_file.to_str().unwrap();
    let no_db = format!("postgresql://app:Pl4nted-Guard@127.0.0.1:{p}");
    let cases: Vec<(&str, Vars, &str)> = vec![
        (&no_db, vec![("PGDATABASE", "prod_shop")], "$PGDATABASE"),
        (
            "postgresql://",
            vec![("PGSERVICE", "shop"), ("PGSERVICEFILE", svc)],
            svc,
        ),
        ("service=shop", vec![("PGSERVICEFILE", svc)], svc),
    ];
    let before = contents(&server, "prod_shop");
    for (from, env, origin) in &cases {
        let what = format!("{from} with {env:?}");
        let s = Scratch::new();
        s.patch("0001-a.sql", "select 1;");
        let bin = shim_bin(s.path(), false);
        let out = check(&s, &bin, from, env, &[]);
        let texts = outputs(&s, &out, &bin);
        let stderr = &texts[1].1;
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        for needle in ["`prod_shop`", origin, "--i-know-this-is-production"] {
            assert!(stderr.contains(needle), "{what}: no {needle} in {stderr}");
        }
        assert!(
            std::fs::read_dir(bin.join("calls"))
                .unwrap()
                .next()
                .is_none(),
            "{what}: dumped"
        );
        assert_no_password(&what, &texts, "Pl4nted-Guard");

        let out = check(&s, &bin, from, env, &["--i-know-this-is-production"]);
        let texts = outputs(&s, &out, &bin);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", texts[1].1);
        assert_no_password(&what, &texts, "Pl4nted-Guard");
        let call = dump_call(&bin);
        call.assert_clean(&what);
        call.assert_read_only(&what);
        // What was judged is what pg_dump was told, explicitly.
        assert_eq!(
            dumped(&call, "dbname").as_deref(),
            Some("prod_shop"),
            "{what}"
        );
        assert_eq!(
            dumped(&call, "host").as_deref(),
            Some("127.0.0.1"),
            "{what}"
        );
        assert_eq!(dumped(&call, "port"), Some(p.to_string()), "{what}");
        assert_eq!(dumped(&call, "user").as_deref(), Some("app"), "{what}");
        s.assert_clean();
    }
    // Not production by its environment: no flag needed, and that database is dumped.
    let s = Scratch::new();
    s.patch("0001-a.sql", "select 1;");
    let bin = shim_bin(s.path(), false);
    let out = check(&s, &bin, &no_db, &[("PGDATABASE", "shop")], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dumped(&dump_call(&bin), "dbname").as_deref(), Some("shop"));
    s.assert_clean();
    assert_eq!(contents(&server, "prod_shop"), before, "the source changed");

    // downtime's own connection (stats export) resolves the same way.
    let s = Scratch::new();
    let out = s
        .command(&[
            "stats",
            "export",
            "--url",
            "postgresql://",
            "-o",
            "stats.json",
        ])
        .envs([("PGSERVICE", "shop"), ("PGSERVICEFILE", svc)])
        .output()
        .unwrap();
    let texts = outputs(&s, &out, &s.path().join("none"));
    assert_eq!(out.status.code(), Some(0), "{texts:?}");
    assert_no_password("stats export", &texts, "Pl4nted-Guard");
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("stats.json")).unwrap())
            .unwrap();
    assert!(
        stats["source"]
            .as_str()
            .unwrap()
            .contains("dbname=prod_shop"),
        "{stats}"
    );
    assert!(
        stats["tables"].to_string().contains("public.customer"),
        "{stats}"
    );
    let out = s
        .command(&[
            "stats",
            "export",
            "--url",
            &format!("postgresql://app:Pl4nted-Wrong@127.0.0.1:{p}/shop"),
        ])
        .output()
        .unwrap();
    let texts = outputs(&s, &out, &s.path().join("none"));
    assert_eq!(out.status.code(), Some(2), "{texts:?}");
    assert!(
        texts[1].1.contains("password authentication failed"),
        "{texts:?}"
    );
    assert_no_password("stats export, failing", &texts, "Pl4nted-Wrong");
}

#[test]
fn no_options_can_turn_the_read_only_session_off() {
    let server = source_server();
    server.role("app_ro", "Pl4nted-Ro");
    let p = server.port;
    let kv = format!("host=127.0.0.1 port={p} user=app_ro password=Pl4nted-Ro dbname=shop");
    let services = tempfile::tempdir().unwrap();
    let service_file = services.path().join("pg_service.conf");
    std::fs::write(
        &service_file,
        format!(
            "[ro]\n{}\noptions=-c default_transaction_read_only=off\n",
            kv.replace(' ', "\n")
        ),
    )
    .unwrap();
    let svc = service_file.to_str().unwrap();
    let off = "-c default_transaction_read_only=off";
    let cases: Vec<(String, Vars)> = vec![
        (
            format!("postgresql://app_ro:Pl4nted-Ro@127.0.0.1:{p}/shop?options=-c%20default_transaction_read_only%3Doff"),
            vec![],
        ),
        (format!("{kv} options='{off}'"), vec![]),
        (kv.clone(), vec![("PGOPTIONS", off)]),
        // A trailing backslash would swallow a space and what follows it.
        (
            format!(r"{kv} options='--default-transaction-read-only=off -c application_name=x\\'"),
            vec![],
        ),
        ("service=ro".into(), vec![("PGSERVICEFILE", svc)]),
    ];
    let before = contents(&server, "shop");
    for (from, env) in &cases {
        let what = format!("{from} with {env:?}");
        let s = Scratch::new();
        s.patch("0001-a.sql", "select 1;");
        let bin = shim_bin(s.path(), false);
        let out = check(&s, &bin, from, env, &[]);
        let texts = outputs(&s, &out, &bin);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", texts[1].1);
        assert_no_password(&what, &texts, "Pl4nted-Ro");
        let call = dump_call(&bin);
        call.assert_clean(&what);
        call.assert_read_only(&what);
        let options = dumped(&call, "options").unwrap();
        assert!(
            options.ends_with("-c default_transaction_read_only=on"),
            "{what}: {options}"
        );
        s.assert_clean();
    }
    assert_eq!(contents(&server, "shop"), before, "the source changed");
}

/// libpq's own answer (psql given the string and the environment) and the
/// explicit target downtime hands its child (with libpq's variables
/// cleared) reach the same server, user and database.
#[test]
fn the_resolved_target_is_the_one_libpq_connects_to() {
    let server = source_server();
    server.role("app", "Pl4nted-Same");
    server.role("shop", "Pl4nted-Same");
    let p = server.port.to_string();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join(".pg_service.conf"),
        format!("[svc]\nhost=127.0.0.1\nport={p}\ndbname=prod_shop\nuser=app\n"),
    )
    .unwrap();
    let sysconf = tempfile::tempdir().unwrap();
    std::fs::write(
        sysconf.path().join("pg_service.conf"),
        format!("[sys]\nhost=127.0.0.1\nport={p}\ndbname=shop\n"),
    )
    .unwrap();
    let custom = home.path().join("custom.conf");
    std::fs::write(
        &custom,
        format!("[custom]\nhost=127.0.0.1\nport={p}\ndbname=prod_shop\nuser=shop\n"),
    )
    .unwrap();
    let (sys, custom) = (sysconf.path().to_str().unwrap(), custom.to_str().unwrap());
    let at = [("PGHOST", "127.0.0.1"), ("PGPORT", p.as_str())];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        let mut v = at.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let cases: Vec<(String, Vars, &str)> = vec![
        (
            format!("postgresql://app@127.0.0.1:{p}"),
            vec![("PGDATABASE", "prod_shop")],
            "app|prod_shop",
        ),
        (
            "dbname=shop".into(),
            with(&[("PGUSER", "app"), ("PGDATABASE", "prod_shop")]),
            "app|shop",
        ),
        (String::new(), with(&[("PGUSER", "shop")]), "shop|shop"),
        (
            "service=svc".into(),
            vec![("PGDATABASE", "shop")],
            "app|prod_shop",
        ),
        ("service=svc dbname=shop".into(), vec![], "app|shop"),
        (
            "user=shop".into(),
            vec![("PGSERVICE", "svc")],
            "shop|prod_shop",
        ),
        (
            String::new(),
            vec![("PGSERVICE", "custom"), ("PGSERVICEFILE", custom)],
            "shop|prod_shop",
        ),
        (
            "service=sys".into(),
            vec![("PGSYSCONFDIR", sys), ("PGUSER", "app")],
            "app|shop",
        ),
        (
            "postgresql://127.0.0.1/shop?user=app".into(),
            vec![("PGPORT", p.as_str())],
            "app|shop",
        ),
        (
            format!("host=127.0.0.1,127.0.0.1 port={p} user=shop"),
            vec![],
            "shop|shop",
        ),
    ];
    let bin = find_bin_dir(None).unwrap();
    let query = [
        "-X",
        "-At",
        "-c",
        "select current_user || '|' || current_database() || '|' || inet_server_port()",
    ];
    let private = tempfile::tempdir().unwrap();
    for (conninfo, vars, expected) in &cases {
        let mut vars = vars.clone();
        vars.push(("PGPASSWORD", "Pl4nted-Same"));
        let libpq = Command::new(bin.join("psql"))
            .env_clear()
            .env("HOME", home.path())
            .envs(vars.iter().copied())
            .args(["-d", conninfo])
            .args(query)
            .output()
            .unwrap();
        let libpq_says = String::from_utf8_lossy(&libpq.stdout).trim().to_string();
        assert!(
            libpq.status.success(),
            "{conninfo}: {}",
            String::from_utf8_lossy(&libpq.stderr)
        );
        assert_eq!(libpq_says, format!("{expected}|{p}"), "{conninfo} {vars:?}");
        let env = Environment::new(&vars, Some(home.path()), "nobody-in-particular");
        let source = Source::with_env("--from-url", conninfo, &env).unwrap();
        let (mut ours, passfile) = source
            .client(&bin.join("psql"), private.path(), "test")
            .unwrap();
        let ours = ours.args(query).output().unwrap();
        drop(passfile);
        assert!(
            ours.status.success(),
            "{conninfo}: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout).trim(),
            libpq_says,
            "{conninfo} {vars:?}"
        );
    }
}

/// Files anywhere under `dir`.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir, Path::new("/nonexistent"))
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

fn processes_named(name: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).next() == Some(name.as_bytes()))
        })
        .count()
}

#[test]
fn a_run_killed_during_the_restore_leaves_its_dump_only_where_clean_removes_it() {
    let server = source_server();
    server.role("app_kill", "Pl4nted-Kill");
    let s = Scratch::new();
    s.patch("0001-a.sql", "select 1;");
    let bin = shim_bin(s.path(), true);
    let from = format!(
        "postgresql://app_kill:Pl4nted-Kill@127.0.0.1:{}/shop",
        server.port
    );
    let mut child = s
        .command(&[
            "check",
            "patches",
            "--from-url",
            &from,
            "--pg-bin",
            bin.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let gate = bin.join("restore-args");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !gate.exists() {
        assert!(Instant::now() < deadline, "pg_restore never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let args = std::fs::read_to_string(&gate).unwrap();
    let archive = PathBuf::from(args.lines().last().unwrap());
    let private = archive.parent().unwrap().to_path_buf();
    // The dump is in the run's private directory, and the password file is gone.
    assert_eq!(
        private.parent(),
        Some(s.tmp().as_path()),
        "{}",
        archive.display()
    );
    let mode = std::fs::metadata(&private).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{}", private.display());
    assert!(archive.is_file());
    assert!(!private.join("source.pgpass").exists());
    // A live run's directory is kept.
    let out = s.run(&["clean"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&format!("kept {}", private.display())),
        "{text}"
    );
    assert!(archive.is_file());

    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&s.tmp()).is_empty()
        || processes_named("downtime-test-restore-gate") > 0
    {
        assert!(Instant::now() < deadline, "processes outlived downtime");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(archive.is_file(), "the dump should still be there to clean");
    // Dump files as earlier versions left them beside the directories: one
    // nobody holds, one a live process holds open.
    let stray = s.tmp().join("downtime-dump-AbC123.dump");
    let held = s.tmp().join("downtime-dump-HeLd99.dump");
    std::fs::write(&stray, "PGDMP").unwrap();
    std::fs::write(&held, "PGDMP").unwrap();
    let holder = std::fs::File::open(&held).unwrap();
    let out = s.run(&["clean"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    for line in [
        format!("removed {}", private.display()),
        format!("removed {}", stray.display()),
        format!("kept {}", held.display()),
    ] {
        assert!(text.contains(&line), "no `{line}` in {text}");
    }
    assert_eq!(all_files(&s.tmp()), vec![held.clone()]);
    drop(holder);
    let out = s.run(&["clean"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("removed {}", held.display())));
    assert!(all_files(&s.tmp()).is_empty());
    s.assert_clean();
}
