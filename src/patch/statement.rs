//! What a statement does, read from PostgreSQL's own parse tree (pg_query).
//!
//! The facts here are static: what the statement asks for. What it actually
//! did on the staging copy (locks, rewrites, rows) is measured separately and
//! the two are combined by the verdict rules.

use pg_query::protobuf::{self, AlterTableType, ConstrType, ReindexObjectType};
use pg_query::NodeEnum;
use serde::Serialize;

use super::nodes::has_option;
use super::requirement;
pub use super::requirement::Requirement;
pub use super::transaction::TxControl;
use super::transaction::{outside_transaction, tx_control};
use crate::pg::locks::LockMode;

/// A relation named in a statement, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelRef {
    pub schema: Option<String>,
    pub name: String,
}

impl RelRef {
    fn from_range_var(rv: &protobuf::RangeVar) -> Self {
        RelRef {
            schema: (!rv.schemaname.is_empty()).then(|| rv.schemaname.clone()),
            name: rv.relname.clone(),
        }
    }

    /// The name quoted so `to_regclass` resolves it exactly as written.
    pub fn regclass_text(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        match &self.schema {
            Some(s) => format!("{}.{}", q(s), q(&self.name)),
            None => q(&self.name),
        }
    }
}

impl std::fmt::Display for RelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// What kind of check a validation scan performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    ForeignKey,
    Check,
    /// `VALIDATE CONSTRAINT`: the kind is known only from the catalogue.
    Constraint,
    NotNull,
    PartitionBound,
}

/// One thing a statement asks PostgreSQL to do that matters for downtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    /// Reads the whole table to check existing rows against a constraint.
    Validates {
        rel: RelRef,
        validation: Validation,
        /// Constraint or column name where the statement gives one.
        name: Option<String>,
    },
    /// Builds an index over the table's existing rows.
    BuildsIndex { rel: RelRef, concurrently: bool },
    /// UPDATE or DELETE of existing rows.
    Writes {
        rel: RelRef,
        verb: &'static str,
        whole_table: bool,
        /// Columns the WHERE clause compares with `=` to a constant or a
        /// parameter, among its top-level AND conjuncts (sorted): a unique
        /// key among them pins the statement to one row.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        keyed: Vec<String>,
    },
    /// TRUNCATE: new empty storage, no work proportional to the rows.
    Truncates { rel: RelRef },
    /// Any ALTER TABLE of an existing table.
    AltersTable { rel: RelRef },
    /// A trigger on a table.
    CreatesTrigger { rel: RelRef },
    /// A new table whose foreign key references an existing table.
    NewTableReferences { table: RelRef, referenced: RelRef },
    /// The lock PostgreSQL documents for a statement that runs outside a
    /// transaction block, where the lock cannot be read from `pg_locks`
    /// after the statement.
    HoldsWhileRunning { rel: RelRef, mode: LockMode },
    /// What the table's existing rows must satisfy for the statement to
    /// succeed.
    Requires {
        rel: RelRef,
        requirement: Requirement,
    },
}

/// Everything known about one statement before it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Analysis {
    /// pg_query's node name (`AlterTableStmt`, `IndexStmt`, …); `Unparsed` when
    /// the parser rejected it (the server will report why).
    pub kind: String,
    /// PostgreSQL refuses this statement inside a transaction block.
    pub outside_transaction: bool,
    pub tx_control: Option<TxControl>,
    /// `COPY … FROM STDIN`: needs a client that streams data.
    pub copy_from_stdin: bool,
    /// `SET lock_timeout` / `SET LOCAL lock_timeout` (value as written).
    pub sets_lock_timeout: bool,
    pub facts: Vec<Fact>,
    /// The parser's message when it rejected the statement.
    pub parse_error: Option<String>,
    /// Why the statement would reach the staging machine itself (files,
    /// programs, libraries): such a patch is refused.
    pub host_access: Option<String>,
    /// An INSERT of constant rows (`VALUES` of literals and `DEFAULT`
    /// only, nothing after them) into this relation: what it does is fixed
    /// by the relation's definition alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values_into: Option<RelRef>,
    /// What it does to a subscription's replication slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot_step: Option<super::publisher::SlotStep>,
}

/// The node's variant name, from its `Debug` output cut at the first
/// `(`, ` ` or `{`: the writer stops the formatting there, so a large tree
/// is not printed in full to name it.
fn node_name(node: &NodeEnum) -> String {
    struct Name(String);
    impl std::fmt::Write for Name {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            match s.find(['(', ' ', '{']) {
                Some(i) => {
                    self.0.push_str(&s[..i]);
                    Err(std::fmt::Error)
                }
                None => {
                    self.0.push_str(s);
                    Ok(())
                }
            }
        }
    }
    let mut name = Name(String::new());
    let _ = std::fmt::Write::write_fmt(&mut name, format_args!("{node:?}"));
    if name.0.is_empty() {
        "Unknown".into()
    } else {
        name.0
    }
}

/// Analyse one statement's text from pg_query's parse tree.
pub fn analyse_tree(sql: &str) -> Analysis {
    let parsed = match pg_query::parse(sql, 0) {
        Ok(p) => p,
        Err(e) => {
            return Analysis {
                kind: "Unparsed".into(),
                parse_error: Some(e.to_string()),
                ..Analysis::default()
            }
        }
    };
    let mut a = Analysis::default();
    let Some(node) = parsed
        .protobuf
        .stmts
        .first()
        .and_then(|s| s.stmt.as_ref())
        .and_then(|s| s.node.as_ref())
    else {
        a.kind = "Empty".into();
        return a;
    };
    a.kind = statement_kind(node);
    a.host_access = super::host::access(sql, node);
    a.slot_step = super::publisher::slot_step(node);
    a.outside_transaction = outside_transaction(node);
    describe(node, &mut a);
    a
}

fn statement_kind(node: &NodeEnum) -> String {
    // Debug-formatting large trees is wasteful; name the common ones directly.
    match node {
        NodeEnum::AlterTableStmt(_) => "AlterTableStmt".into(),
        NodeEnum::IndexStmt(_) => "IndexStmt".into(),
        NodeEnum::CreateStmt(_) => "CreateStmt".into(),
        NodeEnum::UpdateStmt(_) => "UpdateStmt".into(),
        NodeEnum::DeleteStmt(_) => "DeleteStmt".into(),
        NodeEnum::InsertStmt(_) => "InsertStmt".into(),
        NodeEnum::SelectStmt(_) => "SelectStmt".into(),
        NodeEnum::TransactionStmt(_) => "TransactionStmt".into(),
        NodeEnum::VariableSetStmt(_) => "VariableSetStmt".into(),
        NodeEnum::CreateFunctionStmt(_) => "CreateFunctionStmt".into(),
        NodeEnum::ViewStmt(_) => "ViewStmt".into(),
        NodeEnum::DropStmt(_) => "DropStmt".into(),
        other => node_name(other),
    }
}

fn describe(node: &NodeEnum, a: &mut Analysis) {
    match node {
        NodeEnum::TransactionStmt(t) => a.tx_control = Some(tx_control(t)),
        NodeEnum::VariableSetStmt(v) => {
            a.sets_lock_timeout = v.name.eq_ignore_ascii_case("lock_timeout");
        }
        NodeEnum::CopyStmt(c) => {
            a.copy_from_stdin = c.is_from && !c.is_program && c.filename.is_empty();
        }
        NodeEnum::InsertStmt(i) => a.values_into = values_into(i),
        NodeEnum::IndexStmt(i) => index_facts(i, a),
        NodeEnum::ReindexStmt(r) => reindex_facts(r, a),
        NodeEnum::VacuumStmt(v) if v.is_vacuumcmd => vacuum_facts(v, a),
        NodeEnum::UpdateStmt(u) => {
            write_facts(u.relation.as_ref(), "UPDATE", u.where_clause.as_deref(), a)
        }
        NodeEnum::DeleteStmt(d) => {
            write_facts(d.relation.as_ref(), "DELETE", d.where_clause.as_deref(), a)
        }
        NodeEnum::TruncateStmt(t) => {
            for r in &t.relations {
                if let Some(NodeEnum::RangeVar(rv)) = &r.node {
                    a.facts.push(Fact::Truncates {
                        rel: RelRef::from_range_var(rv),
                    });
                }
            }
        }
        NodeEnum::CreateTrigStmt(t) => {
            if let Some(rel) = &t.relation {
                a.facts.push(Fact::CreatesTrigger {
                    rel: RelRef::from_range_var(rel),
                });
            }
        }
        NodeEnum::CreateStmt(c) => create_table_facts(c, a),
        NodeEnum::AlterTableStmt(t) => {
            if let Some(rv) = &t.relation {
                let rel = RelRef::from_range_var(rv);
                a.facts.push(Fact::AltersTable { rel: rel.clone() });
                for cmd in &t.cmds {
                    if let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node {
                        alter_table_cmd(&rel, cmd, a);
                    }
                }
            }
        }
        _ => {}
    }
}

/// The relation of an INSERT whose rows are constants: `VALUES` lists of
/// literals and `DEFAULT` only, with no WITH, ON CONFLICT, RETURNING or
/// OVERRIDING, and a plain column list.
fn values_into(i: &protobuf::InsertStmt) -> Option<RelRef> {
    if i.with_clause.is_some()
        || i.on_conflict_clause.is_some()
        || i.returning_clause.is_some()
        || i.r#override != protobuf::OverridingKind::OverridingNotSet as i32
    {
        return None;
    }
    let plain_column = |c: &protobuf::Node| matches!(&c.node, Some(NodeEnum::ResTarget(t)) if t.indirection.is_empty());
    if !i.cols.iter().all(plain_column) {
        return None;
    }
    let rel = i.relation.as_ref().filter(|r| r.alias.is_none())?;
    let Some(NodeEnum::SelectStmt(select)) = i.select_stmt.as_deref().and_then(|s| s.node.as_ref())
    else {
        return None;
    };
    // VALUES … ORDER BY / LIMIT / OFFSET may hold any expression.
    if !select.sort_clause.is_empty()
        || select.limit_count.is_some()
        || select.limit_offset.is_some()
        || !select.locking_clause.is_empty()
        || select.with_clause.is_some()
    {
        return None;
    }
    let constant = |n: &protobuf::Node| {
        matches!(
            n.node,
            Some(NodeEnum::AConst(_)) | Some(NodeEnum::SetToDefault(_))
        )
    };
    let rows = select.values_lists.iter().all(|row| match &row.node {
        Some(NodeEnum::List(l)) => l.items.iter().all(constant),
        _ => false,
    });
    (!select.values_lists.is_empty() && rows).then(|| RelRef::from_range_var(rel))
}

/// CREATE INDEX [CONCURRENTLY].
fn index_facts(i: &protobuf::IndexStmt, a: &mut Analysis) {
    let Some(rel) = &i.relation else {
        return;
    };
    let rel = RelRef::from_range_var(rel);
    if i.concurrent {
        a.facts.push(Fact::HoldsWhileRunning {
            rel: rel.clone(),
            mode: LockMode::ShareUpdateExclusive,
        });
    }
    a.facts
        .extend(requirement::of_index(i).map(|r| requires(&rel, r)));
    a.facts.push(Fact::BuildsIndex {
        rel,
        concurrently: i.concurrent,
    });
}

/// REINDEX of a table, index, schema, system or database, [CONCURRENTLY].
fn reindex_facts(r: &protobuf::ReindexStmt, a: &mut Analysis) {
    let concurrently = has_option(&r.params, "concurrently");
    let kind = ReindexObjectType::try_from(r.kind).ok();
    let Some(rel) = &r.relation else {
        return;
    };
    let rel = RelRef::from_range_var(rel);
    if concurrently {
        a.facts.push(Fact::HoldsWhileRunning {
            rel: rel.clone(),
            mode: LockMode::ShareUpdateExclusive,
        });
    }
    if kind == Some(ReindexObjectType::ReindexObjectTable) {
        a.facts.push(Fact::BuildsIndex { rel, concurrently });
    }
}

/// VACUUM [FULL]: always outside a transaction, with its lock on each table.
fn vacuum_facts(v: &protobuf::VacuumStmt, a: &mut Analysis) {
    let mode = if has_option(&v.options, "full") {
        LockMode::AccessExclusive
    } else {
        LockMode::ShareUpdateExclusive
    };
    for r in &v.rels {
        if let Some(NodeEnum::VacuumRelation(vr)) = &r.node {
            if let Some(rel) = &vr.relation {
                a.facts.push(Fact::HoldsWhileRunning {
                    rel: RelRef::from_range_var(rel),
                    mode,
                });
            }
        }
    }
}

/// UPDATE or DELETE of `relation`.
fn write_facts(
    relation: Option<&protobuf::RangeVar>,
    verb: &'static str,
    filter: Option<&protobuf::Node>,
    a: &mut Analysis,
) {
    if let Some(rel) = relation {
        a.facts.push(Fact::Writes {
            rel: RelRef::from_range_var(rel),
            verb,
            whole_table: filter.is_none(),
            keyed: filter.map(requirement::keyed).unwrap_or_default(),
        });
    }
}

/// CREATE TABLE: the existing tables its foreign keys reference.
fn create_table_facts(c: &protobuf::CreateStmt, a: &mut Analysis) {
    let Some(table) = &c.relation else {
        return;
    };
    let table = RelRef::from_range_var(table);
    let mut referenced = Vec::new();
    for elt in &c.table_elts {
        match &elt.node {
            Some(NodeEnum::ColumnDef(col)) => referenced.extend(foreign_tables(&col.constraints)),
            Some(NodeEnum::Constraint(_)) => {
                referenced.extend(foreign_tables(std::slice::from_ref(elt)))
            }
            _ => {}
        }
    }
    for r in referenced {
        a.facts.push(Fact::NewTableReferences {
            table: table.clone(),
            referenced: r,
        });
    }
}

fn foreign_tables(constraints: &[protobuf::Node]) -> Vec<RelRef> {
    constraints
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::Constraint(c)) if c.contype == ConstrType::ConstrForeign as i32 => {
                c.pktable.as_ref().map(RelRef::from_range_var)
            }
            _ => None,
        })
        .collect()
}

fn alter_table_cmd(rel: &RelRef, cmd: &protobuf::AlterTableCmd, a: &mut Analysis) {
    let Ok(subtype) = AlterTableType::try_from(cmd.subtype) else {
        return;
    };
    let constraint = || match cmd.def.as_deref().and_then(|d| d.node.as_ref()) {
        Some(NodeEnum::Constraint(c)) => Some(c.as_ref()),
        _ => None,
    };
    match subtype {
        AlterTableType::AtAddConstraint => {
            if let Some(c) = constraint() {
                constraint_facts(rel, c, a);
            }
        }
        AlterTableType::AtAddColumn => {
            if let Some(NodeEnum::ColumnDef(col)) = cmd.def.as_deref().and_then(|d| d.node.as_ref())
            {
                for n in &col.constraints {
                    if let Some(NodeEnum::Constraint(c)) = &n.node {
                        constraint_facts(rel, c, a);
                    }
                }
                a.facts
                    .extend(requirement::of_new_column(col).map(|r| requires(rel, r)));
            }
        }
        AlterTableType::AtAlterColumnType => a.facts.push(requires(
            rel,
            Requirement::Converts {
                column: cmd.name.clone(),
            },
        )),
        AlterTableType::AtValidateConstraint => a.facts.push(Fact::Validates {
            rel: rel.clone(),
            validation: Validation::Constraint,
            name: Some(cmd.name.clone()),
        }),
        AlterTableType::AtSetNotNull => {
            a.facts.push(Fact::Validates {
                rel: rel.clone(),
                validation: Validation::NotNull,
                name: Some(cmd.name.clone()),
            });
            a.facts
                .push(requires(rel, requirement::not_null(&cmd.name)));
        }
        AlterTableType::AtAttachPartition => {
            if let Some(NodeEnum::PartitionCmd(p)) =
                cmd.def.as_deref().and_then(|d| d.node.as_ref())
            {
                if let Some(part) = &p.name {
                    a.facts.push(Fact::Validates {
                        rel: RelRef::from_range_var(part),
                        validation: Validation::PartitionBound,
                        name: None,
                    });
                }
            }
        }
        AlterTableType::AtDetachPartition => {
            if let Some(NodeEnum::PartitionCmd(p)) =
                cmd.def.as_deref().and_then(|d| d.node.as_ref())
            {
                if p.concurrent {
                    a.facts.push(Fact::HoldsWhileRunning {
                        rel: rel.clone(),
                        mode: LockMode::ShareUpdateExclusive,
                    });
                }
            }
        }
        _ => {}
    }
}

fn requires(rel: &RelRef, requirement: Requirement) -> Fact {
    Fact::Requires {
        rel: rel.clone(),
        requirement,
    }
}

fn constraint_facts(rel: &RelRef, c: &protobuf::Constraint, a: &mut Analysis) {
    let name = (!c.conname.is_empty()).then(|| c.conname.clone());
    match ConstrType::try_from(c.contype) {
        Ok(ConstrType::ConstrForeign) if !c.skip_validation => a.facts.push(Fact::Validates {
            rel: rel.clone(),
            validation: Validation::ForeignKey,
            name,
        }),
        Ok(ConstrType::ConstrCheck) if !c.skip_validation => a.facts.push(Fact::Validates {
            rel: rel.clone(),
            validation: Validation::Check,
            name,
        }),
        Ok(ConstrType::ConstrPrimary | ConstrType::ConstrUnique | ConstrType::ConstrExclusion)
            if c.indexname.is_empty() =>
        {
            let each = requirement::of_constraint(c).into_iter();
            a.facts.extend(each.map(|r| requires(rel, r)));
            a.facts.push(Fact::BuildsIndex {
                rel: rel.clone(),
                concurrently: false,
            })
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "statement_tests.rs"]
mod tests;
