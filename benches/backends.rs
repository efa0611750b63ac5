//! A whole `check` of the bundled patches (baseline loaded, no cache) on
//! the local backend (a private cluster: initdb, start, stop) against the
//! server backend (databases made and dropped on a server that runs
//! already, reached over TCP with a SCRAM password), side by side in one
//! run: what staging on the user's server costs or saves.

#[path = "../tests/common/tcp.rs"]
mod tcp;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use criterion::{criterion_group, criterion_main, Criterion};
use downtime::cancel::Cancel;
use downtime::cli::{check_plan, Cli, Command};

/// The plan of `downtime check ARGS` on the bundled patches.
fn plan(args: &[&str]) -> downtime::run::RunPlan {
    let patches = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("patches");
    let mut argv = vec!["downtime", "check", patches.to_str().unwrap(), "--no-cache"];
    argv.extend_from_slice(args);
    match Cli::parse_from(argv).command {
        Command::Check(a) => check_plan(&a).expect("plan").run,
        _ => unreachable!("a check command line"),
    }
}

fn bench(c: &mut Criterion) {
    downtime::ui::set_quiet(true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let password = "bench-secret";
    let server = tcp::TcpServer::with_password(password);
    let url = format!(
        "postgresql://postgres:{password}@127.0.0.1:{}/postgres",
        server.port
    );
    let local = plan(&[]);
    let remote = plan(&["--backend", "server", "--url", &url]);
    let mut g = c.benchmark_group("check-bundled-patches");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(40));
    for (name, p) in [("local", &local), ("server", &remote)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let outcome = rt
                    .block_on(downtime::run::execute(p, &Cancel::never()))
                    .expect("run");
                assert!(outcome.aborted.is_none(), "{:?}", outcome.aborted);
                assert_eq!(outcome.results.len(), 7);
            })
        });
    }
    g.finish();
    assert_eq!(
        server
            .databases()
            .iter()
            .filter(|d| d.starts_with("downtime_"))
            .count(),
        0,
        "the server backend left databases behind"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
