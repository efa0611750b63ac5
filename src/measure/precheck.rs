//! Catalogue facts read just before a statement runs: the relations it
//! names, and what its validations would find already proven.

use std::collections::hash_map::Entry;

use tokio_postgres::Client;

use super::PreCheck;
use crate::error::Result;
use crate::patch::statement::Validation;
use crate::patch::{Fact, Statement};
use crate::pg::catalog;

/// Resolve the statement's relations and read the catalogue facts its
/// classification needs, before it runs.
pub(super) async fn precheck(client: &Client, st: &Statement) -> Result<PreCheck> {
    let mut pre = PreCheck::default();
    for fact in &st.analysis.facts {
        let rel = match fact {
            Fact::Validates { rel, .. }
            | Fact::BuildsIndex { rel, .. }
            | Fact::Writes { rel, .. }
            | Fact::Truncates { rel }
            | Fact::AltersTable { rel }
            | Fact::CreatesTrigger { rel }
            | Fact::HoldsWhileRunning { rel, .. } => rel,
            Fact::NewTableReferences { referenced, .. } => referenced,
        };
        let key = rel.to_string();
        if !pre.resolved.contains_key(&key) {
            let oid = catalog::resolve(client, &rel.regclass_text()).await?;
            pre.resolved.insert(key.clone(), oid);
        }
        let Some(Some(oid)) = pre.resolved.get(&key).copied() else {
            continue;
        };
        if let Fact::Validates {
            validation, name, ..
        } = fact
        {
            if let Entry::Vacant(slot) = pre.blocks_before.entry(oid) {
                slot.insert(catalog::blocks_fetched(client, oid).await?);
            }
            let Some(name) = name else {
                continue;
            };
            match validation {
                Validation::NotNull => {
                    let proven = catalog::not_null_proven(client, oid, name).await?;
                    pre.not_null_proven.insert(name.clone(), proven);
                }
                Validation::Constraint => {
                    if let Some(state) = catalog::constraint_state(client, oid, name).await? {
                        pre.constraint.insert(name.clone(), state);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(pre)
}
