//! Launchpad's `LaunchpadDatabaseRevision`: part of Launchpad's schema, not
//! created by its tool. upgrade.py skips a patch whose (major, minor,
//! patch) is recorded, and each patch inserts its own row; a patch that
//! did not is a fatal error ("failed to update LaunchpadDatabaseRevision
//! correctly"). downtime never inserts the row for it.

use tokio_postgres::Client;

use super::{recorded_in, Ctx, Plan};
use crate::error::Result;
use crate::patch::Patch;

const TABLE: &str = "LaunchpadDatabaseRevision";

pub(super) async fn read(c: &Client) -> Result<super::State> {
    let rows = c
        .query(
            "SELECT major::int4, minor::int4, patch::int4 FROM LaunchpadDatabaseRevision",
            &[],
        )
        .await?;
    Ok(super::State::Launchpad(
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect(),
    ))
}

fn triple(p: &Patch) -> Option<(i32, i32, i32)> {
    match p.file.position.0.as_slice() {
        [a, b, c] => Some((
            i32::try_from(*a).ok()?,
            i32::try_from(*b).ok()?,
            i32::try_from(*c).ok()?,
        )),
        _ => None,
    }
}

/// After the patch, in its transaction: did it insert its row?
pub(super) async fn check(c: &Client, patch: &Patch) -> Result<Option<String>> {
    let Some((a, b, p)) = triple(patch) else {
        return Ok(None);
    };
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM LaunchpadDatabaseRevision WHERE major = $1 AND minor = $2 AND patch = $3",
            &[&a, &b, &p],
        )
        .await?
        .get(0);
    Ok((n == 0).then(|| {
        format!(
            "{} failed to update {TABLE} correctly: a Launchpad patch inserts its own row \
             (INSERT INTO {TABLE} VALUES ({a}, {b}, {p});), and upgrade.py stops without it",
            patch.file.path.display()
        )
    }))
}

pub(super) fn plan(rows: &[(i32, i32, i32)], ctx: &Ctx<'_>, plan: &mut Plan) {
    for (p, step) in ctx.patches.iter().zip(plan.steps.iter_mut()) {
        if let Some(t) = triple(p).filter(|t| rows.contains(t)) {
            *step = recorded_in(TABLE, &format!("{}-{:02}-{}", t.0, t.1, t.2));
        }
    }
}
