//! Load-time checks and compilation of one mapping file into an immutable plan.
//!
//! Walks the positioned YAML tree by hand so that every problem is reported, each
//! with its line and column and what to write instead.

use std::path::Path;

use super::auth_spec;
use super::check::Ctx;
use super::condition::{self, Condition};
use super::limits::AttributeCounter;
use super::path::CompiledPath;
use super::value::{self, ObjectSpec, Source, Template, ValueSpec};
use super::yaml_tree::{Entries, Node, Pos, SNode, get};
use crate::source::{AuthSpec, SourceFormat};
use crate::webengage::rules;

pub const TOP_KEYS: &[&str] = &["source", "rules"];
pub const SOURCE_KEYS: &[&str] = &[
    "format",
    "auth",
    "records",
    "dedupe_key",
    "version",
    "import",
];
pub const RULE_KEYS: &[&str] = &[
    "name",
    "when",
    "stop",
    "user",
    "event",
    "events",
    "transaction",
];
pub const EVENT_KEYS: &[&str] = &[
    "userId",
    "anonymousId",
    "eventName",
    "eventTime",
    "eventData",
];
pub const VERSION_KEYS: &[&str] = &["key", "at"];
pub const TXN_KEYS: &[&str] = &[
    "campaignId",
    "userId",
    "ttl",
    "txnId",
    "overrideData",
    "dedupe",
];
/// `transaction.dedupe`: a literal map, checked at load.
pub const DEDUPE_KEYS: &[&str] = &["ttl"];

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub when: Option<Condition>,
    pub stop: bool,
    pub user: Option<ObjectSpec>,
    pub events: Vec<ObjectSpec>,
    pub transaction: Option<ObjectSpec>,
}

/// The `source:` section, compiled.
pub struct SourceSection {
    pub format: SourceFormat,
    pub auth: AuthSpec,
    pub records: Option<jsonpath_rust::parser::model::JpQuery>,
    pub dedupe_key: Option<Template>,
    pub version: Option<(CompiledPath, CompiledPath)>,
    pub import: super::import_spec::ImportSpec,
}

/// Everything a file compiles into; `None` parts had errors (already in `ctx`).
pub struct Compiled {
    pub source: Option<SourceSection>,
    pub rules: Vec<Rule>,
}

pub fn compile_file(ctx: &mut Ctx, text: &str) -> Compiled {
    let mut out = Compiled {
        source: None,
        rules: Vec::new(),
    };
    let root = match super::yaml_tree::parse(text) {
        Ok(root) => root,
        Err(e) => {
            ctx.err(e.pos, format!("YAML syntax error: {}", e.message));
            return out;
        }
    };
    let Some(top) = ctx.map(&root, "a mapping file") else {
        return out;
    };
    ctx.check_keys(top, TOP_KEYS, "the mapping file");
    if let Some(source) = ctx.required(top, Pos::of(&root), "source", "a mapping file") {
        out.source = compile_source(ctx, source);
    }
    if let Some(list) = ctx.required(top, Pos::of(&root), "rules", "a mapping file") {
        out.rules = compile_rules(ctx, list);
    }
    out
}

fn compile_source(ctx: &mut Ctx, node: &SNode) -> Option<SourceSection> {
    let entries = ctx.map(node, "`source`")?;
    ctx.check_keys(entries, SOURCE_KEYS, "source");
    let pos = Pos::of(node);
    let format_node = ctx.required(entries, pos, "format", "`source`")?;
    let format_text = ctx.string(format_node, "format")?;
    let Some(format) = SourceFormat::parse(format_text) else {
        ctx.err(
            Pos::of(format_node),
            format!(
                "unknown format `{format_text}`; write one of: {}",
                SourceFormat::ALL.join(", ")
            ),
        );
        return None;
    };
    let auth = match ctx.required(
        entries,
        pos,
        "auth",
        "`source` (write `auth: none` to accept unauthenticated requests)",
    ) {
        Some(a) => auth_spec::compile(ctx, a, format),
        None => None,
    };
    let records = get(entries, "records").and_then(|r| compile_records(ctx, r, format));
    let dedupe_key = get(entries, "dedupe_key").and_then(|d| {
        let text = ctx.string(d, "dedupe_key")?;
        let text = if text.starts_with('$') {
            format!("{{{{ {text} }}}}")
        } else {
            text.to_owned()
        };
        Template::compile(ctx, Pos::of(d), &text)
    });
    let version = get(entries, "version").and_then(|v| compile_version(ctx, v));
    let import = get(entries, "import")
        .and_then(|i| super::import_spec::compile(ctx, i))
        .unwrap_or_default();
    Some(SourceSection {
        format,
        auth: auth?,
        records,
        dedupe_key,
        version,
        import,
    })
}

fn compile_records(
    ctx: &mut Ctx,
    node: &SNode,
    format: SourceFormat,
) -> Option<jsonpath_rust::parser::model::JpQuery> {
    if format == SourceFormat::SalesforceOutbound {
        ctx.err(Pos::of(node), "`records` is for json and leadsquared sources; salesforce-outbound makes one record per <Notification>");
        return None;
    }
    let text = ctx.string(node, "records")?;
    match jsonpath_rust::parser::parse_json_path(text) {
        Ok(q) => Some(q),
        Err(e) => {
            ctx.err(Pos::of(node), format!("invalid JSONPath `{text}`: {e}"));
            None
        }
    }
}

fn compile_version(ctx: &mut Ctx, node: &SNode) -> Option<(CompiledPath, CompiledPath)> {
    let entries = ctx.map(node, "`version`")?;
    ctx.check_keys(entries, VERSION_KEYS, "version");
    let mut path = |key: &str| {
        let n = ctx.required(entries, Pos::of(node), key, "`version`")?;
        let text = ctx.string(n, key)?;
        CompiledPath::compile(text)
            .map_err(|e| ctx.err(Pos::of(n), e))
            .ok()
    };
    let (key, at) = (path("key"), path("at"));
    Some((key?, at?))
}

fn compile_rules(ctx: &mut Ctx, node: &SNode) -> Vec<Rule> {
    let Node::Seq(items) = &node.value else {
        ctx.err(
            Pos::of(node),
            "`rules` is a list: start each rule with `- name: ...`",
        );
        return Vec::new();
    };
    let mut names: Vec<(String, Pos)> = Vec::new();
    let mut rules = Vec::new();
    let mut counter = AttributeCounter::default();
    for item in items {
        let Some(rule) = compile_rule(ctx, item, &mut counter) else {
            continue;
        };
        match names.iter().find(|(n, _)| *n == rule.name) {
            Some((_, first)) => ctx.err(
                Pos::of(item),
                format!("rule name `{}` is already used at line {}; rule names must be unique in a file", rule.name, first.line),
            ),
            None => names.push((rule.name.clone(), Pos::of(item))),
        }
        rules.push(rule);
    }
    counter.report(ctx);
    rules
}

fn compile_rule(ctx: &mut Ctx, node: &SNode, counter: &mut AttributeCounter) -> Option<Rule> {
    let entries = ctx.map(node, "a rule")?;
    ctx.check_keys(entries, RULE_KEYS, "rule");
    let pos = Pos::of(node);
    let name = ctx
        .required(entries, pos, "name", "a rule")
        .and_then(|n| ctx.string(n, "name"))
        .map(str::to_owned);
    let when = get(entries, "when").and_then(|w| condition::compile(ctx, w));
    let stop = match get(entries, "stop").map(|s| (&s.value, Pos::of(s))) {
        None => false,
        Some((Node::Bool(b), _)) => *b,
        Some((_, p)) => {
            ctx.err(p, "`stop` takes `true` or `false`");
            false
        }
    };
    let user = get(entries, "user").and_then(|u| compile_user(ctx, u, counter));
    let mut events: Vec<ObjectSpec> = get(entries, "event")
        .and_then(|e| compile_event(ctx, e, counter))
        .into_iter()
        .collect();
    if let Some(list) = get(entries, "events") {
        match &list.value {
            Node::Seq(items) => {
                events.extend(items.iter().filter_map(|e| compile_event(ctx, e, counter)))
            }
            _ => ctx.err(
                Pos::of(list),
                "`events` is a list of events; for one event write `event:`",
            ),
        }
    }
    let transaction = get(entries, "transaction").and_then(|t| compile_transaction(ctx, t));
    if !["user", "event", "events", "transaction"]
        .iter()
        .any(|k| get(entries, k).is_some())
    {
        ctx.err(
            pos,
            "a rule needs at least one of `user`, `event`, `events`, `transaction`",
        );
    }
    Some(Rule {
        name: name?,
        when,
        stop,
        user,
        events,
        transaction,
    })
}

/// The keys of a payload (`user`, `event`, `transaction`), with `nested` compiled as a
/// map of custom attributes that may use `"*"`; keys in `own` are allowed and left to
/// the caller.
fn compile_payload(
    ctx: &mut Ctx,
    entries: &Entries,
    section: &str,
    nested: &str,
    (allowed, own): (&[&str], &[&str]),
) -> ObjectSpec {
    ctx.check_keys(entries, allowed, section);
    let mut spec = ObjectSpec::default();
    for (key, node) in entries
        .iter()
        .filter(|(k, _)| allowed.contains(&k.value.as_str()) && !own.contains(&k.value.as_str()))
    {
        let what = format!("{section}.{}", key.value);
        let compiled = if key.value == nested {
            value::compile_object(ctx, node, &what, true).map(|o| ValueSpec {
                source: Source::Object(o),
                ..ValueSpec::literal(serde_json::Value::Null)
            })
        } else {
            value::compile(ctx, node, &what)
        };
        if let Some(v) = compiled {
            spec.fields.push((key.value.clone(), v));
        }
    }
    spec
}

/// The compiled map of custom attributes under `key`, with its YAML node.
fn nested<'s, 'n>(
    spec: &'s ObjectSpec,
    entries: &'n Entries,
    key: &str,
) -> Option<(&'n SNode, &'s ObjectSpec)> {
    let node = get(entries, key)?;
    match spec.fields.iter().find(|(k, _)| k == key) {
        Some((
            _,
            ValueSpec {
                source: Source::Object(o),
                ..
            },
        )) => Some((node, o)),
        _ => None,
    }
}

fn compile_user(ctx: &mut Ctx, node: &SNode, counter: &mut AttributeCounter) -> Option<ObjectSpec> {
    let entries = ctx.map(node, "`user`")?;
    let mut allowed: Vec<&str> = rules::USER_FIELDS.to_vec();
    allowed.push("attributes");
    let spec = compile_payload(ctx, entries, "user", "attributes", (&allowed, &[]));
    for (key, v) in &spec.fields {
        let key_node = entries.iter().find(|(k, _)| k.value == *key);
        if let (Some(lit), Some((k, _))) = (v.literal_value(), key_node)
            && key != "attributes"
            && !lit.is_null()
            && let Err(e) = rules::check_user_literal(key, lit)
        {
            ctx.err(Pos::of(k), e);
        }
    }
    if let Some((n, attributes)) = nested(&spec, entries, "attributes") {
        counter.add("users".to_owned(), n, attributes);
    }
    Some(spec)
}

fn compile_event(
    ctx: &mut Ctx,
    node: &SNode,
    counter: &mut AttributeCounter,
) -> Option<ObjectSpec> {
    let entries = ctx.map(node, "an event")?;
    let spec = compile_payload(ctx, entries, "event", "eventData", (EVENT_KEYS, &[]));
    let name = ctx.required(entries, Pos::of(node), "eventName", "an event");
    if let Some(n) = name
        && let Node::String(text) = &n.value
        && !text.starts_with('$')
        && !text.contains("{{")
        && let Err(e) = rules::check_name(text)
    {
        ctx.err(Pos::of(n), format!("eventName: {e}"));
    }
    if let Some((n, data)) = nested(&spec, entries, "eventData") {
        // Per event: a name computed from the record is its own scope.
        let scope = match name.map(|n| (&n.value, Pos::of(n))) {
            Some((Node::String(text), _)) if !text.starts_with('$') && !text.contains("{{") => {
                format!("the event `{text}`")
            }
            Some((_, p)) => format!("the event named at line {}", p.line),
            None => "an event".to_owned(),
        };
        counter.add(scope, n, data);
    }
    Some(spec)
}

fn compile_transaction(ctx: &mut Ctx, node: &SNode) -> Option<ObjectSpec> {
    let entries = ctx.map(node, "`transaction`")?;
    ctx.required(entries, Pos::of(node), "campaignId", "a transaction");
    let mut spec = compile_payload(
        ctx,
        entries,
        "transaction",
        "overrideData",
        (TXN_KEYS, &["dedupe"]),
    );
    if let Some(dedupe) = get(entries, "dedupe").and_then(|d| compile_dedupe(ctx, d)) {
        spec.fields
            .push(("dedupe".to_owned(), ValueSpec::literal(dedupe)));
    }
    Some(spec)
}

/// `dedupe: { ttl: N }`: WebEngage drops a repeat of the same trigger within N seconds,
/// 5 to 1,800. A literal, so a wrong value fails the load rather than every record.
fn compile_dedupe(ctx: &mut Ctx, node: &SNode) -> Option<serde_json::Value> {
    let entries = ctx.map(node, "`transaction.dedupe`")?;
    ctx.check_keys(entries, DEDUPE_KEYS, "transaction.dedupe");
    let ttl = ctx.required(entries, Pos::of(node), "ttl", "`transaction.dedupe`")?;
    let range = rules::DEDUPE_TTL_SECONDS;
    match &ttl.value {
        Node::Number(n) if n.as_i64().is_some_and(|t| range.contains(&t)) => {
            Some(serde_json::json!({ "ttl": n }))
        }
        other => {
            ctx.err(
                Pos::of(ttl),
                format!(
                    "`transaction.dedupe.ttl` is {}; write a whole number of seconds from {} to {} (WebEngage's range)",
                    other.to_json(),
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }
}

/// The source id a file stands for, or why its name cannot be one.
pub fn source_id(file: &Path) -> Result<String, String> {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let mut chars = stem.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(stem.to_owned())
    } else {
        Err(format!(
            "`{stem}` cannot be a source id: rename the file to lowercase letters, digits, `-` and `_` (it becomes the URL /webhooks/<id>)"
        ))
    }
}
