//! Which lock a slow probe query waits on, and who holds it: asked of the
//! server only while a query has been in flight for half the threshold,
//! so an unblocked workload costs nothing here.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::traffic::Shared;
use super::workload::ProbeQuery;
use super::{LockWait, PatchWait, Wanted};
use crate::pg::locks::LockMode;

/// Every lock not granted to the given server processes, with the
/// relation's name, the processes it waits for, and the strongest lock the
/// patch's process (`$2`) holds or asks for on that relation.
const WAITS: &str = "/*downtime*/ select l.pid, l.locktype, l.mode, \
       case when c.oid is null then null else n.nspname || '.' || c.relname end, \
       pg_catalog.pg_blocking_pids(l.pid), \
       (select pg_catalog.array_agg(p.mode) from pg_catalog.pg_locks p \
         where p.pid = $2 and p.locktype = 'relation' and p.relation = l.relation) \
     from pg_catalog.pg_locks l \
     left join pg_catalog.pg_class c on c.oid = l.relation \
     left join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
     where not l.granted and l.pid = any($1)";

/// Watch the queries in flight until the probe stops.
pub(super) async fn watch(
    client: Client,
    patch_pid: i32,
    queries: Rc<[ProbeQuery]>,
    state: Rc<std::cell::RefCell<Shared>>,
    threshold: Duration,
) {
    let half = threshold / 2;
    let tick = half.clamp(Duration::from_millis(5), Duration::from_millis(25));
    loop {
        tokio::time::sleep(tick).await;
        let now = Instant::now();
        let due: Vec<i32> = {
            let mut s = state.borrow_mut();
            s.in_flight
                .iter_mut()
                .filter(|(_, f)| {
                    f.lock.is_none()
                        && now.duration_since(f.started) >= half
                        && f.checked.is_none_or(|c| now.duration_since(c) >= threshold)
                })
                .map(|(pid, f)| {
                    f.checked = Some(now);
                    *pid
                })
                .collect()
        };
        if due.is_empty() {
            continue;
        }
        let mut pids = due.clone();
        pids.push(patch_pid);
        let Ok(rows) = client.query(WAITS, &[&pids, &patch_pid]).await else {
            continue;
        };
        let seen = Instant::now();
        let mut s = state.borrow_mut();
        let long = s.long_pid;
        for r in rows {
            let pid: i32 = r.get(0);
            let locktype: String = r.get(1);
            let mode: String = r.get(2);
            let relation: Option<String> = r.get(3);
            let blockers: Vec<i32> = r.get(4);
            let patch_modes: Option<Vec<String>> = r.get(5);
            let behind_long = long.is_some_and(|l| blockers.contains(&l));
            if pid == patch_pid {
                let recent = s
                    .patch_waits
                    .last()
                    .is_some_and(|w| w.relation == relation && seen.duration_since(w.seen) < half);
                if !recent {
                    s.patch_waits.push(PatchWait {
                        relation,
                        mode: LockMode::from_pg_locks(&mode),
                        behind_long_query: behind_long,
                        seen,
                    });
                }
                continue;
            }
            let Some(f) = s.in_flight.get_mut(&pid) else {
                continue;
            };
            let wanted = match (locktype.as_str(), LockMode::from_pg_locks(&mode)) {
                ("relation", Some(m)) => Wanted::Table(m),
                _ => Wanted::Row,
            };
            let strongest = patch_modes
                .unwrap_or_default()
                .iter()
                .filter_map(|m| LockMode::from_pg_locks(m))
                .max();
            f.lock = Some(LockWait {
                relation: relation.or_else(|| queries[f.query].relation.clone()),
                wanted,
                behind_patch: blockers.contains(&patch_pid),
                patch_mode: strongest,
                patch_waiting: false,
                behind_long_query: behind_long,
                seen,
            });
        }
        let patch_waiting = s.patch_waits.last().is_some_and(|w| w.seen == seen);
        if patch_waiting {
            for f in s.in_flight.values_mut() {
                if let Some(l) = f.lock.as_mut().filter(|l| l.seen == seen) {
                    l.patch_waiting = true;
                }
            }
        }
    }
}
