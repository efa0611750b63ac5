//! Helpers for the integration tests: run the real binary against the real
//! embedded PostgreSQL, each test in its own TMPDIR so leftovers can be seen.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_downtime");

/// A finished command's exit status, stdout and stderr, for a failing
/// assertion's message.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A scratch area: `patches/` for the test's patches and `tmp/` as TMPDIR
/// for the tool, readable by the unprivileged server user.
pub struct Scratch {
    pub root: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let root = tempfile::Builder::new()
            .prefix("downtime-test-")
            .tempdir()
            .expect("scratch dir");
        for d in ["", "patches", "tmp"] {
            let p = root.path().join(d);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        Scratch { root }
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    pub fn patches(&self) -> PathBuf {
        self.root.path().join("patches")
    }

    pub fn tmp(&self) -> PathBuf {
        self.root.path().join("tmp")
    }

    /// Write a file under `patches/`.
    pub fn patch(&self, name: &str, sql: &str) -> PathBuf {
        let p = self.patches().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, sql).unwrap();
        p
    }

    /// Write `patches/baseline.sql` (found automatically by `check`).
    pub fn baseline(&self, sql: &str) {
        std::fs::write(self.patches().join("baseline.sql"), sql).unwrap();
    }

    /// `downtime ARGS` with this scratch's TMPDIR.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("TMPDIR", self.tmp())
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .current_dir(self.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run downtime")
    }

    /// `check --format json` and the parsed report.
    pub fn check_json(&self, extra: &[&str]) -> (i32, Value, String) {
        let mut args = vec!["check", "--format", "json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "no JSON report ({e}); stdout: {} stderr: {stderr}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        (out.status.code().unwrap_or(-1), report, stderr)
    }

    /// Start `downtime ARGS` with its stderr in `stderr.log`, and wait (up to
    /// `within`) until the log shows `needle`.
    pub fn spawn_until(
        &self,
        args: &[&str],
        stdout: Stdio,
        needle: &str,
        within: std::time::Duration,
    ) -> Child {
        let log = self.path().join("stderr.log");
        let child = self
            .command(args)
            .stdout(stdout)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + within;
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(needle)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "`{needle}` never appeared"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child
    }

    /// Wait until the tool's server is running, then `settle` longer.
    pub fn wait_for_server(&self, settle: std::time::Duration) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while processes_mentioning(&self.tmp()).is_empty() {
            assert!(std::time::Instant::now() < deadline, "server never started");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        std::thread::sleep(settle);
    }

    /// Assert that the tool left nothing behind: no temp dir, no server.
    pub fn assert_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(self.tmp())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "left behind in TMPDIR: {left:?}");
        let procs = processes_mentioning(&self.tmp());
        assert!(procs.is_empty(), "processes left running: {procs:?}");
    }
}

/// Command lines of running processes that mention `needle`.
pub fn processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = entry.path().join("cmdline");
        if let Ok(bytes) = std::fs::read(&cmdline) {
            let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
            if text.contains(&needle) {
                found.push(text);
            }
        }
    }
    found
}

/// Every file under `dir` (but `skip`), as text.
pub fn files_under(dir: &Path, skip: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.starts_with(skip) {
            continue;
        }
        if p.is_dir() {
            out.extend(files_under(&p, skip));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

/// The patch with this id in a report.
pub fn patch<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["patches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no patch {id} in {report}"))
}

/// The extra flags a rule fixture folder runs with (its `args` file;
/// `$DIR` is the folder, for a stats file beside the patches).
pub fn fixture_args(dir: &Path) -> Vec<String> {
    let here = dir.to_str().unwrap();
    std::fs::read_to_string(dir.join("args"))
        .map(|a| {
            a.split_whitespace()
                .map(|w| w.replace("$DIR", here))
                .collect()
        })
        .unwrap_or_default()
}

/// Rule ids of a patch's reasons.
pub fn rules(patch: &Value) -> Vec<String> {
    patch["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap().to_string())
        .collect()
}

/// Run SQL with psql on a server the test started itself; returns stdout.
pub fn psql(server: &downtime::staging::embedded::Embedded, db: &str, sql: &str) -> String {
    use downtime::staging::Backend;
    let bin = downtime::staging::embedded::find_bin_dir(None).unwrap();
    let out = Command::new(bin.join("psql"))
        .args(server.client_args(db))
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
