//! What a statement is read as from its words agrees with what its parse
//! tree says: on generated statements of the shapes read from words (and
//! close variants the words must give up on), and on every statement of
//! the bundled patches, the corpus, the fixtures and the splitter bench's
//! generated patch. Wherever pg_query parses a statement, the analysis
//! downtime uses equals the one from the tree alone.

use std::path::{Path, PathBuf};

use downtime::patch::statement::analyse_tree;
use downtime::patch::{analyse, split::split};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// The analysis agrees with the tree's, for SQL the parser accepts.
fn agrees(sql: &str) -> Result<(), TestCaseError> {
    if pg_query::parse(sql, 0).is_err() {
        return Ok(());
    }
    let tree = analyse_tree(sql);
    let used = analyse(sql);
    prop_assert_eq!(&used, &tree, "{}", sql);
    Ok(())
}

fn ident() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(&["t", "orders", "Bug", "name", "comment", "data", "x_1", "t$1"][..])
            .prop_map(str::to_string),
        prop::sample::select(
            &[
                "\"Mixed\"",
                "\"with space\"",
                "\"a\"\"b\"",
                "\"order\"",
                "\"t\""
            ][..]
        )
        .prop_map(str::to_string),
    ]
}

fn relation() -> impl Strategy<Value = String> {
    (prop::option::of(ident()), ident()).prop_map(|(schema, name)| match schema {
        Some(s) => format!("{s}.{name}"),
        None => name,
    })
}

fn value() -> impl Strategy<Value = String> {
    prop::sample::select(
        &[
            "1",
            "-5",
            "- 5",
            "+5",
            "2.5e3",
            ".5",
            "0x1F",
            "1_000",
            "'a''b'",
            "E'it\\'s'",
            "$$x$$",
            "$q$ ; $q$",
            "null",
            "true",
            "FALSE",
            "default",
            "B'101'",
            "X'1F'",
            "n'x'",
            "now()",
            "1 + 2",
            "'1'::int",
            "(select 1)",
            "((1))",
            "current_date",
            "U&'\\0041'",
            "array[1]",
            "'a'\n'b'",
        ][..],
    )
    .prop_map(str::to_string)
}

fn insert() -> impl Strategy<Value = String> {
    let row = prop::collection::vec(value(), 1..4).prop_map(|v| format!("({})", v.join(", ")));
    (
        relation(),
        prop::option::of(prop::collection::vec(ident(), 1..3)),
        prop::collection::vec(row, 1..3),
        prop::sample::select(
            &[
                "",
                " on conflict do nothing",
                " returning 1",
                " order by 1",
                " limit 1",
            ][..],
        ),
        prop::sample::select(&["values", "VALUES"][..]),
    )
        .prop_map(|(rel, cols, rows, tail, values)| {
            let cols = cols
                .map(|c| format!(" ({})", c.join(", ")))
                .unwrap_or_default();
            format!("insert into {rel}{cols} {values} {}{tail}", rows.join(", "))
        })
}

fn other_insert() -> impl Strategy<Value = String> {
    (
        relation(),
        prop::sample::select(
            &[
                "select 1",
                "default values",
                "(a) select 1",
                "as x values (1)",
                "overriding system value values (1)",
                "(a[1]) values (1)",
            ][..],
        ),
    )
        .prop_map(|(rel, rest)| format!("insert into {rel} {rest}"))
}

fn write() -> impl Strategy<Value = String> {
    (
        prop::sample::select(
            &[
                "update",
                "UPDATE",
                "update only",
                "delete from",
                "delete from only",
            ][..],
        ),
        relation(),
        prop::sample::select(&["", " *", " x", " as x"][..]),
        prop::sample::select(
            &[
                "",
                " where id = 1",
                " where current of c",
                " returning id",
                " using u where u.id = 1",
                " from u where u.id = 1",
            ][..],
        ),
    )
        .prop_map(|(verb, rel, alias, tail)| {
            if verb.starts_with("update") || verb.starts_with("UPDATE") {
                let set = if tail.starts_with(" using") {
                    " set a = (select b from c where d)".to_string()
                } else {
                    " set a = 1, b = (select max(x) from y where z = 1)".to_string()
                };
                let tail = tail.replace(" using", " from");
                format!("{verb} {rel}{alias}{set}{tail}")
            } else {
                let tail = tail.replace(" from", " using");
                format!("{verb} {rel}{alias}{tail}")
            }
        })
}

fn alter_command() -> impl Strategy<Value = String> {
    prop::sample::select(
        &[
            "add column c int",
            "add c int not null default 0",
            "add column if not exists c text default 'x'",
            "add column c int references p(id)",
            "add column c int check (c > 0)",
            "add column c int unique",
            "add column c int primary key",
            "add column c int constraint c_nn not null",
            "add column c int generated always as identity",
            "add constraint k check (v > 0)",
            "add constraint k check (v > 0) not valid",
            "add check (v > 0) no inherit",
            "add constraint fk foreign key (a) references p(id)",
            "add constraint fk foreign key (a) references p(id) on delete cascade not valid",
            "add foreign key (a) references p deferrable initially deferred",
            "add constraint pk primary key (id)",
            "add primary key using index i",
            "add constraint u unique (a) using index tablespace ts",
            "add constraint u unique using index i",
            "add unique nulls not distinct (a)",
            "add constraint x exclude using gist (r with &&)",
            "add constraint k check (v > 0) not enforced",
            "validate constraint k",
            "validate constraint \"K\"",
            "alter column c set not null",
            "alter c set not null",
            "alter column c drop not null",
            "alter column c type bigint using c::bigint",
            "alter column c set data type text",
            "alter column c set default now()",
            "alter column c set statistics 100",
            "alter constraint k deferrable",
            "attach partition p2 for values from (1) to (2)",
            "attach partition s.p2 default",
            "detach partition p2",
            "detach partition p2 concurrently",
            "drop column c",
            "drop column if exists c cascade",
            "drop constraint k",
            "owner to someone",
            "enable trigger all",
            "disable row level security",
            "set logged",
            "set (fillfactor = 70)",
            "set schema s",
            "rename to u",
            "rename column a to b",
            "set tablespace ts",
            "cluster on i",
            "inherit p",
            "replica identity full",
        ][..],
    )
    .prop_map(str::to_string)
}

fn alter_table() -> impl Strategy<Value = String> {
    (
        prop::sample::select(&["", "if exists ", "only ", "if exists only "][..]),
        relation(),
        prop::sample::select(&["", " *"][..]),
        prop::collection::vec(alter_command(), 1..4),
    )
        .prop_map(|(pre, rel, star, cmds)| {
            format!("alter table {pre}{rel}{star} {}", cmds.join(", "))
        })
}

fn create() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            prop::sample::select(&["", "unique "][..]),
            prop::sample::select(&["", "concurrently "][..]),
            prop::sample::select(&["", "i ", "if not exists i ", "\"I\" "][..]),
            prop::sample::select(&["", "only "][..]),
            relation(),
            prop::sample::select(
                &[
                    "(a)",
                    "using btree (a, b)",
                    "(lower(a)) where b > 0",
                    "(a) include (b)"
                ][..]
            ),
        )
            .prop_map(|(u, c, name, only, rel, rest)| {
                format!("create {u}index {c}{name}on {only}{rel} {rest}")
            }),
        (
            prop::sample::select(&["", "temp ", "temporary ", "unlogged ", "global temp "][..]),
            prop::sample::select(&["", "if not exists "][..]),
            relation(),
            prop::sample::select(
                &[
                    "(id int primary key, note text default 'a;b')",
                    "(id int, p int references p(id))",
                    "(id int, foreign key (id) references p)",
                    "(like t including all)",
                    "partition of p for values in (1)",
                    "(a int generated always as (1) stored)",
                    "as select 1",
                    "(a) as select 1",
                ][..],
            ),
        )
            .prop_map(|(kind, ine, rel, rest)| format!("create {kind}table {ine}{rel} {rest}")),
        (
            prop::sample::select(&["", "or replace "][..]),
            prop::sample::select(&["function", "procedure"][..]),
            prop::sample::select(
                &[
                    "language plpgsql as $$ begin perform 1; end $$",
                    "language 'plpgsql' as $$ begin null; end $$",
                    "as 'select 1' language sql",
                    "language c as 'lib', 'sym'",
                    "language plpython3u as $$ pass $$",
                    "language \"C\" as 'lib'",
                    "language sql begin atomic select 1; end",
                    "language sql return 1",
                    "as $$ copy t to '/tmp/x' $$ language sql",
                    "set dynamic_library_path = '/x' as 'select 1' language sql",
                    "language plpgsql as $$ begin execute 'copy t from program ''x'''; end $$",
                    "language sql as $$ select pg_read_file('/etc/passwd') $$",
                    "language E'c' as 'x'",
                ][..],
            ),
        )
            .prop_map(|(or, kind, rest)| {
                let returns = if kind == "function" {
                    " returns int"
                } else {
                    ""
                };
                format!("create {or}{kind} f(a int, language text){returns} {rest}")
            }),
    ]
}

fn other() -> impl Strategy<Value = String> {
    prop::sample::select(
        &[
            "set lock_timeout = '2s'",
            "SET LOCAL lock_timeout TO 0",
            "set session statement_timeout = 1",
            "set app.user_id = 5",
            "set search_path to a, b",
            "set \"lock_timeout\" = 1",
            "set time zone 'UTC'",
            "set role r",
            "set session authorization r",
            "set transaction isolation level serializable",
            "set constraints all deferred",
            "set session_preload_libraries = '/x/y.so'",
            "set local_preload_libraries = 'auto_explain'",
            "comment on table t is 'x'",
            "comment on column t.c is 'call pg_read_file(''x'')'",
            "grant select on t to r",
            "grant all on all tables in schema s to r",
            "revoke insert on t from r",
            "grant r to u",
            "drop table t",
            "drop table if exists a, b cascade",
            "drop index concurrently i",
            "drop index i",
            "drop materialized view v",
            "drop function f(int)",
            "drop database d",
            "drop owned by r",
            "drop tablespace ts",
            "drop trigger x on t",
            "select 1",
            "create view v as select 1",
            "copy t from stdin",
            "do $$ begin perform 1; end $$",
        ][..],
    )
    .prop_map(str::to_string)
}

proptest! {
    #![proptest_config(Config { cases: 2000, ..Config::default() })]

    #[test]
    fn words_agree_with_the_tree(sql in prop_oneof![
        insert(), other_insert(), write(), alter_table(), create(), other()
    ]) {
        agrees(&sql)?;
    }
}

fn sql_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            sql_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "sql") {
            out.push(p);
        }
    }
}

#[test]
fn every_known_statement_reads_as_its_tree_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["patches", "tests/corpus", "tests/fixtures"] {
        sql_files(&root.join(dir), &mut files);
    }
    let mut checked = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let Ok(split) = split(&text) else {
            continue;
        };
        for st in split.statements {
            if pg_query::parse(st.text, 0).is_ok() {
                assert_eq!(
                    analyse(st.text),
                    analyse_tree(st.text),
                    "{}: {}",
                    f.display(),
                    st.text
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} statements found");
}
