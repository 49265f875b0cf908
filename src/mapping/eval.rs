//! Evaluation: running a compiled rule list on one record.
//!
//! Problems never panic and never stop other rules: a field that cannot be converted
//! is dropped with a warning, a rule that cannot produce a valid payload fails alone.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Map, Value};

use super::compile::Rule;
use super::datetime::{
    is_exact_webengage_event_time, is_exact_webengage_time, parse_datetime, webengage_event_time,
    webengage_time,
};
use super::value::{FieldPath, ObjectSpec, Scope, show};
use super::{MappedRecord, Provenance, RecordStatus, RuleFailure};
use crate::webengage::rules;
use crate::webengage::{DroppedField, Operation, OperationKind};

/// Runs every rule on one record; with `explain`, also records where each field came from.
pub fn map_record(
    rules: &[Rule],
    record: &Value,
    received_at: Timestamp,
    mut explain: Option<&mut Vec<Provenance>>,
) -> MappedRecord {
    let mut operations = Vec::new();
    let mut warnings = Vec::new();
    let mut failures = Vec::new();
    let mut matched = false;
    for rule in rules {
        if !rule.when.as_ref().is_none_or(|c| c.holds(record)) {
            continue;
        }
        matched = true;
        let mut scope = Scope {
            record,
            warnings: &mut warnings,
            rule: &rule.name,
            explain: explain.as_deref_mut(),
            limit_strings: true,
            keep_millis: false,
        };
        match apply_rule(rule, &mut scope, received_at) {
            // The first rule's list becomes the record's: no copy, no second allocation.
            Ok(ops) if operations.is_empty() => operations = ops,
            Ok(ops) => operations.extend(ops),
            Err(reason) => failures.push(RuleFailure {
                rule: rule.name.clone(),
                reason,
            }),
        }
        if rule.stop {
            break;
        }
    }
    let status = match (matched, failures.is_empty()) {
        (false, _) => RecordStatus::Ignored,
        (true, true) => RecordStatus::Mapped,
        (true, false) => RecordStatus::Failed,
    };
    MappedRecord {
        status,
        operations,
        warnings,
        failures,
        provenance: Vec::new(),
    }
}

/// The operations of one rule, all or nothing.
fn apply_rule(
    rule: &Rule,
    scope: &mut Scope,
    received_at: Timestamp,
) -> Result<Vec<Operation>, String> {
    let user = match &rule.user {
        Some(spec) => Some(user_body(spec, scope)?),
        None => None,
    };
    // Events and the transaction borrow the user's identity; the user's operation
    // still comes first.
    let user_identity = user.as_ref().and_then(identity);
    let mut ops = Vec::with_capacity(
        usize::from(user.is_some()) + rule.events.len() + usize::from(rule.transaction.is_some()),
    );
    for spec in &rule.events {
        let body = event_body(spec, scope, user_identity, received_at)?;
        ops.push(op(rule, OperationKind::Event, body));
    }
    if let Some(spec) = &rule.transaction {
        scope.limit_strings = false;
        let body = transaction_body(spec, scope, user_identity)?;
        ops.push(op(rule, OperationKind::Transaction, body));
    }
    if let Some(body) = user {
        ops.insert(0, op(rule, OperationKind::User, body));
    }
    Ok(ops)
}

fn op(rule: &Rule, kind: OperationKind, body: Map<String, Value>) -> Operation {
    Operation {
        rule: rule.name.clone(),
        kind,
        body: Value::Object(body),
    }
}

fn identity(body: &Map<String, Value>) -> Option<(&'static str, &Value)> {
    ["userId", "anonymousId"]
        .into_iter()
        .find_map(|k| body.get(k).map(|v| (k, v)))
}

fn is_identity(key: &str) -> bool {
    key == "userId" || key == "anonymousId"
}

/// Payloads have no `"*"` copy (the compiler refuses one there), so their fields are
/// placed straight into the body.
fn user_body(spec: &ObjectSpec, scope: &mut Scope) -> Result<Map<String, Value>, String> {
    let mut body = Map::with_capacity(spec.fields.len());
    // WebEngage's checks of the standard fields come after every field is evaluated:
    // their warnings, and a bad userId, wait until then.
    let mut checks: Vec<DroppedField> = Vec::new();
    let (mut bad_id, mut identified) = (None, false);
    spec.eval_fields(scope, &FieldPath::Root("user"), |scope, key, value| {
        if key == "attributes" {
            let mut value = value;
            if let Value::Object(attrs) = &mut value {
                for (name, reason) in rules::limit_complex_attributes(attrs) {
                    checks.push(scope.warning(format_args!("user.attributes.{name}"), reason));
                }
            }
            body.insert(key.to_owned(), value);
            return;
        }
        if bad_id.is_some() {
            return;
        }
        let value = if key == "birthDate" {
            normalise_time(value, false)
                .map_err(|e| checks.push(scope.warning("user.birthDate", e)))
        } else {
            Ok(value)
        };
        match value.map(|v| rules::check_user_field(key, v)) {
            Ok(Ok(v)) => {
                identified |= is_identity(key);
                body.insert(key.to_owned(), v);
            }
            Ok(Err(e)) if is_identity(key) => {
                bad_id = Some(format!("user.{key}: {e}"));
            }
            Ok(Err(e)) => checks.push(scope.warning(format_args!("user.{key}"), e)),
            Err(()) => {}
        }
    })?;
    scope.warnings.append(&mut checks);
    if let Some(e) = bad_id {
        return Err(e);
    }
    if !identified {
        return Err("user has neither userId nor anonymousId for this record".to_owned());
    }
    Ok(body)
}

fn event_body(
    spec: &ObjectSpec,
    scope: &mut Scope,
    user: Option<(&str, &Value)>,
    received_at: Timestamp,
) -> Result<Map<String, Value>, String> {
    // eventTime and eventData go last, whatever the mapping's order.
    let mut body = Map::with_capacity(spec.fields.len() + 2);
    let (mut time, mut data, mut identified) = (None, None, false);
    let root = FieldPath::Root("event");
    for (key, field) in &spec.fields {
        // Only an event's time keeps milliseconds: other dates are attributes, whose
        // type WebEngage reads from the plain format.
        scope.keep_millis = key == "eventTime";
        let value = field.eval(scope, &FieldPath::Key(&root, key));
        scope.keep_millis = false;
        let Some(value) = value? else { continue };
        match key.as_str() {
            "eventTime" => time = Some(value),
            "eventData" => data = Some(value),
            _ => {
                identified |= is_identity(key);
                body.insert(key.to_owned(), value);
            }
        }
    }
    let name = match body.get("eventName") {
        Some(Value::String(n)) => n,
        Some(other) => return Err(format!("event.eventName must be text, got {}", show(other))),
        None => return Err("event.eventName has no value for this record".to_owned()),
    };
    rules::check_name(name).map_err(|e| format!("event.eventName: {e}"))?;
    if !identified {
        let (key, id) = user.ok_or("event has no userId (and the rule has no user with one)")?;
        scope.explain(format_args!("event.{key}"), id, || {
            format!("the rule's user.{key}")
        });
        body.shift_insert(0, key.to_owned(), id.clone());
    }
    let time = time
        .and_then(|t| {
            normalise_time(t, true)
                .map_err(|e| scope.warn("event.eventTime", e))
                .ok()
        })
        .unwrap_or_else(|| {
            let t = Value::String(webengage_time(received_at));
            scope.explain("event.eventTime", &t, || {
                "the time the webhook was received".to_owned()
            });
            t
        });
    body.insert("eventTime".to_owned(), time);
    if let Some(data) = data {
        body.insert("eventData".to_owned(), data);
    }
    Ok(body)
}

fn transaction_body(
    spec: &ObjectSpec,
    scope: &mut Scope,
    user: Option<(&str, &Value)>,
) -> Result<Map<String, Value>, String> {
    let mut body = spec
        .eval(scope, &FieldPath::Root("transaction"))?
        .unwrap_or_default();
    if !matches!(body.get("campaignId"), Some(Value::String(_))) {
        return Err("transaction.campaignId has no value for this record".to_owned());
    }
    if !body.contains_key("userId") {
        match user {
            Some(("userId", id)) => {
                scope.explain("transaction.userId", id, || {
                    "the rule's user.userId".to_owned()
                });
                body.insert("userId".to_owned(), id.clone());
            }
            _ => {
                return Err(
                    "transaction has no userId (and the rule has no user with one)".to_owned(),
                );
            }
        }
    }
    Ok(body)
}

/// Dates must reach WebEngage as `yyyy-MM-ddTHH:mm:ss+0000` (an event's time with
/// `.SSS` milliseconds when it has some: `keep_millis`); anything the datetime
/// transform understands is converted, anything else is refused with the warning's text.
fn normalise_time(value: Value, keep_millis: bool) -> Result<Value, String> {
    match value.as_str() {
        // What the datetime transform wrote: converting it again would give it back.
        Some(text) if is_exact_webengage_time(text) => Ok(value),
        Some(text) if keep_millis && is_exact_webengage_event_time(text) => Ok(value),
        Some(text) => parse_datetime(text, None, &TimeZone::UTC)
            .map(|ts| {
                Value::String(if keep_millis {
                    webengage_event_time(ts)
                } else {
                    webengage_time(ts)
                })
            })
            .map_err(|_| format!("{} is not a date/time", show(&value))),
        None => Err(format!("{} is not a date/time", show(&value))),
    }
}
