//! `when:` conditions, compiled once (paths and regexes) and evaluated per record.

use regex::Regex;
use serde_json::Value;

use super::check::Ctx;
use super::path::{CompiledPath, has_value};
use super::transform::text_of;
use super::yaml_tree::{Entries, Node, Pos, SNode, get};

pub const TESTS: &[&str] = &["equals", "not_equals", "in", "exists", "matches"];
pub const KEYS: &[&str] = &[
    "path",
    "equals",
    "not_equals",
    "in",
    "exists",
    "matches",
    "all",
    "any",
    "not",
];

#[derive(Debug, Clone)]
pub enum Condition {
    Equals(CompiledPath, Value),
    NotEquals(CompiledPath, Value),
    In(CompiledPath, Vec<Value>),
    Exists(CompiledPath, bool),
    Matches(CompiledPath, Regex),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

impl Condition {
    pub fn holds(&self, record: &Value) -> bool {
        match self {
            Condition::Equals(p, want) => p.first(record).is_some_and(|v| loosely_equal(v, want)),
            Condition::NotEquals(p, want) => {
                !p.first(record).is_some_and(|v| loosely_equal(v, want))
            }
            Condition::In(p, set) => p
                .first(record)
                .is_some_and(|v| set.iter().any(|w| loosely_equal(v, w))),
            Condition::Exists(p, want) => present(p.first(record)) == *want,
            Condition::Matches(p, re) => p
                .first(record)
                .and_then(text_of)
                .is_some_and(|t| re.is_match(&t)),
            Condition::All(cs) => cs.iter().all(|c| c.holds(record)),
            Condition::Any(cs) => cs.iter().any(|c| c.holds(record)),
            Condition::Not(c) => !c.holds(record),
        }
    }
}

/// Neither absent, null nor an empty string ([`has_value`]).
pub fn present(v: Option<&Value>) -> bool {
    v.is_some_and(has_value)
}

/// JSON equality, plus: scalars with the same text are equal, because CRMs send
/// `"true"` and `"10"` as strings while admins write `true` and `10` in YAML.
pub fn loosely_equal(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => false,
        _ => matches!((text_of(a), text_of(b)), (Some(x), Some(y)) if x == y),
    }
}

/// Compiles a `when:` condition, reporting every problem in it.
pub fn compile(ctx: &mut Ctx, node: &SNode) -> Option<Condition> {
    let entries = ctx.map(node, "a condition")?;
    ctx.check_keys(entries, KEYS, "condition");
    let pos = Pos::of(node);
    let combinators: Vec<&str> = ["all", "any", "not"]
        .into_iter()
        .filter(|k| get(entries, k).is_some())
        .collect();
    match combinators.as_slice() {
        [] => compile_test(ctx, entries, pos),
        [one] if entries.len() == 1 => compile_combinator(ctx, one, get(entries, one)?),
        _ => {
            ctx.err(pos, "a condition is either a test (`path` with one of equals, not_equals, in, exists, matches) or exactly one of `all`, `any`, `not`; nest them to combine");
            None
        }
    }
}

fn compile_combinator(ctx: &mut Ctx, key: &str, node: &SNode) -> Option<Condition> {
    if key == "not" {
        return compile(ctx, node).map(|c| Condition::Not(Box::new(c)));
    }
    let Node::Seq(items) = &node.value else {
        ctx.err(
            Pos::of(node),
            format!(
                "`{key}` takes a list of conditions, e.g. `{key}: [{{ path: $.a, exists: true }}]`"
            ),
        );
        return None;
    };
    let compiled: Vec<Option<Condition>> = items.iter().map(|i| compile(ctx, i)).collect();
    let compiled: Option<Vec<Condition>> = compiled.into_iter().collect();
    compiled.map(|cs| {
        if key == "all" {
            Condition::All(cs)
        } else {
            Condition::Any(cs)
        }
    })
}

fn compile_test(ctx: &mut Ctx, entries: &Entries, pos: Pos) -> Option<Condition> {
    let tests: Vec<&str> = TESTS
        .iter()
        .copied()
        .filter(|k| get(entries, k).is_some())
        .collect();
    let path_node = ctx.required(entries, pos, "path", "a condition");
    let [test] = tests.as_slice() else {
        ctx.err(pos, "a condition needs exactly one of `equals`, `not_equals`, `in`, `exists`, `matches`, e.g. `{ path: $.type, equals: Lead }`");
        return None;
    };
    let path_node = path_node?;
    let path = ctx
        .string(path_node, "path")
        .and_then(|p| match CompiledPath::compile(p) {
            Ok(c) => Some(c),
            Err(e) => {
                ctx.err(Pos::of(path_node), e);
                None
            }
        });
    let arg = get(entries, test)?;
    let compiled = compile_argument(ctx, test, arg);
    let path = path?;
    Some(match compiled? {
        Arg::Value(v) if *test == "equals" => Condition::Equals(path, v),
        Arg::Value(v) => Condition::NotEquals(path, v),
        Arg::List(vs) => Condition::In(path, vs),
        Arg::Bool(b) => Condition::Exists(path, b),
        Arg::Regex(re) => Condition::Matches(path, re),
    })
}

enum Arg {
    Value(Value),
    List(Vec<Value>),
    Bool(bool),
    Regex(Regex),
}

fn compile_argument(ctx: &mut Ctx, test: &str, arg: &SNode) -> Option<Arg> {
    let pos = Pos::of(arg);
    match (test, &arg.value) {
        ("equals" | "not_equals", Node::Seq(_) | Node::Map(_)) => {
            ctx.err(
                pos,
                format!("`{test}` compares with one value; for several values write `in: [a, b]`"),
            );
            None
        }
        ("equals" | "not_equals", v) => Some(Arg::Value(v.to_json())),
        ("in", Node::Seq(items)) => {
            Some(Arg::List(items.iter().map(|i| i.value.to_json()).collect()))
        }
        ("in", _) => {
            ctx.err(
                pos,
                "`in` takes a list of values, e.g. `in: [Lead, Contact]`",
            );
            None
        }
        ("exists", Node::Bool(b)) => Some(Arg::Bool(*b)),
        ("exists", _) => {
            ctx.err(pos, "`exists` takes `true` or `false`");
            None
        }
        (_, Node::String(re)) => match Regex::new(re) {
            Ok(re) => Some(Arg::Regex(re)),
            Err(e) => {
                ctx.err(
                    pos,
                    format!(
                        "invalid regular expression: {}",
                        super::transform::one_line(&e.to_string())
                    ),
                );
                None
            }
        },
        _ => {
            ctx.err(
                pos,
                "`matches` takes a regular expression in quotes, e.g. `matches: \"^Web\"`",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::mapping::yaml_tree;

    fn cond(yaml: &str) -> Result<Condition, Vec<String>> {
        let node = yaml_tree::parse(yaml).expect("yaml");
        let mut ctx = Ctx::new(Path::new("m.yaml"));
        let c = compile(&mut ctx, &node);
        match (c, ctx.errors.is_empty()) {
            (Some(c), true) => Ok(c),
            _ => Err(ctx.errors.iter().map(|e| e.to_string()).collect()),
        }
    }

    #[test]
    fn tests_compare_loosely_by_text() {
        let r = json!({"type": "Lead", "flag": "true", "score": "10", "empty": "", "n": 5});
        let holds = |y: &str| cond(y).expect("compiles").holds(&r);
        assert!(holds("{ path: $.type, equals: Lead }"));
        assert!(holds("{ path: $.flag, equals: true }"));
        assert!(holds("{ path: $.score, equals: 10 }"));
        assert!(holds("{ path: $.n, equals: \"5\" }"));
        assert!(!holds("{ path: $.type, equals: Contact }"));
        assert!(holds("{ path: $.type, not_equals: Contact }"));
        assert!(holds("{ path: $.missing, not_equals: Contact }"));
        assert!(holds("{ path: $.type, in: [Contact, Lead] }"));
        assert!(holds("{ path: $.type, exists: true }"));
        assert!(holds("{ path: $.empty, exists: false }"));
        assert!(holds("{ path: $.missing, exists: false }"));
        assert!(holds("{ path: $.type, matches: \"^Le\" }"));
        assert!(!holds("{ path: $.missing, matches: \".*\" }"));
        assert!(holds(
            "{ all: [{ path: $.type, equals: Lead }, { not: { path: $.empty, exists: true } }] }"
        ));
        assert!(holds(
            "{ any: [{ path: $.type, equals: X }, { path: $.n, equals: 5 }] }"
        ));
        assert!(!holds("{ path: $.missing, equals: null }"));
    }

    #[test]
    fn bad_conditions_are_explained() {
        let e = cond("{ path: $.type, equal: Lead }").unwrap_err();
        assert_eq!(
            e[0],
            "m.yaml:1:17: unknown key `equal` in condition; did you mean `equals`?"
        );
        let e = cond("{ path: $.a, matches: \"(\" }").unwrap_err();
        assert!(
            e[0].starts_with("m.yaml:1:23: invalid regular expression"),
            "{e:?}"
        );
        let e = cond("{ path: a.b, exists: true }").unwrap_err();
        assert!(e[0].contains("start with `$`"), "{e:?}");
        let e = cond("{ path: $.a, exists: yes }").unwrap_err();
        assert!(e[0].contains("`exists` takes `true` or `false`"), "{e:?}");
        let e = cond("{ equals: 1 }").unwrap_err();
        assert!(e[0].contains("needs `path`"), "{e:?}");
    }

    #[test]
    fn misused_tests_and_combinators_are_refused_not_reinterpreted() {
        // Each of these would otherwise compile into a different condition than the
        // admin wrote (a list compared as one value, `in: Lead` read as a regex, a
        // combinator silently ignoring a test beside it).
        let e = cond("{ path: $.a, equals: [a, b] }").unwrap_err();
        assert!(e[0].contains("write `in: [a, b]`"), "{e:?}");
        let e = cond("{ path: $.a, not_equals: { x: 1 } }").unwrap_err();
        assert!(
            e[0].contains("`not_equals` compares with one value"),
            "{e:?}"
        );
        let e = cond("{ path: $.a, in: Lead }").unwrap_err();
        assert!(e[0].contains("`in` takes a list"), "{e:?}");
        let e = cond("{ path: $.a, matches: 5 }").unwrap_err();
        assert!(
            e[0].contains("`matches` takes a regular expression"),
            "{e:?}"
        );
        let e = cond("{ path: $.a, equals: 1, in: [1] }").unwrap_err();
        assert!(e[0].contains("exactly one of `equals`"), "{e:?}");
        let e = cond("{ all: [{ path: $.a, exists: true }], path: $.b }").unwrap_err();
        assert!(e[0].contains("exactly one of `all`, `any`, `not`"), "{e:?}");
        let e = cond("{ any: { path: $.a, exists: true } }").unwrap_err();
        assert!(e[0].contains("`any` takes a list"), "{e:?}");
    }

    #[test]
    fn all_needs_every_test_and_null_equals_no_text() {
        let r = json!({"type": "Lead", "nul": null});
        let holds = |y: &str| cond(y).expect("compiles").holds(&r);
        assert!(!holds(
            "{ all: [{ path: $.type, equals: Lead }, { path: $.type, equals: X }] }"
        ));
        assert!(!holds("{ any: [{ path: $.type, equals: X }] }"));
        assert!(!holds("{ path: $.nul, equals: \"\" }"));
        assert!(holds("{ path: $.nul, not_equals: \"\" }"));
        assert!(!holds("{ path: $.type, in: [X, Y] }"));
        assert!(!holds("{ path: $.type, exists: false }"));
        assert!(!holds("{ path: $.type, matches: \"^X\" }"));
    }
}
