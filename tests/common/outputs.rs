//! Readers of downtime's outputs as the programs that consume them read
//! them: GitHub's runner (workflow commands on stdout and stderr), a
//! CommonMark parser (the pull-request comment), xmllint (JUnit) and
//! headless Chromium (the HTML page).
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A workflow command as GitHub's runner parses it from a line.
#[derive(Debug, Clone)]
pub struct WorkflowCommand {
    pub name: String,
    pub properties: Vec<(String, String)>,
    /// The message, unescaped as the runner unescapes it.
    pub data: String,
    /// The line it was read from.
    pub line: String,
}

impl WorkflowCommand {
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The lines of an output as the runner reads them (`ReadLine`: a line
/// ends at LF, at CR, or at CR LF).
pub fn runner_lines(output: &str) -> Vec<&str> {
    output.split(['\n', '\r']).collect()
}

fn unescape(s: &str, property: bool) -> String {
    let mut out = s.replace("%0D", "\r").replace("%0A", "\n");
    if property {
        out = out.replace("%3A", ":").replace("%2C", ",");
    }
    out.replace("%25", "%")
}

/// Every workflow command in an output, read more eagerly than the runner
/// reads them: any line that starts with `::` after leading white space
/// (the runner trims it), whatever the name, and failing that any `##[`
/// with a `]` after it anywhere in the line (the runner's older form).
pub fn workflow_commands(output: &str) -> Vec<WorkflowCommand> {
    let mut found = Vec::new();
    for line in runner_lines(output) {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("::") {
            let (info, data) = rest.split_once("::").unwrap_or((rest, ""));
            let (name, props) = info.split_once(' ').unwrap_or((info, ""));
            let properties = props
                .split(',')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_string(), unescape(v, true)))
                .collect();
            found.push(WorkflowCommand {
                name: name.to_string(),
                properties,
                data: unescape(data, false),
                line: line.to_string(),
            });
        } else if let Some(at) = line.find("##[") {
            if let Some(end) = line[at..].find(']') {
                let info = &line[at + 3..at + end];
                found.push(WorkflowCommand {
                    name: info.split(' ').next().unwrap_or("").to_string(),
                    properties: Vec::new(),
                    data: line[at + end + 1..].to_string(),
                    line: line.to_string(),
                });
            }
        }
    }
    found
}

/// Characters a terminal acts on or that reorder what it shows: controls
/// (but the line feed), line and paragraph separators, bidi controls.
pub fn terminal_controls(s: &str) -> Vec<char> {
    s.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect()
}

/// Validate JUnit XML with xmllint (Debian's libxml2-utils) against the schema.
pub fn assert_valid_junit(file: &Path) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit.xsd");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(file)
        .output()
        .expect("xmllint is needed for the JUnit schema check: apt-get install libxml2-utils");
    assert!(
        out.status.success(),
        "{} does not validate: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a CommonMark parser (with GitHub's extensions) found in a comment.
#[derive(Debug, Default)]
pub struct MarkdownFacts {
    /// Raw HTML, block and inline, in order.
    pub html: Vec<String>,
    pub images: usize,
    pub links: usize,
    pub headings: usize,
    /// Block quotes, footnotes, math, task lists: nothing the comment writes.
    pub other_markup: Vec<String>,
    /// Per table, the text of each cell of each row, the header first.
    /// (The parser pads a short row and drops cells past the header's:
    /// what is in the cells tells whether a row was split.)
    pub tables: Vec<Vec<Vec<String>>>,
    /// Runs of text (consecutive text events joined), code spans apart.
    pub texts: Vec<String>,
    pub code: Vec<String>,
}

pub fn markdown_facts(md: &str) -> MarkdownFacts {
    use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_MATH
        | Options::ENABLE_GFM;
    let mut f = MarkdownFacts::default();
    let mut text = String::new();
    let mut cell: Option<String> = None;
    for event in Parser::new_ext(md, options) {
        if !matches!(event, Event::Text(_)) && !text.is_empty() {
            f.texts.push(std::mem::take(&mut text));
        }
        match event {
            Event::Text(t) => {
                text.push_str(&t);
                if let Some(c) = cell.as_mut() {
                    c.push_str(&t);
                }
            }
            Event::Code(code) => {
                if let Some(c) = cell.as_mut() {
                    c.push_str(&code);
                }
                f.code.push(code.to_string());
            }
            Event::Html(h) | Event::InlineHtml(h) => f.html.push(h.to_string()),
            Event::Start(Tag::Image { .. }) => f.images += 1,
            Event::Start(Tag::Link { .. }) => f.links += 1,
            Event::Start(Tag::Heading { .. }) => f.headings += 1,
            Event::Start(Tag::Table(_)) => f.tables.push(Vec::new()),
            Event::Start(Tag::TableHead) | Event::Start(Tag::TableRow) => {
                if let Some(t) = f.tables.last_mut() {
                    t.push(Vec::new());
                }
            }
            Event::Start(Tag::TableCell) => cell = Some(String::new()),
            Event::End(TagEnd::TableCell) => {
                let done = cell.take().unwrap_or_default();
                if let Some(row) = f.tables.last_mut().and_then(|t| t.last_mut()) {
                    row.push(done);
                }
            }
            Event::Start(t @ (Tag::BlockQuote(_) | Tag::FootnoteDefinition(_))) => {
                f.other_markup.push(format!("{t:?}"))
            }
            e @ (Event::FootnoteReference(_)
            | Event::InlineMath(_)
            | Event::DisplayMath(_)
            | Event::TaskListMarker(_)) => f.other_markup.push(format!("{e:?}")),
            _ => {}
        }
    }
    if !text.is_empty() {
        f.texts.push(text);
    }
    f
}

/// A mention GitHub would turn into a notification: `@` right before a
/// user name's first character.
pub fn mentions(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(2)
        .enumerate()
        .filter(|(i, w)| {
            w[0] == '@'
                && w[1].is_ascii_alphanumeric()
                && (*i == 0 || !chars[i - 1].is_ascii_alphanumeric())
        })
        .map(|(i, _)| chars[i..chars.len().min(i + 20)].iter().collect())
        .collect()
}

/// The first of `chromium`, `chromium-browser`, `google-chrome` that runs.
pub fn chromium() -> &'static str {
    let candidates = ["chromium", "chromium-browser", "google-chrome"];
    candidates
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| {
            panic!(
                "this test opens HTML in headless Chromium, and none of {} runs here: \
                 install it (apt-get install chromium)",
                candidates.join(", ")
            )
        })
}

/// A TCP listener on 127.0.0.1 that records the first line of every
/// request made to it, until dropped.
pub struct Listener {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    pub fn start() -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, done) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                        let mut buf = [0u8; 1024];
                        let n = conn.read(&mut buf).unwrap_or(0);
                        let head = String::from_utf8_lossy(&buf[..n]);
                        seen.lock().unwrap().push(
                            head.lines()
                                .next()
                                .unwrap_or("(no request line)")
                                .to_string(),
                        );
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        });
        Listener {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Open `page` in headless Chromium, give it time to load what it asks
/// for and run its scripts, and return the DOM it ends with.
pub fn chromium_dom(page: &Path, home: &Path) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
