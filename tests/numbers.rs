//! Every number a user gives downtime, on the command line or in
//! downtime.toml (and a sign-off's maximum), resolved in-process by the
//! library on generated input — huge, tiny, negative, NaN, infinities,
//! exponents, garbage — with no server: never a panic; either a value in
//! its range (the one given, when it was a number in range) or an error
//! naming the flag, or the file and line. The real binary is tried on the
//! same in `tests/inputs.rs`.

use clap::Parser;
use downtime::check::CheckOptions;
use downtime::cli::{Cli, Command as Sub};
use downtime::limits::{self, Quantity};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

/// Numbers as people and programs write them, and things that are not.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|v| format!("{v}")),
        any::<f64>().prop_map(|v| format!("{v:e}")),
        any::<i64>().prop_map(|v| v.to_string()),
        (-1000.0f64..1000.0).prop_map(|v| format!("{v}")),
        (0.0f64..1.5).prop_map(|v| format!("{v}")),
        "[-+]?[0-9]{0,12}(\\.[0-9]{0,8})?([eE][-+]?[0-9]{1,4})?",
        prop::sample::select(vec![
            "NaN",
            "nan",
            "-nan",
            "inf",
            "-inf",
            "infinity",
            "+Infinity",
            "1e308",
            "-1e308",
            "1.7976931348623157e308",
            "1e309",
            "5e-324",
            "1e-320",
            "0",
            "-0",
            "0.0",
            "0.001",
            "0.0009",
            "1",
            "7",
            "2147483.647",
            "2147483.648",
            "31536000",
            "31536001",
            "1000",
            "1001",
            "100",
            "101",
            "0x10",
            "1_000",
            " 5",
            "5 ",
            "",
            "--",
            "-",
            "1s",
            "10%",
            "1e",
            "e5",
            ".",
            "+.5",
        ])
        .prop_map(String::from),
        any::<String>(),
    ]
}

/// A scratch directory with one patch and an empty config, so resolution
/// never finds a downtime.toml of the machine it runs on.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("patches")).unwrap();
        std::fs::write(dir.path().join("patches/0001-a.sql"), "select 1;\n").unwrap();
        std::fs::write(dir.path().join("downtime.toml"), "").unwrap();
        let stats = serde_json::json!({"schema_version": 1, "exported_at": "2026-01-01T00:00:00Z",
            "server_version": "15", "source": "test", "tables": []});
        std::fs::write(dir.path().join("stats.json"), stats.to_string()).unwrap();
        Setup { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `downtime SUB --config … ARGS patches`, parsed and resolved.
    fn resolve(&self, sub: &str, config: &str, args: &[String]) -> Result<CheckOptions, String> {
        let mut argv: Vec<String> = vec!["downtime".into(), sub.into()];
        argv.extend(["--config".into(), self.path(config)]);
        if sub == "estimate" {
            argv.extend(["--prod-stats".into(), self.path("stats.json")]);
        }
        argv.extend(args.iter().cloned());
        argv.push(self.path("patches"));
        let cli = Cli::try_parse_from(&argv).map_err(|e| {
            assert_eq!(e.exit_code(), 2, "clap errors exit 2: {e}");
            format!("clap: {e}")
        })?;
        match cli.command {
            Sub::Check(a) => downtime::cli::check_plan(&a),
            Sub::Estimate(a) => downtime::cli::estimate_plan(&a),
            Sub::Bench(a) => downtime::cli::bench_plan(&a),
            _ => unreachable!("only check, estimate and bench are resolved here"),
        }
        .map_err(|e| {
            assert_eq!(e.exit_code(), 2, "input errors exit 2: {e}");
            e.to_string()
        })
    }
}

/// What every resolved plan holds, whatever was given.
fn invariants(o: &CheckOptions) -> Result<(), TestCaseError> {
    let b = &o.policy.budget;
    let c = &o.policy.classify;
    for v in [
        Some(b.per_patch_seconds),
        b.post_deploy_seconds,
        b.warn_at_seconds,
    ]
    .into_iter()
    .chain([b.cold_window_seconds, b.total_seconds, b.notify_seconds])
    .chain([Some(c.live_lock_threshold_seconds), o.run.max_run_seconds])
    .flatten()
    {
        prop_assert!(limits::SECONDS.contains(v), "{v} out of range");
    }
    prop_assert!(limits::FRACTION.contains(c.bulk_write_fraction));
    let cap_ms = o.run.statement_cap.as_millis();
    prop_assert!((1..=2_147_483_647).contains(&cap_ms), "cap {cap_ms} ms");
    prop_assert!((1..=1000).contains(&o.run.timing.runs));
    prop_assert!(o.run.timing.warmup <= 100);
    for s in &o.run.scales {
        prop_assert!(limits::FRACTION.contains(*s));
    }
    if let Some(g) = o.growth {
        prop_assert!(limits::MONTHLY_GROWTH.contains(g));
    }
    if let Some(t) = o.compare_history {
        prop_assert!(limits::PERCENT.contains(t));
    }
    Ok(())
}

/// The value a plan resolved for a flag.
fn resolved(o: &CheckOptions, flag: &str) -> f64 {
    let b = &o.policy.budget;
    match flag {
        "--budget" => b.per_patch_seconds,
        "--total-budget" => b.total_seconds.unwrap(),
        "--cold-window-budget" => b.cold_window_seconds.unwrap(),
        "--live-lock-threshold" => o.policy.classify.live_lock_threshold_seconds,
        "--bulk-write-fraction" => o.policy.classify.bulk_write_fraction,
        "--bulk-write-rows" => o.policy.classify.bulk_write_rows,
        "--timeout" => o.run.statement_cap.as_secs_f64(),
        "--max-run-seconds" => o.run.max_run_seconds.unwrap(),
        "--runs" => o.run.timing.runs as f64,
        "--warmup" => o.run.timing.warmup as f64,
        "--regression-threshold" => o.compare_history.unwrap(),
        other => panic!("no resolved value for {other}"),
    }
}

/// Every numeric flag of `check`, with its range.
const CHECK_FLAGS: &[(&str, Quantity)] = &[
    ("--budget", limits::SECONDS),
    ("--total-budget", limits::SECONDS),
    ("--cold-window-budget", limits::SECONDS),
    ("--live-lock-threshold", limits::SECONDS),
    ("--bulk-write-fraction", limits::FRACTION),
    ("--bulk-write-rows", limits::ROWS),
    ("--timeout", limits::STATEMENT_TIMEOUT),
    ("--max-run-seconds", limits::SECONDS),
    ("--runs", limits::RUNS),
    ("--warmup", limits::WARMUP),
    ("--regression-threshold", limits::PERCENT),
];

/// A number in range resolves to itself; anything else is an error that
/// names the flag.
fn check_flag(setup: &Setup, flag: &str, q: Quantity, text: &str) -> Result<(), TestCaseError> {
    let mut args = vec![format!("{flag}={text}")];
    if flag == "--regression-threshold" {
        args.push("--compare-history".into());
    }
    let expected = text.trim().parse::<f64>().ok().filter(|v| q.contains(*v));
    match (setup.resolve("check", "downtime.toml", &args), expected) {
        (Ok(o), Some(v)) => {
            invariants(&o)?;
            let got = resolved(&o, flag);
            // The statement cap is kept in whole nanoseconds.
            prop_assert!(
                (got - v).abs() <= 1e-9 * v.max(1.0),
                "{flag}={text}: {got} != {v}"
            );
        }
        (Err(e), None) => prop_assert!(e.contains(flag), "{flag}={text}: {e}"),
        (Ok(o), None) => prop_assert!(false, "{flag}={text} accepted as {}", resolved(&o, flag)),
        (Err(e), Some(v)) => prop_assert!(false, "{flag}={text} ({v}) refused: {e}"),
    }
    Ok(())
}

/// A TOML literal for a number (TOML spells NaN and the infinities its own way).
fn toml_literal(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{v:?}")
    }
}

/// The quantity and resolved value of a downtime.toml key.
fn key_value(o: &CheckOptions, key: &str) -> f64 {
    let b = &o.policy.budget;
    let c = &o.policy.classify;
    match key {
        "budget.per-patch-seconds" => b.per_patch_seconds,
        "budget.post-deploy-seconds" => b.post_deploy_seconds.unwrap(),
        "budget.warn-at-seconds" => b.warn_at_seconds.unwrap(),
        "budget.cold-window-seconds" => b.cold_window_seconds.unwrap(),
        "budget.total-seconds" => b.total_seconds.unwrap(),
        "budget.notify-seconds" => b.notify_seconds.unwrap(),
        "staging.timeout-seconds" => o.run.statement_cap.as_secs_f64(),
        "staging.max-run-seconds" => o.run.max_run_seconds.unwrap(),
        "classify.live-lock-threshold-seconds" => c.live_lock_threshold_seconds,
        "classify.bulk-write-fraction" => c.bulk_write_fraction,
        "classify.bulk-write-rows" => c.bulk_write_rows,
        "staging.command.timeout-seconds" => {
            let command = o.run.command.as_ref().expect("backend = \"command\"");
            command.timeout.as_secs_f64()
        }
        probe if probe.starts_with("probe.") => {
            let p = o.run.probe.as_ref().expect("[probe] enabled = true");
            match probe {
                "probe.long-query-seconds" => p.long_query.unwrap().as_secs_f64(),
                "probe.threshold-seconds" => p.threshold.as_secs_f64(),
                "probe.rate" => p.rate,
                "probe.sessions" => p.sessions as f64,
                "probe.tables" => p.max_tables as f64,
                other => panic!("no resolved value for {other}"),
            }
        }
        other => panic!("no resolved value for {other}"),
    }
}

/// Every numeric key of downtime.toml with its range, as the library lists them.
fn config_keys() -> Vec<(&'static str, Quantity)> {
    downtime::config::ConfigFile::default()
        .numbers()
        .iter()
        .map(|(k, _, q)| (*k, *q))
        .collect()
}

/// Write `[table]\nkey = value` after `padding` blank or comment lines,
/// resolve, and check the outcome.
fn check_key(
    setup: &Setup,
    (key, q): (&str, Quantity),
    value: &str,
    expected: Option<f64>,
    padding: usize,
) -> Result<(), TestCaseError> {
    let (table, name) = key.split_once('.').unwrap();
    let mut text = String::new();
    for i in 0..padding {
        text.push_str(if i % 2 == 0 { "# policy\n" } else { "\n" });
    }
    // The probe's numbers resolve only when it is on, the provisioner's
    // only on the command backend.
    let on = if table == "probe" {
        "enabled = true\n"
    } else if name.starts_with("command.") {
        "backend = \"command\"\ncommand.create = \"true\"\ncommand.destroy = \"true\"\n"
    } else {
        ""
    };
    text.push_str(&format!("[{table}]\n{on}{name} = {value}\n"));
    let line = padding + 2 + on.matches('\n').count();
    std::fs::write(setup.dir.path().join("cfg.toml"), &text).unwrap();
    let file = setup.path("cfg.toml");
    match (setup.resolve("check", "cfg.toml", &[]), expected) {
        (Ok(o), Some(v)) => {
            invariants(&o)?;
            let got = key_value(&o, key);
            prop_assert!(
                (got - v).abs() <= 1e-9 * v.max(1.0),
                "{key} = {value}: {got} != {v}"
            );
            prop_assert!(q.contains(got));
        }
        (Ok(o), None) => {
            // Garbage that happened to be a number TOML reads (e.g. `0x10`):
            // then it is in range.
            invariants(&o)?;
            prop_assert!(q.contains(key_value(&o, key)), "{key} = {value}");
        }
        (Err(e), expected) => {
            // Garbage may leave an array or string open: then the error is
            // where the file ends, the line after.
            let at = format!("{file}:{line}: ");
            let after = format!("{file}:{}: ", line + 1);
            let garbage = expected.is_none() && value.parse::<f64>().is_err();
            prop_assert!(
                e.starts_with(&at) || (garbage && e.starts_with(&after)),
                "{key} = {value}: `{e}` is not at {at}"
            );
            if expected.is_none() && value.parse::<f64>().is_ok() {
                prop_assert!(e.contains(key), "{key} = {value}: {e}");
            }
            if let Some(v) = expected {
                prop_assert!(false, "{key} = {value} ({v}) refused: {e}");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config { cases: 600, ..Config::default() })]

    #[test]
    fn every_numeric_flag_resolves_in_range_or_is_refused_by_name(
        which in 0..CHECK_FLAGS.len(),
        text in number_text(),
    ) {
        thread_local!(static SETUP: Setup = Setup::new());
        let (flag, q) = CHECK_FLAGS[which];
        SETUP.with(|s| check_flag(s, flag, q, &text))?;
    }

    #[test]
    fn scales_and_growth_resolve_in_range_or_are_refused_by_name(
        scales in prop::collection::vec(number_text(), 1..4),
        growth in prop_oneof![
            number_text().prop_map(|n| format!("{n}%/month")),
            number_text().prop_map(|n| format!("{n}%/year")),
            number_text().prop_map(|n| format!("{n}/month")),
            number_text(),
        ],
    ) {
        thread_local!(static SETUP: Setup = Setup::new());
        SETUP.with(|s| -> Result<(), TestCaseError> {
            let joined = scales.join(",");
            let scales_ok = joined
                .split(',')
                .all(|t| t.trim().parse::<f64>().is_ok_and(|v| limits::FRACTION.contains(v)));
            match s.resolve("estimate", "downtime.toml", &[format!("--scales={joined}")]) {
                Ok(o) => {
                    invariants(&o)?;
                    prop_assert!(scales_ok, "--scales={scales:?} accepted as {:?}", o.run.scales);
                }
                Err(e) => prop_assert!(e.contains("--scales") , "{scales:?}: {e}"),
            }
            match s.resolve("estimate", "downtime.toml", &[format!("--growth={growth}")]) {
                Ok(o) => invariants(&o)?,
                Err(e) => prop_assert!(e.contains("--growth"), "{growth}: {e}"),
            }
            Ok(())
        })?;
    }

    #[test]
    fn every_config_number_resolves_in_range_or_is_refused_at_its_line(
        which in 0..17usize,
        v in prop_oneof![
            any::<f64>(),
            (-10.0f64..10.0),
            prop::sample::select(vec![0.0, 0.001, 0.0009, 1.0, 1e308, 5e-324, 2147483.647, 2147483.648, 31536000.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY]),
        ],
        int in any::<i64>(),
        garbage in "[ -~]{0,12}",
        form in 0..3u8,
        padding in 0..8usize,
    ) {
        thread_local!(static SETUP: Setup = Setup::new());
        let keys = config_keys();
        prop_assert_eq!(keys.len(), 17);
        let (key, q) = keys[which];
        let (value, expected) = match form {
            0 => (toml_literal(v), Some(v).filter(|v| q.contains(*v))),
            1 => (int.to_string(), Some(int as f64).filter(|v| q.contains(*v) && (*v as i64) == int)),
            _ => (garbage.clone(), None),
        };
        SETUP.with(|s| check_key(s, (key, q), &value, expected, padding))?;
    }

    #[test]
    fn signoff_maxima_are_in_range_or_refused_at_their_line(
        v in prop_oneof![any::<f64>(), (-10.0f64..100.0)],
        padding in 0..6usize,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signoffs.toml");
        let text = format!(
            "{}[[signoff]]\npatch = \"a.sql\"\nsha256 = \"x\"\nby = \"A\"\nat = \"2026-01-01T00:00:00Z\"\nreason = \"r\"\nmax-seconds = {}\n",
            "\n".repeat(padding),
            toml_literal(v)
        );
        std::fs::write(&path, text).unwrap();
        match downtime::verdict::signoff::Signoffs::load(&path, dir.path()) {
            Ok(s) => {
                prop_assert!(limits::SECONDS.contains(v));
                prop_assert_eq!(s.entries[0].max_seconds, v);
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(!limits::SECONDS.contains(v), "{v} refused: {e}");
                let at = format!("{}:{}: max-seconds", path.display(), padding + 7);
                prop_assert!(e.starts_with(&at), "{e}");
            }
        }
    }
}

proptest! {
    #![proptest_config(Config { cases: 600, ..Config::default() })]

    #[test]
    fn signoff_max_seconds_flag_is_checked_like_the_others(text in number_text()) {
        let expected = text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| limits::SECONDS.contains(*v));
        let argv = ["downtime", "signoff", "p.sql", "--by", "A", "--reason", "r"];
        let r = Cli::try_parse_from(argv.iter().map(|a| a.to_string()).chain([format!("--max-seconds={text}")]));
        match (r, expected) {
            (Ok(cli), Some(v)) => {
                let Sub::Signoff(a) = cli.command else {
                    panic!("not signoff")
                };
                prop_assert_eq!(a.max_seconds, Some(v));
            }
            (Err(e), None) => {
                prop_assert_eq!(e.exit_code(), 2);
                prop_assert!(e.to_string().contains("--max-seconds"), "{}", e);
            }
            (Ok(_), None) => prop_assert!(false, "--max-seconds={} accepted", text),
            (Err(e), Some(v)) => prop_assert!(false, "--max-seconds={} ({}) refused: {}", text, v, e),
        }
    }
}

#[test]
fn the_default_statement_cap_stays_within_what_postgresql_takes() {
    // Ten times the largest budget would pass PostgreSQL's largest
    // statement_timeout: the default is held to it, not refused.
    let s = Setup::new();
    let o = s
        .resolve("check", "downtime.toml", &["--budget=31536000".into()])
        .unwrap();
    assert_eq!(o.run.statement_cap.as_millis(), 2_147_483_647);
    let o = s
        .resolve("check", "downtime.toml", &["--budget=2".into()])
        .unwrap();
    assert_eq!(o.run.statement_cap, std::time::Duration::from_secs(20));
}
