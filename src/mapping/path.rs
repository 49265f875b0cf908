//! JSONPaths, compiled once at load time.
//!
//! Most mapping paths are plain member chains (`$.sObject.Email`); those are walked
//! directly over `serde_json`, because jsonpath-rust builds a normalized path string for
//! every node it visits, which would make mapping cost more than parsing the JSON.

use std::sync::atomic::{AtomicUsize, Ordering};

use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value;

#[derive(Debug, Clone)]
pub enum CompiledPath {
    /// `$` followed by `.name` segments only.
    Members(Vec<Member>),
    Query(Box<JpQuery>),
}

impl CompiledPath {
    /// Compiles a path; the error says what is wrong in words an admin can act on.
    pub fn compile(text: &str) -> Result<CompiledPath, String> {
        let text = text.trim();
        if !text.starts_with('$') {
            return Err(format!(
                "`{text}` is not a JSONPath: paths start with `$`, e.g. `$.Email`"
            ));
        }
        // Every path goes through the real parser, so fast and slow paths accept the same syntax.
        let query = parse_json_path(text).map_err(|e| format!("invalid JSONPath `{text}`: {e}"))?;
        match members(text) {
            Some(names) => Ok(CompiledPath::Members(names)),
            None => Ok(CompiledPath::Query(Box::new(query))),
        }
    }

    /// The path as an admin would write it (for `--explain`).
    pub fn text(&self) -> String {
        match self {
            CompiledPath::Members(names) if names.is_empty() => "$".to_owned(),
            CompiledPath::Members(names) => {
                let names: Vec<&str> = names.iter().map(|m| m.name.as_str()).collect();
                format!("$.{}", names.join("."))
            }
            CompiledPath::Query(q) => q.to_string(),
        }
    }

    /// The first node the path selects when it [has a value](has_value).
    pub fn value<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.first(root).filter(|v| has_value(v))
    }

    /// The first node the path selects, if any.
    pub fn first<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        match self {
            CompiledPath::Members(names) => names.iter().try_fold(root, |v, m| m.find(v)),
            CompiledPath::Query(q) => js_path_process(q, root)
                .ok()?
                .into_iter()
                .next()
                .map(|r| r.val),
        }
    }
}

/// Whether a value counts as one: neither null nor an empty string (the mapping
/// language's words). The one definition behind path lists, `exists`, templates,
/// `"*"` copies, defaults and `--explain`, so they can never disagree about a blank
/// CRM field. Whitespace-only text, `0`, `false`, `[]` and `{}` are values.
pub fn has_value(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// The first of `paths` whose first node has a value, with that path.
pub fn first_value<'p, 'v>(
    paths: &'p [CompiledPath],
    root: &'v Value,
) -> Option<(&'p CompiledPath, &'v Value)> {
    paths.iter().find_map(|p| p.value(root).map(|v| (p, v)))
}

/// One `.name` step, with where the name was in the last object it was looked up in.
///
/// serde_json's maps hash every lookup with SipHash, which was a tenth of the cost of
/// mapping a record. Records of one CRM list their fields in the same order, so the
/// key at the remembered position is compared first and the hashed lookup is only the
/// fallback. Only the position is remembered, never a value: every lookup reads the
/// record it is given, and a record in another order costs one key comparison and a
/// scan of entry addresses more.
#[derive(Debug)]
pub struct Member {
    name: String,
    at: AtomicUsize,
}

impl Member {
    fn new(name: &str) -> Member {
        Member {
            name: name.to_owned(),
            at: AtomicUsize::new(0),
        }
    }

    /// `v.get(name)`.
    fn find<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        let Value::Object(map) = v else {
            return None;
        };
        let at = self.at.load(Ordering::Relaxed);
        // `nth` on the map's iterator steps over entries without touching their keys.
        if let Some((key, value)) = map.iter().nth(at)
            && same(key.as_bytes(), self.name.as_bytes())
        {
            return Some(value);
        }
        let value = map.get(&self.name)?;
        // serde_json does not say where a key is: find its entry by address.
        if let Some(at) = map.values().position(|v| std::ptr::eq(v, value)) {
            self.at.store(at, Ordering::Relaxed);
        }
        Some(value)
    }
}

impl Clone for Member {
    fn clone(&self) -> Member {
        Member::new(&self.name)
    }
}

/// Byte equality as a loop: names are short and compared about a hundred times a
/// record, and a call to libc's memcmp for each (what `==` on slices becomes) was an
/// eighth of the time of mapping one (perf).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// The member names of a `$.a.b.c` path, or `None` when it uses anything else.
fn members(text: &str) -> Option<Vec<Member>> {
    let rest = text.strip_prefix('$')?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let rest = rest.strip_prefix('.')?;
    rest.split('.')
        .map(|name| {
            let mut chars = name.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            (first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .then(|| Member::new(name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn member_paths_take_the_fast_route_and_agree_with_jsonpath() {
        let v = json!({"a": {"b": {"c": 1}}, "list": [{"x": 2}, {"x": 3}]});
        let fast = CompiledPath::compile("$.a.b.c").expect("compiles");
        assert!(matches!(fast, CompiledPath::Members(_)));
        assert_eq!(fast.first(&v), Some(&json!(1)));
        let slow = CompiledPath::compile("$['a'].b.c").expect("compiles");
        assert!(matches!(slow, CompiledPath::Query(_)));
        assert_eq!(slow.first(&v), Some(&json!(1)));
        let list = CompiledPath::compile("$.list[*].x").expect("compiles");
        assert_eq!(list.first(&v), Some(&json!(2)));
        assert_eq!(
            CompiledPath::compile("$.a.missing")
                .expect("compiles")
                .first(&v),
            None
        );
        assert_eq!(
            CompiledPath::compile("$").expect("compiles").first(&v),
            Some(&v)
        );
    }

    #[test]
    fn remembered_positions_never_change_what_is_found() {
        let path = CompiledPath::compile("$.b").expect("compiles");
        let records = [
            (json!({"a": 1, "b": 2}), Some(json!(2))),
            (json!({"b": 3, "a": 4}), Some(json!(3))),
            (json!({"b": 5}), Some(json!(5))),
            (json!({"a": 6}), None),
            (json!({"a": 7, "c": 8}), None),
            (json!({"a": 9, "b": 10}), Some(json!(10))),
            (json!([1, 2]), None),
        ];
        for (record, want) in records {
            assert_eq!(path.first(&record), want.as_ref(), "{record}");
        }
    }

    #[test]
    fn bad_paths_are_explained() {
        assert!(
            CompiledPath::compile("sObject.Email")
                .unwrap_err()
                .contains("start with `$`")
        );
        assert!(
            CompiledPath::compile("$.a[")
                .unwrap_err()
                .contains("invalid JSONPath")
        );
    }
}
