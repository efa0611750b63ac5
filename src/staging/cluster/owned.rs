//! What of the cluster-level state a run owns on a server it shares with
//! others (the server backend): the roles and databases its patches made.
//! Everything else there (the server's roles, other databases, settings
//! for them, tablespaces, privileges on parameters) is someone else's, and
//! a patch that changes it fails, even though the run puts it back: while
//! the run lasts it is changed for everyone, and a role made able to log in
//! is a way into a server the run does not own.

use super::{Change, ClusterState, Item};
use crate::staging::cluster::ClusterWatch;

/// A change to what the run does not own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOwned {
    /// "role app_owner changed: it was on the server before the run", …
    pub label: String,
    /// The roles and databases it is about, as named in SQL, to find the
    /// statement that made it.
    pub names: Vec<String>,
}

impl ClusterWatch {
    /// The changes among `changes` (from `prev` to `now`, one patch's) to
    /// what the run does not own: what was there when the run started, and
    /// roles that can log in.
    pub fn not_owned(
        &self,
        prev: &ClusterState,
        now: &ClusterState,
        changes: &[Change],
    ) -> Vec<NotOwned> {
        let before = self.recorded();
        let existed =
            |kind: &str, name: Option<&str>| name.is_some_and(|n| before.named(kind, n).is_some());
        let mut out = Vec::new();
        for c in changes {
            let Some(item) = find(now, c).or_else(|| find(prev, c)) else {
                continue;
            };
            let name = item.name.clone();
            let (why, names): (Option<String>, Vec<String>) = match c.kind.as_str() {
                "role" if was_there(before, c) => (
                    Some("the role was on the server before the run".into()),
                    vec![name],
                ),
                "role" => {
                    let login = find(now, c)
                        .and_then(|i| i.field("rolcanlogin"))
                        .and_then(serde_json::Value::as_bool)
                        == Some(true);
                    (
                        login.then(|| {
                            "a role that can log in opens the shared server to whoever knows \
                             its password while the run lasts"
                                .to_string()
                        }),
                        vec![name],
                    )
                }
                "database" => (
                    was_there(before, c)
                        .then(|| "the database was on the server before the run".into()),
                    vec![name],
                ),
                "member" => {
                    let (role, member) = (item.text("role"), item.text("member"));
                    (
                        existed("role", member).then(|| {
                            "the member role was on the server before the run".to_string()
                        }),
                        [member, role]
                            .iter()
                            .flatten()
                            .map(|s| s.to_string())
                            .collect(),
                    )
                }
                "setting" => {
                    let (role, db) = (item.text("role"), item.text("database"));
                    let owned = (role.is_some() && !existed("role", role))
                        || (db.is_some() && !existed("database", db));
                    (
                        (!owned).then(|| {
                            "they apply to roles or databases that were on the server before \
                             the run"
                                .to_string()
                        }),
                        [role, db].iter().flatten().map(|s| s.to_string()).collect(),
                    )
                }
                "comment" => {
                    let (class, object) = (item.text("class"), item.text("object"));
                    let theirs = match class {
                        Some(k @ ("role" | "database" | "tablespace")) => existed(k, object),
                        _ => true,
                    };
                    (
                        theirs.then(|| "it is on an object that was there before the run".into()),
                        object.map(str::to_string).into_iter().collect(),
                    )
                }
                // Tablespaces, security labels and privileges on
                // parameters are the whole server's.
                _ => (Some("it is the whole server's".into()), vec![name.clone()]),
            };
            if let Some(why) = why {
                out.push(NotOwned {
                    label: format!("{} ({why})", c.label),
                    names,
                });
            }
        }
        out
    }
}

/// The item `c` is about in `state`.
fn find<'s>(state: &'s ClusterState, c: &Change) -> Option<&'s Item> {
    state.items.iter().find(|i| {
        i.kind == c.kind
            && match (c.oid, i.oid) {
                (Some(a), Some(b)) => a == b,
                _ => c.names.first() == Some(&i.name),
            }
    })
}

/// Whether the role, database or tablespace `c` is about was recorded when
/// the run started (by oid: a rename is still the same one).
fn was_there(before: &ClusterState, c: &Change) -> bool {
    find(before, c).is_some()
}
