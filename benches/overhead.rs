//! End-to-end overhead: downtime applying the bundled patches (tracing
//! included) against plain `psql -1 -f` on equally fresh copies of the same
//! baseline, on the same embedded server. Patches that must run outside a
//! transaction are left out, since `psql -1` cannot run them.

mod common;

use std::cell::Cell;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Staged;
use criterion::{criterion_group, criterion_main, Criterion};
use downtime::cancel::Cancel;
use downtime::measure;
use downtime::staging::Backend;

fn bench(c: &mut Criterion) {
    let st = Staged::start(&common::root().join("patches/baseline.sql"));
    let patches: Vec<_> = common::bundled_patches()
        .into_iter()
        .filter(|p| p.statements.iter().all(|s| !s.analysis.outside_transaction))
        .collect();
    let bin = downtime::staging::embedded::find_bin_dir(None).expect("binaries");
    let own_time = Cell::new(Duration::ZERO);
    let wall_time = Cell::new(Duration::ZERO);

    let mut g = c.benchmark_group("apply-bundled-patches");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("downtime", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let copy = st.fresh_copy();
                let session = st.open(&copy);
                let watch = st.watch(None);
                let started = Instant::now();
                for p in &patches {
                    let run = st.rt.block_on(measure::apply(
                        &session,
                        &watch,
                        p,
                        &st.opts,
                        &Cancel::never(),
                    ));
                    assert!(run.error.is_none(), "{:?}", run.error);
                    own_time.set(own_time.get() + Duration::from_secs_f64(run.seconds()));
                }
                let elapsed = started.elapsed();
                wall_time.set(wall_time.get() + elapsed);
                total += elapsed;
                st.rt.block_on(session.close());
                st.drop_copy(&copy);
            }
            total
        })
    });
    g.bench_function("psql -1 -f", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let copy = st.fresh_copy();
                let started = Instant::now();
                for p in &patches {
                    let status = Command::new(bin.join("psql"))
                        .args(st.server.client_args(&copy))
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
                st.drop_copy(&copy);
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
