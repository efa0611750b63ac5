//! Every classification rule against its bad/good fixture pair in
//! `tests/fixtures/rules/<id>/`, on the real embedded PostgreSQL: the rule
//! fires on every `bad` patch and on no `good` one.

mod common;

use std::path::{Path, PathBuf};

use common::{rules, Scratch};
use downtime::verdict::{Severity, RULES};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules")
}

fn check_rule(id: &str) {
    let rule = downtime::verdict::rules::rule(id).expect("rule is registered");
    let dir = fixtures().join(id);
    let baseline = fixtures().join("baseline.sql");
    let s = Scratch::new();
    let mut args = vec![
        dir.to_str().unwrap().to_string(),
        "--baseline".into(),
        baseline.to_str().unwrap().to_string(),
        "--keep-going".into(),
    ];
    args.extend(common::fixture_args(&dir));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, report, stderr) = s.check_json(&args);
    let patches = report["patches"].as_array().unwrap();
    let (mut bad, mut good) = (0, 0);
    for p in patches {
        let id_text = p["id"].as_str().unwrap();
        let found = rules(p);
        if id_text.contains("bad") {
            bad += 1;
            assert!(
                found.iter().any(|r| r == id),
                "{id}: {id_text} should trigger it, got {found:?}\n{stderr}\n{p}"
            );
            if rule.severity == Severity::Cold {
                assert_eq!(p["classification"], "cold", "{id}: {id_text}");
            }
        } else {
            good += 1;
            assert!(
                !found.iter().any(|r| r == id),
                "{id}: {id_text} should not trigger it\n{p}"
            );
            assert_eq!(p["status"], "ok", "{id}: {id_text} must apply\n{p}");
        }
    }
    assert!(bad >= 1 && good >= 1, "{id}: needs a bad and a good patch");
    s.assert_clean();
}

macro_rules! rule_tests {
    ($($name:ident => $id:literal),* $(,)?) => {
        $(#[test] fn $name() { check_rule($id); })*

        #[test]
        fn every_rule_has_a_fixture_pair_and_a_test() {
            let tested = [$($id),*];
            for r in RULES {
                assert!(fixtures().join(r.id.as_str()).is_dir(), "no fixtures for {}", r.id);
                assert!(tested.contains(&r.id.as_str()), "no test for {}", r.id);
            }
        }
    };
}

rule_tests! {
    table_rewrite => "table-rewrite",
    blocking_index_build => "blocking-index-build",
    validation_scan => "validation-scan",
    set_not_null_scan => "set-not-null-scan",
    attach_partition_scan => "attach-partition-scan",
    bulk_write => "bulk-write",
    held_lock_work => "held-lock-work",
    long_lock => "long-lock",
    lock_timeout_missing => "lock-timeout-missing",
    measured_blocking => "measured-blocking",
    launchpad_alter_table => "launchpad-alter-table",
    launchpad_trigger => "launchpad-trigger",
    launchpad_references => "launchpad-references",
    invalid_index => "invalid-index",
    predicted_failure => "predicted-failure",
    declared_live_but_cold => "declared-live-but-cold",
    declared_cold_but_live => "declared-cold-but-live",
}

/// `docs/rules/<id>.md` for every rule, from the registry and its fixtures.
/// `DOWNTIME_BLESS=1 cargo test --test rules` rewrites them.
#[test]
fn rule_pages_are_generated_from_registry_and_fixtures() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rules");
    let bless = std::env::var_os("DOWNTIME_BLESS").is_some();
    for r in RULES {
        let dir = fixtures().join(r.id.as_str());
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        let examples: Vec<(String, String)> = files
            .iter()
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(p).unwrap(),
                )
            })
            .collect();
        let page = downtime::cli::rule_page(r, &examples);
        let path = docs.join(format!("{}.md", r.id));
        if bless {
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(&path, &page).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap_or_default(),
            page,
            "{} is stale: run `DOWNTIME_BLESS=1 cargo test --test rules`",
            path.display()
        );
    }
}

#[test]
fn rules_doc_is_generated_from_the_registry() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rules.md"))
        .expect("docs/rules.md");
    assert_eq!(
        doc,
        downtime::cli::rules_markdown(),
        "docs/rules.md is stale: run `downtime rules --markdown > docs/rules.md`"
    );
}
