//! Load-time check of WebEngage's limit of 25 custom attributes per type (account-wide
//! for users, per event): a mapping that names more than that of one type loses some of
//! them silently in WebEngage, so it does not load.
//!
//! Only keys written in the file count (`"*"` copies are checked at run time, against
//! the recorded types); a value's type is inferred from its source and transforms.

use std::collections::BTreeMap;

use super::check::Ctx;
use super::value::{ObjectSpec, Source};
use super::yaml_tree::{Node, Pos, SNode};
use crate::webengage::rules::MAX_ATTRIBUTES_PER_TYPE;
use crate::webengage::types::AttrType;

/// The attribute keys of one file, by scope, as they are compiled.
#[derive(Default)]
pub struct AttributeCounter {
    /// (scope, type) → distinct names in file order, with where each was first written.
    seen: BTreeMap<(String, AttrType), Vec<(String, Pos)>>,
}

impl AttributeCounter {
    /// Counts the keys of `attributes`/`eventData` (`node`, compiled as `spec`) in `scope`
    /// (`users`, or `the event `X``).
    pub fn add(&mut self, scope: String, node: &SNode, spec: &ObjectSpec) {
        let Node::Map(entries) = &node.value else {
            return;
        };
        for (name, value) in &spec.fields {
            let Some(t) = value.inferred_type() else {
                continue;
            };
            let Some((key, _)) = entries.iter().find(|(k, _)| k.value == *name) else {
                continue;
            };
            let names = self.seen.entry((scope.clone(), t)).or_default();
            if !names.iter().any(|(n, _)| n == name) {
                names.push((name.clone(), Pos::of(key)));
            }
        }
    }

    /// One error per scope and type over the limit, at the first key beyond it.
    pub fn report(self, ctx: &mut Ctx) {
        for ((scope, t), names) in self.seen {
            if names.len() <= MAX_ATTRIBUTES_PER_TYPE {
                continue;
            }
            let (first_over, pos) = &names[MAX_ATTRIBUTES_PER_TYPE];
            ctx.err(
                *pos,
                format!(
                    "`{first_over}` is custom attribute number {} of type {} for {scope} in this file; WebEngage keeps at most {MAX_ATTRIBUTES_PER_TYPE} of each type and silently drops the rest. Remove some ({}), or send them as one object attribute",
                    MAX_ATTRIBUTES_PER_TYPE + 1,
                    t.as_str(),
                    names[MAX_ATTRIBUTES_PER_TYPE..]
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            );
        }
    }
}

impl super::value::ValueSpec {
    /// The WebEngage type this value will have, as far as the mapping tells: from the
    /// source, then each transform that fixes a type, then `map`'s values. `None` for a
    /// null literal (never sent).
    pub fn inferred_type(&self) -> Option<AttrType> {
        let base = match &self.source {
            Source::Literal(v) => AttrType::of(v),
            Source::Object(_) => Some(AttrType::Object),
            Source::Array(_) => Some(AttrType::Array),
            Source::Paths(_) | Source::Template(_) => Some(AttrType::String),
        };
        let typed = self
            .transforms
            .iter()
            .fold(base, |t, tr| tr.output_type().or(t));
        match &self.map {
            Some(pairs) => {
                let mut types = pairs.iter().filter_map(|(_, to)| AttrType::of(to));
                let first = types.next();
                match first {
                    Some(f) if types.all(|t| t == f) => Some(f),
                    _ => Some(AttrType::String),
                }
            }
            None => typed,
        }
    }
}
