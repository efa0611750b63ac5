//! Tracing's cost on the two kinds of patch where it used to dominate, end
//! to end on the embedded server, each beside the same statements sent
//! without tracing on an equally fresh copy (same run, same server):
//!
//! - a data patch of 5,000 single-row INSERTs into one table;
//! - a schema of 2,000 tables with 4,000 indexes, patched by 200
//!   `ALTER TABLE … ADD COLUMN`.
//!
//! The server's clock (`pg_stat_statements`) is on, as `check` runs it. At
//! the end each case prints downtime's time on the patch against the
//! statements' own, and tracing's cost per statement.

mod common;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Staged;
use criterion::{criterion_group, criterion_main, Criterion};
use downtime::cancel::Cancel;
use downtime::measure;
use downtime::patch::discover::{Layout, Position};
use downtime::patch::{Patch, PatchFile};
use downtime::staging::Backend;

/// One case: the baseline schema and the patch applied to copies of it.
struct Case {
    name: &'static str,
    baseline: String,
    patch: String,
}

fn inserts() -> Case {
    let mut patch = String::new();
    for i in 1..=5000 {
        patch.push_str(&format!(
            "insert into item (id, sku, note, qty) values ({i}, 'sku-{i}', 'row {i}', {});\n",
            i % 17
        ));
    }
    Case {
        name: "5000-inserts",
        baseline: "create table item (id bigint primary key, sku text not null unique, note text, qty int not null default 0);\n\
                   create index item_qty on item (qty);\n"
            .into(),
        patch,
    }
}

fn wide_schema() -> Case {
    let mut baseline = String::new();
    for i in 1..=2000 {
        baseline.push_str(&format!(
            "create table t{i} (id int primary key, a int, b text);\ncreate index t{i}_a on t{i} (a);\n"
        ));
    }
    let mut patch = String::new();
    for i in 1..=200 {
        patch.push_str(&format!(
            "alter table t{} add column added_{i} int;\n",
            i * 10
        ));
    }
    Case {
        name: "2000-tables-200-alters",
        baseline,
        patch,
    }
}

/// Read `sql` as a patch of downtime's own layout, from a file in `dir`.
fn load(dir: &Path, sql: &str) -> Patch {
    let path = dir.join("0001-patch.sql");
    std::fs::write(&path, sql).expect("patch file");
    downtime::patch::load(PatchFile {
        path,
        id: "0001-patch".into(),
        layout: Layout::Numbered,
        position: Position(vec![1]),
    })
    .expect("patch")
}

fn run_case(c: &mut Criterion, case: &Case) {
    let dir = tempfile::tempdir().expect("scratch");
    let baseline_path: PathBuf = dir.path().join("baseline.sql");
    std::fs::write(&baseline_path, &case.baseline).expect("baseline file");
    let patch = load(dir.path(), &case.patch);
    let st = Staged::start(&baseline_path);
    let clock = st.server.has_statement_stats();
    if clock {
        st.rt
            .block_on(
                st.admin.batch_execute(
                    "create extension if not exists pg_stat_statements schema public",
                ),
            )
            .expect("pg_stat_statements");
    }
    let statements = patch.statements.len() as f64;
    // Totals over every iteration: downtime's wall time on the patch, the
    // statements' time as downtime measured it, and the plain sends.
    let traced = Cell::new(Duration::ZERO);
    let own = Cell::new(Duration::ZERO);
    let plain = Cell::new(Duration::ZERO);
    let (traced_runs, plain_runs) = (Cell::new(0u32), Cell::new(0u32));

    let mut g = c.benchmark_group(format!("tracing/{}", case.name));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.warm_up_time(Duration::from_secs(1));
    g.bench_function("downtime", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let copy = st.fresh_copy();
                let dbid = clock.then(|| {
                    st.rt
                        .block_on(downtime::pg::catalog::database_oid(&st.admin, &copy))
                        .expect("copy oid")
                        .expect("copy exists")
                });
                let session = st.open(&copy);
                let watch = st.watch(dbid);
                let started = Instant::now();
                let run = st.rt.block_on(measure::apply(
                    &session,
                    &watch,
                    &patch,
                    &st.opts,
                    &Cancel::never(),
                ));
                let elapsed = started.elapsed();
                assert!(run.error.is_none(), "{:?}", run.error);
                assert_eq!(run.statements.len(), patch.statements.len());
                traced.set(traced.get() + elapsed);
                own.set(own.get() + Duration::from_secs_f64(run.seconds()));
                traced_runs.set(traced_runs.get() + 1);
                total += elapsed;
                st.rt.block_on(session.close());
                st.drop_copy(&copy);
            }
            total
        })
    });
    g.bench_function("statements alone", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let copy = st.fresh_copy();
                let session = st.open(&copy);
                let started = Instant::now();
                st.rt
                    .block_on(async {
                        session.client.batch_execute("begin").await?;
                        for st in &patch.statements {
                            session.client.simple_query(&st.sql).await?;
                        }
                        session.client.batch_execute("commit").await
                    })
                    .expect("statements");
                let elapsed = started.elapsed();
                plain.set(plain.get() + elapsed);
                plain_runs.set(plain_runs.get() + 1);
                total += elapsed;
                st.rt.block_on(session.close());
                st.drop_copy(&copy);
            }
            total
        })
    });
    g.finish();
    let per = |d: &Cell<Duration>, n: &Cell<u32>| d.get().as_secs_f64() / f64::from(n.get().max(1));
    let (t, o, p) = (
        per(&traced, &traced_runs),
        per(&own, &traced_runs),
        per(&plain, &plain_runs),
    );
    eprintln!(
        "{}: downtime {t:.3} s on the patch, its statements {o:.3} s as downtime timed them, \
         {p:.3} s sent alone; downtime / alone = {:.2}, downtime / its statements = {:.2}; \
         tracing {:.3} ms per statement (clock {})",
        case.name,
        t / p,
        t / o,
        (t - p) / statements * 1000.0,
        if clock { "on" } else { "off" },
    );
}

fn bench(c: &mut Criterion) {
    run_case(c, &inserts());
    run_case(c, &wide_schema());
}

criterion_group!(benches, bench);
criterion_main!(benches);
