//! Repeated runs tell the truth: a failure in any run (warm-ups included)
//! fails the patch and is reported with its run; every run starts from the
//! same cluster-level state (roles, databases, settings), whatever the
//! patches changed outside their database; the template cannot be changed
//! by a patch; every patch starts in a reset session, while downtime's own
//! queries keep downtime's privileges; and host safety holds under `--runs`.
//! Patches carry counts and fingerprints from run to run in tables of the
//! `postgres` database, reached with dblink (no file on the host).

mod common;

use std::path::Path;

use common::{patch, Scratch};
use downtime::staging::{docker, TEMPLATE_DB};

/// The image the Docker test runs (built by tests/docker/build-image.sh).
const DOCKER_IMAGE: &str = "downtime-test/postgres:15";

/// Fails `test`, saying what is missing and how to provide it, unless a
/// Docker engine answers and has the test image.
fn require_docker(test: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = rt.block_on(docker::engine()).unwrap_or_else(|e| {
        panic!(
            "{test} needs a Docker engine and the image {DOCKER_IMAGE} (bash \
             tests/docker/build-image.sh {DOCKER_IMAGE}), and no engine answers: {e}"
        )
    });
    if let Err(e) = rt.block_on(engine.inspect_image(DOCKER_IMAGE)) {
        panic!(
            "{test} needs the image {DOCKER_IMAGE}, and the engine does not have it ({e}): \
             build it with `bash tests/docker/build-image.sh {DOCKER_IMAGE}`"
        );
    }
}

/// SQL for a dblink connection string to the cluster's `postgres` database
/// over the server's own socket. Tables there outlive the runs: the copies
/// are thrown away and the cluster-level catalogues put back between runs,
/// but an ordinary table in `postgres` is neither.
const TO_POSTGRES: &str = "format('host=%s port=%s user=%s dbname=postgres', \
     split_part(current_setting('unix_socket_directories'), ',', 1), \
     current_setting('port'), current_user)";

/// SQL adding one to the counter table `table` in the `postgres` database
/// (made on first use) and giving the new count, as an `int`.
fn count_up(table: &str) -> String {
    format!(
        "(select n from dblink({TO_POSTGRES}, \
           'create table if not exists {table} (n int); \
            insert into {table} select coalesce(max(n), 0) + 1 from {table} returning n') \
         as t(n int))"
    )
}

/// A patch that counts its executions in `flaky_counter` in the `postgres`
/// database and fails at its line 2 when `fails_when` (SQL over the count
/// `n`) holds.
fn flaky_patch(fails_when: &str) -> String {
    format!(
        "create extension if not exists dblink;\n\
         do $$ declare n int := {}; begin\n\
           if {fails_when} then raise exception 'flaky: execution % fails', n; end if;\n\
         end $$;\n\
         create table after_the_flaky_statement (id int);\n",
        count_up("flaky_counter")
    )
}

/// A patch to follow [`flaky_patch`] when that fails in its even
/// executions: it counts its own executions and fails unless, at its k-th,
/// the flaky patch has run exactly 2k − 1 times (once in every run, this
/// patch being skipped in the runs where the flaky one failed).
fn checks_the_flaky_count() -> String {
    format!(
        "create extension if not exists dblink;\n\
         do $$ declare\n\
           flaky int := (select n from dblink({TO_POSTGRES}, 'select max(n) from flaky_counter') as t(n int));\n\
           mine int := {};\n\
         begin\n\
           if flaky is distinct from 2 * mine - 1 then\n\
             raise exception 'later: execution % found the flaky patch run % times', mine, flaky;\n\
           end if;\n\
         end $$;\n\
         create table later (id int);\n",
        count_up("later_counter")
    )
}

/// `downtime report FILE ARGS` → stdout.
fn rerender(s: &Scratch, file: &Path, args: &[&str]) -> String {
    let mut all = vec!["report", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = s.run(&all);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_failure_in_any_run_fails_the_patch_and_names_the_run() {
    let s = Scratch::new();
    s.patch("0001-flaky.sql", &flaky_patch("n % 2 = 0"));
    s.patch("0002-later.sql", &checks_the_flaky_count());
    let out = s.path().join("report.json");
    let (code, report, stderr) = s.check_json(&[
        "patches",
        "--runs",
        "3",
        "--no-history",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        code, 1,
        "run 2 failed, so the patch fails: {stderr}\n{report}"
    );
    let p = patch(&report, "0001-flaky");
    assert_eq!(p["status"], "failed", "{p}");
    let failed = p["failed_runs"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{p}");
    assert_eq!(failed[0]["run"], 2);
    assert_eq!(failed[0]["runs"], 3);
    assert_eq!(failed[0]["warmup"], false);
    assert_eq!(failed[0]["cache"], "warm");
    assert_eq!(failed[0]["error"]["line"], 2);
    assert_eq!(failed[0]["error"]["sqlstate"], "P0001");
    assert_eq!(failed[0]["error"]["message"], "flaky: execution 2 fails");
    assert_eq!(p["error"]["message"], "flaky: execution 2 fails");
    // The passing runs still give the timing.
    assert_eq!(p["timing"]["warm"]["runs"], 2, "{p}");
    let failures: Vec<&str> = report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        failures
            .iter()
            .any(|f| f.contains("0001-flaky failed in run 2 of 3: flaky: execution 2 fails")),
        "{failures:?}"
    );
    // The later patch applied in runs 1 and 3 (finding the flaky patch run
    // once, then three times) and was skipped in run 2.
    let later = patch(&report, "0002-later");
    assert_eq!(later["status"], "ok", "{later}");
    assert_eq!(later["timing"]["warm"]["runs"], 2);

    // Every format says which run, from the saved report.
    for format in ["text", "markdown", "junit", "github"] {
        let text = rerender(&s, &out, &["--format", format]);
        assert!(
            text.contains("run 2 of 3") && text.contains("flaky: execution 2 fails"),
            "{format}: {text}"
        );
    }
    let dir = s.path().join("html");
    rerender(
        &s,
        &out,
        &["--format", "html", "--output-dir", dir.to_str().unwrap()],
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("failed in run 2 of 3: line 2: flaky: execution 2 fails"),
        "{html}"
    );
    s.assert_clean();
}

#[test]
fn a_failure_in_a_warm_up_run_is_not_dropped() {
    let s = Scratch::new();
    s.patch("0001-flaky.sql", &flaky_patch("n = 1"));
    let (code, report, stderr) =
        s.check_json(&["patches", "--runs", "2", "--warmup", "1", "--no-history"]);
    assert_eq!(code, 1, "{stderr}\n{report}");
    let p = patch(&report, "0001-flaky");
    assert_eq!(p["status"], "failed");
    let failed = p["failed_runs"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{p}");
    assert_eq!(failed[0]["warmup"], true);
    assert_eq!(failed[0]["run"], 1);
    assert_eq!(failed[0]["runs"], 1);
    assert!(
        report["failures"][0]
            .as_str()
            .unwrap()
            .contains("failed in warm-up 1 of 1: flaky: execution 1 fails"),
        "{report}"
    );
    // Both timed runs passed.
    assert_eq!(p["timing"]["warm"]["runs"], 2);

    // A single run that passes has no failed runs at all (each check has
    // its own server, so the count starts again).
    s.patch("0001-flaky.sql", &flaky_patch("n = 2"));
    let (code, report, stderr) = s.check_json(&["patches", "--no-history"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(patch(&report, "0001-flaky").get("failed_runs").is_none());
    s.assert_clean();
}

/// A patch that fingerprints the cluster-level state (read the way any
/// client would, not the way downtime does), records it in
/// `cluster_fingerprint` in the `postgres` database and compares it with
/// the fingerprint recorded first: another fingerprint fails the patch.
/// When it did compare with an earlier one, it says so by creating the role
/// `guard_compared_with_N_earlier`, which the run's notes then show (a
/// cluster-level change like any other, undone after the run).
fn cluster_guard() -> String {
    format!(
        r#"create extension if not exists dblink;
do $$
declare
  this_db oid := (select oid from pg_database where datname = current_database());
  now text := (select md5(string_agg(x, E'\n' order by x)) from (
    select format('role %s %s %s %s %s %s %s %s', rolname, rolsuper, rolinherit, rolcreaterole,
                  rolcreatedb, rolcanlogin, rolconnlimit, coalesce(rolvaliduntil, 'infinity')) x
      from pg_authid
    union all select format('member %s %s %s', roleid::regrole, member::regrole, admin_option)
      from pg_auth_members
    union all select format('database %s %s %s %s %s %s', datname, datdba::regrole, datallowconn,
                            datistemplate, datconnlimit, datacl)
      from pg_database where oid <> this_db
    union all select format('setting %s %s %s', (select datname from pg_database where oid = setdatabase),
                            setrole::regrole, setconfig)
      from pg_db_role_setting where setdatabase <> this_db
    union all select format('comment %s %s', classoid::regclass, description) from pg_shdescription
      where objoid <> this_db
    union all select format('tablespace %s %s %s', spcname, spcowner::regrole, spcacl) from pg_tablespace
  ) state);
  earlier int;
  first text;
begin
  select e.earlier, e.first into earlier, first from dblink({TO_POSTGRES},
    'create table if not exists cluster_fingerprint (n serial, fingerprint text);
     select count(*)::int, (select fingerprint from cluster_fingerprint order by n limit 1)
       from cluster_fingerprint') as e(earlier int, first text);
  perform dblink_exec({TO_POSTGRES},
    format('insert into cluster_fingerprint (fingerprint) values (%L)', now));
  if earlier > 0 and first is distinct from now then
    raise exception 'the cluster differs from the one the first run started with';
  elsif earlier > 0 then
    execute format('create role %I nologin', 'guard_compared_with_' || earlier || '_earlier');
  end if;
end $$;
"#
    )
}

/// Patches that change the cluster outside their database in every way
/// the runs must undo (and a subscription, which would keep its copy from
/// being dropped), after [`cluster_guard`], which fails when a run starts
/// from another cluster than the first.
fn cluster_changing_patches(s: &Scratch) {
    s.baseline(
        "create role legacy_reader nologin;\n\
         comment on role legacy_reader is 'reads the old reports';\n\
         create table orders (id int);\n",
    );
    s.patch("0001-guard.sql", &cluster_guard());
    s.patch(
        "0002-database.sql",
        "create database reports;\n\
         alter database reports set work_mem = '1MB';\n\
         comment on database reports is 'for the reporting team';\n\
         create subscription reports_feed connection 'dbname=nowhere' publication p\n\
           with (connect = false);\n",
    );
    // The session's own role loses its login (an expired password) and
    // becomes read-only by default: the next run could not even connect.
    s.patch(
        "0003-roles.sql",
        &format!(
            "create role app_reader nologin;\n\
             alter role app_reader set work_mem = '8MB';\n\
             grant pg_read_all_data to app_reader;\n\
             grant connect on database postgres to app_reader;\n\
             comment on role app_reader is 'the read-only application';\n\
             drop role legacy_reader;\n\
             do $$ begin\n\
               execute format('alter role %I set default_transaction_read_only = on', current_user);\n\
               execute format('alter role %I connection limit 7 valid until %L', current_user, '2001-01-01');\n\
               execute format('comment on role %I is %L', current_user, 'patched');\n\
             end $$;\n\
             alter database {TEMPLATE_DB} set default_transaction_read_only = on;\n\
             alter database template1 rename to template1_moved;\n\
             alter database template1_moved with connection limit 3;\n\
             comment on database template1_moved is 'moved';\n"
        ),
    );
}

/// Three runs of [`cluster_changing_patches`]: each applies, the guard
/// compared run 2 with run 1 (run 3 too, but no note follows the last run),
/// and the notes say what was undone.
fn assert_three_runs_from_the_same_cluster(report: &serde_json::Value) {
    for id in ["0001-guard", "0002-database", "0003-roles"] {
        let p = patch(report, id);
        assert_eq!(p["status"], "ok", "{p}");
        assert_eq!(
            p["timing"]["warm"]["runs"], 3,
            "{id} applied in every run: {p}"
        );
    }
    let notes = report["notes"].to_string();
    for said in [
        "0001-guard changes the cluster outside its database (role guard_compared_with_1_earlier created)",
        "0002-database changes the cluster outside its database",
        "database reports created",
        "0003-roles changes the cluster outside its database",
        "role app_reader created",
        "role legacy_reader dropped",
        "database template1 renamed to template1_moved",
    ] {
        assert!(notes.contains(said), "{said}: {notes}");
    }
}

#[test]
fn every_run_starts_from_the_same_cluster() {
    let s = Scratch::new();
    cluster_changing_patches(&s);
    let (code, report, stderr) = s.check_json(&["patches", "--runs", "3", "--no-history"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_three_runs_from_the_same_cluster(&report);

    // The guard does see a different cluster: run again after the database
    // patch, in the same run (nothing undone yet), it fails.
    std::fs::remove_file(s.patches().join("0003-roles.sql")).unwrap();
    s.patch("0003-guard-again.sql", &cluster_guard());
    let (code, report, stderr) = s.check_json(&["patches", "--no-history"]);
    assert_eq!(code, 1, "{stderr}\n{report}");
    assert_eq!(patch(&report, "0001-guard")["status"], "ok");
    let e = &patch(&report, "0003-guard-again")["error"];
    assert_eq!(e["line"], 2, "{e}");
    assert_eq!(
        e["message"], "the cluster differs from the one the first run started with",
        "{e}"
    );
    s.assert_clean();
}

/// The Docker backend's server is reached over TCP with a password: a run
/// that left downtime's role with an expired password, or the template
/// renamed, would stop the next one at once.
#[test]
fn every_run_starts_from_the_same_cluster_on_docker() {
    require_docker("every_run_starts_from_the_same_cluster_on_docker");
    let s = Scratch::new();
    cluster_changing_patches(&s);
    let (code, report, stderr) = s.check_json(&[
        "patches",
        "--backend",
        "docker",
        "--image",
        DOCKER_IMAGE,
        "--runs",
        "3",
        "--no-history",
    ]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["postgres"]["backend"], "docker");
    assert_three_runs_from_the_same_cluster(&report);
}

/// Host safety holds under repeated runs too: a patch that would create,
/// change or drop a tablespace (a directory on the host) is refused at its
/// line before any run, and the directory it names is never touched.
#[test]
fn a_tablespace_is_refused_before_any_run() {
    let s = Scratch::new();
    // Empty and the server user's: CREATE TABLESPACE would succeed if sent.
    let dir = s.path().join("tablespace");
    std::fs::create_dir(&dir).unwrap();
    if nix::unistd::geteuid().is_root() {
        let pg = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("a postgres user (the server runs as it under root)");
        nix::unistd::chown(&dir, Some(pg.uid), Some(pg.gid)).unwrap();
    }
    s.patch("0001-ok.sql", "create table ok (id int);");
    let cases = [
        (
            format!(
                "create table t (id int);\ncreate tablespace archive location '{}';\n",
                dir.display()
            ),
            2,
        ),
        (
            "create table t (id int);\n\nalter tablespace pg_default set (random_page_cost = 1);\n"
                .to_string(),
            3,
        ),
        ("drop tablespace if exists archive;\n".to_string(), 1),
    ];
    for (sql, line) in cases {
        s.patch("0002-space.sql", &sql);
        let (code, report, stderr) = s.check_json(&["patches", "--runs", "3", "--no-history"]);
        assert_eq!(code, 1, "{sql}\n{stderr}\n{report}");
        let p = patch(&report, "0002-space");
        assert_eq!(p["error"]["line"], line, "{sql}: {p}");
        let message = p["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("tablespace"), "{sql}: {message}");
        let failures = report["failures"].to_string();
        assert!(
            failures.contains(&format!("patches/0002-space.sql:{line}")),
            "the verdict names file:line: {failures}"
        );
        // Refused before anything ran: the harmless first patch did not run
        // in any of the three runs.
        let ok = patch(&report, "0001-ok");
        assert_eq!(ok["status"], "skipped", "{report}");
        assert!(ok["timing"].is_null(), "{ok}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "{sql}");
        s.assert_clean();
    }
}

#[test]
fn a_patch_may_not_change_the_template_nor_connect_to_it() {
    // Opening the sealed template again changes it: the runs stop, naming
    // the patch. (A rename or drop is seen at its statement, and rolled
    // back with the patch: tests/caps.rs.)
    let s = Scratch::new();
    s.patch(
        "0001-reopen.sql",
        &format!("select 1;\nalter database {TEMPLATE_DB} with allow_connections true;"),
    );
    let out = s.run(&["check", "patches", "--no-history"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("0001-reopen.sql")
            && stderr.contains(&format!("database {TEMPLATE_DB} changed"))
            && stderr.contains("the template every run is copied from"),
        "{stderr}"
    );
    s.assert_clean();

    // The template takes no connections: a patch cannot reach into it.
    let t = Scratch::new();
    t.patch(
        "0001-reach.sql",
        &format!(
            "create extension dblink;\n\
             select dblink_connect(format('host=%s port=%s user=%s dbname={TEMPLATE_DB}',\n\
               split_part(current_setting('unix_socket_directories'), ',', 1),\n\
               current_setting('port'), current_user));\n"
        ),
    );
    let (code, report, stderr) = t.check_json(&["patches", "--no-history"]);
    assert_eq!(code, 1, "{stderr}\n{report}");
    let e = &patch(&report, "0001-reach")["error"];
    assert_eq!(e["line"], 2, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("not currently accepting connections"),
        "{text}"
    );
    t.assert_clean();
}

#[test]
fn what_cannot_be_undone_stops_the_runs_naming_the_patch() {
    let s = Scratch::new();
    s.patch("0001-ok.sql", "create table t (id int);");
    s.patch(
        "0002-demote.sql",
        "do $$ begin execute format('alter role %I nosuperuser', current_user); end $$;",
    );
    let out = s.run(&["check", "patches", "--runs", "2", "--no-history"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // The role keeps reading the catalogues it owns, but cannot make
    // itself superuser again.
    assert!(
        stderr.contains("0002-demote.sql")
            && stderr.contains("changed in a run, and it cannot be undone before the next run")
            && stderr.contains("must be superuser"),
        "{stderr}"
    );
    s.assert_clean();
}

#[test]
fn every_patch_starts_in_a_reset_session_and_downtime_keeps_its_privileges() {
    let s = Scratch::new();
    s.baseline(
        "create role app_owner nologin;\n\
         create role app_reader nologin;\n\
         create schema app authorization app_owner;\n\
         create table app.orders (id int);\n\
         insert into app.orders select generate_series(1, 1000);\n\
         alter table app.orders owner to app_owner;\n\
         create schema private;\n\
         create table private.secrets (id int);\n",
    );
    let still_me =
        "do $$ begin if current_user <> session_user or current_setting('role') <> 'none' \
                    then raise exception 'still running as %', current_user; end if; end $$;";
    s.patch("0001-set-role.sql", "set role app_reader;");
    s.patch(
        "0002-check.sql",
        &format!("{still_me}\ncreate table made_by_downtime (id int);"),
    );
    s.patch("0003-session.sql", "set session authorization app_reader;");
    s.patch(
        "0004-check.sql",
        &format!("{still_me}\nalter table made_by_downtime add column c int;"),
    );
    // The patch's own role survives downtime's trace queries, inside its
    // transaction and outside one.
    let is_owner = |when: &str| {
        format!(
            "do $$ begin if current_user <> 'app_owner' then \
             raise exception 'lost the role {when}: %', current_user; end if; end $$;"
        )
    };
    s.patch(
        "0005-as-owner.sql",
        &format!(
            "set role app_owner;\n\
             alter table app.orders add column note text;\n\
             {}\n\
             create index concurrently orders_note on app.orders (note);\n\
             {}\n",
            is_owner("in the transaction"),
            is_owner("outside a transaction")
        ),
    );
    s.patch(
        "0006-leave-things.sql",
        "create temp table scratch (id int);\n\
         prepare q as select 1;\n\
         listen somewhere;\n\
         select pg_advisory_lock(42);\n\
         declare c cursor with hold for select 1;\n\
         set work_mem = '1234kB';\n",
    );
    s.patch(
        "0007-nothing-left.sql",
        "create temp table scratch (id int);\n\
         prepare q as select 2;\n\
         declare c cursor with hold for select 2;\n\
         do $$ begin\n\
           if exists (select 1 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid())\n\
             then raise exception 'an advisory lock carried over'; end if;\n\
           if exists (select 1 from pg_listening_channels()) then raise exception 'a LISTEN carried over'; end if;\n\
           if current_setting('work_mem') = '1234kB' then raise exception 'a setting carried over'; end if;\n\
         end $$;\n",
    );
    s.patch(
        "0008-discard.sql",
        "create temp table d (id int);\ndiscard all;\ncreate temp table d (id int);",
    );
    // An unprivileged role's statement fails as the patch's failure; the
    // prechecks (resolving the table) ran as downtime and did not fail.
    s.patch(
        "0009-unprivileged.sql",
        "set role app_reader;\nalter table private.secrets add column x int;",
    );
    let (code, report, stderr) = s.check_json(&["patches", "--no-history"]);
    assert_eq!(code, 1, "{stderr}\n{report}");
    for id in [
        "0001-set-role",
        "0002-check",
        "0003-session",
        "0004-check",
        "0005-as-owner",
        "0006-leave-things",
        "0007-nothing-left",
        "0008-discard",
    ] {
        assert_eq!(patch(&report, id)["status"], "ok", "{}", patch(&report, id));
    }
    let owner = patch(&report, "0005-as-owner");
    let cic = &owner["statements"][3];
    assert_eq!(cic["outside_transaction"], true);
    assert_eq!(cic["locks"][0]["relation"], "app.orders", "{owner}");
    assert_eq!(cic["locks"][0]["mode"], "ShareUpdateExclusive");
    let discard = &patch(&report, "0008-discard")["statements"][1];
    assert_eq!(discard["kind"], "DiscardStmt");
    assert_eq!(discard["outside_transaction"], true);
    let e = &patch(&report, "0009-unprivileged")["error"];
    assert_eq!(e["sqlstate"], "42501", "{e}");
    assert_eq!(e["line"], 2);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("permission denied for schema private"),
        "{e}"
    );
    s.assert_clean();
}
