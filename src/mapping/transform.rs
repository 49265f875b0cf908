//! Transforms: small, named conversions applied to a value in order.
//!
//! A transform that cannot convert its input returns `Err(reason)`; the caller drops
//! the field with a warning (or fails the rule when the field is required).

use std::borrow::Cow;

use jiff::tz::TimeZone;
use regex::Regex;
use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

use super::check::Ctx;
use super::datetime::{parse_datetime, webengage_event_time, webengage_time};
use super::yaml_tree::{Node, Pos, SNode, get};

pub const NAMES: &[&str] = &[
    "trim",
    "lowercase",
    "uppercase",
    "string",
    "number",
    "integer",
    "boolean",
    "not",
    "email",
    "phone",
    "datetime",
    "date",
    "split",
    "join",
    "truncate",
    "replace",
    "sha256",
];

/// Transforms written as a bare name (no arguments).
pub const NO_ARGS: &[&str] = &[
    "trim",
    "lowercase",
    "uppercase",
    "string",
    "number",
    "integer",
    "boolean",
    "not",
    "email",
    "sha256",
];
pub const PHONE_ARGS: &[&str] = &["default_region"];
pub const DATETIME_ARGS: &[&str] = &["format", "timezone"];
pub const REPLACE_ARGS: &[&str] = &["pattern", "with"];

#[derive(Debug, Clone)]
pub enum Transform {
    Trim,
    Lowercase,
    Uppercase,
    String,
    Number,
    Integer,
    Boolean,
    Not,
    Email,
    Phone(super::phone::Phone),
    DateTime {
        format: Option<String>,
        tz: TimeZone,
    },
    Date {
        format: Option<String>,
        tz: TimeZone,
    },
    Split(String),
    Join(String),
    Truncate(usize),
    Replace(Regex, String),
    Sha256,
}

impl Transform {
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Trim => "trim",
            Transform::Lowercase => "lowercase",
            Transform::Uppercase => "uppercase",
            Transform::String => "string",
            Transform::Number => "number",
            Transform::Integer => "integer",
            Transform::Boolean => "boolean",
            Transform::Not => "not",
            Transform::Email => "email",
            Transform::Phone(_) => "phone",
            Transform::DateTime { .. } => "datetime",
            Transform::Date { .. } => "date",
            Transform::Split(_) => "split",
            Transform::Join(_) => "join",
            Transform::Truncate(_) => "truncate",
            Transform::Replace(..) => "replace",
            Transform::Sha256 => "sha256",
        }
    }

    /// The WebEngage type of the output, when this transform fixes it; `None` when it
    /// keeps its input's type (text clean-ups apply to each item of a list too).
    pub fn output_type(&self) -> Option<crate::webengage::types::AttrType> {
        use crate::webengage::types::AttrType;
        match self {
            Transform::Number | Transform::Integer => Some(AttrType::Number),
            Transform::Boolean | Transform::Not => Some(AttrType::Boolean),
            Transform::DateTime { .. } | Transform::Date { .. } => Some(AttrType::Date),
            Transform::Split(_) => Some(AttrType::Array),
            Transform::String
            | Transform::Email
            | Transform::Phone(_)
            | Transform::Join(_)
            | Transform::Sha256 => Some(AttrType::String),
            Transform::Trim
            | Transform::Lowercase
            | Transform::Uppercase
            | Transform::Truncate(_)
            | Transform::Replace(..) => None,
        }
    }

    /// Applies the transform to a non-null value.
    /// Takes the value by reference: the caller keeps it to name it in a warning.
    /// The transform's output; `datetime` keeps milliseconds only with `keep_millis`
    /// (an event's `eventTime`: every other date has WebEngage's plain format).
    pub fn apply_in(&self, v: &Value, keep_millis: bool) -> Result<Value, String> {
        match self {
            Transform::Trim => Ok(map_text(v, |s| s.trim().to_owned())),
            Transform::Lowercase => Ok(map_text(v, |s| s.to_lowercase())),
            Transform::Uppercase => Ok(map_text(v, |s| s.to_uppercase())),
            Transform::String => Ok(Value::String(need_text(v)?.into_owned())),
            Transform::Number => to_number(v),
            Transform::Integer => to_integer(v),
            Transform::Boolean => to_bool(v).map(Value::Bool),
            Transform::Not => to_bool(v).map(|b| Value::Bool(!b)),
            Transform::Email => to_email(v),
            Transform::Phone(phone) => phone
                .to_e164(&need_text(v)?)
                .map(Value::String)
                .map_err(str::to_owned),
            Transform::DateTime { format, tz } => {
                let ts = parse_datetime(&need_text(v)?, format.as_deref(), tz)?;
                Ok(Value::String(if keep_millis {
                    webengage_event_time(ts)
                } else {
                    webengage_time(ts)
                }))
            }
            Transform::Date { format, tz } => {
                let ts = parse_datetime(&need_text(v)?, format.as_deref(), tz)?;
                Ok(Value::String(
                    ts.to_zoned_datetime(tz.clone()).date().to_string(),
                ))
            }
            Transform::Split(sep) => Ok(split(&need_text(v)?, sep)),
            Transform::Join(sep) => join(v, sep),
            Transform::Truncate(n) => Ok(map_text(v, |s| s.chars().take(*n).collect())),
            Transform::Replace(re, with) => Ok(map_text(v, |s| {
                re.replace_all(s, with.as_str()).into_owned()
            })),
            Transform::Sha256 => Ok(Value::String(hex::encode(Sha256::digest(
                need_text(v)?.as_bytes(),
            )))),
        }
    }
}

/// A value as text: strings as they are, numbers and booleans printed; null, lists and maps have none.
pub fn text_of(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

fn need_text(v: &Value) -> Result<Cow<'_, str>, String> {
    text_of(v).ok_or_else(|| "a list or map is not text".to_owned())
}

/// Text transforms apply to strings, and to each string of a list (e.g. after `split`).
fn map_text(v: &Value, f: impl Fn(&str) -> String + Copy) -> Value {
    match v {
        Value::String(s) => Value::String(f(s)),
        Value::Array(items) => Value::Array(items.iter().map(|i| map_text(i, f)).collect()),
        other => other.clone(),
    }
}

fn to_number(v: &Value) -> Result<Value, String> {
    let text = need_text(v)?;
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Ok(Value::Number(i.into()));
    }
    t.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| "not a number".to_owned())
}

fn to_integer(v: &Value) -> Result<Value, String> {
    match to_number(v)? {
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Value::Number(n)),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Value::Number((f as i64).into())),
            _ => Err("not a whole number".to_owned()),
        },
        _ => Err("not a number".to_owned()),
    }
}

pub(super) fn to_bool(v: &Value) -> Result<bool, String> {
    if let Value::Bool(b) = v {
        return Ok(*b);
    }
    // ASCII case folding is enough: no other character lowercases to one of these
    // letters (the Kelvin sign becomes `k`, which none of them has).
    let text = need_text(v)?;
    let word = text.trim();
    let is = |words: &[&str]| words.iter().any(|w| word.eq_ignore_ascii_case(w));
    if is(&["true", "yes", "y", "1", "on"]) {
        Ok(true)
    } else if is(&["false", "no", "n", "0", "off"]) {
        Ok(false)
    } else {
        Err("not a yes/no value (true/false, yes/no, y/n, 1/0, on/off)".to_owned())
    }
}

fn to_email(v: &Value) -> Result<Value, String> {
    let email = need_text(v)?.trim().to_lowercase();
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if valid {
        Ok(Value::String(email))
    } else {
        Err("not an e-mail address".to_owned())
    }
}

fn split(text: &str, sep: &str) -> Value {
    Value::Array(
        text.split(sep)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_owned()))
            .collect(),
    )
}

fn join(v: &Value, sep: &str) -> Result<Value, String> {
    match v {
        Value::Array(items) => {
            let parts: Vec<Cow<str>> = items
                .iter()
                .filter_map(text_of)
                .filter(|s| !s.is_empty())
                .collect();
            Ok(Value::String(parts.join(sep)))
        }
        other => Ok(other.clone()),
    }
}

/// Compiles one transform (`name` or `{ name: args }`), reporting bad names and arguments.
pub fn compile(ctx: &mut Ctx, node: &SNode) -> Option<Transform> {
    match &node.value {
        Node::String(name) => compile_named(ctx, Pos::of(node), name, None),
        Node::Map(entries) if entries.len() == 1 => {
            let (key, args) = &entries[0];
            compile_named(ctx, Pos::of(key), &key.value, Some(args))
        }
        other => {
            ctx.err(
                Pos::of(node),
                format!("a transform is a name like `trim` or a one-key map like `truncate: 100`, not {}", other.kind()),
            );
            None
        }
    }
}

fn compile_named(ctx: &mut Ctx, pos: Pos, name: &str, args: Option<&SNode>) -> Option<Transform> {
    let simple = match name {
        "trim" => Some(Transform::Trim),
        "lowercase" => Some(Transform::Lowercase),
        "uppercase" => Some(Transform::Uppercase),
        "string" => Some(Transform::String),
        "number" => Some(Transform::Number),
        "integer" => Some(Transform::Integer),
        "boolean" => Some(Transform::Boolean),
        "not" => Some(Transform::Not),
        "email" => Some(Transform::Email),
        "sha256" => Some(Transform::Sha256),
        _ => None,
    };
    if let Some(t) = simple {
        if let Some(a) = args.filter(|a| !matches!(a.value, Node::Null)) {
            ctx.err(
                Pos::of(a),
                format!("transform `{name}` takes no arguments: write just `{name}`"),
            );
        }
        return Some(t);
    }
    match name {
        "phone" => compile_phone(ctx, pos, args),
        "datetime" | "date" => compile_datetime(ctx, name, args),
        "split" | "join" => {
            let sep = text_arg(ctx, pos, name, args, "split: \",\"")?;
            Some(if name == "split" {
                Transform::Split(sep)
            } else {
                Transform::Join(sep)
            })
        }
        "truncate" => compile_truncate(ctx, pos, args),
        "replace" => compile_replace(ctx, pos, args),
        _ => {
            let hint = super::check::nearest(name, NAMES)
                .map(|n| format!("did you mean `{n}`?"))
                .unwrap_or_else(|| format!("known transforms: {}", NAMES.join(", ")));
            ctx.err(pos, format!("unknown transform `{name}`; {hint}"));
            None
        }
    }
}

fn text_arg(
    ctx: &mut Ctx,
    pos: Pos,
    name: &str,
    args: Option<&SNode>,
    example: &str,
) -> Option<String> {
    match args.map(|a| (&a.value, Pos::of(a))) {
        Some((Node::String(s), _)) => Some(s.clone()),
        Some((_, p)) => {
            ctx.err(
                p,
                format!("transform `{name}` needs a text argument, e.g. `{example}`"),
            );
            None
        }
        None => {
            ctx.err(
                pos,
                format!("transform `{name}` needs an argument, e.g. `{example}`"),
            );
            None
        }
    }
}

fn compile_phone(ctx: &mut Ctx, pos: Pos, args: Option<&SNode>) -> Option<Transform> {
    const EXAMPLE: &str = "write `phone: { default_region: IN }`";
    let Some(entries) = args.and_then(|a| a.value.as_map()) else {
        ctx.err(
            pos,
            format!(
                "transform `phone` needs the country of numbers without a `+` prefix: {EXAMPLE}"
            ),
        );
        return None;
    };
    ctx.check_keys(entries, PHONE_ARGS, "phone");
    let region = ctx.required(entries, pos, "default_region", "transform `phone`")?;
    let code = ctx.string(region, "default_region")?;
    match code
        .trim()
        .to_uppercase()
        .parse::<phonenumber::country::Id>()
    {
        Ok(id) => Some(Transform::Phone(super::phone::Phone::new(id))),
        Err(_) => {
            ctx.err(
                Pos::of(region),
                format!("`{code}` is not a two-letter country code (ISO 3166), e.g. IN, US, GB"),
            );
            None
        }
    }
}

fn compile_datetime(ctx: &mut Ctx, name: &str, args: Option<&SNode>) -> Option<Transform> {
    let mut format = None;
    let mut tz = TimeZone::UTC;
    if let Some(args) = args.filter(|a| !matches!(a.value, Node::Null)) {
        let entries = ctx.map(args, &format!("the arguments of `{name}`"))?;
        ctx.check_keys(entries, DATETIME_ARGS, name);
        if let Some(f) = get(entries, "format") {
            format = ctx.string(f, "format").map(str::to_owned);
        }
        if let Some(z) = get(entries, "timezone") {
            let zone = ctx.string(z, "timezone")?;
            match TimeZone::get(zone) {
                Ok(t) => tz = t,
                Err(_) => ctx.err(Pos::of(z), format!("unknown time zone `{zone}`; write an IANA name such as `Asia/Kolkata` or `UTC`")),
            }
        }
    }
    Some(if name == "date" {
        Transform::Date { format, tz }
    } else {
        Transform::DateTime { format, tz }
    })
}

fn compile_truncate(ctx: &mut Ctx, pos: Pos, args: Option<&SNode>) -> Option<Transform> {
    match args.map(|a| &a.value) {
        Some(Node::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => {
            Some(Transform::Truncate(n.as_u64()? as usize))
        }
        _ => {
            ctx.err(pos, "transform `truncate` needs a positive whole number of characters, e.g. `truncate: 100`");
            None
        }
    }
}

fn compile_replace(ctx: &mut Ctx, pos: Pos, args: Option<&SNode>) -> Option<Transform> {
    const EXAMPLE: &str = "replace: { pattern: \"[^0-9]\", with: \"\" }";
    let Some(entries) = args.and_then(|a| a.value.as_map()) else {
        ctx.err(
            pos,
            format!("transform `replace` needs a pattern and a replacement: `{EXAMPLE}`"),
        );
        return None;
    };
    ctx.check_keys(entries, REPLACE_ARGS, "replace");
    let pattern_node = ctx.required(entries, pos, "pattern", "transform `replace`")?;
    let pattern = ctx.string(pattern_node, "pattern")?;
    let with = match get(entries, "with") {
        Some(w) => ctx.string(w, "with")?.to_owned(),
        None => String::new(),
    };
    match Regex::new(pattern) {
        Ok(re) => Some(Transform::Replace(re, with)),
        Err(e) => {
            ctx.err(
                Pos::of(pattern_node),
                format!("invalid regular expression: {}", one_line(&e.to_string())),
            );
            None
        }
    }
}

pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
