//! Staging on what the user has, on real servers: the server backend on a
//! password-protected PostgreSQL reached over TCP (the bundled patches pass,
//! the server's databases are the same before and after, also after a run
//! killed outright and `downtime clean --url`, two runs at once do not
//! collide, and the password reaches no output, report, file or child's
//! command line); the baseline kept on the server between runs; the command
//! backend with a provisioner script that clones a golden database; and
//! the CI recipes' command lines (`examples/ci/`) against a local server.

mod common;
#[path = "common/tcp.rs"]
mod tcp;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{files_under, text, Scratch};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tcp::TcpServer;

/// The superuser's password; no output may hold it.
const PASSWORD: &str = "Pl4nted-b18 s3cret/@:";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The server's URL with the superuser and its password (URL-encoded).
fn url(server: &TcpServer, db: &str) -> String {
    let pw = PASSWORD
        .replace('%', "%25")
        .replace(' ', "%20")
        .replace('/', "%2F")
        .replace('@', "%40")
        .replace(':', "%3A");
    format!("postgresql://postgres:{pw}@127.0.0.1:{}/{db}", server.port)
}

/// The bundled patches (and their baseline) under the scratch's `patches/`.
fn bundled(s: &Scratch) {
    for e in std::fs::read_dir(repo().join("patches")).unwrap().flatten() {
        std::fs::copy(e.path(), s.patches().join(e.file_name())).unwrap();
    }
}

/// No spelling of the password in any of `texts`.
fn assert_no_password(texts: &[(PathBuf, String)]) {
    let encoded = downtime::staging::source::conninfo::encodings(PASSWORD);
    for (p, t) in texts {
        for needle in ["Pl4nted", PASSWORD, &encoded[0], &encoded[1]] {
            assert!(!t.contains(needle), "`{needle}` in {}:\n{t}", p.display());
        }
    }
}

/// `--pg-bin` whose `psql` and `pg_restore` record their arguments and
/// environment under `calls/`, then run the real programs.
fn recording_bin(root: &Path) -> PathBuf {
    let real = downtime::staging::embedded::find_bin_dir(None).unwrap();
    let dir = root.join("bin");
    std::fs::create_dir_all(dir.join("calls")).unwrap();
    std::fs::set_permissions(dir.join("calls"), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::symlink(real.join("pg_dump"), dir.join("pg_dump")).unwrap();
    for p in ["psql", "pg_restore"] {
        let script = format!(
            "#!/bin/bash\nout=\"$(dirname \"$0\")/calls/{p}-$$\"\nmkdir -p \"$out\"\n\
             printf '%s\\0' \"$@\" > \"$out/argv\"\nenv -0 > \"$out/env\"\n\
             exec \"{}/{p}\" \"$@\"\n",
            real.display()
        );
        std::fs::write(dir.join(p), script).unwrap();
        std::fs::set_permissions(dir.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn report(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// This run's databases on the server, once one of them exists.
fn wait_for_databases(server: &TcpServer, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let ours: Vec<String> = server
            .databases()
            .into_iter()
            .filter(|d| d.starts_with("downtime_") && d.contains("_copy_"))
            .collect();
        if !ours.is_empty() {
            return ours;
        }
        assert!(Instant::now() < deadline, "no copy appeared on the server");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_bundled_patches_pass_on_a_password_protected_server_and_leave_it_as_it_was() {
    let server = TcpServer::with_password(PASSWORD);
    let before = server.databases();
    let s = Scratch::new();
    bundled(&s);
    let bin = recording_bin(s.path());
    let target = url(&server, "postgres");
    // Two runs at once on one server: their names cannot collide, and
    // neither takes the other's databases for its patches' doing.
    let runs: Vec<_> = ["out1", "out2"]
        .iter()
        .map(|dir| {
            s.command(&[
                "check",
                "patches",
                "--backend",
                "server",
                "--url",
                &target,
                "--no-cache",
                "--pg-bin",
                bin.to_str().unwrap(),
                "--format",
                "text,json,markdown,html,junit,github",
                "--output-dir",
                dir,
            ])
            .env("GITHUB_ACTIONS", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let outs: Vec<Output> = runs
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let mut texts = Vec::new();
    for (out, dir) in outs.iter().zip(["out1", "out2"]) {
        assert_eq!(out.status.code(), Some(0), "{}", text(out));
        let r = report(&s.path().join(dir).join("report.json"));
        assert_eq!(r["verdict"], "pass", "{r}");
        assert_eq!(r["postgres"]["backend"], "server");
        // Where it ran, without the user or the password.
        let at = format!("127.0.0.1:{}/postgres", server.port);
        assert_eq!(r["postgres"]["address"], at.as_str(), "{}", r["postgres"]);
        // The text report goes to stdout, the Markdown to its file.
        let md = std::fs::read_to_string(s.path().join(dir).join("report.md")).unwrap();
        for shown in [text(out), md] {
            assert!(shown.contains(&format!("server at {at}")), "{shown}");
        }
        assert!(r["postgres"]["version"]
            .as_str()
            .unwrap()
            .starts_with(char::is_numeric));
        // The server's own settings, as read.
        assert_eq!(
            r["postgres"]["settings"]["fsync"], "off",
            "{}",
            r["postgres"]
        );
        assert!(r["postgres"]["settings"]["shared_buffers"].is_string());
        let patches = r["patches"].as_array().unwrap();
        assert_eq!(patches.len(), 7);
        assert!(patches.iter().all(|p| p["seconds"].as_f64().unwrap() > 0.0));
        texts.push((
            PathBuf::from("stdout"),
            String::from_utf8_lossy(&out.stdout).into(),
        ));
        texts.push((
            PathBuf::from("stderr"),
            String::from_utf8_lossy(&out.stderr).into(),
        ));
    }
    assert_eq!(server.databases(), before, "the server's databases changed");
    texts.extend(files_under(s.path(), Path::new("/nonexistent")));
    assert_no_password(&texts);
    // psql loaded the baseline twice: the password went by a password file,
    // with none of libpq's variables beside it.
    let calls: Vec<PathBuf> = std::fs::read_dir(bin.join("calls"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for c in calls {
        let argv = std::fs::read_to_string(c.join("argv")).unwrap();
        assert!(argv.contains("passfile="), "{argv}");
        let env = std::fs::read_to_string(c.join("env")).unwrap();
        for var in env.split('\0') {
            let name = var.split('=').next().unwrap_or_default();
            assert!(
                !downtime::staging::source::resolve::libpq_variables().any(|v| v == name),
                "{name} in the environment of {}",
                c.display()
            );
        }
    }
    s.assert_clean();
}

/// `check` of the scratch's patches on the server `target`, started and
/// left running (its first output is there).
fn slow_run(s: &Scratch, target: &str) -> std::process::Child {
    let args = [
        "check",
        "--backend",
        "server",
        "--url",
        target,
        "--no-baseline",
    ];
    s.spawn_until(&args, Stdio::null(), "as run", Duration::from_secs(30))
}

#[test]
fn a_run_killed_outright_leaves_databases_that_clean_drops_but_a_live_runs_are_kept() {
    let server = TcpServer::with_password(PASSWORD);
    let before = server.databases();
    let s = Scratch::new();
    s.patch("0001-slow.sql", "select pg_sleep(60);\n");
    let target = url(&server, "postgres");
    let mut run = slow_run(&s, &target);
    let ours = wait_for_databases(&server, Duration::from_secs(30));
    // The run is going: its databases stay.
    let out = s.run(&["clean", "--url", &target]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("kept databases of run"), "{shown}");
    assert!(server.databases().iter().any(|d| ours.contains(d)));
    kill(Pid::from_raw(run.id() as i32), Signal::SIGKILL).unwrap();
    run.wait().unwrap();
    assert!(server.databases().iter().any(|d| ours.contains(d)));
    let out = s.run(&["clean", "--url", &target]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("removed databases of run"), "{shown}");
    assert_eq!(server.databases(), before, "clean left databases behind");
    let mut texts = vec![
        (PathBuf::from("clean stdout"), shown.into_owned()),
        (
            PathBuf::from("clean stderr"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
    ];
    texts.extend(files_under(s.path(), Path::new("/nonexistent")));
    assert_no_password(&texts);
    // Ctrl-C, and Ctrl-C twice (at once: the databases are dropped from
    // a thread of their own, also one whose CREATE DATABASE still runs).
    for signals in [1, 2] {
        let mut run = slow_run(&s, &target);
        wait_for_databases(&server, Duration::from_secs(30));
        for _ in 0..signals {
            kill(Pid::from_raw(run.id() as i32), Signal::SIGINT).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(run.wait().unwrap().code(), Some(130));
        assert_eq!(server.databases(), before, "after {signals} Ctrl-C");
    }
    s.assert_clean();
}

#[test]
fn the_server_keeps_the_baseline_between_runs_until_cache_clear() {
    let server = TcpServer::with_password(PASSWORD);
    let before = server.databases();
    let s = Scratch::new();
    s.baseline("create table t (id int primary key, v text);\ninsert into t select g, 'x' from generate_series(1, 1000) g;\n");
    s.patch("0001-index.sql", "create index t_v on t (v);\n");
    let target = url(&server, "postgres");
    let cache_of = |(code, r, err): (i32, Value, String)| {
        assert_eq!(code, 0, "{err}");
        r["baseline"]["cache"].as_str().unwrap().to_string()
    };
    assert_eq!(cache_of(s.check_json(&["--url", &target])), "miss");
    let kept: Vec<String> = server
        .databases()
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].starts_with("downtime_cache_"), "{kept:?}");
    assert_eq!(cache_of(s.check_json(&["--url", &target])), "hit");
    let out = s.run(&["cache", "clear", "--url", &target]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 1 cached baseline"));
    assert_eq!(server.databases(), before);
    // A role that is not a superuser is told why it will not do, before
    // anything is made.
    server.psql(
        "postgres",
        "create role app login createdb password 'Pl4nted-app'",
    );
    let app = format!(
        "postgresql://app:Pl4nted-app@127.0.0.1:{}/postgres",
        server.port
    );
    let out = s.run(&["check", "--url", &app]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a superuser"), "{err}");
    assert!(!err.contains("Pl4nted"), "{err}");
    assert_eq!(server.databases(), before);
    s.assert_clean();
}

#[test]
fn a_server_that_demands_tls_is_reached_with_tls_and_channel_binding() {
    // RSA with SHA-256, ECDSA with SHA-384: the channel binding hashes
    // the certificate as its signature says, or the server refuses it.
    for key in [
        &["-newkey", "rsa:2048", "-sha256"][..],
        &[
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-sha384",
        ][..],
    ] {
        let server = TcpServer::with_tls(PASSWORD, key);
        let before = server.databases();
        let s = Scratch::new();
        s.baseline(
            "create table t (id int primary key);\ninsert into t select generate_series(1, 100);\n",
        );
        s.patch("0001-col.sql", "alter table t add column v text;\n");
        let base = url(&server, "postgres");
        for query in ["?sslmode=require&channel_binding=require", ""] {
            let target = format!("{base}{query}");
            let (code, r, err) = s.check_json(&["--url", &target, "--no-cache"]);
            assert_eq!(code, 0, "{key:?} {query}: {err}");
            assert_eq!(r["verdict"], "pass", "{r}");
            assert_eq!(server.databases(), before);
        }
        // Without TLS the server says no; a mode that checks the
        // certificate without a root certificate file is refused before
        // anything is tried.
        let out = s.run(&["check", "--url", &format!("{base}?sslmode=disable")]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no encryption"), "{err}");
        assert!(!err.contains("Pl4nted"), "{err}");
        let out = s.run(&[
            "check",
            "--url",
            &format!("{base}?sslmode=verify-full&sslrootcert=/nonexistent/root.crt"),
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("root certificate file \"/nonexistent/root.crt\" does not exist"),
            "{err}"
        );
        s.assert_clean();
    }
}

#[test]
fn server_options_that_cannot_hold_are_refused_before_anything_starts() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "select 1;\n");
    let cases: &[(&[&str], &str)] = &[
        (&["--backend", "server"], "needs --url"),
        (
            &["--url", "postgresql://u:Pl4nted@prod-db.internal/app"],
            "looks like production",
        ),
        (
            &["--url", "postgresql://u@staging/live"],
            "looks like production",
        ),
        (
            &["--url", "postgresql://u@staging/app", "--cache", "cold"],
            "not downtime's to restart",
        ),
        (
            &[
                "--url",
                "postgresql://u@staging/app",
                "--pg-conf",
                "patches/0001-a.sql",
            ],
            "--pg-conf sets the settings",
        ),
        (
            &[
                "--backend",
                "server",
                "--url",
                "postgresql://u@staging/app",
                "--pg-version",
                "16",
            ],
            "add --backend docker",
        ),
        (
            &["--backend", "local", "--url", "postgresql://u@staging/app"],
            "add --backend server",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["check"];
        args.extend_from_slice(extra);
        let out = s.run(&args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!err.contains("Pl4nted"), "{extra:?}: {err}");
    }
    s.assert_clean();
}

/// A provisioner: `create` clones the database `golden` on the server
/// with psql (CREATE DATABASE … TEMPLATE golden) and prints the clone's
/// URL last; `destroy` drops it. Both log their calls to `calls.log`.
fn provisioner(s: &Scratch, server: &TcpServer) -> PathBuf {
    let psql = downtime::staging::embedded::find_bin_dir(None)
        .unwrap()
        .join("psql");
    let conn = format!(
        "\"{}\" -X -q -v ON_ERROR_STOP=1 -h \"{}\" -p {} -U postgres -d postgres",
        psql.display(),
        server.dir.path().display(),
        server.port
    );
    let log = s.path().join("calls.log");
    let create = format!(
        "#!/bin/sh\nset -e\nexport PGPASSWORD='{PASSWORD}'\necho \"create $DOWNTIME_CLONE\" >> \"{log}\"\n\
         {conn} -c \"create database \\\"$DOWNTIME_CLONE\\\" template golden\" >&2\n\
         echo \"clone $DOWNTIME_CLONE made\"\n\
         echo \"{url}\"\n",
        log = log.display(),
        url = url(server, "$DOWNTIME_CLONE"),
    );
    let destroy = format!(
        "#!/bin/sh\nset -e\nexport PGPASSWORD='{PASSWORD}'\necho \"destroy $DOWNTIME_CLONE\" >> \"{log}\"\n\
         {conn} -c \"drop database if exists \\\"$DOWNTIME_CLONE\\\" with (force)\" >&2\n",
        log = log.display(),
    );
    for (name, script) in [("create.sh", create), ("destroy.sh", destroy)] {
        std::fs::write(s.path().join(name), script).unwrap();
    }
    std::fs::write(
        s.path().join("downtime.toml"),
        format!(
            "[staging]\nbackend = \"command\"\n\n[staging.command]\ncreate = \"sh '{0}/create.sh'\"\n\
             destroy = \"sh '{0}/destroy.sh'\"\n",
            s.path().display()
        ),
    )
    .unwrap();
    log
}

/// The provisioner's calls, as logged: (`create` or `destroy`, clone).
fn calls(log: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn a_provisioner_makes_and_destroys_one_clone_per_run() {
    let server = TcpServer::with_password(PASSWORD);
    let s = Scratch::new();
    bundled(&s);
    server.psql("postgres", "create database golden");
    let baseline = std::fs::read_to_string(repo().join("patches/baseline.sql")).unwrap();
    server.psql("golden", &baseline);
    let before = server.databases();
    let log = provisioner(&s, &server);
    let (code, r, err) = s.check_json(&["--runs", "2"]);
    assert_eq!(code, 0, "{err}");
    let made = calls(&log);
    assert_eq!(made.len(), 4, "{made:?}");
    let (first, second) = (&made[0].1, &made[2].1);
    assert_ne!(first, second);
    assert_eq!(
        made,
        vec![
            ("create".into(), first.clone()),
            ("destroy".into(), first.clone()),
            ("create".into(), second.clone()),
            ("destroy".into(), second.clone()),
        ]
    );
    for id in [first, second] {
        assert!(
            id.starts_with("downtime-")
                && id[9..].chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
            "{id}"
        );
    }
    assert_eq!(server.databases(), before, "a clone was left behind");
    assert_eq!(r["verdict"], "pass", "{r}");
    assert_eq!(r["postgres"]["backend"], "command");
    assert!(r["postgres"]["version"]
        .as_str()
        .unwrap()
        .starts_with(char::is_numeric));
    assert_eq!(r["timing"]["runs"], 2);
    assert_eq!(r["patches"].as_array().unwrap().len(), 7);
    let notes = r["notes"].to_string();
    assert!(notes.contains("is not loaded"), "{notes}");
    assert!(!err.contains("Pl4nted"), "{err}");
    assert!(err.contains("ready in"), "{err}");

    // Interrupted in the middle of a pass, once or twice (stop at once):
    // the clone is destroyed all the same.
    s.patch("patch-0001-07-0.sql", "select pg_sleep(60);\n");
    for signals in [1, 2] {
        std::fs::write(log.as_path(), "").unwrap();
        let mut run = s.spawn_until(
            &["check"],
            Stdio::null(),
            "ready in",
            Duration::from_secs(60),
        );
        std::thread::sleep(Duration::from_millis(1500));
        for _ in 0..signals {
            kill(Pid::from_raw(run.id() as i32), Signal::SIGINT).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(run.wait().unwrap().code(), Some(130));
        let made = calls(&log);
        assert_eq!(made.len(), 2, "{signals} Ctrl-C: {made:?}");
        assert_eq!(made[1].0, "destroy");
        assert_eq!(made[0].1, made[1].1);
        assert_eq!(
            server.databases(),
            before,
            "{signals} Ctrl-C: a clone was left behind"
        );
        s.assert_clean();
    }
}

#[test]
fn a_failing_provisioner_is_an_error_and_its_clone_is_destroyed() {
    let cases = [
        ("echo 'no capacity left' >&2; exit 3", "no capacity left"),
        ("echo 'progress only'", "printed no connection URL"),
        ("true", "printed no connection URL"),
        (
            "echo postgresql://u:Pl4nted@prod-db.internal/app",
            "looks like production",
        ),
    ];
    for (create, needle) in cases {
        let s = Scratch::new();
        s.patch("0001-a.sql", "select 1;\n");
        let log = s.path().join("calls.log");
        std::fs::write(
            s.path().join("downtime.toml"),
            format!(
                "[staging]\nbackend = \"command\"\n\n[staging.command]\n\
                 create = \"echo create $DOWNTIME_CLONE >> '{log}'; {create}\"\n\
                 destroy = \"echo destroy $DOWNTIME_CLONE >> '{log}'\"\n",
                log = log.display(),
                create = create.replace('\\', "\\\\").replace('"', "\\\""),
            ),
        )
        .unwrap();
        let out = s.run(&["check"]);
        assert_eq!(out.status.code(), Some(2), "{create}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{create}: {err}");
        assert!(!err.contains("Pl4nted"), "{create}: {err}");
        let made = calls(&log);
        assert_eq!(made.len(), 2, "{create}: {made:?}");
        assert_eq!(
            (made[0].0.as_str(), made[1].0.as_str()),
            ("create", "destroy")
        );
        assert_eq!(made[0].1, made[1].1);
        s.assert_clean();
    }
    // No [staging.command]: told what to write, and where.
    let s = Scratch::new();
    s.patch("0001-a.sql", "select 1;\n");
    let out = s.run(&["check", "--backend", "command"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[staging.command]"));
}

/// The `downtime check` line of a CI recipe, the server's address put in.
fn recipe_line(file: &str, server: &TcpServer) -> String {
    let recipe = std::fs::read_to_string(repo().join("examples/ci").join(file)).unwrap();
    let line = recipe
        .lines()
        .map(str::trim)
        .find(|l| l.contains("downtime check"))
        .unwrap_or_else(|| panic!("no `downtime check` in {file}"));
    let line = line
        .trim_start_matches("- ")
        .trim_start_matches("run: ")
        .to_string();
    let addr = format!("127.0.0.1:{}", server.port);
    line.replace("localhost:5432", &addr)
        .replace("@postgres:5432", &format!("@{addr}"))
}

/// A recipe's shell block that follows the line holding `after`.
fn recipe_block(file: &str, after: &str) -> String {
    let recipe = std::fs::read_to_string(repo().join("examples/ci").join(file)).unwrap();
    let lines: Vec<&str> = recipe.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains(after))
        .unwrap_or_else(|| panic!("no `{after}` in {file}"));
    let open = (start..lines.len())
        .find(|&i| lines[i].trim_end().ends_with('|'))
        .unwrap();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let base = indent(lines[open]);
    let body: Vec<&str> = lines[open + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > base)
        .copied()
        .collect();
    let strip = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| indent(l))
        .min()
        .unwrap_or(0);
    body.iter()
        .map(|l| if l.len() >= strip { &l[strip..] } else { "" })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A fake program on `dir` (first on PATH): logs its arguments, quoted,
/// one call a line, to `<name>.log`, then runs `then`.
fn fake(dir: &Path, name: &str, then: &str) {
    let script = format!(
        "#!/bin/bash\n{{ printf '%q ' \"$@\"; echo; }} >> \"{}/{name}.log\"\n{then}\n",
        dir.display()
    );
    std::fs::write(dir.join(name), script).unwrap();
    std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_ci_recipes_command_lines_run_against_a_local_server() {
    let server = TcpServer::with_password(PASSWORD);
    let before = server.databases();
    let bin_dir = Path::new(common::BIN).parent().unwrap().to_path_buf();
    for (file, comment_after) in [
        ("github-actions.yml", "name: Comment on the pull request"),
        ("gitlab-ci.yml", "after_script:"),
    ] {
        let s = Scratch::new();
        bundled(&s);
        let fakes = s.path().join("fakes");
        std::fs::create_dir(&fakes).unwrap();
        let path = format!(
            "{}:{}:{}",
            fakes.display(),
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let line = recipe_line(file, &server);
        let out = Command::new("sh")
            .args(["-c", &line])
            .current_dir(s.path())
            .env("PATH", &path)
            .env("PGPASSWORD", PASSWORD)
            .env("TMPDIR", s.tmp())
            .env("XDG_CACHE_HOME", s.path().join("cache"))
            .env(
                "GITHUB_ACTIONS",
                if file.starts_with("github") {
                    "true"
                } else {
                    "false"
                },
            )
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{file}: {line}\n{}", text(&out));
        let reports = s.path().join("downtime-report");
        for f in ["report.md", "junit.xml"] {
            assert!(reports.join(f).is_file(), "{file}: no {f}");
        }
        let md = std::fs::read_to_string(reports.join("report.md")).unwrap();
        assert!(md.contains("patch-0001-01-0"), "{md}");
        assert_eq!(server.databases(), before, "{file}: databases left behind");
        // The comment step: made the first time, edited in place after.
        let state = s.path().join("comment-state");
        if file.starts_with("github") {
            fake(
                &fakes,
                "gh",
                &format!(
                    "case \"$*\" in *--paginate*) cat '{0}' 2>/dev/null;; *POST*) echo 42 > '{0}';; esac",
                    state.display()
                ),
            );
        } else {
            fake(
                &fakes,
                "curl",
                &format!(
                    "case \"$*\" in\n\
                     *POST*) printf '%s' '[{{\"id\": 7, \"body\": \"<!-- downtime report -->\\n\\nx\"}}]' > '{0}';;\n\
                     *PUT*) ;;\n\
                     *) cat '{0}' 2>/dev/null || echo '[]';;\n\
                     esac",
                    state.display()
                ),
            );
        }
        let block = recipe_block(file, comment_after);
        for _ in 0..2 {
            let out = Command::new("bash")
                .args(["-ec", &block])
                .current_dir(s.path())
                .env("PATH", &path)
                .env("GITHUB_REPOSITORY", "org/app")
                .env("PR", "5")
                .env("DOWNTIME_GITLAB_TOKEN", "token")
                .env("CI_API_V4_URL", "https://gitlab.invalid/api/v4")
                .env("CI_PROJECT_ID", "1")
                .env("CI_MERGE_REQUEST_IID", "5")
                .output()
                .unwrap();
            assert!(out.status.success(), "{file}: {}", text(&out));
        }
        let tool = if file.starts_with("github") {
            "gh"
        } else {
            "curl"
        };
        let log = std::fs::read_to_string(fakes.join(format!("{tool}.log"))).unwrap();
        let writes: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("POST") || l.contains("PATCH") || l.contains("PUT"))
            .collect();
        assert_eq!(writes.len(), 2, "{file}: {log}");
        assert!(writes[0].contains("POST"), "{file}: {log}");
        assert!(
            writes[1].contains("PATCH") || writes[1].contains("PUT"),
            "{file}: the comment was not edited in place: {log}"
        );
        if file.starts_with("github") {
            let body = std::fs::read_to_string(s.path().join("comment.md")).unwrap();
            assert!(body.starts_with("<!-- downtime report -->\n\n"), "{body}");
            assert!(body.ends_with(&md), "{body}");
        } else {
            assert!(writes[1].contains("/notes/7"), "{log}");
            assert!(writes[1].contains("patch-0001-01-0"), "{log}");
        }
    }
}
