//! The first value of a custom attribute fixes its type in WebEngage; a later value of
//! another type stops that attribute recording, silently. The bridge remembers the
//! first-seen type of every attribute it sent (table `attribute_types`) and drops a
//! value of another type with a warning, so the mapping can be fixed instead.
//!
//! Scopes follow WebEngage: user attributes are account-wide (`user`), event
//! attributes belong to one event (`event:<eventName>`).

use serde_json::{Map, Value};

use super::operation::{DroppedField, Operation, OperationKind};
use super::rules::{MAX_ATTRIBUTES_PER_TYPE, show_value};

/// The scope of user attributes.
pub const USER_SCOPE: &str = "user";
const EVENT_PREFIX: &str = "event:";

/// Event names whose attribute types the bridge records. WebEngage sets no limit on
/// event names, but every name is a scope of up to 150 attributes (25 of each type), and
/// the sender chooses the names: without a bound, one CRM could grow the table (and the
/// snapshot every process keeps in memory) without end. Events past the bound are still
/// sent, without their `eventData`, with a warning.
pub const MAX_EVENT_SCOPES: usize = 1_000;

/// The scope of one event's attributes.
pub fn event_scope(event_name: &str) -> String {
    format!("{EVENT_PREFIX}{event_name}")
}

/// WebEngage's custom attribute types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttrType {
    String,
    Number,
    Boolean,
    /// A string in WebEngage's timestamp format, `yyyy-MM-ddTHH:mm:ss±hhmm`.
    Date,
    Array,
    Object,
}

impl AttrType {
    pub const ALL: [AttrType; 6] = [
        AttrType::String,
        AttrType::Number,
        AttrType::Boolean,
        AttrType::Date,
        AttrType::Array,
        AttrType::Object,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Number => "number",
            AttrType::Boolean => "boolean",
            AttrType::Date => "date",
            AttrType::Array => "array",
            AttrType::Object => "object",
        }
    }

    pub fn parse(s: &str) -> Option<AttrType> {
        AttrType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The type WebEngage gives a value; `None` for null (never sent).
    pub fn of(v: &Value) -> Option<AttrType> {
        Some(match v {
            Value::Null => return None,
            Value::Bool(_) => AttrType::Boolean,
            Value::Number(_) => AttrType::Number,
            Value::String(s) if is_webengage_time(s) => AttrType::Date,
            Value::String(_) => AttrType::String,
            Value::Array(_) => AttrType::Array,
            Value::Object(_) => AttrType::Object,
        })
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// `yyyy-MM-ddTHH:mm:ss±hhmm`: what the `datetime` transform writes and WebEngage reads as a date.
fn is_webengage_time(s: &str) -> bool {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd+dddd";
    let b = s.as_bytes();
    b.len() == SHAPE.len()
        && b.iter().zip(SHAPE).all(|(c, want)| match want {
            b'd' => c.is_ascii_digit(),
            b'+' => *c == b'+' || *c == b'-',
            other => c == other,
        })
}

/// One attribute's first-seen type: a row of `attribute_types`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeType {
    /// `user` or `event:<eventName>`.
    pub scope: String,
    pub name: String,
    pub json_type: AttrType,
}

/// Every recorded attribute type, with counts per scope and type for WebEngage's limit
/// of attributes per type.
#[derive(Debug, Clone, Default)]
pub struct AttributeTypes {
    // foldhash, not SipHash: every attribute of every record is looked up here, and
    // SipHash was most of the type check's share of the ingest profile.
    scopes: foldhash::HashMap<String, ScopeTypes>,
}

#[derive(Debug, Clone, Default)]
struct ScopeTypes {
    types: foldhash::HashMap<String, AttrType>,
    counts: [usize; AttrType::ALL.len()],
}

impl AttributeTypes {
    pub fn new() -> Self {
        AttributeTypes::default()
    }

    /// The recorded type of `name` in `scope`.
    pub fn get(&self, scope: &str, name: &str) -> Option<AttrType> {
        self.scopes.get(scope)?.types.get(name).copied()
    }

    /// Records a type unless one is recorded already (the first wins, as in WebEngage).
    /// Returns whether it was new.
    pub fn insert(&mut self, scope: &str, name: &str, t: AttrType) -> bool {
        let s = self.scopes.entry(scope.to_owned()).or_default();
        if s.types.contains_key(name) {
            return false;
        }
        s.types.insert(name.to_owned(), t);
        s.counts[t.index()] += 1;
        true
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains_key(scope)
    }

    /// How many event scopes hold attributes.
    pub fn event_scopes(&self) -> usize {
        self.scopes.len() - usize::from(self.scopes.contains_key(USER_SCOPE))
    }

    /// How many attributes of type `t` are recorded in `scope`.
    pub fn count(&self, scope: &str, t: AttrType) -> usize {
        self.scopes.get(scope).map_or(0, |s| s.counts[t.index()])
    }

    pub fn len(&self) -> usize {
        self.scopes.values().map(|s| s.types.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FromIterator<AttributeType> for AttributeTypes {
    fn from_iter<I: IntoIterator<Item = AttributeType>>(rows: I) -> Self {
        let mut out = AttributeTypes::new();
        for r in rows {
            out.insert(&r.scope, &r.name, r.json_type);
        }
        out
    }
}

/// Checks the custom attributes of user and event operations against the recorded
/// types, one record after another, remembering the attributes seen for the first time
/// so that two records of one request cannot disagree either. A value is dropped, with
/// a [`DroppedField`] naming rule, field, value, expected and found types, when:
/// - its type differs from the attribute's first-seen type;
/// - it would be a new attribute past WebEngage's 25 of one type in its scope;
/// - it belongs to an event name past the [`MAX_EVENT_SCOPES`] the bridge tracks (the
///   whole `eventData` is dropped then).
pub struct TypeCheck<'k> {
    known: &'k AttributeTypes,
    new: AttributeTypes,
    new_rows: Vec<AttributeType>,
}

impl<'k> TypeCheck<'k> {
    pub fn new(known: &'k AttributeTypes) -> Self {
        TypeCheck {
            known,
            new: AttributeTypes::new(),
            new_rows: Vec::new(),
        }
    }

    /// Checks one record's operations, appending what was dropped to `dropped`.
    pub fn check(&mut self, operations: &mut [Operation], dropped: &mut Vec<DroppedField>) {
        for op in operations {
            let (scope, key, field) = match op.kind {
                OperationKind::User => (USER_SCOPE.to_owned(), "attributes", "user.attributes"),
                OperationKind::Event => {
                    let Some(name) = op.body.get("eventName").and_then(Value::as_str) else {
                        continue;
                    };
                    (event_scope(name), "eventData", "event.eventData")
                }
                OperationKind::Transaction => continue,
            };
            let Value::Object(body) = &mut op.body else {
                continue;
            };
            let Some(Value::Object(attrs)) = body.get_mut(key) else {
                continue;
            };
            if !self.tracks(&scope) {
                dropped.push(DroppedField::new(
                    &op.rule,
                    field,
                    format!(
                        "the bridge checks the attribute types of at most {MAX_EVENT_SCOPES} event names and `{}` would be one more; map events onto fewer names",
                        &scope[EVENT_PREFIX.len()..]
                    ),
                ));
                body.shift_remove(key);
                continue;
            }
            self.attributes(&scope, &op.rule, field, attrs, dropped);
            if attrs.is_empty() {
                body.shift_remove(key);
            }
        }
    }

    /// The attributes seen for the first time, in order: to be stored with
    /// `store::attribute_types::record_new` and added to the known types.
    pub fn into_new(self) -> Vec<AttributeType> {
        self.new_rows
    }

    /// Whether the scope is known or may still be added.
    fn tracks(&self, scope: &str) -> bool {
        scope == USER_SCOPE
            || self.known.has_scope(scope)
            || self.new.has_scope(scope)
            || self.known.event_scopes() + self.new.event_scopes() < MAX_EVENT_SCOPES
    }

    fn attributes(
        &mut self,
        scope: &str,
        rule: &str,
        field: &str,
        attrs: &mut Map<String, Value>,
        dropped: &mut Vec<DroppedField>,
    ) {
        attrs.retain(|name, value| {
            let Some(found) = AttrType::of(value) else {
                return true;
            };
            let recorded = self
                .known
                .get(scope, name)
                .or_else(|| self.new.get(scope, name));
            let reason = match recorded {
                Some(expected) if expected == found => return true,
                Some(expected) => format!(
                    "WebEngage recorded `{name}` as {} when it first saw it, and this value is {} ({}); WebEngage would stop recording the attribute. Convert it with a transform, or use another attribute name",
                    expected.as_str(),
                    found.as_str(),
                    show_value(value),
                ),
                None => {
                    let count = self.known.count(scope, found) + self.new.count(scope, found);
                    if count < MAX_ATTRIBUTES_PER_TYPE {
                        self.new.insert(scope, name, found);
                        self.new_rows.push(AttributeType {
                            scope: scope.to_owned(),
                            name: name.clone(),
                            json_type: found,
                        });
                        return true;
                    }
                    format!(
                        "`{name}` would be attribute number {} of type {} for {}; WebEngage keeps at most {MAX_ATTRIBUTES_PER_TYPE} and drops the rest ({})",
                        count + 1,
                        found.as_str(),
                        scope_words(scope),
                        show_value(value),
                    )
                }
            };
            dropped.push(DroppedField::new(rule, format_args!("{field}.{name}"), reason));
            false
        });
    }
}

fn scope_words(scope: &str) -> String {
    match scope.strip_prefix(EVENT_PREFIX) {
        Some(event) => format!("the event `{event}`"),
        None => "users (account-wide)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One record's operations, each of rule `lead`.
    struct Record {
        operations: Vec<Operation>,
        warnings: Vec<String>,
    }

    fn record(ops: Vec<(OperationKind, Value)>) -> Record {
        Record {
            operations: ops
                .into_iter()
                .map(|(kind, body)| Operation {
                    rule: "lead".into(),
                    kind,
                    body,
                })
                .collect(),
            warnings: Vec::new(),
        }
    }

    fn check_types(known: &AttributeTypes, record: &mut Record) -> Vec<AttributeType> {
        let mut check = TypeCheck::new(known);
        let mut dropped = Vec::new();
        check.check(&mut record.operations, &mut dropped);
        record.warnings = dropped.iter().map(ToString::to_string).collect();
        check.into_new()
    }

    fn row(scope: &str, name: &str, t: AttrType) -> AttributeType {
        AttributeType {
            scope: scope.into(),
            name: name.into(),
            json_type: t,
        }
    }

    #[test]
    fn types_of_values() {
        assert_eq!(AttrType::of(&json!("x")), Some(AttrType::String));
        assert_eq!(
            AttrType::of(&json!("2024-01-15T10:30:00+0000")),
            Some(AttrType::Date)
        );
        assert_eq!(
            AttrType::of(&json!("2024-01-15T10:30:00-0530")),
            Some(AttrType::Date)
        );
        assert_eq!(AttrType::of(&json!("2024-01-15")), Some(AttrType::String));
        assert_eq!(AttrType::of(&json!(1.5)), Some(AttrType::Number));
        assert_eq!(AttrType::of(&json!(false)), Some(AttrType::Boolean));
        assert_eq!(AttrType::of(&json!([1])), Some(AttrType::Array));
        assert_eq!(AttrType::of(&json!({})), Some(AttrType::Object));
        assert_eq!(AttrType::of(&Value::Null), None);
        for t in AttrType::ALL {
            assert_eq!(AttrType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn a_value_of_another_type_is_dropped_and_new_attributes_are_returned() {
        let known: AttributeTypes = [
            row("user", "lead_score", AttrType::Number),
            row("event:Lead Synced", "stage", AttrType::String),
        ]
        .into_iter()
        .collect();
        let mut r = record(vec![
            (
                OperationKind::User,
                json!({"userId": "u1", "attributes": {"lead_score": "ten", "city": "Pune"}}),
            ),
            (
                OperationKind::Event,
                json!({"userId": "u1", "eventName": "Lead Synced", "eventData": {"stage": 3}}),
            ),
            (
                OperationKind::Event,
                json!({"userId": "u1", "eventName": "Other", "eventData": {"stage": 3}}),
            ),
        ]);
        let new = check_types(&known, &mut r);
        assert_eq!(
            new,
            vec![
                row("user", "city", AttrType::String),
                row("event:Other", "stage", AttrType::Number)
            ]
        );
        assert_eq!(
            r.operations[0].body,
            json!({"userId": "u1", "attributes": {"city": "Pune"}})
        );
        // An emptied eventData is not sent at all.
        assert_eq!(
            r.operations[1].body,
            json!({"userId": "u1", "eventName": "Lead Synced"})
        );
        assert_eq!(r.operations[2].body["eventData"], json!({"stage": 3}));
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(
            r.warnings[0].starts_with("rule `lead`: user.attributes.lead_score dropped: WebEngage recorded `lead_score` as number"),
            "{}",
            r.warnings[0]
        );
        assert!(r.warnings[0].contains("this value is string (\"ten\")"));
        assert!(r.warnings[1].contains("event.eventData.stage dropped"));
    }

    #[test]
    fn within_one_record_the_first_value_fixes_the_type() {
        let mut r = record(vec![
            (
                OperationKind::User,
                json!({"userId": "u1", "attributes": {"plan": "gold"}}),
            ),
            (
                OperationKind::User,
                json!({"userId": "u1", "attributes": {"plan": 3}}),
            ),
        ]);
        let new = check_types(&AttributeTypes::new(), &mut r);
        assert_eq!(new, vec![row("user", "plan", AttrType::String)]);
        assert!(r.operations[1].body.get("attributes").is_none());
        assert_eq!(r.warnings.len(), 1);
    }

    #[test]
    fn the_26th_attribute_of_a_type_is_dropped() {
        let known: AttributeTypes = (0..24)
            .map(|i| row("user", &format!("n{i}"), AttrType::Number))
            .collect();
        let mut r = record(vec![(
            OperationKind::User,
            json!({"userId": "u1", "attributes": {"n0": 1, "x": 2, "y": 3, "s": "text"}}),
        )]);
        let new = check_types(&known, &mut r);
        assert_eq!(
            new,
            vec![
                row("user", "x", AttrType::Number),
                row("user", "s", AttrType::String)
            ]
        );
        assert_eq!(
            r.operations[0].body["attributes"],
            json!({"n0": 1, "x": 2, "s": "text"})
        );
        assert!(
            r.warnings[0].contains("`y` would be attribute number 26 of type number for users"),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn transactions_and_standard_fields_are_not_tracked() {
        let mut r = record(vec![
            (
                OperationKind::User,
                json!({"userId": "u1", "firstName": "A"}),
            ),
            (
                OperationKind::Transaction,
                json!({"userId": "u1", "campaignId": "c", "overrideData": {"a": 1}}),
            ),
        ]);
        assert!(check_types(&AttributeTypes::new(), &mut r).is_empty());
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn event_names_past_the_bound_lose_their_event_data() {
        let known: AttributeTypes = (0..MAX_EVENT_SCOPES - 1)
            .map(|i| row(&event_scope(&format!("e{i}")), "a", AttrType::Number))
            .chain([row(USER_SCOPE, "a", AttrType::Number)])
            .collect();
        assert_eq!(known.event_scopes(), MAX_EVENT_SCOPES - 1);
        let event = |name: &str| {
            (
                OperationKind::Event,
                json!({"userId": "u1", "eventName": name, "eventData": {"a": 1}}),
            )
        };
        let mut r = record(vec![event("new1"), event("new2"), event("e7")]);
        let new = check_types(&known, &mut r);
        // The last free scope goes to the first new name; a known name keeps working.
        assert_eq!(new, vec![row("event:new1", "a", AttrType::Number)]);
        assert_eq!(r.operations[0].body["eventData"], json!({"a": 1}));
        assert_eq!(
            r.operations[1].body,
            json!({"userId": "u1", "eventName": "new2"})
        );
        assert_eq!(r.operations[2].body["eventData"], json!({"a": 1}));
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(
            r.warnings[0].starts_with("rule `lead`: event.eventData dropped: the bridge checks the attribute types of at most 1000 event names and `new2`"),
            "{}",
            r.warnings[0]
        );
    }
}
