//! The cluster-level state a patch can change outside the database it is
//! applied to: roles (attributes, passwords, memberships), databases (names,
//! owners, connection settings, privileges), per-role and per-database
//! settings, tablespaces, privileges on parameters, and comments and
//! security labels on these. A copy of the template is thrown away after
//! each run; this state is not, so it is recorded once the templates are made
//! ([`ClusterWatch::start`]), compared after every patch ([`ClusterWatch::check`]) and put
//! back after each run ([`ClusterWatch::restore`]). Both backends get it: it is
//! plain SQL on the admin connection.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;
use tokio_postgres::Client;

use super::ident;
use crate::error::{Error, Result};

/// One row of cluster-level state, with downtime's own copy left out.
/// Compared by `kind`, `name` and `value`; `oid` (roles, databases,
/// tablespaces) tells a rename from a drop and a create.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Item {
    kind: String,
    #[serde(default)]
    oid: Option<u32>,
    name: String,
    value: Value,
    /// Names the restore needs (a setting's database and role, a
    /// membership's roles, a comment's object).
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

impl Item {
    fn label(&self) -> String {
        match self.kind.as_str() {
            "member" => format!("membership {}", self.name),
            "setting" => format!("settings for {}", self.name),
            "parameter" => format!("privileges on parameter {}", self.name),
            "comment" | "label" => self.name.clone(),
            kind => format!("{kind} {}", self.name),
        }
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.extra.get(key).and_then(Value::as_str)
    }

    fn field(&self, key: &str) -> Option<&Value> {
        self.value.get(key)
    }
}

/// What one patch (or one run) did to an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: String,
    /// The item's names before and after (one of them when it was created
    /// or dropped).
    pub names: Vec<String>,
    pub oid: Option<u32>,
    /// "role app_reader created", "database template1 renamed to t1", …
    pub label: String,
}

impl Change {
    /// Whether `other` is about the same item.
    fn same_item(&self, other: &Change) -> bool {
        self.kind == other.kind
            && ((self.oid.is_some() && self.oid == other.oid)
                || self.names.iter().any(|n| other.names.contains(n)))
    }
}

/// The cluster-level state at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterState {
    items: Vec<Item>,
    /// Where each row of those catalogues is and which transaction wrote
    /// it: a cheap test that nothing changed (see [`signature_query`]).
    signature: String,
}

/// Privileges as `{grantee, privilege, grantable}`, the default ones spelled
/// out, so `NULL` and an explicit default compare equal; `skip` leaves out
/// some grants.
fn acl(column: &str, kind: char, owner: &str, skip: &str) -> String {
    format!(
        "(select coalesce(jsonb_agg(jsonb_build_object('grantee', \
           case when e.grantee = 0 then 'public' else pg_get_userbyid(e.grantee)::text end, \
           'privilege', e.privilege_type, 'grantable', e.is_grantable) \
           order by pg_get_userbyid(e.grantee), e.privilege_type), '[]') \
         from aclexplode(coalesce({column}, acldefault('{kind}', {owner}))) e where {skip})"
    )
}

/// A digest of the row versions (`xmin`, `ctid`) of the catalogues the
/// state is read from: any insert, update or delete changes it, while the
/// in-place updates PostgreSQL makes itself (`datfrozenxid` after a
/// vacuum) do not. About 0.3 ms against 2 ms for the whole state, so it is
/// what runs after every patch. `$1` is the databases to leave out, `$2`
/// the patterns of names to leave out (see [`left_out`]).
fn signature_query(version_num: i32) -> String {
    let mut parts = vec![
        "select 'a' || xmin || ctid from pg_authid".to_string(),
        "select 'm' || xmin || ctid from pg_auth_members".to_string(),
        format!(
            "select 'd' || xmin || ctid from pg_database where not {}",
            left_out("oid")
        ),
        format!(
            "select 's' || xmin || ctid from pg_db_role_setting where not {}",
            left_out("setdatabase")
        ),
        "select 't' || xmin || ctid from pg_tablespace".to_string(),
        format!(
            "select 'c' || xmin || ctid from pg_shdescription \
               where not (classoid = 'pg_database'::regclass and {})",
            left_out("objoid")
        ),
        format!(
            "select 'l' || xmin || ctid from pg_shseclabel \
               where not (classoid = 'pg_database'::regclass and {})",
            left_out("objoid")
        ),
    ];
    if version_num >= 150000 {
        parts.push("select 'p' || xmin || ctid from pg_parameter_acl".to_string());
    }
    format!(
        "/*downtime*/ select md5(coalesce(string_agg(s, ',' order by s), '')) from ({}) as rows(s)",
        parts.join(" union all ")
    )
}

/// Whether the database with oid `column` is left out of the state: one of
/// `$1` (the copy being patched), or named as one of the patterns `$2`
/// says (the databases of other runs on a shared server).
fn left_out(column: &str) -> String {
    format!(
        "({column} = any($1) or {column} in \
           (select oid from pg_database where datname ~ any($2::text[])))"
    )
}

/// The query reading the whole state; `$1` and `$2` are the databases to
/// leave out (see [`left_out`]).
fn state_query(version_num: i32) -> String {
    let db_acl = acl("d.datacl", 'd', "d.datdba", "true");
    let spc_acl = acl("t.spcacl", 't', "t.spcowner", "true");
    let mut parts = vec![
        "select jsonb_build_object('kind', 'role', 'oid', a.oid::int8, 'name', a.rolname, \
           'value', to_jsonb(a) - 'oid' - 'rolname' - 'rolvaliduntil' \
             || jsonb_build_object('rolvaliduntil', coalesce(a.rolvaliduntil, 'infinity')::text, \
                                   'rolvaliduntil_null', a.rolvaliduntil is null)) \
         from pg_authid a"
            .to_string(),
        "select jsonb_build_object('kind', 'member', \
           'name', format('%I in %I', pg_get_userbyid(m.member), pg_get_userbyid(m.roleid)), \
           'role', pg_get_userbyid(m.roleid), 'member', pg_get_userbyid(m.member), \
           'value', jsonb_agg(to_jsonb(m) - 'oid' - 'roleid' - 'member' - 'grantor' \
                              order by to_jsonb(m) - 'oid' - 'roleid' - 'member' - 'grantor')) \
         from pg_auth_members m group by m.roleid, m.member"
            .to_string(),
        format!(
            "select jsonb_build_object('kind', 'database', 'oid', d.oid::int8, 'name', d.datname, \
               'value', to_jsonb(d) - 'oid' - 'datname' - 'datdba' - 'dattablespace' - 'datacl' \
                 - 'datfrozenxid' - 'datminmxid' - 'datlastsysoid' \
                 || jsonb_build_object('owner', pg_get_userbyid(d.datdba), \
                      'tablespace', (select spcname from pg_tablespace where oid = d.dattablespace), \
                      'acl', {db_acl}, 'acl_null', d.datacl is null)) \
             from pg_database d where not {}",
            left_out("d.oid")
        ),
        format!(
            "select jsonb_build_object('kind', 'setting', \
               'name', concat_ws(' in ', 'role ' || quote_ident(r.rolname), 'database ' || quote_ident(d.datname)), \
               'database', d.datname, 'role', r.rolname, 'value', to_jsonb(s.setconfig)) \
             from pg_db_role_setting s left join pg_database d on d.oid = s.setdatabase \
             left join pg_authid r on r.oid = s.setrole where not {}",
            left_out("s.setdatabase")
        ),
        format!(
            "select jsonb_build_object('kind', 'tablespace', 'oid', t.oid::int8, 'name', t.spcname, \
               'value', jsonb_build_object('owner', pg_get_userbyid(t.spcowner), \
                 'options', to_jsonb(t.spcoptions), 'acl', {spc_acl}, 'acl_null', t.spcacl is null)) \
             from pg_tablespace t"
        ),
        format!(
            "select jsonb_build_object('kind', 'comment', \
           'name', format('comment on %s %I', c.class, c.object), \
           'class', c.class, 'object', c.object, 'value', to_jsonb(c.description)) \
         from (select description, \
                 case classoid when 'pg_database'::regclass then 'database' \
                   when 'pg_authid'::regclass then 'role' when 'pg_tablespace'::regclass then 'tablespace' \
                   else classoid::regclass::text end as class, \
                 coalesce((select datname::text from pg_database where oid = objoid and classoid = 'pg_database'::regclass), \
                          (select rolname::text from pg_authid where oid = objoid and classoid = 'pg_authid'::regclass), \
                          (select spcname::text from pg_tablespace where oid = objoid and classoid = 'pg_tablespace'::regclass), \
                          objoid::text) as object \
               from pg_shdescription where not (classoid = 'pg_database'::regclass and {})) c",
            left_out("objoid")
        ),
        format!(
            "select jsonb_build_object('kind', 'label', \
               'name', format('security label %s on %s %s', provider, classoid::regclass, objoid), \
               'value', to_jsonb(label)) \
             from pg_shseclabel where not (classoid = 'pg_database'::regclass and {})",
            left_out("objoid")
        ),
    ];
    if version_num >= 150000 {
        // Grants to others than the bootstrap superuser (oid 10), who
        // holds every parameter privilege anyway.
        let par_acl = acl("p.paracl", 'p', "10", "e.grantee <> 10");
        parts.push(format!(
            "select i from (select jsonb_build_object('kind', 'parameter', 'name', p.parname, \
               'value', {par_acl}) as i from pg_parameter_acl p) g where i->'value' <> '[]'"
        ));
    }
    format!(
        "/*downtime*/ select coalesce(jsonb_agg(i order by i->>'kind', i->>'name'), '[]')::text \
         from ({}) as items(i)",
        parts.join(" union all ")
    )
}

impl ClusterState {
    /// Read the state, leaving out the databases `exclude` (the copy being
    /// patched, thrown away anyway) and those named as a pattern of
    /// `ignore` says (other runs' on a shared server).
    pub async fn read(
        client: &Client,
        version_num: i32,
        exclude: &[u32],
        ignore: &[String],
    ) -> Result<ClusterState> {
        let signature = Self::signature(client, version_num, exclude, ignore).await?;
        let row = client
            .query_one(&state_query(version_num), &[&exclude, &ignore])
            .await?;
        let text: String = row.get(0);
        let items: Vec<Item> = serde_json::from_str(&text).map_err(|e| Error::Database {
            message: format!("cannot read the cluster-level state: {e}"),
            ended: None,
        })?;
        Ok(ClusterState { items, signature })
    }

    /// The digest of the row versions the state is read from.
    async fn signature(
        client: &Client,
        version_num: i32,
        exclude: &[u32],
        ignore: &[String],
    ) -> Result<String> {
        let row = client
            .query_one(&signature_query(version_num), &[&exclude, &ignore])
            .await?;
        Ok(row.get(0))
    }

    /// Whether no row the state is read from changed since `self`.
    pub async fn unchanged(
        &self,
        client: &Client,
        version_num: i32,
        exclude: &[u32],
        ignore: &[String],
    ) -> Result<bool> {
        Ok(Self::signature(client, version_num, exclude, ignore).await? == self.signature)
    }

    fn of_kind(&self, kind: &'static str) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(move |i| i.kind == kind)
    }

    /// The item of `kind` that is `item` in this state: same oid where
    /// the kind has one, else same name.
    fn counterpart(&self, item: &Item) -> Option<&Item> {
        self.items.iter().find(|i| {
            i.kind == item.kind
                && match item.oid {
                    Some(oid) => i.oid == Some(oid),
                    None => i.name == item.name,
                }
        })
    }

    fn named(&self, kind: &str, name: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.kind == kind && i.name == name)
    }

    /// What changed from `self` to `now`.
    pub fn changes(&self, now: &ClusterState) -> Vec<Change> {
        let mut out = Vec::new();
        for b in &self.items {
            match now.counterpart(b) {
                None => out.push(change(b, None, "dropped")),
                Some(n) if n.name != b.name => {
                    out.push(change(b, Some(n), &format!("renamed to {}", n.name)))
                }
                Some(n) if n.value != b.value => out.push(change(b, Some(n), "changed")),
                Some(_) => {}
            }
        }
        for n in &now.items {
            if self.counterpart(n).is_none() {
                out.push(change(n, None, "created"));
            }
        }
        // Roles and databases first: they matter most to a reader.
        out.sort_by_key(|c| {
            let rank = [
                "role",
                "database",
                "tablespace",
                "member",
                "parameter",
                "setting",
            ];
            rank.iter().position(|k| *k == c.kind).unwrap_or(rank.len())
        });
        out
    }

    /// The same state, compared by names: a role dropped and created again
    /// with the same attributes is the same role.
    fn same_as(&self, other: &ClusterState) -> bool {
        self.differences(other).is_empty()
    }

    /// What differs from `self` in `now`, compared by names.
    fn differences(&self, now: &ClusterState) -> Vec<Change> {
        let key = |i: &Item| format!("{}\u{0}{}\u{0}{}", i.kind, i.name, i.value);
        let keys = |s: &ClusterState| -> BTreeSet<String> { s.items.iter().map(key).collect() };
        let (b, n) = (keys(self), keys(now));
        let mut out = Vec::new();
        for i in &self.items {
            if !n.contains(&key(i)) {
                let what = if now.named(&i.kind, &i.name).is_some() {
                    "changed"
                } else {
                    "dropped"
                };
                out.push(change(i, None, what));
            }
        }
        for i in &now.items {
            if !b.contains(&key(i)) && self.named(&i.kind, &i.name).is_none() {
                out.push(change(i, None, "created"));
            }
        }
        out
    }
}

fn change(item: &Item, renamed: Option<&Item>, what: &str) -> Change {
    let mut names = vec![item.name.clone()];
    names.extend(renamed.map(|r| r.name.clone()));
    let label = match what {
        "created" if item.kind == "setting" || item.kind == "comment" => {
            format!("{} added", item.label())
        }
        "dropped" if item.kind == "setting" || item.kind == "comment" => {
            format!("{} removed", item.label())
        }
        _ => format!("{} {what}", item.label()),
    };
    Change {
        kind: item.kind.clone(),
        names,
        oid: item.oid,
        label,
    }
}

/// A string literal for SQL (standard_conforming_strings is on).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A role name in GRANT and REVOKE: `PUBLIC`, or the quoted name.
fn grantee(name: &str) -> String {
    if name == "public" {
        "public".into()
    } else {
        ident(name)
    }
}

/// A dotted parameter name (`plpgsql.extra_warnings`), each part quoted.
fn parameter(name: &str) -> String {
    name.split('.').map(ident).collect::<Vec<_>>().join(".")
}

/// The attributes of a role as `ALTER ROLE … WITH` options.
fn role_options(v: &Value) -> String {
    let flag = |key: &str, word: &str| {
        if v.get(key).and_then(Value::as_bool).unwrap_or(false) {
            word.to_string()
        } else {
            format!("no{word}")
        }
    };
    let mut o = vec![
        flag("rolsuper", "superuser"),
        flag("rolinherit", "inherit"),
        flag("rolcreaterole", "createrole"),
        flag("rolcreatedb", "createdb"),
        flag("rolcanlogin", "login"),
        flag("rolreplication", "replication"),
        flag("rolbypassrls", "bypassrls"),
    ];
    if let Some(n) = v.get("rolconnlimit").and_then(Value::as_i64) {
        o.push(format!("connection limit {n}"));
    }
    o.push(match v.get("rolpassword").and_then(Value::as_str) {
        Some(p) => format!("password {}", literal(p)),
        None => "password null".into(),
    });
    // No expiry (NULL) has no spelling in SQL: it is left out here, and
    // put back in the catalogue where a patch set one (see `restore`).
    let never = v.get("rolvaliduntil_null").and_then(Value::as_bool) == Some(true);
    if let (false, Some(t)) = (never, v.get("rolvaliduntil").and_then(Value::as_str)) {
        o.push(format!("valid until {}", literal(t)));
    }
    o.join(" ")
}

/// One grant as compared: (grantee, privilege, grantable).
fn acl_items(v: Option<&Value>) -> BTreeSet<(String, String, bool)> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e.get("grantee")?.as_str()?.to_string(),
                e.get("privilege")?.as_str()?.to_string(),
                e.get("grantable")?.as_bool()?,
            ))
        })
        .collect()
}

/// GRANT and REVOKE turning the privileges `now` on `object` back into `before`.
fn acl_statements(object: &str, before: Option<&Value>, now: Option<&Value>) -> Vec<String> {
    let (b, n) = (acl_items(before), acl_items(now));
    let mut out: Vec<String> = n
        .difference(&b)
        .map(|(who, what, _)| format!("revoke {what} on {object} from {} cascade", grantee(who)))
        .collect();
    out.extend(b.difference(&n).map(|(who, what, grantable)| {
        format!(
            "grant {what} on {object} to {}{}",
            grantee(who),
            if *grantable { " with grant option" } else { "" }
        )
    }));
    out
}

mod owned;
mod restore;
pub use owned::NotOwned;
pub use restore::{Changed, ClusterWatch};
