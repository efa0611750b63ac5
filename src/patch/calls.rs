//! Calls of server functions found by name in a statement's text, wherever
//! they sit: its own expressions, a `DO` or function body, an `EXECUTE` or
//! `dblink` string (their text is the statement's). Comments are left out
//! so prose cannot trip it. Like [`super::host`], the check is static: a
//! name assembled at run time from fragments, or a call inside a function
//! defined elsewhere, is not seen.

use super::host::{without_comments, words};

/// Functions whose effects reach other sessions or outlive the
/// transaction that called them: signals to other server processes,
/// another connection's work, session-level locks, the server's
/// statistics (the clock downtime reads), WAL and replication slots.
/// Probe queries may call none of them (see [`outside_the_query`]).
const OUTSIDE: &[(&str, &str)] = &[
    ("pg_terminate_backend", "ends other sessions"),
    ("pg_cancel_backend", "cancels other sessions' statements"),
    ("pg_signal_backend", "signals other sessions"),
    ("pg_reload_conf", "reloads the server's configuration"),
    ("pg_rotate_logfile", "rotates the server's log"),
    ("pg_log_backend_memory_contexts", "signals other sessions"),
    ("pg_promote", "promotes a standby"),
    ("pg_wal_replay_pause", "pauses a standby's replay"),
    ("pg_wal_replay_resume", "resumes a standby's replay"),
    ("pg_switch_wal", "switches the server's WAL file"),
    ("pg_create_restore_point", "writes to the server's WAL"),
    ("pg_advisory_lock", "takes a session lock a rollback keeps"),
    (
        "pg_advisory_lock_shared",
        "takes a session lock a rollback keeps",
    ),
    (
        "pg_try_advisory_lock",
        "takes a session lock a rollback keeps",
    ),
    (
        "pg_try_advisory_lock_shared",
        "takes a session lock a rollback keeps",
    ),
    ("pg_stat_reset", "resets the server's statistics"),
    ("pg_stat_reset_shared", "resets the server's statistics"),
    (
        "pg_stat_reset_single_table_counters",
        "resets the server's statistics",
    ),
    (
        "pg_stat_reset_single_function_counters",
        "resets the server's statistics",
    ),
    ("pg_stat_reset_slru", "resets the server's statistics"),
    (
        "pg_stat_reset_replication_slot",
        "resets the server's statistics",
    ),
    (
        "pg_stat_reset_subscription_stats",
        "resets the server's statistics",
    ),
    (
        "pg_stat_statements_reset",
        "resets the statistics downtime times patches by",
    ),
    (
        "pg_create_physical_replication_slot",
        "makes a replication slot",
    ),
    (
        "pg_create_logical_replication_slot",
        "makes a replication slot",
    ),
    ("pg_drop_replication_slot", "drops a replication slot"),
    (
        "pg_copy_physical_replication_slot",
        "makes a replication slot",
    ),
    (
        "pg_copy_logical_replication_slot",
        "makes a replication slot",
    ),
];

/// Function name prefixes of the same kind: every `dblink…` function
/// works on another connection, which a rollback does not undo.
const OUTSIDE_PREFIXES: &[(&str, &str)] = &[
    (
        "dblink",
        "works on another connection, which the rollback does not undo",
    ),
    ("pg_replication_origin_", "changes a replication origin"),
];

/// The first function of [`OUTSIDE`] (or named as [`OUTSIDE_PREFIXES`]
/// say) that `sql` calls, and what it does.
pub fn outside_the_query(sql: &str) -> Option<(String, &'static str)> {
    let lower = sql.to_ascii_lowercase();
    if !lower.contains("pg_") && !lower.contains("dblink") {
        return None;
    }
    let code = without_comments(&lower);
    let found = words(&code).find_map(|(start, word)| {
        let after = code[start + word.len()..].trim_start_matches('"');
        if !after.trim_start().starts_with('(') {
            return None;
        }
        let what = OUTSIDE
            .iter()
            .find(|(name, _)| *name == word)
            .or_else(|| OUTSIDE_PREFIXES.iter().find(|(p, _)| word.starts_with(p)))
            .map(|(_, what)| *what)?;
        Some((word.to_string(), what))
    });
    found
}

/// The names (lower case, unqualified) of the functions `sql` calls, as
/// far as its words show: each word followed by `(`, once.
pub fn called_functions(sql: &str) -> Vec<String> {
    let code = without_comments(&sql.to_ascii_lowercase());
    let mut out: Vec<String> = Vec::new();
    for (start, word) in words(&code) {
        let after = code[start + word.len()..].trim_start_matches('"');
        let call = after.trim_start().starts_with('(')
            && !word.starts_with(|c: char| c.is_ascii_digit() || c == '$');
        if call && !out.iter().any(|w| w == word) {
            out.push(word.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_found_wherever_they_are_written_and_only_calls() {
        for sql in [
            "select pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid()",
            "SELECT PG_CANCEL_BACKEND (pid) FROM pg_stat_activity",
            "select pg_catalog.\"pg_terminate_backend\"(1)",
            "do $$ begin perform pg_terminate_backend(1); end $$",
            "select 1 where exists (select dblink_exec('dbname=x', 'select 1'))",
            "select pg_advisory_lock(1)",
            "select public.pg_stat_statements_reset()",
            "do $$ begin execute 'select pg_reload_conf()'; end $$",
        ] {
            assert!(outside_the_query(sql).is_some(), "{sql}");
        }
        for sql in [
            "select * from account where id = 1",
            "select pg_backend_pid()",
            "select pg_advisory_xact_lock(1)",
            "select 1 -- pg_terminate_backend(1)",
            "select 'pg_terminate_backend' as name",
            "select pid from pg_stat_activity",
        ] {
            assert_eq!(outside_the_query(sql), None, "{sql}");
        }
        assert_eq!(
            called_functions(
                "select app.report(1), count(*) -- purge(x)\nfrom t where f(2) = f (3)"
            ),
            ["report", "count", "f"]
        );
    }
}
