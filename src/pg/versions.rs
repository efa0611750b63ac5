//! Features that need a newer PostgreSQL than some servers have: when a
//! statement fails the way an older server fails it, which feature it was
//! and the first major version that has it.

/// (the word an older server's syntax error points at, words the statement
/// must hold too, the feature, its first major version).
const SYNTAX: &[(&str, &str, &str, i32)] = &[
    ("COMPRESSION", "", "column COMPRESSION", 14),
    ("MERGE", "", "MERGE", 15),
    ("NULLS", "", "UNIQUE NULLS NOT DISTINCT", 15),
    ("JSON", "IS", "the IS JSON predicate", 16),
    ("COLUMNS", "JSON_TABLE", "JSON_TABLE", 17),
    ("RETURNING", "MERGE", "MERGE … RETURNING", 17),
    ("EXPRESSION", "", "ALTER COLUMN … SET EXPRESSION", 17),
    ("VIRTUAL", "", "virtual generated columns", 18),
    ("ENFORCED", "", "NOT ENFORCED constraints", 18),
    ("WITHOUT", "OVERLAPS", "WITHOUT OVERLAPS constraints", 18),
];

/// COPY options, privileges and columns an older server does not know.
const WORDS: &[(&str, &str, &str, i32)] = &[
    ("option \"", "default", "COPY … DEFAULT", 16),
    ("option \"", "on_error", "COPY … ON_ERROR", 17),
    ("option \"", "log_verbosity", "COPY … LOG_VERBOSITY", 17),
    ("option \"", "reject_limit", "COPY … REJECT_LIMIT", 18),
    (
        "unrecognized privilege type \"",
        "maintain",
        "the MAINTAIN privilege",
        17,
    ),
    ("column \"", "system_user", "SYSTEM_USER", 16),
];

/// Whole messages an older server gives for what a newer one accepts.
const MESSAGES: &[(&str, &str, i32)] = &[
    (
        "subquery in FROM must have an alias",
        "a subquery in FROM without an alias",
        16,
    ),
    (
        "VALUES in FROM must have an alias",
        "VALUES in FROM without an alias",
        16,
    ),
];

const FUNCTIONS: &[(&str, i32)] = &[
    ("gen_random_uuid", 13),
    ("gcd", 13),
    ("lcm", 13),
    ("trim_scale", 13),
    ("min_scale", 13),
    ("string_to_table", 14),
    ("date_bin", 14),
    ("range_agg", 14),
    ("trim_array", 14),
    ("bit_count", 14),
    ("unistr", 14),
    ("regexp_count", 15),
    ("regexp_instr", 15),
    ("regexp_like", 15),
    ("regexp_substr", 15),
    ("any_value", 16),
    ("random_normal", 16),
    ("array_sample", 16),
    ("array_shuffle", 16),
    ("pg_input_is_valid", 16),
    ("pg_input_error_info", 16),
    ("date_add", 16),
    ("date_subtract", 16),
    ("erf", 16),
    ("erfc", 16),
    ("xmltext", 16),
    ("json_array", 16),
    ("json_arrayagg", 16),
    ("json_objectagg", 16),
    ("json_query", 17),
    ("json_exists", 17),
    ("json_value", 17),
    ("json_scalar", 17),
    ("json_serialize", 17),
    ("uuid_extract_timestamp", 17),
    ("uuid_extract_version", 17),
    ("to_bin", 17),
    ("to_oct", 17),
    ("unicode_assigned", 17),
    ("pg_column_toast_chunk_id", 17),
    ("uuidv7", 18),
    ("uuidv4", 18),
    ("array_reverse", 18),
    ("array_sort", 18),
    ("casefold", 18),
    ("crc32", 18),
    ("crc32c", 18),
    ("pg_get_acl", 18),
];

const SETTINGS: &[(&str, i32)] = &[
    ("hash_mem_multiplier", 13),
    ("logical_decoding_work_mem", 13),
    ("max_slot_wal_keep_size", 13),
    ("idle_session_timeout", 14),
    ("client_connection_check_interval", 14),
    ("default_toast_compression", 14),
    ("compute_query_id", 14),
    ("enable_memoize", 14),
    ("recovery_prefetch", 15),
    ("log_startup_progress_interval", 15),
    ("createrole_self_grant", 16),
    ("icu_validation_level", 16),
    ("scram_iterations", 16),
    ("enable_presorted_aggregate", 16),
    ("transaction_timeout", 17),
    ("summarize_wal", 17),
    ("event_triggers", 17),
    ("allow_alter_system", 17),
    ("io_combine_limit", 17),
    ("enable_group_by_reordering", 17),
    ("io_method", 18),
    ("enable_self_join_elimination", 18),
    ("enable_distinct_reordering", 18),
    ("file_copy_method", 18),
    ("idle_replication_slot_timeout", 18),
    ("md5_password_warnings", 18),
    ("track_cost_delay_timing", 18),
    ("log_lock_failures", 18),
];

const OPTIONS: &[(&str, i32)] = &[
    ("security_invoker", 15),
    ("vacuum_max_eager_freeze_failure_rate", 18),
    ("autovacuum_vacuum_max_threshold", 18),
];

const TYPES: &[(&str, i32)] = &[
    ("int4multirange", 14),
    ("int8multirange", 14),
    ("nummultirange", 14),
    ("datemultirange", 14),
    ("tsmultirange", 14),
    ("tstzmultirange", 14),
    ("anymultirange", 14),
];

/// The quoted word after `prefix` in `message`.
fn quoted<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    rest.split('"').next()
}

/// The feature a server error (for the statement `sql`) points at and the
/// major version that first has it, when that is newer than `major`.
pub fn needs_newer(message: &str, sql: &str, major: i32) -> Option<(String, i32)> {
    let upper = sql.to_ascii_uppercase();
    let holds = |w: &str| {
        w.is_empty()
            || upper
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .any(|t| t == w)
    };
    let lookup = |table: &[(&str, i32)], word: &str, what: &str| {
        table
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
            .map(|(name, v)| (format!("{what} {name}"), *v))
    };
    let word_of = WORDS.iter().find(|(prefix, word, ..)| {
        quoted(message, prefix).is_some_and(|w| w.eq_ignore_ascii_case(word))
    });
    let whole = MESSAGES
        .iter()
        .find(|(m, ..)| message.eq_ignore_ascii_case(m));
    let found = if let Some((_, what, v)) = whole {
        Some((what.to_string(), *v))
    } else if let Some(word) = quoted(message, "syntax error at or near \"") {
        SYNTAX
            .iter()
            .find(|(k, also, ..)| k.eq_ignore_ascii_case(word) && holds(also))
            .map(|(_, _, what, v)| (what.to_string(), *v))
    } else if let Some((_, _, what, v)) = word_of {
        Some((what.to_string(), *v))
    } else if let Some(word) = quoted(message, "unrecognized configuration parameter \"") {
        lookup(SETTINGS, word, "the setting")
    } else if let Some(word) = quoted(message, "unrecognized parameter \"") {
        lookup(OPTIONS, word, "the option")
    } else if let Some(word) = quoted(message, "type \"") {
        lookup(TYPES, word, "the type")
    } else if let Some(rest) = message.strip_prefix("function ") {
        let name = rest.split('(').next().unwrap_or("");
        lookup(FUNCTIONS, name, "the function")
    } else {
        None
    };
    found.filter(|(_, v)| *v > major)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_of_an_older_server_name_the_version() {
        // The messages PostgreSQL 15 gives, and the version that has the feature.
        let v = |m: &str, sql: &str| needs_newer(m, sql, 15).map(|f| f.1);
        assert_eq!(
            needs_newer("function uuidv7() does not exist", "", 17),
            Some(("the function uuidv7".into(), 18))
        );
        assert_eq!(v("syntax error at or near \"expression\"", ""), Some(17));
        assert_eq!(
            v(
                "unrecognized configuration parameter \"transaction_timeout\"",
                ""
            ),
            Some(17)
        );
        let json_table = "select * from json_table('[1]', '$' columns (x int))";
        assert_eq!(
            v("syntax error at or near \"columns\"", json_table),
            Some(17)
        );
        assert_eq!(
            v("syntax error at or near \"columns\"", "select columns"),
            None
        );
        let merge = "merge into t using s on true when matched then delete returning *";
        assert_eq!(v("syntax error at or near \"returning\"", merge), Some(17));
        assert_eq!(v("option \"on_error\" not recognized", ""), Some(17));
        assert_eq!(v("unrecognized privilege type \"maintain\"", ""), Some(17));
        assert_eq!(v("column \"system_user\" does not exist", ""), Some(16));
        assert_eq!(
            v("function json_query(unknown, unknown) does not exist", ""),
            Some(17)
        );
        assert_eq!(
            needs_newer("function any_value(integer) does not exist", "", 16),
            None
        );
        assert_eq!(v("syntax error at or near \"tabel\"", ""), None);
        assert_eq!(v("subquery in FROM must have an alias", ""), Some(16));
        assert_eq!(v("VALUES in FROM must have an alias", ""), Some(16));
        let multirange = needs_newer("type \"int4multirange\" does not exist", "", 13);
        assert_eq!(multirange.map(|f| f.1), Some(14));
    }
}
