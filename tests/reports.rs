//! Every report format, rendered from a checked-in JSON report and from a
//! real run: JUnit against the schema, HTML in headless Chromium, Markdown
//! under the comment limit, GitHub annotations.

mod common;
#[path = "common/outputs.rs"]
mod outputs;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Scratch;
use outputs::assert_valid_junit;

const FORMATS: [&str; 6] = ["text", "json", "markdown", "html", "junit", "github"];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report.json")
}

fn render(s: &Scratch, report: &Path, format: &str) -> (i32, String) {
    let out = s.run(&["report", report.to_str().unwrap(), "--format", format]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn every_format_renders_from_the_fixture() {
    let s = Scratch::new();
    let fx = fixture();
    for format in FORMATS {
        let (code, text) = render(&s, &fx, format);
        // The fixture's run failed: re-rendering keeps its verdict.
        assert_eq!(code, 1, "{format}");
        if format == "html" {
            // A page is written to the output directory, not to stdout.
            assert!(text.is_empty());
            assert!(s.path().join("reports/report.html").is_file());
        } else {
            assert!(!text.is_empty(), "{format}");
        }
    }
    let (_, md) = render(&s, &fx, "markdown");
    assert!(md.starts_with("## downtime: ❌ fail"), "{md}");
    assert!(md.contains("**Failures**"));
    assert!(md.contains("| patch | class | seconds / budget |"));
    assert!(
        md.find("**Failures**") < md.find("| patch |"),
        "failures come first"
    );
    assert!(md.contains("Runtime histogram") && md.contains("| 0.01 – 0.1 s |"));
    assert!(md.contains("`fsync` | on"));

    let html = std::fs::read_to_string(s.path().join("reports/report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg") && html.contains("chart-patches"));
    // Self-contained: no scripts, nothing loaded from elsewhere (the SVG
    // namespace URI is a name, not a load).
    assert!(!html.contains("<script"));
    for load in ["src=", "href=", "url(", "@import"] {
        assert!(!html.contains(load), "{load} in the HTML report");
    }

    let (_, gh) = render(&s, &fx, "github");
    assert!(gh.lines().all(|l| l.starts_with("::")), "{gh}");
    assert!(
        gh.contains("::error file=patches/0004-typo.sql,line=3,"),
        "{gh}"
    );
    assert!(
        gh.contains("::error file=patches/0002-index.sql,line=2,"),
        "{gh}"
    );
    assert!(
        gh.contains(
            "::notice file=patches/0003-rewrite.sql,line=1,title=downtime cold%3A table-rewrite::"
        ),
        "{gh}"
    );

    let junit = s.path().join("junit.xml");
    let (_, xml) = render(&s, &fx, "junit");
    std::fs::write(&junit, &xml).unwrap();
    assert_valid_junit(&junit);
    assert_eq!(xml.matches("<testcase ").count(), 5);
    assert_eq!(xml.matches("<failure ").count(), 3);
    assert_eq!(xml.matches("<skipped ").count(), 1);
    assert!(xml.contains("type=\"over-budget\""));
    assert!(xml.contains("declared-live-but-cold"));

    let (_, json) = render(&s, &fx, "json");
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fx).unwrap()).unwrap();
    let again: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(original, again, "JSON re-renders unchanged");
}

#[test]
fn bad_report_files_are_input_errors() {
    let s = Scratch::new();
    std::fs::write(
        s.path().join("x.json"),
        "{\"schema_version\": 1,\n\"oops\": ",
    )
    .unwrap();
    let out = s.run(&["report", "x.json", "--format", "markdown"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("x.json:2"));
    let out = s.run(&["report", "missing.json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_real_run_writes_every_format_and_chart() {
    let s = Scratch::new();
    s.baseline("create table t (id int, v int);\ninsert into t select g, g from generate_series(1, 20000) g;\n");
    s.patch(
        "0001-live.sql",
        "set lock_timeout = '1s';\nalter table t add column w int;",
    );
    s.patch(
        "0002-cold.sql",
        "create index t_v on t (v);\nalter table t alter column v type bigint;",
    );
    let out = s.run(&[
        "check",
        "patches",
        "--format",
        "text,json,markdown,html,junit,github",
        "--output-dir",
        "out",
        "--charts",
        "png,svg",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("verdict: PASS"),
        "text goes to stdout: {stdout}"
    );
    let dir = s.path().join("out");
    for f in [
        "report.json",
        "report.md",
        "report.html",
        "junit.xml",
        "annotations.txt",
        "patches.png",
        "patches.svg",
    ] {
        let p = dir.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p).unwrap().len() > 0,
            "{f}"
        );
    }
    assert!(dir.join("locks-0002-cold.png").is_file());
    assert!(dir.join("statements-0002-cold.svg").is_file());
    assert_valid_junit(&dir.join("junit.xml"));
    let png = png_pixels(&dir.join("patches.png"));
    assert!(
        count_near(&png, [230, 126, 34]) > 500,
        "the cold bar is drawn"
    );
    assert!(
        count_near(&png, [46, 134, 193]) > 500,
        "the live bar is drawn"
    );
    // The saved JSON re-renders to the same Markdown.
    let again = s.run(&["report", "out/report.json", "--format", "markdown"]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        std::fs::read_to_string(dir.join("report.md")).unwrap()
    );
    s.assert_clean();
}

#[test]
fn github_annotations_appear_on_actions_unless_disabled() {
    let s = Scratch::new();
    s.patch("0001-slow.sql", "select 1;\nselect pg_sleep(0.2);");
    let out = s
        .command(&["check", "patches", "--budget", "0.1"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("::error file=patches/0001-slow.sql,line=1,"),
        "{stderr}"
    );
    let out = s
        .command(&["check", "patches", "--budget", "0.1", "--no-annotations"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("::error"));
}

#[test]
fn markdown_for_200_patches_fits_in_a_comment() {
    let s = Scratch::new();
    s.baseline("create table t (id int, v int);\ninsert into t select g, g from generate_series(1, 500) g;\n");
    for i in 1..=200 {
        s.patch(
            &format!("{i:04}-step.sql"),
            &format!(
                "-- step {i}\nalter table t add column c{i} int default {i};\ncreate index t_c{i}_with_a_long_descriptive_name on t (c{i}, v, id);\n"
            ),
        );
    }
    let (code, report, stderr) = s.check_json(&["patches", "--output", "run.json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["patches"].as_array().unwrap().len(), 200);
    let (_, md) = render(&s, &s.path().join("run.json"), "markdown");
    assert!(
        md.chars().count() < 65_000,
        "{} characters",
        md.chars().count()
    );
    assert!(md.contains("more patch(es) not shown"), "the cut is said");
    assert!(
        md.contains("Runtime histogram"),
        "the footer survives the cut"
    );
    s.assert_clean();
}

#[test]
fn html_report_opens_in_headless_chromium_and_shows_the_bar_chart() {
    let candidates = ["chromium", "chromium-browser", "google-chrome"];
    let chromium = candidates
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| {
            panic!(
                "this test opens the HTML report in headless Chromium, and none of {} runs \
                 here: install it (apt-get install chromium)",
                candidates.join(", ")
            )
        });
    let s = Scratch::new();
    let html = s.path().join("report.html");
    let out = s.run(&[
        "report",
        fixture().to_str().unwrap(),
        "--format",
        "html",
        "--output-dir",
        s.path().to_str().unwrap(),
    ]);
    assert!(html.is_file(), "{}", String::from_utf8_lossy(&out.stderr));
    let shot = s.path().join("shot.png");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,900",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .env("HOME", s.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ERR_FILE_NOT_FOUND") && !stderr.contains("Uncaught"),
        "{stderr}"
    );
    let img = png_pixels(&shot);
    // The bars of the fixture: one live patch (blue); the others fail (red).
    assert!(
        count_near(&img, [46, 134, 193]) > 300,
        "no live bar in the screenshot"
    );
    assert!(
        count_near(&img, [192, 57, 43]) > 300,
        "no failing bar in the screenshot"
    );
}

/// RGB pixels of a PNG.
fn png_pixels(path: &Path) -> Vec<[u8; 3]> {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(channels)
        .map(|c| [c[0], c[1], c[2]])
        .collect()
}

fn count_near(pixels: &[[u8; 3]], rgb: [u8; 3]) -> usize {
    pixels
        .iter()
        .filter(|p| p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 6))
        .count()
}
