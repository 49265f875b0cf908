//! Values: how a mapping computes one field from a record (literal, path, template,
//! object, array, plus transform/map/default/required), compiled once and evaluated per record.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

use super::Provenance;
use super::check::Ctx;
use super::path::{CompiledPath, first_value, has_value};
use super::star::StarCopy;
pub use super::template::Template;
use super::transform::{self, Transform, text_of};
use super::yaml_tree::{Entries, Node, Pos, SNode, get};
use crate::webengage::{DroppedField, rules};

pub const SOURCE_KEYS: &[&str] = &["path", "template", "const", "object", "array"];
pub const ALL_KEYS: &[&str] = &[
    "path",
    "template",
    "const",
    "object",
    "array",
    "transform",
    "map",
    "default",
    "required",
];

#[derive(Debug, Clone)]
pub enum Source {
    Literal(Value),
    /// The first of these paths that has a value ([`has_value`]): a blank falls through.
    Paths(Vec<CompiledPath>),
    Template(Template),
    Object(ObjectSpec),
    Array(Vec<ValueSpec>),
}

#[derive(Debug, Clone)]
pub struct ValueSpec {
    pub source: Source,
    pub transforms: Vec<Transform>,
    pub map: Option<Vec<(String, Value)>>,
    pub default: Option<Value>,
    pub required: bool,
}

/// A map of named values, optionally with a `"*"` copy of many fields.
#[derive(Debug, Clone, Default)]
pub struct ObjectSpec {
    pub fields: Vec<(String, ValueSpec)>,
    pub star: Option<StarCopy>,
}

/// What evaluation needs besides the record: where to put warnings.
pub struct Scope<'a> {
    pub record: &'a Value,
    pub warnings: &'a mut Vec<DroppedField>,
    /// The rule being evaluated: every warning names it, so support staff know where to look.
    pub rule: &'a str,
    /// `mappings preview --explain`: where each field came from. `None` on the normal
    /// path, where the origins are never even described.
    pub explain: Option<&'a mut Vec<Provenance>>,
    /// WebEngage silently drops strings of 1,000 characters or more in users and
    /// events; transactions (`overrideData`) are not attributes and are not limited.
    pub limit_strings: bool,
    /// Dates keep their milliseconds: set while an event's `eventTime` is evaluated.
    pub keep_millis: bool,
}

impl Scope<'_> {
    pub fn warn(&mut self, field: impl fmt::Display, message: String) {
        let warning = self.warning(field, message);
        self.warnings.push(warning);
    }

    /// A warning, for callers that hold it back to keep warnings in order.
    pub fn warning(&self, field: impl fmt::Display, message: String) -> DroppedField {
        DroppedField::new(self.rule, field, message)
    }

    /// Records where `field` came from, in explain mode only (`from` is not called otherwise).
    pub fn explain(
        &mut self,
        field: impl fmt::Display,
        value: &Value,
        from: impl FnOnce() -> String,
    ) {
        if let Some(sink) = self.explain.as_deref_mut() {
            sink.push(Provenance {
                rule: self.rule.to_owned(),
                field: field.to_string(),
                value: value.clone(),
                from: from(),
            });
        }
    }

    /// A string WebEngage would drop for its length: `Err` with the reason.
    pub fn check_length(&self, v: &Value) -> Result<(), String> {
        if self.limit_strings && longest_string(v) >= rules::MAX_STRING_CHARS {
            return Err(format!(
                "{} has {} characters or more; WebEngage drops such values (add `transform: [{{ truncate: {} }}]` to keep the start)",
                show(v),
                rules::MAX_STRING_CHARS,
                rules::MAX_STRING_CHARS - 1
            ));
        }
        Ok(())
    }
}

/// The length in characters of the longest string in `v`, nested ones included.
fn longest_string(v: &Value) -> usize {
    match v {
        // Bytes bound characters from above: count characters only when it matters.
        Value::String(s) if s.len() < rules::MAX_STRING_CHARS => s.len(),
        Value::String(s) => s.chars().count(),
        Value::Array(items) => items.iter().map(longest_string).max().unwrap_or(0),
        Value::Object(m) => m.values().map(longest_string).max().unwrap_or(0),
        _ => 0,
    }
}

/// A field's name in messages (`user.attributes.score`), only put together when a
/// warning, error or explanation needs it: most records need none, and formatting every
/// field's name would cost more than evaluating it.
#[derive(Debug, Clone, Copy)]
pub enum FieldPath<'a> {
    Root(&'a str),
    Key(&'a FieldPath<'a>, &'a str),
    Index(&'a FieldPath<'a>, usize),
}

impl fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldPath::Root(name) => f.write_str(name),
            FieldPath::Key(parent, key) => write!(f, "{parent}.{key}"),
            FieldPath::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// A value shown in a warning: short, so one odd record cannot flood the log.
pub use crate::webengage::rules::show_value as show;

impl ValueSpec {
    pub fn literal(v: Value) -> ValueSpec {
        ValueSpec {
            source: Source::Literal(v),
            transforms: Vec::new(),
            map: None,
            default: None,
            required: false,
        }
    }

    pub fn literal_value(&self) -> Option<&Value> {
        match &self.source {
            Source::Literal(v) if self.transforms.is_empty() && self.map.is_none() => Some(v),
            _ => None,
        }
    }

    /// The field's value, `None` when it is left out. `Err` means the rule fails (a
    /// required field has no value); other problems drop the field with a warning.
    pub fn eval(&self, scope: &mut Scope, field: &FieldPath) -> Result<Option<Value>, String> {
        // Most fields are a path copied as it is: returned without moving the value
        // through the general steps below (each move of a 72-byte Value showed in perf).
        if let Some(v) = self.plain_path(scope.record)
            && scope.check_length(v).is_ok()
        {
            let record = scope.record;
            scope.explain(field, v, || self.origin(record, false));
            return Ok(Some(v.clone()));
        }
        // An empty CRM field is "no value": it is not converted (and warned about), only defaulted.
        // A record's value is borrowed until the end: transforms read it and make their own.
        let mut value = self.source.eval(scope, field)?.filter(|v| has_value(v));
        for t in &self.transforms {
            let Some(v) = value.take() else { break };
            match t.apply_in(&v, scope.keep_millis) {
                Ok(out) => value = Some(Cow::Owned(out)),
                Err(reason) if self.required => {
                    return Err(format!(
                        "{field}: {} is {reason} (transform {})",
                        show(&v),
                        t.name()
                    ));
                }
                Err(reason) => scope.warn(
                    field,
                    format!("{} is {reason} (transform {})", show(&v), t.name()),
                ),
            }
        }
        if let (Some(map), Some(v)) = (&self.map, &value) {
            let key = text_of(v);
            value = map
                .iter()
                .find(|(from, _)| Some(from.as_str()) == key.as_deref())
                .map(|(_, to)| Cow::Owned(to.clone()));
        }
        let value = value.filter(|v| has_value(v));
        let defaulted = value.is_none();
        let mut value = value.map(Cow::into_owned).or_else(|| self.default.clone());
        if let Some(v) = &value
            && !matches!(self.source, Source::Object(_) | Source::Array(_))
            && let Err(reason) = scope.check_length(v)
        {
            if self.required {
                return Err(format!("{field}: {reason}"));
            }
            scope.warn(field, reason);
            value = None;
        }
        if self.required && value.is_none() {
            return Err(format!(
                "{field} is required but the record has no value for it"
            ));
        }
        // Objects and arrays are explained field by field, as their parts are evaluated.
        if let Some(v) = &value
            && !matches!(self.source, Source::Object(_) | Source::Array(_))
        {
            let record = scope.record;
            scope.explain(field, v, || self.origin(record, defaulted));
        }
        Ok(value)
    }

    /// The value of a field that is only a path (no transform, no map), when the
    /// record has one that is not blank.
    fn plain_path<'r>(&self, record: &'r Value) -> Option<&'r Value> {
        let Source::Paths(paths) = &self.source else {
            return None;
        };
        if !self.transforms.is_empty() || self.map.is_some() {
            return None;
        }
        first_value(paths, record).map(|(_, v)| v)
    }

    /// Where a value came from, in words: the path that matched, the template, the
    /// literal or the default, and what was applied to it.
    fn origin(&self, record: &Value, defaulted: bool) -> String {
        let mut from = match (&self.source, defaulted) {
            (_, true) => {
                return format!(
                    "default (the record had no value for {})",
                    self.source.describe(record)
                );
            }
            (source, false) => source.describe(record),
        };
        for t in &self.transforms {
            from.push_str(" | ");
            from.push_str(t.name());
        }
        if self.map.is_some() {
            from.push_str(" | map");
        }
        from
    }
}

impl Source {
    /// The source in words; for a path list, the path that gave the value.
    fn describe(&self, record: &Value) -> String {
        match self {
            Source::Literal(_) => "literal".to_owned(),
            Source::Paths(paths) => {
                let hit = first_value(paths, record).map(|(p, _)| p);
                match (hit, paths.len()) {
                    (Some(p), 1) => p.text(),
                    (Some(p), _) => format!(
                        "{} (first with a value of {})",
                        p.text(),
                        paths
                            .iter()
                            .map(CompiledPath::text)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    (None, _) => paths
                        .iter()
                        .map(CompiledPath::text)
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            }
            Source::Template(t) => format!("template \"{}\"", t.text()),
            Source::Object(_) => "object".to_owned(),
            Source::Array(_) => "array".to_owned(),
        }
    }

    /// The value before transforms; borrowed when it is the record's own.
    fn eval<'r>(
        &self,
        scope: &mut Scope<'r>,
        field: &FieldPath,
    ) -> Result<Option<Cow<'r, Value>>, String> {
        let record: &'r Value = scope.record;
        Ok(match self {
            Source::Literal(v) => Some(Cow::Owned(v.clone())),
            Source::Paths(paths) => first_value(paths, record).map(|(_, v)| Cow::Borrowed(v)),
            Source::Template(t) => t.render(record).map(|s| Cow::Owned(Value::String(s))),
            Source::Object(o) => o.eval(scope, field)?.map(|m| Cow::Owned(Value::Object(m))),
            Source::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.extend(item.eval(scope, &FieldPath::Index(field, i))?);
                }
                (!out.is_empty()).then_some(Cow::Owned(Value::Array(out)))
            }
        })
    }
}

impl ObjectSpec {
    /// The object, `None` when every field was left out.
    pub fn eval(
        &self,
        scope: &mut Scope,
        field: &FieldPath,
    ) -> Result<Option<Map<String, Value>>, String> {
        let copies = self.star.as_ref().map(|s| (s, s.select(scope.record)));
        let room = copies.as_ref().map_or(0, |(_, c)| c.count);
        let mut out = Map::with_capacity(self.fields.len() + room);
        self.eval_fields(scope, field, |_, key, v| {
            out.insert(key.to_owned(), v);
        })?;
        // Copies skip every explicit key, even one that produced no value: explicit keys win.
        if let Some((star, selection)) = copies {
            star.copy_into(scope, field, &self.fields, selection, &mut out);
        }
        Ok((!out.is_empty()).then_some(out))
    }

    /// Hands each explicit field that has a value to `place`, in order (the `"*"` copy is
    /// the caller's): payloads place their fields themselves rather than re-inserting
    /// them from an intermediate map.
    pub fn eval_fields(
        &self,
        scope: &mut Scope,
        field: &FieldPath,
        mut place: impl FnMut(&mut Scope, &str, Value),
    ) -> Result<(), String> {
        for (key, spec) in &self.fields {
            if let Some(v) = spec.eval(scope, &FieldPath::Key(field, key))? {
                place(scope, key, v);
            }
        }
        Ok(())
    }
}

/// Compiles any value form. `what` names the field in messages.
pub fn compile(ctx: &mut Ctx, node: &SNode, what: &str) -> Option<ValueSpec> {
    let pos = Pos::of(node);
    match &node.value {
        Node::Null | Node::Bool(_) | Node::Number(_) => {
            Some(ValueSpec::literal(node.value.to_json()))
        }
        Node::String(s) => compile_string(ctx, pos, s).map(|source| ValueSpec {
            source,
            ..ValueSpec::literal(Value::Null)
        }),
        Node::Seq(_) => {
            ctx.err(pos, format!("{what}: a list value is written `{{ array: [ ... ] }}`; for the first of several paths that has a value write `{{ path: [$.a, $.b] }}`"));
            None
        }
        Node::Map(entries) => compile_map(ctx, pos, entries, what),
    }
}

fn compile_string(ctx: &mut Ctx, pos: Pos, s: &str) -> Option<Source> {
    if s.starts_with('$') {
        return match CompiledPath::compile(s) {
            Ok(p) => Some(Source::Paths(vec![p])),
            Err(e) => {
                ctx.err(pos, e);
                None
            }
        };
    }
    if s.contains("{{") {
        return Template::compile(ctx, pos, s).map(Source::Template);
    }
    Some(Source::Literal(Value::String(s.to_owned())))
}

fn compile_map(ctx: &mut Ctx, pos: Pos, entries: &Entries, what: &str) -> Option<ValueSpec> {
    ctx.check_keys(entries, ALL_KEYS, &format!("the value of {what}"));
    let sources: Vec<&(serde_saphyr::Spanned<String>, SNode)> = entries
        .iter()
        .filter(|(k, _)| SOURCE_KEYS.contains(&k.value.as_str()))
        .collect();
    let [(key, node)] = sources.as_slice() else {
        ctx.err(pos, format!("{what}: a value map needs exactly one of `path`, `template`, `const`, `object`, `array` (found {})", sources.len()));
        return None;
    };
    let source = compile_source(ctx, &key.value, node, what);
    let transforms = get(entries, "transform")
        .map(|t| compile_transforms(ctx, t))
        .unwrap_or_default();
    let map = get(entries, "map").and_then(|m| compile_lookup(ctx, m));
    let default = get(entries, "default").map(|d| d.value.to_json());
    let required = match get(entries, "required").map(|r| (&r.value, Pos::of(r))) {
        None => false,
        Some((Node::Bool(b), _)) => *b,
        Some((_, p)) => {
            ctx.err(p, "`required` takes `true` or `false`");
            false
        }
    };
    Some(ValueSpec {
        source: source?,
        transforms,
        map,
        default,
        required,
    })
}

fn compile_source(ctx: &mut Ctx, key: &str, node: &SNode, what: &str) -> Option<Source> {
    let pos = Pos::of(node);
    match (key, &node.value) {
        ("path", Node::String(_)) | ("path", Node::Seq(_)) => {
            let items: Vec<&SNode> = match &node.value {
                Node::Seq(items) => items.iter().collect(),
                _ => vec![node],
            };
            let mut paths = Vec::new();
            for item in items {
                let text = ctx.string(item, "a path")?;
                match CompiledPath::compile(text) {
                    Ok(p) => paths.push(p),
                    Err(e) => ctx.err(Pos::of(item), e),
                }
            }
            Some(Source::Paths(paths))
        }
        ("path", _) => {
            ctx.err(
                pos,
                "`path` takes a JSONPath like `$.Email` or a list of them",
            );
            None
        }
        ("template", Node::String(s)) => Template::compile(ctx, pos, s).map(Source::Template),
        ("template", _) => {
            ctx.err(
                pos,
                "`template` takes text with `{{ $.path }}` placeholders",
            );
            None
        }
        ("const", v) => Some(Source::Literal(v.to_json())),
        ("object", _) => compile_object(ctx, node, what, true).map(Source::Object),
        ("array", Node::Seq(items)) => {
            let compiled: Vec<Option<ValueSpec>> =
                items.iter().map(|i| compile(ctx, i, what)).collect();
            compiled
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .map(Source::Array)
        }
        _ => {
            ctx.err(
                pos,
                "`array` takes a list of values, e.g. `array: [$.a, $.b]`",
            );
            None
        }
    }
}

fn compile_transforms(ctx: &mut Ctx, node: &SNode) -> Vec<Transform> {
    match &node.value {
        Node::Seq(items) => items
            .iter()
            .filter_map(|i| transform::compile(ctx, i))
            .collect(),
        _ => transform::compile(ctx, node).into_iter().collect(),
    }
}

fn compile_lookup(ctx: &mut Ctx, node: &SNode) -> Option<Vec<(String, Value)>> {
    let entries = ctx.map(node, "`map`")?;
    Some(
        entries
            .iter()
            .map(|(k, v)| (k.value.clone(), v.value.to_json()))
            .collect(),
    )
}

/// Compiles a map of named values (`attributes`, `eventData`, `object`); `"*"` is a copy
/// when `allow_star`. Names are checked against WebEngage's rules.
pub fn compile_object(
    ctx: &mut Ctx,
    node: &SNode,
    what: &str,
    allow_star: bool,
) -> Option<ObjectSpec> {
    let entries = ctx.map(node, what)?;
    let mut spec = ObjectSpec::default();
    for (key, value) in entries {
        if key.value == "*" && allow_star {
            spec.star = StarCopy::compile(ctx, value);
            continue;
        }
        if let Err(e) = crate::webengage::rules::check_name(&key.value) {
            ctx.err(Pos::of(key), format!("{what}: {e}"));
        }
        if let Some(v) = compile(ctx, value, &format!("{what}.{}", key.value)) {
            spec.fields.push((key.value.clone(), v));
        }
    }
    Some(spec)
}
