//! Migration folders as their tools lay them out (tests/fixtures/layouts/,
//! written for this project), applied on the embedded PostgreSQL: each
//! tool's names and order, what it passes over, its bookkeeping table
//! filled as the tool fills it (read back inside the staging copy by a last
//! migration that raises when the table differs), and only the migrations
//! the baseline's table does not record applied.

mod common;

use std::path::Path;

use common::{patch, Scratch};
use serde_json::Value;
use sha2::{Digest, Sha384};

fn fixture(tool: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/layouts")
        .join(tool)
}

/// Copy a fixture folder into the scratch's `patches/`.
fn copy_fixture(s: &Scratch, tool: &str) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let dest = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy(&p, &dest);
            } else {
                std::fs::copy(&p, &dest).unwrap();
            }
        }
    }
    copy(&fixture(tool), &s.patches());
}

fn text(tool: &str, file: &str) -> String {
    std::fs::read_to_string(fixture(tool).join(file)).unwrap()
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// A migration body that raises unless `query` returns exactly `expected`.
fn assert_query(query: &str, expected: &str) -> String {
    format!(
        "do $$\ndeclare got text := ({query});\nbegin\n  if got is distinct from {} then\n    raise exception 'books differ: %', got;\n  end if;\nend $$;\n",
        literal(expected)
    )
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn sha384_hex(text: &str) -> String {
    hex::encode(Sha384::digest(text.as_bytes()))
}

fn flyway_crc(text: &str) -> i32 {
    let bytes: Vec<u8> = text
        .trim_start_matches('\u{feff}')
        .bytes()
        .filter(|b| *b != b'\n' && *b != b'\r')
        .collect();
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes);
    h.finalize() as i32
}

#[test]
fn diesel_reads_every_version_format_and_applies_only_what_its_table_lacks() {
    let s = Scratch::new();
    copy_fixture(&s, "diesel");
    std::fs::create_dir_all(s.patches().join("2020-01-01-000000_left_empty")).unwrap();
    // The baseline records diesel's setup and the first migration.
    s.baseline(
        "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
         run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);\n\
         INSERT INTO __diesel_schema_migrations (version) VALUES ('00000000000000'), ('20190226002946');\n\
         CREATE TABLE users (id SERIAL PRIMARY KEY, name VARCHAR NOT NULL);\n",
    );
    // Read back inside the copy: every version, as diesel writes it.
    s.patch(
        "2099-01-01-000000_check_books/up.sql",
        &assert_query(
            "select string_agg(version, ',' order by version) from __diesel_schema_migrations",
            "00000000000000,20190226002946,20190315120000,202511190914440000",
        ),
    );
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["layout"], "diesel");
    assert_eq!(
        statuses(&report),
        pairs(&[
            ("00000000000000_diesel_initial_setup", "skipped"),
            ("2019-02-26-002946_create_users", "skipped"),
            ("20190315120000_add_posts", "ok"),
            ("2025-11-19-091444-0000_index_posts", "ok"),
            ("2099-01-01-000000_check_books", "ok"),
        ])
    );
    let skipped = patch(&report, "2019-02-26-002946_create_users");
    assert!(skipped["skipped_because"]
        .as_str()
        .unwrap()
        .contains("__diesel_schema_migrations"));
    let notes = report["notes"].to_string();
    for passed_over in ["stray_fix.sql", "README.md", "left_empty", "down.sql"] {
        assert!(notes.contains(passed_over), "{passed_over}: {notes}");
    }
    // run_in_transaction = false: the index is built concurrently, outside a transaction.
    let index = patch(&report, "2025-11-19-091444-0000_index_posts");
    assert_eq!(index["statements"][0]["outside_transaction"], true);
    // The books are kept apart from the patch's time.
    assert!(
        patch(&report, "20190315120000_add_posts")["bookkeeping_seconds"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // Without the baseline's records, everything applies, in diesel's order.
    // The check then sees the same list, every version written by downtime.
    let (code, report, stderr) = s.check_json(&["patches", "--no-baseline"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert!(
        statuses(&report).iter().all(|(_, st)| st == "ok"),
        "{report}"
    );
    s.assert_clean();
}

#[test]
fn diesel_runs_a_migration_in_its_transaction_unless_metadata_says_not() {
    let s = Scratch::new();
    s.patch("2019-01-01-000000_t/up.sql", "create table t (a int);");
    s.patch(
        "2019-01-02-000000_i/up.sql",
        "create index concurrently t_a on t (a);",
    );
    let (code, report, _) = s.check_json(&["patches"]);
    assert_eq!(code, 1);
    let p = patch(&report, "2019-01-02-000000_i");
    assert_eq!(p["error"]["sqlstate"], "25001");
    assert!(p["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("run_in_transaction = false"));
    s.assert_clean();
}

/// The sqlx baseline: its table recording the first migration, with the
/// file's checksum, and what that migration made.
fn sqlx_baseline(checksum_of_first: &str) -> String {
    format!(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
         checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);\n\
         INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (20210101000000, 'create history', true, '\\x{checksum_of_first}', 1000);\n\
         create table history (id bigserial primary key, command text not null, at timestamptz not null default now());\n"
    )
}

#[test]
fn sqlx_applies_only_pending_migrations_and_records_them_with_their_checksums() {
    let s = Scratch::new();
    copy_fixture(&s, "sqlx");
    s.baseline(&sqlx_baseline(&sha384_hex(&text(
        "sqlx",
        "20210101000000_create_history.sql",
    ))));
    let expected: Vec<String> = [
        (
            "20210101000000",
            "create history",
            "20210101000000_create_history.sql",
        ),
        (
            "20210102000000",
            "fill history",
            "20210102000000_fill_history.sql",
        ),
        (
            "20210103000000",
            "index history",
            "20210103000000_index_history.sql",
        ),
        (
            "20210104000000",
            "add host",
            "20210104000000_add_host.up.sql",
        ),
    ]
    .iter()
    .map(|(v, d, f)| format!("{v}|{d}|true|{}", sha384_hex(&text("sqlx", f))))
    .collect();
    s.patch(
        "20990101000000_check_books.sql",
        &(assert_query(
            "select string_agg(version || '|' || description || '|' || success || '|' || encode(checksum, 'hex'), ',' order by version) from _sqlx_migrations",
            &expected.join(","),
        ) + &assert_query(
            "select count(*)::text from _sqlx_migrations where version > 20210101000000 and execution_time <= 0",
            "0",
        )),
    );
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["layout"], "sqlx");
    assert_eq!(
        statuses(&report),
        pairs(&[
            ("20210101000000_create_history", "skipped"),
            ("20210102000000_fill_history", "ok"),
            ("20210103000000_index_history", "ok"),
            ("20210104000000_add_host", "ok"),
            ("20990101000000_check_books", "ok"),
        ])
    );
    assert!(
        patch(&report, "20210101000000_create_history")["skipped_because"]
            .as_str()
            .unwrap()
            .contains("_sqlx_migrations")
    );
    // -- no-transaction: the index is built outside a transaction.
    let index = patch(&report, "20210103000000_index_history");
    assert_eq!(index["statements"][0]["outside_transaction"], true);
    s.assert_clean();
}

#[test]
fn sqlx_refuses_what_sqlx_refuses() {
    // A file changed since the baseline recorded it.
    let s = Scratch::new();
    copy_fixture(&s, "sqlx");
    s.baseline(&sqlx_baseline(&sha384_hex("create table history ();")));
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("20210101000000_create_history.sql")
            && stderr
                .contains("migration 20210101000000 was previously applied but has been modified"),
        "{stderr}"
    );
    // A recorded migration whose file is gone.
    std::fs::remove_file(s.patches().join("20210101000000_create_history.sql")).unwrap();
    let out = s.run(&["check", "patches", "--layout", "sqlx"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "migration 20210101000000 was previously applied but is missing in the resolved migrations"
    ));
    // --all applies everything regardless of the books.
    copy_fixture(&s, "sqlx");
    s.baseline(
        &sqlx_baseline(&sha384_hex("create table history ();"))
            .replace("create table history", "create table history_old"),
    );
    let (code, report, stderr) = s.check_json(&["patches", "--all"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert!(statuses(&report).iter().all(|(_, st)| st == "ok"));
    s.assert_clean();
}

#[test]
fn simple_names_become_sqlx_when_the_baseline_holds_its_table() {
    let s = Scratch::new();
    s.patch("1_create.sql", "create table a (id int);");
    s.patch("2_fill.sql", "insert into a values (1);");
    s.baseline(&format!(
        "{}create table a (id int);\n",
        sqlx_baseline(&sha384_hex("create table a (id int);"))
            .replace("20210101000000, 'create history'", "1, 'create'")
            .replace("create table history (id bigserial primary key, command text not null, at timestamptz not null default now());\n", "")
    ));
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["layout"], "sqlx");
    assert_eq!(
        statuses(&report),
        pairs(&[("1_create", "skipped"), ("2_fill", "ok")])
    );
    // Without the table, the same names are downtime's numbered layout.
    let (code, report, _) = s.check_json(&["patches", "--no-baseline"]);
    assert_eq!(code, 0);
    assert_eq!(report["layout"], "numbered");
    s.assert_clean();
}

const GOLANG_TABLE: &str = "CREATE TABLE schema_migrations (version bigint not null primary key, dirty boolean not null);\n";

#[test]
fn golang_migrate_applies_after_the_recorded_version_and_marks_it_dirty_meanwhile() {
    let s = Scratch::new();
    copy_fixture(&s, "golang-migrate");
    s.baseline(&format!(
        "{GOLANG_TABLE}INSERT INTO schema_migrations VALUES (2, false);\n\
         CREATE TABLE jobs (id bigserial PRIMARY KEY, state text NOT NULL, queue text);\n\
         INSERT INTO jobs (state) SELECT 'done' FROM generate_series(1, 200);\n"
    ));
    // While a migration runs, golang-migrate's one row holds its version, dirty.
    s.patch(
        "000009_check_books.up.sql",
        &assert_query(
            "select string_agg(version || ':' || dirty, ',') from schema_migrations",
            "9:true",
        ),
    );
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["layout"], "golang-migrate");
    assert_eq!(
        statuses(&report),
        pairs(&[
            ("000001_create_jobs", "skipped"),
            ("000002_add_queue", "skipped"),
            ("000003_index_state", "ok"),
            ("000004_default_queue", "ok"),
            ("000009_check_books", "ok"),
        ])
    );
    assert!(patch(&report, "000002_add_queue")["skipped_because"]
        .as_str()
        .unwrap()
        .contains("schema_migrations"));
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("down migration") && notes.contains("README.md"),
        "{notes}"
    );
    // golang-migrate's truncation of its table before a migration is not the migration's rewrite.
    for p in report["patches"].as_array().unwrap() {
        for st in p["statements"].as_array().unwrap() {
            assert_eq!(st["rewrites"], serde_json::json!([]), "{}", p["id"]);
        }
    }

    // A dirty record stops the run, as golang-migrate stops.
    s.baseline(&format!(
        "{GOLANG_TABLE}INSERT INTO schema_migrations VALUES (2, true);\n"
    ));
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("Dirty database version 2. Fix and force version."));
    // So does a recorded version without its file.
    s.baseline(&format!(
        "{GOLANG_TABLE}INSERT INTO schema_migrations VALUES (7, false);\n"
    ));
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no migration found for version 7"));
    s.assert_clean();
}

#[test]
fn golang_migrate_sends_a_file_as_one_query() {
    // Two statements are one implicit transaction: CONCURRENTLY fails there.
    let s = Scratch::new();
    s.patch("1_t.up.sql", "create table t (a int);");
    s.patch(
        "2_i.up.sql",
        "set lock_timeout = '1s';\ncreate index concurrently t_a on t (a);",
    );
    let (code, report, _) = s.check_json(&["patches"]);
    assert_eq!(code, 1);
    assert_eq!(patch(&report, "2_i")["error"]["sqlstate"], "25001");
    // A file's own BEGIN … COMMIT is its transaction; the version is set clean after it.
    let t = Scratch::new();
    t.patch("1_t.up.sql", "create table t (a int);");
    t.patch("2_own.up.sql", "BEGIN;\ninsert into t values (1);\nCOMMIT;");
    t.patch(
        "3_check_books.up.sql",
        &assert_query(
            "select (select string_agg(version || ':' || dirty, ',') from schema_migrations) || ' ' || (select count(*) from t)",
            "3:true 1",
        ),
    );
    let (code, report, stderr) = t.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert!(!stderr.contains("already a transaction"), "{stderr}");
    s.assert_clean();
    t.assert_clean();
}

fn flyway_baseline() -> String {
    let row = |rank: i32, v: &str, d: &str, f: &str| {
        format!(
            "INSERT INTO flyway_schema_history VALUES ({rank}, '{v}', '{d}', 'SQL', '{f}', {}, 'deployer', now(), 12, true);\n",
            flyway_crc(&text("flyway", f))
        )
    };
    format!(
        "CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL PRIMARY KEY, version VARCHAR(50), \
         description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, \
         checksum INTEGER, installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT now(), \
         execution_time INTEGER NOT NULL, success BOOLEAN NOT NULL);\n{}{}\
         CREATE TABLE orders (id bigserial PRIMARY KEY, total numeric NOT NULL, note text);\n\
         INSERT INTO orders (total) SELECT g FROM generate_series(1, 300) g;\n",
        row(1, "1", "create orders", "V1__create_orders.sql"),
        row(2, "1.1", "add note", "V1_1__add_note.sql"),
    )
}

#[test]
fn flyway_applies_pending_versions_then_repeatables_and_writes_its_history() {
    let s = Scratch::new();
    copy_fixture(&s, "flyway");
    s.baseline(&flyway_baseline());
    let row = |rank: i32, v: &str, d: &str, f: &str| {
        format!(
            "{rank}|{v}|{d}|SQL|{f}|{}|true",
            flyway_crc(&text("flyway", f))
        )
    };
    s.patch(
        "V9__check_books.sql",
        &(assert_query(
            "select string_agg(installed_rank || '|' || coalesce(version, '') || '|' || description || '|' || type || '|' || script || '|' || checksum || '|' || success, ',' order by installed_rank) from flyway_schema_history",
            &[
                row(1, "1", "create orders", "V1__create_orders.sql"),
                row(2, "1.1", "add note", "V1_1__add_note.sql"),
                row(3, "2", "index total", "V2__index_total.sql"),
                row(4, "3", "add paid", "sub/V3__add_paid.sql"),
            ]
            .join(","),
        ) + &assert_query(
            "select count(*)::text from flyway_schema_history where installed_rank > 2 and installed_by <> current_user",
            "0",
        )),
    );
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["layout"], "flyway");
    assert_eq!(
        statuses(&report),
        pairs(&[
            ("V1__create_orders", "skipped"),
            ("V1_1__add_note", "skipped"),
            ("V2__index_total", "ok"),
            ("V3__add_paid", "ok"),
            ("V9__check_books", "ok"),
            ("R__order_totals", "ok"),
        ])
    );
    assert!(patch(&report, "V1_1__add_note")["skipped_because"]
        .as_str()
        .unwrap()
        .contains("flyway_schema_history"));
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("undo") && notes.contains("callback"),
        "{notes}"
    );
    s.assert_clean();
}

#[test]
fn flyway_validation_failures_are_input_errors() {
    // A checksum that no longer matches the file.
    let s = Scratch::new();
    copy_fixture(&s, "flyway");
    s.baseline(&flyway_baseline().replace(
        &format!(
            "{}, 'deployer'",
            flyway_crc(&text("flyway", "V1__create_orders.sql"))
        ),
        "12345, 'deployer'",
    ));
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("V1__create_orders.sql")
            && stderr.contains("Migration checksum mismatch for migration version 1"),
        "{stderr}"
    );
    // A pending version below the latest applied one (outOfOrder is off).
    let t = Scratch::new();
    copy_fixture(&t, "flyway");
    t.baseline(&flyway_baseline().replace(
        "(2, '1.1', 'add note', 'SQL', 'V1_1__add_note.sql'",
        "(2, '2.5', 'x', 'SQL', 'V2_5__x.sql'",
    ));
    std::fs::write(
        t.patches().join("V2_5__x.sql"),
        text("flyway", "V1_1__add_note.sql"),
    )
    .unwrap();
    let out = t.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Detected resolved migration not applied to database: 1.1"),
        "{stderr}"
    );
    // Mixing statements Flyway runs in a transaction with ones it cannot.
    let m = Scratch::new();
    m.patch("V1__t.sql", "create table t (a int);");
    m.patch(
        "V2__i.sql",
        "set lock_timeout = '1s';\ncreate index concurrently t_a on t (a);",
    );
    let (code, report, _) = m.check_json(&["patches"]);
    assert_eq!(code, 1);
    assert!(patch(&report, "V2__i")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Detected both transactional and non-transactional statements"));
    s.assert_clean();
}

#[test]
fn refinery_u_means_unversioned_when_chosen() {
    let s = Scratch::new();
    s.patch("V1__create.sql", "create table t (a int);");
    s.patch("U2__fill.sql", "insert into t values (1);");
    // As Flyway (the default for these names) U is an undo script.
    let (code, report, _) = s.check_json(&["patches"]);
    assert_eq!(code, 0);
    assert_eq!(statuses(&report), pairs(&[("V1__create", "ok")]));
    // As refinery it is an unversioned migration, applied and recorded.
    s.patch(
        "V3__check_books.sql",
        &assert_query(
            "select string_agg(version || ':' || name, ',' order by version) from refinery_schema_history",
            "1:create,2:fill",
        ),
    );
    let (code, report, stderr) = s.check_json(&["patches", "--layout", "refinery"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["layout"], "refinery");
    assert_eq!(
        statuses(&report),
        pairs(&[
            ("V1__create", "ok"),
            ("U2__fill", "ok"),
            ("V3__check_books", "ok")
        ])
    );
    s.assert_clean();
}

#[test]
fn launchpad_skips_recorded_patches_and_fails_one_that_does_not_record_itself() {
    let s = Scratch::new();
    copy_fixture(&s, "launchpad");
    let (code, report, _) = s.check_json(&["patches"]);
    assert_eq!(code, 1);
    assert_eq!(report["layout"], "launchpad");
    assert_eq!(
        statuses(&report),
        pairs(&[
            ("patch-2209-01-0", "skipped"),
            ("patch-2209-02-0", "ok"),
            ("patch-2209-03-0", "failed"),
        ])
    );
    assert!(patch(&report, "patch-2209-03-0")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("failed to update LaunchpadDatabaseRevision correctly"));
    assert!(report["notes"].to_string().contains("comments.sql"));
    s.assert_clean();
}

#[test]
fn names_of_two_layouts_need_a_choice() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "select 1;");
    s.patch("V2__b.sql", "select 2;");
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--layout") && stderr.contains("V2__b.sql"),
        "{stderr}"
    );
    let (code, report, stderr) = s.check_json(&["patches", "--layout", "flyway"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(statuses(&report), pairs(&[("V2__b", "ok")]));
    assert!(report["notes"].to_string().contains("0001-a.sql"));
    // The text report says which layout was used.
    let out = s.run(&["check", "patches", "--layout", "flyway"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("layout: flyway"));
    s.assert_clean();
}

#[test]
fn a_feature_of_a_newer_postgresql_gets_a_hint_to_run_that_version() {
    let s = Scratch::new();
    s.patch("0001-a.sql", "create table t (id uuid default uuidv7());");
    let (code, report, _) = s.check_json(&["patches"]);
    assert_eq!(code, 1);
    let hint = patch(&report, "0001-a")["error"]["hint"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        hint.contains("PostgreSQL 18") && hint.contains("--backend docker --pg-version 18"),
        "{hint}"
    );
    s.assert_clean();
}

#[test]
fn a_subquery_without_an_alias_is_named_as_a_feature_of_postgresql_16() {
    let s = Scratch::new();
    // PostgreSQL 16 accepts FROM (SELECT …) and FROM (VALUES …) without an
    // alias; 15 refuses both with a message of its own, not a syntax error.
    s.patch(
        "0001_a.sql",
        "create table t as select x from (select 1 as x);",
    );
    s.patch(
        "0002_b.sql",
        "create table u as select * from (values (1));",
    );
    let (code, report, _) = s.check_json(&["patches", "--keep-going"]);
    assert_eq!(code, 1);
    for (id, message) in [
        ("0001_a", "subquery in FROM must have an alias"),
        ("0002_b", "VALUES in FROM must have an alias"),
    ] {
        let error = &patch(&report, id)["error"];
        assert_eq!(error["message"], message, "{error}");
        let hint = error["hint"].as_str().unwrap_or_default();
        assert!(
            hint.contains("without an alias needs PostgreSQL 16")
                && hint.contains("--backend docker --pg-version 16"),
            "{hint}"
        );
    }
    s.assert_clean();
}

#[test]
fn a_record_the_tools_table_refuses_fails_the_migration_with_the_servers_sqlstate() {
    let s = Scratch::new();
    s.patch("2020-01-01-000000_a/up.sql", "create table a (id int);");
    // A migration that guards the books against another runner, as some
    // projects do: its own record is refused.
    s.patch(
        "2020-01-02-000000_guard/up.sql",
        "create function refuse() returns trigger language plpgsql as $$\n\
         begin raise exception 'use the application to migrate' using errcode = 'P0001'; end $$;\n\
         create trigger refuse before insert on __diesel_schema_migrations\n\
         for each statement execute function refuse();",
    );
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(patch(&report, "2020-01-01-000000_a")["status"], "ok");
    let error = &patch(&report, "2020-01-02-000000_guard")["error"];
    assert_eq!(
        error["message"],
        "recording the migration in __diesel_schema_migrations failed, as it would for the tool: \
         use the application to migrate",
        "{error}"
    );
    assert_eq!(error["sqlstate"], "P0001", "{error}");
    s.assert_clean();
}

#[test]
fn names_that_fit_two_tools_say_which_and_how_to_choose() {
    let s = Scratch::new();
    s.patch("V1__a.sql", "create table a (id int);");
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("layout flyway (V…__name.sql names; the names fit refinery too")
            && stderr.contains("--layout refinery, chooses it"),
        "{stderr}"
    );
    // Chosen by hand, nothing is left to choose.
    let out = s.run(&["check", "patches", "--layout", "refinery"]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("layout refinery (--layout)") && !stderr.contains("fit"),
        "{stderr}"
    );

    let n = Scratch::new();
    n.patch("20200101000000_a.sql", "create table a (id int);");
    let out = n.run(&["check", "patches"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the names fit sqlx too") && stderr.contains("--layout sqlx"),
        "{stderr}"
    );
    // A name only one tool reads says nothing more.
    let d = Scratch::new();
    d.patch("0001-a.sql", "create table a (id int);");
    let out = d.run(&["check", "patches"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("layout numbered (NNN-name.sql names)"),
        "{stderr}"
    );
    for scratch in [&s, &n, &d] {
        scratch.assert_clean();
    }
}

#[test]
fn flyway_baseline_migration_stands_in_for_the_versions_up_to_it_on_an_empty_history() {
    let s = Scratch::new();
    s.patch("V1__a.sql", "create table a (id int);");
    s.patch("V2__b.sql", "create table b (id int);");
    s.patch(
        "B2__base.sql",
        "create table a (id int);\ncreate table b (id int);",
    );
    s.patch("V3__c.sql", "create table c (id int);");
    s.patch(
        "V4__check_books.sql",
        &assert_query(
            "select string_agg(installed_rank || ':' || version || ':' || type, ',' order by installed_rank) from flyway_schema_history",
            "1:2:SQL_BASELINE,2:3:SQL",
        ),
    );
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(
        statuses(&report),
        pairs(&[
            ("V1__a", "skipped"),
            ("B2__base", "ok"),
            ("V2__b", "skipped"),
            ("V3__c", "ok"),
            ("V4__check_books", "ok"),
        ])
    );
    s.assert_clean();
}

#[test]
fn diesel_refuses_what_diesel_refuses() {
    // A non-empty folder without up.sql: diesel refuses the whole folder.
    let s = Scratch::new();
    s.patch("2019-01-01-000000_t/up.sql", "create table t (a int);");
    s.patch("2019-01-02-000000_notes/notes.txt", "not a migration");
    let out = s.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2019-01-02-000000_notes") && stderr.contains("up.sql"),
        "{stderr}"
    );
    // Two folders with one version (diesel would run only one of them).
    let t = Scratch::new();
    t.patch("2019-01-01-000000_a/up.sql", "select 1;");
    t.patch("20190101000000_b/up.sql", "select 2;");
    let out = t.run(&["check", "patches"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("20190101000000"), "{stderr}");
    s.assert_clean();
    t.assert_clean();
}

#[test]
fn a_flyway_baseline_without_history_is_noted() {
    let s = Scratch::new();
    s.baseline("create table a (id int);");
    s.patch("V1__b.sql", "create table b (id int);");
    let (code, report, stderr) = s.check_json(&["patches"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(patch(&report, "V1__b")["status"], "ok");
    assert!(report["notes"]
        .to_string()
        .contains("no flyway_schema_history"));
    s.assert_clean();
}
