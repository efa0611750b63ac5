//! Budget policy, profiles, downtime.toml, sign-offs and waivers, end to end.

mod common;

use common::{patch, rules, Scratch};

#[test]
fn gitlab_profile_numbers_and_post_deploy_patches() {
    let s = Scratch::new();
    s.patch("20240101000000_create.sql", "create table a (id int);");
    s.patch(
        "post_migrate/20240102000000_fill.sql",
        "insert into a values (1);",
    );
    s.patch(
        "20240103000000_declared.sql",
        "-- downtime: post-deploy\ninsert into a values (2);",
    );
    let (code, report, stderr) = s.check_json(&["patches", "--profile", "gitlab"]);
    assert_eq!(code, 0, "{stderr}");
    let policy = &report["policy"];
    assert_eq!(policy["profile"], "gitlab");
    assert_eq!(policy["budget"]["per_patch_seconds"], 180.0);
    assert_eq!(policy["budget"]["post_deploy_seconds"], 600.0);
    assert_eq!(policy["budget"]["total_seconds"], 3600.0);
    assert_eq!(policy["budget"]["notify_seconds"], 1200.0);
    let regular = patch(&report, "20240101000000_create");
    assert_eq!(regular["budget_seconds"], 180.0);
    assert_eq!(regular["post_deploy"], false);
    let post = patch(&report, "20240102000000_fill");
    assert_eq!(post["post_deploy"], true);
    assert_eq!(post["budget_seconds"], 600.0);
    assert_eq!(
        patch(&report, "20240103000000_declared")["budget_seconds"],
        600.0
    );
    s.assert_clean();
}

#[test]
fn launchpad_budget_applies_to_cold_patches_only_and_warns() {
    let s = Scratch::new();
    std::fs::write(
        s.path().join("downtime.toml"),
        "[classify]\nprofile = \"launchpad\"\n[budget]\nper-patch-seconds = 1.0\nwarn-at-seconds = 0.1\n",
    )
    .unwrap();
    s.baseline("create table t (id int, v int);\ninsert into t select g, g from generate_series(1, 2000) g;\n");
    // The live patch is over the per-patch budget, which applies to cold
    // patches only; the cold one is within it (with a wide margin for a busy
    // machine) but over the warning threshold.
    s.patch("0001-slow-live.sql", "select pg_sleep(1.2);");
    s.patch(
        "0002-cold.sql",
        "create index t_v on t (v);\nselect pg_sleep(0.15);",
    );
    let (code, report, stderr) = s.check_json(&[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["policy"]["profile"], "launchpad");
    assert!(report["policy"]["config"]
        .as_str()
        .unwrap()
        .ends_with("downtime.toml"));
    let live = patch(&report, "0001-slow-live");
    assert_eq!(live["classification"], "live");
    assert!(live["budget_seconds"].is_null());
    assert_eq!(live["over_budget"], false);
    let cold = patch(&report, "0002-cold");
    assert_eq!(cold["classification"], "cold");
    assert_eq!(cold["budget_seconds"], 1.0);
    assert!(
        report["warnings"].to_string().contains("0002-cold"),
        "{}",
        report["warnings"]
    );
}

#[test]
fn strict_profile_fails_cold_patches() {
    let s = Scratch::new();
    s.baseline("create table t (id int, v int);\ninsert into t select g, g from generate_series(1, 2000) g;\n");
    s.patch("0001-cold.sql", "create index t_v on t (v);");
    let (code, report, _) = s.check_json(&["patches", "--profile", "strict"]);
    assert_eq!(code, 1);
    assert!(report["failures"].to_string().contains("live patches only"));
    let (code, _, _) = s.check_json(&["patches", "--profile", "standard"]);
    assert_eq!(code, 0);
}

#[test]
fn cold_window_and_required_lock_timeout() {
    let s = Scratch::new();
    s.baseline("create table t (id int, v int);\ninsert into t select g, g from generate_series(1, 2000) g;\n");
    s.patch(
        "0001-cold.sql",
        "create index t_v on t (v);\nselect pg_sleep(0.3);",
    );
    let (code, report, _) = s.check_json(&["patches", "--cold-window-budget", "0.1"]);
    assert_eq!(code, 1);
    assert!(report["failures"].to_string().contains("downtime window"));

    let l = Scratch::new();
    l.baseline("create table t (id int, v int);\ninsert into t values (1, 1);\n");
    l.patch("0001-column.sql", "alter table t add column w int;");
    let (code, _, _) = l.check_json(&["patches"]);
    assert_eq!(code, 0);
    let (code, report, _) = l.check_json(&["patches", "--require-lock-timeout"]);
    assert_eq!(code, 1);
    assert!(report["failures"]
        .to_string()
        .contains("lock-timeout-missing"));
    l.patch(
        "0001-column.sql",
        "set lock_timeout = '1s';\nalter table t add column w int;",
    );
    let (code, _, _) = l.check_json(&["patches", "--require-lock-timeout"]);
    assert_eq!(code, 0);
}

#[test]
fn signoff_lets_a_slow_patch_pass_until_it_changes_or_exceeds() {
    let s = Scratch::new();
    std::fs::write(
        s.path().join("downtime.toml"),
        "[budget]\nper-patch-seconds = 0.1\n",
    )
    .unwrap();
    let p = s.patch("0001-slow.sql", "select pg_sleep(0.3);");

    let (code, report, _) = s.check_json(&[]);
    assert_eq!(code, 1, "over budget without a sign-off");
    assert!(patch(&report, "0001-slow")["signoff"].is_null());

    let out = s.run(&[
        "signoff",
        "patches/0001-slow.sql",
        "--by",
        "Ada Lovelace",
        "--reason",
        "one-off backfill",
        "--max-seconds",
        "5",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = std::fs::read_to_string(s.patches().join("signoffs.toml")).unwrap();
    assert!(
        file.contains("Ada Lovelace") && file.contains("max-seconds = 5"),
        "{file}"
    );

    let (code, report, _) = s.check_json(&[]);
    assert_eq!(code, 0, "{}", report["failures"]);
    let signoff = &patch(&report, "0001-slow")["signoff"];
    assert_eq!(signoff["by"], "Ada Lovelace");
    assert_eq!(signoff["state"], "valid");
    assert_eq!(patch(&report, "0001-slow")["over_budget"], true);
    let text = String::from_utf8_lossy(&s.run(&["check"]).stdout).into_owned();
    assert!(text.contains("signed off by Ada Lovelace"), "{text}");

    // One byte more: the sign-off no longer covers the patch.
    std::fs::write(&p, "select pg_sleep(0.3); ").unwrap();
    let (code, report, _) = s.check_json(&[]);
    assert_eq!(code, 1);
    assert_eq!(patch(&report, "0001-slow")["signoff"]["state"], "stale");
    let failures = report["failures"].to_string();
    assert!(
        failures.contains("Ada Lovelace") && failures.contains("changed since"),
        "{failures}"
    );
    let list = String::from_utf8_lossy(&s.run(&["signoff", "--list"]).stdout).into_owned();
    assert!(list.contains("stale"), "{list}");

    // Re-signed with a maximum below the measured time: exceeded.
    let out = s.run(&[
        "signoff",
        "patches/0001-slow.sql",
        "--by",
        "Ada Lovelace",
        "--reason",
        "re-reviewed",
        "--max-seconds",
        "0.2",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let (code, report, _) = s.check_json(&[]);
    assert_eq!(code, 1);
    assert_eq!(patch(&report, "0001-slow")["signoff"]["state"], "exceeded");
    assert!(report["failures"].to_string().contains("approved"));
    // The file holds one sign-off per patch.
    let file = std::fs::read_to_string(s.patches().join("signoffs.toml")).unwrap();
    assert_eq!(file.matches("[[signoff]]").count(), 1, "{file}");
    s.assert_clean();
}

#[test]
fn signoff_measures_the_default_maximum_and_lists_states() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "create table a (id int);");
    s.patch(
        "0002-slow.sql",
        "select pg_sleep(0.4);\ninsert into a values (1);",
    );
    let out = s.run(&[
        "signoff",
        "patches/0002-slow.sql",
        "--by",
        "Grace",
        "--reason",
        "needed",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = std::fs::read_to_string(s.patches().join("signoffs.toml")).unwrap();
    // 0.4 s measured, 50 % headroom, rounded up: 1 s.
    assert!(file.contains("max-seconds = 1.0"), "{file}");
    assert!(file.contains("patch = \"patches/0002-slow.sql\""), "{file}");

    let out = s.run(&["check", "--output", "run.json"]);
    assert_eq!(out.status.code(), Some(0));
    let list =
        String::from_utf8_lossy(&s.run(&["signoff", "--list", "--report", "run.json"]).stdout)
            .into_owned();
    assert!(list.contains("valid") && list.contains("Grace"), "{list}");

    std::fs::remove_file(s.patches().join("0002-slow.sql")).unwrap();
    let list = String::from_utf8_lossy(&s.run(&["signoff", "--list"]).stdout).into_owned();
    assert!(list.contains("orphaned"), "{list}");

    let out = s.run(&["signoff", "patches/nope.sql", "--by", "x", "--reason", "y"]);
    assert_eq!(out.status.code(), Some(2));
    s.assert_clean();
}

#[test]
fn malformed_config_names_the_line() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "select 1;");
    std::fs::write(
        s.path().join("downtime.toml"),
        "[budget]\nper-patch-seconds = 10\nper-patch-secs = 3\n",
    )
    .unwrap();
    let out = s.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("downtime.toml:3"), "{stderr}");
    assert!(stderr.contains("per-patch-secs"), "{stderr}");

    std::fs::write(
        s.path().join("downtime.toml"),
        "[budget]\nper-patch-seconds = \"ten\"\n",
    )
    .unwrap();
    let out = s.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("downtime.toml:2"));

    let out = s.run(&["check", "--config", "missing.toml"]);
    assert_eq!(out.status.code(), Some(2));
    s.assert_clean();
}

#[test]
fn config_supplies_patches_baseline_and_budget() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path().join("db/migrate")).unwrap();
    std::fs::write(
        s.path().join("db/structure.sql"),
        "create table t (id int);\n",
    )
    .unwrap();
    std::fs::write(
        s.path().join("db/migrate/0001-a.sql"),
        "insert into t values (1);\nselect pg_sleep(0.2);",
    )
    .unwrap();
    std::fs::write(
        s.path().join("downtime.toml"),
        "patches = [\"db/migrate\"]\n[staging]\nbaseline = \"db/structure.sql\"\n[budget]\nper-patch-seconds = 0.1\n",
    )
    .unwrap();
    let (code, report, stderr) = s.check_json(&[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(report["baseline"]["source"]
        .as_str()
        .unwrap()
        .contains("structure.sql"));
    assert_eq!(patch(&report, "0001-a")["over_budget"], true);
    // The flag overrides the file.
    let (code, report, _) = s.check_json(&["--budget", "5"]);
    assert_eq!(code, 0);
    assert_eq!(report["policy"]["budget"]["per_patch_seconds"], 5.0);
}

#[test]
fn waivers_cover_a_rule_with_a_reason() {
    let s = Scratch::new();
    s.baseline("create table t (id int, v int);\ninsert into t select g, g from generate_series(1, 2000) g;\n");
    s.patch(
        "0001-waived.sql",
        "-- downtime: allow blocking-index-build because t is tiny in production too\ncreate index t_v on t (v);",
    );
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}");
    let p = patch(&report, "0001-waived");
    assert_eq!(p["classification"], "live");
    let reason = p["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "blocking-index-build")
        .expect("the waived reason is still reported");
    assert_eq!(reason["waived"], "t is tiny in production too");
    assert_eq!(p["waivers"][0]["used"], true);
    assert_eq!(p["waivers"][0]["line"], 1);
    assert!(rules(p).contains(&"blocking-index-build".to_string()));

    s.patch(
        "0001-waived.sql",
        "create index t_v on t (v); -- downtime: allow no-such-rule because x",
    );
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0001-waived.sql:1") && stderr.contains("no-such-rule"),
        "{stderr}"
    );

    s.patch(
        "0001-waived.sql",
        "-- downtime: allow table-rewrite\ncreate index t_v on t (v);",
    );
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a reason"));
    s.assert_clean();
}

/// `signoff PATCH --by BY --reason because --max-seconds 5`.
fn sign(s: &Scratch, patch: &str, by: &str) -> std::process::Output {
    s.run(&[
        "signoff",
        patch,
        "--by",
        by,
        "--reason",
        "because",
        "--max-seconds",
        "5",
    ])
}

#[test]
fn a_copy_of_a_signed_patch_under_a_new_name_is_not_signed_off() {
    let s = Scratch::new();
    std::fs::write(
        s.path().join("downtime.toml"),
        "[budget]\nper-patch-seconds = 0.1\n",
    )
    .unwrap();
    let slow = "select pg_sleep(0.3);";
    s.patch("0001-slow.sql", slow);
    let out = sign(&s, "patches/0001-slow.sql", "Ada Lovelace");
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let (code, _, stderr) = s.check_json(&["--no-history"]);
    assert_eq!(code, 0, "{stderr}");

    // The same bytes under another name: not Ada's to approve.
    s.patch("0002-copy.sql", slow);
    let (code, report, stderr) = s.check_json(&["--no-history"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(patch(&report, "0001-slow")["signoff"]["state"], "valid");
    let copy = patch(&report, "0002-copy");
    assert!(copy["signoff"].is_null(), "{copy}");
    let failures: Vec<String> = report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert!(
        failures.len() == 1 && failures[0].starts_with("0002-copy took "),
        "only the copy fails: {failures:#?}"
    );

    // Renamed (the old name gone): the sign-off follows it.
    std::fs::remove_file(s.patches().join("0001-slow.sql")).unwrap();
    let (code, report, stderr) = s.check_json(&["--no-history"]);
    assert_eq!(code, 0, "{stderr}\n{}", report["failures"]);
    let renamed = &patch(&report, "0002-copy")["signoff"];
    assert_eq!(renamed["by"], "Ada Lovelace");
    assert_eq!(renamed["state"], "valid");

    // A sign-off without a path (an older or hand-written file) covers
    // nothing, and the failure says to sign it again.
    std::fs::write(
        s.patches().join("signoffs.toml"),
        format!(
            "[[signoff]]\nsha256 = \"{}\"\nby = \"Grace\"\nat = \"2026-01-01T00:00:00Z\"\nreason = \"r\"\nmax-seconds = 5\n",
            copy["sha256"].as_str().unwrap()
        ),
    )
    .unwrap();
    let (code, report, _) = s.check_json(&["--no-history"]);
    assert_eq!(code, 1);
    let failures = report["failures"].to_string();
    assert!(
        failures.contains("the sign-off by Grace for this content names no patch"),
        "{failures}"
    );
    let list = String::from_utf8_lossy(&s.run(&["signoff", "--list"]).stdout).into_owned();
    assert!(list.contains("unnamed"), "{list}");
    s.assert_clean();
}

/// The command a failure line prints between "(`" and "`)".
fn printed_command(failures: &serde_json::Value) -> String {
    let text = failures
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.contains("(`downtime signoff "))
        .unwrap_or_else(|| panic!("no sign-off command in {failures}"));
    let start = text.find("(`downtime signoff ").unwrap_or_default() + 2;
    let end = start + text[start..].find("`)").unwrap_or_default();
    text[start..end].to_string()
}

/// Run a printed command line with the shell, `downtime` on the PATH.
fn run_as_printed(s: &Scratch, command: &str) -> std::process::Output {
    let bin = std::path::Path::new(common::BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::process::Command::new("sh")
        .args(["-c", command])
        .env("PATH", path)
        .env("TMPDIR", s.tmp())
        .env("XDG_CACHE_HOME", s.path().join("cache"))
        .current_dir(s.path())
        .output()
        .unwrap()
}

#[test]
fn the_hint_signs_off_where_the_check_reads_and_runs_as_printed() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path().join("db/migrate")).unwrap();
    std::fs::write(
        s.path().join("db/migrate/0001-slow.sql"),
        "select pg_sleep(0.3);",
    )
    .unwrap();
    // Patches named on the command line: the check reads
    // db/migrate/signoffs.toml, and a bare `downtime signoff PATCH` would
    // write patches/signoffs.toml.
    let (code, report, stderr) = s.check_json(&["db/migrate", "--budget", "0.1", "--no-history"]);
    assert_eq!(code, 1, "{stderr}");
    let command = printed_command(&report["failures"]);
    assert!(
        command.starts_with(
            "downtime signoff db/migrate/0001-slow.sql --signoff-file db/migrate/signoffs.toml "
        ),
        "{command}"
    );
    let out = run_as_printed(&s, &command);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{command}: {}",
        common::text(&out)
    );
    assert!(!s.patches().join("signoffs.toml").exists());
    let (code, report, stderr) = s.check_json(&["db/migrate", "--budget", "0.1", "--no-history"]);
    assert_eq!(code, 0, "{stderr}\n{}", report["failures"]);
    assert_eq!(patch(&report, "0001-slow")["signoff"]["state"], "valid");

    // With --config elsewhere and its [signoff] file, the command names both.
    std::fs::create_dir_all(s.path().join("ci")).unwrap();
    std::fs::write(
        s.path().join("ci/downtime.toml"),
        "patches = [\"../db/migrate\"]\n[budget]\nper-patch-seconds = 0.1\n[signoff]\nfile = \"../approvals/signoffs.toml\"\n",
    )
    .unwrap();
    let (code, report, stderr) = s.check_json(&["--config", "ci/downtime.toml", "--no-history"]);
    assert_eq!(code, 1, "{stderr}");
    let command = printed_command(&report["failures"]);
    assert!(
        command.contains("--signoff-file ci/../approvals/signoffs.toml --config ci/downtime.toml"),
        "{command}"
    );
    let out = run_as_printed(&s, &command);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{command}: {}",
        common::text(&out)
    );
    let (code, report, stderr) = s.check_json(&["--config", "ci/downtime.toml", "--no-history"]);
    assert_eq!(code, 0, "{stderr}\n{}", report["failures"]);
    assert!(s.path().join("approvals/signoffs.toml").is_file());
    s.assert_clean();
}

#[test]
fn concurrent_signoffs_each_keep_their_record() {
    let s = Scratch::new();
    for i in 1..=4 {
        s.patch(&format!("000{i}-p.sql"), &format!("select {i};"));
    }
    for round in 0..6 {
        let _ = std::fs::remove_file(s.patches().join("signoffs.toml"));
        let children: Vec<_> = (1..=4)
            .map(|i| {
                s.command(&[
                    "signoff",
                    &format!("patches/000{i}-p.sql"),
                    "--by",
                    &format!("reviewer {i}"),
                    "--reason",
                    "r",
                    "--max-seconds",
                    "5",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
        }
        let file = std::fs::read_to_string(s.patches().join("signoffs.toml")).unwrap();
        assert_eq!(
            file.matches("[[signoff]]").count(),
            4,
            "round {round}: {file}"
        );
        for i in 1..=4 {
            assert!(
                file.contains(&format!("patch = \"patches/000{i}-p.sql\""))
                    && file.contains(&format!("by = \"reviewer {i}\"")),
                "round {round}: {file}"
            );
        }
        let left: Vec<_> = std::fs::read_dir(s.patches())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".sql") && n != "signoffs.toml")
            .collect();
        assert!(left.is_empty(), "no lock or temporary file left: {left:?}");
    }
    s.assert_clean();
}
