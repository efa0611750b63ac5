//! The Docker backend against a real Docker engine and a real PostgreSQL
//! container from the locally built image (tests/docker/build-image.sh).
//!
//! The tests that need the engine and the image fail, saying what is
//! missing and how to provide it, when no engine answers or the image is not
//! there; `.ci/run` builds the image first.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::{patch, rules, Scratch};
use downtime::staging::docker;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// The image the tests run (built by tests/docker/build-image.sh).
const IMAGE: &str = "downtime-test/postgres:15";

/// One Docker test at a time: timings are compared, and the machine is small.
static SERIAL: Mutex<()> = Mutex::new(());

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Fails `test`, saying what is missing and how to provide it, unless an
/// engine answers and has the test image.
fn require_docker(test: &str) {
    let rt = runtime();
    let engine = rt.block_on(docker::engine()).unwrap_or_else(|e| {
        panic!(
            "{test} needs a Docker engine and the image {IMAGE} (bash \
             tests/docker/build-image.sh {IMAGE}), and no engine answers: {e}"
        )
    });
    if let Err(e) = rt.block_on(engine.inspect_image(IMAGE)) {
        panic!(
            "{test} needs the image {IMAGE}, and the engine does not have it ({e}): build it \
             with `bash tests/docker/build-image.sh {IMAGE}`"
        );
    }
}

/// Containers started by the downtime process `pid`.
fn containers_of(pid: u32) -> Vec<docker::Leftover> {
    let rt = runtime();
    let engine = rt.block_on(docker::engine()).unwrap();
    rt.block_on(docker::leftovers(&engine))
        .unwrap()
        .into_iter()
        .filter(|c| c.pid == Some(pid as i32))
        .collect()
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Run `downtime` to the end and return its output and process id.
fn run(s: &Scratch, args: &[&str]) -> (std::process::Output, u32) {
    let child = s
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn no_engine_is_an_infrastructure_error_that_says_what_to_do() {
    let s = Scratch::new();
    s.patch("0001-t.sql", "create table t (id int);\n");
    let out = s
        .command(&["check", "--backend", "docker", "--no-history"])
        .env(
            "DOCKER_HOST",
            format!("unix://{}/no.sock", s.path().display()),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no Docker engine answers"), "{stderr}");
    assert!(stderr.contains("--backend local"), "{stderr}");
    s.assert_clean();
}

#[test]
fn an_image_for_the_local_backend_is_a_usage_error() {
    let s = Scratch::new();
    s.patch("0001-t.sql", "create table t (id int);\n");
    let out = s.run(&["check", "--backend", "local", "--pg-version", "16"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--backend docker"));
}

/// The same patches on the local and the Docker backend: the same
/// classifications and rules, and timings of the same order.
#[test]
fn local_and_docker_backends_agree() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    require_docker("local_and_docker_backends_agree");
    let s = Scratch::new();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("patches"),
        &s.patches(),
    );
    let common = [
        "check",
        "--format",
        "json",
        "--no-history",
        "--no-cache",
        "--runs",
        "3",
        "-q",
    ];
    let (local, _) = run(&s, &common);
    assert_eq!(
        local.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&local.stderr)
    );
    // The Docker run is chosen in downtime.toml, as a project would.
    std::fs::write(
        s.path().join("downtime.toml"),
        format!("[staging]\nbackend = \"docker\"\nimage = \"{IMAGE}\"\n"),
    )
    .unwrap();
    let (dock, pid) = run(&s, &common);
    assert_eq!(
        dock.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&dock.stderr)
    );
    let (local, dock) = (json(&local), json(&dock));
    assert_eq!(local["postgres"]["backend"], "embedded");
    assert_eq!(dock["postgres"]["backend"], "docker");
    assert_eq!(dock["postgres"]["image"]["reference"], IMAGE);
    assert!(
        dock["postgres"]["image"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("sha256:")),
        "{}",
        dock["postgres"]
    );
    assert!(local["postgres"].get("image").is_none());
    assert_eq!(
        local["postgres"]["settings"]["fsync"],
        dock["postgres"]["settings"]["fsync"]
    );

    let ids: Vec<&str> = local["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 7);
    let mut ratios = Vec::new();
    for id in &ids {
        let (l, d) = (patch(&local, id), patch(&dock, id));
        assert_eq!(l["classification"], d["classification"], "{id}");
        assert_eq!(l["status"], d["status"], "{id}");
        assert_eq!(rules(l), rules(d), "{id}");
        let (lt, dt) = (
            l["seconds"].as_f64().unwrap(),
            d["seconds"].as_f64().unwrap(),
        );
        // Only patches long enough for the comparison to mean something.
        if lt >= 0.05 {
            ratios.push((id.to_string(), dt / lt));
        }
    }
    eprintln!("docker/local per patch (medians of 3 runs): {ratios:.2?}");
    assert!(ratios.len() >= 3, "{ratios:?}");
    for (id, r) in &ratios {
        assert!((0.5..=2.0).contains(r), "{id}: docker/local = {r:.2}");
    }
    let total = dock["total_seconds"].as_f64().unwrap() / local["total_seconds"].as_f64().unwrap();
    eprintln!("docker/local in total: {total:.2}");
    assert!(
        (0.5..=2.0).contains(&total),
        "total docker/local = {total:.2}"
    );
    assert!(containers_of(pid).is_empty(), "container left behind");
}

#[test]
fn a_missing_image_names_itself_and_how_to_get_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    require_docker("a_missing_image_names_itself_and_how_to_get_it");
    let s = Scratch::new();
    s.patch("0001-t.sql", "create table t (id int);\n");
    let missing = "downtime-test/no-such-image:0";
    let (out, pid) = run(&s, &["check", "--image", missing, "--no-history"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("image {missing}")), "{stderr}");
    assert!(stderr.contains("docker load"), "{stderr}");
    assert!(stderr.contains("build-image.sh"), "{stderr}");
    assert!(containers_of(pid).is_empty());
}

#[test]
fn a_container_that_exits_at_startup_shows_its_log() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    require_docker("a_container_that_exits_at_startup_shows_its_log");
    let s = Scratch::new();
    s.patch("0001-t.sql", "create table t (id int);\n");
    std::fs::write(s.path().join("bad.conf"), "shared_buffers = plenty\n").unwrap();
    let (out, pid) = run(
        &s,
        &[
            "check",
            "--backend",
            "docker",
            "--image",
            IMAGE,
            "--pg-conf",
            "bad.conf",
            "--no-history",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("exited during startup"), "{stderr}");
    // The server's own complaint, from the container's log.
    assert!(
        stderr.contains("invalid value for parameter \"shared_buffers\""),
        "{stderr}"
    );
    assert!(containers_of(pid).is_empty(), "container left behind");
}

#[test]
fn cold_cache_runs_restart_the_container() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    require_docker("cold_cache_runs_restart_the_container");
    let s = Scratch::new();
    s.baseline("create table t as select g as id from generate_series(1, 10000) g;\n");
    s.patch("0001-idx.sql", "create index t_id on t (id);\n");
    let (out, pid) = run(
        &s,
        &[
            "check",
            "--image",
            IMAGE,
            "--format",
            "json",
            "--no-history",
            "--cache",
            "cold",
            "--runs",
            "2",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["timing"]["server_restarts"], 2);
    assert_eq!(patch(&report, "0001-idx")["classification"], "cold");
    assert!(containers_of(pid).is_empty());
}

/// Start a run whose only patch sleeps, and wait until it is applying it.
fn sleeping_run(s: &Scratch) -> Child {
    s.patch("0001-sleep.sql", "select pg_sleep(60);\n");
    let child = s.spawn_until(
        &["check", "--image", IMAGE, "--no-history"],
        Stdio::null(),
        "applying 0001-sleep",
        Duration::from_secs(60),
    );
    assert_eq!(containers_of(child.id()).len(), 1);
    child
}

#[test]
fn sigint_and_sigterm_remove_the_container() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    require_docker("sigint_and_sigterm_remove_the_container");
    for (signal, code, twice) in [
        (Signal::SIGINT, 130, false),
        (Signal::SIGTERM, 143, false),
        // A second signal stops at once, and still removes the container.
        (Signal::SIGINT, 130, true),
    ] {
        let s = Scratch::new();
        let mut child = sleeping_run(&s);
        let pid = Pid::from_raw(child.id() as i32);
        kill(pid, signal).unwrap();
        if twice {
            kill(pid, signal).unwrap();
        }
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{signal:?} twice={twice}");
        assert!(
            containers_of(child.id()).is_empty(),
            "{signal:?} twice={twice}: container left behind"
        );
        s.assert_clean();
    }
}

#[test]
fn clean_removes_what_a_killed_run_left() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    require_docker("clean_removes_what_a_killed_run_left");
    let s = Scratch::new();
    let mut child = sleeping_run(&s);
    // SIGKILL: nothing in downtime runs, so the container stays.
    child.kill().unwrap();
    child.wait().unwrap();
    let left = containers_of(child.id());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!left[0].in_use);

    let dry = s.run(&["clean", "--dry-run"]);
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        text.contains(&format!(
            "would remove container {}",
            docker::short_id(&left[0].id)
        )),
        "{text}"
    );
    assert_eq!(containers_of(child.id()).len(), 1);

    let out = s.run(&["clean"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text.contains(&format!(
            "removed container {}",
            docker::short_id(&left[0].id)
        )),
        "{text}"
    );
    assert!(containers_of(child.id()).is_empty());
}

#[test]
fn clean_keeps_what_a_running_downtime_uses() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    require_docker("clean_keeps_what_a_running_downtime_uses");
    let s = Scratch::new();
    let mut child = sleeping_run(&s);
    let out = s.run(&["clean"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("kept container"), "{text}");
    assert_eq!(containers_of(child.id()).len(), 1);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(containers_of(child.id()).is_empty());
}
