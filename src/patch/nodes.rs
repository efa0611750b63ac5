//! Small readers over pg_query's nodes shared by the statement analyses.

use pg_query::protobuf;
use pg_query::NodeEnum;

/// The `name [value]` options of a statement, each with whether it is on.
pub fn def_elem_names(nodes: &[protobuf::Node]) -> impl Iterator<Item = (&str, bool)> {
    nodes.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::DefElem(d)) => {
            // A bare option is on; `option false/off/0` is off.
            let on = match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                None => true,
                Some(NodeEnum::Boolean(b)) => b.boolval,
                Some(NodeEnum::String(s)) => !matches!(
                    s.sval.to_ascii_lowercase().as_str(),
                    "false" | "off" | "0" | "no"
                ),
                Some(NodeEnum::Integer(i)) => i.ival != 0,
                Some(_) => true,
            };
            Some((d.defname.as_str(), on))
        }
        _ => None,
    })
}

/// Whether the option `name` is given and on.
pub fn has_option(nodes: &[protobuf::Node], name: &str) -> bool {
    def_elem_names(nodes).any(|(n, on)| n.eq_ignore_ascii_case(name) && on)
}
