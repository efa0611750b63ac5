//! Reading the staging server's log back: why a session ended, when the
//! session itself could not hear it (a connection closed before the
//! server's last message was read, a backend killed outright). Lines start
//! with the prefix downtime sets, `%m [%p] %e ` (time, process id, SQLSTATE).

use super::ConnectionEnd;

/// How the server's log says process `pid` ended: its own FATAL (or PANIC)
/// line, or the postmaster's line about it being killed or crashing. The
/// last such line wins.
pub fn session_end(log: &str, pid: i32) -> Option<ConnectionEnd> {
    let own = format!("[{pid}] ");
    let reaped = format!("(PID {pid}) ");
    let mut found = None;
    for line in log.lines() {
        if let Some(rest) = line.split_once(&own).map(|(_, r)| r) {
            let (code, text) = rest.split_once(' ').unwrap_or(("", rest));
            for level in ["FATAL:", "PANIC:"] {
                if let Some(message) = text.strip_prefix(level) {
                    found = Some(ConnectionEnd {
                        sqlstate: (code.len() == 5).then(|| code.to_string()),
                        message: message.trim().to_string(),
                    });
                }
            }
        } else if let Some((_, what)) = line.split_once(&reaped) {
            // "server process (PID 42) was terminated by signal 9: Killed"
            found = Some(ConnectionEnd {
                sqlstate: None,
                message: format!("the server process serving it {}", what.trim()),
            });
        }
    }
    found
}

/// The last `bytes` of the file at `path` (the whole file when shorter).
pub fn tail(path: &std::path::Path, bytes: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(bytes))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-01-01 10:00:00.000 UTC [100] 00000 LOG:  database system is ready to accept connections
2026-01-01 10:00:01.000 UTC [4242] 25P03 FATAL:  terminating connection due to idle-in-transaction timeout
2026-01-01 10:00:02.000 UTC [100] 00000 LOG:  server process (PID 5151) was terminated by signal 9: Killed
2026-01-01 10:00:02.000 UTC [100] 00000 DETAIL:  Failed process was running: select pg_sleep(60)
2026-01-01 10:00:02.000 UTC [5252] 57P02 WARNING:  terminating connection because of crash of another server process
2026-01-01 10:00:03.000 UTC [6161] 57P01 FATAL:  terminating connection due to administrator command
";

    #[test]
    fn a_fatal_line_gives_the_sqlstate_and_message() {
        let end = session_end(LOG, 4242).unwrap();
        assert_eq!(end.sqlstate.as_deref(), Some("25P03"));
        assert_eq!(
            end.message,
            "terminating connection due to idle-in-transaction timeout"
        );
        assert_eq!(
            session_end(LOG, 6161).unwrap().sqlstate.as_deref(),
            Some("57P01")
        );
    }

    #[test]
    fn a_killed_process_is_named_by_the_postmaster() {
        let end = session_end(LOG, 5151).unwrap();
        assert_eq!(end.sqlstate, None);
        assert!(end.message.contains("terminated by signal 9"), "{end:?}");
    }

    #[test]
    fn warnings_and_other_processes_say_nothing() {
        assert_eq!(session_end(LOG, 5252), None);
        assert_eq!(session_end(LOG, 415), None);
        // A process id that is a prefix of another one does not match it.
        assert_eq!(session_end(LOG, 42), None);
    }
}
