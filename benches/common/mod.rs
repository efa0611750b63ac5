//! What the benches that apply patches share: a runtime, an embedded server
//! with a baseline in its template, fresh copies of it, and a traced
//! session's watch. (Each bench includes this file; not every bench uses
//! every part.)
#![allow(dead_code)]

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use downtime::cancel::Cancel;
use downtime::measure::{ApplyOptions, Session, Watch};
use downtime::patch::Patch;
use downtime::staging::embedded::{Embedded, EmbeddedOptions};
use downtime::staging::{self, Admin, Baseline};

/// An embedded server with a baseline loaded into its template.
pub struct Staged {
    pub rt: tokio::runtime::Runtime,
    pub server: Embedded,
    pub admin: Admin,
    pub version: i32,
    pub opts: ApplyOptions,
    copies: Cell<u32>,
}

impl Staged {
    /// Start a server and load the SQL script `baseline` into its template.
    pub fn start(baseline: &Path) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let server =
            Embedded::start_blocking(&EmbeddedOptions::default()).expect("embedded server");
        rt.block_on(staging::prepare_template(
            &server,
            &Baseline::Script(baseline.to_path_buf()),
            &Cancel::never(),
        ))
        .expect("baseline");
        let admin = rt.block_on(staging::connect_admin(&server)).expect("admin");
        let version: i32 = rt
            .block_on(admin.query_one("select current_setting('server_version_num')::int", &[]))
            .expect("version")
            .get(0);
        Staged {
            rt,
            server,
            admin,
            version,
            opts: ApplyOptions {
                statement_cap: Duration::from_secs(600),
            },
            copies: Cell::new(0),
        }
    }

    /// A fresh copy of the template; its name.
    pub fn fresh_copy(&self) -> String {
        self.copies.set(self.copies.get() + 1);
        let name = format!("bench_copy_{}", self.copies.get());
        self.rt
            .block_on(staging::create_copy(&self.admin, &name, self.version))
            .expect("copy");
        name
    }

    pub fn drop_copy(&self, name: &str) {
        self.rt
            .block_on(staging::drop_copy(&self.admin, name))
            .expect("drop");
    }

    /// A session on `copy`, as downtime opens one to apply patches.
    pub fn open(&self, copy: &str) -> Session {
        self.rt
            .block_on(Session::open(&self.server, copy, self.opts.statement_cap))
            .expect("connect")
    }

    /// What the tracer watches besides the session; `clock_dbid` is the
    /// copy's oid when the server's clock is on.
    pub fn watch(&self, clock_dbid: Option<u32>) -> Watch<'_> {
        Watch {
            admin: &self.admin,
            backend: &self.server,
            clock_dbid,
            templates: Vec::new(),
            copy: None,
        }
    }
}

/// The project's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled patches, as `check` reads them.
pub fn bundled_patches() -> Vec<Patch> {
    let root = root();
    downtime::check::load_patches(
        &[root.join("patches")],
        &[root.join("patches/baseline.sql")],
    )
    .expect("patches")
    .0
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
