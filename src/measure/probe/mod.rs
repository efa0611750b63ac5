//! Simulated application traffic while each patch applies: what the
//! application would suffer, measured rather than inferred.
//!
//! A [`Probe`] runs on its own thread (its own runtime and connections to
//! the copy), so its queries neither wait for nor delay downtime's own
//! work. Before each patch it measures an idle baseline, optionally starts
//! a long-running reader on the tables the patch names (the lock queue a
//! report query makes on production), then sends its queries at a steady
//! rate whatever happens to earlier ones (open loop: a query that cannot
//! start because every session is blocked waits in line, as a request
//! waits for a pooled connection). A monitor asks the server, for every
//! query in flight past half the threshold, which lock it waits on and who
//! holds it. Every query runs in a transaction that is rolled back, so the
//! copy is left as the patches alone leave it.

mod monitor;
mod script;
mod summary;
mod traffic;
mod workload;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use script::{parse_script_file, Script};
pub use summary::{
    lock_waits, summarise, LongQueryWait, PatchProbe, ProbePoint, RelationStall, StatementProbe,
};
pub use workload::{Kind, ProbeQuery};

use crate::error::{Error, Result};
use crate::pg::locks::LockMode;

/// How the probe runs.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Connections sending the application's queries.
    pub sessions: usize,
    /// Queries per second, per query of the workload (a script's own rate
    /// wins).
    pub rate: f64,
    /// A query that waits on a lock longer than this is blocked.
    pub threshold: Duration,
    /// Hold a reader on every table a patch names for this long, from the
    /// start of the patch.
    pub long_query: Option<Duration>,
    /// Derive readers and writers from the schema.
    pub derived: bool,
    /// The application's own queries.
    pub scripts: Vec<Script>,
    /// At most this many tables get derived queries.
    pub max_tables: usize,
    /// The idle baseline measured before each patch.
    pub idle: Duration,
    /// No probe query runs longer than this (the run's statement cap).
    pub statement_cap: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            sessions: 8,
            rate: 10.0,
            threshold: Duration::from_millis(50),
            long_query: None,
            derived: true,
            scripts: Vec::new(),
            max_tables: 16,
            idle: Duration::from_millis(300),
            statement_cap: Duration::from_secs(3600),
        }
    }
}

/// The workload and its settings, as recorded at the top of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeInfo {
    pub sessions: usize,
    pub rate_per_query: f64,
    pub threshold_seconds: f64,
    pub idle_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_query_seconds: Option<f64>,
    /// Each query of the workload, as sent.
    pub queries: Vec<QueryInfo>,
    /// Why a table got no derived queries (empty, too many tables, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One query of the workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryInfo {
    pub label: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    pub rate: f64,
    pub sql: String,
}

/// The lock a probe query was seen waiting on.
#[derive(Debug, Clone, PartialEq)]
pub struct LockWait {
    /// The relation, when the wait names one (a row lock names the table
    /// through the query).
    pub relation: Option<String>,
    /// What the application query asked for: a table lock mode, or a row.
    pub wanted: Wanted,
    /// The patch's session is among those it waits for (holding the lock,
    /// or queued for it ahead of the query).
    pub behind_patch: bool,
    /// The patch's strongest lock on that relation, held or asked for.
    pub patch_mode: Option<LockMode>,
    /// The patch's session was itself waiting for a lock then.
    pub patch_waiting: bool,
    /// The long-running reader is among those it waits for.
    pub behind_long_query: bool,
    /// When the wait was seen.
    pub seen: Instant,
}

/// What a blocked application query asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Table(LockMode),
    /// A row the patch has written or locked.
    Row,
}

/// One query the probe sent.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Index into the workload's queries.
    pub query: usize,
    /// When it was due: its latency counts from here.
    pub due: Instant,
    /// When a session took it (later than `due` when every session was busy).
    pub started: Instant,
    pub ended: Instant,
    pub error: Option<String>,
    pub lock: Option<LockWait>,
}

impl Sample {
    pub fn latency(&self) -> f64 {
        self.ended.saturating_duration_since(self.due).as_secs_f64()
    }
}

/// The patch's session seen waiting for a lock (behind the long reader,
/// say), while application queries waited.
#[derive(Debug, Clone)]
pub struct PatchWait {
    pub relation: Option<String>,
    pub mode: Option<LockMode>,
    pub behind_long_query: bool,
    pub seen: Instant,
}

/// Everything the probe saw around one patch.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The idle baseline started here; the patch started at `patch_start`.
    pub idle_start: Instant,
    pub patch_start: Instant,
    pub patch_end: Instant,
    pub samples: Vec<Sample>,
    pub patch_waits: Vec<PatchWait>,
    /// The long reader's tables, when one was held.
    pub long_tables: Vec<String>,
    /// When the long reader's transaction ended, if it ended on its own
    /// before the probe stopped.
    pub long_released: Option<Instant>,
    /// Set when the probe could not run as asked (its sessions lost, say).
    pub problem: Option<String>,
}

/// The tables a patch's statements name (as written), for the probe's
/// workload and its long reader.
pub fn tables_named(patch: &crate::patch::Patch) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for st in &patch.statements {
        let Ok(parsed) = pg_query::parse(&st.sql, 0) else {
            continue;
        };
        for t in parsed.tables() {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// A probe running against one copy.
pub struct Probe {
    commands: tokio::sync::mpsc::UnboundedSender<traffic::Command>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub info: ProbeInfo,
    /// The workload's queries, by index.
    pub queries: Vec<ProbeQuery>,
    pub options: ProbeOptions,
}

impl Probe {
    /// Connect to the copy (`config`), derive the workload (tables the
    /// patches name, `named`, first), and wait for traffic to be asked for.
    /// `patch_pid` is the server process applying the patches; the probe's
    /// own sessions are counted in `own`, so they are not taken for the
    /// patch's.
    pub async fn start(
        config: tokio_postgres::Config,
        tls: crate::staging::tls::Tls,
        patch_pid: i32,
        named: Vec<String>,
        options: ProbeOptions,
        own: crate::measure::OwnSessions,
    ) -> Result<Probe> {
        let (commands, receiver) = tokio::sync::mpsc::unbounded_channel();
        let (ready, started) = tokio::sync::oneshot::channel();
        let opts = options.clone();
        let thread = std::thread::Builder::new()
            .name("downtime-probe".into())
            .spawn(move || traffic::run(config, tls, patch_pid, named, opts, own, receiver, ready))
            .map_err(|e| Error::Server(format!("cannot start the probe: {e}")))?;
        let (info, queries) = match started.await {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(Error::Server("the probe stopped while starting".into()));
            }
        };
        Ok(Probe {
            commands,
            thread: Some(thread),
            info,
            queries,
            options,
        })
    }

    /// Measure the idle baseline, start the long reader on `tables` (names
    /// as the patch writes them) when asked, and start the traffic: the
    /// patch may start when this returns.
    pub async fn begin(&self, tables: Vec<String>) -> Result<()> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(traffic::Command::Begin { tables, reply })?;
        answer
            .await
            .map_err(|_| Error::Server("the probe stopped".into()))?
    }

    /// Stop the traffic (the patch has ended), let the queries in line
    /// finish, and hand back what was seen.
    pub async fn end(&self) -> Result<Recording> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(traffic::Command::End { reply })?;
        answer
            .await
            .map_err(|_| Error::Server("the probe stopped".into()))
    }

    fn send(&self, c: traffic::Command) -> Result<()> {
        self.commands
            .send(c)
            .map_err(|_| Error::Server("the probe stopped".into()))
    }

    /// Close the probe's connections and its thread.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        let _ = self.commands.send(traffic::Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.shut();
    }
}
