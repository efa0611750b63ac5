//! Numbers, files and outputs are checked before anything runs, on the
//! real binary: numbers out of range exit 2 naming the flag or file:line
//! (the in-process property tests are `tests/numbers.rs`); pipes, devices
//! and directories in place of files are refused within seconds; a NUL
//! byte is found at its line; unwritable outputs are found before the
//! server starts; a report with extreme numbers is refused or rendered
//! within seconds, and charts are bounded for any value.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Scratch;

/// Run `downtime ARGS` in `s`, killing it (and failing) past `limit`.
fn run_within(s: &Scratch, args: &[&str], limit: Duration) -> (i32, String) {
    let log = s.path().join("run.stderr");
    let mut child = s
        .command(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            return (status.code().unwrap_or(-1), stderr);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "downtime {args:?} still running after {limit:?}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn numbers_out_of_range_exit_2_naming_the_flag_or_file_and_line() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "select 1;");
    for (flag, value) in [
        ("--budget", "1e308"),
        ("--timeout", "1e20"),
        ("--timeout", "2147484"),
        ("--max-run-seconds", "1e300"),
        ("--total-budget", "-1"),
        ("--cold-window-budget", "NaN"),
        ("--live-lock-threshold", "inf"),
        ("--bulk-write-fraction", "7"),
        ("--runs", "1e9"),
        ("--warmup", "-3"),
        ("--regression-threshold", "-inf"),
    ] {
        let (code, stderr) = run_within(
            &s,
            &["check", flag, value, "patches"],
            Duration::from_secs(10),
        );
        assert_eq!(code, 2, "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    for (key, value) in [
        ("per-patch-seconds", "1e308"),
        ("total-seconds", "-5"),
        ("notify-seconds", "nan"),
    ] {
        std::fs::write(
            s.path().join("downtime.toml"),
            format!("# budgets\n[staging]\nmax-run-seconds = 600\n\n[budget]\n\n{key} = {value}\n"),
        )
        .unwrap();
        let (code, stderr) = run_within(&s, &["check", "patches"], Duration::from_secs(10));
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains(&format!("downtime.toml:7: budget.{key} = ")),
            "{stderr}"
        );
    }
    // A fraction over 1 is refused in the file as on the command line.
    std::fs::write(
        s.path().join("downtime.toml"),
        "[classify]\nbulk-write-fraction = 7\n",
    )
    .unwrap();
    let (code, stderr) = run_within(&s, &["check", "patches"], Duration::from_secs(10));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("downtime.toml:2: classify.bulk-write-fraction = 7"),
        "{stderr}"
    );
    // A number TOML cannot hold names its key and line too.
    std::fs::write(
        s.path().join("downtime.toml"),
        "[staging]\ntimeout-seconds = 99999999999999999999\n",
    )
    .unwrap();
    let (code, stderr) = run_within(&s, &["check", "patches"], Duration::from_secs(10));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("downtime.toml:2: staging.timeout-seconds"),
        "{stderr}"
    );
    std::fs::remove_file(s.path().join("downtime.toml")).unwrap();
    // Numbers in the files downtime reads back: production stats, the history.
    let table = |rows: &str| {
        format!(
            r#"{{"schema_version": 1, "exported_at": "2026-01-01T00:00:00Z", "server_version": "15",
               "source": "x", "tables": [{{"name": "public.t", "rows": {rows}, "pages": 1,
               "total_bytes": 8192, "table_bytes": 8192, "inserts": null, "updates": null,
               "deletes": null, "stats_since": null, "monthly_growth": null}}]}}"#
        )
    };
    for (rows, named) in [
        ("1e300", "table public.t: rows: 1e300 is out of range"),
        ("-5", "rows: -5"),
    ] {
        std::fs::write(s.path().join("stats.json"), table(rows)).unwrap();
        let (code, stderr) = run_within(
            &s,
            &["estimate", "--prod-stats", "stats.json", "patches"],
            Duration::from_secs(10),
        );
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains("stats.json: ") && stderr.contains(named),
            "{stderr}"
        );
    }
    let entry = |seconds: &str| {
        format!(
            r#"{{"patch": "0001-a", "path": "patches/0001-a.sql", "sha256": "x", "commit": null, "at": "2026-01-01T00:00:00Z", "statistic": "single", "seconds": {seconds}, "ci_low": 0.1, "ci_high": 0.1, "runs": 1, "cache": "warm", "fingerprint": "f"}}"#
        )
    };
    std::fs::write(
        s.path().join("h.jsonl"),
        format!("{}\n{}\n", entry("0.1"), entry("-1e308")),
    )
    .unwrap();
    for args in [
        &["history", "--file", "h.jsonl"][..],
        &["check", "--history", "h.jsonl", "patches"],
    ] {
        let (code, stderr) = run_within(&s, args, Duration::from_secs(10));
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("h.jsonl:2: seconds is -1e308"), "{stderr}");
    }
    s.assert_clean();
}

/// Put something that is not a regular file at `path`: a FIFO, a link to
/// /dev/zero, or a directory.
fn plant(path: &Path, what: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_dir_all(path);
    match what {
        "fifo" => {
            nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap()
        }
        "zero" => std::os::unix::fs::symlink("/dev/zero", path).unwrap(),
        "dir" => std::fs::create_dir(path).unwrap(),
        _ => unreachable!(),
    }
}

#[test]
fn pipes_devices_and_directories_in_place_of_files_are_refused_quickly() {
    // Each file downtime reads from the user, in each wrong shape: exit 2
    // within seconds, naming the file.
    let cases: &[(&str, &[&str])] = &[
        ("patches/0002-b.sql", &["check", "patches"]),
        ("downtime.toml", &["check", "patches"]),
        ("my.conf", &["check", "--pg-conf", "my.conf", "patches"]),
        ("base.sql", &["check", "--baseline", "base.sql", "patches"]),
        ("patches/baseline.sql", &["check", "patches"]),
        ("patches/signoffs.toml", &["check", "patches"]),
        (
            "hist.jsonl",
            &["check", "--history", "hist.jsonl", "patches"],
        ),
        (
            "stats.json",
            &["check", "--prod-stats", "stats.json", "patches"],
        ),
        ("run.json", &["report", "run.json"]),
    ];
    for (file, args) in cases {
        for what in ["fifo", "zero", "dir"] {
            if *file == "patches/0002-b.sql" && what == "dir" {
                continue; // below, with its own message
            }
            let s = Scratch::new();
            s.patch("0001-a.sql", "select 1;");
            let target = s.path().join(file);
            plant(&target, what);
            let started = Instant::now();
            let (code, stderr) = run_within(&s, args, Duration::from_secs(15));
            assert_eq!(code, 2, "{file} as {what}: {stderr}");
            assert!(stderr.contains(file), "{file} as {what}: {stderr}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{file} as {what} took {:?}",
                started.elapsed()
            );
            let _ = std::fs::remove_file(&target);
            let _ = std::fs::remove_dir_all(&target);
            s.assert_clean();
        }
    }
    // A directory named like a patch, in a folder or named directly.
    let s = Scratch::new();
    s.patch("0001-a.sql", "select 1;");
    std::fs::create_dir(s.patches().join("0002-b.sql")).unwrap();
    for args in [&["check", "patches"][..], &["check", "patches/0002-b.sql"]] {
        let (code, stderr) = run_within(&s, args, Duration::from_secs(10));
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains("0002-b.sql") && stderr.contains("is a directory"),
            "{stderr}"
        );
    }
    s.assert_clean();
}

#[test]
fn a_nul_byte_in_a_patch_is_an_input_error_at_its_line() {
    let s = Scratch::new();
    s.patch(
        "0001-a.sql",
        "select 1;\n\ninsert into t values ('a\0b');\n",
    );
    let (code, stderr) = run_within(&s, &["check", "patches"], Duration::from_secs(10));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("0001-a.sql:3: NUL byte at line 3: PostgreSQL text cannot contain NUL"),
        "{stderr}"
    );
    s.assert_clean();
}

/// A read-only directory holding `files`: a read-only tmpfs as root (root
/// writes through permission bits), else a directory without write
/// permission. Made writable again (unmounted) when dropped.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn new(s: &Scratch, files: &[&str]) -> Result<ReadOnly, String> {
        let dir = s.path().join("ro");
        std::fs::create_dir_all(&dir).unwrap();
        if !nix::unistd::geteuid().is_root() {
            for f in files {
                std::fs::write(dir.join(f), "").unwrap();
                std::fs::set_permissions(dir.join(f), PermissionsExt::from_mode(0o444)).unwrap();
            }
            std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o555)).unwrap();
            return Ok(ReadOnly(dir));
        }
        let mount = |args: &[&str]| {
            Command::new("mount")
                .args(args)
                .arg(&dir)
                .status()
                .is_ok_and(|st| st.success())
        };
        if !mount(&["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs"]) {
            return Err(
                "running as root, a read-only file needs a read-only mount, \
                        and `mount -t tmpfs` failed (the test needs CAP_SYS_ADMIN)"
                    .into(),
            );
        }
        let guard = ReadOnly(dir.clone());
        for f in files {
            std::fs::write(dir.join(f), "").unwrap();
        }
        if !mount(&["-o", "remount,ro"]) {
            return Err("`mount -o remount,ro` of a tmpfs failed".into());
        }
        Ok(guard)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if nix::unistd::geteuid().is_root() {
            let _ = Command::new("umount").arg(&self.0).status();
        } else {
            let _ = std::fs::set_permissions(&self.0, PermissionsExt::from_mode(0o755));
        }
    }
}

#[test]
fn unwritable_outputs_are_found_before_the_server_starts() {
    // `--pg-bin` names an empty folder: had the server been started, the
    // error would be about the missing binaries. The patch would sleep 30 s.
    let s = Scratch::new();
    s.patch("0001-a.sql", "select pg_sleep(30);");
    std::fs::create_dir(s.path().join("nobin")).unwrap();
    std::fs::write(s.path().join("a-file"), "").unwrap();
    let ro = ReadOnly::new(&s, &["history.jsonl", "signoffs.toml"])
        .unwrap_or_else(|why| panic!("{why}"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["check", "--history", "ro/history.jsonl"],
            "cannot write history file ro/history.jsonl: ",
        ),
        (
            vec!["check", "--history", "a-file/history.jsonl"],
            "cannot write history file a-file/history.jsonl: ",
        ),
        (
            vec!["check", "--output-dir", "a-file", "--format", "json,html"],
            "cannot write output directory a-file: ",
        ),
        (
            vec!["check", "--charts", "svg", "--output-dir", "ro/reports"],
            "cannot write output directory ro/reports: ",
        ),
        (
            vec!["check", "--output", "ro/run.json"],
            "cannot write report ro/run.json: ",
        ),
        (
            vec!["check", "--output", "a-file/run.json"],
            "cannot write report a-file/run.json: ",
        ),
        (
            vec![
                "signoff",
                "patches/0001-a.sql",
                "--by",
                "A",
                "--reason",
                "r",
                "--config",
                "signoff.toml",
            ],
            "cannot write sign-off file ./ro/signoffs.toml: ",
        ),
        (
            vec!["bench", "--runs", "1", "--history", "ro/history.jsonl"],
            "cannot write history file ro/history.jsonl: ",
        ),
        (
            vec![
                "report",
                "run.json",
                "--format",
                "markdown,junit",
                "--output-dir",
                "a-file",
            ],
            "cannot write output directory a-file: ",
        ),
    ];
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/report.json"),
        s.path().join("run.json"),
    )
    .unwrap();
    std::fs::write(
        s.path().join("signoff.toml"),
        "[signoff]\nfile = \"ro/signoffs.toml\"\n",
    )
    .unwrap();
    let mut failures = Vec::new();
    for (mut args, message) in cases {
        if args[0] != "report" {
            args.extend(["--pg-bin", "nobin"]);
        }
        if args[0] == "check" || args[0] == "bench" {
            args.push("patches");
        }
        let (code, stderr) = run_within(&s, &args, Duration::from_secs(20));
        eprintln!("{args:?}: exit {code}: {}", stderr.trim());
        if code != 2 || !stderr.contains(message) {
            failures.push(format!("{args:?}: exit {code}: {stderr}"));
        }
    }
    drop(ro);
    assert!(failures.is_empty(), "{failures:#?}");
    s.assert_clean();
}

#[test]
fn a_report_with_extreme_numbers_is_refused_or_rendered_within_seconds() {
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/report.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let s = Scratch::new();
    // Impossible values: refused at load, naming where. Reports are written
    // pretty-printed, so a value JSON cannot hold is found at its line.
    for (field, raw, named) in [
        ("seconds", "1.7e308", Some("patches[0].seconds = 1.7e308")),
        ("seconds", "-2.5", Some("patches[0].seconds = -2.5")),
        ("wall_seconds", "null", None),
        ("commit_seconds", "1e309", None),
    ] {
        let mut r = fixture.clone();
        r["patches"][0][field] = 12345.678.into();
        let text = serde_json::to_string_pretty(&r)
            .unwrap()
            .replace("12345.678", raw);
        let written = format!("\"{field}\": {raw}");
        let line = 1 + text.lines().position(|l| l.contains(&written)).unwrap();
        std::fs::write(s.path().join("bad.json"), text).unwrap();
        let (code, stderr) = run_within(
            &s,
            &[
                "report",
                "bad.json",
                "--format",
                "html",
                "--output-dir",
                "out",
                "--charts",
                "png,svg",
            ],
            Duration::from_secs(10),
        );
        assert_eq!(code, 2, "{field} = {raw}: {stderr}");
        match named {
            Some(named) => assert!(
                stderr.contains("bad.json: impossible value in the report: ")
                    && stderr.contains(named),
                "{stderr}"
            ),
            None => assert!(
                stderr.contains(&format!("bad.json:{line}: ")),
                "line {line}: {stderr}"
            ),
        }
        assert!(
            !s.path().join("out").exists(),
            "nothing is written for a refused report"
        );
    }
    // Possible but extreme: thousands of patches, the longest times a report
    // may hold, huge counts. Every format and chart within seconds.
    let mut r = fixture.clone();
    let template = r["patches"].as_array().unwrap().clone();
    let mut patches = Vec::new();
    for i in 0..3000 {
        let mut p = template[i % template.len()].clone();
        p["id"] = format!("{:04}-p", i).into();
        p["seconds"] = if i % 2 == 0 { 1e9 } else { 0.0 }.into();
        p["budget_seconds"] = 1e9.into();
        if let Some(stmts) = p["statements"].as_array_mut() {
            for st in stmts {
                st["seconds"] = 1e9.into();
                st["rows_affected"] = 999_999_999_999_999u64.into();
            }
        }
        patches.push(p);
    }
    r["patches"] = patches.into();
    r["total_seconds"] = 1e9.into();
    std::fs::write(s.path().join("big.json"), r.to_string()).unwrap();
    let started = Instant::now();
    let (code, stderr) = run_within(
        &s,
        &[
            "report",
            "big.json",
            "--format",
            "json,markdown,html,junit,github",
            "--output-dir",
            "out",
            "--charts",
            "png,svg",
        ],
        Duration::from_secs(60),
    );
    assert!(code == 0 || code == 1, "{stderr}");
    assert!(s.path().join("out/report.html").is_file());
    assert!(s.path().join("out/patches.svg").is_file(), "{stderr}");
    eprintln!(
        "3000-patch extreme report rendered in {:?}",
        started.elapsed()
    );
}

#[test]
fn charts_are_bounded_for_any_value_a_report_holds_in_memory() {
    // Reports built in memory are not validated: the charts clamp their
    // axes, so even f64::MAX, infinities and NaN render in bounded time.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/report.json"
    ))
    .unwrap();
    for v in [
        f64::MAX,
        1.7e308,
        -1e308,
        f64::INFINITY,
        f64::NAN,
        -0.0,
        5e-324,
    ] {
        let mut r: downtime::report::Report = serde_json::from_str(&text).unwrap();
        r.total_seconds = v;
        for p in &mut r.patches {
            p.seconds = v;
            p.budget_seconds = Some(v);
            for st in &mut p.statements {
                st.seconds = v;
                for l in &mut st.locks {
                    l.held_seconds = v;
                }
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let html = downtime::report::render(&r, downtime::report::Format::Html);
            let charts = downtime::report::charts::charts(&r);
            let svgs: Vec<_> = charts
                .iter()
                .map(|c| downtime::report::charts::svg(&r, c))
                .collect();
            let _ = tx.send((html.len(), charts.len(), svgs.iter().all(Result::is_ok)));
        });
        let (html, charts, ok) = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("rendering with {v:e} did not finish in 20 s"));
        assert!(html > 0 && charts > 0 && ok, "{v}: {html} {charts} {ok}");
    }
}

/// Plant `link` → `to`, with the folders it is in.
fn link(s: &Scratch, link: &str, to: &Path) {
    let at = s.path().join(link);
    if let Some(dir) = at.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    if std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(&at).unwrap();
    }
    std::os::unix::fs::symlink(to, at).unwrap();
}

#[test]
fn links_committed_in_the_repository_are_never_written_through() {
    // A pull request can commit `reports/report.md -> ~/.bashrc`. Every
    // output is refused before the server starts (`--pg-bin` names an
    // empty folder: reaching the server would be another error), exit 2,
    // naming the path and that it is a link; the file outside is untouched.
    let s = Scratch::new();
    s.patch("0001-a.sql", "select pg_sleep(30);");
    std::fs::create_dir(s.path().join("nobin")).unwrap();
    let outside = s.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let bashrc = outside.join("bashrc");
    std::fs::write(&bashrc, "# the CI user's shell\n").unwrap();
    let cases: Vec<(&str, &Path, Vec<&str>, &str)> = vec![
        (
            "reports/report.md",
            &bashrc,
            vec!["check", "--format", "text,markdown"],
            "cannot write report reports/report.md: it is a symbolic link (to ",
        ),
        (
            "reports",
            &outside,
            vec!["check", "--format", "json,junit"],
            "cannot write output directory reports: it is a symbolic link (to ",
        ),
        (
            "out/charts",
            &outside,
            vec!["check", "--output-dir", "out/charts/x", "--charts", "svg"],
            "cannot write output directory out/charts/x: out/charts is a symbolic link (to ",
        ),
        (
            "reports/patches.svg",
            &bashrc,
            vec!["check", "--charts", "svg"],
            "cannot write chart reports/patches.svg: it is a symbolic link (to ",
        ),
        (
            "reports/history.jsonl",
            &bashrc,
            vec!["check"],
            "cannot write history file reports/history.jsonl: it is a symbolic link (to ",
        ),
        (
            "reports/history.jsonl.lock",
            &bashrc,
            vec!["bench", "--runs", "1"],
            "cannot write history file reports/history.jsonl.lock: it is a symbolic link (to ",
        ),
        (
            "run.json",
            &bashrc,
            vec!["check", "--no-history", "--output", "run.json"],
            "cannot write report run.json: it is a symbolic link (to ",
        ),
        (
            "saved/sub",
            &outside,
            vec![
                "estimate",
                "--prod-stats",
                "stats.json",
                "-o",
                "saved/sub/run.json",
            ],
            "cannot write report saved/sub/run.json: saved/sub is a symbolic link (to ",
        ),
        (
            "patches/signoffs.toml",
            &bashrc,
            vec![
                "signoff",
                "patches/0001-a.sql",
                "--by",
                "A",
                "--reason",
                "r",
            ],
            "cannot write sign-off file patches/signoffs.toml: it is a symbolic link (to ",
        ),
        (
            "patches/signoffs.toml.lock",
            &bashrc,
            vec![
                "signoff",
                "patches/0001-a.sql",
                "--by",
                "A",
                "--reason",
                "r",
            ],
            "cannot write sign-off file patches/signoffs.toml.lock: it is a symbolic link (to ",
        ),
        (
            "stats.out",
            &bashrc,
            vec![
                "stats",
                "export",
                "--url",
                "postgres://nowhere/x",
                "-o",
                "stats.out",
            ],
            "cannot write stats file stats.out: it is a symbolic link (to ",
        ),
    ];
    std::fs::write(
        s.path().join("stats.json"),
        r#"{"schema_version": 1, "exported_at": "2026-01-01T00:00:00Z", "server_version": "15", "source": "x", "tables": []}"#,
    )
    .unwrap();
    let mut failures = Vec::new();
    for (planted, to, mut args, message) in cases {
        link(&s, planted, to);
        if args[0] != "stats" {
            args.extend(["--pg-bin", "nobin"]);
        }
        if ["check", "bench", "estimate"].contains(&args[0]) {
            args.push("patches");
        }
        let (code, stderr) = run_within(&s, &args, Duration::from_secs(20));
        eprintln!("{planted}: {args:?}: exit {code}: {}", stderr.trim());
        if code != 2 || !stderr.contains(message) || !stderr.contains("never writes through a link")
        {
            failures.push(format!("{planted}: {args:?}: exit {code}: {stderr}"));
        }
        std::fs::remove_file(s.path().join(planted)).unwrap();
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        std::fs::read_to_string(&bashrc).unwrap(),
        "# the CI user's shell\n"
    );
    let beside: Vec<_> = std::fs::read_dir(&outside).unwrap().flatten().collect();
    assert_eq!(beside.len(), 1, "nothing was made beside it: {beside:?}");
    s.assert_clean();
}

#[test]
fn a_real_run_writes_every_output_as_a_plain_file_and_leaves_no_temporary_file() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "create table a (id int);");
    let out = s.run(&[
        "check",
        "patches",
        "--format",
        "text,json,markdown,html,junit,github",
        "--charts",
        "svg,png",
        "--output",
        "run.json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let mut names: Vec<String> = std::fs::read_dir(s.path().join("reports"))
        .unwrap()
        .flatten()
        .map(|e| {
            assert!(e.file_type().unwrap().is_file(), "{:?}", e.path());
            e.file_name().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    assert!(names.contains(&"report.md".to_string()), "{names:?}");
    assert!(names.contains(&"history.jsonl".to_string()), "{names:?}");
    assert!(names.contains(&"patches.png".to_string()), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with('.') && !n.ends_with(".lock")),
        "{names:?}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("run.json")).unwrap()).unwrap();
    assert_eq!(report["verdict"], "pass");
    s.assert_clean();
}
