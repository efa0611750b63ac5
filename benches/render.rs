//! Rendering a 500-patch report from JSON: Markdown, HTML (with charts) and
//! JUnit, plus reading the JSON itself.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use downtime::report::{self, Format, Report};

/// The checked-in report's patches, repeated to 500.
fn big_report() -> Report {
    let mut r: Report = serde_json::from_str(include_str!("../tests/fixtures/report.json"))
        .expect("the fixture is a report");
    let originals = r.patches.clone();
    r.patches = (0..500)
        .map(|i| {
            let mut p = originals[i % originals.len()].clone();
            p.id = format!("{i:04}-{}", p.id);
            p
        })
        .collect();
    r
}

fn bench(c: &mut Criterion) {
    let r = big_report();
    let json = r.to_json();
    let mut g = c.benchmark_group("render-500-patches");
    g.sample_size(20);
    g.bench_function("json-parse", |b| {
        b.iter(|| serde_json::from_str::<Report>(black_box(&json)).map(|r| r.patches.len()))
    });
    for f in [Format::Markdown, Format::Html, Format::Junit] {
        g.bench_function(format!("{f:?}").to_lowercase(), |b| {
            b.iter(|| report::render(black_box(&r), f).len())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
