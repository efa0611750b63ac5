//! The probe's thread: its sessions, the open-loop schedule, the long
//! reader, and the commands that start and stop traffic around a patch.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Notify};
use tokio_postgres::{CancelToken, Client};

use super::script::{Part, Step};
use super::workload::{self, ProbeQuery};
use super::{monitor, LockWait, PatchWait, ProbeInfo, ProbeOptions, Recording, Sample};
use crate::error::{Error, Result};
use crate::measure::OwnSessions;
use crate::staging::tls::Tls;

/// How long the queries still in line may take to finish after a patch.
const DRAIN: Duration = Duration::from_secs(5);

/// What the probe is asked to do.
pub(super) enum Command {
    Begin {
        tables: Vec<String>,
        reply: oneshot::Sender<Result<()>>,
    },
    End {
        reply: oneshot::Sender<Recording>,
    },
    Stop,
}

/// A query due to be sent: its index, when it was due, and its sequence
/// number (which variant, which random draw).
struct Job {
    query: usize,
    due: Instant,
    n: u64,
}

/// A query being sent, by the server process of its session.
pub(super) struct InFlight {
    pub query: usize,
    due: Instant,
    pub started: Instant,
    pub lock: Option<LockWait>,
    pub checked: Option<Instant>,
}

/// State the sessions, the schedule and the monitor share (one thread).
#[derive(Default)]
pub(super) struct Shared {
    pub active: bool,
    queue: VecDeque<Job>,
    samples: Vec<Sample>,
    pub in_flight: HashMap<i32, InFlight>,
    pub patch_waits: Vec<PatchWait>,
    cancels: HashMap<i32, CancelToken>,
    /// The long reader's server process, while it holds its locks.
    pub long_pid: Option<i32>,
    /// When the long reader's transaction ended and its locks went.
    long_released: Option<Instant>,
    lost: Option<String>,
}

type State = Rc<RefCell<Shared>>;

/// Run the probe until it is told to stop; `ready` gets the workload, or
/// why the probe could not start. Its sessions are counted in `own`.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    config: tokio_postgres::Config,
    tls: Tls,
    patch_pid: i32,
    named: Vec<String>,
    opts: ProbeOptions,
    own: OwnSessions,
    commands: mpsc::UnboundedReceiver<Command>,
    ready: oneshot::Sender<Result<(ProbeInfo, Vec<ProbeQuery>)>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(Error::Server(format!("cannot start the probe: {e}"))));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let started = start(config, tls, patch_pid, &named, &opts, own).await;
        let probe = match started {
            Ok(p) => p,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        if ready
            .send(Ok((probe.info.clone(), probe.queries.to_vec())))
            .is_err()
        {
            return;
        }
        probe.serve(commands).await;
    });
}

/// The running probe, inside its thread.
struct Traffic {
    opts: ProbeOptions,
    info: ProbeInfo,
    queries: Rc<[ProbeQuery]>,
    state: State,
    wake: Rc<Notify>,
    long: Rc<Client>,
    /// The connector of the sessions and their cancel requests.
    tls: Tls,
}

/// Connect, derive the workload, and start the sessions, the schedule and
/// the monitor (idle until a patch begins).
async fn start(
    mut config: tokio_postgres::Config,
    tls: Tls,
    patch_pid: i32,
    named: &[String],
    opts: &ProbeOptions,
    own: OwnSessions,
) -> Result<Traffic> {
    config.options(format!(
        "-c statement_timeout={}",
        opts.statement_cap.as_millis().clamp(1, i32::MAX as u128)
    ));
    let first = connect(&config, &tls, &own).await?;
    super::script::check_functions(&first.0, &opts.scripts).await?;
    let (info, queries) = workload::derive(&first.0, named, opts).await?;
    let queries: Rc<[ProbeQuery]> = queries.into();
    let state: State = Rc::default();
    let jobs = Rc::new(Notify::new());
    let wake = Rc::new(Notify::new());
    let mut clients = vec![first];
    for _ in 1..opts.sessions {
        clients.push(connect(&config, &tls, &own).await?);
    }
    for (client, pid) in clients {
        state
            .borrow_mut()
            .cancels
            .insert(pid, client.cancel_token());
        let worker = Worker {
            client,
            pid,
            config: config.clone(),
            tls: tls.clone(),
            own: own.clone(),
            queries: queries.clone(),
            state: state.clone(),
            jobs: jobs.clone(),
        };
        tokio::task::spawn_local(worker.run());
    }
    tokio::task::spawn_local(schedule(
        queries.clone(),
        state.clone(),
        jobs.clone(),
        wake.clone(),
    ));
    let (watcher, _) = connect(&config, &tls, &own).await?;
    tokio::task::spawn_local(monitor::watch(
        watcher,
        patch_pid,
        queries.clone(),
        state.clone(),
        opts.threshold,
    ));
    let long = Rc::new(connect(&config, &tls, &own).await?.0);
    Ok(Traffic {
        opts: opts.clone(),
        info,
        queries,
        state,
        wake,
        long,
        tls,
    })
}

/// A session on the copy, and its server process, counted among
/// downtime's own (`own`) before it is made.
async fn connect(
    config: &tokio_postgres::Config,
    tls: &Tls,
    own: &OwnSessions,
) -> Result<(Client, i32)> {
    own.opening();
    let (client, connection) = config
        .connect(tls.clone())
        .await
        .map_err(|e| Error::Server(format!("the probe cannot connect to the copy: {e}")))?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    // The probe, not the patch, is the victim of a deadlock between them
    // (where the role may set it).
    let _ = client
        .batch_execute("/*downtime*/ set deadlock_timeout = '100ms'")
        .await;
    let pid = backend_pid(&client).await?;
    own.opened(pid);
    Ok((client, pid))
}

async fn backend_pid(client: &Client) -> Result<i32> {
    Ok(client
        .query_one("/*downtime*/ select pg_catalog.pg_backend_pid()", &[])
        .await?
        .get(0))
}

impl Traffic {
    /// Answer commands until told to stop.
    async fn serve(self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut window: Option<(Instant, Instant, Vec<String>)> = None;
        while let Some(c) = commands.recv().await {
            match c {
                Command::Begin { tables, reply } => {
                    let began = self.begin(&tables).await;
                    window = began.as_ref().ok().cloned();
                    let _ = reply.send(began.map(|_| ()));
                }
                Command::End { reply } => {
                    let patch_end = Instant::now();
                    let (idle_start, patch_start, long_tables) =
                        window.take().unwrap_or((patch_end, patch_end, Vec::new()));
                    let _ = reply.send(
                        self.end(idle_start, patch_start, patch_end, long_tables)
                            .await,
                    );
                }
                Command::Stop => break,
            }
        }
    }

    /// Idle baseline, then the long reader: returns when the idle window
    /// started, when the patch may start, and the long reader's tables.
    async fn begin(&self, tables: &[String]) -> Result<(Instant, Instant, Vec<String>)> {
        {
            let mut s = self.state.borrow_mut();
            s.samples.clear();
            s.patch_waits.clear();
            s.long_released = None;
            s.active = true;
        }
        self.wake.notify_one();
        let idle_start = Instant::now();
        tokio::time::sleep(self.opts.idle).await;
        let mut held = Vec::new();
        if let Some(d) = self.opts.long_query {
            held = self.hold(tables, d).await?;
        }
        Ok((idle_start, Instant::now(), held))
    }

    /// Start the long reader on the pre-existing tables among `tables`,
    /// holding its locks for `d`.
    async fn hold(&self, tables: &[String], d: Duration) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for t in tables {
            let row = self
                .long
                .query_opt(
                    "/*downtime*/ select pg_catalog.format('%I.%I', n.nspname, c.relname), \
                     n.nspname || '.' || c.relname \
                     from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
                     where c.oid = pg_catalog.to_regclass($1) and c.relkind in ('r', 'p', 'm')",
                    &[t],
                )
                .await;
            if let Ok(Some(r)) = row {
                let quoted: String = r.get(0);
                let name: String = r.get(1);
                if !found.iter().any(|(q, _)| *q == quoted) {
                    found.push((quoted, name));
                }
            }
        }
        if found.is_empty() {
            return Ok(Vec::new());
        }
        self.long.batch_execute("/*downtime*/ begin").await?;
        for (t, _) in &found {
            self.long
                .batch_execute(&format!("/*downtime*/ select from {t} limit 0"))
                .await?;
        }
        let pid = backend_pid(&self.long).await?;
        self.state.borrow_mut().long_pid = Some(pid);
        let sleep = format!(
            "/*downtime*/ select pg_catalog.pg_sleep({})",
            d.as_secs_f64()
        );
        // The reader runs while the patch does; `end` stops it.
        let long = self.long.clone();
        let state = self.state.clone();
        tokio::task::spawn_local(async move {
            let _ = long.simple_query(&sleep).await;
            // Its locks go when its transaction ends, as a report's do.
            let _ = long.batch_execute("/*downtime*/ rollback").await;
            let mut s = state.borrow_mut();
            s.long_pid = None;
            s.long_released = Some(Instant::now());
        });
        // Named as the rest of the report names relations.
        Ok(found.into_iter().map(|(_, name)| name).collect())
    }

    /// Stop the schedule, let what is in line finish (cancelled after
    /// [`DRAIN`]), end the long reader, and hand back the recording.
    async fn end(
        &self,
        idle_start: Instant,
        patch_start: Instant,
        patch_end: Instant,
        long_tables: Vec<String>,
    ) -> Recording {
        self.state.borrow_mut().active = false;
        let deadline = Instant::now() + DRAIN;
        let mut cancelled = false;
        loop {
            let busy = {
                let s = self.state.borrow();
                !s.queue.is_empty() || !s.in_flight.is_empty()
            };
            if !busy {
                break;
            }
            if Instant::now() > deadline && !cancelled {
                cancelled = true;
                self.state.borrow_mut().queue.clear();
                let tokens: Vec<CancelToken> =
                    self.state.borrow().cancels.values().cloned().collect();
                for t in tokens {
                    let _ = t.cancel_query(self.tls.clone()).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut problem = None;
        let long_running = self.state.borrow().long_pid.is_some();
        if long_running {
            // The patch ended first (it gave up, say): the reader ends now.
            let _ = self
                .long
                .cancel_token()
                .cancel_query(self.tls.clone())
                .await;
            if let Err(e) = self.long.batch_execute("/*downtime*/ rollback").await {
                problem = Some(format!("ending the long reader: {e}"));
            }
            self.state.borrow_mut().long_pid = None;
        }
        let mut s = self.state.borrow_mut();
        if cancelled {
            problem = Some(format!(
                "application queries still waited {} s after the patch ended: cancelled",
                DRAIN.as_secs()
            ));
        }
        Recording {
            idle_start,
            patch_start,
            patch_end,
            samples: std::mem::take(&mut s.samples),
            patch_waits: std::mem::take(&mut s.patch_waits),
            long_tables,
            long_released: s.long_released.take(),
            problem: s.lost.take().or(problem),
        }
    }
}

/// Put each query in line at its rate, staggered, while a patch runs (or
/// its idle baseline is measured).
async fn schedule(queries: Rc<[ProbeQuery]>, state: State, jobs: Rc<Notify>, wake: Rc<Notify>) {
    let periods: Vec<Duration> = queries
        .iter()
        .map(|q| Duration::from_secs_f64(1.0 / q.rate.max(0.01)))
        .collect();
    let mut seq = vec![0u64; queries.len()];
    loop {
        if queries.is_empty() || !state.borrow().active {
            wake.notified().await;
            continue;
        }
        let start = Instant::now();
        let n = queries.len() as u32;
        let mut next: Vec<Instant> = periods
            .iter()
            .enumerate()
            .map(|(i, p)| start + p.mul_f64(f64::from(i as u32) / f64::from(n)))
            .collect();
        while state.borrow().active {
            let (i, due) = next
                .iter()
                .enumerate()
                .min_by_key(|(_, t)| **t)
                .map(|(i, t)| (i, *t))
                .unwrap_or((0, start));
            tokio::time::sleep_until(due.into()).await;
            if !state.borrow().active {
                break;
            }
            state.borrow_mut().queue.push_back(Job {
                query: i,
                due,
                n: seq[i],
            });
            seq[i] += 1;
            next[i] = due + periods[i];
            jobs.notify_one();
        }
    }
}

/// One application session: takes queries from the line and sends them.
struct Worker {
    client: Client,
    pid: i32,
    config: tokio_postgres::Config,
    tls: Tls,
    own: OwnSessions,
    queries: Rc<[ProbeQuery]>,
    state: State,
    jobs: Rc<Notify>,
}

impl Worker {
    async fn run(mut self) {
        loop {
            let job = self.state.borrow_mut().queue.pop_front();
            let Some(job) = job else {
                self.jobs.notified().await;
                continue;
            };
            self.state.borrow_mut().in_flight.insert(
                self.pid,
                InFlight {
                    query: job.query,
                    due: job.due,
                    started: Instant::now(),
                    lock: None,
                    checked: None,
                },
            );
            let result = send(&self.client, &self.queries[job.query], job.n).await;
            self.record(job, result);
            if self.client.is_closed() && !self.reconnect().await {
                return;
            }
        }
    }

    /// Record the query `job` as it ended.
    fn record(&self, job: Job, result: std::result::Result<(), String>) {
        let ended = Instant::now();
        let mut s = self.state.borrow_mut();
        let flight = s.in_flight.remove(&self.pid);
        s.samples.push(Sample {
            query: flight.as_ref().map_or(job.query, |f| f.query),
            due: flight.as_ref().map_or(job.due, |f| f.due),
            started: flight.as_ref().map_or(ended, |f| f.started),
            ended,
            error: result.err(),
            lock: flight.and_then(|f| f.lock),
        });
    }

    /// A new session for one whose connection ended (a patch may
    /// terminate backends); `false` when none can be had.
    async fn reconnect(&mut self) -> bool {
        self.own.closed(self.pid);
        match connect(&self.config, &self.tls, &self.own).await {
            Ok((c, pid)) => {
                let mut s = self.state.borrow_mut();
                s.cancels.remove(&self.pid);
                s.cancels.insert(pid, c.cancel_token());
                self.client = c;
                self.pid = pid;
                true
            }
            Err(e) => self.lose(e.to_string()),
        }
    }

    fn lose(&self, why: String) -> bool {
        let mut s = self.state.borrow_mut();
        s.cancels.remove(&self.pid);
        s.lost
            .get_or_insert(format!("a probe session was lost: {why}"));
        false
    }
}

/// Send query `q` (its `n`th time), in a transaction rolled back when it
/// writes; `Err` is the server's message.
async fn send(client: &Client, q: &ProbeQuery, n: u64) -> std::result::Result<(), String> {
    if let (true, [Step::Rotate(v)]) = (q.rolled_back, q.steps.as_slice()) {
        // One statement: begin, it and rollback pipelined, one round trip.
        if let Some(sql) = v.get((n % v.len().max(1) as u64) as usize) {
            let (_, done, _) = futures_util::future::join3(
                client.batch_execute("/*downtime*/ begin"),
                client.simple_query(sql),
                client.batch_execute("/*downtime*/ rollback"),
            )
            .await;
            return done.map(|_| ()).map_err(|e| describe(&e));
        }
    }
    if q.rolled_back {
        client
            .batch_execute("/*downtime*/ begin")
            .await
            .map_err(|e| describe(&e))?;
    }
    let mut vars: HashMap<&str, i64> = HashMap::new();
    let mut result = Ok(());
    for (k, step) in q.steps.iter().enumerate() {
        let sql = match step {
            Step::Rotate(v) if !v.is_empty() => v[(n % v.len() as u64) as usize].clone(),
            Step::Rotate(_) => continue,
            Step::Set { name, lo, hi } => {
                let span = (hi - lo) as u64 + 1;
                let draw = mix(n, k as u64) % span.max(1);
                vars.insert(name.as_str(), lo + draw as i64);
                continue;
            }
            Step::Template(parts) => parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => t.clone(),
                    Part::Var(v) => vars.get(v.as_str()).copied().unwrap_or(0).to_string(),
                })
                .collect(),
        };
        if let Err(e) = client.simple_query(&sql).await {
            result = Err(describe(&e));
            break;
        }
    }
    if q.rolled_back || result.is_err() {
        let _ = client.batch_execute("/*downtime*/ rollback").await;
    }
    result
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

/// A well-spread number from a sequence number and a step (SplitMix64).
fn mix(n: u64, k: u64) -> u64 {
    let mut z = n
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(k.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
