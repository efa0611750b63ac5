//! Subscription statements that make the staging server connect to the
//! subscription's publisher. On a rehearsal that server is usually
//! production itself: `CREATE SUBSCRIPTION` would create a replication slot
//! there, which keeps WAL until someone drops it, and `ENABLE` or a refresh
//! starts replicating from it. A patch may make and change a subscription
//! that stays unconnected; these are refused before anything runs.

use pg_query::protobuf::{self, AlterSubscriptionType};
use pg_query::NodeEnum;

/// What a statement does to a subscription's link with its publisher's
/// replication slot, for the check across a patch's statements.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum SlotStep {
    /// The subscription is made, or set, without a slot (`slot_name = NONE`).
    Cut(String),
    /// `DROP SUBSCRIPTION`: it connects to the publisher to drop the slot,
    /// unless the subscription has none.
    Drop(String),
}

/// What `node` does to a subscription's slot, if anything.
pub(super) fn slot_step(node: &NodeEnum) -> Option<SlotStep> {
    let none = |options: &[protobuf::Node]| {
        options.iter().any(|o| match &o.node {
            Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case("slot_name") => {
                matches!(d.arg.as_deref().and_then(|a| a.node.as_ref()),
                    Some(NodeEnum::String(v)) if v.sval.eq_ignore_ascii_case("none"))
            }
            _ => false,
        })
    };
    match node {
        NodeEnum::CreateSubscriptionStmt(s) if none(&s.options) => {
            Some(SlotStep::Cut(s.subname.clone()))
        }
        NodeEnum::AlterSubscriptionStmt(s) if none(&s.options) => {
            Some(SlotStep::Cut(s.subname.clone()))
        }
        NodeEnum::DropSubscriptionStmt(s) => Some(SlotStep::Drop(s.subname.clone())),
        _ => None,
    }
}

/// The `DROP SUBSCRIPTION`s among a patch's statements (line, slot step)
/// that no earlier statement of the patch left without a slot: (line, why
/// it is refused).
pub(super) fn uncut_drops<'a>(
    statements: impl Iterator<Item = (usize, Option<&'a SlotStep>)>,
) -> Vec<(usize, String)> {
    let mut cut = std::collections::BTreeSet::new();
    statements
        .filter_map(|(line, step)| match step {
            Some(SlotStep::Cut(name)) => {
                cut.insert(name.clone());
                None
            }
            Some(SlotStep::Drop(name)) if !cut.contains(name) => Some((line, uncut_drop(name))),
            _ => None,
        })
        .collect()
}

/// Why `DROP SUBSCRIPTION name` is refused when no earlier statement of its
/// patch left the subscription without a slot.
fn uncut_drop(name: &str) -> String {
    format!(
        "DROP SUBSCRIPTION {name} connects to its publisher to drop its replication slot (on a \
         rehearsal, production's slot of that name); earlier in the same patch, cut it from the \
         slot: ALTER SUBSCRIPTION {name} DISABLE; ALTER SUBSCRIPTION {name} SET (slot_name = NONE)"
    )
}

/// Why the subscription statement `node` reaches its publisher, or `None`.
pub(super) fn reaches(node: &NodeEnum) -> Option<String> {
    match node {
        NodeEnum::CreateSubscriptionStmt(s) => {
            let connects = option(&s.options, "connect").is_none_or(|v| v != Some(false));
            connects.then(|| {
                format!(
                    "CREATE SUBSCRIPTION {} connects to its publisher and creates a replication slot \
                     there (on a rehearsal, usually production, where the slot holds WAL until it is \
                     dropped); rehearse it WITH (connect = false), which makes it without a slot, \
                     disabled",
                    s.subname
                )
            })
        }
        NodeEnum::AlterSubscriptionStmt(s) => alter(s),
        _ => None,
    }
}

fn alter(s: &protobuf::AlterSubscriptionStmt) -> Option<String> {
    let refresh = || option(&s.options, "refresh").is_none_or(|v| v != Some(false));
    let what = match AlterSubscriptionType::try_from(s.kind).ok()? {
        AlterSubscriptionType::AlterSubscriptionEnabled
            if option(&s.options, "enabled").is_some_and(|v| v != Some(false)) =>
        {
            "ENABLE starts replicating from its publisher"
        }
        AlterSubscriptionType::AlterSubscriptionRefresh => {
            "REFRESH PUBLICATION asks its publisher for the publication's tables"
        }
        AlterSubscriptionType::AlterSubscriptionSetPublication
        | AlterSubscriptionType::AlterSubscriptionAddPublication
        | AlterSubscriptionType::AlterSubscriptionDropPublication
            if refresh() =>
        {
            "changing its publications refreshes them from the publisher (add WITH (refresh = false))"
        }
        _ => return None,
    };
    Some(format!(
        "ALTER SUBSCRIPTION {}: {what}; on a rehearsal the publisher is usually production",
        s.subname
    ))
}

/// The value of the boolean option `name`: `None` when it is not given,
/// `Some(None)` when its value is not a boolean PostgreSQL reads.
fn option(options: &[protobuf::Node], name: &str) -> Option<Option<bool>> {
    options.iter().find_map(|o| match &o.node {
        Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case(name) => {
            Some(match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                // `WITH (connect)` alone means true.
                None => Some(true),
                Some(NodeEnum::String(v)) => parse_bool(&v.sval),
                Some(NodeEnum::Boolean(b)) => Some(b.boolval),
                // An unreserved keyword (`off`) arrives as a type name.
                Some(NodeEnum::TypeName(t)) => match t.names.as_slice() {
                    [one] => match &one.node {
                        Some(NodeEnum::String(v)) => parse_bool(&v.sval),
                        _ => None,
                    },
                    _ => None,
                },
                Some(NodeEnum::Integer(i)) => match i.ival {
                    0 => Some(false),
                    1 => Some(true),
                    _ => None,
                },
                Some(_) => None,
            })
        }
        _ => None,
    })
}

/// PostgreSQL's `parse_bool`: true/false, yes/no and unique prefixes of
/// them, on/off (at least two letters), 1/0; any case.
fn parse_bool(v: &str) -> Option<bool> {
    let v = v.to_ascii_lowercase();
    let prefix = |word: &str, min: usize| v.len() >= min && word.starts_with(v.as_str());
    if prefix("true", 1) || prefix("yes", 1) || v == "1" || v == "on" {
        Some(true)
    } else if prefix("false", 1) || prefix("no", 1) || v == "0" || prefix("off", 2) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(sql: &str) -> Option<String> {
        let parsed = pg_query::parse(sql, 0).expect("parses");
        let node = parsed.protobuf.stmts[0]
            .stmt
            .as_ref()
            .and_then(|s| s.node.as_ref())
            .expect("a statement")
            .clone();
        reaches(&node)
    }

    #[test]
    fn statements_that_connect_to_the_publisher_are_named() {
        for sql in [
            "create subscription s connection 'host=prod' publication p",
            "create subscription s connection 'host=prod' publication p with (connect = true)",
            "create subscription s connection 'host=prod' publication p with (connect)",
            "create subscription s connection 'host=prod' publication p with (connect = 'on')",
            "create subscription s connection 'host=prod' publication p with (copy_data = false)",
            "alter subscription s enable",
            "alter subscription s refresh publication",
            "alter subscription s refresh publication with (copy_data = false)",
            "alter subscription s set publication p",
            "alter subscription s add publication p with (refresh = true)",
            "alter subscription s drop publication p",
        ] {
            let why = judge(sql).unwrap_or_else(|| panic!("not refused: {sql}"));
            assert!(why.contains("publisher"), "{sql}: {why}");
        }
    }

    #[test]
    fn subscriptions_that_stay_unconnected_are_allowed() {
        for sql in [
            "create subscription s connection 'host=prod' publication p with (connect = false)",
            "create subscription s connection 'host=prod' publication p with (CONNECT = off)",
            "create subscription s connection 'host=prod' publication p with (connect = 0, slot_name = none)",
            "create subscription s connection 'host=prod' publication p with (connect = 'f')",
            "alter subscription s disable",
            "alter subscription s set (slot_name = none)",
            "alter subscription s connection 'host=other'",
            "alter subscription s set publication p with (refresh = false)",
            "alter subscription s add publication p with (refresh = no)",
            "alter subscription s owner to someone",
            "alter subscription s rename to t",
            "drop subscription if exists s",
            "create table subscription (id int)",
        ] {
            assert_eq!(judge(sql), None, "{sql}");
        }
    }

    #[test]
    fn slot_steps_are_read_from_the_options() {
        let step = |sql: &str| {
            let parsed = pg_query::parse(sql, 0).expect("parses");
            let node = parsed.protobuf.stmts[0]
                .stmt
                .as_ref()
                .and_then(|s| s.node.clone());
            slot_step(&node.expect("a statement"))
        };
        let cut = |n: &str| Some(SlotStep::Cut(n.into()));
        assert_eq!(
            step("alter subscription S set (slot_name = NONE)"),
            cut("s")
        );
        assert_eq!(
            step("alter subscription s set (slot_name = 'none')"),
            cut("s")
        );
        assert_eq!(
            step("create subscription s connection 'x' publication p with (connect = false, slot_name = none)"),
            cut("s")
        );
        assert_eq!(step("alter subscription s set (slot_name = 'other')"), None);
        assert_eq!(
            step("create subscription s connection 'x' publication p with (connect = false)"),
            None
        );
        assert_eq!(
            step("drop subscription if exists s cascade"),
            Some(SlotStep::Drop("s".into()))
        );
    }

    #[test]
    fn booleans_read_as_postgresql_reads_them() {
        for (v, b) in [
            ("true", Some(true)),
            ("T", Some(true)),
            ("ye", Some(true)),
            ("on", Some(true)),
            ("1", Some(true)),
            ("fal", Some(false)),
            ("n", Some(false)),
            ("of", Some(false)),
            ("0", Some(false)),
            ("o", None),
            ("maybe", None),
            ("", None),
        ] {
            assert_eq!(parse_bool(v), b, "{v}");
        }
    }
}
