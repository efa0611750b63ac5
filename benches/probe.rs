//! What the application probe costs the timing it sits beside: the bundled
//! patches' apply time (as downtime reports it) on fresh copies of the same
//! baseline, without and with `--probe`'s default traffic, in one run. The
//! medians of both and their ratio are printed at the end.

mod common;

use std::cell::RefCell;
use std::time::Duration;

use common::{median, Staged};
use criterion::{criterion_group, criterion_main, Criterion};
use downtime::cancel::Cancel;
use downtime::measure;
use downtime::measure::probe::{self, Probe, ProbeOptions};
use downtime::staging::Backend;

/// Alternating passes without and with the probe, before criterion's own.
const PAIRS: usize = 12;

fn bench(c: &mut Criterion) {
    let st = Staged::start(&common::root().join("patches/baseline.sql"));
    let patches = common::bundled_patches();
    // Apply every bundled patch on a fresh copy; the patches' apply time.
    let pass = |with_probe: bool| -> f64 {
        let copy = st.fresh_copy();
        let session = st.open(&copy);
        let watch = st.watch(None);
        let running = with_probe.then(|| {
            let named = patches.iter().flat_map(probe::tables_named).collect();
            st.rt
                .block_on(Probe::start(
                    st.server.config(&copy),
                    session.tls.clone(),
                    session.pid,
                    named,
                    ProbeOptions::default(),
                    downtime::measure::OwnSessions::default(),
                ))
                .expect("probe")
        });
        let mut seconds = 0.0;
        for p in &patches {
            if let Some(pr) = &running {
                st.rt
                    .block_on(pr.begin(probe::tables_named(p)))
                    .expect("begin");
            }
            let run = st.rt.block_on(measure::apply(
                &session,
                &watch,
                p,
                &st.opts,
                &Cancel::never(),
            ));
            assert!(run.error.is_none(), "{:?}", run.error);
            if let Some(pr) = &running {
                let rec = st.rt.block_on(pr.end()).expect("end");
                assert!(!rec.samples.is_empty(), "the probe sent nothing");
            }
            seconds += run.seconds();
        }
        if let Some(pr) = running {
            pr.stop();
        }
        st.rt.block_on(session.close());
        st.drop_copy(&copy);
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
