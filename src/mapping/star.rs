//! The `"*"` key: copy many fields of a record object into attributes or eventData at once.

use serde_json::{Map, Value};

use super::check::Ctx;
use super::path::{CompiledPath, has_value, same};
use super::value::{FieldPath, Scope, ValueSpec, show};
use super::yaml_tree::{Node, Pos, SNode, get};

pub const KEYS: &[&str] = &[
    "from",
    "include",
    "exclude",
    "strip_prefix",
    "strip_suffix",
    "prefix",
    "rename",
];

/// The values of `rename`.
pub const RENAMES: &[&str] = &["snake_case", "camelCase", "keep"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rename {
    Keep,
    SnakeCase,
    CamelCase,
}

/// The fields one record gives a copy: bit `i` of `first` for its `i`-th field (fields
/// past the 128th are tested as they are copied); `count` of them in those bits.
pub struct Selection<'r> {
    source: Option<&'r Map<String, Value>>,
    first: u128,
    pub count: usize,
}

#[derive(Debug, Clone)]
pub struct StarCopy {
    from: CompiledPath,
    include: Vec<Glob>,
    exclude: Vec<Glob>,
    strip_prefix: Option<String>,
    strip_suffix: Option<String>,
    prefix: Option<String>,
    rename: Rename,
}

impl StarCopy {
    pub fn compile(ctx: &mut Ctx, node: &SNode) -> Option<StarCopy> {
        let entries = ctx.map(node, "\"*\" (copy many fields)")?;
        ctx.check_keys(entries, KEYS, "\"*\"");
        let from = match get(entries, "from") {
            Some(f) => {
                let text = ctx.string(f, "from")?;
                CompiledPath::compile(text)
                    .map_err(|e| ctx.err(Pos::of(f), e))
                    .ok()?
            }
            None => CompiledPath::Members(Vec::new()),
        };
        let mut text = |key: &str| {
            get(entries, key)
                .and_then(|n| ctx.string(n, key))
                .map(str::to_owned)
        };
        let (strip_prefix, strip_suffix, prefix) =
            (text("strip_prefix"), text("strip_suffix"), text("prefix"));
        let rename = match get(entries, "rename").map(|n| (n.value.as_str(), Pos::of(n))) {
            None | Some((Some("keep"), _)) => Rename::Keep,
            Some((Some("snake_case"), _)) => Rename::SnakeCase,
            Some((Some("camelCase"), _)) => Rename::CamelCase,
            Some((_, p)) => {
                ctx.err(p, "`rename` is one of `snake_case`, `camelCase`, `keep`");
                Rename::Keep
            }
        };
        Some(StarCopy {
            from,
            include: globs(ctx, get(entries, "include")),
            exclude: globs(ctx, get(entries, "exclude")),
            strip_prefix,
            strip_suffix,
            prefix,
            rename,
        })
    }

    /// Chooses the fields of `record` to copy. Done before the object is made, so it is
    /// made with room for them: a map that grows reallocates its entries (about a hundred
    /// bytes each) and rehashes.
    pub fn select<'r>(&self, record: &'r Value) -> Selection<'r> {
        let source = match self.from.first(record) {
            Some(Value::Object(source)) => Some(source),
            _ => None,
        };
        let (mut first, mut count) = (0u128, 0);
        for (i, (name, value)) in source.iter().copied().flatten().enumerate().take(128) {
            if self.wanted(name, value) {
                first |= 1 << i;
                count += 1;
            }
        }
        Selection {
            source,
            first,
            count,
        }
    }

    /// Copies the selected fields into `out`, skipping names an explicit key defines.
    pub fn copy_into(
        &self,
        scope: &mut Scope,
        field: &FieldPath,
        explicit: &[(String, ValueSpec)],
        selection: Selection,
        out: &mut Map<String, Value>,
    ) {
        let Some(source) = selection.source else {
            return;
        };
        for (i, (name, value)) in source.iter().enumerate() {
            let wanted = match selection.first.checked_shr(i as u32) {
                Some(bits) if i < 128 => bits & 1 == 1,
                _ => self.wanted(name, value),
            };
            if !wanted {
                continue;
            }
            let target = self.rename(name);
            if explicit
                .iter()
                .any(|(k, _)| same(k.as_bytes(), target.as_bytes()))
            {
                continue;
            }
            match crate::webengage::rules::check_name(&target) {
                Ok(()) => {
                    let at = FieldPath::Key(field, &target);
                    if let Err(reason) = scope.check_length(value) {
                        scope.warn(at, format!("{reason} (copied from `{name}`)"));
                        continue;
                    }
                    scope.explain(at, value, || format!("\"*\" copy of `{name}`"));
                    out.insert(target, value.clone());
                }
                Err(e) => scope.warn(
                    FieldPath::Key(field, &target),
                    format!("{e} (copied from `{name}` = {})", show(value)),
                ),
            }
        }
    }

    /// A non-blank field whose name the patterns select.
    fn wanted(&self, name: &str, value: &Value) -> bool {
        has_value(value) && self.selects(name)
    }

    fn selects(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|g| g.matches(name)))
            && !self.exclude.iter().any(|g| g.matches(name))
    }

    fn rename(&self, name: &str) -> String {
        let mut n = name;
        if let Some(p) = self.strip_prefix.as_deref() {
            n = n.strip_prefix(p).unwrap_or(n);
        }
        if let Some(s) = self.strip_suffix.as_deref() {
            n = n.strip_suffix(s).unwrap_or(n);
        }
        let prefix = self.prefix.as_deref().unwrap_or("");
        let mut out = String::with_capacity(prefix.len() + n.len() + 4);
        out.push_str(prefix);
        recase(n, self.rename, &mut out);
        out
    }
}

/// Writes `name` recased onto `out`. Words are split at `_`, `-`, spaces and
/// lower→upper case changes and lowercased; snake_case joins them with `_`, camelCase
/// capitalises all but the first. Written in one pass: every copied field of every
/// record is renamed.
fn recase(name: &str, rename: Rename, out: &mut String) {
    if rename == Rename::Keep {
        out.push_str(name);
        return;
    }
    let (mut words, mut in_word, mut prev_lower) = (0, false, false);
    for c in name.chars() {
        if c == '_' || c == '-' || c.is_whitespace() {
            in_word = false;
            prev_lower = false;
            continue;
        }
        let starts_word = !in_word || (c.is_uppercase() && prev_lower);
        if starts_word {
            words += 1;
            in_word = true;
            if rename == Rename::SnakeCase && words > 1 {
                out.push('_');
            }
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        if c.is_ascii() {
            // Most names: no case tables needed.
            let lower = c.to_ascii_lowercase();
            let camel_start = rename == Rename::CamelCase && starts_word && words > 1;
            out.push(if camel_start {
                lower.to_ascii_uppercase()
            } else {
                lower
            });
            continue;
        }
        for (i, lower) in c.to_lowercase().enumerate() {
            if rename == Rename::CamelCase && starts_word && words > 1 && i == 0 {
                out.extend(lower.to_uppercase());
            } else {
                out.push(lower);
            }
        }
    }
}

fn globs(ctx: &mut Ctx, node: Option<&SNode>) -> Vec<Glob> {
    match node.map(|n| &n.value) {
        None => Vec::new(),
        Some(Node::String(s)) => vec![Glob::new(s)],
        Some(Node::Seq(items)) => items
            .iter()
            .filter_map(|i| ctx.string(i, "a glob pattern").map(Glob::new))
            .collect(),
        Some(_) => {
            if let Some(n) = node {
                ctx.err(
                    Pos::of(n),
                    "write a list of name patterns, e.g. `[\"mx_*\", \"*__c\"]`",
                );
            }
            Vec::new()
        }
    }
}

/// A name pattern, compiled: every field of every record is tested against every
/// pattern, so the common shapes are matched without allocating.
#[derive(Debug, Clone)]
enum Glob {
    /// No `?` and at most one `*` (`mx_*`, `*__c`, `Email`): a prefix and a suffix.
    Simple {
        prefix: String,
        suffix: String,
        star: bool,
    },
    General(Vec<char>),
}

impl Glob {
    fn new(pattern: &str) -> Glob {
        if pattern.contains('?') || pattern.matches('*').count() > 1 {
            return Glob::General(pattern.chars().collect());
        }
        match pattern.split_once('*') {
            Some((prefix, suffix)) => Glob::Simple {
                prefix: prefix.to_owned(),
                suffix: suffix.to_owned(),
                star: true,
            },
            None => Glob::Simple {
                prefix: pattern.to_owned(),
                suffix: String::new(),
                star: false,
            },
        }
    }

    fn matches(&self, name: &str) -> bool {
        let name = name.as_bytes();
        match self {
            Glob::Simple {
                prefix,
                star: false,
                ..
            } => same(name, prefix.as_bytes()),
            Glob::Simple {
                prefix,
                suffix,
                star: true,
            } => {
                let (prefix, suffix) = (prefix.as_bytes(), suffix.as_bytes());
                name.len() >= prefix.len() + suffix.len()
                    && same(&name[..prefix.len()], prefix)
                    && same(&name[name.len() - suffix.len()..], suffix)
            }
            Glob::General(p) => std::str::from_utf8(name).is_ok_and(|n| glob_chars(p, n)),
        }
    }
}

/// `*` matches any run of characters, `?` one character; everything else literally.
#[cfg(test)]
pub fn glob(pattern: &str, name: &str) -> bool {
    Glob::new(pattern).matches(name)
}

fn glob_chars(p: &[char], name: &str) -> bool {
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob("mx_*", "mx_City"));
        assert!(glob("*__c", "Product_Interest__c"));
        assert!(!glob("*__c", "Product_Interest"));
        assert!(glob("a?c", "abc"));
        assert!(glob("*", ""));
        assert!(!glob("mx_*", "ProspectID"));
        assert!(glob("Email", "Email") && !glob("Email", "EmailAddress"));
        assert!(glob("mx_*_c", "mx_a_c") && !glob("mx_*_c", "mx_c"));
        assert!(glob("a*b*c", "aXbYc") && !glob("a*b*c", "aXbY"));
        assert!(glob("*", "anything") && glob("é*", "été"));
    }

    fn recased(name: &str, rename: Rename) -> String {
        let mut out = String::new();
        recase(name, rename, &mut out);
        out
    }

    #[test]
    fn names_are_recased() {
        let snake = |n| recased(n, Rename::SnakeCase);
        assert_eq!(snake("Course_Interest"), "course_interest");
        assert_eq!(snake("WhatsApp_Number"), "whats_app_number");
        assert_eq!(snake("ProductInterest"), "product_interest");
        assert_eq!(
            recased("Preferred_Batch", Rename::CamelCase),
            "preferredBatch"
        );
        assert_eq!(snake("Custom_1"), "custom_1");
        assert_eq!(snake("__a--B  c"), "a_b_c");
        assert_eq!(
            recased("x_İstanbul_ßig", Rename::CamelCase),
            "xI\u{307}stanbulSSig"
        );
    }

    // The first implementation, words first: the one-pass writer must agree with it.

    /// Lowercase words of a name: split at `_`, `-`, spaces and lower→upper case changes.
    fn words(name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut current = String::new();
        let mut prev_lower = false;
        for c in name.chars() {
            if c == '_' || c == '-' || c.is_whitespace() {
                out.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
                prev_lower = false;
                continue;
            }
            if c.is_uppercase() && prev_lower {
                out.push(std::mem::take(&mut current));
            }
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            current.extend(c.to_lowercase());
        }
        out.extend((!current.is_empty()).then_some(current));
        out
    }

    fn camel(words: &[String]) -> String {
        let mut out = String::new();
        for (i, w) in words.iter().enumerate() {
            let mut chars = w.chars();
            match chars.next() {
                Some(first) if i > 0 => {
                    out.extend(first.to_uppercase());
                    out.push_str(chars.as_str());
                }
                _ => out.push_str(w),
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn one_pass_recasing_agrees_with_splitting_into_words(name in "[a-zA-Z0-9_ İßǅ-]{0,12}") {
            proptest::prop_assert_eq!(recased(&name, Rename::SnakeCase), words(&name).join("_"));
            proptest::prop_assert_eq!(recased(&name, Rename::CamelCase), camel(&words(&name)));
            proptest::prop_assert_eq!(recased(&name, Rename::Keep), name);
        }
    }
}
