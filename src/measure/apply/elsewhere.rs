//! Work a patch sends to its own copy on another connection: `dblink`
//! (`dblink_connect`, `dblink_exec`, `dblink_send_query`), a foreign table
//! over the copy, anything that logs in to the copy again. Its locks are
//! held and its time spent by another server process than the patch's
//! session, so the trace cannot judge them: a table rewritten there would
//! pass as a live patch (and one sent with `dblink_send_query` goes on
//! after the patch's statement returned, as a 10 ms patch). downtime
//! does not guess what such work did: the statement after which another
//! session is found on the copy fails the patch, at its line, and that
//! session is ended.
//!
//! Two things are read on the admin connection after every traced
//! statement: the client sessions on the copy that are neither the patch's
//! nor downtime's own (the probe's, counted in [`OwnSessions`]), and, where
//! only downtime connects to the copy, how many sessions were opened to it
//! since the patch started (`pg_stat_database.sessions`, PostgreSQL 14 and
//! later), which also sees a connection opened and closed within the
//! statement (`dblink_exec` with a connection string).
//!
//! [`OwnSessions`]: crate::measure::OwnSessions

use std::time::Duration;

use serde::Deserialize;

use super::Tracer;
use crate::error::{Error, Result};

/// Sessions on the copy and connections opened to it, as last read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Opened {
    /// `pg_stat_database.sessions` of the copy (`None` before 14).
    server: Option<i64>,
    /// Connections downtime asked for itself (the probe's).
    own: u64,
}

/// What was on the copy when the patch started.
#[derive(Debug, Clone, Default)]
pub(super) struct AtStart {
    opened: Option<Opened>,
    /// Sessions there then that were not downtime's known ones (a
    /// connection of downtime's closed just before, still ending; one an
    /// earlier patch left, already judged with that patch).
    present: Vec<i32>,
}

/// A client session on the copy that is not downtime's.
#[derive(Debug, Clone, Deserialize)]
struct Other {
    pid: i32,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    query: Option<String>,
}

impl Other {
    fn describe(&self) -> String {
        let mut s = format!("pid {}", self.pid);
        if let Some(app) = self.app.as_deref().filter(|a| !a.is_empty()) {
            s.push_str(&format!(", application_name \"{app}\""));
        }
        if let Some(state) = self.state.as_deref() {
            s.push_str(&format!(", {state}"));
        }
        if let Some(q) = self.query.as_deref().filter(|q| !q.trim().is_empty()) {
            let q: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = q.chars().take(120).collect();
            let more = if q.chars().count() > 120 { "…" } else { "" };
            s.push_str(&format!(": {short}{more}"));
        }
        s
    }
}

/// The sessions on the copy `$1` that are client sessions and neither the
/// admin connection's nor among `$2`, and the copy's session count.
const OTHERS: &str = "/*downtime*/ select \
       (select (to_jsonb(d) ->> 'sessions')::int8 from pg_stat_database d where d.datid = $1), \
       coalesce((select jsonb_agg(jsonb_build_object('pid', a.pid, 'app', a.application_name, \
           'state', a.state, 'query', left(a.query, 400)) order by a.pid) \
         from pg_stat_activity a \
         where a.datid = $1 and a.backend_type = 'client backend' \
           and a.pid <> pg_backend_pid() and a.pid <> all($2::int4[])), '[]')::text";

impl Tracer<'_> {
    /// Before the patch's first statement: the connections opened to the
    /// copy so far.
    pub(super) async fn elsewhere_start(&mut self) -> Result<()> {
        let Some(copy) = &self.watch.copy else {
            return Ok(());
        };
        let own = copy.own.opened_count();
        let mut mine = copy.own.pids();
        mine.push(self.session.pid);
        let (server, present) = self.others(copy.oid, &mine).await?;
        self.connections = AtStart {
            opened: Some(Opened {
                server: server.filter(|_| copy.private),
                own,
            }),
            present: present.iter().map(|o| o.pid).collect(),
        };
        Ok(())
    }

    /// After statement `index`: another session on the copy, or a
    /// connection opened to it since the patch started, fails the patch
    /// here (and the sessions found are ended). `true` when it did.
    pub(super) async fn check_elsewhere(&mut self, index: usize) -> Result<bool> {
        let (Some(copy), Some(start)) = (self.watch.copy.clone(), self.connections.opened) else {
            return Ok(false);
        };
        let mine = |own: &crate::measure::OwnSessions| {
            let mut pids = own.pids();
            pids.push(self.session.pid);
            pids.extend(&self.connections.present);
            pids
        };
        let (server, mut others) = self.others(copy.oid, &mine(&copy.own)).await?;
        if !others.is_empty() && copy.own.opened_count() > start.own {
            // The probe is replacing a session the patch ended: let it
            // say which process serves the new one.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let own = mine(&copy.own);
            others.retain(|o| !own.contains(&o.pid));
        }
        let own_opened = copy.own.opened_count().saturating_sub(start.own);
        let opened = match (start.server, server) {
            (Some(before), Some(now)) => (now - before).saturating_sub(own_opened as i64),
            _ => 0,
        };
        if others.is_empty() && opened <= 0 {
            return Ok(false);
        }
        if others
            .iter()
            .any(|o| o.query.as_deref().is_none_or(str::is_empty))
        {
            // Work sent asynchronously may not have reached the other
            // session yet: a moment later it says what it is doing.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok((_, later)) = self.others(copy.oid, &mine(&copy.own)).await {
                for o in &mut others {
                    if let Some(l) = later.iter().find(|l| l.pid == o.pid) {
                        *o = l.clone();
                    }
                }
            }
        }
        let pids: Vec<i32> = others.iter().map(|o| o.pid).collect();
        if !pids.is_empty() {
            // Their work is not the patch's to measure, nor to go on
            // under the next statement.
            let _ = self
                .watch
                .admin
                .query(
                    "/*downtime*/ select pg_terminate_backend(pid) from unnest($1::int4[]) pid",
                    &[&pids],
                )
                .await;
        }
        let seen = if others.is_empty() {
            format!(
                "{opened} connection(s) to the staging copy were opened and closed while it ran \
                 (dblink_exec or dblink with a connection string, say)"
            )
        } else {
            let listed: Vec<String> = others.iter().map(Other::describe).collect();
            format!(
                "another session is working on the staging copy: {} (ended by downtime)",
                listed.join("; ")
            )
        };
        let line = self.patch.statements.get(index).map_or(1, |s| s.line);
        let mut error = self.own_error(
            line,
            format!(
                "this statement works on its own database through another connection: {seen}. \
                 What a patch sends on another connection (dblink, a foreign table over its own \
                 database) takes its locks and its time in another session, which downtime does \
                 not trace as the patch's, so a rewrite there would pass as live; run the work \
                 in the patch itself"
            ),
        );
        error.hint = Some(
            "dblink_send_query goes on after the statement returns, dblink_exec holds its locks in \
             the other session: neither can be measured as the patch's"
                .into(),
        );
        self.close_patch(index, error, None, false).await?;
        Ok(true)
    }

    /// The copy's session count and the client sessions on it not in `mine`.
    async fn others(&self, oid: u32, mine: &[i32]) -> Result<(Option<i64>, Vec<Other>)> {
        let row = self.watch.admin.query_one(OTHERS, &[&oid, &mine]).await?;
        let text: String = row.get(1);
        let others: Vec<Other> = serde_json::from_str(&text).map_err(|e| {
            Error::Server(format!("cannot read the sessions on the staging copy: {e}"))
        })?;
        Ok((row.get(0), others))
    }
}
