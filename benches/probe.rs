//! What the application probe costs the timing it sits beside: the bundled
//! patches' apply time (as downtime reports it) on fresh copies of the same
//! baseline, without and with `--probe`'s default traffic, in one run. The
//! medians of both and their ratio are printed at the end.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use downtime::cancel::Cancel;
use downtime::measure::probe::{self, Probe, ProbeOptions};
use downtime::measure::{self, ApplyOptions, Session, Watch};
use downtime::staging::embedded::{Embedded, EmbeddedOptions};
use downtime::staging::{self, Backend, Baseline};

/// Alternating passes without and with the probe, before criterion's own.
const PAIRS: usize = 12;

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

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
    let admin = rt.block_on(staging::connect_admin(&server)).expect("admin");
    let version: i32 = rt
        .block_on(admin.query_one("select current_setting('server_version_num')::int", &[]))
        .expect("version")
        .get(0);
    let copies = RefCell::new(0u32);
    let opts = ApplyOptions {
        statement_cap: Duration::from_secs(600),
    };
    // Apply every bundled patch on a fresh copy; the patches' apply time.
    let pass = |with_probe: bool| -> f64 {
        *copies.borrow_mut() += 1;
        let copy = format!("bench_probe_{}", copies.borrow());
        rt.block_on(staging::create_copy(&admin, &copy, version))
            .expect("copy");
        let session = rt
            .block_on(Session::open(&server, &copy, opts.statement_cap))
            .expect("connect");
        let watch = Watch {
            admin: &admin,
            backend: &server,
            clock_dbid: None,
            templates: Vec::new(),
        };
        let running = with_probe.then(|| {
            let named = patches.iter().flat_map(probe::tables_named).collect();
            rt.block_on(Probe::start(
                server.config(&copy),
                session.tls.clone(),
                session.pid,
                named,
                ProbeOptions::default(),
            ))
            .expect("probe")
        });
        let mut seconds = 0.0;
        for p in &patches {
            if let Some(pr) = &running {
                rt.block_on(pr.begin(probe::tables_named(p)))
                    .expect("begin");
            }
            let run = rt.block_on(measure::apply(&session, &watch, p, &opts, &Cancel::never()));
            assert!(run.error.is_none(), "{:?}", run.error);
            if let Some(pr) = &running {
                let rec = rt.block_on(pr.end()).expect("end");
                assert!(!rec.samples.is_empty(), "the probe sent nothing");
            }
            seconds += run.seconds();
        }
        if let Some(pr) = running {
            pr.stop();
        }
        rt.block_on(session.close());
        rt.block_on(staging::drop_copy(&admin, &copy))
            .expect("drop");
        seconds
    };
    // Side by side first: passes without and with the probe alternate, so
    // a change in the machine's load falls on both alike.
    // `cargo test --benches` runs each bench once: one pair then.
    let pairs = if std::env::args().any(|a| a == "--bench") {
        PAIRS
    } else {
        1
    };
    let mut ratios = Vec::new();
    let (mut alone, mut probed) = (Vec::new(), Vec::new());
    for _ in 0..pairs {
        let a = pass(false);
        let b = pass(true);
        ratios.push(b / a);
        alone.push(a);
        probed.push(b);
    }
    eprintln!(
        "{pairs} alternating pairs: apply time without probe {:.4} s, with probe {:.4} s (medians); median of the pairs' ratios {:.3}",
        median(&alone),
        median(&probed),
        median(&ratios)
    );
    let without = RefCell::new(Vec::new());
    let with = RefCell::new(Vec::new());
    let mut g = c.benchmark_group("probe-cost");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    for (name, probe_on, record) in [
        ("apply without probe", false, &without),
        ("apply with probe", true, &with),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let s = pass(probe_on);
                    record.borrow_mut().push(s);
                    total += Duration::from_secs_f64(s);
                }
                total
            })
        });
    }
    g.finish();
    let (a, b) = (median(&without.borrow()), median(&with.borrow()));
    eprintln!(
        "bundled patches' apply time, median of {} / {} passes: without probe {a:.4} s, with probe {b:.4} s, ratio {:.3}",
        without.borrow().len(),
        with.borrow().len(),
        b / a
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
