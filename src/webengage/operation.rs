//! The operations the bridge sends to WebEngage, and the fields left out of them.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which WebEngage endpoint an operation goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    User,
    Event,
    Transaction,
}

impl OperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::User => "user",
            OperationKind::Event => "event",
            OperationKind::Transaction => "transaction",
        }
    }
}

/// One WebEngage call's worth of data, produced by one mapping rule for one record.
/// `body` is exactly the JSON sent to WebEngage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// The mapping rule that produced it.
    pub rule: String,
    pub kind: OperationKind,
    pub body: Value,
}

impl Operation {
    /// What the worker sends for this operation alone: the JSON body and, for a
    /// transaction, the campaign id, which goes in the URL and not in the body.
    pub fn wire(&self) -> (Value, Option<Value>) {
        let mut body = self.body.clone();
        let campaign = match self.kind {
            OperationKind::Transaction => take_campaign_id(&mut body),
            _ => None,
        };
        (body, campaign)
    }

    /// The WebEngage user this operation belongs to (`userId`, else `anonymousId`):
    /// operations of one user are delivered in order.
    pub fn user_key(&self) -> Option<String> {
        ["userId", "anonymousId"]
            .iter()
            .find_map(|k| self.body.get(*k).and_then(Value::as_str))
            .map(str::to_owned)
    }
}

/// Takes a transaction body's `campaignId` out of it (it belongs in the URL).
pub fn take_campaign_id(body: &mut Value) -> Option<Value> {
    body.as_object_mut()?.shift_remove("campaignId")
}

/// A field left out of an operation because WebEngage would drop it or mistype it (a
/// phone that is not a phone, a value of another type than the attribute's first):
/// the rule that produced it, the field, and why. Stored and shown as one line,
/// ``rule `NAME`: FIELD dropped: REASON``; the rule name is the only part that comes
/// from the mapping file alone, so it is the only part metrics may use as a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedField {
    pub rule: String,
    /// `user.attributes.lead_score`, `event.eventTime`, …
    pub field: String,
    pub reason: String,
}

impl DroppedField {
    pub fn new(rule: &str, field: impl fmt::Display, reason: String) -> Self {
        DroppedField {
            rule: rule.to_owned(),
            field: field.to_string(),
            reason,
        }
    }
}

impl fmt::Display for DroppedField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rule `{}`: {} dropped: {}",
            self.rule, self.field, self.reason
        )
    }
}

/// Written as its one-line text: what the inbound table, the console and previews hold.
impl Serialize for DroppedField {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_key_prefers_user_id_over_anonymous_id() {
        let op = Operation {
            rule: "r".into(),
            kind: OperationKind::User,
            body: json!({"anonymousId": "a1", "userId": "u1"}),
        };
        assert_eq!(op.user_key().as_deref(), Some("u1"));
        let anon = Operation {
            body: json!({"anonymousId": "a1"}),
            ..op
        };
        assert_eq!(anon.user_key().as_deref(), Some("a1"));
    }

    #[test]
    fn a_transaction_is_sent_without_its_campaign_id_in_the_body() {
        let op = Operation {
            rule: "r".into(),
            kind: OperationKind::Transaction,
            body: json!({"campaignId": "c1", "userId": "u1", "ttl": 60}),
        };
        assert_eq!(
            op.wire(),
            (json!({"userId": "u1", "ttl": 60}), Some(json!("c1")))
        );
        let user = Operation {
            kind: OperationKind::User,
            ..op.clone()
        };
        assert_eq!(user.wire(), (user.body.clone(), None));
    }

    #[test]
    fn a_dropped_field_reads_and_serializes_as_one_line() {
        let dropped = DroppedField::new("lead", "user.phone", "`98765` is not E.164".into());
        let line = "rule `lead`: user.phone dropped: `98765` is not E.164";
        assert_eq!(dropped.to_string(), line);
        assert_eq!(serde_json::to_value(&dropped).unwrap(), json!(line));
    }
}
