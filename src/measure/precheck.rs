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
/// classification needs, before it runs. Names are resolved with the
/// patch's own search path (as the statement will resolve them); the
/// catalogue is read [`catalog::pinned`]. `in_transaction`: the session is
/// in a transaction block. `held`: pre-existing tables the transaction
/// holds a lock on that blocks the application, whose reads by the
/// statement are counted as those of the tables it validates are;
/// `snapshot`: the relations before the patch.
pub(super) async fn precheck(
    client: &Client,
    st: &Statement,
    in_transaction: bool,
    held: &[u32],
    snapshot: &crate::pg::Snapshot,
) -> Result<PreCheck> {
    let mut pre = PreCheck::default();
    for fact in &st.analysis.facts {
        let rel = relation_of(fact);
        let key = rel.to_string();
        if let Entry::Vacant(slot) = pre.resolved.entry(key) {
            slot.insert(catalog::resolve(client, &rel.regclass_text()).await?);
        }
    }
    let validated: Vec<u32> = st
        .analysis
        .facts
        .iter()
        .filter_map(|f| match f {
            Fact::Validates { rel, .. } => pre.resolved.get(&rel.to_string()).copied().flatten(),
            _ => None,
        })
        .collect();
    let mut watched = validated.clone();
    watched.extend(held.iter().filter(|o| !validated.contains(o)));
    if !watched.is_empty() {
        (pre.blocks_before, pre.partitions) = catalog::reads(client, &watched).await?;
    }
    // A write pinned by a unique key to a row is no work over the table.
    let keyed: Vec<u32> = st
        .analysis
        .facts
        .iter()
        .filter_map(|f| match f {
            Fact::Writes { rel, keyed, .. } if !keyed.is_empty() => {
                pre.resolved.get(&rel.to_string()).copied().flatten()
            }
            _ => None,
        })
        // Only where it matters: under a lock that blocks the application,
        // or on a table staging holds no rows of (the fraction it writes
        // cannot be measured there).
        .filter(|oid| !held.is_empty() || snapshot.get(*oid).is_some_and(|r| !r.populated()))
        .collect();
    if !keyed.is_empty() {
        pre.unique_keys = catalog::unique_keys(client, &keyed).await?;
    }
    if validated.is_empty() {
        return Ok(pre);
    }
    catalog::pinned(client, in_transaction, validations(client, st, &mut pre)).await?;
    Ok(pre)
}

/// The relation a fact is about.
fn relation_of(fact: &Fact) -> &crate::patch::statement::RelRef {
    match fact {
        Fact::Validates { rel, .. }
        | Fact::BuildsIndex { rel, .. }
        | Fact::Writes { rel, .. }
        | Fact::Truncates { rel }
        | Fact::AltersTable { rel }
        | Fact::CreatesTrigger { rel }
        | Fact::HoldsWhileRunning { rel, .. }
        | Fact::Requires { rel, .. } => rel,
        Fact::NewTableReferences { referenced, .. } => referenced,
    }
}

/// For each validation of a resolved relation: what the catalogue already
/// proves.
async fn validations(client: &Client, st: &Statement, pre: &mut PreCheck) -> Result<()> {
    for fact in &st.analysis.facts {
        let Fact::Validates {
            rel,
            validation,
            name,
        } = fact
        else {
            continue;
        };
        let Some(Some(oid)) = pre.resolved.get(&rel.to_string()).copied() else {
            continue;
        };
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
    Ok(())
}
