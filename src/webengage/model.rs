//! The operations the bridge sends to WebEngage.

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

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(OperationKind::User),
            "event" => Some(OperationKind::Event),
            "transaction" => Some(OperationKind::Transaction),
            _ => None,
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
    /// The WebEngage user this operation belongs to (`userId`, else `anonymousId`):
    /// operations of one user are delivered in order.
    pub fn user_key(&self) -> Option<String> {
        ["userId", "anonymousId"]
            .iter()
            .find_map(|k| self.body.get(*k).and_then(Value::as_str))
            .map(str::to_owned)
    }

    /// For a transactional campaign trigger: the campaign id, which is part of the URL
    /// and not of the body WebEngage expects.
    pub fn campaign_id(&self) -> Option<&str> {
        self.body.get("campaignId").and_then(Value::as_str)
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
}
