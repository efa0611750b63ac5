//! Scaled-down copies of the template, for estimating at production size.

use tokio_postgres::Client;

use crate::error::Result;

/// Keep about `fraction` of the database's rows: sample the tables that
/// reference no other table, delete the rows left without their parent
/// (foreign key triggers off meanwhile), then settle it as the baseline
/// template is settled: VACUUM FULL (sizes match the smaller data), VACUUM
/// ANALYZE (visibility map and statistics) and CHECKPOINT. Deterministic
/// (`setseed`). Runs on a scaled template that the timed copies are made from.
pub async fn scale_copy(client: &Client, fraction: f64) -> Result<()> {
    if fraction >= 1.0 {
        return Ok(());
    }
    const USER: &str = "n.nspname not in ('pg_catalog', 'information_schema') \
                        and n.nspname !~ '^pg_toast' and n.nspname !~ '^pg_temp'";
    let tables = client
        .query(
            &format!(
                "/*downtime*/ select c.oid::regclass::text, \
                   exists (select 1 from pg_constraint k where k.conrelid = c.oid and k.contype = 'f' and k.confrelid <> c.oid) \
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace \
                 where c.relkind = 'r' and {USER}"
            ),
            &[],
        )
        .await?;
    // One orphan-deleting statement per foreign key.
    let fks = client
        .query(
            "/*downtime*/ select k.conrelid::regclass::text, k.confrelid::regclass::text, \
               array(select quote_ident(a.attname) from unnest(k.conkey) with ordinality u(n, i) \
                     join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.n order by u.i), \
               array(select quote_ident(a.attname) from unnest(k.confkey) with ordinality u(n, i) \
                     join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.n order by u.i) \
             from pg_constraint k where k.contype = 'f'",
            &[],
        )
        .await?;
    client
        .batch_execute("/*downtime*/ set session_replication_role = replica")
        .await?;
    client
        .simple_query(&format!("/*downtime*/ select setseed({})", 0.42))
        .await?;
    for t in &tables {
        let name: String = t.get(0);
        let references: bool = t.get(1);
        if !references {
            client
                .execute(
                    &format!("/*downtime*/ delete from {name} where random() >= $1"),
                    &[&fraction],
                )
                .await?;
        }
    }
    let orphans: Vec<String> = fks
        .iter()
        .map(|r| {
            let (child, parent): (String, String) = (r.get(0), r.get(1));
            let (ccols, pcols): (Vec<String>, Vec<String>) = (r.get(2), r.get(3));
            let join: Vec<String> = ccols
                .iter()
                .zip(&pcols)
                .map(|(c, p)| format!("p.{p} = c.{c}"))
                .collect();
            let present: Vec<String> = ccols.iter().map(|c| format!("c.{c} is not null")).collect();
            format!(
                "/*downtime*/ delete from {child} c where {} and not exists (select 1 from {parent} p where {})",
                present.join(" and "),
                join.join(" and ")
            )
        })
        .collect();
    for _ in 0..10 {
        let mut deleted = 0;
        for sql in &orphans {
            deleted += client.execute(sql.as_str(), &[]).await?;
        }
        if deleted == 0 {
            break;
        }
    }
    client
        .batch_execute("/*downtime*/ reset session_replication_role")
        .await?;
    client.batch_execute("/*downtime*/ vacuum (full)").await?;
    client
        .batch_execute("/*downtime*/ vacuum (analyze)")
        .await?;
    client.batch_execute("/*downtime*/ checkpoint").await?;
    Ok(())
}
