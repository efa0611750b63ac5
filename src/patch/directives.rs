//! `-- downtime: …` comments in a patch.
//!
//! - `-- downtime: live` / `-- downtime: cold`: the class the patch declares
//!   (before its first statement).
//! - `-- downtime: post-deploy`: a post-deployment patch (before its first statement).
//! - `-- downtime: allow RULE_ID because REASON`: waive one rule for the
//!   statement on this line or the next; the reason is mandatory.
//! - `-- downtime: small TABLE[, TABLE…]`: these tables stay small in
//!   production, so work over them is judged as staging measured it even
//!   when staging has none of their rows.

use serde::{Deserialize, Serialize};

use super::split::LineComment;
use super::Class;
use crate::rule_id::RuleId;

/// A waiver of one classification rule for one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiver {
    pub rule: RuleId,
    /// Line of the waiver comment.
    pub line: usize,
    pub because: String,
}

impl Waiver {
    /// Whether the waiver covers a statement starting on `statement_line`:
    /// the comment is on that line or the line above it.
    pub fn covers(&self, statement_line: usize) -> bool {
        self.line == statement_line || self.line + 1 == statement_line
    }
}

/// Everything a patch says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    pub declared: Option<Class>,
    pub post_deploy: bool,
    pub waivers: Vec<Waiver>,
    /// Tables declared small in production.
    pub small_tables: Vec<String>,
}

/// A directive that cannot be understood: (line, message).
pub type DirectiveError = (usize, String);

/// Read the directives from a patch's line comments; `first_statement_line`
/// bounds the header.
pub fn parse(
    comments: &[LineComment<'_>],
    first_statement_line: usize,
) -> Result<Directives, DirectiveError> {
    let mut d = Directives::default();
    for c in comments {
        let Some(value) = c.text.trim().strip_prefix("downtime:") else {
            continue;
        };
        let value = value.trim();
        let in_header = c.line < first_statement_line;
        let header_only = |what: &str| -> Result<(), DirectiveError> {
            if in_header {
                Ok(())
            } else {
                Err((
                    c.line,
                    format!(
                        "`-- downtime: {what}` belongs in the header, before the first statement"
                    ),
                ))
            }
        };
        if let Some(rest) = value.strip_prefix("allow") {
            let rest = rest.trim();
            let (rule, because) = match rest.split_once(char::is_whitespace) {
                Some((rule, tail)) => (rule, tail.trim()),
                None => (rest, ""),
            };
            if rule.is_empty() {
                return Err((c.line, "`-- downtime: allow` needs a rule id: `-- downtime: allow RULE_ID because REASON`".into()));
            }
            let Ok(id) = rule.parse::<RuleId>() else {
                return Err((
                    c.line,
                    format!("unknown rule `{rule}` in waiver; `downtime rules` lists the rule ids"),
                ));
            };
            let because = because.strip_prefix("because").map(str::trim).unwrap_or("");
            if because.is_empty() {
                return Err((
                    c.line,
                    format!("waiver of `{rule}` needs a reason: `-- downtime: allow {rule} because REASON`"),
                ));
            }
            d.waivers.push(Waiver {
                rule: id,
                line: c.line,
                because: because.to_string(),
            });
            continue;
        }
        if let Some(rest) = value.strip_prefix("small ") {
            let names: Vec<String> = rest
                .split(',')
                .map(|n| n.trim().trim_matches('"').to_string())
                .filter(|n| !n.is_empty())
                .collect();
            if names.is_empty() {
                return Err((
                    c.line,
                    "`-- downtime: small` needs table names: `-- downtime: small public.country, currency`".into(),
                ));
            }
            d.small_tables.extend(names);
            continue;
        }
        let class = match value {
            "live" => Some(Class::Live),
            "cold" => Some(Class::Cold),
            "post-deploy" => {
                header_only("post-deploy")?;
                d.post_deploy = true;
                None
            }
            other => {
                return Err((
                    c.line,
                    format!(
                        "unknown downtime directive `{other}`; expected live, cold, post-deploy, \
                         `small TABLE, …` or `allow RULE_ID because REASON`"
                    ),
                ))
            }
        };
        if let Some(class) = class {
            header_only(value)?;
            if d.declared.is_some_and(|prev| prev != class) {
                return Err((c.line, "the patch declares both live and cold".into()));
            }
            d.declared = Some(class);
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::split::split;

    fn directives(src: &str) -> Result<Directives, DirectiveError> {
        let s = split(src).unwrap();
        let first = s.statements.first().map_or(usize::MAX, |s| s.line);
        parse(&s.comments, first)
    }

    #[test]
    fn header_and_waivers() {
        let d = directives(
            "-- downtime: cold\n-- downtime: post-deploy\nselect 1;\n\
             -- downtime: allow table-rewrite because the table is tiny in production\n\
             alter table t alter column a type bigint;\n\
             select 2; -- downtime: allow table-rewrite because same line\n",
        )
        .unwrap();
        assert_eq!(d.declared, Some(Class::Cold));
        assert!(d.post_deploy);
        assert_eq!(d.waivers.len(), 2);
        assert_eq!(d.waivers[0].line, 4);
        assert!(d.waivers[0].covers(5) && !d.waivers[0].covers(6));
        assert_eq!(d.waivers[1].because, "same line");
        assert!(d.waivers[1].covers(6));
        let d = directives("-- downtime: small public.country, currency\nselect 1;").unwrap();
        assert_eq!(d.small_tables, ["public.country", "currency"]);
        assert!(directives("-- downtime: small \nselect 1;").is_err());
    }

    #[test]
    fn bad_directives_name_their_line() {
        assert_eq!(
            directives("select 1;\n-- downtime: allow nope because x\n")
                .unwrap_err()
                .0,
            2
        );
        let e = directives("select 1;\n-- downtime: allow table-rewrite\n").unwrap_err();
        assert!(e.1.contains("needs a reason"));
        assert_eq!(
            directives("-- downtime: lukewarm\nselect 1;")
                .unwrap_err()
                .0,
            1
        );
        assert_eq!(
            directives("select 1;\n-- downtime: live\n").unwrap_err().0,
            2
        );
        assert!(directives("-- downtime: live\n-- downtime: cold\nselect 1;").is_err());
        // Inside a string it is not a comment.
        assert!(directives("select '-- downtime: bogus';").is_ok());
    }
}
