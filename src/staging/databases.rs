//! The databases a run makes on its staging server and drops again: the
//! copies of the template (each marked as downtime's own, so that `downtime
//! clean --url` on a shared server drops nothing else), and what keeps a
//! copy from being dropped. A template another session holds is named with
//! those sessions, not left to PostgreSQL's bare "being accessed by other
//! users".

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::{ident, server, TEMPLATE_DB};
use crate::error::{Error, Result};

/// Make a fresh copy of the template. PostgreSQL 15 and later are asked for
/// the FILE_COPY strategy (a file-level copy, as earlier versions always did).
pub async fn create_copy(admin: &Client, name: &str, version_num: i32) -> Result<()> {
    create_copy_of(admin, name, TEMPLATE_DB, version_num).await
}

/// Make a fresh copy of `template` (the baseline, or a scaled-down copy of
/// it), file by file: the copy's pages are in the OS cache and none in
/// shared buffers, whichever template it came from.
pub async fn create_copy_of(
    admin: &Client,
    name: &str,
    template: &str,
    version_num: i32,
) -> Result<()> {
    let strategy = if version_num >= 150000 {
        " strategy file_copy"
    } else {
        ""
    };
    create_database(admin, name, template, strategy).await
}

/// `CREATE DATABASE name TEMPLATE template`, marked as downtime's own
/// ([`server::names::RUN_MARK`]: `downtime clean --url` drops nothing
/// else). A template another session is connected to is named with those
/// sessions.
pub(crate) async fn create_database(
    admin: &Client,
    name: &str,
    template: &str,
    options: &str,
) -> Result<()> {
    let made = admin
        .simple_query(&format!(
            "create database {} template {}{options}",
            ident(name),
            ident(template)
        ))
        .await;
    if let Err(e) = made {
        if e.code() == Some(&SqlState::OBJECT_IN_USE) {
            return Err(template_in_use(admin, template, &e).await);
        }
        return Err(e.into());
    }
    admin
        .simple_query(&format!(
            "comment on database {} is '{}'",
            ident(name),
            server::names::RUN_MARK
        ))
        .await?;
    Ok(())
}

/// Drop the logical replication subscriptions in the database `db` is
/// connected to: PostgreSQL will not drop a database a subscription lives
/// in. Each is disabled and cut from its replication slot first, so no
/// publisher is contacted.
pub async fn drop_subscriptions(db: &Client) -> Result<()> {
    let names: Vec<String> = db
        .query(
            "/*downtime*/ select subname::text from pg_catalog.pg_subscription \
             where subdbid operator(pg_catalog.=) (select oid from pg_catalog.pg_database \
               where datname operator(pg_catalog.=) pg_catalog.current_database())",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for name in &names {
        let s = ident(name);
        db.batch_execute(&format!(
            "/*downtime*/ alter subscription {s} disable; \
             alter subscription {s} set (slot_name = none)"
        ))
        .await?;
        db.batch_execute(&format!("/*downtime*/ drop subscription {s}"))
            .await?;
    }
    Ok(())
}

/// Drop a copy, disconnecting anyone still on it.
pub async fn drop_copy(admin: &Client, name: &str) -> Result<()> {
    admin
        .simple_query(&format!(
            "drop database if exists {} with (force)",
            ident(name)
        ))
        .await?;
    Ok(())
}

/// The error for a `CREATE DATABASE` that failed because other sessions
/// are connected to `template`: which sessions (pid, user, application,
/// state, since when), read from `pg_stat_activity`.
async fn template_in_use(admin: &Client, template: &str, e: &tokio_postgres::Error) -> Error {
    let why = crate::error::describe_pg_error(e);
    let rows = admin
        .query(
            "/*downtime*/ select a.pid, coalesce(a.usename::text, '?'), \
               coalesce(a.application_name, ''), coalesce(a.state, '?'), \
               coalesce(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ'), '?') \
             from pg_catalog.pg_stat_activity a \
             where a.datname operator(pg_catalog.=) $1 \
               and a.pid operator(pg_catalog.<>) pg_catalog.pg_backend_pid() \
             order by a.pid",
            &[&template],
        )
        .await;
    let sessions: Vec<String> = match rows {
        Ok(rows) => rows
            .iter()
            .map(|r| {
                let (pid, user, app, state, since): (i32, String, String, String, String) =
                    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
                let app = if app.is_empty() {
                    "none".into()
                } else {
                    format!("\"{app}\"")
                };
                format!("pid {pid} (user {user}, application_name {app}, {state} since {since})")
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let held = if sessions.is_empty() {
        "(they were gone when downtime looked)".to_string()
    } else {
        format!("held by {}", sessions.join("; "))
    };
    Error::Server(format!(
        "cannot copy the template database {template}: {why}; {held}. PostgreSQL copies a \
         database only while no other session is connected to it: end those sessions \
         (pg_terminate_backend) or wait for them, then run again"
    ))
}
