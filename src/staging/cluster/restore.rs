//! Watching the cluster-level state over a run and putting it back: the
//! templates are sealed, every patch's changes are noted with its name, and
//! after a run each change is undone in SQL, then the state is read again
//! and compared. What cannot be undone is an error naming the patch.

use std::path::PathBuf;

use serde_json::Value;
use tokio_postgres::Client;

use super::{
    acl_statements, change, ident, literal, parameter, role_options, Change, ClusterState, Item,
};
use crate::error::{Error, Result};

/// The changes one patch made to the cluster-level state.
#[derive(Debug, Clone)]
pub struct Changed {
    pub path: PathBuf,
    pub id: String,
    pub changes: Vec<Change>,
}

/// The recorded state every run starts from, and the templates no patch
/// may touch.
#[derive(Debug)]
pub struct ClusterWatch {
    version_num: i32,
    before: ClusterState,
    /// Oid and name of each template the runs are copied from.
    templates: Vec<(u32, String)>,
    /// Patterns of the names of databases that are not this run's to
    /// watch (other runs' on a shared server).
    ignore: Vec<String>,
    /// False when the state cannot be read (see [`ClusterWatch::unwatched`]).
    watching: bool,
}

/// One statement undoing one change; `None` when it cannot be undone.
struct Step {
    undoes: Change,
    sql: Option<String>,
}

fn step(item: &Item, what: &str, sql: impl Into<String>) -> Step {
    Step {
        undoes: change(item, None, what),
        sql: Some(sql.into()),
    }
}

impl ClusterWatch {
    /// Close the templates to connections (copying them needs none, and a
    /// patch can then reach a template only by altering it, which
    /// [`ClusterWatch::check`] sees), and record the state every run starts
    /// from, leaving out the databases named as a pattern of `ignore` says.
    pub async fn start(
        admin: &Client,
        version_num: i32,
        templates: &[String],
        ignore: &[String],
    ) -> Result<ClusterWatch> {
        let mut sealed = Vec::new();
        for name in templates {
            admin
                .batch_execute(&format!(
                    "/*downtime*/ alter database {} with allow_connections false",
                    ident(name)
                ))
                .await?;
            let row = admin
                .query_one(
                    "/*downtime*/ select oid from pg_database where datname = $1",
                    &[name],
                )
                .await?;
            sealed.push((row.get(0), name.clone()));
        }
        let before = ClusterState::read(admin, version_num, &[], ignore).await?;
        Ok(ClusterWatch {
            version_num,
            before,
            templates: sealed,
            ignore: ignore.to_vec(),
            watching: true,
        })
    }

    /// A watch that sees nothing: for a copy that is thrown away with its
    /// whole server (a provisioner's clone) reached by a role that cannot
    /// read the roles' catalogue (`pg_authid`).
    pub fn unwatched(version_num: i32) -> ClusterWatch {
        ClusterWatch {
            version_num,
            before: ClusterState {
                items: Vec::new(),
                signature: String::new(),
            },
            templates: Vec::new(),
            ignore: Vec::new(),
            watching: false,
        }
    }

    /// The state every run starts from.
    pub fn recorded(&self) -> &ClusterState {
        &self.before
    }

    /// After the patch at `path`: the state now (the copy `copy` left out)
    /// and what the patch changed since `prev`. A patch that changed a
    /// template, or after which the state cannot be read, is an error
    /// naming it.
    pub async fn check(
        &self,
        admin: &Client,
        copy: u32,
        prev: &ClusterState,
        path: &std::path::Path,
    ) -> Result<Option<(ClusterState, Vec<Change>)>> {
        let unreadable = |e: Error| {
            Error::input(
                path,
                format!(
                    "after this patch the cluster's roles and databases can no longer be read \
                     ({e}); did it take privileges from downtime's own role?"
                ),
            )
        };
        if !self.watching {
            return Ok(None);
        }
        let unchanged = prev
            .unchanged(admin, self.version_num, &[copy], &self.ignore)
            .await;
        if unchanged.map_err(unreadable)? {
            return Ok(None);
        }
        let now = ClusterState::read(admin, self.version_num, &[copy], &self.ignore)
            .await
            .map_err(unreadable)?;
        let changes = prev.changes(&now);
        if let Some(c) = changes.iter().find(|c| {
            c.kind == "database" && self.templates.iter().any(|(oid, _)| c.oid == Some(*oid))
        }) {
            return Err(Error::input(
                path,
                format!(
                    "{}: that is the template every run is copied from, and a patch may change \
                     only the database it is applied to",
                    c.label
                ),
            ));
        }
        Ok(Some((now, changes)))
    }

    /// After a run (its copy dropped): undo what the patches in `changed`
    /// did to the cluster-level state, and check that it is the recorded
    /// state again. What cannot be undone is an error naming the patch
    /// that changed it.
    pub async fn restore(&mut self, admin: &Client, changed: &[Changed]) -> Result<()> {
        let (version, ignore) = (self.version_num, &self.ignore);
        if !self.watching || self.before.unchanged(admin, version, &[], ignore).await? {
            return Ok(());
        }
        let now = ClusterState::read(admin, version, &[], ignore).await?;
        if now.same_as(&self.before) {
            // Rows were written back as they were: nothing to undo.
            self.before = now;
            return Ok(());
        }
        // The admin session is downtime's own; make sure of what the SQL
        // below relies on.
        admin
            .batch_execute(
                "/*downtime*/ set standard_conforming_strings = on; \
                 set default_transaction_read_only = off",
            )
            .await?;
        for s in steps(&self.before, &now) {
            let Some(sql) = &s.sql else {
                return Err(blame(changed, &s.undoes, "downtime cannot bring it back"));
            };
            if let Err(e) = admin.batch_execute(sql).await {
                let _ = admin.batch_execute("rollback").await;
                let why = crate::error::describe_pg_error(&e);
                return Err(blame(
                    changed,
                    &s.undoes,
                    &format!("`{}` failed: {why}", first_line(sql)),
                ));
            }
        }
        let after = ClusterState::read(admin, self.version_num, &[], &self.ignore).await?;
        if let Some(left) = self.before.differences(&after).first() {
            return Err(blame(
                changed,
                left,
                "it is still so after undoing the run's changes",
            ));
        }
        self.before = after;
        Ok(())
    }
}

fn first_line(sql: &str) -> &str {
    sql.lines().next().unwrap_or(sql).trim()
}

/// The error for a change that could not be undone, naming the patch that
/// made it (or every patch that changed the cluster, when none matches).
fn blame(changed: &[Changed], what: &Change, why: &str) -> Error {
    let message = format!(
        "{} in a run, and it cannot be undone before the next run ({why}); every run must start \
         from the same roles, databases and settings, so the runs stop here",
        what.label
    );
    let by = changed
        .iter()
        .find(|c| c.changes.iter().any(|x| x.same_item(what)));
    match by {
        Some(c) => Error::input(&c.path, message),
        None if !changed.is_empty() => {
            let paths: Vec<String> = changed
                .iter()
                .map(|c| c.path.display().to_string())
                .collect();
            Error::input(paths.join(", "), message)
        }
        None => Error::Server(format!("the cluster-level state changed: {message}")),
    }
}

/// The statements that turn `now` back into `before`, in an order that
/// works: what was created goes first (databases, tablespaces) or last
/// (roles, once nothing refers to them), renames before the rest.
fn steps(before: &ClusterState, now: &ClusterState) -> Vec<Step> {
    let mut out = Vec::new();
    for kind in ["database", "tablespace"] {
        for n in now
            .of_kind(kind)
            .filter(|n| before.counterpart(n).is_none())
        {
            let sql = match kind {
                "database" => format!("drop database {} with (force)", ident(&n.name)),
                _ => format!("drop tablespace {}", ident(&n.name)),
            };
            out.push(step(n, "created", sql));
        }
    }
    roles(before, now, &mut out);
    databases(before, now, &mut out);
    tablespaces(before, now, &mut out);
    memberships(before, now, &mut out);
    settings(before, now, &mut out);
    comments(before, now, &mut out);
    parameters(before, now, &mut out);
    for n in now.of_kind("role") {
        if before.counterpart(n).is_none() && before.named("role", &n.name).is_none() {
            let r = ident(&n.name);
            out.push(step(
                n,
                "created",
                format!("drop owned by {r}; drop role {r}"),
            ));
        }
    }
    out
}

fn roles(before: &ClusterState, now: &ClusterState, out: &mut Vec<Step>) {
    for b in before.of_kind("role") {
        let name = ident(&b.name);
        let options = role_options(&b.value);
        match now.counterpart(b).or_else(|| now.named("role", &b.name)) {
            None => out.push(step(
                b,
                "dropped",
                format!("create role {name} with {options}"),
            )),
            Some(n) => {
                if n.name != b.name {
                    let sql = format!("alter role {} rename to {name}", ident(&n.name));
                    out.push(step(b, "renamed", sql));
                }
                // A rename clears an MD5 password: set the attributes again.
                if n.name != b.name || n.value != b.value {
                    out.push(step(
                        b,
                        "changed",
                        format!("alter role {name} with {options}"),
                    ));
                }
                let never = |i: &Item| i.field("rolvaliduntil_null") == Some(&Value::Bool(true));
                if never(b) && !never(n) {
                    let sql = format!(
                        "update pg_authid set rolvaliduntil = null where rolname = {}",
                        literal(&b.name)
                    );
                    out.push(step(b, "changed", sql));
                }
            }
        }
    }
}

fn databases(before: &ClusterState, now: &ClusterState, out: &mut Vec<Step>) {
    for b in before.of_kind("database") {
        let Some(n) = now.counterpart(b) else {
            out.push(Step {
                undoes: change(b, None, "dropped"),
                sql: None,
            });
            continue;
        };
        let name = ident(&b.name);
        if n.name != b.name {
            let sql = format!("alter database {} rename to {name}", ident(&n.name));
            out.push(step(b, "renamed", sql));
        }
        let differs = |key: &str| b.field(key) != n.field(key);
        if differs("datallowconn") || differs("datistemplate") || differs("datconnlimit") {
            let flag = |key: &str| b.field(key).and_then(Value::as_bool).unwrap_or(false);
            let limit = b
                .field("datconnlimit")
                .and_then(Value::as_i64)
                .unwrap_or(-1);
            let sql = format!(
                "alter database {name} with allow_connections {} is_template {} connection limit {limit}",
                flag("datallowconn"),
                flag("datistemplate")
            );
            out.push(step(b, "changed", sql));
        }
        if let (true, Some(owner)) = (differs("owner"), b.field("owner").and_then(Value::as_str)) {
            let sql = format!("alter database {name} owner to {}", ident(owner));
            out.push(step(b, "changed", sql));
        }
        if let (true, Some(spc)) = (
            differs("tablespace"),
            b.field("tablespace").and_then(Value::as_str),
        ) {
            let sql = format!("alter database {name} set tablespace {}", ident(spc));
            out.push(step(b, "changed", sql));
        }
        let object = format!("database {name}");
        acl(b, n, &object, "pg_database", "datname", out);
    }
}

fn tablespaces(before: &ClusterState, now: &ClusterState, out: &mut Vec<Step>) {
    for b in before.of_kind("tablespace") {
        let Some(n) = now.counterpart(b) else {
            out.push(Step {
                undoes: change(b, None, "dropped"),
                sql: None,
            });
            continue;
        };
        let name = ident(&b.name);
        if n.name != b.name {
            let sql = format!("alter tablespace {} rename to {name}", ident(&n.name));
            out.push(step(b, "renamed", sql));
        }
        if b.field("owner") != n.field("owner") {
            if let Some(owner) = b.field("owner").and_then(Value::as_str) {
                let sql = format!("alter tablespace {name} owner to {}", ident(owner));
                out.push(step(b, "changed", sql));
            }
        }
        if b.field("options") != n.field("options") {
            let options = |v: Option<&Value>| -> Vec<(String, String)> {
                v.and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o.as_str()?.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            };
            for (key, _) in options(n.field("options")) {
                let sql = format!("alter tablespace {name} reset ({})", ident(&key));
                out.push(step(b, "changed", sql));
            }
            let set: Vec<String> = options(b.field("options"))
                .iter()
                .map(|(k, v)| format!("{} = {}", ident(k), literal(v)))
                .collect();
            if !set.is_empty() {
                let sql = format!("alter tablespace {name} set ({})", set.join(", "));
                out.push(step(b, "changed", sql));
            }
        }
        let object = format!("tablespace {name}");
        acl(b, n, &object, "pg_tablespace", "spcname", out);
    }
}

/// Privileges on a database or tablespace back as recorded: GRANT and
/// REVOKE, then, where none had ever been granted (`NULL`, the defaults),
/// `NULL` again once GRANT and REVOKE have made them the defaults.
fn acl(b: &Item, n: &Item, object: &str, catalog: &str, column: &str, out: &mut Vec<Step>) {
    for sql in acl_statements(object, b.field("acl"), n.field("acl")) {
        out.push(step(b, "changed", sql));
    }
    let null = |i: &Item| i.field("acl_null").and_then(Value::as_bool) == Some(true);
    if null(b) && !null(n) {
        let (acl, default) = if catalog == "pg_database" {
            ("datacl", "acldefault('d', datdba)")
        } else {
            ("spcacl", "acldefault('t', spcowner)")
        };
        let sql = format!(
            "update {catalog} set {acl} = null where {column} = {} \
             and {acl} @> {default} and {default} @> {acl}",
            literal(&b.name)
        );
        out.push(step(b, "changed", sql));
    }
}

fn memberships(before: &ClusterState, now: &ClusterState, out: &mut Vec<Step>) {
    let roles = |i: &Item| {
        (
            ident(i.text("role").unwrap_or_default()),
            ident(i.text("member").unwrap_or_default()),
        )
    };
    for n in now.of_kind("member") {
        if before.named("member", &n.name).map(|b| &b.value) != Some(&n.value) {
            let (role, member) = roles(n);
            out.push(step(n, "changed", format!("revoke {role} from {member}")));
        }
    }
    for b in before.of_kind("member") {
        if now.named("member", &b.name).map(|n| &n.value) != Some(&b.value) {
            let (role, member) = roles(b);
            let admin = b
                .value
                .as_array()
                .into_iter()
                .flatten()
                .any(|g| g.get("admin_option").and_then(Value::as_bool) == Some(true));
            let with = if admin { " with admin option" } else { "" };
            out.push(step(
                b,
                "changed",
                format!("grant {role} to {member}{with}"),
            ));
        }
    }
}

/// Per-role and per-database settings are put back as they were recorded,
/// rows and all: `ALTER ROLE … SET` would have to re-quote list values
/// (`search_path`) that the catalogue keeps as written.
fn settings(before: &ClusterState, now: &ClusterState, out: &mut Vec<Step>) {
    let rows = |s: &ClusterState| -> Vec<(String, String)> {
        s.of_kind("setting")
            .map(|i| (i.name.clone(), i.value.to_string()))
            .collect()
    };
    if rows(before) == rows(now) {
        return;
    }
    let recorded: Vec<Value> = before
        .of_kind("setting")
        .map(|i| {
            serde_json::json!({
                "database": i.extra.get("database"),
                "role": i.extra.get("role"),
                "config": i.value,
            })
        })
        .collect();
    let json = literal(&Value::Array(recorded).to_string());
    let sql = format!(
        "begin;\n\
         delete from pg_db_role_setting;\n\
         insert into pg_db_role_setting (setdatabase, setrole, setconfig) \
           select coalesce(d.oid, 0), coalesce(r.oid, 0), array(select jsonb_array_elements_text(s.config)) \
           from jsonb_to_recordset({json}::jsonb) as s(database text, role text, config jsonb) \
           left join pg_database d on d.datname = s.database \
           left join pg_authid r on r.rolname = s.role;\n\
         commit"
    );
    let changed = now
        .of_kind("setting")
        .find(|n| before.named("setting", &n.name).map(|b| &b.value) != Some(&n.value))
        .or_else(|| {
            before
                .of_kind("setting")
                .find(|b| now.named("setting", &b.name).is_none())
        });
    if let Some(item) = changed {
        out.push(step(item, "changed", sql));
    }
}

fn comments(before: &ClusterState, now: &ClusterState, out: &mut Vec<Step>) {
    let target = |i: &Item| -> Option<String> {
        let class = i.text("class")?;
        let object = i.text("object")?;
        let kind = match class {
            "database" | "role" | "tablespace" => class,
            _ => return None,
        };
        // Comments on objects created in the run go with the object.
        before.named(kind, object)?;
        Some(format!("comment on {kind} {}", ident(object)))
    };
    for b in before.of_kind("comment") {
        if now.named("comment", &b.name).map(|n| &n.value) != Some(&b.value) {
            if let (Some(t), Some(text)) = (target(b), b.value.as_str()) {
                out.push(step(b, "changed", format!("{t} is {}", literal(text))));
            }
        }
    }
    for n in now.of_kind("comment") {
        if before.named("comment", &n.name).is_none() {
            if let Some(t) = target(n) {
                out.push(step(n, "created", format!("{t} is null")));
            }
        }
    }
}

fn parameters(before: &ClusterState, now: &ClusterState, out: &mut Vec<Step>) {
    let empty = Value::Array(Vec::new());
    let mut names: Vec<&Item> = now.of_kind("parameter").collect();
    names.extend(
        before
            .of_kind("parameter")
            .filter(|b| now.named("parameter", &b.name).is_none()),
    );
    for item in names {
        let b = before
            .named("parameter", &item.name)
            .map_or(&empty, |b| &b.value);
        let n = now
            .named("parameter", &item.name)
            .map_or(&empty, |n| &n.value);
        let object = format!("parameter {}", parameter(&item.name));
        for sql in acl_statements(&object, Some(b), Some(n)) {
            out.push(step(item, "changed", sql));
        }
    }
}
