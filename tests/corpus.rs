//! The labelled acceptance corpus (a copy of the public corpus, baseline
//! scaled to a tenth): every live/cold label matches, and the `fails` patches
//! fail with a clear message at the right line.

mod common;

use std::path::Path;

use common::{patch, Scratch};

fn corpus() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus"))
}

fn labels() -> Vec<(String, String)> {
    std::fs::read_to_string(corpus().join("labels.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut cols = l.split('\t');
            let file = cols.next().unwrap().trim_end_matches(".sql").to_string();
            (file, cols.next().unwrap().to_string())
        })
        .collect()
}

#[test]
fn corpus_labels_match() {
    let s = Scratch::new();
    for entry in std::fs::read_dir(corpus().join("patches")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, s.patches().join(p.file_name().unwrap())).unwrap();
    }
    let baseline = corpus().join("baseline.sql");
    let base = baseline.to_str().unwrap();

    // With every patch present, the psql patch is refused before anything runs.
    let (code, report, _) = s.check_json(&["patches", "--baseline", base]);
    assert_eq!(code, 1);
    let refused = patch(&report, "patch-2209-10-0");
    assert_eq!(refused["status"], "failed");
    assert_eq!(refused["error"]["line"], 1);
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("meta-command"));
    assert_eq!(patch(&report, "patch-2209-01-0")["status"], "skipped");

    // Without it, everything runs in order.
    std::fs::remove_file(s.patches().join("patch-2209-10-0.sql")).unwrap();
    let (code, report, stderr) = s.check_json(&["patches", "--baseline", base, "--keep-going"]);
    assert_eq!(code, 1, "{stderr}");
    let mut checked = 0;
    for (id, expected) in labels() {
        if id == "patch-2209-10-0" {
            continue;
        }
        let p = patch(&report, &id);
        match expected.as_str() {
            "fails" => {
                assert_eq!(p["status"], "failed", "{id}");
                assert_eq!(p["error"]["line"], 3, "{id}: {p}");
                assert_eq!(p["error"]["sqlstate"], "42601", "{id}");
                assert!(p["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("syntax error"));
            }
            class => {
                assert_eq!(p["status"], "ok", "{id}: {p}");
                assert_eq!(p["classification"], class, "{id}: {}", p["reasons"]);
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 13);
    s.assert_clean();
}
