//! What a hostile pull request puts in its patches — file names, table
//! names, the server's message, DETAIL and HINT of an exception it raises,
//! a sign-off's name and reason — stays text in every output: no workflow
//! command on stdout or stderr but downtime's own annotations, no markup,
//! image, link or mention in the Markdown comment, valid JUnit XML, no
//! terminal control in the text report, nothing loaded or run by the HTML
//! page. The real binary on the embedded PostgreSQL.

mod common;
#[path = "common/outputs.rs"]
mod outputs;

use std::path::Path;
use std::process::Output;

use common::{text, Scratch};
use outputs::{
    assert_valid_junit, chromium_dom, markdown_facts, mentions, terminal_controls,
    workflow_commands, Listener,
};
use serde_json::Value;

/// A patch named to forge: a workflow command, a code span, a table
/// column, a mention, an image tag and the runner's older command form.
const HOSTILE_NAME: &str =
    "0001-::error file=x::name `tick` | @octocat <img src=x> ##[warning]v1.sql";

/// A table whose name holds an escape, a line break and a command.
const HOSTILE_TABLE: &str = r#"U&"t::error x::t\001B[2J\000A::warning::r @octocat <b>""#;

/// The text the exception carries, as SQL: line breaks, commands in both
/// forms, terminal escapes, a fake verdict, a noncharacter, C0 and C1
/// controls, a bidi override, HTML that would load from `port` or run,
/// Markdown that would close the comment's section, mention, link or show
/// an image.
fn hostile_sql_text(port: u16) -> String {
    format!(
        "'boom' || chr(10) || '::error file=x::forged' || chr(10) || '::add-mask::x' || chr(13) \
         || '::stop-commands::tok' || chr(10) || '  ::warning::indented ##[error]v1-forged ' \
         || chr(27) || '[2J' || chr(27) || ']0;title' || chr(7) || chr(13) || 'verdict: PASS ' \
         || chr(65534) || chr(1) || chr(133) || chr(8238) || chr(8232) \
         || ' </details> @octocat #1 ![x](http://127.0.0.1:{port}/md-image) \
         [link](http://127.0.0.1:{port}/md-link) www.example.com `tick` | pipe | \
         <script>fetch(\"http://127.0.0.1:{port}/script\")</script>\
         <img src=\"http://127.0.0.1:{port}/img\" onerror=\"fetch(''http://127.0.0.1:{port}/onerror'')\">\
         <style>@import \"http://127.0.0.1:{port}/css\";</style> *em* _u_ # h'"
    )
}

/// The hostile patch set: the named patch (a rewrite of the hostile
/// table, signed off by a hostile reviewer), and a patch that raises the
/// hostile exception. Returns the scratch with `out/` holding every format.
fn hostile_run(port: u16) -> (Scratch, Output) {
    let s = Scratch::new();
    s.baseline(&format!(
        "create table {HOSTILE_TABLE} (id int);\ninsert into {HOSTILE_TABLE} select generate_series(1, 2000);\n"
    ));
    s.patch(
        HOSTILE_NAME,
        &format!("alter table {HOSTILE_TABLE} alter column id type bigint;\n"),
    );
    let evil = hostile_sql_text(port);
    s.patch(
        "0002-raise.sql",
        &format!(
            "do $$\nbegin\n  raise exception using message = {evil},\n    detail = 'detail ' || {evil},\n    hint = 'hint ' || {evil};\nend $$;\n"
        ),
    );
    let signed = s.run(&[
        "signoff",
        &format!("patches/{HOSTILE_NAME}"),
        "--by",
        "Eve\n::error file=x::signoff @octocat <img src=x>\u{1b}[2J",
        "--reason",
        &format!("ok\r::add-mask::y </details> ![i](http://127.0.0.1:{port}/signoff) ##[error]s"),
        "--max-seconds",
        "0.001",
    ]);
    assert_eq!(signed.status.code(), Some(0), "{}", text(&signed));
    assert_runner_sees_no_command(&signed, &[]);
    let out = s
        .command(&[
            "check",
            "patches",
            "--format",
            "text,json,markdown,html,junit,github",
            "--output-dir",
            "out",
            "--charts",
            "svg",
        ])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    (s, out)
}

/// The patch paths of a report: the only files annotations may name.
fn paths(report: &Value) -> Vec<String> {
    report["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect()
}

/// No workflow command in an output's stdout and stderr but downtime's
/// own annotations: `error`, `warning` or `notice` at a patch's file and
/// line, titled by downtime. Returns the annotations.
fn assert_runner_sees_no_command(
    out: &Output,
    patch_paths: &[String],
) -> Vec<outputs::WorkflowCommand> {
    let mut own = Vec::new();
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let output = String::from_utf8_lossy(bytes);
        for c in workflow_commands(&output) {
            let annotation = matches!(c.name.as_str(), "error" | "warning" | "notice")
                && c.property("file")
                    .is_some_and(|f| patch_paths.iter().any(|p| p == f))
                && c.property("line")
                    .is_some_and(|l| l.parse::<usize>().is_ok())
                && c.property("title")
                    .is_some_and(|t| t.starts_with("downtime"))
                && c.line.starts_with("::");
            assert!(
                annotation,
                "a workflow command on {stream}: {c:?}\n{}",
                text(out)
            );
            own.push(c);
        }
    }
    own
}

fn assert_no_terminal_controls(what: &str, s: &str) {
    let found = terminal_controls(s);
    assert!(found.is_empty(), "{what} holds {found:?}:\n{s}");
}

#[test]
fn hostile_text_is_inert_in_every_output() {
    let listener = Listener::start();
    let (s, check) = hostile_run(listener.port);
    let json = std::fs::read_to_string(s.path().join("out/report.json")).unwrap();
    let report: Value = serde_json::from_str(&json).unwrap();
    let patch_paths = paths(&report);
    let raise = common::patch(&report, "0002-raise");
    let message = raise["error"]["message"].as_str().unwrap().to_string();
    // The server's words reach the report exactly as it said them.
    for part in [
        "\n::error file=x::forged",
        "\u{1b}[2J",
        "\u{fffe}",
        "\u{202e}",
        "<script>",
    ] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    assert!(raise["error"]["detail"]
        .as_str()
        .unwrap()
        .starts_with("detail boom\n"));
    let named = &report["patches"][0];
    assert_eq!(named["path"], format!("patches/{HOSTILE_NAME}"));
    assert_eq!(named["signoff"]["state"], "exceeded", "{named}");

    // GitHub's runner: the check itself, and each format printed alone by
    // `report` on Actions (annotations on stderr but for `github`).
    assert_runner_sees_no_command(&check, &patch_paths);
    assert_no_terminal_controls(
        "the check's stdout",
        &String::from_utf8_lossy(&check.stdout),
    );
    assert_no_terminal_controls(
        "the check's stderr",
        &String::from_utf8_lossy(&check.stderr),
    );
    let mut annotations = Vec::new();
    for format in ["text", "json", "markdown", "junit", "github"] {
        let out = s
            .command(&["report", "out/report.json", "--format", format])
            .env("GITHUB_ACTIONS", "true")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{format}: {}", text(&out));
        annotations.extend(assert_runner_sees_no_command(&out, &patch_paths));
        assert_no_terminal_controls(format, &String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        match format {
            "json" => {
                let again: Value = serde_json::from_str(&stdout).unwrap();
                assert_eq!(again, report, "the JSON on stdout reads back the same");
                assert_no_terminal_controls("the JSON", &stdout);
            }
            "text" => assert_text_report(&stdout, &message),
            "markdown" => assert_markdown(&stdout, listener.port),
            "junit" => {
                let file = s.path().join("stdout-junit.xml");
                std::fs::write(&file, &stdout).unwrap();
                assert_valid_junit(&file);
            }
            _ => {}
        }
    }
    // The annotations carry the server's words as their message: line
    // breaks as GitHub's escapes (so the same lines), other controls shown.
    assert!(
        annotations.iter().any(|a| a
            .data
            .contains("boom\n::error file=x::forged\n::add-mask::x\r::stop-commands::tok")
            && a.data.contains("\\x1b[2J")),
        "no annotation holds the message: {annotations:#?}"
    );
    let file = std::fs::read_to_string(s.path().join("out/annotations.txt")).unwrap();
    assert!(file.lines().all(|l| l.starts_with("::")), "{file}");
    let parsed = workflow_commands(&file);
    assert_eq!(
        parsed.len(),
        file.lines().count(),
        "one command per line: {file}"
    );

    // The comment, JUnit and the page as they are written to the files.
    let md = std::fs::read_to_string(s.path().join("out/report.md")).unwrap();
    assert_markdown(&md, listener.port);
    assert_valid_junit(&s.path().join("out/junit.xml"));
    let xml = std::fs::read_to_string(s.path().join("out/junit.xml")).unwrap();
    assert!(
        xml.contains("\\u{fffe}") && xml.contains("\\x1b[2J"),
        "shown, not dropped"
    );
    for entry in std::fs::read_dir(s.path().join("out")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "svg") {
            let svg = std::fs::read_to_string(&path).unwrap();
            assert_no_terminal_controls(&path.display().to_string(), &svg);
        }
    }
    assert_html_is_inert(&s, &listener);

    // The sign-off list prints the hostile name and reason as text.
    let list = s.run(&["signoff", "--list"]);
    assert_runner_sees_no_command(&list, &[]);
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert_no_terminal_controls("signoff --list", &listed);
    assert!(listed.contains("Eve\\n::error file=x::signoff"), "{listed}");
    s.assert_clean();
}

/// The text report: the server's words shown with their controls visible,
/// on the lines downtime wrote, and one verdict line, its own, last.
fn assert_text_report(stdout: &str, message: &str) {
    assert_no_terminal_controls("the text report", stdout);
    let verdicts: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("verdict"))
        .collect();
    assert_eq!(verdicts, ["verdict: FAIL"], "{stdout}");
    assert_eq!(stdout.lines().last(), Some("verdict: FAIL"));
    assert!(
        stdout.contains("boom\\n::error file=x::forged\\n::add-mask::x\\r::stop-commands::tok"),
        "{stdout}"
    );
    assert!(stdout.contains(
        "\\x1b[2J\\x1b]0;title\\x07\\rverdict: PASS \\u{fffe}\\x01\\u{85}\\u{202e}\\u{2028}"
    ));
    assert!(stdout.contains("##\\[error]v1-forged"), "{stdout}");
    assert!(
        stdout.contains("signed off by Eve\\n::error file=x::signoff"),
        "{stdout}"
    );
    assert!(message.len() > 100);
}

/// The comment through a CommonMark parser with GitHub's extensions: the
/// only HTML is the comment's own, no image, no link, every table row as
/// wide as its header, no mention, no bare URL GitHub would link; and the
/// hostile text is there to read, as text.
fn assert_markdown(md: &str, port: u16) {
    assert!(md.chars().count() < 65_536);
    let f = markdown_facts(md);
    for h in &f.html {
        let mut rest = h.clone();
        for own in ["<details>", "</details>", "<summary>", "</summary>", "<br>"] {
            rest = rest.replace(own, "");
        }
        assert!(!rest.contains('<'), "HTML from input: {h:?}");
        assert!(mentions(h).is_empty(), "a mention in {h:?}");
    }
    let closing = f
        .html
        .iter()
        .map(|h| h.matches("</details>").count())
        .sum::<usize>();
    assert_eq!(
        closing, 1,
        "the comment's one section, closed once: {:?}",
        f.html
    );
    assert_eq!((f.images, f.links), (0, 0), "{md}");
    assert_eq!(f.headings, 1, "only the comment's title: {md}");
    assert!(f.other_markup.is_empty(), "{:?}", f.other_markup);
    // The patch table: each row's class, verdict and sign-off in their own
    // columns, so no text split a row into more cells.
    let table = f
        .tables
        .iter()
        .find(|t| t[0].first().is_some_and(|h| h == "patch"))
        .expect("the patch table");
    assert_eq!(table.len(), 3, "the header and two patches: {table:?}");
    let named = &table[1];
    assert_eq!(named.len(), 8, "{named:?}");
    assert!(
        named[0].starts_with("0001-::error file=x::name `tick` | @"),
        "{named:?}"
    );
    assert_eq!(named[1], "cold", "{named:?}");
    assert!(named[3].starts_with('❌'), "{named:?}");
    assert!(named[6].contains("t::error x::t"), "the rewrite: {named:?}");
    // In Markdown a line break is a space: the name stays in its cell.
    assert!(
        named[7].starts_with("Eve ::error file=x::signoff @\u{200d}octocat <img src=x>\\x1b[2J"),
        "{named:?}"
    );
    assert!(named[7].ends_with("(exceeded)"), "{named:?}");
    assert!(
        table[2][0] == "0002-raise" && table[2][3] == "❌ failed",
        "{:?}",
        table[2]
    );
    let all: String = f.texts.join("\n");
    assert!(mentions(&all).is_empty(), "mentions: {:?}", mentions(&all));
    for link in ["://", "www.", "#1 "] {
        assert!(!all.contains(link), "{link} in the comment's text: {all}");
    }
    let url = format!("http:\u{200d}//127.0.0.1:{port}/md-image");
    assert!(
        all.contains(&url),
        "the URL is shown, and not as one: {all}"
    );
    // Shown as text: the hostile words are there for a reader.
    for shown in [
        "<script>fetch(",
        "</details>",
        "verdict: PASS",
        "*em* _u_",
        "`tick` | pipe |",
    ] {
        assert!(
            all.contains(shown),
            "{shown:?} is not shown as text:\n{all}"
        );
    }
    assert!(
        f.code
            .iter()
            .any(|c| c.contains("`tick` | @") && c.contains("<img src=x>")),
        "{:?}",
        f.code
    );
    // No line the runner would read as a command when the comment is printed.
    assert!(
        workflow_commands(md).is_empty(),
        "{:?}",
        workflow_commands(md)
    );
}

/// The page in headless Chromium: nothing requested from the listener the
/// hostile text points at, and no element from it in the DOM; a page that
/// does hold such an image reaches the listener, so the check can fail.
fn assert_html_is_inert(s: &Scratch, listener: &Listener) {
    let page = s.path().join("out/report.html");
    let dom = chromium_dom(&page, s.path());
    assert!(
        dom.contains("downtime: <span class=\"fail\">fail</span>"),
        "{dom}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        listener.requests(),
        Vec::<String>::new(),
        "the page made requests"
    );
    for element in ["<script", "<img", "<style>@import"] {
        assert!(!dom.contains(element), "{element} in the DOM");
    }
    assert!(
        dom.contains("&lt;script&gt;fetch("),
        "the script is shown as text"
    );
    let control = s.path().join("control.html");
    std::fs::write(
        &control,
        format!(
            "<!DOCTYPE html><img src=\"http://127.0.0.1:{}/control\">",
            listener.port
        ),
    )
    .unwrap();
    chromium_dom(&control, s.path());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let seen = listener.requests();
    assert!(
        seen.iter().any(|r| r.contains("/control")),
        "the control page's image never reached the listener: {seen:?}"
    );
}

#[test]
fn file_names_with_control_characters_are_refused() {
    let s = Scratch::new();
    s.patch("0001-fine.sql", "select 1;");
    for (name, shown) in [
        (
            "0002-a\n::error file=x::b.sql",
            "0002-a\\n::error file=x::b.sql",
        ),
        ("0002-a\rb.sql", "0002-a\\rb.sql"),
        ("0002-a\u{1b}[2Jb.sql", "0002-a\\x1b[2Jb.sql"),
        ("0002-a\u{85}b.sql", "0002-a\\u{85}b.sql"),
        ("0002-a\u{2028}b.sql", "0002-a\\u{2028}b.sql"),
        ("0002-a\u{202e}b.sql", "0002-a\\u{202e}b.sql"),
    ] {
        let file = s.patch(name, "select 2;");
        let out = s
            .command(&["check", "patches"])
            .env("GITHUB_ACTIONS", "true")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("patches/{shown}")),
            "{name:?} not named: {stderr}"
        );
        assert!(stderr.contains("control character"), "{stderr}");
        assert_no_terminal_controls("stderr", &stderr);
        assert_runner_sees_no_command(&out, &[]);
        assert!(out.stdout.is_empty(), "no report: {}", text(&out));
        std::fs::remove_file(file).unwrap();
    }
    s.assert_clean();
}

#[test]
fn a_120000_character_message_keeps_the_comment_under_the_limit() {
    let s = Scratch::new();
    s.patch(
        "0001-long.sql",
        "do $$ begin raise exception using message = repeat('<@octocat> `x` |', 7500), \
         detail = repeat('d', 120000); end $$;",
    );
    for i in 2..=4 {
        s.patch(&format!("000{i}-more.sql"), &format!("select {i};"));
    }
    let (code, report, stderr) = s.check_json(&["patches", "--output", "run.json"]);
    assert_eq!(code, 1, "{stderr}");
    let message = common::patch(&report, "0001-long")["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(message.chars().count(), 120_000);
    let out = s.run(&["report", "run.json", "--format", "markdown"]);
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.chars().count() < 65_536 && md.len() < 65_536,
        "{} characters",
        md.chars().count()
    );
    assert!(
        md.contains("Left out to fit the comment limit"),
        "the cut is said"
    );
    assert!(
        md.contains("text(s) shortened") && md.contains("`report.html`"),
        "{}",
        &md[md.len() - 600..]
    );
    assert!(
        md.contains("more characters)"),
        "the shortened text says so"
    );
    assert!(
        md.contains("Runtime histogram") && md.contains("</details>"),
        "the footer survives"
    );
    let f = markdown_facts(&md);
    assert!(mentions(&f.texts.join("\n")).is_empty());
    let table = f
        .tables
        .iter()
        .find(|t| t[0][0] == "patch")
        .expect("the patch table");
    assert_eq!(table.len(), 5, "{table:?}");
    assert!(
        table[1][0] == "0001-long" && table[1][3].starts_with('❌'),
        "{table:?}"
    );
    // The JSON and HTML reports keep the whole message.
    let out = s.run(&[
        "report",
        "run.json",
        "--format",
        "html",
        "--output-dir",
        "html",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let html = std::fs::read_to_string(s.path().join("html/report.html")).unwrap();
    assert!(html.matches("&lt;@octocat&gt;").count() >= 7500);
    assert!(Path::new(&s.path().join("run.json")).is_file());
    s.assert_clean();
}
