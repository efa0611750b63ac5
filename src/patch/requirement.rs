//! What a table's existing rows must satisfy for a statement to succeed:
//! unique keys, NOT NULL columns. Read from the parse tree; production's
//! statistics can prove a requirement fails where staging's rows cannot.

use pg_query::protobuf::{self, ConstrType};
use pg_query::NodeEnum;
use serde::Serialize;

/// A condition on existing rows that a statement fails without.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "requires", rename_all = "snake_case")]
pub enum Requirement {
    /// No two rows alike over these columns (a unique index over every
    /// row, a primary key, a unique constraint).
    Unique { columns: Vec<String> },
    /// No NULL in the column (SET NOT NULL, a primary key's columns).
    NotNull { column: String },
    /// A new NOT NULL column without a default: only an empty table takes it.
    NewNotNull { column: String },
    /// Every value of the column converts to its new type (ALTER COLUMN …
    /// TYPE): told only by the values themselves.
    Converts { column: String },
}

/// `column` must hold no NULL.
pub(super) fn not_null(column: &str) -> Requirement {
    Requirement::NotNull {
        column: column.to_string(),
    }
}

/// A unique index over every row (not partial) of plain columns.
pub(super) fn of_index(i: &protobuf::IndexStmt) -> Option<Requirement> {
    if !i.unique || i.where_clause.is_some() {
        return None;
    }
    let columns: Option<Vec<String>> = i
        .index_params
        .iter()
        .map(|p| match &p.node {
            Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => Some(e.name.clone()),
            _ => None,
        })
        .collect();
    Some(Requirement::Unique { columns: columns? })
}

/// A primary key (unique, and NOT NULL columns) or unique constraint over
/// named columns.
pub(super) fn of_constraint(c: &protobuf::Constraint) -> Vec<Requirement> {
    let columns: Vec<String> = c.keys.iter().filter_map(string_of).collect();
    let primary = c.contype == ConstrType::ConstrPrimary as i32;
    let unique = primary || c.contype == ConstrType::ConstrUnique as i32;
    if !unique || columns.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Requirement> = Vec::new();
    if primary {
        out.extend(columns.iter().map(|column| not_null(column)));
    }
    out.push(Requirement::Unique { columns });
    out
}

/// ADD COLUMN … NOT NULL with nothing to fill existing rows.
pub(super) fn of_new_column(col: &protobuf::ColumnDef) -> Option<Requirement> {
    new_not_null_without_value(col).then(|| Requirement::NewNotNull {
        column: col.colname.clone(),
    })
}

/// A string node's text (a column name in a constraint's key list).
fn string_of(n: &protobuf::Node) -> Option<String> {
    match &n.node {
        Some(NodeEnum::String(s)) => Some(s.sval.clone()),
        _ => None,
    }
}

/// ADD COLUMN … NOT NULL with nothing to fill existing rows: no DEFAULT,
/// no identity, not generated, not a serial type.
fn new_not_null_without_value(col: &protobuf::ColumnDef) -> bool {
    let kinds: Vec<Option<ConstrType>> = col
        .constraints
        .iter()
        .map(|n| match &n.node {
            Some(NodeEnum::Constraint(c)) => ConstrType::try_from(c.contype).ok(),
            _ => None,
        })
        .collect();
    let not_null = kinds.iter().any(|k| {
        matches!(
            k,
            Some(ConstrType::ConstrNotnull | ConstrType::ConstrPrimary)
        )
    });
    let filled = kinds.iter().any(|k| {
        matches!(
            k,
            Some(
                ConstrType::ConstrDefault
                    | ConstrType::ConstrIdentity
                    | ConstrType::ConstrGenerated
            )
        )
    }) || col.raw_default.is_some();
    let serial = col.type_name.as_ref().is_some_and(|t| {
        t.names.last().and_then(string_of).is_some_and(|n| {
            matches!(
                n.as_str(),
                "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8"
            )
        })
    });
    not_null && !filled && !serial
}

/// The columns a WHERE clause compares with `=` to a constant or a
/// parameter among its top-level AND conjuncts, sorted and without
/// repeats.
pub(super) fn keyed(filter: &protobuf::Node) -> Vec<String> {
    let conjuncts: Vec<&protobuf::Node> = match &filter.node {
        Some(NodeEnum::BoolExpr(b)) if b.boolop == protobuf::BoolExprType::AndExpr as i32 => {
            b.args.iter().collect()
        }
        _ => vec![filter],
    };
    let mut out: Vec<String> = conjuncts.into_iter().filter_map(equals_constant).collect();
    out.sort();
    out.dedup();
    out
}

/// `column = constant` (either way round): the column.
fn equals_constant(n: &protobuf::Node) -> Option<String> {
    let Some(NodeEnum::AExpr(e)) = &n.node else {
        return None;
    };
    let is_eq = e.kind == protobuf::AExprKind::AexprOp as i32
        && e.name.len() == 1
        && e.name.first().and_then(string_of).as_deref() == Some("=");
    if !is_eq {
        return None;
    }
    let (l, r) = (e.lexpr.as_deref()?, e.rexpr.as_deref()?);
    column(l)
        .filter(|_| constant(r))
        .or_else(|| column(r).filter(|_| constant(l)))
}

fn column(n: &protobuf::Node) -> Option<String> {
    match &n.node {
        Some(NodeEnum::ColumnRef(c)) => c.fields.last().and_then(string_of),
        _ => None,
    }
}

fn constant(n: &protobuf::Node) -> bool {
    match &n.node {
        Some(NodeEnum::AConst(_) | NodeEnum::ParamRef(_)) => true,
        Some(NodeEnum::TypeCast(t)) => t.arg.as_deref().is_some_and(constant),
        _ => false,
    }
}
