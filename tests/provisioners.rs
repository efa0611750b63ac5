//! The command backend's provisioner, as small shell scripts against a
//! real password-protected server: output lines that are not UTF-8 before
//! the URL are ignored as any other line is; a `create` that hangs is
//! killed with its whole process group at `[staging.command]
//! timeout-seconds` (exit 2, saying so) and its clone destroyed; the key is
//! checked like every number in downtime.toml.

mod common;
#[path = "common/tcp.rs"]
mod tcp;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{text, Scratch};
use tcp::TcpServer;

const PASSWORD: &str = "Pl4nted-clone s3cret";

/// `downtime.toml` for the command backend with these scripts (written
/// beside it) and extra lines under `[staging.command]`.
fn provisioner(s: &Scratch, create: &str, destroy: &str, extra: &str) {
    for (name, script) in [("create.sh", create), ("destroy.sh", destroy)] {
        std::fs::write(s.path().join(name), script).unwrap();
    }
    std::fs::write(
        s.path().join("downtime.toml"),
        format!(
            "[staging]\nbackend = \"command\"\n\n[staging.command]\ncreate = \"sh '{0}/create.sh'\"\n\
             destroy = \"sh '{0}/destroy.sh'\"\n{extra}",
            s.path().display()
        ),
    )
    .unwrap();
}

/// psql on `server`'s socket, for the scripts.
fn psql(server: &TcpServer) -> String {
    let bin = downtime::staging::embedded::find_bin_dir(None).unwrap();
    format!(
        "PGPASSWORD='{PASSWORD}' \"{}\" -X -q -v ON_ERROR_STOP=1 -h \"{}\" -p {} -U postgres -d postgres",
        bin.join("psql").display(),
        server.dir.path().display(),
        server.port
    )
}

fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn lines_that_are_not_utf8_before_the_url_are_ignored() {
    let server = TcpServer::with_password(PASSWORD);
    server.psql("postgres", "create database golden");
    server.psql("golden", "create table t (id int primary key)");
    let before = server.databases();
    let s = Scratch::new();
    s.patch("0001-col.sql", "alter table t add column v int;\n");
    let log: PathBuf = s.path().join("calls.log");
    let psql = psql(&server);
    // Progress in Latin-1 ("copié", a lone 0xE9 byte) and a stray 0xFF on
    // stdout, then the URL last.
    let create = format!(
        "set -e\necho \"create $DOWNTIME_CLONE\" >> '{log}'\n\
         {psql} -c \"create database \\\"$DOWNTIME_CLONE\\\" template golden\" >&2\n\
         printf 'clone copi\\351 \\377 done\\n'\nprintf '\\351\\351\\n' >&2\n\
         echo \"{url}\"\n",
        log = log.display(),
        url = server.url("$DOWNTIME_CLONE"),
    );
    let destroy = format!(
        "set -e\necho \"destroy $DOWNTIME_CLONE\" >> '{log}'\n\
         {psql} -c \"drop database if exists \\\"$DOWNTIME_CLONE\\\" with (force)\" >&2\n",
        log = log.display(),
    );
    provisioner(&s, &create, &destroy, "");
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["verdict"], "pass", "{report}");
    assert_eq!(report["postgres"]["backend"], "command");
    let made = calls(&log);
    assert_eq!(made.len(), 2, "{made:?}");
    assert!(made[0].starts_with("create ") && made[1].starts_with("destroy "));
    assert_eq!(server.databases(), before, "a clone was left behind");

    // A last line that is not text is no URL, and says so.
    let create = format!(
        "echo \"create $DOWNTIME_CLONE\" >> '{log}'\necho '{url}'\nprintf 'postgresql://x\\377\\n'\n",
        log = log.display(),
        url = server.url("golden"),
    );
    provisioner(
        &s,
        &create,
        &format!("echo \"destroy $DOWNTIME_CLONE\" >> '{}'\n", log.display()),
        "",
    );
    std::fs::write(&log, "").unwrap();
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not UTF-8"), "{err}");
    assert_eq!(calls(&log).len(), 2, "the clone was not destroyed");
    s.assert_clean();
}

#[test]
fn a_hanging_provisioner_is_killed_with_its_process_group_at_its_time_limit() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "select 1;\n");
    let log = s.path().join("calls.log");
    let pids = s.path().join("pids");
    // `create` starts a helper in the background (same process group) and
    // waits for it: neither ends on its own.
    let create = format!(
        "echo \"create $DOWNTIME_CLONE\" >> '{log}'\necho 'making the clone…' >&2\n\
         sleep 300 &\necho $! >> '{pids}'\necho $$ >> '{pids}'\nwait\n",
        log = log.display(),
        pids = pids.display()
    );
    let destroy = format!("echo \"destroy $DOWNTIME_CLONE\" >> '{}'\n", log.display());
    provisioner(&s, &create, &destroy, "timeout-seconds = 2\n");
    let started = Instant::now();
    let out = s.run(&["check", "patches"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "[staging.command] create",
        "still running after 2 s",
        "timeout-seconds",
        "process group was killed",
        "making the clone",
    ] {
        assert!(err.contains(needle), "`{needle}` in {err}");
    }
    // Every process of the group is gone.
    for pid in std::fs::read_to_string(&pids).unwrap().lines() {
        let alive = Path::new(&format!("/proc/{}", pid.trim())).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .unwrap_or_default()
                .contains(") Z ");
        assert!(!alive, "process {pid} of the provisioner is still running");
    }
    let made = calls(&log);
    assert_eq!(made.len(), 2, "{made:?}");
    assert!(made[1].starts_with("destroy "), "{made:?}");
    s.assert_clean();

    // The key is a number in range, checked at its line.
    for (value, needle) in [
        (
            "0",
            "downtime.toml:7: staging.command.timeout-seconds = 0 is out of range",
        ),
        (
            "1e9",
            "staging.command.timeout-seconds = 1e9 is out of range",
        ),
        ("\"ten\"", "timeout-seconds"),
    ] {
        provisioner(
            &s,
            "true\n",
            "true\n",
            &format!("timeout-seconds = {value}\n"),
        );
        let out = s.run(&["check", "patches"]);
        assert_eq!(out.status.code(), Some(2), "{value}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{value}: `{needle}` in {err}");
    }
}
