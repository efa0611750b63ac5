//! End-to-end overhead: downtime applying the bundled patches (tracing
//! included) against plain `psql -1 -f` on equally fresh copies of the same
//! baseline, on the same embedded server. Patches that must run outside a
//! transaction are left out, since `psql -1` cannot run them.

use std::cell::Cell;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use downtime::cancel::Cancel;
use downtime::measure::{self, ApplyOptions, Session, Watch};
use downtime::staging::embedded::{Embedded, EmbeddedOptions};
use downtime::staging::{self, Backend, Baseline};

fn bench(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = Embedded::start_blocking(&EmbeddedOptions::default()).expect("embedded server");
    let baseline = Baseline::Script(root.join("patches/baseline.sql"));
    rt.block_on(staging::prepare_template(
        &server,
        &baseline,
        &Cancel::never(),
    ))
    .expect("baseline");
    let (patches, _) = downtime::check::load_patches(
        &[root.join("patches")],
        &[root.join("patches/baseline.sql")],
    )
    .expect("patches");
    let patches: Vec<_> = patches
        .into_iter()
        .filter(|p| p.statements.iter().all(|s| !s.analysis.outside_transaction))
        .collect();
    let admin = rt.block_on(staging::connect_admin(&server)).expect("admin");
    let version: i32 = rt
        .block_on(admin.query_one("select current_setting('server_version_num')::int", &[]))
        .expect("version")
        .get(0);
    let bin = downtime::staging::embedded::find_bin_dir(None).expect("binaries");
    let copies = Cell::new(0u32);
    let fresh_copy = || {
        copies.set(copies.get() + 1);
        let name = format!("bench_copy_{}", copies.get());
        rt.block_on(staging::create_copy(&admin, &name, version))
            .expect("copy");
        name
    };
    let drop_copy = |name: &str| rt.block_on(staging::drop_copy(&admin, name)).expect("drop");
    let own_time = Cell::new(Duration::ZERO);
    let wall_time = Cell::new(Duration::ZERO);

    let mut g = c.benchmark_group("apply-bundled-patches");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("downtime", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let copy = fresh_copy();
                let opts = ApplyOptions {
                    statement_cap: Duration::from_secs(600),
                };
                let session = rt
                    .block_on(Session::open(&server, &copy, opts.statement_cap))
                    .expect("connect");
                let watch = Watch {
                    admin: &admin,
                    backend: &server,
                    clock_dbid: None,
                    templates: Vec::new(),
                };
                let started = Instant::now();
                for p in &patches {
                    let run =
                        rt.block_on(measure::apply(&session, &watch, p, &opts, &Cancel::never()));
                    assert!(run.error.is_none(), "{:?}", run.error);
                    own_time.set(own_time.get() + Duration::from_secs_f64(run.seconds()));
                }
                let elapsed = started.elapsed();
                wall_time.set(wall_time.get() + elapsed);
                total += elapsed;
                rt.block_on(session.close());
                drop_copy(&copy);
            }
            total
        })
    });
    g.bench_function("psql -1 -f", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let copy = fresh_copy();
                let started = Instant::now();
                for p in &patches {
                    let status = Command::new(bin.join("psql"))
                        .args(server.client_args(&copy))
                        .args([
                            "-X",
                            "-q",
                            "-1",
                            "-v",
                            "ON_ERROR_STOP=1",
                            "-o",
                            "/dev/null",
                            "-f",
                        ])
                        .arg(&p.file.path)
                        .status()
                        .expect("psql");
                    assert!(status.success(), "psql failed on {}", p.file.path.display());
                }
                total += started.elapsed();
                drop_copy(&copy);
            }
            total
        })
    });
    g.finish();
    if own_time.get() > Duration::ZERO {
        eprintln!(
            "downtime wall time / the patches' own apply time: {:.3} (tracing and transaction handling)",
            wall_time.get().as_secs_f64() / own_time.get().as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
