//! Statements and transactions: the patch's own transaction control, and
//! the statements PostgreSQL refuses inside a transaction block
//! (`PreventInTransactionBlock` in its source), which downtime runs outside
//! its transaction, in order.

use pg_query::protobuf::{
    self, AlterSubscriptionType, AlterTableType, DiscardMode, ReindexObjectType,
    TransactionStmtKind,
};
use pg_query::NodeEnum;
use serde::Serialize;

use super::nodes::{def_elem_names, has_option};

/// Transaction control written in the patch itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TxControl {
    Begin,
    Commit,
    Rollback,
    /// SAVEPOINT, RELEASE, ROLLBACK TO: inside a transaction, no change of state.
    Savepoint,
    /// PREPARE TRANSACTION and friends: not supported in a patch.
    TwoPhase,
}

pub(super) fn tx_control(t: &protobuf::TransactionStmt) -> TxControl {
    match TransactionStmtKind::try_from(t.kind) {
        Ok(TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart) => {
            TxControl::Begin
        }
        Ok(TransactionStmtKind::TransStmtCommit) => TxControl::Commit,
        Ok(TransactionStmtKind::TransStmtRollback) => TxControl::Rollback,
        Ok(
            TransactionStmtKind::TransStmtSavepoint
            | TransactionStmtKind::TransStmtRelease
            | TransactionStmtKind::TransStmtRollbackTo,
        ) => TxControl::Savepoint,
        _ => TxControl::TwoPhase,
    }
}

/// The option `name` is given, on or off.
fn names_option(nodes: &[protobuf::Node], name: &str) -> bool {
    def_elem_names(nodes).any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// PostgreSQL refuses this statement inside a transaction block.
pub(super) fn outside_transaction(node: &NodeEnum) -> bool {
    match node {
        NodeEnum::IndexStmt(i) => i.concurrent,
        NodeEnum::DropStmt(d) => d.concurrent,
        NodeEnum::ReindexStmt(r) => {
            has_option(&r.params, "concurrently")
                || matches!(
                    ReindexObjectType::try_from(r.kind),
                    Ok(ReindexObjectType::ReindexObjectSchema
                        | ReindexObjectType::ReindexObjectSystem
                        | ReindexObjectType::ReindexObjectDatabase)
                )
        }
        NodeEnum::VacuumStmt(v) => v.is_vacuumcmd,
        NodeEnum::ClusterStmt(c) => c.relation.is_none(),
        NodeEnum::CreatedbStmt(_)
        | NodeEnum::DropdbStmt(_)
        | NodeEnum::CreateTableSpaceStmt(_)
        | NodeEnum::DropTableSpaceStmt(_)
        | NodeEnum::AlterSystemStmt(_)
        | NodeEnum::CreateSubscriptionStmt(_)
        | NodeEnum::DropSubscriptionStmt(_) => true,
        // ALTER DATABASE … SET TABLESPACE moves the database's files.
        NodeEnum::AlterDatabaseStmt(a) => names_option(&a.options, "tablespace"),
        // DISCARD ALL; DISCARD PLANS, SEQUENCES and TEMP run anywhere.
        NodeEnum::DiscardStmt(d) => d.target == DiscardMode::DiscardAll as i32,
        NodeEnum::AlterSubscriptionStmt(s) => match AlterSubscriptionType::try_from(s.kind) {
            Ok(AlterSubscriptionType::AlterSubscriptionRefresh) => true,
            // Changing the publications refreshes unless `refresh = false`.
            Ok(
                AlterSubscriptionType::AlterSubscriptionSetPublication
                | AlterSubscriptionType::AlterSubscriptionAddPublication
                | AlterSubscriptionType::AlterSubscriptionDropPublication,
            ) => !names_option(&s.options, "refresh") || has_option(&s.options, "refresh"),
            _ => false,
        },
        NodeEnum::AlterTableStmt(t) => t.cmds.iter().any(|c| match &c.node {
            Some(NodeEnum::AlterTableCmd(cmd)) => {
                cmd.subtype == AlterTableType::AtDetachPartition as i32
                    && matches!(
                        cmd.def.as_deref().and_then(|d| d.node.as_ref()),
                        Some(NodeEnum::PartitionCmd(p)) if p.concurrent
                    )
            }
            _ => false,
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::patch::analyse;

    #[test]
    fn statements_refused_in_a_transaction_block_run_outside_it() {
        for sql in [
            "create index concurrently i on t (a)",
            "drop index concurrently i",
            "reindex index concurrently i",
            "reindex (concurrently) table t",
            "reindex schema s",
            "reindex database d",
            "reindex system d",
            "vacuum t",
            "vacuum (full) t",
            "vacuum",
            "cluster",
            "create database x",
            "drop database x",
            "create tablespace ts location '/x'",
            "drop tablespace ts",
            "alter system set work_mem = '1MB'",
            "alter table p detach partition c concurrently",
            "discard all",
            "DISCARD ALL",
            "alter database d set tablespace ts",
            "alter database d tablespace ts",
            "create subscription s connection 'host=x' publication p",
            "drop subscription s",
            "alter subscription s refresh publication",
            "alter subscription s set publication p",
            "alter subscription s add publication p with (refresh = true)",
        ] {
            assert!(analyse(sql).outside_transaction, "{sql}");
        }
        for sql in [
            "create index i on t (a)",
            "analyze t",
            "alter table t add column c int",
            "alter table p detach partition c",
            "cluster t using i",
            "reindex table t",
            "discard temp",
            "discard plans",
            "discard sequences",
            "alter database d set work_mem = '1MB'",
            "alter database d rename to e",
            "alter database d with allow_connections false",
            "alter subscription s set publication p with (refresh = false)",
            "alter subscription s disable",
            "set role r",
        ] {
            assert!(!analyse(sql).outside_transaction, "{sql}");
        }
    }
}
