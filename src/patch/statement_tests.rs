//! The facts the parse tree gives, statement by statement.

use super::*;
use crate::patch::analyse;

#[test]
fn validation_facts() {
    let a = analyse("alter table bugtask add constraint fk foreign key (a) references person(id)");
    assert!(matches!(
        &a.facts[1],
        Fact::Validates { validation: Validation::ForeignKey, rel, .. } if rel.name == "bugtask"
    ));
    let a = analyse("alter table t add constraint fk foreign key (a) references p(id) not valid");
    assert_eq!(a.facts.len(), 1, "{:?}", a.facts);
    let a = analyse("alter table t add column c int references p(id)");
    assert!(a.facts.iter().any(|f| matches!(
        f,
        Fact::Validates {
            validation: Validation::ForeignKey,
            ..
        }
    )));
    let a = analyse("alter table s.t alter column c set not null");
    assert!(a.facts.iter().any(|f| matches!(f, Fact::Validates { validation: Validation::NotNull, rel, name } if rel.to_string() == "s.t" && name.as_deref() == Some("c"))));
    let a = analyse("alter table t add primary key using index i");
    assert_eq!(a.facts.len(), 1);
    let a = analyse("alter table t add constraint u unique (a)");
    assert!(a.facts.iter().any(|f| matches!(
        f,
        Fact::BuildsIndex {
            concurrently: false,
            ..
        }
    )));
}

#[test]
fn writes_transactions_and_copy() {
    let a = analyse("update bug set heat = heat + 1");
    assert_eq!(
        a.facts,
        vec![Fact::Writes {
            rel: RelRef {
                schema: None,
                name: "bug".into()
            },
            verb: "UPDATE",
            whole_table: true,
            keyed: Vec::new(),
        }]
    );
    let keyed = |sql: &str| match &analyse(sql).facts[..] {
        [Fact::Writes { keyed, .. }] => keyed.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(keyed("update bug set heat = 0 where id = 7"), ["id"]);
    assert_eq!(
        keyed("update bug set heat = 0 where b.id = $1 and heat > 3 and 'x' = name"),
        ["id", "name"]
    );
    assert!(keyed("update bug set heat = 0 where id % 20 = 0").is_empty());
    assert!(keyed("delete from bug where id = 1 or id = 2").is_empty());
    let a = analyse("delete from bug where id = 3");
    assert!(matches!(
        a.facts[0],
        Fact::Writes {
            whole_table: false,
            ..
        }
    ));
    assert_eq!(analyse("BEGIN").tx_control, Some(TxControl::Begin));
    assert_eq!(
        analyse("start transaction").tx_control,
        Some(TxControl::Begin)
    );
    assert_eq!(analyse("end").tx_control, Some(TxControl::Commit));
    assert_eq!(analyse("abort").tx_control, Some(TxControl::Rollback));
    assert!(analyse("copy t from stdin").copy_from_stdin);
    assert!(!analyse("copy t from '/x.csv'").copy_from_stdin);
    assert!(analyse("set local lock_timeout = '2s'").sets_lock_timeout);
    let a = analyse_tree("alter table bug add colum severity integer");
    assert_eq!(a.kind, "Unparsed");
    assert!(a.parse_error.unwrap().contains("syntax error"));
    // Read from its words, the statement is what they say: the server
    // names the syntax error when it runs.
    let a = analyse("alter table bug add colum severity integer");
    assert_eq!(a.kind, "AlterTableStmt");
    // What would run outside the transaction is checked by the grammar.
    let a = analyse("create index concurrently i on t (a");
    assert_eq!(a.kind, "Unparsed");
    assert!(!a.outside_transaction);
}

#[test]
fn kinds_are_named() {
    assert_eq!(analyse("create view v as select 1").kind, "ViewStmt");
    assert_eq!(analyse("lock table t").kind, "LockStmt");
    assert_eq!(analyse("comment on table t is 'x'").kind, "CommentStmt");
}
