//! What work costs on this staging server, measured once: seconds per byte
//! of a table rewritten, scanned and updated, and per row of an index
//! built (n·log₂n). Where staging holds none of a table's rows, these
//! give its work's time at production's size; they are kept in the cache
//! under the server's version and settings, so a machine measures them once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::staging::{self, Backend};

/// Rows of the table the costs are measured on.
const ROWS: i64 = 200_000;

/// The costs of work on this server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Costs {
    /// Seconds per byte of table rewritten (its indexes rebuilt with it).
    pub rewrite_per_byte: f64,
    /// Seconds per byte of table read by a validation scan.
    pub scan_per_byte: f64,
    /// Seconds per byte of table updated in one statement.
    pub write_per_byte: f64,
    /// Seconds per n·log₂n of the rows of an index built.
    pub index_per_row_log: f64,
    /// The server version and settings they were measured under.
    pub server_version: String,
    /// When they were measured (RFC 3339), and whether this run did.
    pub measured_at: String,
    #[serde(skip)]
    pub cached: bool,
}

/// The costs for this server: from the cache under `cache_root` when it
/// has them for this version and these settings, else measured now (and
/// stored there).
pub async fn costs(
    backend: &dyn Backend,
    admin: &tokio_postgres::Client,
    version: &str,
    settings: &BTreeMap<String, String>,
    cache_root: Option<&Path>,
) -> Result<Costs> {
    let file = cache_root.map(|root| root.join(format!("costs-{}.json", key(version, settings))));
    if let Some(f) = &file {
        let cached = std::fs::read_to_string(f)
            .ok()
            .and_then(|t| serde_json::from_str::<Costs>(&t).ok());
        if let Some(mut c) = cached {
            c.cached = true;
            return Ok(c);
        }
    }
    let costs = measure(backend, admin, version).await?;
    if let Some(f) = &file {
        let text = serde_json::to_string_pretty(&costs).unwrap_or_default();
        if let Err(e) = crate::fsutil::replace_private(f, "baseline cache", text.as_bytes()) {
            crate::ui::warn(&format!("the measured costs were not cached: {e}"));
        }
    }
    Ok(costs)
}

fn key(version: &str, settings: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(version.as_bytes());
    for (k, v) in settings {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    hex::encode(&h.finalize()[..8])
}

/// Measure the costs on a database of their own, dropped afterwards.
async fn measure(
    backend: &dyn Backend,
    admin: &tokio_postgres::Client,
    version: &str,
) -> Result<Costs> {
    let name = backend.db_name("costs", std::process::id() as usize);
    admin
        .batch_execute(&format!("create database {}", staging::ident(&name)))
        .await?;
    let measured = work(backend, &name, version).await;
    let dropped = staging::drop_copy(admin, &name).await;
    let costs = measured?;
    dropped?;
    Ok(costs)
}

async fn work(backend: &dyn Backend, db: &str, version: &str) -> Result<Costs> {
    let c = staging::connect(backend, db).await?;
    c.batch_execute(&format!(
        "create table costs (id bigint primary key, a int not null, t text not null);
         insert into costs select g, g % 1000, md5(g::text) from generate_series(1, {ROWS}) g"
    ))
    .await?;
    // Each its own query: VACUUM refuses a transaction block, and several
    // statements in one query are one.
    c.batch_execute("vacuum analyze costs").await?;
    c.batch_execute("checkpoint").await?;
    let row = c
        .query_one("select pg_catalog.pg_relation_size('costs')", &[])
        .await?;
    let size = row.get::<_, i64>(0) as f64;
    let timed = |sql: &'static str| {
        let c = &c;
        async move {
            let t0 = Instant::now();
            c.batch_execute(sql).await?;
            Ok::<f64, Error>(t0.elapsed().as_secs_f64())
        }
    };
    let scan = timed("alter table costs add constraint costs_a check (a >= 0)").await?;
    let index = timed("create index costs_a_idx on costs (a)").await?;
    let rewrite = timed("alter table costs alter column a type bigint").await?;
    let write = timed("update costs set t = t").await?;
    let n = ROWS as f64;
    Ok(Costs {
        rewrite_per_byte: rewrite / size,
        scan_per_byte: scan / size,
        write_per_byte: write / size,
        index_per_row_log: index / (n * n.log2()),
        server_version: version.to_string(),
        measured_at: crate::time::now_rfc3339(),
        cached: false,
    })
}

impl Costs {
    /// One line for the run's notes.
    pub fn describe(&self) -> String {
        let mb = |per_byte: f64| 1.0 / per_byte / 1e6;
        format!(
            "work costs on this server ({}{}): rewrite {:.0} MB/s, validation scan {:.0} MB/s, \
             update {:.0} MB/s, index build {:.2} µs per row·log₂(rows)",
            if self.cached {
                "cached, measured "
            } else {
                "measured "
            },
            self.measured_at.get(..10).unwrap_or(&self.measured_at),
            mb(self.rewrite_per_byte),
            mb(self.scan_per_byte),
            mb(self.write_per_byte),
            self.index_per_row_log * 1e6
        )
    }
}
