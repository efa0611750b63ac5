//! downtime's own queries on the session applying a patch (the trace, the
//! prechecks) run with downtime's privileges, whatever role the patch has
//! switched to with `SET ROLE` or `SET SESSION AUTHORIZATION`: an
//! unprivileged role would make them fail (`to_regclass` of a schema it may
//! not use) or see less. The patch's role, session authorization and search
//! path are put back afterwards exactly as they were, as `SET LOCAL` inside
//! a transaction (so its commit keeps what the patch itself set) and as a
//! session setting outside one. Every function is schema-qualified: the
//! patch's search path is still in effect when these run.

use tokio_postgres::Client;

use crate::error::Result;

/// The patch's identity while downtime borrowed the session.
pub(super) struct Borrowed {
    /// Inside a transaction: the switch was `SET LOCAL`.
    local: bool,
    session_authorization: String,
    role: String,
    search_path: String,
}

/// If the session no longer runs as `me`, switch it back to `me` (the
/// search path fixed to the schemas it names for the patch's role, so
/// names resolve as the patch's statements would resolve them) and return
/// what to restore.
pub(super) async fn as_downtime(
    client: &Client,
    me: &str,
    in_transaction: bool,
) -> Result<Option<Borrowed>> {
    let row = client
        .query_one(
            "/*downtime*/ select current_user::text, pg_catalog.current_setting('session_authorization'), \
             pg_catalog.current_setting('role'), pg_catalog.current_setting('search_path')",
            &[],
        )
        .await?;
    let user: String = row.get(0);
    if user == me {
        return Ok(None);
    }
    let borrowed = Borrowed {
        local: in_transaction,
        session_authorization: row.get(1),
        role: row.get(2),
        search_path: row.get(3),
    };
    client
        .query_one(
            "/*downtime*/ select pg_catalog.set_config('search_path', \
               (select coalesce(pg_catalog.string_agg(pg_catalog.quote_ident(s), ', '), '') \
                from pg_catalog.unnest(pg_catalog.current_schemas(false)) s), $1), \
             pg_catalog.set_config('session_authorization', $2, $1), pg_catalog.set_config('role', 'none', $1)",
            &[&in_transaction, &me],
        )
        .await?;
    Ok(Some(borrowed))
}

/// Give the session back to the patch's identity.
pub(super) async fn back_to_patch(client: &Client, borrowed: Option<Borrowed>) -> Result<()> {
    let Some(b) = borrowed else {
        return Ok(());
    };
    client
        .query_one(
            "/*downtime*/ select pg_catalog.set_config('session_authorization', $1, $4), \
             pg_catalog.set_config('role', $2, $4), pg_catalog.set_config('search_path', $3, $4)",
            &[&b.session_authorization, &b.role, &b.search_path, &b.local],
        )
        .await?;
    Ok(())
}
