//! Repeated timing, cold cache, history and regressions, the server's own
//! clock, and the baseline cache.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{patch, Scratch};

#[test]
fn five_runs_of_a_known_sleep() {
    let s = Scratch::new();
    s.patch("0001-sleep.sql", "select pg_sleep(0.5);");
    let (code, report, stderr) =
        s.check_json(&["patches", "--runs", "5", "--warmup", "1", "--no-history"]);
    assert_eq!(code, 0, "{stderr}");
    let t = &report["timing"];
    assert_eq!(t["runs"], 5);
    assert_eq!(t["warmup"], 1);
    assert_eq!(t["statistic"], "median");
    let p = patch(&report, "0001-sleep");
    let st = &p["timing"]["warm"];
    assert_eq!(st["runs"], 5);
    let median = st["median"].as_f64().unwrap();
    assert!(
        (0.5 * 0.95..=0.5 * 1.05).contains(&median),
        "median {median}"
    );
    let (lo, hi) = (
        st["ci_low"].as_f64().unwrap(),
        st["ci_high"].as_f64().unwrap(),
    );
    assert!(
        lo <= median && median <= hi,
        "[{lo}, {hi}] does not contain {median}"
    );
    assert!(st["min"].as_f64().unwrap() <= lo && hi <= st["max"].as_f64().unwrap());
    assert_eq!(p["seconds"].as_f64().unwrap(), median, "the median decides");
    let stmt = &p["statements"][0]["stats"];
    assert_eq!(stmt["runs"], 5);
    // The server's own clock agrees, and is not slower than the client's.
    let server = p["statements"][0]["server_seconds"].as_f64().unwrap();
    let client = p["statements"][0]["seconds"].as_f64().unwrap();
    assert!(
        server > 0.45 && server <= client + 0.001,
        "server {server}, client {client}"
    );

    let (_, report, _) =
        s.check_json(&["patches", "--runs", "3", "--decide", "max", "--no-history"]);
    let p = patch(&report, "0001-sleep");
    assert_eq!(report["timing"]["statistic"], "max");
    assert_eq!(p["seconds"], p["timing"]["warm"]["max"]);
    s.assert_clean();
}

#[test]
fn bench_prints_statistics_per_patch_and_statement() {
    let s = Scratch::new();
    s.patch(
        "0001-a.sql",
        "create table t (id int);\ninsert into t select generate_series(1, 1000);",
    );
    let out = s.run(&["bench", "patches", "--runs", "3", "--warmup", "0"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("3 timed run(s)") && text.contains("95% CI of median"),
        "{text}"
    );
    assert!(
        text.contains("0001-a") && text.contains("line 2: insert into t"),
        "{text}"
    );
    s.assert_clean();
}

#[test]
fn cold_cache_restarts_the_server_before_each_timed_run() {
    let s = Scratch::new();
    s.baseline("create table t (id int, v int);\ninsert into t select g, g from generate_series(1, 20000) g;\n");
    s.patch("0001-scan.sql", "select count(*) from t;");
    let (code, report, stderr) =
        s.check_json(&["patches", "--runs", "2", "--cache", "both", "--no-history"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("cold cache: server restarted"), "{stderr}");
    let t = &report["timing"];
    assert_eq!(t["cache"], serde_json::json!(["warm", "cold"]));
    assert_eq!(t["server_restarts"], 2);
    assert!(t["os_cache_dropped"].is_boolean());
    let p = patch(&report, "0001-scan");
    assert_eq!(p["timing"]["warm"]["runs"], 2);
    assert_eq!(p["timing"]["cold"]["runs"], 2);
    // The cold figures decide.
    assert_eq!(p["seconds"], p["timing"]["cold"]["median"]);
    s.assert_clean();
}

#[test]
fn a_patch_three_times_slower_is_flagged_as_regressed() {
    let s = Scratch::new();
    s.patch("0001-work.sql", "select pg_sleep(0.1);");
    let (code, _, stderr) = s.check_json(&["patches", "--runs", "3"]);
    assert_eq!(code, 0, "{stderr}");
    // Unchanged: compared, not regressed.
    let (code, report, _) = s.check_json(&["patches", "--runs", "3", "--compare-history"]);
    assert_eq!(code, 0);
    let r = &patch(&report, "0001-work")["regression"];
    assert_eq!(r["regressed"], false, "{r}");
    assert_eq!(
        patch(&report, "0001-work")["history"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Three times slower.
    s.patch("0001-work.sql", "select pg_sleep(0.3);");
    let (code, report, _) = s.check_json(&["patches", "--runs", "3", "--compare-history"]);
    assert_eq!(code, 1);
    let r = &patch(&report, "0001-work")["regression"];
    assert_eq!(r["regressed"], true, "{r}");
    assert!(r["change_percent"].as_f64().unwrap() > 150.0);
    assert!(report["failures"].to_string().contains("regressed"));
    let history = std::fs::read_to_string(s.path().join("reports/history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 3);
    let out = s.run(&["history", "0001-work"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("0001-work")).count(),
        3,
        "{text}"
    );
    // The trend chart appears in the HTML report.
    let out = s.run(&["check", "patches", "--format", "html", "--no-history"]);
    assert_eq!(out.status.code(), Some(0));
    let html = std::fs::read_to_string(s.path().join("reports/report.html")).unwrap();
    assert!(html.contains("chart-trend"));
    s.assert_clean();
}

#[test]
fn the_baseline_cache_is_used_and_can_be_bypassed_and_cleared() {
    let s = Scratch::new();
    s.baseline("create table t (id int, v int);\ninsert into t select g, g from generate_series(1, 20000) g;\n");
    s.patch("0001-index.sql", "create index t_v on t (v);");
    let (_, first, _) = s.check_json(&["patches", "--no-history"]);
    assert_eq!(first["baseline"]["cache"], "miss");
    assert!(first["baseline"]["load_seconds"].as_f64().unwrap() > 0.0);
    let (code, second, stderr) = s.check_json(&["patches", "--no-history"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(second["baseline"]["cache"], "hit");
    assert_eq!(second["baseline"]["load_seconds"], 0.0);
    assert!(
        second["baseline"]["first_statement_seconds"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(patch(&second, "0001-index")["classification"], "cold");
    assert_eq!(
        patch(&second, "0001-index")["reasons"][0]["message"],
        patch(&first, "0001-index")["reasons"][0]["message"],
        "the cached cluster holds the same data"
    );
    // A changed baseline is a different key.
    s.baseline("create table t (id int, v int);\ninsert into t select g, g from generate_series(1, 10) g;\n");
    let (_, third, _) = s.check_json(&["patches", "--no-history"]);
    assert_eq!(third["baseline"]["cache"], "miss");
    let (_, off, _) = s.check_json(&["patches", "--no-history", "--no-cache"]);
    assert_eq!(off["baseline"]["cache"], "off");
    let out = s.run(&["cache", "clear"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 2"));
    s.assert_clean();
}

/// The history file's lines, parsed.
fn history_lines(s: &Scratch) -> Vec<serde_json::Value> {
    std::fs::read_to_string(s.path().join("reports/history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_regression_still_fails_on_the_retry() {
    let s = Scratch::new();
    s.patch("0001-work.sql", "select pg_sleep(0.1);");
    let (code, _, stderr) = s.check_json(&["patches", "--runs", "3"]);
    assert_eq!(code, 0, "{stderr}");
    // Slower: first over a budget, then regressed, then the CI retry. The
    // failing runs are recorded as such and never compared with: each is
    // measured against the passing run.
    s.patch("0001-work.sql", "select pg_sleep(0.3);");
    let (code, _, _) = s.check_json(&["patches", "--runs", "3", "--budget", "0.2"]);
    assert_eq!(code, 1, "over budget");
    let mut previous = Vec::new();
    for attempt in ["first", "retry"] {
        let (code, report, _) = s.check_json(&["patches", "--runs", "3", "--compare-history"]);
        assert_eq!(code, 1, "{attempt}: {}", report["failures"]);
        let r = &patch(&report, "0001-work")["regression"];
        assert_eq!(r["regressed"], true, "{attempt}: {r}");
        let was = r["previous_seconds"].as_f64().unwrap();
        assert!(was < 0.2, "{attempt}: compared with {was} s");
        previous.push(r["previous_at"].clone());
    }
    assert_eq!(
        previous[0], previous[1],
        "both compared with the passing run"
    );
    let lines = history_lines(&s);
    let verdicts: Vec<String> = lines
        .iter()
        .map(|l| format!("{} {}", l["verdict"], l["because"]))
        .collect();
    assert_eq!(
        verdicts,
        [
            "\"pass\" null",
            "\"fail\" [\"over-budget\"]",
            "\"fail\" [\"regressed\"]",
            "\"fail\" [\"regressed\"]"
        ]
    );
    let out = s.run(&["history", "0001-work"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("fail (regressed)").count(), 2, "{text}");

    // A reviewer's sign-off of the slower patch approves its time: the
    // regression is a warning, and that run is the next comparison point.
    let out = s.run(&[
        "signoff",
        "patches/0001-work.sql",
        "--by",
        "Ada",
        "--reason",
        "slower by design",
        "--max-seconds",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let (code, report, _) = s.check_json(&["patches", "--runs", "3", "--compare-history"]);
    assert_eq!(code, 0, "{}", report["failures"]);
    assert!(report["warnings"].to_string().contains("regressed"));
    let (code, report, _) = s.check_json(&["patches", "--runs", "3", "--compare-history"]);
    assert_eq!(code, 0, "{}", report["failures"]);
    let r = &patch(&report, "0001-work")["regression"];
    assert_eq!(r["regressed"], false, "{r}");
    assert!(r["previous_seconds"].as_f64().unwrap() > 0.25, "{r}");
    s.assert_clean();
}

#[test]
fn a_torn_last_history_line_is_passed_over_with_a_note() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "create table a (id int);");
    let (code, _, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}");
    let file = s.path().join("reports/history.jsonl");
    let whole = std::fs::read_to_string(&file).unwrap();
    // A write cut short by a full disk or a kill: half a line, no newline.
    std::fs::write(&file, format!("{whole}{}", &whole[..whole.len() / 2])).unwrap();
    // A millisecond patch on a loaded machine can take twice as long: the
    // comparison is read, not judged, here.
    let lenient = [
        "patches",
        "--compare-history",
        "--regression-threshold",
        "100000",
    ];
    let (code, report, stderr) = s.check_json(&lenient);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("reports/history.jsonl:2: the last line is incomplete"),
        "{stderr}"
    );
    assert_eq!(patch(&report, "0001-a")["regression"]["regressed"], false);
    // The torn line is dropped when the run's line is appended.
    let lines = history_lines(&s);
    assert_eq!(lines.len(), 2);
    // A broken line elsewhere is still an error at its line.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut broken: Vec<&str> = text.lines().collect();
    broken.insert(1, "{\"patch\": \"0001-a\", \"seco");
    std::fs::write(&file, broken.join("\n") + "\n").unwrap();
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reports/history.jsonl:2: not a history entry"),
        "{stderr}"
    );
    s.assert_clean();
}

/// A tmpfs of `kilobytes` at `dir/small`, filled to the last byte but for
/// the files in `keep` (written first).
fn full_tmpfs(dir: &std::path::Path, kilobytes: u32, keep: &[(&str, &str)]) -> std::path::PathBuf {
    use std::io::Write;
    let target = dir.join("small");
    std::fs::create_dir_all(&target).unwrap();
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={kilobytes}k,mode=0755"),
            "tmpfs",
        ])
        .arg(&target)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        mounted,
        "cannot mount a tmpfs under {}: this test needs root (mount -t tmpfs); run it as root",
        dir.display()
    );
    for (name, text) in keep {
        std::fs::write(target.join(name), text).unwrap();
    }
    let mut filler = std::fs::File::create(target.join("filler")).unwrap();
    let chunk = vec![b'x'; 4096];
    while filler.write_all(&chunk).is_ok() {}
    while filler.write_all(b"x").is_ok() {}
    target
}

#[test]
fn a_full_disk_while_the_history_is_appended_still_prints_the_verdict() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "create table a (id int);");
    let (code, _, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}");
    let mut kept = std::fs::read_to_string(s.path().join("reports/history.jsonl")).unwrap();
    // Blank lines (passed over) fill the file's last page: appending in
    // place needs a new one, as writing a new file does.
    kept.push_str(&"\n".repeat(4096 - kept.len() % 4096));
    let small = full_tmpfs(s.path(), 512, &[("history.jsonl", &kept)]);
    let out = s.run(&[
        "check",
        "patches",
        "--history",
        "small/history.jsonl",
        "--format",
        "text,markdown",
    ]);
    let after = std::fs::read_to_string(small.join("history.jsonl"));
    let left: Vec<_> = std::fs::read_dir(&small)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let _ = std::process::Command::new("umount").arg(&small).status();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out));
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
    assert!(
        s.path().join("reports/report.md").is_file(),
        "reports first"
    );
    assert!(
        stderr.contains("the verdict above stands (pass), but this run is not in the history")
            && stderr.contains("cannot write history file small/history.jsonl: ")
            && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert_eq!(after.unwrap(), kept, "the history is as it was");
    let mut left = left;
    left.sort();
    assert_eq!(left, ["filler", "history.jsonl"], "nothing half-written");
    s.assert_clean();
}

#[test]
fn a_cache_directory_of_another_user_is_never_used() {
    let s = Scratch::new();
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test makes a folder of another user's (chown to nobody): run it as root"
    );
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a `nobody` user");
    s.baseline("create table t (id int);\ninsert into t values (1);\n");
    s.patch("0001-a.sql", "insert into t values (2);");
    // HOME unset: the cache was `downtime` in the shared temporary folder,
    // where another user may have made it first, for everyone to write.
    let shared = s.tmp().join("downtime");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, PermissionsExt::from_mode(0o777)).unwrap();
    nix::unistd::chown(&shared, Some(nobody.uid), Some(nobody.gid)).unwrap();
    let own = s.tmp().join(format!("downtime-{}", nix::unistd::geteuid()));
    let check = || {
        let out = s
            .command(&["check", "patches", "--no-history", "--format", "json"])
            .env_remove("HOME")
            .env_remove("XDG_CACHE_HOME")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report = serde_json::from_slice::<serde_json::Value>(&out.stdout).ok();
        (out.status.code(), report, stderr)
    };
    let (code, report, stderr) = check();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(report.unwrap()["baseline"]["cache"], "miss");
    assert!(
        stderr.contains(&format!(
            "HOME is not set: the baseline cache is {}, this user's own (mode 0700)",
            own.display()
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0, "untouched");
    let meta = std::fs::symlink_metadata(&own).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert_eq!(meta.uid(), 0);
    let (code, report, stderr) = check();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(report.unwrap()["baseline"]["cache"], "hit");

    // Its own folder taken by another user, open to all, or a link: refused
    // before the server starts, naming it.
    for message in [
        "it belongs to nobody (uid 65534), not to this user (uid 0)",
        "others can write to it (mode 777)",
        "it is a symbolic link (to ",
    ] {
        if message.starts_with("it belongs") {
            nix::unistd::chown(&own, Some(nobody.uid), Some(nobody.gid)).unwrap();
        } else if message.starts_with("others") {
            nix::unistd::chown(&own, Some(0.into()), Some(0.into())).unwrap();
            std::fs::set_permissions(&own, PermissionsExt::from_mode(0o777)).unwrap();
        } else {
            std::fs::remove_dir_all(&own).unwrap();
            std::os::unix::fs::symlink(&shared, &own).unwrap();
        }
        let started = std::time::Instant::now();
        let (code, _, stderr) = check();
        assert_eq!(code, Some(2), "{message}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "cannot write baseline cache {}: {message}",
                own.display()
            )),
            "{stderr}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0, "untouched");
    std::fs::remove_file(&own).unwrap();
    std::fs::remove_dir(&shared).unwrap();
    s.assert_clean();
}
