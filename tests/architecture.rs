//! The shape of the code, checked: the pipeline's modules depend only on the
//! ones before them (no import circles, at most a few arrows back up), and no
//! source file or function grows past what a reader takes in at once.
//! Reads `src/` as text; needs no server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules in pipeline order; a module may use the ones on
/// its own level and before it. The ground floor comes first.
const LAYERS: &[&[&str]] = &[
    &["cancel", "time", "ui", "rule_id", "escape"],
    &["error"],
    &["limits", "fsutil"],
    &["pg"],
    &["patch"],
    &["ledger"],
    &["staging"],
    &["measure"],
    &["outcome"],
    &["run"],
    &["estimate"],
    &["verdict"],
    &["report"],
    &["check"],
    &["config"],
    &["cli"],
];

const MAX_BACK_ARROWS: usize = 4;
const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 120;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every source file of the library with its module path (`verdict::rules`).
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            out.insert(parts.join("::"), std::fs::read_to_string(&path).unwrap());
        }
    }
    let mut out = BTreeMap::new();
    walk(&src(), &src(), &mut out);
    out
}

/// The code of a file without comments and without its unit tests.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The longest known module a path names.
fn resolve(path: &str, known: &BTreeSet<String>) -> Option<String> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len())
        .rev()
        .map(|n| segs[..n].join("::"))
        .find(|m| known.contains(m))
}

/// The paths after `crate::` in the code, with grouped imports expanded one level.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + 7..];
        let end = rest.find(|c: char| !ident(c)).unwrap_or(rest.len());
        let base = rest[..end].trim_end_matches(':').to_string();
        if rest[end..].starts_with('{') && rest[..end].ends_with("::") {
            let group = &rest[end + 1..rest[end..].find('}').map_or(rest.len(), |j| end + j)];
            for item in group.split(',') {
                let item = item.trim().split(|c: char| !ident(c)).next().unwrap_or("");
                if !item.is_empty() && item != "self" {
                    out.push(format!("{base}::{item}"));
                }
            }
        }
        out.push(base);
    }
    out
}

/// File-level dependencies: module → modules it uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in &mods {
        let code = code(text);
        let mut targets = crate_paths(&code);
        let parent: Vec<&str> = m.split("::").collect();
        for (i, _) in code.match_indices("super::") {
            let rest = &code[i + 7..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let mut p: Vec<&str> = parent[..parent.len().saturating_sub(1)].to_vec();
            p.push(&rest[..end]);
            targets.push(p.join("::"));
        }
        let deps = edges.entry(m.clone()).or_default();
        for t in targets {
            if let Some(r) = resolve(&t, &known) {
                if &r != m && !m.starts_with(&format!("{r}::")) && !r.starts_with(&format!("{m}::"))
                {
                    deps.insert(r);
                }
            }
        }
    }
    edges
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

fn layer(m: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&top(m)))
        .unwrap_or_else(|| panic!("module {m} is in no layer of tests/architecture.rs"))
}

/// Strongly connected components with more than one member.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Reachability closure is enough at this size.
    let nodes: Vec<&String> = edges.keys().collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for d in edges.get(&n).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for n in &nodes {
        let comp: Vec<String> = nodes
            .iter()
            .filter(|o| reaches[*n].contains(**o) && reaches[**o].contains(*n))
            .map(|o| (*o).clone())
            .collect();
        if comp.len() > 1 && !out.contains(&comp) {
            out.push(comp);
        }
    }
    out
}

#[test]
fn no_import_circles_between_source_files() {
    let edges = graph();
    assert!(edges.len() > 40, "too few modules found: {}", edges.len());
    let found = cycles(&edges);
    assert!(found.is_empty(), "import circles: {found:?}");
}

#[test]
fn no_import_circles_between_top_level_modules() {
    let mut top_edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, deps) in graph() {
        let entry = top_edges.entry(top(&m).to_string()).or_default();
        entry.extend(
            deps.iter()
                .map(|d| top(d).to_string())
                .filter(|d| d != top(&m)),
        );
    }
    let found = cycles(&top_edges);
    assert!(
        found.is_empty(),
        "circles between top-level modules: {found:?}"
    );
}

#[test]
fn dependencies_point_down_the_pipeline() {
    let mut back = Vec::new();
    for (m, deps) in graph() {
        for d in deps {
            if layer(&d) > layer(&m) {
                back.push(format!("{m} -> {d}"));
            }
        }
    }
    assert!(
        back.len() <= MAX_BACK_ARROWS,
        "{} arrows run back up the pipeline: {back:#?}",
        back.len()
    );
}

#[test]
fn the_checks_see_a_known_circle_and_a_back_arrow() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.insert("a".into(), ["b".to_string()].into());
    edges.insert("b".into(), ["a".to_string()].into());
    edges.insert("c".into(), BTreeSet::new());
    assert_eq!(cycles(&edges), vec![vec!["a".to_string(), "b".to_string()]]);
    assert!(layer("report::html") > layer("verdict::rules"));
    let paths = crate_paths("use crate::verdict::{self, rules::Reason, Policy};");
    assert!(
        paths.contains(&"verdict::rules::Reason".to_string()),
        "{paths:?}"
    );
    assert!(paths.contains(&"verdict::Policy".to_string()), "{paths:?}");
}

/// Functions longer than `MAX_FN_LINES`: (file, name, lines).
fn long_functions(path: &str, text: &str) -> Vec<(String, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let Some(at) = t.find("fn ") else { continue };
        let head = &t[..at];
        let is_fn = head.split_whitespace().all(|w| {
            matches!(
                w,
                "pub" | "pub(crate)" | "pub(super)" | "async" | "const" | "unsafe"
            )
        });
        if !is_fn {
            continue;
        }
        let name: String = t[at + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut started) = (0i64, false);
        for (j, l) in lines.iter().enumerate().skip(i) {
            let mut in_str = false;
            let mut prev = ' ';
            for c in l.chars() {
                match c {
                    '"' if prev != '\\' => in_str = !in_str,
                    '{' if !in_str => {
                        depth += 1;
                        started = true;
                    }
                    '}' if !in_str => depth -= 1,
                    _ => {}
                }
                prev = c;
            }
            if !started && l.trim_end().ends_with(';') {
                break;
            }
            if started && depth <= 0 {
                if j - i + 1 > MAX_FN_LINES {
                    out.push((path.to_string(), name.clone(), j - i + 1));
                }
                break;
            }
        }
    }
    out
}

#[test]
fn files_and_functions_stay_readable() {
    let mut long_files = Vec::new();
    let mut long_fns = Vec::new();
    for (m, text) in modules() {
        let n = text.lines().count();
        if n > MAX_FILE_LINES {
            long_files.push(format!("{m}: {n} lines"));
        }
        long_fns.extend(long_functions(&m, &text));
    }
    assert!(
        long_files.is_empty(),
        "files over {MAX_FILE_LINES} lines: {long_files:?}"
    );
    assert!(
        long_fns.is_empty(),
        "functions over {MAX_FN_LINES} lines: {long_fns:?}"
    );
    let sample = format!(
        "fn big() {{\n{}}}\n",
        "    let x = 1;\n".repeat(MAX_FN_LINES)
    );
    assert_eq!(long_functions("sample", &sample).len(), 1);
}
