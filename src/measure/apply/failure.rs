//! How a patch ends early: a statement (or downtime's COMMIT) that fails,
//! one downtime had to stop, a connection or the server lost, a template
//! database renamed. Each ends the patch with its error at the statement it
//! happened at; when the run cannot go on, with a [`Halt`] that says why.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::sync::LazyLock;

use tokio_postgres::error::{ErrorPosition, SqlState};

use super::{Tracer, TxState};
use crate::cancel::{Abort, Ended};
use crate::error::{Error, Result};
use crate::measure::exec::Executed;
use crate::measure::{Halt, PatchError, StatementRun};
use crate::patch::{Statement, Transaction};
use crate::pg::trace::Trace;
use crate::staging::{self, ConnectionEnd};

/// What downtime was sending when something did not complete.
pub(super) enum Stage {
    /// The patch's statement.
    Statement,
    /// downtime's COMMIT after the statement (deferred triggers run there).
    Commit,
    /// downtime's ANALYZE of this relation before the patch (expression
    /// indexes run functions there).
    Analyze(String),
    /// The migration tool's bookkeeping, described.
    Books(String),
}

impl Stage {
    /// What downtime sent, when it was not the statement itself.
    fn what(&self) -> Option<String> {
        match self {
            Stage::Statement => None,
            Stage::Commit => Some(
                "the COMMIT after this statement (deferred constraints and triggers run there)"
                    .into(),
            ),
            Stage::Analyze(name) => Some(format!(
                "downtime's ANALYZE of {name} before the patch (statistics for what earlier patches filled)"
            )),
            Stage::Books(what) => Some(what.clone()),
        }
    }
}

/// Where the failures of a migration without statements are placed (a
/// tool runs a file of comments; its bookkeeping can still fail).
static NO_STATEMENT: LazyLock<Statement> = LazyLock::new(|| Statement {
    line: 1,
    sql: String::new(),
    analysis: Default::default(),
});

/// What became of the patch's session, downtime's admin connection and
/// the server after something failed.
struct Diagnosis {
    /// How the patch's session ended, if it did.
    session: Option<ConnectionEnd>,
    /// How the admin connection ended, if it did.
    admin: Option<ConnectionEnd>,
    server_up: bool,
}

/// A connection the server closed without saying why.
fn closed_silently() -> ConnectionEnd {
    ConnectionEnd {
        sqlstate: None,
        message: "the connection closed without a message from the server".into(),
    }
}

/// The first account of a connection's end that has a SQLSTATE, else the
/// first at all.
fn best<const N: usize>(accounts: [Option<ConnectionEnd>; N]) -> ConnectionEnd {
    let mut known = accounts.into_iter().flatten();
    let all: Vec<ConnectionEnd> = known.by_ref().collect();
    all.iter()
        .find(|e| e.sqlstate.is_some())
        .or(all.first())
        .cloned()
        .unwrap_or_else(closed_silently)
}

/// The error ended the session: its connection closed, or the server said FATAL.
fn ends_session(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || e.code() == Some(&SqlState::ADMIN_SHUTDOWN)
        || e.as_db_error()
            .is_some_and(|d| matches!(d.severity(), "FATAL" | "PANIC"))
}

impl Diagnosis {
    /// Every connection that ended was ended for a reason SQL gave the
    /// server: terminated by `pg_terminate_backend` (57P01 with the server
    /// still up: a fast shutdown says the same, but takes the server with
    /// it), or by a session timeout the patch set (25P03, 57P05, 25P04).
    /// Anything else (a connection closed without a word, a crash of
    /// another server process, the server gone) is not known to be the
    /// patch's doing.
    fn by_patch(&self) -> bool {
        let caused = |end: &ConnectionEnd| match end.sqlstate.as_deref() {
            Some("57P01") => self.server_up,
            Some("25P03" | "57P05" | "25P04") => true,
            _ => false,
        };
        let mut gone = self.session.iter().chain(&self.admin).peekable();
        gone.peek().is_some() && gone.all(caused)
    }

    /// The run can go on with this server: it is up and the admin
    /// connection survived.
    fn usable(&self) -> bool {
        self.server_up && self.admin.is_none()
    }

    /// One sentence on what was lost, `when` ("by this statement", …).
    fn describe(&self, when: &str) -> (String, Option<String>) {
        let said = |e: &ConnectionEnd| match &e.sqlstate {
            Some(code) => format!("{} (SQLSTATE {code})", e.message),
            None => e.message.clone(),
        };
        let server = if self.server_up {
            ""
        } else {
            "; the staging server does not answer"
        };
        let blame = if self.by_patch() {
            ""
        } else {
            "; nothing shows that the patch caused it (was the server or a backend killed from outside?)"
        };
        match (&self.session, &self.admin) {
            (Some(s), admin) => {
                let also = admin
                    .as_ref()
                    .map(|a| format!("; downtime's own connection was closed too: {}", said(a)))
                    .unwrap_or_default();
                (
                    format!(
                        "the session applying the patch was closed {when}: {}{also}{server}{blame}",
                        said(s)
                    ),
                    s.sqlstate.clone(),
                )
            }
            (None, Some(a)) => (
                format!(
                    "downtime's own connection to the staging server was closed {when}: {}{server}{blame}",
                    said(a)
                ),
                a.sqlstate.clone(),
            ),
            (None, None) => (format!("the staging server failed {when}{server}"), None),
        }
    }
}

impl<'a> Tracer<'a> {
    /// Statement `index` of the patch (a placeholder at line 1 for a
    /// migration without statements).
    fn statement_at(&self, index: usize) -> &'a Statement {
        self.patch.statements.get(index).unwrap_or(&NO_STATEMENT)
    }

    /// An error downtime itself reports at `line` (no SQLSTATE, nothing
    /// stopped by downtime).
    pub(super) fn own_error(&self, line: usize, message: String) -> PatchError {
        PatchError {
            message,
            sqlstate: None,
            line,
            statement_line: line,
            detail: None,
            hint: None,
            partially_applied: self.committed_any,
            ended_by: None,
        }
    }

    /// Something downtime sent at `stage` of statement `index` did not
    /// complete: end the patch there.
    pub(super) async fn ended(
        &mut self,
        index: usize,
        executed: Executed,
        stage: &Stage,
    ) -> Result<()> {
        let st = self.statement_at(index);
        match executed {
            Executed::Done(_) => Ok(()),
            Executed::Failed(e) if !ends_session(&e) && !self.client().is_closed() => {
                let mut error = patch_error(&e, st, self.committed_any);
                if e.code() == Some(&SqlState::ACTIVE_SQL_TRANSACTION)
                    && self.mode != Transaction::Split
                {
                    // The tool's transaction refused it: what to change.
                    if let Some(h) =
                        crate::measure::tool::no_transaction_hint(self.patch.file.layout)
                    {
                        error.hint.get_or_insert_with(|| h.to_string());
                    }
                }
                if let Some(what) = stage.what() {
                    error.message = format!("{what} failed: {}", error.message);
                    error.line = st.line;
                }
                self.close_patch(index, error, None, false).await
            }
            Executed::Failed(e) => {
                let d = self.diagnose(Some(&e), None).await;
                let when = match stage.what() {
                    Some(what) => format!("during {what}"),
                    None => "while this statement ran".to_string(),
                };
                self.lost_with(index, &d, &when).await
            }
            Executed::Stopped { abort, ended } => self.stopped(index, abort, ended, stage).await,
        }
    }

    /// downtime's own work on the session or the admin connection failed
    /// after statement `index` ran (or, for the first, before it did).
    /// Never fails itself: whatever can be learnt goes into the run.
    pub(super) async fn lost(&mut self, index: usize, e: Error) {
        // The server's last word, when it ended a connection in reply to
        // one of downtime's own queries.
        let said = e.connection_ended().map(|(code, message)| ConnectionEnd {
            sqlstate: Some(code.to_string()),
            message: message.to_string(),
        });
        let d = self.diagnose(None, said).await;
        let when = if self.ran.is_some() || !self.run.statements.is_empty() {
            "after this statement ran"
        } else {
            "before this statement ran"
        };
        if d.session.is_some() || d.admin.is_some() || !d.server_up {
            let _ = self.lost_with(index, &d, when).await;
            return;
        }
        // Everything is still there: one of downtime's own queries failed.
        let message = format!("downtime's own query {when} failed: {e}");
        let error = self.own_error(self.statement_at(index).line, message.clone());
        let halt = Halt {
            reason: Abort::Infrastructure,
            index,
            ended_by: None,
            message: Some(message),
        };
        let _ = self.close_patch(index, error, Some(halt), false).await;
    }

    /// Look at the session, the admin connection and the server. `error`:
    /// the statement's own; `said`: how the server ended a connection in
    /// reply to one of downtime's queries (the one that is gone; the
    /// session's when both are).
    async fn diagnose(
        &self,
        error: Option<&tokio_postgres::Error>,
        said: Option<ConnectionEnd>,
    ) -> Diagnosis {
        let probe = self.client().simple_query("/*downtime*/ select 1");
        let answered = match tokio::time::timeout(crate::measure::GRACE, probe).await {
            Ok(Ok(_)) => true,
            // An aborted transaction refuses the query, but is there.
            Ok(Err(e)) => !ends_session(&e),
            Err(_) => false,
        };
        let admin_alive = self.watch.admin.alive().await;
        // Also gives the server time to log why it ended a session.
        let server_up = self.watch.server_up().await;
        let backend = self.watch.backend;
        let session_gone = !answered || error.is_some_and(ends_session);
        let (said_session, said_admin) = if session_gone {
            (said, None)
        } else {
            (None, said)
        };
        let session = session_gone.then(|| {
            // What the server said in reply to the statement; else what
            // its log says, or the connection heard last, or the driver's
            // own words: the first that has a SQLSTATE, else the first.
            let replied = error
                .filter(|e| e.as_db_error().is_some())
                .map(ConnectionEnd::of);
            best([
                replied,
                said_session,
                backend.session_end(self.session.pid),
                self.session.ended(),
                error.map(ConnectionEnd::of),
            ])
        });
        let admin = (!admin_alive).then(|| {
            best([
                said_admin,
                backend.session_end(self.watch.admin.pid),
                self.watch.admin.ended(),
            ])
        });
        Diagnosis {
            session,
            admin,
            server_up,
        }
    }

    /// The statement that set the session timeout the server named
    /// (`sqlstate`) when it ended the session, and that setting.
    fn timeout_set_by(&self, sqlstate: Option<&str>) -> Option<(usize, String)> {
        let name = match sqlstate? {
            "25P03" => "idle_in_transaction_session_timeout",
            "57P05" => "idle_session_timeout",
            "25P04" => "transaction_timeout",
            _ => return None,
        };
        let (value, Some(at)) = self.timeouts.get(name)? else {
            return None;
        };
        Some((*at, format!("{name} = {value}")))
    }

    /// End the patch at `index` for a lost connection or server; a session
    /// ended by a timeout the patch set ends it at the statement that set it.
    async fn lost_with(&mut self, index: usize, d: &Diagnosis, when: &str) -> Result<()> {
        let session_state = d.session.as_ref().and_then(|s| s.sqlstate.as_deref());
        let (mut message, sqlstate) = d.describe(when);
        let mut at = self.statement_at(index).line;
        if let Some((set_at, setting)) = self.timeout_set_by(session_state) {
            let st = &self.patch.statements[set_at];
            message = format!("{message}; line {} set {setting}", st.line);
            at = st.line;
        }
        let st = self.statement_at(index);
        let by_patch = d.by_patch();
        let halt = (!(by_patch && d.usable())).then(|| Halt {
            reason: if by_patch {
                Abort::Broken
            } else {
                Abort::Infrastructure
            },
            index,
            ended_by: None,
            message: Some(message.clone()),
        });
        let hint = match (&d.session, &d.admin) {
            (None, Some(_)) if by_patch => Some(
                "a patch must not end other sessions (pg_terminate_backend on every pid but its own ends downtime's too); limit it to the application's"
                    .to_string(),
            ),
            (Some(s), _) if by_patch && s.sqlstate.as_deref() != Some("57P01") => Some(
                "the patch set a session timeout that ended its own session; leave session timeouts to the application"
                    .to_string(),
            ),
            _ => None,
        };
        let error = PatchError {
            message,
            sqlstate,
            line: at,
            statement_line: st.line,
            detail: None,
            hint,
            partially_applied: self.committed_any,
            ended_by: None,
        };
        self.close_patch(index, error, halt, d.session.is_some())
            .await
    }

    /// A statement downtime stopped: past the cap (`abort` is `None`) or
    /// on an abort, ended by `ended`.
    pub(super) async fn stopped(
        &mut self,
        index: usize,
        abort: Option<Abort>,
        ended: Ended,
        stage: &Stage,
    ) -> Result<()> {
        let st = self.statement_at(index);
        let what = stage.what().unwrap_or_else(|| "this statement".into());
        let why = match abort {
            Some(a) => format!("aborted by {a} while {what} was running"),
            None => format!(
                "{what} ran past the statement cap ({:.3} s, --timeout)",
                self.opts.statement_cap.as_secs_f64()
            ),
        };
        let how = match ended {
            Ended::Cancel => "it was cancelled on the server and the patch rolled back",
            Ended::Terminate => "it did not stop when cancelled, so its backend was terminated (pg_terminate_backend) and the patch rolled back",
            Ended::ServerStop => "it stopped neither when cancelled nor when its backend was terminated, so the staging server was stopped",
        };
        let hint = (ended != Ended::Cancel).then(|| {
            "a loop with EXCEPTION WHEN query_canceled (or SQLSTATE '57014') swallows cancels and statement_timeout; let it re-raise the cancel"
                .to_string()
        });
        let message = format!("{why}; {how}");
        let halt = match abort {
            Some(reason) => Some(Halt {
                reason,
                index,
                ended_by: Some(ended),
                message: None,
            }),
            None if ended == Ended::ServerStop => Some(Halt {
                reason: Abort::Broken,
                index,
                ended_by: Some(ended),
                message: Some(message.clone()),
            }),
            None => None,
        };
        let error = PatchError {
            message,
            sqlstate: Some(SqlState::QUERY_CANCELED.code().to_string()),
            line: st.line,
            statement_line: st.line,
            detail: None,
            hint,
            partially_applied: self.committed_any,
            ended_by: Some(ended),
        };
        self.close_patch(index, error, halt, ended != Ended::Cancel)
            .await
    }

    /// A statement renamed or dropped a template database: the patch fails
    /// there; the rename is rolled back or undone, and when neither works
    /// the run stops (no copy can be made any more). `true` when it did.
    pub(super) async fn check_templates(&mut self, index: usize, trace: &Trace) -> Result<bool> {
        let changed = self
            .watch
            .templates
            .iter()
            .find(|(oid, name)| trace.databases.get(oid) != Some(name));
        let Some((oid, name)) = changed.cloned() else {
            return Ok(false);
        };
        let st = self.statement_at(index);
        let message = match trace.databases.get(&oid) {
            Some(now) => format!(
                "this statement renamed the database {name} (now {now}), the template every staging copy is made from; a patch must leave other databases alone"
            ),
            None => format!(
                "this statement dropped the database {name}, the template every staging copy is made from; a patch must leave other databases alone"
            ),
        };
        let error = self.own_error(st.line, message.clone());
        self.close_patch(index, error, None, false).await?;
        if !self.restore_template(oid, &name).await {
            self.run.halt.get_or_insert(Halt {
                reason: Abort::Broken,
                index,
                ended_by: None,
                message: Some(message),
            });
        }
        Ok(true)
    }

    /// Give the template database `oid` its name `name` back (the rollback
    /// did, or a rename from the admin connection does). `false` when it is gone.
    async fn restore_template(&self, oid: u32, name: &str) -> bool {
        let admin = self.watch.admin;
        let Ok(Some(row)) = admin
            .query_opt(
                "/*downtime*/ select datname::text from pg_catalog.pg_database where oid = $1",
                &[&oid],
            )
            .await
        else {
            return false;
        };
        let now: String = row.get(0);
        if now == name {
            return true;
        }
        let rename = format!(
            "alter database {} rename to {}",
            staging::ident(&now),
            staging::ident(name)
        );
        match admin.batch_execute(&rename).await {
            Ok(()) => {
                crate::ui::note(&format!("renamed database {now} back to {name}"));
                true
            }
            Err(_) => false,
        }
    }

    /// End the patch at statement `index` with `error`: record the
    /// statement if it ran and is not recorded yet, close its locks, roll
    /// back what is open (unless the session is gone), and read the
    /// indexes it left INVALID. The first error and halt are kept.
    pub(super) async fn close_patch(
        &mut self,
        index: usize,
        error: PatchError,
        halt: Option<Halt>,
        session_gone: bool,
    ) -> Result<()> {
        self.record_ran(index);
        // The server's time of the statements before it, where it can be read.
        let _ = self.settle().await;
        let elapsed = self.elapsed;
        self.open
            .release_missing(&BTreeSet::new(), elapsed, &mut self.run.statements);
        self.run.error.get_or_insert(error);
        if let Some(h) = halt {
            self.run.halt.get_or_insert(h);
        }
        if session_gone || self.client().is_closed() {
            self.run.connection_lost = true;
            self.tx = TxState::Idle;
            if let Some(e) = self.run.error.as_mut() {
                e.hint.get_or_insert_with(|| {
                    "the session applying the patch ended here; later patches are not run".into()
                });
            }
            return Ok(());
        }
        let broken = self
            .run
            .halt
            .as_ref()
            .is_some_and(|h| matches!(h.reason, Abort::Broken | Abort::Infrastructure));
        if self.tx != TxState::Idle {
            // Idle first: a rollback that fails is not tried again.
            self.tx = TxState::Idle;
            // The patch's `SET LOCAL`s end with the transaction.
            self.known_me = false;
            self.client().batch_execute("/*downtime*/ rollback").await?;
        }
        if !broken {
            self.run.invalid_indexes = self.new_invalid_indexes().await?;
        }
        Ok(())
    }

    /// Record statement `index` as it ran, untraced, if it ran and is not
    /// recorded yet.
    fn record_ran(&mut self, index: usize) {
        if self.run.statements.last().is_some_and(|s| s.index == index) {
            return;
        }
        let Some(ran) = self.ran.take().filter(|r| r.index == index) else {
            return;
        };
        self.run.statements.push(StatementRun {
            index,
            seconds: ran.seconds,
            rows_affected: None,
            outside_transaction: ran.autocommit,
            held: Vec::new(),
            locks: Vec::new(),
            rewrites: Vec::new(),
            new_indexes: Vec::new(),
            lock_timeout: self.lock_timeout.clone(),
            pre: ran.pre,
            scanned_blocks: HashMap::new(),
            server_seconds: None,
            started: Some(ran.started),
        });
    }
}

/// The patch error for a statement the server refused.
fn patch_error(e: &tokio_postgres::Error, st: &Statement, partially_applied: bool) -> PatchError {
    let db = e.as_db_error();
    let line = db
        .and_then(|d| d.position())
        .and_then(|p| match p {
            ErrorPosition::Original(pos) => Some(*pos as usize),
            ErrorPosition::Internal { .. } => None,
        })
        .map_or(st.line, |pos| st.line_of_position(pos));
    PatchError {
        message: db.map_or_else(|| e.to_string(), |d| d.message().to_string()),
        sqlstate: db.map(|d| d.code().code().to_string()),
        line,
        statement_line: st.line,
        detail: db.and_then(|d| d.detail()).map(str::to_string),
        hint: db.and_then(|d| d.hint()).map(str::to_string),
        partially_applied,
        ended_by: None,
    }
}
